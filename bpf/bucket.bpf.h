/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Stage 3, meter: the source's bucket (found in the bucket table, or made if
 * the new-source budget admits the source), and its limits taken with
 * compare-and-swap, exact across CPUs.
 *
 * The bucket table is set-associative: the keyed hash of the bucket key
 * picks a set of XT_BUCKET_WAYS slots, a cache line each, and a 16-bit
 * fingerprint. The set's tags (xt_bucket_tags, one cache line) hold each way's
 * fingerprint and when it was last used; before them, the set's marks
 * (xt_bucket_marks, 16 bytes) hold a byte of each way's key, so a source
 * that is not tracked mostly costs one read of the marks (a quarter the
 * size of the tags), else one of the tags, and none of the table. A newcomer takes a free
 * way, else one whose source went idle, else the least recently used one,
 * claiming it by compare-and-swap on its tag (fingerprint and stamp).
 */
#ifndef XTHROTTLE_BUCKET_BPF_H
#define XTHROTTLE_BUCKET_BPF_H

#include "maps.bpf.h"
#include "admit.bpf.h"
#include "keys.h"
#include "count.bpf.h"
#include "meter.h"
#include "slots.h"
#include "known.bpf.h"

/* Gives back what a packet took from the words of b before word `upto`
 * (all of them: XT_MAX_LIMITS): one atomic add each. */
static __always_inline void xt_give_back(struct xt_bucket *b, const struct xt_rule *rule, __u64 len, __u32 pkts,
					 int upto)
{
	XT_UNROLL
	for (int p = 0; p < XT_MAX_LIMITS; p++) {
		if (p < upto && ((rule->limits >> p) & 1))
			__sync_fetch_and_add(&b->word[p], -((xt_units(rule, p, len, pkts) * rule->limit[p].cost) << XT_GEN_BITS));
	}
}

/* xt_take's verdict where every round of one word's compare-and-swap was
 * lost to other CPUs: dropped, but the source is not taken to be over its
 * limit (no hold, no throttle, no ban), which it may well be within. */
#define XT_TAKE_CONTENDED 3
#define XT_TAKE_TRIES 16 /* a word's rounds: eight lost 2 to 5 packets in 10M to one word shared by two CPUs */

/* Meters one packet against bucket b, exactly across CPUs: each limit's
 * word taken by compare-and-swap, one limit after another, in rounds of
 * its own (the limits are independent: a word is taken only where its own
 * limit allows the packet, asked again after each lost swap). A packet the
 * first limit in force refuses writes nothing; one a later limit refuses
 * has the words taken before it given back. (Asking every limit before
 * taking any would spare those two writes, which a source held in the hot
 * cache makes once a hold; the verifier's walk of it cost 90,000
 * instructions.) All the words were once swapped in one round, started
 * over whenever any swap was lost, the words taken so far given back: the
 * give-backs made the other CPUs lose theirs in turn, and a bucket two
 * CPUs shared under a rule of three windows ran out of rounds for 0.07-0.5%
 * of its packets, each one dropped as over its limit (held, throttled,
 * banned) though the bucket had room
 * (bpf Program.TwoCPUsOnOneBucketWithinItsLimitsDropNothing). */
static __always_inline int xt_take_words(struct xt_bucket *b, const struct xt_rule *rule, __u64 now, __u64 len,
					 __u32 pkts)
{
	const int ect = (pkts & XT_PKTS_ECT) != 0;
	pkts &= ~XT_PKTS_ECT;
	XT_UNROLL
	for (int p = 0; p < XT_MAX_LIMITS; p++) {
		int verdict = XT_TAKE_CONTENDED;
#pragma clang loop unroll(disable)
		for (int i = 0; i < XT_TAKE_TRIES; i++) {
			const __u64 was = b->word[p];
			__u64 next;
			if (!xt_meter_word(rule, p, now, len, pkts, ect, was, &next)) {
				verdict = 0;
				break;
			}
			if (next == was || __sync_val_compare_and_swap(&b->word[p], was, next) == was) {
				verdict = 1;
				break;
			}
		}
		if (verdict != 1) {
			xt_give_back(b, rule, len, pkts, p);
			return verdict;
		}
	}
	return 1;
}

