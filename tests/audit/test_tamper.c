/*
 * test_tamper.c - the audit log end to end (issue 5): a real valise-relay
 * serves a real session (auth, bad auth, send, deliver, expire, a revocation
 * by a new directory and SIGHUP, restart), then valise-audit verifies its
 * data dir, and copies of that data dir are tampered with directly in LMDB:
 * a flipped byte, a deleted record, two records swapped, a truncated log, an
 * older copy of the log (rollback), a fork and a rewritten history signed with
 * the relay's own audit key. Each must be detected with its reason and exit
 * status. The relay must also refuse to start on a log whose tree state no
 * longer matches. Only this test (never valise-audit) writes LMDB here.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <sodium.h>

#include "audit_record.h"
#include "fileio.h"
#include "merkle.h"
#include "note.h"
#include "relaytest.h"
#include "text.h"
#include "../unit/vectors_json.h"

enum { OUT_MAX = 1 << 20 };

struct session {
    struct tpki pki;
    struct tdev a, b, c, impostor, auditor, e; /* e: enrolled by an uploaded directory */
    uint8_t ids[4][WIRE_ID_LEN];
    uint8_t ct[64];
    char key[NOTE_VERIFIER_KEY_MAX];
    char old_copy[TPATH]; /* the data dir after the first run: an older log */
    char state[TPATH];    /* the officer's state after verifying the final log */
    uint64_t n;           /* records in the final log */
    char home[TPATH];     /* HOME of every valise-audit run: its default state file */
};

static struct session S;
static char out[OUT_MAX];
static int ncopy;

