// SPDX-License-Identifier: MIT
#include "blocklist_file.h"

#include <arpa/inet.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cerrno>
#include <map>
#include <optional>

#include "files.h"

namespace xt {
namespace {

constexpr std::string_view kSpace = " \t\r\v\f";
constexpr std::string_view kNotAnEntry = "not an address, CIDR or range";

std::string_view trim(std::string_view s) {
  const size_t first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kSpace) - first + 1);
}

// Takes the next whitespace-separated word off `rest`. A word that starts
// with a quote runs to the closing quote, so an ipset comment "a b nomatch"
// is one word, never an option.
std::string_view next_word(std::string_view& rest) {
  rest = rest.substr(std::min(rest.find_first_not_of(kSpace), rest.size()));
  size_t end = 0;
  if (!rest.empty() && rest.front() == '"') end = std::min(rest.find('"', 1), rest.size() - 1) + 1;
  end = std::min(rest.find_first_of(kSpace, end), rest.size());
  const std::string_view word = rest.substr(0, end);
  rest.remove_prefix(end);
  return word;
}

// "<what is wrong>: <token>"; parse_blocklist puts NAME:LINE in front.
std::unexpected<Error> wrong(std::string_view what, std::string_view token) {
  return usage_error(std::string(what) + ": " + std::string(token));
}

// A whole line as a token, cut short: a bad JSON line can be long.
std::string_view shortened(std::string_view line) { return line.size() <= 80 ? line : line.substr(0, 80); }

bool is_address(std::string_view text) {
  char buf[INET6_ADDRSTRLEN + 1];
  unsigned char addr[16];
  if (text.size() >= sizeof(buf)) return false;
  *std::ranges::copy(text, buf).out = '\0';
  return inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1;
}

// parse_cidr's reason, less its "bad CIDR 'TOKEN': " (the token is said
// last here). A token that is no address at all gets one message, however
// it is wrong. Host bits set stay an error, with parse_cidr's suggestion.
std::unexpected<Error> bad_cidr(std::string_view token, const Error& error) {
  if (!is_address(token.substr(0, token.find('/')))) return wrong(kNotAnEntry, token);
  std::string_view why = error.message;
  if (const std::string prefix = "bad CIDR '" + std::string(token) + "': "; why.starts_with(prefix))
    why.remove_prefix(prefix.size());
  return wrong(why, token);
}

uint32_t v4_of(const Cidr& c) {
  return uint32_t{c.addr[0]} << 24 | uint32_t{c.addr[1]} << 16 | uint32_t{c.addr[2]} << 8 | c.addr[3];
}

// A-B, both bare IPv4 addresses: the fewest CIDRs that cover exactly A..B.
Result<void> add_range(std::string_view token, size_t dash, std::vector<Cidr>& out) {
  const std::string_view first = token.substr(0, dash), last = token.substr(dash + 1);
  if (first.find('/') != std::string_view::npos || last.find('/') != std::string_view::npos)
    return wrong(kNotAnEntry, token);
  const auto a = parse_cidr(first), b = parse_cidr(last);
  if (!a || !b) return wrong(kNotAnEntry, token);
  if (a->family != XT_FAMILY_V4 || b->family != XT_FAMILY_V4)
    return wrong("IPv6 ranges are not supported (write the range as CIDRs)", token);
  // 64 bits: the end of 255.255.255.255 and a /0's size fit.
  uint64_t lo = v4_of(*a);
  const uint64_t hi = v4_of(*b);
  if (lo > hi) return wrong("the range's first address is above its last", token);
  while (lo <= hi) {
    // The largest block aligned at lo that ends within the range.
    uint64_t size = lo == 0 ? uint64_t{1} << 32 : lo & (~lo + 1);
    while (lo + size - 1 > hi) size >>= 1;
    Cidr c;
    c.family = XT_FAMILY_V4;
    for (int i = 0; i < 4; i++) c.addr[i] = static_cast<uint8_t>(lo >> (24 - 8 * i));
    c.len = static_cast<uint8_t>(32 - std::countr_zero(size));
    out.push_back(c);
    lo += size;
  }
  return {};
}

// An address, CIDR or IPv4 range. IPv6 addresses have no '-'.
Result<void> add_entry(std::string_view token, std::vector<Cidr>& out) {
  if (const size_t dash = token.find('-'); dash != std::string_view::npos) return add_range(token, dash, out);
  auto cidr = parse_cidr(token);
  if (!cidr) return bad_cidr(token, cidr.error());
  out.push_back(*cidr);
  return {};
}

// The sets an ipset save made so far: the prefix length each one's
// `netmask` (or `bitmask`) widens its entries to.
using Netmasks = std::map<std::string, int, std::less<>>;

