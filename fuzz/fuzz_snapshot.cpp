// SPDX-License-Identifier: MIT
// Snapshot files (userspace/lib/snapshot_file.h), any bytes: refused with
// "PATH: why; nothing was changed", or accepted with every record naming a
// rule the file has and a source of a family, and every rule's options
// reading back to the same rule. Never a crash. The checksum would turn
// nearly every mutation away at the first check, so the fuzzer's bytes are
// taken as the snapshot's body and given a correct checksum first: what
// it reaches is the header and the records, as a file written by a
// faulty or hostile build would be.
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "snapshot_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  xt::Sha256 digest;
  digest.update(bytes);
  bytes += digest.bytes();
  auto file = xt::parse_snapshot(bytes, "fuzz.snap");
  if (!file) {
    if (!file.error().message.starts_with("fuzz.snap: ") || !file.error().message.ends_with("nothing was changed"))
      std::abort();
    return 0;
  }
  for (const auto& b : file->buckets)
    if (b.rule >= file->rules.size() || (b.family != XT_FAMILY_V4 && b.family != XT_FAMILY_V6)) std::abort();
  // The same bytes through a reader, the bucket records left where they
  // are (read_snapshot's way), then read back a chunk at a time: the same
  // records, in order.
  const xt::SnapshotReader read = [&](uint64_t at, size_t n, void* out) -> xt::Result<void> {
    if (at > bytes.size() || n > bytes.size() - at) std::abort();  // a read past the end
    if (n) std::memcpy(out, bytes.data() + at, n);
    return {};
  };
  auto left = xt::parse_snapshot(bytes.size(), read, "fuzz.snap", false);
  if (!left || !left->buckets.empty() || left->bucket_count != file->buckets.size()) std::abort();
  size_t next = 0;
  auto each = xt::for_each_bucket_chunk(*left, "fuzz.snap", [&](std::span<const xt::SnapshotBucket> chunk) -> xt::Result<void> {
    for (const auto& b : chunk)
      if (next >= file->buckets.size() || std::memcmp(&b, &file->buckets[next++], sizeof(b)) != 0) std::abort();
    return {};
  });
  if (!each || next != file->buckets.size()) std::abort();
  for (const auto& r : file->rules) {
    auto again = xt::spec_from_options_text(r.cidr, xt::options_text(r.spec));
    if (!again || !xt::same_rule(*again, r.spec)) std::abort();
  }
  for (const auto& l : file->lists)
    for (const auto& c : l.entries)
      if (c.len == 0 || c.len > xt::family_bits(c.family) || !xt::only_prefix_bits(c.addr.data(), c.len)) std::abort();
  return 0;
}
