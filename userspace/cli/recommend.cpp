// SPDX-License-Identifier: MIT
// xthrottle recommend [--rule NAME] [--for DURATION] [--spare PERCENT] [--json] [--plot FILE.png]
// Watches the live rules' sources a second at a time (their buckets'
// counters: what they sent, dropped or not, so a dry-run rule shows what
// its sources would send unlimited) and suggests a limit (recommend.h).
#include <cstdio>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "cli.h"
#include "format.h"
#include "recommend.h"

namespace xt::cli {
namespace {

struct RecommendOptions {
  std::string rule, duration = "60s", spare = "99.9", plot;
  bool json = false;
};

struct Watched {
  uint32_t last = 0;  // the bucket's passed + dropped (+ pending) at the last sample, low 32 bits
  std::vector<uint32_t> per_second;
};

nlohmann::json quantiles_json(const Quantiles& q) {
  return {{"p50", q.p50}, {"p90", q.p90}, {"p99", q.p99}, {"p99.9", q.p999}, {"max", q.max}};
}

std::string quantiles_line(const char* what, const Quantiles& q) {
  return fmt("  %-26s %10.1f %10.1f %10.1f %10.1f %10.1f\n", what, q.p50, q.p90, q.p99, q.p999, q.max);
}

// A PNG of the sources' busiest minute (a CDF) with the suggested rate.
Result<void> plot(const std::string& path, const std::string& rule, std::vector<double> minutes, double rate) {
  std::ranges::sort(minutes);
  const std::string data = path + ".dat";
  {
    FILE* f = std::fopen(data.c_str(), "w");
    if (!f) return system_error("cannot write " + data, errno);
    for (size_t i = 0; i < minutes.size(); i++)
      std::fprintf(f, "%g %g\n", minutes[i], static_cast<double>(i + 1) / static_cast<double>(minutes.size()));
    std::fclose(f);
  }
  const std::string script =
      "set terminal pngcairo size 900,500; set output '" + path + "'; set logscale x; set grid;"
      "set xlabel 'packets a second in the source''s busiest minute'; set ylabel 'share of sources';"
      "set title 'xthrottle recommend: " + rule + "'; set arrow from " + fmt("%g", rate) + ", graph 0 to " +
      fmt("%g", rate) + ", graph 1 nohead lc rgb 'red';"
      "plot '" + data + "' using 1:2 with steps title 'sources', 1/0 lc rgb 'red' title 'suggested --rate'";
  FILE* gp = popen("gnuplot 2>&1", "w");
  if (!gp) return system_error("cannot run gnuplot (apt-get install gnuplot-nox)", errno);
  std::fputs(script.c_str(), gp);
  const int rc = pclose(gp);
  std::remove(data.c_str());
  if (rc != 0) return system_error("gnuplot failed drawing " + path + " (is gnuplot-nox installed?)");
  return {};
}

int run_recommend(const Globals& g, const RecommendOptions& o) {
  auto seconds = parse_duration("--for", o.duration);
  if (!seconds) return fail(seconds.error());
  if (*seconds < 2 || *seconds > 600)
    return fail(usage_error("bad --for '" + o.duration + "': 2s to 10min (4 bytes a source a second)").error());
  double spare = 0;
  try {
    spare = std::stod(o.spare.ends_with('%') ? o.spare.substr(0, o.spare.size() - 1) : o.spare) / 100.0;
  } catch (...) {
  }
  if (!(spare > 0 && spare <= 1)) return fail(usage_error("bad --spare '" + o.spare + "': a percentage, 99.9%").error());
  auto state = State::open(g.pin_dir);
  if (!state) return fail(state.error());
  auto rules = state->rules();
  if (!rules) return fail(rules.error());
  std::map<uint32_t, std::string> names;
  for (const auto& e : *rules)
    if (e.spec.action == XT_ACT_LIMIT && (o.rule.empty() || o.rule == rule_name(e.cidr, e.spec.match)))
      names[e.rule.id] = rule_name(e.cidr, e.spec.match);
  if (names.empty())
    return fail(usage_error(o.rule.empty() ? "no limit rule to watch" : "no limit rule " + o.rule + " (see rule list)").error());

  std::map<xt_bucket_key, Watched, BucketKeyLess> watched;
  auto sample = [&](uint32_t k) -> Result<void> {
    auto pending = state->hot_pending();
    if (!pending) return std::unexpected(pending.error());
    return state->for_each_bucket([&](const BucketEntry& e) {
      if (!names.contains(e.key.rule_id)) return;
      uint32_t total = e.bucket.passed_packets + e.bucket.dropped_packets;
      if (auto p = pending->find(e.key); p != pending->end()) total += static_cast<uint32_t>(p->second);
      auto [it, fresh] = watched.try_emplace(e.key);
      Watched& w = it->second;
      if (fresh) {
        w.per_second.assign(*seconds, 0);
        // Made before the first sample: counted from it. Made since: all
        // it has counted is from the last second.
        if (k > 0) w.per_second[k - 1] = total;
      } else if (k > 0) {
        // Modulo 2^32. A count that went back counts as none: the hot
        // cache's pending drops, read before this walk, may have reached
        // the bucket by the time it was read, and were counted twice last
        // second.
        const uint32_t d = total - w.last;
        w.per_second[k - 1] = d < (1u << 31) ? d : 0;
      }
      w.last = total;
    });
  };
  std::cerr << "watching " << names.size() << " rule(s) for " << format_duration(*seconds) << "...\n";
  const auto start = std::chrono::steady_clock::now();
  for (uint32_t k = 0; k <= *seconds; k++) {
    std::this_thread::sleep_until(start + std::chrono::seconds(k));
    if (auto ok = sample(k); !ok) return fail(ok.error());
  }

  nlohmann::json j = nlohmann::json::object();
  std::string text;
  for (const auto& [id, name] : names) {
    std::vector<std::vector<uint32_t>> series;
    for (auto& [key, w] : watched)
      if (key.rule_id == id && std::ranges::any_of(w.per_second, [](uint32_t n) { return n != 0; }))
        series.push_back(std::move(w.per_second));
    const Recommendation r = recommend(series, spare);
    j[name] = {{"sources", r.sources},
               {"packets", r.packets},
               {"seconds", r.seconds},
               {"peak_second", quantiles_json(r.peak_second)},
               {"peak_minute_per_second", quantiles_json(r.peak_minute)},
               {"mean_per_second", quantiles_json(r.mean)},
               {"spare", spare},
               {"rate", fmt("%.0f/s", r.rate)},
               {"burst", r.burst},
               {"sources_dropped", r.sources_dropped},
               {"packets_dropped", r.packets_dropped}};
    text += "rule " + name + ": " + std::to_string(r.sources) + " sources sent " + std::to_string(r.packets) +
            " packets in " + std::to_string(r.seconds) + " s\n";
    text += fmt("  %-26s %10s %10s %10s %10s %10s\n", "per source", "p50", "p90", "p99", "p99.9", "max");
    text += quantiles_line("busiest second", r.peak_second);
    text += quantiles_line("busiest minute, a second", r.peak_minute);
    text += quantiles_line("whole span, a second", r.mean);
    text += fmt("  suggested: --rate %.0f/s --burst %llu (%.4g%% of the sources lose nothing); under it %zu "
                "source(s) would have lost %llu packet(s)\n",
                r.rate, (unsigned long long)r.burst, spare * 100, r.sources_dropped,
                (unsigned long long)r.packets_dropped);
    if (!o.plot.empty()) {
      std::vector<double> minutes;
      for (const auto& s : series) {
        const Recommendation one = recommend({s}, 1.0);
        minutes.push_back(one.peak_minute.max);
      }
      const std::string path = names.size() == 1 ? o.plot : o.plot + "." + std::to_string(id) + ".png";
      if (auto ok = plot(path, name, minutes, r.rate); !ok) return fail(ok.error());
    }
  }
  emit(o.json, j, text);
  return 0;
}

}  // namespace

void add_recommend_command(CLI::App& app, const Globals& g, int& rc) {
  auto o = std::make_shared<RecommendOptions>();
  auto* rec = app.add_subcommand("recommend", "Watch the live rules' sources and suggest a rate and burst");
  rec->add_option("--rule", o->rule, "Only this rule (as rule list names it: 0.0.0.0/0 udp/53)");
  rec->add_option("--for", o->duration, "How long to watch (2s to 10min)")->capture_default_str();
  rec->add_option("--spare", o->spare, "Share of sources the limit must drop nothing of")->capture_default_str();
  rec->add_flag("--json", o->json, "JSON output");
  rec->add_option("--plot", o->plot, "Draw the sources' rates and the suggestion to this PNG (gnuplot)");
  rec->callback([&g, &rc, o] { rc = run_recommend(g, *o); });
}

}  // namespace xt::cli
