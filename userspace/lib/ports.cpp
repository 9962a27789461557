// SPDX-License-Identifier: MIT
#include "ports.h"

#include "policy.h"

#include <algorithm>
#include <tuple>
#include <vector>

namespace xt {
namespace {

bool holds(const xt_port_range& outer, const xt_port_range& inner) {
  return outer.lo <= inner.lo && inner.hi <= outer.hi;
}

std::string range_text(uint16_t lo, uint16_t hi) { return format_ports({lo, hi}); }

// Every range's parent (the narrowest other range of its slot holding it),
// as they must be after a change. The ranges of a slot nest or stay apart
// (add_port_range refuses a crossing), so in order of their first port,
// the wider first, the ranges still open at a range's first port are those
// holding it, the last of them the narrowest: one pass with a stack. Done
// for every range a rule adds or drops, it was a scan of all ranges for
// each range (quadratic), and an apply adding 2048 port rules spent 2 s of
// its 3.5 in it.
void set_parents(PortRangeTable& table) {
  std::vector<uint16_t> used;
  for (size_t id = 1; id < table.size(); id++)
    if (table[id].used) used.push_back(static_cast<uint16_t>(id));
  std::ranges::sort(used, [&](uint16_t a, uint16_t b) {
    const xt_port_range &x = table[a], &y = table[b];
    return std::tuple(x.slot, x.lo, -int{x.hi}, a) < std::tuple(y.slot, y.lo, -int{y.hi}, b);
  });
  std::vector<uint16_t> open;
  for (uint16_t id : used) {
    xt_port_range& r = table[id];
    while (!open.empty() && (table[open.back()].slot != r.slot || table[open.back()].hi < r.lo)) open.pop_back();
    r.parent = !open.empty() && holds(table[open.back()], r) ? open.back() : 0;
    open.push_back(id);
  }
}

// How many ranges hold the ports of range id, itself included.
int depth(const PortRangeTable& table, uint16_t id) {
  int n = 0;
  for (; id && n <= XT_MAX_PORT_NESTING; id = table[id].parent) n++;
  return n;
}

}  // namespace

bool port_ranges_cross(std::pair<uint16_t, uint16_t> a, std::pair<uint16_t, uint16_t> b) {
  const xt_port_range ra{.lo = a.first, .hi = a.second}, rb{.lo = b.first, .hi = b.second};
  const bool apart = ra.hi < rb.lo || rb.hi < ra.lo;
  return !apart && !holds(ra, rb) && !holds(rb, ra);
}

uint8_t port_slot(uint8_t proto) { return proto == kProtoUdp ? XT_PORT_SLOT_UDP : XT_PORT_SLOT_TCP; }

uint16_t find_port_range(const PortRangeTable& table, uint8_t slot, uint16_t lo, uint16_t hi) {
  for (size_t id = 1; id < table.size(); id++)
    if (table[id].used && table[id].slot == slot && table[id].lo == lo && table[id].hi == hi)
      return static_cast<uint16_t>(id);
  return 0;
}

Result<uint16_t> add_port_range(PortRangeTable& table, uint8_t slot, uint16_t lo, uint16_t hi) {
  if (uint16_t id = find_port_range(table, slot, lo, hi)) return id;
  const xt_port_range fresh{.lo = lo, .hi = hi, .parent = 0, .slot = slot, .used = 1};
  const char* proto = slot == XT_PORT_SLOT_UDP ? "udp" : "tcp";
  for (const xt_port_range& r : table) {
    if (!r.used || r.slot != slot) continue;
    if (port_ranges_cross({r.lo, r.hi}, {lo, hi}))
      return usage_error("port range " + range_text(lo, hi) + " overlaps " + proto + " range " +
                         range_text(r.lo, r.hi) + " of another rule without holding it or lying inside it: "
                         "ranges must nest or stay apart (split this one at the other's ends)");
  }
  uint16_t id = 1;
  while (id < table.size() && table[id].used) id++;
  if (id == table.size())
    return system_error("no room for another port range (" + std::to_string(XT_MAX_PORT_RANGES) + " in use)");
  PortRangeTable next = table;
  next[id] = fresh;
  set_parents(next);
  for (size_t r = 1; r < next.size(); r++)
    if (next[r].used && depth(next, static_cast<uint16_t>(r)) > XT_MAX_PORT_NESTING)
      return usage_error("port range " + range_text(lo, hi) + " would nest " + proto + " port ranges more than " +
                         std::to_string(XT_MAX_PORT_NESTING) + " deep (around " +
                         range_text(next[r].lo, next[r].hi) + ")");
  table = std::move(next);
  return id;
}

void remove_port_range(PortRangeTable& table, uint16_t id) {
  if (!id || id >= table.size()) return;
  table[id].used = 0;
  // Its fields stay for packets in flight; its children move up.
  const uint16_t keep_parent = table[id].parent;
  set_parents(table);
  table[id].parent = keep_parent;
}

std::vector<uint16_t> port_map(const PortRangeTable& table, uint8_t slot) {
  std::vector<uint16_t> map(65536, 0);
  // Widest first, so a narrower range overwrites the one holding it.
  std::vector<uint16_t> ids;
  for (size_t id = 1; id < table.size(); id++)
    if (table[id].used && table[id].slot == slot) ids.push_back(static_cast<uint16_t>(id));
  std::ranges::sort(ids, [&](uint16_t a, uint16_t b) {
    return table[a].hi - table[a].lo > table[b].hi - table[b].lo;
  });
  for (uint16_t id : ids)
    for (uint32_t port = table[id].lo; port <= table[id].hi; port++) map[port] = id;
  return map;
}

Result<void> add_match_range(PortRangeTable& table, const Match& match) {
  if (!match.ports || !match.proto || (*match.proto != kProtoTcp && *match.proto != kProtoUdp)) return {};
  auto id = add_port_range(table, port_slot(*match.proto), match.ports->first, match.ports->second);
  if (!id) return std::unexpected(id.error());
  return {};
}

}  // namespace xt
