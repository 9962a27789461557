// SPDX-License-Identifier: MIT
// xthrottle blocklist load NAME FILE
// xthrottle blocklist del NAME
// xthrottle blocklist list [--json]
// xthrottle blocklist test ADDRESS
#include <chrono>
#include <ctime>
#include <algorithm>
#include <iostream>
#include <memory>

#include "blocklist_file.h"
#include "cli.h"
#include "format.h"

namespace xt::cli {
namespace {

int run_load(const Globals& g, const std::string& name, const std::string& path) {
  const auto start = std::chrono::steady_clock::now();
  // Read and checked whole before anything changes: a bad line is FILE:LINE, exit 2.
  auto entries = read_blocklist(path);
  if (!entries) return fail(entries.error());
  if (auto ok = check_blocklist(name, *entries); !ok) return fail(ok.error());
  auto locked = lock_pins(g.pin_dir);
  if (!locked) return fail(locked.error());
  auto hz = tick_rate_of(*locked);
  if (!hz) return fail(hz.error());
  if (auto ok = create_if_missing(*locked, g.pin_dir, *hz); !ok) return fail(ok.error());
  if (auto ok = locked->state->load_blocklist(name, *entries); !ok) return fail(ok.error());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "loaded blocklist " << name << ": " << entries->size() << " entries from " << path << " in "
            << fmt("%.2f", seconds) << " s\n";
  return 0;
}

int run_del(const Globals& g, const std::string& name) {
  auto locked = open_locked(g.pin_dir);
  if (!locked) return fail(locked.error());
  if (auto ok = locked->state->del_blocklist(name); !ok) return fail(ok.error());
  std::cout << "deleted blocklist " << name << "\n";
  return 0;
}

int run_list(const Globals& g, bool json) {
  auto state = State::open(g.pin_dir);
  if (!state) return fail(state.error());
  auto lists = state->blocklists();
  if (!lists) return fail(lists.error());
  nlohmann::json j = nlohmann::json::array();
  std::string text = lists->empty() ? "no blocklists\n" : fmt("%-32s %12s  %s\n", "NAME", "ENTRIES", "LOADED");
  for (const auto& b : *lists) {
    char when[32] = "";
    const std::time_t t = static_cast<std::time_t>(b.list.loaded_unix);
    std::tm tm{};
    if (gmtime_r(&t, &tm)) std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    const bool fleet = b.list.used == XT_BLOCKLIST_BY_FLEET;
    j.push_back({{"name", b.list.name}, {"entries", b.list.entries}, {"loaded", when},
                 {"loaded_unix", b.list.loaded_unix}, {"fleet", fleet}});
    text += fmt("%-32s %12u  %s%s\n", b.list.name, b.list.entries, when, fleet ? "  (the fleet's)" : "");
  }
  emit(json, j, text);
  return 0;
}

int run_test(const Globals& g, const std::string& text) {
  auto addr = parse_source_cidr(text);
  if (!addr) return fail(addr.error());
  if (addr->len != family_bits(addr->family))
    return fail(usage_error("blocklist test takes an address, not a prefix: " + text).error());
  auto state = State::open(g.pin_dir);
  if (!state) return fail(state.error());
  auto listed = state->blocklisted(*addr);
  if (!listed) return fail(listed.error());
  const std::string who = format_addr(addr->family, addr->addr.data());
  if (!*listed) {
    std::cout << who << " is not blocklisted\n";
    return 3;
  }
  // An --allow rule beats the lists: the data path looks at them only for
  // a packet whose rule does not allow it. The address's packets get the
  // rule of the longest prefix that holds it among those whose match fits
  // them; one without a match takes what no other fits.
  auto rules = state->rules();
  if (!rules) return fail(rules.error());
  const RuleEntry* plain = nullptr;  // the longest holding prefix without a match
  std::vector<const RuleEntry*> allowing;
  for (const RuleEntry& e : *rules) {
    if (!prefix_holds(e.cidr, *addr)) continue;
    if (e.spec.match == Match{} && (!plain || e.cidr.len > plain->cidr.len)) plain = &e;
    if (e.spec.action == XT_ACT_ALLOW) allowing.push_back(&e);
  }
  // An allow rule under a longer rule without a match takes none of its
  // packets: that one takes them all.
  std::erase_if(allowing, [&](const RuleEntry* e) { return plain && plain->cidr.len > e->cidr.len; });
  const bool all_allowed =
      plain && plain->spec.action == XT_ACT_ALLOW && std::ranges::none_of(*rules, [&](const RuleEntry& e) {
        return prefix_holds(e.cidr, *addr) && e.spec.action != XT_ACT_ALLOW && e.cidr.len >= plain->cidr.len;
      });
  if (all_allowed) {
    std::cout << who << " is on a blocklist, but rule " << rule_name(plain->cidr, plain->spec.match)
              << " (--allow) lets every packet of it through: not dropped\n";
    return 3;
  }
  std::cout << who << " is blocklisted";
  for (size_t i = 0; i < allowing.size(); i++)
    std::cout << (i ? ", " : ", but for the packets of rule ") << rule_name(allowing[i]->cidr, allowing[i]->spec.match);
  std::cout << (allowing.empty() ? "\n" : " (--allow), which pass\n");
  return 0;
}

}  // namespace

void add_blocklist_commands(CLI::App& app, const Globals& g, int& rc) {
  auto* bl = app.add_subcommand("blocklist", "Named lists of prefixes dropped outright, whatever their rule (not "
                                             "an --allow rule's)")
                 ->require_subcommand(1);
  auto name = std::make_shared<std::string>(), file = std::make_shared<std::string>();
  auto* load = bl->add_subcommand("load", "Load a list from a file, replacing the list of that name at once");
  load->add_option("NAME", *name, "The list's name: letters, digits, '-', '_', '.'")->required();
  load->add_option("FILE", *file,
                   "One address, CIDR or IPv4 range a line, '#' or ';' comments; ipset save output and Spamhaus "
                   "DROP (text or JSON) read as they are")
      ->required();
  load->callback([&g, &rc, name, file] { rc = run_load(g, *name, *file); });
  auto del_name = std::make_shared<std::string>();
  auto* del = bl->add_subcommand("del", "Delete a list");
  del->add_option("NAME", *del_name, "The list's name")->required();
  del->callback([&g, &rc, del_name] { rc = run_del(g, *del_name); });
  auto json = std::make_shared<bool>(false);
  auto* list = bl->add_subcommand("list", "The lists loaded, with their sizes");
  list->add_flag("--json", *json, "JSON output");
  list->callback([&g, &rc, json] { rc = run_list(g, *json); });
  auto addr = std::make_shared<std::string>();
  auto* test = bl->add_subcommand("test", "Whether the data path drops an address as blocklisted (exit 0), or not "
                                          "(exit 3: on no list, or an --allow rule lets all its packets through)");
  test->add_option("ADDRESS", *addr, "An IPv4 or IPv6 address")->required();
  test->callback([&g, &rc, addr] { rc = run_test(g, *addr); });
}

}  // namespace xt::cli
