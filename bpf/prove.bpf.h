/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Part of stage 3, meter: a TCP source that its rule's new-source budget
 * refused proves its address (proof.h has the packets, cookie.h the
 * cookie). Its SYN is answered from here with a SYN-ACK carrying a cookie,
 * at most the rule's --verify-rate a second; its stack's RST carrying the
 * cookie back makes it known (known.bpf.h), and its next SYN, sent at once,
 * is admitted outside the budget.
 */
#ifndef XTHROTTLE_PROVE_BPF_H
#define XTHROTTLE_PROVE_BPF_H

#include "maps.bpf.h"
#include "count.bpf.h"
#include "known.bpf.h"
#include "cookie.h"
#include "proof.h"
#include "gcra.h"

/* Takes one proof from this CPU's share of the rule's --verify-rate. */
static __always_inline int xt_take_proof(const struct xt_rule *rule, __u64 now)
{
	__u32 id = rule->id;
	struct xt_rule_stats *s = bpf_map_lookup_elem(&xt_rule_stats, &id);
	if (!s)
		return 0;
	const __u64 old = s->proof_word;
	const __u64 word = xt_word_gen(old) == rule->gen ? old : xt_full_word(&rule->proof, now, rule->gen);
	__u64 next;
	if (!xt_gcra(&rule->proof, word, now, 1, &next))
		return 0;
	s->proof_word = next; /* per CPU: no other writer */
	return 1;
}

/* A RST that carried a good cookie: XDP_DROP, and its source is to be
 * recorded as known (xt_remember). */
#define XT_PROVEN (XDP_DROP | 0x100)
/* A SYN to answer while a capture wants new sources' drops: the caller
 * samples it, then calls again with XT_PROVE_TAKEN in `now` (the proof's
 * budget already taken for it). */
#define XT_PROVE_SAMPLE (XDP_TX | 0x100)
#define XT_PROVE_TAKEN (1ull << 63)

/* What becomes of a packet the budget refused, under a rule with --verify
 * tcp: XDP_TX if it was a SYN, now the SYN-ACK that carries its proof;
 * XT_PROVEN for a RST carrying a good cookie; XT_PROVE_SAMPLE (above);
 * XDP_DROP otherwise. A global function (see xt_send_event): the verifier checks it
 * once, and the program's paths do not branch on what it did. */
__attribute__((noinline)) int xt_prove(struct xdp_md *ctx, const struct xt_rule *rule, const struct xt_pkt *pkt,
				       __u64 now)
{
	const int taken = (now & XT_PROVE_TAKEN) != 0;
	now &= ~XT_PROVE_TAKEN;
	__u32 zero = 0;
	const struct xt_config *cfg = bpf_map_lookup_elem(&xt_config, &zero);
	if (!ctx || !rule || !pkt || !cfg)
		return XDP_DROP;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xt_tcp_view v;
	const int kind = xt_proof_kind(data, data_end, pkt, xt_cfg_link, &v);
	if (kind == XT_PROOF_OTHER)
		return XDP_DROP;
	/* A RST costs two SipHashes to check: it comes out of the same budget. */
	if (!taken && !xt_take_proof(rule, now))
		return XDP_DROP;
	/* A SYN gets this period's cookie; a RST may carry this period's or
	 * the last one's. One loop, so the verifier and the stack see one
	 * SipHash, not three. */
	const __u32 period = xt_seconds(cfg, now) / XT_COOKIE_PERIOD_SECONDS;
	const int tries = kind == XT_PROOF_RST ? 2 : 1;
	__u64 mac = 0;
	int good = 0;
	XT_NO_UNROLL
	for (int i = 0; i < tries; i++) {
		mac = xt_cookie(cfg->cookie_key, pkt->family, pkt->addr, v.dst, v.sport, v.dport, period - i);
		if ((__u32)mac == v.seq) {
			good = 1;
			break;
		}
	}
	if (kind == XT_PROOF_RST) {
		if (!good)
			return XDP_DROP;
		xt_count_one(XT_PROOFS_PASSED);
		return XT_PROVEN; /* the caller records it: its stack is the shallower */
	}
	/* A capture of new sources' drops sees the SYN as it came, before it
	 * becomes the answer: back to the caller, which samples it and asks
	 * again (sampled here, the calls' stacks took 544 bytes of 512). The
	 * reply below fails only on what xt_proof_kind refused. */
	if (!taken && (cfg->capture_reasons & (1u << XT_DROP_NEW_SOURCE)))
		return XT_PROVE_SAMPLE;
	/* The SYN-ACK's own sequence number is the MAC's other half: nobody
	 * answers to it, and it tells nothing of the keys. */
	const __u32 reply = xt_proof_reply(data, data_end, pkt, xt_cfg_link, (__u32)mac, (__u32)(mac >> 32));
	if (!reply)
		return XDP_DROP;
	const __u64 frame = xt_cfg_frags ? bpf_xdp_get_buff_len(ctx) : (__u64)(data_end - data);
	if (frame > reply)
		bpf_xdp_adjust_tail(ctx, (int)reply - (int)frame); /* shrinking a frame never fails */
	xt_count_one(XT_PROOFS_SENT);
	return XDP_TX;
}

#endif /* XTHROTTLE_PROVE_BPF_H */
