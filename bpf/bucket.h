/* SPDX-License-Identifier: MIT */
/*
 * Stages 2 and 3, classify and meter: the keys and hashes a packet is looked
 * up under, and the bucket arithmetic. Pure: compiles for the BPF target and
 * the host, where the unit tests run it.
 *
 * A limit is metered as a GCRA over one 64-bit word (see struct xt_limit in
 * abi.h): exact integer arithmetic, no rounding, so no drift; differences
 * modulo 2^60, so no overflow however long a bucket stays idle.
 */
#ifndef XTHROTTLE_BUCKET_H
#define XTHROTTLE_BUCKET_H

#include "pure.h"
#include "parse.h"
#include <xthrottle/abi.h>

#define XT_TAT_MASK ((1ULL << XT_TAT_BITS) - 1)
#define XT_NEVER (~0ULL)

/* Rule table key for a packet's source: the full address, so the trie finds
 * the longest prefix of the packet's own family that covers it. */
XT_INLINE void xt_rule_key_for(const struct xt_pkt *pkt, struct xt_rule_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->prefixlen = XT_LPM_FAMILY_BITS + (pkt->family == XT_FAMILY_V4 ? 32 : 128);
	key->family = pkt->family;
	__builtin_memcpy(key->addr, pkt->addr, sizeof(key->addr));
}

XT_INLINE __u64 xt_load64(const __u8 *p)
{
	__u64 v;
	__builtin_memcpy(&v, p, sizeof(v));
	return v;
}

/* Addresses are kept in network byte order; masking works on them as two
 * host-order words (both BPF and the hosts we build for are little-endian). */
XT_INLINE __u64 xt_be64(const __u8 *p)
{
	return __builtin_bswap64(xt_load64(p));
}

XT_INLINE void xt_store_be64(__u8 *p, __u64 v)
{
	v = __builtin_bswap64(v);
	__builtin_memcpy(p, &v, sizeof(v));
}

/* The top len bits of a word (len clamped to 0..64). */
XT_INLINE __u64 xt_prefix_mask(int len)
{
	return len <= 0 ? 0 : len >= 64 ? ~0ULL : ~0ULL << (64 - len);
}

/* The address masked to its first len bits, as two host-order words. */
XT_INLINE void xt_mask_addr(const __u8 *addr, int len, __u64 out[2])
{
	out[0] = xt_be64(addr) & xt_prefix_mask(len);
	out[1] = xt_be64(addr + 8) & xt_prefix_mask(len - 64);
}

/* Bucket table key: the source masked to the rule's per_len, so every source
 * in one /per_len shares one bucket. */
XT_INLINE void xt_bucket_key_for(const struct xt_pkt *pkt, __u32 rule_id, __u8 per_len,
				 struct xt_bucket_key *key)
{
	__u64 w[2];
	xt_mask_addr(pkt->addr, per_len, w);
	__builtin_memset(key, 0, sizeof(*key));
	key->rule_id = rule_id;
	key->family = pkt->family;
	key->per_len = per_len;
	xt_store_be64(key->addr, w[0]);
	xt_store_be64(key->addr + 8, w[1]);
}

/* Multiply-shift hashing of three words: each multiplied by its own odd
 * constant and summed; callers take their index from the HIGH bits, which
 * depend on every input bit (the low bits do not). Three independent
 * multiplies, so it costs about one. It spreads the slots of the hot cache
 * and the seen filter; nothing depends on it resisting collisions (a
 * collision costs a lookup, never a wrong verdict). */
XT_INLINE __u64 xt_hash_words(__u64 a, __u64 b, __u64 c)
{
	return a * 0x9e3779b97f4a7c15ULL + b * 0xc2b2ae3d27d4eb4fULL + c * 0x165667b19e3779f9ULL;
}

