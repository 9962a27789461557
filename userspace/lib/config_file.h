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

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"
#include "policy.h"

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
// The same over a file's text (path is only for messages): what the fuzzer runs.
Result<ConfigFile> parse_config(std::string_view text, const std::string& path, uint32_t hz);

// "FILE:LINE: why", the shape of every config error.
std::unexpected<Error> config_error(const std::string& path, int line, const std::string& why);

// A file's bytes; nothing if it cannot be read.
std::optional<std::string> read_file(const std::string& path);

// SHA-256 of bytes, hex.
std::string sha256_hex(std::string_view bytes);

}  // namespace xt
