/* SPDX-License-Identifier: MIT */
/*
 * One limit metered as a GCRA over one 64-bit word (see struct xt_limit in
 * abi.h): exact integer arithmetic, no rounding, so no drift; differences
 * modulo 2^60, so no overflow however long a bucket stays idle. Pure:
 * compiles for the BPF target and the host, where the unit tests and the
 * fuzzer check it against a classic token bucket.
 */
#ifndef XTHROTTLE_GCRA_H
#define XTHROTTLE_GCRA_H

#include "pure.h"
#include <xthrottle/abi.h>

#define XT_TAT_MASK ((1ULL << XT_TAT_BITS) - 1)
#define XT_NEVER (~0ULL)

/* Whether the 32-bit tick `at` is `gap` ticks or more before `now`, where
 * `at` may be up to `ahead` ticks past now (another CPU's clock, the end of
 * a hold). Unsigned, so that an `at` 2^31 to 2^32 ticks back (24.9 to 49.7
 * days at HZ=1000: a source back after a month's ban or silence) reads as
 * long ago; compared signed, it read as ahead, and what it ends (a
 * throttle, a saturation) never ended. */
XT_INLINE int xt_ticks_since(__u32 now, __u32 at, __u32 gap, __u32 ahead)
{
	const __u32 back = now - at;
	return back >= gap && back <= ~ahead;
}

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

/* A word of generation gen as it is; one of another generation (or never
 * written) as a full bucket of that generation, nothing converted: the
 * total's word and the fair word (bucket.bpf.h). */
XT_INLINE __u64 xt_word_or_full(__u64 word, const struct xt_limit *l, __u8 gen, __u64 now)
{
	return xt_word_gen(word) == gen ? word : xt_full_word(l, now, gen);
}

/* Tokens (whole units: packets or bytes) available at now. */
XT_INLINE __u64 xt_available(const struct xt_limit *l, __u64 word, __u64 now)
{
	return l->cost ? (l->cap - xt_debt(l, word, now)) / l->cost : 0;
}

/* Whether two limits are the same window (the same units, rate and burst). */
XT_INLINE int xt_same_limit(const struct xt_limit *a, const struct xt_limit *b)
{
	return a->fill == b->fill && a->cost == b->cost && a->cap == b->cap;
}

/* --over ecn's overdraft of a limit whose cap holds one (1.5 bursts): half
 * a burst, which only ECN-capable packets may take (meter.h). */
XT_INLINE __u64 xt_overdraft(const struct xt_limit *l)
{
	return l->cap / 3;
}

/* Brings a word written under an older version of the rule to generation gen.
 * From prev_gen: the whole tokens it had when the rule was replaced (tick
 * `at`) carry over into the new units, up to the new burst (a fraction of one
 * token is lost, but for a window that did not change, which keeps its word
 * whole), and refill under the new limit from then on. From anything older,
 * the bucket starts full. An overdraft (--over ecn) is no token: prev_keep
 * of prev's cap and keep of l's are the two versions' overdrafts (0 where
 * one did not mark), so what carries over is the room for any packet (a
 * bucket in the old overdraft has none), and the overdraft apart: what was
 * left of it for a bucket in the old one where both versions mark, else a
 * whole one where the new version marks. */
XT_INLINE __u64 xt_regen(__u64 word, const struct xt_limit *l, const struct xt_limit *prev,
			 __u8 gen, __u8 prev_gen, __u64 at, __u64 now, __u64 prev_keep, __u64 keep)
{
	if (xt_word_gen(word) == gen)
		return word;
	if (xt_word_gen(word) != prev_gen || !prev->cost || !l->cost)
		return xt_full_word(l, now, gen);
	/* The same window as before (another of the rule's options changed):
	 * its word as it was, the fraction of its next token too, which under
	 * a slow window of burst 1 is nearly a whole period. */
	if (xt_same_limit(prev, l) && prev_keep == keep)
		return xt_word(word >> XT_GEN_BITS, gen);
	if (at > now)
		at = now;
	/* A word the old rule wrote after tick `at` (the controller walks the
	 * table before installing the change, which can take seconds) is ahead
	 * of it by more than the old burst: its tokens are taken as of now,
	 * never as a fresh burst. */
	__s64 ahead = xt_diff(word >> XT_GEN_BITS, xt_scaled(prev, at));
	if (ahead > 0 && (__u64)ahead > prev->cap)
		at = now;
	const __u64 debt = xt_debt(prev, word, at), left = prev->cap - debt;
	const __u64 whole = left > prev_keep ? (left - prev_keep) / prev->cost : 0;
	const __u64 room = whole >= (l->cap - keep) / l->cost ? l->cap - keep : whole * l->cost;
	/* A bucket in the old overdraft (no room left) keeps what is left of
	 * it, in whole units; any other has the new one whole (one kept at
	 * the old one's size took the difference out of the room where the
	 * burst grew: the bucket has one level). */
	__u64 over = keep;
	if (prev_keep && left < prev_keep) {
		const __u64 units = left / prev->cost;
		over = units >= keep / l->cost ? keep : units * l->cost;
	}
	return xt_word(xt_scaled(l, at) + (l->cap - room - over), gen);
}

