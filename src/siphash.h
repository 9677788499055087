/*
 * siphash.h - SipHash, written from the paper's definition (section 2 of
 * Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012).
 *
 * The state is four 64-bit words initialised from the 128-bit key and four
 * constants ("somepseudorandomlygeneratedbytes").  The message is cut into
 * 8-byte little-endian words; the last word holds the 0 to 7 bytes left and,
 * in its top byte, the message length mod 256.  Each word m is absorbed as
 * v3 ^= m, c SipRounds, v0 ^= m; then v2 ^= 0xff, d SipRounds, and the
 * output is v0 ^ v1 ^ v2 ^ v3.
 *
 * The store's hashes choose chains and throttle-table entries from keys
 * and names that clients pick; what they need is that nobody without the
 * segment's key can find many inputs that land together.  A client never
 * sees a hash value, only, at best, timings.  For that use Linux (hsiphash
 * on 64-bit) and CPython (its string hash since 3.11) take SipHash-1-3:
 * half the rounds of SipHash-2-4, the paper's conservative choice for a
 * MAC, where an attacker sees outputs.  SIP_C and SIP_D below say which
 * the store runs; both go through one core below, so the test
 * vectors of SipHash-2-4 check the core the store's hash is made of.
 *
 * SipHash-c-d runs c SipRounds per 8-byte message word and d at the end.
 * siphash24() is the paper's SipHash-2-4 of a byte string, the function
 * the reference test vectors check; siphash_word() is SipHash-c-d of the
 * message bytes || LE32(word), with the rounds the store's hash uses
 * (SIP_C, SIP_D below), so that a user id or a table's kind goes in
 * without copying the key bytes before it; siphash_bytes() is the same
 * rounds over a plain byte string, for the tests.  All run one core.
 */
#ifndef SIPHASH_H
#define SIPHASH_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SIP_KEY_LEN	16

/* The rounds of the store's hashes (siphash_word()): see above. */
#define SIP_C		1
#define SIP_D		3

struct sipkey {
	uint64_t	k0, k1;		/* key bytes 0-7 and 8-15, LE */
};

#define SIP_ROTL(x, b)	(((x) << (b)) | ((x) >> (64 - (b))))

struct sipstate {
	uint64_t	v0, v1, v2, v3;
};

static inline uint64_t
sip_load_le64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline void
sipkey_from_bytes(struct sipkey *k, const unsigned char b[SIP_KEY_LEN])
{
	k->k0 = sip_load_le64(b);
	k->k1 = sip_load_le64(b + 8);
}

/* The paper's SipRound: two ARX half-rounds over the four words. */
static inline void
sip_round(struct sipstate *s)
{
	s->v0 += s->v1;
	s->v2 += s->v3;
	s->v1 = SIP_ROTL(s->v1, 13);
	s->v3 = SIP_ROTL(s->v3, 16);
	s->v1 ^= s->v0;
	s->v3 ^= s->v2;
	s->v0 = SIP_ROTL(s->v0, 32);
	s->v2 += s->v1;
	s->v0 += s->v3;
	s->v1 = SIP_ROTL(s->v1, 17);
	s->v3 = SIP_ROTL(s->v3, 21);
	s->v1 ^= s->v2;
	s->v3 ^= s->v0;
	s->v2 = SIP_ROTL(s->v2, 32);
}

static inline void
sip_absorb(struct sipstate *s, uint64_t m, int c)
{
	int i;

	s->v3 ^= m;
#pragma GCC unroll 4
	for (i = 0; i < c; i++)
		sip_round(s);
	s->v0 ^= m;
}

/* The 0 to 7 bytes left of the message, as the low bytes of a word. */
static inline uint64_t
sip_tail(const unsigned char *p, size_t len)
{
	uint64_t t = 0;

	switch (len) {
	case 7:
		t |= (uint64_t)p[6] << 48;
		/* FALLTHROUGH */
	case 6:
		t |= (uint64_t)p[5] << 40;
		/* FALLTHROUGH */
	case 5:
		t |= (uint64_t)p[4] << 32;
		/* FALLTHROUGH */
	case 4:
		t |= (uint64_t)p[3] << 24;
		/* FALLTHROUGH */
	case 3:
		t |= (uint64_t)p[2] << 16;
		/* FALLTHROUGH */
	case 2:
		t |= (uint64_t)p[1] << 8;
		/* FALLTHROUGH */
	case 1:
		t |= p[0];
	}
	return t;
}

/*
 * SipHash-c-d of p[0..len) || LE32(word) when has_word, of p[0..len)
 * alone otherwise.  The word goes last, into the bytes the last word of
 * the message leaves free (and the word before, when fewer than 4 are
 * free), so that a 16-byte key under a user id costs 3 words, not 4.
 * Inlined with constant c, d and has_word, so each caller below is a
 * straight-line function of its own, and the store's hash is inlined
 * into its callers (callgrind, a 16-byte key: 136 instructions inlined,
 * 158 through a call).
 */
static inline __attribute__((always_inline)) uint64_t
sip_core(const struct sipkey *k, int c, int d, int has_word, uint32_t word,
    const unsigned char *p, size_t len)
{
	struct sipstate s;
	uint64_t total = (uint64_t)len + (has_word ? 4 : 0), t;
	int i;

	s.v0 = k->k0 ^ 0x736f6d6570736575ULL;
	s.v1 = k->k1 ^ 0x646f72616e646f6dULL;
	s.v2 = k->k0 ^ 0x6c7967656e657261ULL;
	s.v3 = k->k1 ^ 0x7465646279746573ULL;
	for (; len >= 8; p += 8, len -= 8)
		sip_absorb(&s, sip_load_le64(p), c);
	t = sip_tail(p, len);
	if (has_word) {
		/* bytes len .. len+3 of the word; past 8, the next word */
		t |= (uint64_t)word << (8 * len);
		if (len >= 4) {
			sip_absorb(&s, t, c);
			t = len > 4 ? (uint64_t)word >> (8 * (8 - len)) : 0;
		}
	}
	sip_absorb(&s, t | total << 56, c);
	s.v2 ^= 0xff;
#pragma GCC unroll 4
	for (i = 0; i < d; i++)
		sip_round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

static inline uint64_t
siphash24(const struct sipkey *k, const void *msg, size_t len)
{
	return sip_core(k, 2, 4, 0, 0, msg, len);
}

static inline uint64_t
siphash_bytes(const struct sipkey *k, const void *msg, size_t len)
{
	return sip_core(k, SIP_C, SIP_D, 0, 0, msg, len);
}

static inline __attribute__((always_inline)) uint64_t
siphash_word(const struct sipkey *k, const void *msg, size_t len,
    uint32_t word)
{
	return sip_core(k, SIP_C, SIP_D, 1, word, msg, len);
}

#endif
