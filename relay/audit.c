/* audit.c - audit key, checkpoint policy and directory records (see audit.h). */
#include "audit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "audit_record.h"
#include "datadir.h"
#include "fileio.h"
#include "log.h"
#include "merkle.h"
#include "note.h"
#include "sig.h"

_Static_assert(RAUDIT_KEY_FILE_LEN == 4 + 1 + SIG_SEED_LEN, "audit.key layout (PROTOCOL.md, part 6)");
_Static_assert((int)WIRE_AUDIT_RECORD_LEN == (int)AUDIT_RECORD_LEN,
               "AUDIT_PROOF carries one record");
_Static_assert((int)WIRE_AUDIT_HASH_LEN == (int)MERKLE_HASH_LEN &&
                   (int)WIRE_AUDIT_PROOF_MAX == (int)MERKLE_MAX_PROOF,
               "AUDIT_PROOF carries a Merkle proof");
_Static_assert((int)WIRE_AUDIT_NOTE_MAX == (int)NOTE_MAX_LEN,
               "AUDIT_CHECKPOINT carries one signed note");

enum { RAUDIT_KEY_VERSION = 1, RAUDIT_PATH_MAX = 4096 };

struct raudit {
    uint8_t *sk; /* sodium_malloc: libsodium's 64-byte Ed25519 secret key */
    uint8_t pk[SIG_PK_LEN];
    char origin[NOTE_MAX_NAME_LEN + 1];
    char verifier[NOTE_VERIFIER_KEY_MAX];
    struct note_verifier v;
    uint64_t every_records, every_seconds;
    uint64_t last_time; /* monotonic seconds of the latest checkpoint (or of start) */
    int force;
    struct buf text;
    /* The O(n) recomputation of check_tree, run beside the event loop (raudit_verify_start). */
    struct store *bg_st;
    uint64_t bg_at, bg_size;
    uint8_t bg_want_at[MERKLE_HASH_LEN], bg_want[MERKLE_HASH_LEN];
    int bg_pending, bg_started;
    pthread_t bg;
    atomic_int bg_state; /* 0 running or not started, 1 verified, -1 failed (bg_err) */
    int bg_result;
    char bg_err[256];
};

static uint64_t mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

/*
 * Reads DATA/audit.key into sk/pk; with create, makes it first if it is
 * absent (O_EXCL, 0600: STYLE.md habit 5). *created tells which happened.
 */
static int key_load(const char *dir, int create, uint8_t sk[static SIG_SK_LEN],
                    uint8_t pk[static SIG_PK_LEN], int *created)
{
    char path[RAUDIT_PATH_MAX];
    uint8_t file[RAUDIT_KEY_FILE_LEN];
    struct buf b = {0};
    const uint8_t *p;
    int r = VERR_INTERNAL;

    *created = 0;
    if ((r = file_join(path, sizeof(path), dir, RAUDIT_KEY_FILE)) != 0)
        goto out;
    if (!file_exists(path)) {
        if (!create) {
            r = VERR_UNKNOWN;
            goto out;
        }
        memcpy(file, RAUDIT_KEY_MAGIC, 4);
        file[4] = RAUDIT_KEY_VERSION;
        randombytes_buf(file + 5, SIG_SEED_LEN);
        r = file_write_new(path, file, sizeof(file), 0600);
        if (r == 0)
            *created = 1;
        else if (r != VERR_EXISTS) /* another process made it first: read theirs */
            goto out;
    }
    if ((r = file_read(path, RAUDIT_KEY_FILE_LEN, BUF_SECRET, &b)) != 0)
        goto out;
    p = buf_data(&b);
    if (buf_size(&b) != RAUDIT_KEY_FILE_LEN) {
        r = VERR_TRUNCATED;
        goto out;
    }
    if (memcmp(p, RAUDIT_KEY_MAGIC, 4) != 0) {
        r = VERR_BAD_MAGIC;
        goto out;
    }
    if (p[4] != RAUDIT_KEY_VERSION) {
        r = VERR_BAD_VERSION;
        goto out;
    }
    if (crypto_sign_seed_keypair(pk, sk, p + 5) != 0)
        goto out;
    r = 0;
out:
    sodium_memzero(file, sizeof(file));
    buf_free(&b); /* BUF_SECRET: wiped */
    return r;
}

