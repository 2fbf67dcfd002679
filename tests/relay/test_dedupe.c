/*
 * test_dedupe.c - the dedupe window (PROTOCOL.md, part 2 "Duplicates"): a
 * delivered id is recognised as a resubmission for --dedupe-window seconds,
 * then forgotten; an id still queued is never forgotten, however old.
 */
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

#include "audit_record.h"
#include "relaytest.h"

enum { WINDOW_S = 2 };

struct fixture {
    struct tpki pki;
    struct tdev a, c;
    struct trelay relay;
    struct buf msg;
};

static int setup(void **state)
{
    static struct fixture f;
    static const char *const extra[] = {"--dedupe-window", "2", NULL};
    const struct tdev *devs[2];
    uint64_t now = tnow();

    memset(&f, 0, sizeof(f));
    assert_int_equal(tpki_init(&f.pki), 0);
    assert_int_equal(tdev_make(&f.pki, &f.a, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.c, 3, now - 60, now + 86400), 0);
    devs[0] = &f.a;
    devs[1] = &f.c;
    assert_int_equal(tpki_write_dir(&f.pki, 1, devs, 2, NULL, 0), 0);
    assert_int_equal(trelay_start(&f.relay, &f.pki, extra), 0);
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

/* Envelopes DELIVERed until quiet_ms of silence, each acknowledged; how many carried id. */
static size_t collect_id(struct fixture *f, struct wsc *c, const uint8_t id[WIRE_ID_LEN],
                         size_t *total)
{
    struct wire_msg m;
    size_t hits = 0;

    *total = 0;
    while (tc_recv(c, &f->msg, &m, 500) == 0) {
        struct wire_iter it;
        struct wire_envelope e;
        uint8_t ids[64 * WIRE_ID_LEN];
        size_t k = 0;

        if (m.type != WIRE_DELIVER)
            continue;
        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            assert_int_equal(wire_next_envelope(&it, &e), 0);
            assert_true(k < 64);
            memcpy(ids + k * WIRE_ID_LEN, e.id, WIRE_ID_LEN);
            hits += memcmp(e.id, id, WIRE_ID_LEN) == 0;
            k++;
        }
        *total += k;
        if (k > 0)
            assert_int_equal(tc_deliver_ack(c, ids, k), 0);
    }
    return hits;
}

