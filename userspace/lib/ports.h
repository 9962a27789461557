// SPDX-License-Identifier: MIT
// The rules' port ranges as the data path finds them (abi.h, struct
// xt_port_range): a table of ranges, each naming the narrowest range that
// holds it, and for each TCP and UDP port the narrowest range that holds it.
// The controller keeps the table; this is the arithmetic of it, pure, so the
// unit tests check it on the host.
#pragma once

#include <xthrottle/abi.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "error.h"

namespace xt {

// Indexed by range id (0 is "none" and never used): XT_MAX_PORT_RANGES + 1.
using PortRangeTable = std::vector<xt_port_range>;

inline PortRangeTable empty_port_ranges() { return PortRangeTable(XT_MAX_PORT_RANGES + 1); }

// The XT_PORT_SLOT_* of a protocol that has ports (tcp, udp).
uint8_t port_slot(uint8_t proto);

// Whether two port ranges (lo, hi) overlap without one holding the other:
// what the ranges of the rules may never do.
bool port_ranges_cross(std::pair<uint16_t, uint16_t> a, std::pair<uint16_t, uint16_t> b);

// The id of the range lo-hi of slot that is in use, 0 if none.
uint16_t find_port_range(const PortRangeTable& table, uint8_t slot, uint16_t lo, uint16_t hi);

// Puts the range lo-hi of slot in the table (a free id, parents set), or
// says why it cannot go in: it overlaps a range without holding it or lying
// in it, or would nest ranges deeper than XT_MAX_PORT_NESTING, or there is
// no free id. Returns its id; one already in the table is returned as it is.
Result<uint16_t> add_port_range(PortRangeTable& table, uint8_t slot, uint16_t lo, uint16_t hi);

struct Match;
// add_port_range of a rule's match: its protocol's slot and its ports. A
// match without ports (or, in a crafted file, of a protocol without) puts
// nothing, and fits.
Result<void> add_match_range(PortRangeTable& table, const Match& match);

// Marks range id unused and gives its children its parent. Its fields stay:
// a packet that read the id just before keeps finding its chain.
void remove_port_range(PortRangeTable& table, uint16_t id);

// For each port of slot (65536 of them), the narrowest range in use that
// holds it, 0 if none: what xt_ports holds.
std::vector<uint16_t> port_map(const PortRangeTable& table, uint8_t slot);

}  // namespace xt
