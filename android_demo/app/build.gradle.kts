plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

android {
    namespace = "io.pocketbert.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "io.pocketbert.demo"  // `pocketbert bench --device adb --package` default
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            // Benchmark numbers come from a non-debuggable build: `./gradlew installRelease` after
            // setting up signing, or use the debug build for the self-test only.
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    kotlinOptions { jvmTarget = "17" }

    // .pte and .tflite files are memory-mapped from disk: never compress them inside the APK.
    androidResources { noCompress += listOf("pte", "tflite") }
}

dependencies {
    implementation(project(":core"))
    implementation(libs.executorch.android)  // brings fbjni and SoLoader's nativeloader with it
    implementation(libs.litert)
}
