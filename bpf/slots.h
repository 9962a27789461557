/* SPDX-License-Identifier: MIT */
/*
 * The bucket table's bookkeeping, pure: which way of a set holds a
 * fingerprint, which way a newcomer takes, and the `used` stamps that say
 * whether a slot's source is still tracked. Compiles for BPF and the host.
 */
#ifndef XTHROTTLE_SLOTS_H
#define XTHROTTLE_SLOTS_H

#include "pure.h"
#include "keys.h"
#include <xthrottle/abi.h>

/* The clock in units of 2^used_shift ticks, low 16 bits. */
XT_INLINE __u16 xt_used_now(const struct xt_config *cfg, __u64 now)
{
	return (__u16)(now >> (cfg->used_shift & 63));
}

/* How far ahead of a CPU's clock a stamp is taken for in use (a packet on
 * another CPU, which read the clock later, stamped it since this one read
 * it) rather than a cycle old, in units: a second's worth, 2 to 16384. The
 * data path and xt_age both use it. */
XT_INLINE __u16 xt_age_ahead(const struct xt_config *cfg)
{
	const __u32 second = cfg->hz >> (cfg->used_shift & 31);
	return (__u16)(second < 2 ? 2 : second > 16384 ? 16384 : second);
}

/* How many units before `unit` a slot was last used at `used`: 0 for a
 * stamp up to `ahead` units past this CPU's clock. Read as a cycle old,
 * such a stamp made a source another CPU had just metered untracked, or its
 * slot a newcomer's. Stamps wrap every 65536 units (the idle window is at
 * most 16384 of them), so a slot idle for a whole cycle would look used
 * again: the control program xt_age, which serve runs, keeps idle stamps
 * short of that. */
XT_INLINE __u16 xt_stamp_age(__u16 used, __u16 unit, __u16 ahead)
{
	return (__u16)(used - unit) <= ahead ? 0 : (__u16)(unit - used);
}

/* Whether that slot is still tracked: used within the idle window. */
XT_INLINE int xt_stamp_recent(__u16 used, __u16 unit, __u32 idle, __u16 ahead)
{
	return xt_stamp_age(used, unit, ahead) <= idle;
}

XT_INLINE int xt_used_recent(const struct xt_config *cfg, __u16 used, __u16 unit)
{
	return xt_stamp_recent(used, unit, cfg->used_idle, xt_age_ahead(cfg));
}

/* The idle window in ticks: used_idle units of 2^used_shift ticks. */
XT_INLINE __u64 xt_idle_ticks(const struct xt_config *cfg)
{
	return (__u64)cfg->used_idle << (cfg->used_shift & 63);
}

/* A bucket key's fingerprint, from its keyed hash h (its set is the top bits
 * of h, XT_TOP_BITS): never 0, which marks a free way. */
XT_INLINE __u16 xt_fp_of(__u64 h)
{
	return (__u16)h | 1;
}

/* A bucket key's mark (struct xt_set_marks), from its keyed hash h: bits
 * 16..23, which neither its fingerprint (the low 16) nor its set (the top
 * bits, 23 at most) is made of; never 0, which a way never written has. */
XT_INLINE __u8 xt_mark_of(__u64 h)
{
	const __u8 m = (__u8)(h >> 16);
	return m ? m : 1;
}

/* Whether any way of a set has mark m: eight ways at a time, a byte of
 * x ^ (m in every byte) being zero where the way has m ((x - 0x01..01) &
 * ~x & 0x80..80 is nonzero exactly when x has a zero byte). The last byte
 * is `spilled`, not a way: it is made nonzero first. */
XT_INLINE int xt_marks_hold(const struct xt_set_marks *s, __u8 m)
{
	/* Copied from an 8-aligned address (the struct's), so BPF loads each
	 * half in one 64-bit load rather than byte by byte. */
	__u64 lo, hi;
	__builtin_memcpy(&lo, (const __u64 *)s, sizeof(lo));
	__builtin_memcpy(&hi, (const __u64 *)s + 1, sizeof(hi));
	const __u64 ones = 0x0101010101010101ULL, want = m * ones;
	lo ^= want;
	hi = (hi ^ want) | 0x8000000000000000ULL;
	return ((((lo - ones) & ~lo) | ((hi - ones) & ~hi)) & (ones << 7)) != 0;
}

/* Whether a key of mark m may be in the table, by its home set's marks and
 * the next set's (looked at only if the home set ever spilled there). No
 * means the key is in neither set; yes, that its tags are worth reading. */
XT_INLINE int xt_marks_may_hold(const struct xt_set_marks *home, const struct xt_set_marks *next, __u8 m)
{
	return xt_marks_hold(home, m) || (home->spilled && xt_marks_hold(next, m));
}

XT_INLINE __u16 xt_tag_fp(const struct xt_set_tags *t, int way)
{
	return t->way[way].half[XT_TAG_FP];
}

XT_INLINE __u16 xt_tag_used(const struct xt_set_tags *t, int way)
{
	return t->way[way].half[XT_TAG_USED];
}

/* The first way at or after way `from` whose fingerprint is fp, or -1.
 * Every way is compared, last first, with no early exit: unrolled, that is
 * fifteen compares in a row, which measured faster than a loop (this runs
 * for every packet of an untracked source). */
XT_INLINE int xt_fp_way(const struct xt_set_tags *t, __u16 fp, int from)
{
	int found = -1;
	XT_UNROLL
	for (int i = XT_BUCKET_WAYS - 1; i >= 0; i--)
		if (xt_tag_fp(t, i) == fp && i >= from)
			found = i;
	return found;
}

