// SPDX-License-Identifier: MIT
// What another host (or anyone who can write to the fleet's Redis stream)
// sends: a use batch (fleet_wire.h), any bytes. Refused whole, or every
// record is of a family, a prefix within it, and no bit past the prefix;
// and what is accepted encodes back to the same bytes; the same for a
// blocklist. The first byte chooses: 0 makes the rest a use batch after the
// magic, 1 a --cluster URL, whose refusals never repeat the URL's password,
// 2 a blocklist after its magic. Never a crash.
#include <cstdlib>
#include <string>

#include "fleet_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 3 == 2) {
    const std::string blob = "XTB1" + rest;
    auto list = xt::decode_prefixes(blob);
    if (!list) return 0;
    for (const auto& c : *list)
      if (c.len > xt::family_bits(c.family)) std::abort();
    if (xt::encode_prefixes(*list) != blob) std::abort();
    return 0;
  }
  if (data[0] % 3 == 1) {
    if (rest.find("P4SSW0RD") != std::string::npos) return 0;  // the fuzzer's own copy: anyone's to show
    const std::string url = "redis://u:P4SSW0RD@" + rest;
    auto u = xt::parse_cluster_url(url);
    if (!u) {
      if (u.error().message.find("P4SSW0RD") != std::string::npos) std::abort();
      return 0;
    }
    if (u->redacted().find("P4SSW0RD") != std::string::npos) std::abort();
    return 0;
  }
  const std::string blob = "XTU1" + rest;
  auto use = xt::decode_use(blob);
  if (!use) return 0;
  for (const auto& u : *use) {
    const int bits = u.family == XT_FAMILY_V4 ? 32 : u.family == XT_FAMILY_V6 ? 128 : -1;
    if (bits < 0 || u.per_len > bits) std::abort();
  }
  if (xt::encode_use(*use) != blob) std::abort();
  return 0;
}
