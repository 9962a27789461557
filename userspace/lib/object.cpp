// SPDX-License-Identifier: MIT
#include "object.h"

#include "fd.h"

#include <bpf/bpf.h>
#include <sys/utsname.h>
#include <xdp/libxdp.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <thread>
#include <vector>

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

uint32_t bucket_sets_for(uint32_t max_sources) {
  return static_cast<uint32_t>(std::bit_ceil(static_cast<uint64_t>(max_sources)) / XT_SOURCES_PER_SET);
}

uint32_t hot_bits_for(uint32_t max_sources) {
  const uint64_t lines = std::bit_ceil(static_cast<uint64_t>(max_sources)) / XT_HOT_V4_WAYS;
  return std::clamp<uint32_t>(static_cast<uint32_t>(std::countr_zero(lines)), XT_HOT_MIN_BITS, XT_HOT_MAX_BITS);
}

uint64_t hot_v4_lines_for(uint32_t hot_bits) {
  return static_cast<uint64_t>(libbpf_num_possible_cpus()) << hot_bits;
}

uint64_t hot_lines_for(uint32_t hot_bits) {
  return hot_v4_lines_for(hot_bits) + (hot_v4_lines_for(hot_bits) >> XT_HOT_V6_SHIFT);
}

uint32_t known_sets_for(uint32_t max_sources) {
  const uint64_t entries = std::bit_ceil(static_cast<uint64_t>(max_sources)) / XT_KNOWN_SHARE;
  return static_cast<uint32_t>(std::max<uint64_t>(entries, XT_MIN_KNOWN) / XT_KNOWN_WAYS);
}

