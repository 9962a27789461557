// SPDX-License-Identifier: MIT
#include "attach.h"

#include <bpf/bpf.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "fd.h"
#include "map_util.h"
#include "object.h"

namespace xt {

// The interface's MTU, which decides whether the program must accept
// multi-buffer frames, and which frames are super-packets.
Result<uint32_t> mtu_of(const std::string& ifname) {
  Fd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return system_error("cannot open a socket to read " + ifname + "'s MTU", errno);
  ifreq req{};
  std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (ioctl(sock.get(), SIOCGIFMTU, &req) != 0) return system_error("cannot read " + ifname + "'s MTU", errno);
  return static_cast<uint32_t>(req.ifr_mtu);
}

Result<xt_link> link_of(const std::string& ifname) {
  Fd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return system_error("cannot open a socket to read " + ifname + "'s link type", errno);
  ifreq req{};
  std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (ioctl(sock.get(), SIOCGIFHWADDR, &req) != 0)
    return system_error("cannot read " + ifname + "'s link type", errno);
  const unsigned type = req.ifr_hwaddr.sa_family;
  switch (type) {
    case ARPHRD_ETHER:
    case ARPHRD_LOOPBACK:  // frames carry an all-zero Ethernet header
      return XT_LINK_ETHER;
    case ARPHRD_NONE:   // tun, WireGuard: the kernel hands XDP the packet from its IP header on
    case ARPHRD_RAWIP:  // raw-IP modems
      return XT_LINK_IP;
  }
  return system_error("cannot attach to " + ifname + ": its link type (" + std::to_string(type) +
                      ", see linux/if_arp.h) is neither Ethernet nor plain IP without a link layer (tun, "
                      "WireGuard), the frames xthrottle can read; attach it where the traffic arrives as those");
}

const char* link_name(uint8_t link) { return link == XT_LINK_IP ? "ip" : "ethernet"; }

namespace {

struct MultiprogDeleter {
  void operator()(xdp_multiprog* mp) const { xdp_multiprog__close(mp); }
};
using Multiprog = std::unique_ptr<xdp_multiprog, MultiprogDeleter>;

struct ProgramDeleter {
  void operator()(xdp_program* p) const { xdp_program__close(p); }
};
using Program = std::unique_ptr<xdp_program, ProgramDeleter>;

uint64_t netns_inode() {
  struct stat st{};
  return stat("/proc/self/ns/net", &st) == 0 ? st.st_ino : 0;
}

xt_attach_key record_key(uint32_t ifindex) {
  xt_attach_key key{};
  key.netns_ino = netns_inode();
  key.ifindex = ifindex;
  return key;
}

uint8_t from_libxdp(enum xdp_attach_mode mode) {
  return mode == XDP_MODE_SKB ? XT_MODE_SKB : XT_MODE_NATIVE;
}

enum xdp_attach_mode to_libxdp(uint8_t mode) {
  switch (mode) {
    case XT_MODE_NATIVE: return XDP_MODE_NATIVE;
    case XT_MODE_SKB: return XDP_MODE_SKB;
  }
  return XDP_MODE_UNSPEC;
}

// Our program (by name) using our rule map (by id): not just any xthrottle.
bool is_ours(const xdp_program* prog, uint32_t rules_id) {
  if (std::strcmp(xdp_program__name(prog), XT_PROG_NAME) != 0) return false;
  int fd = xdp_program__fd(prog);
  if (fd < 0) return false;
  uint32_t ids[64] = {};
  bpf_prog_info info{};
  info.nr_map_ids = std::size(ids);
  info.map_ids = reinterpret_cast<uint64_t>(ids);
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return false;
  for (uint32_t i = 0; i < info.nr_map_ids && i < std::size(ids); i++)
    if (ids[i] == rules_id) return true;
  return false;
}

struct Live {
  uint32_t prog_id;
  uint8_t mode;
  bool multiprog;
  xdp_program* prog;  // owned by the multiprog handle
};

struct Probe {
  Multiprog mp;
  std::optional<Live> ours;
  std::string other;  // a foreign XDP program already there, for messages
};

Probe probe(uint32_t ifindex, uint32_t rules_id) {
  Probe p;
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(static_cast<int>(ifindex));
  if (!mp || libxdp_get_error(mp)) return p;
  p.mp.reset(mp);
  const bool legacy = xdp_multiprog__is_legacy(mp);
  const uint8_t mode = from_libxdp(xdp_multiprog__attach_mode(mp));
  auto consider = [&](xdp_program* prog) {
    if (!prog) return;
    if (is_ours(prog, rules_id))
      p.ours = Live{xdp_program__id(prog), mode, !legacy, prog};
    else if (p.other.empty())
      p.other = std::string(xdp_program__name(prog)) + " (id " + std::to_string(xdp_program__id(prog)) + ")";
  };
  if (legacy) {
    consider(xdp_multiprog__main_prog(mp));
  } else {
    for (xdp_program* prog = xdp_multiprog__next_prog(nullptr, mp); prog;
         prog = xdp_multiprog__next_prog(prog, mp))
      consider(prog);
  }
  return p;
}

}  // namespace

Result<uint32_t> ifindex_of(const std::string& ifname) {
  uint32_t ifindex = if_nametoindex(ifname.c_str());
  if (ifindex == 0)
    return system_error("no interface named '" + ifname + "' in this network namespace");
  return ifindex;
}

Result<xt_mode> parse_mode(const std::string& text) {
  if (text == "auto") return XT_MODE_AUTO;
  if (text == "native" || text == "drv") return XT_MODE_NATIVE;
  if (text == "skb" || text == "generic") return XT_MODE_SKB;
  return usage_error("bad --mode '" + text + "': use auto, native or skb");
}

const char* mode_name(uint8_t mode) {
  switch (mode) {
    case XT_MODE_NATIVE: return "native";
    case XT_MODE_SKB: return "skb";
  }
  return "auto";
}

namespace {

// The read-only data a loaded program was given (its .rodata map): the
// settings its code was specialised for (multi-buffer or not).
std::optional<std::vector<uint8_t>> rodata_of(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) return std::nullopt;
  std::vector<uint32_t> ids(info.nr_map_ids);
  info = {};
  info.nr_map_ids = static_cast<uint32_t>(ids.size());
  info.map_ids = reinterpret_cast<uintptr_t>(ids.data());
  len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) return std::nullopt;
  for (uint32_t id : ids) {
    Fd map(bpf_map_get_fd_by_id(id));
    bpf_map_info m{};
    uint32_t mlen = sizeof(m);
    if (!map || bpf_obj_get_info_by_fd(map.get(), &m, &mlen) != 0) continue;
    if (!std::string_view(m.name).ends_with(".rodata")) continue;
    std::vector<uint8_t> value(m.value_size);
    const uint32_t zero = 0;
    if (bpf_map_lookup_elem(map.get(), &zero, value.data()) != 0) return std::nullopt;
    return value;
  }
  return std::vector<uint8_t>{};
}