/* xt_take_words as a global function (see xt_send_event): the verifier
 * checks its loops over the limits once. */
__attribute__((noinline)) int xt_take(struct xt_bucket *b, const struct xt_rule *rule, __u64 now, __u64 len, __u32 pkts)
{
	if (!b || !rule)
		return 0;
	return xt_take_words(b, rule, now, len, pkts);
}

/* Totals with fair shares (abi.h, docs/design.md "Totals"). */

/* The fair word's limit under the share in force: cost per unit `cost`,
 * XT_FAIR_SECONDS of tolerance. */
static __always_inline struct xt_limit xt_fair_limit(__u64 cost, __u32 hz)
{
	struct xt_limit l = {.fill = 1ULL << XT_FAIR_SHIFT, .cost = cost,
			     .cap = ((__u64)hz * XT_FAIR_SECONDS) << XT_FAIR_SHIFT};
	return l;
}


/* Sets the fair share again, at most XT_FAIR_STEPS_PER_SECOND times a
 * second (the CPU whose swap of fair_at wins): from what was claimed within
 * it since, against 90% of what the total refilled meanwhile. More claimed:
 * a smaller share (at most 8 times smaller a step, and never below one unit
 * a XT_FAIR_SECONDS); less: a larger one, slowly (at most 1/16 larger a
 * step: claims answer a larger share at once, from the tolerance every
 * source has). It comes into force when the total falls below 90% of its
 * burst, and goes out when it is the whole total again and the total at
 * least half full. The same step sets fair_quiet (abi.h) from the claims
 * made from full fair words. */
