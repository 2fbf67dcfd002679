/*
 * test_attach.c - attachments through the relay (issue 13 item 2; PROTOCOL.md
 * part 2 "Attachments"): upload and resume, chunk rules, downloads under the
 * DELIVER window behind FLASH, deletion once every recipient is done, expiry,
 * quotas, audit records, and no plaintext in the store. The test seals its
 * chunks as a client does (ChaCha20-Poly1305-IETF, one key per file), so the
 * relay is given exactly what it would see.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <sodium.h>

#include "audit_record.h"
#include "fileio.h"
#include "merkle.h"
#include "relaytest.h"

#ifndef VALISE_AUDIT_BIN
#error "VALISE_AUDIT_BIN must name the valise-audit binary"
#endif

enum { MAX_REC = 512, OUT_MAX = 1 << 16 };

/* Bounds of every relay here: one 110 KB attachment fits a recipient's queue, two do not. */
static const char *const relay_args[] = {"--max-attachment", "120000", "--queue-max-bytes",
                                         "200000", NULL};

struct fixture {
    struct tpki pki;
    struct tdev a, b, c, d; /* a sends to b and c; d is listed but never a recipient */
    struct trelay relay;
    struct buf msg;
};

/* One attachment sealed as the client does (PROTOCOL.md part 2 "Attachments"). */
struct tatt {
    uint8_t id[WIRE_ID_LEN], key[32];
    uint8_t *plain, *ct;
    size_t size;
    uint32_t c;
    uint64_t ct_size;
};

static struct audit_record recs[MAX_REC];
static size_t nrecs;
static char out[OUT_MAX];

