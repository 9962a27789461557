// SPDX-License-Identifier: MIT
#include "metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <nlohmann/json.hpp>
#include <netdb.h>

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <sstream>
#include <utility>
#include <vector>

#include "policy.h"
#include "status.h"
#include "state.h"

namespace xt {
namespace {

// Label values escaped as the exposition format wants, and valid UTF-8 (an
// interface's name can hold any bytes): bad bytes become U+FFFD.
std::string escape(const std::string& raw) {
  const std::string v = nlohmann::json(raw).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const std::string text = nlohmann::json::parse(v).get<std::string>();
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// The text exposition format: each family's HELP and TYPE, then all of its
// samples, whatever order they were added in (parsers such as Python's
// prometheus_client take a family's samples after another header for a
// family of their own).
class Exposition {
 public:
  void family(const std::string& name, const char* type, const char* help) {
    order_.push_back(name);
    families_[name] = "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void sample(const std::string& name, const std::map<std::string, std::string>& labels, double value) {
    std::string& out = families_.at(name);  // a family is declared before its samples
    out += name;
    if (!labels.empty()) {
      out += "{";
      bool first = true;
      for (const auto& [k, v] : labels) {
        out += (first ? "" : ",") + k + "=\"" + escape(v) + "\"";
        first = false;
      }
      out += "}";
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), " %.17g\n", value);
    out += buf;
  }
  // A family with one unlabelled sample.
  void gauge(const std::string& name, const char* help, double value) {
    family(name, "gauge", help);
    sample(name, {}, value);
  }
  void counter(const std::string& name, const char* help, double value) {
    family(name, "counter", help);
    sample(name, {}, value);
  }
  std::string str() const {
    std::string out;
    for (const auto& name : order_) out += families_.at(name);
    return out;
  }

 private:
  std::vector<std::string> order_;
  std::map<std::string, std::string> families_;
};

}  // namespace

Result<std::string> render_metrics(const std::string& pin_dir) {
  auto status = read_status(pin_dir);
  if (!status) return std::unexpected(status.error());
  Exposition m;

  m.gauge("xthrottle_up", "1 if the pinned state could be read.", status->state ? 1 : 0);
  m.gauge("xthrottle_protected", "1 if status has no protection warning (see xthrottle status).",
          status->warnings.empty() ? 1 : 0);
  m.gauge("xthrottle_warnings", "Protection warnings status reports now.", static_cast<double>(status->warnings.size()));
  m.family("xthrottle_config_drift", "gauge",
           "1 if the live rules may not be what the applied config file says: the file changed on disk "
           "(file_changed), or rule add/del changed the rules (rules_differ).");
  m.sample("xthrottle_config_drift", {{"kind", "file_changed"}}, status->config_changed ? 1 : 0);
  m.sample("xthrottle_config_drift", {{"kind", "rules_differ"}}, status->rules_drifted ? 1 : 0);
  m.family("xthrottle_attached", "gauge",
           "1 for each interface of this network namespace the program runs on, with its XDP mode.");
  for (const auto& a : status->interfaces)
    m.sample("xthrottle_attached",
             {{"interface", a.ifname}, {"mode", mode_name(a.mode)}, {"multiprog", a.multiprog ? "true" : "false"}},
             a.live ? 1 : 0);
  if (!status->state) return m.str();

  auto state = State::open(pin_dir);
  if (!state) return std::unexpected(state.error());
  auto stats = read_stats(*state);
  if (!stats) return std::unexpected(stats.error());
  auto meta = state->meta();
  if (!meta) return std::unexpected(meta.error());

  size_t dry = 0;
  for (const auto& e : status->rules) dry += (e.rule.flags & XT_RULE_DRY_RUN) != 0;
  m.gauge("xthrottle_rules", "Rules in the rule table.", static_cast<double>(status->rules.size()));
  m.gauge("xthrottle_dry_run_rules", "Rules that count what they would drop but drop nothing.",
          static_cast<double>(dry));

  // Per rule, so that summing over rule gives the totals; "none" holds what
  // no rule decided (passed: no rule covers it, or not IP; dropped:
  // malformed, or banned or blocklisted while no rule covers it).
  m.family("xthrottle_packets_total", "counter", "Packets the XDP program passed or dropped, by rule.");
  m.family("xthrottle_bytes_total", "counter", "Bytes of those packets (whole Ethernet frames), by rule.");
  m.family("xthrottle_dry_run_packets_total", "counter",
           "Packets a dry-run rule would have dropped (and passed), by rule.");
  m.family("xthrottle_new_source_dropped_packets_total", "counter",
           "Packets from untracked sources dropped over the rule's new-source budget, by rule.");
  m.family("xthrottle_redirected_packets_total", "counter",
           "Packets the rule would have dropped, sent out another interface instead (--over redirect), by rule.");
  m.family("xthrottle_marked_packets_total", "counter",
           "Packets the rule passed marked Congestion Experienced (--over ecn), by rule.");
  m.family("xthrottle_new_source_saturated", "gauge",
           "1 while the rule's new-source budget is turning untracked sources away (new clients with them); "
           "a dry-run rule's would be (xthrottle_rule_dry_run).");
  m.family("xthrottle_rule_dry_run", "gauge",
           "1 for a rule in dry-run: its drops, new-source drops and saturation are what it would do, and it "
           "passes everything; 0 for the others.");
  m.family("xthrottle_rule_fair_share", "gauge",
           "A rule with a total: the share of it each source may claim now, in the total's units (packets or "
           "bytes) a second; 0 while the total does not bind.");
  m.family("xthrottle_rule_fair_quiet_seconds", "gauge",
           "A rule with a total: how long a source must have been quiet for its claim to take the total's last "
           "quarter; above 0 while more sources claim their share than the total passes.");
  m.family("xthrottle_rule_window_limit", "gauge",
           "Each window of a limit rule, per source: packets (kind=\"packets\") or bytes (kind=\"bytes\") it "
           "allows a second on average; the window and its burst are labels.");
  for (const auto& r : stats->rules) {
    // A rule is its CIDR and its match: `match` is there only for a rule
    // that has one ("udp/53", "tcp/22 syn"), so a rule without keeps the
    // series it always had.
    std::map<std::string, std::string> rule{{"rule", format_cidr(r.cidr)}};
    if (const std::string match = format_match(r.spec.match); !match.empty()) rule["match"] = match;
    auto with = [&](const char* key, const char* value) {
      auto labels = rule;
      labels[key] = value;
      return labels;
    };
    const std::string name = rule_name(r.cidr, r.spec.match);
    m.sample("xthrottle_packets_total", with("action", "passed"), r.stats.passed_packets);
    m.sample("xthrottle_packets_total", with("action", "dropped"), r.stats.dropped_packets);
    m.sample("xthrottle_bytes_total", with("action", "passed"), r.stats.passed_bytes);
    m.sample("xthrottle_bytes_total", with("action", "dropped"), r.stats.dropped_bytes);
    m.sample("xthrottle_dry_run_packets_total", rule, r.stats.dryrun_packets);
    m.sample("xthrottle_new_source_dropped_packets_total", rule, r.stats.new_source_dropped_packets);
    m.sample("xthrottle_redirected_packets_total", rule, r.stats.redirected_packets);
    m.sample("xthrottle_marked_packets_total", rule, r.stats.marked_packets);
    m.sample("xthrottle_new_source_saturated", rule,
             std::ranges::any_of(status->saturated, [&](const Saturation& s) { return s.rule == name; }));
    m.sample("xthrottle_rule_dry_run", rule, (r.rule.flags & XT_RULE_DRY_RUN) ? 1 : 0);
    if (auto share = fair_share(r, stats->hz)) m.sample("xthrottle_rule_fair_share", rule, *share);
    if (auto quiet = fair_quiet_seconds(r, stats->hz)) m.sample("xthrottle_rule_fair_quiet_seconds", rule, *quiet);
    if (r.spec.action != XT_ACT_LIMIT) continue;
    for (const Window& w : limits_of(r.spec).windows) {
      auto labels = rule;
      labels["window"] = window_name(w);
      labels["kind"] = w.bytes ? "bytes" : "packets";
      labels["burst"] = std::to_string(w.burst);
      const double per_second = static_cast<double>(w.count) / (w.bytes ? 8.0 : 1.0) /
                                (static_cast<double>(w.period_ns) / static_cast<double>(kNsPerSec));
      m.sample("xthrottle_rule_window_limit", labels, per_second);
    }
  }
  const auto& reasons = stats->reasons;
  const xt_count none_passed{reasons[XT_PASS_UNMATCHED].packets + reasons[XT_PASS_NON_IP].packets,
                             reasons[XT_PASS_UNMATCHED].bytes + reasons[XT_PASS_NON_IP].bytes};
  m.sample("xthrottle_packets_total", {{"action", "passed"}, {"rule", "none"}}, none_passed.packets);
  const xt_count none_dropped = stats->dropped_without_rule();
  m.sample("xthrottle_packets_total", {{"action", "dropped"}, {"rule", "none"}}, none_dropped.packets);
  m.sample("xthrottle_bytes_total", {{"action", "passed"}, {"rule", "none"}}, none_passed.bytes);
  m.sample("xthrottle_bytes_total", {{"action", "dropped"}, {"rule", "none"}}, none_dropped.bytes);

  m.family("xthrottle_reason_packets_total", "counter",
           "Packets by the reason for their verdict (the reasons of xthrottle stats).");
  for (uint32_t r = 0; r < XT_REASONS; r++)
    m.sample("xthrottle_reason_packets_total",
             {{"reason", reason_info(r).key}, {"action", r >= XT_FIRST_DROP ? "dropped" : "passed"}},
             reasons[r].packets);
  m.gauge("xthrottle_tracked_sources", "Sources with a bucket in the source table, used within the idle window.",
          static_cast<double>(status->tracked_sources));
  m.gauge("xthrottle_idle_sources",
          "Sources quiet past the idle window whose buckets the table still keeps (a newcomer may take their slot).",
          static_cast<double>(status->idle_sources));
  m.gauge("xthrottle_max_sources", "Size of the source table (attach --max-sources).", status->max_sources);
  m.gauge("xthrottle_table_slots",
          "Slots of the source table: room for this many sources, 15 for every 8 of --max-sources, so that sets "
          "the hash fills unevenly still hold theirs.",
          static_cast<double>(status->table_slots));
  m.gauge("xthrottle_source_table_bytes", "Kernel memory of the source table, its tags and marks.",
          static_cast<double>(status->bytes_per_source) * status->max_sources);
  m.family("xthrottle_kernel_memory_bytes", "gauge",
           "Kernel memory of the state's maps, used or not, by part (source_table, hot_cache, known_table, "
           "blocklists, other): the kernel's own account.");
  for (const auto& [part, bytes] : status->kernel_memory)
    m.sample("xthrottle_kernel_memory_bytes", {{"part", part}}, static_cast<double>(bytes));
  const uint64_t admitted = stats->extra(XT_SOURCES_ADMITTED);
  m.counter("xthrottle_sources_admitted_total", "Sources the data path admitted, a bucket made for each (not those a restore or the fleet put in).", static_cast<double>(admitted));
  m.counter("xthrottle_sources_evicted_total", "Buckets whose slot a new source took (idle ones, or the least recently used of a full set).",
            static_cast<double>(stats->extra(XT_SOURCES_EVICTED)));
  m.counter("xthrottle_sources_evicted_active_total",
            "Of the evictions, those of sources still sending (used within the idle window): the newcomer's set and "
            "the next were full of sources in use. The source is untracked, and starts over with a fresh bucket if "
            "let back in.",
            static_cast<double>(stats->extra(XT_SOURCES_EVICTED_ACTIVE)));
  m.counter("xthrottle_redirected_packets_all_total",
            "Packets rules would have dropped, sent out another interface instead (--over redirect), all rules.",
            static_cast<double>(stats->extra(XT_REDIRECTED)));
  m.counter("xthrottle_captured_packets_total", "Packets sampled for `xthrottle capture`.",
            static_cast<double>(stats->extra(XT_CAPTURED)));
  m.counter("xthrottle_proofs_sent_total",
            "SYN-ACKs carrying a cookie sent to TCP sources over a new-source budget (--verify tcp).",
            static_cast<double>(stats->extra(XT_PROOFS_SENT)));
  m.counter("xthrottle_proofs_passed_total", "RSTs that carried a good cookie back: sources that proved their address.",
            static_cast<double>(stats->extra(XT_PROOFS_PASSED)));
  m.counter("xthrottle_admitted_by_proof_total", "Sources admitted outside a new-source budget, having proved their address.",
            static_cast<double>(stats->extra(XT_ADMITTED_BY_PROOF)));
  m.counter("xthrottle_admitted_by_memory_total",
            "Sources admitted outside a new-source budget, known from earlier good behaviour (--remember).",
            static_cast<double>(stats->extra(XT_ADMITTED_BY_MEMORY)));
  m.gauge("xthrottle_known_sources",
          "Sources the known table admits now (they behaved within the longest --remember, or proved their address).",
          static_cast<double>(status->known_sources));
  m.counter("xthrottle_known_recorded_total", "Entries written to the known table (new sources and refreshes).",
            static_cast<double>(status->known_recorded));
  m.gauge("xthrottle_known_max", "Size of the known table, in entries.", static_cast<double>(status->known_max));
  m.counter("xthrottle_events_total", "Events delivered to the daemon (a source throttled or released, a budget saturated or recovered).",
            static_cast<double>(stats->extra(XT_EVENTS_SENT)));
  m.counter("xthrottle_events_suppressed_total", "Events over the per-second cap, not written.",
            static_cast<double>(stats->extra(XT_EVENTS_SUPPRESSED)));
  m.counter("xthrottle_events_lost_total",
            "Events the daemon's ring had no room for (it was down or behind), not delivered.",
            static_cast<double>(stats->extra(XT_EVENTS_LOST)));
  m.gauge("xthrottle_config_applied_timestamp_seconds", "When the live config file was applied (0: none).",
          static_cast<double>(meta->applied_at));
  m.family("xthrottle_info", "gauge", "Constant 1, with the build's ABI version and the kernel's tick rate.");
  m.sample("xthrottle_info", {{"abi", std::to_string(XT_ABI_VERSION)}, {"hz", std::to_string(status->hz)}}, 1);
  return m.str();
}

namespace {

// "ADDR:PORT", "[V6ADDR]:PORT", or "PORT" (127.0.0.1) as a socket address.
Result<sockaddr_storage> listen_address(const std::string& text, bool* v6) {
  const auto colon = text.rfind(':');
  std::string host = colon == std::string::npos ? "127.0.0.1" : text.substr(0, colon);
  const std::string port = colon == std::string::npos ? text : text.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto n = parse_positive("--metrics", port);
  if (!n || *n > 65535) return usage_error("bad --metrics '" + text + "': expected ADDR:PORT, e.g. 127.0.0.1:9431");
  sockaddr_storage out{};
  auto* in4 = reinterpret_cast<sockaddr_in*>(&out);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(*n));
    *v6 = false;
  } else if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(*n));
    *v6 = true;
  } else {
    return usage_error("bad --metrics '" + text + "': '" + host + "' is not an IPv4 or IPv6 address");
  }
  return out;
}

}  // namespace

