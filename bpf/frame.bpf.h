/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Stage 1, parse, on the BPF side: the frame's source (parse.h), and what
 * a super-packet stands for on the wire.
 */
#ifndef XTHROTTLE_FRAME_BPF_H
#define XTHROTTLE_FRAME_BPF_H

#include "maps.bpf.h"
#include "parse.h"

/* What a super-packet stands for on the wire (parse.h, xt_wire_packets), at
 * the interface's MTU now (the kernel's, so a changed MTU counts at once). A
 * global function: its many branches are walked once, not once for every
 * path through the rest of the program, and it runs only for IP packets
 * longer than a standard 1500-byte MTU allows: on a standard link, only
 * super-packets. */
struct xt_wire {
	__u8 family;
	__u16 l3_off;
	__u32 packets;
	__u64 len; /* in: the frame's length; out: the wire packets' */
};

__attribute__((noinline)) int xt_super_packet(struct xdp_md *ctx, struct xt_wire *wire)
{
	if (!ctx || !wire)
		return 0;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xt_pkt pkt = {.family = wire->family, .l3_off = wire->l3_off};
	__u32 mtu = 0; /* 0: no length to check; the device's MTU comes back in it */
	if (bpf_check_mtu(ctx, 0, &mtu, 0, 0) < 0)
		mtu = 0; /* unknown: every frame one packet */
	__u64 wire_len;
	wire->packets = xt_wire_packets(data, data_end, &pkt, wire->len, mtu, &wire_len);
	wire->len = wire_len;
	return 0;
}


/* A frame as the later stages see it. */
struct xt_frame {
	struct xt_pkt pkt; /* its source */
	__u64 len;         /* its wire bytes */
	__u32 pkts;        /* the wire packets it stands for: 1 but for a super-packet */
};

/* The frame's source, and what it stands for on the wire; returns the
 * parser's enum xt_parse_result. */
static __always_inline int xt_parse_frame(struct xdp_md *ctx, struct xt_frame *f)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	f->len = xt_cfg_frags ? bpf_xdp_get_buff_len(ctx) : (__u64)(data_end - data);
	f->pkts = 1;
	int parsed = xt_parse(data, data_end, f->len, xt_cfg_link, &f->pkt);
	if (parsed != XT_PARSE_IP)
		return parsed;
	if (f->len > (__u64)f->pkt.l3_off + XT_STANDARD_MTU) {
		struct xt_wire wire = {.family = f->pkt.family, .l3_off = f->pkt.l3_off, .len = f->len};
		xt_super_packet(ctx, &wire);
		f->pkts = wire.packets;
		f->len = wire.len;
	}
	return XT_PARSE_IP;
}

#endif /* XTHROTTLE_FRAME_BPF_H */
