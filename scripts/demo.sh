#!/usr/bin/env bash
# A live demo on the built-in namespace lab (tools/lab/lab.sh): xthrottle on the
# receiving end of a veth pair, floodgen flooding it from the other end, and
# what got through counted by nftables on the receiving side. Needs root.
# Everything it creates is removed when it ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/demo.sh needs root: it loads BPF programs and builds network namespaces" >&2
  exit 1
fi
scripts/build.sh >/dev/null

tag="xtdemo-$$"
client="" capture=""
trap '[ -z "$client" ] || kill "$client" 2>/dev/null; [ -z "$capture" ] || kill "$capture" 2>/dev/null
  rm -f "/tmp/$tag.pcap"; tools/lab/lab.sh down "$tag"' EXIT
trap 'exit 130' INT TERM
tools/lab/lab.sh up "$tag"
mac=$(ip netns exec "$tag-dut" cat /sys/class/net/dut0/address)

bold="" plain=""
if [ -t 1 ]; then bold=$(tput bold 2>/dev/null || true) plain=$(tput sgr0 2>/dev/null || true); fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
xthrottle() {
  printf '%s$ xthrottle %s%s\n' "$bold" "$*" "$plain"
  ip netns exec "$tag-dut" build/xthrottle --pin-dir "/run/$tag/pins" "$@"
}
floodgen() {
  printf '%s$ floodgen %s%s\n' "$bold" "$*" "$plain"
  ip netns exec "$tag-gen" build/tools/floodgen/floodgen --dev gen0 --dst-mac "$mac" "$@"
}
received() {
  ip netns exec "$tag-dut" nft reset counters table netdev lab |
    awk '/counter v4/ {f=1} /packets/ && f {print "the host received " $2 " of them (nftables, after XDP)"; f=0}'
}

step "Lab $tag: floodgen on gen0 -> veth -> dut0 running xthrottle"
xthrottle attach dut0
xthrottle rule add 0.0.0.0/0 --rate 1000/s
xthrottle rule add 198.18.200.0/24 --allow
xthrottle rule list
xthrottle status

step "One source floods 2,000,000 frames as fast as the kernel can send them"
ip netns exec "$tag-dut" nft reset counters table netdev lab >/dev/null
floodgen --src 198.18.1.1 --count 2000000
received
echo "(1000/s with a burst of 1000: about 1000 + 1000 x the seconds above)"

step "A client sending 200/s, then 4,000,000 frames from 4,194,304 spoofed sources at once"
floodgen --src 198.18.2.2 --rate 200 --count 800 --cpu 1 >/dev/null &
client=$!
sleep 1
floodgen --src 10.0.0.0 --sources 4194304 --count 4000000 --cpu 0
wait "$client"
client=""
printf '%s$ xthrottle top --limit 100000 | grep the client%s\n' "$bold" "$plain"
ip netns exec "$tag-dut" build/xthrottle --pin-dir "/run/$tag/pins" top --limit 100000 | awk 'NR == 1 || /198\.18\.2\.2/'
echo "(the client, established before the flood, lost nothing: DROPPED is 0)"
xthrottle status
echo "(the flood was dropped by the rule's new-source budget, 1000 new sources/s, without creating state)"

step "An allowed source is never limited"
ip netns exec "$tag-dut" nft reset counters table netdev lab >/dev/null
floodgen --src 198.18.200.7 --count 100000
received

step "Raise the limit live to 5000/s and send 20,000/s for 3 seconds"
xthrottle rule add 0.0.0.0/0 --rate 5000/s
floodgen --src 198.18.1.1 --count 60000 --rate 20000
received
echo "(its bucket kept its tokens across the change: about those + 5000 x 3 got through)"

step "A total shared fairly: 2000 sources at 50/s, together ten times over a 10,000/s total, and 200 at 0.5/s"
xthrottle rule add 198.19.0.0/16 --rate 1000/s --new-rate 100000/s --total 10000/s
ip netns exec "$tag-dut" nft -f - <<'NFT'
table netdev demo {
  counter light {}
  chain in { type filter hook ingress device "dut0" priority -400; ip saddr 198.19.128.0/17 counter name light; }
}
NFT
floodgen --src 198.19.128.1 --sources 200 --rate 100 --count 500 --cpu 1 >/dev/null &
client=$!
floodgen --src 198.19.0.1 --sources 2000 --rate 100000 --pace-us 20 --count 500000 --cpu 0
wait "$client"
client=""
printf '%s$ xthrottle stats --json | (the rule'"'"'s passed packets)%s\n' "$bold" "$plain"
ip netns exec "$tag-dut" build/xthrottle --pin-dir "/run/$tag/pins" stats --json | python3 -c 'import json, sys; r = json.load(sys.stdin)["rules"]["198.19.0.0/16"]; print("the rule passed %d in 5 s: 10,000/s, and the half of its burst that sources beyond their share may take" % r["passed_packets"])'
printf '%s$ nft list counter netdev demo light%s\n' "$bold" "$plain"
ip netns exec "$tag-dut" nft list counter netdev demo light | awk '/packets/ {print "the light sources: " $2 " of their 500 packets passed"}'
echo "(first come, they would have lost nine in ten: the heavy sources give way first)"

step "What was dropped, as a pcap (tcpdump cannot see XDP's drops), and a ban for the source"
xthrottle capture -w "/tmp/$tag.pcap" --count 5 --for 10s &
capture=$!
sleep 1
floodgen --src 198.18.1.9 --count 20000 --rate 20000
wait "$capture"
capture=""
printf '%s$ tshark -r /tmp/%s.pcap%s
' "$bold" "$tag" "$plain"
tshark -r "/tmp/$tag.pcap" 2>/dev/null
rm -f "/tmp/$tag.pcap"
xthrottle ban add 198.18.1.9 --for 10min
xthrottle bans
ip netns exec "$tag-dut" nft reset counters table netdev lab >/dev/null
floodgen --src 198.18.1.9 --count 1000 --rate 20000
received
echo "(banned: dropped outright, from the hot cache, counted as \"banned\")"

step "Counters, overall and per rule"
xthrottle stats
step "Done: the lab is removed on exit"
