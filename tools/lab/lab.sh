#!/bin/sh
# The namespace lab shared by the demo, the end-to-end tests and the benchmarks:
#
#   TAG-gen  --- gen0 ==veth== dut0 ---  TAG-dut
#   floodgen sends here          xthrottle runs here; nftables counts on
#                                dut0's ingress what XDP let through
#
# plus a private bpffs at /run/TAG for the pins (an `ip netns exec` gets a
# fresh /sys, so pins under /sys/fs/bpf would not survive between commands).
# Nothing is ever created in the root namespace: the veth is made inside
# TAG-gen with its peer put straight into TAG-dut.
#
#   lab.sh up TAG       build it (on failure, whatever was built is removed)
#   lab.sh down TAG     remove it; safe to run twice or on a half-built lab
#   lab.sh sweep PREFIX remove every lab whose tag starts with PREFIX
#   lab.sh count TAG    packets counted from 198.18.0.0/15 and 2001:db8::/32
#   lab.sh scrubber TAG add a third namespace, TAG-scr, behind a second veth
#                       of TAG-dut's (scrub0 ==veth== scr0), for what
#                       xthrottle sends out there (--over redirect:scrub0);
#                       nftables counts what arrives on scr0 as "scrubbed"
#   lab.sh delay TAG MS SECONDS
#                       add a fourth namespace, TAG-cli, whose cli0 reaches
#                       dut0 through TAG-gen over a path of MS milliseconds'
#                       round trip (tools/lab/delay.py bridging fw0 and gen0,
#                       for SECONDS at most): TCP clients with a real RTT
set -u

up() {
  tag=$1 gen=$1-gen dut=$1-dut
  ip netns add "$gen" &&
  ip netns add "$dut" &&
  # Two queues a side: frames sent from CPU n land on dut0's queue n, so a
  # flood from two CPUs is received, and metered, on two CPUs at once.
  ip -n "$gen" link add gen0 numtxqueues 2 numrxqueues 2 type veth \
    peer name dut0 numtxqueues 2 numrxqueues 2 netns "$dut" &&
  ip -n "$gen" link set lo up &&
  ip -n "$gen" link set gen0 up &&
  ip -n "$dut" link set lo up &&
  ip -n "$dut" link set dut0 up &&
  # A frame sent into a veth is only received if the peer runs XDP or has
  # GRO on: GRO keeps dut0 receiving while xthrottle is detached. (What
  # XDP on dut0 sends back, gen0 receives only while it runs XDP itself:
  # Lab::receive_xdp_on_gen.)
  ip netns exec "$dut" ethtool -K dut0 gro on >/dev/null &&
  # The kernel's own packets follow the same rule (XPS: CPU n sends on
  # queue n mod 2), so a TCP client on CPU 1 does not share the ring of a
  # flood sent from CPU 0. Without it a connection's queue is its hash's:
  # its SYNs are lost with the flood's overflow at a full ring before any
  # XDP program sees them, and the NAPI of the flood's queue drifts to the
  # clients' CPU.
  xps "$gen" gen0 && xps "$dut" dut0 &&
  mkdir -p "/run/$tag" &&
  mount -t bpf bpf "/run/$tag" &&
  ip netns exec "$dut" nft -f - <<NFT
table netdev lab {
  counter v4 { }
  counter v6 { }
  chain in {
    type filter hook ingress device "dut0" priority -500;
    ip saddr 198.18.0.0/15 counter name v4
    ip6 saddr 2001:db8::/32 counter name v6
  }
}
NFT
  status=$?
  [ $status -eq 0 ] || { down "$tag"; return $status; }
}

xps() {
  cpus=$(getconf _NPROCESSORS_CONF) even=0 odd=0 i=0
  while [ "$i" -lt "$cpus" ] && [ "$i" -lt 62 ]; do
    if [ $((i % 2)) -eq 0 ]; then even=$((even | 1 << i)); else odd=$((odd | 1 << i)); fi
    i=$((i + 1))
  done
  ip netns exec "$1" sh -c "printf %x $even > /sys/class/net/$2/queues/tx-0/xps_cpus &&
    printf %x $odd > /sys/class/net/$2/queues/tx-1/xps_cpus"
}

