// SPDX-License-Identifier: MIT
// Blocklists (abi.h, docs/design.md "Blocklists"): each list's entries in a
// map of its own, pinned beside the others (xt_blocklists_SLOT), its name
// and size in xt_blocklists; the data path reads the union of the lists,
// in the one of two sets that xt_config.blocklists names. Loading or
// deleting a list makes the whole union again in the other set and
// switches with one store, so a packet sees the old lists or the new ones,
// never half of a load.
#include <bpf/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "blocklist_file.h"
#include "map_util.h"
#include "state.h"

namespace xt {

namespace {

std::string list_pin(const std::string& pin_dir, uint32_t slot) {
  return pin_dir + "/" + XT_MAP_BLOCKLISTS + "_" + std::to_string(slot);  // bpffs refuses names with dots
}

xt_block_entry entry_of(const Cidr& c) {
  xt_block_entry e{};
  e.family = c.family;
  e.len = c.len;
  std::memcpy(e.addr, c.addr.data(), sizeof(e.addr));
  return e;
}

uint32_t v4_of(const uint8_t* addr) {
  return static_cast<uint32_t>(addr[0]) << 24 | static_cast<uint32_t>(addr[1]) << 16 |
         static_cast<uint32_t>(addr[2]) << 8 | addr[3];
}

// Empties set `set` of `fd` (a hash or trie of keys K with a `set` field
// and __u32 values): its keys read and deleted in batches. A key a
// syscall, a million-address set took seconds on a guest where each
// syscall costs microseconds.
template <class K>
Result<void> empty_set(int fd, uint32_t set, const char* what) {
  std::vector<K> keys;
  auto walked = walk_batches<K, uint32_t>(fd, what, [&](const K& key, uint32_t) {
    if (key.set == set) keys.push_back(key);
  });
  if (!walked) return walked;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (size_t done = 0; done < keys.size();) {
    uint32_t count = static_cast<uint32_t>(std::min<size_t>(keys.size() - done, 1u << 16));
    const int err = bpf_map_delete_batch(fd, keys.data() + done, &count, &opts);
    done += count;
    if (err && errno != ENOENT) return system_error(std::string("cannot empty ") + what, errno);
    if (err) done++;  // the kernel stops at a key that is not there: step over it
  }
  return {};
}

// Puts `keys` in `fd`, each with the value 1, in one batch.
template <class K>
Result<void> put_keys(int fd, const std::vector<K>& keys, const char* what) {
  if (keys.empty()) return {};
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  const std::vector<uint32_t> ones(keys.size(), 1);
  uint32_t count = static_cast<uint32_t>(keys.size());
  if (bpf_map_update_batch(fd, keys.data(), ones.data(), &count, &opts) != 0)
    return system_error(std::string("cannot write ") + what, errno);
  return {};
}

}  // namespace

uint32_t State::blocklists_word() const {
  if (!config_mem_) return 0;
  return std::atomic_ref<uint32_t>(static_cast<xt_config*>(config_mem_.get())->blocklists)
      .load(std::memory_order_acquire);
}

void State::set_blocklists_word(uint32_t word) {
  if (config_mem_)
    std::atomic_ref<uint32_t>(static_cast<xt_config*>(config_mem_.get())->blocklists)
        .store(word, std::memory_order_release);
}

Result<std::vector<State::Blocklist>> State::blocklists() const {
  std::vector<Blocklist> out;
  for (uint32_t slot = 0; slot < XT_MAX_BLOCKLISTS; slot++) {
    xt_blocklist list{};
    if (bpf_map_lookup_elem(blocklists_.get(), &slot, &list) != 0)
      return system_error("cannot read the blocklists' table", errno);
    if (list.used) out.push_back({slot, list});
  }
  return out;
}

// The map of the entries of the list in slot (opened holds it when it
// was opened from its pin), and what the kernel says of it.
Result<int> State::open_list(uint32_t slot, Fd& opened, bpf_map_info& info) const {
  const std::string pin = list_pin(pin_dir_, slot);
  opened = Fd(pin_dir_.empty() ? -1 : bpf_obj_get(pin.c_str()));
  const auto kept = unpinned_lists_.find(slot);
  const int fd = pin_dir_.empty() && kept != unpinned_lists_.end() ? kept->second.get() : opened.get();
  if (fd < 0) return system_error("cannot open " + pin + " (a blocklist's entries)", errno);
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return system_error("cannot inspect " + pin, errno);
  return fd;
}

Result<uint32_t> State::blocklist_map_id(uint32_t slot) const {
  Fd opened;
  bpf_map_info info{};
  auto fd = open_list(slot, opened, info);
  if (!fd) return std::unexpected(fd.error());
  return info.id;
}

Result<std::vector<xt_block_entry>> State::blocklist_entries(uint32_t slot) const {
  Fd opened;
  bpf_map_info info{};
  auto fd = open_list(slot, opened, info);
  if (!fd) return std::unexpected(fd.error());
  const std::string pin = list_pin(pin_dir_, slot);
  if (info.value_size != sizeof(xt_block_entry)) return system_error(pin + " is not a blocklist of this version");
  auto entries = read_array<xt_block_entry>(*fd, info.max_entries, pin);
  if (!entries) return entries;
  // The list's own size: an empty list is one unused element.
  xt_blocklist list{};
  if (bpf_map_lookup_elem(blocklists_.get(), &slot, &list) == 0 && list.entries < entries->size())
    entries->resize(list.entries);
  return entries;
}

Result<std::vector<Cidr>> State::blocklist_cidrs(uint32_t slot) const {
  auto entries = blocklist_entries(slot);
  if (!entries) return std::unexpected(entries.error());
  std::vector<Cidr> out(entries->size());
  for (size_t i = 0; i < out.size(); i++) {
    const xt_block_entry& e = (*entries)[i];
    out[i].family = e.family;
    out[i].len = e.len;
    std::memcpy(out[i].addr.data(), e.addr, sizeof(e.addr));
  }
  return out;
}

Result<void> State::switch_blocklists(const std::vector<std::vector<xt_block_entry>>& lists) {
  if (!config_mem_) return system_error("the state's settings are not mapped: cannot load a blocklist");
  const uint32_t now = blocklists_word();
  const uint32_t set = now ? (now - 1) ^ 1 : 0;  // the one the data path does not read

  // The union: the /24s listed whole or in part, the IPv4 addresses of
  // those in part, the IPv6 prefixes. Each IPv4 prefix is walked only if
  // no prefix of the union holds it (a list may repeat one, or nest them,
  // and a snapshot or feed may be hostile): walking each as given, a
  // million copies of one /1 took 8 x 10^12 steps under the pin lock, and
  // a million of one /25 put 128M addresses in memory before they were
  // counted.
  std::vector<xt_block_word> words(XT_BLOCK4_WORDS);
  std::vector<xt_block6_key> v6;
  std::vector<std::pair<uint32_t, uint8_t>> v4;  // masked address, prefix length
  for (const auto& list : lists)
    for (const xt_block_entry& e : list) {
      if (e.family == XT_FAMILY_V6) {
        xt_block6_key k{};
        k.prefixlen = 32 + e.len;
        k.set = set;
        std::memcpy(k.addr, e.addr, sizeof(k.addr));
        v6.push_back(k);
        continue;
      }
      // Masked to its prefix (check_blocklist refuses bits past it): the
      // walks below stay within the table whatever they are handed.
      const uint8_t len = e.len > 32 ? 32 : e.len;
      v4.emplace_back(v4_of(e.addr) & (len ? ~0u << (32 - len) : 0u), len);
    }
  uint64_t in_hosts = 0;
  const auto outer = outermost_ipv4(std::move(v4), &in_hosts);
  if (in_hosts > XT_MAX_BLOCK_HOSTS)
    return usage_error("the blocklists hold " + std::to_string(in_hosts) + " IPv4 addresses in prefixes longer "
                       "than /24, more than the " + std::to_string(XT_MAX_BLOCK_HOSTS) + " the data path takes");
  std::vector<xt_block_host> hosts;
  hosts.reserve(in_hosts);
  for (const auto& [addr, len] : outer) {
    if (len <= 24) {
      const uint32_t first = addr >> 8, count = 1u << (24 - len);
      for (uint32_t n = first; n < first + count; n++) words[n >> 6].whole |= 1ULL << (n & 63);
      continue;
    }
    words[addr >> 14].part |= 1ULL << ((addr >> 8) & 63);
    for (uint32_t n = 0; n < (1u << (32 - len)); n++) {
      const uint32_t host = addr + n;
      xt_block_host h{set, 0};
      const uint8_t wire[4] = {static_cast<uint8_t>(host >> 24), static_cast<uint8_t>(host >> 16),
                               static_cast<uint8_t>(host >> 8), static_cast<uint8_t>(host)};
      std::memcpy(&h.addr, wire, 4);
      hosts.push_back(h);
    }
  }
  auto by_bytes = [](const auto& a, const auto& b) { return std::memcmp(&a, &b, sizeof(a)) < 0; };
  auto same_bytes = [](const auto& a, const auto& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; };
  std::ranges::sort(v6, by_bytes);
  v6.erase(std::unique(v6.begin(), v6.end(), same_bytes), v6.end());
  if (v6.size() > XT_MAX_BLOCK6)
    return usage_error("the blocklists hold " + std::to_string(v6.size()) + " IPv6 prefixes, more than the " +
                       std::to_string(XT_MAX_BLOCK6) + " the data path takes");

  // The other set emptied (what it held two loads ago), then filled.
  const char* hosts_what = "the blocklists' IPv4 addresses";
  const char* v6_what = "the blocklists' IPv6 prefixes";
  if (auto ok = empty_set<xt_block_host>(block_hosts_.get(), set, hosts_what); !ok) return ok;
  if (auto ok = empty_set<xt_block6_key>(block6_.get(), set, v6_what); !ok) return ok;
  std::vector<uint32_t> idx(XT_BLOCK4_WORDS);
  for (uint32_t i = 0; i < XT_BLOCK4_WORDS; i++) idx[i] = set * XT_BLOCK4_WORDS + i;
  uint32_t count = XT_BLOCK4_WORDS;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  if (bpf_map_update_batch(block4_.get(), idx.data(), words.data(), &count, &opts) != 0)
    return system_error("cannot write the blocklists' IPv4 bitmap", errno);
  if (auto ok = put_keys(block_hosts_.get(), hosts, hosts_what); !ok) return ok;
  if (auto ok = put_keys(block6_.get(), v6, v6_what); !ok) return ok;
  const bool any = std::ranges::any_of(lists, [](const auto& l) { return !l.empty(); });
  set_blocklists_word(any ? set + 1 : 0);
  return {};
}

Result<void> State::load_blocklist(const std::string& name, const std::vector<Cidr>& cidrs,
                                   std::optional<uint64_t> loaded_unix, bool by_fleet) {
  if (auto ok = check_blocklist(name, cidrs); !ok) return ok;
  auto have = blocklists();
  if (!have) return std::unexpected(have.error());
  std::optional<uint32_t> slot;
  uint64_t previous = 0;  // the version loaded before, if any
  for (const auto& b : *have)
    if (name == b.list.name) {
      slot = b.slot;
      previous = b.list.loaded_unix;
    }
  if (!slot)
    for (uint32_t s = 0; s < XT_MAX_BLOCKLISTS && !slot; s++)
      if (std::ranges::none_of(*have, [&](const Blocklist& b) { return b.slot == s; })) slot = s;
  if (!slot)
    return usage_error("there are " + std::to_string(XT_MAX_BLOCKLISTS) +
                       " blocklists already: delete one (xthrottle blocklist del NAME) or load into one of them");

  std::vector<xt_block_entry> mine;
  mine.reserve(cidrs.size());
  for (const Cidr& c : cidrs) mine.push_back(entry_of(c));
  // The union with the other lists.
  std::vector<std::vector<xt_block_entry>> lists{mine};
  for (const auto& b : *have) {
    if (b.slot == *slot) continue;
    auto entries = blocklist_entries(b.slot);
    if (!entries) return std::unexpected(entries.error());
    lists.push_back(std::move(*entries));
  }
  // The list's own map first, pinned under a temporary name: nothing
  // changes for the data path if it cannot be written.
  const uint32_t size = std::max<uint32_t>(1, static_cast<uint32_t>(mine.size()));
  Fd fd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "xt_blocklist", sizeof(uint32_t), sizeof(xt_block_entry), size, nullptr));
  if (fd.get() < 0) return system_error("cannot create the map of blocklist " + name, errno);
  if (!mine.empty()) {
    std::vector<uint32_t> keys(mine.size());
    for (uint32_t i = 0; i < keys.size(); i++) keys[i] = i;
    uint32_t count = static_cast<uint32_t>(mine.size());
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    if (bpf_map_update_batch(fd.get(), keys.data(), mine.data(), &count, &opts) != 0)
      return system_error("cannot write the entries of blocklist " + name, errno);
  }
  const std::string pin = list_pin(pin_dir_, *slot), tmp = pin + "_new";
  if (!pin_dir_.empty()) {
    (void)unlink(tmp.c_str());
    if (bpf_obj_pin(fd.get(), tmp.c_str()) != 0) return system_error("cannot pin " + tmp, errno);
  }
  const uint32_t before = blocklists_word();
  // After the switch, a step that fails puts the old set back (untouched
  // until the next switch): the lists stay as their pins and records say.
  auto undo = [&](std::unexpected<Error> e) {
    set_blocklists_word(before);
    if (!pin_dir_.empty()) (void)unlink(tmp.c_str());
    return e;
  };
  if (auto ok = switch_blocklists(lists); !ok) return undo(std::unexpected(ok.error()));
  xt_blocklist list{};
  std::snprintf(list.name, sizeof(list.name), "%s", name.c_str());
  // A version is its second: one loaded here within the second of the one
  // before counts as the second after, so it is newer. At the same second
  // the fleet's hosts took it for the version they had and kept the old
  // entries, and this host's serve did not even tell it. Two seconds ahead
  // of the clock at most: a script reloading many times a second would
  // otherwise run its versions ahead of every other host's loads.
  const uint64_t now = static_cast<uint64_t>(std::time(nullptr));
  list.loaded_unix = loaded_unix.value_or(std::max(now, std::min(previous + 1, now + 2)));
  list.entries = static_cast<uint32_t>(mine.size());
  list.used = by_fleet ? XT_BLOCKLIST_BY_FLEET : loaded_unix ? XT_BLOCKLIST_RESTORED : XT_BLOCKLIST_HERE;
  xt_blocklist old{};
  (void)bpf_map_lookup_elem(blocklists_.get(), &*slot, &old);
  if (bpf_map_update_elem(blocklists_.get(), &*slot, &list, BPF_ANY) != 0)
    return undo(system_error("cannot record blocklist " + name, errno));
  if (pin_dir_.empty()) {
    unpinned_lists_[*slot] = std::move(fd);
  } else if (rename(tmp.c_str(), pin.c_str()) != 0) {
    const int err = errno;
    (void)bpf_map_update_elem(blocklists_.get(), &*slot, &old, BPF_ANY);
    return undo(system_error("cannot rename " + tmp + " to " + pin, err));
  }
  // A new epoch empties the hot cache, whose entries are looked up before
  // the lists: a source held for a deny rule would otherwise go on being
  // dropped as denied (sent to the rule's --over interface) until the rules
  // next change. The list is in: a failure here only leaves those as they
  // were, and is not the load's.
  (void)publish(nullptr);
  return {};
}