#define XT_FAIR_STEP_UNITS 32
#define XT_FAIR_STEP_FRAME 1500 /* a byte total's step: XT_FAIR_STEP_UNITS frames of this many bytes */
static __always_inline void xt_fair_step(const struct xt_rule *r, struct xt_rule_state *st, __u32 hz, __u64 now)
{
	/* A step spans XT_FAIR_STEP_UNITS of the total's refill at least
	 * (frames of a byte total, whose claims are whole frames; a second at
	 * most): over less, one claim more or less is most of what a step
	 * compares, and the share, quick to shrink and slow to grow, settled
	 * far under an even split (a total of 20/s, stepped every 20 ms over
	 * 0.4 of a packet: a packet a second). */
	const __u64 units = XT_FAIR_STEP_UNITS * (r->flags & XT_RULE_TOTAL_BYTES ? XT_FAIR_STEP_FRAME : 1);
	__u64 span = r->total.fill ? units * r->total.cost / r->total.fill : hz;
	span = span < hz ? span : hz;
	const __u32 least = hz / XT_FAIR_STEPS_PER_SECOND ? hz / XT_FAIR_STEPS_PER_SECOND : 1;
	const __u32 period = span > least ? (__u32)span : least;
	const __u32 at = st->fair_at;
	/* Due a period after the last step. A step a little ahead (another
	 * CPU's, its clock up to a tick ahead) is not a long pause; any other
	 * distance is: fair_at 0 on a clock past half its 32-bit cycle (the
	 * kernel starts jiffies 300 s before the wrap), or a rule idle for
	 * weeks. */
	const __u32 since = (__u32)now - at;
	if (since < period || since > ~0U - hz || __sync_val_compare_and_swap(&st->fair_at, at, (__u32)now) != at)
		return;
	const __u32 claims = st->fair_claims;
	const __u32 claimed = claims - st->fair_seen;
	st->fair_seen = claims;
	const __u64 level = r->total.cap - xt_debt(&r->total, xt_word_or_full(st->total_word, &r->total, r->gen, now), now);
	__u64 cost = st->fair_cost;
	const __u32 deep = st->fair_deep;
	st->fair_deep = 0; /* a claim's add meanwhile is lost: a unit or two of a step's count */
	if (!cost) {
		if (level < r->total.cap / 10 * 9) {
			st->fair_quiet = 0;
			st->fair_cost = r->fair_start;
		}
		return;
	}
	/* q/1024: what was claimed over 90% of what the total refilled since
	 * the last step, both in the total's scaled units; without overflow
	 * for any limit compile_rule makes. Over two seconds at most: a step
	 * spans a second at most but comes with the first packet after it,
	 * and one late by a fraction of its span (a small total, sent to
	 * sparsely) read its claims against a second's refill and cut the
	 * share by that fraction each time; after a longer pause, the claims
	 * are few whatever the refill. */
	__u64 elapsed = (__u32)now - at;
	if (elapsed > 2 * (__u64)hz)
		elapsed = 2 * (__u64)hz;
	const __u64 refill = elapsed * r->total.fill;
	__u64 t90 = refill / 100 * 90 + refill % 100 * 90 / 100 + 1;
	__u64 got = claimed > (~0ULL >> 1) / r->total.cost ? ~0ULL >> 1 : (__u64)claimed * r->total.cost;
	__u64 got_deep = deep > (~0ULL >> 1) / r->total.cost ? ~0ULL >> 1 : (__u64)deep * r->total.cost;
	if (t90 > (1ULL << 50)) {
		t90 = (t90 >> 12) + 1;
		got >>= 12;
		got_deep >>= 12;
	}
	/* The claims from full words (those that may take the total's last
	 * quarter), against the same 90% of the refill: more, and the sources
	 * making them are not all under the share (a botnet of
	 * more sources than the total passes in a second each claims a unit a
	 * second, the share's floor, and the total refills less than that:
	 * every claim took the last tokens, a light source's among them), so
	 * a word must have been full twice as long; under half, a sixteenth
	 * less. Counted apart from the share's claims, so that neither
	 * measure is thrown off by the other (the share's own claims come in
	 * bunches; the total's level cannot tell the two apart). */
	__u32 quiet = st->fair_quiet;
	if (got_deep > t90)
		quiet = !quiet ? (hz ? hz : 1) : quiet > XT_FAIR_QUIET_MAX_TICKS / 2 ? XT_FAIR_QUIET_MAX_TICKS : quiet * 2;
	else if (got_deep < t90 / 2)
		quiet = quiet - quiet / 16 < hz / 20 ? 0 : quiet - quiet / 16;
	__u64 q = got / t90 >= 8 ? 8 * 1024 : got / t90 * 1024 + got % t90 * 1024 / t90;
	q = q < 964 ? 964 : q > 8 * 1024 ? 8 * 1024 : q;
	cost = cost / 1024 * q + (cost % 1024) * q / 1024;
	/* A share of at least one unit a XT_FAIR_SECONDS: a claim never puts a
	 * source further in debt than the tolerance, so a share that fell too
	 * far comes back within it. */
	const __u64 most = xt_fair_limit(1, hz).cap;
	cost = cost > most ? most : cost;
	cost = cost <= r->fair_start && level >= r->total.cap / 2 ? 0 : cost ? cost : 1;
	st->fair_quiet = cost ? quiet : 0;
	st->fair_cost = cost;
}

/* A fair word of generation gen last written XT_FAIR_STALE_TICKS ago or
 * more (past half its scaled clock's cycle it reads as ahead: as far ahead
 * as XT_FAIR_AHEAD_TICKS, which no claim puts it, it is as old) is written
 * again as full, XT_FAIR_QUIET_MAX_TICKS and a few seconds back (so that a
 * CPU whose clock is behind reads it as full too, and any fair_quiet as
 * passed: its source has been quiet), by compare-and-swap: a claim
 * meanwhile wins. A fresh share's TAT 0 is left as it is. serve's hourly
 * walk (control.bpf.h, xt_catch_up's fair_only). */