// The same build specialised the same way: the same instructions (the tag)
// and the same read-only settings, which the tag does not cover.
bool same_program(int fd_a, int fd_b) {
  bpf_prog_info a{}, b{};
  uint32_t la = sizeof(a), lb = sizeof(b);
  if (bpf_obj_get_info_by_fd(fd_a, &a, &la) != 0 || bpf_obj_get_info_by_fd(fd_b, &b, &lb) != 0) return false;
  if (std::memcmp(a.tag, b.tag, sizeof(a.tag)) != 0) return false;
  auto ra = rodata_of(fd_a), rb = rodata_of(fd_b);
  return ra && rb && *ra == *rb;
}

uint32_t prog_id(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

// Forgets this network namespace's records of an interface named ifname
// under another index than `keep` (0: under any) whose interface is gone:
// deleted since (and perhaps made again under that name), its index now
// no interface's, or another's that runs no program of ours (the kernel
// gave the index out again). An interface renamed keeps its index, and
// its program: its record stays. Returns how many.
size_t forget_records_named(const State& state, const std::string& ifname, uint32_t keep) {
  const uint64_t ns = netns_inode();
  std::vector<xt_attach_key> stale;
  char name[IF_NAMESIZE];
  (void)walk_keys<xt_attach_key>(state.attach_fd(), "the attach table", [&](const xt_attach_key& key) {
    xt_attach_info info{};
    if (key.netns_ino != ns || key.ifindex == keep || bpf_map_lookup_elem(state.attach_fd(), &key, &info) != 0 ||
        std::string_view(info.ifname, strnlen(info.ifname, sizeof(info.ifname))) != ifname)
      return;
    if (!if_indextoname(key.ifindex, name) ||
        (ifname != name && !probe(key.ifindex, map_id(state.rules_fd())).ours))
      stale.push_back(key);
  });
  for (const xt_attach_key& key : stale) (void)bpf_map_delete_elem(state.attach_fd(), &key);
  return stale.size();
}

// Forgets the records of other network namespaces whose program is gone:
// the namespace was deleted, and its interfaces with it, which nothing
// here sees happen. Each attach loads its own program, so a program no
// longer there is an attachment that ended. (This namespace's such records
// stay: status warns of them until `detach` or `attach` forgets them.)
// Returns how many.
size_t forget_records_gone_elsewhere(const State& state) {
  const uint64_t ns = netns_inode();
  std::vector<xt_attach_key> gone;
  (void)walk_keys<xt_attach_key>(state.attach_fd(), "the attach table", [&](const xt_attach_key& key) {
    xt_attach_info info{};
    if (key.netns_ino == ns || bpf_map_lookup_elem(state.attach_fd(), &key, &info) != 0) return;
    Fd prog(bpf_prog_get_fd_by_id(info.prog_id));
    if (!prog && errno == ENOENT) gone.push_back(key);
  });
  for (const xt_attach_key& key : gone) (void)bpf_map_delete_elem(state.attach_fd(), &key);
  return gone.size();
}

// What was asked for when xthrottle was attached to ifindex, as recorded.
std::optional<uint8_t> recorded_request(const State& state, uint32_t ifindex) {
  const xt_attach_key key = record_key(ifindex);
  xt_attach_info info{};
  if (bpf_map_lookup_elem(state.attach_fd(), &key, &info) != 0) return std::nullopt;
  return info.requested_mode;
}

// Records the attachment; an interface of that name deleted since (its
// index gone, or another's now) has its record forgotten: this one says
// what protects the name.
Result<void> record(const State& state, const Attachment& a) {
  xt_attach_info info{};
  std::strncpy(info.ifname, a.ifname.c_str(), sizeof(info.ifname) - 1);
  info.prog_id = a.prog_id;
  info.requested_mode = a.requested;
  info.mode = a.mode;
  info.multiprog = a.multiprog;
  info.link = a.link;
  info.mtu = a.mtu;
  info.attached_at = static_cast<uint64_t>(time(nullptr));
  const xt_attach_key key = record_key(a.ifindex);
  int err = bpf_map_update_elem(state.attach_fd(), &key, &info, BPF_ANY) ? errno : 0;
  // Full (XT_MAX_ATTACH): namespaces that came and went with this state
  // left their records. It filled once 256 had, and every attach after
  // put its program on and failed.
  if (err == E2BIG && forget_records_gone_elsewhere(state))
    err = bpf_map_update_elem(state.attach_fd(), &key, &info, BPF_ANY) ? errno : 0;
  if (err)
    return system_error("attached to " + a.ifname + " but cannot record it" +
                            (err == E2BIG ? " (the attach table holds " + std::to_string(XT_MAX_ATTACH) +
                                                " interfaces, and all are in use)"
                                          : ""),
                        err);
  forget_records_named(state, a.ifname, a.ifindex);
  return {};
}

// The program already on the interface is ours: keep it if it is this very
// build, loaded for the interface's MTU as it is now (unless asked to
// replace it), else put this build in its place in
// one step (XDP_FLAGS_REPLACE), on the same pinned maps, so that no packet
// goes unmetered and every bucket and counter carries on.
Result<Attachment> upgrade(const State& state, Attachment a, const Live& live, bool replace) {
  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  auto mtu = mtu_of(a.ifname);
  if (!mtu) return std::unexpected(mtu.error());
  auto link = link_of(a.ifname);
  if (!link) return std::unexpected(link.error());
  a.link = *link;
  a.mtu = a.mtu_now = *mtu;
  ObjectOptions options = options_for_state(state.pin_dir(), *cfg);
  options.frags = frags_needed(*mtu);
  options.link = *link;
  auto skel = open_object(options);
  if (!skel) return std::unexpected(skel.error());
  if (int err = xthrottle__load(skel->get()); err) return system_error("cannot load the XDP program", err);
  const int new_fd = bpf_program__fd((*skel)->progs.xthrottle);
  Fd old_fd(bpf_prog_get_fd_by_id(live.prog_id));
  if (!old_fd) return system_error("cannot inspect the program on " + a.ifname, errno);

  a.mode = live.mode;
  a.multiprog = live.multiprog;
  a.prog_id = live.prog_id;
  a.live = true;
  if (!replace && same_program(old_fd.get(), new_fd)) {
    a.already = true;
    // What was asked is what this attach asks: `--mode skb` after an
    // attach whose auto got generic mode accepts it, and status stops
    // warning of a fallback (it kept warning, --check exiting 3, for
    // good). A record lost ("cannot record it") is made again too.
    const std::optional<uint8_t> was = recorded_request(state, a.ifindex);
    if (!was || *was != a.requested)
      if (auto ok = record(state, a); !ok) return std::unexpected(ok.error());
    return a;
  }
  if (live.multiprog)
    return system_error("xthrottle on " + a.ifname + " runs in libxdp's multi-program dispatcher, where this "
                        "version cannot swap it in one step: detach and attach again to upgrade");
  const uint32_t flags = XDP_FLAGS_REPLACE | (live.mode == XT_MODE_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);
  LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old_fd.get());
  if (int err = bpf_xdp_attach(static_cast<int>(a.ifindex), new_fd, flags, &opts); err)
    return system_error("cannot replace the program on " + a.ifname, err);
  a.replaced_prog_id = live.prog_id;
  a.prog_id = prog_id(new_fd);
  if (auto ok = record(state, a); !ok) return std::unexpected(ok.error());
  return a;
}

}  // namespace

