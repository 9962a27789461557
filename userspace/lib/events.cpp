// SPDX-License-Identifier: MIT
#include "events.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <utility>

#include "policy.h"

namespace xt {

std::string iso8601(std::chrono::system_clock::time_point t) {
  const auto secs = std::chrono::system_clock::to_time_t(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(ms));
  return buf;
}

struct EventReader::Context {
  const State* state = nullptr;
  Sink sink;
  bool discarding = false;
  uint64_t backlog_before = 0;
  uint32_t hz = 0;
  // id -> CIDR, read again when the rules changed (a deleted rule's slot
  // is the next rule's) or on an id not in it.
  std::map<uint32_t, std::string> rule_names;
  std::optional<uint32_t> names_epoch;  // the rules epoch they were read at
  // The program's clock against the wall clock, refreshed every minute.
  uint64_t tick0 = 0;
  std::chrono::system_clock::time_point wall0;
  std::chrono::steady_clock::time_point synced;

  std::chrono::system_clock::time_point wall_time(uint64_t tick) {
    const auto steady = std::chrono::steady_clock::now();
    if (synced.time_since_epoch().count() == 0 || steady - synced > std::chrono::minutes(1)) {
      if (auto now = state->now()) {
        tick0 = *now;
        wall0 = std::chrono::system_clock::now();
        synced = steady;
      }
    }
    const double ago = (static_cast<double>(tick0) - static_cast<double>(tick)) / hz;
    return wall0 - std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(ago));
  }

  std::string rule_name(uint32_t id) {
    const auto cfg = state->config();
    const std::optional<uint32_t> epoch = cfg ? std::optional(cfg->epoch) : std::nullopt;
    if (!rule_names.contains(id) || !epoch || epoch != names_epoch) {
      rule_names.clear();
      names_epoch = epoch;
      if (auto rules = state->rules())
        for (const auto& e : *rules) rule_names[e.rule.id] = xt::rule_name(e.cidr, e.spec.match);
    }
    auto it = rule_names.find(id);
    return it != rule_names.end() ? it->second : "(deleted rule)";
  }

  // The bans in force when the table was last read, by prefix.
  std::map<std::string, xt_ban> bans;
  std::chrono::steady_clock::time_point bans_read;

  // Reads the ban table; with `tell`, delivers what changed since the last
  // read: a ban gone (ended on time, or lifted before its end) and a ban
  // made by `ban add` (a rule's bans come through the ring).
  int read_bans(bool tell) {
    bans_read = std::chrono::steady_clock::now();
    // One clock for both: a ban that ended between two readings was
    // neither listed nor ended by the first, and was told as lifted.
    auto now = state->now();
    if (!now) return 0;  // read again in a second
    auto live = state->bans(*now);
    if (!live) return 0;
    std::map<std::string, xt_ban> current;
    for (const auto& b : *live) current[format_cidr(b.cidr)] = b.ban;
    int told = 0;
    if (tell) {
      for (const auto& [source, was] : bans) {
        auto it = current.find(source);
        if (it != current.end() && it->second.since == was.since) continue;  // the same ban
        const bool ended = ban_ended(was, *now);
        if (!ended && it != current.end()) continue;  // replaced by another ban of it
        deliver_unbanned(source, was, ended ? was.until : *now, ended);
        told++;
      }
      for (const auto& [source, ban] : current) {
        auto it = bans.find(source);
        // A rule's ban is told by the data path's own event.
        if (XT_BAN_BY_RULE(ban) || ban.rule == XT_BAN_BY_DELETED_RULE ||
            (it != bans.end() && it->second.since == ban.since))
          continue;
        deliver_banned_by_hand(source, ban);
        told++;
      }
    }
    bans = std::move(current);
    return told;
  }

  std::string ban_rule(const xt_ban& ban) {
    if (ban.rule == XT_BAN_BY_DELETED_RULE) return "(deleted rule)";
    return XT_BAN_BY_RULE(ban) ? rule_name(ban.rule - 1) : "";
  }

  void deliver_unbanned(const std::string& source, const xt_ban& ban, uint64_t at, bool ended) {
    const std::string time = iso8601(wall_time(at)), rule = ban_rule(ban);
    const double secs = static_cast<double>(at - ban.since) / hz;
    nlohmann::json j = {{"time", time},           {"event", "unbanned"},
                        {"source", source},       {"rule", rule.empty() ? nlohmann::json() : nlohmann::json(rule)},
                        {"dry_run", false},       {"why", ended ? "ended" : "lifted"},
                        {"banned_seconds", secs}};
    char buf[160];
    std::snprintf(buf, sizeof(buf), " after %.1f s banned (%s)", secs,
                  ended                              ? "its time ran out"
                  : ban.rule == XT_BAN_BY_FLEET ? "lifted before its end, by ban del on some host of the fleet"
                                                     : "lifted before its end by ban del");
    sink(j, time + " unbanned  " + source + (rule.empty() ? "" : " (rule " + rule + ")") + buf);
  }

