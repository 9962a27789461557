// SPDX-License-Identifier: MIT
// serve's background threads (the fleet's link, the record): they block
// every signal, so that SIGTERM, SIGINT and SIGHUP go to serve's main thread,
// and never cut one of their waits short (EINTR).
#pragma once

#include <pthread.h>

#include <csignal>
#include <functional>
#include <thread>

namespace xt {

inline std::thread worker_thread(std::function<void()> run) {
  return std::thread([run = std::move(run)] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    run();
  });
}

}  // namespace xt
