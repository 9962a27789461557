// SPDX-License-Identifier: MIT
#include "policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <numeric>

#include "keys.h"

namespace xt {
namespace {

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string lower(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Digits only: no sign, no fraction, no spaces.
Result<uint64_t> parse_u64(std::string_view what, std::string_view full, std::string_view digits) {
  if (digits.empty() || !std::ranges::all_of(digits, [](unsigned char c) { return std::isdigit(c); }))
    return usage_error("bad " + std::string(what) + " " + in_quotes(full) + ": " + in_quotes(digits) +
                       " is not a whole number");
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || ptr != digits.data() + digits.size())
    return usage_error("bad " + std::string(what) + " " + in_quotes(full) + ": " + in_quotes(digits) +
                       " is too large");
  return value;
}

struct TimeUnit {
  const char* names[4];
  uint64_t ns;
  const char* canonical;
};
constexpr TimeUnit kTimeUnits[] = {
    {{"s", "sec", "second", "seconds"}, kNsPerSec, "s"},
    {{"m", "min", "minute", "minutes"}, 60 * kNsPerSec, "min"},
    {{"h", "hour", "hours", nullptr}, 3600 * kNsPerSec, "hour"},
    {{"d", "day", "days", nullptr}, 86400 * kNsPerSec, "day"},
};

std::optional<uint64_t> time_unit_ns(std::string_view unit) {
  std::string u = lower(unit);
  for (const auto& tu : kTimeUnits)
    for (const char* name : tu.names)
      if (name && u == name) return tu.ns;
  return std::nullopt;
}

struct SiPrefix {
  char letter;
  uint64_t mult;
};
constexpr SiPrefix kSiPrefixes[] = {
    {'k', 1'000ULL}, {'M', 1'000'000ULL}, {'G', 1'000'000'000ULL}, {'T', 1'000'000'000'000ULL}};

}  // namespace

Result<Rate> parse_rate(std::string_view text, std::string_view bandwidth_option) {
  // "10Mbit/s" where packets were meant: say which option takes it.
  if (parse_bandwidth(text))
    return usage_error("bad rate " + in_quotes(text) + ": that is a bandwidth" +
                       (bandwidth_option.empty() ? std::string(", and this rate has no bandwidth form")
                                                 : ", which " + std::string(bandwidth_option) + " takes") +
                       "; a rate counts packets, e.g. 100/s or 6000/min");
  auto slash = text.find('/');
  if (slash == std::string_view::npos)
    return usage_error("bad rate " + in_quotes(text) + ": expected N/UNIT, e.g. 100/s or 6000/min");
  auto count = parse_u64("rate", text, text.substr(0, slash));
  if (!count) return std::unexpected(count.error());
  if (*count == 0) return usage_error("bad rate " + in_quotes(text) + ": the rate must be above zero");
  std::string_view unit = text.substr(slash + 1);
  auto ns = time_unit_ns(unit);
  if (!ns)
    return usage_error("bad rate " + in_quotes(text) + ": unknown unit " + in_quotes(unit) +
                       " (use s, sec, second, m, min, minute, h, hour, d or day)");
  return Rate{*count, *ns};
}

std::string format_rate(uint64_t count, uint64_t period_ns) {
  for (const auto& tu : kTimeUnits)
    if (tu.ns == period_ns) return std::to_string(count) + "/" + tu.canonical;
  return std::to_string(count) + "/" + std::to_string(period_ns) + "ns";
}

Result<Bandwidth> parse_bandwidth(std::string_view text) {
  auto slash = text.rfind('/');
  if (slash == std::string_view::npos)
    return usage_error("bad bandwidth " + in_quotes(text) + ": expected N UNIT/PERIOD, e.g. 10Mbit/s, 2MB/s or 1GB/day");
  const std::string_view per = text.substr(slash + 1);
  const auto period_ns = time_unit_ns(per);
  if (!period_ns)
    return usage_error("bad bandwidth " + in_quotes(text) + ": unknown period " + in_quotes(per) +
                       " (use s, min, hour or day)");
  std::string_view quantity = text.substr(0, slash);
  while (!quantity.empty() && quantity.back() == ' ') quantity.remove_suffix(1);
  size_t digits_end = 0;
  while (digits_end < quantity.size() && std::isdigit(static_cast<unsigned char>(quantity[digits_end])))
    digits_end++;
  std::string_view number = quantity.substr(0, digits_end);
  std::string_view unit = quantity.substr(digits_end);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  auto value = parse_u64("bandwidth", text, number);
  if (!value) return std::unexpected(value.error());
  if (*value == 0) return usage_error("bad bandwidth " + in_quotes(text) + ": the bandwidth must be above zero");

  uint64_t mult = 1;
  std::string_view base = unit;
  if (!unit.empty()) {
    for (const auto& p : kSiPrefixes) {
      // "k" is the SI spelling; "K" is common enough to accept too.
      if (unit.front() == p.letter || (p.letter == 'k' && unit.front() == 'K')) {
        mult = p.mult;
        base = unit.substr(1);
        break;
      }
    }
  }
  bool bytes;
  if (base == "bit")
    bytes = false;
  else if (base == "B")
    bytes = true;
  else
    return usage_error("bad bandwidth " + in_quotes(text) + ": unknown unit " + in_quotes(unit) +
                       " (use bit, kbit, Mbit, Gbit, Tbit or B, kB, MB, GB, TB)");
  uint64_t factor = mult * (bytes ? 8 : 1);
  if (*value > UINT64_MAX / factor) return usage_error("bad bandwidth " + in_quotes(text) + ": too large");
  return Bandwidth{*value * factor, *period_ns, bytes};
}

std::string format_bandwidth(const Bandwidth& bw) {
  uint64_t value = bw.bits;
  const char* base = "bit";
  if (bw.byte_unit && bw.bits % 8 == 0) {
    value = bw.bits / 8;
    base = "B";
  }
  std::string prefix;
  for (auto it = std::rbegin(kSiPrefixes); it != std::rend(kSiPrefixes); ++it) {
    if (value % it->mult == 0) {
      value /= it->mult;
      prefix = std::string(1, it->letter);
      break;
    }
  }
  // format_rate's unit names, without its count.
  const std::string rate = format_rate(1, bw.period_ns);
  return std::to_string(value) + prefix + base + rate.substr(rate.find('/'));
}

Result<uint64_t> parse_duration(std::string_view what, std::string_view text, bool zero_is_none) {
  if (text == "0" || lower(text) == "off") return 0;
  size_t digits_end = 0;
  while (digits_end < text.size() && std::isdigit(static_cast<unsigned char>(text[digits_end]))) digits_end++;
  const std::string_view unit = text.substr(digits_end);
  auto count = parse_u64(what, text, text.substr(0, digits_end));
  if (!count) return std::unexpected(count.error());
  auto ns = time_unit_ns(unit);
  if (!ns)
    return usage_error("bad " + std::string(what) + " " + in_quotes(text) + ": expected N and a unit (s, min, h, d), " +
                       "e.g. 30min or 24h" + (zero_is_none ? ", or 0 for none" : ""));
  const uint64_t per = *ns / kNsPerSec;
  if (*count > UINT32_MAX / per)
    return usage_error("bad " + std::string(what) + " " + in_quotes(text) + ": too long (at most " +
                       std::to_string(UINT32_MAX / 86400) + " days)");
  return *count * per;
}

std::string format_duration(uint64_t seconds) {
  if (seconds == 0) return "0";
  for (auto it = std::rbegin(kTimeUnits); it != std::rend(kTimeUnits); ++it) {
    const uint64_t per = it->ns / kNsPerSec;
    if (seconds % per == 0) return std::to_string(seconds / per) + it->canonical;
  }
  return std::to_string(seconds) + "s";
}

Result<uint64_t> parse_size(std::string_view what, std::string_view text) {
  size_t digits_end = 0;
  while (digits_end < text.size() && std::isdigit(static_cast<unsigned char>(text[digits_end]))) digits_end++;
  auto count = parse_u64(what, text, text.substr(0, digits_end));
  if (!count) return std::unexpected(count.error());
  static constexpr std::pair<std::string_view, uint64_t> kUnits[] = {
      {"", 1},          {"B", 1},           {"KB", 1000},       {"MB", 1000'000}, {"GB", 1000'000'000},
      {"KiB", 1 << 10}, {"MiB", 1 << 20},   {"GiB", 1 << 30}};
  for (const auto& [unit, bytes] : kUnits)
    if (text.substr(digits_end) == unit) {
      if (*count > UINT64_MAX / bytes / 2) return usage_error("bad " + std::string(what) + " " + in_quotes(text) + ": too large");
      return *count * bytes;
    }
  return usage_error("bad " + std::string(what) + " " + in_quotes(text) +
                     ": expected N and a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. 256MB");
}

Result<uint64_t> parse_positive(std::string_view what, std::string_view text) {
  auto value = parse_u64(what, text, text);
  if (!value) return value;
  if (*value == 0) return usage_error("bad " + std::string(what) + " " + in_quotes(text) + ": must be above zero");
  return value;
}

Result<int> parse_prefix_len(std::string_view what, std::string_view text) {
  auto value = parse_u64(what, text, text);
  if (!value) return std::unexpected(value.error());
  if (*value > 128)
    return usage_error("bad " + std::string(what) + " " + in_quotes(text) + ": longer than any address (128 bits)");
  return static_cast<int>(*value);
}

Result<Cidr> parse_cidr(std::string_view text) {
  Cidr cidr;
  std::string addr(text);
  std::optional<std::string_view> len_text;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    addr = std::string(text.substr(0, slash));
    len_text = text.substr(slash + 1);
  }
  // inet_pton reads up to a NUL: "198.18.0.0\0junk" is no address.
  if (addr.find('\0') != std::string::npos)
    return usage_error("bad CIDR " + in_quotes(text) + ": it holds a NUL byte");
  if (inet_pton(AF_INET, addr.c_str(), cidr.addr.data()) == 1) {
    cidr.family = XT_FAMILY_V4;
  } else if (inet_pton(AF_INET6, addr.c_str(), cidr.addr.data()) == 1) {
    cidr.family = XT_FAMILY_V6;
  } else {
    return usage_error("bad CIDR " + in_quotes(text) + ": " + in_quotes(addr) + " is not an IPv4 or IPv6 address");
  }
  const int max = family_bits(cidr.family);
  cidr.len = static_cast<uint8_t>(max);
  if (len_text) {
    auto len = parse_u64("CIDR", text, *len_text);
    if (!len) return std::unexpected(len.error());
    if (*len > static_cast<uint64_t>(max))
      return usage_error("bad CIDR " + in_quotes(text) + ": prefix length " + std::string(*len_text) +
                         " is longer than an " + (cidr.family == XT_FAMILY_V4 ? "IPv4" : "IPv6") +
                         " address (" + std::to_string(max) + " bits)");
    cidr.len = static_cast<uint8_t>(*len);
  }
  // Host bits set is almost always a typo for a different prefix: say so.
  Cidr masked = cidr;
  masked.addr = prefix_of(cidr.addr, cidr.len);
  if (masked != cidr)
    return usage_error("bad CIDR " + in_quotes(text) + ": host bits are set (did you mean " +
                       format_cidr(masked) + "?)");
  return cidr;
}

std::optional<Cidr> mapped_ipv4(const Cidr& cidr) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (cidr.family != XT_FAMILY_V6 || cidr.len <= 96 || std::memcmp(cidr.addr.data(), kMapped, 12) != 0)
    return std::nullopt;
  Cidr v4;
  v4.family = XT_FAMILY_V4;
  std::memcpy(v4.addr.data(), cidr.addr.data() + 12, 4);
  v4.len = static_cast<uint8_t>(cidr.len - 96);
  return v4;
}