static int setup(void **state)
{
    static struct fixture f;
    const struct tdev *devs[4];
    uint64_t now = tnow();

    memset(&f, 0, sizeof(f));
    assert_int_equal(tpki_init(&f.pki), 0);
    assert_int_equal(tdev_make(&f.pki, &f.a, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.b, 2, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.c, 3, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.d, 4, now - 60, now + 86400), 0);
    devs[0] = &f.a;
    devs[1] = &f.b;
    devs[2] = &f.c;
    devs[3] = &f.d;
    assert_int_equal(tpki_write_dir(&f.pki, 1, devs, 4, NULL, 0), 0);
    assert_int_equal(trelay_start(&f.relay, &f.pki, relay_args), 0);
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

/* ---- the client's sealing, in the test ---- */

static uint32_t tatt_len(const struct tatt *t, uint32_t i)
{
    return i + 1 < t->c ? WIRE_ATT_CHUNK_CT
                        : (uint32_t)(t->ct_size - (uint64_t)WIRE_ATT_CHUNK_CT * (t->c - 1));
}

static const uint8_t *tatt_chunk(const struct tatt *t, uint32_t i)
{
    return t->ct + (size_t)i * WIRE_ATT_CHUNK_CT;
}

static void chunk_ad(uint8_t ad[27 + 16 + 8], const uint8_t id[WIRE_ID_LEN], uint32_t i,
                     uint32_t c)
{
    memcpy(ad, "valise/v1/attachment-chunk", 27); /* with its 0x00 */
    memcpy(ad + 27, id, WIRE_ID_LEN);
    for (int k = 0; k < 4; k++) {
        ad[43 + k] = (uint8_t)(i >> (24 - 8 * k));
        ad[47 + k] = (uint8_t)(c >> (24 - 8 * k));
    }
}

static void chunk_nonce(uint8_t nonce[12], uint32_t i)
{
    memset(nonce, 0, 12);
    for (int k = 0; k < 4; k++)
        nonce[8 + k] = (uint8_t)(i >> (24 - 8 * k));
}

/* size bytes of recognisable text, sealed in chunks of 16384 under a fresh key and id. */
static void tatt_make(struct tatt *t, size_t size)
{
    uint8_t ad[51], nonce[12];
    size_t k = 0;

    memset(t, 0, sizeof(*t));
    randombytes_buf(t->id, sizeof(t->id));
    randombytes_buf(t->key, sizeof(t->key));
    t->size = size;
    t->c = (uint32_t)((size + WIRE_ATT_CHUNK_PLAIN - 1) / WIRE_ATT_CHUNK_PLAIN);
    t->ct_size = size + (uint64_t)WIRE_ATT_TAG_LEN * t->c;
    assert_non_null(t->plain = malloc(size + 64));
    assert_non_null(t->ct = malloc((size_t)t->c * WIRE_ATT_CHUNK_CT));
    while (k < size) {
        int n = snprintf((char *)t->plain + k, 64, "NOTE VERBALE %08zu of the Embassy. ", k);
        k += (size_t)n;
    }
    for (uint32_t i = 0; i < t->c; i++) {
        size_t off = (size_t)i * WIRE_ATT_CHUNK_PLAIN;
        size_t n = size - off < WIRE_ATT_CHUNK_PLAIN ? size - off : WIRE_ATT_CHUNK_PLAIN;
        unsigned long long clen = 0;

        chunk_ad(ad, t->id, i, t->c);
        chunk_nonce(nonce, i);
        assert_int_equal(crypto_aead_chacha20poly1305_ietf_encrypt(
                             t->ct + (size_t)i * WIRE_ATT_CHUNK_CT, &clen, t->plain + off, n, ad,
                             sizeof(ad), NULL, nonce, t->key),
                         0);
        assert_int_equal(clen, tatt_len(t, i));
    }
}

static void tatt_free(struct tatt *t)
{
    free(t->plain);
    free(t->ct);
    sodium_memzero(t->key, sizeof(t->key));
}

/* ---- protocol steps ---- */

static void send_attach(struct fixture *f, struct wsc *c, uint8_t type, const struct wire_attach *a)
{
    buf_reset(&f->msg);
    assert_int_equal(wire_put_attach(&f->msg, type, a), 0);
    assert_int_equal(tc_send(c, &f->msg), 0);
}

/* Receives the next ATTACH_STATE for att and checks it. */
static void expect_state(struct fixture *f, struct wsc *c, const uint8_t att[WIRE_ID_LEN],
                         uint16_t reason, uint32_t chunks, uint32_t stored)
{
    struct wire_msg m;

    assert_int_equal(tc_expect(c, &f->msg, &m, WIRE_ATTACH_STATE, TWAIT), 0);
    assert_memory_equal(m.u.attach.att, att, WIRE_ID_LEN);
    if (m.u.attach.reason != reason || m.u.attach.c != chunks || m.u.attach.stored != stored)
        fail_msg("ATTACH_STATE: expected %s c %u stored %u, saw %s c %u stored %u",
                 wire_reason_name(reason), chunks, stored, wire_reason_name(m.u.attach.reason),
                 m.u.attach.c, m.u.attach.stored);
}

static void open_att(struct fixture *f, struct wsc *c, const struct tatt *t, uint64_t ct_size,
                     uint32_t chunks, uint64_t expiry, const struct tdev *const *to, size_t n,
                     uint16_t want, uint32_t want_stored)
{
    uint8_t rcpt[8 * DEVICE_ID_LEN];
    struct wire_attach a;

    assert_true(n <= 8);
    memset(&a, 0, sizeof(a));
    memcpy(a.att, t->id, WIRE_ID_LEN);
    a.ct_size = ct_size;
    a.c = chunks;
    a.precedence = WIRE_ROUTINE;
    a.expiry = expiry;
    for (size_t k = 0; k < n; k++)
        memcpy(rcpt + k * DEVICE_ID_LEN, to[k]->cert.device_id, DEVICE_ID_LEN);
    a.rcpt = rcpt;
    a.n_rcpt = n;
    send_attach(f, c, WIRE_ATTACH_OPEN, &a);
    if (want == WIRE_R_OK)
        expect_state(f, c, t->id, WIRE_R_OK, chunks, want_stored);
    else
        expect_state(f, c, t->id, want, 0, 0);
}

/* Sends ATTACH_PUT i with len bytes (the sealed chunk, or as many of it). */
static void send_put(struct fixture *f, struct wsc *c, const struct tatt *t, uint32_t i,
                     uint32_t len)
{
    struct wire_attach a;

    memset(&a, 0, sizeof(a));
    memcpy(a.att, t->id, WIRE_ID_LEN);
    a.i = i;
    a.ct = tatt_chunk(t, i < t->c ? i : 0);
    a.ct_len = len;
    send_attach(f, c, WIRE_ATTACH_PUT, &a);
}

static void expect_put_ack(struct fixture *f, struct wsc *c, const struct tatt *t, uint32_t i,
                           uint16_t reason)
{
    struct wire_msg m;

    assert_int_equal(tc_expect(c, &f->msg, &m, WIRE_ATTACH_PUT_ACK, TWAIT), 0);
    assert_memory_equal(m.u.attach.att, t->id, WIRE_ID_LEN);
    if (m.u.attach.i != i || m.u.attach.reason != reason)
        fail_msg("ATTACH_PUT_ACK: expected chunk %u %s, saw chunk %u %s", i,
                 wire_reason_name(reason), m.u.attach.i, wire_reason_name(m.u.attach.reason));
}

static void put_chunk(struct fixture *f, struct wsc *c, const struct tatt *t, uint32_t i)
{
    send_put(f, c, t, i, tatt_len(t, i));
    expect_put_ack(f, c, t, i, WIRE_R_OK);
}

static void send_get(struct fixture *f, struct wsc *c, const uint8_t att[WIRE_ID_LEN], uint32_t from)
{
    struct wire_attach a;

    memset(&a, 0, sizeof(a));
    memcpy(a.att, att, WIRE_ID_LEN);
    a.i = from;
    send_attach(f, c, WIRE_ATTACH_GET, &a);
}

static void send_chunk_ack(struct fixture *f, struct wsc *c, const uint8_t att[WIRE_ID_LEN],
                           uint32_t i)
{
    struct wire_attach a;

    memset(&a, 0, sizeof(a));
    memcpy(a.att, att, WIRE_ID_LEN);
    a.i = i;
    send_attach(f, c, WIRE_ATTACH_CHUNK_ACK, &a);
}

static void send_done(struct fixture *f, struct wsc *c, const uint8_t att[WIRE_ID_LEN])
{
    struct wire_attach a;

    memset(&a, 0, sizeof(a));
    memcpy(a.att, att, WIRE_ID_LEN);
    send_attach(f, c, WIRE_ATTACH_DONE, &a);
}

/* The message m is ATTACH_CHUNK i of t, byte for byte, and opens to the plaintext. */
static void check_chunk(const struct wire_msg *m, const struct tatt *t, uint32_t i)
{
    uint8_t ad[51], nonce[12], plain[WIRE_ATT_CHUNK_PLAIN];
    unsigned long long n = 0;

    if (m->type != WIRE_ATTACH_CHUNK)
        fail_msg("expected ATTACH_CHUNK %u, saw %s", i, wire_type_name(m->type));
    assert_memory_equal(m->u.attach.att, t->id, WIRE_ID_LEN);
    if (m->u.attach.i != i)
        fail_msg("expected chunk %u, saw chunk %u", i, m->u.attach.i);
    assert_int_equal(m->u.attach.c, t->c);
    assert_int_equal(m->u.attach.ct_len, tatt_len(t, i));
    assert_memory_equal(m->u.attach.ct, tatt_chunk(t, i), tatt_len(t, i));
    chunk_ad(ad, t->id, i, t->c);
    chunk_nonce(nonce, i);
    assert_int_equal(crypto_aead_chacha20poly1305_ietf_decrypt(plain, &n, NULL, m->u.attach.ct,
                                                                m->u.attach.ct_len, ad, sizeof(ad),
                                                                nonce, t->key),
                     0);
    assert_memory_equal(plain, t->plain + (size_t)i * WIRE_ATT_CHUNK_PLAIN, n);
}

/* Receives chunks from..to-1 of t in order, acknowledging each. */
static void recv_chunks(struct fixture *f, struct wsc *c, const struct tatt *t, uint32_t from,
                        uint32_t to)
{
    struct wire_msg m;

    for (uint32_t i = from; i < to; i++) {
        assert_int_equal(tc_recv(c, &f->msg, &m, TWAIT), 0);
        check_chunk(&m, t, i);
        send_chunk_ack(f, c, t->id, i);
    }
}

static void upload_all(struct fixture *f, struct wsc *c, const struct tatt *t)
{
    for (uint32_t i = 0; i < t->c; i++)
        put_chunk(f, c, t, i);
}

/* ---- the stopped relay's files ---- */

static void stop_relay(struct fixture *f)
{
    int st = trelay_signal(&f->relay, SIGTERM);

    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Entries of the named table of the stopped relay's store. */
static size_t db_entries(const char *dir, const char *name)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat st;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, name, 0, &dbi), 0);
    assert_int_equal(mdb_stat(txn, dbi, &st), 0);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return st.ms_entries;
}

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The queued bytes qstat holds for dev (0 when it has no row). */
static uint64_t qstat_bytes(const char *dir, const uint8_t dev[DEVICE_ID_LEN])
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {.mv_size = DEVICE_ID_LEN, .mv_data = (void *)(uintptr_t)dev}, d;
    uint64_t bytes = 0;
    int rc;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "qstat", 0, &dbi), 0);
    rc = mdb_get(txn, dbi, &k, &d);
    if (rc == 0) {
        assert_int_equal(d.mv_size, 16);
        bytes = be((const uint8_t *)d.mv_data + 8, 8);
    } else {
        assert_int_equal(rc, MDB_NOTFOUND);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return bytes;
}

