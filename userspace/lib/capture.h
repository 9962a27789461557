// SPDX-License-Identifier: MIT
// `xthrottle capture`: samples of the packets the data path dropped (or
// redirected, or would have dropped), read from its perf buffers and written
// as a pcap file that tcpdump and tshark read (libpcap), each with its
// verdict and rule told beside it, a line (or a JSON object) a packet.
#pragma once

#include <xthrottle/abi.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "error.h"
#include "pcap_file.h"
#include "state.h"

struct perf_buffer;

namespace xt {

// The reasons by the names of `stats` ("over_limit,new_source") to a bit per
// enum xt_reason; every name is checked.
Result<uint32_t> parse_reasons(std::string_view text);
// What capture takes unless told: every drop, and what a dry-run rule would
// have dropped.
uint32_t default_capture_reasons();

// Reads the samples from the state's perf buffers (one a CPU).
class CaptureReader {
 public:
  using Callback = std::function<void(const CaptureSample&)>;
  static Result<CaptureReader> open(const State& state, Callback cb);
  // Waits up to timeout_ms for samples and hands each to the callback.
  Result<int> poll(int timeout_ms);
  // Samples the perf buffers had no room for (the reader fell behind).
  uint64_t lost() const { return *lost_; }

 private:
  CaptureReader() = default;
  std::unique_ptr<Callback> cb_;
  std::unique_ptr<uint64_t> lost_ = std::make_unique<uint64_t>(0);
  std::shared_ptr<perf_buffer> pb_;
};

// What a sample was, for the line beside it: its number in the file, its
// time, verdict, rule, source, and what it was for.
nlohmann::json capture_json(uint64_t number, const CaptureSample& s, double unix_seconds, const std::string& rule);
std::string capture_line(const nlohmann::json& j);

}  // namespace xt
