// SPDX-License-Identifier: MIT
// The rules as a TOML file (toml++): `xthrottle apply FILE` makes the live
// rules equal to it, `serve --config FILE` does at start and on SIGHUP.
//
//   [[rule]]
//   cidr = "0.0.0.0/0"       # required
//   proto = "udp"            # the match: proto, port (53 or "1024-65535"), syn = true
//   port = 53                #   (a rule is its cidr and its match)
//   action = "limit"         # limit (default), allow or deny
//   rate = "1000/s"          # the options of `rule add`, same spellings;
//   burst = 1000             #   several windows as arrays, bursts in the same
//   bandwidth = "10Mbit/s"   #   order: rate = ["100/min", "1000/day"]
//   burst_bytes = 312500
//   per = 32
//   new_rate = "1000/s"
//   dry_run = false
//
//   [[blocklist]]
//   name = "spamhaus"        # a named deny list, as `blocklist load NAME FILE`
//   file = "drop.txt"        #   (relative to the rules file's directory)
//
//   [sources]                # the source table, as attach --max-sources and
//   max_sources = 1048576    #   --idle: used when the state is created, and
//   idle = "60s"             #   an existing state must already have them
//
// A file with any error changes nothing; the error says FILE:LINE and why.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"
#include "rules.h"
#include "table.h"

namespace xt {

struct FileRule {
  RuleSpec spec;
  xt_rule compiled{};  // compile_rules(): for the state's kernel tick rate
  int line = 0;
};

struct FileBlocklist {
  std::string name;
  std::string file;  // as resolved: relative to the rules file's directory
  // The list's prefixes, read by load_rules_file; parse_rules_file reads no
  // other file and leaves them unread, and a diff then compares names only.
  std::optional<std::vector<Cidr>> entries;
  int line = 0;
};

struct RulesFile {
  std::string path;    // absolute
  std::string sha256;  // of the file's bytes, hex (the lists' files not included)
  std::vector<FileRule> rules;
  std::vector<FileBlocklist> blocklists;
  TableSettings table;  // [sources]: what it does not say is unset
};

// Reads and checks a rules file: syntax, keys, values, duplicates, and the
// blocklists it names (each read and parsed: an error is LIST:LINE). Nothing
// here depends on the state, so a bad file is refused before anything is
// touched.
Result<RulesFile> load_rules_file(const std::string& path);
// The same over a file's text (path names it in messages and places the
// blocklists' files), without reading the lists: what the fuzzer runs.
Result<RulesFile> parse_rules_file(std::string_view text, const std::string& path);
// Compiles every rule for a kernel of hz ticks a second (the combinations of
// options, and limits too fine to meter), FILE:LINE on the first that fails;
// cpus possible CPUs share each rule's --verify-rate.
Result<void> compile_rules(RulesFile& file, uint32_t hz, uint32_t cpus = 1);

// "FILE:LINE: why", the shape of every rules-file error.
std::unexpected<Error> file_error(const std::string& path, int line, const std::string& why);

// SHA-256 of bytes, hex.
std::string sha256_hex(std::string_view bytes);

}  // namespace xt