static int make_origin(char out[static NOTE_MAX_NAME_LEN + 1], const char *relay_id)
{
    int n = snprintf(out, NOTE_MAX_NAME_LEN + 1, "%s%s", RAUDIT_ORIGIN_PREFIX, relay_id);

    if (n < 0 || n > NOTE_MAX_NAME_LEN || !note_name_valid(out, (size_t)n))
        return VERR_USAGE;
    return 0;
}

/* store_checkpoint_fn: the policy of audit.h, run inside the committing transaction. */
static int checkpoint_fn(void *ctx, const struct merkle_state *tree, uint64_t last,
                         struct buf *note)
{
    struct raudit *ra = ctx;
    uint8_t root[MERKLE_HASH_LEN];
    uint64_t size = merkle_state_size(tree), now = mono_s();
    int r;

    if (!ra->force && size - last < ra->every_records && now - ra->last_time < ra->every_seconds)
        return 0;
    merkle_state_root(tree, root);
    buf_reset(&ra->text);
    if ((r = note_checkpoint_text(&ra->text, ra->origin, size, root)) != 0 ||
        (r = note_sign(note, buf_data(&ra->text), buf_size(&ra->text), ra->origin, ra->sk)) != 0)
        return r;
    ra->force = 0;
    ra->last_time = now;
    rlog(RLOG_DEBUG, "audit checkpoint signed at tree size %llu", (unsigned long long)size);
    return 0;
}

/*
 * The roots recomputed from records [0, at) and [0, size), in one pass, must
 * be want_at (the signed checkpoint's) and want (the tree state's).
 */
static int recompute_check(struct store *st, uint64_t at, const uint8_t want_at[MERKLE_HASH_LEN],
                           uint64_t size, const uint8_t want[MERKLE_HASH_LEN], char *err,
                           size_t errsz)
{
    uint8_t root_at[MERKLE_HASH_LEN], root[MERKLE_HASH_LEN];
    uint64_t bad = 0;
    int r;

    if (size == 0)
        return 0;
    if ((r = store_audit_recompute(st, at, root_at, size, root, &bad)) != 0) {
        snprintf(err, errsz, "audit record %llu is missing or not a record (%s); stopping the relay",
                 (unsigned long long)bad, verr_str(r));
        return r;
    }
    if (at > 0 && memcmp(root_at, want_at, MERKLE_HASH_LEN) != 0) {
        snprintf(err, errsz,
                 "audit records recomputed at size %llu differ from the signed checkpoint: "
                 "records were altered; stopping the relay",
                 (unsigned long long)at);
        return VERR_BAD_PROOF;
    }
    if (memcmp(root, want, MERKLE_HASH_LEN) != 0) {
        snprintf(err, errsz,
                 "audit records recomputed at size %llu differ from the audit tree state: records "
                 "were altered; stopping the relay",
                 (unsigned long long)size);
        return VERR_BAD_PROOF;
    }
    return 0;
}

