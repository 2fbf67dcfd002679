/*
 * test_ratchet.c - the Double Ratchet: conversations, out-of-order delivery,
 * MAX_SKIP, replay, reflection, forgery, tampering, skipped-key eviction, the
 * message and session codecs, and the worked example of PROTOCOL.md, part 3.
 * After every failed decryption the encoded session must be byte for byte
 * what it was before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "hkdf.h"
#include "ratchet.h"
#include "x3dh.h"

#include "e2e_testutil.h"

enum {
    SESSION_FIXED = 355, /* encoded session without skipped keys (PROTOCOL.md, part 3) */
    SKIPPED_WIRE = 72,
    ANY_ERROR = 1, /* for expect_decrypt_fails: any nonzero code */
};

static struct e2e_device alice, bob, carol;

static int setup(void **state)
{
    (void)state;
    if (e2e_device_make(&alice, 1) != 0 || e2e_device_make(&bob, 2) != 0 ||
        e2e_device_make(&carol, 3) != 0)
        return -1;
    return 0;
}

/* ---- helpers ---- */

struct pair {
    struct ratchet_session *a; /* initiator (alice) */
    struct ratchet_session *b; /* responder (bob) */
    struct x3dh_init_header hdr;
};

static void pair_make(struct pair *p)
{
    struct x3dh_bundle bundle;
    struct x3dh_init_header hdr;
    uint8_t ska[32], skb[32];

    e2e_bundle_of(&bundle, &bob, 1);
    assert_int_equal(x3dh_initiate(ska, &hdr, &bundle, bob.sign_pk, alice.ik_sk), 0);
    assert_int_equal(
        x3dh_respond(skb, &hdr, bob.ik_sk, bob.spk_sk, bob.opk_sk, alice.party.identity_pk), 0);
    assert_int_equal(ratchet_init_initiator(&p->a, ska, &hdr, &alice.party, &bob.party, bob.spk_pk),
                     0);
    assert_int_equal(ratchet_init_responder(&p->b, skb, &bob.party, &alice.party, bob.spk_sk), 0);
    p->hdr = hdr;
}

static void pair_free(struct pair *p)
{
    ratchet_session_free(p->a);
    ratchet_session_free(p->b);
}

static void session_bytes(const struct ratchet_session *s, struct buf *out)
{
    assert_int_equal(buf_init(out, 1 << 20, BUF_SECRET), 0);
    assert_int_equal(ratchet_session_encode(s, out), 0);
}

static size_t skipped_count(const struct ratchet_session *s)
{
    struct buf b;
    size_t n;

    session_bytes(s, &b);
    assert_true(buf_size(&b) >= SESSION_FIXED);
    assert_int_equal((buf_size(&b) - SESSION_FIXED) % SKIPPED_WIRE, 0);
    n = (buf_size(&b) - SESSION_FIXED) / SKIPPED_WIRE;
    buf_free(&b);
    return n;
}

/* Encrypt text into a fresh buffer msg. */
static void enc(struct ratchet_session *s, const char *text, struct buf *msg)
{
    assert_int_equal(buf_init(msg, RATCHET_MSG_MAX, 0), 0);
    assert_int_equal(ratchet_encrypt(s, (const uint8_t *)text, strlen(text), msg), 0);
    assert_int_equal(buf_size(msg), RATCHET_MSG_OVERHEAD + strlen(text));
}

static void dec_ok(struct ratchet_session *s, const struct buf *msg, const char *text)
{
    struct buf pt;
    int r;

    assert_int_equal(buf_init(&pt, RATCHET_MAX_PLAINTEXT, BUF_SECRET), 0);
    r = ratchet_decrypt(s, buf_data(msg), buf_size(msg), &pt);
    if (r != 0)
        fail_msg("decrypt of \"%s\": expected 0, saw %d (%s)", text, r, verr_str(r));
    assert_int_equal(buf_size(&pt), strlen(text));
    assert_memory_equal(buf_data(&pt), text, strlen(text));
    buf_free(&pt);
}

/*
 * Decryption must fail with want (ANY_ERROR: any code), append nothing to
 * the output, and leave the encoded session byte for byte unchanged.
 */
static void expect_decrypt_fails(struct ratchet_session *s, const uint8_t *m, size_t len, int want)
{
    struct buf before, after, pt;
    int r;

    session_bytes(s, &before);
    assert_int_equal(buf_init(&pt, RATCHET_MAX_PLAINTEXT, BUF_SECRET), 0);
    assert_int_equal(buf_put_u8(&pt, 0x5a), 0);
    r = ratchet_decrypt(s, m, len, &pt);
    if (want == ANY_ERROR) {
        if (r == 0)
            fail_msg("decrypt: expected an error, saw success");
    } else if (r != want) {
        fail_msg("decrypt: expected %d (%s), saw %d (%s)", want, verr_str(want), r, verr_str(r));
    }
    assert_int_equal(buf_size(&pt), 1);
    session_bytes(s, &after);
    assert_int_equal(buf_size(&after), buf_size(&before));
    assert_memory_equal(buf_data(&after), buf_data(&before), buf_size(&before));
    buf_free(&before);
    buf_free(&after);
    buf_free(&pt);
}

static void expect_buf_fails(struct ratchet_session *s, const struct buf *msg, int want)
{
    expect_decrypt_fails(s, buf_data(msg), buf_size(msg), want);
}

/* ---- conversations ---- */

static void test_first_exchange(void **state)
{
    struct x3dh_init_header hdr;
    struct pair p;
    struct buf m1, m2, m3;
    uint8_t junk[1] = {'x'};
    struct buf out;

    (void)state;
    pair_make(&p);
    /* Bob has no sending chain before Alice's first message (spec 3.3). */
    assert_int_equal(buf_init(&out, 1024, 0), 0);
    assert_int_equal(ratchet_encrypt(p.b, junk, 1, &out), VERR_PROTOCOL);
    assert_int_equal(buf_size(&out), 0);
    buf_free(&out);
    assert_int_equal(ratchet_session_received_any(p.a), 0);
    assert_int_equal(ratchet_session_received_any(p.b), 0);
    /* Alice keeps the X3DH header until Bob answers; Bob never has one. */
    assert_int_equal(ratchet_session_pending_prekey(p.b, &hdr), 0);
    assert_int_equal(ratchet_session_pending_prekey(p.a, &hdr), 1);
    assert_memory_equal(&hdr, &p.hdr, sizeof(hdr));
    enc(p.a, "hello bob", &m1);
    dec_ok(p.b, &m1, "hello bob");
    assert_int_equal(ratchet_session_pending_prekey(p.a, &hdr), 1);
    assert_int_equal(ratchet_session_pending_prekey(p.b, &hdr), 0);
    assert_int_equal(ratchet_session_received_any(p.b), 1);
    assert_int_equal(ratchet_session_received_any(p.a), 0);
    enc(p.b, "hello alice", &m2);
    dec_ok(p.a, &m2, "hello alice");
    assert_int_equal(ratchet_session_received_any(p.a), 1);
    assert_int_equal(ratchet_session_pending_prekey(p.a, &hdr), 0);
    assert_int_equal(ratchet_session_pending_prekey(p.b, &hdr), 0);
    {
        struct x3dh_party self, peer;
        ratchet_session_parties(p.a, &self, &peer);
        assert_memory_equal(&self, &alice.party, sizeof(self));
        assert_memory_equal(&peer, &bob.party, sizeof(peer));
    }
    enc(p.a, "how are you", &m3);
    dec_ok(p.b, &m3, "how are you");
    buf_free(&m1);
    buf_free(&m2);
    buf_free(&m3);
    pair_free(&p);
}

