// SPDX-License-Identifier: MIT
#include "record_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xthrottle/abi.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>

#include "files.h"

namespace xt {
namespace {

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(0x80 | (v & 0x7f)));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_entry(std::string& out, char type, const std::string& body) {
  out.push_back(type);
  put_varint(out, body.size());
  out += body;
}

size_t addr_bytes(uint8_t family) { return family == XT_FAMILY_V4 ? 4 : 16; }

// A cursor over bytes that says when it runs out.
struct Reader {
  std::string_view in;
  size_t at = 0;
  bool done() const { return at >= in.size(); }
  std::optional<uint64_t> varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && at < in.size(); shift += 7) {
      const auto byte = static_cast<uint8_t>(in[at++]);
      v |= uint64_t{byte & 0x7fu} << shift;
      if (!(byte & 0x80)) return v;
    }
    return std::nullopt;
  }
  std::optional<uint8_t> byte() {
    if (at >= in.size()) return std::nullopt;
    return static_cast<uint8_t>(in[at++]);
  }
};

}  // namespace

RecordEncoder::RecordEncoder() : out_(kRecordMagic) {}

std::string RecordEncoder::key_of(const RecordedSource& n) {
  std::string key;
  put_varint(key, n.rule);
  key.push_back(static_cast<char>(n.family));
  key.push_back(static_cast<char>(n.len));
  key.append(reinterpret_cast<const char*>(n.addr.data()), addr_bytes(n.family));
  return key;
}

uint32_t RecordEncoder::name(const RecordedSource& n, const std::string& key) {
  put_entry(out_, 'K', key);
  named_.push_back(n);
  return static_cast<uint32_t>(named_.size() - 1);
}

void RecordEncoder::second(int64_t unix_second, const std::vector<Sent>& sent) {
  std::string body;
  put_varint(body, static_cast<uint64_t>(unix_second));
  for (const Sent& s : sent) {
    if (last_rule_index_ == UINT32_MAX || s.rule != last_rule_) {
      auto rule = rules_.find(s.rule);
      if (rule == rules_.end()) {
        rule = rules_.emplace(std::string(s.rule), static_cast<uint32_t>(rules_.size())).first;
        put_entry(out_, 'N', rule->first);
      }
      last_rule_ = rule->first;
      last_rule_index_ = rule->second;
    }
    RecordedSource n{last_rule_index_, s.family, s.len, {}};
    std::memcpy(n.addr.data(), s.addr.data(), addr_bytes(s.family));
    uint32_t number = 0;
    // A hint past any table's slots is no help (and would size the vector).
    if (s.hint && s.hint <= kMaxHint) {
      if (s.hint > by_hint_.size()) by_hint_.resize(s.hint, 0);
      uint32_t& at = by_hint_[s.hint - 1];
      if (!at || !(named_[at - 1] == n)) at = name(n, key_of(n)) + 1;
      number = at - 1;
    } else {
      auto [at, added] = sources_.try_emplace(key_of(n), 0);
      if (added) at->second = name(n, at->first);
      number = at->second;
    }
    put_varint(body, number);
    put_varint(body, s.packets);
  }
  put_entry(out_, 'S', body);
}

