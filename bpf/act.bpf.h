/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Stage 4, act: what becomes of a packet once it is metered. One that
 * passes may release its source (an event, XT_RELEASE_SECONDS after its last
 * drop); one that fails throttles it (an event at the first drop), is
 * counted in its bucket, passes anyway under a dry-run rule, and is
 * otherwise dropped, its source remembered in the hot cache until the tick
 * its next token is due.
 */
#ifndef XTHROTTLE_ACT_BPF_H
#define XTHROTTLE_ACT_BPF_H

#include "maps.bpf.h"
#include "events.bpf.h"
#include "hot.bpf.h"
#include "meter.h"
#include "known.bpf.h"
#include "count.bpf.h"
#include "frame.bpf.h"
#include "ecn.h"

/* --ban-after: a source over its limit without a break for that long is
 * banned for --ban-for (its bucket's prefix, in the ban table), and told.
 * A packet gets here only if no ban in force covered it when it read the
 * ban table, before metering (while a rule can ban). Every CPU holding a
 * source of the bucket comes off its hold at the same tick, though, and
 * each such packet that read the table before the first ban went in
 * banned again: one ban told two to N times, written over each time. The
 * ban goes in only where there is none: one in force now is another
 * CPU's (or the operator's), and is taken as it is, untold; an ended one
 * of this prefix (the lookup removes those it meets) is written over.
 * Returns the tick the ban ends, or 0. */
static __always_inline __u64 xt_ban_source(const struct xt_bucket_key *bkey, struct xt_bucket *b,
					   const struct xt_rule *rule, const struct xt_config *cfg, __u64 now)
{
	/* Signed: since has its low bit set, so it may be a tick ahead; now
	 * with its low bit set too, so that the throttle's first drop is 0
	 * ticks into it on an even tick as on an odd one (--ban-after 0 bans
	 * there). */
	const __u32 since = b->throttled_since;
	const __s32 over = (__s32)(((__u32)now | 1) - since);
	if (!since || over < (__s32)((__u32)rule->ban_after * cfg->hz))
		return 0;
	struct xt_ban_key key = {
		.prefixlen = XT_BAN_KEY_BITS + bkey->per_len,
		.family = bkey->family,
	};
	__builtin_memcpy(key.addr, bkey->addr, sizeof(key.addr));
	const struct xt_ban ban = {
		.until = now + (__u64)rule->ban_for * cfg->hz,
		.since = now,
		.prefixlen = key.prefixlen,
		.rule = rule->id + 1,
	};
	if (bpf_map_update_elem(&xt_bans, &key, &ban, BPF_NOEXIST) != 0) {
		const struct xt_ban *in_force = bpf_map_lookup_elem(&xt_bans, &key);
		if (in_force && (__s64)(in_force->until - now) > 0)
			return in_force->until;
		/* Not in the table (full): no ban, which nobody could see or lift. */
		if (bpf_map_update_elem(&xt_bans, &key, &ban, BPF_ANY) != 0)
			return 0;
	}
	/* How long it was over, as the test above took it: from now, the
	 * throttle's start a tick ahead of it read -1, 2^32 - 1 ticks. */
	xt_emit(bkey, b, rule, now, XT_EMIT_WHAT(XT_EVENT_BANNED, over < 0 ? 0 : (__u32)over));
	return ban.until;
}

/* How long the hot cache holds a banned source: to the ban's end, but half
 * the idle window at most, as a limit's hold (xt_act). An entry keeps the
 * low 16 bits of its epoch: one held to the end of an hour's ban that was
 * lifted looked live again 65,536 publishes later (bans and rules changed
 * by hand or by a fleet), and dropped its source as banned until the
 * lifted ban's end. Past the hold, the ban table is asked again. */
static __always_inline __u64 xt_ban_hold(const struct xt_config *cfg, __u64 now, __u64 until)
{
	const __u64 most = xt_idle_ticks(cfg) / 2;
	return most && until - now > most ? now + most : until;
}

