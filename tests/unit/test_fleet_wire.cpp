// SPDX-License-Identifier: MIT
// A fleet's words (fleet_wire.h): Redis URLs (a password is never repeated,
// in an error or a log line), the exchange interval, and the use batch on
// the wire, decoded strictly.
#include <gtest/gtest.h>

#include <cstring>

#include "fleet_wire.h"

namespace xt {
namespace {

TEST(ClusterUrl, HostPortDatabaseAndCredentials) {
  auto u = parse_cluster_url("redis://198.18.0.1");
  ASSERT_TRUE(u.has_value()) << u.error().message;
  EXPECT_FALSE(u->unix_socket);
  EXPECT_EQ(u->host, "198.18.0.1");
  EXPECT_EQ(u->port, 6379);
  EXPECT_EQ(u->db, 0);

  u = parse_cluster_url("redis://fleet:s%40cr%3At@redis.example:6380/3");
  ASSERT_TRUE(u.has_value()) << u.error().message;
  EXPECT_EQ(u->user, "fleet");
  EXPECT_EQ(u->password, "s@cr:t") << "%XX escapes, as in any URL";
  EXPECT_EQ(u->host, "redis.example");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->db, 3);

  u = parse_cluster_url("redis://hunter2@[2001:db8::1]:7000");
  ASSERT_TRUE(u.has_value()) << u.error().message;
  EXPECT_EQ(u->user, "") << "a password alone, as redis-cli -u takes it";
  EXPECT_EQ(u->password, "hunter2");
  EXPECT_EQ(u->host, "2001:db8::1");
  EXPECT_EQ(u->port, 7000);

  // An ACL user whose password comes from --cluster-password-file or
  // XTHROTTLE_REDIS_PASSWORD (docs/fleet.md).
  u = parse_cluster_url("rediss://fleet:@redis.example:6380");
  ASSERT_TRUE(u.has_value()) << u.error().message;
  EXPECT_EQ(u->user, "fleet");
  EXPECT_EQ(u->password, "") << "left for the file or the environment to give";

  u = parse_cluster_url("unix:///run/redis/redis.sock?db=2");
  ASSERT_TRUE(u.has_value()) << u.error().message;
  EXPECT_TRUE(u->unix_socket);
  EXPECT_EQ(u->host, "/run/redis/redis.sock");
  EXPECT_EQ(u->db, 2);
}

TEST(ClusterUrl, ThePasswordIsNeverShown) {
  auto u = parse_cluster_url("redis://fleet:hunter2@198.18.0.1:6380/1");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->redacted(), "redis://fleet:***@198.18.0.1:6380/1");
  EXPECT_EQ(parse_cluster_url("redis://hunter2@[2001:db8::1]")->redacted(), "redis://:***@[2001:db8::1]:6379");
  EXPECT_EQ(parse_cluster_url("unix://hunter2@/run/r.sock")->redacted(), "unix://:***@/run/r.sock");
  // Every refusal of a URL holding a password leaves the password out.
  for (const char* bad : {"redis://fleet:hunter2@198.18.0.1:99999", "redis://fleet:hunter2@198.18.0.1:x",
                          "redis://fleet:hunter2@", "redis://fleet:hunter2@[2001:db8::1", "redis://fleet:hunter2@h/db",
                          "unix://fleet:hunter2@relative.sock", "http://fleet:hunter2@198.18.0.1"}) {
    auto r = parse_cluster_url(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::Usage);
    EXPECT_EQ(r.error().message.find("hunter2"), std::string::npos) << r.error().message;
  }
}

TEST(ClusterUrl, TlsIsRedissAndItsPasswordIsNeverShownEither) {
  auto u = parse_cluster_url("rediss://fleet:hunter2@redis.example:6380");
  ASSERT_TRUE(u.has_value()) << u.error().message;
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "redis.example");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->redacted(), "rediss://fleet:***@redis.example:6380");
  EXPECT_FALSE(parse_cluster_url("redis://redis.example")->tls);
  auto bad = parse_cluster_url("rediss://fleet:hunter2@redis.example:0");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message.find("hunter2"), std::string::npos);
}

