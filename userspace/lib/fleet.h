// SPDX-License-Identifier: MIT
// A fleet: hosts that share `--scope fleet` rules through Redis (serve
// --cluster). Each host enforces locally at the speed of its data path, and
// every interval (100 ms by default) tells the others what each source
// passed there and takes from its own buckets what they passed (the control
// program's XT_RESTORE_CHARGE), so one source spraying N hosts gets what one
// bucket would give it, give or take one interval's worth of its rate on each
// other host. Bans travel the same way. docs/fleet.md has the protocol.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.h"
#include "fleet_wire.h"
#include "redis_link.h"
#include "xthrottle/abi.h"

namespace xt {

class State;
struct RuleEntry;
// Takes what other hosts passed (their use of `rule`, a --scope fleet rule
// of this host) from this host's buckets: XT_RESTORE_CHARGE. A record of
// another family or --per makes other buckets than this host's and is
// refused; so is one with no room in the table.
struct Charged {
  uint64_t packets = 0;  // told: taken, but for those of the records the kernel refused or left stale
  uint64_t sources = 0;  // buckets taken from (found, or claimed)
  uint64_t refused = 0;
  uint64_t stale = 0;  // words of a version of the rule newer than `rule`: left
};
Result<Charged> charge_use(State& state, const RuleEntry& rule, const std::vector<FleetUse>& use);

class Fleet {
 public:
  struct Options {
    ClusterUrl url;
    TlsFiles tls;  // rediss://
    std::string name = "xthrottle";  // the keys' prefix: fleets sharing one Redis apart
    std::string host;                // default: hostname:pin_dir
    std::chrono::milliseconds every{100};
  };
  // Most sources' use kept while Redis is down, summed per source: past
  // that, more sources' use is counted as lost.
  static constexpr size_t kMaxPending = 1 << 20;

  using Log = std::function<void(const nlohmann::json&)>;
  // Starts the link's thread: it connects (and reconnects, once a second),
  // and exchanges every `every`. Never blocks the caller, and never fails
  // for Redis being away.
  static Result<std::unique_ptr<Fleet>> start(const std::string& pin_dir, Options options, Log log);
  ~Fleet();
  FleetHealth health() const;
  // Prometheus lines for serve's /metrics.
  std::string metrics() const;

  struct Impl;

 private:
  explicit Fleet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xt
