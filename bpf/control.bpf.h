/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The control programs: run by the controller through BPF_PROG_TEST_RUN,
 * never attached, for work on the maps that must be done inside the kernel
 * to be atomic with the data path (bringing buckets up to date), and to read
 * the program's clock. Their arguments and results are in xt_ctl.
 */
#ifndef XTHROTTLE_CONTROL_BPF_H
#define XTHROTTLE_CONTROL_BPF_H

#include "maps.bpf.h"
#include "gcra.h"
#include "bucket.bpf.h"
#include "known.bpf.h"
#include "hot.bpf.h"

/* The first 64 bits of a bucket key: read whole by the catch-up, swapped
 * whole by the sweep. */
union xt_key_head {
	__u64 word;
	struct {
		__u32 rule_id;
		__u8 family;
		__u8 per_len;
		__u8 pad[2];
	} key;
};
_Static_assert(__builtin_offsetof(struct xt_bucket_key, family) == __builtin_offsetof(union xt_key_head, key.family) &&
		       __builtin_offsetof(struct xt_bucket_key, per_len) ==
			       __builtin_offsetof(union xt_key_head, key.per_len) &&
		       __builtin_offsetof(struct xt_bucket_key, addr) == sizeof(union xt_key_head),
	       "the head word is the key's rule, family and prefix length");

/* Whether slot s still holds a bucket of rule `id`: its key's head read
 * again. A newcomer that takes the way clears the family before it writes
 * its fresh words, and writes its own key after them (bucket.bpf.h,
 * xt_claim_slot). */
static __always_inline int xt_slot_of_rule(const struct xt_slot *s, __u32 id)
{
	const union xt_key_head head = {.word = *(volatile const __u64 *)&s->key};
	return head.key.family && head.key.rule_id == id;
}

/* Brings word p of the bucket in slot s to rule r's generation, by
 * compare-and-swap: 1 if it did. The slot's key is read again after each
 * read of the word. Checked only before the words, a newcomer of another
 * rule that took the way in between (an idle source's, which a lagging
 * bucket usually is) had its fresh words converted as this rule's, into
 * its generation and, where the two rules' generations agreed, its units
 * (bpf RuleChanges.ACatchUpLeavesANewcomerOfAnotherRuleAlone: 21 to 36
 * words in 96,000 newcomers). Still this rule's after the word was read,
 * the word was its bucket's; a newcomer that takes the way from there on
 * writes the word before the swap, which then fails. A word no limit
 * uses (xt_word_is_bare), where it is brought up at all (below), is
 * swapped too, to the bare generation: a plain store there could land on
 * a newcomer's word just written. */
static __always_inline int xt_catch_up_word(struct xt_slot *s, const struct xt_rule *r, int p, __u64 now,
					    struct xt_control *ctl)
{
	__u64 *word = &s->bucket.word[p];
	const int bare = xt_word_is_bare(r, p);
#pragma clang loop unroll(disable)
	for (int i = 0; i < XT_CAS_TRIES; i++) {
		const __u64 old = *(volatile const __u64 *)word;
		if (xt_word_gen(old) == r->gen)
			return 0;
		asm volatile("" ::: "memory");
		if (!xt_slot_of_rule(s, r->id))
			return 0;
		const __u64 next = bare ? r->gen : xt_regen_of(r, p, old, now);
		if (__sync_val_compare_and_swap(word, old, next) == old)
			return 1;
	}
	ctl->contended++;
	return 0;
}

/* Whether rule id is one of xt_control's rule_set. */
static __always_inline int xt_in_rule_set(const struct xt_control *ctl, __u32 id)
{
	return id < XT_MAX_RULES && (ctl->rule_set[id / 64] >> (id % 64)) & 1;
}

/* One slot's words: a global function (verified once, not once for each
 * way and each path through the others), which keeps xt_catch_up within the
 * verifier's budget; inlined, it passed 1M instructions processed on 6.18.44. */
