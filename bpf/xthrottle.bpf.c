// SPDX-License-Identifier: GPL-2.0
/*
 * xthrottle's XDP program. A packet goes through five stages, cheapest check
 * first (docs/design.md has the measurements behind each):
 *
 *   1. parse     the frame's source, and the wire packets it stands for   frame.bpf.h, parse.h
 *   2. classify  the packet's class (protocol, port, SYN) where rules have
 *                matches; a source known to be dropped until some tick
 *                for that class (the hot cache) is dropped at once; any
 *                other gets the longest-prefix rule of its family among
 *                those whose match fits, the most specific of them         hot.bpf.h, classify.bpf.h
 *   3. meter     the source's bucket (its set's tags, then its slot, or
 *                a new bucket if the rule's new-source budget admits the
 *                source, or it is known, or proves its address) and the
 *                rule's limits, exact across CPUs                         bucket.bpf.h, admit.bpf.h, known.bpf.h,
 *                                                                          prove.bpf.h, meter.h
 *   4. act       pass, or drop (or send out another interface, where the
 *                rule says so) and remember the source until its next
 *                token is due; tell when a source starts or stops being
 *                dropped                                                   act.bpf.h, events.bpf.h, count.bpf.h
 *   5. count     every verdict, by reason and per rule                    count.bpf.h
 *
 * The maps and settings are in maps.bpf.h; the programs the controller runs
 * itself (the clock, bringing buckets up to date) in control.bpf.h.
 */