ObjectOptions options_for_state(const std::string& pin_dir, const xt_config& cfg) {
  return {.pin_dir = pin_dir,
          .test_clock = false,
          .max_sources = cfg.max_sources,
          .hot_bits = cfg.hot_bits,
          .pins_must_exist = true};
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
  // The device map has no pinning of its own in the object (maps.bpf.h):
  // the state's pin, if there is one, is reused as it is.
  if (options.pin_dir) {
    const std::string pin = *options.pin_dir + "/" + XT_MAP_REDIRECT;
    if (Fd fd(bpf_obj_get(pin.c_str())); fd) {
      if (int err = bpf_map__reuse_fd(skel->maps.xt_redirect, fd.get()); err)
        return system_error("cannot reuse " + pin, err);
    } else if (errno != ENOENT) {
      return system_error("cannot open " + pin, errno);
    }
  }
  if (int err = bpf_map__set_max_entries(skel->maps.xt_capture, static_cast<uint32_t>(libbpf_num_possible_cpus()));
      err)
    return system_error("cannot size the capture's buffers", err);
  if (int err = bpf_map__set_max_entries(skel->maps.xt_buckets, bucket_sets_for(options.max_sources)); err)
    return system_error("cannot size the bucket table", err);
  if (int err = bpf_map__set_max_entries(skel->maps.xt_bucket_tags, bucket_sets_for(options.max_sources)); err)
    return system_error("cannot size the bucket table's tags", err);
  if (int err = bpf_map__set_max_entries(skel->maps.xt_bucket_marks, bucket_sets_for(options.max_sources)); err)
    return system_error("cannot size the bucket table's marks", err);
  if (int err = bpf_map__set_max_entries(skel->maps.xt_known, known_sets_for(options.max_sources)); err)
    return system_error("cannot size the known table", err);
  if (int err = bpf_map__set_max_entries(skel->maps.xt_known_tags, known_sets_for(options.max_sources)); err)
    return system_error("cannot size the known table's tags", err);
  const uint32_t hot_bits = options.hot_bits.value_or(hot_bits_for(options.max_sources));
  if (hot_bits < XT_HOT_MIN_BITS || hot_bits > XT_HOT_MAX_BITS)
    return std::unexpected(Error{ErrorKind::Usage, "the state's hot cache has 2^" + std::to_string(hot_bits) +
                                                       " lines a CPU; this build takes 2^" +
                                                       std::to_string(XT_HOT_MIN_BITS) + " to 2^" +
                                                       std::to_string(XT_HOT_MAX_BITS)});
  const uint64_t hot_lines = hot_lines_for(hot_bits);
  if (hot_lines > UINT32_MAX) return std::unexpected(Error{ErrorKind::Usage, "the hot cache would need more than 2^32 lines"});
  if (int err = bpf_map__set_max_entries(skel->maps.xt_hot, static_cast<uint32_t>(hot_lines)); err)
    return system_error("cannot size the hot cache", err);
  if (int err = bpf_map__set_max_entries(skel->maps.xt_hot_bitmap, static_cast<uint32_t>(hot_lines / 64)); err)
    return system_error("cannot size the hot cache's bitmap", err);
  skel->rodata->xt_cfg_test_clock = options.test_clock ? 1 : 0;
  skel->rodata->xt_cfg_frags = options.frags ? 1 : 0;
  skel->rodata->xt_cfg_link = static_cast<uint8_t>(options.link);
  skel->rodata->xt_cfg_nr_cpus = static_cast<uint32_t>(libbpf_num_possible_cpus());
  if (options.frags) {
    bpf_program* prog = skel->progs.xthrottle;
    if (int err = bpf_program__set_flags(prog, bpf_program__flags(prog) | BPF_F_XDP_HAS_FRAGS); err)
      return system_error("cannot ask for multi-buffer frames", err);
  }
  // Last: a reused map can no longer be sized.
  if (options.pin_dir && options.pins_must_exist) {
    bpf_map* map;
    bpf_object__for_each_map(map, skel->obj) {
      const char* path = bpf_map__pin_path(map);
      if (!path) continue;
      Fd fd(bpf_obj_get(path));
      if (!fd && errno == ENOENT)
        return system_error("the state at " + *options.pin_dir + " is gone (" + path +
                            " was removed meanwhile): nothing was made again");
      if (!fd) return system_error("cannot open " + std::string(path), errno);
      // What libbpf checks before it reuses a pin, which reuse_fd does not:
      // the same kind of map, sizes and flags (a devmap's read-only flag is
      // the kernel's own).
      bpf_map_info info{};
      uint32_t len = sizeof(info);
      if (int err = bpf_obj_get_info_by_fd(fd.get(), &info, &len); err)
        return system_error("cannot inspect " + std::string(path), err);
      if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
          info.value_size != bpf_map__value_size(map) || info.max_entries != bpf_map__max_entries(map) ||
          (info.map_flags & ~BPF_F_RDONLY_PROG) != (bpf_map__map_flags(map) & ~BPF_F_RDONLY_PROG))
        return system_error(std::string(path) + " is not the map this build makes for the state (type " +
                            std::to_string(info.type) + ", " + std::to_string(info.key_size) + "-byte keys, " +
                            std::to_string(info.value_size) + "-byte values, " + std::to_string(info.max_entries) +
                            " entries, flags " + std::to_string(info.map_flags) + "; this build's: type " +
                            std::to_string(bpf_map__type(map)) + ", " + std::to_string(bpf_map__key_size(map)) + ", " +
                            std::to_string(bpf_map__value_size(map)) + ", " + std::to_string(bpf_map__max_entries(map)) +
                            ", " + std::to_string(bpf_map__map_flags(map)) + ")");
      if (int err = bpf_map__reuse_fd(map, fd.get()); err) return system_error("cannot reuse " + std::string(path), err);
      if (int err = bpf_map__set_pin_path(map, nullptr); err)
        return system_error("cannot leave " + std::string(path) + " as it is", err);
    }
  }
  return skel;
}

Result<void> load_only(xthrottle* skel, std::initializer_list<bpf_program*> wanted, const std::string& what) {
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel->obj) {
    const bool want = std::find(wanted.begin(), wanted.end(), prog) != wanted.end();
    bpf_program__set_autoload(prog, want);
  }
  // The walks' rules by id (1 MiB, not pinned): made only for the programs
  // that read them, not for every object a command or serve loads.
  const bool walks = std::ranges::any_of(
      wanted, [&](const bpf_program* p) { return p == skel->progs.xt_catch_up || p == skel->progs.xt_sweep; });
  bpf_map__set_autocreate(skel->maps.xt_catch_up_in, walks);
  if (int err = xthrottle__load(skel); err) return system_error("cannot load " + what, err);
  return {};
}

