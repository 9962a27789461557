// SPDX-License-Identifier: MIT
// Blocklist files as they are published: plain lists, ipset saves, Spamhaus
// DROP (text and JSON). A bad line fails as usage (exit 2) naming FILE:LINE
// and the bad token.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <xthrottle/abi.h>

#include "blocklist_file.h"
#include "files.h"

namespace xt {
namespace {

std::vector<std::string> cidrs_of(std::string_view text) {
  auto r = parse_blocklist(text, "list.txt");
  EXPECT_TRUE(r.has_value()) << r.error().message;
  std::vector<std::string> out;
  if (r)
    for (const Cidr& c : *r) out.push_back(format_cidr(c));
  return out;
}

// The error must be a usage error that quotes `token`.
void expect_usage_error(const Result<std::vector<Cidr>>& r, const std::string& token) {
  ASSERT_FALSE(r.has_value()) << "accepted input containing " << token;
  EXPECT_EQ(r.error().kind, ErrorKind::Usage);
  EXPECT_NE(r.error().message.find(token), std::string::npos)
      << "message does not point at " << token << ": " << r.error().message;
}

using V = std::vector<std::string>;

TEST(BlocklistFile, PlainWithComments) {
  EXPECT_EQ(cidrs_of("# a list\n"
                     "198.18.0.0/15\n"
                     "\n"
                     "  203.0.113.7  \n"
                     "; a Spamhaus-style comment\n"
                     "1.10.16.0/20 ; SBL256894\n"
                     "192.0.2.0/24# no space before the comment\n"
                     "\t192.0.2.0/24\t# duplicates are kept\n"),
            (V{"198.18.0.0/15", "203.0.113.7/32", "1.10.16.0/20", "192.0.2.0/24", "192.0.2.0/24"}));
}

TEST(BlocklistFile, CrlfAndNoFinalNewline) {
  EXPECT_EQ(cidrs_of("198.18.0.0/15\r\n\r\n# c\r\n203.0.113.7 ; x\r\n2001:db8::1"),
            (V{"198.18.0.0/15", "203.0.113.7/32", "2001:db8::1/128"}));
}

TEST(BlocklistFile, Ipv6Entries) {
  EXPECT_EQ(cidrs_of("2001:db8::/32\n198.18.0.0/15\n::1\n2001:db8:1::/48 ; SBL1\n"),
            (V{"2001:db8::/32", "198.18.0.0/15", "::1/128", "2001:db8:1::/48"}));
}

TEST(BlocklistFile, EmptyFileHasNoEntries) {
  EXPECT_EQ(cidrs_of(""), V{});
  EXPECT_EQ(cidrs_of("\n\n# only comments\r\n; and more\n   \n"), V{});
}

TEST(BlocklistFile, Ranges) {
  EXPECT_EQ(cidrs_of("198.18.0.1-198.18.0.6\n"),
            (V{"198.18.0.1/32", "198.18.0.2/31", "198.18.0.4/31", "198.18.0.6/32"}));
  EXPECT_EQ(cidrs_of("10.0.0.0-10.0.0.255\n"), V{"10.0.0.0/24"});
  EXPECT_EQ(cidrs_of("10.0.0.7-10.0.0.7\n"), V{"10.0.0.7/32"});
  EXPECT_EQ(cidrs_of("0.0.0.0-255.255.255.255\n"), V{"0.0.0.0/0"});
  EXPECT_EQ(cidrs_of("255.255.255.254-255.255.255.255\n"), V{"255.255.255.254/31"});
  EXPECT_EQ(cidrs_of("10.0.0.255-10.0.2.0 # firehol style\n"),
            (V{"10.0.0.255/32", "10.0.1.0/24", "10.0.2.0/32"}));
}

TEST(BlocklistFile, BadRanges) {
  auto r = parse_blocklist("198.18.0.6-198.18.0.1\n", "list.txt");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "list.txt:1: the range's first address is above its last: 198.18.0.6-198.18.0.1");
  expect_usage_error(parse_blocklist("2001:db8::1-2001:db8::9\n", "f"), "IPv6 ranges");
  expect_usage_error(parse_blocklist("10.0.0.0/24-10.0.1.0\n", "f"), "10.0.0.0/24-10.0.1.0");
  expect_usage_error(parse_blocklist("10.0.0.1-\n", "f"), "10.0.0.1-");
  expect_usage_error(parse_blocklist("10.0.0.1-host\n", "f"), "10.0.0.1-host");
}

TEST(BlocklistFile, IpsetSave) {
  EXPECT_EQ(cidrs_of("create bad hash:net family inet hashsize 1024 maxelem 65536 timeout 300 counters comment\n"
                     "add bad 203.0.113.0/24 timeout 293 packets 0 bytes 0 comment \"seen; #1 nomatch\"\n"
                     "add bad 198.18.0.1\n"
                     "create six hash:ip family inet6 hashsize 1024 maxelem 65536 skbinfo\n"
                     "add six 2001:db8::1 skbmark 0x1 skbprio 1:2 skbqueue 3\n"
                     "create small bitmap:ip range 192.0.2.0-192.0.2.255\n"
                     "add small 192.0.2.1-192.0.2.2\n"
                     "add small 192.0.2.9 # hand-written comment\n"),
            (V{"203.0.113.0/24", "198.18.0.1/32", "2001:db8::1/128", "192.0.2.1/32", "192.0.2.2/32",
               "192.0.2.9/32"}));
}

// hash:ip and bitmap:ip with a netmask hold a network for each address
// added (the kernel masks it), and a save lists the bare address: read as
// that address alone, the rest of its network passed.
TEST(BlocklistFile, IpsetNetmaskWidensEachEntry) {
  EXPECT_EQ(cidrs_of("create bad hash:ip family inet hashsize 1024 maxelem 65536 netmask 24\n"
                     "add bad 192.0.2.0\n"
                     "add bad 198.18.7.0\n"
                     "create other hash:ip family inet\n"
                     "add other 198.18.9.9\n"
                     "create six hash:ip family inet6 netmask 64\n"
                     "add six 2001:db8:1:2::\n"
                     "create masked hash:ip family inet bitmask 255.255.0.0\n"
                     "add masked 198.19.0.0\n"
                     "create small bitmap:ip range 192.0.2.0-192.0.2.255 netmask 30\n"
                     "add small 192.0.2.8-192.0.2.11\n"),
            (V{"192.0.2.0/24", "198.18.7.0/24", "198.18.9.9/32", "2001:db8:1:2::/64", "198.19.0.0/16",
               "192.0.2.8/30"}));
  expect_usage_error(parse_blocklist("create x hash:ip bitmask 255.0.255.0\n", "f"), "255.0.255.0");
  expect_usage_error(parse_blocklist("create x hash:ip family inet netmask 40\n", "f"), "netmask");
  expect_usage_error(parse_blocklist("create x hash:ip netmask twenty\n", "f"), "twenty");
}

TEST(BlocklistFile, IpsetNomatchRefused) {
  auto r = parse_blocklist("create bad hash:net family inet\nadd bad 203.0.113.0/24\nadd bad 203.0.113.8/29 nomatch\n",
                           "sets.save");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::Usage);
  EXPECT_EQ(r.error().message, "sets.save:3: ipset nomatch entries (exceptions) cannot be expressed: 203.0.113.8/29");
}