__attribute__((noinline)) int xt_catch_up_slot(struct xt_slot *s, __u64 now)
{
	__u32 zero = 0;
	struct xt_control *ctl = bpf_map_lookup_elem(&xt_ctl, &zero);
	if (!s || !ctl)
		return 0;
	const struct xt_rule *r = &ctl->rule;
	__u32 bare_too = ctl->catch_up_bare;
	if (ctl->catch_up_set) {
		/* The slot's rule, if it is one of the set: its version as the
		 * controller read it (the key is checked against it again
		 * below, and before each word). */
		__u32 id = s->key.rule_id;
		if (!xt_in_rule_set(ctl, id))
			return 0;
		const struct xt_catch_up_rule *in = bpf_map_lookup_elem(&xt_catch_up_in, &id);
		if (!in)
			return 0;
		r = &in->rule;
		bare_too = in->bare;
	}
	if (!s->key.family || s->key.rule_id != r->id)
		return 0;
	if (ctl->fair_only) {
		/* The rule still in its slot: read unlocked, it may have been
		 * deleted since, and a rule that took the id (its generation
		 * starting where this one's did) may use the word as a limit. */
		__u32 id = r->id;
		const struct xt_rule_state *st = bpf_map_lookup_elem(&xt_rule_state, &id);
		if (!st || st->created_epoch != ctl->rule_epoch || !(r->flags & XT_RULE_TOTAL))
			return 0;
		const int refreshed = xt_fair_refresh(&s->bucket.word[XT_FAIR_WORD], r->gen, now);
		ctl->fair_refreshed += refreshed;
		return refreshed;
	}
	/* A word no limit uses is read as the bare generation whatever it
	 * holds (xt_regen), and left as it is, but where the rule's next
	 * version makes it a limit's (catch_up_bare): left generations behind
	 * (a removed window's, in that window's units), it could come round
	 * to that version's generation and read as in debt there. Every
	 * walk used to bring them all up, by a plain store (see above);
	 * by compare-and-swap, a replacement's walk at 4M sources took 118 ms
	 * where it had taken 70, and left as they are, 70 to 72. */
	int caught = 0;
	XT_UNROLL
	for (int p = 0; p < XT_MAX_LIMITS; p++) {
		if (xt_word_is_bare(r, p) && !((bare_too >> p) & 1))
			continue;
		caught |= xt_catch_up_word(s, r, p, now, ctl);
	}
	ctl->caught_up += caught;
	return caught;
}

static long xt_catch_up_set(void *map __attribute__((unused)), const __u32 *idx __attribute__((unused)),
			    struct xt_bucket_set *set, void *unused __attribute__((unused)))
{
	const __u64 now = xt_now();
#pragma clang loop unroll(disable)
	for (int w = 0; w < XT_BUCKET_WAYS; w++)
		xt_catch_up_slot(&set->way[w], now);
	return 0;
}

/* Brings every bucket of rule xt_ctl's rule.id written under an older version
 * of the rule to its generation, the way the data path would on the
 * bucket's next packet: compare-and-swap on each word alone, so nothing the
 * data path does meanwhile is lost or given back, counters included. With
 * catch_up_set, the buckets of every rule of rule_set, each to the
 * generation of its version in xt_catch_up_in. */
SEC("xdp")
int xt_catch_up(struct xdp_md *ctx __attribute__((unused)))
{
	__u32 zero = 0;
	struct xt_control *ctl = bpf_map_lookup_elem(&xt_ctl, &zero);
	if (!ctl)
		return XDP_ABORTED;
	ctl->caught_up = ctl->contended = ctl->fair_refreshed = 0;
	bpf_for_each_map_elem(&xt_buckets, xt_catch_up_set, NULL, 0);
	return XDP_PASS;
}

/* Whether xt_sweep frees (or keeps, by keep_per_len) the slots of rule id:
 * the one rule sweep_rule, or with XT_SWEEP_SET each rule of rule_set. */
static __always_inline int xt_sweeps_rule(const struct xt_control *ctl, __u32 id)
{
	if (ctl->sweep_rule != XT_SWEEP_SET)
		return id == ctl->sweep_rule;
	return xt_in_rule_set(ctl, id);
}

