// SPDX-License-Identifier: MIT
#include "object.h"

#include <xdp/libxdp.h>

#include <cstdarg>
#include <cstdio>

namespace xt {
namespace {

bool g_verbose = false;

// Quiet by default, warnings included: every failure gets our own message
// saying what failed and why; --verbose shows the libraries' detail.
int libbpf_log(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (!g_verbose || level == LIBBPF_DEBUG) return 0;
  return vfprintf(stderr, fmt, args);
}

int libxdp_log(enum libxdp_print_level level, const char* fmt, va_list args) {
  if (!g_verbose || level == LIBXDP_DEBUG) return 0;
  return vfprintf(stderr, fmt, args);
}

}  // namespace

void set_library_logging(bool verbose) {
  g_verbose = verbose;
  libbpf_set_print(libbpf_log);
  libxdp_set_print(libxdp_log);
}

Result<Skeleton> open_object(const ObjectOptions& options) {
  LIBBPF_OPTS(bpf_object_open_opts, opts);
  if (options.pin_dir) opts.pin_root_path = options.pin_dir->c_str();
  Skeleton skel(xthrottle__open_opts(&opts));
  if (!skel) return system_error("cannot open the embedded BPF object", errno);
  if (!options.pin_dir) {
    bpf_map* map;
    bpf_object__for_each_map(map, skel->obj) {
      if (int err = bpf_map__set_pin_path(map, nullptr); err)
        return system_error("cannot unpin map " + std::string(bpf_map__name(map)), err);
    }
  }
  skel->rodata->xt_cfg_test_clock = options.test_clock ? 1 : 0;
  return skel;
}

}  // namespace xt