// A `bitmask` (ipset 7.17): an address mask, taken if its ones are leading.
std::optional<int> mask_len(std::string_view text) {
  const auto c = parse_cidr(text);
  if (!c || c->len != family_bits(c->family)) return std::nullopt;
  int len = 0;
  while (len < family_bits(c->family) && (c->addr[len / 8] & (0x80 >> (len % 8)))) len++;
  if (!only_prefix_bits(c->addr.data(), len)) return std::nullopt;
  return len;
}

// `create NAME TYPE ...`: only sets whose entries are addresses or prefixes.
// hash:ip and bitmap:ip with `netmask N` hold a /N for each address added
// (the kernel masks it, and a save lists the bare address).
Result<void> ipset_create(std::string_view line, std::string_view rest, Netmasks& netmasks) {
  const std::string_view name = next_word(rest);
  const std::string_view type = next_word(rest);
  if (type.empty()) return wrong("ipset create without a set type", line);
  if (type != "hash:ip" && type != "hash:net" && type != "bitmap:ip")
    return wrong("unsupported ipset type (only hash:ip, hash:net and bitmap:ip hold plain addresses)", type);
  bool v6 = false;
  std::optional<int> mask;
  for (std::string_view option = next_word(rest); !option.empty(); option = next_word(rest)) {
    if (option == "family") {
      v6 = next_word(rest) == "inet6";
    } else if (option == "netmask") {
      const std::string_view value = next_word(rest);
      auto len = parse_prefix_len("netmask", value);
      if (!len || *len < 1) return wrong("bad ipset netmask", value);
      mask = *len;
    } else if (option == "bitmask") {
      const std::string_view value = next_word(rest);
      mask = mask_len(value);
      if (!mask || *mask < 1) return wrong("ipset bitmask with ones that are not leading cannot be expressed", value);
    }
  }
  if (mask && *mask > (v6 ? 128 : 32)) return wrong("ipset netmask longer than the set's addresses", line);
  if (mask) netmasks[std::string(name)] = *mask;
  return {};
}

// An entry of a set with a netmask: its prefix, at most that long.
void widen(Cidr& c, int len) {
  if (c.len <= len) return;
  c.len = static_cast<uint8_t>(len);
  c.addr = prefix_of(c.addr, c.len);
}

// `add NAME ENTRY [options]`: the entry; options (timeout, comment,
// counters, skbinfo) mean nothing here, except nomatch.
Result<void> ipset_add(std::string_view line, std::string_view rest, const Netmasks& netmasks,
                       std::vector<Cidr>& out) {
  const std::string_view name = next_word(rest);
  const std::string_view entry = next_word(rest);
  if (entry.empty()) return wrong("ipset add without an entry", line);
  for (std::string_view option = next_word(rest); !option.empty(); option = next_word(rest)) {
    if (option.front() == '#' || option.front() == ';') break;
    // An exception carved out of the set's other entries: xthrottle blocks
    // prefixes, it has no way to say "except".
    if (option == "nomatch") return wrong("ipset nomatch entries (exceptions) cannot be expressed", entry);
  }
  const size_t from = out.size();
  if (auto ok = add_entry(entry, out); !ok) return ok;
  if (auto it = netmasks.find(name); it != netmasks.end())
    for (size_t i = from; i < out.size(); i++) widen(out[i], it->second);
  return {};
}

// A Spamhaus DROP JSON line: {"cidr":"1.10.16.0/20","sblid":"SBL256894",...}.
Result<void> json_line(std::string_view line, std::vector<Cidr>& out) {
  const auto j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return wrong("invalid JSON", shortened(line));
  const auto it = j.find("cidr");
  if (it == j.end()) {
    // The closing {"type":"metadata",...}; any other object without a
    // "cidr" is not a list (a server's {"message":"Not Found"}), and taken
    // for one it would empty the live list.
    if (const auto t = j.find("type"); t != j.end() && t->is_string() && *t == "metadata") return {};
    return wrong("a JSON line without \"cidr\" (nor \"type\":\"metadata\")", shortened(line));
  }
  if (!it->is_string()) return wrong("\"cidr\" is not a string", shortened(line));
  return add_entry(it->get_ref<const std::string&>(), out);
}

Result<void> parse_line(std::string_view line, Netmasks& netmasks, std::vector<Cidr>& out) {
  line = trim(line);
  if (line.empty() || line.front() == '#' || line.front() == ';') return {};
  if (line.front() == '{') return json_line(line, out);
  std::string_view rest = line;
  const std::string_view word = next_word(rest);
  if (word == "create") return ipset_create(line, rest, netmasks);
  if (word == "add") return ipset_add(line, rest, netmasks, out);
  // Plain: one entry, then at most a comment (Spamhaus DROP text: "1.10.16.0/20 ; SBL256894").
  rest = trim(line.substr(0, line.find_first_of("#;")));
  const std::string_view entry = next_word(rest);
  if (const std::string_view more = trim(rest); !more.empty())
    return wrong("more than one entry on a line", more);
  return add_entry(entry, out);
}

}  // namespace

