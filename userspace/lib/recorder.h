// SPDX-License-Identifier: MIT
// What each source of the limit rules sends, a second at a time, for
// `xthrottle recommend`: read from the counters the data path keeps anyway
// (a bucket's passed + dropped, and the hot cache's drops not yet added to
// it; under a dry-run rule that is what the source sent unlimited), so
// nothing more runs per packet. The CLI watches with it for a few minutes;
// `serve --record FILE` keeps it, in at most a set size, for as long as it
// runs (record_file.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.h"
#include "record_file.h"

namespace xt {

class State;
struct BucketEntry;
struct RuleEntry;

// The limit rules' names (as rule list gives them) by id; only the rule
// named `only`, if given.
std::map<uint32_t, std::string> limit_rule_names(const std::vector<RuleEntry>& rules, const std::string& only = "");

// Reads the bucket table and tells, for each tracked source, the packets it
// sent since the last read. 8 bytes a slot of the table, whatever a flood
// makes.
class SourceSampler {
 public:
  // fn(bucket, packets) for each source that sent since the last call;
  // true. The first call (and the first after a failed one, or reset())
  // only takes the counts: false.
  Result<bool> sample(const State& state, const std::function<void(const BucketEntry&, uint32_t)>& fn);
  void reset() { baseline_ = false; }

 private:
  struct Seen {
    uint32_t key = 0, count = 0;  // a hash of the slot's key; its count's low 32 bits
  };
  std::vector<Seen> seen_;
  bool baseline_ = false;
};

// serve --record: a thread that samples once a second and appends what it
// read to the record (RecordWriter: FILE, and FILE.1 once FILE is half of
// max_bytes).
class Recorder {
 public:
  struct Options {
    std::string path;
    uint64_t max_bytes = 256'000'000;  // the default of --record-max, 256MB
  };
  // Samples into a record opened before (RecordWriter::open: serve opens
  // it before it changes anything, so that a record it cannot write refuses
  // the start with the snapshot and the rules file left undone).
  static std::unique_ptr<Recorder> start(const std::string& pin_dir, RecordWriter writer);
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

 private:
  struct Impl;
  explicit Recorder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xt