/* The whole set-up through the wire: prekey message, X3DH on Bob's side, first decryption. */
static void test_prekey_message_flow(void **state)
{
    struct x3dh_bundle bundle;
    struct x3dh_prekey_msg pm, got;
    struct ratchet_session *a = NULL, *b = NULL;
    uint8_t ska[32], skb[32];
    struct buf inner, wire, reply;

    (void)state;
    for (int with_opk = 0; with_opk <= 1; with_opk++) {
        e2e_bundle_of(&bundle, &bob, with_opk);
        memset(&pm, 0, sizeof(pm));
        assert_int_equal(x3dh_initiate(ska, &pm.init, &bundle, bob.sign_pk, alice.ik_sk), 0);
        assert_int_equal(
            ratchet_init_initiator(&a, ska, &pm.init, &alice.party, &bob.party, bundle.spk_pk), 0);
        enc(a, "first contact", &inner);
        pm.sender = alice.party;
        pm.inner = buf_data(&inner);
        pm.inner_len = buf_size(&inner);
        assert_int_equal(buf_init(&wire, X3DH_PREKEY_MSG_FIXED + RATCHET_MSG_MAX, 0), 0);
        assert_int_equal(x3dh_prekey_msg_encode(&pm, &wire), 0);

        assert_int_equal(x3dh_prekey_msg_parse(&got, buf_data(&wire), buf_size(&wire)), 0);
        assert_memory_equal(&got.sender, &alice.party, sizeof(alice.party));
        assert_int_equal(got.init.spk_id, bob.spk_id);
        assert_int_equal(x3dh_respond(skb, &got.init, bob.ik_sk, bob.spk_sk,
                                      got.init.has_opk ? bob.opk_sk : NULL, got.sender.identity_pk),
                         0);
        assert_int_equal(ratchet_init_responder(&b, skb, &bob.party, &got.sender, bob.spk_sk), 0);
        {
            struct buf v;
            buf_view(&v, got.inner, got.inner_len);
            dec_ok(b, &v, "first contact");
        }
        enc(b, "welcome", &reply);
        dec_ok(a, &reply, "welcome");
        buf_free(&inner);
        buf_free(&wire);
        buf_free(&reply);
        ratchet_session_free(a);
        ratchet_session_free(b);
    }
}

/* A responder that believes in another peer (identity or device) cannot read the message. */
static void test_identity_binding(void **state)
{
    struct pair p;
    struct ratchet_session *wrong = NULL;
    struct x3dh_bundle bundle;
    struct x3dh_init_header hdr;
    struct x3dh_party peer;
    uint8_t ska[32], skb[32];
    struct buf m;

    (void)state;
    e2e_bundle_of(&bundle, &bob, 0);
    assert_int_equal(x3dh_initiate(ska, &hdr, &bundle, bob.sign_pk, alice.ik_sk), 0);
    assert_int_equal(x3dh_respond(skb, &hdr, bob.ik_sk, bob.spk_sk, NULL, alice.party.identity_pk),
                     0);
    assert_int_equal(ratchet_init_initiator(&p.a, ska, &hdr, &alice.party, &bob.party, bob.spk_pk),
                     0);
    enc(p.a, "for bob only", &m);
    /* Same SK, but Bob's idea of the sender's device id differs. */
    peer = alice.party;
    peer.device_id[15] ^= 1;
    assert_int_equal(ratchet_init_responder(&wrong, skb, &bob.party, &peer, bob.spk_sk), 0);
    expect_buf_fails(wrong, &m, VERR_DECRYPT);
    ratchet_session_free(wrong);
    /* ... or the sender's identity key is carol's. */
    peer = alice.party;
    memcpy(peer.identity_pk, carol.party.identity_pk, 32);
    assert_int_equal(ratchet_init_responder(&wrong, skb, &bob.party, &peer, bob.spk_sk), 0);
    expect_buf_fails(wrong, &m, VERR_DECRYPT);
    ratchet_session_free(wrong);
    /* ... or its own id is carol's (a message for another recipient). */
    assert_int_equal(ratchet_init_responder(&wrong, skb, &carol.party, &alice.party, bob.spk_sk),
                     0);
    expect_buf_fails(wrong, &m, VERR_DECRYPT);
    ratchet_session_free(wrong);
    /* The right one reads it. */
    assert_int_equal(ratchet_init_responder(&p.b, skb, &bob.party, &alice.party, bob.spk_sk), 0);
    dec_ok(p.b, &m, "for bob only");
    buf_free(&m);
    pair_free(&p);
}

/* Long conversation both ways with bursts (many DH ratchet turns), some delivered out of order. */
static void test_long_conversation(void **state)
{
    struct pair p;
    struct buf msgs[6];
    char text[6][64];
    uint8_t dh_seen[2][32];
    int turns_with_new_key = 0;

    (void)state;
    pair_make(&p);
    memset(dh_seen, 0, sizeof(dh_seen));
    for (int turn = 0; turn < 400; turn++) {
        /* Alice speaks first; afterwards the direction is drawn. */
        uint32_t draw = turn == 0 ? 0 : randombytes_uniform(1000);
        int from_a = turn == 0 || (draw & 1);
        struct ratchet_session *tx = from_a ? p.a : p.b, *rx = from_a ? p.b : p.a;
        size_t burst = 1 + (draw >> 1) % 6;

        for (size_t i = 0; i < burst; i++) {
            snprintf(text[i], sizeof(text[i]), "turn %d msg %zu from %s", turn, i,
                     from_a ? "A" : "B");
            enc(tx, text[i], &msgs[i]);
        }
        /* The ratchet key in the header changes only when the direction changes. */
        if (memcmp(dh_seen[from_a], buf_data(&msgs[0]) + 2, 32) != 0) {
            turns_with_new_key++;
            memcpy(dh_seen[from_a], buf_data(&msgs[0]) + 2, 32);
        }
        if (turn % 3 == 0) {
            for (size_t i = burst; i-- > 0;)
                dec_ok(rx, &msgs[i], text[i]);
        } else {
            for (size_t i = 0; i < burst; i++)
                dec_ok(rx, &msgs[i], text[i]);
        }
        for (size_t i = 0; i < burst; i++)
            buf_free(&msgs[i]);
    }
    assert_true(turns_with_new_key > 100);
    assert_int_equal(skipped_count(p.a), 0);
    assert_int_equal(skipped_count(p.b), 0);
    pair_free(&p);
}

/* Reordering inside the window, also across a DH ratchet step (PN). */
static void test_out_of_order(void **state)
{
    static const int order[10] = {9, 0, 5, 1, 8, 2, 7, 3, 6, 4};
    struct pair p;
    struct buf m[10], late[5], reply, next;
    char t[10][32];

    (void)state;
    pair_make(&p);
    for (int i = 0; i < 10; i++) {
        snprintf(t[i], sizeof(t[i]), "message %d", i);
        enc(p.a, t[i], &m[i]);
    }
    for (int i = 0; i < 10; i++) {
        dec_ok(p.b, &m[order[i]], t[order[i]]);
        /* Keys skipped for the gap, then consumed. */
        if (i == 0)
            assert_int_equal(skipped_count(p.b), 9);
    }
    assert_int_equal(skipped_count(p.b), 0);
    /* Alice sends 5 more, Bob replies before seeing them, Alice answers on a new chain. */
    for (int i = 0; i < 5; i++) {
        snprintf(t[i], sizeof(t[i]), "late %d", i);
        enc(p.a, t[i], &late[i]);
    }
    enc(p.b, "reply", &reply);
    dec_ok(p.a, &reply, "reply");
    enc(p.a, "new chain", &next);
    /* Bob gets the new chain first: the header's PN=15 makes him keep keys 10..14 of the old one.
     */
    dec_ok(p.b, &next, "new chain");
    assert_int_equal(skipped_count(p.b), 5);
    for (int i = 4; i >= 0; i--)
        dec_ok(p.b, &late[i], t[i]);
    assert_int_equal(skipped_count(p.b), 0);
    for (int i = 0; i < 10; i++)
        buf_free(&m[i]);
    for (int i = 0; i < 5; i++)
        buf_free(&late[i]);
    buf_free(&reply);
    buf_free(&next);
    pair_free(&p);
}

/* Spec 3.5: more than MAX_SKIP keys in one chain is refused; exactly MAX_SKIP is fine. */
static void test_max_skip(void **state)
{
    struct pair p;
    struct buf *m;
    char t[32];

    (void)state;
    pair_make(&p);
    assert_non_null(m = calloc(RATCHET_MAX_SKIP + 2, sizeof(*m)));
    for (int i = 0; i < RATCHET_MAX_SKIP + 2; i++) {
        snprintf(t, sizeof(t), "m%d", i);
        enc(p.a, t, &m[i]);
    }
    /* n = 1001 would skip 1001 keys. */
    expect_buf_fails(p.b, &m[RATCHET_MAX_SKIP + 1], VERR_LIMIT);
    /* n = 1000 skips exactly 1000. */
    snprintf(t, sizeof(t), "m%d", RATCHET_MAX_SKIP);
    dec_ok(p.b, &m[RATCHET_MAX_SKIP], t);
    assert_int_equal(skipped_count(p.b), RATCHET_MAX_SKIP);
    for (int i = RATCHET_MAX_SKIP - 1; i >= 0; i--) {
        snprintf(t, sizeof(t), "m%d", i);
        dec_ok(p.b, &m[i], t);
    }
    assert_int_equal(skipped_count(p.b), 0);
    snprintf(t, sizeof(t), "m%d", RATCHET_MAX_SKIP + 1);
    dec_ok(p.b, &m[RATCHET_MAX_SKIP + 1], t);
    for (int i = 0; i < RATCHET_MAX_SKIP + 2; i++)
        buf_free(&m[i]);
    free(m);
    pair_free(&p);
}

