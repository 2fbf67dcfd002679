/* sha256.c - SHA-256 for the Merkle tree: x86 SHA extensions or libsodium (see sha256.h). */
#include "sha256.h"

#include <stdatomic.h>
#include <string.h>

#include <sodium.h>

_Static_assert(SHA256_LEN == crypto_hash_sha256_BYTES, "SHA-256 is 32 bytes");

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SHA256_HAVE_NI 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define SHA256_HAVE_NI 0
#endif

enum { BLOCK = 64, LEN_AT = BLOCK - 8 };

/* -1: not yet asked; 0 or 1: what CPUID said. Read by both relay threads. */
static atomic_int cpu_has_ni = -1;
static atomic_int accel_allowed = 1;

#if SHA256_HAVE_NI

/* FIPS 180-4 4.2.2: the round constants. */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* FIPS 180-4 5.3.3: the initial hash value. */
static const uint32_t IV[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static int ni_detect(void)
{
    unsigned a, b, c, d;

    /* SHA (leaf 7, EBX bit 29), SSSE3 (leaf 1, ECX bit 9), SSE4.1 (ECX bit 19) */
    if (__get_cpuid(1, &a, &b, &c, &d) == 0 || (c & (1u << 9)) == 0 || (c & (1u << 19)) == 0)
        return 0;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0)
        return 0;
    return (b & (1u << 29)) != 0;
}

/*
 * FIPS 180-4 6.2.2 on n 64-byte blocks with SHA256RNDS2 (two rounds each),
 * SHA256MSG1 and SHA256MSG2 (the message schedule, four words at a time).
 * The instructions keep the working variables as {A,B,E,F} and {C,D,G,H}.
 */
__attribute__((target("sha,sse4.1,ssse3"))) static void ni_blocks(uint32_t h[8], const uint8_t *p,
                                                                  size_t n)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i t, abef, cdgh, abef0, cdgh0, w[4], m;

    /* h as {A,B,C,D},{E,F,G,H} into the instructions' {F,E,B,A},{H,G,D,C} lanes */
    t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(const void *)h), 0xB1);
    cdgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(const void *)(h + 4)), 0x1B);
    abef = _mm_alignr_epi8(t, cdgh, 8);
    cdgh = _mm_blend_epi16(cdgh, t, 0xF0);
    for (; n > 0; n--, p += BLOCK) {
        abef0 = abef;
        cdgh0 = cdgh;
        /* unrolled, so w[] stays in registers: about twice as fast on a leaf */
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            if (g < 4) {
                w[g] = _mm_shuffle_epi8(
                    _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * g)), bswap);
            } else {
                /* W[4g..4g+3]: w[g&3] holds group g-4, then g-3, g-2, g-1 follow it */
                __m128i g3 = w[(g + 1) & 3], g2 = w[(g + 2) & 3], g1 = w[(g + 3) & 3];

                t = _mm_sha256msg1_epu32(w[g & 3], g3);
                t = _mm_add_epi32(t, _mm_alignr_epi8(g1, g2, 4));
                w[g & 3] = _mm_sha256msg2_epu32(t, g1);
            }
            m = _mm_add_epi32(w[g & 3],
                              _mm_loadu_si128((const __m128i *)(const void *)(K + 4 * g)));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(m, 0x0E));
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    t = _mm_shuffle_epi32(abef, 0x1B);
    cdgh = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)(void *)h, _mm_blend_epi16(t, cdgh, 0xF0));
    _mm_storeu_si128((__m128i *)(void *)(h + 4), _mm_alignr_epi8(cdgh, t, 8));
}

/* Feeds len bytes: completes the partial block first, then whole blocks from p in place. */
static void ni_feed(uint32_t h[8], uint8_t blk[BLOCK], size_t *used, const uint8_t *p, size_t len)
{
    size_t take;

    if (*used > 0) {
        take = BLOCK - *used < len ? BLOCK - *used : len;
        memcpy(blk + *used, p, take);
        *used += take;
        p += take;
        len -= take;
        if (*used < BLOCK)
            return;
        ni_blocks(h, blk, 1);
        *used = 0;
    }
    if (len >= BLOCK) {
        ni_blocks(h, p, len / BLOCK);
        p += len - len % BLOCK;
        len %= BLOCK;
    }
    if (len > 0)
        memcpy(blk, p, len);
    *used = len;
}

static void ni_hash(uint8_t out[static SHA256_LEN], const uint8_t *a, size_t alen, const uint8_t *b,
                    size_t blen)
{
    uint32_t h[8];
    uint8_t blk[BLOCK];
    size_t used = 0;
    uint64_t bits = ((uint64_t)alen + (uint64_t)blen) * 8u;

    memcpy(h, IV, sizeof(h));
    if (alen > 0)
        ni_feed(h, blk, &used, a, alen);
    if (blen > 0)
        ni_feed(h, blk, &used, b, blen);
    /* FIPS 180-4 5.1.1: 0x80, zeros, the length in bits as 64 bits big-endian */
    blk[used++] = 0x80;
    if (used > LEN_AT) {
        memset(blk + used, 0, BLOCK - used);
        ni_blocks(h, blk, 1);
        used = 0;
    }
    memset(blk + used, 0, LEN_AT - used);
    for (size_t i = 0; i < 8; i++)
        blk[LEN_AT + i] = (uint8_t)(bits >> (56 - 8 * i));
    ni_blocks(h, blk, 1);
    for (size_t i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

#endif

int sha256_accelerated(void)
{
    int v = atomic_load_explicit(&cpu_has_ni, memory_order_relaxed);

    if (v < 0) {
#if SHA256_HAVE_NI
        v = ni_detect();
#else
        v = 0;
#endif
        atomic_store_explicit(&cpu_has_ni, v, memory_order_relaxed);
    }
    return v && atomic_load_explicit(&accel_allowed, memory_order_relaxed);
}

void sha256_allow_accel(int allow)
{
    atomic_store_explicit(&accel_allowed, allow != 0, memory_order_relaxed);
}

void sha256_two(uint8_t out[static SHA256_LEN], const uint8_t *a, size_t alen, const uint8_t *b,
                size_t blen)
{
    crypto_hash_sha256_state st;

#if SHA256_HAVE_NI
    if (sha256_accelerated()) {
        ni_hash(out, a, alen, b, blen);
        return;
    }
#endif
    crypto_hash_sha256_init(&st);
    if (alen > 0)
        crypto_hash_sha256_update(&st, a, alen);
    if (blen > 0)
        crypto_hash_sha256_update(&st, b, blen);
    crypto_hash_sha256_final(&st, out);
}
