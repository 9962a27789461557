// SPDX-License-Identifier: MIT
#include "recommend.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "policy.h"

namespace xt {
namespace {

// The q-quantile (nearest rank) of v, sorted here. The rank is q n rounded
// up, less the rounding of q n itself: 99.9 / 100 is 0.9990000000000001,
// whose q n for 1000 sources is just past 999 (the max, not rank 999).
double quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::ranges::sort(v);
  const double at = q * static_cast<double>(v.size());
  const auto rank = static_cast<size_t>(std::ceil(at - at * 1e-12));
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

// need(r), one second at a time, a source's seconds of silence taken in one
// step: Kadane's maximum-sum stretch of (sent - r), with `here` the best
// stretch ending at the last second seen.
struct Need {
  double here = 0, best = 0;
  int64_t last = -1;  // the last second taken, from the origin
  void silence(int64_t seconds, double r) {
    if (seconds <= 0) return;
    // The first silent second is the best of them; after g of them, what
    // is left of a stretch is here - g r, never below a stretch of one.
    best = std::max(best, std::max(here, 0.0) - r);
    here = std::max(std::max(here, 0.0) - static_cast<double>(seconds) * r, -r);
  }
  void sent(int64_t t, uint32_t n, double r) {
    silence(t - last - 1, r);
    here = std::max(here, 0.0) + n - r;
    best = std::max(best, here);
    last = t;
  }
};

// A token bucket of rate r and burst b, full at the start, refilled once a
// second, a second's packets taken at once. Whole numbers throughout (r and
// b are), so refilling g seconds in one step is exact.
struct Bucket {
  double tokens = 0;
  int64_t last = -1;
  uint64_t dropped = 0;
  void sent(int64_t t, uint32_t n, double r, double b) {
    tokens = last < 0 ? b : std::min(b, tokens + r * static_cast<double>(t - last));
    const double pass = std::min<double>(n, std::floor(tokens + 1e-9));
    dropped += n - static_cast<uint64_t>(pass);
    tokens -= pass;
    last = t;
  }
};

}  // namespace

std::vector<Recommendation> recommend(const Observed& seen, double spare) {
  const size_t n = seen.group_of.size();
  std::vector<Recommendation> out(seen.groups.size());
  if (seen.seconds.empty()) return out;
  const uint32_t origin = seen.seconds.front().t;
  const uint64_t span = uint64_t{seen.seconds.back().t} - origin + 1;
  const uint64_t window = std::min<uint64_t>(60, span);
  for (auto& r : out) {
    r.seconds = static_cast<uint32_t>(seen.seconds.size());
    r.span = static_cast<uint32_t>(std::min<uint64_t>(span, UINT32_MAX));
  }

  // Pass 1: each source's total, busiest second and busiest minute (the
  // minute slides: the seconds that leave it are taken off again).
  struct Sums {
    uint64_t total = 0, in_window = 0, best_window = 0;
    uint32_t best_second = 0;
  };
  std::vector<Sums> sums(n);
  size_t leaving = 0;
  for (const auto& s : seen.seconds) {
    for (; seen.seconds[leaving].t + window <= uint64_t{s.t}; leaving++)
      for (auto [src, k] : seen.seconds[leaving].sent) sums[src].in_window -= k;
    for (auto [src, k] : s.sent) {
      Sums& x = sums[src];
      x.total += k;
      x.best_second = std::max(x.best_second, k);
      x.in_window += k;
      x.best_window = std::max(x.best_window, x.in_window);
    }
  }
  std::vector<std::vector<double>> peak_second(out.size()), mean(out.size());
  for (size_t src = 0; src < n; src++) {
    if (!sums[src].total) continue;
    Recommendation& r = out[seen.group_of[src]];
    r.sources++;
    r.packets += sums[src].total;
    peak_second[seen.group_of[src]].push_back(sums[src].best_second);
    r.peak_minutes.push_back(static_cast<double>(sums[src].best_window) / static_cast<double>(window));
    mean[seen.group_of[src]].push_back(static_cast<double>(sums[src].total) / static_cast<double>(seen.seconds.size()));
  }
  for (size_t g = 0; g < out.size(); g++) {
    Recommendation& r = out[g];
    r.peak_second = quantiles(std::move(peak_second[g]));
    r.peak_minute = quantiles(r.peak_minutes);
    r.mean = quantiles(std::move(mean[g]));
    // The rate: the sources' busiest minute at the quantile, never 0; none
    // for a group no source was seen in (nothing to suggest it from).
    std::vector<double> minutes = r.peak_minutes;
    r.rate = r.sources ? std::max(1.0, std::ceil(quantile(minutes, spare))) : 0;
  }

  // Pass 2: the burst each source needs at its rule's rate.
  std::vector<Need> need(n);
  for (size_t src = 0; src < n; src++) need[src].best = -out[seen.group_of[src]].rate;
  for (const auto& s : seen.seconds)
    for (auto [src, k] : s.sent) need[src].sent(s.t - origin, k, out[seen.group_of[src]].rate);
  std::vector<std::vector<double>> needs(out.size());
  for (size_t src = 0; src < n; src++) {
    if (!sums[src].total) continue;
    const double r = out[seen.group_of[src]].rate;
    need[src].silence(static_cast<int64_t>(span) - 1 - need[src].last, r);
    needs[seen.group_of[src]].push_back(std::max(0.0, need[src].best + r));
  }
  for (size_t g = 0; g < out.size(); g++)
    if (out[g].sources)
      out[g].burst = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(quantile(needs[g], spare) - 1e-9)));

  // Pass 3: what that rate and burst would have dropped.
  std::vector<Bucket> bucket(n);
  for (const auto& s : seen.seconds)
    for (auto [src, k] : s.sent) {
      const Recommendation& r = out[seen.group_of[src]];
      bucket[src].sent(s.t - origin, k, r.rate, static_cast<double>(r.burst));
    }
  for (size_t src = 0; src < n; src++) {
    if (!bucket[src].dropped) continue;
    Recommendation& r = out[seen.group_of[src]];
    r.sources_dropped++;
    r.packets_dropped += bucket[src].dropped;
  }
  return out;
}

