/* test_wire.c - the relay protocol codec (lib/wire.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fileio.h"
#include "wire.h"

enum { NSAMPLES = 28 };

static uint8_t cert_bytes[CERT_MIN_LEN + 10];
static uint8_t relay_cert_bytes[RELAYCERT_MIN_LEN + 5];

/* Builds one valid sample of each message type into out (index i). */
static void make_sample(size_t i, struct buf *out)
{
    uint8_t nonce[WIRE_NONCE_LEN], sig[SIG_LEN], dev[DEVICE_ID_LEN], otk[3 * WIRE_OTK_LEN];
    uint8_t ids[3 * WIRE_ID_LEN], ct1[5] = {1, 2, 3, 4, 5}, ct2[1] = {9};
    struct wire_signed_prekey spk = {.id = 7};
    struct wire_envelope env[2] = {
        {.precedence = WIRE_FLASH, .expiry = 1000, .ct = ct1, .ct_len = sizeof(ct1)},
        {.precedence = WIRE_ROUTINE, .expiry = 2000, .ct = ct2, .ct_len = sizeof(ct2)},
    };
    struct wire_ack acks[2] = {{.reason = WIRE_R_OK}, {.reason = WIRE_R_QUEUE_FULL}};
    struct wire_nd nds[1] = {{.reason = WIRE_R_EXPIRED}};
    struct wire_attach att = {.ct_size = 40048, .c = 3, .precedence = WIRE_ROUTINE,
                              .expiry = 1900000000, .n_rcpt = 2, .rcpt = ids, .i = 1,
                              .stored = 1, .ct = ct1, .ct_len = sizeof(ct1)};
    int r = VERR_INTERNAL;

    memset(nonce, 0xa5, sizeof(nonce));
    memset(sig, 0x5a, sizeof(sig));
    memset(dev, 0x11, sizeof(dev));
    memset(otk, 0x22, sizeof(otk));
    memset(ids, 0x33, sizeof(ids));
    memset(spk.pk, 0x44, sizeof(spk.pk));
    memset(spk.sig, 0x55, sizeof(spk.sig));
    memset(env[0].id, 1, WIRE_ID_LEN);
    memset(env[1].id, 2, WIRE_ID_LEN);
    memset(env[0].peer, 3, DEVICE_ID_LEN);
    memset(env[1].peer, 4, DEVICE_ID_LEN);
    memset(acks[0].id, 5, WIRE_ID_LEN);
    memset(acks[1].id, 6, WIRE_ID_LEN);
    memset(nds[0].id, 7, WIRE_ID_LEN);
    memset(nds[0].recipient, 8, DEVICE_ID_LEN);
    memset(att.att, 9, WIRE_ID_LEN);
    switch (i) {
    case 0:
        r = wire_put_challenge(out, nonce, relay_cert_bytes, sizeof(relay_cert_bytes), sig);
        break;
    case 1: r = wire_put_auth(out, cert_bytes, sizeof(cert_bytes), sig); break;
    case 2: r = wire_put_auth_ok(out, 3, 1700000000, env[0].id, nds[0].id); break;
    case 3: r = wire_put_error(out, WIRE_R_RATE_LIMITED, "slow down"); break;
    case 4: r = wire_put_directory(out, WIRE_DIRECTORY_GET, NULL, 0); break;
    case 5: r = wire_put_directory(out, WIRE_DIRECTORY, otk, 20); break;
    case 6: r = wire_put_directory(out, WIRE_DIRECTORY_PUT, otk, 21); break;
    case 7: r = wire_put_directory_ok(out, 9); break;
    case 8: r = wire_put_prekey_upload(out, &spk, otk, 3); break;
    case 9: r = wire_put_count(out, WIRE_PREKEY_OK, 3); break;
    case 10: r = wire_put_bundle_get(out, dev); break;
    case 11: r = wire_put_bundle(out, cert_bytes, sizeof(cert_bytes), &spk, 77, otk); break;
    case 12: r = wire_put_count(out, WIRE_PREKEY_LOW, 1); break;
    case 13: r = wire_put_envelopes(out, WIRE_SUBMIT, env, 2); break;
    case 14: r = wire_put_submit_ack(out, acks, 2); break;
    case 15: r = wire_put_envelopes(out, WIRE_DELIVER, env, 2); break;
    case 16: r = wire_put_ids(out, WIRE_DELIVER_ACK, ids, 3); break;
    case 17: r = wire_put_non_delivery(out, nds, 1); break;
    case 18: r = wire_put_ids(out, WIRE_NON_DELIVERY_ACK, ids, 2); break;
    case 19: r = wire_put_hello(out, nonce); break;
    case 20: r = wire_put_attach(out, WIRE_ATTACH_OPEN, &att); break;
    case 21: r = wire_put_attach(out, WIRE_ATTACH_STATE, &att); break;
    case 22: r = wire_put_attach(out, WIRE_ATTACH_PUT, &att); break;
    case 23: r = wire_put_attach(out, WIRE_ATTACH_PUT_ACK, &att); break;
    case 24: r = wire_put_attach(out, WIRE_ATTACH_GET, &att); break;
    case 25: r = wire_put_attach(out, WIRE_ATTACH_CHUNK, &att); break;
    case 26: r = wire_put_attach(out, WIRE_ATTACH_CHUNK_ACK, &att); break;
    case 27: r = wire_put_attach(out, WIRE_ATTACH_DONE, &att); break;
    default: break;
    }
    assert_int_equal(r, 0);
}

