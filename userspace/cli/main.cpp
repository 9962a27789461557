// SPDX-License-Identifier: MIT
// The xthrottle command line (DESIGN.md, "The command line"). Thin: it parses
// and validates everything first, so a rejected command changes nothing, then
// calls libxthrottle. Every command is a fresh process on the pinned state.
//
// Exit codes: 0 done; 1 the system refused; 2 bad usage or input;
// 3 `status --check` found xthrottle not fully protecting.
#include <CLI/CLI.hpp>

#include <csignal>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "attach.h"
#include "object.h"
#include "policy.h"
#include "report.h"
#include "state.h"

namespace {

using xt::Result;

constexpr int kExitNotProtected = 3;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

int fail(const xt::Error& e) {
  std::cerr << "xthrottle: " << e.message << "\n";
  return e.exit_code();
}

// Prints a JSON document or text, whichever the command was asked for.
void emit(bool json, const nlohmann::json& j, const std::string& text) {
  if (json)
    std::cout << j.dump(2) << "\n";
  else
    std::cout << text;
}

// Sleeps up to `seconds`, returning early (false) when asked to stop.
bool sleep_unless_stopped(double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!g_stop && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return !g_stop;
}

// Opens the state for a command that changes it, holding the pin dir's lock.
struct Locked {
  xt::DirLock lock;
  xt::State state;
};
// With `create`, the state is made if missing (with those settings).
Result<Locked> open_locked(const std::string& pin_dir, std::optional<xt::State::Create> create) {
  if (create) {
    if (auto ok = xt::ensure_bpffs(pin_dir); !ok) return std::unexpected(ok.error());
  } else if (!xt::State::exists(pin_dir)) {
    return std::unexpected(xt::State::open(pin_dir).error());  // says there is no state
  }
  auto lock = xt::DirLock::acquire(pin_dir);
  if (!lock) return std::unexpected(lock.error());
  auto state = create ? xt::State::open_or_create(pin_dir, *create) : xt::State::open(pin_dir);
  if (!state) return std::unexpected(state.error());
  return Locked{std::move(*lock), std::move(*state)};
}

struct RuleAddArgs {
  std::string cidr, per, rate, burst, burst_bytes, new_rate;
  std::vector<std::string> bandwidth;
  bool allow = false, deny = false, dry_run = false;
};

Result<xt::RuleSpec> rule_spec(RuleAddArgs a) {
  // `--bandwidth N UNIT/s` may take two words; if the second is the CIDR that
  // followed a one-word bandwidth, give it back.
  if (a.cidr.empty() && a.bandwidth.size() == 2 && !a.bandwidth[1].ends_with("/s") &&
      xt::parse_cidr(a.bandwidth[1])) {
    a.cidr = a.bandwidth[1];
    a.bandwidth.pop_back();
  }
  if (a.cidr.empty()) return xt::usage_error("rule add needs a CIDR, e.g. rule add 198.18.0.0/15 --rate 100/s");
  xt::RuleSpec spec;
  auto cidr = xt::parse_cidr(a.cidr);
  if (!cidr) return std::unexpected(cidr.error());
  spec.cidr = *cidr;
  spec.action = a.allow ? XT_ACT_ALLOW : a.deny ? XT_ACT_DENY : XT_ACT_LIMIT;
  spec.dry_run = a.dry_run;
  if (!a.per.empty()) {
    auto per = xt::parse_prefix_len("--per", a.per);
    if (!per) return std::unexpected(per.error());
    spec.per = *per;
  }
  if (!a.rate.empty()) {
    auto rate = xt::parse_rate(a.rate);
    if (!rate) return std::unexpected(rate.error());
    spec.rate = *rate;
  }
  if (!a.burst.empty()) {
    auto burst = xt::parse_positive("--burst", a.burst);
    if (!burst) return std::unexpected(burst.error());
    spec.burst = *burst;
  }
  if (!a.bandwidth.empty()) {
    std::string text;
    for (const auto& part : a.bandwidth) text += (text.empty() ? "" : " ") + part;
    auto bw = xt::parse_bandwidth(text);
    if (!bw) return std::unexpected(bw.error());
    spec.bandwidth = *bw;
  }
  if (!a.burst_bytes.empty()) {
    auto burst = xt::parse_positive("--burst-bytes", a.burst_bytes);
    if (!burst) return std::unexpected(burst.error());
    spec.burst_bytes = *burst;
  }
  if (!a.new_rate.empty()) {
    auto rate = xt::parse_rate(a.new_rate);
    if (!rate) return std::unexpected(rate.error());
    spec.new_rate = *rate;
  }
  return spec;
}

int cmd_attach(const std::string& pin_dir, const std::string& ifname, const std::string& mode_text,
               const std::string& max_sources_text) {
  auto mode = xt::parse_mode(mode_text);
  if (!mode) return fail(mode.error());
  xt::State::Create create;
  if (!max_sources_text.empty()) {
    auto n = xt::parse_positive("--max-sources", max_sources_text);
    if (!n) return fail(n.error());
    if (*n < XT_MIN_MAX_SOURCES || *n > XT_MAX_MAX_SOURCES)
      return fail({xt::ErrorKind::Usage, "bad --max-sources '" + max_sources_text + "': between " +
                                             std::to_string(XT_MIN_MAX_SOURCES) + " and " + std::to_string(XT_MAX_MAX_SOURCES)});
    create.max_sources = static_cast<uint32_t>(*n);
  }
  // Before anything is created: a missing interface changes nothing.
  if (auto ifindex = xt::ifindex_of(ifname); !ifindex) return fail(ifindex.error());
  auto locked = open_locked(pin_dir, create);
  if (!locked) return fail(locked.error());
  auto a = xt::attach(locked->state, ifname, *mode);
  if (!a) return fail(a.error());
  std::cout << (a->already ? "already attached to " : "attached to ") << a->ifname << ": " << xt::mode_name(a->mode)
            << " mode, " << (a->multiprog ? "libxdp multi-program dispatcher" : "single program") << ", prog id "
            << a->prog_id << "\n";
  if (a->mode == XT_MODE_SKB && *mode != XT_MODE_SKB)
    std::cerr << "xthrottle: warning: " << ifname << " has no native XDP; running in generic (skb) mode\n";
  return 0;
}

int cmd_detach(const std::string& pin_dir, const std::string& ifname) {
  auto locked = open_locked(pin_dir, std::nullopt);
  if (!locked) return fail(locked.error());
  if (auto ok = xt::detach(locked->state, ifname); !ok) return fail(ok.error());
  std::cout << "detached from " << ifname << "; rules and counters stay in " << pin_dir << "\n";
  return 0;
}

int cmd_status(const std::string& pin_dir, bool json, bool check) {
  auto status = xt::read_status(pin_dir);
  if (!status) return fail(status.error());
  emit(json, xt::status_json(*status), xt::status_text(*status));
  return check && !status->warnings.empty() ? kExitNotProtected : 0;
}

int cmd_rule_add(const std::string& pin_dir, const RuleAddArgs& args) {
  auto spec = rule_spec(args);
  if (!spec) return fail(spec.error());
  // Limits are compiled into the kernel's ticks: the state's, or measured now
  // for the state this command is about to create.
  auto hz = xt::tick_rate(pin_dir);
  if (!hz) return fail(hz.error());
  auto rule = xt::compile_rule(*spec, *hz);
  if (!rule) return fail(rule.error());
  auto locked = open_locked(pin_dir, xt::State::Create{.max_sources = std::nullopt, .hz = *hz});
  if (!locked) return fail(locked.error());
  auto replaced = locked->state.put_rule(spec->cidr, *rule);
  if (!replaced) return fail(replaced.error());
  std::cout << (*replaced ? "replaced " : "added ") << xt::format_cidr(spec->cidr) << " "
            << xt::action_name(rule->action);
  if (rule->action == XT_ACT_LIMIT) std::cout << " " << xt::describe_limits(*rule) << ", per /" << int(rule->per_len);
  if (rule->flags & XT_RULE_DRY_RUN) std::cout << " (dry-run)";
  std::cout << "\n";
  if ((rule->flags & XT_RULE_BYTE_LIMIT) && rule->burst_bytes < 1514)
    std::cerr << "xthrottle: warning: --burst-bytes " << rule->burst_bytes
              << " is below a full-size Ethernet frame (1514 bytes): larger packets can never pass\n";
  return 0;
}

int cmd_rule_del(const std::string& pin_dir, const std::string& cidr_text) {
  auto cidr = xt::parse_cidr(cidr_text);
  if (!cidr) return fail(cidr.error());
  auto locked = open_locked(pin_dir, std::nullopt);
  if (!locked) return fail(locked.error());
  if (auto ok = locked->state.del_rule(*cidr); !ok) return fail(ok.error());
  std::cout << "deleted " << xt::format_cidr(*cidr) << "\n";
  return 0;
}

int cmd_rule_list(const std::string& pin_dir, bool json) {
  auto state = xt::State::open(pin_dir);
  if (!state) return fail(state.error());
  auto rules = state->rules();
  if (!rules) return fail(rules.error());
  emit(json, xt::rules_json(*rules), xt::rules_text(*rules));
  return 0;
}

int cmd_stats(const std::string& pin_dir, bool json, double watch) {
  auto state = xt::State::open(pin_dir);
  if (!state) return fail(state.error());
  auto stats = xt::read_stats(*state);
  if (!stats) return fail(stats.error());
  if (watch <= 0) {
    emit(json, xt::stats_json(*stats), xt::stats_text(*stats));
    return 0;
  }
  // One line per interval until interrupted; rates are over that interval.
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  auto before = std::move(*stats);
  auto t0 = std::chrono::steady_clock::now();
  while (sleep_unless_stopped(watch)) {
    auto after = xt::read_stats(*state);
    if (!after) return fail(after.error());
    auto t1 = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(t1 - t0).count();
    if (json)
      std::cout << xt::stats_rate_json(before, *after, seconds).dump() << std::endl;
    else
      std::cout << xt::stats_rate_text(before, *after, seconds) << std::flush;
    before = std::move(*after);
    t0 = t1;
  }
  return 0;
}

int cmd_top(const std::string& pin_dir, bool json, size_t limit) {
  auto state = xt::State::open(pin_dir);
  if (!state) return fail(state.error());
  auto rows = xt::read_top(*state, limit);
  if (!rows) return fail(rows.error());
  emit(json, xt::top_json(*rows), xt::top_text(*rows));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"xthrottle: per-source packet rate limiting at the driver (XDP)", "xthrottle"};
  app.require_subcommand(1);
  app.fallthrough();  // --pin-dir and -v work after the command too
  std::string pin_dir = xt::default_pin_dir();
  bool verbose = false;
  app.add_option("--pin-dir", pin_dir, "Where the state is pinned (bpffs)")
      ->envname("XTHROTTLE_PIN_DIR")
      ->capture_default_str();
  app.add_flag("-v,--verbose", verbose, "Show libbpf's and libxdp's own messages");

