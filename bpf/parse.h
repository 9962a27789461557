/* SPDX-License-Identifier: MIT */
/*
 * Stage 1, parse: find the source address of a frame. Pure: compiles for the
 * BPF target and for the host (unit tests, fuzzers), with every read checked
 * against the end of the frame first.
 *
 * It reads only what a verdict depends on: rules match sources, so xt_parse
 * stops at the source address in the fixed IPv4/IPv6 header, and every
 * fragment (first or not) and every extension-header chain, however long, is
 * limited by its source like any other packet. Only while some rule has a
 * match does xt_parse_l4 read further, for the protocol, destination port
 * and SYN, where they are in reach (a super-packet's TCP/UDP header length
 * is read too, to count the wire packets it stands for, xt_wire_packets).
 * docs/hostile-input.md lists each verdict.
 */
#ifndef XTHROTTLE_PARSE_H
#define XTHROTTLE_PARSE_H

#include "pure.h"
#include <xthrottle/abi.h>

#ifndef __bpf__
/* glibc's first: the kernel's linux/in6.h then leaves struct in6_addr to it. */
#include <netinet/in.h>
#endif
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#define XT_MAX_VLAN 2 /* one 802.1Q tag, or an 802.1ad QinQ pair */
#define XT_STANDARD_MTU 1500 /* Ethernet's: a longer IP packet is a jumbo frame or a super-packet */
#define XT_IPPROTO_TCP 6 /* IPPROTO_*: glibc and the kernel both define them, differently */
#define XT_IPPROTO_UDP 17

/* An 802.1Q / 802.1ad tag (the kernel's struct vlan_hdr is not in its uapi). */
struct xt_vlan_hdr {
	__be16 tci;
	__be16 proto; /* what follows the tag */
};

/* The kernel's header structs as frames place them: an IP header 14 bytes
 * into a frame is only 2-byte aligned. BPF loads it as it is; on the host
 * (tests, fuzzers) the typedefs lower the alignment the compiler may assume,
 * so reading through them is defined behaviour. */
#ifdef __bpf__
typedef struct ethhdr xt_ethhdr;
typedef struct iphdr xt_iphdr;
typedef struct tcphdr xt_tcphdr;
#else
typedef struct ethhdr __attribute__((aligned(1))) xt_ethhdr;
typedef struct iphdr __attribute__((aligned(1))) xt_iphdr;
typedef struct tcphdr __attribute__((aligned(1))) xt_tcphdr;
#endif

/* IPv6 header fields by offset: on the host, struct ipv6hdr keeps its 4-byte
 * alignment whatever the typedef says, and an IPv6 header behind a VLAN tag
 * sits 18 bytes into the frame. */
#define XT_IP6_HDR_LEN 40
#define XT_IP6_PAYLOAD_LEN 4
#define XT_IP6_NEXTHDR 6
#define XT_IP6_HOP_LIMIT 7
#define XT_IP6_SADDR 8
#define XT_IP6_DADDR 24

/* Network to host byte order: both BPF and the hosts we build for are
 * little-endian (keys.h relies on the same). */
#define xt_ntohs(x) ((__u16)__builtin_bswap16(x))

enum xt_parse_result {
	XT_PARSE_IP = 0,    /* pkt holds the source */
	XT_PARSE_NON_IP,    /* not IPv4/IPv6 (ARP, LLDP, ...): no source to limit */
	XT_PARSE_MALFORMED, /* no source we can trust: runt frame, truncated or
			     * invalid IP header, more VLAN tags than XT_MAX_VLAN */
};

struct xt_pkt {
	/* First and 8-aligned: read as two 64-bit words (keys.h, xt_load64),
	 * which the compiler makes one load each only where it knows the
	 * alignment (at offset 1, as it was, each was eight byte loads). */
	__u8 addr[16] __attribute__((aligned(8)));
	__u8 family; /* XT_FAMILY_V4 or XT_FAMILY_V6 */
	__u8 proto; /* IPv4's protocol, IPv6's first next header (xt_parse_l4: the last) */
	__u16 l3_off; /* where the IP header starts in the frame */
	__u16 dport;  /* xt_parse_l4: the TCP or UDP destination port (host order), if XT_L4_PORT */
	__u8 l4;      /* xt_parse_l4: XT_L4_* */
	__u8 ecn;     /* the IP header's ECN field (ecn.h): 0 not ECN-capable */
	__u16 cls;    /* its class (abi.h, XT_CLASS_*): set by classify, 0 until then */
};
#define XT_L4_PORT 0x01 /* the transport header was in reach: dport is its destination port */
#define XT_L4_SYN 0x02  /* a TCP SYN without ACK, or a RST without SYN or ACK: what a
			 * stack answers a SYN-ACK it did not ask for (a proof)
			 * with, which must come back to the --syn rule that sent it */

