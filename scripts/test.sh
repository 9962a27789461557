#!/bin/sh
# Builds (installing dependencies if needed) and runs every test: unit, bpf
# (BPF_PROG_TEST_RUN) and e2e (namespace labs). Needs root. With CI=true no
# test may skip: a missing capability fails.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh needs root: it loads BPF programs and builds network namespaces" >&2
  exit 1
fi
scripts/build.sh
# Two at a time: the e2e tests run alone (RUN_SERIAL: their floods and
# timings need the machine), the unit, bpf and fuzz tests beside each other.
ctest --test-dir build --output-on-failure --no-tests=error -j"$(nproc)" "$@"