Result<void> State::set_blocklist_version(uint32_t slot, uint64_t loaded_unix) {
  xt_blocklist list{};
  if (bpf_map_lookup_elem(blocklists_.get(), &slot, &list) != 0 || !list.used)
    return system_error("cannot read blocklist slot " + std::to_string(slot), errno ? errno : ENOENT);
  list.loaded_unix = loaded_unix;
  if (bpf_map_update_elem(blocklists_.get(), &slot, &list, BPF_EXIST) != 0)
    return system_error("cannot record blocklist " + std::string(list.name, strnlen(list.name, sizeof(list.name))) +
                            "'s version",
                        errno);
  return {};
}

Result<void> State::del_blocklist(const std::string& name) {
  auto have = blocklists();
  if (!have) return std::unexpected(have.error());
  auto it = std::ranges::find_if(*have, [&](const Blocklist& b) { return name == b.list.name; });
  // Nothing of that name in the state: the state said no, as for `rule
  // del` and `ban del` (exit 1).
  if (it == have->end()) return system_error("no blocklist " + name + " (see `xthrottle blocklist list`)");
  std::vector<std::vector<xt_block_entry>> lists;
  for (const auto& b : *have) {
    if (b.slot == it->slot) continue;
    auto entries = blocklist_entries(b.slot);
    if (!entries) return std::unexpected(entries.error());
    lists.push_back(std::move(*entries));
  }
  const uint32_t before = blocklists_word();
  if (auto ok = switch_blocklists(lists); !ok) {
    set_blocklists_word(before);
    return ok;
  }
  const xt_blocklist none{};
  if (bpf_map_update_elem(blocklists_.get(), &it->slot, &none, BPF_ANY) != 0) {
    const int err = errno;
    set_blocklists_word(before);
    return system_error("cannot forget blocklist " + name, err);
  }
  if (pin_dir_.empty())
    unpinned_lists_.erase(it->slot);
  else
    (void)unlink(list_pin(pin_dir_, it->slot).c_str());
  return {};
}