/* Beyond the window through PN: the old chain ran more than MAX_SKIP past what Bob saw. */
static void test_max_skip_previous_chain(void **state)
{
    struct pair p;
    struct buf first, filler, reply, next;

    (void)state;
    pair_make(&p);
    enc(p.a, "seen", &first);
    dec_ok(p.b, &first, "seen");
    for (int i = 0; i < RATCHET_MAX_SKIP + 1; i++) {
        enc(p.a, "never delivered", &filler);
        buf_free(&filler);
    }
    enc(p.b, "reply", &reply);
    dec_ok(p.a, &reply, "reply");
    enc(p.a, "new chain", &next);
    /* PN = 1002, Bob is at Nr = 1: 1001 keys to skip. */
    expect_buf_fails(p.b, &next, VERR_LIMIT);
    buf_free(&first);
    buf_free(&reply);
    buf_free(&next);
    pair_free(&p);
}

static void test_replay(void **state)
{
    struct pair p;
    struct buf m0, m1, m2, r0, n0;

    (void)state;
    pair_make(&p);
    enc(p.a, "zero", &m0);
    enc(p.a, "one", &m1);
    enc(p.a, "two", &m2);
    dec_ok(p.b, &m0, "zero");
    /* The same message again, in the current chain. */
    expect_buf_fails(p.b, &m0, VERR_REPLAY);
    /* A message decrypted with a skipped key, replayed. */
    dec_ok(p.b, &m2, "two");
    dec_ok(p.b, &m1, "one");
    expect_buf_fails(p.b, &m1, VERR_REPLAY);
    expect_buf_fails(p.b, &m2, VERR_REPLAY);
    /* After a DH ratchet turn, a replay from the old chain still fails. */
    enc(p.b, "reply", &r0);
    dec_ok(p.a, &r0, "reply");
    enc(p.a, "new chain", &n0);
    dec_ok(p.b, &n0, "new chain");
    expect_buf_fails(p.b, &m0, ANY_ERROR);
    expect_buf_fails(p.b, &m2, ANY_ERROR);
    expect_buf_fails(p.a, &r0, ANY_ERROR);
    expect_buf_fails(p.b, &n0, VERR_REPLAY);
    /* Still working afterwards. */
    buf_free(&m0);
    enc(p.a, "after", &m0);
    dec_ok(p.b, &m0, "after");
    buf_free(&m0);
    buf_free(&m1);
    buf_free(&m2);
    buf_free(&r0);
    buf_free(&n0);
    pair_free(&p);
}

/* A message fed back to its own sender is refused (the AD binds the direction). */
static void test_reflection(void **state)
{
    struct pair p;
    struct buf a1, b1, a2;

    (void)state;
    pair_make(&p);
    enc(p.a, "from alice", &a1);
    expect_buf_fails(p.a, &a1, VERR_DECRYPT);
    dec_ok(p.b, &a1, "from alice");
    enc(p.b, "from bob", &b1);
    expect_buf_fails(p.b, &b1, VERR_DECRYPT);
    dec_ok(p.a, &b1, "from bob");
    enc(p.a, "again", &a2);
    expect_buf_fails(p.a, &a2, VERR_DECRYPT);
    dec_ok(p.b, &a2, "again");
    buf_free(&a1);
    buf_free(&b1);
    buf_free(&a2);
    pair_free(&p);
}

/* Valid header, random ciphertext: refused, and the genuine message still decrypts. */
static void test_forged_plausible_header(void **state)
{
    struct pair p;
    struct buf m0, m1, m2, forged;
    uint8_t *f;
    uint8_t fresh_pk[32], fresh_sk[32];

    (void)state;
    pair_make(&p);
    enc(p.a, "genuine zero", &m0);
    dec_ok(p.b, &m0, "genuine zero");
    enc(p.a, "genuine one", &m1);
    enc(p.a, "genuine two", &m2);
    assert_int_equal(buf_init(&forged, RATCHET_MSG_MAX, 0), 0);
    /* 1: the header of the next message (n = 1), random ciphertext. */
    assert_int_equal(buf_put_bytes(&forged, buf_data(&m1), buf_size(&m1)), 0);
    f = (uint8_t *)(uintptr_t)buf_data(&forged);
    randombytes_buf(f + 70, buf_size(&forged) - 70);
    expect_buf_fails(p.b, &forged, VERR_DECRYPT);
    /* 2: a later number in the window (would skip keys), random ciphertext. */
    memcpy(f, buf_data(&m2), 70);
    randombytes_buf(f + 70, buf_size(&forged) - 70);
    expect_buf_fails(p.b, &forged, VERR_DECRYPT);
    /* 3: a fresh ratchet key (would turn the DH ratchet), random ciphertext. */
    assert_int_equal(x3dh_keypair(fresh_pk, fresh_sk), 0);
    memcpy(f + 2, fresh_pk, 32);
    expect_buf_fails(p.b, &forged, VERR_DECRYPT);
    /* 4: the slot of a stored skipped key. */
    dec_ok(p.b, &m2, "genuine two");
    assert_int_equal(skipped_count(p.b), 1);
    memcpy(f, buf_data(&m1), 70);
    randombytes_buf(f + 70, buf_size(&forged) - 70);
    expect_buf_fails(p.b, &forged, VERR_DECRYPT);
    assert_int_equal(skipped_count(p.b), 1);
    dec_ok(p.b, &m1, "genuine one");
    buf_free(&m0);
    buf_free(&m1);
    buf_free(&m2);
    buf_free(&forged);
    pair_free(&p);
}

/*
 * Before Bob's first reply, Alice's DHr is Bob's signed prekey (public) and she
 * has no receiving chain. A forger who builds a message under that key with an
 * all-zero chain key (everything else in the AD is public) must be refused
 * (spec 3.5: KDF_CK on CKr = None is an error).
 */
static void test_forged_no_receiving_chain(void **state)
{
    static const char info_msg[] = "valise/v1/ratchet-msg";
    static const char text[] = "forged";
    struct pair p;
    uint8_t zero_ck[32] = {0}, mk[32], kn[32], header[40], ad[RATCHET_AD_LEN], nonce[24];
    uint8_t ct[sizeof(text) - 1 + 16], c1 = 1;
    unsigned long long ct_len;
    struct buf m, first;

    (void)state;
    pair_make(&p);
    crypto_auth_hmacsha256(mk, &c1, 1, zero_ck);
    assert_int_equal(
        hkdf_sha256(kn, 32, NULL, 0, mk, 32, (const uint8_t *)info_msg, sizeof(info_msg) - 1), 0);
    randombytes_buf(nonce, sizeof(nonce));
    memcpy(header, bob.spk_pk, 32);
    memset(header + 32, 0, 8);
    ad[0] = 0x01;
    memcpy(ad + 1, bob.party.device_id, 16);
    memcpy(ad + 17, alice.party.device_id, 16);
    memcpy(ad + 33, bob.party.identity_pk, 32);
    memcpy(ad + 65, alice.party.identity_pk, 32);
    memcpy(ad + 97, header, 40);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &ct_len, (const uint8_t *)text,
                                                                sizeof(text) - 1, ad, sizeof(ad),
                                                                NULL, nonce, kn),
                     0);
    assert_int_equal(buf_init(&m, RATCHET_MSG_MAX, 0), 0);
    assert_int_equal(ratchet_msg_encode(header, nonce, ct, sizeof(ct), &m), 0);
    expect_buf_fails(p.a, &m, ANY_ERROR);
    /* Also after Alice has sent (her state moved, still no receiving chain). */
    enc(p.a, "real", &first);
    expect_buf_fails(p.a, &m, ANY_ERROR);
    dec_ok(p.b, &first, "real");
    buf_free(&first);
    buf_free(&m);
    pair_free(&p);
}

