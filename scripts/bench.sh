#!/bin/sh
# Runs the benchmark protocol (tools/bench) and writes docs/bench/: results.md,
# results.json, throughput.dat and throughput.png. Needs root; takes a few
# minutes; run it on an otherwise idle machine. Extra arguments go to bench
# (--quick, --reps N, --frames N, --only SECTION, --out DIR).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/bench.sh needs root: it loads BPF programs and builds network namespaces" >&2
  exit 1
fi
missing=""
for p in iptables gnuplot-nox; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
scripts/build.sh >/dev/null
exec build/tools/bench/bench "$@"
