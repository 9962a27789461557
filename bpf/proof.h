/* SPDX-License-Identifier: MIT */
/*
 * The TCP proof, on the wire: which packets of a source the new-source
 * budget refused take part in it (a SYN, answered; a RST, checked), and the
 * SYN-ACK made of a SYN in place. Pure: compiles for the BPF target and for
 * the host, where the replies are checked byte by byte.
 *
 * The SYN-ACK acknowledges the cookie instead of the client's sequence
 * number. A real client's stack, in SYN-SENT, answers an acknowledgement of
 * something it never sent with a RST whose sequence number is that
 * acknowledgement (RFC 9293 3.10.7.3) and, Linux at least, resends its SYN
 * at once; a spoofed source never sees the cookie. The reply is the SYN's
 * own headers rewritten and cut after the TCP header, so it is never longer
 * than the SYN it answers.
 */
#ifndef XTHROTTLE_PROOF_H
#define XTHROTTLE_PROOF_H

#include "parse.h"
#include "keys.h"

enum xt_proof_kind {
	XT_PROOF_OTHER = 0, /* takes no part: dropped like any refused packet */
	XT_PROOF_SYN,       /* a connection attempt: answered with a proof */
	XT_PROOF_RST,       /* maybe the answer to one: its sequence number is checked */
};

/* What the cookie is made of, and the sequence number a RST carries. */
struct xt_tcp_view {
	__u64 dst[2];         /* address as two words, as stored (IPv4: first word's low 4 bytes); the
			       * source's is the packet's (struct xt_pkt) */
	__u16 sport, dport;   /* as on the wire */
	__u32 seq;            /* host order */
};

#define XT_TCP_FIN 0x01
#define XT_TCP_SYN 0x02
#define XT_TCP_RST 0x04
#define XT_TCP_ACK 0x10
/* The flags byte of a TCP header (byte 13). */
#define XT_TCP_FLAGS(th) (((const __u8 *)(th))[13])

/* The TCP header of pkt's frame, or NULL: IPv4 without options or
 * fragmentation, IPv6 with TCP right after the fixed header. Others get no
 * proof (their SYNs are dropped like any other refused packet). *l3_out is
 * the IP header, *l3_len_out its length (20: IPv4; callers branch on it, not
 * on the family read again, so the verifier sees the bounds checked here). */