/* The start-up check of audit.h: tree state against the log and the latest checkpoint. */
static int check_tree(struct raudit *ra, struct store *st, char *err, size_t errsz)
{
    struct merkle_state tree;
    struct note_checkpoint cp;
    struct buf note = {0};
    uint8_t root[MERKLE_HASH_LEN];
    uint64_t cp_size = 0, records = store_audit_size(st);
    int r;

    if ((r = store_audit_tree(st, &tree)) != 0) {
        snprintf(err, errsz, "audit tree state is corrupt (%s); refusing to start", verr_str(r));
        goto out;
    }
    if (merkle_state_size(&tree) != records) {
        snprintf(err, errsz,
                 "audit tree state covers %llu records but the log holds %llu; refusing to start",
                 (unsigned long long)merkle_state_size(&tree), (unsigned long long)records);
        r = VERR_STORE;
        goto out;
    }
    r = store_checkpoint_latest(st, &cp_size, &note);
    if (r == VERR_UNKNOWN) {
        r = 0; /* no checkpoint yet */
        goto out;
    }
    if (r != 0) {
        snprintf(err, errsz, "reading the latest audit checkpoint: %s", verr_str(r));
        goto out;
    }
    if ((r = note_checkpoint_open(&cp, buf_data(&note), buf_size(&note), &ra->v)) != 0) {
        snprintf(err, errsz,
                 "the latest audit checkpoint (size %llu) does not verify with audit.key (%s); "
                 "refusing to start",
                 (unsigned long long)cp_size, verr_str(r));
        goto out;
    }
    if (cp.size != cp_size) {
        snprintf(err, errsz, "audit checkpoint stored under size %llu says size %llu",
                 (unsigned long long)cp_size, (unsigned long long)cp.size);
        r = VERR_STORE;
        goto out;
    }
    if (cp.size > records) {
        snprintf(err, errsz,
                 "the latest audit checkpoint covers %llu records but the log holds %llu: "
                 "truncated or rolled back; refusing to start",
                 (unsigned long long)cp.size, (unsigned long long)records);
        r = VERR_ROLLBACK;
        goto out;
    }
    merkle_state_root(&tree, root);
    if (cp.size == records && memcmp(root, cp.root, MERKLE_HASH_LEN) != 0) {
        snprintf(err, errsz,
                 "audit tree root differs from the signed checkpoint at size %llu; refusing to "
                 "start",
                 (unsigned long long)records);
        r = VERR_BAD_PROOF;
        goto out;
    }
    /*
     * The frontier alone cannot see a record rewritten below the checkpoint
     * (PROTOCOL.md part 6 section 5): the tree is recomputed from the records
     * at the signed size and at the log's size. That reads every record, so
     * it runs beside the event loop (raudit_verify_start): a restart with a
     * long log serves at once, and a failure stops the relay seconds later.
     */
    ra->bg_st = st;
    ra->bg_at = cp.size;
    ra->bg_size = records;
    memcpy(ra->bg_want_at, cp.root, MERKLE_HASH_LEN);
    memcpy(ra->bg_want, root, MERKLE_HASH_LEN);
    ra->bg_pending = 1;
    r = 0;
out:
    buf_free(&note);
    return r;
}

