/* SPDX-License-Identifier: MIT */
/*
 * Stages 2 and 3, classify and meter: the keys a packet is looked up under and
 * the token bucket arithmetic. Pure: compiles for the BPF target and the host.
 *
 * All arithmetic is exact integer arithmetic in the scaled units described at
 * struct xt_limit: no rounding, so no drift, and no overflow however long a
 * bucket stays idle.
 */
#ifndef XTHROTTLE_BUCKET_H
#define XTHROTTLE_BUCKET_H

#include "pure.h"
#include "parse.h"
#include <xthrottle/abi.h>

/* Rule table key for a packet's source: the full address, so the trie finds
 * the longest prefix of the packet's own family that covers it. */
XT_INLINE void xt_rule_key_for(const struct xt_pkt *pkt, struct xt_rule_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->prefixlen = XT_LPM_FAMILY_BITS + (pkt->family == XT_FAMILY_V4 ? 32 : 128);
	key->family = pkt->family;
	__builtin_memcpy(key->addr, pkt->addr, sizeof(key->addr));
}

/* Bucket table key: the source masked to the rule's per_len, so every source
 * in one /per_len shares one bucket. */
XT_INLINE void xt_bucket_key_for(const struct xt_pkt *pkt, const struct xt_rule *rule,
				 struct xt_bucket_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->rule_id = rule->id;
	key->family = pkt->family;
	key->per_len = rule->per_len;
	XT_UNROLL
	for (int i = 0; i < 16; i++) {
		int bits = (int)rule->per_len - 8 * i;
		__u8 mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : (__u8)(0xff << (8 - bits));
		key->addr[i] = pkt->addr[i] & mask;
	}
}

/* Tokens after elapsed_ns of refill, capped at the burst. */
XT_INLINE __u64 xt_refill(const struct xt_limit *l, __u64 tokens, __u64 elapsed_ns)
{
	if (elapsed_ns >= l->fill_ns)
		return l->cap;
	tokens += elapsed_ns * l->fill; /* < cap + fill: see struct xt_limit */
	return tokens < l->cap ? tokens : l->cap;
}

/* Tokens scaled by old_cost re-expressed under a new limit: whole units carry
 * over (up to the new burst), a fraction of one unit is lost. */
XT_INLINE __u64 xt_convert(__u64 tokens, __u64 old_cost, const struct xt_limit *l)
{
	if (!old_cost || !l->cost)
		return l->cap;
	__u64 whole = tokens / old_cost;
	return whole >= l->cap / l->cost ? l->cap : whole * l->cost;
}

/* A fresh bucket: full, as of now, in the rule's current units. */
XT_INLINE void xt_bucket_init(struct xt_bucket *b, const struct xt_rule *r, __u64 now)
{
	__builtin_memset(b, 0, sizeof(*b));
	b->gen = r->gen;
	b->last_ns = now;
	b->pkt_tokens = r->pkt.cap;
	b->byte_tokens = r->bytes.cap;
}

/*
 * Meter one packet of len bytes at time now against bucket b of rule r.
 * Returns 1 and debits the bucket if the packet conforms to every limit the
 * rule has; returns 0 and debits nothing otherwise (a dropped packet costs the
 * source no budget). The caller holds the bucket's lock.
 */
XT_INLINE int xt_meter(struct xt_bucket *b, const struct xt_rule *r, __u64 now, __u64 len)
{
	if (b->gen != r->gen) {
		/* The rule was replaced since this bucket was last used: carry its
		 * budget over into the new units (or start full if it missed more
		 * than one replacement). */
		int carry = b->gen == r->prev_gen;
		b->pkt_tokens = carry ? xt_convert(b->pkt_tokens, r->prev_pkt_cost, &r->pkt) : r->pkt.cap;
		b->byte_tokens = carry ? xt_convert(b->byte_tokens, r->prev_byte_cost, &r->bytes)
				       : r->bytes.cap;
		b->gen = r->gen;
	}

	/* A clock that goes backwards adds nothing, and last_ns stays put so the
	 * same interval is never credited twice. */
	__u64 elapsed = 0;
	if (now > b->last_ns) {
		elapsed = now - b->last_ns;
		b->last_ns = now;
	}

	__u64 pkt_tokens = xt_refill(&r->pkt, b->pkt_tokens, elapsed);
	__u64 byte_tokens = xt_refill(&r->bytes, b->byte_tokens, elapsed);
	__u64 pkt_cost = (r->flags & XT_RULE_PKT_LIMIT) ? r->pkt.cost : 0;
	__u64 byte_cost = (r->flags & XT_RULE_BYTE_LIMIT) ? len * r->bytes.cost : 0;
	int ok = pkt_tokens >= pkt_cost && byte_tokens >= byte_cost;
	if (ok) {
		pkt_tokens -= pkt_cost;
		byte_tokens -= byte_cost;
		b->passed_packets++;
	} else {
		b->dropped_packets++;
	}
	b->pkt_tokens = pkt_tokens;
	b->byte_tokens = byte_tokens;
	return ok;
}

#endif /* XTHROTTLE_BUCKET_H */
