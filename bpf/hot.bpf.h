/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The hot cache: a source known to be over its limit until some tick (or
 * denied) is dropped at the start of classify, without a rule or bucket
 * lookup; its drops reach its bucket's counter later.
 *
 * Each CPU has its own part of one array (so no line is shared between
 * CPUs and nothing needs an atomic), of lines of four 16-byte slots: an
 * IPv4 source's entry is one slot, an IPv6 source's two (abi.h, xt_hot).
 * A source's entry is in the line the keyed hash of its address picks, and
 * a lookup reads that one line, if the line's bit in xt_hot_bitmap says it
 * may hold something. An entry holds the whole address, so it never drops
 * a source that is not the one it is for.
 *
 * An entry is named by its line and its slot (0 to 3; an IPv6 entry's is 0
 * or 2), and every access is computed from the two, masked: the verifier
 * follows IPv4 and IPv6 sources down the same instructions and must see
 * each access inside the line whichever family it thinks it has.
 */
#ifndef XTHROTTLE_HOT_BPF_H
#define XTHROTTLE_HOT_BPF_H

#include "maps.bpf.h"
#include "keys.h"
#include "gcra.h"
#include "bucket.bpf.h"
#include "hot.h"

/* More drops than this in one entry, and the next packet takes the slow
 * path, which adds them to the bucket. */
#define XT_HOT_PENDING_MAX 0xff
/* A wait longer than this many ticks is cached for this long only; the
 * slow path then caches the rest. The entry's tick is 32 bits: an entry is
 * live only while its tick is at most this far ahead, so one that outlived
 * its tick does not look live again when the 32 bits wrap (2^31 ticks
 * later), except in the last 2^24 ticks of every 2^32 — and the entry's own
 * source empties it when it next gets past it (xt_hot_settle). serve's
 * xt_age (control.bpf.h) gives an entry that gets that old without a read
 * an end 2^30 ticks ago, so only a host without serve keeps that window. */
#define XT_HOT_MAX_WAIT (1u << 24)

/* No entry: what xt_hot_lookup returns for a source it does not hold. */
#define XT_HOT_NONE (-1)

/* An entry's header: its slot of the line. */
static __always_inline struct xt_hot *xt_hot_at(struct xt_hot_set *set, int slot)
{
	return &set->slot[slot & 3];
}

/* The address of an IPv6 entry (the slot after its header's). */
static __always_inline __u8 *xt_hot_addr6(struct xt_hot_set *set, int slot)
{
	return (__u8 *)&set->slot[(slot & 2) | 1];
}

static __always_inline int xt_hot_is(struct xt_hot_set *set, int slot, const struct xt_pkt *pkt)
{
	const struct xt_hot *hot = xt_hot_at(set, slot);
	if (pkt->family == XT_FAMILY_V6) {
		const __u8 *addr = xt_hot_addr6(set, slot);
		return (hot->who & (XT_HOT_USED | XT_HOT_V6)) == (XT_HOT_USED | XT_HOT_V6) && hot->cls == pkt->cls &&
		       xt_load64(addr) == xt_load64(pkt->addr) && xt_load64(addr + 8) == xt_load64(pkt->addr + 8);
	}
	return (hot->who & (XT_HOT_USED | XT_HOT_V6)) == XT_HOT_USED && hot->cls == pkt->cls &&
	       *(const __u32 *)hot->addr == *(const __u32 *)pkt->addr;
}

/* The index of the line of the source and its packet's class: in this
 * CPU's part of its family's lines (abi.h, xt_hot_set). */
static __always_inline __u32 xt_hot_index(const struct xt_pkt *pkt, const struct xt_config *cfg)
{
	const __u32 bits4 = cfg->hot_bits & 31; /* XT_HOT_MIN_BITS to XT_HOT_MAX_BITS */
	const __u64 h = xt_hash_source(cfg->hash_key, pkt, pkt->cls);
	if (pkt->family == XT_FAMILY_V6) {
		const __u32 bits6 = (bits4 - XT_HOT_V6_SHIFT) & 31;
		return (xt_cfg_nr_cpus << bits4) + (bpf_get_smp_processor_id() << bits6 | XT_TOP_BITS(h, bits6));
	}
	return bpf_get_smp_processor_id() << bits4 | XT_TOP_BITS(h, bits4);
}

