/* test_x3dh.c - X3DH agreement, bundle verification, key checks, prekey message codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "hkdf.h"
#include "sig.h"
#include "x3dh.h"

#include "e2e_testutil.h"

static struct e2e_device alice, bob;

static int setup(void **state)
{
    (void)state;
    if (e2e_device_make(&alice, 1) != 0 || e2e_device_make(&bob, 2) != 0)
        return -1;
    return 0;
}

/* Both sides agree, with and without a one-time prekey, and SK depends on it. */
static void agree(int with_opk, uint8_t sk_a[32])
{
    struct x3dh_bundle b;
    struct x3dh_init_header hdr;
    uint8_t sk_b[32];

    e2e_bundle_of(&b, &bob, with_opk);
    assert_int_equal(x3dh_initiate(sk_a, &hdr, &b, bob.sign_pk, alice.ik_sk), 0);
    assert_int_equal(hdr.spk_id, bob.spk_id);
    assert_int_equal(hdr.has_opk, with_opk);
    assert_int_equal(hdr.opk_id, with_opk ? bob.opk_id : 0);
    assert_int_equal(x3dh_pk_check(hdr.ek_pk), 0);
    assert_int_equal(x3dh_respond(sk_b, &hdr, bob.ik_sk, bob.spk_sk, with_opk ? bob.opk_sk : NULL,
                                  alice.party.identity_pk),
                     0);
    assert_memory_equal(sk_a, sk_b, 32);
    assert_false(sodium_is_zero(sk_a, 32));
}

static void test_agree_with_opk(void **state)
{
    uint8_t sk[32];

    (void)state;
    agree(1, sk);
}

static void test_agree_without_opk(void **state)
{
    uint8_t sk[32];

    (void)state;
    agree(0, sk);
}

/* Two runs use two ephemeral keys: two different SKs. */
static void test_fresh_ephemeral(void **state)
{
    uint8_t sk1[32], sk2[32];

    (void)state;
    agree(1, sk1);
    agree(1, sk2);
    assert_memory_not_equal(sk1, sk2, 32);
}

/*
 * SK is exactly the formula of X3DH 2.2 / 3.3, recomputed here from the raw
 * primitives: HKDF(0xFF*32 || DH1 || DH2 || DH3 || DH4, salt 0^32, "valise/v1/x3dh").
 * The deterministic RNG is replayed to learn the ephemeral secret.
 */
static void test_sk_is_the_spec_formula(void **state)
{
    struct x3dh_bundle b;
    struct x3dh_init_header hdr;
    uint8_t sk[32], ek_sk[32], ek_pk[32], ikm[160], want[32];
    static const char info[] = "valise/v1/x3dh";

    (void)state;
    for (int with_opk = 0; with_opk <= 1; with_opk++) {
        e2e_bundle_of(&b, &bob, with_opk);
        e2e_rng_seed(0x77);
        assert_int_equal(x3dh_initiate(sk, &hdr, &b, bob.sign_pk, alice.ik_sk), 0);
        e2e_rng_seed(0x77);
        randombytes_buf(ek_sk, sizeof(ek_sk));
        assert_int_equal(crypto_scalarmult_base(ek_pk, ek_sk), 0);
        assert_memory_equal(ek_pk, hdr.ek_pk, 32);
        memset(ikm, 0xff, 32);
        assert_int_equal(crypto_scalarmult(ikm + 32, alice.ik_sk, bob.spk_pk), 0);
        assert_int_equal(crypto_scalarmult(ikm + 64, ek_sk, bob.party.identity_pk), 0);
        assert_int_equal(crypto_scalarmult(ikm + 96, ek_sk, bob.spk_pk), 0);
        assert_int_equal(crypto_scalarmult(ikm + 128, ek_sk, bob.opk_pk), 0);
        assert_int_equal(hkdf_sha256(want, 32, NULL, 0, ikm, with_opk ? 160 : 128,
                                     (const uint8_t *)info, sizeof(info) - 1),
                         0);
        assert_memory_equal(sk, want, 32);
    }
}

static void expect_initiate_fails(const struct x3dh_bundle *b, const uint8_t *sign_pk, int want)
{
    struct x3dh_init_header hdr;
    uint8_t sk[32];

    memset(sk, 0xaa, sizeof(sk));
    assert_int_equal(x3dh_initiate(sk, &hdr, b, sign_pk, alice.ik_sk), want);
    assert_true(sodium_is_zero(sk, sizeof(sk)));
}

