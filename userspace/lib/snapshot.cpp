// SPDX-License-Identifier: MIT
#include "snapshot.h"

#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <limits>
#include <map>
#include <charconv>
#include <memory>
#include <optional>
#include <span>

#include "fd.h"
#include "files.h"
#include "gcra.h"
#include "ports.h"
#include "reasons.h"
#include "rules_file.h"

namespace xt {
namespace {

using json = nlohmann::json;

constexpr int64_t kNs = 1'000'000'000;

int64_t ns_of_ticks(uint64_t ticks, uint32_t hz) {
  return static_cast<int64_t>(static_cast<__int128>(ticks) * kNs / hz);
}
// Rounded up: a wait is never shortened by the conversion.
uint64_t ticks_of_ns(int64_t ns, uint32_t hz) {
  return ns <= 0 ? 0 : static_cast<uint64_t>((static_cast<__int128>(ns) * hz + kNs - 1) / kNs);
}

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Limit p's word's time until full, in ns; 0 if full. A word the rule's
// previous version wrote (a quiet bucket since a replacement) is converted
// first, as the data path would on its next packet.
int64_t full_in_ns(const xt_rule& rule, int p, uint64_t word, uint64_t now, uint32_t hz) {
  const xt_limit& l = rule.limit[p];
  if (!l.fill || !l.cost) return 0;
  const uint64_t debt = xt_debt(&l, XT_REGEN(&rule, p, word, now), now);
  if (!debt) return 0;
  return static_cast<int64_t>((static_cast<__int128>(debt) * kNs + static_cast<__int128>(l.fill) * hz - 1) /
                              (static_cast<__int128>(l.fill) * hz));
}

// The word of limit l that is full `ns` after now (rounded up to ticks).
uint64_t word_full_in(const xt_limit& l, uint8_t gen, uint64_t now, int64_t ns, uint32_t hz) {
  if (!l.fill || ns <= 0) return xt_full_word(&l, now, gen);
  // Never more than the cap: a longer wait (a hostile file's) is an empty
  // bucket, and the product below stays far from overflowing.
  if (ticks_of_ns(ns, hz) > l.cap / l.fill + 1) return xt_word(xt_scaled(&l, now) + l.cap, gen);
  const __int128 debt = (static_cast<__int128>(ns) * hz * l.fill + kNs - 1) / kNs;
  const uint64_t capped = static_cast<uint64_t>(std::min<__int128>(debt, l.cap));
  return xt_word(xt_scaled(&l, now) + capped, gen);
}

// Removes what saves that died before their rename left beside path
// (path.tmp.PID, each as large as a snapshot, and never written again: the
// next save has another PID): those of a PID no process has now, written
// over an hour ago.
void remove_orphaned_temporaries(const std::string& path) {
  const std::filesystem::path p(path);
  const std::string prefix = p.filename().string() + ".tmp.";
  // And an hour old: a save in another PID namespace (a container sharing
  // the directory) has a PID this one does not see.
  const auto hour_ago = std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
  std::error_code ec;
  std::filesystem::directory_iterator it(p.parent_path().empty() ? "." : p.parent_path(), ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(prefix)) continue;
    pid_t owner = 0;
    const char* end = name.data() + name.size();
    if (auto [at, err] = std::from_chars(name.data() + prefix.size(), end, owner);
        err != std::errc() || at != end || owner <= 0)
      continue;
    std::error_code age_ec;
    const auto written = std::filesystem::last_write_time(it->path(), age_ec);
    if (!age_ec && written < hour_ago && owner != getpid() && ::kill(owner, 0) != 0 && errno == ESRCH)
      (void)unlink(it->path().c_str());
  }
}

// Writes all of bytes to fd at offset off.
Result<void> write_at(int fd, std::string_view bytes, uint64_t off, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return system_error("cannot write " + path, errno);
    bytes.remove_prefix(static_cast<size_t>(n));
    off += static_cast<uint64_t>(n);
  }
  return {};
}

// Reads exactly n bytes at offset off of fd into out; *ended set where the
// file ends first.
Result<void> read_at(int fd, void* out, size_t n, off_t off, const std::string& what, bool* ended = nullptr) {
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    const ssize_t got = ::pread(fd, p, n, off);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return system_error("cannot read " + what, errno);
    if (got == 0) {
      if (ended) *ended = true;
      return system_error("cannot read " + what + ": it ended early (cut short while read?)");
    }
    p += got;
    n -= static_cast<size_t>(got);
    off += got;
  }
  return {};
}

}  // namespace

Result<std::string> state_identity(const State& state) {
  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  return sha256_hex(std::string_view(reinterpret_cast<const char*>(cfg->hash_key), sizeof(cfg->hash_key))).substr(0, 32);
}

json SnapshotSummary::json() const {
  nlohmann::json j = {{"rules", rules}, {"buckets", buckets}, {"known", known},
                      {"bans", bans},   {"blocklists", blocklists}, {"bytes", bytes}};
  if (age_seconds > 0 || placed.restored || placed.merged || placed.refused) {
    j["age_seconds"] = age_seconds;
    j["buckets_restored"] = placed.restored;
    j["buckets_merged"] = placed.merged;
    j["buckets_refused"] = placed.refused;
  }
  if (resumed) j["resumed"] = true;
  for (const auto& [rule, iface] : redirects_waiting)
    j["redirects_waiting"].push_back({{"rule", rule}, {"interface", iface}});
  for (const auto& [name, why] : blocklists_skipped) j["blocklists_skipped"].push_back({{"name", name}, {"why", why}});
  return j;
}

