// SPDX-License-Identifier: MIT
#include "fleet.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <csignal>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <thread>
#include <unordered_map>

#include "format.h"
#include "pins.h"
#include "policy.h"
#include "worker.h"
#include "redis_link.h"
#include "state.h"

namespace xt {

Result<Charged> charge_use(State& state, const RuleEntry& rule, const std::vector<FleetUse>& use) {
  Charged out;
  std::vector<xt_slot> records;
  records.reserve(use.size());
  for (const FleetUse& u : use) {
    // Only a bucket of the rule's: its key (the source cut to --per) within
    // the rule's prefix, as far as both go (a --per shorter than the
    // prefix: the prefix's first --per bits). Any other would never be
    // looked up here, and a peer that told made-up ones filled the table
    // with them.
    Cidr key, cover = rule.cidr;
    key.family = u.family;
    key.len = static_cast<uint8_t>(family_bits(u.family));
    std::memcpy(key.addr.data(), u.addr, 16);
    cover.len = std::min<uint8_t>(cover.len, u.per_len);
    if (u.family != rule.rule.family || u.per_len != rule.rule.per_len || !prefix_holds(cover, key) ||
        !only_prefix_bits(u.addr, u.per_len)) {
      out.refused++;
      continue;
    }
    xt_slot s{};
    s.key.family = u.family;
    s.key.per_len = u.per_len;
    s.key.rule_id = rule.rule.id;
    std::memcpy(s.key.addr, u.addr, 16);
    s.bucket.passed_packets = u.packets;
    records.push_back(s);
    out.packets += u.packets;
  }
  auto done = state.restore_records(XT_RESTORE_CHARGE, records, &rule.rule);
  if (!done) return std::unexpected(done.error());
  out.sources = done->restored + done->merged;
  out.refused += done->refused;
  out.stale = done->stale;
  return out;
}

namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Seconds on the monotonic clock: what schedules go by (a wall clock set
// back would hold them).
double mono_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// How far back the stream keeps what the hosts told: a minute of Redis'
// own clock before the newest entry a host has read (XADD MINID). A host
// away for longer misses what was told before; a count of entries would not
// bound the bytes (an entry holds up to 65,536 sources).
constexpr uint64_t kKeepMs = 60000;
// Entries read a round, and the longest use batch taken: what one XREAD can
// bring is bounded (redis_link.h bounds the reply's bytes too).
constexpr int kReadCount = 100;
constexpr int kCatchUpCount = 10;
constexpr size_t kMaxDeletions = 4096;
constexpr size_t kMaxBlob = 4 + 65536 * 24;

// A source without its count: what the hosts agree on.
std::string source_of(const FleetUse& u) {
  std::string s(18, '\0');
  s[0] = static_cast<char>(u.family);
  s[1] = static_cast<char>(u.per_len);
  std::memcpy(s.data() + 2, u.addr, 16);
  return s;
}

// The i-th element of an array reply, if it is itself an array of two.
const redisReply* pair_at(const redisReply* r, size_t i) {
  if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements) return nullptr;
  const redisReply* e = r->element[i];
  return e && e->type == REDIS_REPLY_ARRAY && e->elements == 2 ? e : nullptr;
}

std::string reply_text(const redisReply* r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
             ? std::string(r->str, r->len)
             : std::string();
}

}  // namespace

struct Fleet::Impl {
  std::string pin_dir;
  Options opt;
  Log log;
  std::string stream;  // NAME:fleet
  bool health_unwritable_told = false;  // write_health could not write its file, and said so
  std::thread thread;
  std::atomic<bool> stop{false};
  mutable std::mutex mu;
  FleetHealth health;

  // The link's thread's own.
  std::unique_ptr<RedisLink> redis;
  std::string last_id;
  // The newest entry when this serve joined: use told before it is in this
  // host's buckets' past, but bans and lists told before it are read (what
  // the stream keeps, a minute), so a host that was away takes the bans
  // lifted and the lists deleted meanwhile.
  std::pair<uint64_t, uint64_t> joined_at{0, 0};
  // The newest entry when Redis last answered again (or at the join): an
  // entry up to it is read late.
  std::pair<uint64_t, uint64_t> late_until{0, 0};
  uint64_t joined_ms = 0;  // Redis' clock (TIME) when this serve joined, or last came back
  double joined_mono = 0;  // and this host's monotonic one then
  bool catching_up = false;  // what the stream held when it joined is not all read yet
  // This serve's own mark on what it writes ("i"), drawn at start: an entry
  // of this host's name without it is another serve's.
  std::string writer = [] {
    std::random_device rd;
    char out[17];
    std::snprintf(out, sizeof(out), "%08x%08x", rd(), rd());
    return std::string(out);
  }();
  // Entries a read asks for: a quarter after a read that failed (a reply
  // too big for the link: a hundred entries of use can be 150 MB), twice
  // as many after one that went through, up to kReadCount. Else a link
  // that cannot take the next hundred in time would fail on them for good.
  int read_count = kReadCount;
  int asked = kReadCount;  // by the last read
  static std::pair<uint64_t, uint64_t> id_of(std::string_view id) {
    std::pair<uint64_t, uint64_t> out{0, 0};
    const auto dash = id.find('-');
    std::from_chars(id.data(), id.data() + std::min(dash, id.size()), out.first);
    if (dash != std::string_view::npos) std::from_chars(id.data() + dash + 1, id.data() + id.size(), out.second);
    return out;
  }
  double next_connect = 0;
  std::optional<State> state;
  // Each slot's occupant (a hash of its key) and its passed count when last
  // read: 8 bytes a slot of the table.
  struct Seen {
    uint32_t key = 0, passed = 0;
  };
  std::vector<Seen> seen;
  bool baseline = false;
  // This interval's use, by rule name; and use held while Redis is away:
  // rule name -> source -> packets.
  std::vector<std::pair<std::string, std::vector<FleetUse>>> fresh;
  std::map<std::string, std::unordered_map<std::string, uint64_t>> pending;
  size_t pending_count = 0;
  // Bans and blocklists: what this host has told (or was told), so that
  // each change is told once; the next look's, kept once it was sent.
  std::map<std::string, uint64_t> bans_seen, bans_next;  // CIDR -> until (ticks)
  // A list's version: when it was first loaded on any host (its origin),
  // and the local list that holds it (loaded_unix, entries).
  // A deletion is kept too (its origin: when it was deleted), so that an
  // older version told again (by a host that was away when it was deleted)
  // does not bring the list back.
  struct ListSeen {
    double origin = 0;
    uint64_t loaded_unix = 0;
    uint32_t entries = 0;
    bool deleted = false;
    // The kernel's id of the list's entries (each load makes them anew): a
    // version and a count can stay the same over a load (reloads within a
    // second run into the version's cap of two seconds ahead).
    uint32_t map_id = 0;
  };
  std::map<std::string, ListSeen> lists_seen, lists_next;
  // When this serve first found a list it had seen gone: its deletion's
  // time, also when found while Redis was away and told once it answers.
  std::map<std::string, double> gone_since;
  double next_told = 0;
  double next_health = 0;