static void test_bad_prekey_signature(void **state)
{
    struct x3dh_bundle b;
    uint8_t sig[64], body[X3DH_SPK_BODY_LEN];

    (void)state;
    /* Every single-bit flip of the signature. */
    for (size_t bit = 0; bit < 64 * 8; bit++) {
        e2e_bundle_of(&b, &bob, 1);
        b.spk_sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        expect_initiate_fails(&b, bob.sign_pk, VERR_BAD_SIGNATURE);
    }
    /* Another device's signing key. */
    e2e_bundle_of(&b, &bob, 1);
    expect_initiate_fails(&b, alice.sign_pk, VERR_BAD_SIGNATURE);
    /* Another prekey id, another prekey, another owner id: the signature binds all three. */
    e2e_bundle_of(&b, &bob, 1);
    b.spk_id++;
    expect_initiate_fails(&b, bob.sign_pk, VERR_BAD_SIGNATURE);
    e2e_bundle_of(&b, &bob, 1);
    memcpy(b.spk_pk, bob.opk_pk, 32);
    expect_initiate_fails(&b, bob.sign_pk, VERR_BAD_SIGNATURE);
    e2e_bundle_of(&b, &bob, 1);
    b.owner.device_id[0] ^= 1;
    expect_initiate_fails(&b, bob.sign_pk, VERR_BAD_SIGNATURE);
    /* The same body signed under another context is not a prekey signature. */
    memcpy(body, bob.party.device_id, 16);
    body[16] = (uint8_t)(bob.spk_id >> 24);
    body[17] = (uint8_t)(bob.spk_id >> 16);
    body[18] = (uint8_t)(bob.spk_id >> 8);
    body[19] = (uint8_t)bob.spk_id;
    memcpy(body + 20, bob.spk_pk, 32);
    assert_int_equal(sig_sign(sig, SIG_CTX_MESSAGE, body, sizeof(body), bob.sign_sk), 0);
    e2e_bundle_of(&b, &bob, 1);
    memcpy(b.spk_sig, sig, 64);
    expect_initiate_fails(&b, bob.sign_pk, VERR_BAD_SIGNATURE);
    /* ... and under the prekey context it is exactly the bundle's signature. */
    assert_int_equal(sig_sign(sig, SIG_CTX_PREKEY, body, sizeof(body), bob.sign_sk), 0);
    assert_memory_equal(sig, bob.spk_sig, 64);
    /* has_opk must be 0 or 1. */
    e2e_bundle_of(&b, &bob, 1);
    b.has_opk = 2;
    expect_initiate_fails(&b, bob.sign_pk, VERR_BAD_FORMAT);
}

/* libsodium itself refuses every listed point (and with the top bit set): the data is right. */
static void test_small_order_list_is_low_order(void **state)
{
    uint8_t out[32], pk[32];

    (void)state;
    for (size_t i = 0; i < E2E_N_SMALL_ORDER; i++) {
        memcpy(pk, e2e_small_order[i], 32);
        assert_int_equal(crypto_scalarmult(out, alice.ik_sk, pk), -1);
        pk[31] |= 0x80;
        assert_int_equal(crypto_scalarmult(out, alice.ik_sk, pk), -1);
    }
}

static void test_low_order_keys_rejected(void **state)
{
    uint8_t out[32], pk[32];

    (void)state;
    for (size_t i = 0; i < E2E_N_SMALL_ORDER; i++) {
        for (int top = 0; top <= 1; top++) {
            memcpy(pk, e2e_small_order[i], 32);
            if (top)
                pk[31] |= 0x80;
            assert_int_equal(x3dh_pk_check(pk), VERR_BAD_KEY);
            memset(out, 0xaa, sizeof(out));
            assert_int_equal(x3dh_dh(out, alice.ik_sk, pk), VERR_BAD_KEY);
            assert_true(sodium_is_zero(out, sizeof(out)));
        }
    }
    /* Every u >= p (19 values) and a valid key with the top bit set. */
    memset(pk, 0xff, 32);
    pk[31] = 0x7f;
    for (unsigned lo = 0xed; lo <= 0xff; lo++) {
        pk[0] = (uint8_t)lo;
        assert_int_equal(x3dh_pk_check(pk), VERR_BAD_KEY);
    }
    memcpy(pk, bob.spk_pk, 32);
    assert_int_equal(x3dh_pk_check(pk), 0);
    pk[31] |= 0x80;
    assert_int_equal(x3dh_pk_check(pk), VERR_BAD_KEY);
    /* p - 2 is a canonical ordinary point value: accepted by the check. */
    memset(pk, 0xff, 32);
    pk[31] = 0x7f;
    pk[0] = 0xeb;
    assert_int_equal(x3dh_pk_check(pk), 0);
}