static __always_inline int xt_fair_refresh(__u64 *word, __u8 gen, __u64 now)
{
	const __u64 old = *(volatile __u64 *)word;
	if (xt_word_gen(old) != gen || old == xt_word(0, gen))
		return 0;
	const __u64 at = (now << XT_FAIR_SHIFT) & XT_TAT_MASK;
	const __s64 behind = xt_diff(at, old >> XT_GEN_BITS);
	if (behind < (__s64)(XT_FAIR_STALE_TICKS << XT_FAIR_SHIFT) &&
	    behind > -(__s64)(XT_FAIR_AHEAD_TICKS << XT_FAIR_SHIFT))
		return 0;
	const __u64 full = xt_word(at - ((__u64)(XT_FAIR_QUIET_MAX_TICKS + XT_SKEW_TICKS) << XT_FAIR_SHIFT), gen);
	return __sync_val_compare_and_swap(word, old, full) == old;
}

/* Whether a fair word (of the share's generation) was full `quiet` ticks
 * or more at now: its TAT that far behind, or beyond what any claim puts
 * ahead (a word that wrapped, which xt_debt reads as full too). */
static __always_inline int xt_fair_full_for(const struct xt_limit *fair, __u64 word, __u64 now, __u32 quiet)
{
	const __s64 behind = xt_diff(xt_scaled(fair, now), word >> XT_GEN_BITS);
	if (behind >= (__s64)((__u64)quiet << XT_FAIR_SHIFT))
		return 1;
	return behind < 0 && (__u64)-behind > fair->cap + XT_SKEW_TICKS * fair->fill;
}

/* xt_take for a rule with a total: 1 if the packet passes, 0 if its own
 * limits refuse it (nothing written; XT_TAKE_CONTENDED where they could
 * not be asked), XT_TAKE_OVER_TOTAL if the total does
 * (its own limits' tokens given back). Its own limits first; then the fair word:
 * a packet within its source's share claims it (and the claim stands
 * whatever the total says: it is the demand the share is set from); then
 * the total, down to its last token for a claim, down to half its burst for
 * the rest. A global function (see xt_send_event). */
#define XT_TAKE_OVER_TOTAL 2 /* not enum xt_over_kind's XT_OVER_TOTAL */
__attribute__((noinline)) int xt_take_total(struct xt_bucket *b, const struct xt_rule *rule, __u64 now, __u64 len,
					    __u32 pkts)
{
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!b || !rule || !cfg)
		return 0;
	__u32 id = rule->id;
	struct xt_rule_state *st = bpf_map_lookup_elem(&xt_rule_state, &id);
	if (!st)
		return 0;
	const int own = xt_take_words(b, rule, now, len, pkts);
	if (own != 1)
		return own;
	pkts &= ~XT_PKTS_ECT;
	const __u64 units = rule->flags & XT_RULE_TOTAL_BYTES ? len : pkts;
	xt_fair_step(rule, st, cfg->hz, now);
	/* The fair word: claimed by compare-and-swap, alone. */
	int claim = 1, deep = 1;
	const __u64 cost = st->fair_cost;
	if (cost) {
		const struct xt_limit fair = xt_fair_limit(cost, cfg->hz);
		const __u64 old = b->word[XT_FAIR_WORD];
		/* A word of another generation (or a window's, before the
		 * total came), or TAT 0, which every writer that knows no fair
		 * limit leaves (a fresh bucket, a conversion: xt_full_word of a
		 * limit of zero): a fresh share. Read as a TAT, 0 would be in
		 * debt in the last seconds before each wrap of the fair limit's
		 * scaled clock (every 2^28 ticks). */
		const int fresh = old == xt_word(0, rule->gen) || xt_word_gen(old) != rule->gen;
		const __u64 fw = fresh ? xt_full_word(&fair, now, rule->gen) : old;
		/* A fresh share, its source new to it, may take the last quarter;
		 * a word in use where it was full for fair_quiet. */
		if (!fresh)
			deep = xt_fair_full_for(&fair, old, now, st->fair_quiet);
		/* A frame larger than the tolerance (a byte total whose share
		 * fell below a frame a XT_FAIR_SECONDS) claims the whole
		 * tolerance, from a full word: one claim a XT_FAIR_SECONDS at
		 * least, as for packets. It could never claim otherwise,
		 * however rarely its source sent. */
		__u64 fn = fw;
		const __u64 most = fair.cap / cost; /* 0: not even a unit fits, and none claims */
		claim = xt_gcra(&fair, fw, now, units * cost > fair.cap ? (most ? most : 1) : units, &fn);
		/* Lost to another CPU's claim: both stand (one claim's worth
		 * more, at most, for each CPU). */
		if (claim) {
			__sync_val_compare_and_swap(&b->word[XT_FAIR_WORD], old, fn);
			__sync_fetch_and_add(&st->fair_claims, (__u32)units);
			if (deep && !fresh)
				__sync_fetch_and_add(&st->fair_deep, (__u32)units);
		}
	}
	const __u64 need = units * rule->total.cost;
	/* A claim keeps the last quarter only while fair_quiet says claims
	 * from full words outrun the total: at 0, a light source's burst (its first
	 * claim from a full word, the rest not) had its tail stop at the
	 * quarter. And never more than leaves its own units: a total of a
	 * burst under 4/3 of a unit (1/min) would refuse every such claim. */
	__u64 keep = rule->total.cap / 2;
	if (claim) {
		const __u64 room = need < rule->total.cap ? rule->total.cap - need : 0;
		keep = deep || !st->fair_quiet ? 0 : rule->total.cap / 4;
		keep = keep < room ? keep : room;
	}
