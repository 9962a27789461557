// SPDX-License-Identifier: MIT
#include "fleet_wire.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "files.h"
#include "format.h"
#include "policy.h"

namespace xt {

namespace {

// %XX escapes in a URL's user and password.
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    int v = 0;
    if (s[i] == '%' && i + 2 < s.size() &&
        std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ptr == s.data() + i + 3) {
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

Result<int> number_in(std::string_view what, std::string_view text, int lo, int hi) {
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi)
    return usage_error("bad " + std::string(what) + " '" + std::string(text) + "' (" + std::to_string(lo) + " to " +
                       std::to_string(hi) + ")");
  return v;
}

constexpr std::string_view kMagic = "XTU1";
constexpr size_t kRecord = 24;
constexpr std::string_view kListMagic = "XTB1";
constexpr size_t kPrefixRecord = 20;

}  // namespace

std::string ClusterUrl::redacted() const {
  std::string who = user.empty() && password.empty() ? "" : (user.empty() ? "" : user) + (password.empty() ? "" : ":***") + "@";
  if (unix_socket) return "unix://" + who + host + (db ? "?db=" + std::to_string(db) : "");
  const bool v6 = host.find(':') != std::string::npos;
  return (tls ? "rediss://" : "redis://") + who + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) +
         (db ? "/" + std::to_string(db) : "");
}

Result<ClusterUrl> parse_cluster_url(std::string_view text) {
  ClusterUrl u;
  auto bad = [&](const std::string& why) {
    // The URL may hold a password: it is not repeated.
    return usage_error("bad --cluster: " + why + " (redis://[USER:PASSWORD@]HOST[:PORT][/DB], rediss://... or unix:///PATH)");
  };
  std::string_view rest;
  if (text.starts_with("rediss://")) {
    u.tls = true;
    rest = text.substr(9);
  } else if (text.starts_with("redis://")) {
    rest = text.substr(8);
  } else if (text.starts_with("unix://")) {
    u.unix_socket = true;
    rest = text.substr(7);
  } else {
    return bad("it must start with redis://, rediss:// or unix://");
  }
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (auto colon = cred.find(':'); colon != std::string_view::npos) {
      u.user = unescape(cred.substr(0, colon));
      u.password = unescape(cred.substr(colon + 1));
    } else {
      u.password = unescape(cred);  // redis://PASSWORD@HOST, as redis-cli takes it
    }
  }
  if (u.unix_socket) {
    if (auto q = rest.find("?db="); q != std::string_view::npos) {
      auto db = number_in("database", rest.substr(q + 4), 0, 1 << 20);
      if (!db) return bad("the database must be a number");
      u.db = *db;
      rest = rest.substr(0, q);
    }
    if (!rest.starts_with("/")) return bad("a socket's path must be absolute (unix:///run/redis.sock)");
    u.host = std::string(rest);
    return u;
  }
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (slash + 1 < rest.size()) {
      auto db = number_in("database", rest.substr(slash + 1), 0, 1 << 20);
      if (!db) return bad("the database must be a number");
      u.db = *db;
    }
    rest = rest.substr(0, slash);
  }
  std::string_view port;
  if (rest.starts_with("[")) {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return bad("an IPv6 address needs its closing ]");
    u.host = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(":")) return bad("junk after the address");
      port = after.substr(1);
    }
  } else {
    auto colon = rest.find(':');
    u.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = rest.substr(colon + 1);
  }
  if (u.host.empty()) return bad("no host");
  if (!port.empty()) {
    auto p = number_in("port", port, 1, 65535);
    if (!p) return bad("the port must be 1 to 65535");
    u.port = *p;
  }
  return u;
}

