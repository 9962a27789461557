/* SPDX-License-Identifier: MIT */
/*
 * A whole rule against one bucket: every limit of the rule (packets, bytes)
 * must allow a packet for it to pass, and a packet that fails writes
 * nothing. Pure: the BPF program runs xt_meter_word inside a
 * compare-and-swap loop for each limit; the host tests run xt_meter.
 */
#ifndef XTHROTTLE_METER_H
#define XTHROTTLE_METER_H

#include "pure.h"
#include "gcra.h"
#include <xthrottle/abi.h>

/* Smallest frame an IPv4 / IPv6 packet can come in with an Ethernet header,
 * and without any (XT_LINK_IP: tun, WireGuard): what the hot cache assumes
 * the next packet needs from a byte limit. */
#define XT_MIN_FRAME_V4 34
#define XT_MIN_FRAME_V6 54
#define XT_ETHER_HEADER_LEN 14

XT_INLINE __u64 xt_min_frame(__u8 family, __u8 link)
{
	const __u64 min = family == XT_FAMILY_V4 ? XT_MIN_FRAME_V4 : XT_MIN_FRAME_V6;
	return link == XT_LINK_IP ? min - XT_ETHER_HEADER_LEN : min;
}

/* Records in b that it dropped as of tick `at` (a drop now, or the last
 * tick of a hold), `now` being this CPU's tick: a later drop recorded
 * already (another CPU's, a tick ahead, or the end of a hold) is kept,
 * never moved back, but only one at most `reach` ticks ahead of now, the
 * furthest a hold ends. A stamp further ahead is an old one (or a zeroed
 * bucket's 0) read across the 32-bit wrap, and is replaced: compared
 * plainly, a stamp 2^31 ticks old reads as one in the future, and the
 * bucket's drops would go unrecorded for as long (no release, and
 * --ban-after counting through the breaks). */
XT_INLINE void xt_note_drop(struct xt_bucket *b, __u32 at, __u32 now, __u32 reach)
{
	const __s32 recorded = (__s32)(b->last_drop - now), mine = (__s32)(at - now);
	if (recorded > (__s32)reach || mine > recorded)
		b->last_drop = at;
}

/* A fresh bucket: full, in the rule's current units. */
XT_INLINE void xt_bucket_init(struct xt_bucket *b, const struct xt_rule *r, __u64 now)
{
	__builtin_memset(b, 0, sizeof(*b));
	b->last_drop = (__u32)now; /* not 0, which half of the clock's values read as ahead */
	XT_UNROLL
	for (int p = 0; p < XT_MAX_LIMITS; p++)
		b->word[p] = xt_full_word(&r->limit[p], now, r->gen);
}

/* The units limit p of rule r takes for a frame of len bytes standing for
 * pkts packets. */
XT_INLINE __u64 xt_units(const struct xt_rule *r, int p, __u64 len, __u32 pkts)
{
	return (r->byte_limits >> p) & 1 ? len : pkts;
}

/* --over ecn (docs/design.md, "Marks instead of drops"). A rule that
 * marks has each limit's cap half as large again as its burst: an
 * overdraft that only ECN-capable packets may use, every one of them
 * marked Congestion Experienced; any other packet must leave it untaken,
 * so it meets the limit's burst as under any other rule. Before that, once
 * half the burst is taken, a passing ECN-capable packet is marked at
 * random, so that a sender at the limit's rate gets
 * XT_ECN_MARKS_PER_SECOND marks a second on average whatever its packet
 * size: TCP slows down at most once a round trip, and marking every packet
 * while the bucket refills would slow it again every round trip, far below
 * the limit, while a full bucket throws tokens away. The overdraft takes
 * what a sender in slow start sends on before the marks reach it. What
 * passes is bounded all the same: burst + rate x time, and for ECN-capable
 * packets half a burst more, marked. */
#define XT_ECN_MARKS_PER_SECOND 10
/* xt_take's pkts carries this bit for an ECN-capable packet. */
#define XT_PKTS_ECT 0x80000000u

/* What of limit p's cap a packet must leave untaken: the overdraft (a
 * third of the cap, half the burst), unless the rule marks and the packet
 * is ECN-capable (ect), or the rule does not mark. */
XT_INLINE __u64 xt_ecn_keep(const struct xt_rule *r, int p, int ect)
{
	return (r->flags & XT_RULE_ECN) && !ect ? xt_overdraft(&r->limit[p]) : 0;
}

/* Whether an ECN-capable packet of len bytes standing for pkts packets
 * that passed against words w[] (as they are after it) at now (hz ticks a
 * second) is marked, given a uniform 64-bit random number rnd: in the
 * overdraft of a limit, always; past half its burst, with chance (what it
 * took) / (what the limit refills in 1 / XT_ECN_MARKS_PER_SECOND s). */
