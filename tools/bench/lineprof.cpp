// SPDX-License-Identifier: MIT
// lineprof: where a loaded BPF program spends its time, by source line.
//
// perf samples a JITed program by address only (perf annotate needs a perf
// built with libopcodes for BPF, and bpftool one with libbfd; Debian's have
// neither). The kernel keeps, for each program, the address each source
// line's code starts at (jited_line_info) and the line's text (BTF). This
// reads both and puts each sample of `perf script` on the line whose code
// it fell in. A stalled load's samples land on it or just after it, so a
// line that reads a line of memory the cache does not hold stands out.
//
//   perf record -C 0 -e cpu-clock -F 10000 -o perf.data -- sleep 3   (while the program runs)
//   lineprof --prog ID --perf perf.data [--top 30]
#include <CLI/CLI.hpp>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fd.h"

namespace {

[[noreturn]] void die(const std::string& msg) {
  std::cerr << "lineprof: " << msg << "\n";
  std::exit(1);
}

struct Line {
  uint64_t addr;     // where its code starts
  std::string where;  // file:line
  std::string text;  // the source line
};

struct Program {
  std::vector<Line> lines;                          // by address
  std::vector<std::pair<uint64_t, uint64_t>> funcs;  // [start, end) of each function's code
  bool holds(uint64_t ip) const {
    return std::ranges::any_of(funcs, [ip](const auto& f) { return ip >= f.first && ip < f.second; });
  }
};

Program read_program(uint32_t id) {
  const xt::Fd fd(bpf_prog_get_fd_by_id(id));
  if (!fd) die("cannot open program " + std::to_string(id) + ": " + std::strerror(errno));
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) die(std::string("cannot read its info: ") + std::strerror(errno));
  if (!info.nr_jited_line_info || !info.btf_id) die("it has no line info (loaded without BTF, or not JITed)");
  std::vector<bpf_line_info> li(info.nr_line_info);
  std::vector<uint64_t> jited(info.nr_jited_line_info), starts(info.nr_jited_ksyms);
  std::vector<uint32_t> lens(info.nr_jited_func_lens);
  bpf_prog_info more{};
  more.nr_line_info = info.nr_line_info;
  more.line_info_rec_size = sizeof(bpf_line_info);
  more.line_info = reinterpret_cast<uint64_t>(li.data());
  more.nr_jited_line_info = info.nr_jited_line_info;
  more.jited_line_info_rec_size = sizeof(uint64_t);
  more.jited_line_info = reinterpret_cast<uint64_t>(jited.data());
  more.nr_jited_ksyms = info.nr_jited_ksyms;
  more.jited_ksyms = reinterpret_cast<uint64_t>(starts.data());
  more.nr_jited_func_lens = info.nr_jited_func_lens;
  more.jited_func_lens = reinterpret_cast<uint64_t>(lens.data());
  len = sizeof(more);
  if (bpf_obj_get_info_by_fd(fd.get(), &more, &len) != 0)
    die(std::string("cannot read its line info: ") + std::strerror(errno));
  std::unique_ptr<btf, decltype(&btf__free)> b(btf__load_from_kernel_by_id(info.btf_id), btf__free);
  if (!b) die("cannot load its BTF " + std::to_string(info.btf_id));
  Program p;
  for (size_t i = 0; i < starts.size() && i < lens.size(); i++) p.funcs.emplace_back(starts[i], starts[i] + lens[i]);
  for (size_t i = 0; i < li.size() && i < jited.size(); i++) {
    const char* file = btf__name_by_offset(b.get(), li[i].file_name_off);
    const char* text = btf__name_by_offset(b.get(), li[i].line_off);
    std::string f = file ? file : "?";
    f = f.substr(f.rfind('/') + 1);
    p.lines.push_back({jited[i], f + ":" + std::to_string(BPF_LINE_INFO_LINE_NUM(li[i].line_col)), text ? text : ""});
  }
  // Lines that made no code share an address with the next: keep their order.
  std::ranges::stable_sort(p.lines, {}, &Line::addr);
  if (p.funcs.empty()) die("it has no JITed code");
  if (std::ranges::all_of(p.funcs, [](const auto& f) { return f.first == 0; }))
    die("the kernel gave no code addresses (kernel.kptr_restrict, or no CAP_SYSLOG)");
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t id = 0;
  std::string data = "perf.data";
  size_t top = 30;
  CLI::App app{"lineprof: a BPF program's perf samples by source line", "lineprof"};
  app.add_option("--prog", id, "The program's id (ip -j link show, bpftool prog)")->required();
  app.add_option("--perf", data, "perf record's output, taken while the program ran")->capture_default_str();
  app.add_option("--top", top, "Lines to print")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const Program prog = read_program(id);
  // -G: a sample's own address only, not its call chain's.
  std::string quoted = "'";
  for (char c : data) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  const std::string cmd = "perf script -G -i " + quoted + "' -F ip,sym 2>/dev/null";
  std::unique_ptr<FILE, decltype(&pclose)> in(popen(cmd.c_str(), "r"), pclose);
  if (!in) die("cannot run perf script");
  std::map<size_t, uint64_t> by_line;
  std::map<std::string, uint64_t> by_func;
  uint64_t samples = 0, all = 0;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), in.get())) {
    all++;
    char sym[256] = "";
    unsigned long long ip = 0;
    if (std::sscanf(buf, " %llx %255s", &ip, sym) < 1 || !prog.holds(ip)) continue;
    samples++;
    by_func[sym]++;
    const auto it = std::ranges::upper_bound(prog.lines, ip, {}, &Line::addr);
    if (it != prog.lines.begin()) by_line[static_cast<size_t>(it - prog.lines.begin() - 1)]++;
  }
  if (!samples) die("none of " + std::to_string(all) + " samples fell in program " + std::to_string(id));
  std::printf("%llu of %llu samples in program %u\n\n", (unsigned long long)samples, (unsigned long long)all, id);
  auto pct = [samples](uint64_t n) { return 100.0 * static_cast<double>(n) / static_cast<double>(samples); };
  std::vector<std::pair<uint64_t, std::string>> funcs;
  for (const auto& [f, n] : by_func) funcs.emplace_back(n, f);
  std::ranges::sort(funcs, std::greater<>());
  for (const auto& [n, f] : funcs) std::printf("%6.1f%%  %s\n", pct(n), f.c_str());
  std::printf("\n");
  std::vector<std::pair<uint64_t, size_t>> lines;
  for (const auto& [i, n] : by_line) lines.emplace_back(n, i);
  std::ranges::sort(lines, std::greater<>());
  for (size_t k = 0; k < lines.size() && k < top; k++) {
    const Line& l = prog.lines[lines[k].second];
    std::string text = l.text.substr(std::min(l.text.find_first_not_of(" \t"), l.text.size()));
    if (text.size() > 90) text = text.substr(0, 90);
    std::printf("%6.1f%%  %-24s %s\n", pct(lines[k].first), l.where.c_str(), text.c_str());
  }
  return 0;
}
