// SPDX-License-Identifier: MIT
#include "pins.h"

#include <xthrottle/abi.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

namespace xt {
namespace {

constexpr const char* kDefaultPinDir = "/sys/fs/bpf/xthrottle";
constexpr const char* kSysBpffs = "/sys/fs/bpf";

bool on_bpffs(const std::string& path) {
  struct statfs st{};
  return statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

}  // namespace

std::string default_pin_dir() {
  if (const char* env = std::getenv("XTHROTTLE_PIN_DIR"); env && *env) return env;
  return kDefaultPinDir;
}

Result<void> ensure_bpffs(const std::string& pin_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path existing = fs::path(pin_dir);
  while (!existing.empty() && !fs::exists(existing, ec)) existing = existing.parent_path();
  if (existing.empty()) existing = "/";

  if (!on_bpffs(existing)) {
    const bool under_sys = pin_dir == kSysBpffs || pin_dir.starts_with(std::string(kSysBpffs) + "/");
    if (!under_sys || !fs::is_directory(kSysBpffs, ec))
      return system_error("pin directory " + pin_dir +
                          " is not on a BPF file system: mount one first (mount -t bpf bpf DIR) "
                          "or choose another --pin-dir");
    if (mount("bpf", kSysBpffs, "bpf", 0, "mode=0700") != 0)
      return system_error(std::string("nothing is mounted on ") + kSysBpffs + " and mounting bpffs there failed",
                          errno);
  }
  if (mkdir(pin_dir.c_str(), 0700) != 0 && errno != EEXIST)
    return system_error("cannot create pin directory " + pin_dir, errno);
  return lock_down(pin_dir);
}

// The pins are the rules: only their owner may reach them. The directory must
// be ours (whoever owns it could swap a pin for a map of their own) and is
// kept at 0700 first, so that nobody else can add or swap an entry while the
// entries are checked; every entry must then be a pin of ours (not a symlink
// to someone else's, nor anything else) and is kept at most 0600, whatever
// the umask or an earlier chmod did. All by file descriptor, never
// following a link.
Result<void> lock_down(const std::string& pin_dir) {
  Fd dir(::open(pin_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return system_error("cannot open pin directory " + pin_dir + " (it must be a directory, not a link)", errno);
  struct stat st{};
  if (fstat(dir.get(), &st) != 0) return system_error("cannot inspect pin directory " + pin_dir, errno);
  if (st.st_uid != geteuid())
    return system_error("pin directory " + pin_dir + " belongs to uid " + std::to_string(st.st_uid) +
                        ", not to this user: whoever owns it could replace xthrottle's maps; remove it or choose "
                        "another --pin-dir");
  if ((st.st_mode & 07777) != 0700 && fchmod(dir.get(), 0700) != 0)
    return system_error("cannot restrict pin directory " + pin_dir + " to its owner", errno);
  const int list_fd = fcntl(dir.get(), F_DUPFD_CLOEXEC, 0);
  DIR* list = list_fd >= 0 ? fdopendir(list_fd) : nullptr;
  if (!list) {
    if (list_fd >= 0) ::close(list_fd);
    return system_error("cannot list pin directory " + pin_dir, errno);
  }
  struct CloseDir {
    void operator()(DIR* d) const { closedir(d); }
  };
  std::unique_ptr<DIR, CloseDir> hold(list);
  while (const dirent* e = readdir(list)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat pin{};
    if (fstatat(dir.get(), name.c_str(), &pin, AT_SYMLINK_NOFOLLOW) != 0)
      return system_error("cannot inspect " + pin_dir + "/" + name, errno);
    const bool reader_lock = S_ISDIR(pin.st_mode) && name.ends_with("_lock");  // ReaderLock's
    if (!S_ISREG(pin.st_mode) && !reader_lock)
      return system_error(pin_dir + "/" + name + " is not a pin (a link, a directory or a device): xthrottle will " +
                          "not use a pin directory someone put it in; remove it");
    if (pin.st_uid != geteuid())
      return system_error(pin_dir + "/" + name + " belongs to uid " + std::to_string(pin.st_uid) +
                          ": xthrottle will not use a pin directory holding someone else's pins; remove it");
    const mode_t most = reader_lock ? 0700 : 0600;
    if ((pin.st_mode & 07777 & ~most) != 0 && fchmodat(dir.get(), name.c_str(), pin.st_mode & most, 0) != 0)
      return system_error("cannot restrict " + pin_dir + "/" + name + " to its owner", errno);
  }
  return {};
}

Result<std::optional<DirLock>> DirLock::lock(const std::string& dir, bool wait) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return system_error("cannot open " + dir + " to lock it", errno);
  if (flock(fd.get(), LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
    if (!wait && errno == EWOULDBLOCK) return std::optional<DirLock>();
    return system_error("cannot lock " + dir, errno);
  }
  return std::optional<DirLock>(DirLock(std::move(fd)));
}

Result<DirLock> DirLock::acquire(const std::string& dir) {
  auto held = lock(dir, true);
  if (!held) return std::unexpected(held.error());
  return std::move(**held);
}

Result<std::optional<DirLock>> DirLock::try_acquire(const std::string& dir) { return lock(dir, false); }

Result<ReaderLock> ReaderLock::acquire(const std::string& pin_dir, const std::string& ring, const std::string& who) {
  const std::string path = pin_dir + "/" + ring + "_lock";  // bpffs allows no dot in a name
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return system_error("cannot create " + path + " to lock " + ring, errno);
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return system_error("cannot open " + path + " to lock " + ring, errno);
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return system_error("another " + who + " already reads the " +
                          (ring == XT_MAP_CAPTURE ? std::string("capture") : std::string("events")) + " of " +
                          pin_dir + ": a second reader would take from it what it reads; stop the other one first");
    return system_error("cannot lock " + path, errno);
  }
  return ReaderLock(std::move(fd));
}

}  // namespace xt