/* Reads the whole audit log, checking numbering. */
static void read_log(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi audit;
    MDB_cursor *c;
    MDB_val k, d;
    int rc;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "audit", 0, &audit), 0);
    assert_int_equal(mdb_cursor_open(txn, audit, &c), 0);
    nrecs = 0;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        assert_int_equal(be(k.mv_data, 8), nrecs);
        assert_true(nrecs < MAX_REC);
        assert_int_equal(audit_record_parse(d.mv_data, d.mv_size, &recs[nrecs]), 0);
        nrecs++;
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

/* Records of event for attachment att with device and peer as given. */
static size_t count_recs(uint8_t event, const uint8_t att[WIRE_ID_LEN], const struct tdev *device,
                         const struct tdev *peer, uint32_t size)
{
    size_t n = 0;

    for (size_t i = 0; i < nrecs; i++) {
        const struct audit_record *r = &recs[i];

        if (r->event != event || memcmp(r->envelope_id, att, WIRE_ID_LEN) != 0 ||
            memcmp(r->device_id, device->cert.device_id, DEVICE_ID_LEN) != 0 ||
            memcmp(r->peer_id, peer->cert.device_id, DEVICE_ID_LEN) != 0)
            continue;
        assert_int_equal(r->size, size);
        assert_int_equal(r->precedence, WIRE_ROUTINE);
        n++;
    }
    return n;
}