TEST(BlocklistFile, IpsetUnknownTypeRefused) {
  auto r = parse_blocklist("create svc hash:net,port family inet\nadd svc 203.0.113.0/24,tcp:80\n", "sets.save");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message,
            "sets.save:1: unsupported ipset type (only hash:ip, hash:net and bitmap:ip hold plain addresses): "
            "hash:net,port");
  expect_usage_error(parse_blocklist("create all list:set size 8\n", "f"), "list:set");
  expect_usage_error(parse_blocklist("create x\n", "f"), "create x");
  expect_usage_error(parse_blocklist("add x\n", "f"), "add x");
}

TEST(BlocklistFile, SpamhausJson) {
  EXPECT_EQ(cidrs_of("{\"cidr\":\"1.10.16.0/20\",\"sblid\":\"SBL256894\",\"rir\":\"apnic\"}\n"
                     "{\"cidr\":\"2001:db8::/32\",\"sblid\":\"SBL1\",\"rir\":\"ripencc\"}\r\n"
                     "{\"type\":\"metadata\",\"timestamp\":1700000000,\"size\":2,\"records\":2,\"copyright\":\"x\"}\n"),
            (V{"1.10.16.0/20", "2001:db8::/32"}));
}

TEST(BlocklistFile, BadJsonRefused) {
  auto r = parse_blocklist("{\"cidr\":\"1.10.16.0/20\"}\n{\"cidr\":\"1.10.32.0/20\"\n", "drop_v4.json");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "drop_v4.json:2: invalid JSON: {\"cidr\":\"1.10.32.0/20\"");
  expect_usage_error(parse_blocklist("{\"cidr\":20}\n", "f"), "f:1: \"cidr\" is not a string");
  // A server's answer where a list was expected (curl without -f): an
  // empty list, which would have emptied the live one, exit 0.
  expect_usage_error(parse_blocklist("{\"message\":\"Not Found\"}\n", "drop.json"), "drop.json:1: a JSON line without");
  expect_usage_error(parse_blocklist("{\"type\":7}\n", "f"), "f:1:");
  expect_usage_error(parse_blocklist("{\"cidr\":\"1.10.16.1/20\"}\n", "f"), "f:1: host bits are set");
}

