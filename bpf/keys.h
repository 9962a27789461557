/* SPDX-License-Identifier: MIT */
/*
 * The keys and hashes a packet is looked up under: the source masked to a
 * prefix, the rule table's and the bucket table's keys, and the hashes that
 * place sources in the caches and the bucket table. Pure: compiles for the BPF
 * target and the host.
 *
 * Addresses are kept in network byte order; masking works on them as two
 * host-order words (both BPF and the hosts we build for are little-endian).
 */
#ifndef XTHROTTLE_KEYS_H
#define XTHROTTLE_KEYS_H

#include "pure.h"
#include "parse.h"
#include <xthrottle/abi.h>

/* Rule table key for a packet's source under one match (a level, a
 * protocol, a port range; zeros where the level has none): the full
 * address, so the trie finds the longest prefix of the packet's own family
 * that covers it among the rules of exactly that match. */
XT_INLINE void xt_rule_key_for(const struct xt_pkt *pkt, __u8 level, __u8 proto, __u16 lo, __u16 hi,
			       struct xt_rule_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->prefixlen = XT_LPM_MATCH_BITS + (pkt->family == XT_FAMILY_V4 ? 32 : 128);
	key->family = pkt->family;
	key->level = level;
	key->proto = proto;
	key->port_lo = lo;
	key->port_hi = hi;
	__builtin_memcpy(key->addr, pkt->addr, sizeof(key->addr));
}

XT_INLINE __u64 xt_load64(const __u8 *p)
{
	__u64 v;
	__builtin_memcpy(&v, p, sizeof(v));
	return v;
}

XT_INLINE __u64 xt_be64(const __u8 *p)
{
	return __builtin_bswap64(xt_load64(p));
}

XT_INLINE void xt_store_be64(__u8 *p, __u64 v)
{
	v = __builtin_bswap64(v);
	__builtin_memcpy(p, &v, sizeof(v));
}

/* The top len bits of a word (len clamped to 0..64). */
XT_INLINE __u64 xt_prefix_mask(int len)
{
	return len <= 0 ? 0 : len >= 64 ? ~0ULL : ~0ULL << (64 - len);
}

/* The address masked to its first len bits, as two host-order words. */
XT_INLINE void xt_mask_addr(const __u8 *addr, int len, __u64 out[2])
{
	out[0] = xt_be64(addr) & xt_prefix_mask(len);
	out[1] = xt_be64(addr + 8) & xt_prefix_mask(len - 64);
}

/* Bucket table key: the source masked to the rule's per_len, so every source
 * in one /per_len shares one bucket. */
XT_INLINE void xt_bucket_key_for(const struct xt_pkt *pkt, __u32 rule_id, __u8 per_len,
				 struct xt_bucket_key *key)
{
	__u64 w[2];
	xt_mask_addr(pkt->addr, per_len, w);
	__builtin_memset(key, 0, sizeof(*key));
	key->rule_id = rule_id;
	key->family = pkt->family;
	key->per_len = per_len;
	xt_store_be64(key->addr, w[0]);
	xt_store_be64(key->addr + 8, w[1]);
}

/* A keyed hash of three words, for the slots of the hot cache, the bucket
 * table and the rule cache. key is the state's random secret (struct
 * xt_config): without it nobody can tell which addresses share a slot, so
 * nobody can aim a flood at one. Each word is xored with the key and
 * multiplied on its own (the three at once), the products are folded
 * together shifted by different amounts (the high bits of a product are
 * the mixed ones), and the fold is multiplied once more.
 * A multiply carries a flip of any input bit but the top one into bits
 * that depend on the key; a flip of the top bit flips the product's top
 * bit alone, whatever the key. So what a word's top bit does must never
 * meet, at the same place, what another's does: shifted apart, each lands
 * on its own bit, which the last multiply spreads. (Folding each word into
 * the running product, as before, let one word's top bit, shifted down,
 * be cancelled by the next word's bits there: two addresses differing in
 * bit 63 of one half and bits 63 and 31 of the other shared every slot
 * for every key.) Callers take their index from the HIGH bits. Not a
 * cryptographic hash, and nothing needs one: a collision costs a lookup,
 * never a wrong verdict, since every slot holds the full key it is for.
 * Two multiplies in series: a few ns. */
XT_INLINE __u64 xt_hash_words(const __u64 key[2], __u64 a, __u64 b, __u64 c)
{
	const __u64 ha = (a ^ key[0]) * 0x9e3779b97f4a7c15ULL;
	const __u64 hb = (b ^ key[1]) * 0xc2b2ae3d27d4eb4fULL;
	const __u64 hc = (c ^ key[0] ^ key[1]) * 0x165667b19e3779f9ULL;
	__u64 h = ha ^ (hb >> 11) ^ (hc >> 22);
	h = (h ^ (h >> 32)) * 0xd6e8feb86659fd93ULL;
	return h ^ (h >> 29);
}

/* The top `bits` bits of a hash (1 <= bits <= 63). */
#define XT_TOP_BITS(h, bits) ((__u32)((h) >> (64 - (bits))))

/* Hash of a raw source and its packet's class (the hot cache's index). */
XT_INLINE __u64 xt_hash_source(const __u64 hash_key[2], const struct xt_pkt *pkt, __u16 cls)
{
	return xt_hash_words(hash_key, pkt->family | (__u64)cls << 8, xt_load64(pkt->addr), xt_load64(pkt->addr + 8));
}

/* Hash of a bucket key (its set in the bucket table, and its fingerprint). */
XT_INLINE __u64 xt_hash_bucket(const __u64 hash_key[2], const struct xt_bucket_key *key)
{
	return xt_hash_words(hash_key, (__u64)key->rule_id << 16 | (__u64)key->family << 8 | key->per_len,
			     xt_load64(key->addr), xt_load64(key->addr + 8));
}

#endif /* XTHROTTLE_KEYS_H */