Result<RecordRead> read_record(std::string_view bytes, const std::string& what,
                               const std::function<void(const RecordedSecond&)>& fn) {
  RecordRead read;
  // Empty, or its first line cut short: serve had made the file and
  // stopped before its first second.
  if (bytes.size() < kRecordMagic.size() && kRecordMagic.starts_with(bytes)) {
    read.cut = !bytes.empty();
    return read;
  }
  if (!bytes.starts_with(kRecordMagic))
    return usage_error(what + ": not an xthrottle record (serve --record writes one)");
  std::vector<std::string> rules;
  std::vector<RecordedSource> sources;
  RecordedSecond second;
  second.rules = &rules;
  second.sources = &sources;
  Reader file{bytes};
  auto damaged = [&](size_t at, const std::string& why) {
    return usage_error(what + ": damaged at byte " + std::to_string(at) + ": " + why);
  };
  while (!file.done()) {
    const size_t start = file.at;
    // A new segment: its own rules and sources.
    if (bytes.substr(start).starts_with(kRecordMagic)) {
      if (file.at > 0) second.segment++;
      rules.clear();
      sources.clear();
      file.at += kRecordMagic.size();
      read.whole = file.at;
      continue;
    }
    const uint8_t type = *file.byte();
    auto len = file.varint();
    if (!len && !file.done()) return damaged(start, "a length of more than 64 bits");
    if (!len || *len > file.in.size() - file.at) {
      // Cut short. Only the last entry can be: anything after it would be
      // read as its body.
      read.cut = true;
      return read;
    }
    Reader body{file.in.substr(file.at, *len)};
    file.at += *len;
    switch (type) {
      case 'N':
        rules.emplace_back(body.in);
        break;
      case 'K': {
        RecordedSource s;
        auto rule = body.varint();
        auto family = body.byte();
        auto plen = body.byte();
        if (!rule || !family || !plen || *rule >= rules.size() ||
            (*family != XT_FAMILY_V4 && *family != XT_FAMILY_V6) || *plen > addr_bytes(*family) * 8 ||
            body.in.size() - body.at != addr_bytes(*family))
          return damaged(start, "a source entry that names no rule or no address");
        s.rule = static_cast<uint32_t>(*rule);
        s.family = *family;
        s.len = *plen;
        for (size_t i = 0; i < addr_bytes(s.family); i++) s.addr[i] = static_cast<uint8_t>(body.in[body.at + i]);
        sources.push_back(s);
        break;
      }
      case 'S': {
        auto t = body.varint();
        if (!t || *t > UINT32_MAX) return damaged(start, "a second with no time");
        second.unix_second = static_cast<int64_t>(*t);
        second.sent.clear();
        while (!body.done()) {
          auto src = body.varint();
          auto packets = body.varint();
          if (!src || !packets || *src >= sources.size() || *packets > UINT32_MAX)
            return damaged(start, "a count of a source the segment has not named");
          second.sent.emplace_back(static_cast<uint32_t>(*src), static_cast<uint32_t>(*packets));
        }
        read.seconds++;
        fn(second);
        break;
      }
      default:
        return damaged(start, "an entry of an unknown kind (written by a newer xthrottle?)");
    }
    read.whole = file.at;
  }
  return read;
}

