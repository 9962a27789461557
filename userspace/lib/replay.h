// SPDX-License-Identifier: MIT
// `xthrottle replay CONFIG CAPTURE`: the real BPF object, loaded privately
// (no pins, nothing attached, the live state untouched), given a rules
// file's rules and lists, and run over a capture's frames in order with
// BPF_PROG_TEST_RUN, its clock following the capture's timestamps: what
// each rule would have passed and dropped, and which sources it would have
// throttled, from when.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "error.h"
#include "rules_file.h"
#include "state.h"

namespace xt {

struct ReplayOptions {
  uint32_t hz = 0;  // the tick rate to meter at (the live kernel's, for verdicts like the live program's)
  uint32_t cpus = 1;  // what --verify-rate is shared by: 1, as the replay runs on one CPU
  uint32_t max_sources = XT_DEFAULT_MAX_SOURCES;
  uint32_t idle_seconds = XT_DEFAULT_IDLE_SECONDS;
  size_t limit = 20;  // throttled sources listed
  // The MTU of the interface the capture was taken on: a frame longer than
  // it (GRO merged it) counts as the wire packets it stands for, as the
  // live program counts it (the frames are run in a network namespace of
  // their own, whose loopback has it). 0: the caller's loopback as it is.
  uint32_t mtu = 1500;
};

struct ReplaySource {
  Cidr source;  // the frame's source address
  uint64_t packets = 0, dropped = 0;
  int64_t first_drop_ns = 0;  // the capture's time of its first drop
};

struct ReplayResult {
  std::string capture;
  uint32_t hz = 0;
  uint64_t frames = 0, skipped = 0, oversize = 0, replayed = 0, passed = 0, dropped = 0, redirected = 0, other = 0;
  int64_t first_ns = 0, last_ns = 0;
  std::vector<RuleCounters> rules;
  std::vector<xt_count> reasons;     // by enum xt_reason
  uint64_t throttled_sources = 0;    // sources with at least one drop
  std::vector<ReplaySource> throttled;  // the first `limit` of them by first drop
};

// file: loaded (load_rules_file, its lists read) and compiled for o.hz.
Result<ReplayResult> replay_capture(const RulesFile& file, const std::string& capture, const ReplayOptions& o);
nlohmann::json replay_json(const ReplayResult& r);
std::string replay_text(const ReplayResult& r);

}  // namespace xt