#pragma clang loop unroll(disable)
	for (int i = 0; i < XT_CAS_TRIES; i++) {
		const __u64 tw = st->total_word;
		const __u64 cur = xt_word_or_full(tw, &rule->total, rule->gen, now);
		const __u64 debt = xt_debt(&rule->total, cur, now);
		if (need + keep > rule->total.cap - debt)
			break;
		const __u64 next = xt_word(xt_scaled(&rule->total, now) + debt + need, rule->gen);
		if (__sync_val_compare_and_swap(&st->total_word, tw, next) == tw)
			return 1;
	}
	/* Over the total: its own limits' tokens back. */
	xt_give_back(b, rule, len, pkts, XT_MAX_LIMITS);
	return XT_TAKE_OVER_TOTAL;
}

/* Where a bucket key lives: its home set (and the next, where the home set
 * spills), the two sets' tags, its fingerprint and mark; the sets' marks
 * once xt_place_marks has looked them up (the data path's only). */
struct xt_place {
	__u32 idx, bits;
	__u16 fp;
	__u8 mark;
	struct xt_set_tags *home, *next;
	struct xt_set_marks *home_marks, *next_marks;
};

static __always_inline int xt_place_of(const struct xt_bucket_key *key, const struct xt_config *cfg,
				       struct xt_place *p)
{
	const __u64 h = xt_hash_bucket(cfg->hash_key, key);
	p->bits = cfg->bucket_bits;
	p->idx = xt_home_set(h, p->bits);
	p->fp = xt_fp_of(h);
	p->mark = xt_mark_of(h);
	__u32 next = xt_place_set(p->idx, XT_PLACE(1, 0), p->bits);
	p->home = bpf_map_lookup_elem(&xt_bucket_tags, &p->idx);
	p->next = bpf_map_lookup_elem(&xt_bucket_tags, &next);
	return p->home && p->next;
}

/* The two sets' marks, for the data path (the slow paths that find a
 * bucket go straight to the tags). */
static __always_inline int xt_place_marks(struct xt_place *p)
{
	__u32 next = xt_place_set(p->idx, XT_PLACE(1, 0), p->bits);
	p->home_marks = bpf_map_lookup_elem(&xt_bucket_marks, &p->idx);
	p->next_marks = bpf_map_lookup_elem(&xt_bucket_marks, &next);
	return p->home_marks && p->next_marks;
}