Result<Cidr> parse_source_cidr(std::string_view text) {
  auto cidr = parse_cidr(text);
  if (!cidr) return cidr;
  if (const auto v4 = mapped_ipv4(*cidr))
    return usage_error("bad CIDR " + in_quotes(text) +
                       ": an IPv4-mapped IPv6 address; an IPv4 client's packets are IPv4 here, write " +
                       format_cidr(*v4));
  return cidr;
}

std::array<uint8_t, 16> prefix_of(const std::array<uint8_t, 16>& addr, unsigned len) {
  __u64 w[2];
  xt_mask_addr(addr.data(), static_cast<int>(len), w);
  std::array<uint8_t, 16> out;
  xt_store_be64(out.data(), w[0]);
  xt_store_be64(out.data() + 8, w[1]);
  return out;
}

std::string format_addr(uint8_t family, const uint8_t* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == XT_FAMILY_V4 ? AF_INET : AF_INET6, addr, buf, sizeof(buf));
  return buf;
}

std::string format_cidr(const Cidr& cidr) {
  return format_addr(cidr.family, cidr.addr.data()) + "/" + std::to_string(cidr.len);
}

uint8_t match_level(const Match& m) {
  if (m.syn) return m.ports ? XT_MATCH_SYN_PORT : XT_MATCH_SYN;
  if (m.ports) return XT_MATCH_PORT;
  return m.proto ? XT_MATCH_PROTO : XT_MATCH_ANY;
}

