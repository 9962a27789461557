// SPDX-License-Identifier: MIT
#include "rules_file.h"

#include "blocklist_file.h"
#include "files.h"
#include "ports.h"

#include <openssl/evp.h>

#include <toml++/toml.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

namespace xt {
namespace {

// A value of the key's own kind, for the message that it must be a string.
std::string example_of(std::string_view key) {
  static const std::map<std::string_view, std::string_view> examples = {
      {"cidr", "198.18.0.0/15"},       {"action", "deny"},           {"proto", "udp"},
      {"rate", "100/s"},               {"bandwidth", "10Mbit/s"},    {"new_rate", "100/s"},
      {"verify", "tcp"},               {"verify_rate", "1000/s"},    {"remember", "1d"},
      {"total", "100000/s"},           {"total_bandwidth", "1Gbit/s"}, {"over", "redirect:scrub0"},
      {"over_reasons", "over_limit"},  {"ban_after", "30s"},         {"ban_for", "1h"},
      {"scope", "fleet"}};
  const auto it = examples.find(key);
  return it == examples.end() ? "" : ", e.g. \"" + std::string(it->second) + "\"";
}

std::unexpected<Error> at(const std::string& path, int line, const std::string& why) {
  return file_error(path, line, why);
}

int line_of(const toml::node& node) { return static_cast<int>(node.source().begin.line); }

Result<FileRule> read_rule(const std::string& path, const toml::table& t) {
  FileRule out;
  out.line = line_of(t);
  static const std::set<std::string> known = {"cidr",   "proto", "port", "syn", "action",      "rate",     "burst",   "bandwidth",
                                              "burst_bytes", "per", "new_rate", "verify", "verify_rate",
                                              "remember", "dry_run", "total", "total_bandwidth", "over", "over_reasons",
                                              "ban_after", "ban_for", "scope"};
  for (const auto& [key, node] : t)
    if (!known.contains(std::string(key.str())))
      return at(path, line_of(node), "unknown key '" + std::string(key.str()) +
                                         "' (cidr, proto, port, syn, action, rate, burst, bandwidth, burst_bytes, per, new_rate, "
                                         "verify, verify_rate, remember, dry_run, total, total_bandwidth, over, over_reasons, ban_after, ban_for, scope)");
  // Each key's value as the words `rule add` takes: TOML's types first.
  auto string_of = [&](const char* key, std::optional<std::string>& word) -> Result<void> {
    const toml::node* n = t.get(key);
    if (!n) return {};
    if (!n->is_string()) return at(path, line_of(*n), std::string(key) + " must be a string" + example_of(key));
    word = n->as_string()->get();
    return {};
  };
  auto integer_of = [&](const char* key, std::optional<std::string>& word) -> Result<void> {
    const toml::node* n = t.get(key);
    if (!n) return {};
    if (!n->is_integer() || n->as_integer()->get() < 0)
      return at(path, line_of(*n), std::string(key) + " must be a whole number");
    word = std::to_string(n->as_integer()->get());
    return {};
  };
  std::optional<std::string> cidr;
  if (auto ok = string_of("cidr", cidr); !ok) return std::unexpected(ok.error());
  if (!cidr) return at(path, out.line, "a rule needs cidr = \"PREFIX\"");
  auto parsed_cidr = parse_cidr(*cidr);
  if (!parsed_cidr) return at(path, line_of(*t.get("cidr")), parsed_cidr.error().message);

  // The windows' keys take one value or an array of them (several
  // windows): rate = "100/s", rate = ["100/min", "1000/day"].
  auto each_of = [&](const char* key, bool integer, std::vector<std::string>& words) -> Result<void> {
    const toml::node* n = t.get(key);
    if (!n) return {};
    std::vector<const toml::node*> values;
    if (const toml::array* a = n->as_array()) {
      for (const toml::node& v : *a) values.push_back(&v);
      if (values.empty()) return at(path, line_of(*n), std::string(key) + " is an empty array");
    } else {
      values.push_back(n);
    }
    for (const toml::node* v : values) {
      std::optional<std::string> word;
      if (integer && (!v->is_integer() || v->as_integer()->get() < 0))
        return at(path, line_of(*n), std::string(key) + " must be a whole number, or an array of them");
      if (!integer && !v->is_string())
        return at(path, line_of(*n), std::string(key) + " must be a string" + example_of(key) + ", or an array of them");
      words.push_back(integer ? std::to_string(v->as_integer()->get()) : v->as_string()->get());
    }
    return {};
  };
  RuleWords words;
  for (auto [key, word] : {std::pair{"action", &words.action}, std::pair{"proto", &words.proto},
                           std::pair{"new_rate", &words.new_rate}, std::pair{"verify", &words.verify},
                           std::pair{"verify_rate", &words.verify_rate}, std::pair{"remember", &words.remember},
                           std::pair{"total", &words.total}, std::pair{"total_bandwidth", &words.total_bandwidth},
                           std::pair{"over", &words.over}, std::pair{"over_reasons", &words.over_reasons},
                           std::pair{"ban_after", &words.ban_after}, std::pair{"ban_for", &words.ban_for},
                           std::pair{"scope", &words.scope}})
    if (auto ok = string_of(key, *word); !ok) return std::unexpected(ok.error());
  if (auto ok = integer_of("per", words.per); !ok) return std::unexpected(ok.error());
  for (auto [key, integer, list] : {std::tuple{"rate", false, &words.rate}, std::tuple{"bandwidth", false, &words.bandwidth},
                                    std::tuple{"burst", true, &words.burst},
                                    std::tuple{"burst_bytes", true, &words.burst_bytes}})
    if (auto ok = each_of(key, integer, *list); !ok) return std::unexpected(ok.error());
  for (auto [key, flag] : {std::pair{"dry_run", &words.dry_run}, std::pair{"syn", &words.syn}})
    if (const toml::node* n = t.get(key)) {
      if (!n->is_boolean()) return at(path, line_of(*n), std::string(key) + " must be true or false");
      *flag = n->as_boolean()->get();
    }
  // A port is a number or a range in a string: port = 53, port = "1024-65535".
  if (const toml::node* n = t.get("port")) {
    if (n->is_integer() && n->as_integer()->get() >= 0)
      words.port = std::to_string(n->as_integer()->get());
    else if (n->is_string())
      words.port = n->as_string()->get();
    else
      return at(path, line_of(*n), "port must be a number or a range in a string, e.g. 53 or \"1024-65535\"");
  }
  // The same builder as the command line's: the same parsers, the same
  // limits, messages placed at the key's line.
  const WordsContext context{[](std::string_view key) { return std::string(key); },
                             [&](std::string_view key) {
                               const toml::node* n = t.get(key);
                               return path + ":" + std::to_string(n ? line_of(*n) : out.line) + ": ";
                             }};
  auto spec = build_spec(*parsed_cidr, words, context);
  if (!spec) return std::unexpected(spec.error());
  out.spec = *spec;
  return out;
}

}  // namespace

std::unexpected<Error> file_error(const std::string& path, int line, const std::string& why) {
  return usage_error(path + ":" + std::to_string(line) + ": " + why);
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr) != 1) return "";
  std::string hex;
  char two[3];
  for (unsigned int i = 0; i < len; i++) {
    std::snprintf(two, sizeof(two), "%02x", digest[i]);
    hex += two;
  }
  return hex;
}

