// SPDX-License-Identifier: MIT
// The pin directory: where the state lives (a BPF file system), who may reach
// it (its owner only), and the locks that keep two commands from changing it
// at once and two readers from splitting an event ring.
#pragma once

#include <optional>
#include <string>

#include "error.h"
#include "fd.h"

namespace xt {

// --pin-dir, else $XTHROTTLE_PIN_DIR, else /sys/fs/bpf/xthrottle.
std::string default_pin_dir();

// Makes sure pin_dir can hold pins: mounts bpffs on /sys/fs/bpf if the
// directory is meant to live there and nothing is mounted, and fails with a
// clear message if pin_dir is on some other file system. Then lock_down().
Result<void> ensure_bpffs(const std::string& pin_dir);

// Refuses a pin directory another user owns; sets it to 0700 and every pin
// in it to at most 0600.
Result<void> lock_down(const std::string& pin_dir);

// An exclusive flock on the pin directory for the life of the object, so two
// mutating commands never interleave.
class DirLock {
 public:
  static Result<DirLock> acquire(const std::string& dir);
  // The same without waiting: nothing if another holds it (housekeeping
  // that can come back later).
  static Result<std::optional<DirLock>> try_acquire(const std::string& dir);

 private:
  explicit DirLock(Fd fd) : fd_(std::move(fd)) {}
  // Nothing only where !wait and another holds it.
  static Result<std::optional<DirLock>> lock(const std::string& dir, bool wait);
  Fd fd_;
};

// An exclusive lock on one event ring of the state in pin_dir, held for the
// life of the object: a ring has one consumer position, so two readers would
// each take events the other never sees. The lock is a flock on a directory
// <ring>_lock in the pin directory (bpffs holds directories, not files);
// it goes with the process, however that ends.
class ReaderLock {
 public:
  // `who` names the reader in the refusal ("xthrottle serve", ...).
  static Result<ReaderLock> acquire(const std::string& pin_dir, const std::string& ring, const std::string& who);

 private:
  explicit ReaderLock(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

}  // namespace xt
