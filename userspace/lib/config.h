// SPDX-License-Identifier: MIT
// The rules as a TOML file (toml++): `xthrottle apply FILE` makes the live
// rules equal to it, `serve --config FILE` does at start and on SIGHUP.
//
//   [[rule]]
//   cidr = "0.0.0.0/0"       # required
//   action = "limit"         # limit (default), allow or deny
//   rate = "1000/s"          # the options of `rule add`, same spellings
//   burst = 1000
//   bandwidth = "10Mbit/s"
//   burst_bytes = 150000
//   per = 32
//   new_rate = "1000/s"
//   dry_run = false
//
// A file with any error changes nothing; the error says FILE:LINE and why.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "error.h"
#include "policy.h"
#include "state.h"

namespace xt {

struct ConfigRule {
  RuleSpec spec;
  int line = 0;
};

struct ConfigFile {
  std::string path;    // absolute
  std::string sha256;  // of the file's bytes, hex
  std::vector<ConfigRule> rules;
};

// Reads and checks a config file (syntax, keys, values; compiling the rules
// for hz ticks a second, so limits that cannot be metered are caught too).
Result<ConfigFile> load_config(const std::string& path, uint32_t hz);

// What applying a file would do to the live rules.
struct ConfigDiff {
  struct Change {
    Cidr cidr;
    xt_rule rule;                // the compiled new rule (add, change)
    std::optional<xt_rule> old;  // the live rule (change, remove)
  };
  std::vector<Change> add, change, remove;
  size_t unchanged = 0;
  bool empty() const { return add.empty() && change.empty() && remove.empty(); }
};
Result<ConfigDiff> diff_config(const State& state, const ConfigFile& file);
std::string diff_text(const ConfigDiff& diff);
nlohmann::json diff_json(const ConfigDiff& diff);

// Applies a diff: additions and changes first, removals last; if the kernel
// refuses any step, the steps already taken are undone (a removed rule's
// buckets are gone, so removals come last). Records the file as live.
Result<void> apply_config(State& state, const ConfigFile& file, const ConfigDiff& diff);

// SHA-256 of a file's bytes, hex; "" if it cannot be read.
std::string file_sha256(const std::string& path);

}  // namespace xt
