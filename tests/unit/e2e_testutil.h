/*
 * e2e_testutil.h - shared by test_x3dh.c and test_ratchet.c: a deterministic
 * randombytes implementation (installed before sodium_init, so every key the
 * modules generate is reproducible) and helpers to make devices.
 */
#ifndef VALISE_E2E_TESTUTIL_H
#define VALISE_E2E_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "x3dh.h"

/* ChaCha20 keystream under a fixed key, a fresh nonce per call. */
static uint8_t e2e_rng_key[crypto_stream_chacha20_KEYBYTES];
static uint64_t e2e_rng_counter;

static inline void e2e_rng_seed(uint8_t seed)
{
    memset(e2e_rng_key, seed, sizeof(e2e_rng_key));
    e2e_rng_counter = 0;
}

static inline void e2e_rng_buf(void *const out, const size_t n)
{
    uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = {0};

    for (size_t i = 0; i < sizeof(nonce); i++)
        nonce[i] = (uint8_t)(e2e_rng_counter >> (8 * i));
    e2e_rng_counter++;
    crypto_stream_chacha20(out, n, nonce, e2e_rng_key);
}

static inline uint32_t e2e_rng_random(void)
{
    uint8_t b[4];

    e2e_rng_buf(b, sizeof(b));
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

static inline const char *e2e_rng_name(void)
{
    return "valise-test-deterministic";
}

static randombytes_implementation e2e_rng_impl = {
    .implementation_name = e2e_rng_name,
    .random = e2e_rng_random,
    .stir = NULL,
    .uniform = NULL,
    .buf = e2e_rng_buf,
    .close = NULL,
};

/* Call first thing in main(). */
static inline void e2e_rng_install(void)
{
    e2e_rng_seed(0x5a);
    if (randombytes_set_implementation(&e2e_rng_impl) != 0 || sodium_init() < 0) {
        fprintf(stderr, "cannot install the test RNG\n");
        exit(1);
    }
}

/* One device: Ed25519 signing key, X25519 identity key, one signed and one one-time prekey. */
struct e2e_device {
    struct x3dh_party party;
    uint8_t sign_pk[X3DH_SIGN_PK_LEN], sign_sk[X3DH_SIGN_SK_LEN];
    uint8_t ik_sk[X3DH_SK_LEN];
    uint32_t spk_id;
    uint8_t spk_pk[X3DH_PK_LEN], spk_sk[X3DH_SK_LEN], spk_sig[X3DH_SIG_LEN];
    uint32_t opk_id;
    uint8_t opk_pk[X3DH_PK_LEN], opk_sk[X3DH_SK_LEN];
};

/* Secrets from a label so every test run has the same keys. */
static inline void e2e_fill(uint8_t *out, size_t n, uint8_t label, uint8_t what)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(label * 31u + what * 7u + i * 13u + 1u);
}

static inline int e2e_device_make(struct e2e_device *d, uint8_t label)
{
    uint8_t seed[crypto_sign_SEEDBYTES];

    memset(d, 0, sizeof(*d));
    e2e_fill(d->party.device_id, X3DH_DEVICE_ID_LEN, label, 1);
    e2e_fill(seed, sizeof(seed), label, 2);
    e2e_fill(d->ik_sk, X3DH_SK_LEN, label, 3);
    e2e_fill(d->spk_sk, X3DH_SK_LEN, label, 4);
    e2e_fill(d->opk_sk, X3DH_SK_LEN, label, 5);
    d->spk_id = 0x01000000u + label;
    d->opk_id = 0x02000000u + label;
    if (crypto_sign_seed_keypair(d->sign_pk, d->sign_sk, seed) != 0 ||
        x3dh_public(d->party.identity_pk, d->ik_sk) != 0 ||
        x3dh_public(d->spk_pk, d->spk_sk) != 0 || x3dh_public(d->opk_pk, d->opk_sk) != 0 ||
        x3dh_spk_sign(d->spk_sig, d->party.device_id, d->spk_id, d->spk_pk, d->sign_sk) != 0)
        return -1;
    return 0;
}

static inline void e2e_bundle_of(struct x3dh_bundle *b, const struct e2e_device *d, int with_opk)
{
    memset(b, 0, sizeof(*b));
    b->owner = d->party;
    b->spk_id = d->spk_id;
    memcpy(b->spk_pk, d->spk_pk, X3DH_PK_LEN);
    memcpy(b->spk_sig, d->spk_sig, X3DH_SIG_LEN);
    if (with_opk) {
        b->has_opk = 1;
        b->opk_id = d->opk_id;
        memcpy(b->opk_pk, d->opk_pk, X3DH_PK_LEN);
    }
}

/*
 * Points of small order on Curve25519 as u-coordinates below 2^255 (test
 * data; the tests also set the top bit of each, which RFC 7748 5 masks). Source: the list published
 * with Curve25519 (https://cr.yp.to/ecdh.html, "How do I validate Curve25519 public keys?") as used
 * in libsodium's test suite (ISC licence). The test checks them against libsodium's own
 * crypto_scalarmult, not against our copy.
 */
static const uint8_t e2e_small_order[][32] __attribute__((unused)) = {
    /* 0 (order 4) */
    {0},
    /* 1 (order 1) */
    {1},
    /* order 8 */
    {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
     0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
     0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
    /* order 8 */
    {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1,
     0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c,
     0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
    /* p - 1 (order 2) */
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    /* p (= 0, non-canonical) */
    {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    /* p + 1 (= 1, non-canonical) */
    {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
};
enum { E2E_N_SMALL_ORDER = sizeof(e2e_small_order) / sizeof(e2e_small_order[0]) };

#endif
