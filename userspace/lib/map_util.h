// SPDX-License-Identifier: MIT
// Small helpers over libbpf's map syscalls, shared by the state and attach code.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include <unistd.h>

#include "error.h"

namespace xt {

// Calls fn(key) once for every key of a small map that only the controller
// changes (the rule and attach tables). If the key the walk stands on is
// deleted meanwhile, the kernel restarts from the first key: keys seen
// already are skipped, and a walk that keeps being sent back fails with an
// error rather than report a walk it did not finish.
template <class K, class Fn>
Result<void> walk_keys(int fd, const char* what, Fn&& fn) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return system_error(std::string("cannot inspect ") + what, errno);
  // Every key of a map of max_entries, and as many restarts again: more
  // means the map is being emptied and refilled under the walk.
  const uint64_t most_steps = 4 * static_cast<uint64_t>(info.max_entries) + 1000;
  K key{}, next{};
  const void* prev = nullptr;
  std::unordered_set<std::string> seen;
  uint64_t steps = 0;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    if (seen.emplace(reinterpret_cast<const char*>(&next), sizeof(next)).second) fn(next);
    if (++steps > most_steps)
      return system_error(std::string("cannot walk ") + what + ": it kept changing under the walk (sent back " +
                          "to its start after " + std::to_string(seen.size()) + " entries); try again");
    key = next;
    prev = &key;
  }
  if (errno != ENOENT) return system_error(std::string("cannot walk ") + what, errno);
  return {};
}

// Calls fn(key, value) for every element of a map that the data path
// changes under the walk (the bucket table, the bans), in batches. A hash's
// batch walk goes through its buckets in order and is never sent back:
// elements added or deleted meanwhile may or may not be seen, every other
// one is seen exactly once. A trie's (the kernel's generic batches, a key
// at a time within the call) starts over from its first key when the key
// it stands on is deleted meanwhile, as a walk by bpf_map_get_next_key
// does: an element may then be seen twice.
template <class K, class V, class Fn>
Result<void> walk_batches(int fd, const char* what, Fn&& fn) {
  uint32_t per_call = 4096;
  std::vector<K> keys(per_call);
  std::vector<V> values(per_call);
  // The kernel's cursor: a hash's bucket index, or for the maps without
  // batches of their own (a trie) the last key read.
  alignas(8) unsigned char token[sizeof(K) > sizeof(uint64_t) ? sizeof(K) : sizeof(uint64_t)] = {};
  bool first = true;
  int interrupted = 0;
  for (;;) {
    uint32_t count = per_call;
    int err = bpf_map_lookup_batch(fd, first ? nullptr : token, token, keys.data(), values.data(), &count, nullptr);
    if (err && errno == ENOSPC && count == 0) {  // one hash bucket holds more than a batch
      per_call *= 2;
      keys.resize(per_call);
      values.resize(per_call);
      continue;
    }
    // EINTR: a generic batch found the next key gone three times over; what
    // it read is kept (count, and the cursor where count is not 0).
    const bool again = err && errno == EINTR && ++interrupted < 100;
    if (err && errno != ENOENT && !again) return system_error(std::string("cannot walk ") + what, errno);
    for (uint32_t i = 0; i < count; i++) fn(keys[i], values[i]);
    if (err && !again) return {};  // ENOENT: that was the last batch
    if (count) first = false;
    if (!again || count) interrupted = 0;  // 100 in a row without a key read: give up
  }
}

// The first n elements of an array map, read in batches (fewer if the map
// has fewer).
template <class V>
Result<std::vector<V>> read_array(int fd, uint32_t n, const std::string& what) {
  std::vector<V> values(n);
  std::vector<uint32_t> keys(n);
  uint32_t done = 0, token = 0;
  while (done < n) {
    uint32_t count = n - done;
    const int err =
        bpf_map_lookup_batch(fd, done ? &token : nullptr, &token, keys.data() + done, values.data() + done, &count, nullptr);
    if (err && errno != ENOENT) return system_error("cannot read " + what, errno);
    done += count;
    if (err || !count) break;  // ENOENT: that was the last batch
  }
  values.resize(done);
  return values;
}

// CPUs online: what shares a per-CPU budget (a flood reaches only these).
inline uint32_t online_cpus() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<uint32_t>(n) : 1;
}

inline int possible_cpus() {
  static const int n = libbpf_num_possible_cpus();
  return n;
}

// Looks up a per-CPU value and sums it field by field (all fields are __u64).
template <class T>
Result<T> percpu_sum(int fd, uint32_t key, const char* what) {
  static_assert(sizeof(T) % sizeof(uint64_t) == 0);
  constexpr size_t kFields = sizeof(T) / sizeof(uint64_t);
  std::vector<uint64_t> values(static_cast<size_t>(possible_cpus()) * kFields);
  if (bpf_map_lookup_elem(fd, &key, values.data()) != 0)
    return system_error(std::string("cannot read ") + what + " " + std::to_string(key), errno);
  uint64_t sums[kFields] = {};
  for (int cpu = 0; cpu < possible_cpus(); cpu++)
    for (size_t f = 0; f < kFields; f++) sums[f] += values[cpu * kFields + f];
  T out;
  std::memcpy(&out, sums, sizeof(out));
  return out;
}

inline uint32_t map_id(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

}  // namespace xt
