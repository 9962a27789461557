#!/bin/sh
# Installs what the project needs (Debian 12 packages) if anything is
# missing, then configures and builds into build/. Run as root. (prometheus,
# curl and python3 are for the tests: a real Prometheus scrapes `serve` and
# python3-prometheus-client parses what it serves; python3 also drives tun
# devices and slow clients; ping sends jumbo frames; hping3 sends to chosen
# ports and TCP flags; scapy builds hostile frames and tcpreplay sends them;
# tcpdump and tshark read what `capture` writes (libpcap writes it);
# gnuplot draws `recommend --plot`; clang-19 builds the fuzzers and the BPF
# object a second way; hiredis links serve --cluster to
# Redis, and the fleet tests run a real redis-server, over TLS with
# certificates the openssl tool makes.)
set -eu
cd "$(dirname "$0")/.."

packages="cmake g++ make pkg-config clang llvm bpftool libbpf-dev libxdp-dev xdp-tools
  libelf-dev zlib1g-dev libssl-dev libcli11-dev libgtest-dev nlohmann-json3-dev
  libtomlplusplus-dev libmicrohttpd-dev iproute2 nftables ethtool procps curl prometheus
  iputils-ping python3 python3-prometheus-client clang-19 libclang-rt-19-dev hping3
  libpcap-dev tcpdump tshark iperf3 python3-scapy tcpreplay gnuplot-nox libhiredis-dev
  redis-server openssl"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