/* Sets pkt's source to the n (4 or 16) bytes at src, the rest zero, with
 * two 64-bit stores: the later stages read the address as two 64-bit words,
 * and a wide load of what narrower stores wrote waits for them to reach the
 * cache (no store forwarding), which cost more than the byte loads it saves. */
XT_INLINE void xt_put_addr(struct xt_pkt *pkt, const void *src, int n)
{
	__u64 w[2] = {0, 0};
	__builtin_memcpy(w, src, n == 4 ? 4 : 16);
	__builtin_memcpy(pkt->addr, &w[0], 8);
	__builtin_memcpy(pkt->addr + 8, &w[1], 8);
}

/* The IP header at offset off of the frame (what comes before it is the
 * link layer's), of ethertype proto (host order): its source, or why there
 * is none. frame_len is the whole frame's length (a multi-buffer frame's
 * tail is not in [data, end)). */
XT_INLINE int xt_parse_ip(const __u8 *data, const __u8 *end, __u16 off, __u64 frame_len, __u16 proto,
			  struct xt_pkt *pkt)
{
	if (proto == ETH_P_IP) {
		const xt_iphdr *ip = (const xt_iphdr *)(data + off);
		if ((const __u8 *)(ip + 1) > end)
			return XT_PARSE_MALFORMED;
		const __u32 header = ip->ihl * 4;
		const __u16 total = xt_ntohs(ip->tot_len);
		/* The stack discards these too (ip_rcv_core); dropping them here
		 * costs less. total is not compared with the frame's length: a
		 * multi-buffer frame's tail is not in [data, data_end). A total
		 * of 0 is how a GSO/GRO packet of more than 64 KB ("BIG TCP",
		 * which generic XDP sees) says its length is the frame's. */
		const int big = total == 0 && frame_len > (__u64)off + 0xffff;
		if (ip->version != 4 || ip->ihl < 5 || data + off + header > end || (total < header && !big))
			return XT_PARSE_MALFORMED;
		pkt->family = XT_FAMILY_V4;
		xt_put_addr(pkt, &ip->saddr, sizeof(ip->saddr));
		pkt->proto = ip->protocol;
		pkt->ecn = ip->tos & 0x3;
		pkt->l3_off = off;
		return XT_PARSE_IP;
	}
	if (proto == ETH_P_IPV6) {
		const __u8 *ip6 = data + off;
		if (ip6 + XT_IP6_HDR_LEN > end || ip6[0] >> 4 != 6)
			return XT_PARSE_MALFORMED;
		/* A payload length of 0 says the same as IPv4's total length of
		 * 0 (a jumbogram, a BIG TCP super-packet): only a frame of more
		 * than 64 KB can mean it. A shorter one the kernel trims to its
		 * header (ip6_rcv_core): nothing past it is the packet's. */
		if (!ip6[XT_IP6_PAYLOAD_LEN] && !ip6[XT_IP6_PAYLOAD_LEN + 1] &&
		    frame_len <= (__u64)off + XT_IP6_HDR_LEN + 0xffff)
			return XT_PARSE_MALFORMED;
		pkt->family = XT_FAMILY_V6;
		xt_put_addr(pkt, ip6 + XT_IP6_SADDR, 16);
		pkt->proto = ip6[XT_IP6_NEXTHDR];
		pkt->ecn = (ip6[1] >> 4) & 0x3;
		pkt->l3_off = off;
		return XT_PARSE_IP;
	}
	return XT_PARSE_NON_IP;
}

/* A frame's source. link says what the frame starts with: an Ethernet header
 * (XT_LINK_ETHER), or the IP header itself (XT_LINK_IP: tun, WireGuard and
 * other devices without a link layer, whose frames generic XDP hands over
 * from the IP header on). */