static __always_inline int xt_slot_is(const struct xt_slot *s, const struct xt_bucket_key *key)
{
	const __u8 *a = (const __u8 *)&s->key, *b = (const __u8 *)key;
	return xt_load64(a) == xt_load64(b) && xt_load64(a + 8) == xt_load64(b + 8) &&
	       xt_load64(a + 16) == xt_load64(b + 16);
}

/* Global functions (see xt_send_event): the verifier checks each once, and
 * what they return is one number to it, not one path per way. */
__attribute__((noinline)) int xt_locate_in(const struct xt_set_tags *home, const struct xt_set_tags *next, __u32 fp,
					   int after)
{
	return home ? xt_locate(home, next, (__u16)fp, after) : XT_NOWHERE;
}

/* xt_newcomer_place's place in the low 32 bits, the chosen way's tag word
 * as judged in the high 32. */
__attribute__((noinline)) __u64 xt_newcomer_in(struct xt_set_tags *home, const struct xt_set_tags *next, __u32 unit,
					       __u32 idle, __u32 ahead)
{
	__u32 seen = 0;
	if (!home || !next)
		return 0;
	const int r = xt_newcomer_place(home, next, (__u16)unit, idle, (__u16)ahead, &seen);
	return (__u32)r | (__u64)seen << 32;
}

/* A slot, its set's tags and its way there. */
struct xt_found {
	struct xt_slot *slot;
	struct xt_set_tags *tags;
	__u32 way;
	__u32 next; /* 1: in the set after its home */
};

/* The set XT_PLACE result r is in, and its tags. */
static __always_inline int xt_set_at(const struct xt_place *p, int r, struct xt_bucket_set **set,
				     struct xt_set_tags **tags)
{
	__u32 at = xt_place_set(p->idx, r, p->bits);
	*set = bpf_map_lookup_elem(&xt_buckets, &at);
	*tags = bpf_map_lookup_elem(&xt_bucket_tags, &at);
	return *set && *tags;
}

/* Whether place r (XT_PLACE) holds key's slot; if so, f says where. */
static __always_inline int xt_slot_at(const struct xt_place *p, int r, const struct xt_bucket_key *key,
				      struct xt_found *f)
{
	struct xt_bucket_set *set;
	struct xt_set_tags *t;
	const __u32 w = XT_PLACE_WAY(r);
	if (r < 0 || w >= XT_BUCKET_WAYS || !xt_set_at(p, r, &set, &t))
		return 0;
	if (!xt_slot_is(&set->way[w], key))
		return 0;
	f->slot = &set->way[w];
	f->tags = t;
	f->way = w;
	f->next = XT_PLACE_NEXT(r);
	return 1;
}

/* Finds key's slot (tracked or gone idle): 1 if the table has it. */
static __always_inline int xt_find(const struct xt_place *p, const struct xt_bucket_key *key, struct xt_found *f)
{
	const struct xt_set_tags *next = xt_spilled(p->home) ? p->next : NULL;
	int r = XT_NOWHERE;
	XT_UNROLL
	for (int i = 0; i < XT_FIND_TRIES; i++) {
		/* After a first place that holds another key with the same
		 * fingerprint, look past it. */
		r = xt_locate_in(p->home, next, p->fp, r);
		if (r < 0)
			return 0;
		if (xt_slot_at(p, r, key, f))
			return 1;
	}
	return 0;
}

/* The bucket of key if the table has it, tracked or not; NULL if not. */
static __always_inline struct xt_bucket *xt_bucket_find(const struct xt_bucket_key *key, const struct xt_config *cfg)
{
	struct xt_place p;
	struct xt_found f = {};
	if (!xt_place_of(key, cfg, &p) || !xt_find(&p, key, &f))
		return NULL;
	return &f.slot->bucket;
}

/* Takes a slot for key (see xt_newcomer_place), with a fresh bucket (the
 * least recently used source's, if no way is free or idle, only where
 * `evicts`): NULL if the way's tag changed since it was chosen: another CPU took it, or its
 * source's stamp was just refreshed (then it is in use, not to be evicted).
 * Rare; the packet is then counted as XT_DROP_NO_STATE. The swap expects
 * the word the way was chosen on: it expected the word read again after
 * the choice, so a CPU whose choice came before another's claim of the
 * same way and whose read came after it took the way again, over a source
 * just admitted (its own, counted twice, or another's, the two keys
 * written into one slot). */