Result<std::chrono::milliseconds> parse_interval(std::string_view what, std::string_view text) {
  uint64_t ms = 0;
  if (text.ends_with("ms")) {
    auto n = number_in(what, text.substr(0, text.size() - 2), 0, 1 << 30);
    if (!n) return usage_error("bad " + std::string(what) + " '" + std::string(text) + "': 100ms, 1s");
    ms = static_cast<uint64_t>(*n);
  } else {
    auto s = parse_duration(what, text);
    if (!s) return std::unexpected(s.error());
    ms = *s * 1000;
  }
  if (ms < 10 || ms > 10000)
    return usage_error("bad " + std::string(what) + " '" + std::string(text) + "': between 10ms and 10s");
  return std::chrono::milliseconds(ms);
}

std::string encode_use(const std::vector<FleetUse>& use) {
  std::string out(kMagic);
  out.reserve(kMagic.size() + use.size() * kRecord);
  for (const FleetUse& u : use) {
    char r[kRecord] = {};
    r[0] = static_cast<char>(u.family);
    r[1] = static_cast<char>(u.per_len);
    for (int i = 0; i < 4; i++) r[4 + i] = static_cast<char>(u.packets >> (8 * i));
    std::memcpy(r + 8, u.addr, 16);
    out.append(r, kRecord);
  }
  return out;
}

Result<std::vector<FleetUse>> decode_use(std::string_view blob) {
  if (!blob.starts_with(kMagic) || (blob.size() - kMagic.size()) % kRecord != 0)
    return usage_error("not a fleet use batch (" + std::to_string(blob.size()) + " bytes)");
  std::vector<FleetUse> out;
  out.reserve((blob.size() - kMagic.size()) / kRecord);
  for (size_t at = kMagic.size(); at < blob.size(); at += kRecord) {
    const auto* r = reinterpret_cast<const unsigned char*>(blob.data() + at);
    FleetUse u;
    u.family = r[0];
    u.per_len = r[1];
    if ((u.family != XT_FAMILY_V4 && u.family != XT_FAMILY_V6) || u.per_len > family_bits(u.family) || r[2] || r[3])
      return usage_error("a fleet use record of family " + std::to_string(r[0]) + " /" + std::to_string(r[1]));
    for (int i = 0; i < 4; i++) u.packets |= static_cast<uint32_t>(r[4 + i]) << (8 * i);
    std::memcpy(u.addr, r + 8, 16);
    // Bits past the prefix, or past an IPv4 address, are nobody's.
    if (!only_prefix_bits(u.addr, u.per_len))
      return usage_error("a fleet use record with bits past its /" + std::to_string(u.per_len));
    out.push_back(u);
  }
  return out;
}

std::string encode_prefixes(const std::vector<Cidr>& prefixes) {
  std::string out(kListMagic);
  out.reserve(kListMagic.size() + prefixes.size() * kPrefixRecord);
  for (const Cidr& c : prefixes) {
    char r[kPrefixRecord] = {};
    r[0] = static_cast<char>(c.family);
    r[1] = static_cast<char>(c.len);
    std::memcpy(r + 4, c.addr.data(), 16);
    out.append(r, kPrefixRecord);
  }
  return out;
}

Result<std::vector<Cidr>> decode_prefixes(std::string_view blob) {
  if (!blob.starts_with(kListMagic) || (blob.size() - kListMagic.size()) % kPrefixRecord != 0)
    return usage_error("not a fleet blocklist (" + std::to_string(blob.size()) + " bytes)");
  std::vector<Cidr> out;
  out.reserve((blob.size() - kListMagic.size()) / kPrefixRecord);
  for (size_t at = kListMagic.size(); at < blob.size(); at += kPrefixRecord) {
    const auto* r = reinterpret_cast<const unsigned char*>(blob.data() + at);
    Cidr c;
    c.family = r[0];
    c.len = r[1];
    if ((c.family != XT_FAMILY_V4 && c.family != XT_FAMILY_V6) || c.len > family_bits(c.family) || r[2] || r[3])
      return usage_error("a fleet blocklist prefix of family " + std::to_string(r[0]) + " /" + std::to_string(r[1]));
    std::memcpy(c.addr.data(), r + 4, 16);
    if (!only_prefix_bits(c.addr.data(), c.len))
      return usage_error("a fleet blocklist prefix with bits past its /" + std::to_string(c.len));
    out.push_back(c);
  }
  return out;
}