Result<std::vector<Cidr>> parse_blocklist(std::string_view text, std::string_view name) {
  std::vector<Cidr> out;
  // At most one entry a line, short of ranges: one allocation for most lists.
  out.reserve(static_cast<size_t>(std::ranges::count(text, '\n')) + 1);
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a BOM, as some Windows editors write
  size_t number = 1;
  Netmasks netmasks;
  for (size_t pos = 0; pos < text.size(); number++) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    auto r = parse_line(text.substr(pos, end - pos), netmasks, out);
    if (!r) return usage_error(std::string(name) + ":" + std::to_string(number) + ": " + r.error().message);
    pos = end + 1;
  }
  return out;
}

Result<std::vector<Cidr>> read_blocklist(const std::string& path) {
  const auto text = read_file(path);
  if (!text) return system_error("cannot read " + path, errno);
  return parse_blocklist(*text, path);
}

Result<void> check_blocklist(const std::string& name, const std::vector<Cidr>& cidrs) {
  if (auto ok = check_blocklist_name(name); !ok) return ok;
  for (const Cidr& c : cidrs) {
    if (c.len == 0)
      return usage_error("blocklist " + name + " lists " + format_cidr(c) +
                         ", every source of its family: a deny rule says that (rule add " + format_cidr(c) +
                         " --deny)");
    // The parser makes none such; a caller that builds its own must not
    // hand the loader one (it walks the /24s from the address).
    if (!is_prefix(c.family, c.addr.data(), c.len))
      return usage_error("blocklist " + name + " has an entry that is no prefix (/" + std::to_string(c.len) +
                         " with bits set past it, or no family)");
  }
  // What the data path takes of it: the union of every list is checked as
  // it loads (switch_blocklists), once the state is there; a list past the
  // limits on its own is refused here, before anything is made.
  return check_blocklist_size("blocklist " + name, cidrs);
}

std::vector<std::pair<uint32_t, uint8_t>> outermost_ipv4(std::vector<std::pair<uint32_t, uint8_t>> prefixes,
                                                         uint64_t* past_24) {
  std::ranges::sort(prefixes);
  std::vector<std::pair<uint32_t, uint8_t>> kept;
  uint64_t end = 0, hosts = 0;  // one past the last prefix kept; addresses of those past /24
  for (const auto& [first, len] : prefixes) {
    if (first < end) continue;
    kept.emplace_back(first, len);
    end = first + (uint64_t{1} << (32 - len));
    if (len > 24) hosts += uint64_t{1} << (32 - len);
  }
  if (past_24) *past_24 = hosts;
  return kept;
}

Result<void> check_blocklist_size(const std::string& what, const std::vector<Cidr>& cidrs) {
  std::vector<std::pair<uint32_t, uint8_t>> v4;  // first address, prefix length
  std::vector<std::pair<std::array<uint8_t, 16>, uint8_t>> v6;
  for (const Cidr& c : cidrs) {
    if (c.family == XT_FAMILY_V4 && c.len <= 32)
      v4.emplace_back((uint32_t{c.addr[0]} << 24) | (c.addr[1] << 16) | (c.addr[2] << 8) | c.addr[3], c.len);
    else if (c.family == XT_FAMILY_V6)
      v6.emplace_back(c.addr, c.len);
  }
  uint64_t distinct = 0;  // as the loader walks them
  (void)outermost_ipv4(std::move(v4), &distinct);
  if (distinct > XT_MAX_BLOCK_HOSTS)
    return usage_error(what + " holds " + std::to_string(distinct) + " IPv4 addresses in prefixes "
                       "longer than /24, more than the " + std::to_string(XT_MAX_BLOCK_HOSTS) + " the data path takes");
  std::ranges::sort(v6);
  if (const size_t n = v6.size() - std::ranges::size(std::ranges::unique(v6)); n > XT_MAX_BLOCK6)
    return usage_error(what + " holds " + std::to_string(n) + " IPv6 prefixes, more than the " +
                       std::to_string(XT_MAX_BLOCK6) + " the data path takes");
  return {};
}

Result<void> check_blocklist_name(const std::string& name) {
  const bool good = !name.empty() && name.size() < XT_BLOCKLIST_NAME_SIZE &&
                    std::ranges::all_of(name, [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.'; });
  if (good) return {};
  return usage_error("bad blocklist name '" + name + "': 1 to " + std::to_string(XT_BLOCKLIST_NAME_SIZE - 1) +
                     " letters, digits, '-', '_' or '.'");
}

}  // namespace xt
