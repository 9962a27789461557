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

// What applying a file would do to the live rules and blocklists.
struct RulesDiff {
  struct Change {
    RuleSpec spec;                  // the new rule (add, change); the live one (remove)
    xt_rule compiled{};             // the new rule compiled (add, change)
    std::optional<RuleEntry> live;  // the live rule (change, remove)
  };
  std::vector<Change> add, change, remove;
  size_t unchanged = 0;
  // The blocklists the file names ([[blocklist]]): loaded where new or where
  // their prefixes differ from the live list's, deleted where the file no
  // longer names them. Without the file's entries (a file parsed but its
  // lists not read) only names are compared.
  struct ListChange {
    std::string name, file;                // file: the file's (add, change), "" (remove)
    size_t entries = 0;                    // the file's prefixes (add, change)
    std::optional<uint32_t> live_entries;  // the live list's (change, remove)
    size_t index = 0;                      // in RulesFile::blocklists (add, change)
  };
  std::vector<ListChange> lists_add, lists_change, lists_remove;
  size_t lists_unchanged = 0;
  size_t lists_fleet = 0;  // live lists the file does not name, told by the fleet: kept
  bool empty() const {
    return add.empty() && change.empty() && remove.empty() && lists_add.empty() && lists_change.empty() &&
           lists_remove.empty();
  }
};
Result<RulesDiff> diff_rules(const State& state, const RulesFile& file);

// Whether putting `want` (compiled: `compiled`) in would leave the live rule
// `live` as it is (the same options, the kernel's rule the one they compile
// to, its redirect still pointing where its name is): a replacement then
// would only refill the rule's new-source budget and total, so apply and
// rule add leave it alone.
bool rule_unchanged(const State& state, const RuleEntry& live, const RuleSpec& want, const xt_rule& compiled);
// Every rule of the file added: what applying it to no state at all does.
RulesDiff diff_from_nothing(const RulesFile& file);
std::string diff_text(const RulesDiff& diff);
nlohmann::json diff_json(const RulesDiff& diff);

// Applies a diff: rules added and changed first, then the blocklists, rules
// removed last (first, where a rule going is in the way of one coming: its
// port range crosses the new one's, or the new one does not fit beside it,
// past the table's 4096 rules or four nested ranges); if the kernel refuses any step, the steps already taken are
// undone (a removed rule's buckets are gone, so removals come last; a list
// gets its old prefixes back). Records the file as live.
Result<void> apply_rules(State& state, const RulesFile& file, const RulesDiff& diff);

}  // namespace xt