XT_INLINE xt_tcphdr *xt_proof_tcp(void *data, const void *data_end, const struct xt_pkt *pkt, __u8 **l3_out,
				    __u32 *l3_len_out)
{
	__u32 off = pkt->l3_off;
	if (off > 64) /* two VLAN tags at most: 22 */
		return NULL;
	__u8 *l3 = (__u8 *)data + off;
	XT_OPAQUE(l3);
	const __u8 *end = (const __u8 *)data_end;
	__u32 l3_len;
	/* The TCP header within the IP packet's own length (0: a
	 * super-packet's, the frame's), as the parser reads it: a packet that
	 * ends at its IP header lends nothing of the frame's padding. */
	if (pkt->family == XT_FAMILY_V4) {
		const xt_iphdr *ip = (const xt_iphdr *)l3;
		if ((const __u8 *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != XT_IPPROTO_TCP ||
		    (ip->frag_off & __builtin_bswap16(0x3fff)))
			return NULL;
		const __u32 total = __builtin_bswap16(ip->tot_len);
		if (total && total < sizeof(*ip) + sizeof(xt_tcphdr))
			return NULL;
		l3_len = sizeof(*ip);
	} else {
		if (l3 + XT_IP6_HDR_LEN > end || l3[XT_IP6_NEXTHDR] != XT_IPPROTO_TCP)
			return NULL;
		const __u32 payload = (__u32)l3[XT_IP6_PAYLOAD_LEN] << 8 | l3[XT_IP6_PAYLOAD_LEN + 1];
		if (payload && payload < sizeof(xt_tcphdr))
			return NULL;
		l3_len = XT_IP6_HDR_LEN;
	}
	if (l3 + l3_len + sizeof(xt_tcphdr) > end)
		return NULL;
	*l3_out = l3;
	*l3_len_out = l3_len;
	return (xt_tcphdr *)(l3 + l3_len);
}

/* Whether pkt's frame (on a link of enum xt_link) takes part in the proof,
 * and if so what its cookie is made of (in *v). */
XT_INLINE int xt_proof_kind(void *data, const void *data_end, const struct xt_pkt *pkt, int link,
			    struct xt_tcp_view *v)
{
	__u8 *l3;
	__u32 l3_len;
	const xt_tcphdr *th = xt_proof_tcp(data, data_end, pkt, &l3, &l3_len);
	if (!th)
		return XT_PROOF_OTHER;
	/* Only what a host sent to this one takes part: a SYN to a group (the
	 * link's broadcast or a multicast address, or an IP one) would have
	 * every xthrottle host on the segment answer its source, and one from
	 * a group (its link address, or an IP one) would have the answer go
	 * to every host of the segment; the kernel's stack drops both. */
	const __u8 *mac = (const __u8 *)data; /* each address's first byte: its group bit */
	if (link == XT_LINK_ETHER && (mac + 12 > (const __u8 *)data_end || ((mac[0] | mac[6]) & 1)))
		return XT_PROOF_OTHER;
	if (l3_len == sizeof(struct iphdr)) {
		__u32 d, s;
		__builtin_memcpy(&d, &((const xt_iphdr *)l3)->daddr, 4);
		__builtin_memcpy(&s, &((const xt_iphdr *)l3)->saddr, 4);
		/* 224/4, and 255.255.255.255; not 240/4, which Linux takes for
		 * unicast (some networks give it out). From 0/8 and 127/8 too,
		 * which no host on a link has. */
		const __u8 s0 = l3[12];
		if ((l3[16] & 0xf0) == 0xe0 || d == 0xffffffffu || (s0 & 0xf0) == 0xe0 || s == 0xffffffffu || s0 == 0 ||
		    s0 == 127)
			return XT_PROOF_OTHER;
		v->dst[0] = d;
		v->dst[1] = 0;
	} else {
		if (l3[XT_IP6_DADDR] == 0xff || l3[XT_IP6_SADDR] == 0xff) /* ff00::/8 */
			return XT_PROOF_OTHER;
		v->dst[0] = xt_load64(l3 + XT_IP6_DADDR);
		v->dst[1] = xt_load64(l3 + XT_IP6_DADDR + 8);
	}
	v->sport = th->source;
	v->dport = th->dest;
	v->seq = __builtin_bswap32(th->seq);
	const __u8 flags = XT_TCP_FLAGS(th);
	if ((flags & (XT_TCP_SYN | XT_TCP_ACK | XT_TCP_RST | XT_TCP_FIN)) == XT_TCP_SYN)
		return XT_PROOF_SYN;
	if ((flags & (XT_TCP_SYN | XT_TCP_RST | XT_TCP_FIN)) == XT_TCP_RST)
		return XT_PROOF_RST;
	return XT_PROOF_OTHER;
}

/* One's-complement sum of n 16-bit words at p (as stored), added to sum. */
XT_INLINE __u32 xt_csum_words(__u32 sum, const void *p, int n)
{
	XT_NO_UNROLL /* unrolled, the sums spill: the stack is short where this runs */
	for (int i = 0; i < n; i++) {
		__u16 w;
		__builtin_memcpy(&w, (const __u8 *)p + 2 * i, 2);
		sum += w;
	}
	return sum;
}

XT_INLINE __u16 xt_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

#define XT_PROOF_WINDOW 64240 /* the window the SYN-ACK offers (a typical Linux one) */
#define XT_PROOF_TTL 64

/* Rewrites pkt's frame, a SYN (xt_proof_kind said so), into the SYN-ACK
 * that proves its source: addresses and ports swapped, sequence number isn,
 * acknowledgement number cookie, no options, checksums made. Returns the
 * reply's length (the frame is to be cut to it), or 0 if the frame is not
 * such a SYN after all. link is the frame's enum xt_link. The headers are
 * made on the stack and copied over the frame's. */
XT_INLINE __u32 xt_proof_reply(void *data, const void *data_end, const struct xt_pkt *pkt, int link, __u32 cookie,
			       __u32 isn)
{
	__u8 *l3;
	__u32 l3_len;
	xt_tcphdr *th = xt_proof_tcp(data, data_end, pkt, &l3, &l3_len);
	if (!th)
		return 0;
	if (link == XT_LINK_ETHER) {
		__u8 *eth = (__u8 *)data;
		if (eth + 12 > (const __u8 *)data_end)
			return 0;
		__u32 d0, s0;
		__u16 d1, s1;
		__builtin_memcpy(&d0, eth, 4);
		__builtin_memcpy(&d1, eth + 4, 2);
		__builtin_memcpy(&s0, eth + 6, 4);
		__builtin_memcpy(&s1, eth + 10, 2);
		__builtin_memcpy(eth, &s0, 4);
		__builtin_memcpy(eth + 4, &s1, 2);
		__builtin_memcpy(eth + 6, &d0, 4);
		__builtin_memcpy(eth + 10, &d1, 2);
	}
	/* Rewritten in place, the checksums summed over the frame. */
	__u32 sum;
	if (l3_len == sizeof(struct iphdr)) {
		xt_iphdr *ip = (xt_iphdr *)l3;
		const __u32 a = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = a;
		ip->tos = 0;
		ip->tot_len = __builtin_bswap16(sizeof(struct iphdr) + sizeof(struct tcphdr));
		ip->id = 0;
		ip->frag_off = __builtin_bswap16(0x4000); /* don't fragment */
		ip->ttl = XT_PROOF_TTL;
		ip->check = 0;
		ip->check = xt_csum_fold(xt_csum_words(0, ip, sizeof(struct iphdr) / 2));
		sum = xt_csum_words(0, &ip->saddr, 4); /* the pseudo-header: both addresses */
	} else {
		const __u64 a0 = xt_load64(l3 + XT_IP6_SADDR), a1 = xt_load64(l3 + XT_IP6_SADDR + 8);
		const __u64 b0 = xt_load64(l3 + XT_IP6_DADDR), b1 = xt_load64(l3 + XT_IP6_DADDR + 8);
		__builtin_memcpy(l3 + XT_IP6_SADDR, &b0, 8);
		__builtin_memcpy(l3 + XT_IP6_SADDR + 8, &b1, 8);
		__builtin_memcpy(l3 + XT_IP6_DADDR, &a0, 8);
		__builtin_memcpy(l3 + XT_IP6_DADDR + 8, &a1, 8);
		const __u32 first = __builtin_bswap32(0x60000000); /* version 6, no traffic class or flow label */
		__builtin_memcpy(l3, &first, 4);
		const __u16 payload = __builtin_bswap16(sizeof(struct tcphdr));
		__builtin_memcpy(l3 + XT_IP6_PAYLOAD_LEN, &payload, 2);
		l3[XT_IP6_HOP_LIMIT] = XT_PROOF_TTL;
		sum = xt_csum_words(0, l3 + XT_IP6_SADDR, 16); /* the pseudo-header: both addresses */
	}
	const __u16 port = th->source;
	th->source = th->dest;
	th->dest = port;
	th->seq = __builtin_bswap32(isn);
	th->ack_seq = __builtin_bswap32(cookie);
	((__u8 *)th)[12] = (sizeof(struct tcphdr) / 4) << 4; /* data offset: no options */
	((__u8 *)th)[13] = XT_TCP_SYN | XT_TCP_ACK;
	th->window = __builtin_bswap16(XT_PROOF_WINDOW);
	th->check = 0;
	th->urg_ptr = 0;
	/* The rest of the pseudo-header: protocol and TCP length, as stored. */
	sum += __builtin_bswap16(XT_IPPROTO_TCP) + __builtin_bswap16(sizeof(struct tcphdr));
	th->check = xt_csum_fold(xt_csum_words(sum, th, sizeof(struct tcphdr) / 2));
	return pkt->l3_off + l3_len + sizeof(struct tcphdr);
}

#endif /* XTHROTTLE_PROOF_H */