Result<uint64_t> program_clock(int clock_prog_fd) {
  unsigned char frame[64] = {}, out[64] = {};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_out = out, .data_size_in = sizeof(frame),
              .data_size_out = sizeof(out), .repeat = 1);
  if (int err = bpf_prog_test_run_opts(clock_prog_fd, &opts); err)
    return system_error("cannot read the program's clock", err);
  uint64_t now;
  std::memcpy(&now, out, sizeof(now));
  return now;
}

std::optional<uint32_t> configured_hz() {
  auto parse = [](const char* line) -> std::optional<uint32_t> {
    unsigned hz = 0;
    if (std::sscanf(line, "CONFIG_HZ=%u", &hz) == 1 && hz > 0) return hz;
    return std::nullopt;
  };
  utsname u{};
  if (uname(&u) == 0) {
    std::ifstream boot(std::string("/boot/config-") + u.release);
    for (std::string line; std::getline(boot, line);)
      if (auto hz = parse(line.c_str())) return hz;
  }
  if (gzFile gz = gzopen("/proc/config.gz", "rb")) {
    char line[256];
    std::optional<uint32_t> hz;
    while (!hz && gzgets(gz, line, sizeof(line))) hz = parse(line);
    gzclose(gz);
    return hz;
  }
  return std::nullopt;
}

Result<uint32_t> measure_hz() {
  if (auto hz = configured_hz()) return *hz;
  return clock_hz();
}

Result<uint32_t> clock_hz() {
  // Ticks between two tick edges about half a second apart: timed edge to
  // edge, the count has no +-1 error, only the microseconds of reading the
  // clock.
  auto skel = open_object({.pin_dir = std::nullopt, .test_clock = false, .max_sources = XT_MIN_MAX_SOURCES});
  if (!skel) return std::unexpected(skel.error());
  if (auto ok = load_only(skel->get(), {(*skel)->progs.xt_clock}, "the clock probe"); !ok)
    return std::unexpected(ok.error());
  const int fd = bpf_program__fd((*skel)->progs.xt_clock);
  using clock = std::chrono::steady_clock;
  struct Edge {
    uint64_t tick;
    clock::time_point at;
  };
  auto next_edge = [&]() -> Result<Edge> {
    auto start = program_clock(fd);
    if (!start) return std::unexpected(start.error());
    const auto give_up = clock::now() + std::chrono::seconds(2);
    while (clock::now() < give_up) {
      auto t = program_clock(fd);
      if (!t) return std::unexpected(t.error());
      if (*t != *start) return Edge{*t, clock::now()};
    }
    return system_error("the kernel's tick does not advance: cannot meter time");
  };
  // A thread put off the CPU between seeing an edge and reading the time
  // (a loaded machine, a VM's stolen time) gives a rate a few percent off
  // (242 for 250 was seen with the tests running two at a time, and 256,
  // itself a rate some kernels are built with, for 250, which was taken
  // as soon as one measurement read it): three measurements, kernel_hz_of.
  std::vector<double> tries;
  for (int i = 0; i < 3; i++) {
    auto first = next_edge();
    if (!first) return std::unexpected(first.error());
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto last = next_edge();
    if (!last) return std::unexpected(last.error());
    tries.push_back(static_cast<double>(last->tick - first->tick) /
                    std::chrono::duration<double>(last->at - first->at).count());
  }
  return kernel_hz_of(std::move(tries));
}

uint32_t kernel_hz_of(std::vector<double> tries) {
  if (tries.empty()) return 0;
  std::ranges::sort(tries);
  const double hz = tries[tries.size() / 2];
  for (uint32_t known : {100u, 250u, 300u, 1000u, 24u, 32u, 48u, 64u, 128u, 200u, 256u, 500u, 512u, 1024u, 1200u})
    if (std::abs(hz - known) <= known * 0.01) return known;
  return static_cast<uint32_t>(std::lround(hz));
}

}  // namespace xt
