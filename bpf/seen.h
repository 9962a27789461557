/* SPDX-License-Identifier: MIT */
/*
 * The seen filter's stamps: one byte per slot saying when a bucket hashing
 * there was last used, so an untracked (spoofed) source costs no bucket
 * lookup (docs/design.md). Pure.
 */
#ifndef XTHROTTLE_SEEN_H
#define XTHROTTLE_SEEN_H

#include "pure.h"
#include <xthrottle/abi.h>

/* A seen stamp: the clock in units of 2^seen_shift ticks, modulo 256. 0 marks
 * a slot nothing was stamped into, so a stamp that would be 0 is written as
 * 255: one unit older than the truth, which only shortens that slot's idle
 * window by one unit. (Not a modulo by 255: in BPF that is a division.) */
XT_INLINE __u8 xt_seen_now(const struct xt_config *cfg, __u64 now)
{
	return (__u8)(now >> cfg->seen_shift);
}

XT_INLINE __u8 xt_seen_stamp(const struct xt_config *cfg, __u64 now)
{
	__u8 stamp = xt_seen_now(cfg, now);
	return stamp ? stamp : 255;
}

/* Whether a slot's stamp is recent enough that a bucket hashing there may
 * still be tracked. Stamps wrap every 256 units, so an ancient stamp can look
 * recent again: that only costs one bucket lookup that finds nothing. */
XT_INLINE int xt_seen_recent(const struct xt_config *cfg, __u8 stamp, __u64 now)
{
	return stamp && (__u8)(xt_seen_now(cfg, now) - stamp) <= cfg->seen_idle;
}

#endif /* XTHROTTLE_SEEN_H */
