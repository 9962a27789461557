// SPDX-License-Identifier: MIT
// xthrottle capture [-w FILE] [--rule NAME] [--reason R,...] [--count N]
//                   [--snaplen N] [--rate N/UNIT] [--for DURATION] [--json]
#include <cerrno>
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>

#include "capture.h"
#include "cli.h"
#include "format.h"

namespace xt::cli {
namespace {

struct CaptureOptions {
  std::string file, rule, reasons, rate, duration;
  uint64_t count = 0;
  uint32_t snaplen = XT_CAPTURE_MAX_SNAPLEN;
  bool json = false;
};

// Stops the data path sampling on every way out.
struct StopCapture {
  State* state;
  ~StopCapture() { state->stop_capture(); }
};

int run_capture(const Globals& g, const CaptureOptions& o) {
  auto reasons = o.reasons.empty() ? Result<uint32_t>(default_capture_reasons()) : parse_reasons(o.reasons);
  if (!reasons) return fail(reasons.error());
  auto rate = parse_rate(o.rate.empty() ? std::to_string(XT_CAPTURE_DEFAULT_RATE) + "/s" : o.rate, "");
  if (!rate) return fail(rate.error());
  auto seconds = o.duration.empty() ? Result<uint64_t>(0) : parse_duration("--for", o.duration, false);
  if (!seconds) return fail(seconds.error());
  if (!o.duration.empty() && *seconds == 0)
    return fail(usage_error("bad --for '" + o.duration + "': give how long (10s, 5min), or leave it out").error());
  auto state = State::open(g.pin_dir);
  if (!state) return fail(state.error());
  // Before the buffers are taken, as `events` does: a SIGINT once they are
  // held ends the capture, never kills it half set up.
  install_stop_signals();
  // One capture at a time: each would take the other's buffers.
  auto lock = ReaderLock::acquire(g.pin_dir, XT_MAP_CAPTURE, "`xthrottle capture`");
  if (!lock) return fail(lock.error());
  auto cfg = state->config();
  if (!cfg) return fail(cfg.error());
  State::CaptureSettings settings;
  settings.reasons = *reasons;
  settings.snaplen = o.snaplen;
  auto limit = make_limit(rate->count, rate->period_ns / kNsPerSec * cfg->hz, rate->count, cfg->hz, "--rate");
  if (!limit) return fail(limit.error());
  settings.limit = *limit;
  // The rules' names by id, read again at each new rules epoch: a rule
  // deleted leaves its id to the next rule added, whose samples were told
  // under the deleted rule's name.
  std::map<uint32_t, std::string> names;
  uint32_t names_epoch = cfg->epoch;
  auto read_names = [&]() -> Result<void> {
    auto rules = state->rules();
    if (!rules) return std::unexpected(rules.error());
    names.clear();
    for (const auto& e : *rules) names[e.rule.id] = rule_name(e.cidr, e.spec.match);
    return {};
  };
  if (auto ok = read_names(); !ok) return fail(ok.error());
  bool rule_gone = false;  // --rule's, deleted: its id is no longer its
  // The names brought up to the rules epoch, before a sample is told and
  // as the capture goes.
  auto sync_names = [&]() -> Result<void> {
    auto c = state->config();
    if (!c || c->epoch == names_epoch) return {};
    if (auto ok = read_names(); !ok) return ok;  // read again next time
    names_epoch = c->epoch;
    auto it = names.find(settings.rule);
    if (!o.rule.empty() && (it == names.end() || it->second != o.rule)) rule_gone = true;
    return {};
  };
  if (!o.rule.empty()) {
    auto it = std::ranges::find_if(names, [&](const auto& n) { return n.second == o.rule; });
    if (it == names.end())
      return fail(system_error("no rule '" + o.rule + "' (name it as `rule list` does: \"0.0.0.0/0\", "
                               "\"0.0.0.0/0 udp/53\")")
                      .error());
    settings.rule = it->first;
  }

  std::optional<PcapFile> pcap;
  if (!o.file.empty()) {
    auto f = PcapFile::open(o.file, o.snaplen);
    if (!f) return fail(f.error());
    pcap.emplace(std::move(*f));
  }
  // The lines beside the pcap go where the pcap does not.
  std::ostream& lines = o.file == "-" ? std::cerr : std::cout;
  // The program's clock to wall time, read once.
  auto tick0 = state->now();
  if (!tick0) return fail(tick0.error());
  const double wall0 = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto wall = [&](uint64_t tick) {
    return wall0 + (static_cast<double>(tick) - static_cast<double>(*tick0)) / cfg->hz;
  };
  // A reader of the lines or of a pcap on standard output that went away
  // (EPIPE: `| head -n 1`) ends the capture cleanly; any other failure to
  // write them (a full disk) is an error, not a capture cut short in
  // silence.
  int lines_failed = 0;
  auto note_lines_failed = [&] {
    if (!lines && !lines_failed) lines_failed = errno ? errno : EIO;
  };
  const auto written_or_gone = [&](const Result<void>& ok) { return ok || pcap->reader_gone(); };
  uint64_t taken = 0;
  auto reader = CaptureReader::open(*state, [&](const CaptureSample& s) {
    if (o.count && taken >= o.count) return;
    // A sample of --rule's id once another rule has it: not its rule's.
    if (!sync_names() || rule_gone) return;
    taken++;
    const double t = wall(s.meta.tick);
    auto it = names.find(s.meta.rule_id);
    const nlohmann::json j = capture_json(taken, s, t, it == names.end() ? "-" : it->second);
    if (pcap) pcap->write(s, t);
    lines << (o.json ? json_text(j) : capture_line(j)) << "\n";
    note_lines_failed();
  });
  if (!reader) return fail(reader.error());
  auto before = state->counters();
  if (!before) return fail(before.error());
  if (auto ok = state->start_capture(settings); !ok) return fail(ok.error());
  StopCapture stop{&*state};
  const auto start = std::chrono::steady_clock::now();
  auto renewed = start;
  while (!g_stop && lines && (!o.count || taken < o.count)) {
    if (auto ok = sync_names(); !ok) return fail(ok.error());
    if (rule_gone) break;
    const auto now = std::chrono::steady_clock::now();
    if (*seconds && now - start >= std::chrono::seconds(*seconds)) break;
    if (now - renewed >= std::chrono::seconds(1)) {
      if (auto ok = state->renew_capture(); !ok) return fail(ok.error());
      renewed = now;
    }
    if (auto n = reader->poll(100); !n) return fail(n.error());
    // A pcap on standard output whose reader went away (`-w - | tshark -c
    // 5`) ends the capture as its lines' reader does: no error.
    if (auto ok = pcap ? pcap->flush() : Result<void>{}; !ok) {
      if (written_or_gone(ok)) break;
      return fail(ok.error());
    }
    lines.flush();
    note_lines_failed();
  }
  state->stop_capture();
  (void)reader->poll(0);  // what was on its way
  if (auto ok = pcap ? pcap->flush() : Result<void>{}; !written_or_gone(ok)) return fail(ok.error());
  if (lines_failed && lines_failed != EPIPE)
    return fail(system_error(std::string("cannot write the lines to ") + (o.file == "-" ? "standard error" : "standard output"),
                             lines_failed)
                    .error());
  auto after = state->counters();
  if (!after) return fail(after.error());
  const uint64_t over = (*after)[XT_CAPTURE_SUPPRESSED].packets - (*before)[XT_CAPTURE_SUPPRESSED].packets;
  std::cerr << "xthrottle: " << taken << " packets captured"
            << (o.file.empty() || o.file == "-" ? "" : " to " + o.file) << "; " << over
            << " more over the sampling rate (" << format_rate(rate->count, rate->period_ns) << ") not taken";
  if (reader->lost()) std::cerr << "; " << reader->lost() << " lost (the reader fell behind)";
  std::cerr << "\n";
  if (rule_gone)
    return fail(system_error("the rule '" + o.rule + "' was deleted: the capture stopped with it").error());
  return 0;
}

}  // namespace

void add_capture_command(CLI::App& app, const Globals& g, int& rc) {
  auto o = std::make_shared<CaptureOptions>();
  auto* cmd = app.add_subcommand(
      "capture", "Write a sample of the packets dropped (or redirected) as a pcap file, with their verdicts");
  cmd->add_option("-w,--write", o->file, "The pcap file to write (- for standard output; the verdicts then go "
                                        "to standard error)");
  cmd->add_option("--rule", o->rule, "Only this rule's packets, named as `rule list` names it: \"0.0.0.0/0\", "
                                     "\"0.0.0.0/0 udp/53\"");
  cmd->add_option("--reason", o->reasons,
                  "Only these verdicts, as `stats` names them, separated by commas (default: every drop, and "
                  "dry_run)");
  cmd->add_option("--count", o->count, "Stop after this many packets")->check(whole_number(1, UINT64_MAX));
  cmd->add_option("--snaplen", o->snaplen, "Bytes of each packet to keep (at most 1514)")
      ->check(whole_number(1, XT_CAPTURE_MAX_SNAPLEN));
  cmd->add_option("--rate", o->rate,
                  "Packets sampled per time at most, in the data path (default " +
                      std::to_string(XT_CAPTURE_DEFAULT_RATE) + "/s): a flood cannot become a second flood");
  cmd->add_option("--for", o->duration, "Stop after this long: 10s, 5min");
  cmd->add_flag("--json", o->json, "One JSON object a packet beside the pcap, instead of a line");
  cmd->callback([&g, &rc, o] { rc = run_capture(g, *o); });
}

}  // namespace xt::cli