std::string SnapshotSummary::text() const {
  std::string out = std::to_string(rules) + " rules, " + std::to_string(buckets) + " tracked sources, " +
                    std::to_string(known) + " known sources, " + std::to_string(bans) + " bans, " +
                    std::to_string(blocklists) + " blocklists (" + std::to_string(bytes) + " bytes)";
  if (placed.merged || placed.refused)
    out += "; " + std::to_string(placed.merged) + " sources merged with their live buckets, " +
           std::to_string(placed.refused) + " found no room";
  for (const auto& [rule, iface] : redirects_waiting)
    out += "; the rule for " + rule + " drops what it would send out " + iface +
           ", which is not there: `xthrottle rule add` it again once it is";
  for (const auto& [name, why] : blocklists_skipped)
    out += "; blocklist " + name + " left out (" + why + "): load what fits of it with `xthrottle blocklist load`";
  return out;
}

Result<SnapshotSummary> save_snapshot(const State& state, const std::string& path) {
  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  const uint32_t hz = cfg->hz;
  auto rules = state.rule_counters();
  if (!rules) return std::unexpected(rules.error());
  auto id = state_identity(state);
  if (!id) return std::unexpected(id.error());
  auto now = state.now();
  if (!now) return std::unexpected(now.error());
  const int64_t saved_at = wall_ns();
  // Ticks ago, as ns; a tick after *now (written while the tables were
  // read, or a CPU's clock a tick ahead) is now.
  const auto since_save = [&](uint64_t tick) { return tick >= *now ? 0 : ns_of_ticks(*now - tick, hz); };

  SnapshotSummary sum;
  json h = {{"format", "xthrottle snapshot"}, {"version", kSnapshotVersion}, {"saved_at_unix_ns", saved_at},
            {"hz", hz}, {"abi", XT_ABI_VERSION}, {"max_sources", cfg->max_sources},
            {"idle_seconds", idle_seconds_of(*cfg)}, {"state_id", *id}};
  std::map<uint32_t, size_t> index;  // rule id -> its place in the snapshot
  json jr = json::array();
  for (const auto& r : *rules) {
    json counters;
    for (const auto& [name, field] : kSnapshotRuleCounters) counters[name] = r.stats.*field;
    index[r.rule.id] = jr.size();
    jr.push_back({{"cidr", format_cidr(r.cidr)}, {"options", options_text(r.spec)}, {"counters", counters}});
  }
  h["rules"] = jr;
  sum.rules = rules->size();

  auto bans = state.bans();
  if (!bans) return std::unexpected(bans.error());
  json jb = json::array();
  for (const auto& b : *bans) {
    auto by = XT_BAN_BY_RULE(b.ban) ? index.find(b.ban.rule - 1) : index.end();
    jb.push_back({{"cidr", format_cidr(b.cidr)},
                  {"left_ns", ns_of_ticks(b.ban.until - *now, hz)},
                  {"since_ns_ago", since_save(b.ban.since)},
                  {"rule", by == index.end() ? json() : json(by->second)}});
    // The fleet's, restored as the fleet's: a serve after a reboot must not
    // tell them as this host's own (and bring back what was lifted since).
    if (b.ban.rule == XT_BAN_BY_FLEET) jb.back()["fleet"] = true;
    // A deleted rule's, marked or not (the mark is a best effort).
    if (b.ban.rule == XT_BAN_BY_DELETED_RULE || (XT_BAN_BY_RULE(b.ban) && by == index.end()))
      jb.back()["deleted_rule"] = true;
  }
  h["bans"] = jb;
  sum.bans = bans->size();

  auto counters = state.counters();
  if (!counters) return std::unexpected(counters.error());
  json jc;
  for (uint32_t r = 0; r < XT_COUNTERS && r < counters->size(); r++)
    jc[std::string(snapshot_counter_key(r))] = {(*counters)[r].packets, (*counters)[r].bytes};
  h["counters"] = jc;

  // The lists before the walks: the header goes before the records, and
  // is whole before the first of them is written (bounded by the lists'
  // table, read whole as before).
  std::vector<xt_block_entry> entry_records;
  auto lists = state.blocklists();
  if (!lists) return std::unexpected(lists.error());
  json jl = json::array();
  for (const auto& l : *lists) {
    auto entries = state.blocklist_cidrs(l.slot);
    if (!entries) return std::unexpected(entries.error());
    for (const Cidr& c : *entries) {
      xt_block_entry e{};
      e.family = c.family;
      e.len = c.len;
      std::memcpy(e.addr, c.addr.data(), sizeof(e.addr));
      entry_records.push_back(e);
    }
    jl.push_back({{"name", l.list.name}, {"entries", entries->size()}, {"loaded_unix", l.list.loaded_unix}});
    if (l.list.used == XT_BLOCKLIST_BY_FLEET) jl.back()["fleet"] = true;
  }
  h["blocklists"] = jl;
  sum.blocklists = lists->size();
  // Room for the header with the two counts the walks will tell, as wide
  // as a count can be: the records are written after it as the walks go,
  // and the header over that room at the end, padded with spaces (JSON
  // allows them). Held in memory, the records took a save of 4M sources
  // (serve's, every five minutes) to 280 MB.
  h["buckets"] = std::numeric_limits<uint64_t>::max();
  h["known"] = std::numeric_limits<uint64_t>::max();
  const size_t header_room = h.dump().size();
  const uint64_t records_at = kSnapshotFixed + header_room;

  // Atomically: the whole file beside the old one, on disk, then renamed.
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const Fd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return system_error("cannot create " + tmp, errno);
  struct Unlink {  // the temporary file, on every way out but its rename
    const std::string& path;
    bool renamed = false;
    ~Unlink() {
      if (!renamed) (void)unlink(path.c_str());
    }
  } tmp_guard{tmp};
  uint64_t end = records_at;  // where the next record goes
  std::optional<Error> write_failed;
  // Records of one kind, a chunk at a time, appended at `end`.
  const auto appender = [&](auto& chunk, uint64_t& count) {
    return [&chunk, &count, &fd, &end, &write_failed, &tmp] {
      if (!chunk.empty() && !write_failed) {
        const std::string_view bytes(reinterpret_cast<const char*>(chunk.data()), chunk.size() * sizeof(chunk[0]));
        if (auto ok = write_at(fd.get(), bytes, end, tmp); !ok) write_failed = ok.error();
        end += bytes.size();
        count += chunk.size();
      }
      chunk.clear();
    };
  };
  constexpr size_t kChunk = 4096;  // records: 256 KiB of buckets
  std::vector<SnapshotBucket> chunk;
  chunk.reserve(kChunk);
  uint64_t bucket_count = 0;
  const auto flush_chunk = appender(chunk, bucket_count);
  const std::map<uint32_t, const RuleCounters*> by_id = [&] {
    std::map<uint32_t, const RuleCounters*> m;
    for (const auto& r : *rules) m[r.rule.id] = &r;
    return m;
  }();
  // Each window is saved at its place in the rule's options (limits_of
  // order), which is what a restore recompiles them into, not at the word
  // the live rule keeps it in: a replacement may have moved it.
  std::map<uint32_t, std::vector<int>> positions;
  for (const auto& r : *rules) {
    std::vector<int> at = window_positions(RuleEntry{r.cidr, r.rule, r.spec}, hz);
    // A spec this build does not compile (a state an older one made):
    // the words as they are.
    if (std::ranges::all_of(at, [](int p) { return p < 0; }))
      for (size_t i = 0; i < at.size(); i++) at[i] = static_cast<int>(i);
    positions[r.rule.id] = std::move(at);
  }
  // The buckets are measured by the clock read again as the walk goes
  // (first before its first bucket, then every 4096): a large table's walk
  // takes seconds, and a word the data path wrote meanwhile is ahead of
  // *now by more than xt_debt's skew, which reads it as one that wrapped:
  // a held source saved as full, its wait given up at the restore. What is
  // saved is still the wait from *now (saved_at): that from the walk's
  // clock, and the ticks since *now, for a bucket not full by then (one
  // that is, is full at any restore).
  uint64_t walk_now = *now;
  uint64_t walked_since_clock = 0;
  state.step();  // tests: the data path, meanwhile
  auto walked = state.for_each_bucket([&](const BucketEntry& e) {
    if (walked_since_clock++ % 4096 == 0)
      if (auto t = state.now(); t && *t > *now) walk_now = *t;
    auto it = by_id.find(e.key.rule_id);
    if (it == by_id.end() || e.key.per_len != it->second->rule.per_len) return;  // a bucket no rule has now
    const xt_rule& rule = it->second->rule;
    const std::vector<int>& at = positions.at(e.key.rule_id);
    SnapshotBucket b{};
    b.rule = static_cast<uint16_t>(index.at(e.key.rule_id));
    b.family = e.key.family;
    b.per_len = e.key.per_len;
    std::memcpy(b.addr, e.key.addr, sizeof(b.addr));
    b.passed_packets = e.bucket.passed_packets;
    b.dropped_packets = e.bucket.dropped_packets;
    for (size_t i = 0; i < at.size() && i < XT_MAX_LIMITS; i++)
      if (at[i] >= 0)
        if (const int64_t full_in = full_in_ns(rule, at[i], e.bucket.word[at[i]], walk_now, hz))
          b.full_in_ns[i] = full_in + ns_of_ticks(walk_now - *now, hz);
    if (e.bucket.throttled_since) {
      // Low 32 bits of ticks, compared as the data path does; one set a
      // tick ahead (its low bit) or during the walk is now.
      const auto ago = static_cast<int32_t>(static_cast<uint32_t>(*now) - e.bucket.throttled_since);
      b.throttled = 1;
      b.throttled_ns = ago > 0 ? ns_of_ticks(static_cast<uint64_t>(ago), hz) : 0;
    }
    chunk.push_back(b);
    if (chunk.size() == kChunk) flush_chunk();
  });
  if (!walked) return std::unexpected(walked.error());
  flush_chunk();
  // The drops the hot cache holds for a source's bucket until the source
  // next reaches it (up to 255 a CPU), as `top` adds them: saved with the
  // bucket, or a restore had it show that many fewer than before. Read
  // after the walk: drops that reached their bucket during it are then in
  // the bucket or pending, never both (read before it, a hold that ended
  // meanwhile had its drops counted twice); those that reached it after
  // its record was taken are lost, as a save always lost what came later.
  // (Added to the records written already as the checksum reads them
  // back, below.)
  auto pending = state.hot_pending();
  if (!pending) return std::unexpected(pending.error());
  std::vector<SnapshotKnown> known_chunk;
  known_chunk.reserve(kChunk);
  uint64_t known_count = 0;
  const auto flush_known = appender(known_chunk, known_count);
  auto known = state.for_each_known([&](const xt_known& k) {
    // An IPv6 prefix longer than /64 is known by a keyed hash of this
    // state's own, which no other state can place (abi.h): not saved.
    if ((k.family != XT_FAMILY_V4 && k.family != XT_FAMILY_V6) || !k.how) return;
    SnapshotKnown r{};
    r.family = k.family;
    r.how = k.how;
    std::memcpy(r.key, &k.key, sizeof(r.key));
    const uint64_t seconds_now = *now / hz;
    r.seen_ns_ago = seconds_now > k.seen ? static_cast<int64_t>(seconds_now - k.seen) * kNs : 0;
    known_chunk.push_back(r);
    if (known_chunk.size() == kChunk) flush_known();
  });
  if (!known) return std::unexpected(known.error());
  flush_known();
  uint64_t entry_count = 0;
  appender(entry_records, entry_count)();
  if (write_failed) return std::unexpected(*write_failed);
  sum.buckets = bucket_count;
  sum.known = known_count;
  h["buckets"] = sum.buckets;
  h["known"] = sum.known;

  std::string head(kSnapshotMagic, sizeof(kSnapshotMagic));
  std::string header = h.dump();
  if (header.size() > header_room)  // never: the counts took their widest
    return system_error("the snapshot's header outgrew its room (" + std::to_string(header.size()) + " bytes)");
  header.resize(header_room, ' ');
  const uint32_t version = kSnapshotVersion, header_len = static_cast<uint32_t>(header.size());
  head.append(reinterpret_cast<const char*>(&version), sizeof(version));
  head.append(reinterpret_cast<const char*>(&header_len), sizeof(header_len));
  head += header;
  if (auto ok = write_at(fd.get(), head, 0, tmp); !ok) return std::unexpected(ok.error());

  // The checksum, over the file read back from the page cache a chunk at a
  // time, each held source's pending drops added to its record on the way.
  std::vector<uint32_t> ids(index.size());
  for (const auto& [id, at] : index) ids[at] = id;
  Sha256 digest;
  digest.update(head);
  for (uint64_t done = 0; done < bucket_count;) {
    chunk.resize(std::min<uint64_t>(kChunk, bucket_count - done));
    const uint64_t at = records_at + done * sizeof(SnapshotBucket);
    const std::string_view bytes(reinterpret_cast<const char*>(chunk.data()), chunk.size() * sizeof(chunk[0]));
    if (auto ok = read_at(fd.get(), chunk.data(), bytes.size(), static_cast<off_t>(at), tmp); !ok)
      return std::unexpected(ok.error());
    bool changed = false;
    for (SnapshotBucket& b : pending->empty() ? std::span<SnapshotBucket>() : std::span(chunk)) {
      xt_bucket_key key{};
      key.rule_id = ids[b.rule];
      key.family = b.family;
      key.per_len = b.per_len;
      std::memcpy(key.addr, b.addr, sizeof(key.addr));
      if (const uint64_t drops = pending->of(key)) {
        b.dropped_packets += drops;
        changed = true;
      }
    }
    if (changed)
      if (auto ok = write_at(fd.get(), bytes, at, tmp); !ok) return std::unexpected(ok.error());
    digest.update(bytes);
    done += chunk.size();
  }
  std::string piece(1 << 20, '\0');
  for (uint64_t at = records_at + bucket_count * sizeof(SnapshotBucket); at < end;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(piece.size(), end - at));
    if (auto ok = read_at(fd.get(), piece.data(), n, static_cast<off_t>(at), tmp); !ok)
      return std::unexpected(ok.error());
    digest.update(std::string_view(piece.data(), n));
    at += n;
  }
  const std::string sum_bytes = digest.bytes();
  if (auto ok = write_at(fd.get(), sum_bytes, end, tmp); !ok) return std::unexpected(ok.error());
  sum.bytes = end + sum_bytes.size();
  if (fsync(fd.get()) != 0) return system_error("cannot write " + tmp + " to disk", errno);
  if (rename(tmp.c_str(), path.c_str()) != 0) return system_error("cannot rename " + tmp + " to " + path, errno);
  tmp_guard.renamed = true;
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (const Fd d(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); d) (void)fsync(d.get());
  remove_orphaned_temporaries(path);
  return sum;
}