static void setup_cert(void)
{
    memset(cert_bytes, 0xcc, sizeof(cert_bytes));
    memset(relay_cert_bytes, 0xdd, sizeof(relay_cert_bytes));
}

static void test_roundtrip(void **state)
{
    static const uint8_t types[NSAMPLES] = {
        WIRE_CHALLENGE, WIRE_AUTH, WIRE_AUTH_OK, WIRE_ERROR, WIRE_DIRECTORY_GET,
        WIRE_DIRECTORY, WIRE_DIRECTORY_PUT, WIRE_DIRECTORY_OK, WIRE_PREKEY_UPLOAD,
        WIRE_PREKEY_OK, WIRE_BUNDLE_GET, WIRE_BUNDLE, WIRE_PREKEY_LOW, WIRE_SUBMIT,
        WIRE_SUBMIT_ACK, WIRE_DELIVER, WIRE_DELIVER_ACK, WIRE_NON_DELIVERY,
        WIRE_NON_DELIVERY_ACK, WIRE_HELLO, WIRE_ATTACH_OPEN, WIRE_ATTACH_STATE,
        WIRE_ATTACH_PUT, WIRE_ATTACH_PUT_ACK, WIRE_ATTACH_GET, WIRE_ATTACH_CHUNK,
        WIRE_ATTACH_CHUNK_ACK, WIRE_ATTACH_DONE,
    };
    (void)state;
    setup_cert();
    for (size_t i = 0; i < NSAMPLES; i++) {
        struct buf b;
        struct wire_msg m;

        assert_int_equal(buf_init(&b, 1 << 20, 0), 0);
        make_sample(i, &b);
        assert_int_equal(buf_data(&b)[0], WIRE_VERSION);
        assert_int_equal(wire_decode(buf_data(&b), buf_size(&b), &m), 0);
        if (m.type != types[i])
            fail_msg("sample %zu: expected type 0x%02x, saw 0x%02x", i, types[i], m.type);
        buf_free(&b);
    }
}

static void test_fields(void **state)
{
    struct buf b;
    struct wire_msg m;
    struct wire_iter it;
    struct wire_envelope e;
    uint32_t id;
    uint8_t pk[WIRE_PK_LEN];

    (void)state;
    setup_cert();
    assert_int_equal(buf_init(&b, 1 << 20, 0), 0);
    make_sample(13, &b);
    assert_int_equal(wire_decode(buf_data(&b), buf_size(&b), &m), 0);
    assert_int_equal(m.u.batch.n, 2);
    wire_iter_init(&it, &m);
    assert_int_equal(wire_next_envelope(&it, &e), 0);
    assert_int_equal(e.precedence, WIRE_FLASH);
    assert_int_equal(e.expiry, 1000);
    assert_int_equal(e.ct_len, 5);
    assert_int_equal(e.ct[4], 5);
    assert_int_equal(e.peer[0], 3);
    assert_int_equal(wire_next_envelope(&it, &e), 0);
    assert_int_equal(e.precedence, WIRE_ROUTINE);
    assert_int_equal(e.ct_len, 1);
    assert_int_not_equal(wire_next_envelope(&it, &e), 0);
    buf_reset(&b);

    make_sample(0, &b);
    assert_int_equal(wire_decode(buf_data(&b), buf_size(&b), &m), 0);
    assert_int_equal(m.u.challenge.nonce[0], 0xa5);
    assert_int_equal(m.u.challenge.relay_cert_len, sizeof(relay_cert_bytes));
    assert_memory_equal(m.u.challenge.relay_cert, relay_cert_bytes, sizeof(relay_cert_bytes));
    assert_int_equal(m.u.challenge.sig[63], 0x5a);
    buf_reset(&b);

    make_sample(19, &b);
    assert_int_equal(wire_decode(buf_data(&b), buf_size(&b), &m), 0);
    assert_int_equal(m.u.client_nonce[31], 0xa5);
    buf_reset(&b);

    make_sample(3, &b);
    assert_int_equal(wire_decode(buf_data(&b), buf_size(&b), &m), 0);
    assert_int_equal(m.u.error.reason, WIRE_R_RATE_LIMITED);
    assert_string_equal(m.u.error.text, "slow down");
    buf_reset(&b);

    make_sample(8, &b);
    assert_int_equal(wire_decode(buf_data(&b), buf_size(&b), &m), 0);
    assert_int_equal(m.u.prekey_upload.spk.id, 7);
    assert_int_equal(m.u.prekey_upload.n_otk, 3);
    wire_iter_init(&it, &m);
    assert_int_equal(wire_next_otk(&it, &id, pk), 0);
    assert_int_equal(id, 0x22222222u);
    buf_reset(&b);

    make_sample(11, &b);
    assert_int_equal(wire_decode(buf_data(&b), buf_size(&b), &m), 0);
    assert_int_equal(m.u.bundle.has_otk, 1);
    assert_int_equal(m.u.bundle.otk_id, 77);
    assert_int_equal(m.u.bundle.cert_len, sizeof(cert_bytes));
    buf_free(&b);
}

