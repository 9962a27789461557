// SPDX-License-Identifier: MIT
#include "snapshot_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "blocklist_file.h"
#include "reasons.h"

namespace xt {

using json = nlohmann::json;

std::unexpected<Error> snapshot_error(const std::string& path, const std::string& why) {
  return usage_error(path + ": " + why + "; nothing was changed");
}

namespace {

// A header field out of its type or range (caught with json's exceptions).
struct BadField {
  std::string why;
};

// Nanoseconds: an integer in [0, 2^62) (146 years), so that sums of two
// never overflow.
constexpr int64_t kMaxNs = int64_t{1} << 62;

int64_t integer(const json& v, const std::string& what, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) throw BadField{what + " is not an integer"};
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi) || static_cast<int64_t>(u) < lo) throw BadField{what + " is out of range"};
    return static_cast<int64_t>(u);
  }
  const auto x = v.get<int64_t>();
  if (x < lo || x > hi) throw BadField{what + " is out of range"};
  return x;
}

uint64_t count(const json& v, const std::string& what) {
  if (!v.is_number_unsigned()) throw BadField{what + " is not a count"};
  return v.get<uint64_t>();
}

template <class T>
T read_le(std::string_view bytes, size_t at) {
  T v;
  std::memcpy(&v, bytes.data() + at, sizeof(v));
  return v;
}

// Nanoseconds a record may hold.
bool good_ns(int64_t ns) { return ns >= 0 && ns < kMaxNs; }

// A bucket's source is its rule's family and its --per prefix (no bits past
// it): the data path could never find one that is not.
bool bucket_record_ok(const SnapshotFile& f, const SnapshotBucket& b) {
  return b.rule < f.rules.size() && b.family == f.rules[b.rule].cidr.family && is_prefix(b.family, b.addr, b.per_len) &&
         std::ranges::all_of(b.full_in_ns, good_ns) && good_ns(b.throttled_ns);
}

// A chunk of records, hashed: what it was when checked, for when it is read
// again (not against an attacker, who could write a whole good file).
uint64_t chunk_hash(std::span<const SnapshotBucket> chunk) {
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(chunk.data()), chunk.size() * sizeof(SnapshotBucket)));
}

// Bucket records a chunk (256 KiB), as they are checked, hashed and read
// again.
constexpr uint64_t kBucketChunk = 4096;

// Calls fn with f's bucket records a chunk at a time: from f.buckets where
// they are kept, else read with `read` from where they are in the file.
Result<void> each_bucket_chunk(const SnapshotFile& f, const SnapshotReader& read,
                               const std::function<Result<void>(std::span<const SnapshotBucket>)>& fn) {
  const bool kept = f.buckets.size() == f.bucket_count;
  std::vector<SnapshotBucket> chunk;
  for (uint64_t done = 0; done < f.bucket_count;) {
    const uint64_t n = std::min(kBucketChunk, f.bucket_count - done);
    std::span<const SnapshotBucket> part;
    if (kept) {
      part = std::span(f.buckets).subspan(done, n);
    } else {
      chunk.resize(n);
      if (auto ok = read(f.buckets_at + done * sizeof(SnapshotBucket), n * sizeof(SnapshotBucket), chunk.data()); !ok)
        return std::unexpected(ok.error());
      part = chunk;
    }
    if (auto ok = fn(part); !ok) return std::unexpected(ok.error());
    done += n;
  }
  return {};
}

}  // namespace

Result<void> for_each_bucket_chunk(const SnapshotFile& file, const std::string& path,
                                   const std::function<Result<void>(std::span<const SnapshotBucket>)>& fn) {
  const bool kept = file.buckets.size() == file.bucket_count;
  if (!kept && (!file.records || file.chunk_hashes.size() != (file.bucket_count + kBucketChunk - 1) / kBucketChunk))
    return system_error(path + ": its bucket records were neither kept nor left readable");
  // Read again, each chunk as it was checked, or the restore stops there
  // (not a refusal: what came before the records is in by then).
  const std::string partly = "; the rules, lists, bans and the records before it are in";
  const SnapshotReader again = [&](uint64_t at, size_t n, void* out) -> Result<void> {
    if (auto ok = file.records(at, n, out); !ok)
      return system_error(path + ": its bucket records could not be read again (cut short while restored?)" + partly);
    return {};
  };
  size_t k = 0;
  return each_bucket_chunk(file, again, [&](std::span<const SnapshotBucket> chunk) -> Result<void> {
    const bool same = kept || chunk_hash(chunk) == file.chunk_hashes[k++];
    if (!same || !std::ranges::all_of(chunk, [&](const SnapshotBucket& b) { return bucket_record_ok(file, b); }))
      return system_error(path + ": its bucket records changed since the file was checked (written to while restored?)" +
                          partly);
    return fn(chunk);
  });
}