TEST(ClusterInterval, MillisecondsOrSecondsWithinBounds) {
  EXPECT_EQ(parse_interval("--cluster-every", "100ms").value(), std::chrono::milliseconds(100));
  EXPECT_EQ(parse_interval("--cluster-every", "2s").value(), std::chrono::milliseconds(2000));
  for (const char* bad : {"5ms", "11s", "ms", "-1ms", "1 s", "fast"})
    EXPECT_FALSE(parse_interval("--cluster-every", bad).has_value()) << bad;
}

FleetUse v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint32_t packets, uint8_t per = 32) {
  FleetUse u;
  u.family = XT_FAMILY_V4;
  u.per_len = per;
  u.addr[0] = a, u.addr[1] = b, u.addr[2] = c, u.addr[3] = d;
  u.packets = packets;
  return u;
}

TEST(FleetUse, RoundTripsAndIsTwentyFourBytesASource) {
  FleetUse v6;
  v6.family = XT_FAMILY_V6;
  v6.per_len = 64;
  const uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 7};
  std::memcpy(v6.addr, a6, 16);
  v6.packets = 4000000000u;
  const std::vector<FleetUse> use = {v4(198, 18, 0, 9, 1), v4(198, 18, 4, 0, 77, 24), v6};
  const std::string blob = encode_use(use);
  EXPECT_EQ(blob.size(), 4u + 3 * 24u);
  auto back = decode_use(blob);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, use);
  EXPECT_EQ(decode_use(encode_use({})).value().size(), 0u);
}

TEST(FleetUse, AnythingElseIsRefusedWhole) {
  const std::string good = encode_use({v4(198, 18, 0, 9, 1), v4(198, 18, 0, 10, 2)});
  auto refused = [](std::string blob, const char* why) {
    auto r = decode_use(blob);
    EXPECT_FALSE(r.has_value()) << why;
  };
  refused("", "empty");
  refused("XTU2" + good.substr(4), "another version");
  refused(good.substr(0, good.size() - 1), "a record cut short");
  std::string b = good;
  b[4 + 24] = 7;  // the second record's family
  refused(b, "no such family");
  b = good;
  b[4 + 1] = 33;
  refused(b, "an IPv4 /33");
  b = good;
  b[4 + 2] = 1;
  refused(b, "padding that is not zero");
  b = encode_use({v4(198, 18, 0, 9, 1, 24)});
  refused(b, "bits past the /24");
  b = good;
  b[4 + 8 + 4] = 1;
  refused(b, "an IPv4 address with bytes past its four");
}

TEST(FleetBlocklist, RoundTripsAndAnythingElseIsRefusedWhole) {
  const std::vector<Cidr> list = {*parse_cidr("198.18.5.0/24"), *parse_cidr("2001:db8:5::/48"),
                                  *parse_cidr("198.18.7.7")};
  const std::string blob = encode_prefixes(list);
  EXPECT_EQ(blob.size(), 4u + 3 * 20u);
  auto back = decode_prefixes(blob);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, list);
  EXPECT_FALSE(decode_prefixes(blob.substr(0, blob.size() - 1)).has_value()) << "cut short";
  EXPECT_FALSE(decode_prefixes("XTU1" + blob.substr(4)).has_value()) << "a use batch is not a list";
  std::string b = blob;
  b[4 + 1] = 23;  // 198.18.5.0/23 has a bit past it
  EXPECT_FALSE(decode_prefixes(b).has_value());
  b = blob;
  b[4 + 20 + 1] = 129;
  EXPECT_FALSE(decode_prefixes(b).has_value()) << "an IPv6 /129";
  b = blob;
  b[4] = 5;
  EXPECT_FALSE(decode_prefixes(b).has_value()) << "no such family";
}

