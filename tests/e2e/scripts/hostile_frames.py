#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Frames of docs/hostile-input.md's verdict table, built by scapy (a packet
# builder the project did not write), for e2e Hostile.ScapyFramesGetTheTablesVerdicts:
# each kind from an Ethernet source of its own, COUNT frames each, written
# to PCAP; a JSON line per kind on standard output says what the table
# promises it. The rules the test puts in: UDP port 53 denied, anything else
# limited far above what is sent, both for 198.18.0.0/15 and 2001:db8::/32.
#
#   hostile_frames.py PCAP DUT_MAC COUNT
import json
import sys

from scapy.all import ARP, IP, UDP, TCP, Dot1AD, Dot1Q, Ether, IPOption, IPv6, wrpcap
from scapy.layers.inet6 import (IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting)
from scapy.layers.ipsec import AH

pcap, dut_mac, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
DNS = UDP(sport=40000, dport=53) / (b"q" * 20)
V4, V6 = "198.18.0.2", "2001:db8::2"


def ah():
    # 12 bytes and a 12-byte ICV: 24 bytes, a length of 24/4 - 2 (scapy
    # leaves it 0, which would say 8).
    return AH(nh=17, payloadlen=4, spi=1, seq=1, icv=b"\0" * 12)


# name: (frame without its Ethernet header, the table's verdict, the reason
# stats counts it under). Each source address is its own, so no kind's
# packets share a bucket with another's.
def v4(n):
    return "198.18.1.%d" % n


def v6(n):
    return "2001:db8:%x::1" % (0x100 + n)


kinds = {
    "ipv4 udp/53": (IP(src=v4(1), dst=V4) / DNS, "drop", "denied"),
    "ipv4 udp/53, 4 bytes of options": (IP(src=v4(2), dst=V4, options=IPOption(b"\x01\x01\x01\x01")) / DNS, "drop",
                                        "denied"),
    "ipv4 udp/53, 40 bytes of options (IHL 15)": (IP(src=v4(3), dst=V4, options=IPOption(b"\x01" * 40)) / DNS,
                                                  "drop", "denied"),
    "ipv4 udp/53, first fragment": (IP(src=v4(4), dst=V4, flags="MF", frag=0) / DNS, "drop", "denied"),
    "ipv4 udp/53, later fragment": (IP(src=v4(5), dst=V4, proto=17, frag=3) / (b"f" * 24), "pass", "within_limit"),
    "ipv4 udp/53 behind 802.1Q": (Dot1Q(vlan=5) / IP(src=v4(6), dst=V4) / DNS, "drop", "denied"),
    "ipv4 udp/53 behind QinQ 0x88a8": (Dot1AD(vlan=5) / Dot1Q(vlan=6) / IP(src=v4(7), dst=V4) / DNS, "drop",
                                       "denied"),
    "ipv4 udp/53 behind QinQ 0x8100": (Dot1Q(vlan=5) / Dot1Q(vlan=6) / IP(src=v4(8), dst=V4) / DNS, "drop",
                                       "denied"),
    "ipv4 behind three tags": (Dot1Q(vlan=5) / Dot1Q(vlan=6) / Dot1Q(vlan=7) / IP(src=v4(9), dst=V4) / DNS, "drop",
                               "malformed"),
    "arp": (ARP(psrc=v4(10), pdst=V4), "pass", "non_ip"),
    "ipv4 version 5": (IP(src=v4(11), dst=V4, version=5) / DNS, "drop", "malformed"),
    "ipv4 IHL 4": (IP(src=v4(12), dst=V4, ihl=4) / DNS, "drop", "malformed"),
    "ipv4 total length 0": (IP(src=v4(13), dst=V4, len=0) / DNS, "drop", "malformed"),
    "ipv4 total length under its header": (IP(src=v4(14), dst=V4, len=19) / DNS, "drop", "malformed"),
    "ipv4 cut in its header": (IP(src=v4(15), dst=V4) / DNS, "drop", "malformed"),  # cut below
    "ipv4 tcp SYN to 53": (IP(src=v4(16), dst=V4) / TCP(sport=40000, dport=53, flags="S"), "pass", "within_limit"),
    "ipv4 udp/53 in the padding (total length 20)": (IP(src=v4(17), dst=V4, len=20, proto=17) / DNS, "pass",
                                                     "within_limit"),
    "ipv4 udp/54": (IP(src=v4(18), dst=V4) / UDP(sport=40000, dport=54) / (b"q" * 20), "pass", "within_limit"),
    "ipv6 udp/53": (IPv6(src=v6(1), dst=V6) / DNS, "drop", "denied"),
    "ipv6 udp/53 behind four extension headers (AH last)":
        (IPv6(src=v6(2), dst=V6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() / ah() / DNS,
         "drop", "denied"),
    "ipv6 udp/53 behind five extension headers":
        (IPv6(src=v6(3), dst=V6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() /
         IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / DNS, "pass", "within_limit"),
    "ipv6 udp/53, first fragment": (IPv6(src=v6(4), dst=V6) / IPv6ExtHdrFragment(offset=0, m=1, id=7) / DNS, "drop",
                                    "denied"),
    "ipv6 udp/53, later fragment": (IPv6(src=v6(5), dst=V6) / IPv6ExtHdrFragment(offset=3, m=0, nh=17, id=7) /
                                    (b"f" * 24), "pass", "within_limit"),
    "ipv6 udp/53 behind 802.1Q": (Dot1Q(vlan=5) / IPv6(src=v6(6), dst=V6) / DNS, "drop", "denied"),
    "ipv6 version 7": (IPv6(src=v6(7), dst=V6, version=7) / DNS, "drop", "malformed"),
    "ipv6 cut in its header": (IPv6(src=v6(8), dst=V6) / DNS, "drop", "malformed"),  # cut below
    "ipv6 payload length 0": (IPv6(src=v6(9), dst=V6, plen=0) / DNS, "drop", "malformed"),
    "ipv6 tcp SYN to 53": (IPv6(src=v6(10), dst=V6) / TCP(sport=40000, dport=53, flags="S"), "pass", "within_limit"),
}

frames = []
for i, (name, (body, verdict, reason)) in enumerate(kinds.items()):
    mac = "02:00:5e:00:01:%02x" % (i + 1)
    frame = bytes(Ether(src=mac, dst=dut_mac) / body)
    if "cut in its header" in name:
        frame = frame[:14 + (12 if "ipv4" in name else 30)]
    frames += [frame] * count
    print(json.dumps({"kind": name, "mac": mac, "verdict": verdict, "reason": reason, "bytes": len(frame)}))
wrpcap(pcap, [Ether(f) for f in frames])
