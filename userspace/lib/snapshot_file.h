// SPDX-License-Identifier: MIT
// A snapshot file (snapshot.h) as bytes: its layout, its records, and the
// checks that every byte of it passes before a restore changes anything.
// Pure (no kernel, no state): the fuzzer runs parse_snapshot.
//
// The format (docs/snapshot.md), little-endian:
//   "XTSNAP\n\0"                   8 bytes, the magic
//   version                        u32, kSnapshotVersion
//   header length H                u32
//   header                         H bytes of JSON (then spaces): the clock, rules, bans,
//                                  lists, counters, and how many records follow
//   bucket records                 SnapshotBucket each
//   known records                  SnapshotKnown each
//   blocklist entries              xt_block_entry each, the lists in header order
//   SHA-256 of all the bytes above 32 bytes
// A file that is not this (another magic or version, a wrong checksum, a
// header that does not describe the records) is refused before anything
// changes.
#pragma once

#include <xthrottle/abi.h>

#include <openssl/evp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "error.h"
#include "policy.h"
#include "rules.h"
#include "table.h"

namespace xt {

inline constexpr char kSnapshotMagic[8] = {'X', 'T', 'S', 'N', 'A', 'P', '\n', '\0'};
inline constexpr uint32_t kSnapshotVersion = 1;

// A tracked source's bucket. Each word is kept as the time until it is full
// again (0: full), which means the same whatever the tick rate the rule is
// compiled for.
struct SnapshotBucket {
  uint16_t rule;  // index in the header's rules
  uint8_t family;
  uint8_t per_len;
  uint32_t passed_packets;
  uint32_t dropped_packets;
  uint32_t throttled;  // 1: it was being dropped (throttled_ns says for how long)
  uint8_t addr[16];
  int64_t full_in_ns[XT_MAX_LIMITS];  // window i of its rule's options: ns after the save until full
  int64_t throttled_ns;
};
static_assert(sizeof(SnapshotBucket) == 64);

// A known source (admitted outside the new-source budget): its key as the
// known table keeps it (IPv4 address, or IPv6 /64), how, and when last seen.
struct SnapshotKnown {
  uint8_t family;
  uint8_t how;  // enum xt_known_how
  uint8_t pad[6];
  uint8_t key[8];
  int64_t seen_ns_ago;
};
static_assert(sizeof(SnapshotKnown) == 24);

inline constexpr size_t kSnapshotFixed = sizeof(kSnapshotMagic) + 2 * sizeof(uint32_t);  // magic, version, header length
inline constexpr size_t kSnapshotDigest = 32;

// The counters of xt_rule_stats a snapshot keeps, by name (proof_word is
// not a counter).
inline const std::pair<const char*, __u64 xt_rule_stats::*> kSnapshotRuleCounters[] = {
    {"passed_packets", &xt_rule_stats::passed_packets},
    {"passed_bytes", &xt_rule_stats::passed_bytes},
    {"dropped_packets", &xt_rule_stats::dropped_packets},
    {"dropped_bytes", &xt_rule_stats::dropped_bytes},
    {"dryrun_packets", &xt_rule_stats::dryrun_packets},
    {"dryrun_bytes", &xt_rule_stats::dryrun_bytes},
    {"new_source_dropped_packets", &xt_rule_stats::new_source_dropped_packets},
    {"redirected_packets", &xt_rule_stats::redirected_packets},
    {"redirected_bytes", &xt_rule_stats::redirected_bytes},
    {"marked_packets", &xt_rule_stats::marked_packets},
    {"marked_bytes", &xt_rule_stats::marked_bytes},
};

// Where a snapshot's bytes are read from: the n bytes at `at` into out.
using SnapshotReader = std::function<Result<void>(uint64_t at, size_t n, void* out)>;

// What a snapshot holds, checked: every rule's options parse, every record
// names a rule and a source of a family, the lists' names and prefixes are
// good.
struct SnapshotFile {
  uint64_t bytes = 0;  // the file's size
  int64_t saved_at_ns = 0;
  std::string state_id;  // state_identity of the state saved (empty in older files)
  // Whether it was saved from the state of this identity (an older file,
  // which does not say, was not).
  bool saved_from(const std::string& identity) const { return !state_id.empty() && state_id == identity; }
  TableSettings table;  // the saving state's source table (unset in older files)
  struct Rule {
    Cidr cidr;
    RuleSpec spec;
    xt_rule_stats stats{};
  };
  std::vector<Rule> rules;
  struct BanRec {
    Cidr cidr;
    int64_t left_ns = 0, since_ns_ago = 0;
    int rule = -1;
    bool fleet = false;  // told by the fleet (serve --cluster), not made here
    bool deleted_rule = false;  // made by a rule deleted since
  };
  std::vector<BanRec> bans;
  struct List {
    std::string name;
    std::vector<Cidr> entries;
    std::optional<uint64_t> loaded_unix;  // its version's time; files written before it was kept have none
    bool fleet = false;                   // told by the fleet, not loaded here
  };
  std::vector<List> lists;
  std::vector<xt_count> counters;  // by enum xt_reason, then enum xt_counter
  // The bucket records: bucket_count of them, in `buckets` (parse_snapshot
  // of bytes), or left in the file (read_snapshot: 4M sources are 256 MB of
  // them) and read with `records` when for_each_bucket_chunk is called.
  std::vector<SnapshotBucket> buckets;
  uint64_t bucket_count = 0;
  uint64_t buckets_at = 0;  // their offset in the file
  SnapshotReader records;
  std::vector<uint64_t> chunk_hashes;  // of those left in the file, a chunk of 4096 each, as checked
  // Where records are read from the file: whether it is still as it was
  // read (restore_snapshot asks before its first change).
  std::function<bool()> unchanged;
  std::vector<SnapshotKnown> known;
};

// SHA-256 over parts fed one after another (OpenSSL's EVP).
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void update(std::string_view part) { EVP_DigestUpdate(ctx_.get(), part.data(), part.size()); }
  std::string bytes() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), out, &len);
    return std::string(reinterpret_cast<const char*>(out), len);
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

// Checks a snapshot's bytes whole (magic, version, checksum, header, the
// records against the header) and reads them; a usage error "PATH: why;
// nothing was changed" otherwise.
Result<SnapshotFile> parse_snapshot(std::string_view bytes, const std::string& path);
// The same of the `size` bytes `read` reads, a piece at a time; the bucket
// records are checked, then left where they are (SnapshotFile::records is
// `read`) unless keep_buckets.
Result<SnapshotFile> parse_snapshot(uint64_t size, const SnapshotReader& read, const std::string& path,
                                    bool keep_buckets);
// Calls fn with the file's bucket records a chunk at a time, from memory or
// read again from the file; a chunk read again is checked against its hash
// and each of its records again (one that changed since it was parsed, or
// cannot be read, fails here: a system error, not a refusal).
Result<void> for_each_bucket_chunk(const SnapshotFile& file, const std::string& path,
                                   const std::function<Result<void>(std::span<const SnapshotBucket>)>& fn);
// A counter's key in a snapshot's "counters": the reasons' keys, then the
// other counters (enum xt_counter) by stats --json's names.
std::string_view snapshot_counter_key(uint32_t counter);

// "PATH: why; nothing was changed": how every refused snapshot is told.
std::unexpected<Error> snapshot_error(const std::string& path, const std::string& why);

}  // namespace xt