TEST(FleetHealthFile, RoundTripsAndAnythingElseIsNone) {
  FleetHealth h;
  h.url = "redis://:***@198.18.0.1:6379";
  h.host = "dut:/run/xt";
  h.connected = true;
  h.since_unix = 1.5e9;
  h.sent_packets = 12;
  h.lost_sources = 3;
  auto back = fleet_health_from_json(h.json().dump());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->url, h.url);
  EXPECT_TRUE(back->connected);
  EXPECT_EQ(back->sent_packets, 12u);
  EXPECT_EQ(back->lost_sources, 3u);
  EXPECT_FALSE(fleet_health_from_json("{\"url\": 1}").has_value());
  EXPECT_FALSE(fleet_health_from_json("{tru").has_value());
}

// What status warns of, from a running serve's fleet link. A serve up but
// with no exchange done yet (a catch-up of a long stream, or stalled before
// its first) passed as healthy, status --check 0, while it shared nothing.
TEST(FleetHealthFile, StatusWarnsOfALinkUpButNotExchanging) {
  FleetHealth h;
  h.url = "redis://198.18.0.1:6379";
  h.connected = true;
  h.since_unix = 1000;
  EXPECT_TRUE(fleet_link_warnings(h, 1002, "").empty()) << "just joined";
  auto w = fleet_link_warnings(h, 1010, "");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("no exchange has gone through yet"), std::string::npos) << w[0];
  h.last_sync_unix = 1009;
  EXPECT_TRUE(fleet_link_warnings(h, 1010, "").empty()) << "exchanging";
  w = fleet_link_warnings(h, 1020, "");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("went through 11 s ago"), std::string::npos) << w[0];
  h.connected = false;
  h.since_unix = 1015;
  w = fleet_link_warnings(h, 1020, ": each host enforces it");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("has not answered for 5 s"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find(": each host enforces it"), std::string::npos) << w[0];
}

TEST(FleetHealthFile, OnePerPinDirectory) {
  EXPECT_EQ(fleet_health_path("/run/xt"), "/run/xthrottle/fleet/run-xt.json");
  EXPECT_EQ(fleet_health_path("/run/xt/"), fleet_health_path("/run//xt"));
  EXPECT_EQ(fleet_health_path("/run/xt-a"), "/run/xthrottle/fleet/run-xt\\x2da.json") << "not /run/xt/a's";
  EXPECT_EQ(fleet_health_path("/run/xt/a"), "/run/xthrottle/fleet/run-xt-a.json");
}


// A bucket's passed count is 32 bits and wraps: a source past 2^32 packets
// has passed what it moved on by, not its count from zero (which would
// leave up to an interval's passes untold). A count that went back is a
// new bucket of the same key: all of it is new.
TEST(FleetUse, APassedCountThatWrapsMovedOn) {
  EXPECT_EQ(fleet_passed_since(100, 150), 50u);
  EXPECT_EQ(fleet_passed_since(0xFFFFFF00u, 0x50u), 0x150u) << "wrapped";
  EXPECT_EQ(fleet_passed_since(5000, 20), 20u) << "a new bucket";
  EXPECT_EQ(fleet_passed_since(7, 7), 0u);
}

// serve's fleet families, as every other family of the exposition: a
// counter past a million still moves by one.
TEST(FleetHealthFile, MetricsKeepEveryDigit) {
  FleetHealth h;
  h.connected = true;
  h.exchanges = 1234567;
  h.sent_packets = 98765432101ULL;
  h.last_sync_unix = 1000;
  const std::string text = fleet_metrics_text(h, 1000.5);
  EXPECT_NE(text.find("\nxthrottle_fleet_exchanges_total 1234567\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nxthrottle_fleet_sent_packets_total 98765432101\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nxthrottle_fleet_last_sync_age_seconds 0.5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE xthrottle_fleet_up gauge\nxthrottle_fleet_up 1\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace xt
