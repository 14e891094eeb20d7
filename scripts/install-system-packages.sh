#!/usr/bin/env bash
# Debian packages the test suite needs, installed only where missing: Java 17 for Spark (pyspark),
# Chromium for the dashboard's browser test (driven by Playwright, which must never fetch its own),
# curl for the README's way of sending a token.
set -euo pipefail
missing=()
java -version >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