/* xt_regen under rule r, of its limit p: out of line, since only a word of
 * another generation takes it (once a bucket and replacement), and inlined at
 * each of its uses (a limit each, unrolled) it cost the program 60-odd
 * instructions more than the budget allowed. */
XT_OUT_OF_LINE __u64 xt_regen_of(const struct xt_rule *r, int p, __u64 word, __u64 now)
{
	if (p < 0 || p >= XT_MAX_LIMITS)
		return word;
	const struct xt_limit *l = &r->limit[p], *prev = &r->prev[p];
	return xt_regen(word, l, prev, r->gen, r->prev_gen, r->replaced_at, now,
			(r->flags & XT_RULE_PREV_ECN) ? xt_overdraft(prev) : 0,
			(r->flags & XT_RULE_ECN) ? xt_overdraft(l) : 0);
}

/* xt_regen of a bucket's word[p] under rule r: the word read once. */
XT_INLINE __u64 xt_regen_word(const struct xt_rule *r, int p, __u64 word, __u64 now)
{
	return xt_word_gen(word) == r->gen ? word : xt_regen_of(r, p, word, now);
}
#define XT_REGEN(r, p, word, now) xt_regen_word(r, p, word, now)

/* Can `units` (one packet, or len bytes) pass at now, leaving at least
 * `keep` of the cap untaken (--over ecn's overdraft, which only
 * ECN-capable packets may use: meter.h)? If so, *next is the word after
 * taking them; if not, nothing is taken. */
XT_INLINE int xt_gcra_keep(const struct xt_limit *l, __u64 word, __u64 now, __u64 units, __u64 keep, __u64 *next)
{
	__u64 debt = xt_debt(l, word, now);
	__u64 need = units * l->cost;
	if (need + keep > l->cap - debt)
		return 0;
	*next = xt_word(xt_scaled(l, now) + debt + need, xt_word_gen(word));
	return 1;
}

XT_INLINE int xt_gcra(const struct xt_limit *l, __u64 word, __u64 now, __u64 units, __u64 *next)
{
	return xt_gcra_keep(l, word, now, units, 0, next);
}

/* Takes `units` more from a word (another host's use of the same limit:
 * XT_RESTORE_CHARGE), into debt past empty of at most debt_ticks' refill,
 * which xt_debt reads as empty for as long as it lasts (debt_ticks must stay
 * below XT_SKEW_TICKS). A full bucket (a TAT in the past, or past the
 * horizon) is charged from now. The word keeps its generation. */
XT_INLINE __u64 xt_gcra_charge(const struct xt_limit *l, __u64 word, __u64 now, __u64 units, __u64 debt_ticks)
{
	if (!l->cost)
		return word;
	const __u64 s = xt_scaled(l, now);
	const __u64 most = l->cap + debt_ticks * l->fill;
	const __s64 d = xt_diff(word >> XT_GEN_BITS, s);
	__u64 owed = 0;
	if (d > 0 && ((__u64)d <= l->cap || (__u64)d - l->cap <= XT_SKEW_TICKS * l->fill))
		owed = (__u64)d;
	if (owed > most)
		owed = most;
	if (units > (most - owed) / l->cost)
		owed = most;
	else
		owed += units * l->cost;
	return xt_word(s + owed, xt_word_gen(word));
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

#endif /* XTHROTTLE_GCRA_H */
