// SPDX-License-Identifier: MIT
#include "recorder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "fd.h"
#include "keys.h"
#include "policy.h"
#include "record_file.h"
#include "state.h"
#include "worker.h"

namespace xt {

Result<void> SourceSampler::sample(const State& state, const std::function<void(const BucketEntry&, uint32_t)>& fn) {
  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  const size_t slots = (size_t{1} << cfg->bucket_bits) * XT_BUCKET_WAYS;
  if (seen_.size() != slots) {
    seen_.assign(slots, {});
    baseline_ = false;
  }
  auto pending = state.hot_pending();
  if (!pending) return std::unexpected(pending.error());
  const bool tell = baseline_;
  auto walked = state.for_each_bucket([&](const BucketEntry& e) {
    if (e.slot >= seen_.size()) return;
    auto count = static_cast<uint32_t>(e.bucket.passed_packets + e.bucket.dropped_packets);
    if (auto p = pending->find(e.key); p != pending->end()) count += static_cast<uint32_t>(p->second);
    const uint32_t hash = static_cast<uint32_t>(xt_hash_bucket(cfg->hash_key, &e.key)) | 1;
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
  return {};
}

struct Recorder::Impl {
  static constexpr size_t kSegmentSources = size_t{1} << 20;  // ~100 MB of names at most
  std::string pin_dir;
  Options options;
  Log log;
  Fd file;
  uint64_t size = 0;  // of the file being written
  std::optional<RecordEncoder> segment;
  bool failing = false;  // the last write failed (said once, until one works)

  std::mutex mu;
  std::condition_variable wake;
  bool stop = false;
  std::thread thread;

  static int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  Result<void> open_file() {
    file = Fd(::open(options.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
    if (file.get() < 0) return system_error("cannot write the record " + options.path, errno);
    struct stat st {};
    if (fstat(file.get(), &st) != 0) return system_error("cannot stat the record " + options.path, errno);
    size = static_cast<uint64_t>(st.st_size);
    segment.emplace();  // a new segment: serve started, or a new file
    return {};
  }

  void write_second(int64_t unix_second, const std::vector<RecordEncoder::Sent>& sent) {
    // A segment names each source once; a botnet churning through new
    // addresses would grow that without end. Past a million, a new
    // segment names them afresh (in the same file).
    if (segment->sources() >= kSegmentSources) segment.emplace();
    segment->second(unix_second, sent);
    const std::string bytes = segment->take();
    if (size + bytes.size() > options.max_bytes / 2 && size > kRecordMagic.size()) {
      // This file has had its half: it becomes the older one (the one
      // before it given up), and this second starts a new file.
      std::error_code ec;
      std::filesystem::rename(options.path, options.path + ".1", ec);
      if (auto ok = ec ? Result<void>(system_error("cannot rotate the record " + options.path, ec.value()))
                       : open_file();
          !ok) {
        report_failure(ok.error().message);
        return;
      }
      log({{"event", "record_rotated"}, {"path", options.path}, {"older", options.path + ".1"},
           {"unix_time", unix_now()}});
      write_second(unix_second, sent);
      return;
    }
    const ssize_t n = ::write(file.get(), bytes.data(), bytes.size());
    if (n != static_cast<ssize_t>(bytes.size())) {
      // A short write leaves an entry cut short: the next segment starts
      // after it, and the reader would take it for the end. Cut it off.
      const int err = n < 0 ? errno : ENOSPC;
      if (n > 0 && ftruncate(file.get(), static_cast<off_t>(size)) != 0) file = Fd();
      segment.emplace();  // what this one named is not in the file
      report_failure(std::string("cannot write the record ") + options.path + ": " + std::strerror(err));
      if (file.get() < 0) (void)open_file();
      return;
    }
    size += bytes.size();
    if (failing) log({{"event", "record_resumed"}, {"path", options.path}, {"unix_time", unix_now()}});
    failing = false;
  }

  void report_failure(const std::string& error) {
    if (!failing) log({{"event", "record_failed"}, {"path", options.path}, {"error", error}, {"unix_time", unix_now()}});
    failing = true;
  }

  void run() {
    auto state = State::open(pin_dir);
    if (!state) {
      report_failure(state.error().message);
      return;
    }
    SourceSampler sampler;
    std::map<uint32_t, std::string> names;
    std::vector<RecordEncoder::Sent> sent;
    const auto start = std::chrono::steady_clock::now();
    const int64_t start_unix = unix_now();
    for (int64_t k = 0;; k++) {
      {
        std::unique_lock<std::mutex> hold(mu);
        if (wake.wait_until(hold, start + std::chrono::seconds(k), [this] { return stop; })) return;
      }
      auto rules = state->rules();
      if (!rules) {
        report_failure(rules.error().message);
        continue;
      }
      names = limit_rule_names(*rules);
      sent.clear();
      auto ok = sampler.sample(*state, [&](const BucketEntry& e, uint32_t packets) {
        auto name = names.find(e.key.rule_id);
        if (name == names.end()) return;
        RecordEncoder::Sent s{name->second, e.key.family, e.key.per_len, {}, packets};
        std::memcpy(s.addr.data(), e.key.addr, 16);
        sent.push_back(std::move(s));
      });
      if (!ok) {
        report_failure(ok.error().message);
        continue;
      }
      // The first read only takes the counts: the seconds are the ones
      // after it, numbered by the steady clock (a clock set does not make
      // a second twice).
      if (k > 0) write_second(start_unix + k, sent);
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

Result<std::unique_ptr<Recorder>> Recorder::start(const std::string& pin_dir, Options options, Log log) {
  if (options.max_bytes < 2 * kRecordMagic.size() + 4096)
    return usage_error("bad --record-max: at least 16KB (two files of at least a few seconds)");
  auto impl = std::make_unique<Impl>();
  impl->pin_dir = pin_dir;
  impl->options = std::move(options);
  impl->log = std::move(log);
  const std::string& path = impl->options.path;
  // What is there already: a record to go on with, or a file that is not
  // one (moved aside, not written over).
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    if (!in) return system_error("cannot read the record " + path, errno);
    auto read = read_record(bytes.str(), path, [](const RecordedSecond&) {});
    if (!read) {
      const std::string aside = path + ".rejected-" + std::to_string(Impl::unix_now());
      std::filesystem::rename(path, aside, ec);
      if (ec) return system_error("cannot move aside " + path + " (" + read.error().message + ")", ec.value());
      impl->log({{"event", "record_rejected"}, {"path", path}, {"moved_to", aside},
                 {"error", read.error().message}, {"unix_time", Impl::unix_now()}});
    } else if (read->cut && truncate(path.c_str(), static_cast<off_t>(read->whole)) != 0) {
      return system_error("cannot cut off the last entry of " + path + ", cut short", errno);
    }
  }
  if (auto ok = impl->open_file(); !ok) return std::unexpected(ok.error());
  Impl* raw = impl.get();
  impl->thread = worker_thread([raw] { raw->run(); });
  return std::unique_ptr<Recorder>(new Recorder(std::move(impl)));
}

}  // namespace xt