/* Runs argv (stdout and stderr into out); its exit status. */
static int run(const struct fixture *f, const char *const *argv)
{
    char path[TPATH];
    struct buf b;
    pid_t pid;
    int st, fd;

    assert_int_equal(file_join(path, sizeof(path), f->pki.dir, "run.out"), 0);
    unlink(path);
    if ((pid = fork()) == 0) {
        setenv("HOME", f->pki.dir, 1);
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
    if (file_read(path, OUT_MAX - 1, 0, &b) == 0) {
        if (buf_size(&b) > 0)
            memcpy(out, buf_data(&b), buf_size(&b));
        out[buf_size(&b)] = '\0';
        buf_free(&b);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * The stopped relay's log verifies with valise-audit against its own audit
 * key (into key, for later verbs).
 */
static void expect_log_verifies(struct fixture *f, char key[512])
{
    char statef[TPATH], *nl;
    const char *pk[] = {VALISE_RELAY_BIN, "--print-audit-key", "--data", f->pki.data_path, NULL};
    const char *verify[] = {VALISE_AUDIT_BIN, "verify", "--data", f->pki.data_path, "--key", key,
                            "--state", statef, NULL};
    int st;

    assert_int_equal(file_join(statef, sizeof(statef), f->pki.dir, "officer.state"), 0);
    st = run(f, pk);
    if (st != 0 || strlen(out) >= 512)
        fail_msg("--print-audit-key: exit %d: %s", st, out);
    memcpy(key, out, strlen(out) + 1);
    if ((nl = strchr(key, '\n')) != NULL)
        *nl = '\0';
    st = run(f, verify);
    if (st != 0 || strstr(out, "ok:") == NULL)
        fail_msg("valise-audit verify: expected exit 0 and \"ok:\", saw exit %d:\n%s", st, out);
}

/* valise-audit VERB --data --key [extra...] exits 0 and prints needle. */
static void expect_audit(struct fixture *f, const char *key, const char *verb, const char *flag,
                         const char *value, const char *needle)
{
    const char *argv[] = {VALISE_AUDIT_BIN, verb, "--data", f->pki.data_path, "--key", key,
                          flag, value, NULL};
    int st = run(f, argv);

    if (st != 0 || strstr(out, needle) == NULL)
        fail_msg("valise-audit %s %s %s: expected exit 0 and \"%s\", saw exit %d:\n%s", verb,
                 flag != NULL ? flag : "", value != NULL ? value : "", needle, st, out);
}

static void hex_id(char out_hex[33], const uint8_t id[16])
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < 16; i++) {
        out_hex[2 * i] = digits[id[i] >> 4];
        out_hex[2 * i + 1] = digits[id[i] & 15];
    }
    out_hex[32] = '\0';
}

/* 1 if the file holds the bytes. */
static int file_contains(const char *path, const uint8_t *p, size_t len)
{
    struct buf b;
    int found = 0;

    assert_int_equal(file_read(path, (size_t)1 << 30, 0, &b), 0);
    for (size_t i = 0; i + len <= buf_size(&b) && !found; i++)
        found = buf_data(&b)[i] == p[0] && memcmp(buf_data(&b) + i, p, len) == 0;
    buf_free(&b);
    return found;
}

/* ---- tests ---- */

/*
 * Upload, cut, resume: the OPEN again says how many chunks are stored and the
 * PUTs continue from there; pipelined PUTs are acknowledged in order; a chunk
 * sent again is acknowledged and not stored twice. The store holds the
 * chunks' ciphertext and never the plaintext the test sealed.
 */
static void test_upload_resume(void **state)
{
    struct fixture *f = *state;
    const struct tdev *to[2] = {&f->b, &f->c};
    struct tatt t;
    struct wsc ca;
    uint16_t reason;
    uint64_t expiry = tnow() + 3600;
    char mdb[TPATH];

    tatt_make(&t, 40000); /* 3 chunks: 16400, 16400, 7248 bytes of ciphertext */
    assert_int_equal(t.c, 3);
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    open_att(f, &ca, &t, t.ct_size, t.c, expiry, to, 2, WIRE_R_OK, 0);
    put_chunk(f, &ca, &t, 0);
    wsc_close(&ca); /* the link is cut */
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    open_att(f, &ca, &t, t.ct_size, t.c, expiry, to, 2, WIRE_R_OK, 1);
    /* several PUTs in flight, acknowledged in order */
    send_put(f, &ca, &t, 1, tatt_len(&t, 1));
    send_put(f, &ca, &t, 2, tatt_len(&t, 2));
    expect_put_ack(f, &ca, &t, 1, WIRE_R_OK);
    expect_put_ack(f, &ca, &t, 2, WIRE_R_OK);
    /* a duplicate: acknowledged, not stored again */
    put_chunk(f, &ca, &t, 0);
    open_att(f, &ca, &t, t.ct_size, t.c, expiry, to, 2, WIRE_R_OK, 3);
    wsc_close(&ca);
    stop_relay(f);
    assert_int_equal(db_entries(f->pki.data_path, "att"), 1);
    assert_int_equal(db_entries(f->pki.data_path, "attc"), 3);
    assert_int_equal(db_entries(f->pki.data_path, "attexp"), 1);
    /* counted toward each recipient's queued bytes */
    assert_int_equal(qstat_bytes(f->pki.data_path, f->b.cert.device_id), t.ct_size);
    assert_int_equal(qstat_bytes(f->pki.data_path, f->c.cert.device_id), t.ct_size);
    assert_int_equal(file_join(mdb, sizeof(mdb), f->pki.data_path, "data.mdb"), 0);
    /* the search finds what is there (the ciphertext), and not the plaintext */
    assert_true(file_contains(mdb, tatt_chunk(&t, 1) + 100, 64));
    for (size_t off = 0; off + 64 <= t.size; off += 4096)
        if (file_contains(mdb, t.plain + off, 64))
            fail_msg("data.mdb holds plaintext of the attachment at offset %zu", off);
    read_log(f->pki.data_path);
    assert_int_equal(count_recs(AUDIT_ATTACHMENT_ACCEPTED, t.id, &f->a, &f->b, (uint32_t)t.ct_size), 1);
    assert_int_equal(count_recs(AUDIT_ATTACHMENT_ACCEPTED, t.id, &f->a, &f->c, (uint32_t)t.ct_size), 1);
    tatt_free(&t);
}

/* Chunks out of order, of the wrong length, past the end; OPENs that do not fit. */
static void test_chunk_rules(void **state)
{
    struct fixture *f = *state;
    const struct tdev *to[1] = {&f->b};
    struct tdev ghost;
    const struct tdev *ghosts[1] = {&ghost};
    struct tatt t, u;
    struct wsc ca, cd;
    struct wire_msg m;
    uint16_t reason;
    uint64_t expiry = tnow() + 3600;

    tatt_make(&t, 40000);
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    /* c and ct_size that do not fit each other: 16400*(c-1) + 17 <= ct_size <= 16400*c */
    open_att(f, &ca, &t, t.ct_size, 2, expiry, to, 1, WIRE_R_CHUNK_INVALID, 0);
    open_att(f, &ca, &t, 16400 * 2 + 16, 3, expiry, to, 1, WIRE_R_CHUNK_INVALID, 0);
    /* over --max-attachment (120000), with c fitting */
    open_att(f, &ca, &t, 120001, 8, expiry, to, 1, WIRE_R_ATTACHMENT_TOO_LARGE, 0);
    /* a recipient that is not in the directory, an expiry in the past */
    assert_int_equal(tdev_make(&f->pki, &ghost, 99, tnow() - 10, tnow() + 100), 0);
    open_att(f, &ca, &t, t.ct_size, t.c, expiry, ghosts, 1, WIRE_R_UNKNOWN_DEVICE, 0);
    open_att(f, &ca, &t, t.ct_size, t.c, tnow() - 1, to, 1, WIRE_R_EXPIRED, 0);
    open_att(f, &ca, &t, t.ct_size, t.c, expiry, to, 1, WIRE_R_OK, 0);
    /* not in order */
    send_put(f, &ca, &t, 1, tatt_len(&t, 1));
    expect_put_ack(f, &ca, &t, 1, WIRE_R_CHUNK_INVALID);
    /* not the length of chunk 0 */
    send_put(f, &ca, &t, 0, 100);
    expect_put_ack(f, &ca, &t, 0, WIRE_R_CHUNK_INVALID);
    put_chunk(f, &ca, &t, 0);
    put_chunk(f, &ca, &t, 1);
    /* the last chunk is ct_size - 16400*(c-1) bytes, not a whole one */
    send_put(f, &ca, &t, 2, WIRE_ATT_CHUNK_CT);
    expect_put_ack(f, &ca, &t, 2, WIRE_R_CHUNK_INVALID);
    /* the same id with other fields, or from another sender */
    open_att(f, &ca, &t, t.ct_size - 1, t.c, expiry, to, 1, WIRE_R_ID_CONFLICT, 0);
    assert_int_equal(tc_auth(&cd, f->relay.port, &f->d, &reason), 0);
    open_att(f, &cd, &t, t.ct_size, t.c, expiry, to, 1, WIRE_R_ID_CONFLICT, 0);
    /* another device's PUT: no such attachment for it */
    send_put(f, &cd, &t, 2, tatt_len(&t, 2));
    expect_put_ack(f, &cd, &t, 2, WIRE_R_ATTACHMENT_UNKNOWN);
    /* DONE before the upload is complete: it cannot hold every chunk */
    {
        struct wsc cb;

        assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
        send_done(f, &cb, t.id);
        expect_state(f, &cb, t.id, WIRE_R_CHUNK_INVALID, 0, 0);
        wsc_close(&cb);
    }
    put_chunk(f, &ca, &t, 2);
    /* past the end */
    send_put(f, &ca, &t, 3, tatt_len(&t, 2));
    expect_put_ack(f, &ca, &t, 3, WIRE_R_CHUNK_INVALID);
    wsc_close(&cd);
    /* a recipient named twice is malformed: ERROR, connection closed */
    {
        const struct tdev *twice[2] = {&f->b, &f->b};
        struct wire_attach a;
        uint8_t rcpt[2 * DEVICE_ID_LEN];

        tatt_make(&u, 100);
        memset(&a, 0, sizeof(a));
        memcpy(a.att, u.id, WIRE_ID_LEN);
        a.ct_size = u.ct_size;
        a.c = u.c;
        a.precedence = WIRE_ROUTINE;
        a.expiry = expiry;
        memcpy(rcpt, twice[0]->cert.device_id, DEVICE_ID_LEN);
        memcpy(rcpt + DEVICE_ID_LEN, twice[1]->cert.device_id, DEVICE_ID_LEN);
        a.rcpt = rcpt;
        a.n_rcpt = 2;
        send_attach(f, &ca, WIRE_ATTACH_OPEN, &a);
        assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_ATTACH_STATE, TWAIT), VERR_DENIED);
        assert_int_equal(m.u.error.reason, WIRE_R_MALFORMED);
        assert_true(wsc_wait_closed(&ca, TWAIT));
        tatt_free(&u);
    }
    wsc_close(&ca);
    tatt_free(&t);
}