/* The word of xt_hot_bitmap holding line idx's bit (1 << (idx & 63)): set
 * while the line may hold an entry that drops its source or has drops to
 * settle. A lookup reads the line only if the bit is set, so a source of a
 * spoofed flood, never in the cache, costs a read of the bitmap (8 KiB a
 * CPU for the default table's IPv4 lines) instead of a line of the cache
 * (4 MiB a CPU: a miss). */
static __always_inline __u64 *xt_hot_bits(__u32 idx)
{
	__u32 word = idx >> 6;
	return bpf_map_lookup_elem(&xt_hot_bitmap, &word);
}

/* The slot of set holding pkt's source, or XT_HOT_NONE. */
static __always_inline int xt_hot_find(struct xt_hot_set *set, const struct xt_pkt *pkt)
{
	_Static_assert(XT_HOT_V4_WAYS == 4 && XT_HOT_V6_WAYS == 2, "xt_hot_find looks at four slots");
	if (pkt->family == XT_FAMILY_V6)
		return xt_hot_is(set, 0, pkt) ? 0 : xt_hot_is(set, 2, pkt) ? 2 : XT_HOT_NONE;
	return xt_hot_is(set, 0, pkt)	? 0
	       : xt_hot_is(set, 1, pkt) ? 1
	       : xt_hot_is(set, 2, pkt) ? 2
	       : xt_hot_is(set, 3, pkt) ? 3
					: XT_HOT_NONE;
}

/* xt_hot_find for the neighbour line: a global function, so that the
 * compares are not inlined twice (which took the object past its
 * instruction budget); a call only for a source not in its own line. */
__attribute__((noinline)) int xt_hot_find_next(struct xt_hot_set *set, const struct xt_pkt *pkt)
{
	return set && pkt ? xt_hot_find(set, pkt) : XT_HOT_NONE;
}

/* Whether an entry still drops its source at tick now, in this epoch. An
 * entry for good checks the whole epoch: it would otherwise come back
 * every 65,536 rule changes. One with a tick lives XT_HOT_MAX_WAIT ticks
 * at most (and in practice half the idle window: act.bpf.h). */
static __always_inline int xt_hot_live(const struct xt_hot *hot, __u32 epoch, __u64 now)
{
	if (hot->epoch != (__u16)epoch)
		return 0;
	if (hot->who & XT_HOT_FOREVER)
		return hot->until == epoch;
	return (__u32)(hot->until - (__u32)now - 1) < XT_HOT_MAX_WAIT;
}

/* Whether the source's entry drops this packet of pkts wire packets without
 * further ado. */
static __always_inline int xt_hot_drops(const struct xt_hot *hot, __u32 epoch, __u64 now, __u32 pkts)
{
	return xt_hot_live(hot, epoch, now) && hot->pending + pkts <= XT_HOT_PENDING_MAX;
}

/* The tick of an entry's last drop, as far as it knows: now while it still
 * drops (an entry settles while live only when its pending count is full
 * or the rules changed, both right after a drop), else the last tick it
 * dropped for. A source that stopped sending while held counts as dropped
 * to the end of its hold: the entry has no room for the tick of each drop. */
static __always_inline __u32 xt_hot_last_hit(const struct xt_hot *hot, __u64 now)
{
	if (!(hot->who & XT_HOT_FOREVER) && (__s32)((__u32)now - hot->until) >= 0)
		return hot->until - 1;
	return (__u32)now;
}

/* How far ahead of now a bucket's last drop may be (xt_note_drop): the
 * last tick of a hold, which act.bpf.h makes half the idle window at most,
 * and another CPU's clock. */
static __always_inline __u32 xt_drop_reach(const struct xt_config *cfg)
{
	return (__u32)(xt_idle_ticks(cfg) / 2) + XT_SKEW_TICKS;
}

/* Whether a slot holds a live entry. An emptied one keeps its tick and
 * epoch, and xt_age does not walk it: read by xt_hot_live alone, it would
 * take the line's room for 2^24 ticks of every 2^32. */
static __always_inline int xt_hot_holds(const struct xt_hot *hot, __u32 epoch, __u64 now)
{
	return (hot->who & XT_HOT_USED) && xt_hot_live(hot, epoch, now);
}

