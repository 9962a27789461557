// SPDX-License-Identifier: MIT
#include "table.h"

#include <algorithm>
#include <bit>
#include <string>

#include "policy.h"
#include "slots.h"

namespace xt {

Result<uint32_t> check_max_sources(std::string_view what, uint64_t n) {
  if (n < XT_MIN_MAX_SOURCES || n > XT_MAX_MAX_SOURCES)
    return usage_error("bad " + std::string(what) + " " + std::to_string(n) + ": between " +
                       std::to_string(XT_MIN_MAX_SOURCES) + " and " + std::to_string(XT_MAX_MAX_SOURCES));
  return static_cast<uint32_t>(n);
}

Result<uint32_t> parse_idle(std::string_view what, std::string_view text) {
  auto seconds = parse_duration(what, text);
  if (!seconds) return std::unexpected(seconds.error());
  if (*seconds < 1 || *seconds > kMaxIdleSeconds)
    return usage_error("bad " + std::string(what) + " '" + std::string(text) + "': between 1s and " +
                       std::to_string(kMaxIdleSeconds) + "s");
  return static_cast<uint32_t>(*seconds);
}

IdleWindow idle_window_for(uint32_t hz, uint32_t seconds) {
  IdleWindow w;
  auto units = [&] { return (static_cast<uint64_t>(seconds) * hz + (1u << w.shift) - 1) >> w.shift; };
  while (units() > kMaxIdleUnits) w.shift++;
  w.units = static_cast<uint32_t>(units());
  return w;
}

uint32_t idle_seconds_of(const xt_config& cfg) {
  if (!cfg.hz) return 0;
  return static_cast<uint32_t>((xt_idle_ticks(&cfg) + cfg.hz / 2) / cfg.hz);
}

Result<void> check_same_table(const xt_config& cfg, const TableSettings& want, std::string_view pin_dir) {
  const std::string dir(pin_dir);
  if (want.max_sources && cfg.max_sources != std::bit_ceil(*want.max_sources))  // it was made rounded up
    return system_error("the source table in " + dir + " already holds " + std::to_string(cfg.max_sources) +
                       " sources; it cannot be resized under running programs (detach everywhere and remove " +
                       dir + " to start over with another size)");
  if (want.idle_seconds && idle_window_for(cfg.hz, *want.idle_seconds) != IdleWindow{cfg.used_shift, cfg.used_idle})
    return system_error("the source table in " + dir + " untracks a source after " +
                       format_duration(idle_seconds_of(cfg)) +
                       " without packets; that is set when the state is created (detach everywhere and remove " +
                       dir + " to start over with another idle window)");
  return {};
}

uint32_t age_every_seconds(const xt_config& cfg) {
  const uint64_t idle = std::min<uint64_t>(cfg.used_idle, kMaxIdleUnits);
  const uint64_t ahead = xt_age_ahead(&cfg);
  // An aged stamp is set idle + 1 + ahead units back (xt_age); it must be
  // aged again before it comes within `ahead` of its wrap.
  const uint64_t margin_ticks = (uint64_t{65536 - 1} - 2 * ahead - idle - 1) << (cfg.used_shift & 31);
  const uint64_t half = cfg.hz ? margin_ticks / cfg.hz / 2 : 1;
  return static_cast<uint32_t>(std::clamp<uint64_t>(half, 1, 30));
}

}  // namespace xt