static long xt_sweep_set(void *map __attribute__((unused)), const __u32 *idx, struct xt_bucket_set *set,
			 void *unused __attribute__((unused)))
{
	__u32 zero = 0, i = *idx;
	struct xt_control *ctl = bpf_map_lookup_elem(&xt_ctl, &zero);
	struct xt_set_tags *t = bpf_map_lookup_elem(&xt_bucket_tags, &i);
	if (!ctl || !t)
		return 1;
#pragma clang loop unroll(disable)
	for (int w = 0; w < XT_BUCKET_WAYS; w++) {
		struct xt_slot *s = &set->way[w];
		/* The fingerprint before the key: a newcomer that takes the way
		 * after it was read changes it, and the swap below lets the way
		 * be. Read after the key, it could be the newcomer's. */
		const __u16 fp = *(volatile const __u16 *)&t->way[w].half[XT_TAG_FP];
		asm volatile("" ::: "memory");
		/* The key's head word (rule, family, prefix length), read once:
		 * what the swap below clears, only if it is still this key's. */
		__u64 *head = (__u64 *)&s->key;
		union xt_key_head was = {.word = *(volatile const __u64 *)head};
		if (!was.key.family || !xt_sweeps_rule(ctl, was.key.rule_id))
			continue;
		if (was.key.per_len == ctl->keep_per_len) {
			/* Kept: brought to the rule's generation as the catch-up
			 * would, where the change asks for it. */
			if (ctl->sweep_catch_up)
				xt_catch_up_slot(s, xt_now());
			continue;
		}
		/* Free the way unless a newcomer took it meanwhile (its
		 * fingerprint changed); a packet refreshing the stamp meanwhile
		 * only makes the swap try again. */
		int k = 0;
#pragma clang loop unroll(disable)
		for (; fp && k < XT_CAS_TRIES; k++) {
			const union xt_way_tag tag = t->way[w];
			if (tag.half[XT_TAG_FP] != fp)
				break;
			if (__sync_val_compare_and_swap(&t->way[w].word, tag.word, 0) == tag.word) {
				/* The way is free from here on, and a newcomer can
				 * take it before the key is cleared: it writes its
				 * family 0 first, then its own key, so the head is
				 * no longer the one read and the swap leaves it. A
				 * plain store here could clear the newcomer's key. */
				union xt_key_head cleared = was;
				cleared.key.family = 0;
				__sync_val_compare_and_swap(head, was.word, cleared.word);
				ctl->swept++;
				break;
			}
		}
		/* Every swap lost, and the way still this source's: for the
		 * next round. */
		if (k == XT_CAS_TRIES && *(volatile const __u16 *)&t->way[w].half[XT_TAG_FP] == fp)
			ctl->contended++;
	}
	return 0;
}

/* Frees the slots of rule xt_ctl's sweep_rule (but those of per_len
 * keep_per_len), or of every rule of its rule_set: the rule was deleted,
 * its buckets are keyed anew, or a new rule takes its slot. With
 * sweep_catch_up, the slots it keeps are brought to the generation of
 * xt_ctl's rule (the rule as replaced, of that id) on the way, as
 * xt_catch_up would: a change of --per walks the table once. */
SEC("xdp")
int xt_sweep(struct xdp_md *ctx __attribute__((unused)))
{
	__u32 zero = 0;
	struct xt_control *ctl = bpf_map_lookup_elem(&xt_ctl, &zero);
	if (!ctl)
		return XDP_ABORTED;
	ctl->swept = ctl->caught_up = ctl->contended = 0;
	bpf_for_each_map_elem(&xt_buckets, xt_sweep_set, NULL, 0);
	return XDP_PASS;
}

/* The stamps' age, kept short of their wrap. A `used` stamp counts units
 * of 2^used_shift ticks in 16 bits, so a slot idle for a whole cycle (at
 * least four idle windows: 262 s by default) reads as used again: its
 * source passed for tracked without the budget, and the least recently
 * used way was chosen among stale stamps read as young. Each stamp older
 * than the idle window is set back to a second past it, by compare-and-swap (a
 * packet that refreshes it meanwhile wins); run often enough (serve: every
 * 30 s), no stamp gets near its wrap. An idle source stays idle, and its
 * bucket stays for the budget to let it back to. */
struct xt_age_walk {
	__u32 shift;
	__u16 idle;
	__u16 ahead; /* xt_age_ahead */
	__u64 aged;
};