nlohmann::json FleetHealth::json() const {
  return {{"url", url},
          {"host", host},
          {"connected", connected},
          {"since_unix", since_unix},
          {"last_sync_unix", last_sync_unix},
          {"error", error},
          {"sent_packets", sent_packets},
          {"applied_packets", applied_packets},
          {"applied_sources", applied_sources},
          {"refused_sources", refused_sources},
          {"stale_words", stale_words},
          {"sent_bans", sent_bans},
          {"applied_bans", applied_bans},
          {"sent_lists", sent_lists},
          {"applied_lists", applied_lists},
          {"exchanges", exchanges},
          {"exchange_seconds", exchange_seconds},
          {"pending_sources", pending_sources},
          {"lost_sources", lost_sources},
          {"name_taken_unix", name_taken_unix},
          {"written_unix", written_unix}};
}

std::string fleet_health_path(const std::string& pin_dir) {
  // Escaped as systemd-escape --path does: /run/xt is run-xt, and no two
  // directories share a name.
  std::string path = std::filesystem::absolute(pin_dir).lexically_normal().string();
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::string name;
  for (size_t i = 1; i < path.size(); i++) {
    const unsigned char c = static_cast<unsigned char>(path[i]);
    if (c == '/') {
      name += '-';
    } else if (std::isalnum(c) || c == '_' || c == ':' || (c == '.' && !name.empty())) {
      name += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      name += hex;
    }
  }
  if (name.empty()) name = "-";
  return "/run/xthrottle/fleet/" + name + ".json";
}

std::optional<FleetHealth> fleet_health_from_json(std::string_view text) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    FleetHealth h;
    h.url = j.at("url").get<std::string>();
    h.host = j.at("host").get<std::string>();
    h.connected = j.at("connected").get<bool>();
    h.since_unix = j.at("since_unix").get<double>();
    h.last_sync_unix = j.at("last_sync_unix").get<double>();
    h.error = j.at("error").get<std::string>();
    h.sent_packets = j.at("sent_packets").get<uint64_t>();
    h.applied_packets = j.at("applied_packets").get<uint64_t>();
    h.applied_sources = j.at("applied_sources").get<uint64_t>();
    h.refused_sources = j.at("refused_sources").get<uint64_t>();
    h.stale_words = j.at("stale_words").get<uint64_t>();
    h.sent_bans = j.at("sent_bans").get<uint64_t>();
    h.applied_bans = j.at("applied_bans").get<uint64_t>();
    h.sent_lists = j.at("sent_lists").get<uint64_t>();
    h.applied_lists = j.at("applied_lists").get<uint64_t>();
    h.exchanges = j.at("exchanges").get<uint64_t>();
    h.exchange_seconds = j.at("exchange_seconds").get<double>();
    h.pending_sources = j.at("pending_sources").get<uint64_t>();
    h.lost_sources = j.at("lost_sources").get<uint64_t>();
    h.name_taken_unix = j.value("name_taken_unix", 0.0);
    h.written_unix = j.at("written_unix").get<double>();
    return h;
  } catch (const std::exception&) {
    return std::nullopt;  // being replaced, or not ours: as if none
  }
}

uint32_t fleet_passed_since(uint32_t before, uint32_t passed) {
  const uint32_t moved = passed - before;
  return moved < (1u << 31) ? moved : passed;
}