/*
 * A device whose stored session was rolled back (restored backup, cloned
 * disk) derives the same message key again for a different message. The
 * nonce is random, so the two never share (key, nonce): the keystreams
 * differ (ct1 ^ ct2 != pt1 ^ pt2), and the peer, which already used that
 * message number, refuses the second as a replay and stays unchanged.
 */
static void test_rolled_back_sender(void **state)
{
    static const char t1[] = "original text 1", t2[] = "different txt 2";
    struct pair p;
    struct buf saved, m1, m2;
    struct ratchet_session *old = NULL;
    size_t same = 0;

    (void)state;
    _Static_assert(sizeof(t1) == sizeof(t2), "same length");
    pair_make(&p);
    enc(p.a, "first", &m1);
    dec_ok(p.b, &m1, "first");
    buf_free(&m1);
    session_bytes(p.a, &saved); /* the copy the backup holds */
    enc(p.a, t1, &m1);
    dec_ok(p.b, &m1, t1);
    assert_int_equal(ratchet_session_parse(&old, buf_data(&saved), buf_size(&saved)), 0);
    enc(old, t2, &m2);
    /* Same header (same chain, same n), so the same message key. */
    assert_memory_equal(buf_data(&m1) + 2, buf_data(&m2) + 2, RATCHET_HEADER_LEN);
    assert_memory_not_equal(buf_data(&m1) + 42, buf_data(&m2) + 42, RATCHET_NONCE_LEN);
    for (size_t i = 0; i < sizeof(t1) - 1; i++)
        same +=
            (uint8_t)(buf_data(&m1)[70 + i] ^ buf_data(&m2)[70 + i]) == (uint8_t)(t1[i] ^ t2[i]);
    if (same == sizeof(t1) - 1)
        fail_msg("rolled-back sender reused the keystream (ct1 ^ ct2 == pt1 ^ pt2)");
    expect_buf_fails(p.b, &m2, VERR_REPLAY);
    ratchet_session_free(old);
    buf_free(&saved);
    buf_free(&m1);
    buf_free(&m2);
    pair_free(&p);
}

/* Every single-bit flip of a message (header, lengths, ciphertext, tag) is refused. */
static void flip_every_bit(struct ratchet_session *rx, const struct buf *msg)
{
    size_t n = buf_size(msg);
    uint8_t *f = malloc(n);

    assert_non_null(f);
    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(f, buf_data(msg), n);
        f[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        expect_decrypt_fails(rx, f, n, ANY_ERROR);
    }
    for (size_t len = 0; len < n; len++)
        expect_decrypt_fails(rx, buf_data(msg), len, ANY_ERROR);
    free(f);
}

static void test_tampered_messages(void **state)
{
    struct pair p;
    struct buf first, m, reply, turned;

    (void)state;
    pair_make(&p);
    /* Bob's very first message (responder with no chains yet). */
    enc(p.a, "first", &first);
    flip_every_bit(p.b, &first);
    dec_ok(p.b, &first, "first");
    /* A message in a running chain. */
    enc(p.a, "tamper me", &m);
    flip_every_bit(p.b, &m);
    dec_ok(p.b, &m, "tamper me");
    /* A message that turns the DH ratchet. */
    enc(p.b, "reply", &reply);
    dec_ok(p.a, &reply, "reply");
    enc(p.a, "turned", &turned);
    flip_every_bit(p.b, &turned);
    dec_ok(p.b, &turned, "turned");
    buf_free(&first);
    buf_free(&m);
    buf_free(&reply);
    buf_free(&turned);
    pair_free(&p);
}

/* Spec 6.4: the stored skipped keys are capped; the oldest go first. */
static void test_skipped_cap_eviction(void **state)
{
    struct pair p;
    struct buf *c1, *c2, c3[11], r1, r2;
    char t[32];

    (void)state;
    pair_make(&p);
    assert_non_null(c1 = calloc(RATCHET_MAX_SKIP + 1, sizeof(*c1)));
    assert_non_null(c2 = calloc(RATCHET_MAX_SKIP + 1, sizeof(*c2)));
    for (int i = 0; i <= RATCHET_MAX_SKIP; i++) {
        snprintf(t, sizeof(t), "c1 %d", i);
        enc(p.a, t, &c1[i]);
    }
    snprintf(t, sizeof(t), "c1 %d", RATCHET_MAX_SKIP);
    dec_ok(p.b, &c1[RATCHET_MAX_SKIP], t);
    assert_int_equal(skipped_count(p.b), RATCHET_MAX_SKIP);
    enc(p.b, "r1", &r1);
    dec_ok(p.a, &r1, "r1");
    for (int i = 0; i <= RATCHET_MAX_SKIP; i++) {
        snprintf(t, sizeof(t), "c2 %d", i);
        enc(p.a, t, &c2[i]);
    }
    snprintf(t, sizeof(t), "c2 %d", RATCHET_MAX_SKIP);
    dec_ok(p.b, &c2[RATCHET_MAX_SKIP], t);
    assert_int_equal(skipped_count(p.b), RATCHET_MAX_SKIPPED);
    enc(p.b, "r2", &r2);
    dec_ok(p.a, &r2, "r2");
    for (int i = 0; i <= 10; i++) {
        snprintf(t, sizeof(t), "c3 %d", i);
        enc(p.a, t, &c3[i]);
    }
    /* 10 more skipped keys: the cap holds, c1's keys 0..9 are evicted. */
    dec_ok(p.b, &c3[10], "c3 10");
    assert_int_equal(skipped_count(p.b), RATCHET_MAX_SKIPPED);
    for (int i = 0; i < 10; i++)
        expect_buf_fails(p.b, &c1[i], ANY_ERROR);
    dec_ok(p.b, &c1[10], "c1 10");
    assert_int_equal(skipped_count(p.b), RATCHET_MAX_SKIPPED - 1);
    dec_ok(p.b, &c1[RATCHET_MAX_SKIP - 1], "c1 999");
    dec_ok(p.b, &c2[0], "c2 0");
    dec_ok(p.b, &c2[RATCHET_MAX_SKIP - 1], "c2 999");
    for (int i = 0; i < 10; i++) {
        snprintf(t, sizeof(t), "c3 %d", i);
        dec_ok(p.b, &c3[i], t);
    }
    assert_int_equal(skipped_count(p.b), RATCHET_MAX_SKIPPED - 14);
    for (int i = 0; i <= RATCHET_MAX_SKIP; i++) {
        buf_free(&c1[i]);
        buf_free(&c2[i]);
    }
    for (int i = 0; i <= 10; i++)
        buf_free(&c3[i]);
    free(c1);
    free(c2);
    buf_free(&r1);
    buf_free(&r2);
    pair_free(&p);
}