Result<Attachment> attach(const State& state, const std::string& ifname, xt_mode requested, bool replace) {
#if !defined(__x86_64__)
  // The data path's caches rely on loads not being reordered (x86's total
  // store order); elsewhere they need a load-acquire that clang 14 cannot
  // emit for BPF (docs/design.md). Refuse rather than protect wrongly.
  return system_error("xthrottle's data path is only correct on x86-64 so far (it relies on x86's memory ordering; "
                      "see docs/design.md): not attaching");
#endif
  auto ifindex = ifindex_of(ifname);
  if (!ifindex) return std::unexpected(ifindex.error());
  const uint32_t rules_id = map_id(state.rules_fd());

  Attachment a;
  a.ifname = ifname;
  a.ifindex = *ifindex;
  a.requested = requested;

  if (Probe before = probe(*ifindex, rules_id); before.ours) {
    if (requested != XT_MODE_AUTO && requested != before.ours->mode)
      return system_error("xthrottle is already attached to " + ifname + " in " + mode_name(before.ours->mode) +
                          " mode: detach it first to change the mode");
    // No --mode (an upgrade by the unit, which gives none): what was asked
    // when it was attached still stands, so that a deliberate skb
    // attachment is not taken for a fallback.
    if (requested == XT_MODE_AUTO)
      a.requested = recorded_request(state, *ifindex).value_or(XT_MODE_AUTO);
    return upgrade(state, a, *before.ours, replace);
  }

  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  auto mtu = mtu_of(ifname);
  if (!mtu) return std::unexpected(mtu.error());
  auto link = link_of(ifname);
  if (!link) return std::unexpected(link.error());
  a.link = *link;
  a.mtu = a.mtu_now = *mtu;
  const bool frags = frags_needed(*mtu);
  ObjectOptions options = options_for_state(state.pin_dir(), *cfg);
  options.frags = frags;
  options.link = *link;
  auto skel = open_object(options);
  if (!skel) return std::unexpected(skel.error());
  DECLARE_LIBXDP_OPTS(xdp_program_opts, opts, .obj = (*skel)->obj, .prog_name = XT_PROG_NAME);
  Program prog(xdp_program__create(&opts));
  if (long err = libxdp_get_error(prog.get()); err || !prog) {
    prog.release();
    return system_error("cannot prepare the XDP program", static_cast<int>(err ? err : -EINVAL));
  }
  if (int err = xdp_program__set_xdp_frags_support(prog.get(), frags); err)
    return system_error("cannot ask for multi-buffer frames on " + ifname, err);
  if (int err = xdp_program__attach(prog.get(), static_cast<int>(*ifindex), to_libxdp(requested), 0); err) {
    Probe now = probe(*ifindex, rules_id);
    if (!now.other.empty() && (err == -EEXIST || err == -EBUSY))
      return system_error("cannot attach to " + ifname + ": it already runs another XDP program, " + now.other +
                          ", and xthrottle will not replace it");
    if (err == -EOPNOTSUPP && requested == XT_MODE_NATIVE)
      return system_error("cannot attach to " + ifname + " in native mode: its driver has no native XDP "
                          "(use --mode skb or --mode auto)");
    if (err == -ERANGE || err == -EINVAL)
      return system_error("cannot attach to " + ifname + " (MTU " + std::to_string(*mtu) +
                              "): its driver refused the program, perhaps because the MTU does not fit its XDP "
                              "buffers; try --mode skb",
                          err);
    return system_error("cannot attach to " + ifname, err);
  }

  Probe after = probe(*ifindex, rules_id);
  if (!after.ours) return system_error("attached to " + ifname + " but the program is not there afterwards");
  a.mode = after.ours->mode;
  a.multiprog = after.ours->multiprog;
  a.prog_id = after.ours->prog_id;
  a.live = true;
  if (auto ok = record(state, a); !ok) return std::unexpected(ok.error());  // on, and protecting
  a.recorded = true;
  return a;
}

