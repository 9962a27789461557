// SPDX-License-Identifier: MIT
// `xthrottle recommend`: from what each source of a rule sent, second by
// second (watched live by the CLI, or recorded by `serve --record` over a
// dry-run period of hours or days: record_file.h), the distribution of
// per-source rates and the limit that would have dropped no more than a
// chosen share of the sources. Pure: unit-tested on the host.
//
// A token bucket of rate r and burst b drops nothing of a source exactly
// when, in every stretch of time, what it sends is at most b + r x the
// stretch. Seen one second at a time, a second's packets may all come at
// once, so the burst a source needs at rate r is
//   need(r) = max over seconds a..z of (sent in a..z) - r x (z - a),
// a maximum-sum stretch of (sent - r) per second, plus r. The rate
// suggested is the chosen quantile of the sources' busiest minute (per
// second); the burst, the same quantile of need(rate).
//
// What was seen is sparse: a second lists only the sources that sent in it,
// and seconds nobody observed (serve stopped) are left out. The figures are
// worked out in three passes over it, each source's state O(1), so an idle
// second costs nothing and a long record no more than its entries.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace xt {

// Quantiles of a per-source figure.
struct Quantiles {
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
};

// What was seen of the sources of one or more rules (groups).
struct Observed {
  struct Second {
    uint32_t t = 0;  // seconds from an origin; increasing
    std::vector<std::pair<uint32_t, uint32_t>> sent;  // (source, packets > 0), a source at most once
  };
  std::vector<std::string> groups;  // the rules, by name
  std::vector<uint32_t> group_of;   // each source's group
  std::vector<Second> seconds;      // the seconds observed, in order (a gap in t: not observed)
};

struct Recommendation {
  size_t sources = 0;
  uint64_t packets = 0;
  uint32_t seconds = 0;   // seconds observed
  uint32_t span = 0;      // from the first observed to the last, gaps included
  Quantiles peak_second;  // packets in a source's busiest second
  Quantiles peak_minute;  // a source's busiest 60 s (the whole span if shorter), per second
  Quantiles mean;         // packets a second over the seconds observed
  double rate = 0;        // suggested: packets a second, a whole number; 0: no source, no suggestion
  uint64_t burst = 0;     // suggested (0 with no suggestion)
  // Under the suggestion, as a token bucket metered a second at a time
  // (time not observed counted as silence):
  size_t sources_dropped = 0;
  uint64_t packets_dropped = 0;
  std::vector<double> peak_minutes;  // each source's, for a plot
};

// spare: the share of sources the suggestion should drop nothing of (0.999).
// One recommendation a group.
std::vector<Recommendation> recommend(const Observed& seen, double spare);

// A source as it is counted: its rule's group, its family and prefix.
struct SourceKey {
  uint32_t group = 0;
  uint8_t family = 0;  // XT_FAMILY_V4 or XT_FAMILY_V6
  uint8_t len = 0;     // the prefix one count covers
  std::array<uint8_t, 16> addr{};
  bool operator==(const SourceKey&) const = default;
};
struct SourceKeyHash {
  size_t operator()(const SourceKey& k) const;
};

// Builds an Observed a second at a time. With `per` set, each source is
// folded into its prefix of that length (a source counted per /32 into its
// /24); the packets of the sources a prefix holds are summed, second by
// second.
class ObservedBuilder {
 public:
  uint32_t group(const std::string& name);
  // Starts second t (after the last one started; one not after it is
  // ignored, and so is what is added to it: a clock set back).
  void second(uint32_t t);
  void add(SourceKey key, uint32_t packets) { add(source(key), packets); }
  // The number of a source (folded), made if new: to add to it again
  // without a lookup.
  uint32_t source(SourceKey key);
  void add(uint32_t source, uint32_t packets);
  // The prefix length sources are folded into; 0 (the default): as counted.
  void fold_to(uint8_t len) { fold_ = len; }
  size_t seconds_ignored() const { return ignored_; }
  uint8_t folded_to() const { return fold_; }
  // Whether what is added now is taken (a second was started, and was
  // after the one before).
  bool taking() const { return open_; }
  // Groups with sources counted per a prefix shorter than fold_to's (they
  // cannot be split into it, and are left as they are): the family and the
  // length they were counted by.
  const std::map<uint32_t, std::pair<uint8_t, uint8_t>>& counted_coarser() const { return coarser_; }
  Observed take() { return std::move(seen_); }

 private:
  Observed seen_;
  std::unordered_map<std::string, uint32_t> groups_;
  std::unordered_map<SourceKey, uint32_t, SourceKeyHash> sources_;
  std::vector<uint32_t> at_;  // each source's entry in the current second + 1, or 0
  uint8_t fold_ = 0;
  std::map<uint32_t, std::pair<uint8_t, uint8_t>> coarser_;
  bool open_ = false;
  size_t ignored_ = 0;
};

}  // namespace xt
