// SPDX-License-Identifier: MIT
// xthrottle recommend [--rule NAME] [--for DURATION | --from FILE] [--per LEN] [--spare PERCENT] [--json]
//                     [--plot FILE.png]
// Watches the live rules' sources a second at a time (their buckets'
// counters: what they sent, dropped or not, so a dry-run rule shows what
// its sources would send unlimited; recorder.h), or reads what serve
// --record kept of them over hours or days (record_file.h), and suggests a
// limit (recommend.h).
#include <charconv>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "cli.h"
#include "format.h"
#include "recommend.h"
#include "record_file.h"
#include "recorder.h"
#include "state.h"

namespace xt::cli {
namespace {

struct RecommendOptions {
  std::string rule, duration = "60s", spare = "99.9", plot, from, per;
  bool json = false;
};

SourceKey key_of(uint32_t group, uint8_t family, uint8_t len, const uint8_t* addr) {
  SourceKey k{group, family, len, {}};
  std::memcpy(k.addr.data(), addr, family == XT_FAMILY_V4 ? 4 : 16);
  return k;
}

// Why --per cannot be asked of a rule that counts its sources of `family`
// per /counted.
std::string per_refused(const std::string& per, const std::string& rule, uint8_t family, unsigned counted) {
  if (std::stoi(per) > family_bits(family))
    return "bad --per " + per + ": longer than an " + (family == XT_FAMILY_V4 ? "IPv4" : "IPv6") +
           " address (rule " + rule + "; --rule asks of one rule)";
  return "bad --per " + per + ": rule " + rule + " counts its sources per /" + std::to_string(counted) +
         " (its --per); a longer prefix cannot be made of that";
}

// Watches the live rules for `seconds`, a read of their buckets a second.
Result<Observed> watch(const Globals& g, const RecommendOptions& o, uint64_t seconds, ObservedBuilder& seen) {
  auto state = State::open(g.pin_dir);
  if (!state) return std::unexpected(state.error());
  auto rules = state->rules();
  if (!rules) return std::unexpected(rules.error());
  const auto names = limit_rule_names(*rules, o.rule);
  // No such rule in the state: exit 1, as capture --rule and rule del say.
  if (names.empty() && !o.rule.empty()) return system_error("no limit rule " + o.rule + " (see rule list)");
  if (names.empty()) return usage_error("no limit rule to watch");
  for (const auto& e : *rules)
    if (names.contains(e.rule.id) && seen.folded_to() > e.rule.per_len)
      return usage_error(per_refused(o.per, names.at(e.rule.id), e.cidr.family, e.rule.per_len));
  std::map<uint32_t, uint32_t> group;
  for (const auto& [id, name] : names) group[id] = seen.group(name);
  SourceSampler sampler;
  std::cerr << "watching " << names.size() << " rule(s) for " << format_duration(seconds) << "...\n";
  const auto start = std::chrono::steady_clock::now();
  for (uint32_t k = 0; k <= seconds; k++) {
    std::this_thread::sleep_until(start + std::chrono::seconds(k));
    if (k > 0) seen.second(k - 1);
    auto told = sampler.sample(*state, [&](const BucketEntry& e, uint32_t packets) {
      if (auto it = group.find(e.key.rule_id); it != group.end())
        seen.add(key_of(it->second, e.key.family, e.key.per_len, e.key.addr), packets);
    });
    if (!told) return std::unexpected(told.error());
  }
  return seen.take();
}

// Reads what serve --record kept: FILE.1 (the older half), then FILE.
Result<Observed> read_recorded(const RecommendOptions& o, ObservedBuilder& seen, std::vector<std::string>* cut) {
  bool any = false;
  for (const std::string& path : {o.from + ".1", o.from}) {
    std::error_code ec;
    if (path != o.from && !std::filesystem::exists(path, ec)) continue;
    auto bytes = read_record_file(path);
    if (!bytes) return std::unexpected(bytes.error());
    auto read = observe_record(*bytes, path, o.rule, seen);
    if (!read) return std::unexpected(read.error());
    if (read->cut) cut->push_back(path);
    any = any || read->seconds > 0;
  }
  Observed out = seen.take();
  if (!o.rule.empty() && out.groups.empty())
    return usage_error("the record " + o.from + " has no source of rule " + o.rule);
  if (!any) return usage_error("the record " + o.from + " has no second in it yet (serve writes one a second)");
  return out;
}

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
  // gnuplot's own words (a warning of an empty range) to stderr: stdout is
  // the suggestion, JSON under --json.
  FILE* gp = popen("gnuplot 1>&2", "w");
  if (!gp) return system_error("cannot run gnuplot (apt-get install gnuplot-nox)", errno);
  std::fputs(script.c_str(), gp);
  const int rc = pclose(gp);
  std::remove(data.c_str());
  if (rc != 0) return system_error("gnuplot failed drawing " + path + " (is gnuplot-nox installed?)");
  return {};
}

int run_recommend(const Globals& g, const RecommendOptions& o, bool for_given) {
  auto seconds = parse_duration("--for", o.duration, false);
  if (!seconds) return fail(seconds.error());
  if (!o.from.empty() && for_given)
    return fail(usage_error("--for watches live; --from reads a record serve kept: one or the other").error());
  if (*seconds < 2 || *seconds > 600)
    return fail(usage_error("bad --for '" + o.duration + "': 2s to 10min (longer: serve --record, then --from)").error());
  ObservedBuilder builder;
  if (!o.per.empty()) {
    auto per = parse_prefix_len("--per", o.per);
    if (!per) return fail(per.error());
    if (*per == 0) return fail(usage_error("bad --per '0': one prefix for every source is no rate a source").error());
    builder.fold_to(static_cast<uint8_t>(*per));
  }
  // The whole word a number (with its % or not): "99.9abc" and "0x10" are
  // no percentage.
  double spare = 0;
  const std::string_view number = o.spare.ends_with('%') ? std::string_view(o.spare).substr(0, o.spare.size() - 1)
                                                          : std::string_view(o.spare);
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), spare,
                                         std::chars_format::fixed);
  spare = ec == std::errc() && end == number.data() + number.size() ? spare / 100.0 : 0;
  if (!(spare > 0 && spare <= 1)) return fail(usage_error("bad --spare '" + o.spare + "': a percentage, 99.9%").error());
  std::vector<std::string> cut;
  auto seen = o.from.empty() ? watch(g, o, *seconds, builder) : read_recorded(o, builder, &cut);
  if (!seen) return fail(seen.error());
  // A --per longer than a rule counts by would be a prefix no count was kept for.
  if (!builder.counted_coarser().empty()) {
    const auto& [group, counted] = *builder.counted_coarser().begin();
    return fail(usage_error(per_refused(o.per, seen->groups[group], counted.first, counted.second)).error());
  }
  const std::vector<Recommendation> recs = recommend(*seen, spare);

  nlohmann::json j = nlohmann::json::object();
  std::string text;
  for (const std::string& path : cut)
    std::cerr << "xthrottle: " << path << ": its last entry is cut short (serve stopped while writing it, or is "
              << "writing it now): read up to it\n";
  if (builder.seconds_ignored())
    std::cerr << "xthrottle: " << o.from << ": " << builder.seconds_ignored()
              << " second(s) not after the one before (a clock set back): left out\n";
  for (size_t i = 0; i < recs.size(); i++) {
    const std::string& name = seen->groups[i];
    const Recommendation& r = recs[i];
    const bool suggested = r.sources > 0;  // a rule no source was seen in has none
    j[name] = {{"sources", r.sources},
               {"packets", r.packets},
               {"seconds", r.seconds},
               {"span_seconds", r.span},
               {"per", o.per.empty() ? nlohmann::json(nullptr) : nlohmann::json(std::stoi(o.per))},
               {"peak_second", quantiles_json(r.peak_second)},
               {"peak_minute_per_second", quantiles_json(r.peak_minute)},
               {"mean_per_second", quantiles_json(r.mean)},
               {"spare", spare},
               {"rate", suggested ? nlohmann::json(fmt("%.0f/s", r.rate)) : nlohmann::json(nullptr)},
               {"burst", suggested ? nlohmann::json(r.burst) : nlohmann::json(nullptr)},
               {"sources_dropped", r.sources_dropped},
               {"packets_dropped", r.packets_dropped}};
    const std::string what = o.per.empty() ? " sources" : " /" + o.per + " prefixes";
    text += "rule " + name + ": " + std::to_string(r.sources) + what + " sent " + std::to_string(r.packets) +
            " packets in " + std::to_string(r.seconds) + " s observed";
    text += r.span != r.seconds ? " (over " + format_duration(r.span) + ")\n" : "\n";
    text += fmt("  %-26s %10s %10s %10s %10s %10s\n", o.per.empty() ? "per source" : "per prefix", "p50", "p90",
                "p99", "p99.9", "max");
    if (!suggested) {
      text += "  no source sent through it: no suggestion\n";
      continue;
    }
    text += quantiles_line("busiest second", r.peak_second);
    text += quantiles_line("busiest minute, a second", r.peak_minute);
    text += quantiles_line("whole span, a second", r.mean);
    text += fmt("  suggested: --rate %.0f/s --burst %llu%s (%.4g%% of them lose nothing); under it %zu "
                "would have lost %llu packet(s)\n",
                r.rate, (unsigned long long)r.burst, o.per.empty() ? "" : (" --per " + o.per).c_str(), spare * 100,
                r.sources_dropped, (unsigned long long)r.packets_dropped);
    if (!o.plot.empty()) {
      const std::string path = recs.size() == 1 ? o.plot : o.plot + "." + std::to_string(i) + ".png";
      if (auto ok = plot(path, name, r.peak_minutes, r.rate); !ok) return fail(ok.error());
    }
  }
  emit(o.json, j, text);
  return 0;
}

}  // namespace

void add_recommend_command(CLI::App& app, const Globals& g, int& rc) {
  auto o = std::make_shared<RecommendOptions>();
  auto* rec = app.add_subcommand("recommend",
                                 "Suggest a rate and burst from what the rules' sources sent: watched live, or recorded "
                                 "by serve --record");
  rec->add_option("--rule", o->rule, "Only this rule (as rule list names it: 0.0.0.0/0 udp/53)");
  auto* for_opt = rec->add_option("--for", o->duration, "How long to watch live (2s to 10min)")->capture_default_str();
  rec->add_option("--from", o->from, "Read what serve --record FILE kept (FILE.1 and FILE) instead of watching");
  rec->add_option("--per", o->per, "Fold the sources into prefixes of this length (a limit per /24)");
  rec->add_option("--spare", o->spare, "Share of sources the limit must drop nothing of")->capture_default_str();
  rec->add_flag("--json", o->json, "JSON output");
  rec->add_option("--plot", o->plot, "Draw the sources' rates and the suggestion to this PNG (gnuplot)");
  rec->callback([&g, &rc, o, for_opt] { rc = run_recommend(g, *o, for_opt->count() > 0); });
}

}  // namespace xt::cli