bool runs_ours(const State& state, const std::string& ifname) {
  const uint32_t ifindex = if_nametoindex(ifname.c_str());
  return ifindex && probe(ifindex, map_id(state.rules_fd())).ours.has_value();
}

Result<Detached> detach(const State& state, const std::string& ifname) {
  auto ifindex = ifindex_of(ifname);
  // An interface deleted while attached took the program with it: what is
  // left is its record, which status warns about until it is forgotten.
  if (!ifindex && forget_records_named(state, ifname, 0)) return Detached::InterfaceGone;
  if (!ifindex) return std::unexpected(ifindex.error());
  Probe p = probe(*ifindex, map_id(state.rules_fd()));
  const xt_attach_key key = record_key(*ifindex);
  if (!p.ours) {
    // The program was taken off behind xthrottle's back: its record, which
    // status warns about, is what is left to undo. (It was undone, and the
    // command said "not attached", exit 1.)
    if (bpf_map_delete_elem(state.attach_fd(), &key) == 0) return Detached::ProgramGone;
    // The interface attached under this name was deleted and made again:
    // its record, under the old index, is what is left to undo.
    if (forget_records_named(state, ifname, *ifindex)) return Detached::InterfaceGone;
    return system_error("xthrottle is not attached to " + ifname);
  }
  int err = p.ours->multiprog
                ? xdp_program__detach(p.ours->prog, static_cast<int>(*ifindex), to_libxdp(p.ours->mode), 0)
                : xdp_multiprog__detach(p.mp.get());
  if (err) return system_error("cannot detach from " + ifname, err);
  bpf_map_delete_elem(state.attach_fd(), &key);
  return Detached::Program;
}

