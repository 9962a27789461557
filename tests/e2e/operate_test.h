// SPDX-License-Identifier: MIT
// The fixture of the operating suites: a lab with xthrottle attached, a
// scratch directory for config files, and helpers for serve's JSON log and
// HTTP endpoint.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lab_test.h"

namespace xt::test {

using json = nlohmann::json;
using namespace std::chrono_literals;

// The JSON lines a command wrote (serve's log, events --json, top --json).
inline std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

// Whether any of them is an event of this kind.
inline bool has_event(const std::vector<json>& lines, const std::string& event) {
  return std::ranges::any_of(lines, [&](const json& j) { return j.value("event", "") == event; });
}

// Stands in for systemd's notify socket: the datagrams serve sends to it.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    EXPECT_LT(path_.size(), sizeof(a.sun_path));
    std::strncpy(a.sun_path, path_.c_str(), sizeof(a.sun_path) - 1);
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof(a)), 0) << std::strerror(errno);
    const timeval wait{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
  }
  ~NotifySocket() {
    close(fd_);
    unlink(path_.c_str());
  }
  // The next datagram, or "" after 10 s without one.
  std::string next() {
    char buf[256];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

 private:
  std::string path_;
  int fd_ = -1;
};

class Operate : public LabTest {
 protected:
  void SetUp() override {
    LabTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    dir_ = scratch_.emplace("operate").path();
    ok({"attach", "dut0"});
  }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = scratch_->file(name);
    std::ofstream(path) << text;
    return path;
  }
  json rules() { return lab_->xthrottle_json({"rule", "list", "--json"}); }
  json rule(const std::string& cidr) {
    for (const auto& r : rules())
      if (r["cidr"] == cidr) return r;
    return json();
  }
  // A paced flood from one source: slow enough that no ring on the way
  // (gen0 to dut0, and any interface a rule sends drops out of) overflows,
  // so every frame is accounted for on one side or another.
  Flood flood_from(const std::string& src, int count) {
    return lab_->flood({"--src", src, "--count", std::to_string(count), "--rate", "20000"});
  }
  // Packets stats counts under a reason ("banned", "blocklisted").
  uint64_t reason_packets(const std::string& reason) {
    return stats()["reasons"][reason]["packets"].get<uint64_t>();
  }
  // Waits for something the lab's dut namespace serves over HTTP.
  bool http_ready(const std::string& url) {
    for (int i = 0; i < 100; i++) {
      if (lab_->in_dut({"curl", "-s", "-f", "-o", "/dev/null", url}).rc == 0) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  // serve's argv with NOTIFY_SOCKET set, as systemd runs a Type=notify unit.
  std::vector<std::string> notifying(const std::string& socket, const std::vector<std::string>& args) {
    auto argv = lab_->xthrottle_argv(args);
    argv.insert(argv.begin() + 4, {"env", "NOTIFY_SOCKET=" + socket});  // ip netns exec NS [here] xthrottle ...
    return argv;
  }
  std::optional<ScratchDir> scratch_;
  std::string dir_;  // scratch_'s
};

}  // namespace xt::test
