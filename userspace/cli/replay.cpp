// SPDX-License-Identifier: MIT
// xthrottle replay CONFIG CAPTURE [--json] [--limit N] [--hz N] [--max-sources N] [--idle DURATION] [--mtu N]
#include <iostream>
#include <memory>

#include "cli.h"
#include "map_util.h"
#include "object.h"
#include "replay.h"

namespace xt::cli {
namespace {

struct ReplayCliOptions {
  std::string config, capture;
  bool json = false;
  size_t limit = 20;
  uint32_t hz = 0;
  uint32_t mtu = 1500;
  std::string max_sources, idle;
};

int run_replay(const ReplayCliOptions& o) {
  auto file = load_rules_file(o.config);
  if (!file) return fail(file.error());
  // The source table: as the options say, else as the file's [sources]
  // does, else the default (what attach, or apply, would have made).
  auto given = table_options(o.max_sources, o.idle);
  if (!given) return fail(given.error());
  const TableSettings table = given->or_else(file->table);
  ReplayOptions ro;
  ro.limit = o.limit;
  ro.max_sources = table.max_sources.value_or(XT_DEFAULT_MAX_SOURCES);
  ro.idle_seconds = table.idle_seconds.value_or(XT_DEFAULT_IDLE_SECONDS);
  ro.mtu = o.mtu;
  ro.cpus = 1;  // the replay runs on one CPU: each rule's proofs budget whole on it
  if (o.hz) {
    ro.hz = o.hz;
  } else {
    auto hz = measure_hz();  // the live program's clock runs at this kernel's
    if (!hz) return fail(hz.error());
    ro.hz = *hz;
  }
  if (auto ok = compile_rules(*file, ro.hz, ro.cpus); !ok) return fail(ok.error());
  auto r = replay_capture(*file, o.capture, ro);
  if (!r) return fail(r.error());
  emit(o.json, replay_json(*r), replay_text(*r));
  return 0;
}

}  // namespace

void add_replay_command(CLI::App& app, const Globals&, int& rc) {
  auto o = std::make_shared<ReplayCliOptions>();
  auto* replay = app.add_subcommand("replay", "Run a rules file over a capture (pcap, pcapng): what it would drop");
  replay->add_option("CONFIG", o->config, "Rules file ([[rule]], [[blocklist]] tables)")->required();
  replay->add_option("CAPTURE", o->capture, "Capture from tcpdump, tshark or dumpcap: Ethernet, cooked or raw IP")
      ->required();
  replay->add_flag("--json", o->json, "JSON output");
  replay->add_option("--limit", o->limit, "Throttled sources listed, by their first drop")
      ->check(whole_number(0, UINT32_MAX))
      ->capture_default_str();
  replay->add_option("--hz", o->hz, "Tick rate to meter at (default: this kernel's, as the live program)")
      ->check(whole_number(10, 10000));
  replay->add_option("--max-sources", o->max_sources,
                     "Source table size, as attach --max-sources (default: the file's [sources], else " +
                         std::to_string(XT_DEFAULT_MAX_SOURCES) + ")");
  replay->add_option("--idle", o->idle,
                     "Idle window, as attach --idle (default: the file's [sources], else " +
                         std::to_string(XT_DEFAULT_IDLE_SECONDS) + "s)");
  replay->add_option("--mtu", o->mtu,
                     "MTU of the interface captured on: a longer frame (GRO merged it) counts as the wire packets "
                     "it stands for, as the live program counts it")
      ->check(whole_number(68, 65535))
      ->capture_default_str();
  replay->callback([&rc, o] { rc = run_replay(*o); });
}

}  // namespace xt::cli