static void test_encrypt_bounds(void **state)
{
    struct pair p;
    struct buf out, before, after;
    uint8_t *big;

    (void)state;
    pair_make(&p);
    assert_non_null(big = calloc(1, RATCHET_MAX_PLAINTEXT + 1));
    session_bytes(p.a, &before);
    assert_int_equal(buf_init(&out, RATCHET_MSG_MAX + 10, 0), 0);
    assert_int_equal(ratchet_encrypt(p.a, big, 0, &out), VERR_USAGE);
    assert_int_equal(ratchet_encrypt(p.a, big, RATCHET_MAX_PLAINTEXT + 1, &out), VERR_TOO_LARGE);
    assert_int_equal(buf_size(&out), 0);
    buf_free(&out);
    /* An output buffer too small: nothing written, session unchanged. */
    assert_int_equal(buf_init(&out, 60, 0), 0);
    assert_int_equal(ratchet_encrypt(p.a, big, 100, &out), VERR_TOO_LARGE);
    assert_int_equal(buf_size(&out), 0);
    buf_free(&out);
    session_bytes(p.a, &after);
    assert_memory_equal(buf_data(&after), buf_data(&before), buf_size(&before));
    buf_free(&after);
    buf_free(&before);
    /* The largest plaintext goes through. */
    memset(big, 'z', RATCHET_MAX_PLAINTEXT);
    assert_int_equal(buf_init(&out, RATCHET_MSG_MAX, 0), 0);
    assert_int_equal(ratchet_encrypt(p.a, big, RATCHET_MAX_PLAINTEXT, &out), 0);
    assert_int_equal(buf_size(&out), RATCHET_MSG_MAX);
    {
        struct buf pt;
        assert_int_equal(buf_init(&pt, RATCHET_MAX_PLAINTEXT - 1, BUF_SECRET), 0);
        /* A plaintext buffer too small: refused before any state change. */
        assert_int_equal(buf_init(&before, 1 << 20, BUF_SECRET), 0);
        assert_int_equal(ratchet_session_encode(p.b, &before), 0);
        assert_int_equal(ratchet_decrypt(p.b, buf_data(&out), buf_size(&out), &pt), VERR_TOO_LARGE);
        session_bytes(p.b, &after);
        assert_memory_equal(buf_data(&after), buf_data(&before), buf_size(&before));
        buf_free(&after);
        buf_free(&before);
        buf_free(&pt);
        assert_int_equal(buf_init(&pt, RATCHET_MAX_PLAINTEXT, BUF_SECRET), 0);
        assert_int_equal(ratchet_decrypt(p.b, buf_data(&out), buf_size(&out), &pt), 0);
        assert_int_equal(buf_size(&pt), RATCHET_MAX_PLAINTEXT);
        assert_memory_equal(buf_data(&pt), big, RATCHET_MAX_PLAINTEXT);
        buf_free(&pt);
    }
    buf_free(&out);
    free(big);
    pair_free(&p);
}

/* ---- ratchet message codec ---- */

static void test_msg_codec(void **state)
{
    struct pair p;
    struct buf m, again, longer;
    struct ratchet_msg got;
    uint8_t *f, type;
    size_t n, accepted = 0;

    (void)state;
    pair_make(&p);
    enc(p.a, "codec", &m);
    n = buf_size(&m);
    assert_int_equal(x3dh_wire_type(buf_data(&m), n, &type), 0);
    assert_int_equal(type, E2E_TYPE_RATCHET);
    assert_int_equal(ratchet_msg_parse(&got, buf_data(&m), n), 0);
    assert_int_equal(got.pn, 0);
    assert_int_equal(got.n, 0);
    assert_ptr_equal(got.header, buf_data(&m) + 2);
    assert_ptr_equal(got.nonce, buf_data(&m) + 42);
    assert_int_equal(got.ct_len, 5 + RATCHET_TAG_LEN);
    assert_int_equal(buf_init(&again, RATCHET_MSG_MAX, 0), 0);
    assert_int_equal(ratchet_msg_encode(got.header, got.nonce, got.ct, got.ct_len, &again), 0);
    assert_memory_equal(buf_data(&again), buf_data(&m), n);
    buf_free(&again);
    for (size_t len = 0; len < n; len++)
        assert_int_not_equal(ratchet_msg_parse(&got, buf_data(&m), len), 0);
    assert_int_equal(buf_init(&longer, n + 1, 0), 0);
    assert_int_equal(buf_put_bytes(&longer, buf_data(&m), n), 0);
    assert_int_equal(buf_put_u8(&longer, 0), 0);
    assert_int_equal(ratchet_msg_parse(&got, buf_data(&longer), n + 1), VERR_TRAILING);
    buf_free(&longer);
    /* Bit flips: rejected or canonical (re-encodes to the same bytes). */
    assert_non_null(f = malloc(n));
    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(f, buf_data(&m), n);
        f[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (ratchet_msg_parse(&got, f, n) != 0)
            continue;
        accepted++;
        assert_int_equal(buf_init(&again, RATCHET_MSG_MAX, 0), 0);
        assert_int_equal(ratchet_msg_encode(got.header, got.nonce, got.ct, got.ct_len, &again), 0);
        assert_memory_equal(buf_data(&again), f, n);
        buf_free(&again);
    }
    assert_true(accepted > 0 && accepted < n * 8);
    /* Strict fields. */
    memcpy(f, buf_data(&m), n);
    f[0] = 2;
    assert_int_equal(ratchet_msg_parse(&got, f, n), VERR_BAD_VERSION);
    f[0] = 1;
    f[1] = E2E_TYPE_PREKEY;
    assert_int_equal(ratchet_msg_parse(&got, f, n), VERR_BAD_FORMAT);
    f[1] = E2E_TYPE_RATCHET;
    memset(f + 2, 0, 32);
    assert_int_equal(ratchet_msg_parse(&got, f, n), VERR_BAD_KEY);
    memcpy(f + 2, e2e_small_order[3], 32);
    assert_int_equal(ratchet_msg_parse(&got, f, n), VERR_BAD_KEY);
    memcpy(f, buf_data(&m), n);
    f[66] = 0x7f; /* declared ciphertext length over the cap */
    assert_int_equal(ratchet_msg_parse(&got, f, n), VERR_TOO_LARGE);
    /* A ciphertext that is only a tag (empty plaintext) is refused. */
    memcpy(f, buf_data(&m), n);
    f[69] = RATCHET_TAG_LEN;
    assert_int_equal(ratchet_msg_parse(&got, f, 70 + RATCHET_TAG_LEN), VERR_BAD_FORMAT);
    /* An n of 2^32-1 can never be received (the counter would wrap). */
    memcpy(f, buf_data(&m), n);
    memset(f + 38, 0xff, 4);
    expect_decrypt_fails(p.b, f, n, VERR_LIMIT);
    free(f);
    buf_free(&m);
    pair_free(&p);
}

/* ---- session codec ---- */

/* A session in its richest state: DHr, both chains and skipped keys. */
static void busy_pair(struct pair *p, struct buf *pending, size_t npending)
{
    struct buf m;
    char t[32];

    pair_make(p);
    enc(p->a, "one", &m);
    dec_ok(p->b, &m, "one");
    buf_free(&m);
    enc(p->b, "two", &m);
    dec_ok(p->a, &m, "two");
    buf_free(&m);
    for (size_t i = 0; i < npending; i++) {
        snprintf(t, sizeof(t), "pending %zu", i);
        enc(p->a, t, &pending[i]);
    }
    enc(p->a, "last", &m);
    dec_ok(p->b, &m, "last");
    buf_free(&m);
}

static void test_session_roundtrip(void **state)
{
    struct pair p;
    struct ratchet_session *copy = NULL;
    struct buf pending[3], enc1, enc2, m;
    char t[32];

    (void)state;
    busy_pair(&p, pending, 3);
    session_bytes(p.b, &enc1);
    assert_int_equal(buf_size(&enc1), SESSION_FIXED + 3 * SKIPPED_WIRE);
    assert_int_equal(ratchet_session_parse(&copy, buf_data(&enc1), buf_size(&enc1)), 0);
    session_bytes(copy, &enc2);
    assert_int_equal(buf_size(&enc2), buf_size(&enc1));
    assert_memory_equal(buf_data(&enc2), buf_data(&enc1), buf_size(&enc1));
    /* The restored session carries on: skipped keys, replies. */
    for (size_t i = 0; i < 3; i++) {
        snprintf(t, sizeof(t), "pending %zu", i);
        dec_ok(copy, &pending[i], t);
    }
    enc(copy, "from the restored session", &m);
    dec_ok(p.a, &m, "from the restored session");
    buf_free(&m);
    /* Every phase round-trips: fresh responder, fresh initiator. */
    ratchet_session_free(copy);
    pair_free(&p);
    buf_free(&enc1);
    buf_free(&enc2);
    pair_make(&p);
    for (int side = 0; side < 2; side++) {
        session_bytes(side ? p.a : p.b, &enc1);
        assert_int_equal(buf_size(&enc1), SESSION_FIXED);
        assert_int_equal(ratchet_session_parse(&copy, buf_data(&enc1), buf_size(&enc1)), 0);
        session_bytes(copy, &enc2);
        assert_memory_equal(buf_data(&enc2), buf_data(&enc1), buf_size(&enc1));
        ratchet_session_free(copy);
        buf_free(&enc1);
        buf_free(&enc2);
    }
    for (size_t i = 0; i < 3; i++)
        buf_free(&pending[i]);
    pair_free(&p);
}