  std::string ifname, mode = "auto", max_sources;
  auto* attach = app.add_subcommand("attach", "Put the program on an interface");
  attach->add_option("IFACE", ifname, "Interface")->required();
  attach->add_option("--mode", mode, "auto, native or skb")->capture_default_str();
  attach->add_option("--max-sources", max_sources,
                     "Sources the bucket table tracks (default " + std::to_string(XT_DEFAULT_MAX_SOURCES) +
                         "; set when the state is created)");

  auto* detach = app.add_subcommand("detach", "Take the program off an interface (state stays)");
  detach->add_option("IFACE", ifname, "Interface")->required();

  bool json = false, check = false;
  auto* status = app.add_subcommand("status", "Where it runs and whether it protects");
  status->add_flag("--json", json, "JSON output");
  status->add_flag("--check", check, "Exit 3 if anything leaves the host unprotected");

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
  top->add_flag("--json", json, "JSON output");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports an unknown command as a missing one; name the culprit.
    const auto rest = app.remaining();
    if (app.get_subcommands().empty() && !rest.empty())
      std::cerr << "xthrottle: unknown command '" << rest.front()
                << "' (commands: attach, detach, status, rule, stats, top)\n";
    else
      std::cerr << "xthrottle: " << e.what() << "\n";
    std::cerr << "Run with --help for more information.\n";
    return 2;
  }
  xt::set_library_logging(verbose);

  if (*attach) return cmd_attach(pin_dir, ifname, mode, max_sources);
  if (*detach) return cmd_detach(pin_dir, ifname);
  if (*status) return cmd_status(pin_dir, json, check);
  if (*rule_add) return cmd_rule_add(pin_dir, add);
  if (*rule_del) return cmd_rule_del(pin_dir, del_cidr);
  if (*rule_list) return cmd_rule_list(pin_dir, json);
  if (*stats) return cmd_stats(pin_dir, json, watch);
  if (*top) return cmd_top(pin_dir, json, limit);
  return 2;
}
