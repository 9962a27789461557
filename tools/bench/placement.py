#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# How often a botnet of a given fraction of --max-sources overflows the
# bucket table: sources placed as bpf/slots.h's xt_newcomer_place places
# them (a set of 15 ways, its first free way; from XT_SPILL_FROM ways in
# use, the next set where its first free way comes earlier; both full: an
# eviction), into fresh tables with random homes (the keyed hash), counting
# the tables where some source had to push another out. docs/design.md,
# "Twenty-first round".
#
# --hot: the hot cache instead, on one CPU (bpf/hot.bpf.h, xt_hot_fill):
# lines of four IPv4 entries, a source in its line or, that one full, the
# other line of its pair; both full, no entry (its packets are held from
# its bucket). Prints the share of a botnet of each fill, every source of
# it over its limit, that finds no entry.
#
#   tools/bench/placement.py [--sets 32768] [--tables 40] [--spill-from 10 15] [--fill 0.75 0.85]
#   tools/bench/placement.py --hot [--tables 40] [--fill 0.76 1.0]
import argparse
import random

WAYS = 15


def evictions(sets, sources, spill_from, rng):
    load = [0] * sets
    evicted = 0
    for _ in range(sources):
        home = rng.randrange(sets)
        nxt = (home + 1) % sets
        w, n = load[home], load[nxt]
        if w < WAYS and (w < spill_from or not n < w):
            load[home] += 1
        elif n < WAYS:
            load[nxt] += 1
        else:
            evicted += 1
    return evicted


def without_hot_entry(lines, sources, rng):
    held = [0] * lines
    missed = 0
    for _ in range(sources):
        line = rng.randrange(lines)
        if held[line] < 4:
            held[line] += 1
        elif held[line ^ 1] < 4:
            held[line ^ 1] += 1
        else:
            missed += 1
    return missed


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", type=int, default=32768, help="sets (the default --max-sources 262144 has 32768)")
    ap.add_argument("--tables", type=int, default=40, help="tables filled for each figure")
    ap.add_argument("--spill-from", type=int, nargs="+", default=[10, 15],
                    help="XT_SPILL_FROM values to compare (15: the home set filled to its last way first)")
    ap.add_argument("--fill", type=float, nargs="+", default=[0.75, 0.85],
                    help="sources as a fraction of --max-sources (8 a set)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hot", action="store_true",
                    help="the hot cache (a line of four for every four sources of --max-sources, 8 a set)")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    if a.hot:
        lines = a.sets * 8 // 4
        for fill in a.fill:
            sources = int(lines * 4 * fill)
            missed = sum(without_hot_entry(lines, sources, rng) for _ in range(a.tables))
            print("hot cache, %.2f of the table (%d sources): %.2f%% of them without an entry"
                  % (fill, sources, 100.0 * missed / (sources * a.tables)), flush=True)
        return
    for spill_from in a.spill_from:
        for fill in a.fill:
            sources = int(a.sets * 8 * fill)
            runs = [evictions(a.sets, sources, spill_from, rng) for _ in range(a.tables)]
            print("spill from %2d, %.2f of the table (%d sources): %d of %d tables evicted a source in use"
                  % (spill_from, fill, sources, sum(1 for e in runs if e), a.tables), flush=True)


if __name__ == "__main__":
    main()