TEST(BlocklistFile, BadLineNamesFileAndLine) {
  auto r = parse_blocklist("198.18.0.0/15\n# fine\n203.0.113.7\nexample.com\n192.0.2.0/24\n", "/etc/xthrottle/bad.txt");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::Usage);
  EXPECT_EQ(r.error().message, "/etc/xthrottle/bad.txt:4: not an address, CIDR or range: example.com");
}

TEST(BlocklistFile, BadEntries) {
  // parse_cidr's rules: host bits set is refused with the masked prefix
  // suggested, never silently masked.
  auto host_bits = parse_blocklist("198.18.0.1/24\n", "f");
  ASSERT_FALSE(host_bits.has_value());
  EXPECT_EQ(host_bits.error().message, "f:1: host bits are set (did you mean 198.18.0.0/24?): 198.18.0.1/24");
  auto too_long = parse_blocklist("\n198.18.0.0/33\n", "f");
  ASSERT_FALSE(too_long.has_value());
  EXPECT_EQ(too_long.error().message,
            "f:2: prefix length 33 is longer than an IPv4 address (32 bits): 198.18.0.0/33");
  expect_usage_error(parse_blocklist("2001:db8::/129\n", "f"), "f:1: prefix length 129");
  expect_usage_error(parse_blocklist("198.18.0.300\n", "f"), "f:1: not an address, CIDR or range: 198.18.0.300");
  expect_usage_error(parse_blocklist("198.18.0.0/\n", "f"), "198.18.0.0/");
  expect_usage_error(parse_blocklist("198.18.0.0/x\n", "f"), "198.18.0.0/x");
  expect_usage_error(parse_blocklist("198.18.0.1 198.18.0.2\n", "f"), "f:1: more than one entry on a line: 198.18.0.2");
  expect_usage_error(parse_blocklist("\x01\xff garbage\n", "f"), "f:1: ");
  // A feed's IPv4-mapped entry is inert, and costs the list nothing (a
  // boot's serve --config would otherwise come up without any of it).
  EXPECT_TRUE(parse_blocklist("198.18.5.0/24\n::ffff:198.18.0.7\n", "f").has_value());
}

// A list is counted as the loader walks it: addresses past /24 within a
// shorter prefix of the list take no room of their own. Counted apart, a
// /8 with a million /32s in it was refused though it loads.
TEST(BlocklistFile, AddressesWithinAShorterPrefixTakeNoRoom) {
  std::vector<Cidr> list = {*parse_cidr("10.0.0.0/8")};
  for (uint32_t n = 0; n <= XT_MAX_BLOCK_HOSTS; n++) {
    Cidr host = *parse_cidr("10.0.0.0/32");
    host.addr[1] = static_cast<uint8_t>(n >> 16);
    host.addr[2] = static_cast<uint8_t>(n >> 8);
    host.addr[3] = static_cast<uint8_t>(n);
    list.push_back(host);
  }
  EXPECT_TRUE(check_blocklist("nested", list).has_value());
  list[0] = *parse_cidr("11.0.0.0/8");  // the /32s on their own
  auto apart = check_blocklist("apart", list);
  ASSERT_FALSE(apart.has_value());
  EXPECT_NE(apart.error().message.find("blocklist apart holds " + std::to_string(XT_MAX_BLOCK_HOSTS + 1) + " IPv4"),
            std::string::npos)
      << apart.error().message;
}