scrubber() {
  scr=$1-scr dut=$1-dut
  ip netns add "$scr" &&
  ip -n "$scr" link add scr0 type veth peer name scrub0 netns "$dut" &&
  ip -n "$scr" link set lo up &&
  ip -n "$scr" link set scr0 up &&
  ip -n "$dut" link set scrub0 up &&
  # Frames XDP redirects into scrub0 arrive on scr0 only if it runs XDP or
  # has GRO on (the same as dut0).
  ip netns exec "$scr" ethtool -K scr0 gro on >/dev/null &&
  ip netns exec "$scr" nft -f - <<NFT
table netdev lab {
  counter scrubbed { }
  chain in {
    type filter hook ingress device "scr0" priority -500;
    ip saddr 198.18.0.0/15 counter name scrubbed
    ip6 saddr 2001:db8::/32 counter name scrubbed
  }
}
NFT
  status=$?
  [ $status -eq 0 ] || ip netns del "$scr" 2>/dev/null
  return $status
}

delay() {
  tag=$1 cli=$1-cli gen=$1-gen dut=$1-dut
  ip netns add "$cli" || return 1
  ip -n "$cli" link add cli0 type veth peer name fw0 netns "$gen" &&
  ip -n "$cli" link set lo up &&
  ip -n "$cli" link set cli0 up &&
  ip -n "$gen" link set fw0 up promisc on &&
  ip -n "$gen" link set gen0 promisc on &&
  # The bridge forwards frames whole: no super-packets, checksums filled in.
  ip netns exec "$cli" ethtool -K cli0 tso off gso off tx off >/dev/null &&
  ip netns exec "$dut" ethtool -K dut0 tso off gso off tx off >/dev/null &&
  ip netns exec "$gen" ethtool -K fw0 gro off >/dev/null &&
  ip netns exec "$gen" ethtool -K gen0 gro off >/dev/null &&
  { ip netns exec "$gen" python3 "$(dirname "$0")/delay.py" fw0 gen0 "$2" "$3" </dev/null >/dev/null 2>&1 &
    echo $! > "/run/$tag.delay"; }
  status=$?
  [ $status -eq 0 ] || ip netns del "$cli" 2>/dev/null
  return $status
}

down() {
  tag=$1
  if [ -f "/run/$tag.delay" ]; then
    # Only if it is still the forwarder in this lab's gen namespace: it
    # ends by itself, and its PID may have gone to another process since.
    pid=$(cat "/run/$tag.delay")
    [ "$(ip netns identify "$pid" 2>/dev/null)" = "$tag-gen" ] && kill "$pid" 2>/dev/null
    rm -f "/run/$tag.delay"
  fi
  # Whatever still runs in the lab (a test that failed midway, a hung
  # serve) would keep its namespace and the state's maps alive.
  for ns in "$1-cli" "$1-scr" "$1-gen" "$1-dut"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      [ "$pid" = "$PPID" ] || kill -9 "$pid" 2>/dev/null  # never the test that runs this
    done
  done
  ip netns del "$1-cli" 2>/dev/null
  ip netns del "$1-scr" 2>/dev/null
  ip netns del "$1-gen" 2>/dev/null
  ip netns del "$1-dut" 2>/dev/null
  if [ -d "/run/$tag" ]; then
    umount -l "/run/$tag" 2>/dev/null
    rmdir "/run/$tag" 2>/dev/null
  fi
  return 0
}

sweep() {
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    case $ns in
      "$1"*-gen) down "${ns%-gen}" ;; "$1"*-dut) down "${ns%-dut}" ;; "$1"*-scr) down "${ns%-scr}" ;;
      "$1"*-cli) down "${ns%-cli}" ;;
    esac
  done
  for dir in /run/"$1"*; do
    [ -d "$dir" ] && down "$(basename "$dir")"
    case $dir in *.delay) [ -f "$dir" ] && down "$(basename "${dir%.delay}")" ;; esac
  done
  return 0
}

count() {
  ip netns exec "$1-dut" nft list table netdev lab |
    awk '/counter v4/ {f="v4"} /counter v6/ {f="v6"} /packets/ && f {print f, $2; f=""}'
}

case "${1:-}" in
  up | down | count | scrubber) [ $# -eq 2 ] || { echo "usage: $0 $1 TAG" >&2; exit 2; }; "$1" "$2" ;;
  sweep) [ $# -eq 2 ] || { echo "usage: $0 sweep PREFIX" >&2; exit 2; }; sweep "$2" ;;
  delay) [ $# -eq 4 ] || { echo "usage: $0 delay TAG MS SECONDS" >&2; exit 2; }; delay "$2" "$3" "$4" ;;
  *) echo "usage: $0 up|down|count|scrubber TAG, $0 delay TAG MS SECONDS, or $0 sweep PREFIX" >&2; exit 2 ;;
esac