static void test_random_keys_accepted(void **state)
{
    uint8_t pk[32], sk[32], out[32];

    (void)state;
    for (int i = 0; i < 500; i++) {
        assert_int_equal(x3dh_keypair(pk, sk), 0);
        assert_int_equal(x3dh_pk_check(pk), 0);
        assert_int_equal(x3dh_dh(out, alice.ik_sk, pk), 0);
    }
}

/* A bundle or a message carrying a low-order key never yields an SK. */
static void test_low_order_in_agreement(void **state)
{
    struct x3dh_bundle b;
    struct x3dh_init_header hdr;
    uint8_t sk[32], good_ek[32];
    const uint8_t *bad;

    (void)state;
    e2e_bundle_of(&b, &bob, 1);
    assert_int_equal(x3dh_initiate(sk, &hdr, &b, bob.sign_pk, alice.ik_sk), 0);
    memcpy(good_ek, hdr.ek_pk, 32);
    for (size_t i = 0; i < E2E_N_SMALL_ORDER; i++) {
        bad = e2e_small_order[i];
        /* Signed prekey: properly signed, still refused. */
        e2e_bundle_of(&b, &bob, 1);
        memcpy(b.spk_pk, bad, 32);
        /* x3dh_spk_sign refuses to sign it in the first place. */
        assert_int_equal(
            x3dh_spk_sign(b.spk_sig, b.owner.device_id, b.spk_id, b.spk_pk, bob.sign_sk),
            VERR_BAD_KEY);
        expect_initiate_fails(&b, bob.sign_pk, VERR_BAD_KEY);
        /* Identity key from the certificate. */
        e2e_bundle_of(&b, &bob, 1);
        memcpy(b.owner.identity_pk, bad, 32);
        expect_initiate_fails(&b, bob.sign_pk, VERR_BAD_KEY);
        /* One-time prekey. */
        e2e_bundle_of(&b, &bob, 1);
        memcpy(b.opk_pk, bad, 32);
        expect_initiate_fails(&b, bob.sign_pk, VERR_BAD_KEY);
        /* Responder: ephemeral key and initiator identity key. */
        memcpy(hdr.ek_pk, bad, 32);
        memset(sk, 0xaa, 32);
        assert_int_equal(
            x3dh_respond(sk, &hdr, bob.ik_sk, bob.spk_sk, bob.opk_sk, alice.party.identity_pk),
            VERR_BAD_KEY);
        assert_true(sodium_is_zero(sk, 32));
        memcpy(hdr.ek_pk, good_ek, 32);
        memset(sk, 0xaa, 32);
        assert_int_equal(x3dh_respond(sk, &hdr, bob.ik_sk, bob.spk_sk, bob.opk_sk, bad),
                         VERR_BAD_KEY);
        assert_true(sodium_is_zero(sk, 32));
    }
}

static void test_respond_mismatch(void **state)
{
    struct x3dh_bundle b;
    struct x3dh_init_header hdr;
    uint8_t ska[32], skb[32];

    (void)state;
    e2e_bundle_of(&b, &bob, 1);
    assert_int_equal(x3dh_initiate(ska, &hdr, &b, bob.sign_pk, alice.ik_sk), 0);
    /* The header says a one-time key was used, the caller gives none, and the reverse. */
    assert_int_equal(x3dh_respond(skb, &hdr, bob.ik_sk, bob.spk_sk, NULL, alice.party.identity_pk),
                     VERR_USAGE);
    hdr.has_opk = 0;
    assert_int_equal(
        x3dh_respond(skb, &hdr, bob.ik_sk, bob.spk_sk, bob.opk_sk, alice.party.identity_pk),
        VERR_USAGE);
    hdr.has_opk = 1;
    /* Wrong signed prekey secret, wrong one-time secret, wrong initiator identity: other SKs. */
    assert_int_equal(
        x3dh_respond(skb, &hdr, bob.ik_sk, bob.opk_sk, bob.opk_sk, alice.party.identity_pk), 0);
    assert_memory_not_equal(ska, skb, 32);
    assert_int_equal(
        x3dh_respond(skb, &hdr, bob.ik_sk, bob.spk_sk, bob.spk_sk, alice.party.identity_pk), 0);
    assert_memory_not_equal(ska, skb, 32);
    assert_int_equal(
        x3dh_respond(skb, &hdr, bob.ik_sk, bob.spk_sk, bob.opk_sk, bob.party.identity_pk), 0);
    assert_memory_not_equal(ska, skb, 32);
    assert_int_equal(
        x3dh_respond(skb, &hdr, bob.ik_sk, bob.spk_sk, bob.opk_sk, alice.party.identity_pk), 0);
    assert_memory_equal(ska, skb, 32);
}

