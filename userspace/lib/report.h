// SPDX-License-Identifier: MIT
// What the read-only commands report (rule list, stats, top, status), as JSON
// for scripts and as text for people. JSON field names are part of the CLI
// contract (README, "Usage"): extend, never rename.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "attach.h"
#include "error.h"
#include "state.h"

namespace xt {

// A JSON document as text. A string that is not valid UTF-8 (a file name can
// hold any bytes) is written with U+FFFD in place of its bad bytes: the
// output is always valid JSON, and never aborts the program.
std::string json_text(const nlohmann::json& j, int indent = -1);

struct ReasonInfo {
  const char* key;   // JSON key under "reasons"
  const char* text;  // for people
};
const ReasonInfo& reason_info(uint32_t reason);

nlohmann::json rule_json(const Cidr& cidr, const xt_rule& rule);
nlohmann::json rules_json(const std::vector<RuleEntry>& rules);
std::string rules_text(const std::vector<RuleEntry>& rules);

// A rule whose new-source budget is turning untracked sources away now (a
// flood, or more new clients than it admits): new clients are dropped.
struct Saturation {
  std::string rule;
  std::string new_rate;
  double seconds = 0;      // since it began
  double dropped_pps = 0;  // untracked packets dropped a second, on average since then
  bool dry_run = false;    // a dry-run rule: they would have been dropped, and pass
};

struct Stats {
  std::vector<xt_count> reasons;  // by enum xt_reason, then the xt_counter extras
  std::vector<Saturation> saturated;
  uint64_t extra(uint32_t counter) const;  // an enum xt_counter
  bool is_saturated(const Cidr& rule) const;
  std::vector<RuleCounters> rules;
  xt_count passed() const;
  xt_count dropped() const;
};
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
  int64_t packets_left = -1;  // packet tokens available now; -1: no packet limit
  double dropped_pps = -1;    // over the last interval of top --watch; -1: not known
  double passed_pps = -1;
};
// Tracked sources, most drops first.
Result<std::vector<TopRow>> read_top(const State& state, size_t limit);
nlohmann::json top_json(const std::vector<TopRow>& rows);
std::string top_text(const std::vector<TopRow>& rows);

struct Status {
  std::string pin_dir;
  bool state = false;  // pinned maps exist
  std::vector<RuleEntry> rules;
  std::vector<Attachment> interfaces;
  uint64_t tracked_sources = 0;
  uint32_t max_sources = 0;
  uint64_t bytes_per_source = 0;
  uint32_t hz = 0;
  uint64_t table_full_drops = 0;
  uint64_t new_source_drops = 0;
  // The config file last applied (apply, serve --config), if any.
  std::string config_path, config_sha256;
  uint64_t config_applied_at = 0;
  bool config_changed = false;  // the file on disk is not what was applied
  bool rules_drifted = false;   // it is, but the live rules are not what it says
  std::vector<Saturation> saturated;
  // xthrottle programs on this namespace's interfaces that use state other
  // than pin_dir's (found: the directory holding their pins, if any).
  struct Elsewhere {
    std::string ifname;
    uint32_t prog_id = 0;
    std::string pin_dir;
  };
  std::vector<Elsewhere> elsewhere;
  std::vector<std::string> warnings;         // not protecting as it should: empty means protected
  std::vector<std::string> config_warnings;  // the live rules are not what the config file says
  std::vector<std::string> notes;            // worth knowing, nothing wrong
};
// Reads the state (if any) and works out every warning.
Result<Status> read_status(const std::string& pin_dir);
nlohmann::json status_json(const Status& status);
std::string status_text(const Status& status);

}  // namespace xt