  // The failure since the last exchange that went through, and when it
  // began: a link that connects and fails again for the same reason (a
  // Redis that takes the link and refuses XADD: a replica after a
  // failover, maxmemory, an ACL) is one outage. It was logged up and down
  // every second, and status read it as down for 0 s.
  std::string streak_error;
  double streak_since = 0;

  void set_down(const std::string& why) {
    redis.reset();
    next_connect = mono_now() + 1;
    std::lock_guard<std::mutex> hold(mu);
    if (why != streak_error) {
      streak_error = why;
      streak_since = unix_now();
      log({{"event", "fleet_down"}, {"url", health.url}, {"error", why}, {"unix_time", static_cast<int64_t>(unix_now())}});
    }
    health.connected = false;
    health.since_unix = streak_since;
    health.error = why;
  }

  // An exchange went through: an outage, if any, has ended.
  void exchanged() {
    if (streak_error.empty()) return;
    streak_error.clear();
    log({{"event", "fleet_up"}, {"url", health.url}, {"host", opt.host}, {"unix_time", static_cast<int64_t>(unix_now())}});
  }

  // One command; its reply, or none (and down) if the link failed.
  Reply command(const std::string& what, const std::vector<std::string>& args) {
    auto r = routed({args});
    if (!r) {
      set_down(what + ": " + r.error().message);
      return nullptr;
    }
    return std::move(r->front());
  }

  // Opens a link to `to` and logs in: nullopt, or why not (Redis' own
  // words, "WRONGPASS ...", never the password).
  std::optional<std::string> open_link(const ClusterUrl& to) {
    redis.reset();
    auto link = RedisLink::open(to, opt.tls);
    if (!link) return link.error().message;
    auto login = [&](const char* what, const std::vector<std::string>& args) -> std::optional<std::string> {
      auto r = (*link)->run(args);
      if (!r) return std::string(what) + ": " + r.error().message;
      if ((*r)->type == REDIS_REPLY_ERROR) return std::string(what) + ": " + reply_text(r->get());
      return std::nullopt;
    };
    if (!to.password.empty()) {
      auto why = to.user.empty() ? login("AUTH", {"AUTH", to.password}) : login("AUTH", {"AUTH", to.user, to.password});
      if (why) return why;
    }
    if (to.db)
      if (auto why = login("SELECT", {"SELECT", std::to_string(to.db)})) return why;
    redis = std::move(*link);
    return std::nullopt;
  }

  // Commands of the fleet's stream, sent in one round trip. Redis Cluster:
  // the stream is one key, held by one node; another node answers MOVED
  // SLOT HOST:PORT, and the link moves there (once a batch: a second MOVED
  // is a cluster changing under it, tried again the next interval).
  Result<std::vector<Reply>> routed(const std::vector<std::vector<std::string>>& commands) {
    for (int hop = 0;; hop++) {
      auto r = redis->run(commands);
      if (!r || r->empty()) return r;
      const redisReply* first = r->front().get();
      const std::string text = reply_text(first);
      if (hop > 0 || first->type != REDIS_REPLY_ERROR || !text.starts_with("MOVED ")) return r;
      const auto space = text.rfind(' '), colon = text.rfind(':');
      ClusterUrl to = opt.url;
      to.unix_socket = false;
      to.db = 0;  // a cluster has database 0 only
      to.host = text.substr(space + 1, colon == std::string::npos || colon < space ? std::string::npos : colon - space - 1);
      int port = 0;
      if (colon == std::string::npos || colon < space ||
          std::from_chars(text.data() + colon + 1, text.data() + text.size(), port).ec != std::errc() || port <= 0 ||
          port > 65535 || to.host.empty())
        return system_error("a MOVED Redis gave no address in: " + text);
      to.port = port;
      if (auto why = open_link(to)) return system_error("following " + text + ": " + *why);
    }
  }