/* ---- prekey message codec ---- */

static const uint8_t inner_bytes[] = {0x01, 0x01, 0xde, 0xad, 0xbe, 0xef};

static void sample_msg(struct x3dh_prekey_msg *m, int with_opk)
{
    memset(m, 0, sizeof(*m));
    m->sender = alice.party;
    memcpy(m->init.ek_pk, bob.opk_pk, 32);
    m->init.spk_id = 0x01020304;
    m->init.has_opk = (uint8_t)with_opk;
    m->init.opk_id = with_opk ? 0x0a0b0c0du : 0;
    m->inner = inner_bytes;
    m->inner_len = sizeof(inner_bytes);
}

static void encode_msg(const struct x3dh_prekey_msg *m, struct buf *out)
{
    assert_int_equal(buf_init(out, 1 << 21, 0), 0);
    assert_int_equal(x3dh_prekey_msg_encode(m, out), 0);
}

static void test_prekey_msg_roundtrip(void **state)
{
    struct x3dh_prekey_msg m, p;
    struct buf out, again;
    uint8_t type = 0;

    (void)state;
    for (int with_opk = 0; with_opk <= 1; with_opk++) {
        sample_msg(&m, with_opk);
        encode_msg(&m, &out);
        assert_int_equal(buf_size(&out), X3DH_PREKEY_MSG_FIXED + sizeof(inner_bytes));
        assert_int_equal(buf_data(&out)[0], E2E_WIRE_VERSION);
        assert_int_equal(buf_data(&out)[1], E2E_TYPE_PREKEY);
        assert_int_equal(x3dh_wire_type(buf_data(&out), buf_size(&out), &type), 0);
        assert_int_equal(type, E2E_TYPE_PREKEY);
        assert_int_equal(x3dh_prekey_msg_parse(&p, buf_data(&out), buf_size(&out)), 0);
        assert_memory_equal(&p.sender, &m.sender, sizeof(m.sender));
        assert_memory_equal(p.init.ek_pk, m.init.ek_pk, 32);
        assert_int_equal(p.init.spk_id, m.init.spk_id);
        assert_int_equal(p.init.has_opk, m.init.has_opk);
        assert_int_equal(p.init.opk_id, m.init.opk_id);
        assert_int_equal(p.inner_len, sizeof(inner_bytes));
        assert_memory_equal(p.inner, inner_bytes, sizeof(inner_bytes));
        /* The inner view points into the parsed bytes, not a copy. */
        assert_ptr_equal(p.inner, buf_data(&out) + X3DH_PREKEY_MSG_FIXED);
        encode_msg(&p, &again);
        assert_int_equal(buf_size(&again), buf_size(&out));
        assert_memory_equal(buf_data(&again), buf_data(&out), buf_size(&out));
        buf_free(&again);
        buf_free(&out);
    }
}

static void test_prekey_msg_truncated_trailing(void **state)
{
    struct x3dh_prekey_msg m, p;
    struct buf out;
    uint8_t *longer;
    size_t n;

    (void)state;
    sample_msg(&m, 1);
    encode_msg(&m, &out);
    n = buf_size(&out);
    for (size_t len = 0; len < n; len++)
        assert_int_not_equal(x3dh_prekey_msg_parse(&p, buf_data(&out), len), 0);
    assert_non_null(longer = malloc(n + 1));
    memcpy(longer, buf_data(&out), n);
    longer[n] = 0;
    assert_int_equal(x3dh_prekey_msg_parse(&p, longer, n + 1), VERR_TRAILING);
    free(longer);
    buf_free(&out);
}

/* Every single-bit flip: rejected, or parsed into a message that encodes to exactly those bytes. */
static void test_prekey_msg_bitflips(void **state)
{
    struct x3dh_prekey_msg m, p;
    struct buf out, again;
    uint8_t *flip;
    size_t n, accepted = 0;

    (void)state;
    sample_msg(&m, 1);
    encode_msg(&m, &out);
    n = buf_size(&out);
    assert_non_null(flip = malloc(n));
    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(flip, buf_data(&out), n);
        flip[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (x3dh_prekey_msg_parse(&p, flip, n) != 0)
            continue;
        accepted++;
        encode_msg(&p, &again);
        assert_int_equal(buf_size(&again), n);
        assert_memory_equal(buf_data(&again), flip, n);
        buf_free(&again);
    }
    /* Ids and inner bytes are not checked by the codec, versions, types and lengths are. */
    assert_true(accepted > 0 && accepted < n * 8);
    free(flip);
    buf_free(&out);
}

