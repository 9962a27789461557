// SPDX-License-Identifier: MIT
// Following the data path's events (ring buffers): a source starts being
// throttled, a source is released, a rule's new-source budget saturates and
// recovers, a rule bans a source. Besides the ring, the reader looks at the
// ban table once a second and tells the bans that ended or were lifted
// (`unbanned`) and those made by `ban add` (`banned`), which the data path
// never sees happen. `serve` reads one ring, `xthrottle events` the other, so neither
// takes the other's events; each ring has one reader at a time (ReaderLock).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "error.h"
#include "state.h"

struct ring_buffer;

namespace xt {

// A wall-clock time as the events give it: 2026-12-06T05:25:18.123Z.
std::string iso8601(std::chrono::system_clock::time_point t);

class EventReader {
 public:
  using Sink = std::function<void(const nlohmann::json& event, const std::string& line)>;
  // Reads the ring `ring_fd` of `state`, handing each event to sink as JSON
  // and as a line of text.
  static Result<EventReader> open(const State& state, int ring_fd, Sink sink);
  EventReader(EventReader&&) noexcept;
  EventReader& operator=(EventReader&&) noexcept;
  ~EventReader();

  // Waits up to timeout_ms for events and delivers them, and those of the
  // ban table if a second has passed since it was last read; returns how
  // many.
  Result<int> poll(int timeout_ms);
  // Takes whatever is queued without delivering it (a follower starting up).
  void discard();
  // Events stamped before this tick of the program's clock are marked as a
  // backlog ("backlog": true): they piled up before the reader started.
  void mark_backlog_before(uint64_t tick);

 private:
  EventReader() = default;

  struct Context;  // on the heap: libbpf holds a pointer to it across moves
  std::unique_ptr<Context> ctx_;
  ring_buffer* rb_ = nullptr;
};

}  // namespace xt
