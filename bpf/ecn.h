/* SPDX-License-Identifier: MIT */
/*
 * --over ecn: marking a packet Congestion Experienced (RFC 3168) in place.
 * Pure: compiles for the BPF target and the host; the bpf tests (Ecn.*)
 * check the IPv4 checksum of every marked packet against one computed from
 * scratch.
 *
 * The ECN field is the low two bits of the IPv4 TOS byte and of the IPv6
 * traffic class: 00 not ECN-capable, 01 and 10 ECN-capable (ECT(1),
 * ECT(0)), 11 Congestion Experienced. Only an ECN-capable packet may be
 * marked; a packet already marked stays as it is.
 */
#ifndef XTHROTTLE_ECN_H
#define XTHROTTLE_ECN_H

#include "pure.h"
#include <xthrottle/abi.h>

#define XT_ECN_MASK 0x3
#define XT_ECN_CE 0x3

enum xt_ecn_result {
	XT_ECN_NOT_CAPABLE = 0, /* 00: left as it is (dropped only over the limit) */
	XT_ECN_MARKED = 1,      /* was ECT(0) or ECT(1), now CE */
	XT_ECN_WAS_MARKED = 2,  /* already CE (marked upstream) */
};

/* Marks the IP header at l3 (of `family`, its first 12 bytes readable,
 * which the caller has checked: the ECN bits and the IPv4 checksum lie
 * there) CE if it is ECN-capable. An IPv4
 * header's checksum is updated incrementally (RFC 1624, eqn. 3): the TOS
 * byte is the low byte of the header's first 16-bit word. */
XT_INLINE int xt_ecn_mark(__u8 *l3, __u8 family)
{
	if (family == XT_FAMILY_V4) {
		const __u8 ecn = l3[1] & XT_ECN_MASK;
		if (ecn == XT_ECN_CE)
			return XT_ECN_WAS_MARKED;
		if (!ecn)
			return XT_ECN_NOT_CAPABLE;
		/* The words as they lie in memory (network order): one's
		 * complement sums come out the same in either byte order. */
		const __u16 old_word = (__u16)(l3[0] | l3[1] << 8);
		l3[1] |= XT_ECN_CE;
		const __u16 new_word = (__u16)(l3[0] | l3[1] << 8);
		const __u16 old_check = (__u16)(l3[10] | l3[11] << 8);
		__u32 sum = (__u16)~old_check + (__u32)(__u16)~old_word + new_word;
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		const __u16 check = (__u16)~sum;
		l3[10] = (__u8)(check & 0xff);
		l3[11] = (__u8)(check >> 8);
		return XT_ECN_MARKED;
	}
	/* IPv6: version (4 bits), traffic class (8), flow label (20); the
	 * ECN bits are bits 4 and 5 of the second byte. No checksum. */
	const __u8 ecn = (l3[1] >> 4) & XT_ECN_MASK;
	if (ecn == XT_ECN_CE)
		return XT_ECN_WAS_MARKED;
	if (!ecn)
		return XT_ECN_NOT_CAPABLE;
	l3[1] |= XT_ECN_CE << 4;
	return XT_ECN_MARKED;
}

#endif /* XTHROTTLE_ECN_H */
