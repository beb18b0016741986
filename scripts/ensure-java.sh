#!/usr/bin/env bash
# The Spark engine's tests (tests/e2e/test_spark.py) run pyspark in local mode, which needs a
# Java runtime (17 or newer). Installs Debian's openjdk-17-jre-headless when java is missing and
# we are root (CI), else fails with the one command to run.
set -euo pipefail
if command -v java >/dev/null 2>&1 || { [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; }; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "spark tests: java is missing; installing Debian's openjdk-17-jre-headless package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q openjdk-17-jre-headless >/dev/null
  command -v java >/dev/null 2>&1 && exit 0
fi
echo "the Spark tests need Java 17+: run 'sudo apt-get install -y openjdk-17-jre-headless' (or set JAVA_HOME)" >&2
exit 1
