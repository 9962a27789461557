/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Stage 2, classify: the packet's class (what besides its source decides its
 * rule: its protocol, destination port, SYN), then the rule that decides for
 * it (after the hot cache, hot.bpf.h): the longest source prefix of its
 * family among the rules whose match fits it, the most specific match among
 * those, through a per-CPU cache of blocks that no rule splits.
 */
#ifndef XTHROTTLE_CLASSIFY_BPF_H
#define XTHROTTLE_CLASSIFY_BPF_H

#include "maps.bpf.h"
#include "keys.h"

/* The transport header's fields (parse.h, xt_parse_l4). A global function:
 * the walk over IPv6 extension headers is checked once, not on every path,
 * and it runs only while some rule has a match. */
__attribute__((noinline)) int xt_transport(struct xdp_md *ctx, struct xt_pkt *pkt)
{
	if (!ctx || !pkt)
		return 0;
	xt_parse_l4((void *)(long)ctx->data, (void *)(long)ctx->data_end, pkt);
	return 0;
}

/* The narrowest rule port range that holds port (TCP or UDP), 0 if none. */
static __always_inline __u16 xt_port_range_of(__u8 proto, __u16 port)
{
	__u32 idx = XT_PORTS_INDEX(proto == XT_IPPROTO_UDP ? XT_PORT_SLOT_UDP : XT_PORT_SLOT_TCP, port);
	const struct xt_ports *p = bpf_map_lookup_elem(&xt_ports, &idx);
	return p ? p->range[port & (XT_PORTS_PER_ENTRY - 1)] : 0;
}

/* The packet's class (abi.h, XT_CLASS_*), also left in pkt->cls: 0, at the
 * cost of one load, unless some rule has a match. */
static __always_inline __u16 xt_class(struct xdp_md *ctx, struct xt_pkt *pkt, const struct xt_config *cfg)
{
	if (!cfg->matches)
		return 0;
	xt_transport(ctx, pkt);
	const __u8 levels = cfg->proto_levels[pkt->proto];
	if (!levels)
		return 0;
	__u16 cls = XT_CLASS_PROTO | pkt->proto;
	const int tcp_udp = pkt->proto == XT_IPPROTO_TCP || pkt->proto == XT_IPPROTO_UDP;
	if ((levels & (1 << XT_MATCH_PORT | 1 << XT_MATCH_SYN_PORT)) && (pkt->l4 & XT_L4_PORT) && tcp_udp) {
		const __u16 range = xt_port_range_of(pkt->proto, pkt->dport) & XT_CLASS_VALUE;
		if (range)
			cls = XT_CLASS_RANGE | range;
	}
	if ((levels & (1 << XT_MATCH_SYN | 1 << XT_MATCH_SYN_PORT)) && (pkt->l4 & XT_L4_SYN))
		cls |= XT_CLASS_SYN;
	pkt->cls = cls;
	return cls;
}

/* Looks for the packet's rule in the rule table under one match, and keeps
 * it in *best if its source prefix is longer than the best so far (so, as
 * the caller tries the most specific match first, a tie keeps the more
 * specific). */
static __always_inline void xt_try_match(const struct xt_pkt *pkt, struct xt_rule_key *key, __u8 level, __u8 proto,
					 __u16 lo, __u16 hi, const struct xt_rule **best)
{
	xt_rule_key_for(pkt, level, proto, lo, hi, key);
	const struct xt_rule *r = bpf_map_lookup_elem(&xt_rules, key);
	if (r && (!*best || r->src_len > (*best)->src_len))
		*best = r;
}

/* The same under each of the port ranges holding the packet's port, from
 * the narrowest out. */
static __always_inline void xt_try_ranges(const struct xt_pkt *pkt, struct xt_rule_key *key, __u8 level,
					  __u32 range, const struct xt_rule **best)
{
	for (int i = 0; i < XT_MAX_PORT_NESTING; i++) {
		const struct xt_port_range *r = range ? bpf_map_lookup_elem(&xt_port_ranges, &range) : NULL;
		if (!r)
			break;
		xt_try_match(pkt, key, level, pkt->proto, r->lo, r->hi, best);
		range = r->parent;
	}
}

/* The rule of a packet of class cls (not 0), copied to *out; 0 if none.
 * One rule-table lookup a match the class may fit, the most specific
 * first. A global function: checked once, its lookups off the paths of
 * the rest of the program. */