std::string fleet_metrics_text(const FleetHealth& h, double now_unix) {
  const double age = h.last_sync_unix ? std::max(0.0, now_unix - h.last_sync_unix) : -1;
  std::string o;
  // As every other family of the exposition: 17 digits, so that a counter
  // past a million still moves by one (a stream's default 6 wrote
  // 1.23457e+06, and rate() of it went in steps).
  auto one = [&](const char* name, const char* type, const char* help, double v) {
    o += fmt("# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
  };
  one("xthrottle_fleet_up", "gauge", "1 while the fleet's Redis answers; 0: each host enforces its own limits", h.connected);
  one("xthrottle_fleet_last_sync_age_seconds", "gauge",
      "Seconds since the last exchange with the fleet went through (-1: none yet)", age);
  one("xthrottle_fleet_exchanges_total", "counter",
      "Exchanges with the fleet that went through (their rate is the interval kept)", static_cast<double>(h.exchanges));
  one("xthrottle_fleet_exchange_seconds", "gauge",
      "What the last exchange took: the walk of the table, Redis and the charge of the others' use",
      h.exchange_seconds);
  one("xthrottle_fleet_sent_packets_total", "counter", "Packets this host passed and told the fleet of",
      static_cast<double>(h.sent_packets));
  one("xthrottle_fleet_applied_packets_total", "counter",
      "Packets other hosts passed, told this host: taken from its buckets, but for those of the refused sources "
      "and stale windows counted beside",
      static_cast<double>(h.applied_packets));
  one("xthrottle_fleet_stale_words_total", "counter",
      "Windows of other hosts' use left: read for a version of the rule replaced since", static_cast<double>(h.stale_words));
  one("xthrottle_fleet_refused_sources_total", "counter",
      "Sources of other hosts' use this host could not take (no such fleet rule here, another --per, no room)",
      static_cast<double>(h.refused_sources));
  one("xthrottle_fleet_pending_sources", "gauge", "Sources whose use waits to be sent (Redis away)",
      static_cast<double>(h.pending_sources));
  one("xthrottle_fleet_lost_sources_total", "counter",
      "Sources' use of an interval not kept while Redis was away (past the most kept)", static_cast<double>(h.lost_sources));
  one("xthrottle_fleet_sent_bans_total", "counter", "Bans made or lifted here and told the fleet",
      static_cast<double>(h.sent_bans));
  one("xthrottle_fleet_applied_bans_total", "counter", "Bans the fleet told, put here",
      static_cast<double>(h.applied_bans));
  one("xthrottle_fleet_sent_lists_total", "counter", "Blocklists loaded or deleted here and told the fleet",
      static_cast<double>(h.sent_lists));
  one("xthrottle_fleet_applied_lists_total", "counter", "Blocklists the fleet told, loaded or deleted here",
      static_cast<double>(h.applied_lists));
  return o;
}

std::optional<FleetHealth> read_fleet_health(const std::string& pin_dir) {
  const auto text = read_file(fleet_health_path(pin_dir));
  if (!text) return std::nullopt;
  return fleet_health_from_json(*text);
}

std::vector<std::string> fleet_link_warnings(const FleetHealth& h, double now, const std::string& each) {
  std::vector<std::string> out;
  if (!h.connected) {
    out.push_back(fmt("fleet: %s has not answered for %.0f s (%s)", h.url.c_str(), now - h.since_unix,
                      h.error.c_str()) +
                  each + "; " + std::to_string(h.pending_sources) + " sources' use waits to be sent when it is back");
  } else if (h.last_sync_unix && now - h.last_sync_unix > 3) {
    out.push_back(fmt("fleet: the last exchange through %s went through %.0f s ago", h.url.c_str(),
                      now - h.last_sync_unix) +
                  each);
  } else if (!h.last_sync_unix && now - h.since_unix > 3) {
    // Up, but still reading what the stream kept (a long catch-up) or
    // stalled before its first exchange: nothing shared yet.
    out.push_back(fmt("fleet: joined %s %.0f s ago and no exchange has gone through yet", h.url.c_str(),
                      now - h.since_unix) +
                  each);
  }
  if (h.lost_sources)
    out.push_back("fleet: the use of " + std::to_string(h.lost_sources) +
                  " sources was not kept while Redis was away (more sources than serve keeps): the other "
                  "hosts never took it");
  return out;
}

}  // namespace xt