/* The reason a metered packet is counted under. */
static __always_inline enum xt_reason xt_act(int conforms, struct xt_bucket *b, const struct xt_bucket_key *bkey,
					     const struct xt_rule *rule, const struct xt_config *cfg,
					     __u32 hot_idx, int hot_slot,
					     const struct xt_pkt *pkt,
					     __u32 epoch, __u64 now,
					     __u32 pkts)
{
	if (conforms == 1) {
		__sync_fetch_and_add(&b->passed_packets, pkts);
		/* Released: passing again, a while after the last drop. Of the CPUs
		 * that see it, the one whose swap wins tells. The last drop may be
		 * ahead, by another CPU's clock or to the end of a hold
		 * (xt_note_drop's reach). */
		__u32 since = b->throttled_since;
		if (since && xt_ticks_since((__u32)now, b->last_drop, cfg->hz * XT_RELEASE_SECONDS, xt_drop_reach(cfg)) &&
		    __sync_val_compare_and_swap(&b->throttled_since, since, 0) == since)
			xt_emit(bkey, b, rule, now, XT_EMIT_WHAT(XT_EVENT_RELEASED, (__u32)now - since));
		xt_behaved(pkt, rule, b, now);
		return XT_PASS_LIMIT;
	}
	__sync_fetch_and_add(&b->dropped_packets, pkts);
	/* Over the total: its own limits had room, so no hot-cache entry (the
	 * total's next tokens may be its), and no drop of its own: a throttle
	 * (over its own limit) is not kept going by the total's drops, which
	 * would have banned a source that stayed within its limit. */
	if (conforms == XT_TAKE_OVER_TOTAL)
		return rule->flags & XT_RULE_DRY_RUN ? XT_PASS_DRY_RUN : XT_DROP_TOTAL;
	/* Its limits not asked, every swap lost to other CPUs: this packet
	 * only, the source not taken to be over them. */
	if (conforms == XT_TAKE_CONTENDED)
		return rule->flags & XT_RULE_DRY_RUN ? XT_PASS_DRY_RUN : XT_DROP_LIMIT;
	const __u32 reach = xt_drop_reach(cfg);
	xt_note_drop(b, (__u32)now, (__u32)now, reach);
	if (!b->throttled_since && __sync_val_compare_and_swap(&b->throttled_since, 0, (__u32)now | 1) == 0)
		xt_emit(bkey, b, rule, now, XT_EMIT_WHAT(XT_EVENT_THROTTLED, 0));
	if (rule->flags & XT_RULE_DRY_RUN)
		return XT_PASS_DRY_RUN;
	if (rule->ban_for) {
		const __u64 until = xt_ban_source(bkey, b, rule, cfg, now);
		if (until) {
			xt_hot_remember(hot_idx, pkt, now, xt_ban_hold(cfg, now, until),
					xt_fill_word(epoch, rule, hot_slot, XT_FILL_BANNED));
			return XT_DROP_BANNED;
		}
	}
	__u64 wait = xt_meter_wait(rule, b, now, xt_min_frame(rule->family, xt_cfg_link));
	/* Remembered for half the idle window at most: the hot cache's drops
	 * never reach the slot's `used` stamp, which only this slow path
	 * refreshes, so a source held longer would look idle while it sends:
	 * a newcomer could take its slot (it would come back with a full
	 * burst), and under a saturated budget its first packet within its
	 * limit would be refused as a new source's. */
	const __u64 most = xt_idle_ticks(cfg) / 2;
	if (wait && wait != XT_NEVER && most && wait > most)
		wait = most;
	if (wait && wait != XT_NEVER) {
		/* The bucket counts as dropping to the end of the hold, as a
		 * settled entry does (xt_hot_last_hit): the hold's drops reach
		 * the bucket only when its own entry settles, and a packet of
		 * the bucket from elsewhere (another source of its --per
		 * prefix, another CPU, another class) would otherwise find the
		 * last drop a hold ago and tell the source released while it is
		 * dropped, its --ban-after started over. */
		xt_note_drop(b, (__u32)(now + wait - 1), (__u32)now, reach);
	}
	if (wait)
		xt_hot_remember(hot_idx, pkt, now, wait == XT_NEVER ? XT_NEVER : now + wait,
				xt_fill_word(epoch, rule, hot_slot, XT_FILL_LIMIT));
	return XT_DROP_LIMIT;
}

/* --over ecn: a packet of rule that has just passed against bucket b is
 * marked Congestion Experienced if it is ECN-capable and xt_meter_mark
 * (meter.h) says so, and counted as marked. A global function (see
 * xt_send_event), called only for the ECN-capable packets of rules that
 * mark. */
__attribute__((noinline)) int xt_mark_ce(struct xdp_md *ctx, const struct xt_rule *rule, struct xt_bucket *b,
					 const struct xt_frame *f, __u64 now)
{
	if (!ctx || !rule || !b || !f)
		return 0;
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!cfg)
		return 0;
	__u64 w[XT_MAX_LIMITS];
	XT_UNROLL
	for (int p = 0; p < XT_MAX_LIMITS; p++)
		w[p] = b->word[p];
	const __u64 rnd = (__u64)bpf_get_prandom_u32() << 32 | bpf_get_prandom_u32();
	if (!xt_meter_mark(rule, w, now, f->len, f->pkts, cfg->hz, rnd))
		return 0;
	/* The parser found the IP header here, in the frame's first buffer;
	 * bounded again for the verifier (two VLAN tags at most: 22 bytes). */
	__u32 off = f->pkt.l3_off;
	if (off > 64)
		return 0;
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *l3 = data + off;
	XT_OPAQUE(l3);
	/* The ECN bits and the IPv4 checksum lie in the first 12 bytes. */
	if (l3 + 12 > (__u8 *)(long)ctx->data_end)
		return 0;
	if (xt_ecn_mark(l3, f->pkt.family) != XT_ECN_MARKED)
		return 0;
	__u32 idx = XT_MARKED;
	struct xt_count *c = bpf_map_lookup_elem(&xt_counters, &idx);
	if (c) {
		c->packets += f->pkts;
		c->bytes += f->len;
	}
	__u32 id = rule->id;
	struct xt_rule_stats *s = bpf_map_lookup_elem(&xt_rule_stats, &id);
	if (s) {
		s->marked_packets += f->pkts;
		s->marked_bytes += f->len;
	}
	return 1;
}