/* The top `bits` bits of a hash (1 <= bits <= 63). */
#define XT_TOP_BITS(h, bits) ((__u32)((h) >> (64 - (bits))))
/* The seen filter's slot within its line: the 6 bits below the line's. */
#define XT_SEEN_SLOT(h, line_bits) ((__u32)((h) >> (64 - (line_bits) - XT_SEEN_LINE_BITS)) & (XT_SEEN_LINE - 1))

/* Hash of a raw source (the hot cache's index). */
XT_INLINE __u64 xt_hash_source(const struct xt_pkt *pkt)
{
	return xt_hash_words(pkt->family, xt_load64(pkt->addr), xt_load64(pkt->addr + 8));
}

/* Hash of a bucket key (the seen filter's index). */
XT_INLINE __u64 xt_hash_bucket(const struct xt_bucket_key *key)
{
	return xt_hash_words((__u64)key->rule_id << 16 | (__u64)key->family << 8 | key->per_len,
			     xt_load64(key->addr), xt_load64(key->addr + 8));
}

/* --- GCRA over one word ------------------------------------------------ */

/* a - b for TAT values taken modulo 2^XT_TAT_BITS, as a signed number. */
XT_INLINE __s64 xt_diff(__u64 a, __u64 b)
{
	return ((__s64)((a - b) << XT_GEN_BITS)) >> XT_GEN_BITS;
}

XT_INLINE __u64 xt_word(__u64 tat, __u8 gen)
{
	return ((tat & XT_TAT_MASK) << XT_GEN_BITS) | gen;
}

XT_INLINE __u8 xt_word_gen(__u64 word)
{
	return (__u8)(word & XT_GEN_MAX);
}

/* Scaled time: the units a limit has gained since tick 0, modulo 2^XT_TAT_BITS. */
XT_INLINE __u64 xt_scaled(const struct xt_limit *l, __u64 now)
{
	return (now * l->fill) & XT_TAT_MASK;
}

/* How many units short of full a bucket is at now, in [0, cap]. A TAT in the
 * past means full. The clock (jiffies) never goes back, but a reader's may be
 * behind the writer's: another CPU a tick ahead, or this one stalled between
 * reading the clock and metering. A TAT up to XT_SKEW_TICKS ticks' fill beyond
 * cap is that, and the bucket is empty. A TAT further ahead cannot come from
 * a clock that only goes forward: it is a word nothing has written for longer
 * than the horizon (a year or more, abi.h), whose TAT wrapped around, and the
 * bucket is full, as after any long idle. (Found by fuzz/fuzz_bucket.cpp:
 * such a word used to read as empty, and a source whose packets were all
 * dropped for a year could then be dropped for up to another.) */
XT_INLINE __u64 xt_debt(const struct xt_limit *l, __u64 word, __u64 now)
{
	__s64 d = xt_diff(word >> XT_GEN_BITS, xt_scaled(l, now));
	if (d <= 0)
		return 0;
	if ((__u64)d <= l->cap)
		return (__u64)d;
	return (__u64)d - l->cap <= XT_SKEW_TICKS * l->fill ? l->cap : 0;
}

/* A full bucket's word. */
XT_INLINE __u64 xt_full_word(const struct xt_limit *l, __u64 now, __u8 gen)
{
	return xt_word(xt_scaled(l, now), gen);
}

/* Tokens (whole units: packets or bytes) available at now. */
XT_INLINE __u64 xt_available(const struct xt_limit *l, __u64 word, __u64 now)
{
	return l->cost ? (l->cap - xt_debt(l, word, now)) / l->cost : 0;
}

/* Brings a word written under an older version of the rule to generation gen.
 * From prev_gen: the whole tokens it had when the rule was replaced (tick
 * `at`) carry over into the new units, up to the new burst (a fraction of one
 * token is lost), and refill under the new limit from then on. From anything
 * older, the bucket starts full. */