  bool connect() {
    if (auto why = open_link(opt.url)) {
      set_down(*why);
      return false;
    }
    // At the join, and again at each return after Redis was away: the
    // stream's newest entry and Redis' clock. What is read up to that entry
    // is read late, a ban shorter by its age; what is told after it, live.
    {
      Reply r = command("XREVRANGE", {"XREVRANGE", stream, "+", "-", "COUNT", "1"});
      if (!r) return false;
      if (r->type != REDIS_REPLY_ARRAY) {
        set_down("XREVRANGE: " + reply_text(r.get()));
        return false;
      }
      const redisReply* newest = r->elements ? pair_at(r.get(), 0) : nullptr;
      if (r->elements && (!newest || newest->element[0]->type != REDIS_REPLY_STRING)) {
        set_down("XREVRANGE: not a stream entry");
        return false;
      }
      const auto newest_id = id_of(newest ? std::string(newest->element[0]->str, newest->element[0]->len) : "0-0");
      // Redis' clock, which the entries' ids are of: what a ban told before
      // the join has left is what it had less the time since (a quiet
      // stream keeps entries for hours: its newest may be old too).
      Reply t = command("TIME", {"TIME"});
      if (!t) return false;
      late_until = newest_id;
      joined_ms = newest_id.first;
      joined_mono = mono_now();
      uint64_t secs = 0;
      if (t->type == REDIS_REPLY_ARRAY && t->elements == 2 && t->element[0]->type == REDIS_REPLY_STRING &&
          std::from_chars(t->element[0]->str, t->element[0]->str + t->element[0]->len, secs).ec == std::errc{}) {
        joined_ms = std::max<uint64_t>(joined_ms, secs * 1000);
      } else {
        // Refused (an ACL without +time): this host's clock stands in for
        // Redis'. The newest entry's id alone may be hours old, and a ban
        // told then would be taken for new, its whole length again.
        joined_ms = std::max<uint64_t>(joined_ms, static_cast<uint64_t>(unix_now() * 1000));
        log({{"event", "fleet_no_time"}, {"error", "TIME: " + reply_text(t.get())},
             {"unix_time", static_cast<int64_t>(unix_now())}});
      }
      if (last_id.empty()) {
        // From what is there now on: the use before this host joined is
        // in its own buckets' past, not its future.
        joined_at = newest_id;
        last_id = "0-0";
        catching_up = true;
      }
    }
    std::lock_guard<std::mutex> hold(mu);
    health.connected = true;
    health.since_unix = unix_now();
    health.error.clear();
    // Up at once the first time; after a failure, once an exchange goes
    // through (exchanged()), so that a link that fails again at its first
    // command is not logged up and down each second.
    if (streak_error.empty())
      log({{"event", "fleet_up"}, {"url", health.url}, {"host", opt.host}, {"unix_time", static_cast<int64_t>(unix_now())}});
    return true;
  }

  // What each fleet rule's sources passed here since the last read, into
  // `fresh` (by rule name), a record a source: a walk of 1M sources is a
  // few hundred milliseconds, and nothing in it allocates per source.
  void collect(const std::vector<RuleEntry>& rules) {
    fresh.clear();
    std::vector<int> by_id(XT_MAX_RULES + 1, -1);
    for (const auto& e : rules)
      if (e.spec.fleet && e.rule.id <= XT_MAX_RULES) {
        by_id[e.rule.id] = static_cast<int>(fresh.size());
        fresh.push_back({rule_name(e.cidr, e.spec.match), {}});
      }
    auto cfg = state->config();
    if (!cfg) return;
    const size_t slots = table_slots(*cfg);
    if (seen.size() != slots) seen.assign(slots, {});
    const bool publish = baseline;
    auto walked = state->for_each_bucket([&](const BucketEntry& b) {
      if (b.slot >= seen.size()) return;
      // Every slot's count is kept, a fleet rule's or not: a rule that
      // becomes --scope fleet keeps its buckets, and what they passed
      // before is not use of the fleet's.
      Seen& s = seen[b.slot];
      const int rule = b.key.rule_id <= XT_MAX_RULES ? by_id[b.key.rule_id] : -1;
      const uint32_t h = slot_key_hash(*cfg, b.key);
      const uint32_t before = s.key == h ? s.passed : 0;
      const uint32_t passed = b.bucket.passed_packets;
      const uint32_t delta = fleet_passed_since(before, passed);
      s = {h, passed};
      if (rule < 0 || !publish || !delta) return;
      FleetUse u;
      u.family = b.key.family;
      u.per_len = b.key.per_len;
      std::memcpy(u.addr, b.key.addr, 16);
      u.packets = delta;
      fresh[rule].second.push_back(u);
    });
    // A walk cut short: what it read is sent (its slots' counts moved on).
    if (walked) baseline = true;
  }

  // Redis away: this interval's use is summed into what waits, per source,
  // up to kMaxPending sources; past that it is lost, and counted.
  void hold_fresh() {
    uint64_t lost = 0;
    for (auto& [name, use] : fresh) {
      auto& per_rule = pending[name];
      for (const FleetUse& u : use) {
        auto [at, added] = per_rule.try_emplace(source_of(u), 0);
        if (added) {
          if (pending_count >= kMaxPending) {
            per_rule.erase(at);
            lost++;
            continue;
          }
          pending_count++;
        }
        at->second += u.packets;
      }
    }
    fresh.clear();
    std::lock_guard<std::mutex> hold(mu);
    health.pending_sources = pending_count;
    health.lost_sources += lost;
  }

  std::vector<std::string> entry(const std::string& type, std::vector<std::string> fields) {
    std::vector<std::string> out = {"XADD", stream, "MINID", "~", trim_below(), "*", "t", type, "h", opt.host, "i", writer};
    out.insert(out.end(), fields.begin(), fields.end());
    return out;
  }

  // Bans made here since the last look (by `ban add` or a rule), and bans
  // lifted here, to be told; those the fleet told are not told back.
  void collect_bans(uint64_t now, uint32_t hz, std::vector<std::vector<std::string>>& out) {
    bans_next = bans_seen;  // unread: nothing changes
    auto bans = state->bans();
    if (!bans) return;
    std::map<std::string, uint64_t> current;
    std::set<std::string> fleets;
    for (const auto& b : *bans) {
      current[format_cidr(b.cidr)] = b.ban.until;
      if (b.ban.rule == XT_BAN_BY_FLEET) fleets.insert(format_cidr(b.cidr));
    }
    for (const auto& [cidr, until] : current) {
      auto was = bans_seen.find(cidr);
      if (was != bans_seen.end() && was->second == until) continue;  // told, or the fleet's
      // The fleet's, though not seen told: taken by an earlier serve, which
      // this one follows (a host that came back must not bring a ban back
      // that was lifted meanwhile). Its lifting here is told.
      if (fleets.contains(cidr)) continue;
      const uint64_t ms = until > now ? (until - now) * 1000 / hz : 0;
      if (ms) out.push_back(entry("ban", {"c", cidr, "ms", std::to_string(ms)}));
    }
    for (const auto& [cidr, until] : bans_seen)
      if (!current.contains(cidr) && until > now + hz / 2)  // gone well before its end: lifted
        out.push_back(entry("unban", {"c", cidr}));
    bans_next = std::move(current);
  }

