// SPDX-License-Identifier: MIT
#include "recorder.h"


#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "policy.h"
#include "record_file.h"
#include "state.h"
#include "worker.h"

namespace xt {

Result<bool> SourceSampler::sample(const State& state, const std::function<void(const BucketEntry&, uint32_t)>& fn) {
  // A read that fails part-way has moved some slots' counts on: the next
  // one starts afresh, as the first does.
  bool tell = std::exchange(baseline_, false);
  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  const size_t slots = table_slots(*cfg);
  if (seen_.size() != slots) {
    seen_.assign(slots, {});
    tell = false;
  }
  auto pending = state.hot_pending();
  if (!pending) return std::unexpected(pending.error());
  auto walked = state.for_each_bucket([&](const BucketEntry& e) {
    if (e.slot >= seen_.size()) return;
    auto count = static_cast<uint32_t>(e.bucket.passed_packets + e.bucket.dropped_packets);
    count += static_cast<uint32_t>(pending->of(e.key));
    const uint32_t hash = slot_key_hash(*cfg, e.key);
    Seen& seen = seen_[e.slot];
    // A slot that changed hands holds a bucket made since: all its count is
    // new. A count that went back (modulo 2^32) counts as none: the hot
    // cache's pending drops, read before this walk, may have reached the
    // bucket by the time it was read, and were counted twice last time.
    uint32_t sent = seen.key == hash ? count - seen.count : count;
    if (sent >= (1u << 31)) sent = 0;
    seen = {hash, count};
    if (tell && sent) fn(e, sent);
  });
  if (!walked) return std::unexpected(walked.error());
  baseline_ = true;
  return tell;
}

struct Recorder::Impl {
  std::string pin_dir;
  std::optional<RecordWriter> writer;

  std::mutex mu;
  std::condition_variable wake;
  bool stop = false;
  std::thread thread;

  void run() {
    auto state = State::open(pin_dir);
    if (!state) {
      writer->failed(state.error().message);
      return;
    }
    SourceSampler sampler;
    std::map<uint32_t, std::string> names;
    std::vector<RecordEncoder::Sent> sent;
    const auto start = std::chrono::steady_clock::now();
    const int64_t start_unix =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    for (int64_t k = 0;; k++) {
      {
        std::unique_lock<std::mutex> hold(mu);
        if (wake.wait_until(hold, start + std::chrono::seconds(k), [this] { return stop; })) return;
      }
      // Behind (a walk of a huge table took over a second): on to now. The
      // read then holds what was sent since the last one, all of it
      // counted in this second.
      k = std::max<int64_t>(
          k, std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count());
      sent.clear();  // it views the last names
      auto rules = state->rules();
      if (!rules) {
        writer->failed(rules.error().message);
        sampler.reset();  // this second is not observed
        continue;
      }
      names = limit_rule_names(*rules);
      auto told = sampler.sample(*state, [&](const BucketEntry& e, uint32_t packets) {
        auto name = names.find(e.key.rule_id);
        if (name == names.end()) return;
        RecordEncoder::Sent s{name->second, e.key.family, e.key.per_len, {}, packets, e.slot + 1};
        std::memcpy(s.addr.data(), e.key.addr, 16);
        sent.push_back(s);
      });
      if (!told) {
        writer->failed(told.error().message);
        continue;
      }
      // A read that only took the counts (the first) observed no second.
      // The seconds are numbered by the steady clock from the start: a
      // clock set does not make a second twice.
      if (*told) writer->second(start_unix + k, sent);
    }
  }
};

std::map<uint32_t, std::string> limit_rule_names(const std::vector<RuleEntry>& rules, const std::string& only) {
  std::map<uint32_t, std::string> names;
  for (const auto& e : rules) {
    if (e.spec.action != XT_ACT_LIMIT) continue;
    std::string name = rule_name(e.cidr, e.spec.match);
    if (only.empty() || only == name) names[e.rule.id] = std::move(name);
  }
  return names;
}

Recorder::Recorder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Recorder::~Recorder() {
  {
    std::lock_guard<std::mutex> hold(impl_->mu);
    impl_->stop = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::unique_ptr<Recorder> Recorder::start(const std::string& pin_dir, RecordWriter writer) {
  auto impl = std::make_unique<Impl>();
  impl->pin_dir = pin_dir;
  impl->writer.emplace(std::move(writer));
  Impl* raw = impl.get();
  impl->thread = worker_thread([raw] { raw->run(); });
  return std::unique_ptr<Recorder>(new Recorder(std::move(impl)));
}

}  // namespace xt
