/* test_delivery.c - store and forward: online, offline, precedence, duplicates, expiry (issue 3). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <sodium.h>

#include "relaytest.h"

struct fixture {
    struct tpki pki;
    struct tdev a, b, c;
    struct trelay relay;
    struct buf msg;
};

static int setup(void **state)
{
    static struct fixture f;
    const struct tdev *devs[3];
    uint64_t now = tnow();

    memset(&f, 0, sizeof(f));
    assert_int_equal(tpki_init(&f.pki), 0);
    assert_int_equal(tdev_make(&f.pki, &f.a, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.b, 2, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.c, 3, now - 60, now + 86400), 0);
    devs[0] = &f.a;
    devs[1] = &f.b;
    devs[2] = &f.c;
    assert_int_equal(tpki_write_dir(&f.pki, 1, devs, 3, NULL, 0), 0);
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
    return 0;
}

struct got {
    size_t n;
    uint8_t id[64][WIRE_ID_LEN];
    uint8_t sender[64][DEVICE_ID_LEN];
    uint8_t prec[64];
    uint8_t ct[64][64];
    uint32_t ct_len[64];
};

/* Collects DELIVERed envelopes until the relay is quiet for quiet_ms; acks them if ack. */
static void collect(struct fixture *f, struct wsc *c, struct got *g, int quiet_ms, int ack)
{
    struct wire_msg m;

    memset(g, 0, sizeof(*g));
    while (tc_recv(c, &f->msg, &m, quiet_ms) == 0) {
        struct wire_iter it;
        struct wire_envelope e;
        uint8_t ids[64 * WIRE_ID_LEN];
        size_t k = 0;

        if (m.type != WIRE_DELIVER)
            continue;
        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            assert_int_equal(wire_next_envelope(&it, &e), 0);
            assert_true(g->n < 64);
            memcpy(g->id[g->n], e.id, WIRE_ID_LEN);
            memcpy(g->sender[g->n], e.peer, DEVICE_ID_LEN);
            g->prec[g->n] = e.precedence;
            g->ct_len[g->n] = e.ct_len;
            memcpy(g->ct[g->n], e.ct, e.ct_len < 64 ? e.ct_len : 64);
            memcpy(ids + k * WIRE_ID_LEN, e.id, WIRE_ID_LEN);
            k++;
            g->n++;
        }
        if (ack && k > 0)
            assert_int_equal(tc_deliver_ack(c, ids, k), 0);
    }
}