#include "maps.bpf.h"
#include "frame.bpf.h"
#include "hot.bpf.h"
#include "classify.bpf.h"
#include "bucket.bpf.h"
#include "prove.bpf.h"
#include "act.bpf.h"
#include "count.bpf.h"
#include "control.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xthrottle(struct xdp_md *ctx)
{
	/* 1. Parse. */
	struct xt_frame f = {};
	const int parsed = xt_parse_frame(ctx, &f);
	if (parsed == XT_PARSE_MALFORMED)
		return xt_exit(ctx, XT_DROP_MALFORMED, f.len, 1, XT_NO_RULE, NULL);
	if (parsed != XT_PARSE_IP)
		return xt_exit(ctx, XT_PASS_NON_IP, f.len, 1, XT_NO_RULE, NULL);

	const __u64 len = f.len;
	const __u32 pkts = f.pkts;
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!cfg)
		return xt_exit(ctx, XT_PASS_UNMATCHED, len, pkts, XT_NO_RULE, NULL);
	const __u64 now = xt_now();
	const __u64 published = xt_published(cfg);
	const __u32 epoch = XT_PUB_EPOCH(published);

	/* 2. Classify. */
	xt_class(ctx, &f.pkt, cfg);
	const __u32 hot_idx = xt_hot_index(&f.pkt, cfg);
	struct xt_hot_set *hot_set = bpf_map_lookup_elem(&xt_hot, &hot_idx);
	if (!hot_set) /* never: the array has a part for every possible CPU */
		return xt_exit(ctx, XT_PASS_UNMATCHED, len, pkts, XT_NO_RULE, NULL);
	struct xt_hot_set *hot_line = hot_set; /* the line of the source's entry */
	const int hot_slot = xt_hot_lookup(hot_set, hot_idx, &f.pkt, epoch, now, &hot_line);
	if (hot_slot != XT_HOT_NONE) {
		struct xt_hot *hot = xt_hot_at(hot_line, hot_slot);
		if (xt_hot_drops(hot, epoch, now, pkts)) {
			xt_hot_hit(hot, pkts);
			const enum xt_reason why = !(hot->who & XT_HOT_DENIED)	 ? XT_DROP_LIMIT
						   : hot->per_len == XT_HOT_BANNED ? XT_DROP_BANNED
										   : XT_DROP_DENY;
			return xt_exit(ctx, why, len, pkts, hot->who & XT_HOT_RULE, cfg);
		}
	}
	const struct xt_rule *rule = xt_classify(&f.pkt, cfg, published);
	/* Blocklisted: dropped whatever its rule, but an allow rule. */
	const __u32 lists = cfg->blocklists;
	if (lists && !(rule && rule->action == XT_ACT_ALLOW) && xt_blocklisted(&f, (lists - 1) | (rule ? 0 : XT_UNRULED)))
		return xt_exit(ctx, XT_DROP_BLOCKLISTED, len, pkts, rule ? rule->id : XT_NO_RULE, cfg);
	/* Banned: dropped whatever its rule, but an allow rule; the hot cache
	 * drops the rest of its packets (on this CPU) until the ban ends. */
	const __u64 banned = cfg->bans && !(rule && rule->action == XT_ACT_ALLOW) ? xt_banned(&f.pkt, now) : 0;
	if (!rule) {
		if (banned) /* no rule's drop: the metrics' rule "none" */
			xt_count_without_rule(len, pkts);
		return banned ? xt_exit(ctx, XT_DROP_BANNED, len, pkts, XT_NO_RULE, cfg)
			      : xt_exit(ctx, XT_PASS_UNMATCHED, len, pkts, XT_NO_RULE, NULL);
	}
	if (rule->action == XT_ACT_ALLOW)
		return xt_exit(ctx, XT_PASS_ALLOW, len, pkts, rule->id, NULL);
	if (banned || rule->action != XT_ACT_LIMIT) /* banned, deny, and anything unknown */
		return xt_exit(ctx, xt_act_deny(rule, cfg, hot_idx, hot_slot, &f.pkt, epoch, now, banned), len, pkts,
			       rule->id, cfg);

	/* 3. Meter. */
	struct xt_bucket_key bkey;
	enum xt_reason why_not = XT_DROP_NO_STATE;
	struct xt_bucket *b = xt_source_bucket(&f.pkt, rule, cfg, now, &bkey, &why_not);
	if (!b && !(rule->flags & XT_RULE_DRY_RUN)) {
		/* A TCP source may prove its address (prove.bpf.h); nothing
		 * else is worth the call. */
		if (why_not == XT_DROP_NEW_SOURCE && (rule->flags & XT_RULE_VERIFY_TCP) &&
		    f.pkt.proto == XT_IPPROTO_TCP) {
			int action = xt_prove(ctx, rule, &f.pkt, now);
			if (action == XT_PROVE_SAMPLE) { /* the SYN as it came, then its answer */
				xt_capture_sample(ctx, why_not, rule->id, XT_CAPTURE_PROVED);
				action = xt_prove(ctx, rule, &f.pkt, now | XT_PROVE_TAKEN);
			}
			if (action == XT_PROVEN)
				xt_remember(&f.pkt, rule->per_len, XT_KNOWN_PROVEN, now);
			if (action != XDP_TX)
				return xt_exit(ctx, why_not, len, pkts, rule->id, cfg);
			xt_exit(ctx, why_not, len, pkts, rule->id, NULL);
			return XDP_TX;
		}
		return xt_exit(ctx, why_not, len, pkts, rule->id, cfg);
	}
	if (!b) {
		if (why_not == XT_DROP_NEW_SOURCE)
			xt_count_new_source_dry_run(rule->id, pkts);
		return xt_exit(ctx, XT_PASS_DRY_RUN, len, pkts, rule->id, cfg);
	}
	xt_hot_settle(hot_line, hot_idx ^ ((hot_slot >> 2) & 1), hot_slot, rule, cfg, b, epoch, now);
	/* An ECN-capable packet may use a marking rule's overdraft (meter.h). */
	const __u32 units = f.pkt.ecn && (rule->flags & XT_RULE_ECN) ? pkts | XT_PKTS_ECT : pkts;
	const int conforms = rule->flags & XT_RULE_TOTAL ? xt_take_total(b, rule, now, len, units)
							   : xt_take(b, rule, now, len, units);

	/* 4. Act (a passing packet of a rule that marks may be marked), and
	 * 5. count. */
	const enum xt_reason why = xt_act(conforms, b, &bkey, rule, cfg, hot_idx, hot_slot, &f.pkt, epoch, now, pkts);
	if (why == XT_PASS_LIMIT && f.pkt.ecn && (rule->flags & (XT_RULE_ECN | XT_RULE_DRY_RUN)) == XT_RULE_ECN)
		xt_mark_ce(ctx, rule, b, &f, now);
	return xt_exit(ctx, why, len, pkts, rule->id, cfg);
}