int raudit_open(struct raudit **out, const struct relay_config *cfg, struct store *st, char *err,
                size_t errsz)
{
    struct raudit *ra = NULL;
    int created = 0, r = VERR_INTERNAL;

    *out = NULL;
    if ((ra = calloc(1, sizeof(*ra))) == NULL)
        return VERR_NOMEM;
    if ((ra->sk = sodium_malloc(SIG_SK_LEN)) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    if ((r = buf_init(&ra->text, NOTE_MAX_LEN, 0)) != 0)
        goto out;
    if ((r = make_origin(ra->origin, cfg->relay_id)) != 0) {
        snprintf(err, errsz, "--relay-id \"%s\" cannot name an audit log (no spaces or '+')",
                 cfg->relay_id);
        goto out;
    }
    if ((r = key_load(cfg->data_dir, 1, ra->sk, ra->pk, &created)) != 0) {
        snprintf(err, errsz, "--data %s: audit key %s: %s", cfg->data_dir, RAUDIT_KEY_FILE,
                 verr_str(r));
        goto out;
    }
    if ((r = note_verifier_format(ra->verifier, sizeof(ra->verifier), ra->origin, ra->pk)) != 0 ||
        (r = note_verifier_parse(&ra->v, ra->verifier, strlen(ra->verifier))) != 0)
        goto out;
    if ((r = check_tree(ra, st, err, errsz)) != 0)
        goto out;
    ra->every_records = cfg->checkpoint_records;
    ra->every_seconds = cfg->checkpoint_seconds;
    ra->last_time = mono_s();
    rlog(RLOG_INFO, "audit verifier key%s: %s", created ? " (new audit.key)" : "", ra->verifier);
    store_set_checkpoint_fn(st, checkpoint_fn, ra);
    *out = ra;
    ra = NULL;
    r = 0;
out:
    raudit_free(ra);
    return r;
}

static void *verify_main(void *arg)
{
    struct raudit *ra = arg;

    ra->bg_result = recompute_check(ra->bg_st, ra->bg_at, ra->bg_want_at, ra->bg_size,
                                    ra->bg_want, ra->bg_err, sizeof(ra->bg_err));
    atomic_store(&ra->bg_state, ra->bg_result == 0 ? 1 : -1);
    return NULL;
}

int raudit_verify_start(struct raudit *ra)
{
    if (!ra->bg_pending) {
        atomic_store(&ra->bg_state, 1); /* no checkpoint yet: nothing to recompute */
        return 0;
    }
    if (pthread_create(&ra->bg, NULL, verify_main, ra) != 0)
        return VERR_NOMEM;
    ra->bg_started = 1;
    return 0;
}

int raudit_verify_poll(struct raudit *ra, int *done, char *err, size_t errsz)
{
    int state = atomic_load(&ra->bg_state);

    *done = state != 0;
    if (state >= 0)
        return 0;
    snprintf(err, errsz, "%s", ra->bg_err);
    return ra->bg_result;
}

void raudit_verify_join(struct raudit *ra)
{
    if (ra != NULL && ra->bg_started) {
        (void)pthread_join(ra->bg, NULL);
        ra->bg_started = 0;
    }
}

void raudit_free(struct raudit *ra)
{
    if (ra == NULL)
        return;
    raudit_verify_join(ra);
    sodium_free(ra->sk); /* wipes */
    buf_free(&ra->text);
    free(ra);
}

const char *raudit_verifier_key(const struct raudit *ra)
{
    return ra->verifier;
}

void raudit_force_checkpoint(struct raudit *ra)
{
    if (ra != NULL)
        ra->force = 1;
}

/* The previous directory may be absent (first start). */
static int has_cert_serial(const struct directory *d, uint64_t serial)
{
    return d != NULL && dir_find_serial(d, serial) != NULL;
}

static int has_revoked_serial(const struct directory *d, uint64_t serial)
{
    return d != NULL && dir_revokes_serial(d, serial);
}

int raudit_directory_changes(struct store *st, const struct directory *old,
                             const struct directory *nw, uint64_t now)
{
    struct audit_record rec;
    int r;

    for (size_t i = 0; i < dir_cert_count(nw); i++) {
        const struct cert *c = dir_cert_at(nw, i);

        if (has_cert_serial(old, c->serial))
            continue;
        audit_record_init(&rec, AUDIT_DEVICE_ENROLLED, now);
        memcpy(rec.device_id, c->device_id, DEVICE_ID_LEN);
        rec.cert_serial = c->serial;
        rec.value = dir_version(nw);
        if ((r = store_audit_append(st, &rec)) != 0)
            return r;
    }
    for (size_t i = 0; i < dir_revoked_count(nw); i++) {
        const struct dir_revocation *v = dir_revoked_at(nw, i);

        if (has_revoked_serial(old, v->serial))
            continue;
        audit_record_init(&rec, AUDIT_DEVICE_REVOKED, now);
        memcpy(rec.device_id, v->device_id, DEVICE_ID_LEN);
        rec.cert_serial = v->serial;
        rec.value = dir_version(nw);
        if ((r = store_audit_append(st, &rec)) != 0)
            return r;
    }
    return 0;
}

int raudit_serve(struct store *st, const char *role, const struct wire_msg *m, struct buf *out)
{
    struct merkle_proof proof;
    struct buf note = {0};
    uint8_t rec[AUDIT_RECORD_LEN];
    uint64_t size = 0;
    int r;

    /* DESIGN.md "Audit log": the log is served to authorised auditors only. */
    if (strcmp(role, RAUDIT_ROLE) != 0)
        return wire_put_error(out, WIRE_R_UNEXPECTED, "auditor role required");
    if (m->type == WIRE_AUDIT_CHECKPOINT_GET) {
        r = store_checkpoint_latest(st, &size, &note);
        if (r == VERR_UNKNOWN)
            return wire_put_error(out, WIRE_R_UNKNOWN_DEVICE, "no checkpoint yet");
        if (r != 0)
            return wire_put_error(out, WIRE_R_STORAGE_ERROR, "reading the checkpoint failed");
        r = wire_put_audit_checkpoint(out, WIRE_AUDIT_CHECKPOINT, buf_data(&note), buf_size(&note));
        buf_free(&note);
        return r;
    }
    r = store_audit_proof(st, m->u.audit.kind == WIRE_AUDIT_INCLUSION, m->u.audit.a, m->u.audit.b,
                          &proof, rec);
    if (r == VERR_UNKNOWN)
        return wire_put_error(out, WIRE_R_UNKNOWN_DEVICE, "the log is not that large yet");
    if (r != 0)
        return wire_put_error(out, WIRE_R_STORAGE_ERROR, "building the proof failed");
    return wire_put_audit_proof(out, m->u.audit.kind, m->u.audit.a, m->u.audit.b,
                                m->u.audit.kind == WIRE_AUDIT_INCLUSION ? rec : NULL, proof.hash[0],
                                proof.len);
}

int raudit_print_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--print-audit-key") == 0)
            return 1;
    return 0;
}