// A [[blocklist]] table: its name and its file, placed beside the rules
// file; the list itself is read by load_rules_file.
Result<FileBlocklist> read_blocklist_table(const std::string& path, const toml::table& t) {
  FileBlocklist out;
  out.line = line_of(t);
  for (const auto& [key, node] : t)
    if (key.str() != "name" && key.str() != "file")
      return at(path, line_of(node), "unknown key '" + std::string(key.str()) + "' in a blocklist (name, file)");
  const auto name = t["name"].value<std::string>();
  const auto file = t["file"].value<std::string>();
  if (!name) return at(path, out.line, "a blocklist needs name = \"NAME\"");
  if (!file || file->empty()) return at(path, out.line, "a blocklist needs file = \"PATH\" (its prefixes, as blocklist load reads them)");
  if (auto ok = check_blocklist_name(*name); !ok) return at(path, out.line, ok.error().message);
  out.name = *name;
  const std::filesystem::path where(*file);
  out.file = where.is_absolute() ? where.string()
                                 : (std::filesystem::path(path).parent_path() / where).lexically_normal().string();
  return out;
}

// The [sources] table: the source table's settings.
Result<TableSettings> read_sources_table(const std::string& path, const toml::table& t) {
  TableSettings out;
  for (const auto& [key, node] : t) {
    const int line = line_of(node);
    if (key.str() == "max_sources") {
      const auto n = node.is_integer() ? node.value<int64_t>() : std::nullopt;
      if (!n || *n < 0) return at(path, line, "max_sources must be a whole number of sources");
      auto size = check_max_sources("max_sources", static_cast<uint64_t>(*n));
      if (!size) return at(path, line, size.error().message);
      out.max_sources = *size;
    } else if (key.str() == "idle") {
      const auto text = node.value<std::string>();
      if (!text) return at(path, line, "idle must be a duration in quotes: idle = \"60s\"");
      auto secs = parse_idle("idle", *text);
      if (!secs) return at(path, line, secs.error().message);
      out.idle_seconds = *secs;
    } else {
      return at(path, line, "unknown key '" + std::string(key.str()) + "' in [sources] (max_sources, idle)");
    }
  }
  return out;
}

