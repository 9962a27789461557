// SPDX-License-Identifier: MIT
// floodgen: sends N frames from the kernel out of an interface, from one
// source or a rotation of N distinct (spoofed) sources, IPv4 or IPv6,
// optionally paced, from one or more CPUs.
//
// It builds one UDP frame, then has BPF_PROG_TEST_RUN with
// BPF_F_TEST_XDP_LIVE_FRAMES run floodgen.bpf.c over it `repeat` times: the
// program stamps each copy's source address and XDP_TXes it out of the device.
// Where the kernel refuses live frames (EPERM: seen on a sandboxed 6.18), it
// sends the same frames from user space through an AF_PACKET socket instead:
// slower, one socket buffer a frame, and a frame the veth could not take is
// sent again rather than lost (refused for a second: an error). With
// --straight ID it sends nothing: a plain test run stamps each frame and
// tail-calls program ID on it, on this CPU: the XDP program of --dev's
// veth peer, and no other (a host's own limiter would take the frames).
// Only ever point it at an interface of a namespace your test created.
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <nlohmann/json.hpp>
#include <pthread.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <sched.h>
#include <linux/if_packet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <numeric>
#include <cerrno>
#include <functional>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fd.h"
#include "floodgen.skel.h"

namespace {

struct SkelDeleter {
  void operator()(floodgen* s) const { floodgen__destroy(s); }
};

struct Options {
  std::string dev;
  std::string src = "198.18.1.1";
  std::string dst = "198.18.0.2";
  std::string dst_mac = "ff:ff:ff:ff:ff:ff";
  std::string src_mac = "02:00:00:00:00:01";
  uint32_t sources = 1;
  uint64_t start = 0;  // the rotation's first step, taken modulo `sources`
  uint64_t count = 1000;
  double for_seconds = 0;  // stop after this long, if --count is not sent by then; 0: at --count
  double rate = 0;  // frames per second over all threads; 0: as fast as possible
  double pace_us = 1000;  // paced: the traffic released at once, in microseconds' worth
  uint32_t size = 64;
  uint32_t threads = 1;
  uint32_t first_cpu = 0;
  uint32_t batch = 64;
  bool v6_low = false;
  bool json = false;
  uint16_t syn_port = 0;  // TCP SYNs to this port instead of UDP datagrams
  uint32_t straight = 0;  // the receiver's XDP program to run each frame through, or 0: send
};

// Whether this process is in a namespace `ip netns add` made: the same one
// as a file of /run/netns (what `ip netns identify` compares).
bool in_named_netns() {
  struct stat self{};
  if (stat("/proc/self/ns/net", &self) != 0) return false;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
    struct stat named{};
    if (stat(e.path().c_str(), &named) == 0 && named.st_ino == self.st_ino && named.st_dev == self.st_dev)
      return true;
  }
  return false;
}

// The driver of interface `dev` (ethtool's), or "" if there is none such.
std::string driver_of(const std::string& dev) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || dev.size() >= IFNAMSIZ) {
    if (fd >= 0) close(fd);
    return "";
  }
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifreq req{};
  std::memcpy(req.ifr_name, dev.c_str(), dev.size());
  req.ifr_data = reinterpret_cast<char*>(&info);
  const int rc = ioctl(fd, SIOCETHTOOL, &req);
  close(fd);
  return rc == 0 ? std::string(info.driver, strnlen(info.driver, sizeof(info.driver))) : "";
}

[[noreturn]] void die(const std::string& msg, int code = 1) {
  std::cerr << "floodgen: " << msg << "\n";
  std::exit(code);
}

bool parse_mac(const std::string& text, uint8_t out[6]) {
  unsigned v[6];
  if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return false;
  for (int i = 0; i < 6; i++) {
    if (v[i] > 0xff) return false;
    out[i] = static_cast<uint8_t>(v[i]);
  }
  return true;
}