static __always_inline struct xt_slot *xt_claim_slot(const struct xt_place *p, const struct xt_config *cfg,
						     __u16 unit, int evicts)
{
	const __u16 ahead = xt_age_ahead(cfg);
	const __u64 chosen = xt_newcomer_in(p->home, p->next, unit, cfg->used_idle, ahead);
	const int r = (int)(__u32)chosen;
	struct xt_bucket_set *set;
	struct xt_set_tags *t;
	__u32 w = XT_PLACE_WAY(r);
	/* One register for the bound and the index (clang 19 took the index
	 * from `chosen` again, past the verifier's bound). */
	asm volatile("" : "+r"(w));
	if (w >= XT_BUCKET_WAYS || !xt_set_at(p, r, &set, &t))
		return NULL;
	union xt_way_tag old;
	old.word = (__u32)(chosen >> 32);
	/* Not a source in use, where `evicts` says so. */
	if (!evicts && old.half[XT_TAG_FP] && xt_stamp_recent(old.half[XT_TAG_USED], unit, cfg->used_idle, ahead))
		return NULL;
	union xt_way_tag mine;
	mine.half[XT_TAG_FP] = p->fp;
	mine.half[XT_TAG_USED] = unit;
	if (__sync_val_compare_and_swap(&t->way[w].word, old.word, mine.word) != old.word)
		return NULL;
	/* The mark after the claim: written before, it could be overwritten
	 * by a claimant that then lost the swap. */
	(XT_PLACE_NEXT(r) ? p->next_marks : p->home_marks)->way[w] = p->mark;
	if (XT_PLACE_NEXT(r) && !p->home_marks->spilled)
		p->home_marks->spilled = 1;
	struct xt_slot *s = &set->way[w];
	if (old.half[XT_TAG_FP] && s->key.family) {
		xt_count_one(XT_SOURCES_EVICTED);
		/* Not idle (xt_free_way): a source still sending lost its
		 * slot; untracked, its limit no longer holds. */
		if (xt_stamp_recent(old.half[XT_TAG_USED], unit, cfg->used_idle, ahead))
			xt_count_one(XT_SOURCES_EVICTED_ACTIVE);
	}
	/* Unmatchable while it is rewritten: family first, then the rest
	 * (xt_key_slot). A store the compiler keeps, and keeps before the
	 * bucket's: the catch-up reads the family again after each word, to
	 * tell a newcomer's fresh words from its own rule's (control.bpf.h,
	 * xt_catch_up_word). */
	*(volatile __u8 *)&s->key.family = 0;
	asm volatile("" ::: "memory");
	return s;
}

/* Writes key into a slot xt_claim_slot took, its bucket written already. */
static __always_inline void xt_key_slot(struct xt_slot *s, const struct xt_bucket_key *key)
{
	__builtin_memcpy(s->key.addr, key->addr, sizeof(s->key.addr));
	s->key.rule_id = key->rule_id;
	s->key.per_len = key->per_len;
	s->key.family = key->family;
}

/* Sets the loads of a newcomer's claim going at once: both sets' tags, and
 * every slot of its home set, whose way it will take unless that set is
 * full or fuller than the next (xt_newcomer_place). Each would otherwise
 * wait for the one before: the tags to choose the way, then the way's
 * slot, which in a table of tens of MiB is a cache miss and a TLB miss (on
 * a VM a walk of two page tables). Issued together, they overlap; nothing
 * waits on the values, so the compiler is told to keep the loads
 * (docs/design.md, "Seventeenth round"). */