  // Blocklists loaded or deleted here since the last look, whole. Each
  // carries its origin, so that a host that comes back with an older
  // version does not undo a newer one.
  static std::string list_name(const xt_blocklist& list) {
    return std::string(list.name, strnlen(list.name, sizeof(list.name)));
  }

  // The lists this serve knows (lists_seen) that are gone from `lists`,
  // this host's now, each dated when first found gone, also while Redis
  // is away: collect_lists tells them with that date once it answers. A
  // deletion dated at the outage's end beat a version loaded on another
  // host during it, and the list was deleted everywhere.
  void note_gone(const std::vector<State::Blocklist>& lists) {
    std::set<std::string> here;
    for (const auto& l : lists) here.insert(list_name(l.list));
    for (const auto& name : here) gone_since.erase(name);
    for (const auto& [name, seen] : lists_seen)
      if (!seen.deleted && !here.contains(name)) gone_since.try_emplace(name, unix_now());
  }

  // The origin a list here is told with. Loaded here since this serve saw
  // what it replaces (`was`: a version, or a deletion): newer than that,
  // whatever the clocks say. A version is the second it was loaded in, and
  // can run two seconds ahead of the clock (reloads within a second), a
  // deletion is the moment it was seen or the version it ends and a
  // thousandth: a `blocklist del` then `load` within a second, or after a
  // version ahead of the clock, was told as older than the deletion told
  // before it, and every other host kept the list deleted (or the old
  // version). A list put back with its own version (a snapshot's) is as old
  // as it was, and stays older than a deletion since.
  static double origin_here(const xt_blocklist& l, const ListSeen* was) {
    const auto version = static_cast<double>(l.loaded_unix);
    return was && l.used == XT_BLOCKLIST_HERE && was->origin >= version ? was->origin + 0.001 : version;
  }

  // Whether the list here (its entries' map map_id) is the one `seen`
  // describes, told or taken from the fleet: else it changed here since.
  static bool is_seen(const ListSeen& seen, const xt_blocklist& l, uint32_t map_id) {
    return !seen.deleted && seen.loaded_unix == l.loaded_unix && seen.entries == l.entries && seen.map_id == map_id;
  }

  void collect_lists(std::vector<std::vector<std::string>>& out) {
    lists_next = lists_seen;  // unread: nothing changes
    // Under the pin directory's lock: a load records the list's new
    // version before it renames the new entries into place, and a read
    // between the two would tell the old entries as the new version, which
    // no later look would correct (the version told is then the live one).
    auto lock = DirLock::acquire(pin_dir);
    if (!lock) return;
    auto lists = state->blocklists();
    if (!lists) return;
    note_gone(*lists);
    std::vector<std::vector<std::string>> told;
    std::map<std::string, ListSeen> current;
    for (const auto& l : *lists) {
      const std::string name = list_name(l.list);
      auto was = lists_seen.find(name);
      const uint32_t map_id = state->blocklist_map_id(l.slot).value_or(0);
      if (was != lists_seen.end() && is_seen(was->second, l.list, map_id)) {
        current[name] = was->second;  // told, or the fleet's
        continue;
      }
      const double origin = origin_here(l.list, was != lists_seen.end() ? &was->second : nullptr);
      uint64_t loaded = l.list.loaded_unix;
      if (origin != static_cast<double>(loaded)) {
        // Recorded too, as the second after: a serve started again takes
        // the list as of its record, and its catch-up took a deletion told
        // before this version, later than the second it was loaded in,
        // for newer, and deleted the list here alone.
        const auto kept = static_cast<uint64_t>(std::ceil(origin));
        if (state->set_blocklist_version(l.slot, kept)) loaded = kept;
      }
      const ListSeen seen{origin, loaded, l.list.entries, false, map_id};
      // The fleet's (told before this serve started, or restored from a
      // snapshot): not told back, as the fleet's bans are not. Its
      // deletion here is still told.
      if (was == lists_seen.end() && l.list.used == XT_BLOCKLIST_BY_FLEET) {
        current[name] = seen;
        continue;
      }
      auto cidrs = state->blocklist_cidrs(l.slot);
      if (!cidrs) return;
      current[name] = seen;
      told.push_back(entry("list", {"n", name, "u", std::to_string(seen.origin), "d", encode_prefixes(*cidrs)}));
    }
    for (const auto& [name, seen] : lists_seen) {
      if (current.contains(name)) continue;
      if (seen.deleted) {
        current[name] = seen;  // a deletion told (or taken) is kept, not told again
        continue;
      }
      // Dated when it was first found gone (note_gone), though Redis was
      // away then; newer than the version it ends, which may be a second
      // or two ahead of the clock (a list reloaded within its second).
      const ListSeen gone{std::max(gone_since.at(name), seen.origin + 0.001), 0, 0, true};
      current[name] = gone;
      told.push_back(entry("unlist", {"n", name, "u", std::to_string(gone.origin)}));
    }
    out.insert(out.end(), std::make_move_iterator(told.begin()), std::make_move_iterator(told.end()));
    forget_oldest_deletions(current);
    lists_next = std::move(current);
  }