uint16_t checksum(const uint8_t* p, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += static_cast<uint32_t>(p[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// Ethernet + IPv4/IPv6 + UDP (or a TCP SYN with --syn), padded to `size`
// bytes. Returns the frame and the first source's low 32 bits (host order).
std::vector<uint8_t> build_frame(const Options& o, bool v6, uint32_t* base) {
  const size_t l3 = 14, iph = v6 ? 40 : 20, udp = o.syn_port ? 20 : 8;
  const size_t min = l3 + iph + udp;
  std::vector<uint8_t> f(std::max<size_t>(o.size, min), 0);
  if (!parse_mac(o.dst_mac, &f[0])) die("bad --dst-mac '" + o.dst_mac + "'", 2);
  if (!parse_mac(o.src_mac, &f[6])) die("bad --src-mac '" + o.src_mac + "'", 2);
  put16(&f[12], v6 ? 0x86DD : 0x0800);
  uint8_t* ip = &f[l3];
  // UDP header + data; a SYN carries none (the rest is the link's padding).
  const size_t payload = o.syn_port ? udp : f.size() - l3 - iph;
  const uint8_t proto = o.syn_port ? 6 : 17;
  if (v6) {
    ip[0] = 0x60;
    put16(ip + 4, static_cast<uint16_t>(payload));
    ip[6] = proto;
    ip[7] = 64;
    if (inet_pton(AF_INET6, o.src.c_str(), ip + 8) != 1) die("bad IPv6 --src '" + o.src + "'", 2);
    if (inet_pton(AF_INET6, o.dst.c_str(), ip + 24) != 1) die("bad IPv6 --dst '" + o.dst + "'", 2);
    // 2001:db8::/32, the documentation prefix: never a real host's.
    if (!(ip[24] == 0x20 && ip[25] == 0x01 && ip[26] == 0x0d && ip[27] == 0xb8))
      die("--dst " + o.dst + " is outside 2001:db8::/32: floodgen floods only test addresses", 2);
    uint32_t word;
    std::memcpy(&word, ip + 8 + (o.v6_low ? 12 : 4), 4);
    *base = ntohl(word);
  } else {
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(iph + payload));
    ip[8] = 64;
    ip[9] = proto;
    if (inet_pton(AF_INET, o.src.c_str(), ip + 12) != 1) die("bad IPv4 --src '" + o.src + "'", 2);
    if (inet_pton(AF_INET, o.dst.c_str(), ip + 16) != 1) die("bad IPv4 --dst '" + o.dst + "'", 2);
    // 198.18.0.0/15, the benchmarking range: never a real host's.
    if (!(ip[16] == 198 && (ip[17] & 0xfe) == 18))
      die("--dst " + o.dst + " is outside 198.18.0.0/15: floodgen floods only test addresses", 2);
    put16(ip + 10, checksum(ip, 20));
    uint32_t addr;
    std::memcpy(&addr, ip + 12, 4);
    *base = ntohl(addr);
  }
  uint8_t* u = ip + iph;
  if (o.syn_port) {
    put16(u + 0, 40000);
    put16(u + 2, o.syn_port);
    u[7] = 1;          // sequence number 1
    u[12] = 5 << 4;    // no options
    u[13] = 0x02;      // SYN
    put16(u + 14, 64240);
    return f;  // TCP checksum left 0: the sources rotate under it, and the limiter never reads it
  }
  put16(u + 0, 40000);
  put16(u + 2, 9);  // discard
  put16(u + 4, static_cast<uint16_t>(payload));
  return f;  // UDP checksum 0: optional for IPv4, and nothing here verifies it for IPv6
}

// Frames sent at once: `pace_us` of traffic at `rate` frames/s (at least
// one), or, unpaced (rate 0), as many as one run takes.
uint64_t chunk_frames(double rate, double pace_us) {
  return rate > 0 ? std::max<uint64_t>(1, static_cast<uint64_t>(rate * pace_us / 1e6)) : 1u << 20;
}

// Where the rotation puts frame `seq`'s source: the IPv4 address, or one
// 32-bit word of the IPv6 one (floodgen.bpf.c does the same in the kernel).
struct Stamp {
  uint32_t base = 0, sources = 1, start = 0;
  bool v6 = false, v6_low = false;
  void operator()(uint8_t* frame, uint64_t seq) const {
    uint8_t* ip = frame + 14;
    const uint32_t src = htonl(base + static_cast<uint32_t>((seq + start) % sources));
    if (v6) {
      std::memcpy(ip + (v6_low ? 20 : 12), &src, 4);
      return;
    }
    std::memcpy(ip + 12, &src, 4);
    put16(ip + 10, 0);
    put16(ip + 10, checksum(ip, 20));
  }
};

// Sends n frames at once; false (and *error) if it cannot.
using SendChunk = std::function<bool(uint64_t n, std::string* error)>;

// Through the kernel: BPF_PROG_TEST_RUN runs the stamping program over the
// frame n times as live frames, each XDP_TXed out of the device.
SendChunk live_sender(int prog_fd, int ifindex, const std::vector<uint8_t>& frame, uint32_t batch, int* refused) {
  return [prog_fd, ifindex, &frame, batch, refused](uint64_t n, std::string* error) {
    xdp_md ctx{};
    ctx.data_end = static_cast<uint32_t>(frame.size());
    ctx.ingress_ifindex = static_cast<uint32_t>(ifindex);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
                .repeat = static_cast<int>(n), .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = batch);
    if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err) {
      *refused = -err;
      *error = std::string("BPF_PROG_TEST_RUN (live frames) failed: ") + std::strerror(-err);
      return false;
    }
    return true;
  };
}