static void submit_one(struct fixture *f, struct wsc *c, const uint8_t id[WIRE_ID_LEN],
                       const struct tdev *to, uint8_t prec, uint64_t expiry, const char *text,
                       uint16_t want)
{
    struct wire_envelope e;
    struct wire_msg m;
    struct wire_iter it;
    struct wire_ack a;

    tc_envelope(&e, id, to, prec, expiry, (const uint8_t *)text, (uint32_t)strlen(text));
    assert_int_equal(tc_submit(c, &e, 1), 0);
    assert_int_equal(tc_expect(c, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    assert_int_equal(m.u.batch.n, 1);
    wire_iter_init(&it, &m);
    assert_int_equal(wire_next_ack(&it, &a), 0);
    assert_memory_equal(a.id, id, WIRE_ID_LEN);
    if (a.reason != want)
        fail_msg("SUBMIT_ACK: expected %s, saw %s", wire_reason_name(want),
                 wire_reason_name(a.reason));
}

static void new_id(uint8_t id[WIRE_ID_LEN])
{
    randombytes_buf(id, WIRE_ID_LEN);
}

static void test_online(void **state)
{
    struct fixture *f = *state;
    struct wsc ca, cb;
    struct got g;
    uint16_t reason;
    uint8_t id[WIRE_ID_LEN];

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    new_id(id);
    submit_one(f, &ca, id, &f->b, WIRE_IMMEDIATE, tnow() + 3600, "ciphertext-online", WIRE_R_OK);
    collect(f, &cb, &g, 500, 1);
    assert_int_equal(g.n, 1);
    assert_memory_equal(g.id[0], id, WIRE_ID_LEN);
    /* the sender is the authenticated session's device, set by the relay */
    assert_memory_equal(g.sender[0], f->a.cert.device_id, DEVICE_ID_LEN);
    assert_int_equal(g.ct_len[0], strlen("ciphertext-online"));
    assert_memory_equal(g.ct[0], "ciphertext-online", g.ct_len[0]);
    wsc_close(&cb);
    /* acknowledged means deleted: nothing comes back on reconnect */
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    collect(f, &cb, &g, 400, 0);
    assert_int_equal(g.n, 0);
    wsc_close(&ca);
    wsc_close(&cb);
}

static void test_offline(void **state)
{
    struct fixture *f = *state;
    struct wsc ca, cb;
    struct got g;
    uint16_t reason;
    uint8_t id[WIRE_ID_LEN];

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    new_id(id);
    submit_one(f, &ca, id, &f->c, WIRE_ROUTINE, tnow() + 3600, "for-offline-c", WIRE_R_OK);
    wsc_close(&ca);
    /* not acknowledged by the recipient: delivered again on the next connect */
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->c, &reason), 0);
    collect(f, &cb, &g, 400, 0);
    assert_int_equal(g.n, 1);
    assert_memory_equal(g.id[0], id, WIRE_ID_LEN);
    wsc_close(&cb);
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->c, &reason), 0);
    collect(f, &cb, &g, 400, 1);
    assert_int_equal(g.n, 1);
    wsc_close(&cb);
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->c, &reason), 0);
    collect(f, &cb, &g, 400, 1);
    assert_int_equal(g.n, 0);
    wsc_close(&cb);
}

/*
 * Rollback marks (PROTOCOL.md part 2 "Authentication"): AUTH_OK carries the
 * highest envelope id the device submitted and the highest it acknowledged,
 * the maximum and not the latest, kept across connections.
 */
static void test_rollback_marks(void **state)
{
    struct fixture *f = *state;
    struct wsc ca, cc;
    struct wire_msg ok;
    struct got g;
    uint16_t reason;
    uint8_t hi[WIRE_ID_LEN], lo[WIRE_ID_LEN];

    memset(hi, 0xff, sizeof(hi)); /* above any random id of the other tests */
    memset(lo, 0xff, sizeof(lo));
    lo[WIRE_ID_LEN - 1] = 0x00;
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    submit_one(f, &ca, hi, &f->c, WIRE_ROUTINE, tnow() + 3600, "mark-high", WIRE_R_OK);
    submit_one(f, &ca, lo, &f->c, WIRE_ROUTINE, tnow() + 3600, "mark-low", WIRE_R_OK);
    wsc_close(&ca);
    assert_int_equal(tc_auth_ok(&ca, f->relay.port, &f->a, &reason, &ok), 0);
    assert_memory_equal(ok.u.auth_ok.hi_submitted, hi, WIRE_ID_LEN);
    wsc_close(&ca);
    /* c acknowledges the lower id first: its mark is that id, then the higher. */
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    collect(f, &cc, &g, 400, 0);
    assert_int_equal(tc_deliver_ack(&cc, lo, 1), 0);
    wsc_close(&cc);
    assert_int_equal(tc_auth_ok(&cc, f->relay.port, &f->c, &reason, &ok), 0);
    assert_memory_equal(ok.u.auth_ok.hi_acked, lo, WIRE_ID_LEN);
    assert_int_equal(tc_deliver_ack(&cc, hi, 1), 0);
    wsc_close(&cc);
    assert_int_equal(tc_auth_ok(&cc, f->relay.port, &f->c, &reason, &ok), 0);
    assert_memory_equal(ok.u.auth_ok.hi_acked, hi, WIRE_ID_LEN);
    /* Acknowledging again (no longer queued) and submitting lower ids lower nothing. */
    assert_int_equal(tc_deliver_ack(&cc, lo, 1), 0);
    wsc_close(&cc);
    assert_int_equal(tc_auth_ok(&cc, f->relay.port, &f->c, &reason, &ok), 0);
    assert_memory_equal(ok.u.auth_ok.hi_acked, hi, WIRE_ID_LEN);
    wsc_close(&cc);
}