static __always_inline void xt_warm_claim(const struct xt_place *p)
{
	const struct xt_bucket_set *set = bpf_map_lookup_elem(&xt_buckets, &p->idx);
	if (!set || !p->home || !p->next)
		return;
	asm volatile("" ::"r"(*(volatile const __u32 *)&p->home->way[0].word));
	asm volatile("" ::"r"(*(volatile const __u32 *)&p->next->way[0].word));
	XT_UNROLL
	for (int i = 0; i < XT_BUCKET_WAYS; i++)
		asm volatile("" ::"r"(*(volatile const __u8 *)&set->way[i].key.family));
}

static __always_inline struct xt_bucket *xt_claim(const struct xt_place *p, const struct xt_bucket_key *key,
						  const struct xt_rule *rule, const struct xt_config *cfg, __u64 now,
						  __u16 unit)
{
	xt_warm_claim(p);
	struct xt_slot *s = xt_claim_slot(p, cfg, unit, 1);
	if (!s)
		return NULL;
	xt_bucket_init(&s->bucket, rule, now);
	xt_key_slot(s, key);
	/* Counted here, by the data path: a snapshot's bucket put back, or a
	 * fleet's, is no new admission (the snapshot brings its own count). */
	xt_count_one(XT_SOURCES_ADMITTED);
	return &s->bucket;
}

/* Whether an untracked source gets a bucket: its rule's new-source budget
 * admits it, or, refused there, it proved its address or is known from its
 * good behaviour (known.bpf.h). A global function (see xt_send_event): one
 * number to the verifier, where the paths through the budget's swaps and
 * the known table would each go on through the rest of the program. */
__attribute__((noinline)) int xt_admit_untracked(const struct xt_pkt *pkt, const struct xt_rule *rule, __u64 now)
{
	if (!pkt || !rule)
		return 0;
	if (xt_take_new_source(rule, now))
		return 1;
	if (!rule->remember && !(rule->flags & XT_RULE_VERIFY_TCP))
		return 0;
	const int how = xt_recall(pkt, rule->per_len, rule->remember, now);
	if (!how)
		return 0;
	xt_count_one(how == XT_KNOWN_PROVEN ? XT_ADMITTED_BY_PROOF : XT_ADMITTED_BY_MEMORY);
	return 1;
}

/* The bucket of the source of pkt under rule (its key in *key), found or
 * made: NULL if the source is untracked and not admitted, *why_not saying
 * why. A source whose slot went unused for the idle window is untracked
 * again: the budget decides, and if it admits the source, its old bucket is
 * kept. */
static __always_inline struct xt_bucket *xt_source_bucket(const struct xt_pkt *pkt, const struct xt_rule *rule,
							  const struct xt_config *cfg, __u64 now,
							  struct xt_bucket_key *key, enum xt_reason *why_not)
{
	xt_bucket_key_for(pkt, rule->id, rule->per_len, key);
	struct xt_place p;
	if (!xt_place_of(key, cfg, &p) || !xt_place_marks(&p)) {
		*why_not = XT_DROP_NO_STATE;
		return NULL;
	}
	const __u16 unit = xt_used_now(cfg, now);
	struct xt_found f = {};
	/* Most spoofed sources are told untracked by the marks alone. */
	int found = xt_marks_may_hold(p.home_marks, p.next_marks, p.mark) && xt_find(&p, key, &f);
	const __u32 w = f.way;
	if (w >= XT_BUCKET_WAYS) /* never (xt_slot_at checks it): for the verifier */
		found = 0;
	if (!found || !xt_used_recent(cfg, xt_tag_used(f.tags, w), unit)) {
		if (!xt_admit_untracked(pkt, rule, now)) {
			*why_not = XT_DROP_NEW_SOURCE;
			return NULL;
		}
		if (!found) {
			struct xt_bucket *b = xt_claim(&p, key, rule, cfg, now, unit);
			if (!b)
				*why_not = XT_DROP_NO_STATE;
			return b;
		}
	}
	if (xt_tag_used(f.tags, w) != unit)
		f.tags->way[w].half[XT_TAG_USED] = unit;
	return &f.slot->bucket;
}

#endif /* XTHROTTLE_BUCKET_BPF_H */