// Straight into the receiver: a plain BPF_PROG_TEST_RUN runs the stamping
// program over the frame n times, and it tail-calls the receiver's program
// on each copy; nothing leaves this CPU (fg_missed counts the copies the
// tail call failed for, whatever the receiver's verdicts).
SendChunk straight_sender(int prog_fd, int ifindex, const std::vector<uint8_t>& frame) {
  return [prog_fd, ifindex, &frame](uint64_t n, std::string* error) {
    xdp_md ctx{};
    ctx.data_end = static_cast<uint32_t>(frame.size());
    ctx.ingress_ifindex = static_cast<uint32_t>(ifindex);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
                .repeat = static_cast<int>(n));
    if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err) {
      *error = std::string("BPF_PROG_TEST_RUN (straight into the receiver) failed: ") + std::strerror(-err);
      return false;
    }
    return true;
  };
}

// From user space: `batch` stamped copies at a time by sendmmsg on an
// AF_PACKET socket that skips the qdisc, so that a frame the veth drops
// (its peer's ring full) comes back as ENOBUFS and is sent again. Refused
// for a whole second (the link down, its peer gone), the flood fails.
class PacketSender {
 public:
  PacketSender(int ifindex, const std::vector<uint8_t>& frame, uint32_t batch, Stamp stamp)
      : frame_(frame), stamp_(stamp), buf_(static_cast<size_t>(batch) * frame.size()), iov_(batch), msg_(batch) {
    fd_ = xt::Fd(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));  // protocol 0: it receives nothing
    if (!fd_) {
      error_ = std::string("cannot open a packet socket: ") + std::strerror(errno);
      return;
    }
    const int one = 1;
    if (setsockopt(fd_.get(), SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0) {
      error_ = std::string("cannot have the packet socket bypass the qdisc: ") + std::strerror(errno);
      return;
    }
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifindex;
    if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0)
      error_ = std::string("cannot bind the packet socket: ") + std::strerror(errno);
    for (size_t i = 0; i < msg_.size(); i++) {
      std::memcpy(&buf_[i * frame.size()], frame.data(), frame.size());
      iov_[i] = {&buf_[i * frame.size()], frame.size()};
      msg_[i].msg_hdr.msg_iov = &iov_[i];
      msg_[i].msg_hdr.msg_iovlen = 1;
    }
  }

  bool send(uint64_t n, std::string* error) {
    if (!error_.empty()) {
      *error = error_;
      return false;
    }
    while (n > 0) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n, msg_.size()));
      for (size_t i = 0; i < k; i++) stamp_(&buf_[i * frame_.size()], seq_ + i);
      size_t done = 0;
      auto refused_since = std::chrono::steady_clock::time_point{};
      while (done < k) {
        const int r = sendmmsg(fd_.get(), &msg_[done], static_cast<unsigned>(k - done), 0);
        if (r > 0) {
          done += static_cast<size_t>(r);
          refused_since = {};
          continue;
        }
        if (errno != ENOBUFS && errno != EAGAIN && errno != EBUSY && errno != EINTR) {
          *error = std::string("sendmmsg on the packet socket failed: ") + std::strerror(errno);
          return false;
        }
        const auto now = std::chrono::steady_clock::now();
        if (refused_since == std::chrono::steady_clock::time_point{}) {
          refused_since = now;
        } else if (now - refused_since > std::chrono::seconds(1)) {
          *error = std::string("the interface refused a frame for a second (") + std::strerror(errno) +
                   "): is it or its peer down?";
          return false;
        }
        sched_yield();  // the receiver's softirq empties the ring
      }
      seq_ += k;
      n -= k;
    }
    return true;
  }

 private:
  xt::Fd fd_;
  std::string error_;
  const std::vector<uint8_t>& frame_;
  Stamp stamp_;
  std::vector<uint8_t> buf_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msg_;
  uint64_t seq_ = 0;
};

