// Plain Kotlin, no Android dependency: tokenizer, manifest, golden self-test, statistics.
// Here its tests run with `./gradlew :core:test` (they read the same -Dpocketbert.* inputs as the
// repo's tests/apps/test_android_core.py, which is how the project's CI runs them without Gradle).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    // Forward -Dpocketbert.* given to Gradle to the test JVM.
    systemProperties(System.getProperties().filterKeys { it.toString().startsWith("pocketbert.") }.mapKeys { it.key.toString() })
}
