#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Slow HTTP clients (the "slowloris" way of stalling a server): N connections
# to HOST:PORT, from source address FROM, that each start a request and then
# send one more byte every INTERVAL seconds, for SECONDS seconds in all.
# Prints how many were still open at the end.
import socket
import sys
import time

host, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
n, interval, seconds = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
conns = []
for _ in range(n):
    try:
        s = socket.create_connection((host, port), timeout=2, source_address=(source, 0))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        conns.append(s)
    except OSError:
        pass  # refused: the server's limits at work
end = time.monotonic() + seconds
while time.monotonic() < end:
    time.sleep(interval)
    for s in list(conns):
        try:
            s.sendall(b"X")
        except OSError:
            conns.remove(s)
print(len(conns))