/* FLASH before IMMEDIATE before PRIORITY before ROUTINE, oldest first within each. */
static void test_precedence(void **state)
{
    static const uint8_t order[6] = {WIRE_ROUTINE, WIRE_PRIORITY, WIRE_FLASH,
                                     WIRE_ROUTINE, WIRE_FLASH,    WIRE_IMMEDIATE};
    static const size_t expect[6] = {2, 4, 5, 1, 0, 3}; /* submission indexes, in delivery order */
    struct fixture *f = *state;
    struct wsc ca, cc;
    struct got g;
    uint16_t reason;
    uint8_t ids[6][WIRE_ID_LEN];
    char text[32];

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    for (size_t i = 0; i < 6; i++) {
        new_id(ids[i]);
        snprintf(text, sizeof(text), "env-%zu", i);
        submit_one(f, &ca, ids[i], &f->c, order[i], tnow() + 3600, text, WIRE_R_OK);
    }
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    collect(f, &cc, &g, 500, 1);
    assert_int_equal(g.n, 6);
    for (size_t i = 0; i < 6; i++)
        if (memcmp(g.id[i], ids[expect[i]], WIRE_ID_LEN) != 0)
            fail_msg("position %zu: expected submission %zu (%s), saw precedence %u", i,
                     expect[i], "see order[]", g.prec[i]);
    wsc_close(&ca);
    wsc_close(&cc);
}

/* The same id from the same sender is stored once and acknowledged each time. */
static void test_duplicate(void **state)
{
    struct fixture *f = *state;
    struct wsc ca, cc;
    struct got g;
    uint16_t reason;
    uint8_t id[WIRE_ID_LEN];

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    new_id(id);
    submit_one(f, &ca, id, &f->c, WIRE_ROUTINE, tnow() + 3600, "dup", WIRE_R_OK);
    submit_one(f, &ca, id, &f->c, WIRE_ROUTINE, tnow() + 3600, "dup", WIRE_R_OK);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    collect(f, &cc, &g, 500, 1);
    assert_int_equal(g.n, 1);
    /* after delivery, a late resubmission is acknowledged and not delivered again */
    submit_one(f, &ca, id, &f->c, WIRE_ROUTINE, tnow() + 3600, "dup", WIRE_R_OK);
    collect(f, &cc, &g, 400, 1);
    assert_int_equal(g.n, 0);
    /* another sender reusing the id for the same recipient is refused */
    struct wsc cb;
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    submit_one(f, &cb, id, &f->c, WIRE_ROUTINE, tnow() + 3600, "dup", WIRE_R_ID_CONFLICT);
    wsc_close(&cb);
    wsc_close(&ca);
    wsc_close(&cc);
}

static void test_unknown_recipient_and_past_expiry(void **state)
{
    struct fixture *f = *state;
    struct wsc ca;
    struct tdev ghost;
    uint16_t reason;
    uint8_t id[WIRE_ID_LEN];

    assert_int_equal(tdev_make(&f->pki, &ghost, 99, tnow() - 10, tnow() + 100), 0);
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    new_id(id);
    submit_one(f, &ca, id, &ghost, WIRE_ROUTINE, tnow() + 3600, "x", WIRE_R_UNKNOWN_DEVICE);
    new_id(id);
    submit_one(f, &ca, id, &f->b, WIRE_ROUTINE, tnow() - 1, "x", WIRE_R_EXPIRED);
    wsc_close(&ca);
}

