// SPDX-License-Identifier: MIT
// Prometheus text exposition of the pinned state, and the HTTP endpoint of
// `serve` that hands it out. Names follow Prometheus' conventions: units in
// the name, counters end in _total, one metric per meaning with labels for
// the rest, every family's samples together under its own header.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "error.h"

struct MHD_Daemon;

namespace xt {

// Everything a scrape shows, read fresh from the pins in pin_dir.
Result<std::string> render_metrics(const std::string& pin_dir);

// GET /metrics on ADDR:PORT (libmicrohttpd, one event-driven thread): a slow
// client holds a connection, never a worker, so it cannot stall a scrape.
// Limits, so that slow clients cannot hold every connection either: a
// request must arrive whole within kRequestSeconds of connecting (a watchdog
// closes a connection still trickling its request in after that); a
// connection idle for kIdleSeconds is closed; at most kMaxConnections at once
// and kMaxPerAddress from one address, further ones closed as they arrive.
class MetricsServer {
 public:
  static constexpr unsigned kRequestSeconds = 3;
  static constexpr unsigned kIdleSeconds = 2;
  static constexpr unsigned kMaxConnections = 256;
  static constexpr unsigned kMaxPerAddress = 32;
  using Render = std::function<Result<std::string>()>;

  // Listens on text ("ADDR:PORT", "[v6]:PORT" or "PORT" for 127.0.0.1).
  static Result<MetricsServer> start(const std::string& listen, Render render);
  MetricsServer(MetricsServer&&) noexcept;
  MetricsServer& operator=(MetricsServer&&) noexcept;
  ~MetricsServer();

 private:
  void stop();
  MetricsServer() = default;
  struct Context;  // on the heap: the daemon's thread holds a pointer to it
  std::unique_ptr<Context> ctx_;
  MHD_Daemon* daemon_ = nullptr;
};

}  // namespace xt