/* Whether a slot holds neither a live entry nor drops to settle. */
static __always_inline int xt_hot_slot_spent(struct xt_hot_set *set, int slot, __u32 epoch, __u64 now)
{
	const struct xt_hot *hot = xt_hot_at(set, slot);
	return !hot->pending && !xt_hot_holds(hot, epoch, now);
}

/* The source's slot in the line at idx (set), 0 to 3, or in its neighbour
 * (idx ^ 1: the other line of the pair), 4 to 7, with *line that line; or
 * XT_HOT_NONE. A source whose line was full when it was filled went to the
 * neighbour, looked in while the neighbour's bit is set. A line found
 * holding nothing live nor any drops to settle has its bit cleared: it is
 * not read again until filled. */
static __always_inline int xt_hot_lookup(struct xt_hot_set *set, __u32 idx, const struct xt_pkt *pkt, __u32 epoch,
					 __u64 now, struct xt_hot_set **line)
{
	__u64 *bits = xt_hot_bits(idx); /* the pair's two bits are in one word */
	const __u64 bit = 1ull << (idx & 63), other = 1ull << ((idx ^ 1) & 63);
	if (!set || !bits || !(*bits & (bit | other)))
		return XT_HOT_NONE;
	if (*bits & bit) {
		const int slot = xt_hot_find(set, pkt);
		if (slot != XT_HOT_NONE)
			return slot;
		/* The slots that are headers: all four of an IPv4 line, 0 and
		 * 2 of an IPv6 line (1 and 3 are addresses). */
		const int v4 = pkt->family != XT_FAMILY_V6;
		if (xt_hot_slot_spent(set, 0, epoch, now) && xt_hot_slot_spent(set, 2, epoch, now) &&
		    (!v4 || (xt_hot_slot_spent(set, 1, epoch, now) && xt_hot_slot_spent(set, 3, epoch, now)))) {
			/* This CPU's part: no other writer. The spent entries are
			 * emptied too: a fill, which does not look for the
			 * source's own entry while the bit is clear, must not
			 * leave a second. (An IPv6 line's addresses lose two
			 * bytes: their entries are empty.) */
			for (int s = 0; s < 4; s++)
				xt_hot_at(set, s)->who = 0;
			*bits &= ~bit;
		}
	}
	if (!(*bits & other))
		return XT_HOT_NONE;
	__u32 nidx = idx ^ 1;
	struct xt_hot_set *n = bpf_map_lookup_elem(&xt_hot, &nidx);
	if (!n)
		return XT_HOT_NONE;
	const int slot = xt_hot_find_next(n, pkt);
	if (slot == XT_HOT_NONE)
		return XT_HOT_NONE;
	*line = n;
	return slot | 4;
}

/* Whether an entry's drops (filled at epoch `filled`) belong to the rule
 * that has slot rule_id now: the rule took the slot at or before that epoch
 * (a rule keeps its id when it is replaced, and its buckets with it). */
static __always_inline int xt_hot_owner_is_current(__u32 rule_id, __u32 filled)
{
	const struct xt_rule_state *st = bpf_map_lookup_elem(&xt_rule_state, &rule_id);
	return st && (__s32)(filled - st->created_epoch) >= 0;
}

/* Adds the pending drops of the entry at slot of line `line` to its source's bucket
 * counter, whatever has changed since (counters never go backwards), unless
 * the rule id has passed to another rule meanwhile: that rule's buckets are
 * not the source's. A global function (see xt_send_event): taken when an
 * entry changes hands. */