/*
 * Downloads: chunks as stored, the upload's progress when the GET reaches it,
 * attachment_unknown for a device that is not a recipient, ATTACH_DONE by
 * every recipient deletes the attachment, its chunks and its quota; audit
 * records for each step, and the log still verifies.
 */
static void test_get_and_done(void **state)
{
    struct fixture *f = *state;
    const struct tdev *to[2] = {&f->b, &f->c};
    struct tatt t, none;
    struct wsc ca, cb, cc, cd;
    uint16_t reason;

    tatt_make(&t, 40000);
    tatt_make(&none, 10);
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    open_att(f, &ca, &t, t.ct_size, t.c, tnow() + 3600, to, 2, WIRE_R_OK, 0);
    put_chunk(f, &ca, &t, 0);
    /* a recipient sees the message before the attachment has arrived: the part stored */
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    send_get(f, &cb, t.id, 0);
    recv_chunks(f, &cb, &t, 0, 1);
    expect_state(f, &cb, t.id, WIRE_R_OK, 3, 1);
    send_get(f, &cb, t.id, 1);
    expect_state(f, &cb, t.id, WIRE_R_OK, 3, 1);
    put_chunk(f, &ca, &t, 1);
    put_chunk(f, &ca, &t, 2);
    /* the rest, and no ATTACH_STATE once every chunk is sent */
    send_get(f, &cb, t.id, 1);
    recv_chunks(f, &cb, &t, 1, 3);
    /* not a recipient, an unknown id: the same answer */
    assert_int_equal(tc_auth(&cd, f->relay.port, &f->d, &reason), 0);
    send_get(f, &cd, t.id, 0);
    expect_state(f, &cd, t.id, WIRE_R_ATTACHMENT_UNKNOWN, 0, 0);
    send_get(f, &cd, none.id, 0);
    expect_state(f, &cd, none.id, WIRE_R_ATTACHMENT_UNKNOWN, 0, 0);
    send_done(f, &cd, t.id);
    expect_state(f, &cd, t.id, WIRE_R_ATTACHMENT_UNKNOWN, 0, 0);
    wsc_close(&cd);
    /* b is done: it may not fetch again; c still may */
    send_done(f, &cb, t.id);
    expect_state(f, &cb, t.id, WIRE_R_OK, 3, 3);
    send_get(f, &cb, t.id, 0);
    expect_state(f, &cb, t.id, WIRE_R_ATTACHMENT_UNKNOWN, 0, 0);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    send_get(f, &cc, t.id, 2);
    recv_chunks(f, &cc, &t, 2, 3);
    send_done(f, &cc, t.id);
    expect_state(f, &cc, t.id, WIRE_R_OK, 3, 3);
    /* gone with the last recipient */
    send_get(f, &cc, t.id, 0);
    expect_state(f, &cc, t.id, WIRE_R_ATTACHMENT_UNKNOWN, 0, 0);
    open_att(f, &ca, &t, t.ct_size, t.c, tnow() + 3600, to, 2, WIRE_R_OK, 0);
    send_done(f, &cc, t.id); /* the new one is not complete: refused, nothing changes */
    expect_state(f, &cc, t.id, WIRE_R_CHUNK_INVALID, 0, 0);
    wsc_close(&ca);
    wsc_close(&cb);
    wsc_close(&cc);
    stop_relay(f);
    /* the second OPEN's record alone, no chunk; the first one's quota released */
    assert_int_equal(db_entries(f->pki.data_path, "att"), 1);
    assert_int_equal(db_entries(f->pki.data_path, "attc"), 0);
    assert_int_equal(db_entries(f->pki.data_path, "attexp"), 1);
    assert_int_equal(qstat_bytes(f->pki.data_path, f->b.cert.device_id), t.ct_size);
    read_log(f->pki.data_path);
    assert_int_equal(count_recs(AUDIT_ATTACHMENT_ACCEPTED, t.id, &f->a, &f->b, (uint32_t)t.ct_size), 1);
    assert_int_equal(count_recs(AUDIT_ATTACHMENT_ACCEPTED, t.id, &f->a, &f->c, (uint32_t)t.ct_size), 1);
    assert_int_equal(count_recs(AUDIT_ATTACHMENT_DELIVERED, t.id, &f->b, &f->a, (uint32_t)t.ct_size), 1);
    assert_int_equal(count_recs(AUDIT_ATTACHMENT_DELIVERED, t.id, &f->c, &f->a, (uint32_t)t.ct_size), 1);
    {
        char key[512], env[33], line[128];

        expect_log_verifies(f, key);
        /* the officer finds them by event name, with the attachment id as the envelope */
        hex_id(env, t.id);
        snprintf(line, sizeof(line), "\"event\":\"attachment_delivered\"");
        expect_audit(f, key, "search", "--event", "attachment_delivered", line);
        snprintf(line, sizeof(line), "\"envelope\":\"%s\"", env);
        expect_audit(f, key, "search", "--event", "attachment_delivered", line);
        expect_audit(f, key, "export", NULL, NULL, "\"event\":\"attachment_accepted\"");
    }
    tatt_free(&t);
    tatt_free(&none);
}