// The output of `ip ARGS...` as JSON.
nlohmann::json ip_json(const std::string& args) {
  std::unique_ptr<FILE, decltype(&pclose)> in(popen(("ip -j " + args + " 2>/dev/null").c_str(), "r"), pclose);
  std::string out;
  char buf[4096];
  while (in && std::fgets(buf, sizeof(buf), in.get())) out += buf;
  return nlohmann::json::parse(out, nullptr, false);
}

// Whether program `id` is the XDP program of the veth peer of the device
// `ifindex` here, that peer in another namespace of `ip netns add`'s (not
// the host's own, even named): --straight runs a lab's receiver, never a
// limiter of the host's. Asks `ip` (no name from the command line goes to
// the shell).
bool runs_on_peer(int ifindex, uint32_t id) {
  nlohmann::json link;
  for (const auto& l : ip_json("-d link show"))
    if (l.is_object() && l.value("ifindex", -1) == ifindex) link = l;
  if (!link.contains("link_index") || !link.contains("link_netnsid")) return false;
  std::string ns;
  const auto names = ip_json("netns list-id");
  for (const auto& e : names.is_array() ? names : nlohmann::json::array())
    if (e.is_object() && e.value("nsid", -1) == link["link_netnsid"] && e.contains("name")) ns = e["name"];
  if (ns.empty() || ns.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_.") != std::string::npos)
    return false;
  // The host's namespace named (ip netns attach NAME 1): not a lab's. Where
  // init's namespace cannot be looked at (a sandbox), the name must do.
  struct stat named{}, host{};
  if (stat(("/run/netns/" + ns).c_str(), &named) != 0 ||
      (stat("/proc/1/ns/net", &host) == 0 && named.st_ino == host.st_ino && named.st_dev == host.st_dev))
    return false;
  const auto links = ip_json("-n " + ns + " link show");
  for (const auto& l : links.is_array() ? links : nlohmann::json::array()) {
    if (!l.is_object() || l.value("ifindex", -1) != link["link_index"] || !l.contains("xdp")) continue;
    const auto& x = l["xdp"];
    if (x.contains("prog") && x["prog"].value("id", 0u) == id) return true;
    for (const auto& a : x.value("attached", nlohmann::json::array()))
      if (a.contains("prog") && a["prog"].value("id", 0u) == id) return true;
  }
  return false;
}

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// Sends `count` frames through send_chunk from the current thread, paced to
// `rate` frames/s if rate > 0, in chunks of `pace_us` microseconds of
// traffic; for `for_seconds` at most, if that is not 0, in chunks of 2^16
// frames at most (milliseconds), so that it stops close to the time.
// Returns frames sent.
uint64_t send_frames(const SendChunk& send_chunk, uint64_t count, double rate, double pace_us, double for_seconds,
                     std::string* error) {
  const auto start = std::chrono::steady_clock::now();
  const auto until = start + std::chrono::duration<double>(for_seconds);
  uint64_t sent = 0;
  // Paced: chunks of `pace_us` of traffic, each released when its time
  // comes. Chunks less than 500 us apart are waited for by spinning: a
  // sleep overshoots by tens of microseconds (the timer slack), which
  // would bunch them up again.
  uint64_t chunk = chunk_frames(rate, pace_us);
  if (for_seconds > 0) chunk = std::min<uint64_t>(chunk, 1u << 16);
  const bool spin = rate > 0 && static_cast<double>(chunk) / rate < 500e-6;
  while (sent < count && (for_seconds <= 0 || std::chrono::steady_clock::now() < until)) {
    if (rate > 0) {
      auto due = start + std::chrono::duration<double>(static_cast<double>(sent) / rate);
      if (!spin)
        std::this_thread::sleep_until(due);
      else
        while (std::chrono::steady_clock::now() < due) {
        }
    }
    const uint64_t n = std::min<uint64_t>(chunk, count - sent);
    if (!send_chunk(n, error)) return sent;
    sent += n;
  }
  return sent;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"floodgen: kernel-side frame generator (XDP live frames)", "floodgen"};
  app.add_option("--dev", o.dev, "Interface to send from (in a test namespace only)")->required();
  app.add_option("--src", o.src, "First source address (IPv4 or IPv6)")->capture_default_str();
  app.add_option("--dst", o.dst, "Destination address, same family")->capture_default_str();
  app.add_option("--dst-mac", o.dst_mac, "Destination MAC (the peer's)")->capture_default_str();
  app.add_option("--src-mac", o.src_mac, "Source MAC")->capture_default_str();
  app.add_option("--sources", o.sources, "Distinct sources, rotating from --src upwards")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--start", o.start,
                 "The rotation's first step: frame k of each thread comes from source (START + k) mod --sources, "
                 "so that runs one after another can send sources not sent before")
      ->capture_default_str();
  app.add_option("--count", o.count, "Frames to send in all")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--for", o.for_seconds,
                 "Stop after this many seconds if --count is not sent by then (each thread finishes its chunk "
                 "in hand, 2^16 frames at most)")
      ->check(CLI::Range(0.001, 600.0));
  app.add_option("--rate", o.rate, "Frames per second over all threads (default: as fast as possible)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--size", o.size, "Frame size in bytes, without FCS")->check(CLI::Range(62, 9000))
      ->capture_default_str();
  app.add_option("--threads", o.threads, "Sending threads, one per CPU from --cpu on")
      ->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--cpu", o.first_cpu, "CPU of the first thread")->capture_default_str();
  app.add_flag("--v6-low", o.v6_low,
               "IPv6: rotate the address's low 32 bits (all sources in one /64) instead of bits 32-63 "
               "(one /64 per source)");
  app.add_option("--pace-us", o.pace_us,
                 "With --rate: microseconds of traffic sent at once (smaller is smoother; chunks under 500 us "
                 "apart are waited for by spinning)")
      ->check(CLI::Range(1.0, 1e6))->capture_default_str();
  app.add_option("--batch", o.batch, "Frames per kernel batch")->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--syn", o.syn_port,
                 "Send TCP SYNs to this port instead of UDP datagrams (each one's headers written afresh, as a "
                 "receiver that answers from XDP may have rewritten them)")
      ->check(CLI::Range(1, 65535));
  app.add_option("--straight", o.straight,
                 "Send nothing: run the XDP program of this id (the receiver's, in a lab) on each stamped frame "
                 "through a plain test run on this CPU, for its own cost where the kernel refuses live frames "
                 "(only the program of --dev's veth peer)")
      ->check(CLI::PositiveNumber)
      ->excludes("--rate");
  app.add_flag("--json", o.json, "Print the result as JSON");
  CLI11_PARSE(app, argc, argv);

  // Spoofed floods belong in a namespace a test made (tools/lab), never on
  // the host's own interfaces: only in a named namespace, out of a veth.
  if (!in_named_netns())
    die("this is not a network namespace of ip netns add's (the host's, perhaps): floodgen runs only in one of "
        "a lab's (ip netns exec, as tools/lab/lab.sh does)", 2);
  const int ifindex = static_cast<int>(if_nametoindex(o.dev.c_str()));
  if (!ifindex) die("no interface '" + o.dev + "' in this network namespace");
  if (const std::string driver = driver_of(o.dev); driver != "veth")
    die("'" + o.dev + "' is not a veth (" + (driver.empty() ? "it has no driver" : "its driver is " + driver) +
        "): floodgen sends only into a lab's veth pair", 2);
  const bool v6 = o.src.find(':') != std::string::npos;
  uint32_t base = 0;
  const auto frame = build_frame(o, v6, &base);

  libbpf_set_print([](libbpf_print_level, const char*, va_list) { return 0; });
  std::unique_ptr<floodgen, SkelDeleter> skel(floodgen__open());
  if (!skel) die("cannot open the embedded BPF object");
  skel->rodata->fg_sources = o.sources;
  const uint32_t first_step = static_cast<uint32_t>(o.start % o.sources);
  skel->rodata->fg_start = first_step;
  skel->rodata->fg_base = base;
  skel->rodata->fg_ipv6 = v6;
  skel->rodata->fg_ifindex = static_cast<uint32_t>(ifindex);
  skel->rodata->fg_v6_word = o.v6_low ? 3 : 1;
  skel->rodata->fg_straight = o.straight != 0;
  if (o.syn_port) {
    // Its SYNs may come back rewritten (see floodgen.bpf.c): restore their
    // headers on every frame.
    const size_t headers = 14 + (v6 ? 40 : 20) + 20;
    static_assert(sizeof(skel->rodata->fg_head) >= 14 + 40 + 20);
    std::memcpy(const_cast<uint16_t*>(skel->rodata->fg_head), frame.data(), headers);
    skel->rodata->fg_restore = static_cast<uint32_t>(headers / 2);
  }
  if (int err = floodgen__load(skel.get()); err) die(std::string("cannot load the generator: ") + std::strerror(-err));
  const int prog_fd = bpf_program__fd(skel->progs.floodgen);
  xt::Fd receiver;
  if (o.straight) {
    if (!runs_on_peer(ifindex, o.straight))
      die("program " + std::to_string(o.straight) + " is not the XDP program of " + o.dev +
              "'s veth peer in a lab's other namespace: --straight runs only a lab's receiver",
          2);
    receiver = xt::Fd(bpf_prog_get_fd_by_id(o.straight));
    if (!receiver) die("cannot open program " + std::to_string(o.straight) + ": " + std::strerror(errno));
    const uint32_t zero = 0;
    const int fd = receiver.get();
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.fg_receiver), &zero, &fd, BPF_ANY) != 0)
      die("cannot tail-call program " + std::to_string(o.straight) + " (" + std::strerror(errno) +
          "): it must be an XDP program, loaded as floodgen's is");
  }
  // Each BPF_PROG_TEST_RUN with repeat > 1 adds the program to the kernel's
  // XDP dispatcher and removes it again, which costs ~20-40 ms here and would
  // make paced sending (many short runs) impossible. While the program is
  // attached somewhere it stays in the dispatcher and a run costs microseconds,
  // so keep it attached to this namespace's loopback for the duration. It is a
  // bpf_link: the kernel detaches it when we exit, however we exit. If another
  // floodgen holds lo already, go on without. Runs of one frame (slow paced
  // senders) never touch the dispatcher: those leave lo to a sender that
  // needs it.
  const bool single_frames = chunk_frames(o.rate / o.threads, o.pace_us) == 1;
  std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)> warm(
      single_frames ? nullptr
                    : bpf_program__attach_xdp(skel->progs.floodgen, static_cast<int>(if_nametoindex("lo"))),
      bpf_link__destroy);
  if (!warm && !single_frames)
    std::cerr << "floodgen: lo is taken (" << std::strerror(errno)
              << "): each run will pay for an XDP dispatcher update\n";

  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  const Stamp stamp{base, o.sources, first_step, v6, o.v6_low};
  std::vector<std::thread> workers;
  std::vector<uint64_t> sent(o.threads, 0);
  std::vector<std::string> errors(o.threads);
  // Straight, the time is from when every thread is ready to when the last
  // is done: a run of the bare drop is a few ns, and a thread's start would
  // weigh on it.
  std::barrier ready(static_cast<std::ptrdiff_t>(o.threads));
  std::vector<std::chrono::steady_clock::time_point> began(o.threads), ended(o.threads);
  std::atomic<bool> from_user_space{false};
  const auto start = std::chrono::steady_clock::now();
  for (uint32_t t = 0; t < o.threads; t++) {
    const uint64_t share = o.count / o.threads + (t < o.count % o.threads ? 1 : 0);
    workers.emplace_back([&, t, share] {
      pin_to(static_cast<int>((o.first_cpu + t) % cpus));
      const double rate = o.rate / o.threads;
      int refused = 0;
      if (o.straight) {
        ready.arrive_and_wait();
        began[t] = std::chrono::steady_clock::now();
        sent[t] = send_frames(straight_sender(prog_fd, ifindex, frame), share, rate, o.pace_us, o.for_seconds,
                              &errors[t]);
        ended[t] = std::chrono::steady_clock::now();
        return;
      }
      sent[t] = send_frames(live_sender(prog_fd, ifindex, frame, o.batch, &refused), share, rate, o.pace_us,
                            o.for_seconds, &errors[t]);
      if (sent[t] > 0 || refused != EPERM) return;
      // The kernel does not let live frames out (its first run sent
      // nothing): the same frames from user space.
      from_user_space = true;
      errors[t].clear();
      PacketSender packets(ifindex, frame, o.batch, stamp);
      sent[t] = send_frames([&packets](uint64_t n, std::string* e) { return packets.send(n, e); }, share, rate,
                            o.pace_us, o.for_seconds, &errors[t]);
    });
  }
  for (auto& w : workers) w.join();
  const double seconds =
      o.straight ? std::chrono::duration<double>(*std::max_element(ended.begin(), ended.end()) -
                                                 *std::min_element(began.begin(), began.end()))
                       .count()
                 : std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.straight) {
    const uint32_t zero = 0;
    std::vector<uint64_t> missed(static_cast<size_t>(libbpf_num_possible_cpus()));
    if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.fg_missed), &zero, missed.data()) != 0)
      die(std::string("cannot read how many frames missed the receiver: ") + std::strerror(errno));
    if (const uint64_t n = std::accumulate(missed.begin(), missed.end(), uint64_t{0}); n)
      die("the tail call into program " + std::to_string(o.straight) + " failed for " + std::to_string(n) +
          " frames");
  }
  uint64_t total = 0;
  for (auto s : sent) total += s;
  for (const auto& e : errors)
    if (!e.empty()) die(e + " after " + std::to_string(total) + " frames");
  if (from_user_space && !o.json)
    std::cerr << "floodgen: the kernel refused live frames (EPERM): sent from user space through a packet socket\n";

  if (o.json) {
    std::cout << nlohmann::json{{"sent", total},
                                {"seconds", seconds},
                                {"pps", seconds > 0 ? total / seconds : 0},
                                {"frame_bytes", frame.size()},
                                {"sources", o.sources},
                                {"threads", o.threads},
                                {"sender", o.straight            ? "straight into the receiver"
                                           : from_user_space ? "packet socket"
                                                             : "live frames"}}
                     .dump()
              << "\n";
  } else {
    std::printf("sent %llu frames of %zu bytes from %u source(s) in %.3f s (%.0f frames/s)\n",
                (unsigned long long)total, frame.size(), o.sources, seconds, seconds > 0 ? total / seconds : 0.0);
  }
  return 0;
}
