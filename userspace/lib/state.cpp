// SPDX-License-Identifier: MIT
#include "state.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "map_util.h"
#include "object.h"

namespace xt {
namespace {

constexpr const char* kDefaultPinDir = "/sys/fs/bpf/xthrottle";
constexpr const char* kSysBpffs = "/sys/fs/bpf";

bool on_bpffs(const std::string& path) {
  struct statfs st{};
  return statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

Result<Fd> open_pin(const std::string& dir, const char* name) {
  const std::string path = dir + "/" + name;
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT)
      return system_error("no xthrottle state in " + dir + " (" + name +
                          " is not pinned there): run `xthrottle attach IFACE` or `xthrottle rule add` "
                          "first, or point --pin-dir at the right directory");
    return system_error("cannot open pinned map " + path, err);
  }
  return Fd(fd);
}

// The pinned map must have the layout this build expects; a different one
// means pins left by an incompatible build, which we must not write into.
Result<void> check_layout(int fd, const std::string& name, uint32_t key_size, uint32_t value_size) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(fd, &info, &len); err)
    return system_error("cannot inspect pinned map " + name, err);
  if (info.key_size != key_size || info.value_size != value_size)
    return system_error("pinned map " + name + " has a different layout (key " +
                        std::to_string(info.key_size) + "B, value " + std::to_string(info.value_size) +
                        "B; this build expects " + std::to_string(key_size) + "B and " +
                        std::to_string(value_size) + "B): it was made by an incompatible xthrottle build");
  return {};
}

}  // namespace

std::string default_pin_dir() {
  if (const char* env = std::getenv("XTHROTTLE_PIN_DIR"); env && *env) return env;
  return kDefaultPinDir;
}

Result<void> ensure_bpffs(const std::string& pin_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path existing = fs::path(pin_dir);
  while (!existing.empty() && !fs::exists(existing, ec)) existing = existing.parent_path();
  if (existing.empty()) existing = "/";

  if (!on_bpffs(existing)) {
    const bool under_sys = pin_dir == kSysBpffs || pin_dir.starts_with(std::string(kSysBpffs) + "/");
    if (!under_sys || !fs::is_directory(kSysBpffs, ec))
      return system_error("pin directory " + pin_dir +
                          " is not on a BPF file system: mount one first (mount -t bpf bpf DIR) "
                          "or choose another --pin-dir");
    if (mount("bpf", kSysBpffs, "bpf", 0, "mode=0700") != 0)
      return system_error(std::string("nothing is mounted on ") + kSysBpffs + " and mounting bpffs there failed",
                          errno);
  }
  if (mkdir(pin_dir.c_str(), 0700) != 0 && errno != EEXIST)
    return system_error("cannot create pin directory " + pin_dir, errno);
  return {};
}

Result<DirLock> DirLock::acquire(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return system_error("cannot open " + dir + " to lock it", errno);
  if (flock(fd.get(), LOCK_EX) != 0) return system_error("cannot lock " + dir, errno);
  return DirLock(std::move(fd));
}

bool State::exists(const std::string& pin_dir) {
  // Unreadable is not absent: let open() say why it cannot get in.
  return access((pin_dir + "/" + XT_MAP_RULES).c_str(), F_OK) == 0 || errno != ENOENT;
}

Result<State> State::open(const std::string& pin_dir) {
  State s;
  s.pin_dir_ = pin_dir;
  for (auto [fd, name] : s.named_maps()) {
    auto opened = open_pin(pin_dir, name);
    if (!opened) return std::unexpected(opened.error());
    *fd = std::move(*opened);
  }
  if (auto ok = check_layout(s.rules_.get(), XT_MAP_RULES, sizeof(xt_rule_key), sizeof(xt_rule)); !ok)
    return std::unexpected(ok.error());
  if (auto ok = check_layout(s.buckets_.get(), XT_MAP_BUCKETS, sizeof(xt_bucket_key), sizeof(xt_bucket)); !ok)
    return std::unexpected(ok.error());
  return s;
}

Result<State> State::from_object(const bpf_object* obj) {
  State s;
  for (auto [fd, name] : s.named_maps()) {
    const bpf_map* map = bpf_object__find_map_by_name(obj, name);
    int dup = map ? fcntl(bpf_map__fd(map), F_DUPFD_CLOEXEC, 0) : -1;
    if (dup < 0) return system_error(std::string("the object has no usable map ") + name);
    *fd = Fd(dup);
  }
  return s;
}

Result<State> State::open_or_create(const std::string& pin_dir) {
  if (auto ok = ensure_bpffs(pin_dir); !ok) return std::unexpected(ok.error());
  if (!exists(pin_dir)) {
    auto skel = open_object({.pin_dir = pin_dir});
    if (!skel) return std::unexpected(skel.error());
    // Maps only: loading creates and pins them; the program is not needed.
    bpf_program__set_autoload((*skel)->progs.xthrottle, false);
    if (int err = xthrottle__load(skel->get()); err)
      return system_error("cannot create the maps in " + pin_dir, err);
  }
  return open(pin_dir);
}

Result<std::vector<RuleEntry>> State::rules() const {
  std::vector<RuleEntry> out;
  auto walked = walk_keys<xt_rule_key>(rules_.get(), "the rule table", [&](const xt_rule_key& key) {
    xt_rule rule{};
    if (bpf_map_lookup_elem(rules_.get(), &key, &rule) == 0) out.push_back({cidr_of(key), rule});
  });
  if (!walked) return std::unexpected(walked.error());
  std::ranges::sort(out, [](const RuleEntry& a, const RuleEntry& b) {
    return std::tie(a.cidr.family, a.cidr.addr, a.cidr.len) < std::tie(b.cidr.family, b.cidr.addr, b.cidr.len);
  });
  return out;
}