size_t SourceKeyHash::operator()(const SourceKey& k) const {
  uint64_t w[2];
  std::memcpy(w, k.addr.data(), sizeof(w));
  uint64_t h = (w[0] * 0x9e3779b97f4a7c15ULL) ^ (w[1] * 0xc2b2ae3d27d4eb4fULL) ^
               ((uint64_t{k.group} << 16 | uint64_t{k.family} << 8 | k.len) * 0x165667b19e3779f9ULL);
  return static_cast<size_t>(h ^ (h >> 29));
}

uint32_t ObservedBuilder::group(const std::string& name) {
  auto [it, added] = groups_.try_emplace(name, static_cast<uint32_t>(seen_.groups.size()));
  if (added) seen_.groups.push_back(name);
  return it->second;
}

void ObservedBuilder::second(uint32_t t) {
  if (!seen_.seconds.empty()) {
    for (auto [src, k] : seen_.seconds.back().sent) at_[src] = 0;
    if (t <= seen_.seconds.back().t) {
      ignored_++;
      open_ = false;
      return;
    }
  }
  seen_.seconds.push_back({t, {}});
  open_ = true;
}

uint32_t ObservedBuilder::source(SourceKey key) {
  if (fold_ && fold_ < key.len) {
    key.addr = prefix_of(key.addr, fold_);
    key.len = fold_;
  } else if (fold_ > key.len) {
    coarser_.try_emplace(key.group, key.family, key.len);
  }
  auto [it, added] = sources_.try_emplace(key, static_cast<uint32_t>(seen_.group_of.size()));
  if (added) {
    seen_.group_of.push_back(key.group);
    at_.push_back(0);
  }
  return it->second;
}

void ObservedBuilder::add(uint32_t source, uint32_t packets) {
  if (!open_ || !packets) return;
  auto& sent = seen_.seconds.back().sent;
  uint32_t& at = at_[source];
  if (at) {
    // Folded with another source already counted this second. Summed past
    // 2^32 - 1 in a second it stays at the most.
    const uint64_t sum = uint64_t{sent[at - 1].second} + packets;
    sent[at - 1].second = static_cast<uint32_t>(std::min<uint64_t>(sum, UINT32_MAX));
    return;
  }
  sent.emplace_back(source, packets);
  at = static_cast<uint32_t>(sent.size());
}

}  // namespace xt