struct MetricsServer::Context {
  Render render;

  // Connections whose request has not arrived whole yet, with when they
  // came: the watchdog shuts down those older than kRequestSeconds. A
  // connection leaves the map when libmicrohttpd reports it closed, which it
  // does before it closes the socket: under the lock, a socket in the map is
  // still this connection's.
  struct Pending {
    int fd;
    std::chrono::steady_clock::time_point since;
  };
  std::mutex mu;
  std::map<MHD_Connection*, Pending> pending;
  std::condition_variable wake;
  bool stopping = false;
  std::thread watchdog;

  static void notify(void* self, MHD_Connection* c, void**, MHD_ConnectionNotificationCode code) {
    auto* ctx = static_cast<Context*>(self);
    std::lock_guard<std::mutex> hold(ctx->mu);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      const MHD_ConnectionInfo* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
      if (info) ctx->pending[c] = {info->connect_fd, std::chrono::steady_clock::now()};
    } else {
      ctx->pending.erase(c);
    }
  }

  // A request answered: the next one on the connection has its deadline too.
  static void completed(void* self, MHD_Connection* c, void**, MHD_RequestTerminationCode) {
    auto* ctx = static_cast<Context*>(self);
    const MHD_ConnectionInfo* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    std::lock_guard<std::mutex> hold(ctx->mu);
    if (info) ctx->pending[c] = {info->connect_fd, std::chrono::steady_clock::now()};
  }

  void watch() {
    std::unique_lock<std::mutex> hold(mu);
    while (!stopping) {
      wake.wait_for(hold, std::chrono::milliseconds(200));
      const auto deadline = std::chrono::steady_clock::now() - std::chrono::seconds(kRequestSeconds);
      for (auto it = pending.begin(); it != pending.end();) {
        if (it->second.since < deadline) {
          shutdown(it->second.fd, SHUT_RDWR);  // libmicrohttpd sees it end, and closes it
          it = pending.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  static MHD_Result respond(MHD_Connection* c, unsigned status, const std::string& body, const char* type,
                             const char* allow = nullptr) {
    MHD_Response* r = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (allow) MHD_add_response_header(r, "Allow", allow);
    const MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
  }

  static MHD_Result handle(void* self, MHD_Connection* c, const char* url, const char* method, const char*,
                           const char*, size_t* upload_size, void** request) {
    // The first call has the headers; the body (none is wanted) follows.
    static int started;
    if (!*request) {
      *request = &started;
      auto* ctx = static_cast<Context*>(self);
      std::lock_guard<std::mutex> hold(ctx->mu);
      ctx->pending.erase(c);  // the request has arrived: no more deadline
      return MHD_YES;
    }
    if (*upload_size) return MHD_NO;  // a body: not a scrape
    if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0)
      // RFC 9110 15.5.6: a 405 names the methods the resource has.
      return respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n", "text/plain", "GET, HEAD");
    if (std::strcmp(url, "/metrics") == 0) {
      auto text = static_cast<Context*>(self)->render();
      if (!text) return respond(c, MHD_HTTP_INTERNAL_SERVER_ERROR, text.error().message + "\n", "text/plain");
      return respond(c, MHD_HTTP_OK, *text, "text/plain; version=0.0.4; charset=utf-8");
    }
    if (std::strcmp(url, "/") == 0) return respond(c, MHD_HTTP_OK, "xthrottle: metrics at /metrics\n", "text/plain");
    return respond(c, MHD_HTTP_NOT_FOUND, "not found: metrics are at /metrics\n", "text/plain");
  }
};

Result<MetricsServer> MetricsServer::start(const std::string& listen, Render render) {
  bool v6 = false;
  auto addr = listen_address(listen, &v6);
  if (!addr) return std::unexpected(addr.error());
  MetricsServer s;
  s.ctx_ = std::make_unique<Context>();
  s.ctx_->render = std::move(render);
  const uint16_t port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&*addr)->sin6_port
                                 : reinterpret_cast<sockaddr_in*>(&*addr)->sin_port);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
  if (v6) flags |= MHD_USE_IPv6;
  s.daemon_ = MHD_start_daemon(flags, port, nullptr, nullptr, &Context::handle, s.ctx_.get(),
                               MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&*addr),
                               MHD_OPTION_CONNECTION_TIMEOUT, kIdleSeconds,
                               MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,
                               MHD_OPTION_PER_IP_CONNECTION_LIMIT, kMaxPerAddress,
                               MHD_OPTION_NOTIFY_CONNECTION, &Context::notify, s.ctx_.get(),
                               MHD_OPTION_NOTIFY_COMPLETED, &Context::completed, s.ctx_.get(),
                               MHD_OPTION_END);
  if (!s.daemon_)
    return system_error("cannot listen on " + listen + " (in use, or not an address of this host)");
  Context* ctx = s.ctx_.get();
  ctx->watchdog = std::thread([ctx] { ctx->watch(); });
  return s;
}

MetricsServer::MetricsServer(MetricsServer&& o) noexcept
    : ctx_(std::move(o.ctx_)), daemon_(std::exchange(o.daemon_, nullptr)) {}

void MetricsServer::stop() {
  if (daemon_) MHD_stop_daemon(std::exchange(daemon_, nullptr));
  if (ctx_ && ctx_->watchdog.joinable()) {
    {
      std::lock_guard<std::mutex> hold(ctx_->mu);
      ctx_->stopping = true;
    }
    ctx_->wake.notify_all();
    ctx_->watchdog.join();
  }
}

MetricsServer& MetricsServer::operator=(MetricsServer&& o) noexcept {
  if (this != &o) {
    stop();
    ctx_ = std::move(o.ctx_);
    daemon_ = std::exchange(o.daemon_, nullptr);
  }
  return *this;
}

MetricsServer::~MetricsServer() { stop(); }

}  // namespace xt
