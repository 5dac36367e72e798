// pocketbert Android demo: `app` (UI, ExecuTorch and LiteRT runners) over `core` (plain Kotlin, JVM-tested).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "pocketbert-android"
include(":core", ":app")