  // Deletions are kept (a name and a time each), the oldest forgotten past
  // kMaxDeletions: names told by others are not bounded by this host's 16.
  static void forget_oldest_deletions(std::map<std::string, ListSeen>& seen) {
    std::vector<std::pair<double, std::string>> deleted;
    for (const auto& [name, s] : seen)
      if (s.deleted) deleted.emplace_back(s.origin, name);
    if (deleted.size() <= kMaxDeletions) return;
    std::ranges::sort(deleted);
    for (size_t i = 0; i + kMaxDeletions < deleted.size(); i++) seen.erase(deleted[i].second);
  }

  // Entries older than kKeepMs before the newest this host has read (its
  // id is Redis' clock) are trimmed.
  std::string trim_below() const {
    uint64_t ms = 0;
    std::from_chars(last_id.data(), last_id.data() + last_id.size(), ms);
    return std::to_string(ms > kKeepMs ? ms - kKeepMs : 0);
  }

  std::optional<xt_blocklist> local_list(const std::string& name, uint32_t* map_id = nullptr) {
    auto lists = state->blocklists();
    if (lists)
      for (const auto& l : *lists)
        if (list_name(l.list) == name) {
          if (map_id) *map_id = state->blocklist_map_id(l.slot).value_or(0);
          return l.list;
        }
    return std::nullopt;
  }

  // XADDs in one round trip; false (and down) on any failure.
  bool send(const std::vector<std::vector<std::string>>& commands) {
    if (commands.empty()) return true;
    auto replies = routed(commands);
    if (!replies) {
      set_down("XADD: " + replies.error().message);
      return false;
    }
    for (const Reply& r : *replies)
      if (r->type == REDIS_REPLY_ERROR) {
        set_down("XADD: " + reply_text(r.get()));
        return false;
      }
    return true;
  }

  struct Received {
    std::map<std::string, std::vector<FleetUse>> use;  // by rule name
    struct Ban {
      std::string cidr;
      uint64_t ms = 0;     // left; 0: lifted
      uint64_t at_ms = 0;  // when it was told (its entry's id: Redis' clock)
      bool own = false;    // a lifting an earlier serve here told
    };
    std::vector<Ban> bans;
    struct List {
      std::string name;
      double origin = 0;
      std::optional<std::vector<Cidr>> prefixes;  // none: deleted
      bool own = false;                           // a deletion an earlier serve here told
    };
    std::vector<List> lists;
  };

  // A `list` or `unlist` entry's fields, checked; nothing if they are not
  // a list's.
  static std::optional<Received::List> list_entry(std::map<std::string, std::string>& f) {
    Received::List l{f["n"], 0, std::nullopt};
    auto [end, ec] = std::from_chars(f["u"].data(), f["u"].data() + f["u"].size(), l.origin);
    // A time, and not one far ahead of this host's clock (a day of skew):
    // "inf" or a year 3000 would be a version nothing replaces.
    if (!(l.origin >= 0 && l.origin <= unix_now() + 86400)) return std::nullopt;
    // A name `blocklist load` would take, or nothing.
    const bool named = !l.name.empty() && l.name.size() < XT_BLOCKLIST_NAME_SIZE &&
                       std::ranges::all_of(l.name, [](char c) {
                         return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
                       });
    if (ec != std::errc() || !named) return std::nullopt;
    if (f["t"] == "list") {
      auto prefixes = decode_prefixes(f["d"]);
      if (!prefixes) return std::nullopt;
      l.prefixes = std::move(*prefixes);
    }
    return l;
  }

  // One round of what the others told since last_id: the entries read (up
  // to kReadCount), or -1 (and down).
  int receive(Received& in, int count = kReadCount) {
    {
      asked = std::min(count, read_count);
      Reply r = command("XREAD", {"XREAD", "COUNT", std::to_string(asked), "STREAMS", stream, last_id});
      if (!r) {
        read_count = std::max(1, read_count / 4);
        return -1;
      }
      read_count = std::min(kReadCount, read_count * 2);
      if (r->type == REDIS_REPLY_ERROR) {
        set_down("XREAD: " + reply_text(r.get()));
        return -1;
      }
      if (r->type != REDIS_REPLY_ARRAY || !r->elements) return 0;  // nothing new
      // [[stream, [[id, [field, value, ...]], ...]]], checked at each
      // level: whatever answers on the socket is not trusted to be Redis.
      const redisReply* entries = pair_at(r.get(), 0) ? pair_at(r.get(), 0)->element[1] : nullptr;
      if (!entries || entries->type != REDIS_REPLY_ARRAY) {
        set_down("XREAD: not a stream's entries");
        return -1;
      }
      for (size_t i = 0; i < entries->elements; i++) {
        const redisReply* e = pair_at(entries, i);
        if (!e || e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY) {
          set_down("XREAD: not a stream entry");
          return -1;
        }
        last_id = std::string(e->element[0]->str, e->element[0]->len);
        std::map<std::string, std::string> f;
        const redisReply* fields = e->element[1];
        for (size_t k = 0; k + 1 < fields->elements; k += 2) f[reply_text(fields->element[k])] = reply_text(fields->element[k + 1]);
        const auto id = id_of(last_id);
        const bool before_join = id <= joined_at;
        if (f["h"] == opt.host) {
          // This host's name, written since this serve joined by another
          // serve than this one: two hosts of one name (cloned machines),
          // each skipping the other's entries as its own.
          if (!before_join && f["i"] != writer) {
            std::lock_guard<std::mutex> hold(mu);
            health.name_taken_unix = unix_now();
          }
          // A deletion or a lifting an earlier serve here told, read in
          // the catch-up: an older version or ban another host told, read
          // before it, was taken again as new (this serve had not seen the
          // deletion), and this host alone had the list it had deleted, or
          // the ban it had lifted.
          if (before_join && f["t"] == "unlist")
            if (auto l = list_entry(f)) {
              l->own = true;
              in.lists.push_back(std::move(*l));
            }
          if (before_join && f["t"] == "unban") in.bans.push_back({f["c"], 0, id.first, true});
          continue;
        }
        if (f["t"] == "use" && before_join) continue;  // in this host's buckets' past
        if (f["t"] == "use") {
          if (f["d"].size() > kMaxBlob) continue;  // more than any host sends at once
          auto use = decode_use(f["d"]);
          if (!use) continue;  // another version's, or garbage: not ours to apply
          auto& to = in.use[f["r"]];
          to.insert(to.end(), use->begin(), use->end());
        } else if (f["t"] == "ban" || f["t"] == "unban") {
          uint64_t ms = 0;
          if (f["t"] == "ban") {
            auto [end, ec] = std::from_chars(f["ms"].data(), f["ms"].data() + f["ms"].size(), ms);
            if (ec != std::errc() || !ms) continue;
            ms = std::min<uint64_t>(ms, uint64_t{366} * 86400 * 1000);  // no ban is longer than a year
            // What is left of it now, by Redis' clock (TIME at the join or
            // the return, and the time since): told before this serve
            // joined, or read late after Redis was away (a ban over
            // everywhere else was taken whole from then), it is shorter by
            // its age. One read live is not aged: the clock is an
            // estimate (this host's own, under an ACL without TIME).
            if (before_join || id <= late_until) {
              const uint64_t redis_now = joined_ms + static_cast<uint64_t>((mono_now() - joined_mono) * 1000);
              const uint64_t age = redis_now > id.first ? redis_now - id.first : 0;
              if (ms <= age) continue;
              ms -= age;
            }
          }
          in.bans.push_back({f["c"], ms, id.first});
        } else if (f["t"] == "list" || f["t"] == "unlist") {
          if (auto l = list_entry(f)) in.lists.push_back(std::move(*l));
        }
      }
      return static_cast<int>(entries->elements);
    }
  }

