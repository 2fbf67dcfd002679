/* test_directory.c - directory upload and reload, revocation mid-session, prekey bundles (issue 3). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "fileio.h"
#include "relaytest.h"
#include "sig.h"

/* relay/store.h STORE_DIR_HISTORY: directory versions the relay keeps (PROTOCOL.md part 2). */
enum { STORE_DIR_HISTORY_TEST = 16 };

struct fixture {
    struct tpki pki, other;
    struct tdev a, b, c, d;
    struct trelay relay;
    struct buf msg;
};

static int setup(void **state)
{
    static struct fixture f;
    const struct tdev *devs[4];
    uint64_t now = tnow();

    memset(&f, 0, sizeof(f));
    assert_int_equal(tpki_init(&f.pki), 0);
    assert_int_equal(tpki_init(&f.other), 0);
    assert_int_equal(tdev_make(&f.pki, &f.a, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.b, 2, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.c, 3, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.d, 4, now - 60, now + 86400), 0);
    devs[0] = &f.a;
    devs[1] = &f.b;
    devs[2] = &f.c;
    devs[3] = &f.d;
    assert_int_equal(tpki_write_dir(&f.pki, 1, devs, 4, NULL, 0), 0);
    assert_int_equal(trelay_start(&f.relay, &f.pki, NULL), 0);
    assert_int_equal(buf_init(&f.msg, 8 << 20, 0), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    trelay_signal(&f->relay, SIGKILL);
    buf_free(&f->msg);
    tpki_cleanup(&f->pki);
    tpki_cleanup(&f->other);
    return 0;
}

static void make_spk(const struct tdev *d, struct wire_signed_prekey *spk, uint32_t id)
{
    uint8_t sk[32], body[WIRE_SPK_BODY_LEN];

    randombytes_buf(sk, sizeof(sk));
    crypto_scalarmult_base(spk->pk, sk);
    spk->id = id;
    memcpy(body, d->cert.device_id, DEVICE_ID_LEN);
    body[16] = (uint8_t)(id >> 24);
    body[17] = (uint8_t)(id >> 16);
    body[18] = (uint8_t)(id >> 8);
    body[19] = (uint8_t)id;
    memcpy(body + 20, spk->pk, WIRE_PK_LEN);
    assert_int_equal(sig_sign(spk->sig, SIG_CTX_PREKEY, body, sizeof(body), d->sk), 0);
}

static void test_prekeys(void **state)
{
    struct fixture *f = *state;
    struct wsc ca, cb;
    struct wire_signed_prekey spk, bad;
    struct wire_msg m;
    struct cert got;
    uint8_t otk[3 * WIRE_OTK_LEN], seen[3] = {0};
    uint16_t reason;

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    /* no prekeys yet */
    buf_reset(&f->msg);
    assert_int_equal(wire_put_bundle_get(&f->msg, f->b.cert.device_id), 0);
    assert_int_equal(tc_send(&ca, &f->msg), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_BUNDLE, TWAIT), VERR_DENIED);
    assert_int_equal(m.u.error.reason, WIRE_R_NO_PREKEYS);
    /* a signed prekey that does not verify is refused */
    make_spk(&f->b, &bad, 7);
    bad.sig[0] ^= 1;
    buf_reset(&f->msg);
    assert_int_equal(wire_put_prekey_upload(&f->msg, &bad, NULL, 0), 0);
    assert_int_equal(tc_send(&cb, &f->msg), 0);
    assert_int_equal(tc_expect(&cb, &f->msg, &m, WIRE_PREKEY_OK, TWAIT), VERR_DENIED);
    assert_int_equal(m.u.error.reason, WIRE_R_BAD_SIGNATURE);
    /* upload a signed prekey and three one-time prekeys */
    make_spk(&f->b, &spk, 7);
    for (uint32_t i = 0; i < 3; i++) {
        uint8_t sk[32], *p = otk + i * WIRE_OTK_LEN;
        p[0] = p[1] = p[2] = 0;
        p[3] = (uint8_t)(100 + i);
        randombytes_buf(sk, sizeof(sk));
        crypto_scalarmult_base(p + 4, sk);
    }
    buf_reset(&f->msg);
    assert_int_equal(wire_put_prekey_upload(&f->msg, &spk, otk, 3), 0);
    assert_int_equal(tc_send(&cb, &f->msg), 0);
    assert_int_equal(tc_expect(&cb, &f->msg, &m, WIRE_PREKEY_OK, TWAIT), 0);
    assert_int_equal(m.u.count, 3);
    /* each one-time prekey is handed out exactly once, then the signed prekey alone */
    for (int i = 0; i < 4; i++) {
        buf_reset(&f->msg);
        assert_int_equal(wire_put_bundle_get(&f->msg, f->b.cert.device_id), 0);
        assert_int_equal(tc_send(&ca, &f->msg), 0);
        assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_BUNDLE, TWAIT), 0);
        assert_int_equal(cert_parse(m.u.bundle.cert, m.u.bundle.cert_len, &got), 0);
        assert_memory_equal(got.device_id, f->b.cert.device_id, DEVICE_ID_LEN);
        assert_int_equal(m.u.bundle.spk.id, 7);
        assert_memory_equal(m.u.bundle.spk.pk, spk.pk, WIRE_PK_LEN);
        assert_memory_equal(m.u.bundle.spk.sig, spk.sig, SIG_LEN);
        if (i < 3) {
            assert_int_equal(m.u.bundle.has_otk, 1);
            assert_true(m.u.bundle.otk_id >= 100 && m.u.bundle.otk_id < 103);
            if (seen[m.u.bundle.otk_id - 100]++)
                fail_msg("one-time prekey %u handed out twice", m.u.bundle.otk_id);
            assert_memory_equal(m.u.bundle.otk_pk, otk + (m.u.bundle.otk_id - 100) * WIRE_OTK_LEN + 4,
                                WIRE_PK_LEN);
        } else {
            assert_int_equal(m.u.bundle.has_otk, 0);
        }
    }
    /* the owner is told to replenish; the last notice says none are left */
    uint32_t last = UINT32_MAX;
    while (tc_expect(&cb, &f->msg, &m, WIRE_PREKEY_LOW, 500) == 0)
        last = m.u.count;
    assert_int_equal(last, 0);
    wsc_close(&ca);
    wsc_close(&cb);
    /* an owner that connects later is told at once */
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    assert_int_equal(tc_expect(&cb, &f->msg, &m, WIRE_PREKEY_LOW, TWAIT), 0);
    assert_int_equal(m.u.count, 0);
    wsc_close(&cb);
}