static long xt_age_set(void *map __attribute__((unused)), const __u32 *idx __attribute__((unused)),
		       struct xt_set_tags *t, struct xt_age_walk *walk)
{
	/* The clock read for each set, just before its tags: a packet on
	 * another CPU may still refresh a stamp a unit past it, which the
	 * second's tolerance of xt_stamp_age takes for in use, not a cycle
	 * old. An aged stamp is set that second further back than just past
	 * the window, so that a CPU whose clock is behind this one's still
	 * reads it as idle. */
	const __u16 unit = (__u16)(xt_now() >> (walk->shift & 63));
	const __u16 past = (__u16)(walk->idle + 1 + walk->ahead);
#pragma clang loop unroll(disable)
	for (int w = 0; w < XT_BUCKET_WAYS; w++) {
		union xt_way_tag tag;
		tag.word = *(volatile const __u32 *)&t->way[w].word;
		if (!tag.half[XT_TAG_FP] || xt_stamp_age(tag.half[XT_TAG_USED], unit, walk->ahead) <= past)
			continue;
		union xt_way_tag aged = tag;
		aged.half[XT_TAG_USED] = (__u16)(unit - past);
		if (__sync_val_compare_and_swap(&t->way[w].word, tag.word, aged.word) == tag.word)
			walk->aged++;
	}
	return 0;
}

/* The hot cache's ticks, kept short of their wrap. An entry drops its
 * source while its 32-bit tick is at most XT_HOT_MAX_WAIT ahead, so one
 * whose hold ended 2^32 - 2^24 ticks ago (49.5 days at HZ=1000) would read
 * as live again, if nothing had read its line since: its source, back
 * then, dropped for hours. Each entry whose hold ended XT_HOT_AGE_FROM ago
 * or more is given an end XT_HOT_AGED ago, by compare-and-swap on the tick
 * with the epoch and class beside it (the data path's own CPU writes its
 * lines with plain stores; one that fills the entry meanwhile wins):
 * written again every 2^30 - 2^28 ticks (9.3 days at HZ=1000), not on
 * every walk, and never 2^31 ticks old, where xt_hot_last_hit's signed
 * compare would read it as ahead, unless no walk ran for 2^28 ticks (3.1
 * days: serve down). Only the lines whose bit is set can hold an entry. */
#define XT_HOT_AGED (1u << 30)
#define XT_HOT_AGE_FROM ((1u << 31) - (1u << 28))
struct xt_hot_age_walk {
	__u32 v6_from; /* the first IPv6 line */
	__u32 now;
	/* Counted in the map, not on the stack: the verifier would follow a
	 * count it knows as a constant down every path apart. */
	struct xt_control *ctl;
};

static __always_inline void xt_hot_age_slot(struct xt_hot *hot, struct xt_hot_age_walk *walk)
{
	_Static_assert(__builtin_offsetof(struct xt_hot, cls) + sizeof(__u16) == sizeof(__u64),
		       "the tick, the epoch and the class are one word");
	__u64 *word = (__u64 *)hot;
	const __u64 old = *(volatile const __u64 *)word;
	struct xt_hot h;
	__builtin_memcpy(&h, &old, sizeof(old));
	const __u32 ago = walk->now - h.until;
	if ((hot->who & (XT_HOT_USED | XT_HOT_FOREVER)) != XT_HOT_USED || ago < XT_HOT_AGE_FROM ||
	    ago >= -2 * XT_HOT_MAX_WAIT)
		return;
	h.until = walk->now - XT_HOT_AGED;
	__u64 aged;
	__builtin_memcpy(&aged, &h, sizeof(aged));
	if (__sync_val_compare_and_swap(word, old, aged) == old)
		walk->ctl->hot_aged++;
}

static long xt_hot_age_bits(void *map __attribute__((unused)), const __u32 *word, __u64 *bits,
			    struct xt_hot_age_walk *walk)
{
	const __u64 held = *(volatile const __u64 *)bits;
	if (!held)
		return 0;
#pragma clang loop unroll(disable)
	for (__u32 b = 0; b < 64; b++) {
		if (!(held & (1ull << b)))
			continue;
		const __u32 idx = *word << 6 | b;
		struct xt_hot_set *set = bpf_map_lookup_elem(&xt_hot, &idx);
		if (!set)
			return 1;
		/* An IPv6 line's slots 1 and 3 are the addresses of 0 and 2. */
		const int step = idx >= walk->v6_from ? 2 : 1;
#pragma clang loop unroll(disable)
		for (int s = 0; s < 4; s += step)
			xt_hot_age_slot(xt_hot_at(set, s), walk);
	}
	return 0;
}

