// SPDX-License-Identifier: MIT
// Snapshots: the state that matters, in a file that outlives the host
// (`xthrottle save FILE`, `xthrottle restore FILE`, `serve --snapshot`):
// the rules and their counters, every tracked source's bucket, the known
// sources, the bans, the blocklists and the counters by reason. Times are
// kept as nanoseconds relative to the wall-clock moment of the save, never
// as kernel ticks, which do not carry across a boot; a restore turns them
// back into ticks of its own clock, less the time that passed meanwhile.
// The file itself: snapshot_file.h.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.h"
#include "snapshot_file.h"
#include "state.h"

namespace xt {

struct SnapshotSummary {
  size_t rules = 0, buckets = 0, known = 0, bans = 0, blocklists = 0;
  uint64_t bytes = 0;
  double age_seconds = 0;  // restore: how old the snapshot was
  // restore: buckets put in a slot of their own, merged into the one the
  // table had (the source sent since), or refused (no room).
  State::Restored placed;
  bool resumed = false;  // restore: into what a restore cut short put in
  // restore: rules put in though the interface their drops go out is not
  // there (yet: a restore at boot may come first), the rule's name and the
  // interface's; they drop those packets until added again once it is.
  std::vector<std::pair<std::string, std::string>> redirects_waiting;
  // restore: blocklists left out, the list's name and why: ones the data
  // path no longer has room for (a snapshot of a build that took more),
  // which would otherwise have stopped the restore half done.
  std::vector<std::pair<std::string, std::string>> blocklists_skipped;
  nlohmann::json json() const;
  std::string text() const;
};

// Which state this is: a digest of the hash key drawn when it was made (the
// key stays in the kernel), so another after a reboot. `status --json`'s
// state_id; serve's restore marker names it.
Result<std::string> state_identity(const State& state);

// Writes a snapshot of state to path atomically: a temporary file beside it,
// written whole and fsync'd, then renamed over path (and the directory
// fsync'd), so a crash leaves the previous snapshot or the new one.
Result<SnapshotSummary> save_snapshot(const State& state, const std::string& path);

// Reads a snapshot file and checks it whole (snapshot_file.h): a usage
// error "PATH: why; nothing was changed" if it is not one, or damaged.
Result<SnapshotFile> read_snapshot(const std::string& path);

// Whether the state has no rule, ban or blocklist: made afresh, as after a
// reboot (serve --snapshot restores only into such a state).
Result<bool> state_is_empty(const State& state);

// What a restore refuses of the file whatever the state: each rule compiled
// for a kernel of hz ticks a second; the rules compiled, in the file's
// order. (A rule whose drops go out an interface not made yet goes in and
// drops them meanwhile: SnapshotSummary::redirects_waiting.)
Result<std::vector<xt_rule>> check_snapshot_rules(const SnapshotFile& file, const std::string& path, uint32_t hz,
                                                  uint32_t cpus);

// Checks that state has room for what the snapshot (read_snapshot) holds
// and every rule compiles for its clock (a usage error, nothing changed),
// then puts it in state: its rules added, or replaced where the state has
// another rule for the same CIDR and match (rules the snapshot lacks are
// left); the counters of the rules it added; the buckets, merged with any
// the table has (the later of the two times to full, word by word); the
// known sources; the bans not ended since; the blocklists, loaded; the
// counters by reason if the state had no rule before. cpus: possible CPUs,
// which share each rule's --verify-rate.
// A refusal of the kernel's past that point (rare: a union of blocklists
// over the data path's limits, no memory) leaves what was restored before
// it. path names the file in messages.
// What a restore does with the counters, decided from the state it first
// went into: the counters by reason (into a state without rules, or the
// state saved) and those of the rules it adds, by rule_name(). A restore
// resumed after a kill tops up to the snapshot's what its first run set
// out to add (neither added twice nor left out), and leaves alone what
// that one left alone: the counters of a live state's own rules, which
// it topped up to the snapshot's as a jump.
struct RestorePlan {
  bool counters = false;
  std::set<std::string> rules;
};
// resume: the state holds part of this very snapshot, put in by a restore
// that a kill cut short, whose plan it was. before_change, if given, is
// called with the plan once the checks have passed, before the first
// change (a restore's marker: one refused by a check changed nothing, and
// is nothing to resume).
Result<SnapshotSummary> restore_snapshot(State& state, const SnapshotFile& file, const std::string& path,
                                         uint32_t cpus, const std::optional<RestorePlan>& resume = std::nullopt,
                                         const std::function<void(const RestorePlan&)>& before_change = {});

}  // namespace xt