static void test_prekey_msg_strict_fields(void **state)
{
    struct x3dh_prekey_msg m, p;
    struct buf out;
    uint8_t *b;
    uint8_t type;

    (void)state;
    sample_msg(&m, 1);
    encode_msg(&m, &out);
    b = (uint8_t *)(uintptr_t)buf_data(&out);
    /* Version, then type. */
    b[0] = 2;
    assert_int_equal(x3dh_prekey_msg_parse(&p, b, buf_size(&out)), VERR_BAD_VERSION);
    assert_int_equal(x3dh_wire_type(b, buf_size(&out), &type), VERR_BAD_VERSION);
    b[0] = 1;
    b[1] = E2E_TYPE_RATCHET;
    assert_int_equal(x3dh_prekey_msg_parse(&p, b, buf_size(&out)), VERR_BAD_FORMAT);
    b[1] = 3;
    assert_int_equal(x3dh_prekey_msg_parse(&p, b, buf_size(&out)), VERR_BAD_FORMAT);
    assert_int_equal(x3dh_wire_type(b, buf_size(&out), &type), VERR_BAD_FORMAT);
    assert_int_equal(x3dh_wire_type(b, 1, &type), VERR_TRUNCATED);
    b[1] = E2E_TYPE_PREKEY;
    /* has_opk is 0 or 1; opk_id is 0 without a one-time key. */
    b[86] = 2;
    assert_int_equal(x3dh_prekey_msg_parse(&p, b, buf_size(&out)), VERR_BAD_FORMAT);
    b[86] = 0;
    assert_int_equal(x3dh_prekey_msg_parse(&p, b, buf_size(&out)), VERR_BAD_FORMAT);
    memset(b + 87, 0, 4);
    assert_int_equal(x3dh_prekey_msg_parse(&p, b, buf_size(&out)), 0);
    /* Low-order keys in the message. */
    memcpy(b + 50, e2e_small_order[2], 32);
    assert_int_equal(x3dh_prekey_msg_parse(&p, b, buf_size(&out)), VERR_BAD_KEY);
    memcpy(b + 50, m.init.ek_pk, 32);
    memset(b + 18, 0, 32);
    assert_int_equal(x3dh_prekey_msg_parse(&p, b, buf_size(&out)), VERR_BAD_KEY);
    memcpy(b + 18, m.sender.identity_pk, 32);
    assert_int_equal(x3dh_prekey_msg_parse(&p, b, buf_size(&out)), 0);
    /* A declared inner length over the cap is refused before anything else. */
    b[91] = 0xff;
    assert_int_equal(x3dh_prekey_msg_parse(&p, b, buf_size(&out)), VERR_TOO_LARGE);
    buf_free(&out);
    /* Empty inner message: refused by encoder and parser. */
    sample_msg(&m, 0);
    m.inner_len = 0;
    assert_int_equal(buf_init(&out, 1024, 0), 0);
    assert_int_equal(x3dh_prekey_msg_encode(&m, &out), VERR_USAGE);
    assert_int_equal(buf_size(&out), 0);
    m.inner_len = sizeof(inner_bytes);
    assert_int_equal(x3dh_prekey_msg_encode(&m, &out), 0);
    b = (uint8_t *)(uintptr_t)buf_data(&out);
    memset(b + 91, 0, 4);
    assert_int_equal(x3dh_prekey_msg_parse(&p, b, 95), VERR_BAD_FORMAT);
    buf_free(&out);
    /* An output buffer too small takes nothing. */
    assert_int_equal(buf_init(&out, 50, 0), 0);
    assert_int_equal(x3dh_prekey_msg_encode(&m, &out), VERR_TOO_LARGE);
    assert_int_equal(buf_size(&out), 0);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agree_with_opk),
        cmocka_unit_test(test_agree_without_opk),
        cmocka_unit_test(test_fresh_ephemeral),
        cmocka_unit_test(test_sk_is_the_spec_formula),
        cmocka_unit_test(test_bad_prekey_signature),
        cmocka_unit_test(test_small_order_list_is_low_order),
        cmocka_unit_test(test_low_order_keys_rejected),
        cmocka_unit_test(test_random_keys_accepted),
        cmocka_unit_test(test_low_order_in_agreement),
        cmocka_unit_test(test_respond_mismatch),
        cmocka_unit_test(test_prekey_msg_roundtrip),
        cmocka_unit_test(test_prekey_msg_truncated_trailing),
        cmocka_unit_test(test_prekey_msg_bitflips),
        cmocka_unit_test(test_prekey_msg_strict_fields),
    };

    e2e_rng_install();
    return cmocka_run_group_tests(tests, setup, NULL);
}