Result<RulesFile> parse_rules_file(std::string_view text, const std::string& path) {
  RulesFile file;
  file.path = path;
  file.sha256 = sha256_hex(text);
  toml::table doc;
  try {
    doc = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return at(path, static_cast<int>(e.source().begin.line), std::string(e.description()));
  }
  for (const auto& [key, node] : doc)
    if (key.str() != "rule" && key.str() != "blocklist" && key.str() != "sources")
      return at(path, line_of(node), "unknown key '" + std::string(key.str()) +
                                         "' (rules are [[rule]] tables, lists [[blocklist]] tables, the source "
                                         "table's settings a [sources] table)");
  if (const toml::node* sources = doc.get("sources")) {
    const toml::table* t = sources->as_table();
    if (!t) return at(path, line_of(*sources), "sources must be one table: [sources]");
    auto table = read_sources_table(path, *t);
    if (!table) return std::unexpected(table.error());
    file.table = *table;
  }
  if (const toml::node* rules = doc.get("rule")) {
    const toml::array* arr = rules->as_array();
    if (!arr) return at(path, line_of(*rules), "rule must be an array of tables: [[rule]]");
    std::map<std::string, int> seen;
    for (const toml::node& n : *arr) {
      const toml::table* t = n.as_table();
      if (!t) return at(path, line_of(n), "each rule must be a table: [[rule]]");
      auto rule = read_rule(path, *t);
      if (!rule) return std::unexpected(rule.error());
      const std::string cidr = rule_name(rule->spec.cidr, rule->spec.match);
      if (auto [it, fresh] = seen.emplace(cidr, rule->line); !fresh)
        return at(path, rule->line, cidr + " already has a rule, at line " + std::to_string(it->second));
      if (file.rules.size() == XT_MAX_RULES)
        return at(path, rule->line, "more than " + std::to_string(XT_MAX_RULES) + " rules, the most the program holds");
      file.rules.push_back(*rule);
    }
  }
  if (const toml::node* lists = doc.get("blocklist")) {
    const toml::array* arr = lists->as_array();
    if (!arr) return at(path, line_of(*lists), "blocklist must be an array of tables: [[blocklist]]");
    std::map<std::string, int> seen;
    for (const toml::node& n : *arr) {
      const toml::table* t = n.as_table();
      if (!t) return at(path, line_of(n), "each blocklist must be a table: [[blocklist]]");
      auto list = read_blocklist_table(path, *t);
      if (!list) return std::unexpected(list.error());
      if (auto [it, fresh] = seen.emplace(list->name, list->line); !fresh)
        return at(path, list->line, "blocklist " + list->name + " is named already, at line " + std::to_string(it->second));
      if (file.blocklists.size() == XT_MAX_BLOCKLISTS)
        return at(path, list->line, "more than " + std::to_string(XT_MAX_BLOCKLISTS) + " blocklists, the most the program holds");
      file.blocklists.push_back(*list);
    }
  }
  return file;
}

Result<RulesFile> load_rules_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return usage_error(path + ": no such config file");
  // Read once: the hash recorded as live is that of the bytes applied.
  auto bytes = read_file(path);
  if (!bytes) return system_error("cannot read " + path, errno);
  const std::string absolute = std::filesystem::absolute(path, ec).lexically_normal().string();
  // The path applied is recorded whole in the pinned state (xt_meta).
  if (absolute.size() >= sizeof(xt_meta::config_path))
    return usage_error(path + ": a config file's path may be at most " +
                       std::to_string(sizeof(xt_meta::config_path) - 1) + " bytes (this one is " +
                       std::to_string(absolute.size()) + ")");
  auto file = parse_rules_file(*bytes, absolute);
  if (!file) return file;
  // The lists too: a bad line in one is LIST:LINE, and nothing changes.
  for (FileBlocklist& list : file->blocklists) {
    if (!std::filesystem::is_regular_file(list.file, ec))
      return at(absolute, list.line, "blocklist " + list.name + ": no such file " + list.file);
    auto entries = read_blocklist(list.file);
    if (!entries) return std::unexpected(entries.error());
    // What `blocklist load` refuses (every address of a family), refused
    // here too, at the list's line, before anything is made or changed.
    if (auto ok = check_blocklist(list.name, *entries); !ok) return at(absolute, list.line, ok.error().message);
    list.entries = std::move(*entries);
  }
  // And the lists together, which the data path holds as one union: each
  // fitting on its own, they were refused only as they loaded, the state
  // made already (apply) or a snapshot restored into it (serve).
  if (file->blocklists.size() > 1) {
    std::vector<Cidr> all;
    for (const FileBlocklist& list : file->blocklists) all.insert(all.end(), list.entries->begin(), list.entries->end());
    if (auto ok = check_blocklist_size("the union of the file's blocklists", all); !ok)
      return at(absolute, file->blocklists.back().line, ok.error().message);
  }
  return file;
}

Result<void> compile_rules(RulesFile& file, uint32_t hz, uint32_t cpus) {
  // The file's port ranges together must nest or stay apart, as the live
  // ones must: refused here, at the rule's line, not half-way through apply.
  PortRangeTable ranges = empty_port_ranges();
  for (const FileRule& r : file.rules)
    if (auto ok = add_match_range(ranges, r.spec.match); !ok) return file_error(file.path, r.line, ok.error().message);
  // Combinations (--per too long, --burst without --rate, ...) and limits
  // too fine to meter exactly; each rule compiled once, and kept.
  for (FileRule& r : file.rules) {
    auto rule = compile_rule(r.spec, hz, cpus);
    if (!rule) return file_error(file.path, r.line, rule.error().message);
    r.compiled = *rule;
  }
  return {};
}

}  // namespace xt
