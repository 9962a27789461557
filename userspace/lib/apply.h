// SPDX-License-Identifier: MIT
// Applying a rules file (rules_file.h) to the live rules: the diff, and the
// steps that make the rules equal to the file.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <vector>

#include "error.h"
#include "rules_file.h"
#include "state.h"

namespace xt {

// What applying a file would do to the live rules.
struct RulesDiff {
  struct Change {
    RuleSpec spec;                  // the new rule (add, change); the live one (remove)
    xt_rule compiled{};             // the new rule compiled (add, change)
    std::optional<RuleEntry> live;  // the live rule (change, remove)
  };
  std::vector<Change> add, change, remove;
  size_t unchanged = 0;
  bool empty() const { return add.empty() && change.empty() && remove.empty(); }
};
Result<RulesDiff> diff_rules(const State& state, const RulesFile& file);
// Every rule of the file added: what applying it to no state at all does.
RulesDiff diff_from_nothing(const RulesFile& file);
std::string diff_text(const RulesDiff& diff);
nlohmann::json diff_json(const RulesDiff& diff);

// Applies a diff: additions and changes first, removals last; if the kernel
// refuses any step, the steps already taken are undone (a removed rule's
// buckets are gone, so removals come last). Records the file as live.
Result<void> apply_rules(State& state, const RulesFile& file, const RulesDiff& diff);

}  // namespace xt
