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
  for (const auto& r : file->rules) {
    auto again = xt::spec_from_options_text(r.cidr, xt::options_text(r.spec));
    if (!again || !xt::same_rule(*again, r.spec)) std::abort();
  }
  for (const auto& l : file->lists)
    for (const auto& c : l.entries)
      if (c.len == 0 || c.len > xt::family_bits(c.family) || !xt::only_prefix_bits(c.addr.data(), c.len)) std::abort();
  return 0;
}
