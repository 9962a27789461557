/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Stage 2, classify: the rule that decides for a source (after the hot
 * cache, hot.bpf.h): the longest prefix of its family in the rule table,
 * through a per-CPU cache of blocks that no rule splits.
 */
#ifndef XTHROTTLE_CLASSIFY_BPF_H
#define XTHROTTLE_CLASSIFY_BPF_H

#include "maps.bpf.h"
#include "keys.h"

/* The longest-prefix rule of the source's family, or NULL.
 * The trie lookup is a helper call and, for IPv6, a long walk; the per-CPU
 * rule cache answers instead for every source of a block that no rule
 * splits (the source masked to its family's longest rule prefix): under a
 * spoofed flood, nearly every packet. */
static __always_inline const struct xt_rule *xt_classify(const struct xt_pkt *pkt, const struct xt_config *cfg,
							  __u64 published)
{
	const __u32 epoch = XT_PUB_EPOCH(published);
	const __u8 len = pkt->family == XT_FAMILY_V4 ? XT_PUB_LONGEST_V4(published) : XT_PUB_LONGEST_V6(published);
	__u64 block[2];
	xt_mask_addr(pkt->addr, len, block);
	__u32 idx = XT_TOP_BITS(xt_hash_words(cfg->hash_key, pkt->family | (__u64)len << 8, block[0], block[1]), XT_RULE_CACHE_BITS);
	struct xt_rule_cache *c = bpf_map_lookup_elem(&xt_rule_cache, &idx);
	if (c && c->epoch == epoch && c->len == len && c->family == pkt->family && c->block[0] == block[0] &&
	    c->block[1] == block[1])
		return c->found ? &c->rule : NULL;

	struct xt_rule_key rkey;
	xt_rule_key_for(pkt, &rkey);
	const struct xt_rule *rule = bpf_map_lookup_elem(&xt_rules, &rkey);
	/* Blocks of single addresses would only churn the cache. */
	if (c && len < (pkt->family == XT_FAMILY_V4 ? 32 : 128)) {
		c->epoch = epoch;
		c->family = pkt->family;
		c->len = len;
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