/* A free way, or one whose source is no longer tracked (the first), or -1;
 * then, if lru is not NULL, *lru is the least recently used way (a stamp
 * ahead of the clock, xt_stamp_age, is the most recent). One pass does both:
 * a newcomer whose home set is full of sources in use reads its tags once.
 * *seen (if not NULL) is the tag word of the way returned (or of *lru) as
 * it was judged, one load of it: what the claim's compare-and-swap expects,
 * so that a way another CPU took since is not taken again. */
XT_INLINE int xt_free_way(const struct xt_set_tags *t, __u16 unit, __u32 idle, __u16 ahead, int *lru, __u32 *seen)
{
	int victim = 0;
	__u16 oldest = 0;
	__u32 victim_word = 0;
	XT_NO_UNROLL
	for (int i = 0; i < XT_BUCKET_WAYS; i++) {
		union xt_way_tag tag;
		tag.word = *(volatile const __u32 *)&t->way[i].word;
		const __u16 age = xt_stamp_age(tag.half[XT_TAG_USED], unit, ahead);
		if (!tag.half[XT_TAG_FP] || age > idle) {
			if (seen)
				*seen = tag.word;
			return i;
		}
		if (i == 0 || age > oldest) {
			oldest = age;
			victim = i;
			victim_word = tag.word;
		}
	}
	if (lru) {
		*lru = victim;
		if (seen)
			*seen = victim_word;
	}
	return -1;
}

/* Whether a newcomer of the home set ever went to the next set: then a
 * lookup looks there too, however long ago that was. A source there that
 * went quiet for the idle window keeps its slot, and its bucket when the
 * budget admits it again, as one in its home set does; a spill that
 * expired with the window lost it, and the source came back to a fresh
 * bucket, a spent quota full again. (The marks, which a lookup reads
 * first, keep most sources not there off the next set's tags.) */
XT_INLINE int xt_spilled(const struct xt_set_tags *home)
{
	return home->spilled != 0;
}

/* Where the fingerprint fp of a key whose home set's tags are `home` is,
 * after place `after` (XT_NOWHERE: from the start): XT_PLACE(0, way) in the
 * home set, XT_PLACE(1, way) in the next one, or XT_NOWHERE. `next` is the
 * next set's tags if the home set ever spilled (xt_spilled), else NULL. Two keys of one set can share a
 * fingerprint; the caller compares the slot's key and, if it is another's,
 * looks again after it. */
#define XT_PLACE(next, way) ((next) << 8 | (way))
#define XT_PLACE_NEXT(r) (((r) >> 8) & 1)
#define XT_PLACE_WAY(r) ((r) & 0xff)
#define XT_NOWHERE (-1)

/* The home set of a bucket key whose keyed hash is h (its top bits), in a
 * table of 2^bits sets (7 to 23: abi.h limits); and the set place r is in.
 * The data path, the controller and the tests all place keys through these. */
XT_INLINE __u32 xt_home_set(__u64 h, __u32 bits)
{
	return XT_TOP_BITS(h, bits & 31);
}

XT_INLINE __u32 xt_place_set(__u32 home, int r, __u32 bits)
{
	return (home + XT_PLACE_NEXT(r)) & ((1u << (bits & 31)) - 1);
}
/* Places a lookup tries. Fingerprints are 16 bits (15 of them random: 0
 * marks a free way): with about 8 keys a set, a set holds two keys sharing
 * one about once in 1,200, three about once in 20 million. */
#define XT_FIND_TRIES 3
XT_INLINE int xt_locate(const struct xt_set_tags *home, const struct xt_set_tags *next, __u16 fp, int after)
{
	/* Position after `after`, 0..2*XT_BUCKET_WAYS: the home set's ways, then the next's. */
	const int from = after < 0 ? 0 : XT_PLACE_NEXT(after) * XT_BUCKET_WAYS + XT_PLACE_WAY(after) + 1;
	if (from < XT_BUCKET_WAYS) {
		const int w = xt_fp_way(home, fp, from);
		if (w >= 0)
			return XT_PLACE(0, w);
	}
	if (!next)
		return XT_NOWHERE;
	const int w = xt_fp_way(next, fp, from - XT_BUCKET_WAYS);
	return w < 0 ? XT_NOWHERE : XT_PLACE(1, w);
}

/* Where a newcomer goes: a free or idle way of its home set; else one of
 * the next set (and the home set is marked as spilled); else the home
 * set's least recently used way. A home set whose first XT_SPILL_FROM ways
 * are in use sends it to the next set already where that set's first free
 * way comes earlier (ways are taken first free first, so that way's index
 * is about how many the set holds): the fuller of the two sets fills no
 * further while the other has room. Filling the home set to its last way
 * first, a key whose home set was full then found the next one filled by
 * that set's own keys and evicted, though the set after had room: a
 * botnet of three quarters of --max-sources overflowed a pair of sets in
 * about one table of thirty, and its sources there took turns evicting
 * each other, each back with a fresh burst (docs/design.md, "Twenty-first
 * round"). *seen: that way's tag word as judged (xt_free_way). */
#define XT_SPILL_FROM 10
XT_INLINE int xt_newcomer_place(struct xt_set_tags *home, const struct xt_set_tags *next, __u16 unit, __u32 idle,
				__u16 ahead, __u32 *seen)
{
	int lru = 0;
	const int w = xt_free_way(home, unit, idle, ahead, &lru, seen);
	if (w >= 0 && w < XT_SPILL_FROM)
		return XT_PLACE(0, w);
	__u32 there = 0;
	const int n = xt_free_way(next, unit, idle, ahead, NULL, &there);
	if (n >= 0 && (w < 0 || n < w)) {
		if (seen)
			*seen = there;
		home->spilled = unit | XT_SPILLED;
		return XT_PLACE(1, n);
	}
	return XT_PLACE(0, w >= 0 ? w : lru);
}

#endif /* XTHROTTLE_SLOTS_H */