XT_INLINE int xt_parse(const void *data, const void *data_end, __u64 frame_len, int link, struct xt_pkt *pkt)
{
	const __u8 *p = (const __u8 *)data;
	const __u8 *end = (const __u8 *)data_end;

	if (link == XT_LINK_IP) {
		if (p + 1 > end)
			return XT_PARSE_MALFORMED;
		const __u8 version = p[0] >> 4;
		return xt_parse_ip(p, end, 0, frame_len, version == 4 ? ETH_P_IP : version == 6 ? ETH_P_IPV6 : 0, pkt);
	}

	const xt_ethhdr *eth = (const xt_ethhdr *)p;
	if ((const __u8 *)(eth + 1) > end)
		return XT_PARSE_MALFORMED;
	__u16 proto = xt_ntohs(eth->h_proto);
	__u16 off = sizeof(*eth);

	XT_UNROLL
	for (int i = 0; i < XT_MAX_VLAN; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		const struct xt_vlan_hdr *tag = (const struct xt_vlan_hdr *)(p + off);
		if ((const __u8 *)(tag + 1) > end)
			return XT_PARSE_MALFORMED;
		proto = xt_ntohs(tag->proto);
		off += sizeof(*tag);
	}
	/* A tag beyond the ones followed: the source is out of reach, and
	 * letting such frames through would let a flood bypass every rule. */
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD)
		return XT_PARSE_MALFORMED;
	return xt_parse_ip(p, end, off, frame_len, proto, pkt);
}

/* IPv6 extension headers xt_parse_l4 steps over to reach the transport
 * header, at most XT_MAX_EXT_HEADERS of them. */
#define XT_IPPROTO_HOPOPTS 0
#define XT_IPPROTO_ROUTING 43
#define XT_IPPROTO_FRAGMENT 44
#define XT_IPPROTO_AH 51
#define XT_IPPROTO_DSTOPTS 60
#define XT_MAX_EXT_HEADERS 4

XT_INLINE int xt_ext_header(__u8 nh)
{
	return nh == XT_IPPROTO_HOPOPTS || nh == XT_IPPROTO_ROUTING || nh == XT_IPPROTO_FRAGMENT ||
	       nh == XT_IPPROTO_AH || nh == XT_IPPROTO_DSTOPTS;
}

/* What rules with a match look at, past the source: the transport protocol
 * (IPv6: the next header after up to XT_MAX_EXT_HEADERS extension headers)
 * and, for TCP and UDP, the destination port and whether it is a SYN
 * without ACK. Only what is in reach: a non-first fragment (IPv4 or IPv6),
 * a transport header cut off by the end of the frame's first buffer, or an
 * IPv6 chain of more extension headers than that has no port (pkt->l4 0)
 * and so matches only rules without one; a chain too long leaves proto at
 * the extension header where the walk stopped. Called after xt_parse
 * returned XT_PARSE_IP for the same frame. */
XT_INLINE void xt_parse_l4(const void *data, const void *data_end, struct xt_pkt *pkt)
{
	const __u8 *end = (const __u8 *)data_end;
	pkt->l4 = 0;
	pkt->dport = 0;
	/* Two VLAN tags at most: 22 bytes. Bounded for the verifier. */
	if (pkt->l3_off > 64)
		return;
	const __u8 *l3 = (const __u8 *)data + pkt->l3_off;
	const __u8 *l4;
	__u8 proto;
	/* The IP packet's own length, from its header: what lies past it in the
	 * frame (an Ethernet trailer, padding) is no part of it, and a header
	 * read from there would be the sender's choice, not the packet's. 0
	 * (a super-packet's, IPv6's jumbogram): the frame's. */
	__u32 ip_len;
	__u32 off;
	if (pkt->family == XT_FAMILY_V4) {
		const xt_iphdr *ip = (const xt_iphdr *)l3;
		if ((const __u8 *)(ip + 1) > end)
			return;
		proto = ip->protocol;
		pkt->proto = proto;
		if (ip->frag_off & __builtin_bswap16(0x1fff)) /* a non-first fragment */
			return;
		ip_len = xt_ntohs(ip->tot_len);
		off = ip->ihl * 4 & 0x3c;
		l4 = l3 + off;
	} else {
		if (l3 + XT_IP6_HDR_LEN > end)
			return;
		proto = l3[XT_IP6_NEXTHDR];
		const __u32 payload = (__u32)l3[XT_IP6_PAYLOAD_LEN] << 8 | l3[XT_IP6_PAYLOAD_LEN + 1];
		ip_len = payload ? XT_IP6_HDR_LEN + payload : 0;
		off = XT_IP6_HDR_LEN;
		XT_UNROLL
		for (int i = 0; i < XT_MAX_EXT_HEADERS; i++) {
			if (!xt_ext_header(proto))
				break;
			const __u8 *h = l3 + (off & 0x3fff); /* each at most 2 KiB: bounded for the verifier */
			if (h + 8 > end || (ip_len && off + 8 > ip_len)) {
				pkt->proto = proto;
				return;
			}
			const __u8 next = h[0];
			if (proto == XT_IPPROTO_FRAGMENT) {
				pkt->proto = next;
				if ((h[2] << 8 | h[3]) & 0xfff8) /* a non-first fragment */
					return;
				off += 8;
			} else if (proto == XT_IPPROTO_AH) {
				off += ((__u32)h[1] + 2) * 4;
			} else {
				off += ((__u32)h[1] + 1) * 8;
			}
			proto = next;
		}
		pkt->proto = proto;
		if (xt_ext_header(proto))
			return;
		l4 = l3 + (off & 0x3fff);
	}
	pkt->proto = proto;
	if (proto == XT_IPPROTO_TCP) {
		const xt_tcphdr *th = (const xt_tcphdr *)l4;
		if ((const __u8 *)(th + 1) > end || (ip_len && (off & 0x3fff) + sizeof(*th) > ip_len))
			return;
		pkt->dport = xt_ntohs(th->dest);
		pkt->l4 = XT_L4_PORT;
		const __u8 flags = ((const __u8 *)th)[13];
		if ((flags & 0x12) == 0x02 || (flags & 0x16) == 0x04) /* SYN, or RST; not ACK */
			pkt->l4 |= XT_L4_SYN;
	} else if (proto == XT_IPPROTO_UDP) {
		if (l4 + sizeof(struct udphdr) > end || (ip_len && (off & 0x3fff) + sizeof(struct udphdr) > ip_len))
			return;
		pkt->dport = (__u16)(l4[2] << 8 | l4[3]);
		pkt->l4 = XT_L4_PORT;
	}
}

