// SPDX-License-Identifier: MIT
// A classic token bucket, written independently of bpf/gcra.h's GCRA, in
// 128-bit arithmetic that cannot overflow: the unit tests and the fuzzer
// check the data path's arithmetic against it packet by packet.
#pragma once

#include <cstdint>

#include <xthrottle/abi.h>

namespace xt::test {

struct ReferenceBucket {
  unsigned __int128 level, cap, fill, cost;
  uint64_t last;

  // Full at tick t0, with the limit's scaled units (struct xt_limit).
  static ReferenceBucket full(const xt_limit& l, uint64_t t0) { return {l.cap, l.cap, l.fill, l.cost, t0}; }

  void refill(uint64_t now) {
    if (now > last) {
      level += static_cast<unsigned __int128>(now - last) * fill;
      if (level > cap) level = cap;
      last = now;
    }
  }
  bool has(uint64_t units) const { return level >= units * cost; }
  void take(uint64_t units) { level -= units * cost; }
  bool send(uint64_t now, uint64_t units) {
    refill(now);
    if (!has(units)) return false;
    take(units);
    return true;
  }
};

}  // namespace xt::test