namespace {

// An interface of this network namespace with an XDP program on it.
struct XdpLink {
  uint32_t ifindex;
  std::string ifname;
};

// Every interface with an XDP program, from one netlink dump of the links:
// asking libxdp (or libbpf) interface by interface dumps every link each
// time, which made status cost the square of the interface count.
Result<std::vector<XdpLink>> xdp_links() {
  Fd sock(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!sock) return system_error("cannot open a netlink socket to list interfaces", errno);
  struct {
    nlmsghdr header;
    ifinfomsg link;
  } request{};
  request.header.nlmsg_len = sizeof(request);
  request.header.nlmsg_type = RTM_GETLINK;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.link.ifi_family = AF_UNSPEC;
  if (send(sock.get(), &request, sizeof(request), 0) < 0) return system_error("cannot list interfaces", errno);
  std::vector<XdpLink> out;
  std::vector<char> buf(1 << 16);
  for (;;) {
    const ssize_t got = recv(sock.get(), buf.data(), buf.size(), 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return system_error("cannot list interfaces", errno);
    }
    int left = static_cast<int>(got);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) return out;
      if (h->nlmsg_type == NLMSG_ERROR) return system_error("cannot list interfaces", -static_cast<nlmsgerr*>(NLMSG_DATA(h))->error);
      if (h->nlmsg_type != RTM_NEWLINK) continue;
      const auto* link = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
      std::string name;
      bool xdp = false;
      int attr_left = static_cast<int>(IFLA_PAYLOAD(h));
      for (const rtattr* a = IFLA_RTA(link); RTA_OK(a, attr_left); a = RTA_NEXT(a, attr_left)) {
        if (a->rta_type == IFLA_IFNAME) name = static_cast<const char*>(RTA_DATA(a));
        if (a->rta_type != IFLA_XDP) continue;
        int nested_left = static_cast<int>(RTA_PAYLOAD(a));
        for (const rtattr* n = static_cast<const rtattr*>(RTA_DATA(a)); RTA_OK(n, nested_left);
             n = RTA_NEXT(n, nested_left))
          if (n->rta_type == IFLA_XDP_ATTACHED) xdp = *static_cast<const uint8_t*>(RTA_DATA(n)) != XDP_ATTACHED_NONE;
      }
      if (xdp) out.push_back({static_cast<uint32_t>(link->ifi_index), name});
    }
  }
}

