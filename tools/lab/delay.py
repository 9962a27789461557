#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# A path with a round-trip time, for the lab (this kernel has no netem):
# forwards every frame between two interfaces of one namespace, each held
# MS/2 milliseconds on its way, in order, like a long cable.
#
#   delay.py IF_A IF_B MS SECONDS   stops after SECONDS, or after 10M frames
#
# Frames are forwarded whole, so the senders must not hand over
# super-packets (TSO/GSO off) nor leave checksums to the hardware (tx
# offload off): lab.sh delay sets both.
import collections
import select
import socket
import sys
import time

ETH_P_ALL = 3
PACKET_OUTGOING = 4
MAX_FRAMES = 10_000_000

a, b, ms, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
hold = ms / 2000.0
socks = {}
for name in (a, b):
    # Protocol 0 until bound: no frame of another interface slips in.
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((name, ETH_P_ALL))  # Python puts it in network order itself
    s.setblocking(False)
    socks[name] = s
out = {a: socks[b], b: socks[a]}
waiting = {a: collections.deque(), b: collections.deque()}  # (due, frame) from each side
by_sock = {s: name for name, s in socks.items()}
end, forwarded = time.monotonic() + seconds, 0
while forwarded < MAX_FRAMES:
    now = time.monotonic()
    if now >= end:
        break
    for name, q in waiting.items():
        while q and q[0][0] <= now:
            try:
                out[name].send(q.popleft()[1])
            except OSError:
                pass  # a full queue on the far side: the frame is lost, as on a wire
            forwarded += 1
    due = [q[0][0] for q in waiting.values() if q]
    timeout = max(0.0, min(due) - now) if due else 0.05
    ready, _, _ = select.select(list(socks.values()), [], [], min(timeout, end - now))
    for s in ready:
        name = by_sock[s]
        while True:
            try:
                frame, addr = s.recvfrom(65536)
            except BlockingIOError:
                break
            # Not our own sends; a queue of at most 100k frames (a wire drops too).
            if addr[2] != PACKET_OUTGOING and len(waiting[name]) < 100_000:
                waiting[name].append((time.monotonic() + hold, frame))