/* A deny rule's packet, or a banned source's (banned: the tick its ban
 * ends): dropped, and its source remembered in the hot cache (for good, or
 * until the ban ends, half the idle window at most: xt_ban_hold); a deny
 * rule's passed and counted under a dry-run rule. A ban is the operator's,
 * and no dry run. */
static __always_inline enum xt_reason xt_act_deny(const struct xt_rule *rule, const struct xt_config *cfg,
						  __u32 hot_idx, int hot_slot, const struct xt_pkt *pkt, __u32 epoch,
						  __u64 now, __u64 banned)
{
	if (!banned && (rule->flags & XT_RULE_DRY_RUN))
		return XT_PASS_DRY_RUN;
	xt_hot_remember(hot_idx, pkt, now, banned ? xt_ban_hold(cfg, now, banned) : XT_NEVER,
			xt_fill_word(epoch, rule, hot_slot, banned ? XT_FILL_BANNED : XT_FILL_DENIED));
	return banned ? XT_DROP_BANNED : XT_DROP_DENY;
}

/* Ended bans a packet removes to find one in force around them: bans
 * nested deeper, all ended, let a packet through for each level past these
 * (serve clears ended bans every 5 s). */
#define XT_BANS_ENDED_LOOKED_PAST 4

/* Until when pkt's source is banned (xthrottle ban add), or 0: the
 * longest ban prefix holding it, if it has not ended. One that has ended
 * is removed (a trie's lookup finds only the longest prefix: an ended /32
 * would hide the /24 ban around it), and the source looked up again. */
static __always_inline __u64 xt_banned(const struct xt_pkt *pkt, __u64 now)
{
	const __u32 full = XT_BAN_KEY_BITS + (pkt->family == XT_FAMILY_V4 ? 32 : 128);
	struct xt_ban_key key = {.prefixlen = full, .family = pkt->family};
	__builtin_memcpy(key.addr, pkt->addr, sizeof(key.addr));
	XT_UNROLL
	for (int i = 0; i <= XT_BANS_ENDED_LOOKED_PAST; i++) {
		const struct xt_ban *ban = bpf_map_lookup_elem(&xt_bans, &key);
		if (!ban)
			return 0;
		if ((__s64)(ban->until - now) > 0)
			return ban->until;
		/* A delete compares the key's first prefixlen bits only. */
		key.prefixlen = ban->prefixlen;
		bpf_map_delete_elem(&xt_bans, &key);
		key.prefixlen = full;
	}
	return 0;
}

/* Whether pkt's source is in the blocklists' union's set `set` (abi.h):
 * an IPv4 source by its /24's two bits, and only where its /24 is partly
 * listed by its address; an IPv6 one in the trie. */
static __always_inline int xt_listed(const struct xt_pkt *pkt, __u32 set)
{
	if (!pkt)
		return 0;
	if (pkt->family == XT_FAMILY_V4) {
		const __u32 slash24 = (__u32)pkt->addr[0] << 16 | (__u32)pkt->addr[1] << 8 | pkt->addr[2];
		__u32 idx = (set & 1) * XT_BLOCK4_WORDS + (slash24 >> 6);
		const struct xt_block_word *w = bpf_map_lookup_elem(&xt_block4, &idx);
		if (!w)
			return 0;
		const __u64 bit = 1ULL << (slash24 & 63);
		if (w->whole & bit)
			return 1;
		if (!(w->part & bit))
			return 0;
		struct xt_block_host host = {.set = set & 1};
		__builtin_memcpy(&host.addr, pkt->addr, 4);
		return bpf_map_lookup_elem(&xt_block_hosts, &host) != NULL;
	}
	struct xt_block6_key key = {.prefixlen = 32 + 128, .set = set & 1};
	__builtin_memcpy(key.addr, pkt->addr, sizeof(key.addr));
	return bpf_map_lookup_elem(&xt_block6, &key) != NULL;
}

/* Whether frame f's source is in a blocklist (xthrottle blocklist load),
 * in set `set & 1` (xt_listed); with XT_UNRULED in set, no rule covers it,
 * and a listed source's packet is counted as no rule's drop. A global
 * function (see xt_send_event), called only while a list is loaded. */
#define XT_UNRULED 2
__attribute__((noinline)) int xt_blocklisted(const struct xt_frame *f, __u32 set)
{
	if (!f)
		return 0;
	const int listed = xt_listed(&f->pkt, set & 1);
	if (listed && (set & XT_UNRULED))
		xt_count_without_rule(f->len, f->pkts);
	return listed;
}

#endif /* XTHROTTLE_ACT_BPF_H */
