package io.pocketbert.demo

import android.app.ActivityManager
import android.content.Context
import android.os.Build
import io.pocketbert.core.DeviceInfo
import java.io.File

/**
 * Where the app looks for a bundle, first match wins:
 *  1. an explicit folder (the `bundle_dir` intent extra), e.g. /data/local/tmp/pocketbert/s3_bundle;
 *  2. app-specific external storage: /sdcard/Android/data/io.pocketbert.demo/files/bundle (adb push works there);
 *  3. internal app storage: /data/data/io.pocketbert.demo/files/bundle (`adb shell run-as ... cp -r`);
 *  4. a bundle packaged in the APK under assets/bundle, copied to internal storage on first use
 *     (runtimes memory-map files, they cannot read from inside the APK).
 */
object BundleLocator {
    const val NAME = "bundle"

    fun candidates(context: Context, explicit: String?): List<File> = listOfNotNull(
        explicit?.let { File(it) },
        context.getExternalFilesDir(null)?.let { File(it, NAME) },
        File(context.filesDir, NAME),
    )

    /** The bundle folder to open: the explicit one as given (even if missing, so the error names it), else the first present. */
    fun locate(context: Context, explicit: String?): File {
        if (explicit != null) return File(explicit)
        candidates(context, null).firstOrNull { File(it, "manifest.json").isFile }?.let { return it }
        return copyFromAssets(context) ?: File(context.filesDir, NAME)
    }

    private fun copyFromAssets(context: Context): File? {
        val files = context.assets.list(NAME)?.takeIf { it.isNotEmpty() } ?: return null
        val dst = File(context.filesDir, NAME).apply { mkdirs() }
        for (name in files) {
            context.assets.open("$NAME/$name").use { input -> File(dst, name).outputStream().use { input.copyTo(it) } }
        }
        return dst
    }
}

fun androidDeviceInfo(context: Context): DeviceInfo {
    val mem = ActivityManager.MemoryInfo()
    (context.getSystemService(Context.ACTIVITY_SERVICE) as ActivityManager).getMemoryInfo(mem)
    return DeviceInfo(
        environment = "adb",
        name = "${Build.MANUFACTURER} ${Build.MODEL}",
        os = "Android ${Build.VERSION.RELEASE} (API ${Build.VERSION.SDK_INT})",
        arch = Build.SUPPORTED_ABIS.firstOrNull() ?: "unknown",
        cores = Runtime.getRuntime().availableProcessors(),
        memoryMb = mem.totalMem / 1e6,
        cpuModel = if (Build.VERSION.SDK_INT >= 31) Build.SOC_MODEL else Build.HARDWARE,
    )
}