/* What a frame longer than the interface's MTU allows stands for on the
 * wire. Generic (skb) XDP runs on GSO/GRO super-packets — a TCP sender's
 * 64 KB segment handed over by veth or tun, an aggregate — that are many
 * wire packets in one. Each wire packet repeats the headers (the link
 * layer's, IP's, TCP's or UDP's: the same in every segment) and carries at
 * most mtu - IP header - L4 header of payload; all but the last carry
 * exactly that when the sender's segment size is the most the MTU allows,
 * which is what TSO and GRO produce for bulk transfers. So: the number of
 * wire packets, exact for such senders (an undercount for one whose
 * segments are smaller, e.g. an MSS clamped below the MTU's), and, in
 * *wire_len, their total length. A frame that fits the MTU is one packet. */
XT_INLINE __u32 xt_wire_packets(const void *data, const void *data_end, const struct xt_pkt *pkt, __u64 frame_len,
				__u32 mtu, __u64 *wire_len)
{
	*wire_len = frame_len;
	/* The IP header starts at most 22 bytes in (two VLAN tags): bounding the
	 * offset lets the verifier check the reads below. */
	if (!mtu || pkt->l3_off > 64 || frame_len <= (__u64)pkt->l3_off + mtu)
		return 1;
	const __u8 *l3 = (const __u8 *)data + pkt->l3_off;
	const __u8 *end = (const __u8 *)data_end;
	__u32 l3_len, proto;
	if (pkt->family == XT_FAMILY_V4) {
		const xt_iphdr *ip = (const xt_iphdr *)l3;
		if ((const __u8 *)(ip + 1) > end)
			return 1;
		l3_len = ip->ihl * 4;
		proto = ip->protocol;
	} else {
		if (l3 + XT_IP6_HDR_LEN > end)
			return 1;
		l3_len = XT_IP6_HDR_LEN;
		/* Extension headers (GRO keeps some) are not followed: such an
		 * aggregate counts a few percent low. */
		proto = l3[XT_IP6_NEXTHDR];
	}
	__u32 l4_len = 0;
	if (proto == XT_IPPROTO_TCP) {
		/* 20..60 bytes on: bounded for the verifier. */
		const xt_tcphdr *tcp = (const xt_tcphdr *)(l3 + (l3_len & 0x3c));
		if (pkt->family == XT_FAMILY_V6)
			tcp = (const xt_tcphdr *)(l3 + sizeof(struct ipv6hdr));
		if ((const __u8 *)(tcp + 1) > end)
			return 1;
		l4_len = tcp->doff * 4;
	} else if (proto == XT_IPPROTO_UDP) {
		l4_len = sizeof(struct udphdr);
	}
	if (l3_len + l4_len >= mtu)
		return 1;
	const __u64 headers = (__u64)pkt->l3_off + l3_len + l4_len;
	if (frame_len <= headers)
		return 1;
	const __u64 per_packet = mtu - l3_len - l4_len;
	const __u64 packets = (frame_len - headers + per_packet - 1) / per_packet;
	*wire_len = frame_len + (packets - 1) * headers;
	return (__u32)packets;
}

#endif /* XTHROTTLE_PARSE_H */