namespace {

constexpr std::pair<const char*, uint8_t> kProtos[] = {
    {"icmp", 1}, {"tcp", 6}, {"udp", 17}, {"gre", 47}, {"esp", 50}, {"icmpv6", 58}, {"sctp", 132}};

}  // namespace

Result<uint8_t> parse_proto(std::string_view text) {
  for (const auto& [name, number] : kProtos)
    if (text == name) return number;
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || n > 255)
    return usage_error("bad protocol " + in_quotes(text) + ": expected tcp, udp, icmp, icmpv6, sctp, gre, esp or a "
                       "protocol number 0..255");
  return static_cast<uint8_t>(n);
}

std::string format_proto(uint8_t proto) {
  for (const auto& [name, number] : kProtos)
    if (proto == number) return name;
  return std::to_string(proto);
}

Result<std::pair<uint16_t, uint16_t>> parse_ports(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return usage_error("bad port " + in_quotes(text) + ": " + why);
  };
  auto number = [](std::string_view t) -> std::optional<uint16_t> {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size() || n > 65535) return std::nullopt;
    return static_cast<uint16_t>(n);
  };
  const size_t dash = text.find('-');
  auto lo = number(text.substr(0, dash));
  auto hi = dash == std::string_view::npos ? lo : number(text.substr(dash + 1));
  if (!lo || !hi) return bad("expected a port 0..65535 or a range P-Q, e.g. 53 or 1024-65535");
  if (*lo > *hi) return bad("the range's first port is above its last");
  return std::pair(*lo, *hi);
}