std::string_view snapshot_counter_key(uint32_t counter) {
  // The counters past the reasons, by name, most as stats --json names
  // them (older snapshots have none of them: each is then 0).
  static constexpr std::string_view kMore[] = {
      "events_sent",        "events_suppressed",  "sources_admitted",   "events_lost",
      "sources_evicted",    "proofs_sent",        "proofs_passed",      "admitted_by_proof",
      "admitted_by_memory", "known_recorded",     "redirected",         "captured",
      "capture_not_taken",  "marked",             "dropped_without_rule", "sources_evicted_active"};
  static_assert(std::size(kMore) == uint32_t{XT_COUNTERS} - uint32_t{XT_REASONS}, "a name for every counter");
  return counter < XT_REASONS ? std::string_view(reason_info(counter).key) : kMore[counter - XT_REASONS];
}

Result<SnapshotFile> parse_snapshot(std::string_view bytes, const std::string& path) {
  const SnapshotReader read = [bytes](uint64_t at, size_t n, void* out) -> Result<void> {
    if (n) std::memcpy(out, bytes.data() + at, n);  // every read is within the bytes: checked before it is made
    return {};
  };
  return parse_snapshot(bytes.size(), read, path, true);
}

Result<SnapshotFile> parse_snapshot(uint64_t size, const SnapshotReader& read, const std::string& path,
                                    bool keep_buckets) {
  char fixed_bytes[kSnapshotFixed];
  if (size < kSnapshotFixed + kSnapshotDigest) return snapshot_error(path, "not an xthrottle snapshot");
  if (auto ok = read(0, sizeof(fixed_bytes), fixed_bytes); !ok) return std::unexpected(ok.error());
  const std::string_view fixed(fixed_bytes, sizeof(fixed_bytes));
  if (std::memcmp(fixed.data(), kSnapshotMagic, sizeof(kSnapshotMagic)) != 0)
    return snapshot_error(path, "not an xthrottle snapshot");
  const auto version = read_le<uint32_t>(fixed, 8);
  if (version != kSnapshotVersion)
    return snapshot_error(path, "a snapshot of format version " + std::to_string(version) + "; this build reads version " +
                         std::to_string(kSnapshotVersion));
  // The checksum over all before it, a MiB at a time.
  {
    Sha256 digest;
    std::string piece(std::min<uint64_t>(size, 1 << 20), '\0');
    for (uint64_t at = 0; at < size - kSnapshotDigest;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(piece.size(), size - kSnapshotDigest - at));
      if (auto ok = read(at, n, piece.data()); !ok) return std::unexpected(ok.error());
      digest.update(std::string_view(piece.data(), n));
      at += n;
    }
    std::string stored(kSnapshotDigest, '\0');
    if (auto ok = read(size - kSnapshotDigest, kSnapshotDigest, stored.data()); !ok) return std::unexpected(ok.error());
    if (digest.bytes() != stored)
      return snapshot_error(path, "corrupt: its checksum does not match its contents (cut short or changed)");
  }
  const auto header_len = read_le<uint32_t>(fixed, 12);
  if (header_len > size - kSnapshotFixed - kSnapshotDigest) return snapshot_error(path, "corrupt: its header runs past its end");
  std::string header(header_len, '\0');
  if (auto ok = read(kSnapshotFixed, header_len, header.data()); !ok) return std::unexpected(ok.error());
  json h;
  try {
    h = json::parse(header);
  } catch (const json::exception& e) {
    return snapshot_error(path, std::string("corrupt header: ") + e.what());
  }
  SnapshotFile out;
  try {
    if (h.at("format") != "xthrottle snapshot") return snapshot_error(path, "not an xthrottle snapshot");
    out.saved_at_ns = integer(h.at("saved_at_unix_ns"), "saved_at_unix_ns", 0, kMaxNs - 1);
    if (h.contains("state_id")) out.state_id = h.at("state_id").get<std::string>();
    // Written since the idle window became a setting; a file without them
    // leaves a state it makes with the defaults.
    if (h.contains("max_sources"))
      out.table.max_sources = static_cast<uint32_t>(
          integer(h.at("max_sources"), "max_sources", XT_MIN_MAX_SOURCES, XT_MAX_MAX_SOURCES));
    if (h.contains("idle_seconds"))
      out.table.idle_seconds = static_cast<uint32_t>(integer(h.at("idle_seconds"), "idle_seconds", 1, kMaxIdleSeconds));
    for (const json& r : h.at("rules")) {
      SnapshotFile::Rule rule;
      auto cidr = parse_cidr(r.at("cidr").get<std::string>());
      if (!cidr) return snapshot_error(path, "rule " + r.at("cidr").get<std::string>() + ": " + cidr.error().message);
      auto spec = spec_from_options_text(*cidr, r.at("options").get<std::string>());
      if (!spec) return snapshot_error(path, "rule " + format_cidr(*cidr) + ": " + spec.error().message);
      rule.cidr = *cidr;
      rule.spec = *spec;
      const json& c = r.at("counters");
      for (const auto& [name, field] : kSnapshotRuleCounters)
        if (c.contains(name)) rule.stats.*field = count(c.at(name), name);
      out.rules.push_back(std::move(rule));
    }
    if (out.rules.size() > XT_MAX_RULES) return snapshot_error(path, "more rules than the program holds");
    for (const json& b : h.at("bans")) {
      SnapshotFile::BanRec ban;
      auto cidr = parse_cidr(b.at("cidr").get<std::string>());
      if (!cidr) return snapshot_error(path, "ban " + b.at("cidr").get<std::string>() + ": " + cidr.error().message);
      ban.cidr = *cidr;
      ban.left_ns = integer(b.at("left_ns"), "a ban's left_ns", 0, kMaxNs - 1);
      ban.since_ns_ago = integer(b.at("since_ns_ago"), "a ban's since_ns_ago", 0, kMaxNs - 1);
      ban.rule = b.at("rule").is_null() ? -1 : static_cast<int>(integer(b.at("rule"), "a ban's rule", 0, XT_MAX_RULES));
      if (ban.rule >= static_cast<int>(out.rules.size())) return snapshot_error(path, "ban of a rule it does not have");
      if (b.contains("fleet")) {
        if (!b.at("fleet").is_boolean()) return snapshot_error(path, "a ban's fleet is not true or false");
        ban.fleet = b.at("fleet").get<bool>();
        if (ban.fleet && ban.rule >= 0) return snapshot_error(path, "a ban both a rule's and the fleet's");
      }
      if (b.contains("deleted_rule")) {
        if (!b.at("deleted_rule").is_boolean()) return snapshot_error(path, "a ban's deleted_rule is not true or false");
        ban.deleted_rule = b.at("deleted_rule").get<bool>();
        if (ban.deleted_rule && (ban.rule >= 0 || ban.fleet))
          return snapshot_error(path, "a ban both a deleted rule's and another's");
      }
      out.bans.push_back(ban);
    }
    if (out.bans.size() > XT_MAX_BANS) return snapshot_error(path, "more bans than the program holds");
    out.counters.resize(XT_COUNTERS);
    const json& counters = h.at("counters");
    for (uint32_t r = 0; r < XT_COUNTERS; r++)
      if (const std::string key(snapshot_counter_key(r)); counters.contains(key)) {
        const json& c = counters.at(key);
        out.counters[r] = {count(c.at(0), "a counter"), count(c.at(1), "a counter")};
      }
    size_t at = kSnapshotFixed + header_len;
    // Every count checked against the bytes there are before anything is
    // sized by it.
    const uint64_t room = size - at - kSnapshotDigest;
    const uint64_t buckets = count(h.at("buckets"), "buckets"), known = count(h.at("known"), "known");
    __int128 want = static_cast<__int128>(std::min<uint64_t>(buckets, room + 1)) * sizeof(SnapshotBucket) +
                    static_cast<__int128>(std::min<uint64_t>(known, room + 1)) * sizeof(SnapshotKnown);
    std::vector<uint64_t> sizes;
    for (const json& l : h.at("blocklists")) {
      SnapshotFile::List list;
      list.name = l.at("name").get<std::string>();
      if (auto ok = check_blocklist_name(list.name); !ok) return snapshot_error(path, ok.error().message);
      if (std::ranges::any_of(out.lists, [&](const SnapshotFile::List& o) { return o.name == list.name; }))
        return snapshot_error(path, "blocklist " + list.name + " twice");
      if (out.lists.size() == XT_MAX_BLOCKLISTS) return snapshot_error(path, "more blocklists than the program holds");
      if (l.contains("fleet")) {
        if (!l.at("fleet").is_boolean()) return snapshot_error(path, "a blocklist's fleet is not true or false");
        list.fleet = l.at("fleet").get<bool>();
      }
      if (l.contains("loaded_unix"))
        list.loaded_unix = static_cast<uint64_t>(integer(l.at("loaded_unix"), "a blocklist's loaded_unix", 0, kMaxNs - 1));
      sizes.push_back(std::min<uint64_t>(count(l.at("entries"), "a blocklist's entries"), room + 1));
      want += static_cast<__int128>(sizes.back()) * sizeof(xt_block_entry);
      out.lists.push_back(std::move(list));
    }
    if (want != static_cast<__int128>(room)) return snapshot_error(path, "corrupt: its records are not what its header says");
    for (size_t i = 0; i < out.lists.size(); i++) out.lists[i].entries.resize(sizes[i]);
    out.bucket_count = buckets;
    out.buckets_at = at;
    if (keep_buckets) {
      out.buckets.resize(buckets);
      if (auto ok = read(at, buckets * sizeof(SnapshotBucket), out.buckets.data()); !ok) return std::unexpected(ok.error());
    } else {
      out.records = read;
    }
    at += buckets * sizeof(SnapshotBucket);
    out.known.resize(known);
    if (auto ok = read(at, known * sizeof(SnapshotKnown), out.known.data()); !ok) return std::unexpected(ok.error());
    at += known * sizeof(SnapshotKnown);
    std::vector<xt_block_entry> entries(static_cast<size_t>((room - buckets * sizeof(SnapshotBucket) -
                                                             known * sizeof(SnapshotKnown)) /
                                                            sizeof(xt_block_entry)));
    if (auto ok = read(at, entries.size() * sizeof(xt_block_entry), entries.data()); !ok)
      return std::unexpected(ok.error());
    size_t next = 0;
    for (auto& list : out.lists)
      for (Cidr& c : list.entries) {
        const xt_block_entry e = entries[next++];
        // Bits past the prefix would make the loader's walk of its /24s
        // start past their end (State::switch_blocklists).
        if (e.len == 0 || !is_prefix(e.family, e.addr, e.len))
          return snapshot_error(path, "corrupt: blocklist " + list.name + " has an entry that is no prefix");
        c.family = e.family;
        c.len = e.len;
        std::memcpy(c.addr.data(), e.addr, sizeof(e.addr));
      }
  } catch (const json::exception& e) {
    return snapshot_error(path, std::string("corrupt header: ") + e.what());
  } catch (const BadField& e) {
    return snapshot_error(path, "corrupt header: " + e.why);
  }
  if (auto ok = each_bucket_chunk(out, read, [&](std::span<const SnapshotBucket> chunk) -> Result<void> {
        for (const SnapshotBucket& b : chunk)
          if (!bucket_record_ok(out, b))
            return snapshot_error(path, "corrupt: a bucket record names no rule or no source, or a time out of range");
        if (!keep_buckets) out.chunk_hashes.push_back(chunk_hash(chunk));
        return {};
      });
      !ok)
    return std::unexpected(ok.error());
  for (const SnapshotKnown& k : out.known)
    if ((k.family != XT_FAMILY_V4 && k.family != XT_FAMILY_V6) ||
        (k.how != XT_KNOWN_BEHAVED && k.how != XT_KNOWN_PROVEN) || !good_ns(k.seen_ns_ago))
      return snapshot_error(path, "corrupt: a known-source record names no source, or a time out of range");
  return out;
}


}  // namespace xt
