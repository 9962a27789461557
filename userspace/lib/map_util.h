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

#include "error.h"

namespace xt {

// Calls fn(key) once for every key of the map. When the key the walk stands
// on is deleted meanwhile (an LRU evicting under churn), the kernel restarts
// from the first key: keys seen already are skipped, and a walk that keeps
// being sent back stops after a bound rather than never ending.
template <class K, class Fn>
Result<void> walk_keys(int fd, const char* what, Fn&& fn) {
  K key{}, next{};
  const void* prev = nullptr;
  std::unordered_set<std::string> seen;
  uint64_t steps = 0;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    if (seen.emplace(reinterpret_cast<const char*>(&next), sizeof(next)).second) fn(next);
    if (++steps > 4 * seen.size() + 100000) return {};
    key = next;
    prev = &key;
  }
  if (errno != ENOENT) return system_error(std::string("cannot walk ") + what, errno);
  return {};
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
