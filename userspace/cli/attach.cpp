// SPDX-License-Identifier: MIT
// xthrottle attach IFACE [--mode auto|native|skb] [--max-sources N] [--idle DURATION] [--replace]
// xthrottle detach IFACE
#include <iostream>
#include <memory>

#include "attach.h"
#include "cli.h"
#include "object.h"

namespace xt::cli {
namespace {

struct AttachOptions {
  std::string ifname, mode = "auto", max_sources, idle;
  bool replace = false;
};

int run_attach(const Globals& g, const AttachOptions& o) {
  auto mode = parse_mode(o.mode);
  if (!mode) return fail(mode.error());
  auto table = table_options(o.max_sources, o.idle);
  if (!table) return fail(table.error());
  const State::Create create{.table = *table, .hz = std::nullopt};
  // Before anything is created: a missing interface, or one whose frames
  // xthrottle cannot read, changes nothing.
  if (auto ifindex = ifindex_of(o.ifname); !ifindex) return fail(ifindex.error());
  if (auto link = link_of(o.ifname); !link) return fail(link.error());
  if (auto ok = ensure_bpffs(g.pin_dir); !ok) return fail(ok.error());
  auto lock = DirLock::acquire(g.pin_dir);
  if (!lock) return fail(lock.error());
  const bool made = !State::exists(g.pin_dir);
  auto state = State::open_or_create(g.pin_dir, create);
  if (!state) return fail(state.error());
  auto a = attach(*state, o.ifname, *mode, o.replace);
  if (!a) {
    // A state made for this attach goes with it: a retry with another
    // --max-sources or --idle would be refused as a resize. Not where the
    // program is on all the same (its record refused): it protects.
    if (made && !runs_ours(*state, o.ifname)) {
      state = std::unexpected(a.error());  // its maps closed before their pins go
      if (auto gone = State::unpin(g.pin_dir); !gone) std::cerr << "xthrottle: " << gone.error().message << "\n";
    }
    return fail(a.error());
  }
  if (a->replaced_prog_id)
    std::cout << "upgraded " << a->ifname << ": prog id " << a->replaced_prog_id << " replaced by " << a->prog_id
              << " in one step, on the same maps; " << mode_name(a->mode) << " mode\n";
  else
    std::cout << (a->already ? "already attached to " : "attached to ") << a->ifname << ": " << mode_name(a->mode)
              << " mode, " << (a->multiprog ? "libxdp multi-program dispatcher" : "single program") << ", prog id "
              << a->prog_id << "\n";
  if (a->mode == XT_MODE_SKB && a->requested != XT_MODE_SKB && a->link != XT_LINK_IP)
    std::cerr << "xthrottle: warning: " << o.ifname << " has no native XDP; running in generic (skb) mode\n";
  if (a->mode == XT_MODE_SKB)
    std::cerr << "xthrottle: note: generic (skb) mode sees a local TCP sender's segments and GRO aggregates whole "
                 "(up to 64 KB): each counts as the wire packets it stands for, estimated from the MTU: exact "
                 "for full-size segments, fewer for smaller ones\n";
  if (a->link == XT_LINK_IP)
    std::cerr << "xthrottle: note: " << o.ifname << " has no link layer: frames are read from the IP header\n";
  return 0;
}

int run_detach(const Globals& g, const std::string& ifname) {
  auto locked = open_locked(g.pin_dir);
  if (!locked) return fail(locked.error());
  auto gone = detach(*locked->state, ifname);
  if (!gone) return fail(gone.error());
  if (*gone == Detached::InterfaceGone)
    std::cout << ifname << " is gone, and its program with it: its record is forgotten; rules and counters stay in "
              << g.pin_dir << "\n";
  else if (*gone == Detached::ProgramGone)
    std::cout << "xthrottle's program was already taken off " << ifname
              << " (not by xthrottle): its record is forgotten; rules and counters stay in " << g.pin_dir << "\n";
  else
    std::cout << "detached from " << ifname << "; rules and counters stay in " << g.pin_dir << "\n";
  return 0;
}

}  // namespace

void add_attach_commands(CLI::App& app, const Globals& g, int& rc) {
  auto o = std::make_shared<AttachOptions>();
  auto* attach = app.add_subcommand("attach", "Put the program on an interface, or upgrade the one there");
  attach->add_option("IFACE", o->ifname, "Interface")->required();
  attach->add_option("--mode", o->mode, "auto, native or skb")->capture_default_str();
  attach->add_option("--max-sources", o->max_sources,
                     "Sources the bucket table tracks (default " + std::to_string(XT_DEFAULT_MAX_SOURCES) +
                         "; set when the state is created)");
  attach->add_option("--idle", o->idle,
                     "How long a source goes without a packet before its bucket is untracked and its next packet "
                     "is a new source's again (default " +
                         std::to_string(XT_DEFAULT_IDLE_SECONDS) + "s, 1s to " + std::to_string(kMaxIdleSeconds) +
                         "s; set when the state is created)");
  attach->add_flag("--replace", o->replace,
                   "Swap in this build's program even if the same build runs there (one atomic step)");
  attach->callback([&g, &rc, o] { rc = run_attach(g, *o); });

  auto ifname = std::make_shared<std::string>();
  auto* detach = app.add_subcommand("detach", "Take the program off an interface (state stays)");
  detach->add_option("IFACE", *ifname, "Interface")->required();
  detach->callback([&g, &rc, ifname] { rc = run_detach(g, *ifname); });
}

}  // namespace xt::cli
