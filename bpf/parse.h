/* SPDX-License-Identifier: MIT */
/*
 * Stage 1, parse: find the source address of a frame. Pure: compiles for the
 * BPF target and for the host (unit tests, fuzzers), with every read checked
 * against the end of the frame first.
 *
 * It reads only what a verdict depends on: rules match sources, so the parser
 * stops at the source address in the fixed IPv4/IPv6 header. IPv4 options,
 * IPv6 extension headers and L4 headers are never read, so every fragment
 * (first or not) and every extension-header chain, however long, is limited
 * by its source like any other packet. docs/hostile-input.md lists each verdict.
 */
#ifndef XTHROTTLE_PARSE_H
#define XTHROTTLE_PARSE_H

#include "pure.h"
#include <xthrottle/abi.h>

#define XT_ETH_HLEN 14
#define XT_VLAN_HLEN 4
#define XT_MAX_VLAN 2 /* one 802.1Q tag, or an 802.1ad QinQ pair */

#define XT_ETH_P_IP 0x0800
#define XT_ETH_P_IPV6 0x86DD
#define XT_ETH_P_8021Q 0x8100
#define XT_ETH_P_8021AD 0x88A8

enum xt_parse_result {
	XT_PARSE_IP = 0,    /* pkt holds the source */
	XT_PARSE_NON_IP,    /* not IPv4/IPv6 (ARP, LLDP, ...): no source to limit */
	XT_PARSE_MALFORMED, /* no source we can trust: runt frame, truncated or
			     * invalid IP header, more VLAN tags than XT_MAX_VLAN */
};

struct xt_pkt {
	__u8 family; /* XT_FAMILY_V4 or XT_FAMILY_V6 */
	__u8 addr[16];
};

XT_INLINE __u16 xt_load_be16(const __u8 *p)
{
	return (__u16)((__u16)p[0] << 8 | p[1]);
}

XT_INLINE int xt_parse(const void *data, const void *data_end, struct xt_pkt *pkt)
{
	const __u8 *p = (const __u8 *)data;
	const __u8 *end = (const __u8 *)data_end;

	if (p + XT_ETH_HLEN > end)
		return XT_PARSE_MALFORMED;
	__u16 proto = xt_load_be16(p + 12);
	p += XT_ETH_HLEN;

	XT_UNROLL
	for (int i = 0; i < XT_MAX_VLAN; i++) {
		if (proto != XT_ETH_P_8021Q && proto != XT_ETH_P_8021AD)
			break;
		if (p + XT_VLAN_HLEN > end)
			return XT_PARSE_MALFORMED;
		proto = xt_load_be16(p + 2);
		p += XT_VLAN_HLEN;
	}
	/* A tag beyond the ones followed: the source is out of reach, and
	 * letting such frames through would let a flood bypass every rule. */
	if (proto == XT_ETH_P_8021Q || proto == XT_ETH_P_8021AD)
		return XT_PARSE_MALFORMED;

	if (proto == XT_ETH_P_IP) {
		if (p + 20 > end)
			return XT_PARSE_MALFORMED;
		__u8 version = p[0] >> 4, ihl = p[0] & 0x0f;
		__u16 total = xt_load_be16(p + 2);
		/* The stack discards these too (ip_rcv_core); dropping them here
		 * costs less. total is not compared with the frame's length: a
		 * multi-buffer frame's tail is not in [data, data_end). */
		if (version != 4 || ihl < 5 || p + ihl * 4 > end || total < ihl * 4)
			return XT_PARSE_MALFORMED;
		pkt->family = XT_FAMILY_V4;
		__builtin_memcpy(pkt->addr, p + 12, 4);
		return XT_PARSE_IP;
	}
	if (proto == XT_ETH_P_IPV6) {
		if (p + 40 > end)
			return XT_PARSE_MALFORMED;
		if (p[0] >> 4 != 6)
			return XT_PARSE_MALFORMED;
		pkt->family = XT_FAMILY_V6;
		__builtin_memcpy(pkt->addr, p + 8, 16);
		return XT_PARSE_IP;
	}
	return XT_PARSE_NON_IP;
}

#endif /* XTHROTTLE_PARSE_H */
