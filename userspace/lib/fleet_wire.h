// SPDX-License-Identifier: MIT
// A fleet's words (fleet.h has the link): where its Redis is, how often the
// hosts exchange, what one batch of use looks like on the wire, and the
// link's health as `status` reads it. Pure: tested and fuzzed on the host.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.h"
#include "policy.h"
#include "xthrottle/abi.h"

namespace xt {

// redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss://... (TLS, OpenSSL:
// redis_link.h) or unix:///PATH[?db=DB]. The password may instead come
// from a file (serve --cluster-password-file) or XTHROTTLE_REDIS_PASSWORD.
struct ClusterUrl {
  bool unix_socket = false;
  bool tls = false;  // rediss://
  std::string host;  // or the socket's path
  int port = 6379;
  int db = 0;
  std::string user, password;
  // What may be printed and logged: the password never is.
  std::string redacted() const;
};
Result<ClusterUrl> parse_cluster_url(std::string_view text);

// "100ms", "1s": how often the hosts exchange (10 ms to 10 s).
Result<std::chrono::milliseconds> parse_interval(std::string_view what, std::string_view text);

// What one source passed on one host in an interval: its bucket key (the
// rule id is each host's own and is not sent) and its packets.
struct FleetUse {
  uint8_t family = 0, per_len = 0;
  uint8_t addr[16] = {};
  uint32_t packets = 0;
  bool operator==(const FleetUse&) const = default;
};
// A batch of them as one stream entry's payload ("XTU1", then 24 bytes a
// record, little-endian); decode refuses anything else with nothing taken.
std::string encode_use(const std::vector<FleetUse>& use);
Result<std::vector<FleetUse>> decode_use(std::string_view blob);

// A blocklist as one stream entry's payload ("XTB1", then 20 bytes a
// prefix: family, length, two zero bytes, the address), so that a list
// loaded on one host is loaded on every host. decode refuses anything else.
std::string encode_prefixes(const std::vector<Cidr>& prefixes);
Result<std::vector<Cidr>> decode_prefixes(std::string_view blob);

// What `status` and the metrics say about the link.
struct FleetHealth {
  std::string url;   // redacted
  std::string host;  // this host's name in the fleet
  bool connected = false;
  double since_unix = 0;      // connected, or down, since
  double last_sync_unix = 0;  // the last interval that went through
  std::string error;          // why it is down
  uint64_t sent_packets = 0, applied_packets = 0, applied_sources = 0, refused_sources = 0;
  uint64_t stale_words = 0;  // windows of others' use read for a replaced version of the rule: left
  uint64_t sent_bans = 0, applied_bans = 0;
  uint64_t sent_lists = 0, applied_lists = 0;  // blocklists loaded or deleted
  uint64_t exchanges = 0;         // intervals that went through
  double exchange_seconds = 0;    // what the last one took (the walk, Redis, the charge)
  uint64_t pending_sources = 0;  // waiting to be sent (Redis down)
  uint64_t lost_sources = 0;     // not kept while down (past kMaxPending)
  double name_taken_unix = 0;    // last seen: an entry under this host's name that another serve wrote
  double written_unix = 0;
  nlohmann::json json() const;
};
// Where serve keeps the health of the fleet link of the state in pin_dir
// for `status` (bpffs holds no files): /run/xthrottle/fleet/run-xt.json for
// /run/xt (the pin directory escaped as systemd-escape --path does).
std::string fleet_health_path(const std::string& pin_dir);
// Reads it; nullopt if there is none (no serve --cluster ever ran), or it
// is not one.
std::optional<FleetHealth> read_fleet_health(const std::string& pin_dir);
std::optional<FleetHealth> fleet_health_from_json(std::string_view text);
// What a slot's bucket passed since its count was `before`: counts wrap
// (modulo 2^32), so a count that moved on by less than 2^31 moved on; one
// that went back is a new bucket of the same key (evicted and admitted
// again in between), all of whose count is new.
uint32_t fleet_passed_since(uint32_t before, uint32_t passed);
// The fleet's families of serve's /metrics, as of now_unix.
std::string fleet_metrics_text(const FleetHealth& h, double now_unix);

// What a running serve's fleet link (its health at `now`, Unix seconds)
// gives status to warn of: Redis away, exchanges stalled or not begun, use
// lost. `each` ends each warning (the fleet rules each host then enforces
// whole on its own).
std::vector<std::string> fleet_link_warnings(const FleetHealth& h, double now, const std::string& each);

}  // namespace xt