  void deliver_banned_by_hand(const std::string& source, const xt_ban& ban) {
    const std::string time = iso8601(wall_time(ban.since));
    const double secs = static_cast<double>(ban.until - ban.since) / hz;
    const bool fleet = ban.rule == XT_BAN_BY_FLEET;
    nlohmann::json j = {{"time", time},    {"event", "banned"},  {"source", source},
                        {"rule", nullptr}, {"dry_run", false},   {"why", fleet ? "fleet" : "ban_add"},
                        {"ban_seconds", secs}};
    char buf[96];
    std::snprintf(buf, sizeof(buf), " for %.0f s (%s)", secs, fleet ? "told by another host of the fleet" : "ban add");
    sink(j, time + " banned    " + source + buf);
  }

  static int on_event(void* self, void* data, size_t size) {
    auto* ctx = static_cast<Context*>(self);
    if (ctx->discarding || size < sizeof(xt_event)) return 0;
    ctx->deliver(*static_cast<const xt_event*>(data));
    return 0;
  }

  void deliver(const xt_event& e) {
    const std::string rule = rule_name(e.rule_id);
    const std::string time = iso8601(wall_time(e.tick));
    nlohmann::json j = {{"time", time}, {"rule", rule}, {"dry_run", e.dry_run != 0}, {"source", nullptr}};
    std::string line = time + " ";
    if (e.tick < backlog_before) {
      j["backlog"] = true;
      line += "(from before this reader started) ";
    }
    const double secs = static_cast<double>(e.throttled_ticks) / hz;
    char buf[160];
    if (e.type == XT_EVENT_NEW_SATURATED || e.type == XT_EVENT_NEW_RECOVERED) {
      if (e.type == XT_EVENT_NEW_SATURATED) {
        j["event"] = "new_source_saturated";
        line += "saturated the new-source budget of rule " + rule +
                ": untracked sources, new clients among them, are being dropped";
      } else {
        const double pps = secs > 0 ? static_cast<double>(e.dropped_packets) / secs : 0;
        j["event"] = "new_source_recovered";
        j["saturated_seconds"] = secs;
        j["dropped_packets"] = e.dropped_packets;
        j["dropped_pps"] = pps;
        std::snprintf(buf, sizeof(buf), " after %.1f s; %llu untracked packets dropped meanwhile (%.0f/s)", secs,
                      static_cast<unsigned long long>(e.dropped_packets), pps);
        line += "recovered the new-source budget of rule " + rule + buf;
      }
    } else {
      Cidr src{e.family, {}, e.per_len};
      std::copy(std::begin(e.addr), std::end(e.addr), src.addr.begin());
      const std::string source = format_cidr(src);
      const bool released = e.type == XT_EVENT_RELEASED;
      const bool banned = e.type == XT_EVENT_BANNED;
      j["event"] = banned ? "banned" : released ? "released" : "throttled";
      j["source"] = source;
      j["passed_packets"] = e.passed_packets;
      j["dropped_packets"] = e.dropped_packets;
      line += std::string(banned ? "banned    " : released ? "released  " : "throttled ") + source + " (rule " +
              rule + ")";
      if (banned) {
        j["why"] = "ban_after";
        j["throttled_seconds"] = secs;
        std::snprintf(buf, sizeof(buf), " after %.1f s over its limit (its rule's --ban-after)", secs);
        line += buf;
      }
      if (released) {
        j["throttled_seconds"] = secs;
        std::snprintf(buf, sizeof(buf), " after %.1f s; %llu dropped so far", secs,
                      static_cast<unsigned long long>(e.dropped_packets));
        line += buf;
      }
    }
    if (e.dry_run) line += " [dry-run: counted, not dropped]";
    sink(j, line);
  }
};

Result<EventReader> EventReader::open(const State& state, int ring_fd, Sink sink) {
  EventReader r;
  r.ctx_ = std::make_unique<Context>();
  r.ctx_->state = &state;
  r.ctx_->sink = std::move(sink);
  auto cfg = state.config();
  if (!cfg) return std::unexpected(cfg.error());
  r.ctx_->hz = cfg->hz;
  r.rb_ = ring_buffer__new(ring_fd, &Context::on_event, r.ctx_.get(), nullptr);
  if (!r.rb_) return system_error("cannot read the event ring", errno);
  r.ctx_->read_bans(false);  // the bans already in force are not news
  return r;
}

EventReader::EventReader(EventReader&& o) noexcept : ctx_(std::move(o.ctx_)), rb_(std::exchange(o.rb_, nullptr)) {}

EventReader& EventReader::operator=(EventReader&& o) noexcept {
  if (this != &o) {
    if (rb_) ring_buffer__free(rb_);
    ctx_ = std::move(o.ctx_);
    rb_ = std::exchange(o.rb_, nullptr);
  }
  return *this;
}

EventReader::~EventReader() {
  if (rb_) ring_buffer__free(rb_);
}

Result<int> EventReader::poll(int timeout_ms) {
  int n = ring_buffer__poll(rb_, timeout_ms);
  if (n < 0 && n != -EINTR) return system_error("cannot read events", n);
  n = std::max(n, 0);
  if (std::chrono::steady_clock::now() - ctx_->bans_read >= std::chrono::seconds(1)) n += ctx_->read_bans(true);
  return n;
}

void EventReader::mark_backlog_before(uint64_t tick) { ctx_->backlog_before = tick; }

void EventReader::discard() {
  ctx_->discarding = true;
  ring_buffer__consume(rb_);
  ctx_->discarding = false;
}

}  // namespace xt