XT_INLINE __u64 xt_regen(__u64 word, const struct xt_limit *l, const struct xt_limit *prev,
			 __u8 gen, __u8 prev_gen, __u64 at, __u64 now)
{
	if (xt_word_gen(word) == gen)
		return word;
	if (xt_word_gen(word) != prev_gen || !prev->cost || !l->cost)
		return xt_full_word(l, now, gen);
	if (at > now)
		at = now;
	/* A word the old rule wrote after tick `at` (the controller walks the
	 * table before installing the change, which can take seconds) is ahead
	 * of it by more than the old burst: its tokens are taken as of now,
	 * never as a fresh burst. */
	__s64 ahead = xt_diff(word >> XT_GEN_BITS, xt_scaled(prev, at));
	if (ahead > 0 && (__u64)ahead > prev->cap)
		at = now;
	__u64 whole = (prev->cap - xt_debt(prev, word, at)) / prev->cost;
	__u64 tokens = whole >= l->cap / l->cost ? l->cap : whole * l->cost;
	return xt_word(xt_scaled(l, at) + (l->cap - tokens), gen);
}

/* xt_regen of a bucket's packet or byte word under rule r. */
#define XT_REGEN_PKT(r, word, now) xt_regen(word, &(r)->pkt, &(r)->prev_pkt, (r)->gen, (r)->prev_gen, (r)->replaced_at, now)
#define XT_REGEN_BYTES(r, word, now) \
	xt_regen(word, &(r)->bytes, &(r)->prev_bytes, (r)->gen, (r)->prev_gen, (r)->replaced_at, now)

/* Can `units` (one packet, or len bytes) pass at now? If so, *next is the
 * word after taking them; if not, nothing is taken. */
XT_INLINE int xt_gcra(const struct xt_limit *l, __u64 word, __u64 now, __u64 units, __u64 *next)
{
	__u64 debt = xt_debt(l, word, now);
	__u64 need = units * l->cost;
	if (need > l->cap - debt)
		return 0;
	*next = xt_word(xt_scaled(l, now) + debt + need, xt_word_gen(word));
	return 1;
}

/* Ticks from now until `units` could pass (0: they can now; XT_NEVER: they
 * are more than the burst). Other sources of consumption only push it later,
 * so a packet before now + wait is certain to be dropped. */
XT_INLINE __u64 xt_gcra_wait(const struct xt_limit *l, __u64 word, __u64 now, __u64 units)
{
	__u64 need = units * l->cost;
	if (need > l->cap)
		return XT_NEVER;
	__u64 debt = xt_debt(l, word, now);
	if (debt + need <= l->cap)
		return 0;
	return (debt + need - l->cap + l->fill - 1) / l->fill;
}

/* --- a whole rule -------------------------------------------------------- */

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

/* --- the seen filter ----------------------------------------------------- */

/* A seen stamp: the clock in units of 2^seen_shift ticks, modulo 256. 0 marks
 * a slot nothing was stamped into, so a stamp that would be 0 is written as
 * 255: one unit older than the truth, which only shortens that slot's idle
 * window by one unit. (Not a modulo by 255: in BPF that is a division.) */
XT_INLINE __u8 xt_seen_now(const struct xt_config *cfg, __u64 now)
{
	return (__u8)(now >> cfg->seen_shift);
}

XT_INLINE __u8 xt_seen_stamp(const struct xt_config *cfg, __u64 now)
{
	__u8 stamp = xt_seen_now(cfg, now);
	return stamp ? stamp : 255;
}

/* Whether a slot's stamp is recent enough that a bucket hashing there may
 * still be tracked. Stamps wrap every 256 units, so an ancient stamp can look
 * recent again: that only costs one bucket lookup that finds nothing. */
XT_INLINE int xt_seen_recent(const struct xt_config *cfg, __u8 stamp, __u64 now)
{
	return stamp && (__u8)(xt_seen_now(cfg, now) - stamp) <= cfg->seen_idle;
}

#endif /* XTHROTTLE_BUCKET_H */
