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
	b->pkt_word = xt_full_word(&r->pkt, now, r->gen);
	b->byte_word = xt_full_word(&r->bytes, now, r->gen);
}

/*
 * Decides one frame of len bytes standing for pkts wire packets (1 but for
 * a super-packet, parse.h xt_wire_packets) at now against a bucket whose
 * words are *pkt_word and *byte_word: returns 1 and updates both words if it
 * conforms to every limit of the rule, returns 0 and leaves them alone if not
 * (a dropped packet costs the source nothing). The BPF program calls this
 * inside a compare-and-swap loop; the words given are snapshots.
 */
XT_INLINE int xt_meter_words(const struct xt_rule *r, __u64 now, __u64 len, __u32 pkts, __u64 *pkt_word,
			     __u64 *byte_word)
{
	__u64 pw = XT_REGEN_PKT(r, *pkt_word, now);
	__u64 bw = XT_REGEN_BYTES(r, *byte_word, now);
	__u64 pn = pw, bn = bw;
	if ((r->flags & XT_RULE_PKT_LIMIT) && !xt_gcra(&r->pkt, pw, now, pkts, &pn))
		return 0;
	if ((r->flags & XT_RULE_BYTE_LIMIT) && !xt_gcra(&r->bytes, bw, now, len, &bn))
		return 0;
	*pkt_word = pn;
	*byte_word = bn;
	return 1;
}

/* Ticks from now during which every packet of this source is certain to be
 * dropped (for the hot cache): the later of the two limits' waits, assuming
 * the smallest possible frame for the byte limit. */
XT_INLINE __u64 xt_meter_wait(const struct xt_rule *r, const struct xt_bucket *b, __u64 now)
{
	__u64 wait = 0;
	if (r->flags & XT_RULE_PKT_LIMIT) {
		__u64 pw = XT_REGEN_PKT(r, b->pkt_word, now);
		wait = xt_gcra_wait(&r->pkt, pw, now, 1);
	}
	if (r->flags & XT_RULE_BYTE_LIMIT) {
		__u64 bw = XT_REGEN_BYTES(r, b->byte_word, now);
		__u64 min = r->family == XT_FAMILY_V4 ? XT_MIN_FRAME_V4 : XT_MIN_FRAME_V6;
		__u64 w = xt_gcra_wait(&r->bytes, bw, now, min);
		wait = w > wait ? w : wait;
	}
	return wait;
}

/* Single-threaded metering of one packet with the bucket's counters: what the
 * BPF program does without the compare-and-swap, for host tests. */
XT_INLINE int xt_meter(struct xt_bucket *b, const struct xt_rule *r, __u64 now, __u64 len)
{
	int ok = xt_meter_words(r, now, len, 1, &b->pkt_word, &b->byte_word);
	if (ok)
		b->passed_packets++;
	else
		b->dropped_packets++;
	return ok;
}

#endif /* XTHROTTLE_METER_H */
