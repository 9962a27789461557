// SPDX-License-Identifier: MIT
// The embedded BPF object (bpftool skeleton), its clock, and libbpf/libxdp
// logging.
#pragma once

#include <xthrottle/abi.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "error.h"
#include "xthrottle.skel.h"

namespace xt {

struct SkeletonDeleter {
  void operator()(xthrottle* skel) const { xthrottle__destroy(skel); }
};
using Skeleton = std::unique_ptr<xthrottle, SkeletonDeleter>;

struct ObjectOptions {
  // Pin maps by name under this directory, reusing pins that exist. Without
  // it the maps are private to the object (tests).
  std::optional<std::string> pin_dir;
  // Read the clock from the object's xt_test_now (BPF_PROG_TEST_RUN tests).
  bool test_clock = false;
  // Sources the bucket table is sized for (and the hot cache with it). It
  // must match pins that exist: libbpf refuses to reuse a map of another size.
  uint32_t max_sources = XT_DEFAULT_MAX_SOURCES;
  // The hot cache's size, 2^hot_bits IPv4 lines a CPU, where a state exists: its
  // own (xt_config.hot_bits), which an older build may have sized otherwise
  // for the same max_sources. Without it, hot_bits_for(max_sources).
  std::optional<uint32_t> hot_bits = std::nullopt;
  // Accept multi-buffer frames (BPF_F_XDP_HAS_FRAGS): needed on interfaces
  // whose MTU does not fit one buffer (frags_needed()).
  bool frags = false;
  // What the interface's frames start with: the program is specialised for
  // the interface.
  xt_link link = XT_LINK_ETHER;
  // The state at pin_dir exists (options_for_state): every pinned map is
  // that pin, opened as it is, and a pin that is missing is an error. Left
  // to libbpf, a missing pin was made anew and pinned: a scrape or a status
  // that loaded its clock just after the state was removed put back a set
  // of empty pins that every command then refused.
  bool pins_must_exist = false;
};

// Whether an interface with this MTU needs the multi-buffer program. Drivers
// fit up to about 3.5 kB in one page; above the standard 1500 the program
// asks for frags and so works with any driver's layout.
constexpr bool frags_needed(uint32_t mtu) { return mtu > 1500; }

// Sets of the bucket table for --max-sources (rounded up to a power of two).
uint32_t bucket_sets_for(uint32_t max_sources);
// Sets of the known table (sources admitted outside the new-source budget):
// an entry for every XT_KNOWN_SHARE sources the table holds.
uint32_t known_sets_for(uint32_t max_sources);
// log2 of the hot cache's IPv4 lines per CPU for a table of max_sources:
// an entry for each of its sources, within XT_HOT_MIN_BITS..XT_HOT_MAX_BITS.
uint32_t hot_bits_for(uint32_t max_sources);
// Lines of the whole hot cache (every possible CPU's IPv4 and IPv6 lines),
// and of its first part, every CPU's IPv4 lines.
uint64_t hot_lines_for(uint32_t hot_bits);
uint64_t hot_v4_lines_for(uint32_t hot_bits);

// The options that open the object over the maps of the state pinned at
// pin_dir, whose configuration is cfg: its table's and hot cache's sizes.
// frags and link stay at their defaults, for the caller that attaches.
ObjectOptions options_for_state(const std::string& pin_dir, const xt_config& cfg);

// Opens (does not load) the embedded object.
Result<Skeleton> open_object(const ObjectOptions& options);

// Loads the object with only the programs in `wanted` (none: only the maps);
// `what` names them in the error.
Result<void> load_only(xthrottle* skel, std::initializer_list<bpf_program*> wanted, const std::string& what);

// The program's clock now, in ticks: runs a loaded xt_clock program.
Result<uint64_t> program_clock(int clock_prog_fd);

// Kernel ticks per second: CONFIG_HZ from the kernel's configuration where
// the system keeps it, else measured by timing the program's clock between
// tick edges half a second apart.
Result<uint32_t> measure_hz();
// The two ways: CONFIG_HZ from /boot/config-RELEASE or /proc/config.gz, and
// the measurement.
std::optional<uint32_t> configured_hz();
Result<uint32_t> clock_hz();
// The tick rate three measurements of it stand for: the middle one, taken
// to the rate a kernel is built with that it is within 1% of (one
// measurement a preempted thread made a few percent off cannot move it).
uint32_t kernel_hz_of(std::vector<double> tries);

// libbpf's and libxdp's own messages go to stderr only when verbose.
void set_library_logging(bool verbose);

}  // namespace xt
