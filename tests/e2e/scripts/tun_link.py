#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Sets the link type (ARPHRD_*) of the existing, down tun device DEV to TYPE:
# a device whose frames are neither Ethernet nor plain IP, for tests.
import fcntl
import os
import struct
import sys

dev, link_type = sys.argv[1], int(sys.argv[2])
TUNSETIFF, TUNSETLINK, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x400454CD, 0x0001, 0x1000
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
fcntl.ioctl(fd, TUNSETLINK, link_type)