std::vector<uint32_t> map_ids_of(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) return {};
  std::vector<uint32_t> ids(info.nr_map_ids);
  info = {};
  info.nr_map_ids = static_cast<uint32_t>(ids.size());
  info.map_ids = reinterpret_cast<uintptr_t>(ids.data());
  len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) return {};
  return ids;
}

// Where a rule map with one of these ids is pinned: every BPF file system
// mounted in this mount namespace, searched a few directories deep for a
// pin named like ours.
std::string pin_dir_holding(const std::vector<uint32_t>& map_ids) {
  namespace fs = std::filesystem;
  std::ifstream mounts("/proc/self/mountinfo");
  for (std::string line; std::getline(mounts, line);) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE ...
    std::istringstream in(line);
    std::string id, parent, dev, root, point, field;
    in >> id >> parent >> dev >> root >> point;
    while (in >> field && field != "-") {}
    std::string type;
    in >> type;
    if (type != "bpf") continue;
    // Spaces, tabs, newlines and backslashes in a mount point are octal escapes.
    std::string decoded;
    for (size_t i = 0; i < point.size(); i++) {
      if (point[i] == '\\' && i + 3 < point.size() && std::isdigit(static_cast<unsigned char>(point[i + 1]))) {
        decoded += static_cast<char>(std::stoi(point.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        decoded += point[i];
      }
    }
    point = decoded;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(point, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it.depth() > 3) {
        it.disable_recursion_pending();
        continue;
      }
      if (it->path().filename() != XT_MAP_RULES) continue;
      Fd map(bpf_obj_get(it->path().c_str()));
      if (map && std::ranges::find(map_ids, map_id(map.get())) != map_ids.end())
        return it->path().parent_path().string();
    }
  }
  return "";
}

}  // namespace

