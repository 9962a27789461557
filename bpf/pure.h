/* SPDX-License-Identifier: MIT */
/*
 * What the pure headers (parse.h, bucket.h) need to compile both for the BPF
 * target, where every helper must be inlined, and for the host, where tests
 * and fuzzers call the same code.
 */
#ifndef XTHROTTLE_PURE_H
#define XTHROTTLE_PURE_H

#include <linux/types.h>

#ifdef __bpf__
#define XT_INLINE static __attribute__((always_inline)) inline
#define XT_UNROLL _Pragma("unroll")
/* A loop the verifier walks instead: smaller code, where the loop is in a
 * global function checked once. */
#define XT_NO_UNROLL _Pragma("clang loop unroll(disable)")
/* The compiler forgets how x was computed: it may not compute a packet
 * pointer again from its parts after the bounds check (the verifier would
 * see a new pointer, unchecked). */
#define XT_OPAQUE(x) asm volatile("" : "+r"(x))
/* A function the program calls rather than inlines (a static subprogram,
 * verified in its caller's context): one copy of a path few packets take. */
#define XT_OUT_OF_LINE static __attribute__((noinline))
#else
#define XT_OUT_OF_LINE static inline
#define XT_INLINE static inline
#define XT_OPAQUE(x) ((void)0)
#define XT_UNROLL
#define XT_NO_UNROLL
#endif

#endif /* XTHROTTLE_PURE_H */