  // Takes what the others passed from this host's buckets, and puts their
  // bans, under the pin directory's lock (no rule changes meanwhile).
  void apply(const Received& in) {
    if (in.use.empty() && in.bans.empty() && in.lists.empty()) return;
    // What could not be taken is said (the stream has moved on past it).
    auto failed = [&](const std::string& why) {
      log({{"event", "fleet_apply_failed"}, {"error", why}, {"unix_time", static_cast<int64_t>(unix_now())}});
    };
    auto lock = DirLock::acquire(pin_dir);
    if (!lock) return failed(lock.error().message);
    auto rules = state->rules();
    if (!rules) return failed(rules.error().message);
    uint64_t packets = 0, sources = 0, refused = 0, bans = 0, stale = 0;
    for (const auto& [name, use] : in.use) {
      const RuleEntry* rule = nullptr;
      for (const auto& e : *rules)
        if (e.spec.fleet && rule_name(e.cidr, e.spec.match) == name) rule = &e;
      if (!rule) {
        refused += use.size();  // no such fleet rule here (yet)
        continue;
      }
      auto done = charge_use(*state, *rule, use);
      if (!done) {
        failed(done.error().message);
        continue;
      }
      packets += done->packets;
      sources += done->sources;
      refused += done->refused;
      stale += done->stale;
    }
    // Bans put all at once (each put walks the ban table to tidy it: one at
    // a time, tens of thousands of them took minutes under the lock); a
    // lifting in between puts those before it first, so the order holds.
    std::vector<std::pair<Cidr, xt_ban>> put;
    std::map<std::string, size_t> put_at;  // a prefix's place in put
    auto put_now = [&] {
      if (put.empty()) return;
      // Refused midway (a full table): what went in is read back, and what
      // did not is said.
      auto refusal = state->put_bans(put);
      std::map<std::string, uint64_t> in_table;
      if (auto live = state->bans())
        for (const auto& b : *live) in_table[format_cidr(b.cidr)] = b.ban.until;
      size_t missing = 0;
      for (const auto& [text, i] : put_at)
        if (auto it = in_table.find(text); it != in_table.end() && it->second == put[i].second.until) {
          bans_seen[text] = put[i].second.until;
          bans++;
        } else {
          missing++;
        }
      // Only a refusal is said: a ban told late, shortened by its age, may
      // have ended by the read back, and the data path may have banned the
      // prefix anew meanwhile.
      if (!refusal) failed(std::to_string(missing) + " of the fleet's bans not taken: " + refusal.error().message);
      put.clear();
      put_at.clear();
    };
    auto now = state->now();
    auto cfg = state->config();
    // This host's own bans (by hand or by a rule): when each began on the
    // wall clock (a lifting told before one began does not lift it: a serve
    // catching up reads liftings from before it joined), and its end (a ban
    // told that ends before it does not replace it: the own one stays, and
    // its rule with it).
    struct Own {
      uint64_t since_ms, until;
    };
    std::map<std::string, Own> own;
    const auto now_ms = static_cast<uint64_t>(unix_now() * 1000);
    if (auto live = state->bans(); live && now && cfg)
      for (const auto& b : *live)
        if (b.ban.rule != XT_BAN_BY_FLEET)
          own[format_cidr(b.cidr)] = {
              now_ms - std::min<uint64_t>(now_ms, (*now - std::min<uint64_t>(*now, b.ban.since)) * 1000 / cfg->hz),
              b.ban.until};
    for (const auto& [cidr_text, ms, at_ms, own_lifting] : in.bans) {
      auto cidr = parse_cidr(cidr_text);
      if (!cidr || !now || !cfg) continue;
      const std::string text = format_cidr(*cidr);
      const auto mine = own.find(text);
      if (ms) {
        const uint64_t until = *now + (ms * cfg->hz + 999) / 1000;
        if (mine != own.end() && mine->second.until >= until) continue;
        // The same prefix twice in one batch: the later one.
        if (auto at = put_at.find(text); at != put_at.end()) {
          put[at->second].second = xt_ban{until, *now, 0, XT_BAN_BY_FLEET};
          continue;
        }
        put_at[text] = put.size();
        put.emplace_back(*cidr, xt_ban{until, *now, 0, XT_BAN_BY_FLEET});
      } else {
        if (mine != own.end() && mine->second.since_ms > at_ms + 2000)
          continue;  // made here after it was lifted there (two seconds for the clocks' skew)
        // This host's own lifting, read again: a ban of its own that began
        // since was made since (the lifting took the one before), however
        // soon (a second for the tick's rounding into ms). One that began
        // before it is the one it lifted, put back by a restore (a serve
        // killed before its next save): lifted again, or it came back on
        // every host.
        if (own_lifting && mine != own.end() && mine->second.since_ms + 1000 >= at_ms) continue;
        put_now();
        if (!state->del_ban(*cidr)) continue;  // none here: a ban this host never had, or that ended
        bans_seen.erase(text);
        if (mine != own.end()) own.erase(mine);  // lifted: a ban told after it is not held back by it
        bans++;
      }
    }
    put_now();
    uint64_t lists = 0;
    for (const auto& l : in.lists) {
      // The newer version wins, whichever host's it is: a list here is as
      // old as the version it was told or loaded as.
      uint32_t map_id = 0;
      const std::optional<xt_blocklist> have = local_list(l.name, &map_id);
      // This host's own deletion, read again: it takes back an older
      // version the fleet told or a snapshot put back, never a list loaded
      // here, which came after it.
      if (l.own && have && have->used == XT_BLOCKLIST_HERE) continue;
      auto seen = lists_seen.find(l.name);
      double origin = seen != lists_seen.end() ? seen->second.origin
                      : have                   ? static_cast<double>(have->loaded_unix)
                                               : 0;
      // Changed here since the last look, and not told yet: as the next
      // look will tell it. Taken as of the version told before it, a list
      // loaded here after that, newer than the entry, was deleted by it,
      // and never told.
      if (have && seen != lists_seen.end() && !is_seen(seen->second, *have, map_id))
        origin = origin_here(*have, &seen->second);
      // Of one origin, a deletion wins: a load and a deletion told with the
      // same (each on its own host, each a thousandth past the version it
      // replaced) were each kept where they were made, and the other hosts
      // kept whichever came first.
      const bool deleted_here = seen != lists_seen.end() && seen->second.deleted;
      const bool newer_here = l.prefixes || deleted_here ? origin >= l.origin : origin > l.origin;
      if ((have || seen != lists_seen.end()) && newer_here) continue;
      if (l.prefixes) {
        // Loaded as of its origin: told again by a later serve here, it is
        // the same version, not a newer one.
        if (auto ok = state->load_blocklist(l.name, *l.prefixes, static_cast<uint64_t>(l.origin), true); !ok) {
          failed("blocklist " + l.name + ": " + ok.error().message);
          continue;
        }
        uint32_t map_id = 0;
        const std::optional<xt_blocklist> now = local_list(l.name, &map_id);
        lists_seen[l.name] = {l.origin, now ? now->loaded_unix : 0, now ? now->entries : 0, false, map_id};
      } else {
        if (have)
          if (auto ok = state->del_blocklist(l.name); !ok) {
            failed("deleting blocklist " + l.name + ": " + ok.error().message);
            continue;
          }
        lists_seen[l.name] = {l.origin, 0, 0, true};
        forget_oldest_deletions(lists_seen);
        if (l.own && !have) continue;  // only remembered
      }
      lists++;
    }
    std::lock_guard<std::mutex> hold(mu);
    health.applied_lists += lists;
    health.applied_packets += packets;
    health.applied_sources += sources;
    health.refused_sources += refused;
    health.stale_words += stale;
    health.applied_bans += bans;
  }

