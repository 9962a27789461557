// SPDX-License-Identifier: MIT
// Config files (userspace/lib/config_file.h), any bytes: a file is either
// accepted whole, every rule compiling and no CIDR twice, or refused with
// "FILE:LINE: why". Never a crash, never half a file.
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "config_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto file = xt::parse_config(text, "fuzz.toml", 250);
  if (!file) {
    if (!file.error().message.starts_with("fuzz.toml:")) std::abort();
    return 0;
  }
  if (file->sha256.size() != 64 || file->rules.size() > XT_MAX_RULES) std::abort();
  std::set<std::string> cidrs;
  for (const auto& r : file->rules) {
    if (!xt::compile_rule(r.spec, 250) || r.line <= 0) std::abort();
    if (!cidrs.insert(xt::format_cidr(r.spec.cidr)).second) std::abort();
  }
  return 0;
}
