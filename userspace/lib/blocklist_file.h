// SPDX-License-Identifier: MIT
// Blocklist files, for `xthrottle blocklist load NAME FILE`: the lists people
// already have, read as they are published, the format guessed line by line.
//
//   1.10.16.0/20 ; SBL256894            plain: an address, CIDR or IPv4 range
//   198.18.0.1-198.18.0.6               (A-B, covered by the fewest CIDRs),
//   # a comment                         comments after # or ; (whole or trailing)
//   create bad hash:net family inet     ipset save: hash:ip, hash:net, bitmap:ip
//   add bad 203.0.113.0/24 timeout 300  sets; options ignored, nomatch refused
//   {"cidr":"1.10.16.0/20","sblid":..}  Spamhaus DROP JSON lines; objects
//                                       without "cidr" (metadata) skipped
//
// Pure apart from read_blocklist's one read: unit-tested on the host.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "error.h"
#include "policy.h"

namespace xt {

// Parses a blocklist's text; `name` is what errors are prefixed with (the
// file's path). Returns the CIDRs (IPv4 and IPv6 mixed, in file order,
// duplicates and overlaps kept) or a usage error
// "NAME:LINE: <what is wrong>: <the offending token>". An entry with host bits
// set (198.18.0.1/24) is refused as parse_cidr refuses it, never masked: a
// list that says so is more likely wrong than meant.
Result<std::vector<Cidr>> parse_blocklist(std::string_view text, std::string_view name);
// Reads the file (a system error naming the path if it cannot be read) and
// parses it.
Result<std::vector<Cidr>> read_blocklist(const std::string& path);

// A blocklist's name: 1 to XT_BLOCKLIST_NAME_SIZE - 1 letters, digits, '-',
// '_' or '.'; a usage error saying so otherwise.
Result<void> check_blocklist_name(const std::string& name);
// A list the data path can take under that name: the name as above, and no
// entry that is every source of its family (/0: a deny rule says that).
Result<void> check_blocklist(const std::string& name, const std::vector<Cidr>& cidrs);
// The IPv4 prefixes of a union (first address, prefix length; in any
// order, repeated or nested) that no other of them holds, by address: the
// shorter of two at one address first, a prefix within the last one kept
// left out (prefixes never overlap in part). *past_24 is the addresses of
// those kept longer than /24, which the data path holds one by one. What
// the loader walks (State::switch_blocklists), and what
// check_blocklist_size counts, alike.
std::vector<std::pair<uint32_t, uint8_t>> outermost_ipv4(std::vector<std::pair<uint32_t, uint8_t>> prefixes,
                                                         uint64_t* past_24);
// The limits alone: what the data path takes of the prefixes (IPv4
// addresses past /24, IPv6 prefixes), distinct ones counted; a usage error
// "WHAT holds N ..." past them.
Result<void> check_blocklist_size(const std::string& what, const std::vector<Cidr>& cidrs);

}  // namespace xt