__attribute__((noinline)) int xt_hot_flush(__u32 line, int slot, __u32 epoch, __u64 now)
{
	struct xt_hot_set *set = bpf_map_lookup_elem(&xt_hot, &line);
	if (!set)
		return 0;
	struct xt_hot *hot = xt_hot_at(set, slot);
	if (!hot->pending)
		return 0;
	int flushed = 0;
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	const __u32 rule_id = hot->who & XT_HOT_RULE;
	const __u32 filled = xt_hot_filled(hot, epoch);
	/* A deny's or a ban's drops belong to no bucket (counted as such when
	 * they were made): a limit that took the rule's id since has none of
	 * them. */
	if (cfg && !(hot->who & XT_HOT_DENIED) && (filled == epoch || xt_hot_owner_is_current(rule_id, filled))) {
		struct xt_pkt src = {.family = XT_FAMILY_V4};
		if (hot->who & XT_HOT_V6) {
			src.family = XT_FAMILY_V6;
			__builtin_memcpy(src.addr, xt_hot_addr6(set, slot), sizeof(src.addr));
		} else {
			__builtin_memcpy(src.addr, hot->addr, sizeof(hot->addr));
		}
		struct xt_bucket_key key;
		xt_bucket_key_for(&src, rule_id, hot->per_len, &key);
		struct xt_bucket *b = xt_bucket_find(&key, cfg);
		if (b) {
			__sync_fetch_and_add(&b->dropped_packets, hot->pending);
			xt_note_drop(b, xt_hot_last_hit(hot, now), (__u32)now, xt_drop_reach(cfg));
			flushed = 1;
		}
	}
	hot->pending = 0;
	return flushed;
}

/* Counts a packet the hot cache dropped. */
static __always_inline void xt_hot_hit(struct xt_hot *hot, __u32 pkts)
{
	hot->pending += pkts;
}

/* The first slot of set whose entry no longer drops, or XT_HOT_NONE. */
static __always_inline int xt_hot_free_slot(struct xt_hot_set *set, int v6, __u32 epoch, __u64 now)
{
	if (!xt_hot_holds(xt_hot_at(set, 0), epoch, now))
		return 0;
	if (!v6 && !xt_hot_holds(xt_hot_at(set, 1), epoch, now))
		return 1;
	if (!xt_hot_holds(xt_hot_at(set, 2), epoch, now))
		return 2;
	if (!v6 && !xt_hot_holds(xt_hot_at(set, 3), epoch, now))
		return 3;
	return XT_HOT_NONE;
}

/* What xt_hot_fill is told besides the source, the tick and the tick it is
 * dropped until, in one word (a global function takes five arguments): the
 * epoch, the rule's id and per-source prefix length, the source's own slot
 * (XT_HOT_NONE: none) and how it is dropped. */
#define XT_FILL_LIMIT 0  /* over its limit */
#define XT_FILL_DENIED 1 /* by a deny rule */
#define XT_FILL_BANNED 2 /* banned (counted apart: per_len XT_HOT_BANNED) */
static __always_inline __u64 xt_fill_word(__u32 epoch, const struct xt_rule *rule, int slot, int how)
{
	return (__u64)epoch | (__u64)(rule->id & XT_HOT_RULE) << 32 | (__u64)rule->per_len << 44 |
	       (__u64)(slot & 15) << 52 | (__u64)(how & 3) << 56;
}

/* Remember that pkt's source is dropped (denied, or over its limit) until
 * tick `until` (XT_NEVER: until the epoch changes), in its own entry if it
 * has one, else in an entry that no longer drops anything, in its line or
 * else the other line of its pair. An entry still
 * dropping another source is left to it: two heavy sources sharing an entry
 * would otherwise evict each other on every packet and both pay the slow
 * path. A global function: inlined at its three callers, the four slots'
 * choices and the two families' addresses took the program past its
 * instruction budget (tests/bpf/test_verifier.cpp). 1 if it filled an
 * entry, 0 if there was no room; XT_FILL_FLUSH | the slot if the entry it
 * chose has drops to flush first, which it leaves to its caller
 * (xt_hot_remember): xt_hot_flush's frame on top of its own would take the
 * program's stack past the verifier's 512 bytes. */
