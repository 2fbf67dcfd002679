/*
 * test_audit.c - the relay's audit log: every security-relevant event is a
 * record in LMDB, numbered from 0 without gaps; leaf hashes are computed
 * from the records, never stored (issue 3, DESIGN.md "Audit log"; issue 16).
 * The test reads the stopped
 * relay's LMDB files read-only, as the auditor will.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <sodium.h>

#include "audit_record.h"
#include "merkle.h"
#include "relaytest.h"

enum { MAX_REC = 256 };

static struct audit_record recs[MAX_REC];
static size_t nrecs;

static uint64_t be(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Reads the whole log; checks numbering and that no leaf hash is stored beside it. */
static void read_log(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi audit, leaf;
    MDB_cursor *c;
    MDB_val k, d;
    int rc;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "audit", 0, &audit), 0);
    /* one B-tree entry per record, not two: the relay hashes records when it needs leaves */
    assert_int_equal(mdb_dbi_open(txn, "audit_leaf", 0, &leaf), MDB_NOTFOUND);
    assert_int_equal(mdb_cursor_open(txn, audit, &c), 0);
    nrecs = 0;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        assert_int_equal(k.mv_size, 8);
        if (be(k.mv_data) != nrecs)
            fail_msg("record numbers: expected %zu, saw %llu", nrecs,
                     (unsigned long long)be(k.mv_data));
        assert_true(nrecs < MAX_REC);
        assert_int_equal(audit_record_parse(d.mv_data, d.mv_size, &recs[nrecs]), 0);
        nrecs++;
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

static const struct audit_record *find(uint8_t event, const uint8_t *device, size_t from)
{
    for (size_t i = from; i < nrecs; i++)
        if (recs[i].event == event &&
            (device == NULL || memcmp(recs[i].device_id, device, DEVICE_ID_LEN) == 0))
            return &recs[i];
    return NULL;
}

