// SPDX-License-Identifier: MIT
// The names of the reasons a packet got its verdict (enum xt_reason): the
// keys under "reasons" in `stats --json`, the metrics' reason label,
// capture's --reason and a snapshot's counters. Part of the command-line
// contract: extend, never rename.
#pragma once

#include <xthrottle/abi.h>

#include <cstdint>

namespace xt {

struct ReasonInfo {
  const char* key;   // JSON key under "reasons"
  const char* text;  // for people
};

inline constexpr ReasonInfo kReasons[XT_REASONS] = {
    {"within_limit", "passed within limit"},
    {"allowed", "passed by allow rule"},
    {"dry_run", "passed, dry-run (would drop)"},
    {"unmatched", "passed, no rule"},
    {"non_ip", "passed, not IP"},
    {"over_limit", "dropped over limit"},
    {"denied", "dropped by deny rule"},
    {"malformed", "dropped malformed"},
    {"table_full", "dropped, table refused insert"},
    {"new_source", "dropped, new-source budget"},
    {"over_total", "dropped over the rule's total"},
    {"banned", "dropped, banned"},
    {"blocklisted", "dropped, blocklisted"},
};

inline const ReasonInfo& reason_info(uint32_t reason) { return kReasons[reason < XT_REASONS ? reason : 0]; }

}  // namespace xt