static void test_session_truncation_trailing(void **state)
{
    struct pair p;
    struct ratchet_session *copy = NULL;
    struct buf pending[2], e;
    uint8_t *longer;
    size_t n;

    (void)state;
    busy_pair(&p, pending, 2);
    session_bytes(p.b, &e);
    n = buf_size(&e);
    for (size_t len = 0; len < n; len++) {
        int r = ratchet_session_parse(&copy, buf_data(&e), len);
        if (r == 0)
            fail_msg("truncated session of %zu/%zu bytes accepted", len, n);
        assert_null(copy);
    }
    assert_non_null(longer = malloc(n + 1));
    memcpy(longer, buf_data(&e), n);
    longer[n] = 0;
    assert_int_equal(ratchet_session_parse(&copy, longer, n + 1), VERR_TRAILING);
    assert_null(copy);
    free(longer);
    buf_free(&e);
    for (size_t i = 0; i < 2; i++)
        buf_free(&pending[i]);
    pair_free(&p);
}

/* Every single-bit flip: rejected, or a session that encodes back to exactly those bytes. */
static void test_session_bitflips(void **state)
{
    struct pair p;
    struct ratchet_session *copy = NULL;
    struct buf pending[2], e, again;
    uint8_t *f;
    size_t n, accepted = 0, rejected = 0;

    (void)state;
    busy_pair(&p, pending, 2);
    session_bytes(p.b, &e);
    n = buf_size(&e);
    assert_non_null(f = malloc(n));
    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(f, buf_data(&e), n);
        f[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (ratchet_session_parse(&copy, f, n) != 0) {
            assert_null(copy);
            rejected++;
            continue;
        }
        accepted++;
        session_bytes(copy, &again);
        assert_int_equal(buf_size(&again), n);
        assert_memory_equal(buf_data(&again), f, n);
        buf_free(&again);
        ratchet_session_free(copy);
        copy = NULL;
    }
    /* Magic, version, flags, lengths, the DHs pair and every public key are checked. */
    assert_true(rejected >= 8 * (4 + 1 + 1 + 4 + 32 + 32));
    assert_true(accepted > 0);
    free(f);
    buf_free(&e);
    for (size_t i = 0; i < 2; i++)
        buf_free(&pending[i]);
    pair_free(&p);
}

/* One turn of the conversation: bob answers, alice answers; bob takes a DH step. */
static void turn(struct pair *p, int i)
{
    struct buf m;
    char t[32];

    snprintf(t, sizeof(t), "bob %d", i);
    enc(p->b, t, &m);
    dec_ok(p->a, &m, t);
    buf_free(&m);
    snprintf(t, sizeof(t), "alice %d", i);
    enc(p->a, t, &m);
    dec_ok(p->b, &m, t);
    buf_free(&m);
}

/*
 * Spec section 6: a skipped message key is deleted once
 * RATCHET_SKIPPED_MAX_STEPS further DH ratchet steps were taken. A message
 * held back that long can no longer be read; one step earlier it still can.
 */
static void test_skipped_keys_age_limit(void **state)
{
    struct pair p;
    struct buf pending[2];

    (void)state;
    /* bob skips "pending 0" and "pending 1" (stored at his current step) */
    busy_pair(&p, pending, 2);
    assert_int_equal(skipped_count(p.b), 2);
    for (int i = 0; i < RATCHET_SKIPPED_MAX_STEPS; i++)
        turn(&p, i);
    /* exactly at the bound: still kept, and readable */
    assert_int_equal(skipped_count(p.b), 2);
    dec_ok(p.b, &pending[0], "pending 0");
    assert_int_equal(skipped_count(p.b), 1);
    /* one step more: deleted, and the session survives a restore */
    turn(&p, RATCHET_SKIPPED_MAX_STEPS);
    assert_int_equal(skipped_count(p.b), 0);
    expect_decrypt_fails(p.b, buf_data(&pending[1]), buf_size(&pending[1]), VERR_DECRYPT);
    turn(&p, RATCHET_SKIPPED_MAX_STEPS + 1);
    buf_free(&pending[0]);
    buf_free(&pending[1]);
    pair_free(&p);
}

/*
 * A version 1 session (no step counter, 68-byte skipped entries) is still
 * read, its keys taken as stored at step 0, and written back as version 2.
 */
static void test_session_v1_read(void **state)
{
    struct pair p;
    struct ratchet_session *copy = NULL;
    struct buf pending[2], e, again;
    uint8_t *v1;
    size_t n1 = SESSION_FIXED - 4 + 2 * (SKIPPED_WIRE - 4);

    (void)state;
    busy_pair(&p, pending, 2);
    session_bytes(p.b, &e);
    assert_int_equal(buf_size(&e), SESSION_FIXED + 2 * SKIPPED_WIRE);
    assert_non_null(v1 = malloc(n1));
    memcpy(v1, buf_data(&e), SESSION_FIXED - 4);
    v1[4] = 1;
    for (size_t i = 0; i < 2; i++) {
        const uint8_t *src = buf_data(&e) + SESSION_FIXED + i * SKIPPED_WIRE;
        uint8_t *dst = v1 + SESSION_FIXED - 4 + i * (SKIPPED_WIRE - 4);
        memcpy(dst, src, 36);                         /* dh || n */
        memcpy(dst + 36, src + 40, SKIPPED_WIRE - 40); /* mk */
    }
    assert_int_equal(ratchet_session_parse(&copy, v1, n1), 0);
    session_bytes(copy, &again);
    assert_int_equal(buf_size(&again), SESSION_FIXED + 2 * SKIPPED_WIRE);
    assert_int_equal(buf_data(&again)[4], 2);
    dec_ok(copy, &pending[1], "pending 1");
    dec_ok(copy, &pending[0], "pending 0");
    ratchet_session_free(copy);
    /* truncated, version 1 is refused like version 2 */
    assert_int_equal(ratchet_session_parse(&copy, v1, n1 - 1), VERR_TRUNCATED);
    assert_null(copy);
    free(v1);
    buf_free(&e);
    buf_free(&again);
    buf_free(&pending[0]);
    buf_free(&pending[1]);
    pair_free(&p);
}

static void test_session_strict_fields(void **state)
{
    struct pair p;
    struct ratchet_session *copy = NULL;
    struct buf pending[1], e;
    uint8_t *f, *big;
    size_t n;

    (void)state;
    busy_pair(&p, pending, 1);
    session_bytes(p.b, &e);
    n = buf_size(&e);
    assert_non_null(f = malloc(n));
#define RESET() memcpy(f, buf_data(&e), n)
    RESET();
    f[0] = 'v';
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_MAGIC);
    RESET();
    f[4] = 3;
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_VERSION);
    RESET();
    f[4] = 0;
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_VERSION);
    /* A skipped key older than the bound, or from a later step than the session's. */
    RESET();
    f[SESSION_FIXED - 1] = (uint8_t)(f[SESSION_FIXED - 1] + RATCHET_SKIPPED_MAX_STEPS + 1);
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_FORMAT);
    RESET();
    f[SESSION_FIXED + 32 + 4 + 3] = (uint8_t)(f[SESSION_FIXED + 32 + 4 + 3] + 1);
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_FORMAT);
    /* Only the three phases exist. */
    for (unsigned flags = 0; flags < 256; flags++) {
        RESET();
        f[5] = (uint8_t)flags;
        if (flags != 7)
            assert_int_not_equal(ratchet_session_parse(&copy, f, n), 0);
    }
    /* The DHs public key must match its secret. */
    RESET();
    memcpy(f + 134, carol.party.identity_pk, 32);
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_KEY);
    /* Low-order peer identity or DHr. */
    RESET();
    memcpy(f + 70, e2e_small_order[2], 32);
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_KEY);
    RESET();
    memcpy(f + 166, e2e_small_order[4], 32);
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_KEY);
    /* Skipped-key count: more than stored, fewer than stored, over the cap. */
    RESET();
    f[350] = 2;
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_TRUNCATED);
    RESET();
    f[350] = 0;
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_TRAILING);
    assert_non_null(big = calloc(1, SESSION_FIXED + (RATCHET_MAX_SKIPPED + 1) * SKIPPED_WIRE));
    memcpy(big, buf_data(&e), SESSION_FIXED);
    big[347] = 0;
    big[348] = 0;
    big[349] = (uint8_t)((RATCHET_MAX_SKIPPED + 1) >> 8);
    big[350] = (uint8_t)(RATCHET_MAX_SKIPPED + 1);
    assert_int_equal(
        ratchet_session_parse(&copy, big, SESSION_FIXED + (RATCHET_MAX_SKIPPED + 1) * SKIPPED_WIRE),
        VERR_TOO_LARGE);
    free(big);
    /* The X3DH header block is all zero outside the initiator-before-reply phase. */
    for (size_t off = 306; off < 347; off++) {
        RESET();
        f[off] = 0x01;
        assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_FORMAT);
    }
    /* A low-order key in a skipped entry. */
    RESET();
    memset(f + SESSION_FIXED, 0, 32);
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_KEY);
    assert_null(copy);
