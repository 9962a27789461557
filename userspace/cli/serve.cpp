// SPDX-License-Identifier: MIT
// xthrottle serve [--config FILE] [--metrics ADDR:PORT] [--snapshot FILE [--snapshot-every DURATION]]
//                 [--record FILE [--record-max SIZE]]
//                 [--cluster URL [--cluster-every 100ms] [--cluster-name NAME] [--cluster-host NAME]
//                  [--cluster-password-file FILE] [--cluster-ca FILE] [--cluster-cert FILE --cluster-key FILE]]
// The daemon: Prometheus metrics, the data path's events to the log, the
// rules file applied at start and on SIGHUP, the state restored from a
// snapshot at start and saved to it periodically and on stop, and the
// `--scope fleet` rules shared with other hosts through Redis (fleet.h),
// and what the limit rules' sources send recorded a second at a time for
// `recommend --from` (recorder.h). Under systemd (Type=notify) it tells
// when it is ready: once the snapshot and the config are in.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stop_token>
#include <thread>

#include "cli.h"
#include "events.h"
#include "fleet.h"
#include "format.h"
#include "metrics.h"
#include "record_file.h"
#include "recorder.h"

namespace xt::cli {
namespace {

struct ServeOptions {
  std::string metrics = "127.0.0.1:9431";
  std::string config;
  std::string snapshot;
  std::string snapshot_every = "5min";
  std::string cluster, cluster_every = "100ms", cluster_name = "xthrottle", cluster_host, cluster_password_file;
  std::string cluster_ca, cluster_cert, cluster_key;
  std::string record, record_max = "256MB";
};

// The Redis URL, with the password from a file or the environment when the
// URL has none (so that it need not be on a command line others can read).
Result<Fleet::Options> fleet_options(const ServeOptions& o) {
  Fleet::Options f;
  auto url = parse_cluster_url(o.cluster);
  if (!url) return std::unexpected(url.error());
  f.url = *url;
  if (!o.cluster_password_file.empty()) {
    std::ifstream in(o.cluster_password_file);
    if (!in) return system_error("cannot read --cluster-password-file " + o.cluster_password_file, errno);
    std::getline(in, f.url.password);
  } else if (const char* env = std::getenv("XTHROTTLE_REDIS_PASSWORD"); env && f.url.password.empty()) {
    f.url.password = env;
  }
  auto every = parse_interval("--cluster-every", o.cluster_every);
  if (!every) return std::unexpected(every.error());
  f.every = *every;
  if (o.cluster_name.empty() || o.cluster_name.find_first_of(" \t\n") != std::string::npos)
    return usage_error("bad --cluster-name '" + o.cluster_name + "': a word, the prefix of the fleet's Redis keys");
  f.name = o.cluster_name;
  f.host = o.cluster_host;
  if (!f.url.tls && (!o.cluster_ca.empty() || !o.cluster_cert.empty() || !o.cluster_key.empty()))
    return usage_error("--cluster-ca, --cluster-cert and --cluster-key are TLS's: give --cluster rediss://...");
  if (o.cluster_cert.empty() != o.cluster_key.empty())
    return usage_error("--cluster-cert and --cluster-key go together (a client certificate and its key)");
  for (const std::string* file : {&o.cluster_ca, &o.cluster_cert, &o.cluster_key})
    if (!file->empty() && access(file->c_str(), R_OK) != 0) return system_error("cannot read " + *file, errno);
  f.tls = {o.cluster_ca, o.cluster_cert, o.cluster_key};
  return f;
}

// Tells the service manager how serve is doing (sd_notify's protocol: one
// datagram to $NOTIFY_SOCKET, a path or an abstract name): READY=1 once the
// snapshot and the config are in, so that what is ordered after the unit
// (each interface's attach) finds the state they made, with its table.
// Nothing without NOTIFY_SOCKET.
void notify_manager(const char* what) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const size_t len = path ? std::strlen(path) : 0;
  if (len < 2 || len >= sizeof(addr.sun_path) || (path[0] != '/' && path[0] != '@')) return;
  std::memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';
  Fd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0 ||
      sendto(fd.get(), what, std::strlen(what), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr),
             static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len)) < 0)
    std::cerr << "xthrottle: cannot tell the service manager " << what << ": " << std::strerror(errno) << "\n";
}