/* Every recipient done: no row left in att, attc, attexp, and none in qstat. */
static void test_done_deletes(void **state)
{
    struct fixture *f = *state;
    const struct tdev *to[2] = {&f->b, &f->c};
    struct tatt t;
    struct wsc ca, cb, cc;
    uint16_t reason;

    tatt_make(&t, 70000); /* 5 chunks */
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    open_att(f, &ca, &t, t.ct_size, t.c, tnow() + 3600, to, 2, WIRE_R_OK, 0);
    upload_all(f, &ca, &t);
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    send_get(f, &cb, t.id, 0);
    recv_chunks(f, &cb, &t, 0, t.c);
    send_get(f, &cc, t.id, 0);
    recv_chunks(f, &cc, &t, 0, t.c);
    send_done(f, &cb, t.id);
    expect_state(f, &cb, t.id, WIRE_R_OK, t.c, t.c);
    send_done(f, &cc, t.id);
    expect_state(f, &cc, t.id, WIRE_R_OK, t.c, t.c);
    /* /metrics: nothing stored any more */
    {
        struct buf body;

        assert_int_equal(buf_init(&body, 1 << 20, 0), 0);
        assert_int_equal(http_get(f->relay.port, "/metrics", &body, TWAIT), 200);
        assert_int_equal(buf_put_u8(&body, 0), 0);
        assert_non_null(strstr((const char *)buf_data(&body), "valise_relay_attachments_stored 0\n"));
        assert_non_null(strstr((const char *)buf_data(&body), "valise_relay_attachment_bytes_stored 0\n"));
        buf_free(&body);
    }
    wsc_close(&ca);
    wsc_close(&cb);
    wsc_close(&cc);
    stop_relay(f);
    assert_int_equal(db_entries(f->pki.data_path, "att"), 0);
    assert_int_equal(db_entries(f->pki.data_path, "attc"), 0);
    assert_int_equal(db_entries(f->pki.data_path, "attexp"), 0);
    assert_int_equal(db_entries(f->pki.data_path, "qstat"), 0);
    tatt_free(&t);
}