/* An envelope that expires in the queue becomes a notice for its (offline) sender. */
static void test_expiry_notice(void **state)
{
    struct fixture *f = *state;
    struct wsc ca, cc;
    struct wire_msg m;
    struct wire_iter it;
    struct wire_nd nd;
    struct got g;
    uint16_t reason;
    uint8_t id[WIRE_ID_LEN];

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    new_id(id);
    submit_one(f, &ca, id, &f->c, WIRE_FLASH, tnow() + 1, "short-lived", WIRE_R_OK);
    wsc_close(&ca); /* the sender goes offline */
    sleep(3);
    /* the recipient gets nothing */
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    collect(f, &cc, &g, 400, 1);
    assert_int_equal(g.n, 0);
    wsc_close(&cc);
    /* the sender is told on its next connect */
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_NON_DELIVERY, TWAIT), 0);
    assert_int_equal(m.u.batch.n, 1);
    wire_iter_init(&it, &m);
    assert_int_equal(wire_next_nd(&it, &nd), 0);
    assert_memory_equal(nd.id, id, WIRE_ID_LEN);
    assert_memory_equal(nd.recipient, f->c.cert.device_id, DEVICE_ID_LEN);
    assert_int_equal(nd.reason, WIRE_R_EXPIRED);
    buf_reset(&f->msg);
    assert_int_equal(wire_put_ids(&f->msg, WIRE_NON_DELIVERY_ACK, id, 1), 0);
    assert_int_equal(tc_send(&ca, &f->msg), 0);
    usleep(300000);
    wsc_close(&ca);
    /* acknowledged notices are not repeated */
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_NON_DELIVERY, 500), VERR_TIMEOUT);
    wsc_close(&ca);
}