#undef RESET
    free(f);
    buf_free(&e);
    buf_free(&pending[0]);
    pair_free(&p);
    /* A fresh initiator keeps a valid X3DH header. */
    pair_make(&p);
    session_bytes(p.a, &e);
    n = buf_size(&e);
    assert_int_equal(buf_data(&e)[5], 3);
    assert_memory_equal(buf_data(&e) + 306, p.hdr.ek_pk, 32);
    assert_int_equal(buf_data(&e)[342], 1);
    assert_non_null(f = malloc(n));
    memcpy(f, buf_data(&e), n);
    memcpy(f + 306, e2e_small_order[2], 32);
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_KEY);
    memcpy(f, buf_data(&e), n);
    f[342] = 2;
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_FORMAT);
    f[342] = 0; /* no one-time key, but an id */
    assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_FORMAT);
    memset(f + 343, 0, 4);
    assert_int_equal(ratchet_session_parse(&copy, f, n), 0);
    ratchet_session_free(copy);
    copy = NULL;
    free(f);
    buf_free(&e);
    pair_free(&p);
    /* Absent keys must be zero: a fresh responder (flags 0) with a nonzero DHr, CKs, CKr. */
    pair_make(&p);
    session_bytes(p.b, &e);
    n = buf_size(&e);
    assert_int_equal(buf_data(&e)[5], 0);
    assert_non_null(f = malloc(n));
    for (size_t off = 166; off < 294; off += 32) {
        if (off == 198)
            continue; /* RK is always present */
        memcpy(f, buf_data(&e), n);
        f[off + 7] = 1;
        assert_int_equal(ratchet_session_parse(&copy, f, n), VERR_BAD_FORMAT);
    }
    free(f);
    buf_free(&e);
    pair_free(&p);
}

/* ---- worked example (PROTOCOL.md, part 3): recomputed from the primitives, then frozen ---- */

static void hex(const char *name, const uint8_t *p, size_t n)
{
    printf("%s (%zu bytes):\n", name, n);
    for (size_t i = 0; i < n; i++)
        printf("%02x%s", p[i], (i % 32 == 31 || i + 1 == n) ? "\n" : "");
}

/* The prekey message of the worked example, as produced by this implementation. */
static const char worked_example_hex[] =
    "01022734414e5b6875828f9ca9b6c3d0ddea8b41f1e39e475279f019478c7a49"
    "a89e38e6bc51319cbc9c8e8c265907e8935656ad077faba1ee7ee9e3e16eab73"
    "09192bb90f8ac63322a0180d99f5eaeb5c010100000201020000020000006901"
    "017a3aaedefcd7509486139d779658d4a3f3ddf8a71311867e219585c514fac7"
    "0400000000000000002dfc570d2d23d71a73e1b14eaa4e5dac6da07386890cc8"
    "310000002336bb5e353874712593a22278c60c00f420b4ac7f1bc857fb4185fd"
    "8ab8df84f695d7d6";

/*
 * The ratchet message that the spec's formulas give for chain key ck (spec
 * 5.2: mk = HMAC(ck, 0x01); key = HKDF(mk)), header dh || pn || n, the
 * message's own random nonce and the AD of PROTOCOL.md part 3, section 4.3,
 * computed from libsodium primitives only.
 */
static void expect_from_primitives(const struct buf *msg, const uint8_t ck[32],
                                   const uint8_t dh[32], uint32_t pn, uint32_t n,
                                   const struct x3dh_party *from, const struct x3dh_party *to,
                                   const char *text)
{
    static const char info_msg[] = "valise/v1/ratchet-msg";
    uint8_t mk[32], key[32], ad[RATCHET_AD_LEN], c1 = 1, *want;
    size_t len = strlen(text), wlen = 70 + len + 16;
    unsigned long long ct_len;

    crypto_auth_hmacsha256(mk, &c1, 1, ck);
    assert_int_equal(
        hkdf_sha256(key, 32, NULL, 0, mk, 32, (const uint8_t *)info_msg, sizeof(info_msg) - 1), 0);
    assert_int_equal(buf_size(msg), wlen);
    assert_non_null(want = malloc(wlen));
    want[0] = 0x01;
    want[1] = 0x01;
    memcpy(want + 2, dh, 32);
    memcpy(want + 42, buf_data(msg) + 42, 24); /* the nonce is random: taken as sent */
    for (int i = 0; i < 4; i++) {
        want[34 + i] = (uint8_t)(pn >> (24 - 8 * i));
        want[38 + i] = (uint8_t)(n >> (24 - 8 * i));
        want[66 + i] = (uint8_t)((len + 16) >> (24 - 8 * i));
    }
    ad[0] = 0x01;
    memcpy(ad + 1, from->device_id, 16);
    memcpy(ad + 17, to->device_id, 16);
    memcpy(ad + 33, from->identity_pk, 32);
    memcpy(ad + 65, to->identity_pk, 32);
    memcpy(ad + 97, want + 2, 40);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(want + 70, &ct_len,
                                                                (const uint8_t *)text, len, ad,
                                                                sizeof(ad), NULL, want + 42, key),
                     0);
    assert_memory_equal(buf_data(msg), want, wlen);
    free(want);
}

