/* SPDX-License-Identifier: MIT */
/*
 * The cookie a proof carries: a keyed MAC of the connection's addresses and
 * ports and of the period it was made in, so that only whoever receives the
 * SYN-ACK at the source address can send back the RST that proves it.
 * SipHash-2-4 (Aumasson and Bernstein), the PRF the kernel's own SYN cookies
 * use, here over whole 64-bit words. Pure: compiles for the BPF target and
 * for the host, where it is checked against the reference test vectors.
 */
#ifndef XTHROTTLE_COOKIE_H
#define XTHROTTLE_COOKIE_H

#include "pure.h"

#define XT_ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

struct xt_sip {
	__u64 v0, v1, v2, v3;
};

XT_INLINE void xt_sip_round(struct xt_sip *s)
{
	s->v0 += s->v1;
	s->v1 = XT_ROTL64(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = XT_ROTL64(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = XT_ROTL64(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = XT_ROTL64(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = XT_ROTL64(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = XT_ROTL64(s->v2, 32);
}

XT_INLINE void xt_sip_init(struct xt_sip *s, const __u64 key[2])
{
	s->v0 = key[0] ^ 0x736f6d6570736575ULL;
	s->v1 = key[1] ^ 0x646f72616e646f6dULL;
	s->v2 = key[0] ^ 0x6c7967656e657261ULL;
	s->v3 = key[1] ^ 0x7465646279746573ULL;
}

/* Absorbs one 8-byte block m (the message's bytes as a little-endian word). */
XT_INLINE void xt_sip_block(struct xt_sip *s, __u64 m)
{
	s->v3 ^= m;
	xt_sip_round(s);
	xt_sip_round(s);
	s->v0 ^= m;
}

/* The last block (the message's byte count in its top byte, no bytes left
 * over: the message is whole words) and the finalization. */
XT_INLINE __u64 xt_sip_final(struct xt_sip *s, __u64 message_bytes)
{
	xt_sip_block(s, message_bytes << 56);
	s->v2 ^= 0xff;
	xt_sip_round(s);
	xt_sip_round(s);
	xt_sip_round(s);
	xt_sip_round(s);
	return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

/* The MAC of a TCP connection attempt from src:sport to dst:dport
 * (src as stored in a packet, IPv4 in the first four bytes of 16; dst the
 * same as two words; ports as on the wire) in cookie period `period` (XT_COOKIE_PERIOD_SECONDS
 * of the program's clock each): its low half is the cookie, its high half
 * the sequence number of the SYN-ACK that carries it. */
XT_INLINE __u64 xt_cookie(const __u64 key[2], __u8 family, const __u8 src[16], const __u64 dst[2], __u16 sport,
			  __u16 dport, __u32 period)
{
	__u64 src0, src1;
	__builtin_memcpy(&src0, src, 8);
	__builtin_memcpy(&src1, src + 8, 8);
	struct xt_sip s;
	xt_sip_init(&s, key);
	xt_sip_block(&s, (__u64)family << 48 | (__u64)sport << 32 | (__u64)dport << 16);
	xt_sip_block(&s, period);
	xt_sip_block(&s, src0);
	xt_sip_block(&s, src1);
	xt_sip_block(&s, dst[0]);
	xt_sip_block(&s, dst[1]);
	return xt_sip_final(&s, 6 * 8);
}

#endif /* XTHROTTLE_COOKIE_H */