namespace {
int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Result<std::string> read_record_file(const std::string& path) {
  auto bytes = read_file(path);
  if (!bytes) return system_error("cannot read the record " + path, errno);
  return std::move(*bytes);
}

Result<RecordRead> observe_record(std::string_view bytes, const std::string& what, const std::string& only,
                                  ObservedBuilder& seen) {
  std::vector<uint32_t> mapped;  // the segment's number -> seen's + 1 (0: not yet; UINT32_MAX: not asked for)
  uint64_t segment = UINT64_MAX;
  return read_record(bytes, what, [&](const RecordedSecond& s) {
    if (s.segment != segment) mapped.clear();
    segment = s.segment;
    seen.second(static_cast<uint32_t>(s.unix_second));
    if (!seen.taking()) return;  // a second not after the last one
    for (auto [src, packets] : s.sent) {
      if (!packets) continue;
      if (src >= mapped.size()) mapped.resize(s.sources->size(), 0);
      uint32_t& to = mapped[src];
      if (!to) {
        const RecordedSource& r = (*s.sources)[src];
        const std::string& name = (*s.rules)[r.rule];
        if (!only.empty() && name != only) {
          to = UINT32_MAX;
        } else {
          SourceKey key{seen.group(name), r.family, r.len, r.addr};
          to = seen.source(key) + 1;
        }
      }
      if (to != UINT32_MAX) seen.add(to - 1, packets);
    }
  });
}

Result<RecordWriter> RecordWriter::open(const std::string& path, uint64_t max_bytes, Log log) {
  if (max_bytes < kRecordMinBytes)
    return usage_error("bad --record-max: at least 16KiB (two files of at least a few seconds)");
  // One writer a record: two serves on one --record would interleave their
  // seconds, and each read, cut and move aside what the other writes. The
  // lock is a file beside it (the record itself is renamed on rotation).
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return system_error("cannot write the record " + path + ": a directory", EISDIR);
  Fd lock(::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!lock) return system_error("cannot open the record's lock " + path + ".lock", errno);
  if (flock(lock.get(), LOCK_EX | LOCK_NB) != 0)
    return errno == EWOULDBLOCK ? system_error("another serve records to " + path + " (it holds " + path + ".lock)")
                                : system_error("cannot lock " + path + ".lock", errno);
  // What is there already: a record to go on with, or a file that is not
  // one (moved aside, not written over).
  if (std::filesystem::exists(path, ec)) {
    auto bytes = read_record_file(path);
    if (!bytes) return std::unexpected(bytes.error());
    auto read = read_record(*bytes, path, [](const RecordedSecond&) {});
    if (!read) {
      const std::string aside = path + ".rejected-" + std::to_string(unix_now());
      std::filesystem::rename(path, aside, ec);
      if (ec) return system_error("cannot move aside " + path + " (" + read.error().message + ")", ec.value());
      log({{"event", "record_rejected"}, {"path", path}, {"moved_to", aside}, {"error", read.error().message},
           {"unix_time", unix_now()}});
    } else if (read->cut) {
      if (truncate(path.c_str(), static_cast<off_t>(read->whole)) != 0)
        return system_error("cannot cut off the last entry of " + path + ", cut short", errno);
      // Said: a length damaged early in the file reads as a cut there too,
      // and everything after it goes.
      log({{"event", "record_cut"}, {"path", path}, {"kept_bytes", read->whole},
           {"dropped_bytes", bytes->size() - read->whole}, {"unix_time", unix_now()}});
    }
  }
  RecordWriter w(path, max_bytes, std::move(log));
  w.lock_ = std::move(lock);
  if (auto ok = w.open_file(); !ok) return std::unexpected(ok.error());
  return w;
}

Result<void> RecordWriter::open_file() {
  file_ = Fd(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  if (file_.get() < 0) return system_error("cannot write the record " + path_, errno);
  struct stat st {};
  if (fstat(file_.get(), &st) != 0) return system_error("cannot stat the record " + path_, errno);
  size_ = static_cast<uint64_t>(st.st_size);
  segment_.emplace();  // a new segment: serve started, or a new file
  return {};
}

// This file has had its half: it becomes the older one (the one before it
// given up), and a new file starts. Closed first: if the rename fails, the
// same file is opened again for the next second, which tries again.
Result<void> RecordWriter::rotate() {
  file_ = Fd();
  std::error_code ec;
  std::filesystem::rename(path_, path_ + ".1", ec);
  if (ec) return system_error("cannot rotate the record " + path_, ec.value());
  log_({{"event", "record_rotated"}, {"path", path_}, {"older", path_ + ".1"}, {"unix_time", unix_now()}});
  return open_file();
}

void RecordWriter::second(int64_t unix_second, const std::vector<RecordEncoder::Sent>& sent) {
  if (broken_) return;
  if (file_.get() < 0)
    if (auto ok = open_file(); !ok) return failed(ok.error().message);
  if (segment_->sources() >= kSegmentSources) segment_.emplace();
  segment_->second(unix_second, sent);
  std::string bytes = segment_->take();
  if (size_ > 0 && size_ + bytes.size() > max_bytes_ / 2) {
    if (auto ok = rotate(); !ok) return failed(ok.error().message);
    segment_->second(unix_second, sent);  // named afresh in the new file
    bytes = segment_->take();
  }
  const ssize_t n = ::write(file_.get(), bytes.data(), bytes.size());
  if (n != static_cast<ssize_t>(bytes.size())) {
    // What this segment named is not all in the file: the next second
    // starts a new one. A short write leaves an entry cut short, which the
    // next segment must not follow (its length would run into it): cut
    // off, or, if that fails, left at the end of the older file, where a
    // reader takes it for the cut it is.
    const int err = n < 0 ? errno : ENOSPC;
    segment_.emplace();
    failed(std::string("cannot write the record ") + path_ + ": " + std::strerror(err));
    if (n > 0 && ftruncate(file_.get(), static_cast<off_t>(size_)) != 0 && !rotate()) {
      // Appended to, the torn entry would swallow what follows it: no more
      // until serve starts again (and cuts it off).
      broken_ = true;
      log_({{"event", "record_failed"}, {"path", path_}, {"unix_time", unix_now()},
            {"error", "an entry cut short could not be cut off, nor the file moved to " + path_ +
                          ".1: recording stops until serve restarts"}});
    }
    return;
  }
  size_ += bytes.size();
  if (failing_) log_({{"event", "record_resumed"}, {"path", path_}, {"unix_time", unix_now()}});
  failing_ = false;
}

void RecordWriter::failed(const std::string& error) {
  if (!failing_) log_({{"event", "record_failed"}, {"path", path_}, {"error", error}, {"unix_time", unix_now()}});
  failing_ = true;
}

}  // namespace xt
