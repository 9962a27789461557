#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# One TCP stream, the kernel's own stack at both ends.
#   tcp_stream.py serve ADDR PORT SECONDS   accept one connection, count what
#                                           arrives for SECONDS, print the bytes
#   tcp_stream.py send ADDR PORT SECONDS    send as fast as the socket takes it
#                                           for SECONDS
import socket
import sys
import time

mode, addr, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
if mode == "serve":
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((addr, port))
    listener.listen(1)
    listener.settimeout(10)
    conn, _ = listener.accept()
    conn.settimeout(0.2)
    received, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            chunk = conn.recv(1 << 20)
        except socket.timeout:
            continue
        if not chunk:
            break
        received += len(chunk)
    print(received)
else:
    conn = socket.create_connection((addr, port), timeout=5)
    conn.setblocking(False)
    block, end = b"x" * 65536, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            conn.send(block)
        except BlockingIOError:
            time.sleep(0.001)
    conn.close()
