// SPDX-License-Identifier: MIT
#include "recommend.h"

#include <algorithm>
#include <cmath>

namespace xt {
namespace {

// The q-quantile (nearest rank) of v, sorted here.
double quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::ranges::sort(v);
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

Quantiles quantiles(std::vector<double> v) {
  Quantiles q;
  q.p50 = quantile(v, 0.5);
  q.p90 = quantile(v, 0.9);
  q.p99 = quantile(v, 0.99);
  q.p999 = quantile(v, 0.999);
  q.max = v.empty() ? 0 : v.back();
  return q;
}

}  // namespace

double burst_needed(const std::vector<uint32_t>& per_second, double r) {
  // Kadane over (sent - r): the stretch that outruns the rate most.
  double best = -r, here = 0;
  for (uint32_t n : per_second) {
    here = std::max(here, 0.0) + static_cast<double>(n) - r;
    best = std::max(best, here);
  }
  return std::max(0.0, best + r);
}

uint64_t dropped_by(const std::vector<uint32_t>& per_second, double r, uint64_t b) {
  double tokens = static_cast<double>(b);
  uint64_t dropped = 0;
  for (size_t i = 0; i < per_second.size(); i++) {
    if (i) tokens = std::min(static_cast<double>(b), tokens + r);
    const auto pass = std::min<uint64_t>(per_second[i], static_cast<uint64_t>(std::floor(tokens + 1e-9)));
    dropped += per_second[i] - pass;
    tokens -= static_cast<double>(pass);
  }
  return dropped;
}

Recommendation recommend(const std::vector<std::vector<uint32_t>>& series, double spare) {
  Recommendation out;
  out.sources = series.size();
  if (series.empty()) return out;
  out.seconds = static_cast<uint32_t>(series[0].size());
  const size_t window = std::min<size_t>(60, std::max<size_t>(1, out.seconds));
  std::vector<double> peak_second, peak_minute, mean;
  for (const auto& s : series) {
    uint64_t total = 0, in_window = 0, best_window = 0;
    uint32_t best_second = 0;
    for (size_t i = 0; i < s.size(); i++) {
      total += s[i];
      best_second = std::max(best_second, s[i]);
      in_window += s[i];
      if (i >= window) in_window -= s[i - window];
      best_window = std::max(best_window, in_window);
    }
    out.packets += total;
    peak_second.push_back(best_second);
    peak_minute.push_back(static_cast<double>(best_window) / static_cast<double>(window));
    mean.push_back(s.empty() ? 0 : static_cast<double>(total) / static_cast<double>(s.size()));
  }
  out.peak_second = quantiles(peak_second);
  out.peak_minute = quantiles(peak_minute);
  out.mean = quantiles(mean);
  // The rate: the sources' busiest minute at the quantile, never 0.
  std::vector<double> minutes = peak_minute;
  out.rate = std::max(1.0, std::ceil(quantile(minutes, spare)));
  std::vector<double> needs;
  for (const auto& s : series) needs.push_back(burst_needed(s, out.rate));
  out.burst = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(quantile(needs, spare) - 1e-9)));
  for (const auto& s : series) {
    const uint64_t d = dropped_by(s, out.rate, out.burst);
    if (d) out.sources_dropped++;
    out.packets_dropped += d;
  }
  return out;
}

}  // namespace xt