SEC("xdp")
int xt_age(struct xdp_md *ctx __attribute__((unused)))
{
	__u32 zero = 0;
	struct xt_control *ctl = bpf_map_lookup_elem(&xt_ctl, &zero);
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!ctl || !cfg)
		return XDP_ABORTED;
	struct xt_age_walk walk = {
		.shift = cfg->used_shift,
		.idle = (__u16)cfg->used_idle,
		.ahead = xt_age_ahead(cfg),
		.aged = 0,
	};
	bpf_for_each_map_elem(&xt_bucket_tags, xt_age_set, &walk, 0);
	ctl->aged = walk.aged;
	struct xt_hot_age_walk hot = {
		.v6_from = xt_cfg_nr_cpus << (cfg->hot_bits & 31),
		.now = (__u32)xt_now(),
		.ctl = ctl,
	};
	ctl->hot_aged = 0;
	bpf_for_each_map_elem(&xt_hot_bitmap, xt_hot_age_bits, &hot, 0);
	return XDP_PASS;
}

/* A restored bucket over one the table has already (its source sent since
 * the state was made): each word keeps the later TAT of the two, by
 * compare-and-swap, so neither what the source used before nor since is
 * given back. */
static __always_inline void xt_restore_merge(struct xt_bucket *b, const struct xt_bucket *in)
{
	XT_UNROLL
	for (int p = 0; p < XT_MAX_LIMITS; p++) {
#pragma clang loop unroll(disable)
		for (int i = 0; i < XT_CAS_TRIES; i++) {
			const __u64 old = b->word[p], want = in->word[p];
			if (xt_word_gen(old) == xt_word_gen(want) && xt_diff(want >> XT_GEN_BITS, old >> XT_GEN_BITS) <= 0)
				break;
			if (__sync_val_compare_and_swap(&b->word[p], old, want) == old)
				break;
		}
	}
}

/* Takes what other hosts passed (XT_RESTORE_CHARGE) from each packet
 * window of xt_ctl's rule in a bucket: a word of the rule's generation, or
 * one the data path would bring to it (an older generation, or never
 * written), by compare-and-swap. A word of a generation the rule does not
 * know (it was replaced since the controller read it) is left, and counted.
 * Global functions, as xt_catch_up_slot: inlined into xt_restore's loop the
 * charge passed the verifier's 1M instructions processed. */
__attribute__((noinline)) int xt_charge_bucket(struct xt_bucket *b, __u64 n, __u64 now)
{
	__u32 zero = 0;
	struct xt_control *ctl = bpf_map_lookup_elem(&xt_ctl, &zero);
	if (!b || !ctl)
		return 0;
	const struct xt_rule *r = &ctl->rule;
	XT_UNROLL
	for (int p = 0; p < XT_MAX_LIMITS; p++) {
		if (!(r->limits & (1u << p)) || (r->byte_limits & (1u << p)))
			continue;
#pragma clang loop unroll(disable)
		for (int i = 0; i < XT_CAS_TRIES; i++) {
			const __u64 old = b->word[p];
			const __u8 gen = xt_word_gen(old);
			if (gen && gen != r->gen && gen != r->prev_gen) {
				ctl->stale++;
				break;
			}
			const __u64 cur = XT_REGEN(r, p, old, now);
			const __u64 next = xt_gcra_charge(&r->limit[p], cur, now, n, XT_CHARGE_DEBT_TICKS);
			if (__sync_val_compare_and_swap(&b->word[p], old, next) == old)
				break;
		}
	}
	return 0;
}

/* Puts one record in the bucket table as the data path would: merged into
 * the bucket its key has, else in a way claimed for it as a newcomer's.
 * charge: the record's passed packets are charged to the bucket (a fleet's
 * counts, for the rule in xt_ctl only); else the record is the bucket (a
 * snapshot's). A global function (see xt_send_event): the verifier checks
 * it once for both kinds. */
