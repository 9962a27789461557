#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Writes COUNT IPv4/UDP packets from SRC to DST into the existing tun device
# DEV (IFF_TUN, no packet-info header): what a VPN or tunnel daemon hands the
# kernel. Prints how long it took.
import fcntl
import os
import socket
import struct
import sys
import time

dev, src, dst, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))


def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


payload = b"x" * 32
udp = struct.pack("!HHHH", 4000, 5000, 8 + len(payload), 0) + payload
header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
packet = header + udp
start = time.monotonic()
for _ in range(count):
    os.write(fd, packet)
print("%.3f" % (time.monotonic() - start))
