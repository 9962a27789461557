// SPDX-License-Identifier: MIT
// What happened: the counters overall, by reason and per rule (stats), the
// rules whose new-source budget is saturated, and the tracked sources most
// dropped (top), as JSON for scripts and as text for people. JSON field names
// are part of the command-line contract (README, "Usage"): extend, never
// rename.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "error.h"
#include "reasons.h"
#include "state.h"

namespace xt {


// A rule whose new-source budget is turning untracked sources away now (a
// flood, or more new clients than it admits): new clients are dropped.
struct Saturation {
  std::string rule;
  std::string new_rate;
  double seconds = 0;      // since it began
  double dropped_pps = 0;  // untracked packets dropped a second, on average since then
  bool dry_run = false;    // a dry-run rule: they would have been dropped, and pass
  std::string ways_in;     // how new clients get past it (proofs, memory), or that they do not
};

// What a saturation means, in one sentence: `status` and `stats` say it
// alike ("the new-source budget of ... has been full for ...").
std::string saturation_text(const Saturation& sat);

struct Stats {
  std::vector<xt_count> reasons;  // by enum xt_reason, then the xt_counter extras
  std::vector<Saturation> saturated;
  uint64_t extra(uint32_t counter) const;  // an enum xt_counter
  xt_count extra_count(uint32_t counter) const;  // the same, with its bytes (where it counts them)
  bool is_saturated(const RuleCounters& rule) const;
  std::vector<RuleCounters> rules;
  xt_count passed() const;
  xt_count dropped() const;
  // Of those, what no rule decided: malformed, or banned or blocklisted
  // while no rule covers it (the metrics' rule="none").
  xt_count dropped_without_rule() const;
  uint32_t hz = 0;  // the state's kernel ticks a second
};
// The fair share a rule with a total is keeping now, per source, in its
// total's units (packets or bytes) a second; 0 while none is in force
// (the total does not bind); nullopt for a rule without a total.
std::optional<double> fair_share(const RuleCounters& rule, uint32_t hz);
// A rule with a total: how long a source must have been quiet, in seconds,
// for its claim to take the total's last quarter (abi.h, fair_quiet); 0
// while every claim may (the claims do not outrun the total, or it does not
// bind). nullopt without a total.
std::optional<double> fair_quiet_seconds(const RuleCounters& rule, uint32_t hz);
Result<Stats> read_stats(const State& state);
// The rules whose new-source budget is saturated now.
Result<std::vector<Saturation>> saturations(const State& state, const std::vector<RuleCounters>& rules);
nlohmann::json stats_json(const Stats& stats);
std::string stats_text(const Stats& stats);
// One line of `stats --watch`: rates over the interval between two samples.
nlohmann::json stats_rate_json(const Stats& before, const Stats& after, double seconds);
std::string stats_rate_text(const Stats& before, const Stats& after, double seconds);

struct TopRow {
  std::string source;  // the source prefix one bucket covers
  std::string rule;    // the rule's CIDR
  uint64_t passed_packets = 0;
  uint64_t dropped_packets = 0;
  bool dry_run = false;
  int64_t packets_left = -1;  // packets that could pass now (the least of the packet windows'); -1: no packet limit
  // What is left in each window of the rule (packets, or bytes for a byte
  // window), in the order the rule lists them.
  struct Left {
    std::string limit;  // "100/min", "10Mbit/s"
    bool bytes = false;
    uint64_t left = 0;
  };
  std::vector<Left> left;
  double dropped_pps = -1;    // over the last interval of top --watch; -1: not known
  double passed_pps = -1;
};
// What top --watch keeps of each slot of the table from one read to the
// next: a hash of the key that held it, and its counters' low 32 bits (a
// difference over one interval fits), 12 bytes a slot.
struct TopSeen {
  uint32_t key_hash = 0, dropped = 0, passed = 0;
};
using TopSnapshot = std::vector<TopSeen>;
// The `limit` tracked sources with most drops (then most passed, then by
// key). With `since`: by drops since the snapshot it holds, if it holds one,
// with rates over `seconds`; the snapshot is then brought up to now. One
// walk of the table; what it keeps is `limit` rows (and the snapshot), not
// one per tracked source, and while it reads them, the hot cache's drops
// not yet in their buckets (State::hot_pending: 32 bytes an entry holding
// some, one a held source and CPU at most).
Result<std::vector<TopRow>> read_top(const State& state, size_t limit, TopSnapshot* since = nullptr,
                                     double seconds = 0);
nlohmann::json top_json(const std::vector<TopRow>& rows);
std::string top_text(const std::vector<TopRow>& rows);

}  // namespace xt