static void test_directory_put_get(void **state)
{
    struct fixture *f = *state;
    const struct tdev *devs[4] = {&f->a, &f->b, &f->c, &f->d};
    struct wsc ca;
    struct wire_msg m;
    struct buf file, foreign;
    uint16_t reason;

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    /* version 3, signed by the org, uploaded by a device */
    assert_int_equal(tpki_write_dir(&f->pki, 3, devs, 4, NULL, 0), 0);
    assert_int_equal(file_read(f->pki.dir_path, 1 << 20, 0, &file), 0);
    buf_reset(&f->msg);
    assert_int_equal(wire_put_directory(&f->msg, WIRE_DIRECTORY_PUT, buf_data(&file), buf_size(&file)), 0);
    assert_int_equal(tc_send(&ca, &f->msg), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_DIRECTORY_OK, TWAIT), 0);
    assert_int_equal(m.u.dir_version, 3);
    /* served as signed */
    buf_reset(&f->msg);
    assert_int_equal(wire_put_directory(&f->msg, WIRE_DIRECTORY_GET, NULL, 0), 0);
    assert_int_equal(tc_send(&ca, &f->msg), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_DIRECTORY, TWAIT), 0);
    assert_int_equal(m.u.directory.len, buf_size(&file));
    assert_memory_equal(m.u.directory.bytes, buf_data(&file), buf_size(&file));
    /* the same version again is not newer */
    buf_reset(&f->msg);
    assert_int_equal(wire_put_directory(&f->msg, WIRE_DIRECTORY_PUT, buf_data(&file), buf_size(&file)), 0);
    assert_int_equal(tc_send(&ca, &f->msg), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_DIRECTORY_OK, TWAIT), VERR_DENIED);
    assert_int_equal(m.u.error.reason, WIRE_R_DIRECTORY_OLD);
    /* another organisation's directory does not verify */
    assert_int_equal(tpki_write_dir(&f->other, 9, NULL, 0, NULL, 0), 0);
    assert_int_equal(file_read(f->other.dir_path, 1 << 20, 0, &foreign), 0);
    buf_reset(&f->msg);
    assert_int_equal(wire_put_directory(&f->msg, WIRE_DIRECTORY_PUT, buf_data(&foreign), buf_size(&foreign)), 0);
    assert_int_equal(tc_send(&ca, &f->msg), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_DIRECTORY_OK, TWAIT), VERR_DENIED);
    assert_int_equal(m.u.error.reason, WIRE_R_DIRECTORY_INVALID);
    buf_free(&file);
    buf_free(&foreign);
    wsc_close(&ca);
}