/* Every proper prefix of every sample is refused. */
static void test_truncations(void **state)
{
    (void)state;
    setup_cert();
    for (size_t i = 0; i < NSAMPLES; i++) {
        struct buf b;
        struct wire_msg m;

        assert_int_equal(buf_init(&b, 1 << 20, 0), 0);
        make_sample(i, &b);
        for (size_t n = 0; n < buf_size(&b); n++) {
            int r = wire_decode(buf_data(&b), n, &m);
            if (r == 0)
                fail_msg("sample %zu cut to %zu of %zu bytes: expected an error, saw 0", i, n,
                         buf_size(&b));
        }
        buf_free(&b);
    }
}

/* Every sample with one byte more is refused. */
static void test_trailing(void **state)
{
    (void)state;
    setup_cert();
    for (size_t i = 0; i < NSAMPLES; i++) {
        struct buf b;
        struct wire_msg m;

        assert_int_equal(buf_init(&b, 1 << 20, 0), 0);
        make_sample(i, &b);
        assert_int_equal(buf_put_u8(&b, 0), 0);
        int r = wire_decode(buf_data(&b), buf_size(&b), &m);
        if (r != VERR_TRAILING)
            fail_msg("sample %zu + 1 byte: expected %d (trailing), saw %d", i, VERR_TRAILING, r);
        buf_free(&b);
    }
}

