// SPDX-License-Identifier: MIT
// What `recommend --from` reads, and serve reads back before it appends: a
// record (record_file.h), any bytes. Refused, or read up to a cut; what was
// read, encoded again and read back, is the same seconds; and recommend.h
// works its figures out of it (as --per 24 does) without overflow or a
// read out of bounds. Never a crash.
#include <cstdlib>
#include <deque>
#include <string>
#include <vector>

#include "record_file.h"
#include "recommend.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::vector<std::pair<int64_t, std::vector<xt::RecordEncoder::Sent>>> seconds;
  std::deque<std::string> names;  // what the Sent's rules view
  xt::ObservedBuilder seen;
  seen.fold_to(size % 2 ? 24 : 0);
  auto read = xt::read_record(bytes, "fuzz", [&](const xt::RecordedSecond& s) {
    seconds.push_back({s.unix_second, {}});
    seen.second(static_cast<uint32_t>(s.unix_second));
    for (auto [src, packets] : s.sent) {
      const xt::RecordedSource& r = s.sources->at(src);
      names.push_back(s.rules->at(r.rule));
      // Every other entry with a hint (the source's number here), as serve
      // gives its slot.
      seconds.back().second.push_back({names.back(), r.family, r.len, r.addr, packets, src % 2 ? src + 1 : 0});
      seen.add({seen.group(s.rules->at(r.rule)), r.family, r.len, r.addr}, packets);
    }
  });
  if (!read) return 0;
  if (read->whole > size || read->seconds != seconds.size() || (read->cut && read->whole == size)) std::abort();
  xt::RecordEncoder again;
  for (const auto& [t, sent] : seconds) again.second(t, sent);
  size_t i = 0;
  auto back = xt::read_record(again.take(), "again", [&](const xt::RecordedSecond& s) {
    if (i >= seconds.size() || s.unix_second != seconds[i].first || s.sent.size() != seconds[i].second.size())
      std::abort();
    for (size_t k = 0; k < s.sent.size(); k++) {
      const xt::RecordedSource& r = s.sources->at(s.sent[k].first);
      const auto& want = seconds[i].second[k];
      if (s.rules->at(r.rule) != want.rule || r.addr != want.addr || s.sent[k].second != want.packets) std::abort();
    }
    i++;
  });
  if (!back || back->cut || i != seconds.size()) std::abort();
  for (const auto& r : xt::recommend(seen.take(), 0.999))
    if (r.sources_dropped > r.sources || r.packets_dropped > r.packets) std::abort();
  return 0;
}
