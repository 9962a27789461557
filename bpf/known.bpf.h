/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Part of stage 3, meter: the known table, sources admitted outside their
 * rule's new-source budget. A source gets there by passing traffic while
 * never throttled (known for the rule's --remember after its last such
 * packet) or by proving its address (prove.bpf.h). Sets of XT_KNOWN_WAYS
 * entries, a cache line each, shared by all CPUs, with each set's
 * fingerprints in a dense array of their own (xt_known_tags): a lookup reads
 * those 8 bytes, and the set's line only on a match; it is made only for a
 * packet the budget refused.
 *
 * Entries are written without a lock. Two CPUs writing one way at once leave
 * one of their two entries, or at worst a mix of both: some source known that
 * was not (admitted outside the budget, and held to its limits like any
 * other), or a key under the other's fingerprint. A lookup stops at the
 * fingerprints, so that key is not found again until a write of it mends
 * them: a packet of it that passes (it is tracked, or the budget admits
 * it) or a proof. Until then it is a stranger to a saturated budget.
 */
#ifndef XTHROTTLE_KNOWN_BPF_H
#define XTHROTTLE_KNOWN_BPF_H

#include "maps.bpf.h"
#include "keys.h"
#include "count.bpf.h"

/* Where a source is in the known table: IPv4 sources by address, IPv6 ones
 * by /64 (what one host controls), or by their rule's --per prefix where
 * that is longer (a /64 known would give each of its prefixes a bucket
 * outside the budget; each address, where a bucket is a prefix of them,
 * would fill the table with one bucket's addresses). */
struct xt_known_place {
	__u64 key;
	__u32 idx;
	__u16 fp;     /* never 0 */
	__u8 family;  /* as in struct xt_known */
};

static __always_inline void xt_known_place_of(const struct xt_pkt *pkt, __u32 per_len, const struct xt_config *cfg,
					      struct xt_known_place *p)
{
	__u32 v4;
	__builtin_memcpy(&v4, pkt->addr, 4);
	p->key = pkt->family == XT_FAMILY_V4 ? v4 : xt_load64(pkt->addr);
	p->family = pkt->family;
	if (pkt->family == XT_FAMILY_V6 && per_len > 64) {
		/* The low half as a number, masked to the prefix. */
		__u64 low = __builtin_bswap64(xt_load64(pkt->addr + 8));
		if (per_len < 128)
			low &= ~0ULL << ((128 - per_len) & 63);
		p->key = xt_hash_words(cfg->hash_key, 0x4c00 | (per_len & 0xff), p->key, low);
		p->family = XT_KNOWN_V6_PREFIX;
	}
	const __u32 bits = cfg->known_bits & 31; /* 8..24 (object.cpp, known_sets_for) */
	const __u64 h = xt_hash_words(cfg->hash_key, 0x4b00 | p->family, p->key, 0);
	p->idx = XT_TOP_BITS(h, bits ? bits : 1);
	p->fp = (__u16)h | 1; /* the low bits: independent of the set's */
}

/* Whether a source that behaved, and proved its address since, did so
 * within XT_PROOF_SECONDS of secs: its proof is `proven` - 1 seconds after
 * it was last seen (struct xt_known): ages 0 to XT_PROOF_SECONDS - 1, as a
 * proof in a way of its own (xt_recall; it read to XT_PROOF_SECONDS, a
 * second longer). Signed: another CPU's clock may be a second ahead. */
static __always_inline int xt_proof_recent(const struct xt_known *e, __u32 secs)
{
	const __u32 age = secs - (e->seen + e->proven - 1);
	return e->proven && age + 2 < XT_PROOF_SECONDS + 2; /* -2 to XT_PROOF_SECONDS - 1 */
}

/* Seconds of the program's clock. */
static __always_inline __u32 xt_seconds(const struct xt_config *cfg, __u64 now)
{
	return cfg->hz ? (__u32)(now / cfg->hz) : 0;
}

/* How pkt's source is known (enum xt_known_how), 0 if it is not, or no
 * longer, to a rule of this --per: known for `remember` seconds after it
 * was last seen, and a source that proved its address for
 * XT_PROOF_SECONDS. Inline in the global xt_admit_untracked, its one
 * caller: every refused packet comes here. */
