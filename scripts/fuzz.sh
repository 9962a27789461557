#!/bin/sh
# Runs one libFuzzer target for a bounded time, from the seed corpus in
# fuzz/corpus/TARGET (read only) into FUZZ_BUILD/found/TARGET (fresh each
# run), and prints what it reached. A crash or a disagreement fails, leaving
# the input in FUZZ_BUILD/crash-TARGET-*: add it to fuzz/corpus/TARGET as a
# regression (regress-WHAT) once fixed.
#
#   scripts/fuzz.sh TARGET [SECONDS] [FUZZ_BUILD]     TARGET: parse bucket policy rules_file snapshot fleet
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
target=$1
seconds=${2:-60}
build=${3:-$root/build/fuzz}
found=$build/found/$target
rm -rf "$found"
mkdir -p "$found"
log=$build/fuzz-$target.log
max_len=4096
[ "$target" = parse ] && max_len=9216  # up to a jumbo frame
status=0
"$build/fuzz_$target" -max_total_time="$seconds" -max_len=$max_len -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$build/crash-$target-" "$found" "$root/fuzz/corpus/$target" \
  >"$log" 2>&1 || status=$?
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
echo "fuzz_$target: ${execs:-?} executions in ${seconds}s; ${done_line:-no DONE line}"
if [ $status -ne 0 ]; then
  tail -40 "$log"
  echo "fuzz_$target FAILED (exit $status); the input is in $build/crash-$target-*" >&2
fi
exit $status