void log_line(const nlohmann::json& j) {
  static std::mutex mu;
  std::lock_guard<std::mutex> hold(mu);
  std::cout << json_text(j) << std::endl;
}

// Whether the state in pin_dir is the one `file` was saved from (its pins
// outlived serve), by the identity the snapshot records; an older file
// without one is taken for another state's.
bool own_snapshot(const std::string& pin_dir, const SnapshotFile& file) {
  auto state = State::open(pin_dir);
  auto id = state ? state_identity(*state) : Result<std::string>(std::unexpected(state.error()));
  return id && file.saved_from(*id);
}

int run_serve(const Globals& g, const ServeOptions& o) {
  const std::string& pin_dir = g.pin_dir;
  const std::string& metrics = o.metrics;
  const std::string& config = o.config;
  const std::string& snapshot = o.snapshot;
  auto every = parse_duration("--snapshot-every", o.snapshot_every, false);
  if (!every) return fail(every.error());
  if (*every == 0) return fail(usage_error("bad --snapshot-every '" + o.snapshot_every + "': at least 1s").error());
  // The options that only mean something beside another (--record-max
  // without --record, ...) are refused by CLI11 itself (needs(), below).
  std::optional<Fleet::Options> fleet_opts;
  if (!o.cluster.empty()) {
    auto f = fleet_options(o);
    if (!f) return fail(f.error());
    fleet_opts = std::move(*f);
  }
  std::optional<Recorder::Options> record_opts;
  if (!o.record.empty()) {
    // Checked here, not only when the record opens: that is after the
    // snapshot and the rules file, which a refusal must leave undone.
    auto max = parse_size("--record-max", o.record_max);
    if (!max) return fail(max.error());
    if (*max < kRecordMinBytes)
      return fail(usage_error("bad --record-max '" + o.record_max + "': at least 16KiB (two files of at least a "
                              "few seconds)")
                      .error());
    record_opts = Recorder::Options{o.record, *max};
  }
  install_stop_signals(true);
  // Its log going to a reader that went away (a pipe whose end closed, a
  // journal restarted) is no reason to die: SIGPIPE would kill serve before
  // its stop-time snapshot. The write fails, and serve goes on.
  std::signal(SIGPIPE, SIG_IGN);
  auto unix_time = [] { return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()); };
  // Without a config to make the state, it must be there already (a
  // mistyped --pin-dir creates nothing).
  if (config.empty() && snapshot.empty() && !State::exists(pin_dir)) return fail(State::open(pin_dir).error());
  // The config read before anything is made or restored: a bad one is an
  // error at start (its kind's exit code) with nothing changed, and its
  // [sources] decide the table of a state the snapshot makes. A state that
  // exists already must have that table, or nothing is restored into it.
  std::optional<RulesFile> config_file;  // applied at start as read here
  if (!config.empty()) {
    auto file = load_rules_file(config);
    if (!file) return fail(file.error());
    auto hz = tick_rate(pin_dir);
    if (!hz) return fail(hz.error());
    if (auto ok = check_rules_file(*file, *hz); !ok) return fail(ok.error());
    config_file = std::move(*file);
    if (State::exists(pin_dir)) {
      auto state = State::open(pin_dir);
      if (!state) return fail(state.error());
      auto cfg = state->config();
      if (!cfg) return fail(cfg.error());
      if (auto ok = check_same_table(*cfg, config_file->table, pin_dir); !ok) return fail(ok.error());
    }
  }
  // One serve per state: a second would split the events, and apply its
  // config over the first one's.
  if (auto ok = ensure_bpffs(pin_dir); !ok) return fail(ok.error());
  auto lock = ReaderLock::acquire(pin_dir, XT_MAP_EVENTS, "`xthrottle serve`");
  if (!lock) return fail(lock.error());
  // The fleet's link, once the snapshot and the config are in (below): a
  // bucket restored with its counters must not be told as use. The metrics
  // threads read it under fleet_mu, and hold it while they do.
  std::mutex fleet_mu;
  std::shared_ptr<Fleet> fleet;
  // While a snapshot is restored, its rules are in before their counters
  // are added back: a scrape then would read them at 0, and Prometheus
  // would take the next for a reset and count the whole past again. The
  // scrape fails instead (no sample is better than a wrong one). A scrape
  // reads the state under a shared hold of restore_mu and the restore takes
  // it whole: a flag checked before the read would let a scrape that began
  // just before the restore read its rules without their counters.
  std::shared_mutex restore_mu;
  // Held from before the server starts wherever a restore may follow: a
  // restore cut short left rules without their counters, and a state with
  // none yet, or an empty one (made anew, or by an attach after a reboot),
  // counts its traffic from 0: a scrape during the read of the snapshot
  // (a minute for tens of millions of sources) would report that, and
  // the restore then add the snapshot's counters to it, which Prometheus
  // would count a second time. A state that has rules, bans or lists is
  // not restored into, and its scrapes go on. Let go once the restore
  // below is done.
  std::unique_lock<std::shared_mutex> restoring(restore_mu, std::defer_lock);
  if (std::error_code ec; !snapshot.empty() && (std::filesystem::exists(snapshot + ".restoring", ec) ||
                                                (std::filesystem::exists(snapshot, ec) && restore_may_follow(pin_dir))))
    restoring.lock();
  auto server = MetricsServer::start(metrics, [&pin_dir, &fleet, &fleet_mu, &restore_mu]() -> Result<std::string> {
    std::shared_lock<std::shared_mutex> reading(restore_mu, std::try_to_lock);
    if (!reading.owns_lock()) return system_error("restoring the snapshot: the counters are not all back yet");
    auto text = render_metrics(pin_dir);
    std::shared_ptr<Fleet> f;
    {
      std::lock_guard<std::mutex> hold(fleet_mu);
      f = fleet;
    }
    if (text && f) *text += f->metrics();
    return text;
  });
  if (!server) return fail(server.error());
  log_line({{"event", "started"}, {"pin_dir", pin_dir}, {"metrics", metrics}, {"config", config},
            {"cluster", fleet_opts ? fleet_opts->url.redacted() : ""}, {"abi", XT_ABI_VERSION},
            {"unix_time", unix_time()}});
  auto stopped = [&](int rc) {
    log_line({{"event", "stopped"}, {"unix_time", unix_time()}});
    return rc;
  };
  // The record opened before the snapshot and the config: one serve cannot
  // write (a directory, a read-only path, another serve's) is refused with
  // them left undone. Refused after them, it had restored and applied, and
  // a restart (Restart=on-failure) then found a state not made anew and put
  // the snapshot aside.
  std::optional<RecordWriter> record_writer;
  if (record_opts) {
    auto opened = RecordWriter::open(record_opts->path, record_opts->max_bytes,
                                     [](const nlohmann::json& e) { log_line(e); });
    if (!opened) return stopped(fail(opened.error()));
    record_writer.emplace(std::move(*opened));
  }

  // `file`: the config as read (at start, the one checked before the
  // restore; on SIGHUP, read again), or why it could not be.
  auto apply_logged = [&](const char* why, Result<RulesFile> file) -> Result<void> {
    auto diff = file ? apply_loaded(pin_dir, *file, false) : Result<RulesDiff>(std::unexpected(file.error()));
    if (!diff) {
      std::cerr << "xthrottle: " << diff.error().message << "\n";
      log_line({{"event", "config_rejected"}, {"why", why}, {"path", config}, {"error", diff.error().message},
                {"unix_time", unix_time()}});
      return std::unexpected(diff.error());
    }
    log_line({{"event", "config_applied"}, {"why", why}, {"path", config}, {"sha256", file->sha256},
              {"added", diff->add.size()}, {"changed", diff->change.size()}, {"removed", diff->remove.size()},
              {"unchanged", diff->unchanged}, {"unix_time", unix_time()}});
    return {};
  };
  // The snapshot before the config: the config then has the last word on
  // the rules, and the sources keep what they had used. Only into a state
  // made afresh (after a reboot): pins that outlived serve are newer than
  // any snapshot. A file that is not a good snapshot, or one the state
  // cannot take, is moved aside (kept for a look, and from the next save);
  // serve goes on either way: the host must stay protected.
  auto save_logged = [&](const char* why, const State& only) {
    const auto start = std::chrono::steady_clock::now();
    auto sum = save_state(pin_dir, snapshot, &only);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!sum) {
      std::cerr << "xthrottle: " << sum.error().message << "\n";
      log_line({{"event", "snapshot_failed"}, {"why", why}, {"path", snapshot}, {"error", sum.error().message},
                {"unix_time", unix_time()}});
      return;
    }
    nlohmann::json j = {{"event", "snapshot_saved"}, {"why", why}, {"path", snapshot}, {"seconds", seconds},
                        {"unix_time", unix_time()}};
    j.update(sum->json());
    log_line(j);
  };
  if (!snapshot.empty()) {
    std::error_code ec;
    const bool there = std::filesystem::exists(snapshot, ec);
    auto file = there ? read_snapshot(snapshot) : Result<SnapshotFile>();
    // A good file is restored, the scrapes failing meanwhile (above). A
    // marker beside it says a restore is under way: one that a kill cut
    // short left a state that is not empty, and is not newer than the
    // snapshot, but part of it; the next start restores into it again
    // rather than skip the snapshot (and its next save write the part over
    // the whole).
    const std::string marker = snapshot + ".restoring";
    const bool marked = std::filesystem::exists(marker, ec);
    Result<std::optional<SnapshotSummary>> sum = std::nullopt;
    if (there && file) {
      if (!restoring.owns_lock()) restoring.lock();
      sum = restore_state(pin_dir, *file, snapshot, true, config_file ? config_file->table : TableSettings{}, marker);
    }
    if (restoring.owns_lock()) restoring.unlock();
    std::filesystem::remove(marker, ec);  // done, refused or moved aside below: nothing to resume
    if (!there) {
      log_line({{"event", "snapshot_none"}, {"path", snapshot}, {"unix_time", unix_time()}});
    } else if (!file && file.error().kind == ErrorKind::System) {
      // Kept aside too (unreadable to serve: another owner, an I/O error):
      // left where it was, the first save would write over it.
      const std::string aside = snapshot + ".unread-" + std::to_string(unix_time());
      std::filesystem::rename(snapshot, aside, ec);
      std::cerr << "xthrottle: " << file.error().message << "\n";
      log_line({{"event", "snapshot_failed"}, {"why", "start"}, {"path", snapshot}, {"moved_to", ec ? "" : aside},
                {"error", file.error().message}, {"unix_time", unix_time()}});
    } else if (!file) {
      const std::string aside = snapshot + ".rejected-" + std::to_string(unix_time());
      std::filesystem::rename(snapshot, aside, ec);
      std::cerr << "xthrottle: " << file.error().message << "\n";
      log_line({{"event", "snapshot_rejected"}, {"path", snapshot}, {"moved_to", ec ? "" : aside},
                {"error", file.error().message}, {"unix_time", unix_time()}});
    } else if (!sum) {
      // A good file the state could not take: kept aside too, or the
      // first periodic save would write over it.
      const std::string aside = snapshot + ".unrestored-" + std::to_string(unix_time());
      std::filesystem::rename(snapshot, aside, ec);
      std::cerr << "xthrottle: " << sum.error().message << "\n";
      log_line({{"event", "snapshot_failed"}, {"why", "start"}, {"path", snapshot}, {"moved_to", ec ? "" : aside},
                {"error", sum.error().message}, {"unix_time", unix_time()}});
    } else if (!*sum && marked) {
      // Skipped, though a restore was marked under way: an hour old or more
      // (the state has served on its own since), or another pin directory's.
      // The state may hold part of the snapshot only: the snapshot is kept
      // aside, or the first save would write the part over the whole.
      const std::string aside = snapshot + ".unresumed-" + std::to_string(unix_time());
      std::filesystem::rename(snapshot, aside, ec);
      log_line({{"event", "snapshot_skipped"}, {"path", snapshot}, {"moved_to", ec ? "" : aside},
                {"why", "the state outlived serve, and a restore into it was cut short over an hour ago (or the "
                        "marker is another state's): not resumed, the snapshot kept aside"},
                {"unix_time", unix_time()}});
    } else if (!*sum && own_snapshot(pin_dir, *file)) {
      log_line({{"event", "snapshot_skipped"}, {"path", snapshot},
                {"why", "the state outlived serve (it is the one the snapshot was saved from): newer than the "
                        "snapshot"},
                {"unix_time", unix_time()}});
    } else if (!*sum) {
      // Another state (a reboot since) that something filled before serve
      // came (a ban add at boot, a rule added by hand while serve was
      // down): not restored into, and kept aside. The first save wrote over
      // it: every ban, quota and counter from before the reboot, gone.
      const std::string aside = snapshot + ".skipped-" + std::to_string(unix_time());
      std::filesystem::rename(snapshot, aside, ec);
      log_line({{"event", "snapshot_skipped"}, {"path", snapshot}, {"moved_to", ec ? "" : aside},
                {"why", file->state_id.empty()
                            ? "the state is not empty, and the snapshot (an older format) does not say which state "
                              "it was saved from: not restored into it, the snapshot kept aside (`xthrottle restore "
                              "FILE` adds it, rules deleted since included)"
                            : "the state was made since the snapshot and is not empty (rules, bans or lists went in "
                              "before serve started): not restored into it, the snapshot kept aside (`xthrottle "
                              "restore FILE` adds it)"},
                {"unix_time", unix_time()}});
    } else {
      nlohmann::json j = {{"event", "snapshot_restored"}, {"path", snapshot}, {"unix_time", unix_time()}};
      j.update((*sum)->json());
      log_line(j);
    }
  }

  // A config that does not apply at start is an error, with the exit code
  // of its kind: the operator is there to see it. Later (SIGHUP) a bad file
  // is reported and the running rules stay as they are.
  if (!config.empty())
    if (auto ok = apply_logged("start", std::move(*config_file)); !ok) return stopped(ok.error().exit_code());

  // It never waits for Redis: it connects, and reconnects, on its own thread.
  if (fleet_opts) {
    auto started = Fleet::start(pin_dir, *fleet_opts, [](const nlohmann::json& e) { log_line(e); });
    if (!started) return stopped(fail(started.error()));
    std::lock_guard<std::mutex> hold(fleet_mu);
    fleet = std::move(*started);
  }

  // After the snapshot and the config too: restored counters are not
  // traffic.
  std::unique_ptr<Recorder> recorder;
  if (record_writer) {
    recorder = Recorder::start(pin_dir, std::move(*record_writer));
    log_line({{"event", "record_started"}, {"path", record_opts->path}, {"max_bytes", record_opts->max_bytes},
              {"unix_time", unix_time()}});
  }

  auto state = State::open(pin_dir);
  if (!state) return stopped(fail(state.error()));
  auto reader = EventReader::open(*state, state->events_fd(),
                                  [](const nlohmann::json& e, const std::string&) { log_line(e); });
  if (!reader) return stopped(fail(reader.error()));
  // Events that piled up while no serve ran are delivered, marked as such.
  auto started_at = state->now();
  if (!started_at) return stopped(fail(started_at.error()));
  reader->mark_backlog_before(*started_at);

  // The state was made anew (detach, its pins removed, attach again: a
  // table resized). Everything here holds the old one: the event ring, the
  // ended bans to clear, the ageing, the lock that makes it one serve a
  // state, the fleet's record of what it told (which, kept for the new
  // state, would tell the fleet to lift every ban and delete every list).
  // A fresh serve takes the new state whole, its snapshot restored into it
  // if it is empty: systemd starts one again (Restart=on-failure). No save
  // on the way out: it would write the new state over the snapshot.
  auto state_made_anew = [&] {
    if (state->still_pinned() || !State::exists(pin_dir)) return false;
    log_line({{"event", "state_made_anew"},
              {"why", "the state in " + pin_dir + " is not the one serve opened: a fresh serve takes it"},
              {"unix_time", unix_time()}});
    std::cerr << "xthrottle: the state in " << pin_dir
              << " was made anew while serve ran; serve stops so that a fresh one takes it (systemd starts it "
                 "again)\n";
    return true;
  };
  notify_manager("READY=1");
  int rc = 0;
  bool made_anew = false;
  auto next_save = std::chrono::steady_clock::now() + std::chrono::seconds(*every);
  // The ended bans cleared every few seconds: the data path takes a rule's
  // ban out only when its source comes back, and a botnet's sources that
  // never do would fill the table (State::clear_ended_bans).
  constexpr auto kClearBansEvery = std::chrono::seconds(5);
  auto next_clear = std::chrono::steady_clock::now() + kClearBansEvery;
  // The table's idle stamps kept short of their wrap (State::age_stamps),
  // at once and then every 30 s (less for a short window: table.h,
  // age_every_seconds), on a thread of its own with a State of its
  // own: this loop waits on the pin directory's lock to save a snapshot or
  // apply the config, and a command holding it for long (a restore by
  // hand) must not hold the ageing back past the wrap. It takes no lock:
  // only the kernel writes the tags, each by compare-and-swap.
  std::jthread ageing([&pin_dir, &unix_time](std::stop_token stop) {
    // Asked to stop by its token (when run_serve returns), not g_stop,
    // which only the main thread reads.
    std::mutex mu;
    std::condition_variable_any woken;
    std::optional<State> mine;  // opened here, and again after a failure
    auto every = std::chrono::seconds(State::kAgeRetrySeconds);
    // The totals' fair words kept short of their wrap too (74.6 hours:
    // State::refresh_fair_words), at once and then every hour: a few rules
    // each round (a walk of the table each), so that many rules with a
    // total do not hold the stamps' ageing back.
    auto next_fair = std::chrono::steady_clock::now();
    uint32_t fair_from = 0;
    while (!stop.stop_requested()) {
      auto aged = [&]() -> Result<State::Aged> {
        if (!mine) {
          auto opened = State::open(pin_dir);
          if (!opened) return std::unexpected(opened.error());
          auto cfg = opened->config();
          if (!cfg) return std::unexpected(cfg.error());
          every = std::chrono::seconds(age_every_seconds(*cfg));
          mine.emplace(std::move(*opened));
        }
        return mine->age_stamps();
      }();
      if (!aged) {
        log_line({{"event", "stamps_not_aged"}, {"error", aged.error().message}, {"unix_time", unix_time()}});
        mine.reset();
      } else if (std::chrono::steady_clock::now() >= next_fair) {
        auto round = mine->refresh_fair_words(fair_from, State::kFairRefreshRulesARound);
        if (!round) {
          log_line({{"event", "fair_words_not_refreshed"},
                    {"error", round.error().message},
                    {"unix_time", unix_time()}});
        } else if ((fair_from = round->next) == 0) {
          next_fair = std::chrono::steady_clock::now() + std::chrono::seconds(State::kFairRefreshSeconds);
        }
      }
      std::unique_lock<std::mutex> hold(mu);
      woken.wait_for(hold, stop, mine ? every : std::chrono::seconds(State::kAgeRetrySeconds), [] { return false; });
    }
  });
  while (!g_stop) {
    // Looked at every few seconds, and before each save, which would
    // write a state made anew over the snapshot.
    const bool saving = !snapshot.empty() && std::chrono::steady_clock::now() >= next_save;
    if ((saving || std::chrono::steady_clock::now() >= next_clear) && state_made_anew()) {
      made_anew = true;
      rc = 1;
      break;
    }
    if (std::chrono::steady_clock::now() >= next_clear) {
      // Without waiting: a command that holds the lock for long (a restore,
      // a large list) must not stall the events; the next round clears.
      Result<void> cleared;
      if (auto lock = DirLock::try_acquire(pin_dir); !lock)
        cleared = std::unexpected(lock.error());
      else if (*lock)
        cleared = state->clear_ended_bans();
      if (!cleared)
        log_line({{"event", "bans_not_cleared"}, {"error", cleared.error().message}, {"unix_time", unix_time()}});
      next_clear = std::chrono::steady_clock::now() + kClearBansEvery;
    }
    if (saving) {
      save_logged("periodic", *state);
      next_save = std::chrono::steady_clock::now() + std::chrono::seconds(*every);
    }
    if (g_reload) {
      g_reload = 0;
      if (config.empty())
        log_line({{"event", "config_rejected"}, {"why", "SIGHUP"}, {"error", "serve runs without --config"},
                  {"unix_time", unix_time()}});
      else
        (void)apply_logged("SIGHUP", load_rules_file(config));
    }
    if (auto n = reader->poll(250); !n) {
      std::cerr << "xthrottle: " << n.error().message << "\n";
      rc = 1;
      break;
    }
  }
  notify_manager("STOPPING=1");
  {
    std::shared_ptr<Fleet> last;  // its last exchange done when the last reader lets go
    std::lock_guard<std::mutex> hold(fleet_mu);
    last = std::move(fleet);
  }
  if (!snapshot.empty() && !made_anew) {
    if (state_made_anew())  // since the last look: a stop within seconds of it
      rc = 1;
    else
      save_logged("stop", *state);
  }
  return stopped(rc);
}

}  // namespace