/* Runs argv, stdout and stderr into out; returns the exit status or -1. */
static int run(const char *const *argv)
{
    char path[TPATH];
    struct buf f;
    pid_t pid;
    int st, fd;

    assert_int_equal(file_join(path, sizeof(path), S.pki.dir, "run.out"), 0);
    unlink(path);
    if ((pid = fork()) == 0) {
        /* the officer's default state file lives under HOME: the test's own */
        setenv("HOME", S.home, 1);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    out[0] = '\0';
    if (file_read(path, OUT_MAX - 1, 0, &f) == 0) {
        if (buf_size(&f) > 0)
            memcpy(out, buf_data(&f), buf_size(&f));
        out[buf_size(&f)] = '\0';
        buf_free(&f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_run(const char *const *argv, int status, const char *needle)
{
    int st = run(argv);

    if (st != status || (needle != NULL && strstr(out, needle) == NULL))
        fail_msg("%s %s: expected exit %d and \"%s\", saw exit %d and:\n%s", argv[0], argv[1],
                 status, needle != NULL ? needle : "", st, out);
}

/* valise-audit verify on dir with the officer's state file state. */
static void verify(const char *dir, const char *state, int status, const char *needle)
{
    const char *argv[] = {VALISE_AUDIT_BIN, "verify", "--data", dir, "--key", S.key,
                          "--state",        state,    NULL};
    expect_run(argv, status, needle);
}

/* A fresh copy of the data dir src; its path in dst. */
static void copy_dir(const char *src, char dst[static TPATH])
{
    char name[32], from[TPATH], to[TPATH];
    struct buf f;

    snprintf(name, sizeof(name), "copy%d", ncopy++);
    assert_int_equal(file_join(dst, TPATH, S.pki.dir, name), 0);
    assert_int_equal(file_mkdir_private(dst), 0);
    assert_int_equal(file_join(from, sizeof(from), src, "data.mdb"), 0);
    assert_int_equal(file_join(to, sizeof(to), dst, "data.mdb"), 0);
    assert_int_equal(file_read(from, 256 << 20, 0, &f), 0);
    assert_int_equal(file_write_new(to, buf_data(&f), buf_size(&f), 0600), 0);
    buf_free(&f);
    assert_int_equal(file_join(from, sizeof(from), src, "audit.key"), 0);
    if (file_exists(from)) {
        assert_int_equal(file_join(to, sizeof(to), dst, "audit.key"), 0);
        assert_int_equal(file_read(from, 64, 0, &f), 0);
        assert_int_equal(file_write_new(to, buf_data(&f), buf_size(&f), 0600), 0);
        buf_free(&f);
    }
}

static void copy_file(const char *from, const char *to)
{
    struct buf f;

    assert_int_equal(file_read(from, 1 << 20, 0, &f), 0);
    assert_int_equal(file_replace(to, buf_data(&f), buf_size(&f), 0600), 0);
    buf_free(&f);
}

static void relay_refuses(const char *dir, const char *needle);

/* ---- the test-only LMDB editor ---- */

struct db {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi audit, cp, meta;
};

static void db_open(struct db *d, const char *dir)
{
    assert_int_equal(mdb_env_create(&d->env), 0);
    assert_int_equal(mdb_env_set_maxdbs(d->env, 16), 0);
    assert_int_equal(mdb_env_open(d->env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(d->env, NULL, 0, &d->txn), 0);
    assert_int_equal(mdb_dbi_open(d->txn, "audit", 0, &d->audit), 0);
    assert_int_equal(mdb_dbi_open(d->txn, "audit_cp", 0, &d->cp), 0);
    assert_int_equal(mdb_dbi_open(d->txn, "meta", 0, &d->meta), 0);
}

static void db_close(struct db *d)
{
    assert_int_equal(mdb_txn_commit(d->txn), 0);
    mdb_env_close(d->env);
}

static MDB_val key_of(uint8_t kb[8], uint64_t i)
{
    MDB_val k = {.mv_size = 8, .mv_data = kb};

    for (int j = 0; j < 8; j++)
        kb[j] = (uint8_t)(i >> (56 - 8 * j));
    return k;
}

static void rec_get(struct db *d, uint64_t i, uint8_t rec[AUDIT_RECORD_LEN])
{
    uint8_t kb[8];
    MDB_val k = key_of(kb, i), v;

    assert_int_equal(mdb_get(d->txn, d->audit, &k, &v), 0);
    assert_int_equal(v.mv_size, AUDIT_RECORD_LEN);
    memcpy(rec, v.mv_data, AUDIT_RECORD_LEN);
}

static void rec_put(struct db *d, uint64_t i, const uint8_t *rec)
{
    uint8_t kb[8];
    MDB_val k = key_of(kb, i), v = {.mv_size = AUDIT_RECORD_LEN, .mv_data = (void *)(uintptr_t)rec};

    assert_int_equal(mdb_put(d->txn, d->audit, &k, &v, 0), 0);
}

static void rec_del(struct db *d, uint64_t i)
{
    uint8_t kb[8];
    MDB_val k = key_of(kb, i);

    assert_int_equal(mdb_del(d->txn, d->audit, &k, NULL), 0);
}

/* Deletes every checkpoint of size > keep. */
static void cp_drop_above(struct db *d, uint64_t keep)
{
    for (uint64_t s = keep + 1; s <= S.n + 8; s++) {
        uint8_t kb[8];
        MDB_val k = key_of(kb, s);
        int rc = mdb_del(d->txn, d->cp, &k, NULL);
        assert_true(rc == 0 || rc == MDB_NOTFOUND);
    }
}

/* The forger holds the relay's audit key: signs a checkpoint over the records as they are now. */
static void cp_forge(struct db *d, const char *dir, uint64_t size)
{
    char path[TPATH], origin[NOTE_MAX_NAME_LEN + 1];
    uint8_t pk[SIG_PK_LEN], sk[SIG_SK_LEN], root[MERKLE_HASH_LEN], kb[8];
    uint8_t(*leaves)[MERKLE_HASH_LEN] = calloc(size, MERKLE_HASH_LEN);
    struct buf f, text, note;
    MDB_val k, v;

    assert_non_null(leaves);
    assert_int_equal(file_join(path, sizeof(path), dir, "audit.key"), 0);
    assert_int_equal(file_read(path, 64, 0, &f), 0);
    assert_int_equal(buf_size(&f), 37);
    assert_int_equal(crypto_sign_seed_keypair(pk, sk, buf_data(&f) + 5), 0);
    buf_free(&f);
    for (uint64_t i = 0; i < size; i++) {
        uint8_t rec[AUDIT_RECORD_LEN];
        rec_get(d, i, rec);
        merkle_leaf_hash(leaves[i], rec, sizeof(rec));
    }
    assert_int_equal(merkle_root_array(root, leaves[0], size), 0);
    free(leaves);
    snprintf(origin, sizeof(origin), "valise/valise-relay");
    assert_int_equal(buf_init(&text, 4096, 0), 0);
    assert_int_equal(buf_init(&note, NOTE_MAX_LEN, 0), 0);
    assert_int_equal(note_checkpoint_text(&text, origin, size, root), 0);
    assert_int_equal(note_sign(&note, buf_data(&text), buf_size(&text), origin, sk), 0);
    k = key_of(kb, size);
    v.mv_size = buf_size(&note);
    v.mv_data = (void *)(uintptr_t)buf_data(&note);
    assert_int_equal(mdb_put(d->txn, d->cp, &k, &v, 0), 0);
    buf_free(&text);
    buf_free(&note);
    sodium_memzero(sk, sizeof(sk));
}

/* ---- the real session ---- */

static void hex(char out_hex[33], const uint8_t *id)
{
    assert_int_equal(text_hex_encode(out_hex, 33, id, 16), 0);
}

/* A device with the auditor role (tdev_make makes "duty"), re-signed by the org root. */
static void make_auditor(struct tdev *d, uint64_t serial)
{
    struct buf b;
    uint64_t now = tnow();

    assert_int_equal(tdev_make(&S.pki, d, serial, now - 60, now + 86400), 0);
    snprintf(d->cert.role, sizeof(d->cert.role), "auditor");
    assert_int_equal(cert_sign(&d->cert, S.pki.org_sk, &b), 0);
    memcpy(d->cert_bytes, buf_data(&b), buf_size(&b));
    d->cert_len = buf_size(&b);
    buf_free(&b);
}

/*
 * The relay serves its newest checkpoint and proofs to an auditor, and to
 * nobody else; everything it answers is checked here with the verifier key
 * and lib/merkle, as a remote auditor would.
 */
static void auditor_over_the_wire(int port)
{
    struct wsc c, x;
    struct buf msg, req;
    struct wire_msg m;
    struct note_verifier v;
    struct note_checkpoint cp;
    struct merkle_proof p;
    uint8_t leaf0[MERKLE_HASH_LEN], leaf[MERKLE_HASH_LEN];
    uint16_t reason;

    assert_int_equal(buf_init(&msg, 1 << 20, 0), 0);
    assert_int_equal(buf_init(&req, 1024, 0), 0);
    assert_int_equal(note_verifier_parse(&v, S.key, strlen(S.key)), 0);
    /* a device without the role is refused */
    assert_int_equal(tc_auth(&x, port, &S.b, &reason), 0);
    assert_int_equal(wire_put_audit_checkpoint(&req, WIRE_AUDIT_CHECKPOINT_GET, NULL, 0), 0);
    assert_int_equal(tc_send(&x, &req), 0);
    assert_int_equal(tc_expect(&x, &msg, &m, WIRE_ERROR, TWAIT), 0);
    assert_int_equal(m.u.error.reason, WIRE_R_UNEXPECTED);
    assert_string_equal(m.u.error.text, "auditor role required");
    wsc_close(&x);
    /* the auditor: the newest checkpoint verifies with the verifier key */
    assert_int_equal(tc_auth(&c, port, &S.auditor, &reason), 0);
    assert_int_equal(tc_send(&c, &req), 0);
    assert_int_equal(tc_expect(&c, &msg, &m, WIRE_AUDIT_CHECKPOINT, TWAIT), 0);
    assert_int_equal(note_checkpoint_open(&cp, m.u.audit.bytes, m.u.audit.len, &v), 0);
    assert_true(cp.size >= 4);
    /* inclusion of record 0 and of the last record of that tree */
    for (int k = 0; k < 2; k++) {
        uint64_t idx = k == 0 ? 0 : cp.size - 1;
        struct audit_record rec;

        buf_reset(&req);
        assert_int_equal(wire_put_audit_proof_get(&req, WIRE_AUDIT_INCLUSION, idx, cp.size), 0);
        assert_int_equal(tc_send(&c, &req), 0);
        assert_int_equal(tc_expect(&c, &msg, &m, WIRE_AUDIT_PROOF, TWAIT), 0);
        assert_int_equal(m.u.audit.a, idx);
        assert_int_equal(m.u.audit.b, cp.size);
        assert_int_equal(audit_record_parse(m.u.audit.bytes, m.u.audit.len, &rec), 0);
        merkle_leaf_hash(leaf, m.u.audit.bytes, m.u.audit.len);
        if (k == 0) {
            memcpy(leaf0, leaf, sizeof(leaf));
            assert_int_equal(rec.event, AUDIT_DIRECTORY_INSTALLED);
        }
        p.len = m.u.audit.n;
        memcpy(p.hash, m.u.audit.hashes, p.len * MERKLE_HASH_LEN);
        assert_int_equal(merkle_verify_inclusion(leaf, idx, cp.size, &p, cp.root), 0);
    }
    /* consistency from the one-record tree (its root is record 0's leaf hash) */
    buf_reset(&req);
    assert_int_equal(wire_put_audit_proof_get(&req, WIRE_AUDIT_CONSISTENCY, 1, cp.size), 0);
    assert_int_equal(tc_send(&c, &req), 0);
    assert_int_equal(tc_expect(&c, &msg, &m, WIRE_AUDIT_PROOF, TWAIT), 0);
    assert_null(m.u.audit.bytes);
    p.len = m.u.audit.n;
    memcpy(p.hash, m.u.audit.hashes, p.len * MERKLE_HASH_LEN);
    assert_int_equal(merkle_verify_consistency(1, cp.size, &p, leaf0, cp.root), 0);
    /* a tree larger than the log */
    buf_reset(&req);
    assert_int_equal(wire_put_audit_proof_get(&req, WIRE_AUDIT_INCLUSION, 0, UINT64_MAX), 0);
    assert_int_equal(tc_send(&c, &req), 0);
    assert_int_equal(tc_expect(&c, &msg, &m, WIRE_ERROR, TWAIT), 0);
    assert_int_equal(m.u.error.reason, WIRE_R_UNKNOWN_DEVICE);
    wsc_close(&c);
    buf_free(&msg);
    buf_free(&req);
}

static int setup(void **state)
{
    struct trelay relay;
    const struct tdev *devs[4], *rev[1];
    const char *extra[] = {"--checkpoint-records", "4", NULL};
    struct wire_envelope e[4];
    struct wire_msg m;
    struct buf msg;
    struct wsc ca, cb, cc, cx;
    uint16_t reason;
    uint64_t now = tnow();
    uint8_t pk[SIG_PK_LEN];

    (void)state;
    memset(&S, 0, sizeof(S));
    assert_int_equal(tpki_init(&S.pki), 0);
    assert_int_equal(file_join(S.home, sizeof(S.home), S.pki.dir, "officer"), 0);
    assert_int_equal(mkdir(S.home, 0700), 0);
    assert_int_equal(buf_init(&msg, 1 << 20, 0), 0);
    assert_int_equal(tdev_make(&S.pki, &S.a, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&S.pki, &S.b, 2, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&S.pki, &S.c, 3, now - 60, now + 86400), 0);
    devs[0] = &S.a;
    devs[1] = &S.b;
    devs[2] = &S.c;
    make_auditor(&S.auditor, 4);
    devs[3] = &S.auditor;
    assert_int_equal(tpki_write_dir(&S.pki, 1, devs, 4, NULL, 0), 0);
    assert_int_equal(trelay_start(&relay, &S.pki, extra), 0);

    /* auth ok, bad auth (b's certificate, another key) */
    assert_int_equal(tc_auth(&ca, relay.port, &S.a, &reason), 0);
    S.impostor = S.b;
    crypto_sign_keypair(pk, S.impostor.sk);
    assert_int_equal(tc_auth(&cx, relay.port, &S.impostor, &reason), VERR_DENIED);
    wsc_close(&cx);
    /* three envelopes a -> b; the third expires before b connects */
    randombytes_buf(S.ct, sizeof(S.ct));
    for (int i = 0; i < 3; i++) {
        randombytes_buf(S.ids[i], WIRE_ID_LEN);
        tc_envelope(&e[i], S.ids[i], &S.b, (uint8_t)i, i == 2 ? tnow() + 1 : tnow() + 3600, S.ct,
                    sizeof(S.ct));
    }
    assert_int_equal(tc_submit(&ca, e, 3), 0);
    assert_int_equal(tc_expect(&ca, &msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    sleep(3);
    assert_int_equal(tc_auth(&cb, relay.port, &S.b, &reason), 0);
    assert_int_equal(tc_expect(&cb, &msg, &m, WIRE_DELIVER, TWAIT), 0);
    assert_int_equal(tc_deliver_ack(&cb, S.ids[0], 1), 0);
    usleep(300000);
    /* revocation of c by a new directory and SIGHUP; c is then refused */
    rev[0] = &S.c;
    assert_int_equal(tpki_write_dir(&S.pki, 2, devs, 4, rev, 1), 0);
    trelay_signal(&relay, SIGHUP);
    usleep(500000);
    assert_int_equal(tc_auth(&cc, relay.port, &S.c, &reason), VERR_DENIED);
    assert_int_equal(reason, WIRE_R_REVOKED);
    wsc_close(&cc);
    wsc_close(&ca);
    wsc_close(&cb);
    int st = trelay_signal(&relay, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    copy_dir(S.pki.data_path, S.old_copy);

    /* the verifier key, as the operator hands it to the officer */
    {
        const char *argv[] = {VALISE_RELAY_BIN, "--print-audit-key", "--data", S.pki.data_path,
                              NULL};
        expect_run(argv, 0, "valise/valise-relay+");
        size_t len = strcspn(out, "\n");
        assert_true(len < sizeof(S.key));
        memcpy(S.key, out, len);
        S.key[len] = '\0';
    }
    /* second run: one more envelope, then a clean stop */
    assert_int_equal(trelay_start(&relay, &S.pki, extra), 0);
    assert_true(trelay_log_contains(&relay, (const uint8_t *)S.key, strlen(S.key)));
    assert_int_equal(tc_auth(&ca, relay.port, &S.a, &reason), 0);
    randombytes_buf(S.ids[3], WIRE_ID_LEN);
    tc_envelope(&e[3], S.ids[3], &S.b, 3, tnow() + 3600, S.ct, sizeof(S.ct));
    assert_int_equal(tc_submit(&ca, &e[3], 1), 0);
    assert_int_equal(tc_expect(&ca, &msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    /* a directory v3 adding device e, uploaded over the wire (DIRECTORY_PUT) */
    {
        /* c is revoked and, as valise-keys does, no longer listed: its post must still be
         * known to the officer (the relay's certificate archive) */
        const struct tdev *all[4] = {&S.a, &S.b, &S.auditor, &S.e};
        struct buf file, put;

        assert_int_equal(tdev_make(&S.pki, &S.e, 5, now - 60, now + 86400), 0);
        assert_int_equal(tpki_write_dir(&S.pki, 3, all, 4, rev, 1), 0);
        assert_int_equal(file_read(S.pki.dir_path, 1 << 20, 0, &file), 0);
        assert_int_equal(buf_init(&put, 2 << 20, 0), 0);
        assert_int_equal(
            wire_put_directory(&put, WIRE_DIRECTORY_PUT, buf_data(&file), buf_size(&file)), 0);
        assert_int_equal(tc_send(&ca, &put), 0);
        assert_int_equal(tc_expect(&ca, &msg, &m, WIRE_DIRECTORY_OK, TWAIT), 0);
        assert_int_equal(m.u.dir_version, 3);
        buf_free(&file);
        buf_free(&put);
    }
    wsc_close(&ca);
    auditor_over_the_wire(relay.port);
    /* valise-audit reads the live relay's data dir (MDB_RDONLY, one snapshot) */
    {
        char live[TPATH];
        assert_int_equal(file_join(live, sizeof(live), S.pki.dir, "live.state"), 0);
        verify(S.pki.data_path, live, 0, "first verification");
    }
    st = trelay_signal(&relay, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    buf_free(&msg);

    /* the officer: first verification of the old log, then of the final one */
    assert_int_equal(file_join(S.state, sizeof(S.state), S.pki.dir, "officer.state"), 0);
    verify(S.old_copy, S.state, 0, "first verification");
    verify(S.pki.data_path, S.state, 0, "consistent with the checkpoint verified before");
    {
        struct db d;
        MDB_stat stt;
        db_open(&d, S.pki.data_path);
        assert_int_equal(mdb_stat(d.txn, d.audit, &stt), 0);
        S.n = stt.ms_entries;
        mdb_txn_abort(d.txn);
        mdb_env_close(d.env);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tpki_cleanup(&S.pki);
    return 0;
}

/* A private copy of the officer's state, so each case starts from the same memory. */
static void state_copy(char path[static TPATH])
{
    char name[32];

    snprintf(name, sizeof(name), "state%d", ncopy++);
    assert_int_equal(file_join(path, TPATH, S.pki.dir, name), 0);
    copy_file(S.state, path);
}

static int has_line(const char *event, const char *field, const char *value)
{
    char a[64], b[96];
    const char *p = out;

    snprintf(a, sizeof(a), "\"event\":\"%s\"", event);
    snprintf(b, sizeof(b), "\"%s\":\"%s\"", field, value);
    while (p != NULL && *p != '\0') {
        const char *e = strchr(p, '\n');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        char line[1024];

        if (len < sizeof(line)) {
            memcpy(line, p, len);
            line[len] = '\0';
            if (strstr(line, a) != NULL && strstr(line, b) != NULL)
                return 1;
        }
        p = e != NULL ? e + 1 : NULL;
    }
    return 0;
}

static void test_records_match_session(void **state)
{
    const char *argv[] = {VALISE_AUDIT_BIN, "export", "--data", S.pki.data_path,
                          "--key",          S.key,    NULL};
    char ha[33], hb[33], hc[33], id[33], cthex[33];

    (void)state;
    expect_run(argv, 0, "\"event\":\"relay_start\"");
    hex(ha, S.a.cert.device_id);
    hex(hb, S.b.cert.device_id);
    hex(hc, S.c.cert.device_id);
    assert_true(has_line("device_enrolled", "device", ha));
    assert_true(has_line("device_enrolled", "device", hb));
    assert_true(has_line("device_enrolled", "device", hc));
    assert_true(has_line("device_revoked", "device", hc));
    {
        char he[33];
        hex(he, S.e.cert.device_id);
        /* only e is new in v3: enrolled once, by the uploaded directory */
        assert_true(has_line("device_enrolled", "device", he));
        assert_true(has_line("directory_installed", "device", ha)); /* a uploaded v3 */
    }
    assert_true(has_line("auth_ok", "device", ha));
    assert_true(has_line("auth_ok", "device", hb));
    assert_true(has_line("auth_fail", "reason", "bad_signature"));
    assert_true(has_line("auth_fail", "device", hb));
    assert_true(has_line("auth_fail", "reason", "revoked"));
    assert_true(has_line("auth_fail", "device", hc));
    for (int i = 0; i < 4; i++) {
        hex(id, S.ids[i]);
        assert_true(has_line("envelope_accepted", "envelope", id));
    }
    hex(id, S.ids[0]);
    assert_true(has_line("envelope_delivered", "envelope", id));
    hex(id, S.ids[2]);
    assert_true(has_line("envelope_expired", "envelope", id));
    hex(id, S.ids[1]);
    assert_false(has_line("envelope_delivered", "envelope", id));
    assert_true(has_line("relay_stop", "reason", "ok"));
    /* ids, sizes and times only: no ciphertext in any record */
    hex(cthex, S.ct);
    assert_null(strstr(out, cthex));
    assert_non_null(strstr(out, "\"size\":64"));
}

static void test_report(void **state)
{
    const char *argv[] = {VALISE_AUDIT_BIN, "report",          "--data",
                          S.pki.data_path,  "--key",           S.key,
                          "--org-pub",      S.pki.orgpub_path, NULL};
    char hb[33];

    (void)state;
    expect_run(argv, 0, "verification: ok");
    hex(hb, S.b.cert.device_id);
    assert_non_null(strstr(out, "failed authentications (devices): 1"));
    assert_non_null(strstr(out, hb));
    assert_non_null(strstr(out, "revoked-device attempts and revoked sessions (devices): 1"));
    assert_non_null(strstr(out, "expired undelivered (by recipient post): 1"));
    assert_non_null(strstr(out, "devices enrolled: 5, revoked: 1"));
    assert_non_null(strstr(out, "relay starts: 2, of which 0 after a run that ended"));
}

static void b64_hash(const struct vj_field *f, uint8_t out_hash[static MERKLE_HASH_LEN])
{
    char tmp[64];
    size_t n = 0;

    assert_non_null(f);
    assert_true(f->str.len < sizeof(tmp));
    memcpy(tmp, f->str.p, f->str.len);
    tmp[f->str.len] = '\0';
    assert_int_equal(text_b64_decode(out_hash, MERKLE_HASH_LEN, &n, tmp, f->str.len), 0);
    assert_int_equal(n, MERKLE_HASH_LEN);
}

/* The JSON is read as the transparency-dev vectors are, and checked with lib/merkle. */
static void proof_from_json(const struct vj_object *o, struct merkle_proof *p)
{
    const struct vj_field *f = vj_get(o, "proof", VJ_ARRAY);
    char tmp[64];
    size_t n;

    assert_non_null(f);
    assert_true(f->n_items <= MERKLE_MAX_PROOF);
    p->len = f->n_items;
    for (size_t i = 0; i < f->n_items; i++) {
        assert_true(f->items[i].len < sizeof(tmp));
        memcpy(tmp, f->items[i].p, f->items[i].len);
        tmp[f->items[i].len] = '\0';
        assert_int_equal(text_b64_decode(p->hash[i], MERKLE_HASH_LEN, &n, tmp, f->items[i].len), 0);
        assert_int_equal(n, MERKLE_HASH_LEN);
    }
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static size_t lines(void)
{
    size_t n = 0;

    for (const char *p = out; *p != '\0'; p++)
        n += *p == '\n';
    return n;
}

static void test_search(void **state)
{
    char ha[33], prefix[9], id[33];
    const char *by_event[] = {VALISE_AUDIT_BIN, "search",          "--data", S.pki.data_path,
                              "--event",        "auth_fail",       "--post", "HQ",
                              "--org-pub",      S.pki.orgpub_path, NULL};
    const char *by_device[] = {
        VALISE_AUDIT_BIN,    "search", "--data", S.pki.data_path, "--device", prefix, "--event",
        "envelope_accepted", NULL};
    const char *by_post[] = {VALISE_AUDIT_BIN, "search",          "--data",
                             S.pki.data_path,  "--post",          "JKT",
                             "--org-pub",      S.pki.orgpub_path, NULL};
    const char *future[] = {VALISE_AUDIT_BIN, "search",     "--data", S.pki.data_path,
                            "--from",         "2999-01-01", NULL};
    const char *past[] = {VALISE_AUDIT_BIN,       "search", "--data", S.pki.data_path, "--to",
                          "1970-01-02T00:00:00Z", NULL};
    const char *bad_time[] = {VALISE_AUDIT_BIN, "search",     "--data", S.pki.data_path,
                              "--from",         "2026-13-01", NULL};
    const char *no_org[] = {VALISE_AUDIT_BIN, "search", "--data", S.pki.data_path,
                            "--post",         "HQ",     NULL};

    (void)state;
    expect_run(by_event, 0, "\"reason\":\"bad_signature\"");
    /* first line: what was verified (no key given, none remembered under this HOME) */
    assert_true(starts_with(out, "{\"verification\":\"none\""));
    /* the impostor and the revoked device, both at HQ: c is no longer in the newest
     * directory, its post comes from the certificate it held then */
    assert_int_equal(lines(), 1 + 2);
    assert_non_null(strstr(out, "\"reason\":\"revoked\""));
    assert_non_null(strstr(out, "\"post\":\"HQ\""));
    hex(ha, S.a.cert.device_id);
    memcpy(prefix, ha, 8);
    prefix[8] = '\0';
    expect_run(by_device, 0, ha);
    assert_int_equal(lines(), 1 + 4);
    for (int i = 0; i < 4; i++) {
        hex(id, S.ids[i]);
        assert_non_null(strstr(out, id));
    }
    expect_run(by_post, 0, NULL);
    assert_int_equal(lines(), 1); /* every test device is at HQ */
    expect_run(future, 0, NULL);
    assert_int_equal(lines(), 1);
    expect_run(past, 0, NULL);
    assert_int_equal(lines(), 1);
    expect_run(bad_time, 1, "--from: expected");
    expect_run(no_org, 1, "--post needs --org-pub");
}

static void test_proofs(void **state)
{
    char idx[24], size[24];
    const char *argv[] = {VALISE_AUDIT_BIN, "proof", "--data", S.pki.data_path, "--key", S.key,
                          "--index",        idx,     NULL};
    const char *cargv[] = {VALISE_AUDIT_BIN, "consistency", "--data",
                           S.pki.data_path,  "--key",       S.key,
                           "--from",         size,          NULL};
    const char *bad[] = {VALISE_AUDIT_BIN, "proof", "--data",  S.pki.data_path,
                         "--key",          S.key,   "--index", "0",
                         "--size",         size,    NULL};
    static struct vj_object o;
    struct merkle_proof p;
    uint8_t root[MERKLE_HASH_LEN], root2[MERKLE_HASH_LEN], leaf[MERKLE_HASH_LEN];
    const struct vj_field *f;
    struct db d;
    uint8_t rec[AUDIT_RECORD_LEN];

    (void)state;
    for (uint64_t i = 0; i < S.n; i += 3) {
        snprintf(idx, sizeof(idx), "%llu", (unsigned long long)i);
        expect_run(argv, 0, "\"leafIdx\": ");
        assert_int_equal(vj_parse(&o, out, strlen(out)), 0);
        assert_non_null(f = vj_get(&o, "leafIdx", VJ_NUMBER));
        assert_int_equal(f->num, i);
        assert_non_null(f = vj_get(&o, "treeSize", VJ_NUMBER));
        assert_int_equal(f->num, S.n); /* the newest checkpoint, at shutdown */
        b64_hash(vj_get(&o, "root", VJ_STRING), root);
        b64_hash(vj_get(&o, "leafHash", VJ_STRING), leaf);
        proof_from_json(&o, &p);
        /* the leaf is the record's own hash, and the proof holds */
        db_open(&d, S.pki.data_path);
        rec_get(&d, i, rec);
        mdb_txn_abort(d.txn);
        mdb_env_close(d.env);
        {
            uint8_t h[MERKLE_HASH_LEN];
            merkle_leaf_hash(h, rec, sizeof(rec));
            assert_memory_equal(h, leaf, MERKLE_HASH_LEN);
        }
        assert_int_equal(merkle_verify_inclusion(leaf, i, S.n, &p, root), 0);
        leaf[0] ^= 1;
        assert_int_equal(merkle_verify_inclusion(leaf, i, S.n, &p, root), VERR_BAD_PROOF);
    }
    /* a size with no checkpoint: one past the log */
    snprintf(size, sizeof(size), "%llu", (unsigned long long)(S.n + 1));
    expect_run(cargv, 1, "no signed checkpoint of that size");
    /* the first checkpoint's size, whatever the commit batching made it */
    {
        MDB_cursor *c;
        MDB_val k, v;
        db_open(&d, S.pki.data_path);
        assert_int_equal(mdb_cursor_open(d.txn, d.cp, &c), 0);
        assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_FIRST), 0);
        uint64_t first = 0;
        assert_int_equal(k.mv_size, 8);
        for (int j = 0; j < 8; j++)
            first = (first << 8) | ((const uint8_t *)k.mv_data)[j];
        snprintf(size, sizeof(size), "%llu", (unsigned long long)first);
        mdb_cursor_close(c);
        mdb_txn_abort(d.txn);
        mdb_env_close(d.env);
    }
    expect_run(cargv, 0, "\"size1\": ");
    assert_int_equal(vj_parse(&o, out, strlen(out)), 0);
    assert_non_null(f = vj_get(&o, "size1", VJ_NUMBER));
    assert_int_equal(f->num, strtoull(size, NULL, 10));
    b64_hash(vj_get(&o, "root1", VJ_STRING), root);
    b64_hash(vj_get(&o, "root2", VJ_STRING), root2);
    proof_from_json(&o, &p);
    assert_int_equal(merkle_verify_consistency(f->num, S.n, &p, root, root2), 0);
    root[5] ^= 1;
    assert_int_equal(merkle_verify_consistency(f->num, S.n, &p, root, root2), VERR_BAD_PROOF);
    snprintf(size, sizeof(size), "%llu", (unsigned long long)(S.n + 1));
    expect_run(bad, 1, "no signed checkpoint of that size");
}

/* The reason names a range [lo, hi) of records, which must hold the tampered index. */
static void expect_range_holds(uint64_t index)
{
    const char *p = strstr(out, "a record in [");
    unsigned long long lo, hi;
    char *end;

    if (p == NULL)
        fail_msg("expected a record range in: %s", out);
    p += strlen("a record in [");
    lo = strtoull(p, &end, 10);
    assert_true(end[0] == ',' && end[1] == ' ');
    hi = strtoull(end + 2, &end, 10);
    assert_true(end[0] == ')');
    if (!(lo <= index && index < hi))
        fail_msg("expected record %llu in the reported range, saw [%llu, %llu)",
                 (unsigned long long)index, lo, hi);
}

static void test_flip_byte(void **state)
{
    char dir[TPATH], st[TPATH];
    uint8_t rec[AUDIT_RECORD_LEN];
    struct db d;

    (void)state;
    /* a byte of the time field: the record still parses, the tree no longer matches */
    copy_dir(S.pki.data_path, dir);
    db_open(&d, dir);
    rec_get(&d, 5, rec);
    rec[9] ^= 0x01;
    rec_put(&d, 5, rec);
    db_close(&d);
    state_copy(st);
    verify(dir, st, 2, "TAMPERED: records do not match the signed checkpoint at size");
    expect_range_holds(5);
    /* no other verb presents the tampered log as if it were fine */
    {
        const char *search[] = {VALISE_AUDIT_BIN, "search", "--data", dir, "--key", S.key, NULL};
        const char *report[] = {VALISE_AUDIT_BIN, "report", "--data", dir, "--state", st, NULL};
        const char *export[] = {VALISE_AUDIT_BIN, "export", "--data", dir, "--state", st, NULL};

        expect_run(search, 2, "TAMPERED");
        assert_null(strstr(out, "\"event\""));
        expect_run(report, 2, "TAMPERED");
        expect_run(export, 2, "TAMPERED");
    }
    /* the version byte: the record no longer parses */
    copy_dir(S.pki.data_path, dir);
    db_open(&d, dir);
    rec_get(&d, 2, rec);
    rec[0] ^= 0x80;
    rec_put(&d, 2, rec);
    db_close(&d);
    verify(dir, st, 2, "TAMPERED: record 2 is malformed");
}

static void test_delete_record(void **state)
{
    char dir[TPATH], st[TPATH];
    struct db d;

    (void)state;
    copy_dir(S.pki.data_path, dir);
    db_open(&d, dir);
    rec_del(&d, 6);
    db_close(&d);
    state_copy(st);
    verify(dir, st, 2, "TAMPERED: record 6 is missing");
}

static void test_reorder(void **state)
{
    char dir[TPATH], st[TPATH];
    uint8_t r1[AUDIT_RECORD_LEN], r2[AUDIT_RECORD_LEN];
    struct db d;

    (void)state;
    copy_dir(S.pki.data_path, dir);
    db_open(&d, dir);
    rec_get(&d, 9, r1);
    rec_get(&d, 10, r2);
    assert_memory_not_equal(r1, r2, AUDIT_RECORD_LEN);
    rec_put(&d, 9, r2);
    rec_put(&d, 10, r1);
    db_close(&d);
    state_copy(st);
    verify(dir, st, 2, "TAMPERED: records do not match the signed checkpoint at size");
    expect_range_holds(9);
}

static void test_truncate(void **state)
{
    char dir[TPATH], st[TPATH];
    struct db d;

    (void)state;
    /* records removed from the end: the newest checkpoint covers more than the log */
    copy_dir(S.pki.data_path, dir);
    db_open(&d, dir);
    for (uint64_t i = 10; i < S.n; i++)
        rec_del(&d, i);
    db_close(&d);
    state_copy(st);
    verify(dir, st, 2, "covers more records than the log holds (10)");
    /* and the relay refuses to start on it */
    relay_refuses(dir, "audit tree state covers");
    /* the checkpoints removed too: only the officer's memory tells */
    db_open(&d, dir);
    cp_drop_above(&d, 8);
    db_close(&d);
    verify(dir, st, 3, "ALARM rollback");
}

static void test_rollback_older_copy(void **state)
{
    char dir[TPATH], st[TPATH], ev[TPATH];
    const char *argv[] = {VALISE_AUDIT_BIN, "verify", "--data",     NULL, "--key", S.key,
                          "--state",        st,       "--evidence", ev,   NULL};
    struct buf f;

    (void)state;
    /* the whole log replaced by the copy taken after the first run */
    copy_dir(S.old_copy, dir);
    state_copy(st);
    assert_int_equal(file_join(ev, sizeof(ev), S.pki.dir, "rollback.evidence"), 0);
    argv[3] = dir;
    expect_run(argv, 3, "ALARM rollback");
    assert_non_null(strstr(out, "evidence (both signed checkpoints) written to"));
    /* evidence: both signed notes */
    assert_int_equal(file_read(ev, 1 << 20, 0, &f), 0);
    {
        const char *p = (const char *)buf_data(&f);
        size_t sigs = 0;
        for (size_t i = 0; i + 3 <= buf_size(&f); i++)
            if (memcmp(p + i, "\xe2\x80\x94 valise/valise-relay ", 3) == 0)
                sigs++;
        assert_int_equal(sigs, 2);
    }
    buf_free(&f);
    /* a second alarm keeps the first evidence and writes beside it */
    expect_run(argv, 3, ".evidence.1");
    assert_true(file_exists(ev));
    /* the state was not moved back */
    verify(S.pki.data_path, st, 0, "consistent");
}

static void test_fork_signed_with_audit_key(void **state)
{
    char dir[TPATH], st[TPATH], fresh[TPATH];
    uint8_t rec[AUDIT_RECORD_LEN];
    struct db d;

    (void)state;
    /* someone with audit.key rewrites record 3 and re-signs a checkpoint of the same size */
    copy_dir(S.pki.data_path, dir);
    db_open(&d, dir);
    rec_get(&d, 3, rec);
    rec[9] ^= 0x40;
    rec_put(&d, 3, rec);
    cp_drop_above(&d, 0);
    cp_forge(&d, dir, S.n);
    db_close(&d);
    /* on its own the forged log verifies: the forger holds the key */
    assert_int_equal(file_join(fresh, sizeof(fresh), S.pki.dir, "fresh.state"), 0);
    verify(dir, fresh, 0, "first verification");
    /* the officer who verified the real log before sees the fork */
    state_copy(st);
    verify(dir, st, 3, "ALARM fork: two checkpoints signed for size");
}

static void test_rewritten_history_grows(void **state)
{
    char dir[TPATH], st[TPATH];
    uint8_t rec[AUDIT_RECORD_LEN];
    struct db d;

    (void)state;
    /* history rewritten and one record added: a larger tree that is no extension */
    copy_dir(S.pki.data_path, dir);
    db_open(&d, dir);
    rec_get(&d, 1, rec);
    rec[9] ^= 0x02;
    rec_put(&d, 1, rec);
    rec_put(&d, S.n, rec);
    cp_drop_above(&d, 0);
    cp_forge(&d, dir, S.n + 1);
    db_close(&d);
    state_copy(st);
    verify(dir, st, 3, "ALARM inconsistent: the log at size");
}

/* Runs the relay on dir; it must refuse to start with the message. */
static void relay_refuses(const char *dir, const char *needle)
{
    char port[TPATH], rcert[TPATH];
    const char *argv[] = {VALISE_RELAY_BIN,
                          "--data",
                          dir,
                          "--org-pub",
                          S.pki.orgpub_path,
                          "--directory",
                          S.pki.dir_path,
                          "--relay-cert",
                          rcert,
                          "--listen",
                          "127.0.0.1:0",
                          "--port-file",
                          port,
                          NULL};

    assert_int_equal(file_join(port, sizeof(port), S.pki.dir, "refused.port"), 0);
    /* a valid relay identity, so the audit checks are what refuses */
    assert_int_equal(file_join(rcert, sizeof(rcert), S.pki.dir, "refused.cert"), 0);
    assert_int_equal(tpki_relay_cert(&S.pki, dir, "valise-relay", tnow() - 60, tnow() + 86400,
                                     rcert),
                     0);
    expect_run(argv, 1, needle);
}

static void meta_edit(const char *dir, void (*edit)(uint8_t *p, size_t len))
{
    static const char name[] = "audit_state";
    MDB_val k = {.mv_size = sizeof(name) - 1, .mv_data = (void *)(uintptr_t)name}, v;
    uint8_t copy[4096];
    struct db d;

    db_open(&d, dir);
    assert_int_equal(mdb_get(d.txn, d.meta, &k, &v), 0);
    assert_true(v.mv_size <= sizeof(copy));
    memcpy(copy, v.mv_data, v.mv_size);
    edit(copy, v.mv_size);
    v.mv_data = copy;
    assert_int_equal(mdb_put(d.txn, d.meta, &k, &v, 0), 0);
    db_close(&d);
}

static void flip_last_hash(uint8_t *p, size_t len)
{
    p[len - 1] ^= 0x01; /* parses; another subtree root */
}

static void break_magic(uint8_t *p, size_t len)
{
    (void)len;
    p[0] ^= 0x20;
}

static void test_relay_refuses_bad_tree_state(void **state)
{
    char dir[TPATH];
    struct db d;
    MDB_cursor *c;
    MDB_val k, v;
    uint8_t note[NOTE_MAX_LEN];

    (void)state;
    /* the relay's own frontier disagrees with its latest signed checkpoint */
    copy_dir(S.pki.data_path, dir);
    meta_edit(dir, flip_last_hash);
    relay_refuses(dir, "audit tree root differs from the signed checkpoint");
    /* the frontier does not parse */
    copy_dir(S.pki.data_path, dir);
    meta_edit(dir, break_magic);
    relay_refuses(dir, "audit tree state is corrupt");
    /* the latest checkpoint does not verify */
    copy_dir(S.pki.data_path, dir);
    db_open(&d, dir);
    assert_int_equal(mdb_cursor_open(d.txn, d.cp, &c), 0);
    assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_LAST), 0);
    assert_true(v.mv_size <= sizeof(note));
    memcpy(note, v.mv_data, v.mv_size);
    note[v.mv_size - 10] ^= 0x01;
    v.mv_data = note;
    assert_int_equal(mdb_cursor_put(c, &k, &v, MDB_CURRENT), 0);
    mdb_cursor_close(c);
    db_close(&d);
    relay_refuses(dir, "does not verify with audit.key");
    /* the untouched data dir still starts (and stops) */
    copy_dir(S.pki.data_path, dir);
    {
        struct tpki p = S.pki;
        struct trelay relay;
        int st;

        memcpy(p.data_path, dir, sizeof(p.data_path));
        assert_int_equal(trelay_start(&relay, &p, NULL), 0);
        st = trelay_signal(&relay, SIGTERM);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

/* The newest checkpoint's size in the live data dir dir, read as valise-audit does. */
static uint64_t newest_checkpoint(const char *dir, const char *key)
{
    char st[TPATH];
    const char *argv[] = {VALISE_AUDIT_BIN, "verify", "--data", dir, "--key", key,
                          "--state",        st,       NULL};
    const char *p;

    assert_int_equal(file_join(st, sizeof(st), S.pki.dir, "policy.state"), 0);
    unlink(st);
    expect_run(argv, 0, "ok: ");
    if ((p = strstr(out, "newest checkpoint: size ")) == NULL)
        fail_msg("no checkpoint line in: %s", out);
    return strtoull(p + strlen("newest checkpoint: size "), NULL, 10);
}

static void test_checkpoint_policy(void **state)
{
    struct tpki pki;
    struct tdev a;
    const struct tdev *devs[1];
    struct trelay relay;
    struct wsc c;
    uint16_t reason;
    uint64_t now = tnow(), n0, n1;
    char key[NOTE_VERIFIER_KEY_MAX];
    const char *by_time[] = {"--checkpoint-records", "1000000", "--checkpoint-seconds", "1", NULL};
    const char *rare[] = {"--checkpoint-records", "1000000", "--checkpoint-seconds", "86400", NULL};
    int st;

    (void)state;
    assert_int_equal(tpki_init(&pki), 0);
    assert_int_equal(tdev_make(&pki, &a, 1, now - 60, now + 86400), 0);
    devs[0] = &a;
    assert_int_equal(tpki_write_dir(&pki, 1, devs, 1, NULL, 0), 0);
    /* T = 1 s: a checkpoint appears while the relay runs, without N records */
    assert_int_equal(trelay_start(&relay, &pki, by_time), 0);
    {
        const char *argv[] = {VALISE_RELAY_BIN, "--print-audit-key", "--data", pki.data_path, NULL};
        expect_run(argv, 0, "valise/valise-relay+");
        out[strcspn(out, "\n")] = '\0';
        memcpy(key, out, strlen(out) + 1);
    }
    assert_int_equal(tc_auth(&c, relay.port, &a, &reason), 0);
    wsc_close(&c);
    sleep(3);
    n0 = newest_checkpoint(pki.data_path, key);
    assert_true(n0 >= 4); /* directory, enrolled, start, auth_ok: signed by time alone */
    st = trelay_signal(&relay, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* rare checkpoints: none while running, one at the clean stop */
    assert_int_equal(trelay_start(&relay, &pki, rare), 0);
    assert_int_equal(tc_auth(&c, relay.port, &a, &reason), 0);
    wsc_close(&c);
    sleep(2);
    n1 = newest_checkpoint(pki.data_path, key);
    assert_non_null(strstr(out, "not signed yet")); /* this run's records wait for a checkpoint */
    st = trelay_signal(&relay, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(n1 >= n0);
    {
        uint64_t n2 = newest_checkpoint(pki.data_path, key);
        assert_true(n2 > n1);
        assert_null(strstr(out, "not signed yet")); /* the stop signed everything */
    }
    tpki_cleanup(&pki);
}

static void test_wrong_key_and_usage(void **state)
{
    uint8_t pk[SIG_PK_LEN], sk[SIG_SK_LEN];
    char other[NOTE_VERIFIER_KEY_MAX], st[TPATH];
    const char *argv[] = {VALISE_AUDIT_BIN, "verify", "--data", S.pki.data_path, "--key", other,
                          "--state",        st,       NULL};
    char none[TPATH], remembered[TPATH];
    const char *nokey[] = {VALISE_AUDIT_BIN, "verify", "--data", S.pki.data_path,
                           "--state",        none,     NULL};
    const char *keyless[] = {VALISE_AUDIT_BIN, "verify",   "--data", S.pki.data_path,
                             "--state",        remembered, NULL};
    const char *other_tool[] = {VALISE_AUDIT_BIN, "proof", "--data", S.pki.data_path,
                                "--index",        "0",     NULL};
    const char *help[] = {VALISE_AUDIT_BIN, "verify", "--help", NULL};
    const char *unknown[] = {VALISE_AUDIT_BIN, "frobnicate", NULL};

    (void)state;
    crypto_sign_keypair(pk, sk);
    assert_int_equal(note_verifier_format(other, sizeof(other), "valise/valise-relay", pk), 0);
    assert_int_equal(file_join(st, sizeof(st), S.pki.dir, "other.state"), 0);
    /* another key under this log's name: the wrong key, not a tampered log */
    expect_run(argv, 1, "this key is not the one that signed this log");
    assert_non_null(strstr(out, "signed as \"valise/valise-relay\""));
    /* another relay's key (another --relay-id): the same */
    assert_int_equal(note_verifier_format(other, sizeof(other), "valise/another-relay", pk), 0);
    expect_run(argv, 1, "this key is not the one that signed this log");
    assert_null(strstr(out, "TAMPERED"));
    assert_int_equal(file_join(none, sizeof(none), S.pki.dir, "absent.state"), 0);
    expect_run(nokey, 1, "the first verification needs --key KEY");
    /* DESIGN.md "valise-audit verify --data DIR": the key remembered in the state file */
    state_copy(remembered);
    expect_run(keyless, 0, "consistent with the checkpoint verified before");
    expect_run(other_tool, 1, "--key KEY (or --key-file FILE) is required");
    expect_run(help, 0, "usage: valise-audit");
    expect_run(unknown, 1, "unknown verb");
}

/*
 * Every verb verifies with the key verify remembered, says so on its first
 * line, and the signed sizes can be listed; --help names every event.
 */
static void test_remembered_key_and_checkpoints(void **state)
{
    const char *first[] = {VALISE_AUDIT_BIN, "verify", "--data", S.pki.data_path, "--key", S.key,
                           NULL};
    const char *search[] = {VALISE_AUDIT_BIN, "search", "--data", S.pki.data_path, "--event",
                            "auth_fail", "--org-pub", S.pki.orgpub_path, NULL};
    const char *report[] = {VALISE_AUDIT_BIN, "report", "--data", S.pki.data_path, "--org-pub",
                            S.pki.orgpub_path, NULL};
    const char *cps[] = {VALISE_AUDIT_BIN, "checkpoints", "--data", S.pki.data_path, NULL};
    const char *help[] = {VALISE_AUDIT_BIN, "--help", NULL};
    char hc[33], line[160];

    (void)state;
    expect_run(first, 0, "first verification"); /* default state file under HOME */
    expect_run(search, 0, "{\"verification\":\"ok\"");
    assert_true(starts_with(out, "{\"verification\":\"ok\""));
    assert_non_null(strstr(out, "\"keyRemembered\":true"));
    /* names and posts next to device ids */
    assert_non_null(strstr(out, "\"name\":"));
    expect_run(report, 0, "verification: ok");
    assert_true(starts_with(out, "verification: ok"));
    assert_non_null(strstr(out, "(remembered key)"));
    hex(hc, S.c.cert.device_id);
    snprintf(line, sizeof(line), "device %s %s@%s", hc, S.c.cert.role, S.c.cert.post);
    assert_non_null(strstr(out, line)); /* the revoked device, named from its certificate */
    expect_run(cps, 0, "verification: ok");
    if (strstr(out, "\nsize ") == NULL || strstr(out, "  root ") == NULL)
        fail_msg("checkpoints listed no size:\n%s", out);
    expect_run(help, 0, "checkpoints");
    for (uint8_t e = 1; e <= AUDIT_EVENT_MAX; e++)
        if (strstr(out, audit_event_name(e)) == NULL)
            fail_msg("--help does not name the event %s", audit_event_name(e));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_match_session),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_proofs),
        cmocka_unit_test(test_flip_byte),
        cmocka_unit_test(test_delete_record),
        cmocka_unit_test(test_reorder),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_rollback_older_copy),
        cmocka_unit_test(test_fork_signed_with_audit_key),
        cmocka_unit_test(test_rewritten_history_grows),
        cmocka_unit_test(test_relay_refuses_bad_tree_state),
        cmocka_unit_test(test_checkpoint_policy),
        cmocka_unit_test(test_wrong_key_and_usage),
        cmocka_unit_test(test_remembered_key_and_checkpoints),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