/* A device revoked by a directory reloaded on SIGHUP loses its open session. */
static void test_revoked_mid_session(void **state)
{
    struct fixture *f = *state;
    const struct tdev *devs[4] = {&f->a, &f->b, &f->c, &f->d};
    const struct tdev *revs[1] = {&f->c};
    struct wsc ca, cc;
    struct wire_msg m;
    uint16_t reason;

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    assert_int_equal(tpki_write_dir(&f->pki, 4, devs, 4, revs, 1), 0);
    assert_int_equal(trelay_signal(&f->relay, SIGHUP), 0);
    assert_int_equal(tc_expect(&cc, &f->msg, &m, WIRE_ERROR, TWAIT), 0);
    assert_int_equal(m.u.error.reason, WIRE_R_REVOKED);
    assert_true(wsc_wait_closed(&cc, TWAIT));
    wsc_close(&cc);
    /* and cannot come back */
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), VERR_DENIED);
    assert_int_equal(reason, WIRE_R_REVOKED);
    wsc_close(&cc);
    /* nobody can send to it any more; the others are still served */
    buf_reset(&f->msg);
    assert_int_equal(wire_put_directory(&f->msg, WIRE_DIRECTORY_GET, NULL, 0), 0);
    assert_int_equal(tc_send(&ca, &f->msg), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_DIRECTORY, TWAIT), 0);
    struct wire_envelope e;
    uint8_t id[WIRE_ID_LEN];
    struct wire_iter it;
    struct wire_ack a;
    randombytes_buf(id, sizeof(id));
    tc_envelope(&e, id, &f->c, WIRE_FLASH, tnow() + 60, (const uint8_t *)"x", 1);
    assert_int_equal(tc_submit(&ca, &e, 1), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    wire_iter_init(&it, &m);
    assert_int_equal(wire_next_ack(&it, &a), 0);
    assert_int_equal(a.reason, WIRE_R_UNKNOWN_DEVICE);
    wsc_close(&ca);
}

/* Sends the message in f->msg and receives the next answer into it. */
static void ask(struct fixture *f, struct wsc *c, struct wire_msg *m)
{
    assert_int_equal(tc_send(c, &f->msg), 0);
    assert_int_equal(tc_recv(c, &f->msg, m, TWAIT), 0);
}

static void put_dir(struct fixture *f, struct wsc *c, uint64_t version, struct buf *bytes)
{
    const struct tdev *devs[3] = {&f->a, &f->b, &f->d};
    const struct tdev *revs[1] = {&f->c};
    struct wire_msg m;

    assert_int_equal(tpki_write_dir(&f->pki, version, devs, 2 + (version & 1), revs, 1), 0);
    assert_int_equal(file_read(f->pki.dir_path, 1 << 20, 0, bytes), 0);
    buf_reset(&f->msg);
    assert_int_equal(wire_put_directory(&f->msg, WIRE_DIRECTORY_PUT, buf_data(bytes), buf_size(bytes)),
                     0);
    assert_int_equal(tc_send(c, &f->msg), 0);
    assert_int_equal(tc_expect(c, &f->msg, &m, WIRE_DIRECTORY_OK, TWAIT), 0);
    assert_int_equal(m.u.dir_version, version);
}

/*
 * Directory transfer (PROTOCOL.md part 2, issue 13): a delta from a kept
 * version rebuilds the served directory; DIRECTORY_CURRENT when there is no
 * delta; pieces of the served version and of kept older ones; the newest
 * STORE_DIR_HISTORY versions kept, older ones answered DIRECTORY_CURRENT.
 */
