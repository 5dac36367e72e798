#!/usr/bin/env bash
# Install what the JVM tests of android_demo/core need: kotlinc (npm package `kotlin-compiler`) and JUnit 4
# (Debian `junit4`). Idempotent: a second run only checks and prints. Never fails the caller: where a piece
# cannot be installed (no JDK, no npm, not root) it says so, and tests/apps/test_android_core.py skips with a reason.
#
#   bash android_demo/tools/setup_kotlin.sh
#
# POCKETBERT_KOTLIN_HOME: where kotlinc goes (default ~/.cache/pocketbert/kotlin-toolchain).
set -u
KOTLIN_VERSION="2.4.20"
HOME_DIR="${POCKETBERT_KOTLIN_HOME:-$HOME/.cache/pocketbert/kotlin-toolchain}"
KOTLINC="$HOME_DIR/node_modules/kotlin-compiler/bin/kotlinc"

say() { echo "setup_kotlin: $*"; }

if ! command -v java >/dev/null 2>&1; then
  say "no java on PATH; install a JDK 17 (apt-get install -y openjdk-17-jdk-headless). Kotlin tests will skip."
  exit 0
fi

installed=""
if [ -x "$KOTLINC" ] && [ -f "$HOME_DIR/node_modules/kotlin-compiler/package.json" ]; then
  installed=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$HOME_DIR/node_modules/kotlin-compiler/package.json" | head -1)
fi
if [ "$installed" = "$KOTLIN_VERSION" ]; then
  say "kotlinc $KOTLIN_VERSION already at $KOTLINC"
elif command -v npm >/dev/null 2>&1; then
  say "installing kotlin-compiler@$KOTLIN_VERSION into $HOME_DIR"
  mkdir -p "$HOME_DIR"
  if ! npm install --prefix "$HOME_DIR" --no-audit --no-fund --loglevel=error "kotlin-compiler@$KOTLIN_VERSION" >/dev/null; then
    say "npm install failed; Kotlin tests will skip"
  fi
else
  say "no npm on PATH; install Node.js or put kotlinc on PATH (KOTLINC=...). Kotlin tests will skip."
fi

if [ -f /usr/share/java/junit4.jar ] && [ -f /usr/share/java/hamcrest.jar ]; then
  say "junit4 already at /usr/share/java/junit4.jar"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  say "installing Debian junit4"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq junit4) >/dev/null 2>&1 \
    || say "apt-get install junit4 failed; Kotlin tests will skip"
else
  say "JUnit 4 missing and apt-get unavailable (or not root): sudo apt-get install junit4, or set JUNIT_JAR. Kotlin tests will skip."
fi
exit 0
