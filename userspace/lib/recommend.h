// SPDX-License-Identifier: MIT
// `xthrottle recommend`: from what each source of a rule sent, second by
// second (the sampler is the CLI's: the bucket table's counters read once a
// second), the distribution of per-source rates and the limit that would
// have dropped no more than a chosen share of the sources. Pure: unit-tested
// on the host.
//
// A token bucket of rate r and burst b drops nothing of a source exactly
// when, in every stretch of time, what it sends is at most b + r x the
// stretch. Seen one second at a time, a second's packets may all come at
// once, so the burst a source needs at rate r is
//   need(r) = max over seconds a..z of (sent in a..z) - r x (z - a),
// a maximum-sum stretch of (sent - r) per second, plus r. The rate
// suggested is the chosen quantile of the sources' busiest minute (per
// second); the burst, the same quantile of need(rate).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace xt {

// Quantiles of a per-source figure.
struct Quantiles {
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
};

struct Recommendation {
  size_t sources = 0;
  uint64_t packets = 0;
  uint32_t seconds = 0;  // how many seconds each series covers
  Quantiles peak_second;  // packets in a source's busiest second
  Quantiles peak_minute;  // a's busiest 60 s (the whole span if shorter), per second
  Quantiles mean;         // packets a second over the whole span
  double rate = 0;        // suggested: packets a second
  uint64_t burst = 0;     // suggested
  // Under the suggestion, as a token bucket metered a second at a time:
  size_t sources_dropped = 0;
  uint64_t packets_dropped = 0;
};

// series: for each source, packets in each second (all the same length).
// spare: the share of sources the suggestion should drop nothing of (0.999).
Recommendation recommend(const std::vector<std::vector<uint32_t>>& series, double spare);

// The burst a source needs at rate r (see above).
double burst_needed(const std::vector<uint32_t>& per_second, double r);
// Packets a bucket of rate r and burst b drops of this series, a second at
// a time (full at the start; a second's packets taken at once).
uint64_t dropped_by(const std::vector<uint32_t>& per_second, double r, uint64_t b);

}  // namespace xt