std::string format_ports(const std::pair<uint16_t, uint16_t>& ports) {
  return ports.first == ports.second ? std::to_string(ports.first)
                                     : std::to_string(ports.first) + "-" + std::to_string(ports.second);
}

std::string format_match(const Match& m) {
  if (!m.proto) return "";
  std::string out = format_proto(*m.proto);
  if (m.ports) out += "/" + format_ports(*m.ports);
  if (m.syn) out += " syn";
  return out;
}

std::string rule_name(const Cidr& cidr, const Match& match) {
  const std::string m = format_match(match);
  return format_cidr(cidr) + (m.empty() ? "" : " " + m);
}

std::vector<std::string_view> comma_list(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

xt_rule_key rule_key(const Cidr& cidr, const Match& match) {
  xt_rule_key key{};
  key.prefixlen = XT_LPM_MATCH_BITS + cidr.len;
  key.family = cidr.family;
  key.level = match_level(match);
  key.proto = match.proto.value_or(0);
  if (match.ports) {
    key.port_lo = match.ports->first;
    key.port_hi = match.ports->second;
  }
  std::copy(cidr.addr.begin(), cidr.addr.end(), key.addr);
  return key;
}

Cidr cidr_of(const xt_rule_key& key) {
  Cidr cidr;
  cidr.family = key.family;
  std::copy(std::begin(key.addr), std::end(key.addr), cidr.addr.begin());
  cidr.len = static_cast<uint8_t>(key.prefixlen - XT_LPM_MATCH_BITS);
  return cidr;
}

Match match_of(const xt_rule_key& key) {
  Match m;
  if (key.level == XT_MATCH_ANY) return m;
  m.proto = key.proto;
  if (key.level == XT_MATCH_PORT || key.level == XT_MATCH_SYN_PORT) m.ports = std::pair(key.port_lo, key.port_hi);
  m.syn = key.level == XT_MATCH_SYN || key.level == XT_MATCH_SYN_PORT;
  return m;
}

}  // namespace xt