__attribute__((noinline)) int xt_find_rule(const struct xt_pkt *pkt, struct xt_rule *out)
{
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!pkt || !out || !cfg)
		return 0;
	const __u16 cls = pkt->cls;
	const __u8 levels = cfg->proto_levels[pkt->proto];
	const __u32 range = cls & XT_CLASS_RANGE ? cls & XT_CLASS_VALUE : 0;
	const struct xt_rule *best = NULL;
	struct xt_rule_key key;
	if ((cls & XT_CLASS_SYN) && range && (levels & 1 << XT_MATCH_SYN_PORT))
		xt_try_ranges(pkt, &key, XT_MATCH_SYN_PORT, range, &best);
	if ((cls & XT_CLASS_SYN) && (levels & 1 << XT_MATCH_SYN))
		xt_try_match(pkt, &key, XT_MATCH_SYN, pkt->proto, 0, 0, &best);
	if (range && (levels & 1 << XT_MATCH_PORT))
		xt_try_ranges(pkt, &key, XT_MATCH_PORT, range, &best);
	if (levels & 1 << XT_MATCH_PROTO)
		xt_try_match(pkt, &key, XT_MATCH_PROTO, pkt->proto, 0, 0, &best);
	xt_try_match(pkt, &key, XT_MATCH_ANY, 0, 0, 0, &best);
	if (!best)
		return 0;
	__builtin_memcpy(out, best, sizeof(*out));
	return 1;
}

/* The rule of the packet (its class in pkt->cls), or NULL.
 * The trie lookup is a helper call and, for IPv6, a long walk, and a class
 * may need several; the per-CPU rule cache answers instead for every
 * packet of a class from a block that no rule splits (the source masked
 * to its family's longest rule prefix): under a spoofed flood, nearly
 * every packet. */
static __always_inline const struct xt_rule *xt_classify(const struct xt_pkt *pkt, const struct xt_config *cfg,
							  __u64 published)
{
	const __u32 epoch = XT_PUB_EPOCH(published);
	const __u8 len = pkt->family == XT_FAMILY_V4 ? XT_PUB_LONGEST_V4(published) : XT_PUB_LONGEST_V6(published);
	const __u16 cls = pkt->cls;
	__u64 block[2];
	xt_mask_addr(pkt->addr, len, block);
	__u32 idx = XT_TOP_BITS(xt_hash_words(cfg->hash_key, pkt->family | (__u64)len << 8 | (__u64)cls << 16, block[0],
					      block[1]),
				XT_RULE_CACHE_BITS);
	struct xt_rule_cache *c = bpf_map_lookup_elem(&xt_rule_cache, &idx);
	if (!c)
		return NULL; /* never: the array has every slot */
	if (c->epoch == epoch && c->len == len && c->family == pkt->family && c->cls == cls &&
	    c->block[0] == block[0] && c->block[1] == block[1])
		return c->found ? &c->rule : NULL;

	if (cls) {
		/* The cache entry takes the rule whatever the block, so there is
		 * a pointer to return. */
		const int found = xt_find_rule(pkt, &c->rule);
		c->epoch = epoch;
		c->family = pkt->family;
		c->len = len;
		c->cls = cls;
		c->found = found;
		c->block[0] = block[0];
		c->block[1] = block[1];
		return found ? &c->rule : NULL;
	}
	struct xt_rule_key rkey;
	xt_rule_key_for(pkt, XT_MATCH_ANY, 0, 0, 0, &rkey);
	const struct xt_rule *rule = bpf_map_lookup_elem(&xt_rules, &rkey);
	/* Blocks of single addresses would only churn the cache. */
	if (len < (pkt->family == XT_FAMILY_V4 ? 32 : 128)) {
		c->epoch = epoch;
		c->family = pkt->family;
		c->len = len;
		c->cls = 0;
		c->found = rule != NULL;
		c->block[0] = block[0];
		c->block[1] = block[1];
		if (rule)
			__builtin_memcpy(&c->rule, rule, sizeof(c->rule));
	}
	return rule;
}


/* The published word (the rules epoch and the longest prefixes), read once
 * a packet, in one load, before any rule lookup: every cache entry the
 * packet fills is tagged with its epoch, so an entry filled from a rule that
 * changed meanwhile carries the old epoch and is never trusted. (The
 * controller updates the rules, then the word. This relies on that load not
 * passing the rule lookups' loads, which holds on x86; BPF's load-acquire
 * needs a newer clang than 14.) */
static __always_inline __u64 xt_published(const struct xt_config *cfg)
{
	return *(volatile const __u64 *)cfg;
}

#endif /* XTHROTTLE_CLASSIFY_BPF_H */