  void write_health() {
    FleetHealth h = [&] {
      std::lock_guard<std::mutex> hold(mu);
      health.written_unix = unix_now();
      return health;
    }();
    const std::string path = fleet_health_path(pin_dir);
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    const std::string tmp = path + ".tmp";
    bool written = false;
    {
      std::ofstream out(tmp, std::ios::trunc);
      if (out) written = static_cast<bool>(out << h.json().dump() << "\n");
    }
    if (written) std::filesystem::rename(tmp, path, ec);
    // Told once: status reads this file, and without it says that no serve
    // --cluster runs (a unit whose /run is read-only, say).
    if ((!written || ec) && !health_unwritable_told) {
      health_unwritable_told = true;
      log({{"event", "fleet_health_unwritten"}, {"path", path},
           {"error", ec ? ec.message() : std::string(std::strerror(errno))},
           {"why", "status reads it: without it, status says no serve --cluster runs"},
           {"unix_time", static_cast<int64_t>(unix_now())}});
    }
  }

  void tick() {
    const double now_mono = mono_now();
    if (!state) {
      auto s = State::open(pin_dir);
      if (!s) {
        std::lock_guard<std::mutex> hold(mu);
        health.error = s.error().message;
        return;
      }
      state.emplace(std::move(*s));
    }
    auto rules = state->rules();
    if (!rules) return;
    collect(*rules);
    if (!redis && now_mono >= next_connect) connect();
    if (!redis) {
      if (now_mono >= next_told) {  // Redis away: the lists gone are dated all the same
        next_told = now_mono + 0.5;
        if (auto lock = DirLock::acquire(pin_dir))
          if (auto lists = state->blocklists()) note_gone(*lists);
      }
      keep();
      return;
    }
    // Before this serve tells anything: the bans and lists the stream
    // holds from before it joined, in small rounds (each entry of use, up to
    // 1.5 MB, is read to be skipped). Else it would tell what it holds as
    // new before it read that it was lifted or deleted meanwhile.
    // Up to the entry that was the newest when it joined; what follows is
    // read as any exchange reads it. Health is written between rounds (a
    // long catch-up is no dead serve), and a stop ends it.
    double health_at = now_mono;
    while (catching_up && !stop) {
      Received in;
      const int got = receive(in, kCatchUpCount);
      if (got < 0) {
        keep();
        return;
      }
      apply(in);
      if (got < asked || id_of(last_id) >= joined_at) catching_up = false;
      if (mono_now() > health_at + 1) {
        write_health();
        health_at = mono_now();
      }
    }
    if (catching_up) return;  // stopped
    // What is told is what changed since the last look that went through.
    std::vector<std::vector<std::string>> commands;
    const bool told = now_mono >= next_told;
    if (told) {
      next_told = now_mono + 0.5;
      auto now = state->now();
      auto cfg = state->config();
      if (now && cfg) collect_bans(*now, cfg->hz, commands);
      collect_lists(commands);
    }
    // Batches of at most 65536 sources (1.5 MB) an entry.
    uint64_t packets = 0;
    auto add = [&](const std::string& name, std::span<const FleetUse> use) {
      for (size_t at = 0; at < use.size(); at += 65536) {
        const auto part = use.subspan(at, std::min<size_t>(65536, use.size() - at));
        for (const FleetUse& u : part) packets += u.packets;
        commands.push_back(entry("use", {"r", name, "d", encode_use(std::vector<FleetUse>(part.begin(), part.end()))}));
      }
    };
    for (const auto& [name, use] : fresh) add(name, use);
    for (auto& [name, sources] : pending) {
      std::vector<FleetUse> batch;
      for (const auto& [source, n] : sources) {
        FleetUse u;
        u.family = static_cast<uint8_t>(source[0]);
        u.per_len = static_cast<uint8_t>(source[1]);
        std::memcpy(u.addr, source.data() + 2, 16);
        for (uint64_t left = n; left;) {  // a sum over a long outage may pass 32 bits
          u.packets = static_cast<uint32_t>(std::min<uint64_t>(left, UINT32_MAX));
          left -= u.packets;
          batch.push_back(u);
        }
      }
      add(name, batch);
    }
    if (!send(commands)) {
      keep();
      return;
    }
    if (told) {
      bans_seen = std::move(bans_next);
      lists_seen = std::move(lists_next);
      std::erase_if(gone_since, [&](const auto& g) {
        const auto it = lists_seen.find(g.first);
        return it == lists_seen.end() || it->second.deleted;
      });
    }
    const auto sent_of = [&](const char* a, const char* b) {
      return static_cast<uint64_t>(
          std::count_if(commands.begin(), commands.end(), [&](const auto& c) { return c[7] == a || c[7] == b; }));
    };
    fresh.clear();
    pending.clear();
    pending_count = 0;
    {
      // Sent: counted as such whatever the read below does (a read that
      // failed returned before, and what was sent was never counted).
      std::lock_guard<std::mutex> hold(mu);
      health.sent_packets += packets;
      health.sent_bans += sent_of("ban", "unban");
      health.sent_lists += sent_of("list", "unlist");
      health.pending_sources = 0;
    }
    // Taken a round at a time: what is held at once stays bounded.
    for (int round = 0; round < 200 && !stop; round++) {
      Received in;
      const int got = receive(in);
      if (got < 0) return;
      apply(in);
      if (got < asked) break;
    }
    std::lock_guard<std::mutex> hold(mu);
    exchanged();
    health.last_sync_unix = unix_now();
    health.exchanges++;
    health.exchange_seconds = mono_now() - now_mono;
  }