int raudit_print_main(int argc, char **argv)
{
    const char *data = NULL, *relay_id = NULL;
    char stored[WIRE_RELAY_ID_MAX + 1], origin[NOTE_MAX_NAME_LEN + 1], verifier[NOTE_VERIFIER_KEY_MAX];
    uint8_t *sk = NULL, pk[SIG_PK_LEN];
    int created = 0, r, status = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--print-audit-key") == 0)
            continue;
        if (strcmp(argv[i], "--help") == 0) {
            fprintf(stderr, "usage: valise-relay --print-audit-key --data DIR [--relay-id NAME]\n"
                            "Prints the audit log's C2SP verifier key and exits.\n");
            return 0;
        }
        if (i + 1 < argc && strcmp(argv[i], "--data") == 0)
            data = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--relay-id") == 0)
            relay_id = argv[++i];
        else {
            fprintf(stderr, "valise-relay: --print-audit-key takes only --data DIR and "
                            "--relay-id NAME\n");
            return 2;
        }
    }
    if (data == NULL) {
        fprintf(stderr, "valise-relay: --print-audit-key needs --data DIR\n");
        return 2;
    }
    /* The id the log is signed under is the one recorded at the first start (datadir.h). */
    r = datadir_stored_id(data, stored, sizeof(stored));
    if (r == VERR_UNKNOWN) {
        fprintf(stderr, "valise-relay: %s has no %s yet (the relay records it on first start)\n",
                data, DATADIR_ID_FILE);
        return 1;
    }
    if (r != 0) {
        fprintf(stderr, "valise-relay: %s/%s: %s\n", data, DATADIR_ID_FILE, verr_str(r));
        return 1;
    }
    if (relay_id != NULL && strcmp(relay_id, stored) != 0) {
        fprintf(stderr,
                "valise-relay: %s belongs to relay \"%s\", not \"%s\": its log is signed as "
                "\"%s%s\" (leave out --relay-id)\n",
                data, stored, relay_id, RAUDIT_ORIGIN_PREFIX, stored);
        return 2;
    }
    relay_id = stored;
    if (make_origin(origin, relay_id) != 0) {
        fprintf(stderr, "valise-relay: --relay-id \"%s\" cannot name an audit log\n", relay_id);
        return 2;
    }
    if (sodium_init() < 0 || (sk = sodium_malloc(SIG_SK_LEN)) == NULL) {
        fprintf(stderr, "valise-relay: libsodium failed to initialise\n");
        return 1;
    }
    r = key_load(data, 0, sk, pk, &created);
    if (r == VERR_UNKNOWN) {
        fprintf(stderr, "valise-relay: no %s in %s (the relay creates it on first start)\n",
                RAUDIT_KEY_FILE, data);
        goto out;
    }
    if (r != 0) {
        fprintf(stderr, "valise-relay: %s/%s: %s\n", data, RAUDIT_KEY_FILE, verr_str(r));
        goto out;
    }
    if ((r = note_verifier_format(verifier, sizeof(verifier), origin, pk)) != 0) {
        fprintf(stderr, "valise-relay: %s\n", verr_str(r));
        goto out;
    }
    printf("%s\n", verifier);
    status = 0;
out:
    sodium_free(sk);
    return status;
}