Result<void> State::sweep_buckets(uint32_t id, const std::function<bool(const xt_bucket_key&)>& drop) {
  std::vector<xt_bucket_key> doomed;
  auto walked = walk_keys<xt_bucket_key>(buckets_.get(), "the bucket table", [&](const xt_bucket_key& key) {
    if (key.rule_id == id && drop(key)) doomed.push_back(key);
  });
  if (!walked) return walked;
  for (const auto& k : doomed)
    if (bpf_map_delete_elem(buckets_.get(), &k) != 0 && errno != ENOENT)
      return system_error("cannot delete a bucket of rule " + std::to_string(id), errno);
  return {};
}

Result<void> State::reset_rule_slot(uint32_t id) {
  std::vector<uint8_t> zeros(static_cast<size_t>(possible_cpus()) * sizeof(xt_rule_stats));
  if (bpf_map_update_elem(rule_stats_.get(), &id, zeros.data(), BPF_ANY) != 0)
    return system_error("cannot reset the counters of rule slot " + std::to_string(id), errno);
  return sweep_buckets(id, [](const xt_bucket_key&) { return true; });
}

Result<bool> State::put_rule(const Cidr& cidr, xt_rule rule) {
  auto current = rules();
  if (!current) return std::unexpected(current.error());
  const xt_rule_key key = rule_key(cidr);
  auto same = std::ranges::find_if(*current, [&](const RuleEntry& e) { return e.cidr == cidr; });

  if (same != current->end()) {
    const xt_rule& old = same->rule;
    rule.id = old.id;
    rule.gen = old.gen + 1;
    rule.prev_gen = old.gen;
    rule.prev_pkt_cost = (old.flags & XT_RULE_PKT_LIMIT) ? old.pkt.cost : 0;
    rule.prev_byte_cost = (old.flags & XT_RULE_BYTE_LIMIT) ? old.bytes.cost : 0;
    // One map update swaps the whole value: packets see the old rule or the new.
    if (bpf_map_update_elem(rules_.get(), &key, &rule, BPF_EXIST) != 0)
      return system_error("cannot replace the rule for " + format_cidr(cidr), errno);
    // Buckets keyed by another --per can never be hit again.
    const bool limit = rule.action == XT_ACT_LIMIT;
    auto swept = sweep_buckets(rule.id, [&](const xt_bucket_key& k) { return !limit || k.per_len != rule.per_len; });
    if (!swept) return std::unexpected(swept.error());
    return true;
  }

  std::set<uint32_t> used;
  for (const auto& e : *current) used.insert(e.rule.id);
  uint32_t id = 0;
  while (id < XT_MAX_RULES && used.contains(id)) id++;
  if (id == XT_MAX_RULES)
    return system_error("the rule table is full (" + std::to_string(XT_MAX_RULES) + " rules): delete one first");
  // The slot may hold a deleted rule's counters or buckets: start clean.
  if (auto ok = reset_rule_slot(id); !ok) return std::unexpected(ok.error());
  rule.id = id;
  rule.gen = 1;
  if (bpf_map_update_elem(rules_.get(), &key, &rule, BPF_NOEXIST) != 0)
    return system_error("cannot add the rule for " + format_cidr(cidr), errno);
  return false;
}

Result<void> State::del_rule(const Cidr& cidr) {
  auto current = rules();
  if (!current) return std::unexpected(current.error());
  auto same = std::ranges::find_if(*current, [&](const RuleEntry& e) { return e.cidr == cidr; });
  if (same == current->end())
    return system_error("no rule for " + format_cidr(cidr) + " (see `xthrottle rule list`)");
  const xt_rule_key key = rule_key(cidr);
  if (bpf_map_delete_elem(rules_.get(), &key) != 0)
    return system_error("cannot delete the rule for " + format_cidr(cidr), errno);
  return sweep_buckets(same->rule.id, [](const xt_bucket_key&) { return true; });
}

Result<std::vector<xt_count>> State::counters() const {
  std::vector<xt_count> out;
  for (uint32_t reason = 0; reason < XT_REASONS; reason++) {
    auto c = percpu_sum<xt_count>(counters_.get(), reason, "counter");
    if (!c) return std::unexpected(c.error());
    out.push_back(*c);
  }
  return out;
}

Result<std::vector<RuleCounters>> State::rule_counters() const {
  auto current = rules();
  if (!current) return std::unexpected(current.error());
  std::vector<RuleCounters> out;
  for (const auto& e : *current) {
    auto s = percpu_sum<xt_rule_stats>(rule_stats_.get(), e.rule.id, "counters of rule slot");
    if (!s) return std::unexpected(s.error());
    out.push_back({e.cidr, e.rule, *s});
  }
  return out;
}

Result<void> State::for_each_bucket(const std::function<void(const BucketEntry&)>& fn) const {
  return walk_keys<xt_bucket_key>(buckets_.get(), "the bucket table", [&](const xt_bucket_key& key) {
    BucketEntry e{key, {}};
    if (bpf_map_lookup_elem(buckets_.get(), &key, &e.bucket) == 0) fn(e);
  });
}

uint32_t State::max_sources() const {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(buckets_.get(), &info, &len) != 0) return 0;
  return info.max_entries;
}

}  // namespace xt
