// SPDX-License-Identifier: MIT
#include "config_file.h"

#include <openssl/evp.h>

#include <toml++/toml.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace xt {
namespace {

std::unexpected<Error> at(const std::string& path, int line, const std::string& why) {
  return config_error(path, line, why);
}

int line_of(const toml::node& node) { return static_cast<int>(node.source().begin.line); }

Result<ConfigRule> read_rule(const std::string& path, const toml::table& t, uint32_t hz) {
  ConfigRule out;
  out.line = line_of(t);
  static const std::set<std::string> known = {"cidr",        "action", "rate",     "burst",  "bandwidth",
                                              "burst_bytes", "per",    "new_rate", "dry_run"};
  for (const auto& [key, node] : t)
    if (!known.contains(std::string(key.str())))
      return at(path, line_of(node), "unknown key '" + std::string(key.str()) +
                                         "' (cidr, action, rate, burst, bandwidth, burst_bytes, per, new_rate, "
                                         "dry_run)");

  auto string_of = [&](const char* key) -> Result<std::optional<std::string>> {
    const toml::node* n = t.get(key);
    if (!n) return std::optional<std::string>{};
    if (!n->is_string()) return at(path, line_of(*n), std::string(key) + " must be a string, e.g. \"100/s\"");
    return std::optional<std::string>(n->as_string()->get());
  };
  auto integer_of = [&](const char* key) -> Result<std::optional<std::string>> {
    const toml::node* n = t.get(key);
    if (!n) return std::optional<std::string>{};
    if (!n->is_integer() || n->as_integer()->get() < 0)
      return at(path, line_of(*n), std::string(key) + " must be a whole number");
    return std::optional<std::string>(std::to_string(n->as_integer()->get()));
  };
  // Every value goes through the same parsers as the command line, so the
  // messages and the limits are the same.
  auto check = [&](const char* key, const auto& parsed) -> Result<void> {
    if (parsed) return {};
    return at(path, line_of(*t.get(key)), parsed.error().message);
  };

  auto cidr = string_of("cidr");
  if (!cidr) return std::unexpected(cidr.error());
  if (!*cidr) return at(path, out.line, "a rule needs cidr = \"PREFIX\"");
  auto parsed_cidr = parse_cidr(**cidr);
  if (auto ok = check("cidr", parsed_cidr); !ok) return std::unexpected(ok.error());
  out.spec.cidr = *parsed_cidr;

  auto action = string_of("action");
  if (!action) return std::unexpected(action.error());
  if (*action) {
    if (**action == "allow")
      out.spec.action = XT_ACT_ALLOW;
    else if (**action == "deny")
      out.spec.action = XT_ACT_DENY;
    else if (**action != "limit")
      return at(path, line_of(*t.get("action")), "action must be \"limit\", \"allow\" or \"deny\", not \"" +
                                                      **action + "\"");
  }
  if (const toml::node* n = t.get("dry_run")) {
    if (!n->is_boolean()) return at(path, line_of(*n), "dry_run must be true or false");
    out.spec.dry_run = n->as_boolean()->get();
  }

  for (const char* key : {"rate", "new_rate"}) {
    auto text = string_of(key);
    if (!text) return std::unexpected(text.error());
    if (!*text) continue;
    auto rate = parse_rate(**text);
    if (auto ok = check(key, rate); !ok) return std::unexpected(ok.error());
    (std::string(key) == "rate" ? out.spec.rate : out.spec.new_rate) = *rate;
  }
  auto bandwidth = string_of("bandwidth");
  if (!bandwidth) return std::unexpected(bandwidth.error());
  if (*bandwidth) {
    auto bw = parse_bandwidth(**bandwidth);
    if (auto ok = check("bandwidth", bw); !ok) return std::unexpected(ok.error());
    out.spec.bandwidth = *bw;
  }
  for (const char* key : {"burst", "burst_bytes", "per"}) {
    auto text = integer_of(key);
    if (!text) return std::unexpected(text.error());
    if (!*text) continue;
    const std::string k = key;
    if (k == "per") {
      auto per = parse_prefix_len("per", **text);
      if (auto ok = check(key, per); !ok) return std::unexpected(ok.error());
      out.spec.per = *per;
    } else {
      auto n = parse_positive(k, **text);
      if (auto ok = check(key, n); !ok) return std::unexpected(ok.error());
      (k == "burst" ? out.spec.burst : out.spec.burst_bytes) = *n;
    }
  }
  // Combinations (--per too long, --burst without --rate, ...) and limits
  // too fine to meter exactly.
  if (auto rule = compile_rule(out.spec, hz); !rule) return at(path, out.line, rule.error().message);
  return out;
}

}  // namespace

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return bytes;
}

std::unexpected<Error> config_error(const std::string& path, int line, const std::string& why) {
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

Result<ConfigFile> parse_config(std::string_view text, const std::string& path, uint32_t hz) {
  ConfigFile file;
  file.path = path;
  file.sha256 = sha256_hex(text);
  toml::table doc;
  try {
    doc = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return at(path, static_cast<int>(e.source().begin.line), std::string(e.description()));
  }
  for (const auto& [key, node] : doc)
    if (key.str() != "rule")
      return at(path, line_of(node), "unknown key '" + std::string(key.str()) + "' (rules are [[rule]] tables)");
  if (const toml::node* rules = doc.get("rule")) {
    const toml::array* arr = rules->as_array();
    if (!arr) return at(path, line_of(*rules), "rule must be an array of tables: [[rule]]");
    std::map<std::string, int> seen;
    for (const toml::node& n : *arr) {
      const toml::table* t = n.as_table();
      if (!t) return at(path, line_of(n), "each rule must be a table: [[rule]]");
      auto rule = read_rule(path, *t, hz);
      if (!rule) return std::unexpected(rule.error());
      const std::string cidr = format_cidr(rule->spec.cidr);
      if (auto [it, fresh] = seen.emplace(cidr, rule->line); !fresh)
        return at(path, rule->line, cidr + " already has a rule, at line " + std::to_string(it->second));
      if (file.rules.size() == XT_MAX_RULES)
        return at(path, rule->line, "more than " + std::to_string(XT_MAX_RULES) + " rules, the most the program holds");
      file.rules.push_back(*rule);
    }
  }
  return file;
}

Result<ConfigFile> load_config(const std::string& path, uint32_t hz) {
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
  return parse_config(*bytes, absolute, hz);
}

}  // namespace xt