__attribute__((noinline)) int xt_put_record(struct xt_slot *in, __u64 now, int charge)
{
	__u32 zero = 0;
	struct xt_control *ctl = bpf_map_lookup_elem(&xt_ctl, &zero);
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!in || !ctl || !cfg)
		return 0;
	struct xt_place p;
	if ((charge && in->key.rule_id != ctl->rule.id) || !xt_place_of(&in->key, cfg, &p) || !xt_place_marks(&p)) {
		ctl->refused++;
		return 0;
	}
	const __u16 unit = xt_used_now(cfg, now);
	struct xt_found f = {};
	if (xt_find(&p, &in->key, &f) && f.way < XT_BUCKET_WAYS) {
		if (charge)
			xt_charge_bucket(&f.slot->bucket, in->bucket.passed_packets, now);
		else
			xt_restore_merge(&f.slot->bucket, &in->bucket);
		f.tags->way[f.way].half[XT_TAG_USED] = unit;
		ctl->merged++;
		return 0;
	}
	/* Another host's use of a source this one does not track takes a free
	 * or idle way, never one of a source in use here: a peer telling
	 * made-up sources would otherwise evict real ones, which came back
	 * with a fresh burst. */
	struct xt_slot *s = xt_claim_slot(&p, cfg, unit, !charge);
	if (!s) {
		ctl->refused++;
		return 0;
	}
	if (charge) {
		xt_bucket_init(&s->bucket, &ctl->rule, now);
		xt_charge_bucket(&s->bucket, in->bucket.passed_packets, now);
	} else {
		__builtin_memcpy(&s->bucket, &in->bucket, sizeof(s->bucket));
	}
	xt_key_slot(s, &in->key);
	ctl->restored++;
	return 0;
}

static long xt_restore_one(__u32 i, void *unused __attribute__((unused)))
{
	__u32 zero = 0;
	struct xt_control *ctl = bpf_map_lookup_elem(&xt_ctl, &zero);
	struct xt_slot *in = bpf_map_lookup_elem(&xt_restore_in, &i);
	if (!ctl || !in)
		return 1;
	const __u64 now = xt_now();
	if (ctl->restore_kind == XT_RESTORE_KNOWN) {
		struct xt_pkt pkt = {.family = in->key.family};
		__builtin_memcpy(pkt.addr, in->key.addr, sizeof(pkt.addr));
		/* Of IPv4 or IPv6 sources by /64 alone (snapshot.cpp). */
		if (xt_remember(&pkt, 0, in->key.per_len, in->bucket.word[0]))
			ctl->restored++;
		else
			ctl->refused++;
		return 0;
	}
	xt_put_record(in, now, ctl->restore_kind == XT_RESTORE_CHARGE);
	return 0;
}

/* Puts a snapshot's records (xt_restore_in, as xt_ctl's restore_kind says)
 * in the tables the way the data path would: a bucket in a way claimed by
 * compare-and-swap on its tag, as a newcomer's (tracked from then on, the
 * new-source budget untouched), or merged into the one the table has; a
 * known source through the data path's own xt_remember. */
SEC("xdp")
int xt_restore(struct xdp_md *ctx __attribute__((unused)))
{
	__u32 zero = 0;
	struct xt_control *ctl = bpf_map_lookup_elem(&xt_ctl, &zero);
	if (!ctl)
		return XDP_ABORTED;
	ctl->restored = ctl->merged = ctl->refused = ctl->stale = 0;
	const __u32 n = ctl->restore_count < XT_RESTORE_BATCH ? ctl->restore_count : XT_RESTORE_BATCH;
	bpf_loop(n, xt_restore_one, NULL, 0);
	return XDP_PASS;
}

/* Writes the program's clock into the first 8 bytes of the frame: the
 * controller runs it through BPF_PROG_TEST_RUN and reads them back, to learn
 * the tick rate and the current tick. */
SEC("xdp")
int xt_clock(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + sizeof(__u64) > data_end)
		return XDP_ABORTED;
	__u64 now = xt_now();
	__builtin_memcpy(data, &now, sizeof(now));
	return XDP_PASS;
}

#endif /* XTHROTTLE_CONTROL_BPF_H */