static __always_inline int xt_recall(const struct xt_pkt *pkt, __u32 per_len, __u32 remember, __u64 now)
{
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!cfg)
		return 0;
	struct xt_known_place p;
	xt_known_place_of(pkt, per_len, cfg, &p);
	const struct xt_known_tags *tags = bpf_map_lookup_elem(&xt_known_tags, &p.idx);
	if (!tags)
		return 0;
	/* Nearly every source that is not known stops here. */
	if (tags->fp[0] != p.fp && tags->fp[1] != p.fp && tags->fp[2] != p.fp && tags->fp[3] != p.fp)
		return 0;
	const struct xt_known_set *set = bpf_map_lookup_elem(&xt_known, &p.idx);
	if (!set)
		return 0;
	const __u32 secs = xt_seconds(cfg, now);
	XT_UNROLL
	for (int w = 0; w < XT_KNOWN_WAYS; w++) {
		const struct xt_known *e = &set->way[w];
		if (e->family != p.family || e->key != p.key)
			continue;
		/* A proof is good for XT_PROOF_SECONDS, whatever --remember
		 * says: anything that answers a SYN-ACK with a RST proves the
		 * address, a live host sent a spoofed SYN's SYN-ACK too. */
		const __u32 window = e->how == XT_KNOWN_BEHAVED ? remember : XT_PROOF_SECONDS;
		/* Another CPU's clock may be a second ahead: its entry is new,
		 * not younger than new (under --remember 0, a window of 0 s). */
		const __s32 age = (__s32)(secs - e->seen);
		if ((age < 0 ? 0 : age) < (__s64)window)
			return e->how;
		/* Behaved too long ago for this rule, but proven since. */
		if (e->how == XT_KNOWN_BEHAVED && xt_proof_recent(e, secs))
			return XT_KNOWN_PROVEN;
		/* Else a proof may be in a way of its own (xt_remember_in). */
	}
	return 0;
}

/* Records that pkt's source is known `how` as of now, to rules of this
 * --per (xt_known_place_of): refreshes its entry
 * (at most every `refresh` seconds; without `insert`, only one seen within
 * `live` seconds, which its rule still knows), else, if `insert`, takes a
 * free way or the one least recently seen, if that is older than now; a
 * source proven that behaves becomes behaved only if `insert` too; a proof
 * of one that behaved is kept beside it, in a way of its own where the
 * two are too far apart for `proven`. Returns 1 if it wrote. (A
 * snapshot's restore gives the record's own time for now: a record never
 * pushes out a source seen since it was.) */
static __always_inline int xt_remember_in(const struct xt_pkt *pkt, __u32 per_len, __u32 how, __u64 now,
					  __u32 refresh, int insert, __u32 live)
{
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!cfg)
		return 0;
	struct xt_known_place p;
	xt_known_place_of(pkt, per_len, cfg, &p);
	struct xt_known_set *set = bpf_map_lookup_elem(&xt_known, &p.idx);
	struct xt_known_tags *tags = bpf_map_lookup_elem(&xt_known_tags, &p.idx);
	if (!set || !tags)
		return 0;
	const __u32 secs = xt_seconds(cfg, now);
	__u32 victim = 0, oldest = 0;
	XT_UNROLL
	for (int w = 0; w < XT_KNOWN_WAYS; w++) {
		struct xt_known *e = &set->way[w];
		/* A source that behaved more than 18 hours before a proof of it,
		 * past what `proven` holds, keeps its entry as it is (a rule may
		 * remember it a day), and the proof goes in a way of its own,
		 * which xt_recall finds past it: this way too, where it is the
		 * one to give (a full set's oldest). */
		if (e->family == p.family && e->key == p.key &&
		    !(how == XT_KNOWN_PROVEN && e->how == XT_KNOWN_BEHAVED && (__s32)(secs - e->seen) >= 0xffff)) {
			/* Two CPUs writing one way at once can leave this key
			 * under the other's fingerprint: mend it, or the
			 * source would never be found again. */
			if (tags->fp[w] != p.fp)
				tags->fp[w] = p.fp;
			/* Behaving is worth --remember; a proof, XT_PROOF_SECONDS.
			 * A proof of a source that behaved is kept beside it
			 * (`proven`, as seconds after `seen`): made known as
			 * behaved afresh, a spoofed SYN in its name bought a whole
			 * --remember; turned into a proof, it lost what behaving
			 * earned under a rule that remembers longer than the one
			 * that asked for the proof. (A source seen more than 18
			 * hours before its proof, past what 16 bits hold, is not
			 * this match: above.) */
			const __s32 age = (__s32)(secs - e->seen);
			if (how == XT_KNOWN_PROVEN && e->how == XT_KNOWN_BEHAVED) {
				const __u16 after = (__u16)(age + 1);
				if (age < 0 || e->proven == after)
					return 0; /* seen after it (another CPU's clock ahead), or kept already */
				e->proven = after;
				xt_count_one(XT_KNOWN_RECORDED);
				return 1;
			}
			if (e->how == how ? age < (__s32)refresh || (!insert && age >= (__s64)live) : !insert)
				return 0; /* fresh enough; or, where nothing new may go in, one its rule forgot
					   * already, or a change of how: each counts as new */
			/* A refresh moves `seen`, and a proof made since the last
			 * one cannot be kept as seconds after it: it waits for the
			 * proof to end, or a rule that trusts proofs only would
			 * ask the source to prove itself again at once. */
			if (how == XT_KNOWN_BEHAVED && e->how == XT_KNOWN_BEHAVED && xt_proof_recent(e, secs))
				return 0;
			/* A proof that behaves: behaved from the proof's second,
			 * the proof kept beside it (`proven` 1: at `seen`). Made
			 * behaved from now, it lost the proof, and a rule that
			 * trusts proofs only asked for another at once. */
			if (how == XT_KNOWN_BEHAVED && e->how == XT_KNOWN_PROVEN && age >= 0 && age < XT_PROOF_SECONDS) {
				e->how = how;
				e->proven = 1;
				xt_count_one(XT_KNOWN_RECORDED);
				return 1;
			}
			e->seen = secs;
			e->how = how;
			e->proven = 0; /* as seconds after `seen`, which moved */
			xt_count_one(XT_KNOWN_RECORDED);
			return 1;
		}
		/* The victim: a free way, else the oldest proof (good for
		 * seconds only), else the oldest source that behaved, so
		 * proofs, which a spoofer can have live hosts make, never
		 * push out one that behaved while another proof is there. */
		const __s32 signed_age = (__s32)(secs - e->seen);
		__u32 age = signed_age < 0 ? 0 : (__u32)signed_age & 0x7fffffff;
		/* A proof seen since now (a restored record's now is its own
		 * time) is no victim either; one a second ahead is another
		 * CPU's clock, and goes first as any proof does. */
		if (e->how == XT_KNOWN_PROVEN && signed_age >= -1)
			age |= 0x80000000u;
		if (!e->family)
			age = 0xffffffffu;
		if (age > oldest) {
			oldest = age;
			victim = w;
		}
	}
	/* No way free, none a proof, none older than now: all were seen since
	 * (another CPU's clock a second ahead, or a restored record older
	 * than the set's sources), and none is pushed out for it. */
	if (!insert || !oldest)
		return 0;
	const __u32 w = victim & (XT_KNOWN_WAYS - 1);
	struct xt_known *e = &set->way[w];
	/* Unmatchable while it is rewritten: its fingerprint and family first,
	 * then the rest, then they. */
	*(volatile __u16 *)&tags->fp[w] = 0;
	*(volatile __u8 *)&e->family = 0;
	asm volatile("" ::: "memory");
	e->key = p.key;
	e->seen = secs;
	e->how = how;
	e->proven = 0;
	asm volatile("" ::: "memory");
	*(volatile __u8 *)&e->family = p.family;
	*(volatile __u16 *)&tags->fp[w] = p.fp;
	xt_count_one(XT_KNOWN_RECORDED);
	return 1;
}