/* Every single-bit flip: no crash, and a success re-encodes to a valid decode. */
static void test_bitflips(void **state)
{
    (void)state;
    setup_cert();
    for (size_t i = 0; i < NSAMPLES; i++) {
        struct buf b;
        uint8_t copy[4096];
        struct wire_msg m;

        assert_int_equal(buf_init(&b, 1 << 20, 0), 0);
        make_sample(i, &b);
        assert_true(buf_size(&b) <= sizeof(copy));
        for (size_t bit = 0; bit < buf_size(&b) * 8; bit++) {
            memcpy(copy, buf_data(&b), buf_size(&b));
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            int r = wire_decode(copy, buf_size(&b), &m);
            if (bit < 8)
                assert_int_equal(r, VERR_BAD_VERSION); /* the version byte */
            if (r == 0 && (m.type == WIRE_SUBMIT || m.type == WIRE_DELIVER)) {
                struct wire_iter it;
                struct wire_envelope e;
                wire_iter_init(&it, &m);
                for (size_t k = 0; k < m.u.batch.n; k++)
                    assert_int_equal(wire_next_envelope(&it, &e), 0);
            }
        }
        buf_free(&b);
    }
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* Counts and lengths over the caps are refused before anything is read. */
static void test_oversize(void **state)
{
    uint8_t msg[64] = {WIRE_VERSION, WIRE_SUBMIT};
    uint8_t big[4 + 2 + 45] = {WIRE_VERSION, WIRE_SUBMIT, 0, 1};
    struct wire_msg m;

    (void)state;
    put_u16(msg + 2, WIRE_MAX_BATCH + 1);
    assert_int_equal(wire_decode(msg, 4, &m), VERR_TOO_LARGE);
    put_u16(msg + 2, 0);
    assert_int_equal(wire_decode(msg, 4, &m), VERR_BAD_FORMAT);
    /* one envelope declaring a ciphertext over WIRE_CT_MAX */
    memset(big + 4, 0, 16 + 16 + 1 + 8);
    big[4 + 41] = 0x7f;
    big[4 + 42] = 0xff;
    big[4 + 43] = 0xff;
    big[4 + 44] = 0xff;
    assert_int_equal(wire_decode(big, 4 + 45, &m), VERR_TOO_LARGE);
    /* directory over its cap */
    uint8_t dir[6] = {WIRE_VERSION, WIRE_DIRECTORY_PUT, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(wire_decode(dir, sizeof(dir), &m), VERR_TOO_LARGE);
    /* certificate over its cap */
    uint8_t auth[4] = {WIRE_VERSION, WIRE_AUTH, 0xff, 0xff};
    assert_int_equal(wire_decode(auth, sizeof(auth), &m), VERR_TOO_LARGE);
    /* relay certificate in CHALLENGE over its cap, and under its minimum */
    uint8_t ch[2 + 32 + 2] = {WIRE_VERSION, WIRE_CHALLENGE};
    put_u16(ch + 34, RELAYCERT_MAX_LEN + 1);
    assert_int_equal(wire_decode(ch, sizeof(ch), &m), VERR_TOO_LARGE);
    {
        uint8_t small[2 + 32 + 2 + RELAYCERT_MIN_LEN - 1 + 64] = {WIRE_VERSION, WIRE_CHALLENGE};
        put_u16(small + 34, RELAYCERT_MIN_LEN - 1);
        assert_int_equal(wire_decode(small, sizeof(small), &m), VERR_BAD_FORMAT);
    }
    /* prekey batch over its cap */
    uint8_t pre[2 + 4 + 32 + 64 + 2] = {WIRE_VERSION, WIRE_PREKEY_UPLOAD};
    put_u16(pre + sizeof(pre) - 2, WIRE_MAX_OTK + 1);
    assert_int_equal(wire_decode(pre, sizeof(pre), &m), VERR_TOO_LARGE);
    /* unknown type and bad precedence */
    uint8_t unk[2] = {WIRE_VERSION, 0x7e};
    assert_int_equal(wire_decode(unk, sizeof(unk), &m), VERR_BAD_FORMAT);
    big[4 + 32] = 4; /* precedence 4 */
    big[4 + 41] = 0;
    big[4 + 42] = 0;
    big[4 + 43] = 0;
    big[4 + 44] = 1;
    assert_int_equal(wire_decode(big, 4 + 45, &m), VERR_BAD_FORMAT);
}

static void test_encoder_limits(void **state)
{
    struct buf b;
    uint8_t ct = 1;
    struct wire_envelope e = {.precedence = 0, .ct = &ct, .ct_len = 1};

    (void)state;
    assert_int_equal(buf_init(&b, 10, 0), 0);
    /* does not fit: nothing half-written */
    assert_int_not_equal(wire_put_envelopes(&b, WIRE_SUBMIT, &e, 1), 0);
    assert_int_equal(buf_size(&b), 0);
    assert_int_equal(wire_put_error(&b, WIRE_R_OK, "x"), VERR_USAGE);
    buf_free(&b);
    assert_string_equal(wire_reason_name(WIRE_R_QUEUE_FULL), "queue_full");
    assert_string_equal(wire_type_name(WIRE_SUBMIT), "submit");
}

/*
 * Frozen bytes (PROTOCOL.md part 2 "Authentication"): HELLO and the signed
 * handshake body, byte for byte, so an implementation written from the
 * document can compare.
 */
static void test_handshake_frozen(void **state)
{
    static const uint8_t hello[34] = {
        0x01, 0x05, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5,
        0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5,
        0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5,
    };
    uint8_t cn[WIRE_NONCE_LEN], sn[WIRE_NONCE_LEN], bind[WIRE_BINDING_LEN], nonce[WIRE_NONCE_LEN];
    uint8_t want[1 + 7 + 32 + 32 + 32];
    struct buf b;

    (void)state;
    memset(nonce, 0xa5, sizeof(nonce));
    assert_int_equal(buf_init(&b, 256, 0), 0);
    assert_int_equal(wire_put_hello(&b, nonce), 0);
    assert_int_equal(buf_size(&b), sizeof(hello));
    assert_memory_equal(buf_data(&b), hello, sizeof(hello));
    buf_reset(&b);
    memset(cn, 0x01, sizeof(cn));
    memset(sn, 0x02, sizeof(sn));
    memset(bind, 0x03, sizeof(bind));
    want[0] = 7;
    memcpy(want + 1, "relay-1", 7);
    memcpy(want + 8, cn, 32);
    memcpy(want + 40, sn, 32);
    memcpy(want + 72, bind, 32);
    assert_int_equal(wire_handshake_body(&b, "relay-1", cn, sn, bind), 0);
    assert_int_equal(buf_size(&b), sizeof(want));
    assert_memory_equal(buf_data(&b), want, sizeof(want));
    buf_reset(&b);
    /* an empty or oversize relay id writes nothing */
    assert_int_not_equal(wire_handshake_body(&b, "", cn, sn, bind), 0);
    assert_int_equal(buf_size(&b), 0);
    buf_free(&b);
}

/* The fuzz seeds are valid messages, so the fuzzer starts from deep inside the codec. */
static void test_fuzz_seeds(void **state)
{
    static const char *const seeds[] = {
        "hello", "challenge", "auth_ok", "error", "directory_get", "directory_put", "prekey_upload",
        "bundle_get", "submit", "deliver", "submit_ack", "deliver_ack", "non_delivery",
        "non_delivery_ack", "queue_empty", "deliver_ack-empty", "attach_open", "attach_state",
        "attach_put", "attach_put_ack", "attach_get", "attach_chunk", "attach_chunk_ack",
        "attach_done", "directory_delta_get", "directory_delta", "directory_current",
        "directory_piece_get", "directory_piece",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char path[1024], dir[900];
        struct buf f;
        struct wire_msg m;

        snprintf(dir, sizeof(dir), "%s/fuzz/corpus/wire", VALISE_SOURCE_DIR);
        assert_int_equal(file_join(path, sizeof(path), dir, seeds[i]), 0);
        assert_int_equal(file_read(path, 1 << 20, 0, &f), 0);
        int r = wire_decode(buf_data(&f), buf_size(&f), &m);
        if (r != 0)
            fail_msg("seed %s: expected 0, saw %d", seeds[i], r);
        buf_free(&f);
    }
}

/*
 * Directory transfer (PROTOCOL.md part 2 "Directory transfer"): the exact
 * bytes of each message, its fields, and its bounds.
 */
static void test_directory_transfer_messages(void **state)
{
    static const uint8_t delta_get[] = {1, 0x14, 0, 0, 0, 0, 0, 0, 0, 7};
    static const uint8_t current[] = {1, 0x16, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0x23, 0x1c, 0xa1};
    static const uint8_t piece_get[] = {1, 0x17, 0, 0, 0, 0, 0, 0, 0, 9,
                                        0, 0, 0x10, 0, 0, 0, 0x10, 0};
    static const uint8_t piece[] = {1, 0x18, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 6,
                                    0, 0, 0, 4, 0, 0, 0, 2, 0xaa, 0xbb};
    static const uint8_t delta[] = {1, 0x15, 0, 0, 0, 3, 'V', 'D', 'D'};
    uint8_t bad[sizeof(piece)];
    struct wire_msg m;
    struct buf b;
    (void)state;

    assert_int_equal(buf_init(&b, 256, 0), 0);
    assert_int_equal(wire_put_dir_delta_get(&b, 7), 0);
    assert_int_equal(buf_size(&b), sizeof(delta_get));
    assert_memory_equal(buf_data(&b), delta_get, sizeof(delta_get));
    buf_reset(&b);
    assert_int_equal(wire_put_dir_current(&b, 9, 0x231ca1), 0);
    assert_memory_equal(buf_data(&b), current, sizeof(current));
    buf_reset(&b);
    assert_int_equal(wire_put_dir_piece_get(&b, 9, 4096, 4096), 0);
    assert_memory_equal(buf_data(&b), piece_get, sizeof(piece_get));
    buf_reset(&b);
    assert_int_equal(wire_put_dir_piece(&b, 9, 6, 4, piece + 22, 2), 0);
    assert_int_equal(buf_size(&b), sizeof(piece));
    assert_memory_equal(buf_data(&b), piece, sizeof(piece));
    buf_reset(&b);
    assert_int_equal(wire_put_directory(&b, WIRE_DIRECTORY_DELTA, delta + 6, 3), 0);
    assert_memory_equal(buf_data(&b), delta, sizeof(delta));
    /* Encoders refuse what decoders would. */
    assert_int_equal(wire_put_dir_piece_get(&b, 9, 0, 0), VERR_USAGE);
    assert_int_equal(wire_put_dir_piece_get(&b, 9, 0, WIRE_DIR_PIECE_MAX + 1), VERR_USAGE);
    assert_int_equal(wire_put_dir_piece(&b, 9, 6, 5, piece + 22, 2), VERR_USAGE);
    assert_int_equal(wire_put_dir_piece(&b, 0, 6, 4, piece + 22, 2), VERR_USAGE);
    assert_int_equal(wire_put_dir_current(&b, 9, 0), VERR_USAGE);
    buf_free(&b);

    assert_int_equal(wire_decode(delta_get, sizeof(delta_get), &m), 0);
    assert_int_equal(m.u.dir_piece.version, 7);
    assert_int_equal(wire_decode(current, sizeof(current), &m), 0);
    assert_int_equal(m.u.dir_piece.version, 9);
    assert_int_equal(m.u.dir_piece.total, 0x231ca1);
    assert_int_equal(wire_decode(piece_get, sizeof(piece_get), &m), 0);
    assert_int_equal(m.u.dir_piece.offset, 4096);
    assert_int_equal(m.u.dir_piece.len, 4096);
    assert_int_equal(wire_decode(piece, sizeof(piece), &m), 0);
    assert_int_equal(m.u.dir_piece.total, 6);
    assert_int_equal(m.u.dir_piece.offset, 4);
    assert_int_equal(m.u.dir_piece.len, 2);
    assert_int_equal(m.u.dir_piece.bytes[1], 0xbb);
    assert_int_equal(wire_decode(delta, sizeof(delta), &m), 0);
    assert_int_equal(m.u.directory.len, 3);

    /* Truncated and trailing. */
    assert_int_equal(wire_decode(piece, sizeof(piece) - 1, &m), VERR_TRUNCATED);
    assert_int_equal(wire_decode(delta_get, sizeof(delta_get) - 1, &m), VERR_TRUNCATED);
    {
        uint8_t t[sizeof(current) + 1];
        memcpy(t, current, sizeof(current));
        t[sizeof(current)] = 0;
        assert_int_equal(wire_decode(t, sizeof(t), &m), VERR_TRAILING);
    }
    /* A piece past its directory's end, of version 0, or of a directory of 0 bytes. */
    memcpy(bad, piece, sizeof(piece));
    bad[17] = 5;
    assert_int_equal(wire_decode(bad, sizeof(bad), &m), VERR_BAD_FORMAT);
    memcpy(bad, piece, sizeof(piece));
    bad[9] = 0;
    assert_int_equal(wire_decode(bad, sizeof(bad), &m), VERR_BAD_FORMAT);
    memcpy(bad, piece, sizeof(piece));
    bad[13] = 0;
    assert_int_equal(wire_decode(bad, sizeof(bad), &m), VERR_BAD_FORMAT);
    /* A piece over WIRE_DIR_PIECE_MAX: its length is refused before its bytes. */
    memcpy(bad, piece, sizeof(piece));
    bad[19] = 0x01;
    bad[20] = 0x00;
    bad[21] = 0x01;
    assert_int_equal(wire_decode(bad, sizeof(bad), &m), VERR_TOO_LARGE);
    {
        /* PIECE_GET asking for nothing, for more than a piece, or past WIRE_DIR_MAX. */
        uint8_t g[sizeof(piece_get)];
        memcpy(g, piece_get, sizeof(g));
        memset(g + 14, 0, 4);
        assert_int_equal(wire_decode(g, sizeof(g), &m), VERR_BAD_FORMAT);
        memcpy(g, piece_get, sizeof(g));
        g[15] = 0x01;
        g[16] = 0x00;
        g[17] = 0x01;
        assert_int_equal(wire_decode(g, sizeof(g), &m), VERR_BAD_FORMAT);
        memcpy(g, piece_get, sizeof(g));
        g[10] = 0x01; /* offset 16 MiB + 4096 */
        assert_int_equal(wire_decode(g, sizeof(g), &m), VERR_BAD_FORMAT);
    }
    {
        /* CURRENT of an empty or oversized directory. */
        uint8_t c[sizeof(current)];
        memcpy(c, current, sizeof(c));
        memset(c + 10, 0, 4);
        assert_int_equal(wire_decode(c, sizeof(c), &m), VERR_BAD_FORMAT);
        c[10] = 0x02;
        assert_int_equal(wire_decode(c, sizeof(c), &m), VERR_BAD_FORMAT);
    }
}

/*
 * Flow control (PROTOCOL.md part 2, issue 13): QUEUE_EMPTY is the header
 * alone; a DELIVER_ACK may list no id, no other batch may be empty.
 */
static void test_flow_control_messages(void **state)
{
    static const uint8_t qe[] = {WIRE_VERSION, WIRE_QUEUE_EMPTY, 0};
    static const uint8_t empty[][4] = {
        {WIRE_VERSION, WIRE_DELIVER_ACK, 0, 0},
        {WIRE_VERSION, WIRE_NON_DELIVERY_ACK, 0, 0},
        {WIRE_VERSION, WIRE_SUBMIT, 0, 0},
        {WIRE_VERSION, WIRE_DELIVER, 0, 0},
    };
    struct wire_msg m;
    struct buf b;
    (void)state;

    assert_int_equal(buf_init(&b, 64, 0), 0);
    assert_int_equal(wire_put_queue_empty(&b), 0);
    assert_int_equal(buf_size(&b), 2);
    assert_memory_equal(buf_data(&b), qe, 2);
    assert_int_equal(wire_decode(qe, 2, &m), 0);
    assert_int_equal(m.type, WIRE_QUEUE_EMPTY);
    assert_int_equal(wire_decode(qe, 3, &m), VERR_TRAILING);
    buf_reset(&b);
    assert_int_equal(wire_put_ids(&b, WIRE_DELIVER_ACK, NULL, 0), 0);
    assert_memory_equal(buf_data(&b), empty[0], 4);
    assert_int_equal(wire_put_ids(&b, WIRE_NON_DELIVERY_ACK, NULL, 0), VERR_USAGE);
    buf_free(&b);
    assert_int_equal(wire_decode(empty[0], 4, &m), 0);
    assert_int_equal(m.u.batch.n, 0);
    for (size_t i = 1; i < 4; i++)
        if (wire_decode(empty[i], 4, &m) != VERR_BAD_FORMAT)
            fail_msg("empty batch of type 0x%02x: expected refused", empty[i][1]);
}

/*
 * Attachments (PROTOCOL.md part 2 "Attachments"): frozen bytes of OPEN and
 * CHUNK, the fields each decodes to, and every bound of the format refused.
 */
static void test_attach_messages(void **state)
{
    static const uint8_t open_bytes[2 + 16 + 8 + 4 + 1 + 8 + 2 + 16] = {
        0x01, 0x50, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61,
        0x61, 0x61, 0x61, 0x61,                         /* att */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9c, 0x70, /* ct_size 40048 */
        0x00, 0x00, 0x00, 0x03,                         /* c 3 */
        0x03,                                           /* ROUTINE */
        0x00, 0x00, 0x00, 0x00, 0x71, 0x3f, 0xb3, 0x00, /* expiry 1900000000 */
        0x00, 0x01,                                     /* one recipient */
        0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
        0x11, 0x11,
    };
    static const uint8_t chunk_bytes[2 + 16 + 4 + 4 + 4 + 3] = {
        0x01, 0x55, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61,
        0x61, 0x61, 0x61, 0x61, 0x00, 0x00, 0x00, 0x02, /* i 2 */
        0x00, 0x00, 0x00, 0x03,                         /* c 3 */
        0x00, 0x00, 0x00, 0x03, 0xaa, 0xbb, 0xcc,       /* n 3, chunk ciphertext */
    };
    uint8_t rcpt[DEVICE_ID_LEN], ct[3] = {0xaa, 0xbb, 0xcc}, bad[sizeof(open_bytes)];
    struct wire_attach a = {.ct_size = 40048, .c = 3, .precedence = WIRE_ROUTINE,
                            .expiry = 1900000000, .n_rcpt = 1, .rcpt = rcpt};
    struct wire_msg m;
    struct buf b;

    (void)state;
    memset(rcpt, 0x11, sizeof(rcpt));
    memset(a.att, 0x61, sizeof(a.att));
    assert_int_equal(buf_init(&b, 1 << 16, 0), 0);
    assert_int_equal(wire_put_attach(&b, WIRE_ATTACH_OPEN, &a), 0);
    assert_int_equal(buf_size(&b), sizeof(open_bytes));
    assert_memory_equal(buf_data(&b), open_bytes, sizeof(open_bytes));
    assert_int_equal(wire_decode(open_bytes, sizeof(open_bytes), &m), 0);
    assert_int_equal(m.u.attach.ct_size, 40048);
    assert_int_equal(m.u.attach.c, 3);
    assert_int_equal(m.u.attach.expiry, 1900000000);
    assert_int_equal(m.u.attach.n_rcpt, 1);
    assert_memory_equal(m.u.attach.rcpt, rcpt, DEVICE_ID_LEN);
    buf_reset(&b);
    a.i = 2;
    a.ct = ct;
    a.ct_len = sizeof(ct);
    assert_int_equal(wire_put_attach(&b, WIRE_ATTACH_CHUNK, &a), 0);
    assert_int_equal(buf_size(&b), sizeof(chunk_bytes));
    assert_memory_equal(buf_data(&b), chunk_bytes, sizeof(chunk_bytes));
    /* OPEN: c 0, ct_size under 17, precedence 4, no recipient; over the caps */
    memcpy(bad, open_bytes, sizeof(bad));
    memset(bad + 26, 0, 4);
    assert_int_equal(wire_decode(bad, sizeof(bad), &m), VERR_BAD_FORMAT);
    memcpy(bad, open_bytes, sizeof(bad));
    memset(bad + 18, 0, 8);
    bad[25] = 16;
    assert_int_equal(wire_decode(bad, sizeof(bad), &m), VERR_BAD_FORMAT);
    memcpy(bad, open_bytes, sizeof(bad));
    bad[30] = 4;
    assert_int_equal(wire_decode(bad, sizeof(bad), &m), VERR_BAD_FORMAT);
    memcpy(bad, open_bytes, sizeof(bad));
    bad[39] = 0;
    bad[40] = 0;
    assert_int_equal(wire_decode(bad, 41, &m), VERR_BAD_FORMAT);
    memcpy(bad, open_bytes, sizeof(bad));
    put_u16(bad + 39, WIRE_ATT_RCPT_MAX + 1);
    assert_int_equal(wire_decode(bad, sizeof(bad), &m), VERR_TOO_LARGE);
    memcpy(bad, open_bytes, sizeof(bad));
    bad[26] = 0x04; /* c = 2^26 + 3 */
    assert_int_equal(wire_decode(bad, sizeof(bad), &m), VERR_TOO_LARGE);
    memcpy(bad, open_bytes, sizeof(bad));
    bad[20] = 0x02; /* ct_size = 2^41 + 40048 */
    assert_int_equal(wire_decode(bad, sizeof(bad), &m), VERR_TOO_LARGE);
    /* CHUNK: i not below c, empty, over one chunk (refused before its bytes are read) */
    memcpy(bad, chunk_bytes, sizeof(chunk_bytes));
    bad[21] = 3;
    assert_int_equal(wire_decode(bad, sizeof(chunk_bytes), &m), VERR_BAD_FORMAT);
    memcpy(bad, chunk_bytes, sizeof(chunk_bytes));
    bad[29] = 0;
    assert_int_equal(wire_decode(bad, 30, &m), VERR_BAD_FORMAT);
    memcpy(bad, chunk_bytes, sizeof(chunk_bytes));
    bad[28] = 0x40; /* 16384 + 3 bytes is still one chunk; 0x4010 = 16400 fits, 0x4011 not */
    bad[29] = 0x11;
    assert_int_equal(wire_decode(bad, 30, &m), VERR_TOO_LARGE);
    /* STATE: stored over c, a reason past the table */
    {
        struct wire_attach st = {.reason = WIRE_R_OK, .c = 3, .stored = 4};

        buf_reset(&b);
        assert_int_equal(wire_put_attach(&b, WIRE_ATTACH_STATE, &st), VERR_USAGE);
        st.stored = 3;
        st.reason = WIRE_R_MAX + 1;
        assert_int_equal(wire_put_attach(&b, WIRE_ATTACH_STATE, &st), VERR_USAGE);
        assert_int_equal(buf_size(&b), 0);
        st.reason = WIRE_R_CHUNK_INVALID;
        assert_int_equal(wire_put_attach(&b, WIRE_ATTACH_STATE, &st), 0);
        {
            uint8_t sb[2 + 16 + 2 + 4 + 4];

            assert_int_equal(buf_size(&b), sizeof(sb));
            memcpy(sb, buf_data(&b), sizeof(sb));
            assert_int_equal(wire_decode(sb, sizeof(sb), &m), 0);
            sb[sizeof(sb) - 1] = 4; /* stored 4 of c 3 */
            assert_int_equal(wire_decode(sb, sizeof(sb), &m), VERR_BAD_FORMAT);
            sb[sizeof(sb) - 1] = 3;
            put_u16(sb + 18, WIRE_R_MAX + 1);
            assert_int_equal(wire_decode(sb, sizeof(sb), &m), VERR_BAD_FORMAT);
        }
    }
    assert_string_equal(wire_reason_name(WIRE_R_ATTACHMENT_UNKNOWN), "attachment_unknown");
    assert_string_equal(wire_reason_name(WIRE_R_ATTACHMENT_TOO_LARGE), "attachment_too_large");
    assert_string_equal(wire_reason_name(WIRE_R_CHUNK_INVALID), "chunk_invalid");
    assert_string_equal(wire_type_name(WIRE_ATTACH_CHUNK_ACK), "attach_chunk_ack");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),     cmocka_unit_test(test_fields),
        cmocka_unit_test(test_truncations),   cmocka_unit_test(test_trailing),
        cmocka_unit_test(test_bitflips),      cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_encoder_limits), cmocka_unit_test(test_fuzz_seeds),
        cmocka_unit_test(test_handshake_frozen), cmocka_unit_test(test_flow_control_messages),
        cmocka_unit_test(test_attach_messages),
        cmocka_unit_test(test_directory_transfer_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