#define XT_FILL_FLUSH 0x10 /* with the slot, 0 to 7 as xt_hot_lookup's */
__attribute__((noinline)) int xt_hot_fill(const struct xt_pkt *pkt, __u64 now, __u64 until, __u64 word)
{
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!pkt || !cfg)
		return 0;
	const __u32 epoch = (__u32)word;
	const __u16 rule_id = (word >> 32) & XT_HOT_RULE;
	const __u8 per_len = word >> 44;
	const int how = (word >> 56) & 3;
	int slot = (word >> 52) & 15;
	const __u32 idx = xt_hot_index(pkt, cfg); /* the same CPU as the caller's */
	__u32 nidx = idx ^ 1;
	struct xt_hot_set *own = bpf_map_lookup_elem(&xt_hot, &idx);
	struct xt_hot_set *n = bpf_map_lookup_elem(&xt_hot, &nidx);
	__u64 *bits = xt_hot_bits(idx);
	if (!own || !n || !bits)
		return 0;
	const int v6 = pkt->family == XT_FAMILY_V6;
	if (slot > 7) {
		/* The first slot whose entry no longer drops (it may have drops
		 * to settle: they are flushed first), in the source's line,
		 * else in its neighbour. */
		slot = xt_hot_free_slot(own, v6, epoch, now);
		if (slot == XT_HOT_NONE) {
			slot = xt_hot_free_slot(n, v6, epoch, now);
			if (slot == XT_HOT_NONE)
				return 0;
			slot |= 4;
		}
	}
	struct xt_hot_set *set = slot & 4 ? n : own;
	const __u32 at = slot & 4 ? nidx : idx;
	struct xt_hot *hot = xt_hot_at(set, slot);
	if (hot->pending) /* a former source's drops, or its own under an older rule or epoch */
		return XT_FILL_FLUSH | slot;
	slot &= 3;
	__u16 who = XT_HOT_USED | rule_id;
	if (v6)
		who |= XT_HOT_V6;
	if (how != XT_FILL_LIMIT)
		who |= XT_HOT_DENIED;
	if (until == XT_NEVER) {
		who |= XT_HOT_FOREVER;
		until = epoch; /* the whole epoch, for xt_hot_live */
	} else if (until - now > XT_HOT_MAX_WAIT) {
		until = now + XT_HOT_MAX_WAIT;
	}
	if (v6)
		__builtin_memcpy(xt_hot_addr6(set, slot), pkt->addr, sizeof(pkt->addr));
	else
		__builtin_memcpy(hot->addr, pkt->addr, sizeof(hot->addr));
	hot->until = (__u32)until;
	hot->epoch = (__u16)epoch;
	hot->cls = pkt->cls;
	hot->per_len = how == XT_FILL_BANNED ? XT_HOT_BANNED : per_len;
	hot->who = who;
	*bits |= 1ull << (at & 63);
	return 1;
}

/* xt_hot_fill, and the flush it may ask for first. A global function too:
 * inlined at its three callers it took the program's own stack 32 bytes
 * further (clang 19), past the verifier's 512 with the deepest calls. */
__attribute__((noinline)) int xt_hot_remember(__u32 idx, const struct xt_pkt *pkt, __u64 now, __u64 until, __u64 word)
{
	const int r = xt_hot_fill(pkt, now, until, word);
	if (!(r & XT_FILL_FLUSH))
		return r;
	xt_hot_flush(idx ^ ((r >> 2) & 1), r & 3, (__u32)word, now);
	return xt_hot_fill(pkt, now, until, (word & ~(15ull << 52)) | (__u64)(r & 7) << 52);
}

/* The hot cache dropped this source's packets: they go to its bucket b (this
 * one, unless a rule change moved the source to another bucket since),
 * before b meters the packet. slot is the source's entry in set, or
 * XT_HOT_NONE. An entry spent and settled is emptied: it must not look live
 * again when its tick wraps (XT_HOT_MAX_WAIT). */
static __always_inline void xt_hot_settle(struct xt_hot_set *set, __u32 line, int slot, const struct xt_rule *rule,
					  const struct xt_config *cfg, struct xt_bucket *b, __u32 epoch, __u64 now)
{
	if (slot == XT_HOT_NONE)
		return;
	struct xt_hot *hot = xt_hot_at(set, slot);
	if (hot->pending) {
		const __u32 filled = xt_hot_filled(hot, epoch);
		if ((hot->who & (XT_HOT_RULE | XT_HOT_DENIED)) == rule->id && hot->per_len == rule->per_len &&
		    (filled == epoch || xt_hot_owner_is_current(rule->id, filled))) {
			__sync_fetch_and_add(&b->dropped_packets, hot->pending);
			hot->pending = 0;
			/* Another CPU may have recorded a later drop: never move
			 * it back, or the source could look released while
			 * still dropped. */
			xt_note_drop(b, xt_hot_last_hit(hot, now), (__u32)now, xt_drop_reach(cfg));
		} else {
			xt_hot_flush(line, slot, epoch, now);
		}
	}
	if (!xt_hot_live(hot, epoch, now))
		hot->who = 0;
}

#endif /* XTHROTTLE_HOT_BPF_H */
