// SPDX-License-Identifier: MIT
#include "lab.h"

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <cstring>
#include <sstream>
#include <thread>
#include <stdexcept>


namespace xt::test {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string temp_path(const char* what) {
  static std::atomic<int> n{0};
  return "/tmp/xt-e2e-" + std::to_string(getpid()) + "-" + std::to_string(n++) + "." + what;
}

// The child dies with the test (PR_SET_PDEATHSIG): a test process killed
// outright (a CI run stopped, a timeout's SIGKILL) runs no destructor, and
// what it started (a redis-server, a serve) outlived it. Spawned from the
// main thread only: the signal comes when the spawning thread ends. A
// failed exec is told back through a pipe closed on exec, as posix_spawnp
// told it.
int spawn(const std::vector<std::string>& argv, const std::string& out, const std::string& err) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int told[2];
  if (pipe2(told, O_CLOEXEC) != 0) throw std::runtime_error("cannot run " + argv[0] + ": no pipe");
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(told[0]);
    close(told[1]);
    throw std::runtime_error("cannot run " + argv[0] + ": cannot fork");
  }
  if (pid == 0) {
    close(told[0]);
    // Opened closed-on-exec: only their copies at 0, 1 and 2 go on.
    const int in = open("/dev/null", O_RDONLY | O_CLOEXEC),
              o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600),
              e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int failed = in < 0 || o < 0 || e < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 ||
                 prctl(PR_SET_PDEATHSIG, SIGKILL) != 0;
    if (!failed && getppid() != parent) _exit(127);  // the test died before the signal was set
    if (!failed) execvp(args[0], args.data());
    failed = errno;
    (void)!write(told[1], &failed, sizeof(failed));
    _exit(127);
  }
  close(told[1]);
  int child_errno = 0;
  const ssize_t n = read(told[0], &child_errno, sizeof(child_errno));
  close(told[0]);
  if (n > 0) {
    waitpid(pid, nullptr, 0);
    throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(child_errno));
  }
  return pid;
}

Outcome collect(int pid, const std::string& out, const std::string& err) {
  int status = 0;
  waitpid(pid, &status, 0);
  Outcome r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  unlink(out.c_str());
  unlink(err.c_str());
  return r;
}

// Runs a setup step; a failure is the lab's failure, with the command's words.
void must(const std::vector<std::string>& argv) {
  Outcome r = run(argv);
  if (r.rc != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    throw std::runtime_error("lab setup failed: " + cmd + "-> " + r.err);
  }
}

}  // namespace

Outcome run(const std::vector<std::string>& argv) {
  const std::string out = temp_path("out"), err = temp_path("err");
  return collect(spawn(argv, out, err), out, err);
}

Background::Background(const std::vector<std::string>& argv)
    : out_path_(temp_path("out")), err_path_(temp_path("err")) {
  pid_ = spawn(argv, out_path_, err_path_);
}

Background::~Background() {
  if (pid_ <= 0) return;
  // Asked to stop; one that does not within 10 s (a hang is what some tests
  // look for) is killed, so that the test goes on to take its lab down.
  signal(SIGTERM);
  for (int i = 0; i < 1000; i++) {
    if (waitpid(pid_, nullptr, WNOHANG) != 0) {
      unlink(out_path_.c_str());
      unlink(err_path_.c_str());
      pid_ = -1;
      return;
    }
    usleep(10000);
  }
  signal(SIGKILL);
  wait();
}

