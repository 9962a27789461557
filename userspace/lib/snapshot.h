// SPDX-License-Identifier: MIT
// Snapshots: the state that matters, in a file that outlives the host
// (`xthrottle save FILE`, `xthrottle restore FILE`, `serve --snapshot`):
// the rules and their counters, every tracked source's bucket, the known
// sources, the bans, the blocklists and the counters by reason. Times are
// kept as nanoseconds relative to the wall-clock moment of the save, never
// as kernel ticks, which do not carry across a boot; a restore turns them
// back into ticks of its own clock, less the time that passed meanwhile.
//
// The format (docs/snapshot.md), little-endian:
//   "XTSNAP\n\0"                   8 bytes, the magic
//   version                        u32, kSnapshotVersion
//   header length H                u32
//   header                         H bytes of JSON: the clock, rules, bans,
//                                  lists, counters, and how many records follow
//   bucket records                 SnapshotBucket each
//   known records                  SnapshotKnown each
//   blocklist entries              xt_block_entry each, the lists in header order
//   SHA-256 of all the bytes above 32 bytes
// A file that is not this (another magic or version, a wrong checksum, a
// header that does not describe the records) is refused before anything
// changes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "error.h"
#include "state.h"

namespace xt {

inline constexpr char kSnapshotMagic[8] = {'X', 'T', 'S', 'N', 'A', 'P', '\n', '\0'};
inline constexpr uint32_t kSnapshotVersion = 1;

// A tracked source's bucket. Each word is kept as the time until it is full
// again (0: full), which means the same whatever the tick rate the rule is
// compiled for.
struct SnapshotBucket {
  uint16_t rule;  // index in the header's rules
  uint8_t family;
  uint8_t per_len;
  uint32_t passed_packets;
  uint32_t dropped_packets;
  uint32_t throttled;  // 1: it was being dropped (throttled_ns says for how long)
  uint8_t addr[16];
  int64_t full_in_ns[XT_MAX_LIMITS];  // limit p of its rule: ns after the save until full
  int64_t throttled_ns;
};
static_assert(sizeof(SnapshotBucket) == 64);

// A known source (admitted outside the new-source budget): its key as the
// known table keeps it (IPv4 address, or IPv6 /64), how, and when last seen.
struct SnapshotKnown {
  uint8_t family;
  uint8_t how;  // enum xt_known_how
  uint8_t pad[6];
  uint8_t key[8];
  int64_t seen_ns_ago;
};
static_assert(sizeof(SnapshotKnown) == 24);

struct SnapshotSummary {
  size_t rules = 0, buckets = 0, known = 0, bans = 0, blocklists = 0;
  uint64_t bytes = 0;
  double age_seconds = 0;  // restore: how old the snapshot was
  // restore: buckets put in a slot of their own, merged into the one the
  // table had (the source sent since), or refused (no room).
  State::Restored placed;
  nlohmann::json json() const;
  std::string text() const;
};

// Writes a snapshot of state to path atomically: a temporary file beside it,
// written whole and fsync'd, then renamed over path (and the directory
// fsync'd), so a crash leaves the previous snapshot or the new one.
Result<SnapshotSummary> save_snapshot(const State& state, const std::string& path);

// Reads and checks the whole snapshot first (a bad one changes nothing),
// then puts it in state: its rules added, or replaced where the state has
// another rule for the same CIDR and match (rules the snapshot lacks are
// left); the counters of the rules it added; the buckets, merged with any
// the table has (the later of the two times to full, word by word); the
// known sources; the bans not ended since; the blocklists, loaded; the
// counters by reason if the state had no rule before. cpus: possible CPUs,
// which share each rule's --verify-rate.
Result<SnapshotSummary> restore_snapshot(State& state, const std::string& path, uint32_t cpus);

// The checks alone, over a snapshot's bytes (the fuzzer's): Ok if a restore
// would accept them.
Result<void> check_snapshot(std::string_view bytes, const std::string& path);

}  // namespace xt
