// SPDX-License-Identifier: MIT
// xthrottle events [--json] [--buffer N]
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include "cli.h"
#include "events.h"
#include "format.h"

namespace xt::cli {
namespace {

// What `events` writes, queued. A reader of its output that stops reading
// (a pager left open, a stalled pipe) used to stop it draining its ring,
// and once the ring was full the data path's events were lost without a
// word. The ring is now drained into this queue whatever the output does;
// up to `limit` lines wait there, and past that each event is counted as
// lost, the count written as a line of its own where the loss began.
class Outbox {
 public:
  Outbox(size_t limit, bool json) : limit_(limit), json_(json) {}

  void add(std::string line) {
    if (lines_.size() >= limit_) {
      lost_++;
      return;
    }
    tell_lost();
    lines_.push_back(std::move(line) + "\n");
  }
  bool pending() const { return !lines_.empty() || lost_; }

  // Writes what stdout takes without waiting; false once stdout failed:
  // its reader went away, or (failure(): the errno) a write failed, a full
  // disk, which must not end the events in silence.
  int failure() const { return failure_; }
  bool flush() {
    if (lines_.empty()) tell_lost();
    while (!lines_.empty()) {
      pollfd out{.fd = STDOUT_FILENO, .events = POLLOUT, .revents = 0};
      if (::poll(&out, 1, 0) <= 0) return true;  // full (or interrupted): later
      if (out.revents & (POLLERR | POLLHUP | POLLNVAL)) return false;
      // A line is under PIPE_BUF: a pipe that polls writable takes it whole.
      const std::string& line = lines_.front();
      const ssize_t n = ::write(STDOUT_FILENO, line.data() + at_, line.size() - at_);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;
        if (errno != EPIPE) failure_ = errno;
        return false;
      }
      at_ += static_cast<size_t>(n);
      if (at_ == line.size()) {
        lines_.pop_front();
        at_ = 0;
      }
      if (lines_.empty()) tell_lost();
    }
    return true;
  }

 private:
  void tell_lost() {
    if (!lost_) return;
    const std::string time = iso8601(std::chrono::system_clock::now());
    const std::string why = "the output was not read: more than " + std::to_string(limit_) + " lines waited";
    if (json_) {
      lines_.push_back(
          json_text({{"time", time}, {"event", "lost"}, {"events", lost_}, {"source", nullptr}, {"why", why}}) + "\n");
    } else {
      lines_.push_back(time + " lost " + std::to_string(lost_) + " events: " + why + "\n");
    }
    lost_ = 0;
  }

  size_t limit_;
  bool json_;
  std::deque<std::string> lines_;
  size_t at_ = 0;  // bytes of the front line written
  uint64_t lost_ = 0;
  int failure_ = 0;
};

int run_events(const Globals& g, bool json, size_t buffer) {
  // Before the ring is taken: a SIGINT once it is held (an operator's, or a
  // test's that waits for the lock) ends the reading, where it killed the
  // process while the reader was still being set up (e2e
  // Serve.EachEventRingHasOneReader: exit 130 once in a CI run).
  install_stop_signals();
  auto state = State::open(g.pin_dir);
  if (!state) return fail(state.error());
  auto lock = ReaderLock::acquire(g.pin_dir, XT_MAP_EVENTS_CLI, "`xthrottle events`");
  if (!lock) return fail(lock.error());
  Outbox out(buffer, json);
  auto reader = EventReader::open(*state, state->events_cli_fd(), [&](const nlohmann::json& e, const std::string& line) {
    out.add(json ? json_text(e) : line);
  });
  if (!reader) return fail(reader.error());
  reader->discard();  // what piled up before we looked is old news
  bool writing = true;
  while (!g_stop && writing) {
    if (auto n = reader->poll(out.pending() ? 50 : 250); !n) return fail(n.error());
    writing = out.flush();
  }
  if (out.failure()) return fail(system_error("cannot write the events", out.failure()).error());
  return 0;
}

}  // namespace

void add_events_command(CLI::App& app, const Globals& g, int& rc) {
  auto json = std::make_shared<bool>(false);
  auto buffer = std::make_shared<size_t>(65536);
  auto* events = app.add_subcommand("events", "Follow sources being throttled and released, budgets saturating");
  events->add_flag("--json", *json, "One JSON object per line");
  events->add_option("--buffer", *buffer,
                     "Lines held while the output is not read; past them events are counted as lost, and the "
                     "count is written")
      ->check(CLI::Range(size_t{1}, size_t{1} << 24))
      ->capture_default_str();
  events->callback([&g, &rc, json, buffer] { rc = run_events(g, *json, *buffer); });
}

}  // namespace xt::cli
