/* SPDX-License-Identifier: MIT */
/*
 * A whole rule against one bucket: every limit of the rule (packets, bytes)
 * must allow a packet for it to pass, and a packet that fails writes
 * nothing. Pure: the BPF program runs xt_meter_words inside its
 * compare-and-swap loop; the host tests run xt_meter.
 */
#ifndef XTHROTTLE_METER_H
#define XTHROTTLE_METER_H

#include "pure.h"
#include "gcra.h"
#include <xthrottle/abi.h>

/* Smallest frame an IPv4 / IPv6 packet can come in: what the hot cache
 * assumes the next packet needs from a byte limit. */
#define XT_MIN_FRAME_V4 34
#define XT_MIN_FRAME_V6 54

/* A fresh bucket: full, in the rule's current units. */
XT_INLINE void xt_bucket_init(struct xt_bucket *b, const struct xt_rule *r, __u64 now)
{
	__builtin_memset(b, 0, sizeof(*b));
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

/*
 * Decides one frame of len bytes standing for pkts wire packets (1 but for
 * a super-packet, parse.h xt_wire_packets) at now against a bucket whose
 * words are w[]: returns 1 and sets next[] to the words after taking the
 * frame if it conforms to every limit of the rule, returns 0 if not (a
 * dropped packet costs the source nothing). A word whose limit is not in
 * force is brought to the rule's generation all the same (so no word
 * is ever two generations behind). The BPF program calls this
 * inside a compare-and-swap loop; the words given are snapshots.
 */
XT_INLINE int xt_meter_words(const struct xt_rule *r, __u64 now, __u64 len, __u32 pkts,
			     const __u64 w[XT_MAX_LIMITS], __u64 next[XT_MAX_LIMITS])
{
	XT_UNROLL
	for (int p = 0; p < XT_MAX_LIMITS; p++) {
		next[p] = XT_REGEN(r, p, w[p], now);
		if (((r->limits >> p) & 1) && !xt_gcra(&r->limit[p], next[p], now, xt_units(r, p, len, pkts), &next[p]))
			return 0;
	}
	return 1;
}

/* Ticks from now during which every packet of this source is certain to be
 * dropped (for the hot cache): the latest of the limits' waits, assuming
 * the smallest possible frame for a byte limit. */
XT_INLINE __u64 xt_meter_wait(const struct xt_rule *r, const struct xt_bucket *b, __u64 now)
{
	const __u64 min = r->family == XT_FAMILY_V4 ? XT_MIN_FRAME_V4 : XT_MIN_FRAME_V6;
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
	int ok = xt_meter_words(r, now, len, 1, b->word, next);
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
