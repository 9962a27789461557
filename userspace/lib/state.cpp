// SPDX-License-Identifier: MIT
#include "state.h"

#include "ports.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <bit>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <span>

#include "hot.h"
#include "keys.h"
#include "meter.h"
#include "map_util.h"
#include "object.h"
#include "slots.h"

namespace xt {
namespace {

// Maps a loaded object keeps to itself, never pinned: .rodata and .bss, the
// control programs' arguments, and the walks' rules by id.
bool never_pinned(const bpf_map* map) {
  const std::string name = bpf_map__name(map);
  return bpf_map__is_internal(map) || name == XT_MAP_CONTROL || name == XT_MAP_CATCH_UP;
}

// Puts rule id in a walk's set of rules (xt_control.rule_set).
void add_to_rule_set(xt_control& params, uint32_t id) {
  if (id < XT_MAX_RULES) params.rule_set[id / 64] |= uint64_t{1} << (id % 64);
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

Result<uint32_t> tick_rate(const std::string& pin_dir) {
  if (!State::exists(pin_dir)) return measure_hz();
  auto state = State::open(pin_dir);
  if (!state) return std::unexpected(state.error());
  auto cfg = state->config();
  if (!cfg) return std::unexpected(cfg.error());
  return cfg->hz;
}

bool State::exists(const std::string& pin_dir) {
  // Unreadable is not absent: let open() say why it cannot get in.
  return access((pin_dir + "/" + XT_MAP_RULES).c_str(), F_OK) == 0 || errno != ENOENT;
}

// The ABI version of the state in pin_dir, read from its config map before
// anything else is opened: pins of another build may lack maps this one has,
// or have them in other layouts, and must be named for what they are. The
// version has sat at the same offset of xt_config in every layout so far.
// Returns the config map, opened.
static Result<Fd> open_config_checking_abi(const std::string& pin_dir) {
  auto config = open_pin(pin_dir, XT_MAP_CONFIG);
  if (!config) return std::unexpected(config.error());
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(config->get(), &info, &len); err)
    return system_error("cannot inspect pinned map " XT_MAP_CONFIG, err);
  constexpr size_t at = offsetof(xt_config, abi_version);
  std::vector<uint8_t> value(std::max<size_t>(info.value_size, at + sizeof(uint32_t)));
  const uint32_t zero = 0;
  if (info.key_size != sizeof(zero) || info.value_size < at + sizeof(uint32_t) ||
      bpf_map_lookup_elem(config->get(), &zero, value.data()) != 0)
    return system_error("the state in " + pin_dir + " was made by an incompatible xthrottle build (its " +
                        XT_MAP_CONFIG + " has another layout); this build has ABI version " +
                        std::to_string(XT_ABI_VERSION) + " and will not write into it");
  uint32_t version;
  std::memcpy(&version, value.data() + at, sizeof(version));
  if (version != XT_ABI_VERSION)
    return system_error("the state in " + pin_dir + " was made by an xthrottle build with ABI version " +
                        std::to_string(version) + "; this build has version " + std::to_string(XT_ABI_VERSION) +
                        " and will not write into it (detach with that build, remove " + pin_dir +
                        ", then attach with this one)");
  return std::move(*config);
}

Result<State> State::open(const std::string& pin_dir) {
  State s;
  s.pin_dir_ = pin_dir;
  auto config = open_config_checking_abi(pin_dir);
  if (!config) return std::unexpected(config.error());
  s.config_ = std::move(*config);
  for (auto [fd, name] : s.named_maps()) {
    if (*fd) continue;  // the config map, opened above
    auto opened = open_pin(pin_dir, name);
    if (!opened) return std::unexpected(opened.error());
    *fd = std::move(*opened);
  }
  if (auto ok = check_layout(s.rules_.get(), XT_MAP_RULES, sizeof(xt_rule_key), sizeof(xt_rule)); !ok)
    return std::unexpected(ok.error());
  if (auto ok = check_layout(s.buckets_.get(), XT_MAP_BUCKETS, sizeof(uint32_t), sizeof(xt_bucket_set)); !ok)
    return std::unexpected(ok.error());
  if (auto ok = check_layout(s.tags_.get(), XT_MAP_TAGS, sizeof(uint32_t), sizeof(xt_set_tags)); !ok)
    return std::unexpected(ok.error());
  if (auto ok = check_layout(s.marks_.get(), XT_MAP_MARKS, sizeof(uint32_t), sizeof(xt_set_marks)); !ok)
    return std::unexpected(ok.error());
  if (auto ok = check_layout(s.config_.get(), XT_MAP_CONFIG, sizeof(uint32_t), sizeof(xt_config)); !ok)
    return std::unexpected(ok.error());
  if (auto ok = check_layout(s.port_ranges_.get(), XT_MAP_PORT_RANGES, sizeof(uint32_t), sizeof(xt_port_range)); !ok)
    return std::unexpected(ok.error());
  if (auto ok = s.map_config(); !ok) return std::unexpected(ok.error());
  return s;
}

// The settings mapped into memory, where rule changes are published with an
// atomic store. Mapped when the state is opened, so that a change never
// fails halfway for want of it.
Result<void> State::map_config() {
  const size_t len = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, config_.get(), 0);
  if (mem == MAP_FAILED) return system_error("cannot map the state's settings", errno);
  config_mem_ = std::shared_ptr<void>(mem, [len](void* p) { munmap(p, len); });
  return {};
}

bool State::still_pinned() const {
  auto pinned = open_pin(pin_dir_, XT_MAP_RULES);
  return pinned && map_id(pinned->get()) == map_id(rules_.get());
}

bool State::same_state(const State& other) const { return map_id(other.rules_.get()) == map_id(rules_.get()); }

Result<State> State::from_object(const bpf_object* obj) {
  State s;
  for (auto [fd, name] : s.named_maps()) {
    const bpf_map* map = bpf_object__find_map_by_name(obj, name);
    int dup = map ? fcntl(bpf_map__fd(map), F_DUPFD_CLOEXEC, 0) : -1;
    if (dup < 0) return system_error(std::string("the object has no usable map ") + name);
    *fd = Fd(dup);
  }
  // The object's own control programs (the tests' clock applies to them);
  // the object outlives the state.
  const bpf_program* clock = bpf_object__find_program_by_name(obj, "xt_clock");
  const bpf_program* catch_up = bpf_object__find_program_by_name(obj, "xt_catch_up");
  const bpf_program* sweep = bpf_object__find_program_by_name(obj, "xt_sweep");
  const bpf_program* age = bpf_object__find_program_by_name(obj, "xt_age");
  const bpf_program* restore = bpf_object__find_program_by_name(obj, "xt_restore");
  const bpf_map* params = bpf_object__find_map_by_name(obj, XT_MAP_CONTROL);
  const bpf_map* restore_in = bpf_object__find_map_by_name(obj, XT_MAP_RESTORE);
  const bpf_map* catch_up_in = bpf_object__find_map_by_name(obj, XT_MAP_CATCH_UP);
  if (clock && catch_up && sweep && age && restore && params && restore_in && catch_up_in &&
      bpf_program__fd(clock) >= 0 &&
      bpf_program__fd(catch_up) >= 0 && bpf_program__fd(sweep) >= 0 && bpf_program__fd(age) >= 0 &&
      bpf_program__fd(restore) >= 0) {
    auto own = [&] {
      return Control{Skeleton(),
                     bpf_program__fd(clock),
                     bpf_program__fd(catch_up),
                     bpf_program__fd(sweep),
                     bpf_program__fd(age),
                     bpf_program__fd(restore),
                     bpf_map__fd(params),
                     bpf_map__fd(restore_in),
                     bpf_map__fd(catch_up_in)};
    };
    s.control_ = own();
    s.age_control_ = own();
    s.restore_control_ = own();
  }
  if (auto ok = s.map_config(); !ok) return std::unexpected(ok.error());
  return s;
}

Result<const State::Control*> State::control(Controls which) const {
  std::optional<Control>& slot = which == Controls::Restore ? restore_control_
                                 : which == Controls::Age   ? age_control_
                                                            : control_;
  if (slot) return &*slot;
  auto cfg = config();
  if (!cfg) return std::unexpected(cfg.error());
  auto skel = open_object(options_for_state(pin_dir_, *cfg));
  if (!skel) return std::unexpected(skel.error());
  auto* progs = &(*skel)->progs;
  auto ok = which == Controls::Restore ? load_only(skel->get(), {progs->xt_restore}, "the restore program")
            : which == Controls::Age   ? load_only(skel->get(), {progs->xt_age}, "the ageing program")
                                       : load_only(skel->get(), {progs->xt_clock, progs->xt_catch_up, progs->xt_sweep},
                                                   "the control programs");
  if (!ok) return std::unexpected(ok.error());
  Control c;
  // A program this object did not load has a negative fd, as Control's
  // defaults do.
  c.clock = bpf_program__fd(progs->xt_clock);
  c.catch_up = bpf_program__fd(progs->xt_catch_up);
  c.sweep = bpf_program__fd(progs->xt_sweep);
  c.age = bpf_program__fd(progs->xt_age);
  c.restore = bpf_program__fd(progs->xt_restore);
  c.params = bpf_map__fd((*skel)->maps.xt_ctl);
  c.restore_in = bpf_map__fd((*skel)->maps.xt_restore_in);
  c.catch_up_in = bpf_map__fd((*skel)->maps.xt_catch_up_in);
  c.owner = std::move(*skel);
  slot = std::move(c);
  return &*slot;
}

Result<State> State::open_or_create(const std::string& pin_dir, const Create& create) {
  if (auto ok = ensure_bpffs(pin_dir); !ok) return std::unexpected(ok.error());
  if (exists(pin_dir)) {
    auto state = open(pin_dir);
    if (!state) return state;
    auto cfg = state->config();
    if (!cfg) return std::unexpected(cfg.error());
    if (auto ok = check_same_table(*cfg, create.table, pin_dir); !ok) return std::unexpected(ok.error());
    return state;
  }
  const uint32_t size = create.table.max_sources.value_or(XT_DEFAULT_MAX_SOURCES);
  auto hz = create.hz ? Result<uint32_t>(*create.hz) : measure_hz();
  if (!hz) return std::unexpected(hz.error());
  // Create the maps unpinned, write their settings, and only then pin them,
  // the rule table (whose pin says "state exists") last: a failure on the way
  // leaves no half-made state behind.
  auto skel = open_object({.pin_dir = std::nullopt, .test_clock = false, .max_sources = size});
  if (!skel) return std::unexpected(skel.error());
  if (auto ok = load_only(skel->get(), {},
                          "the maps for a table of " + std::to_string(size) + " sources (about " +
                              std::to_string(size / 1024 * 130 / 1024) + " MiB)");
      !ok)
    return std::unexpected(ok.error());
  auto fresh = from_object((*skel)->obj);
  if (!fresh) return std::unexpected(fresh.error());
  if (auto ok = fresh->init_config(*hz, size, create.table.idle_seconds.value_or(XT_DEFAULT_IDLE_SECONDS)); !ok)
    return std::unexpected(ok.error());
  std::vector<bpf_map*> order;
  bpf_map* map;
  bpf_object__for_each_map(map, (*skel)->obj) {
    if (never_pinned(map)) continue;
    if (std::string(bpf_map__name(map)) == XT_MAP_RULES)
      order.push_back(map);
    else
      order.insert(order.begin(), map);
  }
  // Pins of ours without the rule table's are what a creation or a removal
  // cut short left (a kill between two pins): no state, and nothing can
  // use them. Left there, every later creation failed on the first one
  // ("File exists"), and nothing took them away.
  for (bpf_map* m : order)
    if (const std::string path = pin_dir + "/" + bpf_map__name(m); unlink(path.c_str()) != 0 && errno != ENOENT)
      return system_error("cannot remove " + path + ", left by a state made or removed halfway", errno);
  for (bpf_map* m : order) {
    const std::string path = pin_dir + "/" + bpf_map__name(m);
    if (int err = bpf_map__pin(m, path.c_str()); err) {
      for (bpf_map* done : order) {
        if (done == m) break;
        unlink((pin_dir + "/" + bpf_map__name(done)).c_str());
      }
      return system_error("cannot pin " + path, err);
    }
  }
  return open(pin_dir);
}

Result<void> State::unpin(const std::string& pin_dir) {
  auto skel = open_object({.pin_dir = std::nullopt, .test_clock = false});
  if (!skel) return std::unexpected(skel.error());
  std::vector<std::string> names = {XT_MAP_RULES};
  bpf_map* map;
  bpf_object__for_each_map(map, (*skel)->obj) {
    if (!never_pinned(map) && bpf_map__name(map) != std::string(XT_MAP_RULES)) names.push_back(bpf_map__name(map));
  }
  for (const std::string& name : names)
    if (unlink((pin_dir + "/" + name).c_str()) != 0 && errno != ENOENT)
      return system_error("cannot remove " + pin_dir + "/" + name, errno);
  return {};
}

size_t table_slots(const xt_config& cfg) {
  return (size_t{1} << (cfg.bucket_bits & 31)) * XT_BUCKET_WAYS;
}

uint32_t slot_key_hash(const xt_config& cfg, const xt_bucket_key& key) {
  return static_cast<uint32_t>(xt_hash_bucket(cfg.hash_key, &key)) | 1;
}

Result<void> State::init_config(uint32_t hz, uint32_t max_sources, uint32_t idle_seconds) {
  xt_config cfg{};
  cfg.epoch = 1;
  cfg.hz = hz;
  cfg.bucket_bits = static_cast<uint32_t>(std::countr_zero(bucket_sets_for(max_sources)));
  const IdleWindow idle = idle_window_for(hz, idle_seconds);
  cfg.used_shift = idle.shift;
  cfg.used_idle = idle.units;
  cfg.abi_version = XT_ABI_VERSION;
  cfg.max_sources = static_cast<uint32_t>(std::bit_ceil(max_sources));  // what the table holds
  cfg.hot_bits = hot_bits_for(max_sources);
  cfg.known_bits = static_cast<uint32_t>(std::countr_zero(known_sets_for(max_sources)));
  if (getrandom(cfg.hash_key, sizeof(cfg.hash_key), 0) != static_cast<ssize_t>(sizeof(cfg.hash_key)))
    return system_error("cannot draw the state's hash key", errno);
  if (getrandom(cfg.cookie_key, sizeof(cfg.cookie_key), 0) != static_cast<ssize_t>(sizeof(cfg.cookie_key)))
    return system_error("cannot draw the state's cookie key", errno);
  auto events = make_limit(XT_EVENTS_PER_SECOND, hz, XT_EVENTS_PER_SECOND, hz, "events");
  if (!events) return std::unexpected(events.error());
  cfg.events = *events;
  const uint32_t zero = 0;
  if (bpf_map_update_elem(config_.get(), &zero, &cfg, BPF_ANY) != 0)
    return system_error("cannot write the state's settings", errno);
  return {};
}

Result<xt_config> State::config() const {
  xt_config cfg{};
  const uint32_t zero = 0;
  if (bpf_map_lookup_elem(config_.get(), &zero, &cfg) != 0)
    return system_error("cannot read the state's settings", errno);
  if (cfg.hz == 0) return system_error("the state in " + pin_dir_ + " was never initialised (no tick rate)");
  return cfg;
}

Result<xt_meta> State::meta() const {
  xt_meta m{};
  const uint32_t zero = 0;
  if (bpf_map_lookup_elem(meta_.get(), &zero, &m) != 0) return system_error("cannot read " XT_MAP_META, errno);
  return m;
}

Result<void> State::set_meta(const xt_meta& m) {
  const uint32_t zero = 0;
  if (bpf_map_update_elem(meta_.get(), &zero, &m, BPF_ANY) != 0) return system_error("cannot write " XT_MAP_META, errno);
  return {};
}

Result<uint64_t> State::now() const {
  if (control_) return program_clock(control_->clock);
  // The clock alone: `status` and the metrics read it on every call, and
  // loading the other control programs through the verifier took ~50 ms.
  if (!clock_) {
    auto cfg = config();
    if (!cfg) return std::unexpected(cfg.error());
    auto skel = open_object(options_for_state(pin_dir_, *cfg));
    if (!skel) return std::unexpected(skel.error());
    if (auto ok = load_only(skel->get(), {(*skel)->progs.xt_clock}, "the clock program"); !ok)
      return std::unexpected(ok.error());
    clock_ = std::move(*skel);
  }
  return program_clock(bpf_program__fd((*clock_)->progs.xt_clock));
}

Result<void> State::publish(const std::vector<RuleEntry>* rules, std::optional<Cidr> at_least) {
  auto cfg = config();
  if (!cfg) return std::unexpected(cfg.error());
  // Without the rules: the longest prefixes published now, widened.
  uint8_t longest_v4 = rules ? 0 : cfg->longest_v4, longest_v6 = rules ? 0 : cfg->longest_v6;
  auto widen = [&](const Cidr& c) {
    uint8_t& longest = c.family == XT_FAMILY_V4 ? longest_v4 : longest_v6;
    longest = std::max(longest, c.len);
  };
  if (rules)
    for (const auto& e : *rules) widen(e.cidr);
  if (at_least) widen(*at_least);
  if (!config_mem_) return system_error("the state's settings are not mapped: cannot publish a rule change");
  // One atomic store: no packet sees the new epoch with the old longest
  // prefixes, or the reverse.
  static_assert(offsetof(xt_config, epoch) == 0 && offsetof(xt_config, longest_v6) < sizeof(uint64_t));
  std::atomic_ref<uint64_t>(*static_cast<uint64_t*>(config_mem_.get()))
      .store(XT_PUB_WORD(cfg->epoch + 1, longest_v4, longest_v6), std::memory_order_release);
  return {};
}

// The kernel's own account of a map's memory (fdinfo "memlock"): with what
// a hash adds to each key and value, and its buckets. nullopt if fd is not
// a map's (a program's fdinfo has a memlock too, but no map_type).
static std::optional<uint64_t> map_memlock(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  bool map = false;
  std::optional<uint64_t> memlock;
  for (std::string line; std::getline(in, line);) {
    map = map || line.starts_with("map_type:");
    if (line.starts_with("memlock:")) memlock = std::stoull(line.substr(8));
  }
  return map ? memlock : std::nullopt;
}

std::map<std::string, uint64_t> State::map_memory() const {
  std::map<std::string, uint64_t> out;
  std::set<uint32_t> seen;  // a map pinned twice counts once
  if (pin_dir_.empty()) return out;
  // The directory's own pins only (lock_down allows nothing else in it), and
  // never a throw: a serve scraping this must not stop for an odd entry.
  std::error_code ec;
  for (std::filesystem::directory_iterator it(pin_dir_, std::filesystem::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    const Fd fd(bpf_obj_get(it->path().c_str()));
    if (!fd) continue;  // gone
    const auto memlock = map_memlock(fd.get());
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (!memlock || bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0 || !seen.insert(info.id).second)
      continue;  // a program, or counted
    out[info.name] += *memlock;
  }
  return out;
}

// The trie answers a lookup with the longest prefix that covers the key:
// the rule of the key's own prefix only if its length is the key's.
std::optional<xt_rule> State::rule_at(const xt_rule_key& key) const {
  xt_rule rule{};
  if (bpf_map_lookup_elem(rules_.get(), &key, &rule) != 0 || rule.src_len != cidr_of(key).len ||
      rule.level != key.level)
    return std::nullopt;
  return rule;
}

std::optional<xt_rule> State::rule_of(const Cidr& cidr, const Match& match) const {
  return rule_at(rule_key(cidr, match));
}

Result<std::vector<RuleEntry>> State::rules() const {
  // Another command may delete or replace rules while this reads them (no
  // lock: status and serve's scrapes read beside rule changes). The trie
  // answers a lookup with the longest prefix that covers the key, so a key
  // deleted since the walk found it comes back as a shorter rule's, which
  // the rule's own prefix length tells; and a rule deleted between its
  // lookup and its record's read leaves the record empty, or another
  // rule's once its slot is taken again, which a second lookup tells. Such
  // a rule is left out, as gone.
  std::vector<RuleEntry> out;
  std::vector<xt_rule_key> keys;
  auto walked = walk_keys<xt_rule_key>(rules_.get(), "the rule table", [&](const xt_rule_key& key) {
    auto rule = rule_at(key);
    if (!rule) return;
    RuleEntry e{cidr_of(key), *rule, {}};
    e.spec.match = match_of(key);
    out.push_back(e);
    keys.push_back(key);
  });
  if (!walked) return std::unexpected(walked.error());
  // What the operator wrote, from the controller's own record.
  std::vector<bool> gone(out.size());
  for (size_t i = 0; i < out.size(); i++) {
    RuleEntry& e = out[i];
    const std::string name = rule_name(e.cidr, e.spec.match);
    char text[XT_RULE_TEXT_SIZE] = {};
    if (bpf_map_lookup_elem(rule_text_.get(), &e.rule.id, text) != 0)
      return system_error("cannot read how rule " + name + " was written", errno);
    auto now = rule_at(keys[i]);
    if (!now || now->id != e.rule.id) {
      gone[i] = true;
      continue;
    }
    auto spec = spec_from_options_text(e.cidr, std::string_view(text, strnlen(text, sizeof(text))));
    if (!spec || spec->match != e.spec.match)
      return system_error("the record of rule " + name + " does not read back (" +
                          (spec ? "it names another match" : spec.error().message) + "): the state is damaged");
    e.spec = *spec;
  }
  for (size_t i = out.size(); i-- > 0;)
    if (gone[i]) out.erase(out.begin() + static_cast<std::ptrdiff_t>(i));
  std::ranges::sort(out, [](const RuleEntry& a, const RuleEntry& b) {
    const xt_rule_key ka = rule_key(a.cidr, a.spec.match), kb = rule_key(b.cidr, b.spec.match);
    return std::tie(a.cidr.family, a.cidr.addr, a.cidr.len, ka.level, ka.proto, ka.port_lo, ka.port_hi) <
           std::tie(b.cidr.family, b.cidr.addr, b.cidr.len, kb.level, kb.proto, kb.port_lo, kb.port_hi);
  });
  return out;
}

// Runs a control program on params (through BPF_PROG_TEST_RUN) and returns
// what it wrote back; `what` names its work in errors.
Result<xt_control> State::run_control(const Control& c, int prog, const xt_control& params,
                                      const std::string& what) const {
  const uint32_t zero = 0;
  if (bpf_map_update_elem(c.params, &zero, &params, BPF_ANY) != 0)
    return system_error("cannot set up " + what, errno);
  unsigned char frame[64] = {};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = sizeof(frame), .repeat = 1);
  if (int err = bpf_prog_test_run_opts(prog, &opts); err || opts.retval != XDP_PASS)
    return system_error("cannot run " + what, err ? err : -EINVAL);
  xt_control out{};
  if (bpf_map_lookup_elem(c.params, &zero, &out) != 0)
    return system_error("cannot read the result of " + what, errno);
  return out;
}

Result<bool> State::sweep_buckets(uint32_t id, uint32_t keep_per_len, const xt_rule* catch_up) {
  auto c = control();
  if (!c) return std::unexpected(c.error());
  xt_control params{};
  params.sweep_rule = id;
  params.keep_per_len = keep_per_len;
  if (catch_up) {
    params.rule = *catch_up;
    params.sweep_catch_up = 1;
  }
  // What was freed stays freed; a way or a word lost to the data path is
  // tried again in the next round.
  return run_rounds(**c, (*c)->sweep, params, "the sweep of rule " + std::to_string(id) + "'s buckets");
}

Result<bool> State::sweep_rules(const std::vector<uint32_t>& ids) {
  if (ids.empty()) return true;
  auto c = control();
  if (!c) return std::unexpected(c.error());
  xt_control params{};
  params.sweep_rule = XT_SWEEP_SET;
  params.keep_per_len = XT_SWEEP_ALL;
  for (uint32_t id : ids) add_to_rule_set(params, id);
  return run_rounds(**c, (*c)->sweep, params, "the sweep of " + std::to_string(ids.size()) + " rules' buckets");
}

Result<bool> State::run_rounds(const Control& c, int prog, const xt_control& params, const std::string& what) const {
  for (int round = 0; round < 8; round++) {
    auto out = run_control(c, prog, params, what);
    if (!out) return std::unexpected(out.error());
    if (!out->contended) return true;
  }
  return false;
}

Result<State::Aged> State::age_stamps() {
  auto c = control(Controls::Age);
  if (!c) return std::unexpected(c.error());
  auto out = run_control(**c, (*c)->age, xt_control{}, "the ageing of the table's idle stamps");
  if (!out) return std::unexpected(out.error());
  return Aged{.stamps = out->aged, .hot = out->hot_aged};
}

Result<State::FairRefresh> State::refresh_fair_words(uint32_t from, uint32_t most) {
  auto rules = this->rules();
  if (!rules) return std::unexpected(rules.error());
  std::vector<const RuleEntry*> totals;
  for (const auto& r : *rules)
    if ((r.rule.flags & XT_RULE_TOTAL) && r.rule.id >= from) totals.push_back(&r);
  std::ranges::sort(totals, {}, [](const RuleEntry* r) { return r->rule.id; });
  step();
  FairRefresh out;
  for (const RuleEntry* listed : totals) {
    const uint32_t id = listed->rule.id;
    if (most-- == 0) {
      out.next = id;
      break;
    }
    // The epoch of the rule in the id, then the rule itself, read again:
    // the program walks only while the id still holds the rule of that
    // epoch, so a rule that takes the id after the epoch is read is left
    // alone. Run with the rule read at first, a rule that took the id
    // before had both its epoch checked and its windows read as the old
    // total's fair words.
    xt_rule_state st{};
    if (bpf_map_lookup_elem(rule_state_.get(), &id, &st) != 0) continue;  // deleted since
    auto rule = rule_of(listed->cidr, listed->spec.match);
    if (!rule || rule->id != id || !(rule->flags & XT_RULE_TOTAL)) continue;
    auto c = control();
    if (!c) return std::unexpected(c.error());
    xt_control params{};
    params.rule = *rule;
    params.fair_only = 1;
    params.rule_epoch = st.created_epoch;
    auto ran = run_control(**c, (*c)->catch_up, params,
                           "the refresh of rule " + std::to_string(id) + "'s fair words");
    if (!ran) return std::unexpected(ran.error());
    out.refreshed += ran->fair_refreshed;
  }
  return out;
}

Result<void> State::catch_up_buckets(const xt_rule& rule, uint32_t bare_too) {
  auto c = control();
  if (!c) return std::unexpected(c.error());
  xt_control params{};
  params.rule = rule;
  params.catch_up_bare = bare_too;
  // The program walks the table's sets in order (an array: an eviction
  // under the walk moves nothing), so a bucket it passed is up to date but
  // for a word the data path kept winning the race for: it counts those,
  // and another round tries them again. (A userspace walk used to confirm
  // it afterwards, from when the table was the kernel's hash map, whose
  // walk an eviction could throw off: 0.13 s of a replacement's 0.35 at 4M
  // sources.)
  auto settled =
      run_rounds(**c, (*c)->catch_up, params, "the catch-up of rule " + std::to_string(rule.id) + "'s buckets");
  if (!settled) return std::unexpected(settled.error());
  if (*settled) return {};
  return system_error("cannot bring the buckets of rule " + std::to_string(rule.id) +
                      " up to date: the data path kept winning the race for them; try again");
}

Result<void> State::write_rule_text(uint32_t id, const RuleSpec& spec) {
  const std::string text = options_text(spec);
  char value[XT_RULE_TEXT_SIZE] = {};
  if (text.size() >= sizeof(value))
    return usage_error("the options of the rule for " + rule_name(spec.cidr, spec.match) + " are too long to record (" +
                       std::to_string(text.size()) + " bytes; at most " + std::to_string(sizeof(value) - 1) + ")");
  std::memcpy(value, text.data(), text.size());
  if (bpf_map_update_elem(rule_text_.get(), &id, value, BPF_ANY) != 0)
    return system_error("cannot record the rule for " + rule_name(spec.cidr, spec.match), errno);
  return {};
}

Result<uint32_t> redirect_ifindex(const RuleSpec& spec) {
  if (!spec.redirect) return 0;
  const uint32_t ifindex = if_nametoindex(spec.redirect->c_str());
  if (!ifindex)
    return system_error("cannot send the drops of the rule for " + rule_name(spec.cidr, spec.match) + " out " +
                        *spec.redirect + ": this network namespace has no such interface");
  return ifindex;
}

Result<std::array<uint32_t, XT_OVER_KINDS>> State::redirects_of(uint32_t id) const {
  std::array<uint32_t, XT_OVER_KINDS> out{};
  for (int k = 0; k < XT_OVER_KINDS; k++) {
    const uint32_t key = XT_REDIRECT_KEY(id, k);
    if (bpf_map_lookup_elem(redirect_.get(), &key, &out[k]) != 0) {
      if (errno != ENOENT) return system_error("cannot read " XT_MAP_REDIRECT, errno);
      out[k] = 0;
    }
  }
  return out;
}

Result<bool> State::redirect_gone(const RuleEntry& e) const {
  if (!e.spec.redirect) return false;
  auto to = redirects_of(e.rule.id);
  if (!to) return std::unexpected(to.error());
  const uint32_t now = if_nametoindex(e.spec.redirect->c_str());
  const uint8_t kinds = over_kinds_of(e.spec);
  for (int k = 0; k < XT_OVER_KINDS; k++)
    if ((kinds >> k & 1) && (!(*to)[k] || (*to)[k] != now)) return true;
  return false;
}

Result<void> State::set_redirects(uint32_t id, const RuleSpec& spec, uint32_t ifindex, bool had) {
  if (!config_mem_) return system_error("the state's settings are not mapped: cannot change where drops go");
  std::atomic_ref<uint32_t> redirects(static_cast<xt_config*>(config_mem_.get())->redirects);
  const uint8_t kinds = ifindex ? over_kinds_of(spec) : 0;
  auto before = redirects_of(id);
  if (!before) return std::unexpected(before.error());
  if (kinds) redirects.store(1, std::memory_order_release);
  bool emptied = false;
  for (int k = 0; k < XT_OVER_KINDS; k++) {
    const uint32_t key = XT_REDIRECT_KEY(id, k);
    if (kinds >> k & 1) {
      if (bpf_map_update_elem(redirect_.get(), &key, &ifindex, BPF_ANY) != 0)
        return system_error("cannot send the " + std::string(over_kind_name(k)) + " drops of the rule for " +
                                rule_name(spec.cidr, spec.match) + " out " + spec.redirect.value_or("?"),
                            errno);
    } else if ((*before)[k]) {
      if (bpf_map_delete_elem(redirect_.get(), &key) != 0 && errno != ENOENT)
        return system_error("cannot stop sending drops of rule slot " + std::to_string(id) + " elsewhere", errno);
      emptied = true;
    }
  }
  // The last key emptied (here, or by the kernel when the interface of a
  // rule that redirected went)? Then a drop needs no lookup again. (A hash:
  // its first key, if any, says.)
  if (kinds || !(emptied || had) || !redirects.load(std::memory_order_acquire)) return {};
  uint32_t first = 0;
  if (bpf_map_get_next_key(redirect_.get(), nullptr, &first) != 0 && errno == ENOENT)
    redirects.store(0, std::memory_order_release);
  return {};
}

namespace {

xt_config& config_in(const std::shared_ptr<void>& mem) { return *static_cast<xt_config*>(mem.get()); }

}  // namespace

Result<void> State::start_capture(const CaptureSettings& settings) {
  if (!config_mem_) return system_error("the state's settings are not mapped: cannot capture");
  xt_config& cfg = config_in(config_mem_);
  std::atomic_ref<uint32_t>(cfg.capture_reasons).store(0, std::memory_order_release);
  auto now = this->now();
  if (!now) return std::unexpected(now.error());
  const uint32_t zero = 0;
  const uint64_t full = xt_full_word(&settings.limit, *now, 0);
  if (bpf_map_update_elem(capture_budget_.get(), &zero, &full, BPF_ANY) != 0)
    return system_error("cannot reset the capture's sampling budget", errno);
  cfg.capture_rule = settings.rule;
  cfg.capture_snaplen = settings.snaplen;
  cfg.capture_limit = settings.limit;
  capture_reasons_ = settings.reasons;
  return renew_capture();
}

Result<void> State::renew_capture() {
  if (!config_mem_) return system_error("the state's settings are not mapped: cannot capture");
  auto now = this->now();
  if (!now) return std::unexpected(now.error());
  xt_config& cfg = config_in(config_mem_);
  std::atomic_ref<__u64>(cfg.capture_until)
      .store(*now + static_cast<uint64_t>(cfg.hz) * XT_CAPTURE_LEASE_SECONDS, std::memory_order_release);
  // The reasons again after the end: a capture the data path ended (its
  // reader was late, or a packet read an older end) takes up again.
  std::atomic_ref<uint32_t>(cfg.capture_reasons).store(capture_reasons_, std::memory_order_release);
  return {};
}

void State::stop_capture() {
  capture_reasons_ = 0;
  if (config_mem_) std::atomic_ref<uint32_t>(config_in(config_mem_).capture_reasons).store(0, std::memory_order_release);
}

namespace {

xt_ban_key ban_key(const Cidr& cidr) {
  xt_ban_key key{};
  key.prefixlen = XT_BAN_KEY_BITS + cidr.len;
  key.family = cidr.family;
  std::memcpy(key.addr, cidr.addr.data(), sizeof(key.addr));
  return key;
}

}  // namespace

Result<void> State::add_ban(const Cidr& cidr, uint64_t seconds) {
  auto now = this->now();
  if (!now) return std::unexpected(now.error());
  auto cfg = config();
  if (!cfg) return std::unexpected(cfg.error());
  // A new epoch empties the hot cache (put_bans): a source it holds for a
  // deny rule would otherwise go on being dropped as denied (and sent to
  // the rule's --over interface) until the rules next change.
  return put_bans({{cidr, xt_ban{*now + seconds * cfg->hz, *now, 0, 0}}}, true);
}

Result<void> State::put_ban(const Cidr& cidr, xt_ban ban) { return put_bans({{cidr, ban}}); }

Result<void> State::put_bans(const std::vector<std::pair<Cidr, xt_ban>>& bans, bool new_epoch) {
  if (bans.empty()) return {};
  if (!config_mem_) return system_error("the state's settings are not mapped: cannot ban");
  auto now = this->now();
  if (!now) return std::unexpected(now.error());
  if (auto ok = tidy_bans(*now); !ok) return ok;
  // Looked for before the bans go in, so their first packets find them.
  std::atomic_ref<uint32_t>(config_in(config_mem_).bans).store(1, std::memory_order_release);
  bool replaced = false;
  for (const auto& [cidr, given] : bans) {
    const xt_ban_key key = ban_key(cidr);
    xt_ban ban = given;
    ban.prefixlen = key.prefixlen;
    auto refused = [&] {
      return system_error("cannot ban " + format_cidr(cidr) +
                              (errno == ENOSPC || errno == E2BIG ? " (the ban table holds " +
                                                                       std::to_string(XT_MAX_BANS) + " bans)"
                                                                 : std::string()),
                          errno);
    };
    auto fail = [&] {
      auto e = refused();
      if (replaced) (void)publish(nullptr);  // the bans replaced so far still need it
      return e;
    };
    if (bpf_map_update_elem(bans_.get(), &key, &ban, BPF_NOEXIST) == 0) continue;
    if (errno != EEXIST) return fail();
    if (bpf_map_update_elem(bans_.get(), &key, &ban, BPF_ANY) != 0) return fail();
    replaced = true;
  }
  // A ban of a prefix replaced: the hot cache may drop its sources until
  // the old one's end, so a new epoch empties it (and for new ones, where
  // asked: above).
  return replaced || new_epoch ? publish(nullptr) : Result<void>{};
}

Result<void> State::del_ban(const Cidr& cidr) {
  const xt_ban_key key = ban_key(cidr);
  auto now = this->now();
  if (!now) return std::unexpected(now.error());
  auto none = [&] { return system_error("no ban for " + format_cidr(cidr) + " (see `xthrottle bans`)"); };
  // One that has ended is no ban to lift (`bans` does not list it): it goes
  // all the same, and the answer is the one for no ban at all. (A rule's
  // new ban of the prefix between the read and the delete would go with
  // it: the window of a syscall, the same the data path's own delete of an
  // ended ban has.)
  xt_ban was{};
  if (bpf_map_lookup_elem(bans_.get(), &key, &was) == 0 && ban_ended(was, *now)) {
    (void)bpf_map_delete_elem(bans_.get(), &key);
    return none();
  }
  if (bpf_map_delete_elem(bans_.get(), &key) != 0) {
    if (errno == ENOENT) return none();
    return system_error("cannot lift the ban of " + format_cidr(cidr), errno);
  }
  // The hot cache drops its sources until the ban's end: a new epoch.
  if (auto ok = publish(nullptr); !ok) return ok;
  return tidy_bans(*now);
}

// In batches: a key a syscall (two, with its value), 65,536 bans took 0.77 s
// to list on a guest where a syscall costs microseconds, and the fleet reads
// them at every exchange.
// A value is read by the trie's own lookup, the longest prefix holding the
// key: for a ban deleted between the walk's finding its key and reading
// it, that is the ban of a shorter prefix around it, which would be listed
// under the deleted one's prefix. Each ban holds its own prefix length: one
// that is not its key's is skipped.
Result<void> State::for_each_ban(const std::function<void(const xt_ban_key&, const xt_ban&)>& fn) const {
  return walk_batches<xt_ban_key, xt_ban>(bans_.get(), "the bans", [&](const xt_ban_key& key, const xt_ban& ban) {
    if (ban.prefixlen == key.prefixlen) fn(key, ban);
  });
}

Result<void> State::clear_ended_bans() {
  auto now = this->now();
  if (!now) return std::unexpected(now.error());
  return tidy_bans(*now);
}

Result<std::vector<State::Ban>> State::bans() const {
  auto now = this->now();
  if (!now) return std::unexpected(now.error());
  return bans(*now);
}

Result<std::vector<State::Ban>> State::bans(uint64_t now) const {
  std::vector<Ban> out;
  // A trie's walk starts over from its first key when the key it stands on
  // is deleted meanwhile (a ban ended, lifted, or cleared by the data
  // path): a ban seen twice is listed once.
  std::set<std::array<uint8_t, sizeof(xt_ban_key)>> seen;
  auto walked = for_each_ban([&](const xt_ban_key& key, const xt_ban& ban) {
    if (ban_ended(ban, now)) return;
    std::array<uint8_t, sizeof(xt_ban_key)> raw;
    std::memcpy(raw.data(), &key, sizeof(key));
    if (!seen.insert(raw).second) return;
    Cidr cidr;
    cidr.family = key.family;
    cidr.len = static_cast<uint8_t>(key.prefixlen - XT_BAN_KEY_BITS);
    std::memcpy(cidr.addr.data(), key.addr, sizeof(key.addr));
    out.push_back({cidr, ban});
  });
  if (!walked) return std::unexpected(walked.error());
  return out;
}

Result<void> State::tidy_bans(uint64_t now) {
  std::vector<xt_ban_key> ended;
  size_t left = 0;
  auto walked = for_each_ban([&](const xt_ban_key& key, const xt_ban& ban) {
    if (ban_ended(ban, now))
      ended.push_back(key);
    else
      left++;
  });
  if (!walked) return walked;
  for (const auto& k : ended) {
    // Looked at again just before: the data path may have banned the
    // prefix anew since the walk (a ban replaces an ended one in place).
    xt_ban ban{};
    if (bpf_map_lookup_elem(bans_.get(), &k, &ban) != 0) continue;
    if (!ban_ended(ban, now)) {
      left++;
      continue;
    }
    (void)bpf_map_delete_elem(bans_.get(), &k);
  }
  if (left || !config_mem_) return {};
  // No ban left; but a rule that bans (--ban-for) needs the table read.
  auto live = rules();
  if (!live) return std::unexpected(live.error());
  if (std::ranges::none_of(*live, [](const RuleEntry& e) { return e.spec.ban_for.has_value(); }))
    std::atomic_ref<uint32_t>(config_in(config_mem_).bans).store(0, std::memory_order_release);
  return {};
}

Result<void> State::reset_rule_slot(uint32_t id, uint32_t epoch) {
  std::vector<uint8_t> zeros(static_cast<size_t>(possible_cpus()) * sizeof(xt_rule_stats));
  if (bpf_map_update_elem(rule_stats_.get(), &id, zeros.data(), BPF_ANY) != 0)
    return system_error("cannot reset the counters of rule slot " + std::to_string(id), errno);
  xt_rule_state fresh{};
  fresh.created_epoch = epoch;
  if (bpf_map_update_elem(rule_state_.get(), &id, &fresh, BPF_ANY) != 0)
    return system_error("cannot reset the new-source budget of rule slot " + std::to_string(id), errno);
  // (Its redirects are made the new rule's by add_prepared, which empties
  // the keys of a kind it does not send; its buckets were freed when the
  // slot was made ready.)
  return {};
}

Result<State::SlotsReady> State::ready_new_slots(size_t n) {
  ready_.clear();
  SlotsReady ready(this);
  if (n == 0) return ready;
  auto used = rule_slots_in_use();
  if (!used) return std::unexpected(used.error());
  std::vector<uint32_t> ids;
  for (uint32_t id = 0; id < XT_MAX_RULES && ids.size() < n; id++)
    if (!(*used)[id]) ids.push_back(id);
  // More rules than free slots: the rest take none, and put_rule says
  // the table is full. A bucket a slot's last rule left would be read by
  // the new one, whose generations start where that one's did, in its
  // units.
  auto swept = sweep_rules(ids);
  if (!swept) return std::unexpected(swept.error());
  if (!*swept)
    return system_error("cannot free the buckets " +
                        (ids.size() == 1 ? "rule slot " + std::to_string(ids[0]) + " kept of its last rule"
                                         : std::to_string(ids.size()) + " free rule slots kept of their last rules") +
                        ": the data path kept winning the race for them; try again");
  ready_.assign(ids.rbegin(), ids.rend());
  return ready;
}

std::optional<uint32_t> State::take_ready_slot() {
  if (ready_.empty()) return std::nullopt;
  const uint32_t id = ready_.back();
  ready_.pop_back();
  // Still free (no record): nothing else changes rules under the pin
  // directory's lock, but a caller without it could have taken the slot.
  char text[XT_RULE_TEXT_SIZE] = {};
  if (bpf_map_lookup_elem(rule_text_.get(), &id, text) != 0 || text[0] != 0) {
    ready_.clear();
    return std::nullopt;
  }
  return id;
}

namespace {

// A whole array map of `entries` values, in key order (walk_batches).
template <typename T>
Result<std::vector<T>> read_array(int fd, uint32_t entries, const char* what) {
  std::vector<T> values(entries);
  auto walked = walk_batches<uint32_t, T>(fd, what, [&](uint32_t key, const T& value) {
    if (key < entries) values[key] = value;
  });
  if (!walked) return std::unexpected(walked.error());
  return values;
}

// The range table as the pinned map holds it.
Result<PortRangeTable> read_port_ranges(int fd) {
  return read_array<xt_port_range>(fd, XT_MAX_PORT_RANGES + 1, "the port ranges");
}

bool same_range(const xt_port_range& a, const xt_port_range& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

}  // namespace

Result<std::vector<bool>> State::rule_slots_in_use() const {
  struct Text {
    char c[XT_RULE_TEXT_SIZE];
  };
  auto texts = read_array<Text>(rule_text_.get(), XT_MAX_RULES, "the rules' records");
  if (!texts) return std::unexpected(texts.error());
  std::vector<bool> used(XT_MAX_RULES);
  for (uint32_t id = 0; id < XT_MAX_RULES; id++) used[id] = (*texts)[id].c[0] != 0;
  return used;
}

Result<void> State::write_port_ranges(const PortRangeTable& next, const PortRangeTable& current) {
  // In three passes, so that every packet meanwhile finds its chain whole:
  // the ranges newly in use first (no port or child names them yet), then
  // those whose parent changed (a child moved under a new range, or up from
  // one going), then the ports, and last the ranges going out of use (no
  // port names them any more; their fields stay for packets in flight).
  enum Pass { kNew, kChanged, kFreed };
  auto put_ranges = [&](Pass pass) -> Result<void> {
    for (uint32_t id = 1; id < next.size(); id++) {
      const bool was = current[id].used, is = next[id].used;
      const bool in_pass = pass == kNew ? (is && !was) : pass == kChanged ? (is && was) : (!is && was);
      if (!in_pass || same_range(next[id], current[id])) continue;
      if (bpf_map_update_elem(port_ranges_.get(), &id, &next[id], BPF_ANY) != 0)
        return system_error("cannot write port range " + std::to_string(id), errno);
      step();
    }
    return {};
  };
  if (auto ok = put_ranges(kNew); !ok) return ok;
  if (auto ok = put_ranges(kChanged); !ok) return ok;
  for (uint8_t slot : {XT_PORT_SLOT_TCP, XT_PORT_SLOT_UDP}) {
    const std::vector<uint16_t> before = port_map(current, slot), after = port_map(next, slot);
    for (uint32_t port = 0; port < 65536; port += XT_PORTS_PER_ENTRY) {
      if (std::equal(before.begin() + port, before.begin() + port + XT_PORTS_PER_ENTRY, after.begin() + port))
        continue;
      xt_ports entry{};
      std::copy_n(after.begin() + port, XT_PORTS_PER_ENTRY, entry.range);
      const uint32_t idx = XT_PORTS_INDEX(slot, port);
      if (bpf_map_update_elem(ports_.get(), &idx, &entry, BPF_ANY) != 0)
        return system_error("cannot write the port map", errno);
      step();
    }
  }
  return put_ranges(kFreed);
}

Result<void> State::prepare_match(const Cidr& cidr, const Match& match) {
  const uint8_t level = match_level(match);
  if (level == XT_MATCH_ANY) return {};
  if (match.ports) {
    auto table = read_port_ranges(port_ranges_.get());
    if (!table) return std::unexpected(table.error());
    PortRangeTable before = *table;  // what the map holds (the pin directory's lock keeps it so)
    auto id = add_port_range(*table, port_slot(*match.proto), match.ports->first, match.ports->second);
    if (!id) {
      // A range no rule holds is what an add killed between its range and
      // its rule left: taken away (and a new epoch, for what packets of it
      // cached meanwhile), then asked again. The live rules are read only
      // here: an apply of thousands of rules does not read them for each.
      auto live = rules();
      if (!live) return std::unexpected(live.error());
      auto tidied = tidy_matches(*live);
      if (!tidied) return std::unexpected(tidied.error());
      if (*tidied)
        if (auto ok = publish(&*live); !ok) return ok;
      table = read_port_ranges(port_ranges_.get());
      if (!table) return std::unexpected(table.error());
      before = *table;
      id = add_port_range(*table, port_slot(*match.proto), match.ports->first, match.ports->second);
    }
    if (!id) return std::unexpected(Error{id.error().kind, "cannot add the rule for " + rule_name(cidr, match) + ": " +
                                                               id.error().message});
    if (auto ok = write_port_ranges(*table, before); !ok) return ok;
  }
  if (!config_mem_) return system_error("the state's settings are not mapped: cannot add a rule with a match");
  auto* cfg = static_cast<xt_config*>(config_mem_.get());
  std::atomic_ref<uint8_t>(cfg->proto_levels[*match.proto]).fetch_or(uint8_t(1u << level));
  std::atomic_ref<uint32_t>(cfg->matches).store(1, std::memory_order_release);
  step();  // packets of the match now have its class, and still the old rules
  return {};
}

Result<bool> State::tidy_matches(const std::vector<RuleEntry>& rules) {
  auto table = read_port_ranges(port_ranges_.get());
  if (!table) return std::unexpected(table.error());
  const PortRangeTable before = *table;
  std::array<uint8_t, 256> levels{};
  std::set<uint16_t> needed;
  for (const RuleEntry& e : rules) {
    const Match& m = e.spec.match;
    if (!m.proto) continue;
    levels[*m.proto] |= uint8_t(1u << match_level(m));
    if (m.ports) needed.insert(find_port_range(*table, port_slot(*m.proto), m.ports->first, m.ports->second));
  }
  bool changed = false;
  for (uint16_t id = 1; id < table->size(); id++)
    if ((*table)[id].used && !needed.contains(id)) {
      remove_port_range(*table, id);
      changed = true;
    }
  if (changed)
    if (auto ok = write_port_ranges(*table, before); !ok) return std::unexpected(ok.error());
  if (!config_mem_) return system_error("the state's settings are not mapped: cannot tidy the rules' matches");
  auto* cfg = static_cast<xt_config*>(config_mem_.get());
  bool any = false;
  for (int p = 0; p < 256; p++) {
    std::atomic_ref<uint8_t>(cfg->proto_levels[p]).store(levels[p]);
    any = any || levels[p];
  }
  std::atomic_ref<uint32_t>(cfg->matches).store(any ? 1 : 0, std::memory_order_release);
  return changed;
}

State::Replacement State::prepare_replacement(const xt_rule& old, xt_rule& rule) {
  rule.id = old.id;
  // Generations cycle through 1..XT_GEN_MAX: 0 is what zeroed words hold.
  rule.gen = static_cast<uint8_t>(old.gen % XT_GEN_MAX + 1);
  rule.prev_gen = old.gen;
  // Each window keeps the word of the old window it continues; nothing of
  // a limit the old rule did not have carries over (the caller's rule may
  // be one that was live before, with prev limits of its own).
  place_limits(old, rule);
  // The data path converts a bucket one generation back; a bucket that sat
  // out the previous replacement too (a quiet source, or one dropped by
  // the hot cache, which writes nothing) is brought up to date first, so
  // no bucket is ever two behind: neither a fresh burst for a throttled
  // source, nor a wrapped generation read in the wrong units. A change
  // that keys the rule's buckets anew (another --per, or no longer a
  // limit) frees them after the swap instead, and the walk that frees
  // them brings those it keeps to the new generation: none of the
  // old ones can be hit once the swap is made, so walking them first
  // as well would be a second walk of the table for nothing (0.08 s of
  // 0.2 at 4M sources). Such a change marks the rule until that walk has
  // finished (XT_RULE_REKEYED): after one that did not, buckets of the
  // rule may be two generations behind, and the next change walks first.
  //
  // A word no limit of the old version uses is left as it is by the walk
  // (whatever it holds reads as bare), but where the new version makes it
  // a limit's: there a word left generations behind (a removed window's,
  // in that window's units) could come round to the new generation and
  // read as in debt. The walk brings those words up first, even for a
  // change that keys the buckets anew: a bucket of the old --per left
  // from before (a packet under the old rule after its sweep passed) is
  // the new --per's if the rule goes back to it.
  Replacement how;
  const bool limit = rule.action == XT_ACT_LIMIT;
  const bool rekeys = !(limit && old.action == XT_ACT_LIMIT && old.per_len == rule.per_len);
  const bool unswept = old.flags & XT_RULE_REKEYED;
  how.sweeps = rekeys || unswept;  // marked until the walk after the swap has finished
  for (int p = 0; p < XT_MAX_LIMITS; p++)
    if (xt_word_is_bare(&old, p) && !xt_word_is_bare(&rule, p)) how.made_limits |= 1u << p;
  how.catch_up = !rekeys || unswept || how.made_limits;
  return how;
}

Result<State::ChangesCaughtUp> State::catch_up_changes(const std::vector<std::pair<RuleSpec, xt_rule>>& changes) {
  caught_up_.clear();
  ChangesCaughtUp done(this);
  std::vector<xt_catch_up_rule> walk;
  for (const auto& [spec, compiled] : changes) {
    xt_rule old{}, rule = compiled;
    const xt_rule_key key = rule_key(spec.cidr, spec.match);
    if (bpf_map_lookup_elem(rules_.get(), &key, &old) != 0 || old.src_len != spec.cidr.len) continue;  // an add
    rule.flags &= ~XT_RULE_REKEYED;  // as put_rule takes it
    const Replacement how = prepare_replacement(old, rule);
    if (!how.catch_up || old.id >= XT_MAX_RULES) continue;
    walk.push_back({.rule = old, .bare = how.made_limits, .pad = 0});
  }
  if (walk.empty()) return done;
  auto c = control();
  if (!c) return std::unexpected(c.error());
  xt_control params{};
  params.catch_up_set = 1;
  for (const xt_catch_up_rule& r : walk) {
    if (bpf_map_update_elem((*c)->catch_up_in, &r.rule.id, &r, BPF_ANY) != 0)
      return system_error("cannot set up the catch-up of rule " + std::to_string(r.rule.id) + "'s buckets", errno);
    add_to_rule_set(params, r.rule.id);
  }
  auto settled = run_rounds(**c, (*c)->catch_up, params,
                            "the catch-up of " + std::to_string(walk.size()) + " changing rules' buckets");
  if (!settled) return std::unexpected(settled.error());
  // A word the data path kept winning the race for, somewhere: each rule
  // walks on its own then, as before (one walk of the table each, each
  // with its own rounds), rather than the apply failing.
  if (*settled)
    for (const xt_catch_up_rule& r : walk) caught_up_[r.rule.id] = CaughtUp{.gen = r.rule.gen, .bare = r.bare};
  return done;
}

// A rule change is made in steps the data path sees one at a time (step()
// marks each). Each step keeps one invariant: every address in a block of
// the published longest prefix length has the same longest-prefix rule, so
// a rule-cache entry filled at any step is right for its whole block, for
// the rules before the change or after it. A new longer prefix is therefore
// published before its rule goes in, and a shorter longest prefix only
// after the rule that made it longer is gone.
Result<bool> State::put_rule(const RuleSpec& spec, xt_rule rule, bool redirect_may_wait) {
  rule.flags &= ~XT_RULE_REKEYED;  // the controller's own mark: a live rule put back (apply's undo) may have it
  const Cidr& cidr = spec.cidr;
  const std::string name = rule_name(cidr, spec.match);
  const xt_rule_key key = rule_key(cidr, spec.match);
  auto ifindex = redirect_ifindex(spec);
  if (!ifindex && redirect_may_wait) ifindex = 0u;
  if (!ifindex) return std::unexpected(ifindex.error());
  // A rule that bans: packets look in the ban table before it goes in.
  if (spec.ban_for && config_mem_)
    std::atomic_ref<uint32_t>(static_cast<xt_config*>(config_mem_.get())->bans).store(1, std::memory_order_release);
  // Neither way needs the other rules read back (an apply of thousands of
  // rules would read them thousands of times): the rule of this key, the
  // ids in use, and the published longest prefixes, which an added rule can
  // only widen.
  // (A trie lookup finds the longest prefix holding the key's: the rule of
  // exactly this CIDR only if its prefix is as long.)
  xt_rule old{};
  if (bpf_map_lookup_elem(rules_.get(), &key, &old) == 0 && old.src_len == cidr.len) {
    const Replacement how = prepare_replacement(old, rule);
    const bool limit = rule.action == XT_ACT_LIMIT;
    // The walk before the swap (see prepare_replacement), unless
    // catch_up_changes made it for this version already, with these words.
    const auto caught = caught_up_.find(old.id);
    const bool walked = caught != caught_up_.end() && caught->second.gen == old.gen &&
                        (how.made_limits & ~caught->second.bare) == 0;
    if (how.catch_up && !walked) {
      if (auto ok = catch_up_buckets(old, how.made_limits); !ok) return std::unexpected(ok.error());
    } else if (auto c = control(); !c) {
      // The walk's program loaded before anything changes, as a
      // deletion's: a change that could not free the buckets is refused.
      return std::unexpected(c.error());
    }
    if (caught != caught_up_.end()) caught_up_.erase(caught);
    // The tick of the change is read after that walk: sources metered under
    // the old rule meanwhile are converted from as late a tick as possible
    // (and xt_regen copes with any later still).
    auto now = this->now();
    if (!now) return std::unexpected(now.error());
    rule.replaced_at = *now;
    // What the old rule's record and redirects were, to put back if the
    // swap fails.
    char old_text[XT_RULE_TEXT_SIZE] = {};
    if (bpf_map_lookup_elem(rule_text_.get(), &rule.id, old_text) != 0)
      return system_error("cannot read the record of the rule for " + name, errno);
    auto old_to = redirects_of(rule.id);
    if (!old_to) return std::unexpected(old_to.error());
    const bool had = std::ranges::any_of(*old_to, [](uint32_t i) { return i != 0; }) ||
                     std::string_view(old_text, strnlen(old_text, sizeof(old_text))).find("--over redirect:") !=
                         std::string_view::npos;
    auto put_back = [&](const Error& e) -> Result<bool> {
      (void)bpf_map_update_elem(rule_text_.get(), &rule.id, old_text, BPF_ANY);
      if (had && config_mem_)
        std::atomic_ref<uint32_t>(static_cast<xt_config*>(config_mem_.get())->redirects)
            .store(1, std::memory_order_release);
      for (int k = 0; k < XT_OVER_KINDS; k++) {
        const uint32_t k_key = XT_REDIRECT_KEY(rule.id, k);
        if ((*old_to)[k])
          (void)bpf_map_update_elem(redirect_.get(), &k_key, &(*old_to)[k], BPF_ANY);
        else
          (void)bpf_map_delete_elem(redirect_.get(), &k_key);
      }
      return std::unexpected(e);
    };
    if (auto ok = write_rule_text(rule.id, spec); !ok) return put_back(ok.error());
    if (auto ok = set_redirects(rule.id, spec, *ifindex, had); !ok) return put_back(ok.error());
    if (how.sweeps) rule.flags |= XT_RULE_REKEYED;
    // One map update swaps the whole value: packets see the old rule or the new.
    if (bpf_map_update_elem(rules_.get(), &key, &rule, BPF_EXIST) != 0)
      return put_back(system_error("cannot replace the rule for " + name, errno).error());
    step();
    if (auto ok = publish(nullptr, cidr); !ok) return std::unexpected(ok.error());
    step();
    // Buckets keyed by another --per can never be hit again. A limit that
    // stays one with the same --per has none to free, and the walk would
    // read the whole table for nothing (70 ms at 4M sources). The buckets
    // of the new --per are there only if an earlier change of it stopped
    // before its sweep: the same walk brings them to the new generation
    // (the data path reads one two behind as full until then). Should a
    // controller stop before the walk has finished, the buckets left
    // behind are quiet ones, taken back like any after the idle window,
    // and the mark tells the next replacement to walk first and again.
    if (!how.sweeps) return true;
    auto swept = sweep_buckets(rule.id, limit ? rule.per_len : XT_SWEEP_ALL, limit ? &rule : nullptr);
    if (!swept) return std::unexpected(swept.error());
    if (*swept) {
      // Finished: the mark goes (best effort: left, it costs the next
      // change a walk). The data path does not read it, so the rule it
      // meters by is the same either way.
      rule.flags &= ~XT_RULE_REKEYED;
      (void)bpf_map_update_elem(rules_.get(), &key, &rule, BPF_EXIST);
    }
    return true;
  }

  // The lowest free slot, freed of what its last rule left: one an apply's
  // ready_new_slots made ready for all its new rules, or one made ready
  // here for this rule alone.
  std::optional<uint32_t> ready = take_ready_slot();
  std::optional<SlotsReady> alone;
  if (!ready) {
    auto one = ready_new_slots(1);
    if (!one) return std::unexpected(one.error());
    alone.emplace(std::move(*one));
    ready = take_ready_slot();
  }
  if (!ready)
    return system_error("the rule table is full (" + std::to_string(XT_MAX_RULES) + " rules): delete one first");
  const uint32_t id = *ready;
  auto cfg = config();
  if (!cfg) return std::unexpected(cfg.error());
  // The port range and level of its match first: until the rule is in,
  // they change no packet's rule. If a later step fails, they go again, and
  // so does the slot's record, which would keep the slot taken.
  if (auto ok = prepare_match(cidr, spec.match); !ok) {
    undo_failed_add(std::nullopt);
    return std::unexpected(ok.error());
  }
  auto added = add_prepared(spec, rule, key, id, *cfg, *ifindex);
  // Undone only if the rule did not go in: once it is in, its record and
  // match are its own, and the rest of the change is what failed.
  xt_rule in{};
  if (!added && !(bpf_map_lookup_elem(rules_.get(), &key, &in) == 0 && in.src_len == cidr.len && in.id == id))
    undo_failed_add(id);
  return added;
}

void State::undo_failed_add(std::optional<uint32_t> id) {
  if (id) {
    (void)set_redirects(*id, RuleSpec{}, 0, true);
    (void)free_rule_text(*id);
  }
  // A new epoch after the match's range goes: packets of the range may
  // have filled cache entries under its id meanwhile, and the next add may
  // take the id for another range (RuleChanges.AFailedAddLeavesNoCacheEntryOfItsRange).
  if (auto live = rules(); live && tidy_matches(*live)) (void)publish(&*live);
}

Result<void> State::free_rule_text(uint32_t id) {
  const char empty[XT_RULE_TEXT_SIZE] = {};
  if (bpf_map_update_elem(rule_text_.get(), &id, empty, BPF_ANY) != 0)
    return system_error("cannot free the record of rule slot " + std::to_string(id), errno);
  return {};
}

Result<bool> State::add_prepared(const RuleSpec& spec, xt_rule rule, const xt_rule_key& key, uint32_t id,
                                 const xt_config& cfg, uint32_t ifindex) {
  const Cidr& cidr = spec.cidr;
  const std::string name = rule_name(cidr, spec.match);
  // The slot may hold a deleted rule's counters: start clean.
  if (auto ok = reset_rule_slot(id, cfg.epoch); !ok) return std::unexpected(ok.error());
  rule.id = id;
  rule.gen = 1;
  if (auto ok = write_rule_text(id, spec); !ok) return std::unexpected(ok.error());
  if (auto ok = set_redirects(id, spec, ifindex, false); !ok) return std::unexpected(ok.error());
  const uint8_t longest = cidr.family == XT_FAMILY_V4 ? cfg.longest_v4 : cfg.longest_v6;
  if (cidr.len > longest) {
    if (auto ok = publish(nullptr, cidr); !ok) return std::unexpected(ok.error());
    step();
  }
  if (bpf_map_update_elem(rules_.get(), &key, &rule, BPF_NOEXIST) != 0)
    return system_error("cannot add the rule for " + name, errno);
  step();
  if (auto ok = publish(nullptr, cidr); !ok) return std::unexpected(ok.error());
  step();
  return false;
}

Result<void> State::del_rule(const Cidr& cidr, const Match& match) { return del_rules({{cidr, match}}); }

Result<void> State::del_rules(const std::vector<std::pair<Cidr, Match>>& which) {
  if (which.empty()) return {};
  auto current = rules();
  if (!current) return std::unexpected(current.error());
  std::map<std::string, const RuleEntry*> by_name;
  for (const RuleEntry& e : *current) by_name.emplace(rule_name(e.cidr, e.spec.match), &e);
  struct Going {
    uint32_t id;
    bool redirected;
    xt_rule_key key;
    std::string name;
  };
  std::vector<Going> going;
  for (const auto& [cidr, match] : which) {
    std::string name = rule_name(cidr, match);
    // Found by its name, and checked to be exactly this CIDR and match:
    // two matches printed alike (one no option can make) would otherwise
    // free one rule's slot for another's key.
    auto same = by_name.find(name);
    if (same == by_name.end() || same->second->cidr != cidr || !(same->second->spec.match == match))
      return system_error("no rule for " + name + " (see `xthrottle rule list`)");
    going.push_back({same->second->rule.id, same->second->spec.redirect.has_value(), rule_key(cidr, match),
                     std::move(name)});
  }
  // The sweep's program loaded before anything changes: a deletion that
  // cannot free the buckets is refused whole, not left done but reported
  // failed.
  if (auto c = control(); !c) return std::unexpected(c.error());
  // A deletion the kernel refuses stops the rest; those before it are
  // finished all the same.
  std::optional<Error> refused;
  size_t deleted = 0;
  for (; deleted < going.size(); deleted++) {
    if (bpf_map_delete_elem(rules_.get(), &going[deleted].key) != 0) {
      refused = system_error("cannot delete the rule for " + going[deleted].name, errno).error();
      break;
    }
    step();
  }
  going.resize(deleted);
  if (going.empty()) return std::unexpected(*refused);
  std::vector<uint32_t> ids;
  for (const Going& g : going) ids.push_back(g.id);
  std::ranges::sort(ids);
  std::erase_if(*current, [&](const RuleEntry& e) { return std::ranges::binary_search(ids, e.rule.id); });
  // What only their matches needed goes before the epoch changes: a range
  // id freed here and taken by the next rule is then never found in a
  // cache entry of the epoch it had meant another range in. One epoch for
  // them all: until it, packets may still find a deleted rule in a cache
  // entry, as they may until the epoch after any one deletion. Without it
  // the slots stay taken: a new rule in one could meet packets of a cache
  // entry of the old.
  // A refused deletion is told with whatever fails after it.
  auto with_refused = [&](const Error& e) -> Result<void> {
    if (!refused) return std::unexpected(e);
    return std::unexpected(Error{refused->kind, refused->message + "; then " + e.message});
  };
  if (auto ok = tidy_matches(*current); !ok) return with_refused(ok.error());
  if (auto ok = publish(&*current); !ok) return with_refused(ok.error());
  step();
  // From here each step is done for every rule whatever failed before it,
  // and the first failure told: a group of thousands is not left with its
  // slots taken and its buckets kept for one rule's error.
  std::optional<Error> failed;
  auto note = [&](Result<void> r) {
    if (!r && !failed) failed = r.error();
  };
  for (const Going& g : going) note(set_redirects(g.id, RuleSpec{}, 0, g.redirected));
  // Their bans stay, marked as a deleted rule's before the slots are free:
  // the next rule added takes the lowest free id, and would be named as
  // theirs. Best effort, and only while the ban table is in use
  // (xt_config.bans): a ban left unmarked is misnamed, not wrong.
  auto theirs = [&](const xt_ban& ban) { return XT_BAN_BY_RULE(ban) && std::ranges::binary_search(ids, uint32_t(ban.rule - 1u)); };
  if (config_mem_ && std::atomic_ref<uint32_t>(config_in(config_mem_).bans).load(std::memory_order_acquire)) {
    std::vector<xt_ban_key> their_bans;
    (void)for_each_ban([&](const xt_ban_key& k, const xt_ban& ban) {
      if (theirs(ban)) their_bans.push_back(k);
    });
    auto now = this->now();
    for (const xt_ban_key& k : their_bans) {
      // Read again: another rule may have banned the prefix since. An
      // ended one is left alone: the data path writes a new ban over an
      // ended one, and this write could land on top of it.
      xt_ban ban{};
      if (!now || bpf_map_lookup_elem(bans_.get(), &k, &ban) != 0 || !theirs(ban) || ban_ended(ban, *now)) continue;
      ban.rule = XT_BAN_BY_DELETED_RULE;
      (void)bpf_map_update_elem(bans_.get(), &k, &ban, BPF_EXIST);
    }
  }
  // The slots are free again (rule_slots_in_use).
  for (uint32_t id : ids) note(free_rule_text(id));
  // What the data path kept them from freeing is quiet from here on, taken
  // back like any bucket after the idle window, and freed by the sweep of
  // the next rule to take each id. One walk for them all.
  if (auto swept = sweep_rules(ids); !swept) note(std::unexpected(swept.error()));
  if (failed) return with_refused(*failed);
  if (refused) return std::unexpected(*refused);
  return {};
}

Result<std::vector<xt_count>> State::counters() const {
  std::vector<xt_count> out;
  for (uint32_t reason = 0; reason < XT_COUNTERS; reason++) {
    auto c = percpu_sum<xt_count>(counters_.get(), reason, "counter");
    if (!c) return std::unexpected(c.error());
    out.push_back(*c);
  }
  return out;
}

namespace {

// Adds `add` (T of __u64 fields) to CPU 0's share of a per-CPU value.
template <class T>
Result<void> percpu_add(int fd, uint32_t key, const T& add, const char* what) {
  constexpr size_t kFields = sizeof(T) / sizeof(uint64_t);
  std::vector<uint64_t> values(static_cast<size_t>(possible_cpus()) * kFields);
  if (bpf_map_lookup_elem(fd, &key, values.data()) != 0)
    return system_error(std::string("cannot read ") + what + " " + std::to_string(key), errno);
  uint64_t more[kFields];
  std::memcpy(more, &add, sizeof(more));
  for (size_t f = 0; f < kFields; f++) values[f] += more[f];
  if (bpf_map_update_elem(fd, &key, values.data(), BPF_EXIST) != 0)
    return system_error(std::string("cannot write ") + what + " " + std::to_string(key), errno);
  return {};
}

}  // namespace

Result<void> State::add_rule_stats(uint32_t id, const xt_rule_stats& add) {
  xt_rule_stats counts = add;
  counts.proof_word = 0;  // not a counter
  return percpu_add(rule_stats_.get(), id, counts, "counters of rule slot");
}

Result<void> State::add_counters(const std::vector<xt_count>& add) {
  for (uint32_t reason = 0; reason < XT_COUNTERS && reason < add.size(); reason++)
    if (auto ok = percpu_add(counters_.get(), reason, add[reason], "counter"); !ok) return ok;
  return {};
}

Result<State::Restored> State::restore_records(uint32_t kind, const std::vector<xt_slot>& records,
                                               const xt_rule* rule) {
  auto c = control(Controls::Restore);
  if (!c) return std::unexpected(c.error());
  Restored out;
  std::vector<uint32_t> keys(XT_RESTORE_BATCH);
  for (uint32_t i = 0; i < XT_RESTORE_BATCH; i++) keys[i] = i;
  for (size_t done = 0; done < records.size();) {
    auto count = static_cast<uint32_t>(std::min<size_t>(XT_RESTORE_BATCH, records.size() - done));
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    uint32_t n = count;
    if (bpf_map_update_batch((*c)->restore_in, keys.data(), records.data() + done, &n, &opts) != 0)
      return system_error("cannot write a batch of the snapshot's records", errno);
    xt_control params{};
    params.restore_count = count;
    params.restore_kind = kind;
    if (rule) params.rule = *rule;
    auto ran = run_control(**c, (*c)->restore, params,
                           kind == XT_RESTORE_CHARGE ? "the charge of other hosts' use" : "the restore of a snapshot's records");
    if (!ran) return std::unexpected(ran.error());
    out.restored += ran->restored;
    out.merged += ran->merged;
    out.refused += ran->refused;
    out.stale += ran->stale;
    done += count;
  }
  return out;
}

Result<std::vector<RuleCounters>> State::rule_counters() const {
  auto current = rules();
  if (!current) return std::unexpected(current.error());
  std::vector<RuleCounters> out;
  for (const auto& e : *current) {
    // The state first: a saturation's starting count is then never later
    // than the counters read after it.
    xt_rule_state st{};
    if (bpf_map_lookup_elem(rule_state_.get(), &e.rule.id, &st) != 0)
      return system_error("cannot read the state of rule slot " + std::to_string(e.rule.id), errno);
    auto s = percpu_sum<xt_rule_stats>(rule_stats_.get(), e.rule.id, "counters of rule slot");
    if (!s) return std::unexpected(s.error());
    out.push_back({e.cidr, e.rule, e.spec, *s, st});
  }
  return out;
}

Result<PendingDrops> State::hot_pending() const {
  auto cfg = config();
  if (!cfg) return std::unexpected(cfg.error());
  PendingDrops out;
  std::map<uint32_t, uint32_t> created;  // rule id -> the epoch its rule took the slot at
  auto owner_is_current = [&](uint32_t id, uint32_t filled) {
    if (!created.contains(id)) {
      xt_rule_state st{};
      created[id] = bpf_map_lookup_elem(rule_state_.get(), &id, &st) == 0 ? st.created_epoch : filled + 1;
    }
    return static_cast<int32_t>(filled - created[id]) >= 0;
  };
  // Every CPU's IPv4 lines, then every CPU's IPv6 lines, a batch at a time,
  // but the batches whose lines all have their bit clear in the bitmap: they
  // hold nothing (the cache of a 4M-source table is 160 MiB on two CPUs,
  // mostly empty but under a botnet of that size).
  const uint64_t v4_lines = hot_v4_lines_for(cfg->hot_bits);
  const uint64_t lines = hot_lines_for(cfg->hot_bits);
  auto bitmap = read_array<uint64_t>(hot_bitmap_.get(), static_cast<uint32_t>(lines / 64), "the hot cache's bitmap");
  if (!bitmap) return std::unexpected(bitmap.error());
  bitmap->resize(lines / 64);  // a map shorter than its state says: the rest holds nothing
  constexpr uint32_t kBatch = 8192;  // lines: 128 words of the bitmap
  std::vector<uint32_t> keys(kBatch);
  std::vector<xt_hot_set> sets(kBatch);
  for (uint64_t start = 0; start < lines; start += kBatch) {
    const auto words = std::span(*bitmap).subspan(start / 64, std::min<uint64_t>(kBatch, lines - start) / 64);
    if (std::ranges::all_of(words, [](uint64_t w) { return w == 0; })) continue;
    // An array's batch starts after the key it is given.
    uint32_t prev = static_cast<uint32_t>(start) - 1, next = 0, count = kBatch;
    const int err = bpf_map_lookup_batch(hot_.get(), start ? &prev : nullptr, &next, keys.data(), sets.data(), &count,
                                         nullptr);
    if (err && errno != ENOENT) return system_error("cannot read the hot cache", errno);
    for (uint32_t i = 0; i < count; i++) {
      const bool v6 = keys[i] >= v4_lines;
      for (int slot = 0; slot < 4; slot += v6 ? 2 : 1) {
        const xt_hot& h = sets[i].slot[slot];
        // As the data path: drops of a rule id that passed to another rule
        // since are let go.
        const uint32_t rule_id = h.who & XT_HOT_RULE;
        const uint32_t filled = xt_hot_filled(&h, cfg->epoch);
        if (!h.pending || (h.who & XT_HOT_DENIED) || (filled != cfg->epoch && !owner_is_current(rule_id, filled)))
          continue;  // (a deny's or a ban's drops belong to no bucket)
        xt_pkt src{};
        src.family = v6 ? XT_FAMILY_V6 : XT_FAMILY_V4;
        if (v6)
          std::memcpy(src.addr, &sets[i].slot[slot + 1], sizeof(src.addr));
        else
          std::memcpy(src.addr, h.addr, sizeof(h.addr));
        xt_bucket_key key;
        xt_bucket_key_for(&src, rule_id, h.per_len, &key);
        out.add(key, h.pending);
      }
    }
  }
  out.finish();
  return out;
}

void PendingDrops::finish() {
  const BucketKeyLess less;
  std::ranges::sort(entries_, less, &Entry::first);
  auto same = [&](const Entry& a, const Entry& b) { return !less(a.first, b.first) && !less(b.first, a.first); };
  size_t out = 0;
  for (size_t i = 0; i < entries_.size(); i++) {
    if (out > 0 && same(entries_[out - 1], entries_[i]))
      entries_[out - 1].second += entries_[i].second;
    else
      entries_[out++] = entries_[i];
  }
  entries_.resize(out);
}

uint64_t PendingDrops::of(const xt_bucket_key& key) const {
  const BucketKeyLess less;
  auto it = std::ranges::lower_bound(entries_, key, less, &Entry::first);
  return it != entries_.end() && !less(key, it->first) ? it->second : 0;
}

Result<std::optional<xt_bucket>> State::find_bucket(const xt_bucket_key& key) const {
  auto cfg = config();
  if (!cfg) return std::unexpected(cfg.error());
  // Where the data path looks (xt_place_of, xt_find): the home set the
  // keyed hash picks, or the next one if the home set ever spilled.
  const uint64_t h = xt_hash_bucket(cfg->hash_key, &key);
  const uint32_t idx = xt_home_set(h, cfg->bucket_bits);
  xt_set_tags home{}, next{};
  const uint32_t idx_next = xt_place_set(idx, XT_PLACE(1, 0), cfg->bucket_bits);
  if (bpf_map_lookup_elem(tags_.get(), &idx, &home) != 0 || bpf_map_lookup_elem(tags_.get(), &idx_next, &next) != 0)
    return system_error("cannot read the bucket table", errno);
  // As xt_find: a slot whose fingerprint matches may hold another key.
  const bool spilled = xt_spilled(&home);
  int r = XT_NOWHERE;
  for (int i = 0; i < XT_FIND_TRIES; i++) {
    r = xt_locate(&home, spilled ? &next : nullptr, xt_fp_of(h), r);
    if (r < 0) return std::nullopt;
    const uint32_t at = xt_place_set(idx, r, cfg->bucket_bits);
    xt_bucket_set set{};
    if (bpf_map_lookup_elem(buckets_.get(), &at, &set) != 0) return system_error("cannot read the bucket table", errno);
    const xt_slot& s = set.way[XT_PLACE_WAY(r)];
    if (std::memcmp(&s.key, &key, sizeof(key)) == 0) return s.bucket;
  }
  return std::nullopt;
}

Result<State::SourceCount> State::count_sources() const {
  auto cfg = config();
  if (!cfg) return std::unexpected(cfg.error());
  auto now = this->now();
  if (!now) return std::unexpected(now.error());
  const __u16 unit = xt_used_now(&*cfg, *now);
  // The walk takes a while (a second at 64M sources): a stamp the data path
  // wrote since the clock was read is ahead of it, and recent: up to as
  // far ahead as the longest window reaches back.
  const auto recent = [&](__u16 used) {
    return xt_used_recent(&*cfg, used, unit) || static_cast<__u16>(used - unit) <= kMaxIdleUnits;
  };
  SourceCount n;
  auto walked = walk_batches<uint32_t, xt_set_tags>(tags_.get(), "the bucket tags", [&](uint32_t, const xt_set_tags& t) {
    for (int w = 0; w < XT_BUCKET_WAYS; w++)
      if (xt_tag_fp(&t, w)) (recent(xt_tag_used(&t, w)) ? n.tracked : n.idle)++;
  });
  if (!walked) return std::unexpected(walked.error());
  return n;
}

Result<void> State::for_each_bucket(const std::function<void(const BucketEntry&)>& fn) const {
  return walk_batches<uint32_t, xt_bucket_set>(
      buckets_.get(), "the bucket table", [&](uint32_t idx, const xt_bucket_set& set) {
        for (uint32_t w = 0; w < XT_BUCKET_WAYS; w++)
          if (set.way[w].key.family)
            fn(BucketEntry{set.way[w].key, set.way[w].bucket, static_cast<uint64_t>(idx) * XT_BUCKET_WAYS + w});
      });
}


Result<void> State::for_each_known(const std::function<void(const xt_known&)>& fn) const {
  return walk_batches<uint32_t, xt_known_set>(known_.get(), "the known table", [&](uint32_t, const xt_known_set& set) {
    for (const xt_known& e : set.way)
      if (e.family) fn(e);
  });
}

uint64_t State::known_capacity() const {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(known_.get(), &info, &len) != 0) return 0;
  return static_cast<uint64_t>(info.max_entries) * XT_KNOWN_WAYS;
}

}  // namespace xt