/* A batch in one SUBMIT is acknowledged in one SUBMIT_ACK. */
static void test_batch(void **state)
{
    struct fixture *f = *state;
    struct wsc ca, cb;
    struct wire_envelope e[50];
    struct wire_msg m;
    struct got g;
    uint16_t reason;
    uint8_t ids[50][WIRE_ID_LEN];

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    for (size_t i = 0; i < 50; i++) {
        new_id(ids[i]);
        tc_envelope(&e[i], ids[i], &f->b, WIRE_ROUTINE, tnow() + 3600, (const uint8_t *)"batch", 5);
    }
    assert_int_equal(tc_submit(&ca, e, 50), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    assert_int_equal(m.u.batch.n, 50);
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    collect(f, &cb, &g, 500, 1);
    assert_int_equal(g.n, 50);
    wsc_close(&ca);
    wsc_close(&cb);
}

/*
 * With the relay stopped: every queued envelope moved from `qindex`/`qdata`
 * into one `queue` table keyed recipient . precedence . seq, every `qexpiry`
 * entry into `expiry` keyed expiry . recipient . id, and every `ids` entry
 * (id . recipient) into `byid` keyed recipient . id, as relays before issue
 * 16 stored them (PROTOCOL.md, part 2 "Storage"); returns how many
 * envelopes. With check, counts what `queue`, `byid` and `expiry` hold for
 * recipient instead.
 */
static size_t queue_to_legacy(const char *dir, const uint8_t recipient[DEVICE_ID_LEN], int check)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi q, qi, qd, x, qx, ids, byid;
    MDB_cursor *c;
    MDB_val k, d, dk, dv;
    MDB_stat st;
    size_t n = 0;
    int rc;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "queue", 0, &q), 0);
    assert_int_equal(mdb_dbi_open(txn, "qindex", 0, &qi), 0);
    assert_int_equal(mdb_dbi_open(txn, "qdata", 0, &qd), 0);
    assert_int_equal(mdb_dbi_open(txn, "expiry", 0, &x), 0);
    assert_int_equal(mdb_dbi_open(txn, "qexpiry", 0, &qx), 0);
    assert_int_equal(mdb_dbi_open(txn, "ids", 0, &ids), 0);
    assert_int_equal(mdb_dbi_open(txn, "byid", 0, &byid), 0);
    if (check) {
        assert_int_equal(mdb_stat(txn, q, &st), 0);
        n = st.ms_entries;
        assert_int_equal(mdb_stat(txn, byid, &st), 0);
        n += st.ms_entries;
        assert_int_equal(mdb_cursor_open(txn, x, &c), 0);
        for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(c, &k, &d, MDB_NEXT))
            n += k.mv_size > 8 + DEVICE_ID_LEN &&
                 memcmp((const uint8_t *)k.mv_data + 8, recipient, DEVICE_ID_LEN) == 0;
        mdb_cursor_close(c);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        return n;
    }
    assert_int_equal(mdb_cursor_open(txn, ids, &c), 0);
    while ((rc = mdb_cursor_get(c, &k, &d, MDB_FIRST)) == 0) {
        uint8_t key[DEVICE_ID_LEN + WIRE_ID_LEN];
        MDB_val lk = {sizeof(key), key};

        assert_int_equal(k.mv_size, sizeof(key));
        memcpy(key, (const uint8_t *)k.mv_data + WIRE_ID_LEN, DEVICE_ID_LEN);
        memcpy(key + DEVICE_ID_LEN, k.mv_data, WIRE_ID_LEN);
        assert_int_equal(mdb_put(txn, byid, &lk, &d, MDB_NOOVERWRITE), 0);
        assert_int_equal(mdb_cursor_del(c, 0), 0);
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    mdb_cursor_close(c);
    assert_int_equal(mdb_cursor_open(txn, qx, &c), 0);
    while ((rc = mdb_cursor_get(c, &k, &d, MDB_FIRST)) == 0) {
        uint8_t key[8 + DEVICE_ID_LEN + WIRE_ID_LEN];
        MDB_val lk = {sizeof(key), key}, none = {0, NULL};

        assert_int_equal(k.mv_size, 16);
        assert_int_equal(d.mv_size, DEVICE_ID_LEN + WIRE_ID_LEN);
        memcpy(key, k.mv_data, 8);
        memcpy(key + 8, d.mv_data, DEVICE_ID_LEN + WIRE_ID_LEN);
        assert_int_equal(mdb_put(txn, x, &lk, &none, 0), 0);
        assert_int_equal(mdb_cursor_del(c, 0), 0);
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    mdb_cursor_close(c);
    assert_int_equal(mdb_cursor_open(txn, qi, &c), 0);
    while ((rc = mdb_cursor_get(c, &k, &d, MDB_FIRST)) == 0) {
        uint8_t key[DEVICE_ID_LEN + 1 + 8];

        assert_int_equal(k.mv_size, sizeof(key));
        memcpy(key, k.mv_data, sizeof(key));
        dk.mv_data = key + DEVICE_ID_LEN + 1;
        dk.mv_size = 8;
        assert_int_equal(mdb_get(txn, qd, &dk, &dv), 0);
        k.mv_data = key;
        k.mv_size = sizeof(key);
        assert_int_equal(mdb_put(txn, q, &k, &dv, 0), 0);
        assert_int_equal(mdb_del(txn, qd, &dk, NULL), 0);
        assert_int_equal(mdb_cursor_del(c, 0), 0);
        n++;
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    mdb_cursor_close(c);
    assert_int_equal(mdb_stat(txn, qd, &st), 0);
    assert_int_equal(st.ms_entries, 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    return n;
}

/*
 * A data directory from a relay before issue 16 (one `queue` table, `expiry`
 * and `byid` keyed by recipient) is migrated at start: its envelopes are
 * delivered in precedence-then-age order, with their bytes, and acknowledged
 * once; one whose legacy expiry entry passes becomes a notice for its sender;
 * an id delivered before the restart is still known (a resubmission is
 * acknowledged, not delivered again); `queue`, `byid` and the legacy expiry
 * entries are left empty.
 */
static void test_legacy_queue_migrated(void **state)
{
    static const uint8_t prec[4] = {WIRE_ROUTINE, WIRE_FLASH, WIRE_ROUTINE, WIRE_PRIORITY};
    static const size_t expect[3] = {1, 0, 2};
    struct fixture *f = *state;
    struct wsc ca, cc;
    struct wire_msg m;
    struct wire_iter it;
    struct wire_nd nd;
    struct got g;
    uint16_t reason;
    uint8_t ids[4][WIRE_ID_LEN], early[WIRE_ID_LEN];
    char text[32];
    size_t moved;

    /* one delivered and acknowledged before the stop: its tombstone is migrated */
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    new_id(early);
    submit_one(f, &ca, early, &f->c, WIRE_ROUTINE, tnow() + 3600, "early", WIRE_R_OK);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    collect(f, &cc, &g, 500, 1);
    assert_int_equal(g.n, 1);
    wsc_close(&cc);
    for (size_t i = 0; i < 4; i++) { /* the last one is short-lived */
        new_id(ids[i]);
        snprintf(text, sizeof(text), "legacy-%zu", i);
        submit_one(f, &ca, ids[i], &f->c, prec[i], tnow() + (i == 3 ? 5 : 3600), text,
                   WIRE_R_OK);
    }
    wsc_close(&ca);
    (void)trelay_signal(&f->relay, SIGTERM);
    moved = queue_to_legacy(f->pki.data_path, f->c.cert.device_id, 0);
    if (moved < 4)
        fail_msg("expected at least the 4 queued envelopes moved to the legacy table, saw %zu",
                 moved);
    assert_int_equal(trelay_start(&f->relay, &f->pki, NULL), 0);
    sleep(7); /* the short-lived one expires from the legacy index */
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_NON_DELIVERY, TWAIT), 0);
    assert_int_equal(m.u.batch.n, 1);
    wire_iter_init(&it, &m);
    assert_int_equal(wire_next_nd(&it, &nd), 0);
    assert_memory_equal(nd.id, ids[3], WIRE_ID_LEN);
    assert_int_equal(nd.reason, WIRE_R_EXPIRED);
    buf_reset(&f->msg);
    assert_int_equal(wire_put_ids(&f->msg, WIRE_NON_DELIVERY_ACK, ids[3], 1), 0);
    assert_int_equal(tc_send(&ca, &f->msg), 0);
    usleep(300000);
    /* the early id is known after the migration: acknowledged, not queued again */
    submit_one(f, &ca, early, &f->c, WIRE_ROUTINE, tnow() + 3600, "early", WIRE_R_OK);
    wsc_close(&ca);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    collect(f, &cc, &g, 500, 1);
    assert_int_equal(g.n, 3);
    for (size_t i = 0; i < 3; i++) {
        snprintf(text, sizeof(text), "legacy-%zu", expect[i]);
        if (memcmp(g.id[i], ids[expect[i]], WIRE_ID_LEN) != 0)
            fail_msg("position %zu: expected submission %zu, saw precedence %u", i, expect[i],
                     g.prec[i]);
        assert_int_equal(g.ct_len[i], strlen(text));
        assert_memory_equal(g.ct[i], text, strlen(text));
    }
    wsc_close(&cc);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    collect(f, &cc, &g, 400, 1);
    assert_int_equal(g.n, 0);
    wsc_close(&cc);
    (void)trelay_signal(&f->relay, SIGTERM);
    assert_int_equal(queue_to_legacy(f->pki.data_path, f->c.cert.device_id, 1), 0);
    assert_int_equal(trelay_start(&f->relay, &f->pki, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollback_marks),
        cmocka_unit_test(test_online),
        cmocka_unit_test(test_offline),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_unknown_recipient_and_past_expiry),
        cmocka_unit_test(test_expiry_notice),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_legacy_queue_migrated),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