std::vector<OtherProgram> other_xthrottles(uint32_t rules_id) {
  std::vector<OtherProgram> out;
  auto links = xdp_links();
  if (!links) return out;
  for (const XdpLink& link : *links) {
    Probe p = probe(link.ifindex, rules_id);
    if (!p.mp) continue;
    auto consider = [&](xdp_program* prog) {
      if (!prog || std::strcmp(xdp_program__name(prog), XT_PROG_NAME) != 0) return;
      if (rules_id && is_ours(prog, rules_id)) return;
      out.push_back({link.ifname, xdp_program__id(prog), pin_dir_holding(map_ids_of(xdp_program__fd(prog)))});
    };
    if (xdp_multiprog__is_legacy(p.mp.get())) {
      consider(xdp_multiprog__main_prog(p.mp.get()));
    } else {
      for (xdp_program* prog = xdp_multiprog__next_prog(nullptr, p.mp.get()); prog;
           prog = xdp_multiprog__next_prog(prog, p.mp.get()))
        consider(prog);
    }
  }
  return out;
}

Result<std::vector<Attachment>> attachments(const State& state) {
  const uint32_t rules_id = map_id(state.rules_fd());
  const uint64_t ns = netns_inode();
  std::vector<Attachment> out;

  auto links = xdp_links();
  if (!links) return std::unexpected(links.error());
  for (const XdpLink& link : *links) {
    Probe p = probe(link.ifindex, rules_id);
    if (!p.ours) continue;
    Attachment a;
    a.ifname = link.ifname;
    a.ifindex = link.ifindex;
    a.mode = p.ours->mode;
    a.multiprog = p.ours->multiprog;
    a.prog_id = p.ours->prog_id;
    a.live = true;
    if (auto mtu = mtu_of(a.ifname)) a.mtu_now = *mtu;
    out.push_back(a);
  }

  // Records say what was asked for, and reveal programs that went missing.
  auto walked = walk_keys<xt_attach_key>(state.attach_fd(), "the attach table", [&](const xt_attach_key& key) {
    xt_attach_info info{};
    if (key.netns_ino != ns || bpf_map_lookup_elem(state.attach_fd(), &key, &info) != 0) return;
    auto live = std::ranges::find_if(out, [&](const Attachment& a) { return a.ifindex == key.ifindex; });
    if (live != out.end()) {
      live->requested = info.requested_mode;
      live->recorded = true;
      live->link = info.link;
      live->mtu = info.mtu;
      return;
    }
    Attachment a;
    a.ifname = info.ifname;
    a.ifindex = key.ifindex;
    a.requested = info.requested_mode;
    a.mode = info.mode;
    a.multiprog = info.multiprog;
    a.prog_id = info.prog_id;
    a.link = info.link;
    a.mtu = info.mtu;
    a.recorded = true;
    out.push_back(a);
  });
  if (!walked) return std::unexpected(walked.error());
  return out;
}

}  // namespace xt
