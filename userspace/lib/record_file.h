// SPDX-License-Identifier: MIT
// The record `serve --record FILE` keeps for `xthrottle recommend --from`:
// what each source of the limit rules sent, second by second, for as long
// as serve runs (a dry-run period of hours or days), in at most a set size.
// Encoding and decoding (pure), and the files serve appends to
// (RecordWriter), unit-tested on the host; the format is below, and
// docs/design.md, "Recommend", says why it is so.
//
// A record is one or more segments (serve starts one each time it starts,
// and one in a new file when the file is half the size it may take). A
// segment is the line "xthrottle-record 1\n" and then entries, each a type
// byte, its length (a LEB128 varint) and that many bytes:
//   'N' a rule's name (the segment's rules are numbered 0, 1, ... in order)
//   'K' a source: varint rule, family (4 or 6), prefix length, the address
//       (4 or 16 bytes); numbered in order as the rules are
//   'S' a second: varint Unix time, then for each source that sent in it a
//       varint source and a varint packet count
// Every second serve observed has an 'S', an empty one if nobody sent, so
// the seconds serve was away are told apart from silence. A crash can cut
// the last entry short; the reader stops before it, and serve cuts it off
// before it appends.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.h"
#include "fd.h"
#include "recommend.h"

namespace xt {

inline constexpr std::string_view kRecordMagic = "xthrottle-record 1\n";
// The least --record-max: two files of at least a few seconds each.
inline constexpr uint64_t kRecordMinBytes = 16 * 1024;

struct RecordedSource {
  uint32_t rule = 0;  // index into the segment's rule names
  uint8_t family = 0, len = 0;
  std::array<uint8_t, 16> addr{};
  bool operator==(const RecordedSource&) const = default;
};

// Writes one segment, a second at a time; what it made is taken with take()
// and appended to the file.
class RecordEncoder {
 public:
  RecordEncoder();
  // One second: the packets each source sent in it (none: an empty second).
  // `rule` is the caller's, for the call. `hint`, if not 0, says where the
  // source was found (serve: its slot of the table, + 1): a source at the
  // same hint as last time is looked up there, not in a table of every
  // source named, which at a million sources a second was most of serve's
  // time. A source that moves is named again (a reader merges by address).
  struct Sent {
    std::string_view rule;
    uint8_t family = 0, len = 0;
    std::array<uint8_t, 16> addr{};
    uint32_t packets = 0;
    uint64_t hint = 0;
  };
  void second(int64_t unix_second, const std::vector<Sent>& sent);
  std::string take() { return std::move(out_); }
  static constexpr uint64_t kMaxHint = uint64_t{1} << 28;  // more slots than any table has
  // Sources this segment has named (its dictionary's size).
  size_t sources() const { return named_.size(); }

 private:
  static std::string key_of(const RecordedSource& n);  // its 'K' body
  uint32_t name(const RecordedSource& n, const std::string& key);

  std::string out_;
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, uint32_t, NameHash, std::equal_to<>> rules_;
  std::string_view last_rule_;  // the rule of the last entry (its key in rules_), and its number
  uint32_t last_rule_index_ = UINT32_MAX;
  std::vector<RecordedSource> named_;                  // by number
  std::unordered_map<std::string, uint32_t> sources_;  // those given without a hint, by their 'K' body
  std::vector<uint32_t> by_hint_;                      // hint - 1 -> number + 1 (0: none)
};

// One observed second as the reader gives it: sources by the segment's
// numbering, with the segment's rules and sources to look them up in.
struct RecordedSecond {
  int64_t unix_second = 0;
  uint64_t segment = 0;  // which segment of the bytes (0, 1, ...): whose numbering
  std::vector<std::pair<uint32_t, uint32_t>> sent;  // (source, packets)
  const std::vector<std::string>* rules = nullptr;
  const std::vector<RecordedSource>* sources = nullptr;
};

struct RecordRead {
  size_t whole = 0;     // bytes up to the end of the last whole entry
  bool cut = false;     // the bytes after it are an entry cut short
  uint64_t seconds = 0;
};

// Reads a record's bytes, calling fn for each second. A file that is not a
// record, or one damaged inside, is an error that says where (`what` names
// the file); an entry cut short at the end is not (see RecordRead).
Result<RecordRead> read_record(std::string_view bytes, const std::string& what,
                               const std::function<void(const RecordedSecond&)>& fn);

// What a record's bytes hold, into `seen` (recommend.h): the sources of
// the rule named `only` (all, if empty), folded as `seen` folds them. Each
// segment's source numbers are mapped to seen's in a vector, so that an
// entry costs a look there rather than a lookup by address (11 s and 470
// MB for a record of 25M entries of 1M sources before, 4.3 s and 387 MB
// after).
Result<RecordRead> observe_record(std::string_view bytes, const std::string& what, const std::string& only,
                                  ObservedBuilder& seen);

// A record file's bytes, whole (one copy: a record may be hundreds of MB).
Result<std::string> read_record_file(const std::string& path);

// The files serve --record appends to: FILE, and FILE.1 once FILE holds
// half of max_bytes (the one before it given up), so the two stay within
// max_bytes, give or take a second's entries.
class RecordWriter {
 public:
  using Log = std::function<void(const nlohmann::json&)>;
  // A record already at `path` is appended to (an entry a crash cut short
  // cut off first); a file that is not one, or a damaged one, is moved
  // aside as PATH.rejected-UNIXTIME (logged: record_rejected).
  static Result<RecordWriter> open(const std::string& path, uint64_t max_bytes, Log log);
  // Appends one observed second. A failure is logged once (record_failed)
  // until a write works again (record_resumed); what failed is lost.
  void second(int64_t unix_second, const std::vector<RecordEncoder::Sent>& sent);
  // Something before the write failed (logged as a write failure is).
  void failed(const std::string& error);

  // A segment names each source once; a botnet churning through new
  // addresses would grow that without end. Past this many, a new segment
  // names them afresh (in the same file): ~100 MB of names at most.
  static constexpr size_t kSegmentSources = size_t{1} << 20;

 private:
  RecordWriter(std::string path, uint64_t max_bytes, Log log)
      : path_(std::move(path)), max_bytes_(max_bytes), log_(std::move(log)) {}
  Result<void> open_file();
  Result<void> rotate();

  std::string path_;
  uint64_t max_bytes_ = 0;
  Log log_;
  Fd lock_;  // PATH.lock, flocked for the writer's life
  Fd file_;
  uint64_t size_ = 0;  // of the file being written
  std::optional<RecordEncoder> segment_;
  bool failing_ = false;
  bool broken_ = false;  // an entry cut short that could not be cut off, nor the file moved on from
};

}  // namespace xt