void add_serve_command(CLI::App& app, const Globals& g, int& rc) {
  auto o = std::make_shared<ServeOptions>();
  auto* serve = app.add_subcommand("serve", "Run as a daemon: Prometheus metrics, events, rules file");
  serve->add_option("--metrics", o->metrics, "Address for the Prometheus endpoint (/metrics)")->capture_default_str();
  serve->add_option("--config", o->config, "Apply this rules file at start and on SIGHUP");
  auto* snapshot = serve->add_option("--snapshot", o->snapshot,
                                     "Restore the state from this snapshot at start (before --config), save it there "
                                     "periodically and on stop");
  serve->add_option("--snapshot-every", o->snapshot_every, "How often to save the snapshot")
      ->capture_default_str()
      ->needs(snapshot);
  auto* record = serve->add_option("--record", o->record,
                    "Record what the limit rules' sources send, a second at a time, to this file for recommend --from "
                    "(appended to across restarts)");
  serve->add_option("--record-max", o->record_max,
                    "Most the record takes: FILE and FILE.1 each hold half, the older half given up first")
      ->capture_default_str()
      ->needs(record);
  auto* cluster = serve->add_option("--cluster", o->cluster,
                    "Share the --scope fleet rules with the other hosts of this Redis: redis://[USER:PASSWORD@]HOST[:PORT][/DB], "
                    "rediss://... (TLS) or unix:///PATH");
  serve->add_option("--cluster-every", o->cluster_every, "How often the hosts exchange what they passed (10ms to 10s)")
      ->capture_default_str()
      ->needs(cluster);
  serve->add_option("--cluster-name", o->cluster_name, "The fleet's name: the prefix of its Redis keys")
      ->capture_default_str()
      ->needs(cluster);
  serve->add_option("--cluster-host", o->cluster_host, "This host's name in the fleet (default: hostname:pin-dir)")
      ->needs(cluster);
  serve->add_option("--cluster-password-file", o->cluster_password_file,
                    "Read Redis' password from this file (or set XTHROTTLE_REDIS_PASSWORD) rather than the URL")
      ->needs(cluster);
  serve->add_option("--cluster-ca", o->cluster_ca,
                    "rediss://: the CA certificates (PEM) that vouch for Redis' certificate (default: the system's)")
      ->needs(cluster);
  serve->add_option("--cluster-cert", o->cluster_cert,
                    "rediss://: a client certificate (PEM) for a Redis that asks for one (tls-auth-clients)")
      ->needs(cluster);
  serve->add_option("--cluster-key", o->cluster_key, "rediss://: the client certificate's key (PEM)")
      ->needs(cluster);
  serve->callback([&g, &rc, o] { rc = run_serve(g, *o); });
}

}  // namespace xt::cli