/*
 * FLASH text is never held behind an attachment: a FLASH envelope queued
 * while the recipient downloads goes ahead of the chunks that remain.
 */
static void test_flash_ahead_of_chunks(void **state)
{
    struct fixture *f = *state;
    const struct tdev *to[1] = {&f->b};
    struct tatt t;
    struct wsc ca, cb;
    struct wire_envelope e;
    struct wire_msg m;
    uint8_t id[WIRE_ID_LEN];
    uint16_t reason;
    static const char text[] = "FLASH: evacuate now";

    tatt_make(&t, 60000); /* 4 chunks */
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    open_att(f, &ca, &t, t.ct_size, t.c, tnow() + 3600, to, 1, WIRE_R_OK, 0);
    upload_all(f, &ca, &t);
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    send_get(f, &cb, t.id, 0);
    /* chunk 0 fills the starting window: the rest waits for its ATTACH_CHUNK_ACK */
    assert_int_equal(tc_recv(&cb, &f->msg, &m, TWAIT), 0);
    check_chunk(&m, &t, 0);
    randombytes_buf(id, sizeof(id));
    tc_envelope(&e, id, &f->b, WIRE_FLASH, tnow() + 3600, (const uint8_t *)text, sizeof(text) - 1);
    assert_int_equal(tc_submit(&ca, &e, 1), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    send_chunk_ack(f, &cb, t.id, 0);
    /* the FLASH comes next, before chunk 1 */
    assert_int_equal(tc_recv(&cb, &f->msg, &m, TWAIT), 0);
    if (m.type != WIRE_DELIVER)
        fail_msg("expected the FLASH DELIVER before the remaining chunks, saw %s",
                 wire_type_name(m.type));
    {
        struct wire_iter it;
        struct wire_envelope got;

        assert_int_equal(m.u.batch.n, 1);
        wire_iter_init(&it, &m);
        assert_int_equal(wire_next_envelope(&it, &got), 0);
        assert_memory_equal(got.id, id, WIRE_ID_LEN);
        assert_int_equal(got.precedence, WIRE_FLASH);
    }
    assert_int_equal(tc_deliver_ack(&cb, id, 1), 0);
    recv_chunks(f, &cb, &t, 1, t.c);
    send_done(f, &cb, t.id);
    expect_state(f, &cb, t.id, WIRE_R_OK, t.c, t.c);
    wsc_close(&ca);
    wsc_close(&cb);
    tatt_free(&t);
}

/*
 * Expiry: the sweeper deletes the attachment (chunks included), records
 * attachment_expired for each recipient not done, and the sender gets
 * NON_DELIVERY (expired, id = attachment id).
 */
static void test_expiry(void **state)
{
    struct fixture *f = *state;
    const struct tdev *to[2] = {&f->b, &f->c};
    struct tatt t;
    struct wsc ca, cb;
    struct wire_msg m;
    struct wire_iter it;
    struct wire_nd nd;
    uint16_t reason;

    tatt_make(&t, 20000); /* 2 chunks */
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    open_att(f, &ca, &t, t.ct_size, t.c, tnow() + 2, to, 2, WIRE_R_OK, 0);
    upload_all(f, &ca, &t);
    wsc_close(&ca); /* the sender goes offline */
    sleep(4);
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    send_get(f, &cb, t.id, 0);
    expect_state(f, &cb, t.id, WIRE_R_ATTACHMENT_UNKNOWN, 0, 0);
    wsc_close(&cb);
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_NON_DELIVERY, TWAIT), 0);
    assert_int_equal(m.u.batch.n, 1);
    wire_iter_init(&it, &m);
    assert_int_equal(wire_next_nd(&it, &nd), 0);
    assert_memory_equal(nd.id, t.id, WIRE_ID_LEN);
    assert_memory_equal(nd.recipient, f->b.cert.device_id, DEVICE_ID_LEN);
    assert_int_equal(nd.reason, WIRE_R_EXPIRED);
    buf_reset(&f->msg);
    assert_int_equal(wire_put_ids(&f->msg, WIRE_NON_DELIVERY_ACK, t.id, 1), 0);
    assert_int_equal(tc_send(&ca, &f->msg), 0);
    usleep(300000);
    wsc_close(&ca);
    stop_relay(f);
    assert_int_equal(db_entries(f->pki.data_path, "att"), 0);
    assert_int_equal(db_entries(f->pki.data_path, "attc"), 0);
    assert_int_equal(db_entries(f->pki.data_path, "attexp"), 0);
    assert_int_equal(db_entries(f->pki.data_path, "qstat"), 0);
    assert_int_equal(db_entries(f->pki.data_path, "nd"), 0);
    read_log(f->pki.data_path);
    for (size_t i = 0; i < 2; i++) {
        size_t n = count_recs(AUDIT_ATTACHMENT_EXPIRED, t.id, &f->a, to[i], (uint32_t)t.ct_size);

        if (n != 1)
            fail_msg("attachment_expired for recipient %zu: expected 1 record, saw %zu", i, n);
    }
    {
        char key[512];

        expect_log_verifies(f, key);
        expect_audit(f, key, "report", NULL, NULL,
                     "expired attachments not fetched (by post: give --org-pub): 1");
        expect_audit(f, key, "search", "--event", "attachment_expired", "\"reason\":\"expired\"");
    }
    tatt_free(&t);
}

