#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# New TCP clients, the kernel's own stack, one connection each from its own
# source address, all at once.
#   tcp_clients.py serve ADDR PORT SECONDS   accept (and close) connections for SECONDS
#   tcp_clients.py connect DST PORT TIMEOUT SRC...
#       connect from each SRC (in parallel), print one JSON line: how many
#       connected within TIMEOUT seconds, and each one's time to connect
import json
import socket
import sys
import threading
import time

mode = sys.argv[1]
if mode == "serve":
    addr, port, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((addr, port))
    listener.listen(4096)  # the budget lets ~1000 spoofed SYNs/s in: half-open ones must not fill it
    listener.settimeout(0.2)
    end = time.monotonic() + seconds
    accepted = 0
    while time.monotonic() < end:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
        accepted += 1
        conn.close()
    print(accepted)
    sys.exit(0)

dst, port, timeout, sources = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5:]
times = {}


def connect(src):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(timeout)
    start = time.monotonic()
    try:
        s.connect((dst, port))
        times[src] = time.monotonic() - start
    except OSError:
        times[src] = None
    finally:
        s.close()


threads = [threading.Thread(target=connect, args=(src,)) for src in sources]
for t in threads:
    t.start()
for t in threads:
    t.join()
ok = [t for t in times.values() if t is not None]
print(json.dumps({"connected": len(ok), "clients": len(sources), "seconds": sorted(ok)}))
