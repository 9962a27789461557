// SPDX-License-Identifier: MIT
#include "config.h"

#include <openssl/evp.h>

#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "report.h"

namespace xt {
namespace {

// "FILE:LINE: why" — the shape of every config error.
std::unexpected<Error> at(const std::string& path, int line, const std::string& why) {
  return usage_error(path + ":" + std::to_string(line) + ": " + why);
}

int line_of(const toml::node& node) { return static_cast<int>(node.source().begin.line); }

// A rule's settings as the operator wrote them: equal means "unchanged".
bool same_settings(const xt_rule& a, const xt_rule& b) {
  return a.action == b.action && a.flags == b.flags && a.per_len == b.per_len && a.rate_count == b.rate_count &&
         a.rate_period_ns == b.rate_period_ns && a.burst == b.burst && a.bw_bits == b.bw_bits &&
         a.burst_bytes == b.burst_bytes && a.new_count == b.new_count && a.new_period_ns == b.new_period_ns &&
         a.new_burst == b.new_burst;
}

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

std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return "";
  char buf[65536];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    if (EVP_DigestUpdate(ctx.get(), buf, static_cast<size_t>(in.gcount())) != 1) return "";
    if (in.eof()) break;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1) return "";
  std::string hex;
  char two[3];
  for (unsigned int i = 0; i < len; i++) {
    std::snprintf(two, sizeof(two), "%02x", digest[i]);
    hex += two;
  }
  return hex;
}

Result<ConfigFile> load_config(const std::string& path, uint32_t hz) {
  ConfigFile file;
  std::error_code ec;
  file.path = std::filesystem::absolute(path, ec).lexically_normal().string();
  if (!std::filesystem::is_regular_file(path, ec)) return usage_error(path + ": no such config file");
  file.sha256 = file_sha256(path);
  if (file.sha256.empty()) return system_error("cannot read " + path, errno);

  toml::table doc;
  try {
    doc = toml::parse_file(path);
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
      file.rules.push_back(*rule);
    }
  }
  return file;
}

Result<ConfigDiff> diff_config(const State& state, const ConfigFile& file) {
  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  auto live = state.rules();
  if (!live) return std::unexpected(live.error());
  ConfigDiff diff;
  for (const ConfigRule& want : file.rules) {
    auto rule = compile_rule(want.spec, cfg->hz);
    if (!rule) return at(file.path, want.line, rule.error().message);
    auto now = std::ranges::find_if(*live, [&](const RuleEntry& e) { return e.cidr == want.spec.cidr; });
    if (now == live->end())
      diff.add.push_back({want.spec.cidr, *rule, std::nullopt});
    else if (!same_settings(now->rule, *rule))
      diff.change.push_back({want.spec.cidr, *rule, now->rule});
    else
      diff.unchanged++;
  }
  for (const RuleEntry& e : *live) {
    const bool wanted = std::ranges::any_of(file.rules, [&](const ConfigRule& r) { return r.spec.cidr == e.cidr; });
    if (!wanted) diff.remove.push_back({e.cidr, e.rule, e.rule});
  }
  return diff;
}

namespace {

std::string describe(const xt_rule& r) {
  std::string out = action_name(r.action);
  if (r.action == XT_ACT_LIMIT) out += " " + describe_limits(r) + ", per /" + std::to_string(r.per_len);
  if (r.flags & XT_RULE_DRY_RUN) out += " (dry-run)";
  return out;
}

}  // namespace

std::string diff_text(const ConfigDiff& diff) {
  std::string out;
  for (const auto& c : diff.add) out += "+ " + format_cidr(c.cidr) + " " + describe(c.rule) + "\n";
  for (const auto& c : diff.change)
    out += "~ " + format_cidr(c.cidr) + " " + describe(*c.old) + "\n    -> " + describe(c.rule) + "\n";
  for (const auto& c : diff.remove) out += "- " + format_cidr(c.cidr) + " " + describe(*c.old) + "\n";
  out += std::to_string(diff.add.size()) + " to add, " + std::to_string(diff.change.size()) + " to change, " +
         std::to_string(diff.remove.size()) + " to remove, " + std::to_string(diff.unchanged) + " unchanged\n";
  return out;
}

nlohmann::json diff_json(const ConfigDiff& diff) {
  auto list = [](const std::vector<ConfigDiff::Change>& changes, bool use_old) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : changes) {
      nlohmann::json j = rule_json(c.cidr, use_old ? *c.old : c.rule);
      if (!use_old && c.old) j["was"] = rule_json(c.cidr, *c.old);
      out.push_back(j);
    }
    return out;
  };
  return {{"add", list(diff.add, false)},
          {"change", list(diff.change, false)},
          {"remove", list(diff.remove, true)},
          {"unchanged", diff.unchanged}};
}

Result<void> apply_config(State& state, const ConfigFile& file, const ConfigDiff& diff) {
  std::vector<const ConfigDiff::Change*> done;
  auto undo = [&](const Error& why) -> Result<void> {
    for (auto it = done.rbegin(); it != done.rend(); ++it) {
      const auto* c = *it;
      // Best effort: an undo the kernel also refuses is reported below.
      if (c->old)
        (void)state.put_rule(c->cidr, *c->old);
      else
        (void)state.del_rule(c->cidr);
    }
    return std::unexpected(Error{why.kind, why.message + " (the rules changed before it were restored)"});
  };
  for (const auto* list : {&diff.add, &diff.change}) {
    for (const auto& c : *list) {
      if (auto ok = state.put_rule(c.cidr, c.rule); !ok) return undo(ok.error());
      done.push_back(&c);
    }
  }
  for (const auto& c : diff.remove) {
    if (auto ok = state.del_rule(c.cidr); !ok) return undo(ok.error());
    done.push_back(&c);  // undone by adding it back (its buckets are gone)
  }

  auto current = state.meta();
  if (!current) return std::unexpected(current.error());
  xt_meta meta = *current;
  std::snprintf(meta.config_path, sizeof(meta.config_path), "%s", file.path.c_str());
  for (size_t i = 0; i < sizeof(meta.config_sha256) && 2 * i + 1 < file.sha256.size(); i++)
    meta.config_sha256[i] = static_cast<uint8_t>(std::stoi(file.sha256.substr(2 * i, 2), nullptr, 16));
  meta.applied_at = static_cast<uint64_t>(time(nullptr));
  return state.set_meta(meta);
}

}  // namespace xt