XT_INLINE int xt_meter_mark(const struct xt_rule *r, const __u64 w[XT_MAX_LIMITS], __u64 now, __u64 len, __u32 pkts,
			    __u32 hz, __u64 rnd)
{
	int mark = 0;
	XT_UNROLL
	for (int p = 0; p < XT_MAX_LIMITS; p++) {
		const struct xt_limit *l = &r->limit[p];
		if (!((r->limits >> p) & 1))
			continue;
		const __u64 debt = xt_debt(l, w[p], now);
		const __u64 burst = l->cap - xt_ecn_keep(r, p, 0);
		if (debt > burst) { /* in the overdraft */
			mark = 1;
			continue;
		}
		if (debt <= burst / 2)
			continue;
		const __u64 need = xt_units(r, p, len, pkts) * l->cost;
		__u64 per_interval = l->fill * hz / XT_ECN_MARKS_PER_SECOND;
		if (per_interval == 0)
			per_interval = 1;
		mark |= need >= per_interval || rnd % per_interval < need;
	}
	return mark;
}

/* Whether word p of rule r's buckets holds nothing but its generation: no
 * limit of the rule's uses it (a zero limit: xt_regen makes any word of it
 * the bare generation, whatever it was and whenever), and it is not the
 * fair word of a total (whose claims write it by compare-and-swap alone). */
XT_INLINE int xt_word_is_bare(const struct xt_rule *r, int p)
{
	if (r->limit[p].fill || r->limit[p].cost)
		return 0;
	return p != XT_FAIR_WORD || !(r->flags & XT_RULE_TOTAL);
}

/*
 * Limit p of rule r against word w (a snapshot) for one frame of len bytes
 * standing for pkts wire packets (1 but for a super-packet, parse.h
 * xt_wire_packets) at now: returns 1 and sets *next to the word after
 * taking the frame if the limit allows it (a limit not in force allows
 * anything, its word brought to the rule's generation all the same: a
 * later version may make it a limit's), 0 if not (nothing taken).
 * The limits are independent: the BPF program takes them one at a time,
 * each word by compare-and-swap (bucket.bpf.h).
 */
XT_INLINE int xt_meter_word(const struct xt_rule *r, int p, __u64 now, __u64 len, __u32 pkts, int ect, __u64 w,
			    __u64 *next)
{
	*next = XT_REGEN(r, p, w, now);
	return !((r->limits >> p) & 1) ||
	       xt_gcra_keep(&r->limit[p], *next, now, xt_units(r, p, len, pkts), xt_ecn_keep(r, p, ect), next);
}

/* Every limit of rule r against words w[]: 1 and next[] the words after
 * taking the frame if each limit allows it, 0 if one does not (a dropped
 * packet costs the source nothing). */
XT_INLINE int xt_meter_words(const struct xt_rule *r, __u64 now, __u64 len, __u32 pkts, int ect,
			     const __u64 w[XT_MAX_LIMITS], __u64 next[XT_MAX_LIMITS])
{
	XT_UNROLL
	for (int p = 0; p < XT_MAX_LIMITS; p++)
		if (!xt_meter_word(r, p, now, len, pkts, ect, w[p], &next[p]))
			return 0;
	return 1;
}

/* Ticks from now during which every packet of this source is certain to be
 * dropped (for the hot cache): the latest of the limits' waits, assuming
 * the smallest possible frame (xt_min_frame) for a byte limit. */
XT_INLINE __u64 xt_meter_wait(const struct xt_rule *r, const struct xt_bucket *b, __u64 now, __u64 min)
{
	__u64 wait = 0;
	XT_UNROLL
	for (int p = 0; p < XT_MAX_LIMITS; p++) {
		if (!((r->limits >> p) & 1))
			continue;
		const __u64 word = XT_REGEN(r, p, b->word[p], now);
		const __u64 w = xt_gcra_wait(&r->limit[p], word, now, xt_units(r, p, min, 1));
		wait = w > wait ? w : wait;
	}
	return wait;
}

/* Single-threaded metering of one packet with the bucket's counters: what the
 * BPF program does without the compare-and-swap, for host tests. */
XT_INLINE int xt_meter(struct xt_bucket *b, const struct xt_rule *r, __u64 now, __u64 len)
{
	__u64 next[XT_MAX_LIMITS];
	int ok = xt_meter_words(r, now, len, 1, 0, b->word, next);
	if (ok) {
		for (int p = 0; p < XT_MAX_LIMITS; p++)
			b->word[p] = next[p];
		b->passed_packets++;
	} else {
		b->dropped_packets++;
	}
	return ok;
}

#endif /* XTHROTTLE_METER_H */