namespace {

bool written_until(int pid, const std::string& path, const std::function<bool(const std::string&)>& done,
                   double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (pid > 0 && std::chrono::steady_clock::now() < end) {
    if (done(slurp(path))) return true;
    // Ended: gone, or a zombie (which kill(pid, 0) still finds), left to
    // wait() to reap.
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == pid)
      return done(slurp(path));  // what it wrote before it ended
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

bool Background::wait_for_err(const std::string& text, double seconds) const {
  return written_until(pid_, err_path_, [&](const std::string& err) { return err.find(text) != std::string::npos; },
                       seconds);
}

bool Background::wait_for_out(const std::function<bool(const std::string&)>& done, double seconds) const {
  return written_until(pid_, out_path_, done, seconds);
}

void Background::signal(int sig) const {
  if (pid_ > 0) kill(pid_, sig);
}

Outcome Background::wait() {
  Outcome r = collect(pid_, out_path_, err_path_);
  pid_ = -1;
  return r;
}

Lab::Lab(const std::string& prefix) {
  static std::atomic<int> n{0};
  tag_ = prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(n++);
  gen_ = tag_ + "-gen";
  dut_ = tag_ + "-dut";
  scr_ = tag_ + "-scr";
  cli_ = tag_ + "-cli";
  pin_dir_ = "/run/" + tag_ + "/pins";  // tools/lab/lab.sh mounts a bpffs at /run/TAG
  must({XT_LAB, "up", tag_});
  dut_mac_ = in_dut({"cat", "/sys/class/net/dut0/address"}).out;
  while (!dut_mac_.empty() && dut_mac_.back() == '\n') dut_mac_.pop_back();
  if (dut_mac_.empty()) {
    teardown();
    throw std::runtime_error("lab " + tag_ + " has no dut0");
  }
}

Lab::~Lab() { teardown(); }

void Lab::receive_xdp_on_gen() const {
  // From a thread of our own that enters gen's namespace (the attachment
  // outlives the program's fds: it is the interface's); not with `ip link
  // set ... xdp obj`, which makes directories of its own in the lab's bpffs.
  std::string error;
  std::thread([&] {
    const int ns = open(("/run/netns/" + gen_).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
      error = "cannot enter " + gen_ + ": " + std::strerror(errno);
      if (ns >= 0) close(ns);
      return;
    }
    close(ns);
    bpf_object* obj = bpf_object__open_file(XT_PASS_OBJECT, nullptr);
    if (!obj || bpf_object__load(obj) != 0) {
      error = std::string("cannot load ") + XT_PASS_OBJECT;
    } else {
      const int ifindex = static_cast<int>(if_nametoindex("gen0"));
      bpf_program* prog = bpf_object__find_program_by_name(obj, "xdp_pass");
      if (!ifindex || !prog || bpf_xdp_attach(ifindex, bpf_program__fd(prog), XDP_FLAGS_DRV_MODE, nullptr) != 0)
        error = std::string("cannot attach the pass program to gen0: ") + std::strerror(errno);
    }
    bpf_object__close(obj);
  }).join();
  if (!error.empty()) throw std::runtime_error(error);
}

void Lab::add_clients(const std::vector<std::string>& clients) const {
  const auto in = [this](const std::string& ns, const std::vector<std::string>& argv) {
    Outcome r = in_ns(ns, argv);
    if (r.rc != 0) throw std::runtime_error("cannot set up the clients in " + ns + ": " + r.err);
  };
  in(dut_, {"ip", "addr", "add", "198.18.0.2/24", "dev", "dut0"});
  in(gen_, {"ip", "addr", "add", "198.18.0.1/24", "dev", "gen0"});
  std::string gen_mac = in_gen({"cat", "/sys/class/net/gen0/address"}).out;
  while (!gen_mac.empty() && (gen_mac.back() == '\n' || gen_mac.back() == ' ')) gen_mac.pop_back();
  in(gen_, {"ip", "neigh", "replace", "198.18.0.2", "lladdr", dut_mac_, "dev", "gen0", "nud", "permanent"});
  for (const std::string& addr : clients) {
    in(gen_, {"ip", "addr", "add", addr + "/32", "dev", "gen0"});
    in(dut_, {"ip", "neigh", "replace", addr, "lladdr", gen_mac, "dev", "dut0", "nud", "permanent"});
  }
  receive_xdp_on_gen();
}

void Lab::add_scrubber() const { must({XT_LAB, "scrubber", tag_}); }

void Lab::add_delay(int ms, int seconds, const std::string& cli_addr, const std::string& dut_addr) const {
  must({XT_LAB, "delay", tag_, std::to_string(ms), std::to_string(seconds)});
  for (const auto& [ns, dev, addr] : {std::tuple{cli_, "cli0", cli_addr}, std::tuple{dut_, "dut0", dut_addr}}) {
    Outcome r = in_ns(ns, {"ip", "addr", "add", addr + "/24", "dev", dev});
    if (r.rc != 0) throw std::runtime_error("cannot address " + std::string(dev) + ": " + r.err);
  }
  // The first frames wait for the bridge to start and for ARP both ways.
  Outcome r = in_ns(cli_, {"ping", "-c", "1", "-w", "10", dut_addr});
  if (r.rc != 0) throw std::runtime_error("no path from cli0 to " + dut_addr + " through the delay: " + r.out);
}

uint64_t Lab::scrubbed() const {
  Outcome r = in_ns(scr_, {"nft", "-j", "list", "counter", "netdev", "lab", "scrubbed"});
  if (r.rc != 0) throw std::runtime_error("cannot read the scrubber's counter: " + r.err);
  const auto doc = nlohmann::json::parse(r.out);
  for (const auto& item : doc["nftables"])
    if (item.contains("counter")) return item["counter"]["packets"].get<uint64_t>();
  throw std::runtime_error("no counter scrubbed in nft output");
}

void Lab::teardown() { run({XT_LAB, "down", tag_}); }

Outcome Lab::in_ns(const std::string& ns, const std::vector<std::string>& argv) const {
  std::vector<std::string> full = {"ip", "netns", "exec", ns};
  full.insert(full.end(), argv.begin(), argv.end());
  return run(full);
}

std::vector<std::string> Lab::xthrottle_argv(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"ip", "netns", "exec", dut_, XT_BIN, "--pin-dir", pin_dir_};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

Outcome Lab::xthrottle(const std::vector<std::string>& args) const { return run(xthrottle_argv(args)); }

nlohmann::json Lab::xthrottle_json(const std::vector<std::string>& args) const {
  Outcome r = xthrottle(args);
  if (r.rc != 0) throw std::runtime_error("xthrottle failed (" + std::to_string(r.rc) + "): " + r.err);
  return nlohmann::json::parse(r.out);
}

std::vector<std::string> Lab::flood_argv(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"ip", "netns", "exec", gen_, XT_FLOODGEN, "--dev", "gen0", "--dst-mac", dut_mac_,
                                   "--json"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

uint32_t Lab::dut_xdp_prog() const {
  const Outcome r = run({"ip", "-n", dut_, "-j", "link", "show", "dut0"});
  if (r.rc != 0) throw std::runtime_error("cannot read dut0's XDP program: " + r.err);
  const auto link = nlohmann::json::parse(r.out).at(0);
  if (!link.contains("xdp")) return 0;
  const auto& xdp = link["xdp"];
  if (xdp.contains("prog")) return xdp["prog"]["id"].get<uint32_t>();
  // Attached in more than one mode: the first.
  for (const auto& a : xdp.value("attached", nlohmann::json::array()))
    if (a.contains("prog")) return a["prog"]["id"].get<uint32_t>();
  return 0;
}

Flood Lab::flood(const std::vector<std::string>& args) const {
  const uint64_t errors_before = veth_xmit_errors();
  std::vector<std::string> argv = flood_argv(args);
  if (straight_) {
    const uint32_t id = dut_xdp_prog();
    if (id == 0) throw std::runtime_error("a straight flood needs an XDP program on dut0, which runs none");
    argv.insert(argv.end(), {"--straight", std::to_string(id)});
  }
  Outcome r = run(argv);
  if (r.rc != 0) throw std::runtime_error("floodgen failed: " + r.err);
  auto j = nlohmann::json::parse(r.out);
  // Live frames the veth dropped show as its XDP transmit errors; floodgen's
  // sender from user space sends such a frame again.
  return {j["sent"].get<uint64_t>(), j["seconds"].get<double>(), veth_xmit_errors() - errors_before,
          j.value("sender", "live frames")};
}

std::map<std::string, uint64_t> Lab::ethtool_stats(const std::string& ns, const std::string& dev) const {
  Outcome r = run({"ip", "netns", "exec", ns, "ethtool", "-S", dev});
  if (r.rc != 0) throw std::runtime_error("cannot read " + dev + "'s statistics: " + r.err);
  std::map<std::string, uint64_t> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    const auto name = line.find_first_not_of(' ');
    if (colon == std::string::npos || name >= colon) continue;
    try {
      out[line.substr(name, colon - name)] = std::stoull(line.substr(colon + 1));
    } catch (const std::exception&) {
      // a heading such as "NIC statistics:"
    }
  }
  return out;
}

uint64_t Lab::veth_xmit_errors() const {
  uint64_t total = 0;
  for (const auto& [name, value] : ethtool_stats(gen_, "gen0"))
    if (name.ends_with("_xdp_xmit_errors")) total += value;
  return total;
}

std::vector<uint64_t> Lab::dut_queue_xdp_packets() const {
  const auto stats = ethtool_stats(dut_, "dut0");
  std::vector<uint64_t> out;
  for (int q = 0;; q++) {
    auto it = stats.find("rx_queue_" + std::to_string(q) + "_xdp_packets");
    if (it == stats.end()) return out;
    out.push_back(it->second);
  }
}

uint64_t Lab::nft_counter(const std::string& name) const {
  Outcome r = in_dut({"nft", "-j", "list", "counter", "netdev", "lab", name});
  if (r.rc != 0) throw std::runtime_error("cannot read nft counter " + name + ": " + r.err);
  const auto doc = nlohmann::json::parse(r.out);
  for (const auto& item : doc["nftables"])
    if (item.contains("counter")) return item["counter"]["packets"].get<uint64_t>();
  throw std::runtime_error("no counter " + name + " in nft output");
}

void Lab::reset_received() const {
  if (Outcome r = in_dut({"nft", "reset", "counters", "table", "netdev", "lab"}); r.rc != 0)
    throw std::runtime_error("cannot reset the lab's counters: " + r.err);
}

}  // namespace xt::test