  // Nothing went through: the use is kept to be sent, and what was to be
  // told is found again by the next look, against what was last told.
  void keep() { hold_fresh(); }

  void run() {
    auto next = std::chrono::steady_clock::now();
    while (!stop) {
      tick();
      if (mono_now() >= next_health) {
        next_health = mono_now() + 1;
        write_health();
      }
      next += opt.every;
      const auto now = std::chrono::steady_clock::now();
      if (next < now) next = now;  // a slow interval is not made up for by a burst of them
      while (!stop && std::chrono::steady_clock::now() < next)
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(next - std::chrono::steady_clock::now(),
                                                                                  std::chrono::milliseconds(50)));
    }
    write_health();
  }
};

Fleet::Fleet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Fleet::~Fleet() {
  impl_->stop = true;
  if (impl_->thread.joinable()) impl_->thread.join();
  std::error_code ec;
  std::filesystem::remove(fleet_health_path(impl_->pin_dir), ec);
}

Result<std::unique_ptr<Fleet>> Fleet::start(const std::string& pin_dir, Options options, Log log) {
  // The link writes with MSG_NOSIGNAL, but OpenSSL's writes to a socket
  // Redis closed would still raise SIGPIPE and kill serve: a write's EPIPE
  // is what the link handles (down, reconnect).
  std::signal(SIGPIPE, SIG_IGN);
  auto impl = std::make_unique<Impl>();
  impl->pin_dir = pin_dir;
  if (options.host.empty()) {
    char name[256] = {};
    gethostname(name, sizeof(name) - 1);
    options.host = std::string(name) + ":" + pin_dir;
  }
  impl->stream = options.name + ":fleet";
  impl->opt = std::move(options);
  impl->log = std::move(log);
  impl->health.url = impl->opt.url.redacted();
  impl->health.host = impl->opt.host;
  impl->health.since_unix = unix_now();
  impl->health.error = "not connected yet";
  Impl* raw = impl.get();
  // A signal here would cut a wait short and cost an exchange.
  impl->thread = worker_thread([raw] { raw->run(); });
  return std::unique_ptr<Fleet>(new Fleet(std::move(impl)));
}

FleetHealth Fleet::health() const {
  std::lock_guard<std::mutex> hold(impl_->mu);
  return impl_->health;
}

std::string Fleet::metrics() const { return fleet_metrics_text(health(), unix_now()); }

}  // namespace xt
