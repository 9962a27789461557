// SPDX-License-Identifier: MIT
// The source table's settings: how many sources it holds (attach
// --max-sources) and how long a quiet one stays tracked (attach --idle).
// Both are fixed when a state is created, by whichever command creates it:
// attach with its options, apply or serve with a rules file's [sources], a
// restore with what its snapshot recorded. Pure: unit-tested on the host.
#pragma once

#include <xthrottle/abi.h>

#include <cstdint>
#include <optional>
#include <string_view>

#include "error.h"

namespace xt {

inline constexpr uint32_t kMaxIdleSeconds = 3600;
// The longest idle window in units of a slot's `used` stamp: a quarter of
// the stamps' 65536-unit cycle (bpf/slots.h).
inline constexpr uint32_t kMaxIdleUnits = 16384;

// Unset: the state's own (or, for a new one, the default).
struct TableSettings {
  std::optional<uint32_t> max_sources;   // XT_MIN_MAX_SOURCES..XT_MAX_MAX_SOURCES
  std::optional<uint32_t> idle_seconds;  // 1..kMaxIdleSeconds
  // Each setting this one leaves unset taken from `fallback`.
  TableSettings or_else(const TableSettings& fallback) const {
    return {max_sources ? max_sources : fallback.max_sources, idle_seconds ? idle_seconds : fallback.idle_seconds};
  }
};

// A table size as given; `what` names where it was given (an option, a
// file's key) in the message.
Result<uint32_t> check_max_sources(std::string_view what, uint64_t n);
// "--idle 90s", idle = "90s": parse_duration's spellings, then checked.
Result<uint32_t> parse_idle(std::string_view what, std::string_view text);

// The idle window as the data path keeps it: a slot's `used` stamp counts
// units of 2^shift ticks, the smallest unit that keeps the window within a
// quarter of the stamps' 65536-unit cycle; the window is `units` of them.
struct IdleWindow {
  uint32_t shift = 0, units = 0;
  bool operator==(const IdleWindow&) const = default;
};
IdleWindow idle_window_for(uint32_t hz, uint32_t seconds);
// The window a state's settings hold, in whole seconds (to the nearest).
uint32_t idle_seconds_of(const xt_config& cfg);
// How often the stamps must be aged (State::age_stamps), in seconds: an
// aged stamp, xt_age_ahead (slots.h) past the window, must not come within
// xt_age_ahead of its wrap before the next ageing. Half that margin, at
// most 30 s: 30 s for the default window, 23 s for a window of 16 s at
// HZ=1000 (a cycle of 65 s).
uint32_t age_every_seconds(const xt_config& cfg);
// Fails (exit 1, saying why) where a state made with cfg is not what `want`
// asks: its table is not resized, nor its window changed, under running
// programs. pin_dir names the state in the message.
Result<void> check_same_table(const xt_config& cfg, const TableSettings& want, std::string_view pin_dir);

}  // namespace xt