// What the loader is handed from elsewhere than the parser (a snapshot, a
// peer) is checked the same way: an entry with bits past its prefix would
// send the loader's walk of its /24s past the table's end.
TEST(BlocklistFile, AnEntryWithBitsPastItsPrefixIsNoPrefix) {
  EXPECT_TRUE(check_blocklist("drop", {*parse_cidr("198.18.5.0/24"), *parse_cidr("2001:db8:5::/48")}).has_value());
  Cidr host_bits = *parse_cidr("198.18.5.0/24");
  host_bits.addr[3] = 9;
  Cidr past_v4 = *parse_cidr("198.18.5.0/24");
  past_v4.addr[4] = 1;  // past an IPv4 address's four bytes
  Cidr top = *parse_cidr("255.255.255.0/24");
  top.len = 23;
  Cidr v6 = *parse_cidr("2001:db8:5::/48");
  v6.addr[15] = 1;
  for (const Cidr& c : {host_bits, past_v4, top, v6}) {
    auto r = check_blocklist("drop", {c});
    ASSERT_FALSE(r.has_value()) << format_cidr(c) << " accepted";
    EXPECT_EQ(r.error().kind, ErrorKind::Usage);
    EXPECT_NE(r.error().message.find("no prefix"), std::string::npos) << r.error().message;
  }
}

// Every file the controller reads whole (rules, snapshots, /proc, lists)
// goes through read_file: a directory, or a read that fails, is an error
// with its errno, never an exception (libstdc++'s stream threw one from a
// directory's read, and `restore DIR` or `serve --snapshot DIR` died of it).
TEST(Files, ADirectoryIsAnErrorNotAnAbort) {
  char dir[] = "/tmp/xt_files_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  errno = 0;
  EXPECT_FALSE(read_file(dir).has_value());
  EXPECT_EQ(errno, EISDIR);
  auto r = read_blocklist(dir);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("Is a directory"), std::string::npos) << r.error().message;
  const std::string file = std::string(dir) + "/f";
  std::ofstream(file) << std::string(100000, 'x');
  EXPECT_EQ(read_file(file).value_or("").size(), 100000u) << "a regular file, whole";
  EXPECT_NE(read_file("/proc/self/status").value_or("").find("Name:"), std::string::npos) << "a /proc file, sized 0";
  std::filesystem::remove_all(dir);
}

TEST(BlocklistFile, ReadsFiles) {
  char path[] = "/tmp/xt_blocklist_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "198.18.0.0/15\r\n2001:db8::/32 ; six\r\n";
  auto r = read_blocklist(path);
  std::remove(path);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(format_cidr((*r)[1]), "2001:db8::/32");

  auto missing = read_blocklist("/nonexistent/xt-blocklist.txt");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().kind, ErrorKind::System);
  EXPECT_NE(missing.error().message.find("/nonexistent/xt-blocklist.txt"), std::string::npos);
  auto dir = read_blocklist("/tmp");
  ASSERT_FALSE(dir.has_value());
  EXPECT_EQ(dir.error().kind, ErrorKind::System);
}

TEST(BlocklistFile, MillionLines) {
  std::string text;
  text.reserve(20'000'000);
  constexpr uint32_t kLines = 1'000'000;
  for (uint32_t i = 0; i < kLines; i++) {
    const uint32_t a = 0x0a000000 + i;  // 10.0.0.0 upwards
    text += std::to_string(a >> 24) + '.' + std::to_string(a >> 16 & 0xff) + '.' + std::to_string(a >> 8 & 0xff) +
            '.' + std::to_string(a & 0xff);
    text += i % 3 == 0 ? "/32 ; SBL\n" : "\n";
  }
  auto r = parse_blocklist(text, "big.txt");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(r->size(), kLines);
  EXPECT_EQ(format_cidr(r->front()), "10.0.0.0/32");
  EXPECT_EQ(format_cidr(r->back()), "10.15.66.63/32");
}

}  // namespace
}  // namespace xt