static void test_worked_example(void **state)
{
    static const char text[] = "FLASH: meet at 0900";
    static const char info_root[] = "valise/v1/ratchet-root", info_msg[] = "valise/v1/ratchet-msg";
    struct x3dh_bundle bundle;
    struct x3dh_prekey_msg pm;
    struct ratchet_session *a = NULL, *b = NULL;
    struct buf inner, wire, pt;
    uint8_t sk[32], ek_sk[32], dhs_sk[32], dhs_pk[32], dh[32], okm[64], mk[32], kn[32], nonce[24];
    uint8_t header[40], ad[RATCHET_AD_LEN], ct[sizeof(text) - 1 + 16];
    uint8_t c1 = 1, *want;
    unsigned long long ct_len;
    int print = getenv("VALISE_E2E_PRINT") != NULL;

    (void)state;
    e2e_bundle_of(&bundle, &bob, 1);
    e2e_rng_seed(0x42);
    memset(&pm, 0, sizeof(pm));
    assert_int_equal(x3dh_initiate(sk, &pm.init, &bundle, bob.sign_pk, alice.ik_sk), 0);
    assert_int_equal(ratchet_init_initiator(&a, sk, &pm.init, &alice.party, &bob.party, bob.spk_pk),
                     0);
    assert_int_equal(buf_init(&inner, RATCHET_MSG_MAX, 0), 0);
    assert_int_equal(ratchet_encrypt(a, (const uint8_t *)text, sizeof(text) - 1, &inner), 0);
    pm.sender = alice.party;
    pm.inner = buf_data(&inner);
    pm.inner_len = buf_size(&inner);
    assert_int_equal(buf_init(&wire, 1 << 21, 0), 0);
    assert_int_equal(x3dh_prekey_msg_encode(&pm, &wire), 0);

    /* Recompute from the primitives (spec 3.3, 3.4, 5.2). */
    e2e_rng_seed(0x42);
    randombytes_buf(ek_sk, 32);  /* X3DH ephemeral */
    randombytes_buf(dhs_sk, 32); /* Alice's first ratchet key */
    randombytes_buf(nonce, 24);  /* the first message's nonce */
    assert_int_equal(crypto_scalarmult_base(dhs_pk, dhs_sk), 0);
    assert_int_equal(crypto_scalarmult(dh, dhs_sk, bob.spk_pk), 0);
    assert_int_equal(
        hkdf_sha256(okm, 64, sk, 32, dh, 32, (const uint8_t *)info_root, sizeof(info_root) - 1), 0);
    crypto_auth_hmacsha256(mk, &c1, 1, okm + 32); /* mk = HMAC(CKs, 0x01) */
    assert_int_equal(
        hkdf_sha256(kn, 32, NULL, 0, mk, 32, (const uint8_t *)info_msg, sizeof(info_msg) - 1), 0);
    memcpy(header, dhs_pk, 32);
    memset(header + 32, 0, 8); /* PN = 0, N = 0 */
    ad[0] = 0x01;
    memcpy(ad + 1, alice.party.device_id, 16);
    memcpy(ad + 17, bob.party.device_id, 16);
    memcpy(ad + 33, alice.party.identity_pk, 32);
    memcpy(ad + 65, bob.party.identity_pk, 32);
    memcpy(ad + 97, header, 40);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &ct_len, (const uint8_t *)text,
                                                                sizeof(text) - 1, ad, sizeof(ad),
                                                                NULL, nonce, kn),
                     0);
    assert_int_equal(buf_size(&inner), 2 + 40 + 24 + 4 + sizeof(ct));
    assert_int_equal(buf_data(&inner)[0], 1);
    assert_int_equal(buf_data(&inner)[1], 1);
    assert_memory_equal(buf_data(&inner) + 2, header, 40);
    assert_memory_equal(buf_data(&inner) + 42, nonce, 24);
    assert_int_equal(buf_data(&inner)[69], sizeof(ct));
    assert_memory_equal(buf_data(&inner) + 70, ct, sizeof(ct));

    if (print) {
        hex("Alice device id", alice.party.device_id, 16);
        hex("Alice identity secret (X25519)", alice.ik_sk, 32);
        hex("Alice identity key IK_A", alice.party.identity_pk, 32);
        hex("Bob device id", bob.party.device_id, 16);
        hex("Bob identity secret (X25519)", bob.ik_sk, 32);
        hex("Bob identity key IK_B", bob.party.identity_pk, 32);
        hex("Bob Ed25519 signing key", bob.sign_pk, 32);
        printf("Bob signed prekey id: 0x%08x\n", bob.spk_id);
        hex("Bob signed prekey secret", bob.spk_sk, 32);
        hex("Bob signed prekey SPK_B", bob.spk_pk, 32);
        hex("Bob signed prekey signature", bob.spk_sig, 64);
        printf("Bob one-time prekey id: 0x%08x\n", bob.opk_id);
        hex("Bob one-time prekey secret", bob.opk_sk, 32);
        hex("Bob one-time prekey OPK_B", bob.opk_pk, 32);
        hex("Alice ephemeral secret", ek_sk, 32);
        hex("Alice ephemeral key EK_A", pm.init.ek_pk, 32);
        {
            uint8_t d[32];
            assert_int_equal(crypto_scalarmult(d, alice.ik_sk, bob.spk_pk), 0);
            hex("DH1 = DH(IK_A, SPK_B)", d, 32);
            assert_int_equal(crypto_scalarmult(d, ek_sk, bob.party.identity_pk), 0);
            hex("DH2 = DH(EK_A, IK_B)", d, 32);
            assert_int_equal(crypto_scalarmult(d, ek_sk, bob.spk_pk), 0);
            hex("DH3 = DH(EK_A, SPK_B)", d, 32);
            assert_int_equal(crypto_scalarmult(d, ek_sk, bob.opk_pk), 0);
            hex("DH4 = DH(EK_A, OPK_B)", d, 32);
        }
        hex("SK", sk, 32);
        hex("Alice first ratchet secret", dhs_sk, 32);
        hex("Alice first ratchet key", dhs_pk, 32);
        hex("DH(ratchet secret, SPK_B)", dh, 32);
        hex("RK after KDF_RK", okm, 32);
        hex("CKs", okm + 32, 32);
        hex("MK = HMAC(CKs, 0x01)", mk, 32);
        hex("AEAD key", kn, 32);
        hex("AEAD nonce (random, sent)", nonce, 24);
        hex("AD", ad, sizeof(ad));
        printf("plaintext: \"%s\"\n", text);
        hex("ratchet message", buf_data(&inner), buf_size(&inner));
        hex("prekey message", buf_data(&wire), buf_size(&wire));
    }
    /* Frozen bytes: a change of format or KDF shows up here (and in PROTOCOL.md, part 3). */
    assert_non_null(want = malloc(buf_size(&wire)));
    {
        size_t bin_len = 0;
        if (sodium_hex2bin(want, buf_size(&wire), worked_example_hex,
                           sizeof(worked_example_hex) - 1, NULL, &bin_len, NULL) != 0 ||
            bin_len != buf_size(&wire))
            fail_msg("worked example: expected %zu bytes of hex, saw %zu", buf_size(&wire),
                     bin_len);
    }
    assert_memory_equal(buf_data(&wire), want, buf_size(&wire));
    free(want);

    /* Bob reads it. */
    {
        struct x3dh_prekey_msg got;
        uint8_t skb[32];
        assert_int_equal(x3dh_prekey_msg_parse(&got, buf_data(&wire), buf_size(&wire)), 0);
        assert_int_equal(
            x3dh_respond(skb, &got.init, bob.ik_sk, bob.spk_sk, bob.opk_sk, got.sender.identity_pk),
            0);
        assert_int_equal(ratchet_init_responder(&b, skb, &bob.party, &got.sender, bob.spk_sk), 0);
        assert_int_equal(buf_init(&pt, 1024, BUF_SECRET), 0);
        e2e_rng_seed(0x43); /* Bob's new ratchet key is drawn in this decryption */
        assert_int_equal(ratchet_decrypt(b, got.inner, got.inner_len, &pt), 0);
        assert_int_equal(buf_size(&pt), sizeof(text) - 1);
        assert_memory_equal(buf_data(&pt), text, sizeof(text) - 1);
        buf_free(&pt);
    }
    /* Alice's second message: CKs' = HMAC(CKs, 0x02) (spec 5.2), n = 1. */
    {
        uint8_t ck2[32], c2 = 2;
        struct buf m2;

        crypto_auth_hmacsha256(ck2, &c2, 1, okm + 32);
        enc(a, "second", &m2);
        expect_from_primitives(&m2, ck2, dhs_pk, 0, 1, &alice.party, &bob.party, "second");
        dec_ok(b, &m2, "second");
        buf_free(&m2);
    }
    /*
     * Bob's reply turns the DH ratchet (spec 3.5 DHRatchet): his new key pair,
     * RK2 || CKs_B = KDF_RK(RK, DH(new secret, Alice's ratchet key)).
     */
    {
        uint8_t bsk[32], bpk[32], d[32], okm2[64];
        struct buf r1;

        e2e_rng_seed(0x43);
        randombytes_buf(bsk, 32);
        assert_int_equal(crypto_scalarmult_base(bpk, bsk), 0);
        assert_int_equal(crypto_scalarmult(d, bsk, dhs_pk), 0);
        assert_int_equal(hkdf_sha256(okm2, 64, okm, 32, d, 32, (const uint8_t *)info_root,
                                     sizeof(info_root) - 1),
                         0);
        enc(b, "reply", &r1);
        expect_from_primitives(&r1, okm2 + 32, bpk, 0, 0, &bob.party, &alice.party, "reply");
        dec_ok(a, &r1, "reply");
        buf_free(&r1);
    }
    buf_free(&inner);
    buf_free(&wire);
    ratchet_session_free(a);
    ratchet_session_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_exchange),
        cmocka_unit_test(test_prekey_message_flow),
        cmocka_unit_test(test_identity_binding),
        cmocka_unit_test(test_long_conversation),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_max_skip),
        cmocka_unit_test(test_skipped_keys_age_limit),
        cmocka_unit_test(test_session_v1_read),
        cmocka_unit_test(test_max_skip_previous_chain),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_reflection),
        cmocka_unit_test(test_forged_plausible_header),
        cmocka_unit_test(test_forged_no_receiving_chain),
        cmocka_unit_test(test_tampered_messages),
        cmocka_unit_test(test_skipped_cap_eviction),
        cmocka_unit_test(test_encrypt_bounds),
        cmocka_unit_test(test_msg_codec),
        cmocka_unit_test(test_session_roundtrip),
        cmocka_unit_test(test_session_truncation_trailing),
        cmocka_unit_test(test_session_bitflips),
        cmocka_unit_test(test_session_strict_fields),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_rolled_back_sender),
    };

    e2e_rng_install();
    return cmocka_run_group_tests(tests, setup, NULL);
}
