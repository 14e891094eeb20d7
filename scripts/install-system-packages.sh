#!/usr/bin/env bash
# Debian packages the test suite needs, installed only where missing: Java 17 for Spark (pyspark),
# Chromium for the dashboard's browser test (driven by Playwright, which must never fetch its own),
# curl for the README's way of sending a token; rsyslog (a syslog daemon forwarding to logpipe's
# listener) and logrotate (rotating a file the file source follows) for the sources' tests.
set -euo pipefail
missing=()
java -version >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v curl >/dev/null || missing+=(curl)
[ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)
[ -x /usr/sbin/logrotate ] || missing+=(logrotate)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
