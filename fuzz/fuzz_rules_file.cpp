// SPDX-License-Identifier: MIT
// Rules files (userspace/lib/rules_file.h), any bytes: a file is either
// accepted whole, every rule compiling and no CIDR twice, or refused with
// "FILE:LINE: why". Never a crash, never half a file. What is accepted reads
// back from the canonical options the pinned state keeps to the same rule.
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "blocklist_file.h"
#include "rules_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto file = xt::parse_rules_file(text, "fuzz.toml");
  if (file && !xt::compile_rules(*file, 250)) file = std::unexpected(xt::compile_rules(*file, 250).error());
  if (!file) {
    if (!file.error().message.starts_with("fuzz.toml:")) std::abort();
    return 0;
  }
  if (file->sha256.size() != 64 || file->rules.size() > XT_MAX_RULES) std::abort();
  // Blocklists: named well, once each, their files unread here.
  std::set<std::string> names;
  if (file->blocklists.size() > XT_MAX_BLOCKLISTS) std::abort();
  for (const auto& b : file->blocklists)
    if (!xt::check_blocklist_name(b.name) || !names.insert(b.name).second || b.file.empty() || b.entries || b.line <= 0)
      std::abort();
  std::set<std::string> cidrs;
  for (const auto& r : file->rules) {
    if (!xt::compile_rule(r.spec, 250) || r.line <= 0) std::abort();
    // A CIDR may have several rules, one a match (rules_file.cpp keys by the name).
    if (!cidrs.insert(xt::rule_name(r.spec.cidr, r.spec.match)).second) std::abort();
    auto again = xt::spec_from_options_text(r.spec.cidr, xt::options_text(r.spec));
    if (!again || !xt::same_rule(*again, r.spec)) std::abort();
  }
  return 0;
}
