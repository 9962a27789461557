// SPDX-License-Identifier: MIT
#include "record_file.h"

#include <xthrottle/abi.h>

#include <optional>

namespace xt {
namespace {

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(0x80 | (v & 0x7f)));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_entry(std::string& out, char type, const std::string& body) {
  out.push_back(type);
  put_varint(out, body.size());
  out += body;
}

size_t addr_bytes(uint8_t family) { return family == XT_FAMILY_V4 ? 4 : 16; }

// A cursor over bytes that says when it runs out.
struct Reader {
  std::string_view in;
  size_t at = 0;
  bool done() const { return at >= in.size(); }
  std::optional<uint64_t> varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && at < in.size(); shift += 7) {
      const auto byte = static_cast<uint8_t>(in[at++]);
      v |= uint64_t{byte & 0x7fu} << shift;
      if (!(byte & 0x80)) return v;
    }
    return std::nullopt;
  }
  std::optional<uint8_t> byte() {
    if (at >= in.size()) return std::nullopt;
    return static_cast<uint8_t>(in[at++]);
  }
};

}  // namespace

RecordEncoder::RecordEncoder() : out_(kRecordMagic) {}

void RecordEncoder::second(int64_t unix_second, const std::vector<Sent>& sent) {
  std::string body;
  put_varint(body, static_cast<uint64_t>(unix_second));
  for (const Sent& s : sent) {
    auto [rule, new_rule] = rules_.try_emplace(s.rule, static_cast<uint32_t>(rules_.size()));
    if (new_rule) put_entry(out_, 'N', s.rule);
    std::string key;
    put_varint(key, rule->second);
    key.push_back(static_cast<char>(s.family));
    key.push_back(static_cast<char>(s.len));
    key.append(reinterpret_cast<const char*>(s.addr.data()), addr_bytes(s.family));
    auto [source, new_source] = sources_.try_emplace(key, static_cast<uint32_t>(sources_.size()));
    if (new_source) put_entry(out_, 'K', key);
    put_varint(body, source->second);
    put_varint(body, s.packets);
  }
  put_entry(out_, 'S', body);
}

Result<RecordRead> read_record(std::string_view bytes, const std::string& what,
                               const std::function<void(const RecordedSecond&)>& fn) {
  RecordRead read;
  if (!bytes.starts_with(kRecordMagic))
    return usage_error(what + ": not an xthrottle record (serve --record writes one)");
  std::vector<std::string> rules;
  std::vector<RecordedSource> sources;
  RecordedSecond second;
  second.rules = &rules;
  second.sources = &sources;
  Reader file{bytes};
  auto damaged = [&](size_t at, const std::string& why) {
    return usage_error(what + ": damaged at byte " + std::to_string(at) + ": " + why);
  };
  while (!file.done()) {
    const size_t start = file.at;
    // A new segment: its own rules and sources.
    if (bytes.substr(start).starts_with(kRecordMagic)) {
      rules.clear();
      sources.clear();
      file.at += kRecordMagic.size();
      read.whole = file.at;
      continue;
    }
    const uint8_t type = *file.byte();
    auto len = file.varint();
    if (!len || *len > file.in.size() - file.at) {
      // Cut short. Only the last entry can be: anything after it would be
      // read as its body.
      read.cut = true;
      return read;
    }
    Reader body{file.in.substr(file.at, *len)};
    file.at += *len;
    switch (type) {
      case 'N':
        rules.emplace_back(body.in);
        break;
      case 'K': {
        RecordedSource s;
        auto rule = body.varint();
        auto family = body.byte();
        auto plen = body.byte();
        if (!rule || !family || !plen || *rule >= rules.size() ||
            (*family != XT_FAMILY_V4 && *family != XT_FAMILY_V6) || *plen > addr_bytes(*family) * 8 ||
            body.in.size() - body.at != addr_bytes(*family))
          return damaged(start, "a source entry that names no rule or no address");
        s.rule = static_cast<uint32_t>(*rule);
        s.family = *family;
        s.len = *plen;
        for (size_t i = 0; i < addr_bytes(s.family); i++) s.addr[i] = static_cast<uint8_t>(body.in[body.at + i]);
        sources.push_back(s);
        break;
      }
      case 'S': {
        auto t = body.varint();
        if (!t || *t > UINT32_MAX) return damaged(start, "a second with no time");
        second.unix_second = static_cast<int64_t>(*t);
        second.sent.clear();
        while (!body.done()) {
          auto src = body.varint();
          auto packets = body.varint();
          if (!src || !packets || *src >= sources.size() || *packets > UINT32_MAX)
            return damaged(start, "a count of a source the segment has not named");
          second.sent.emplace_back(static_cast<uint32_t>(*src), static_cast<uint32_t>(*packets));
        }
        read.seconds++;
        fn(second);
        break;
      }
      default:
        return damaged(start, "an entry of an unknown kind (written by a newer xthrottle?)");
    }
    read.whole = file.at;
  }
  return read;
}

}  // namespace xt