Result<bool> State::blocklisted(const Cidr& addr) const {
  if (!config_mem_) return system_error("the state's settings are not mapped");
  const uint32_t word = blocklists_word();
  if (!word) return false;
  const uint32_t set = word - 1;
  if (addr.family == XT_FAMILY_V6) {
    xt_block6_key k{};
    k.prefixlen = 32 + 128;
    k.set = set;
    std::memcpy(k.addr, addr.addr.data(), sizeof(k.addr));
    uint32_t v = 0;
    return bpf_map_lookup_elem(block6_.get(), &k, &v) == 0;
  }
  const uint32_t a = v4_of(addr.addr.data());
  uint32_t idx = set * XT_BLOCK4_WORDS + (a >> 14);
  xt_block_word w{};
  if (bpf_map_lookup_elem(block4_.get(), &idx, &w) != 0) return system_error("cannot read the blocklists' bitmap", errno);
  const uint64_t bit = 1ULL << ((a >> 8) & 63);
  if (w.whole & bit) return true;
  if (!(w.part & bit)) return false;
  xt_block_host h{set, 0};
  std::memcpy(&h.addr, addr.addr.data(), 4);
  uint32_t v = 0;
  return bpf_map_lookup_elem(block_hosts_.get(), &h, &v) == 0;
}

}  // namespace xt