/* The global functions (see xt_send_event), checked once by the verifier
 * and called only off the fast path (a passed packet, a proof). */

/* xt_remember_in as a global function, for the program's own stage: a
 * proof under a rule of this --per (and a snapshot's record, per_len 0).
 * It is good for XT_PROOF_SECONDS, so one half that old is refreshed by
 * the next (a live host made to prove its address by a spoofed SYN, then
 * its own user's connection, proving it again). */
__attribute__((noinline)) int xt_remember(const struct xt_pkt *pkt, __u32 per_len, __u32 how, __u64 now)
{
	return pkt ? xt_remember_in(pkt, per_len, how, now, XT_PROOF_SECONDS / 2, 1, 0) : 0;
}

/* A source whose packet passed under rule, its bucket b: behaved if it has
 * passed more than one packet and is not throttled (never was, or was
 * released: XT_RELEASE_SECONDS without a drop), then known for the rule's
 * --remember from this packet on. Only a bucket of the source's own (--per
 * of the whole address, or an IPv6 /64 or longer, as the known table keys
 * it) says so: one of a prefix passes any address in it, and a spoofer
 * under such a rule's rate would have each of its addresses recorded.
 * Called for every packet that passes (a global function, so the
 * program's paths do not branch on it). */
__attribute__((noinline)) int xt_behaved(const struct xt_pkt *pkt, const struct xt_rule *rule, const struct xt_bucket *b,
					 __u64 now)
{
	if (!pkt || !rule || !b || !rule->remember || b->passed_packets < 2 || b->throttled_since ||
	    rule->per_len < (pkt->family == XT_FAMILY_V4 ? 32 : 64))
		return 0;
	/* No new entry while the rule's budget is saturated: then what it
	 * admits is mostly the flood's, and recording it would push out the
	 * clients that behaved before (theirs are refreshed). A saturation
	 * ends with the next admission XT_RELEASE_SECONDS after its last
	 * drop (admit.bpf.h), which may be long in coming once the flood is
	 * over: only tracked sources sending, none new. It is over here, as
	 * for `stats`, a second after that drop. */
	__u32 id = rule->id, zero = 0;
	const struct xt_rule_state *st = bpf_map_lookup_elem(&xt_rule_state, &id);
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!st || !cfg)
		return 0;
	const int insert = !st->saturated_since ||
			   xt_ticks_since((__u32)now, st->last_new_drop, cfg->hz * XT_RELEASE_SECONDS, cfg->hz);
	/* Refreshed often enough that a short --remember still holds, and
	 * once a second at most: under --remember 1, half of it was 0, and
	 * every packet that passed wrote the entry's line, shared by every
	 * CPU, and counted a recording. */
	__u32 refresh = rule->remember / 2;
	if (refresh > XT_KNOWN_REFRESH_SECONDS)
		refresh = XT_KNOWN_REFRESH_SECONDS;
	if (!refresh)
		refresh = 1;
	return xt_remember_in(pkt, rule->per_len, XT_KNOWN_BEHAVED, now, refresh, insert, rule->remember);
}

#endif /* XTHROTTLE_KNOWN_BPF_H */
