// SPDX-License-Identifier: MIT
// The xthrottle command line (README, "Usage"): CLI11 wiring.
// The commands live in commands.cpp (attach .. top) and operate.cpp (apply,
// events, serve). Every command is a fresh process on the pinned state.
//
// Exit codes: 0 done; 1 the system refused; 2 bad usage or input;
// 3 `status --check` found xthrottle not fully protecting; 4 protecting, but
// the live rules are not what the applied config file says.
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "common.h"
#include "object.h"
#include "state.h"

int main(int argc, char** argv) {
  using namespace xt::cli;
  CLI::App app{"xthrottle: per-source packet rate limiting at the driver (XDP)", "xthrottle"};
  app.require_subcommand(1);
  app.fallthrough();  // --pin-dir and -v work after the command too
  std::string pin_dir = xt::default_pin_dir();
  bool verbose = false;
  app.add_option("--pin-dir", pin_dir, "Where the state is pinned (bpffs)")
      ->envname("XTHROTTLE_PIN_DIR")
      ->capture_default_str();
  app.add_flag("-v,--verbose", verbose, "Show libbpf's and libxdp's own messages");
  app.set_version_flag("--version", "xthrottle " XT_VERSION " (ABI " + std::to_string(XT_ABI_VERSION) + ")");

  std::string ifname, mode = "auto", max_sources;
  bool replace = false;
  auto* attach = app.add_subcommand("attach", "Put the program on an interface, or upgrade the one there");
  attach->add_option("IFACE", ifname, "Interface")->required();
  attach->add_option("--mode", mode, "auto, native or skb")->capture_default_str();
  attach->add_option("--max-sources", max_sources,
                     "Sources the bucket table tracks (default " + std::to_string(XT_DEFAULT_MAX_SOURCES) +
                         "; set when the state is created)");
  attach->add_flag("--replace", replace,
                   "Swap in this build's program even if the same build runs there (one atomic step)");

  auto* detach = app.add_subcommand("detach", "Take the program off an interface (state stays)");
  detach->add_option("IFACE", ifname, "Interface")->required();

  bool json = false, check = false;
  auto* status = app.add_subcommand("status", "Where it runs and whether it protects");
  status->add_flag("--json", json, "JSON output");
  status->add_flag("--check", check,
                   "Exit 3 if anything leaves the host unprotected, 4 if the rules drifted from the config file");

  auto* rule = app.add_subcommand("rule", "Manage rules")->require_subcommand(1);
  RuleAddArgs add;
  auto* rule_add = rule->add_subcommand("add", "Add a rule, or replace the rule for the same CIDR in place");
  // Not ->required(): `--bandwidth 10Mbit/s CIDR` hands CLI11 the CIDR as the
  // bandwidth's optional second word; rule_spec() takes it back.
  rule_add->add_option("CIDR", add.cidr, "Source prefix, e.g. 198.18.0.0/15 or 2001:db8::/32");
  rule_add->add_option("--per", add.per, "Prefix length one bucket covers (default 32 for IPv4, 64 for IPv6)");
  rule_add->add_option("--rate", add.rate, "Packets per time: 100/s, 6000/min, 50000/hour, 1000/day");
  rule_add->add_option("--burst", add.burst, "Packets admitted at once (default: the count in --rate)");
  rule_add->add_option("--bandwidth", add.bandwidth, "Bytes per time: 10Mbit/s, 500kbit/s, 2MB/s")
      ->expected(1, 2);
  rule_add->add_option("--burst-bytes", add.burst_bytes, "Bytes admitted at once (default: one second's worth)");
  rule_add->add_option("--new-rate", add.new_rate,
                       "Packets per time admitted from sources not yet tracked (default " +
                           std::to_string(XT_DEFAULT_NEW_RATE) + "/s)");
  auto* allow = rule_add->add_flag("--allow", add.allow, "Never limit these sources");
  auto* deny = rule_add->add_flag("--deny", add.deny, "Drop everything from these sources");
  allow->excludes(deny);
  rule_add->add_flag("--dry-run", add.dry_run, "Count what would be dropped, drop nothing");

  std::string del_cidr;
  auto* rule_del = rule->add_subcommand("del", "Delete the rule for exactly this CIDR");
  rule_del->add_option("CIDR", del_cidr, "Source prefix")->required();

  auto* rule_list = rule->add_subcommand("list", "List the rules");
  rule_list->add_flag("--json", json, "JSON output");

  double watch = 0;
  auto* stats = app.add_subcommand("stats", "Packet and byte counters, overall and per rule");
  stats->add_flag("--json", json, "JSON output");
  stats->add_option("--watch", watch, "Print rates every SECONDS until interrupted")->check(CLI::PositiveNumber);

  size_t limit = 10;
  auto* top = app.add_subcommand("top", "Tracked sources, most drops first");
  top->add_option("--limit", limit, "How many")->check(CLI::PositiveNumber)->capture_default_str();
  top->add_option("--watch", watch, "Redraw every SECONDS, by drops in that interval, with rates")
      ->check(CLI::PositiveNumber);
  top->add_flag("--json", json, "JSON output");

  std::string config_file;
  bool dry_run = false;
  auto* apply = app.add_subcommand("apply", "Make the live rules equal to a TOML config file");
  apply->add_option("FILE", config_file, "Config file ([[rule]] tables)")->required();
  apply->add_flag("--dry-run", dry_run, "Print what would change; change nothing");
  apply->add_flag("--json", json, "JSON output");

  auto* events = app.add_subcommand("events", "Follow sources being throttled and released");
  events->add_flag("--json", json, "One JSON object per line");

  std::string metrics = "127.0.0.1:9431";
  auto* serve = app.add_subcommand("serve", "Run as a daemon: Prometheus metrics, events, config");
  serve->add_option("--metrics", metrics, "Address for the Prometheus endpoint (/metrics)")->capture_default_str();
  serve->add_option("--config", config_file, "Apply this file at start and on SIGHUP");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports an unknown command as a missing one; name the culprit.
    const auto rest = app.remaining();
    if (app.get_subcommands().empty() && !rest.empty())
      std::cerr << "xthrottle: unknown command '" << rest.front()
                << "' (commands: attach, detach, status, rule, stats, top, apply, events, serve)\n";
    else
      std::cerr << "xthrottle: " << e.what() << "\n";
    std::cerr << "Run with --help for more information.\n";
    return 2;
  }
  xt::set_library_logging(verbose);

  if (*attach) return cmd_attach(pin_dir, ifname, mode, max_sources, replace);
  if (*detach) return cmd_detach(pin_dir, ifname);
  if (*status) return cmd_status(pin_dir, json, check);
  if (*rule_add) return cmd_rule_add(pin_dir, add);
  if (*rule_del) return cmd_rule_del(pin_dir, del_cidr);
  if (*rule_list) return cmd_rule_list(pin_dir, json);
  if (*stats) return cmd_stats(pin_dir, json, watch);
  if (*top) return cmd_top(pin_dir, json, limit, watch);
  if (*apply) return cmd_apply(pin_dir, config_file, dry_run, json);
  if (*events) return cmd_events(pin_dir, json);
  if (*serve) return cmd_serve(pin_dir, metrics, config_file);
  return 2;
}