static void test_directory_transfer(void **state)
{
    struct fixture *f = *state;
    struct wsc ca;
    struct wire_msg m;
    struct buf v10, v11, rebuilt, last;
    uint16_t reason;

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    put_dir(f, &ca, 10, &v10);
    put_dir(f, &ca, 11, &v11);
    /* A delta from 10 rebuilds exactly the served 11. */
    buf_reset(&f->msg);
    assert_int_equal(wire_put_dir_delta_get(&f->msg, 10), 0);
    ask(f, &ca, &m);
    assert_int_equal(m.type, WIRE_DIRECTORY_DELTA);
    assert_int_equal(dir_delta_apply(buf_data(&v10), buf_size(&v10), m.u.directory.bytes,
                                     m.u.directory.len, &rebuilt),
                     0);
    assert_int_equal(buf_size(&rebuilt), buf_size(&v11));
    assert_memory_equal(buf_data(&rebuilt), buf_data(&v11), buf_size(&v11));
    buf_free(&rebuilt);
    /* No delta from the served version, from one never installed, or from 0. */
    for (size_t i = 0; i < 3; i++) {
        static const uint64_t bases[3] = {11, 7, 0};
        buf_reset(&f->msg);
        assert_int_equal(wire_put_dir_delta_get(&f->msg, bases[i]), 0);
        ask(f, &ca, &m);
        assert_int_equal(m.type, WIRE_DIRECTORY_CURRENT);
        assert_int_equal(m.u.dir_piece.version, 11);
        assert_int_equal(m.u.dir_piece.total, buf_size(&v11));
    }
    /* Pieces: of the served version (0 names it), and of the kept version 10. */
    buf_reset(&f->msg);
    assert_int_equal(wire_put_dir_piece_get(&f->msg, 0, 0, 100), 0);
    ask(f, &ca, &m);
    assert_int_equal(m.type, WIRE_DIRECTORY_PIECE);
    assert_int_equal(m.u.dir_piece.version, 11);
    assert_int_equal(m.u.dir_piece.total, buf_size(&v11));
    assert_int_equal(m.u.dir_piece.len, 100);
    assert_memory_equal(m.u.dir_piece.bytes, buf_data(&v11), 100);
    buf_reset(&f->msg);
    assert_int_equal(wire_put_dir_piece_get(&f->msg, 10, (uint32_t)buf_size(&v10) - 10,
                                            WIRE_DIR_PIECE_MAX),
                     0);
    ask(f, &ca, &m);
    assert_int_equal(m.type, WIRE_DIRECTORY_PIECE);
    assert_int_equal(m.u.dir_piece.version, 10);
    assert_int_equal(m.u.dir_piece.len, 10);
    assert_memory_equal(m.u.dir_piece.bytes, buf_data(&v10) + buf_size(&v10) - 10, 10);
    /* Past the end, or of a version never kept: DIRECTORY_CURRENT. */
    buf_reset(&f->msg);
    assert_int_equal(wire_put_dir_piece_get(&f->msg, 10, (uint32_t)buf_size(&v10), 10), 0);
    ask(f, &ca, &m);
    assert_int_equal(m.type, WIRE_DIRECTORY_CURRENT);
    buf_reset(&f->msg);
    assert_int_equal(wire_put_dir_piece_get(&f->msg, 7, 0, 10), 0);
    ask(f, &ca, &m);
    assert_int_equal(m.type, WIRE_DIRECTORY_CURRENT);
    /* Sixteen newer versions later, 10 and 11 are no longer kept; 12 is. */
    for (uint64_t v = 12; v < 12 + STORE_DIR_HISTORY_TEST; v++) {
        put_dir(f, &ca, v, &last);
        buf_free(&last);
    }
    buf_reset(&f->msg);
    assert_int_equal(wire_put_dir_piece_get(&f->msg, 11, 0, 10), 0);
    ask(f, &ca, &m);
    assert_int_equal(m.type, WIRE_DIRECTORY_CURRENT);
    assert_int_equal(m.u.dir_piece.version, 11 + STORE_DIR_HISTORY_TEST);
    buf_reset(&f->msg);
    assert_int_equal(wire_put_dir_piece_get(&f->msg, 12, 0, 10), 0);
    ask(f, &ca, &m);
    assert_int_equal(m.type, WIRE_DIRECTORY_PIECE);
    assert_int_equal(m.u.dir_piece.version, 12);
    wsc_close(&ca);
    /* The history is in LMDB: a restarted relay still has deltas from 12. */
    assert_int_equal(trelay_signal(&f->relay, SIGTERM), 0);
    assert_int_equal(trelay_start(&f->relay, &f->pki, NULL), 0);
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    buf_reset(&f->msg);
    assert_int_equal(wire_put_dir_delta_get(&f->msg, 12), 0);
    ask(f, &ca, &m);
    assert_int_equal(m.type, WIRE_DIRECTORY_DELTA);
    buf_free(&v10);
    buf_free(&v11);
    wsc_close(&ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prekeys),
        cmocka_unit_test(test_directory_put_get),
        cmocka_unit_test(test_revoked_mid_session),
        cmocka_unit_test(test_directory_transfer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