static void test_audit_log(void **state)
{
    struct tpki pki;
    struct tdev a, b, impostor;
    struct trelay relay;
    const struct tdev *devs[2];
    struct wire_envelope e[3];
    uint8_t ids[3][WIRE_ID_LEN], ct[100];
    struct wire_msg m;
    struct buf msg;
    struct wsc ca, cb, cx;
    uint16_t reason;
    uint64_t now = tnow();
    uint8_t pk[SIG_PK_LEN];

    (void)state;
    assert_int_equal(tpki_init(&pki), 0);
    assert_int_equal(buf_init(&msg, 1 << 20, 0), 0);
    assert_int_equal(tdev_make(&pki, &a, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&pki, &b, 2, now - 60, now + 86400), 0);
    devs[0] = &a;
    devs[1] = &b;
    assert_int_equal(tpki_write_dir(&pki, 5, devs, 2, NULL, 0), 0);
    assert_int_equal(trelay_start(&relay, &pki, NULL), 0);
    /* auth ok, auth failure */
    assert_int_equal(tc_auth(&ca, relay.port, &a, &reason), 0);
    impostor = b;
    crypto_sign_keypair(pk, impostor.sk);
    assert_int_equal(tc_auth(&cx, relay.port, &impostor, &reason), VERR_DENIED);
    wsc_close(&cx);
    /* two accepted, one of them delivered; one expires */
    randombytes_buf(ct, sizeof(ct));
    for (int i = 0; i < 3; i++) {
        randombytes_buf(ids[i], WIRE_ID_LEN);
        tc_envelope(&e[i], ids[i], &b, (uint8_t)i, i == 2 ? tnow() + 1 : tnow() + 3600, ct,
                    sizeof(ct));
    }
    assert_int_equal(tc_submit(&ca, e, 3), 0);
    assert_int_equal(tc_expect(&ca, &msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    sleep(3); /* the third expires before the recipient connects */
    assert_int_equal(tc_auth(&cb, relay.port, &b, &reason), 0);
    assert_int_equal(tc_expect(&cb, &msg, &m, WIRE_DELIVER, TWAIT), 0);
    assert_int_equal(tc_deliver_ack(&cb, ids[0], 1), 0);
    usleep(300000);
    wsc_close(&ca);
    wsc_close(&cb);
    int st = trelay_signal(&relay, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    read_log(pki.data_path);
    const struct audit_record *r;
    assert_non_null(r = find(AUDIT_DIRECTORY_INSTALLED, NULL, 0));
    assert_int_equal(r->value, 5);
    assert_non_null(find(AUDIT_RELAY_START, NULL, 0));
    assert_non_null(r = find(AUDIT_AUTH_OK, a.cert.device_id, 0));
    assert_int_equal(r->cert_serial, 1);
    assert_non_null(r = find(AUDIT_AUTH_FAIL, b.cert.device_id, 0));
    assert_int_equal(r->reason, WIRE_R_BAD_SIGNATURE);
    size_t accepted = 0;
    for (size_t i = 0; i < nrecs; i++) {
        if (recs[i].event != AUDIT_ENVELOPE_ACCEPTED)
            continue;
        accepted++;
        assert_memory_equal(recs[i].device_id, a.cert.device_id, DEVICE_ID_LEN);
        assert_memory_equal(recs[i].peer_id, b.cert.device_id, DEVICE_ID_LEN);
        assert_int_equal(recs[i].size, sizeof(ct));
    }
    assert_int_equal(accepted, 3);
    assert_non_null(r = find(AUDIT_ENVELOPE_DELIVERED, b.cert.device_id, 0));
    assert_memory_equal(r->envelope_id, ids[0], WIRE_ID_LEN);
    assert_memory_equal(r->peer_id, a.cert.device_id, DEVICE_ID_LEN);
    assert_non_null(r = find(AUDIT_ENVELOPE_EXPIRED, a.cert.device_id, 0));
    assert_memory_equal(r->envelope_id, ids[2], WIRE_ID_LEN);
    assert_int_equal(r->reason, WIRE_R_EXPIRED);
    assert_int_equal(recs[nrecs - 1].event, AUDIT_RELAY_STOP);
    buf_free(&msg);
    tpki_cleanup(&pki);
}

/*
 * As a malicious operator with the relay stopped (lmdb_rewrite.c style):
 * rewrites record index (its time). Returns the size of the latest signed
 * checkpoint.
 */
static uint64_t rewrite_record(const char *dir, uint64_t index)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi audit, cp;
    MDB_cursor *c;
    MDB_val k, d, ck, cd;
    uint8_t kb[8], rec[AUDIT_RECORD_LEN];
    uint64_t cp_size;

    for (int i = 0; i < 8; i++)
        kb[i] = (uint8_t)(index >> (56 - 8 * i));
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "audit", 0, &audit), 0);
    assert_int_equal(mdb_dbi_open(txn, "audit_cp", 0, &cp), 0);
    assert_int_equal(mdb_cursor_open(txn, cp, &c), 0);
    assert_int_equal(mdb_cursor_get(c, &ck, &cd, MDB_LAST), 0);
    assert_int_equal(ck.mv_size, 8);
    cp_size = be(ck.mv_data);
    mdb_cursor_close(c);
    k.mv_data = kb;
    k.mv_size = sizeof(kb);
    assert_int_equal(mdb_get(txn, audit, &k, &d), 0);
    assert_int_equal(d.mv_size, AUDIT_RECORD_LEN);
    memcpy(rec, d.mv_data, sizeof(rec));
    rec[9] ^= 0x01; /* the low byte of the record's time (offset 2, u64) */
    d.mv_data = rec;
    d.mv_size = sizeof(rec);
    assert_int_equal(mdb_put(txn, audit, &k, &d, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    return cp_size;
}

/*
 * A record below the latest signed checkpoint rewritten while the log has
 * grown past the checkpoint: the persisted
 * frontier still agrees with itself, so only recomputing the tree from the
 * records at the checkpoint's size sees it. The relay must refuse to start.
 */
static void test_rewritten_below_checkpoint(void **state)
{
    struct tpki pki;
    struct tdev a;
    struct trelay relay;
    const struct tdev *devs[1];
    struct wsc c;
    uint16_t reason;
    uint64_t now = tnow(), cp_size;
    static const char *args[] = {"--checkpoint-records", "100000", "--checkpoint-seconds",
                                 "3600", NULL};
    static const uint8_t refused[] = "records were altered; stopping the relay";

    (void)state;
    assert_int_equal(tpki_init(&pki), 0);
    assert_int_equal(tdev_make(&pki, &a, 1, now - 60, now + 86400), 0);
    devs[0] = &a;
    assert_int_equal(tpki_write_dir(&pki, 1, devs, 1, NULL, 0), 0);
    /* first run: a clean stop signs a checkpoint over everything */
    assert_int_equal(trelay_start(&relay, &pki, args), 0);
    assert_int_equal(tc_auth(&c, relay.port, &a, &reason), 0);
    wsc_close(&c);
    int st = trelay_signal(&relay, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* second run: records past the checkpoint, then a crash (no checkpoint) */
    assert_int_equal(trelay_start(&relay, &pki, args), 0);
    assert_int_equal(tc_auth(&c, relay.port, &a, &reason), 0);
    usleep(300000);
    wsc_close(&c);
    usleep(300000);
    (void)trelay_signal(&relay, SIGKILL);
    read_log(pki.data_path);
    cp_size = rewrite_record(pki.data_path, 1);
    if (!(cp_size > 1 && cp_size < nrecs))
        fail_msg("expected a checkpoint below the log's size %zu, saw %llu", nrecs,
                 (unsigned long long)cp_size);
    /*
     * The restart serves at once (the O(n) recomputation runs beside the
     * event loop, PROTOCOL.md part 6 section 5) and then stops with exit
     * status 1, naming the cause, and signs nothing more.
     */
    if (trelay_start(&relay, &pki, args) == 0) {
        int status = 0;
        pid_t w = 0;
        for (int i = 0; i < 1000 && w != relay.pid; i++) {
            w = waitpid(relay.pid, &status, WNOHANG);
            if (w != relay.pid)
                usleep(10000);
        }
        if (w != relay.pid) {
            (void)trelay_signal(&relay, SIGKILL);
            fail_msg("the relay kept running on a log rewritten below its signed checkpoint");
        }
        relay.pid = 0;
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    }
    assert_true(trelay_log_contains(&relay, refused, sizeof(refused) - 1));
    {
        static const uint8_t nothing[] = "stopped without a final checkpoint";
        assert_true(trelay_log_contains(&relay, nothing, sizeof(nothing) - 1));
    }
    tpki_cleanup(&pki);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audit_log),
        cmocka_unit_test(test_rewritten_below_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
