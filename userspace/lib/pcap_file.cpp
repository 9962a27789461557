// SPDX-License-Identifier: MIT
#include "pcap_file.h"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <vector>

namespace xt {

Result<PcapFile> PcapFile::open(const std::string& path, uint32_t snaplen) {
  PcapFile f;
  // Room for the Ethernet header a frame without a link layer is given.
  pcap_t* p =
      pcap_open_dead_with_tstamp_precision(DLT_EN10MB, static_cast<int>(snaplen) + 14, PCAP_TSTAMP_PRECISION_MICRO);
  if (!p) return system_error("cannot start a pcap file");
  f.pcap_ = std::shared_ptr<pcap>(p, pcap_close);
  FILE* out = stdout;
  if (path != "-") {
    // Made 0600, as the record is: the samples hold clients' addresses and
    // what they sent (pcap_dump_open would make it as the umask says,
    // 0644 for root).
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return system_error("cannot write " + path, errno);
    struct stat st{};
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) (void)fchmod(fd, 0600);  // one an older capture made 0644
    out = fdopen(fd, "wb");
    if (!out) {
      const int err = errno;
      ::close(fd);
      return system_error("cannot write " + path, err);
    }
  }
  pcap_dumper_t* d = pcap_dump_fopen(p, out);
  if (!d) {
    if (out != stdout) std::fclose(out);
    return system_error("cannot write " + path + ": " + pcap_geterr(p));
  }
  f.dumper_ = std::shared_ptr<pcap_dumper>(d, pcap_dump_close);
  f.path_ = path == "-" ? "standard output" : path;
  return f;
}

void PcapFile::write(const CaptureSample& s, double unix_seconds) {
  std::vector<uint8_t> frame;
  std::span<const uint8_t> bytes = s.bytes;
  uint32_t len = s.meta.len;
  if (s.meta.link == XT_LINK_IP) {
    // No link layer: an Ethernet header of zeros, of the IP version's type.
    frame.assign(14, 0);
    const bool v6 = !bytes.empty() && bytes[0] >> 4 == 6;
    frame[12] = v6 ? 0x86 : 0x08;
    frame[13] = v6 ? 0xdd : 0x00;
    frame.insert(frame.end(), bytes.begin(), bytes.end());
    bytes = frame;
    len += 14;
  }
  pcap_pkthdr hdr{};
  double whole = 0;
  const double frac = std::modf(unix_seconds, &whole);
  hdr.ts.tv_sec = static_cast<time_t>(whole);
  hdr.ts.tv_usec = static_cast<suseconds_t>(frac * 1e6);
  hdr.caplen = static_cast<uint32_t>(bytes.size());
  hdr.len = len;
  pcap_dump(reinterpret_cast<u_char*>(dumper_.get()), &hdr, bytes.data());
  // A write that failed in there (its buffer full) says why now: errno is
  // another call's by the next flush.
  if (std::ferror(pcap_dump_file(dumper_.get()))) note_failure();
}

void PcapFile::note_failure() {
  if (!failed_errno_) failed_errno_ = errno ? errno : EIO;
}

Result<void> PcapFile::flush() {
  // A full disk shows here (pcap_dump itself says nothing), or in the
  // stream's error flag once a buffered write failed.
  if (pcap_dump_flush(dumper_.get()) != 0 || std::ferror(pcap_dump_file(dumper_.get()))) {
    note_failure();
    return system_error("cannot write " + path_, failed_errno_);
  }
  return {};
}

}  // namespace xt
