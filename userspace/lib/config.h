// SPDX-License-Identifier: MIT
// Applying a config file (config_file.h) to the live rules: the diff, and
// the steps that make the rules equal to the file.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <vector>

#include "config_file.h"
#include "error.h"
#include "state.h"

namespace xt {

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


}  // namespace xt
