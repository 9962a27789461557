#!/bin/sh
# Two builds of xthrottle on one case, in turns: for a data-path change on
# a host whose speed moves from minute to minute (docs/design.md,
# "Seventeenth round"). Each build gets a lab of its own (tools/lab/lab.sh),
# set up as the bench sets up the case; then PAIRS floods of FRAMES frames
# go to one lab and the other, the order swapped each pair, each flood sent
# straight into the lab's program (floodgen --straight: nothing is sent).
# Prints ns a frame for each (the stamping and the tail call included) and
# what the pairs say: the median of B minus A, and in how many B was faster.
#
#   sudo tools/bench/ab.sh [--pairs 40] [--frames 1000000] CASE XTHROTTLE_A XTHROTTLE_B
#
# CASE: cycling (1M sources over the default table, the budget raised),
# botnet (200k tracked sources over 1/s, each held; timed over FRAMES,
# not the bench's three seconds, so no token comes back within a flood),
# sustained (16M spoofed over a table of 1M recent admissions), spoofed
# (16M fresh spoofed sources), held (one source over 1/s, held in the hot
# cache: the issue's one-source case).
# FLOODGEN (default build/tools/floodgen/floodgen) is the generator.
set -eu

pairs=40
frames=1000000
while [ $# -gt 3 ]; do
  case "$1" in
  --pairs) pairs=$2; shift 2 ;;
  --frames) frames=$2; shift 2 ;;
  *) break ;;
  esac
done
[ $# -eq 3 ] || { sed -n '2,22s/^# \{0,1\}//p' "$0" >&2; exit 2; }
case=$1 a=$2 b=$3
here=$(dirname "$0")
lab=$here/../lab/lab.sh
floodgen=${FLOODGEN:-build/tools/floodgen/floodgen}
[ "$(id -u)" -eq 0 ] || { echo "ab.sh: needs root (namespaces, BPF)" >&2; exit 1; }
for f in "$a" "$b" "$floodgen"; do [ -x "$f" ] || { echo "ab.sh: $f is not executable" >&2; exit 1; }; done

tag=xtab-$$
trap 'sh "$lab" sweep "$tag-" >/dev/null 2>&1' EXIT INT TERM

# The pins go in a directory of the lab's bpffs, not at its root, as the
# README says and Lab does: iproute2 loading an object (`ip -n NS link set
# DEV xdp obj`, as the bench's baselines are loaded) from a namespace whose
# /sys has no bpffs puts its tc/, ip and xdp entries at the root of the
# first bpffs it finds mounted, and xthrottle refuses a pin directory
# holding what is not its own.
xt() { # LAB XTHROTTLE ARGS...
  l=$1 bin=$2
  shift 2
  ip netns exec "$l-dut" "$bin" --pin-dir "/run/$l/pins" "$@" >/dev/null
}

# floodgen ARGS... straight into LAB's program; prints ns a frame.
flood() { # LAB ARGS...
  l=$1
  shift
  link=$(ip -n "$l-dut" -j link show dut0)
  id=$(printf '%s' "$link" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["xdp"]["prog"]["id"])')
  mac=$(printf '%s' "$link" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')
  ip netns exec "$l-gen" "$floodgen" --dev gen0 --dst-mac "$mac" --dst 198.18.0.2 --cpu 0 --json \
    --straight "$id" "$@" | python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.2f" % (1e9*j["seconds"]/j["sent"]))'
}

fill=""
case "$case" in
cycling | botnet)
  rate=1 burst=1 extra="--new-rate 100000000/s"
  # The held botnet's fill is two packets a source, as the bench's: the
  # first passes, the second is its first drop. The cycling botnet's, one.
  if [ "$case" = cycling ]; then n=1000000 rounds=1; else n=200000 rounds=2; fi
  fill="--sources $n --src 10.0.0.0 --count $((rounds * n))" ;;
held)
  # Its first packet passes, the next is dropped and fills the hot cache.
  rate=1 burst=1 extra="" n=1
  fill="--sources 1 --src 10.0.0.0 --count 2" ;;
sustained | spoofed)
  rate=100 burst=100 extra="" n=16777216
  [ "$case" = sustained ] && fill="--sources 1048576 --src 172.16.0.0 --count 1048576" ;;
*) echo "ab.sh: no case '$case' (cycling, botnet, sustained, spoofed, held)" >&2; exit 2 ;;
esac

for side in a b; do
  l=$tag-$side
  if [ "$side" = a ]; then bin=$a; else bin=$b; fi
  sh "$lab" up "$l" >/dev/null
  xt "$l" "$bin" attach dut0 --mode native
  [ "$case" = sustained ] && xt "$l" "$bin" rule add 172.16.0.0/12 --rate 100/s --new-rate 100000000/s
  for all in 0.0.0.0/0 ::/0; do
    # shellcheck disable=SC2086 # $extra is words
    xt "$l" "$bin" rule add "$all" --rate "$rate/s" --burst "$burst" $extra
  done
done

out=$(mktemp)
trap 'rm -f "$out"; sh "$lab" sweep "$tag-" >/dev/null 2>&1' EXIT INT TERM
i=0
while [ "$i" -lt "$pairs" ]; do
  # One order, then the other: the lab flooded second in a pair can run
  # slower (the thirteenth round's runs did, whichever build it was).
  order="a b"
  [ $((i % 2)) -eq 1 ] && order="b a"
  # Both sides of a pair get the same frames; each pair the sources after
  # the last pair's (of the 16M spoofed ones, sources not sent before for
  # the first 16M / FRAMES pairs: 16 at the default, then round again).
  run="--sources $n --src 10.0.0.0 --count $frames --start $((i * frames))"
  for side in $order; do
    # shellcheck disable=SC2086 # $fill and $run are words
    [ -n "$fill" ] && flood "$tag-$side" $fill >/dev/null
    # shellcheck disable=SC2086
    if [ "$side" = a ]; then ns_a=$(flood "$tag-a" $run); else ns_b=$(flood "$tag-b" $run); fi
  done
  echo "$ns_a $ns_b" >>"$out"
  i=$((i + 1))
done
python3 - "$out" "$case" "$pairs" "$frames" <<'EOF'
import statistics as st, sys
d = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
print("%s: %s pairs of %s frames, ns a frame (the stamping and the tail call included)" % tuple(sys.argv[2:5]))
for i, n in enumerate("AB"):
    v = sorted(x[i] for x in d)
    print("  %s  median %.1f  quartiles %.1f..%.1f  min %.1f" % (n, st.median(v), v[len(v) // 4], v[3 * len(v) // 4], v[0]))
diff = [b - a for a, b in d]
print("  B - A, median of the pairs: %+.1f ns; B faster in %d of %d" % (st.median(diff), sum(x < 0 for x in diff), len(d)))
EOF