/* --queue-max-bytes counts attachments until the recipient is done; --max-attachment. */
static void test_quota(void **state)
{
    struct fixture *f = *state;
    const struct tdev *to[1] = {&f->b};
    struct tatt t, u;
    struct wsc ca, cb;
    uint16_t reason;
    uint64_t expiry = tnow() + 3600;

    tatt_make(&t, 110000); /* 7 chunks, 110112 bytes: one fits 200000, two do not */
    tatt_make(&u, 110000);
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    open_att(f, &ca, &t, t.ct_size, t.c, expiry, to, 1, WIRE_R_OK, 0);
    open_att(f, &ca, &u, u.ct_size, u.c, expiry, to, 1, WIRE_R_QUEUE_FULL, 0);
    upload_all(f, &ca, &t);
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    send_get(f, &cb, t.id, 0);
    recv_chunks(f, &cb, &t, 0, t.c);
    send_done(f, &cb, t.id);
    expect_state(f, &cb, t.id, WIRE_R_OK, t.c, t.c);
    /* released with the recipient's ATTACH_DONE */
    open_att(f, &ca, &u, u.ct_size, u.c, expiry, to, 1, WIRE_R_OK, 0);
    wsc_close(&ca);
    wsc_close(&cb);
    stop_relay(f);
    read_log(f->pki.data_path);
    {
        size_t n = 0;

        for (size_t i = 0; i < nrecs; i++)
            n += recs[i].event == AUDIT_QUOTA_HIT && recs[i].reason == WIRE_R_QUEUE_FULL &&
                 memcmp(recs[i].envelope_id, u.id, WIRE_ID_LEN) == 0;
        assert_int_equal(n, 1);
    }
    tatt_free(&t);
    tatt_free(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upload_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunk_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_and_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flash_ahead_of_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
