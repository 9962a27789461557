// SPDX-License-Identifier: MIT
#include "capture.h"

#include <bpf/libbpf.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "format.h"
#include "parse.h"
#include "policy.h"
#include "stats.h"

namespace xt {

Result<uint32_t> parse_reasons(std::string_view text) {
  uint32_t reasons = 0;
  for (const std::string_view name : comma_list(text)) {
    uint32_t r = 0;
    while (r < XT_REASONS && name != reason_info(r).key) r++;
    if (r == XT_REASONS) {
      std::string known;
      for (uint32_t k = 0; k < XT_REASONS; k++) known += (k ? ", " : "") + std::string(reason_info(k).key);
      return usage_error("bad --reason '" + std::string(text) + "': '" + std::string(name) +
                         "' is not a reason (" + known + ")");
    }
    // Verdicts reached before a packet's rule is known are never sampled.
    if (r == XT_PASS_ALLOW || r == XT_PASS_UNMATCHED || r == XT_PASS_NON_IP || r == XT_DROP_MALFORMED)
      return usage_error("bad --reason '" + std::string(text) + "': '" + std::string(name) +
                         "' packets are not captured (their verdict comes before the settings are read); "
                         "capture takes within_limit, dry_run and the drops of rules and bans");
    reasons |= 1u << r;
  }
  return reasons;
}

uint32_t default_capture_reasons() {
  uint32_t reasons = 1u << XT_PASS_DRY_RUN;
  for (uint32_t r = XT_FIRST_DROP; r < XT_REASONS; r++)
    if (r != XT_DROP_MALFORMED) reasons |= 1u << r;
  return reasons;
}

namespace {

struct Context {
  CaptureReader::Callback* cb;
  uint64_t* lost;
};

void on_sample(void* ctx, int, void* data, uint32_t size) {
  auto* c = static_cast<Context*>(ctx);
  CaptureSample s;
  if (size < sizeof(s.meta)) return;
  std::memcpy(&s.meta, data, sizeof(s.meta));
  // The perf record is padded to 8 bytes: the frame's bytes are caplen.
  const size_t available = size - sizeof(s.meta);
  s.bytes = {static_cast<const uint8_t*>(data) + sizeof(s.meta), std::min<size_t>(s.meta.caplen, available)};
  (*c->cb)(s);
}

void on_lost(void* ctx, int, unsigned long long n) { *static_cast<Context*>(ctx)->lost += n; }

}  // namespace

Result<CaptureReader> CaptureReader::open(const State& state, Callback cb) {
  CaptureReader r;
  r.cb_ = std::make_unique<Callback>(std::move(cb));
  // The context outlives the buffer: both are the reader's.
  auto ctx = std::make_shared<Context>(Context{r.cb_.get(), r.lost_.get()});
  // 512 pages (2 MiB) a CPU: the default burst of 1000 samples of
  // full-size frames, all on one CPU.
  perf_buffer* pb = perf_buffer__new(state.capture_fd(), 512, on_sample, on_lost, ctx.get(), nullptr);
  if (!pb) return system_error("cannot read the capture's buffers", errno);
  r.pb_ = std::shared_ptr<perf_buffer>(pb, [ctx](perf_buffer* p) { perf_buffer__free(p); });
  return r;
}

Result<int> CaptureReader::poll(int timeout_ms) {
  const int n = perf_buffer__poll(pb_.get(), timeout_ms);
  if (n < 0 && n != -EINTR) return system_error("cannot read the capture's buffers", -n);
  return n < 0 ? 0 : n;
}

nlohmann::json capture_json(uint64_t number, const CaptureSample& s, double unix_seconds, const std::string& rule) {
  nlohmann::json j = {{"number", number},
                      {"time", unix_seconds},
                      {"reason", reason_info(s.meta.reason).key},
                      {"rule", rule},
                      {"redirected", s.meta.redirected == 1},
                      {"proved", s.meta.redirected == XT_CAPTURE_PROVED},
                      {"bytes", s.meta.len}};
  xt_pkt pkt{};
  const uint8_t* data = s.bytes.data();
  if (xt_parse(data, data + s.bytes.size(), s.meta.len, s.meta.link, &pkt) == XT_PARSE_IP) {
    j["source"] = format_addr(pkt.family, pkt.addr);
    xt_parse_l4(data, data + s.bytes.size(), &pkt);
    std::string what = format_proto(pkt.proto);
    if (pkt.l4 & XT_L4_PORT) what += "/" + std::to_string(pkt.dport);
    if (pkt.l4 & XT_L4_SYN) what += " syn";
    j["to"] = what;
  }
  return j;
}

std::string capture_line(const nlohmann::json& j) {
  const double t = j["time"].get<double>();
  const time_t secs = static_cast<time_t>(t);
  tm local{};
  localtime_r(&secs, &local);
  char clock[32];
  std::strftime(clock, sizeof(clock), "%H:%M:%S", &local);
  return fmt("%llu %s.%06d %s %s %s %s %llu bytes%s", (unsigned long long)j["number"].get<uint64_t>(), clock,
             static_cast<int>((t - std::floor(t)) * 1e6), j["reason"].get<std::string>().c_str(),
             j["rule"].get<std::string>().c_str(), j.value("source", "?").c_str(), j.value("to", "?").c_str(),
             (unsigned long long)j["bytes"].get<uint64_t>(),
             j["redirected"].get<bool>() ? " (redirected)"
             : j.value("proved", false)  ? " (answered with a proof: SYN-ACK)"
                                         : "");
}

}  // namespace xt