Result<SnapshotFile> read_snapshot(const std::string& path) {
  // Read a piece at a time, and the bucket records left in the file for the
  // restore to read a chunk at a time: read whole, 4M sources took a
  // restore to 540 MB (the file, then the records copied out of it).
  Fd opened(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st{};
  if (!opened || fstat(opened.get(), &st) != 0) return system_error("cannot read " + path, errno);
  const auto fd = std::make_shared<const Fd>(std::move(opened));
  if (!S_ISREG(st.st_mode)) {
    // A pipe or FIFO (a snapshot streamed in) has no size to read it by:
    // read whole, as every snapshot was.
    auto bytes = read_fd(fd->get());
    if (!bytes) return system_error("cannot read " + path, errno);
    auto snap = parse_snapshot(*bytes, path);
    if (snap) snap->bytes = bytes->size();
    return snap;
  }
  const SnapshotReader read = [fd, path](uint64_t at, size_t n, void* out) -> Result<void> {
    bool ended = false;
    auto ok = read_at(fd->get(), out, n, static_cast<off_t>(at), path, &ended);
    // Cut short while it was read: a file cut short, to the checks.
    if (ended) return snapshot_error(path, "corrupt: it ended early (cut short while it was read)");
    return ok;
  };
  auto snap = parse_snapshot(static_cast<uint64_t>(st.st_size), read, path, false);
  if (!snap) return snap;
  snap->bytes = static_cast<uint64_t>(st.st_size);
  // The file as it was read, for the restore to check before its first
  // change (its bucket records are read again as they go in).
  // (Its size and the time it was last written: not its ctime, which a new
  // file renamed over its name moves, the bytes read here the same.)
  snap->unchanged = [fd, st]() {
    struct stat now{};
    return fstat(fd->get(), &now) == 0 && now.st_size == st.st_size && now.st_mtim.tv_sec == st.st_mtim.tv_sec &&
           now.st_mtim.tv_nsec == st.st_mtim.tv_nsec;
  };
  return snap;
}

Result<bool> state_is_empty(const State& state) {
  auto rules = state.rules();
  if (!rules) return std::unexpected(rules.error());
  auto bans = state.bans();
  if (!bans) return std::unexpected(bans.error());
  auto lists = state.blocklists();
  if (!lists) return std::unexpected(lists.error());
  return rules->empty() && bans->empty() && lists->empty();
}

Result<std::vector<xt_rule>> check_snapshot_rules(const SnapshotFile& file, const std::string& path, uint32_t hz,
                                                  uint32_t cpus) {
  // The file's own port ranges must nest or stay apart, as a rules
  // file's must (a crafted or older file): refused here, before a state is
  // made for it, not by the check beside the live rules after.
  PortRangeTable ranges = empty_port_ranges();
  for (const auto& r : file.rules)
    if (auto ok = add_match_range(ranges, r.spec.match); !ok)
      return snapshot_error(path, "its rule " + rule_name(r.cidr, r.spec.match) +
                                      " does not fit beside its other rules' ports: " + ok.error().message);
  std::vector<xt_rule> compiled;
  for (const auto& r : file.rules) {
    auto rule = compile_rule(r.spec, hz, cpus);
    if (!rule) return snapshot_error(path, "rule " + rule_name(r.cidr, r.spec.match) + ": " + rule.error().message);
    compiled.push_back(*rule);
  }
  return compiled;
}

namespace {

// What `have` lacks of `want`, word by word (counters of 64-bit words):
// a resumed restore tops each counter up to the snapshot's, whether the
// restore it resumes added it or was cut short before.
template <typename T>
T short_of(const T& want, const T& have) {
  static_assert(sizeof(T) % sizeof(uint64_t) == 0, "counters of 64-bit words");
  constexpr size_t n = sizeof(T) / sizeof(uint64_t);
  uint64_t w[n], h[n], out[n];
  std::memcpy(w, &want, sizeof(T));
  std::memcpy(h, &have, sizeof(T));
  for (size_t i = 0; i < n; i++) out[i] = w[i] > h[i] ? w[i] - h[i] : 0;
  T t;
  std::memcpy(&t, out, sizeof(T));
  return t;
}

}  // namespace

Result<SnapshotSummary> restore_snapshot(State& state, const SnapshotFile& file, const std::string& path,
                                         uint32_t cpus, const std::optional<RestorePlan>& resume,
                                         const std::function<void(const RestorePlan&)>& before_change) {
  const SnapshotFile* snap = &file;
  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  const uint32_t hz = cfg->hz;
  // Every rule compiled for this state's clock before anything changes.
  auto checked = check_snapshot_rules(file, path, hz, cpus);
  if (!checked) return std::unexpected(checked.error());
  const std::vector<xt_rule>& compiled = *checked;

  SnapshotSummary sum;
  sum.bytes = snap->bytes;
  auto before = state.rules();
  if (!before) return std::unexpected(before.error());
  const bool fresh_state = before->empty();
  // Into the very state it was saved from (a hand restore to get back a
  // ban lifted by mistake, or rules an apply took out): its counters are
  // there already, and more since. Topped up, as a resumed restore's are;
  // added, they doubled every reason's count (a state without rules).
  auto id = state_identity(state);
  if (!id) return std::unexpected(id.error());
  const bool saved_from = file.saved_from(*id);
  // What the kernel would refuse midway, refused before the first change:
  // no room for the rules, lists or bans beside the live ones. (Not an
  // interface a rule sends its drops out that is not here: at boot, serve's
  // restore may come before it is made, and refusing the snapshot for it
  // lost every ban and quota with it. The rule drops those packets
  // meanwhile, and status says so.)
  // A snapshot's rule as live before the restore, if it is.
  auto live_before = [&](const auto& r) { return find_rule(*before, r.cidr, r.spec.match); };
  size_t new_rules = 0;
  for (const auto& r : snap->rules)
    if (!live_before(r)) new_rules++;
  if (before->size() + new_rules > XT_MAX_RULES)
    return snapshot_error(path, std::to_string(new_rules) + " rules to add beside " + std::to_string(before->size()) +
                                    " live ones: more than the " + std::to_string(XT_MAX_RULES) + " the program holds");
  auto live_lists = state.blocklists();
  if (!live_lists) return std::unexpected(live_lists.error());
  size_t lists = snap->lists.size();
  for (const auto& l : *live_lists)
    if (std::ranges::none_of(snap->lists, [&](const SnapshotFile::List& s) { return s.name == l.list.name; })) lists++;
  if (lists > XT_MAX_BLOCKLISTS)
    return snapshot_error(path, "its blocklists and the live ones make " + std::to_string(lists) + ", more than " +
                                    std::to_string(XT_MAX_BLOCKLISTS));
  // Bans in force only, on either side: the ended ones of the table go
  // before the restore's go in (put_bans), and the snapshot's ended since
  // it was saved are left out. Counted, a snapshot of 50,000 ten-minute
  // bans restored the next day beside 20,000 live ones was refused whole.
  auto live_bans = state.bans();
  if (!live_bans) return std::unexpected(live_bans.error());
  auto checked_at = state.now();
  if (!checked_at) return std::unexpected(checked_at.error());
  const int64_t age_then = std::max<int64_t>(0, wall_ns() - snap->saved_at_ns);  // the restore's is later
  size_t live_in_force = 0, new_bans = 0;  // a ban of a prefix that has one replaces it
  for (const auto& l : *live_bans) live_in_force += l.ban.until > *checked_at;
  for (const auto& b : snap->bans)
    if (b.left_ns > age_then &&
        std::ranges::none_of(*live_bans, [&](const State::Ban& l) { return l.cidr == b.cidr && l.ban.until > *checked_at; }))
      new_bans++;
  if (live_in_force + new_bans > XT_MAX_BANS)
    return snapshot_error(path, "its bans in force and the live ones are " + std::to_string(live_in_force + new_bans) +
                                    ", more than the " + std::to_string(XT_MAX_BANS) + " the ban table holds");
  // The new rules' port ranges beside the live ones (ports.h): one that
  // crosses a live range, or nests too deep, was refused by put_rule after
  // the rules before it were in.
  PortRangeTable ranges = empty_port_ranges();
  for (const RuleEntry& e : *before) (void)add_match_range(ranges, e.spec.match);
  for (const auto& r : snap->rules) {
    if (live_before(r)) continue;
    if (auto ok = add_match_range(ranges, r.spec.match); !ok)
      return snapshot_error(path, "its rule " + rule_name(r.cidr, r.spec.match) +
                                      " does not fit beside the live rules' ports: " + ok.error().message);
  }
  // A rule whose drops go out an interface that is not there goes in and
  // drops them meanwhile (a boot's restore comes before the interface), but
  // does not take the place of a live rule that sends its drops out one
  // that is: that redirect is not given up for drops. Refused before
  // anything changes.
  const auto sends_out = [](const RuleSpec& spec) { return spec.redirect && if_nametoindex(spec.redirect->c_str()); };
  for (const auto& r : snap->rules) {
    const RuleEntry* live = live_before(r);
    if (live && !same_rule(live->spec, r.spec) && r.spec.redirect && !sends_out(r.spec) && sends_out(live->spec))
      return system_error(path + ": its rule for " + rule_name(r.cidr, r.spec.match) + " would replace the live one " +
                          "and send its drops out " + *r.spec.redirect +
                          ", which this network namespace does not have; nothing was changed");
  }
  RestorePlan plan;
  if (resume) {
    plan = *resume;
  } else {
    plan.counters = fresh_state || saved_from;
    for (const auto& r : snap->rules)
      if (!live_before(r)) plan.rules.insert(rule_name(r.cidr, r.spec.match));
  }
  // The bucket records are read from the file again as they go in: one
  // changed since it was checked is refused here, before any change.
  if (snap->unchanged && !snap->unchanged())
    return snapshot_error(path, "changed since it was read (written over, or cut short)");
  if (before_change) before_change(plan);
  // The slots the new rules take, freed of what their last rules left in
  // one walk of the table, not one walk a rule.
  auto ready = state.ready_new_slots(
      static_cast<size_t>(std::ranges::count_if(snap->rules, [&](const auto& r) { return !live_before(r); })));
  if (!ready) return std::unexpected(ready.error());
  // The live rules it changes have their buckets brought up to date in one
  // walk for all of them before their swaps, not one walk each (as apply).
  std::vector<std::pair<RuleSpec, xt_rule>> changing;
  for (size_t i = 0; i < snap->rules.size(); i++)
    if (const RuleEntry* live = live_before(snap->rules[i]); live && !same_rule(live->spec, snap->rules[i].spec))
      changing.emplace_back(snap->rules[i].spec, compiled[i]);
  auto caught = state.catch_up_changes(changing);
  if (!caught) return std::unexpected(caught.error());
  std::vector<bool> added(snap->rules.size());
  for (size_t i = 0; i < snap->rules.size(); i++) {
    const auto& r = snap->rules[i];
    const RuleEntry* live = live_before(r);
    if (live && same_rule(live->spec, r.spec)) continue;
    auto put = state.put_rule(r.spec, compiled[i], true);
    if (!put) return std::unexpected(put.error());
    if (r.spec.redirect && !sends_out(r.spec))
      sum.redirects_waiting.emplace_back(rule_name(r.cidr, r.spec.match), *r.spec.redirect);
    added[i] = !*put;
    if (!added[i]) continue;
    // A new rule's counters at once: a scrape between its put and the
    // last rule's (seconds, for many rules over a large table) read it at
    // 0 and the next at the snapshot's count, which Prometheus takes for
    // that many packets in one interval.
    auto rule = state.rule_of(r.cidr, r.spec.match);
    if (!rule) return system_error("rule " + rule_name(r.cidr, r.spec.match) + " is not live after its restore");
    if (auto ok = state.add_rule_stats(rule->id, r.stats); !ok) return std::unexpected(ok.error());
  }
  auto after = state.rules();
  if (!after) return std::unexpected(after.error());
  std::vector<const RuleEntry*> live(snap->rules.size());
  for (size_t i = 0; i < snap->rules.size(); i++) {
    const auto& r = snap->rules[i];
    live[i] = find_rule(*after, r.cidr, r.spec.match);
    if (!live[i]) return system_error("rule " + rule_name(r.cidr, r.spec.match) + " is not live after its restore");
  }
  // A rule's own counters only in a resumed restore, and of the rules
  // its first run added: into the state saved, a rule deleted and added
  // again since counts from 0, and a live state's own rule counts its
  // own; topping either up to the snapshot's would bring the snapshot's
  // count in as a jump.
  if (resume) {
    auto counts = state.rule_counters();
    if (!counts) return std::unexpected(counts.error());
    for (size_t i = 0; i < snap->rules.size(); i++) {
      if (added[i] || !plan.rules.contains(rule_name(snap->rules[i].cidr, snap->rules[i].spec.match))) continue;
      for (const RuleCounters& c : *counts)
        if (c.rule.id == live[i]->rule.id)
          if (auto ok = state.add_rule_stats(c.rule.id, short_of(snap->rules[i].stats, c.stats)); !ok)
            return std::unexpected(ok.error());
    }
  }
  sum.rules = snap->rules.size();
  // Added whole to a state that had no rule (made since a reboot), once:
  // one into the state saved tops them up, and so does a resumed restore
  // whose first run added or topped them up, as it does a rule's, whether
  // the snapshot holds rules or not (one of bans and lists alone added
  // them again).
  if (!resume && fresh_state && !saved_from) {
    if (auto ok = state.add_counters(snap->counters); !ok) return std::unexpected(ok.error());
  } else if (resume ? plan.counters : saved_from) {
    auto have = state.counters();
    if (!have) return std::unexpected(have.error());
    std::vector<xt_count> add(snap->counters.size());
    for (size_t k = 0; k < add.size(); k++) add[k] = k < have->size() ? short_of(snap->counters[k], (*have)[k]) : snap->counters[k];
    if (auto ok = state.add_counters(add); !ok) return std::unexpected(ok.error());
  }

  auto now = state.now();
  if (!now) return std::unexpected(now.error());
  const int64_t age = std::max<int64_t>(0, wall_ns() - snap->saved_at_ns);  // a clock set back counts as none
  sum.age_seconds = static_cast<double>(age) / kNs;

  for (const auto& list : snap->lists) {
    // As old as it was (a fleet takes the newer of two versions by that
    // time: restored as loaded now, an old list passed for newer than one
    // loaded elsewhere since); a file from before that was kept, as of its
    // save at the latest.
    const auto saved_unix = static_cast<uint64_t>(std::max<int64_t>(0, snap->saved_at_ns) / kNs);
    const uint64_t as_of = std::min<uint64_t>(list.loaded_unix.value_or(saved_unix), std::time(nullptr));
    if (auto ok = state.load_blocklist(list.name, list.entries, as_of, list.fleet); !ok) {
      // A list the data path has no room for (a snapshot of a build that
      // took more, ABI 22's 4M host addresses): left out and said, as a
      // rule waiting for its interface is, rather than stopping here with
      // the rules in and the bans, buckets and known sources not. The load
      // checks before it changes anything; an error of the system still
      // stops the restore.
      if (ok.error().kind != ErrorKind::Usage) return std::unexpected(ok.error());
      sum.blocklists_skipped.emplace_back(list.name, ok.error().message);
      continue;
    }
    sum.blocklists++;
  }
  // A live ban of the same prefix that ends later stays as it is (a
  // restore by hand: an operator's longer ban is not cut to what the
  // snapshot had left, nor its owner changed). As read for the room check.
  std::map<Cidr, uint64_t> live_until;
  for (const auto& b : *live_bans) live_until[b.cidr] = b.ban.until;
  std::vector<std::pair<Cidr, xt_ban>> bans;
  for (const auto& b : snap->bans) {
    const int64_t left = b.left_ns - age;
    if (left <= 0) continue;
    const uint64_t until = *now + ticks_of_ns(left, hz);
    if (auto it = live_until.find(b.cidr); it != live_until.end() && it->second >= until) {
      sum.bans++;  // in force for as long as the snapshot has it, or longer
      continue;
    }
    const uint64_t ago = std::min<uint64_t>(ticks_of_ns(b.since_ns_ago + age, hz), *now);
    bans.emplace_back(b.cidr, xt_ban{until, *now - ago, 0,
                                     b.fleet          ? XT_BAN_BY_FLEET
                                     : b.deleted_rule ? XT_BAN_BY_DELETED_RULE
                                     : b.rule >= 0    ? live[b.rule]->rule.id + 1
                                                      : 0});
  }
  if (auto ok = state.put_bans(bans, true); !ok) return std::unexpected(ok.error());
  sum.bans += bans.size();

  std::vector<std::vector<int>> positions(live.size());  // as saved: see save_snapshot
  for (size_t i = 0; i < live.size(); i++) positions[i] = window_positions(*live[i], hz);
  // A chunk of records at a time (SnapshotFile: the file's are read from
  // it as they go in).
  std::vector<xt_slot> records;
  auto restored_buckets = for_each_bucket_chunk(*snap, path, [&](std::span<const SnapshotBucket> chunk) -> Result<void> {
    records.clear();
    for (const SnapshotBucket& b : chunk) {
      const xt_rule& rule = live[b.rule]->rule;
      const std::vector<int>& at = positions[b.rule];
      if (b.per_len != rule.per_len) continue;  // the rule's --per changed since: its buckets go
      xt_slot s{};
      s.key.rule_id = rule.id;
      s.key.family = b.family;
      s.key.per_len = b.per_len;
      std::memcpy(s.key.addr, b.addr, sizeof(s.key.addr));
      for (int p = 0; p < XT_MAX_LIMITS; p++) s.bucket.word[p] = word_full_in(rule.limit[p], rule.gen, *now, 0, hz);
      for (size_t i = 0; i < at.size() && i < XT_MAX_LIMITS; i++)
        if (at[i] >= 0)
          s.bucket.word[at[i]] = word_full_in(rule.limit[at[i]], rule.gen, *now, b.full_in_ns[i] - age, hz);
      s.bucket.passed_packets = b.passed_packets;
      s.bucket.dropped_packets = b.dropped_packets;
      if (b.throttled) {
        // Still throttled as of now (the drops go on from here): its next
        // packet that passes a second from now tells it released. For as
        // long as it had been at the save: the time since (the host down,
        // the source perhaps silent) is no throttle, and would bring a
        // --ban-after that much sooner. In the data path's 32 bits, and less
        // than 2^31 ticks ago so that its signed comparisons hold.
        const uint64_t ago = std::min<uint64_t>(ticks_of_ns(b.throttled_ns, hz), (1u << 30));
        s.bucket.throttled_since = (static_cast<uint32_t>(*now) - static_cast<uint32_t>(ago)) | 1;
        s.bucket.last_drop = static_cast<uint32_t>(*now);
      }
      records.push_back(s);
    }
    auto placed = state.restore_records(XT_RESTORE_BUCKETS, records);
    if (!placed) return std::unexpected(placed.error());
    sum.placed.restored += placed->restored;
    sum.placed.merged += placed->merged;
    sum.placed.refused += placed->refused;
    sum.placed.stale += placed->stale;
    sum.buckets += records.size();
    return {};
  });
  if (!restored_buckets) return std::unexpected(restored_buckets.error());

  records.clear();
  // A known source no rule would recall any more is not restored: it could
  // only take a way (a proof past XT_PROOF_SECONDS, a source that behaved
  // past the longest --remember of the rules, the snapshot's or the live).
  uint64_t remember = 0;
  for (const xt_rule& r : compiled) remember = std::max<uint64_t>(remember, r.remember);
  for (const RuleEntry& e : *before) remember = std::max<uint64_t>(remember, e.rule.remember);
  for (const SnapshotKnown& k : snap->known) {
    const uint64_t ago = ticks_of_ns(k.seen_ns_ago + age, hz);
    if (ago >= *now) continue;  // older than this boot's clock: long forgotten
    if (ago >= (k.how == XT_KNOWN_PROVEN ? XT_PROOF_SECONDS : remember) * hz) continue;
    xt_slot s{};
    s.key.family = k.family;
    s.key.per_len = k.how;
    std::memcpy(s.key.addr, k.key, sizeof(k.key));
    s.bucket.word[0] = *now - ago;
    records.push_back(s);
  }
  auto known = state.restore_records(XT_RESTORE_KNOWN, records);
  if (!known) return std::unexpected(known.error());
  sum.known = known->restored;
  return sum;
}

}  // namespace xt