static void submit_ok(struct fixture *f, struct wsc *c, const uint8_t id[WIRE_ID_LEN])
{
    struct wire_envelope e;
    struct wire_msg m;
    struct wire_iter it;
    struct wire_ack a;

    tc_envelope(&e, id, &f->c, WIRE_ROUTINE, tnow() + 3600, (const uint8_t *)"dedupe", 6);
    assert_int_equal(tc_submit(c, &e, 1), 0);
    assert_int_equal(tc_expect(c, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    assert_int_equal(m.u.batch.n, 1);
    wire_iter_init(&it, &m);
    assert_int_equal(wire_next_ack(&it, &a), 0);
    assert_memory_equal(a.id, id, WIRE_ID_LEN);
    if (a.reason != WIRE_R_OK)
        fail_msg("SUBMIT_ACK: expected OK, saw %s", wire_reason_name(a.reason));
}

/* Within the window a delivered id is not delivered again; after it, it is a new envelope. */
static void test_window_after_delivery(void **state)
{
    struct fixture *f = *state;
    struct wsc ca, cc;
    uint16_t reason;
    uint8_t id[WIRE_ID_LEN];
    size_t total, hits;

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    randombytes_buf(id, sizeof(id));
    submit_ok(f, &ca, id);
    hits = collect_id(f, &cc, id, &total);
    if (hits != 1)
        fail_msg("first submission: expected 1 delivery, saw %zu", hits);
    /* inside the window: acknowledged, stored once, not delivered again */
    submit_ok(f, &ca, id);
    hits = collect_id(f, &cc, id, &total);
    if (hits != 0)
        fail_msg("resubmission inside the window: expected 0 deliveries, saw %zu", hits);
    /* past the window (and a sweep, once a second): the id is forgotten */
    sleep(WINDOW_S + 3);
    submit_ok(f, &ca, id);
    hits = collect_id(f, &cc, id, &total);
    if (hits != 1)
        fail_msg("resubmission after the window: expected 1 delivery, saw %zu", hits);
    wsc_close(&ca);
    wsc_close(&cc);
}

/* An undelivered envelope older than the window is still deduplicated. */
static void test_queued_never_forgotten(void **state)
{
    struct fixture *f = *state;
    struct wsc ca, cc;
    uint16_t reason;
    uint8_t id[WIRE_ID_LEN];
    size_t total, hits;

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    randombytes_buf(id, sizeof(id));
    submit_ok(f, &ca, id); /* the recipient is offline */
    sleep(WINDOW_S + 3);
    submit_ok(f, &ca, id);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    hits = collect_id(f, &cc, id, &total);
    if (hits != 1)
        fail_msg("queued id resubmitted after the window: expected 1 delivery, saw %zu", hits);
    wsc_close(&ca);
    wsc_close(&cc);
}

static uint64_t be64_at(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * With the relay stopped: the one `dedupe` entry (PROTOCOL.md, part 2
 * "Storage") must be keyed by the number of the DELIVERED record of id and
 * hold acknowledged-at · recipient · id. It is then rewritten as a relay
 * before issue 16 wrote it, a `tomb` key acknowledged-at · recipient · id,
 * or, with check_empty, both tables must be empty.
 */
static void dedupe_to_legacy(const char *dir, const uint8_t rcpt[DEVICE_ID_LEN],
                             const uint8_t id[WIRE_ID_LEN], int check_empty)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dd, tomb, audit;
    MDB_cursor *c;
    MDB_val k, d, rk, rd;
    struct audit_record rec;
    uint8_t tkey[8 + DEVICE_ID_LEN + WIRE_ID_LEN];
    MDB_stat st;
    int rc;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "dedupe", 0, &dd), 0);
    assert_int_equal(mdb_dbi_open(txn, "tomb", 0, &tomb), 0);
    assert_int_equal(mdb_dbi_open(txn, "audit", 0, &audit), 0);
    if (check_empty) {
        assert_int_equal(mdb_stat(txn, dd, &st), 0);
        if (st.ms_entries != 0)
            fail_msg("dedupe: expected no entries after the window, saw %zu", st.ms_entries);
        assert_int_equal(mdb_stat(txn, tomb, &st), 0);
        if (st.ms_entries != 0)
            fail_msg("tomb: expected no legacy entries after the window, saw %zu", st.ms_entries);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        return;
    }
    /* the entry of this id (earlier tests' deliveries may still be inside the window) */
    assert_int_equal(mdb_cursor_open(txn, dd, &c), 0);
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        assert_int_equal(k.mv_size, 8);
        assert_int_equal(d.mv_size, sizeof(tkey));
        if (memcmp((const uint8_t *)d.mv_data + 8, rcpt, DEVICE_ID_LEN) == 0 &&
            memcmp((const uint8_t *)d.mv_data + 8 + DEVICE_ID_LEN, id, WIRE_ID_LEN) == 0)
            break;
    }
    if (rc != 0)
        fail_msg("dedupe: expected an entry for the delivered id, saw none");
    /* the key is the DELIVERED record's number */
    rk = k;
    assert_int_equal(mdb_get(txn, audit, &rk, &rd), 0);
    assert_int_equal(audit_record_parse(rd.mv_data, rd.mv_size, &rec), 0);
    if (rec.event != AUDIT_ENVELOPE_DELIVERED || memcmp(rec.envelope_id, id, WIRE_ID_LEN) != 0)
        fail_msg("dedupe key %llu: expected the DELIVERED record of the id, saw event %u",
                 (unsigned long long)be64_at(k.mv_data), rec.event);
    assert_int_equal(be64_at(d.mv_data), rec.time);
    memcpy(tkey, d.mv_data, sizeof(tkey));
    assert_int_equal(mdb_cursor_del(c, 0), 0);
    mdb_cursor_close(c);
    k.mv_data = tkey;
    k.mv_size = sizeof(tkey);
    d.mv_data = NULL;
    d.mv_size = 0;
    assert_int_equal(mdb_put(txn, tomb, &k, &d, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/*
 * A data directory from a relay before issue 16 holds its tombstones in
 * `tomb`, keyed by time: they still stop a resubmission inside the window
 * and are swept after it, as the new `dedupe` entries are.
 */
static void test_legacy_tomb_swept(void **state)
{
    static const char *const extra[] = {"--dedupe-window", "2", NULL};
    struct fixture *f = *state;
    struct wsc ca, cc;
    uint16_t reason;
    uint8_t id[WIRE_ID_LEN];
    size_t total, hits;

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    randombytes_buf(id, sizeof(id));
    submit_ok(f, &ca, id);
    hits = collect_id(f, &cc, id, &total);
    if (hits != 1)
        fail_msg("first submission: expected 1 delivery, saw %zu", hits);
    wsc_close(&ca);
    wsc_close(&cc);
    (void)trelay_signal(&f->relay, SIGTERM);
    dedupe_to_legacy(f->pki.data_path, f->c.cert.device_id, id, 0);
    assert_int_equal(trelay_start(&f->relay, &f->pki, extra), 0);
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    /* the sweep (once a second) drops the legacy entry and its byid tombstone */
    sleep(WINDOW_S + 3);
    submit_ok(f, &ca, id);
    hits = collect_id(f, &cc, id, &total);
    if (hits != 1)
        fail_msg("resubmission after the window, legacy tombstone: expected 1 delivery, saw %zu",
                 hits);
    wsc_close(&ca);
    wsc_close(&cc);
    sleep(WINDOW_S + 3);
    (void)trelay_signal(&f->relay, SIGTERM);
    dedupe_to_legacy(f->pki.data_path, f->c.cert.device_id, id, 1);
    assert_int_equal(trelay_start(&f->relay, &f->pki, extra), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_after_delivery),
        cmocka_unit_test(test_queued_never_forgotten),
        cmocka_unit_test(test_legacy_tomb_swept),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
