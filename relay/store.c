/* store.c - the relay's LMDB storage (see store.h, PROTOCOL.md, part 2 "Storage"). */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "fileio.h"
#include "merkle.h"
#include "note.h"

enum {
    QKEY_LEN = DEVICE_ID_LEN + 1 + 8,              /* qindex: recipient | precedence | seq */
    QDKEY_LEN = 8,                                 /* qdata: seq */
    QVAL_FIXED = WIRE_ID_LEN + DEVICE_ID_LEN + 8 + 8, /* id | sender | expiry | accepted */
    IKEY_LEN = DEVICE_ID_LEN + WIRE_ID_LEN,        /* recipient | id (the `ids` key: id | recipient) */
    IVAL_LEN = 1 + DEVICE_ID_LEN + 1 + 8 + 8 + 4,  /* format | sender | prec | seq | expiry | size */
    XKEY_LEN = 8 + DEVICE_ID_LEN + WIRE_ID_LEN,    /* legacy expiry: expiry | recipient | id */
    QXKEY_LEN = 8 + 8,                             /* qexpiry: expiry | seq */
    TKEY_LEN = 8 + DEVICE_ID_LEN + WIRE_ID_LEN,    /* legacy tomb: acknowledged at | recipient | id */
    DKEY_LEN = 8,                                  /* dedupe: DELIVERED record number */
    DVAL_LEN = 8 + DEVICE_ID_LEN + WIRE_ID_LEN,    /* acknowledged at | recipient | id */
    NKEY_LEN = DEVICE_ID_LEN + WIRE_ID_LEN,        /* sender | id */
    NVAL_LEN = DEVICE_ID_LEN + 2 + 8,              /* recipient | reason | time */
    QSTAT_LEN = 16,                                /* count | bytes */
    SPK_LEN = 4 + WIRE_PK_LEN + SIG_LEN,
    /* att value: sender | ct_size | c | stored | precedence | expiry | accepted | n | n x recipient */
    AVAL_FIXED = DEVICE_ID_LEN + 8 + 4 + 4 + 1 + 8 + 8 + 2,
    AVAL_CT_SIZE = DEVICE_ID_LEN,
    AVAL_C = AVAL_CT_SIZE + 8,
    AVAL_STORED = AVAL_C + 4,
    AVAL_PREC = AVAL_STORED + 4,
    AVAL_EXPIRY = AVAL_PREC + 1,
    AVAL_ACCEPTED = AVAL_EXPIRY + 8,
    AVAL_N = AVAL_ACCEPTED + 8,
    ACKEY_LEN = WIRE_ID_LEN + 4,                   /* att | chunk index */
    AXKEY_LEN = 8 + WIRE_ID_LEN,                   /* expiry | att */
    MAX_DBS = 32,
    /* Index value format. Whether the envelope is still queued is whether its
     * queue key exists: an acknowledgement deletes one key and writes nothing. */
    STATE_QUEUED = 1,
    QCACHE_MIN = 1024,
};

/*
 * A device's queue totals and rollback marks, cached so a batch reads and
 * writes them once per commit instead of once per envelope.
 */
struct qent {
    uint8_t id[DEVICE_ID_LEN];
    uint8_t used, dirty;                  /* dirty: in qc_dirty, written at commit */
    uint8_t totals_changed, mark_changed; /* what qc_flush writes */
    uint8_t mark_loaded;
    uint64_t count, bytes;
    uint8_t mark[STORE_DEVMARK_LEN]; /* highest submitted || highest acknowledged */
};

struct store {
    MDB_env *env;
    MDB_txn *txn; /* the open write transaction, or NULL */
    MDB_dbi qdata;          /* seq -> envelope: appended in seq order, pages filled in order */
    MDB_dbi qindex;         /* recipient | precedence | seq -> (empty): each device's queue */
    MDB_dbi queue;          /* both in one, written by relays before issue 16: migrated at open */
    MDB_dbi qexpiry;        /* expiry | seq -> recipient | id: the sweeper's index */
    MDB_dbi expiry;         /* expiry | recipient | id, written by relays before issue 16 */
    MDB_dbi byid;           /* `ids`: id | recipient -> index value (ids_key) */
    MDB_dbi byid_legacy;    /* `byid` keyed recipient | id, written before: migrated at open */
    MDB_dbi nd, qstat, spk, otk, meta, audit;
    MDB_dbi dedupe;         /* delivered ids in acknowledgement order: the dedupe window */
    MDB_dbi tomb;           /* the same keyed by time, written by relays before issue 16 */
    MDB_dbi devmark;        /* device id -> highest envelope id submitted || acknowledged */
    MDB_dbi certs;          /* serial -> every certificate any installed directory listed */
    MDB_dbi att, attc, attexp; /* attachments, their chunks, their expiry index */
    MDB_dbi dirhist;        /* directory version -> its bytes: the newest STORE_DIR_HISTORY */
    uint64_t dedupe_window; /* seconds a delivered id is still recognised */
    /* committed values, and the open transaction's working copies */
    uint64_t seq, seq_txn;
    uint64_t audit_next, audit_next_txn;
    uint64_t queued, queued_txn;
    uint64_t att_n, att_n_txn, att_bytes, att_bytes_txn; /* attachments and chunk bytes stored */
    struct buf rec; /* one audit record being encoded: no allocation per record */
    /* audit Merkle tree: committed state and the open transaction's copy (PROTOCOL.md, part 6) */
    MDB_dbi audit_cp;
    struct merkle_state tree, tree_txn;
    int tree_err;          /* the persisted state did not parse: no appends */
    uint64_t cp_size;      /* tree size of the latest stored checkpoint */
    store_checkpoint_fn cp_fn;
    void *cp_ctx;
    struct buf cp_note;
    int cp_pending;        /* this transaction stores a checkpoint */
    /* qstat cache: committed values plus this transaction's changes (dirty) */
    struct qent *qc;
    size_t qc_cap, qc_n;
    size_t *qc_dirty;
    size_t qc_ndirty, qc_dirty_cap;
};

static void qc_clear(struct store *s);
static int qc_flush(struct store *s);

static const char meta_seq[] = "seq";
static const char meta_queued[] = "queued";
static const char meta_dir[] = "directory";
static const char meta_audit_state[] = "audit_state";
static const char meta_att_count[] = "att_count";
static const char meta_att_bytes[] = "att_bytes";

static int mdb_to_verr(int rc)
{
    switch (rc) {
    case 0: return 0;
    case MDB_NOTFOUND: return VERR_UNKNOWN;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case ENOSPC:
    case EDQUOT: return VERR_NOSPACE;
    case ENOMEM: return VERR_NOMEM;
    case EIO: return VERR_IO;
    default: return VERR_STORE;
    }
}

static void be64(uint8_t *p, uint64_t v)
{
    for (size_t i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * The `ids` key of an envelope: id | recipient. Ids are time-ordered
 * (PROTOCOL.md part 2), so a transaction's new entries land together at the
 * end of the table instead of one page per recipient.
 */
static void ids_key(uint8_t out[static IKEY_LEN], const uint8_t recipient[static DEVICE_ID_LEN],
                    const uint8_t id[static WIRE_ID_LEN])
{
    memcpy(out, id, WIRE_ID_LEN);
    memcpy(out + WIRE_ID_LEN, recipient, DEVICE_ID_LEN);
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static MDB_val val(const void *p, size_t n)
{
    MDB_val v = {.mv_size = n, .mv_data = (void *)(uintptr_t)p};
    return v;
}

static int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *v)
{
    MDB_val k = val(name, strlen(name)), d;
    int rc = mdb_get(txn, dbi, &k, &d);

    if (rc == MDB_NOTFOUND) {
        *v = 0;
        return 0;
    }
    if (rc != 0)
        return mdb_to_verr(rc);
    if (d.mv_size != 8)
        return VERR_STORE;
    *v = rd64(d.mv_data);
    return 0;
}

static int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t v)
{
    uint8_t b[8];
    MDB_val k = val(name, strlen(name)), d = val(b, sizeof(b));

    be64(b, v);
    return mdb_to_verr(mdb_put(txn, dbi, &k, &d, 0));
}

/*
 * Loads the persisted Merkle frontier. A log written before the frontier
 * existed gets it rebuilt once by hashing its records. A state that does
 * not parse is kept as tree_err: the relay refuses to start on it.
 */
static int audit_tree_load(struct store *s, MDB_txn *txn)
{
    MDB_val k = val(meta_audit_state, strlen(meta_audit_state)), d;
    MDB_cursor *cur = NULL;
    int rc, r;

    merkle_state_init(&s->tree);
    s->tree_err = 0;
    rc = mdb_get(txn, s->meta, &k, &d);
    if (rc == 0) {
        s->tree_err = merkle_state_parse(&s->tree, d.mv_data, d.mv_size);
        if (s->tree_err != 0)
            merkle_state_init(&s->tree);
    } else if (rc != MDB_NOTFOUND) {
        return mdb_to_verr(rc);
    } else if (s->audit_next > 0) {
        if ((rc = mdb_cursor_open(txn, s->audit, &cur)) != 0)
            return mdb_to_verr(rc);
        for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
            uint8_t leaf[MERKLE_HASH_LEN];

            if (d.mv_size != AUDIT_RECORD_LEN || k.mv_size != 8 ||
                rd64(k.mv_data) != merkle_state_size(&s->tree)) {
                mdb_cursor_close(cur);
                return VERR_STORE;
            }
            merkle_leaf_hash(leaf, d.mv_data, d.mv_size);
            if ((r = merkle_state_append(&s->tree, leaf)) != 0) {
                mdb_cursor_close(cur);
                return r;
            }
        }
        mdb_cursor_close(cur);
        if (rc != MDB_NOTFOUND)
            return mdb_to_verr(rc);
    }
    s->tree_txn = s->tree;
    /* The latest checkpoint's size: the last key of audit_cp. */
    if ((rc = mdb_cursor_open(txn, s->audit_cp, &cur)) != 0)
        return mdb_to_verr(rc);
    rc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == 0 && k.mv_size == 8)
        s->cp_size = rd64(k.mv_data);
    else if (rc != MDB_NOTFOUND)
        return VERR_STORE;
    return 0;
}

/*
 * In the committing transaction: the frontier if the log grew, and a signed
 * checkpoint if the policy (cp_fn) asks for one now, so a checkpoint is
 * stored with the records it covers.
 */
static int audit_tree_commit(struct store *s)
{
    uint8_t kb[8];
    uint64_t size = merkle_state_size(&s->tree_txn);
    struct buf out;
    MDB_val k, d;
    int rc, r;

    if (size != merkle_state_size(&s->tree)) {
        if ((r = buf_init(&out, MERKLE_STATE_MAX_LEN, 0)) != 0)
            return r;
        if ((r = merkle_state_serialise(&s->tree_txn, &out)) != 0) {
            buf_free(&out);
            return r;
        }
        k = val(meta_audit_state, strlen(meta_audit_state));
        d = val(buf_data(&out), buf_size(&out));
        rc = mdb_put(s->txn, s->meta, &k, &d, 0);
        buf_free(&out);
        if (rc != 0)
            return mdb_to_verr(rc);
    }
    if (s->cp_fn == NULL || size <= s->cp_size)
        return 0;
    buf_reset(&s->cp_note);
    if ((r = s->cp_fn(s->cp_ctx, &s->tree_txn, s->cp_size, &s->cp_note)) != 0)
        return r;
    if (buf_size(&s->cp_note) == 0)
        return 0;
    be64(kb, size);
    k = val(kb, sizeof(kb));
    d = val(buf_data(&s->cp_note), buf_size(&s->cp_note));
    if ((rc = mdb_put(s->txn, s->audit_cp, &k, &d, MDB_APPEND)) != 0)
        return mdb_to_verr(rc);
    s->cp_pending = 1;
    return 0;
}

/*
 * A data directory from a relay before issue 16 keeps its envelopes in
 * `queue` (recipient | precedence | seq -> envelope): each goes to `qindex`
 * and `qdata` under the same seq, in the transaction that opens the store,
 * and `queue` is emptied (PROTOCOL.md, part 2 "Storage"). Byid values name
 * the envelope by precedence and seq, so they stay valid.
 */
static int queue_migrate(struct store *s, MDB_txn *txn)
{
    MDB_cursor *cur = NULL;
    MDB_val k, d, ik, dk, empty = {0, NULL};
    MDB_stat st;
    int rc, r = VERR_INTERNAL;

    if ((rc = mdb_stat(txn, s->queue, &st)) != 0)
        return mdb_to_verr(rc);
    if (st.ms_entries == 0)
        return 0;
    if ((rc = mdb_cursor_open(txn, s->queue, &cur)) != 0)
        return mdb_to_verr(rc);
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != QKEY_LEN || d.mv_size <= QVAL_FIXED) {
            r = VERR_STORE;
            goto out;
        }
        ik = k;
        dk = val((const uint8_t *)k.mv_data + DEVICE_ID_LEN + 1, QDKEY_LEN);
        if ((rc = mdb_put(txn, s->qindex, &ik, &empty, MDB_NOOVERWRITE)) != 0 ||
            (rc = mdb_put(txn, s->qdata, &dk, &d, MDB_NOOVERWRITE)) != 0) {
            r = mdb_to_verr(rc);
            goto out;
        }
    }
    if (rc != MDB_NOTFOUND) {
        r = mdb_to_verr(rc);
        goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if ((rc = mdb_drop(txn, s->queue, 0)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    r = 0;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    return r;
}

/*
 * A relay before this one kept the id index as `byid` keyed recipient | id,
 * whose per-recipient ranges took a page per recipient per transaction: its
 * entries (queued ids and tombstones, values unchanged) move to `ids` keyed
 * id | recipient, in the opening transaction, and `byid` is emptied
 * (PROTOCOL.md, part 2 "Storage").
 */
static int ids_migrate(struct store *s, MDB_txn *txn)
{
    MDB_cursor *cur = NULL;
    MDB_val k, d, nk;
    MDB_stat st;
    uint8_t key[IKEY_LEN];
    int rc, r = VERR_INTERNAL;

    if ((rc = mdb_stat(txn, s->byid_legacy, &st)) != 0)
        return mdb_to_verr(rc);
    if (st.ms_entries == 0)
        return 0;
    if ((rc = mdb_cursor_open(txn, s->byid_legacy, &cur)) != 0)
        return mdb_to_verr(rc);
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        const uint8_t *p = k.mv_data;

        if (k.mv_size != IKEY_LEN || d.mv_size != IVAL_LEN) {
            r = VERR_STORE;
            goto out;
        }
        ids_key(key, p, p + DEVICE_ID_LEN);
        nk = val(key, sizeof(key));
        if ((rc = mdb_put(txn, s->byid, &nk, &d, MDB_NOOVERWRITE)) != 0) {
            r = mdb_to_verr(rc);
            goto out;
        }
    }
    if (rc != MDB_NOTFOUND) {
        r = mdb_to_verr(rc);
        goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if ((rc = mdb_drop(txn, s->byid_legacy, 0)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    r = 0;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    return r;
}

int store_open(struct store **out, const char *dir, uint64_t map_size)
{
    struct store *s = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, d;
    int dead = 0, rc, r = VERR_INTERNAL;

    *out = NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return VERR_NOMEM;
    s->dedupe_window = STORE_DEDUPE_WINDOW;
    if ((r = buf_init(&s->rec, AUDIT_RECORD_LEN, 0)) != 0 ||
        (r = buf_init(&s->cp_note, NOTE_MAX_LEN, 0)) != 0 || (r = file_mkdir_private(dir)) != 0)
        goto out;
    if ((rc = mdb_env_create(&s->env)) != 0 || (rc = mdb_env_set_maxdbs(s->env, MAX_DBS)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, (size_t)map_size)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, 126)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    /* Durable by design: none of LMDB's no-sync or async flags (DESIGN.md "Relay"). */
    if ((rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    /* Readers left by a process that was killed would pin old pages forever. */
    if ((rc = mdb_reader_check(s->env, &dead)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if ((rc = mdb_dbi_open(txn, "queue", MDB_CREATE, &s->queue)) != 0 ||
        (rc = mdb_dbi_open(txn, "qdata", MDB_CREATE, &s->qdata)) != 0 ||
        (rc = mdb_dbi_open(txn, "qindex", MDB_CREATE, &s->qindex)) != 0 ||
        (rc = mdb_dbi_open(txn, "byid", MDB_CREATE, &s->byid_legacy)) != 0 ||
        (rc = mdb_dbi_open(txn, "ids", MDB_CREATE, &s->byid)) != 0 ||
        (rc = mdb_dbi_open(txn, "expiry", MDB_CREATE, &s->expiry)) != 0 ||
        (rc = mdb_dbi_open(txn, "qexpiry", MDB_CREATE, &s->qexpiry)) != 0 ||
        (rc = mdb_dbi_open(txn, "nd", MDB_CREATE, &s->nd)) != 0 ||
        (rc = mdb_dbi_open(txn, "qstat", MDB_CREATE, &s->qstat)) != 0 ||
        (rc = mdb_dbi_open(txn, "spk", MDB_CREATE, &s->spk)) != 0 ||
        (rc = mdb_dbi_open(txn, "otk", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &s->otk)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 ||
        (rc = mdb_dbi_open(txn, "audit", MDB_CREATE, &s->audit)) != 0 ||
        (rc = mdb_dbi_open(txn, "audit_cp", MDB_CREATE, &s->audit_cp)) != 0 ||
        (rc = mdb_dbi_open(txn, "tomb", MDB_CREATE, &s->tomb)) != 0 ||
        (rc = mdb_dbi_open(txn, "dedupe", MDB_CREATE, &s->dedupe)) != 0 ||
        (rc = mdb_dbi_open(txn, "devmark", MDB_CREATE, &s->devmark)) != 0 ||
        (rc = mdb_dbi_open(txn, "certs", MDB_CREATE, &s->certs)) != 0 ||
        (rc = mdb_dbi_open(txn, "att", MDB_CREATE, &s->att)) != 0 ||
        (rc = mdb_dbi_open(txn, "attc", MDB_CREATE, &s->attc)) != 0 ||
        (rc = mdb_dbi_open(txn, "attexp", MDB_CREATE, &s->attexp)) != 0 ||
        (rc = mdb_dbi_open(txn, "dirhist", MDB_CREATE, &s->dirhist)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if ((r = queue_migrate(s, txn)) != 0 || (r = ids_migrate(s, txn)) != 0)
        goto out;
    if ((r = meta_get_u64(txn, s->meta, meta_seq, &s->seq)) != 0 ||
        (r = meta_get_u64(txn, s->meta, meta_queued, &s->queued)) != 0 ||
        (r = meta_get_u64(txn, s->meta, meta_att_count, &s->att_n)) != 0 ||
        (r = meta_get_u64(txn, s->meta, meta_att_bytes, &s->att_bytes)) != 0)
        goto out;
    /* The log's size is its last key + 1: no separate counter to drift. */
    if ((rc = mdb_cursor_open(txn, s->audit, &cur)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    rc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
    if (rc == 0 && k.mv_size == 8)
        s->audit_next = rd64(k.mv_data) + 1;
    else if (rc != MDB_NOTFOUND) {
        r = VERR_STORE;
        goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if ((r = audit_tree_load(s, txn)) != 0)
        goto out;
    if ((rc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        r = mdb_to_verr(rc);
        goto out;
    }
    txn = NULL;
    *out = s;
    s = NULL;
    r = 0;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (txn != NULL)
        mdb_txn_abort(txn);
    store_close(s);
    return r;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    if (s->txn != NULL)
        mdb_txn_abort(s->txn);
    if (s->env != NULL)
        mdb_env_close(s->env);
    buf_free(&s->rec);
    buf_free(&s->cp_note);
    free(s->qc);
    free(s->qc_dirty);
    free(s);
}

int store_begin(struct store *s)
{
    int rc;

    if (s->txn != NULL)
        return VERR_INTERNAL;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &s->txn)) != 0) {
        s->txn = NULL;
        return mdb_to_verr(rc);
    }
    s->seq_txn = s->seq;
    s->audit_next_txn = s->audit_next;
    s->tree_txn = s->tree;
    s->cp_pending = 0;
    s->queued_txn = s->queued;
    s->att_n_txn = s->att_n;
    s->att_bytes_txn = s->att_bytes;
    return 0;
}

int store_commit(struct store *s)
{
    int rc, r;

    if (s->txn == NULL)
        return VERR_INTERNAL;
    if (s->seq_txn != s->seq && (r = meta_put_u64(s->txn, s->meta, meta_seq, s->seq_txn)) != 0)
        goto fail;
    if (s->queued_txn != s->queued &&
        (r = meta_put_u64(s->txn, s->meta, meta_queued, s->queued_txn)) != 0)
        goto fail;
    if (s->att_n_txn != s->att_n &&
        (r = meta_put_u64(s->txn, s->meta, meta_att_count, s->att_n_txn)) != 0)
        goto fail;
    if (s->att_bytes_txn != s->att_bytes &&
        (r = meta_put_u64(s->txn, s->meta, meta_att_bytes, s->att_bytes_txn)) != 0)
        goto fail;
    if ((r = qc_flush(s)) != 0 || (r = audit_tree_commit(s)) != 0)
        goto fail;
    rc = mdb_txn_commit(s->txn); /* frees the txn whatever happens */
    s->txn = NULL;
    if (rc != 0) {
        qc_clear(s); /* the cache holds values that were not committed */
        return mdb_to_verr(rc);
    }
    for (size_t i = 0; i < s->qc_ndirty; i++) {
        struct qent *q = &s->qc[s->qc_dirty[i]];

        q->dirty = q->totals_changed = q->mark_changed = 0;
    }
    s->qc_ndirty = 0;
    if (s->qc_n > 4 * QCACHE_MIN * 64)
        qc_clear(s); /* bounded: reloaded on demand */
    s->seq = s->seq_txn;
    s->audit_next = s->audit_next_txn;
    s->tree = s->tree_txn;
    if (merkle_state_size(&s->tree) > s->cp_size && s->cp_pending)
        s->cp_size = merkle_state_size(&s->tree);
    s->queued = s->queued_txn;
    s->att_n = s->att_n_txn;
    s->att_bytes = s->att_bytes_txn;
    return 0;
fail:
    store_abort(s);
    return r;
}

void store_abort(struct store *s)
{
    if (s->txn != NULL)
        mdb_txn_abort(s->txn);
    s->txn = NULL;
    qc_clear(s); /* it may hold this transaction's values */
}

void store_set_dedupe_window(struct store *s, uint64_t secs)
{
    s->dedupe_window = secs;
}

uint64_t store_audit_size(const struct store *s)
{
    return s->audit_next;
}

uint64_t store_queue_total(const struct store *s)
{
    return s->queued;
}

int store_map_usage(struct store *s, uint64_t *used, uint64_t *size)
{
    MDB_envinfo info;
    MDB_stat st;
    int rc;

    *used = *size = 0;
    if ((rc = mdb_env_info(s->env, &info)) != 0 || (rc = mdb_env_stat(s->env, &st)) != 0)
        return mdb_to_verr(rc);
    /* pages up to the last one used, as LMDB's own mdb_stat -e reports them */
    *used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    *size = info.me_mapsize;
    return 0;
}

/*
 * The one place where the audit log grows: the record and the Merkle
 * frontier, in the same transaction. Leaf hashes are not stored: a proof
 * rehashes the records it needs (PROTOCOL.md, part 6 section 6).
 */
int store_audit_append(struct store *s, const struct audit_record *rec)
{
    uint8_t kb[8], leaf[MERKLE_HASH_LEN];
    MDB_val k, d;
    int rc, r;

    if (s->txn == NULL)
        return VERR_INTERNAL;
    buf_reset(&s->rec);
    if ((r = audit_record_encode(rec, &s->rec)) != 0)
        return r;
    merkle_leaf_hash(leaf, buf_data(&s->rec), buf_size(&s->rec));
    /* O(log n): the frontier, persisted at commit (PROTOCOL.md, part 5 section 2) */
    if (s->tree_err != 0)
        return s->tree_err;
    if ((r = merkle_state_append(&s->tree_txn, leaf)) != 0)
        return r;
    be64(kb, s->audit_next_txn);
    k = val(kb, sizeof(kb));
    /* Keys are big-endian and only grow: MDB_APPEND keeps the pages packed. */
    d = val(buf_data(&s->rec), buf_size(&s->rec));
    if ((rc = mdb_put(s->txn, s->audit, &k, &d, MDB_APPEND)) != 0)
        return mdb_to_verr(rc);
    s->audit_next_txn++;
    return 0;
}

static size_t qc_hash(const uint8_t *dev, size_t cap)
{
    uint64_t h;

    /* Device ids are random: their first bytes are a good hash. */
    memcpy(&h, dev, sizeof(h));
    return (size_t)(h & (cap - 1));
}

static void qc_clear(struct store *s)
{
    if (s->qc != NULL)
        memset(s->qc, 0, s->qc_cap * sizeof(*s->qc));
    s->qc_n = 0;
    s->qc_ndirty = 0;
}

static int qc_mark_dirty(struct store *s, size_t slot)
{
    if (s->qc[slot].dirty)
        return 0;
    if (s->qc_ndirty == s->qc_dirty_cap) {
        size_t ncap = s->qc_dirty_cap < 64 ? 64 : s->qc_dirty_cap * 2;
        size_t *np = realloc(s->qc_dirty, ncap * sizeof(*np));

        if (np == NULL)
            return VERR_NOMEM;
        s->qc_dirty = np;
        s->qc_dirty_cap = ncap;
    }
    s->qc[slot].dirty = 1;
    s->qc_dirty[s->qc_ndirty++] = slot;
    return 0;
}

static int qc_grow(struct store *s)
{
    size_t ncap = s->qc_cap < QCACHE_MIN ? QCACHE_MIN : s->qc_cap * 2;
    struct qent *nq = calloc(ncap, sizeof(*nq)), *old = s->qc;
    size_t ocap = s->qc_cap;

    if (nq == NULL)
        return VERR_NOMEM;
    s->qc = nq;
    s->qc_cap = ncap;
    s->qc_ndirty = 0;
    for (size_t i = 0; i < ocap; i++) {
        size_t j;

        if (!old[i].used)
            continue;
        for (j = qc_hash(old[i].id, ncap); nq[j].used; j = (j + 1) & (ncap - 1))
            ;
        nq[j] = old[i];
        if (nq[j].dirty) {
            nq[j].dirty = 0;
            if (qc_mark_dirty(s, j) != 0) {
                free(old);
                qc_clear(s); /* the transaction is aborted: nothing cached is kept */
                return VERR_NOMEM;
            }
        }
    }
    free(old);
    return 0;
}

/* The cache slot for dev, loaded from the open transaction if it is not cached. */
static int qc_slot(struct store *s, const uint8_t dev[static DEVICE_ID_LEN], size_t *out)
{
    MDB_val k, d;
    size_t j;
    int rc, r;

    if ((s->qc_n + 1) * 2 > s->qc_cap && (r = qc_grow(s)) != 0)
        return r;
    for (j = qc_hash(dev, s->qc_cap); s->qc[j].used; j = (j + 1) & (s->qc_cap - 1)) {
        if (memcmp(s->qc[j].id, dev, DEVICE_ID_LEN) == 0) {
            *out = j;
            return 0;
        }
    }
    k = val(dev, DEVICE_ID_LEN);
    rc = mdb_get(s->txn, s->qstat, &k, &d);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return mdb_to_verr(rc);
    if (rc == 0 && d.mv_size != QSTAT_LEN)
        return VERR_STORE;
    memcpy(s->qc[j].id, dev, DEVICE_ID_LEN);
    s->qc[j].used = 1;
    s->qc[j].dirty = 0;
    s->qc[j].count = rc == 0 ? rd64(d.mv_data) : 0;
    s->qc[j].bytes = rc == 0 ? rd64((const uint8_t *)d.mv_data + 8) : 0;
    s->qc_n++;
    *out = j;
    return 0;
}

static int qstat_get(struct store *s, const uint8_t dev[static DEVICE_ID_LEN], uint64_t *count,
                     uint64_t *bytes)
{
    size_t j;
    int r;

    *count = *bytes = 0;
    if ((r = qc_slot(s, dev, &j)) != 0)
        return r;
    *count = s->qc[j].count;
    *bytes = s->qc[j].bytes;
    return 0;
}

static int qstat_put(struct store *s, const uint8_t dev[static DEVICE_ID_LEN], uint64_t count,
                     uint64_t bytes)
{
    size_t j;
    int r;

    if ((r = qc_slot(s, dev, &j)) != 0 || (r = qc_mark_dirty(s, j)) != 0)
        return r;
    s->qc[j].count = count;
    s->qc[j].bytes = bytes;
    s->qc[j].totals_changed = 1;
    return 0;
}

/* Writes this transaction's changed totals and marks: once per device per commit. */
static int qc_flush(struct store *s)
{
    for (size_t i = 0; i < s->qc_ndirty; i++) {
        struct qent *q = &s->qc[s->qc_dirty[i]];
        uint8_t b[QSTAT_LEN];
        MDB_val k = val(q->id, DEVICE_ID_LEN), d = val(b, sizeof(b));
        int rc = 0;

        if (q->mark_changed) {
            MDB_val m = val(q->mark, sizeof(q->mark));

            if ((rc = mdb_put(s->txn, s->devmark, &k, &m, 0)) != 0)
                return mdb_to_verr(rc);
        }
        if (!q->totals_changed)
            continue;
        /* attachment bytes count without envelopes (PROTOCOL.md part 2 "Attachments") */
        if (q->count == 0 && q->bytes == 0) {
            rc = mdb_del(s->txn, s->qstat, &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        } else {
            be64(b, q->count);
            be64(b + 8, q->bytes);
            rc = mdb_put(s->txn, s->qstat, &k, &d, 0);
        }
        if (rc != 0)
            return mdb_to_verr(rc);
    }
    return 0;
}

static int qstat_add(struct store *s, const uint8_t dev[static DEVICE_ID_LEN], int sign,
                     uint64_t size)
{
    uint64_t count, bytes;
    int r;

    if ((r = qstat_get(s, dev, &count, &bytes)) != 0)
        return r;
    if (sign > 0) {
        count++;
        bytes += size;
    } else {
        count = count > 0 ? count - 1 : 0;
        bytes = bytes > size ? bytes - size : 0;
    }
    return qstat_put(s, dev, count, bytes);
}

/*
 * Raises the device's mark (which: 0 submitted, 1 acknowledged) to id if id
 * is higher. The client records the same maximum durably before it submits
 * or acknowledges, so the relay's mark never exceeds the client's; a client
 * that finds it does knows its store was rolled back (PROTOCOL.md part 4).
 */
static int devmark_raise(struct store *s, const uint8_t dev[static DEVICE_ID_LEN], int which,
                         const uint8_t id[static WIRE_ID_LEN])
{
    struct qent *q;
    MDB_val k, d;
    size_t j;
    int rc, r;

    if ((r = qc_slot(s, dev, &j)) != 0)
        return r;
    q = &s->qc[j];
    if (!q->mark_loaded) {
        k = val(dev, DEVICE_ID_LEN);
        rc = mdb_get(s->txn, s->devmark, &k, &d);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return mdb_to_verr(rc);
        if (rc == 0 && d.mv_size != sizeof(q->mark))
            return VERR_STORE;
        if (rc == 0)
            memcpy(q->mark, d.mv_data, sizeof(q->mark));
        else
            memset(q->mark, 0, sizeof(q->mark));
        q->mark_loaded = 1;
    }
    if (memcmp(id, q->mark + which * WIRE_ID_LEN, WIRE_ID_LEN) <= 0)
        return 0;
    if ((r = qc_mark_dirty(s, j)) != 0) /* reallocates only the dirty list, not qc */
        return r;
    memcpy(q->mark + which * WIRE_ID_LEN, id, WIRE_ID_LEN);
    q->mark_changed = 1;
    return 0;
}

int store_devmark_get(struct store *s, const uint8_t device[static DEVICE_ID_LEN],
                      uint8_t hi_submitted[static WIRE_ID_LEN],
                      uint8_t hi_acked[static WIRE_ID_LEN])
{
    MDB_txn *txn = NULL;
    MDB_val k = val(device, DEVICE_ID_LEN), d;
    int rc, r;

    memset(hi_submitted, 0, WIRE_ID_LEN);
    memset(hi_acked, 0, WIRE_ID_LEN);
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return mdb_to_verr(rc);
    rc = mdb_get(txn, s->devmark, &k, &d);
    if (rc == MDB_NOTFOUND) {
        r = 0;
    } else if (rc != 0) {
        r = mdb_to_verr(rc);
    } else if (d.mv_size != STORE_DEVMARK_LEN) {
        r = VERR_STORE;
    } else {
        memcpy(hi_submitted, d.mv_data, WIRE_ID_LEN);
        memcpy(hi_acked, (const uint8_t *)d.mv_data + WIRE_ID_LEN, WIRE_ID_LEN);
        r = 0;
    }
    mdb_txn_abort(txn);
    return r;
}

static void audit_envelope(struct audit_record *rec, uint8_t event, uint64_t now,
                           const uint8_t *device, uint64_t serial, const uint8_t *peer,
                           const uint8_t *id, uint32_t size, uint8_t prec)
{
    audit_record_init(rec, event, now);
    memcpy(rec->device_id, device, DEVICE_ID_LEN);
    rec->cert_serial = serial;
    memcpy(rec->peer_id, peer, DEVICE_ID_LEN);
    memcpy(rec->envelope_id, id, WIRE_ID_LEN);
    rec->size = size;
    rec->precedence = prec;
}

/*
 * An id already in `byid` for this recipient: the same sender's resubmission
 * is acknowledged again, another sender's is an id conflict (DESIGN.md "Relay").
 */
static int byid_known(const MDB_val *d, const uint8_t sender[static DEVICE_ID_LEN],
                      uint16_t *reason, int *duplicate)
{
    if (d->mv_size != IVAL_LEN)
        return VERR_STORE;
    if (memcmp((const uint8_t *)d->mv_data + 1, sender, DEVICE_ID_LEN) != 0)
        *reason = WIRE_R_ID_CONFLICT;
    else
        *duplicate = 1;
    return 0;
}

int store_envelope_put(struct store *s, const uint8_t sender[static DEVICE_ID_LEN],
                       uint64_t sender_serial, const struct wire_envelope *e, uint64_t expiry,
                       uint64_t now, const struct store_limits *lim, uint16_t *reason,
                       int *duplicate)
{
    uint8_t ikey[IKEY_LEN], ival[IVAL_LEN], qkey[QKEY_LEN], xkey[QXKEY_LEN], xval[IKEY_LEN];
    uint64_t count, bytes, seq;
    struct audit_record rec;
    MDB_val k, d;
    int rc, r;

    *duplicate = 0;
    *reason = WIRE_R_OK;
    if (s->txn == NULL)
        return VERR_INTERNAL;
    ids_key(ikey, e->peer, e->id);
    if ((r = qstat_get(s, e->peer, &count, &bytes)) != 0)
        return r;
    if (count + 1 > lim->queue_max_count || bytes + e->ct_len > lim->queue_max_bytes) {
        /* A full queue still acknowledges a duplicate (DESIGN.md "Relay"): look first. */
        k = val(ikey, sizeof(ikey));
        rc = mdb_get(s->txn, s->byid, &k, &d);
        if (rc == 0)
            return byid_known(&d, sender, reason, duplicate);
        if (rc != MDB_NOTFOUND)
            return mdb_to_verr(rc);
        *reason = WIRE_R_QUEUE_FULL;
        return 0;
    }
    seq = s->seq_txn + 1;
    /* The index entry is written first with MDB_NOOVERWRITE: one B-tree
     * descent both finds a stored id (the existing value comes back) and
     * inserts a new one, instead of a lookup and then an insert. */
    ival[0] = STATE_QUEUED;
    memcpy(ival + 1, sender, DEVICE_ID_LEN);
    ival[1 + DEVICE_ID_LEN] = e->precedence;
    be64(ival + 2 + DEVICE_ID_LEN, seq);
    be64(ival + 10 + DEVICE_ID_LEN, expiry);
    be32(ival + 18 + DEVICE_ID_LEN, e->ct_len);
    k = val(ikey, sizeof(ikey));
    d = val(ival, sizeof(ival));
    rc = mdb_put(s->txn, s->byid, &k, &d, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST)
        return byid_known(&d, sender, reason, duplicate);
    if (rc != 0)
        return mdb_to_verr(rc);
    s->seq_txn = seq;
    memcpy(qkey, e->peer, DEVICE_ID_LEN);
    qkey[DEVICE_ID_LEN] = e->precedence;
    be64(qkey + DEVICE_ID_LEN + 1, seq);
    k = val(qkey, sizeof(qkey));
    d = val(NULL, 0);
    if ((rc = mdb_put(s->txn, s->qindex, &k, &d, 0)) != 0)
        return mdb_to_verr(rc);
    /* seq only grows: the envelope is appended at the end of `qdata`, so its
     * pages are filled in order rather than split in the middle of each
     * recipient's range. Reserve the value and fill it in place: one copy. */
    k = val(qkey + DEVICE_ID_LEN + 1, QDKEY_LEN);
    d.mv_size = QVAL_FIXED + (size_t)e->ct_len;
    d.mv_data = NULL;
    if ((rc = mdb_put(s->txn, s->qdata, &k, &d, MDB_RESERVE | MDB_APPEND)) != 0)
        return mdb_to_verr(rc);
    {
        uint8_t *p = d.mv_data;
        memcpy(p, e->id, WIRE_ID_LEN);
        memcpy(p + WIRE_ID_LEN, sender, DEVICE_ID_LEN);
        be64(p + WIRE_ID_LEN + DEVICE_ID_LEN, expiry);
        be64(p + WIRE_ID_LEN + DEVICE_ID_LEN + 8, now);
        memcpy(p + QVAL_FIXED, e->ct, e->ct_len);
    }
    /* Keyed by expiry then seq: envelopes of one lifetime arrive in key order,
     * so the entry is appended at the end of the table when it can be. */
    be64(xkey, expiry);
    be64(xkey + 8, seq);
    memcpy(xval, e->peer, DEVICE_ID_LEN);
    memcpy(xval + DEVICE_ID_LEN, e->id, WIRE_ID_LEN);
    k = val(xkey, QXKEY_LEN);
    d = val(xval, sizeof(xval));
    rc = mdb_put(s->txn, s->qexpiry, &k, &d, MDB_APPEND);
    if (rc == MDB_KEYEXIST) /* below the last key: an ordinary insert */
        rc = mdb_put(s->txn, s->qexpiry, &k, &d, MDB_NOOVERWRITE);
    if (rc != 0)
        return mdb_to_verr(rc);
    if ((r = qstat_put(s, e->peer, count + 1, bytes + e->ct_len)) != 0 ||
        (r = devmark_raise(s, sender, 0, e->id)) != 0)
        return r;
    s->queued_txn++;
    audit_envelope(&rec, AUDIT_ENVELOPE_ACCEPTED, now, sender, sender_serial, e->peer, e->id,
                   e->ct_len, e->precedence);
    return store_audit_append(s, &rec);
}

/* Deletes the queue entry an index value points to and updates the recipient's totals. */
static int unqueue(struct store *s, const uint8_t recipient[static DEVICE_ID_LEN],
                   const uint8_t *ival)
{
    uint8_t qkey[QKEY_LEN];
    MDB_val k;
    int rc;

    memcpy(qkey, recipient, DEVICE_ID_LEN);
    qkey[DEVICE_ID_LEN] = ival[1 + DEVICE_ID_LEN];
    memcpy(qkey + DEVICE_ID_LEN + 1, ival + 2 + DEVICE_ID_LEN, 8);
    k = val(qkey, sizeof(qkey));
    /* Not there: acknowledged before (the index entry is its tombstone). */
    if ((rc = mdb_del(s->txn, s->qindex, &k, NULL)) != 0)
        return mdb_to_verr(rc);
    k = val(qkey + DEVICE_ID_LEN + 1, QDKEY_LEN);
    if ((rc = mdb_del(s->txn, s->qdata, &k, NULL)) != 0)
        return rc == MDB_NOTFOUND ? VERR_STORE : mdb_to_verr(rc);
    if (s->queued_txn > 0)
        s->queued_txn--;
    return qstat_add(s, recipient, -1, rd32(ival + 18 + DEVICE_ID_LEN));
}

int store_envelope_ack(struct store *s, const uint8_t recipient[static DEVICE_ID_LEN],
                       uint64_t recipient_serial, const uint8_t id[static WIRE_ID_LEN],
                       uint64_t now)
{
    uint8_t ikey[IKEY_LEN], bkey[IKEY_LEN], ival[IVAL_LEN], xkey[XKEY_LEN], dkey[DKEY_LEN],
        dval[DVAL_LEN];
    struct audit_record rec;
    MDB_val k, d;
    int rc, r;

    _Static_assert(XKEY_LEN == 8 + IKEY_LEN && TKEY_LEN == 8 + IKEY_LEN && DVAL_LEN == 8 + IKEY_LEN,
                   "time | index key");
    if (s->txn == NULL)
        return VERR_INTERNAL;
    ids_key(bkey, recipient, id);
    k = val(bkey, sizeof(bkey));
    if ((rc = mdb_get(s->txn, s->byid, &k, &d)) != 0)
        return mdb_to_verr(rc);
    memcpy(ikey, recipient, DEVICE_ID_LEN);
    memcpy(ikey + DEVICE_ID_LEN, id, WIRE_ID_LEN);
    if (d.mv_size != IVAL_LEN)
        return VERR_STORE;
    memcpy(ival, d.mv_data, sizeof(ival));
    /* The index entry stays as the tombstone for the dedupe window, so a late
     * resubmission is acknowledged and not delivered twice; its expiry entry
     * goes now and a `dedupe` entry says when the tombstone goes. Its key is
     * the number of the DELIVERED record appended below: it only grows, so
     * MDB_APPEND fills pages in order (PROTOCOL.md, part 2 "Duplicates"). */
    if ((r = unqueue(s, recipient, ival)) != 0)
        return r;
    memcpy(xkey, ival + 10 + DEVICE_ID_LEN, 8);
    memcpy(xkey + 8, ival + 2 + DEVICE_ID_LEN, 8); /* expiry | seq */
    k = val(xkey, QXKEY_LEN);
    if ((rc = mdb_del(s->txn, s->qexpiry, &k, NULL)) == MDB_NOTFOUND) {
        /* stored by a relay before issue 16: its entry is in the legacy table */
        memcpy(xkey + 8, ikey, IKEY_LEN);
        k = val(xkey, sizeof(xkey));
        rc = mdb_del(s->txn, s->expiry, &k, NULL);
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        return mdb_to_verr(rc);
    be64(dkey, s->audit_next_txn);
    be64(dval, now);
    memcpy(dval + 8, ikey, IKEY_LEN);
    k = val(dkey, sizeof(dkey));
    d = val(dval, sizeof(dval));
    if ((rc = mdb_put(s->txn, s->dedupe, &k, &d, MDB_APPEND)) != 0)
        return mdb_to_verr(rc);
    if ((r = devmark_raise(s, recipient, 1, id)) != 0)
        return r;
    audit_envelope(&rec, AUDIT_ENVELOPE_DELIVERED, now, recipient, recipient_serial, ival + 1, id,
                   rd32(ival + 18 + DEVICE_ID_LEN), ival[1 + DEVICE_ID_LEN]);
    return store_audit_append(s, &rec);
}

int store_nd_ack(struct store *s, const uint8_t sender[static DEVICE_ID_LEN],
                 const uint8_t id[static WIRE_ID_LEN])
{
    uint8_t nkey[NKEY_LEN];
    MDB_val k;

    if (s->txn == NULL)
        return VERR_INTERNAL;
    memcpy(nkey, sender, DEVICE_ID_LEN);
    memcpy(nkey + DEVICE_ID_LEN, id, WIRE_ID_LEN);
    k = val(nkey, sizeof(nkey));
    return mdb_to_verr(mdb_del(s->txn, s->nd, &k, NULL));
}

/*
 * Forgets up to limit delivered ids acknowledged more than the dedupe window
 * ago from dbi (`dedupe`, or the legacy `tomb` when legacy is set): oldest
 * first, so the scan stops at the first one still inside it. *done counts
 * the entries removed.
 */
static int tomb_sweep(struct store *s, MDB_dbi dbi, int legacy, uint64_t now, size_t limit,
                      size_t *done)
{
    MDB_cursor *cur = NULL;
    MDB_val k, d, ik, id;
    uint8_t qkey[QKEY_LEN];
    int rc, r = VERR_INTERNAL;

    *done = 0;
    if (limit == 0)
        return 0;
    if ((rc = mdb_cursor_open(s->txn, dbi, &cur)) != 0)
        return mdb_to_verr(rc);
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0 && *done < limit;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        uint8_t tval[DVAL_LEN]; /* acknowledged at | recipient | id, in either layout */
        uint8_t bkey[IKEY_LEN];

        if (legacy ? k.mv_size != TKEY_LEN : k.mv_size != DKEY_LEN || d.mv_size != DVAL_LEN) {
            r = VERR_STORE;
            goto out;
        }
        memcpy(tval, legacy ? k.mv_data : d.mv_data, sizeof(tval));
        if (rd64(tval) > now || now - rd64(tval) < s->dedupe_window)
            break;
        ids_key(bkey, tval + 8, tval + 8 + DEVICE_ID_LEN);
        ik = val(bkey, IKEY_LEN);
        rc = mdb_get(s->txn, s->byid, &ik, &id);
        if (rc == 0 && id.mv_size == IVAL_LEN) {
            /* Only a tombstone goes: an id whose envelope is queued keeps its entry. */
            const uint8_t *iv = id.mv_data;
            MDB_val qk, qd;

            memcpy(qkey, tval + 8, DEVICE_ID_LEN);
            qkey[DEVICE_ID_LEN] = iv[1 + DEVICE_ID_LEN];
            memcpy(qkey + DEVICE_ID_LEN + 1, iv + 2 + DEVICE_ID_LEN, 8);
            qk = val(qkey, sizeof(qkey));
            rc = mdb_get(s->txn, s->qindex, &qk, &qd);
            if (rc == MDB_NOTFOUND)
                rc = mdb_del(s->txn, s->byid, &ik, NULL);
            if (rc != 0) {
                r = mdb_to_verr(rc);
                goto out;
            }
        } else if (rc != MDB_NOTFOUND && rc != 0) {
            r = mdb_to_verr(rc);
            goto out;
        }
        if ((rc = mdb_cursor_del(cur, 0)) != 0) {
            r = mdb_to_verr(rc);
            goto out;
        }
        (*done)++;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        r = mdb_to_verr(rc);
        goto out;
    }
    r = 0;
out:
    mdb_cursor_close(cur);
    return r;
}

/*
 * Up to limit envelopes past expiry from dbi (`qexpiry`, or the legacy
 * `expiry` when legacy is set), oldest first: a queued one becomes an
 * EXPIRED audit record and a notice for its sender, a delivered one's
 * tombstone goes. *done counts the entries removed.
 */
static int expiry_sweep(struct store *s, MDB_dbi dbi, int legacy, uint64_t now, size_t limit,
                        void (*notify)(void *ctx, const uint8_t sender[DEVICE_ID_LEN]),
                        void *ctx, size_t *expired, size_t *done)
{
    MDB_cursor *cur = NULL;
    MDB_val k, d, ik, id;
    uint8_t xent[8 + IKEY_LEN], bkey[IKEY_LEN], ival[IVAL_LEN], nkey[NKEY_LEN], nval[NVAL_LEN];
    struct audit_record rec;
    int rc, r = VERR_INTERNAL;

    _Static_assert(XKEY_LEN == sizeof(xent) && QXKEY_LEN == 16, "expiry | recipient | id");
    *done = 0;
    if (limit == 0)
        return 0;
    if ((rc = mdb_cursor_open(s->txn, dbi, &cur)) != 0)
        return mdb_to_verr(rc);
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0 && *done < limit;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        const uint8_t *recipient, *eid;

        /* xent: expiry | recipient | id, from either layout */
        if (legacy ? k.mv_size != XKEY_LEN : k.mv_size != QXKEY_LEN || d.mv_size != IKEY_LEN) {
            r = VERR_STORE;
            goto out;
        }
        if (legacy) {
            memcpy(xent, k.mv_data, sizeof(xent));
        } else {
            memcpy(xent, k.mv_data, 8);
            memcpy(xent + 8, d.mv_data, IKEY_LEN);
        }
        if (rd64(xent) > now)
            break;
        recipient = xent + 8;
        eid = xent + 8 + DEVICE_ID_LEN;
        ids_key(bkey, recipient, eid);
        ik = val(bkey, IKEY_LEN);
        rc = mdb_get(s->txn, s->byid, &ik, &id);
        if (rc == 0 && id.mv_size == IVAL_LEN) {
            memcpy(ival, id.mv_data, sizeof(ival));
            r = unqueue(s, recipient, ival);
            if (r != 0 && r != VERR_UNKNOWN)
                goto out;
            if (r == 0) { /* still queued: it expired undelivered */
                /* The sender is told (DESIGN.md "Relay"): a notice queued for it. */
                memcpy(nkey, ival + 1, DEVICE_ID_LEN);
                memcpy(nkey + DEVICE_ID_LEN, eid, WIRE_ID_LEN);
                memcpy(nval, recipient, DEVICE_ID_LEN);
                nval[DEVICE_ID_LEN] = 0;
                nval[DEVICE_ID_LEN + 1] = WIRE_R_EXPIRED;
                be64(nval + DEVICE_ID_LEN + 2, now);
                ik = val(nkey, sizeof(nkey));
                id = val(nval, sizeof(nval));
                if ((rc = mdb_put(s->txn, s->nd, &ik, &id, 0)) != 0) {
                    r = mdb_to_verr(rc);
                    goto out;
                }
                audit_envelope(&rec, AUDIT_ENVELOPE_EXPIRED, now, ival + 1, 0, recipient, eid,
                               rd32(ival + 18 + DEVICE_ID_LEN), ival[1 + DEVICE_ID_LEN]);
                rec.reason = WIRE_R_EXPIRED;
                if ((r = store_audit_append(s, &rec)) != 0)
                    goto out;
                if (notify != NULL)
                    notify(ctx, ival + 1);
                (*expired)++;
            }
            ik = val(bkey, IKEY_LEN);
            if ((rc = mdb_del(s->txn, s->byid, &ik, NULL)) != 0) {
                r = mdb_to_verr(rc);
                goto out;
            }
        } else if (rc != MDB_NOTFOUND && rc != 0) {
            r = mdb_to_verr(rc);
            goto out;
        }
        if ((rc = mdb_cursor_del(cur, 0)) != 0) {
            r = mdb_to_verr(rc);
            goto out;
        }
        (*done)++;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        r = mdb_to_verr(rc);
        goto out;
    }
    r = 0;
out:
    mdb_cursor_close(cur);
    return r;
}

int store_sweep(struct store *s, uint64_t now, size_t limit,
                void (*notify)(void *ctx, const uint8_t sender[DEVICE_ID_LEN]), void *ctx,
                size_t *expired)
{
    size_t done = 0, swept = 0;
    int r = VERR_INTERNAL;

    *expired = 0;
    if (s->txn == NULL)
        return VERR_INTERNAL;
    /* envelopes: the legacy table first (empty once its entries have expired), then `qexpiry` */
    if ((r = expiry_sweep(s, s->expiry, 1, now, limit, notify, ctx, expired, &swept)) != 0)
        goto out;
    done += swept;
    if ((r = expiry_sweep(s, s->qexpiry, 0, now, limit > done ? limit - done : 0, notify, ctx,
                          expired, &swept)) != 0)
        goto out;
    done += swept;
    /* tombstones: the legacy table first (empty once its window has passed), then `dedupe` */
    if ((r = tomb_sweep(s, s->tomb, 1, now, limit > done ? limit - done : 0, &swept)) != 0)
        goto out;
    done += swept;
    r = tomb_sweep(s, s->dedupe, 0, now, limit > done ? limit - done : 0, &swept);
out:
    return r;
}

int store_fill_deliver(struct store *s, const uint8_t recipient[static DEVICE_ID_LEN],
                       struct store_cursor *cur, uint64_t now, size_t max_n, size_t max_bytes,
                       struct buf *out, size_t *n, int *more)
{
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    MDB_val k, d, dk;
    uint8_t qkey[QKEY_LEN];
    size_t save = buf_size(out), off = 0, bytes = 0, count = 0;
    int rc, r = VERR_INTERNAL;

    *n = 0;
    *more = 0;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return mdb_to_verr(rc);
    if ((rc = mdb_cursor_open(txn, s->qindex, &c)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if ((r = wire_batch_begin(out, WIRE_DELIVER, &off)) != 0)
        goto out;
    /* FLASH before IMMEDIATE before PRIORITY before ROUTINE, oldest first within each. */
    for (uint8_t p = 0; p < WIRE_PRECEDENCE_COUNT && !*more; p++) {
        memcpy(qkey, recipient, DEVICE_ID_LEN);
        qkey[DEVICE_ID_LEN] = p;
        if (cur->after[p] == UINT64_MAX)
            continue;
        be64(qkey + DEVICE_ID_LEN + 1, cur->after[p] + 1);
        k = val(qkey, sizeof(qkey));
        for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0;
             rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
            const uint8_t *kp = k.mv_data, *vp;
            struct wire_envelope e;

            if (k.mv_size != QKEY_LEN || memcmp(kp, recipient, DEVICE_ID_LEN) != 0 ||
                kp[DEVICE_ID_LEN] != p)
                break;
            dk = val(kp + DEVICE_ID_LEN + 1, QDKEY_LEN);
            if ((rc = mdb_get(txn, s->qdata, &dk, &d)) != 0) {
                r = rc == MDB_NOTFOUND ? VERR_STORE : mdb_to_verr(rc);
                goto out;
            }
            vp = d.mv_data;
            if (d.mv_size <= QVAL_FIXED || d.mv_size - QVAL_FIXED > WIRE_CT_MAX) {
                r = VERR_STORE;
                goto out;
            }
            /* FLASH and IMMEDIATE go alone; only they pass a full window (max_bytes 0). */
            if (count >= max_n || (count > 0 && bytes + (d.mv_size - QVAL_FIXED) > max_bytes) ||
                (count > 0 && p <= WIRE_IMMEDIATE) || (max_bytes == 0 && p > WIRE_IMMEDIATE)) {
                *more = 1;
                break;
            }
            cur->after[p] = rd64(kp + DEVICE_ID_LEN + 1);
            memcpy(e.id, vp, WIRE_ID_LEN);
            memcpy(e.peer, vp + WIRE_ID_LEN, DEVICE_ID_LEN);
            e.precedence = p;
            e.expiry = rd64(vp + WIRE_ID_LEN + DEVICE_ID_LEN);
            e.ct = vp + QVAL_FIXED;
            e.ct_len = (uint32_t)(d.mv_size - QVAL_FIXED);
            if (e.expiry <= now)
                continue; /* the sweeper turns it into a non-delivery notice */
            if ((r = wire_put_envelope(out, &e)) != 0)
                goto out;
            count++;
            bytes += e.ct_len;
            if (p <= WIRE_IMMEDIATE) {
                *more = 1; /* alone: whatever follows goes in the next DELIVER */
                break;
            }
        }
        if (rc != 0 && rc != MDB_NOTFOUND) {
            r = mdb_to_verr(rc);
            goto out;
        }
    }
    if (count == 0) {
        buf_truncate(out, save);
        r = 0;
        goto out;
    }
    if ((r = wire_batch_end(out, off, count)) != 0)
        goto out;
    *n = count;
    r = 0;
out:
    if (r != 0)
        buf_truncate(out, save);
    if (c != NULL)
        mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return r;
}

int store_fill_nd(struct store *s, const uint8_t sender[static DEVICE_ID_LEN],
                  struct store_cursor *cur, size_t max_n, struct buf *out, size_t *n, int *more)
{
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    MDB_val k, d;
    uint8_t nkey[NKEY_LEN];
    size_t save = buf_size(out), off = 0, count = 0;
    int rc, r = VERR_INTERNAL;

    *n = 0;
    *more = 0;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return mdb_to_verr(rc);
    if ((rc = mdb_cursor_open(txn, s->nd, &c)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if ((r = wire_batch_begin(out, WIRE_NON_DELIVERY, &off)) != 0)
        goto out;
    memcpy(nkey, sender, DEVICE_ID_LEN);
    memset(nkey + DEVICE_ID_LEN, 0, WIRE_ID_LEN);
    if (cur->nd_started)
        memcpy(nkey + DEVICE_ID_LEN, cur->nd_after, WIRE_ID_LEN);
    k = val(nkey, sizeof(nkey));
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data, *vp = d.mv_data;
        struct wire_nd nd;

        if (k.mv_size != NKEY_LEN || memcmp(kp, sender, DEVICE_ID_LEN) != 0)
            break;
        if (cur->nd_started && memcmp(kp + DEVICE_ID_LEN, cur->nd_after, WIRE_ID_LEN) == 0)
            continue; /* already sent: SET_RANGE lands on it */
        if (d.mv_size != NVAL_LEN) {
            r = VERR_STORE;
            goto out;
        }
        if (count >= max_n) {
            *more = 1;
            break;
        }
        memcpy(nd.id, kp + DEVICE_ID_LEN, WIRE_ID_LEN);
        memcpy(nd.recipient, vp, DEVICE_ID_LEN);
        nd.reason = (uint16_t)(((unsigned)vp[DEVICE_ID_LEN] << 8) | vp[DEVICE_ID_LEN + 1]);
        if (nd.reason > WIRE_R_MAX)
            nd.reason = WIRE_R_EXPIRED;
        if ((r = wire_put_nd(out, &nd)) != 0)
            goto out;
        memcpy(cur->nd_after, nd.id, WIRE_ID_LEN);
        cur->nd_started = 1;
        count++;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if (count == 0) {
        buf_truncate(out, save);
        r = 0;
        goto out;
    }
    if ((r = wire_batch_end(out, off, count)) != 0)
        goto out;
    *n = count;
    r = 0;
out:
    if (r != 0)
        buf_truncate(out, save);
    if (c != NULL)
        mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return r;
}

int store_dir_get(struct store *s, struct buf *out)
{
    MDB_txn *txn = NULL;
    MDB_val k = val(meta_dir, strlen(meta_dir)), d;
    int rc, r;

    if ((r = buf_init(out, WIRE_DIR_MAX, 0)) != 0)
        return r;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return mdb_to_verr(rc);
    if ((rc = mdb_get(txn, s->meta, &k, &d)) != 0)
        r = mdb_to_verr(rc);
    else
        r = buf_put_bytes(out, d.mv_data, d.mv_size);
    mdb_txn_abort(txn);
    if (r != 0)
        buf_free(out);
    return r;
}

/*
 * The directory history (PROTOCOL.md part 2 "Directory transfer"): every
 * installed directory by version, the newest STORE_DIR_HISTORY kept, so a
 * device holding one of them gets a delta, and one fetching it in pieces can
 * finish it after the relay moved on.
 */
static int dir_hist_put(struct store *s, const struct directory *dir)
{
    size_t len, n = 0;
    const uint8_t *p = dir_bytes(dir, &len);
    uint8_t kb[8];
    MDB_val k, d;
    MDB_cursor *c = NULL;
    MDB_stat st;
    int rc;

    be64(kb, dir_version(dir));
    k = val(kb, sizeof(kb));
    d = val(p, len);
    if ((rc = mdb_put(s->txn, s->dirhist, &k, &d, 0)) != 0)
        return mdb_to_verr(rc);
    if ((rc = mdb_stat(s->txn, s->dirhist, &st)) != 0)
        return mdb_to_verr(rc);
    if (st.ms_entries <= STORE_DIR_HISTORY)
        return 0;
    n = st.ms_entries - STORE_DIR_HISTORY;
    if ((rc = mdb_cursor_open(s->txn, s->dirhist, &c)) != 0)
        return mdb_to_verr(rc);
    /* Keys are big-endian versions: the oldest come first. */
    while (n-- > 0 && (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST)) == 0)
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
    mdb_cursor_close(c);
    return rc == 0 ? 0 : mdb_to_verr(rc);
}

int store_dir_hist_keep(struct store *s, const struct directory *dir)
{
    uint8_t kb[8];
    MDB_val k, d;
    int rc;

    if (s->txn == NULL)
        return VERR_INTERNAL;
    be64(kb, dir_version(dir));
    k = val(kb, sizeof(kb));
    if ((rc = mdb_get(s->txn, s->dirhist, &k, &d)) == 0)
        return 0;
    if (rc != MDB_NOTFOUND)
        return mdb_to_verr(rc);
    return dir_hist_put(s, dir);
}

int store_dir_hist_read(struct store *s, uint64_t version, size_t offset, size_t max,
                        struct buf *out, size_t *total)
{
    MDB_txn *txn = NULL;
    uint8_t kb[8];
    MDB_val k, d;
    int rc, r;

    *total = 0;
    be64(kb, version);
    k = val(kb, sizeof(kb));
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return mdb_to_verr(rc);
    if ((rc = mdb_get(txn, s->dirhist, &k, &d)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if (offset >= d.mv_size) {
        r = VERR_UNKNOWN;
        goto out;
    }
    *total = d.mv_size;
    if (max > d.mv_size - offset)
        max = d.mv_size - offset;
    r = buf_put_bytes(out, (const uint8_t *)d.mv_data + offset, max);
out:
    mdb_txn_abort(txn);
    return r;
}

int store_dir_put(struct store *s, const struct directory *dir)
{
    size_t len;
    const uint8_t *p = dir_bytes(dir, &len);
    MDB_val k = val(meta_dir, strlen(meta_dir)), d = val(p, len);
    struct buf cb = {0};
    int rc, r;

    if (s->txn == NULL)
        return VERR_INTERNAL;
    if ((rc = mdb_put(s->txn, s->meta, &k, &d, 0)) != 0)
        return mdb_to_verr(rc);
    if ((r = dir_hist_put(s, dir)) != 0)
        return r;
    /* Certificates are kept after later directories drop them, so the officer can
     * still name the post of a revoked device's records (PROTOCOL.md part 6). */
    for (size_t i = 0; i < dir_cert_count(dir); i++) {
        const struct cert *c = dir_cert_at(dir, i);
        uint8_t kb[8];

        be64(kb, c->serial);
        /* cert_encode initialises cb; it is freed before the next one. */
        if ((r = cert_encode(c, &cb)) != 0)
            return r;
        k = val(kb, sizeof(kb));
        d = val(buf_data(&cb), buf_size(&cb));
        rc = mdb_put(s->txn, s->certs, &k, &d, MDB_NOOVERWRITE);
        buf_free(&cb);
        if (rc != 0 && rc != MDB_KEYEXIST)
            return mdb_to_verr(rc);
    }
    return 0;
}

int store_prekeys_put(struct store *s, const uint8_t device[static DEVICE_ID_LEN],
                      const struct wire_signed_prekey *spk, const uint8_t *otk, size_t n,
                      const struct store_limits *lim, uint32_t *stored)
{
    uint8_t sval[SPK_LEN];
    MDB_cursor *c = NULL;
    MDB_val k = val(device, DEVICE_ID_LEN), d;
    size_t count = 0;
    int rc, r = VERR_INTERNAL;

    *stored = 0;
    if (s->txn == NULL)
        return VERR_INTERNAL;
    be32(sval, spk->id);
    memcpy(sval + 4, spk->pk, WIRE_PK_LEN);
    memcpy(sval + 4 + WIRE_PK_LEN, spk->sig, SIG_LEN);
    d = val(sval, sizeof(sval));
    if ((rc = mdb_put(s->txn, s->spk, &k, &d, 0)) != 0)
        return mdb_to_verr(rc);
    if ((rc = mdb_cursor_open(s->txn, s->otk, &c)) != 0)
        return mdb_to_verr(rc);
    rc = mdb_cursor_get(c, &k, &d, MDB_SET);
    if (rc == 0) {
        if ((rc = mdb_cursor_count(c, &count)) != 0) {
            r = mdb_to_verr(rc);
            goto out;
        }
    } else if (rc != MDB_NOTFOUND) {
        r = mdb_to_verr(rc);
        goto out;
    }
    for (size_t i = 0; i < n && count < lim->otk_max; i++) {
        k = val(device, DEVICE_ID_LEN);
        d = val(otk + i * WIRE_OTK_LEN, WIRE_OTK_LEN);
        rc = mdb_put(s->txn, s->otk, &k, &d, MDB_NODUPDATA);
        if (rc == MDB_KEYEXIST)
            continue; /* the same prekey uploaded twice is kept once */
        if (rc != 0) {
            r = mdb_to_verr(rc);
            goto out;
        }
        count++;
    }
    *stored = (uint32_t)count;
    r = 0;
out:
    mdb_cursor_close(c);
    return r;
}

int store_bundle_take(struct store *s, const uint8_t owner[static DEVICE_ID_LEN],
                      struct wire_signed_prekey *spk, int *has_otk, uint32_t *otk_id,
                      uint8_t otk_pk[static WIRE_PK_LEN], uint32_t *left)
{
    MDB_cursor *c = NULL;
    MDB_val k = val(owner, DEVICE_ID_LEN), d;
    size_t count = 0;
    int rc, r = VERR_INTERNAL;

    *has_otk = 0;
    *left = 0;
    if (s->txn == NULL)
        return VERR_INTERNAL;
    if ((rc = mdb_get(s->txn, s->spk, &k, &d)) != 0)
        return mdb_to_verr(rc);
    if (d.mv_size != SPK_LEN)
        return VERR_STORE;
    spk->id = rd32(d.mv_data);
    memcpy(spk->pk, (const uint8_t *)d.mv_data + 4, WIRE_PK_LEN);
    memcpy(spk->sig, (const uint8_t *)d.mv_data + 4 + WIRE_PK_LEN, SIG_LEN);
    if ((rc = mdb_cursor_open(s->txn, s->otk, &c)) != 0)
        return mdb_to_verr(rc);
    k = val(owner, DEVICE_ID_LEN);
    rc = mdb_cursor_get(c, &k, &d, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND) {
        r = 0;
        goto out;
    }
    if (rc != 0 || (rc = mdb_cursor_count(c, &count)) != 0 ||
        (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST_DUP)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if (d.mv_size != WIRE_OTK_LEN) {
        r = VERR_STORE;
        goto out;
    }
    *otk_id = rd32(d.mv_data);
    memcpy(otk_pk, (const uint8_t *)d.mv_data + 4, WIRE_PK_LEN);
    /* Handed out exactly once: deleted in the transaction that serves it (X3DH 3.2). */
    if ((rc = mdb_cursor_del(c, 0)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    *has_otk = 1;
    *left = (uint32_t)(count - 1);
    r = 0;
out:
    mdb_cursor_close(c);
    return r;
}

int store_otk_count(struct store *s, const uint8_t device[static DEVICE_ID_LEN], uint32_t *left)
{
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    MDB_val k = val(device, DEVICE_ID_LEN), d;
    size_t count = 0;
    int rc, r;

    *left = 0;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return mdb_to_verr(rc);
    if ((rc = mdb_get(txn, s->spk, &k, &d)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if ((rc = mdb_cursor_open(txn, s->otk, &c)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    k = val(device, DEVICE_ID_LEN);
    rc = mdb_cursor_get(c, &k, &d, MDB_SET);
    if (rc == 0)
        rc = mdb_cursor_count(c, &count);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        r = mdb_to_verr(rc);
        goto out;
    }
    *left = (uint32_t)count;
    r = 0;
out:
    if (c != NULL)
        mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return r;
}

/* ---- attachments (PROTOCOL.md part 2 "Attachments") ---- */

_Static_assert(AVAL_FIXED == 51 && AVAL_N == 49, "att value layout (PROTOCOL.md part 2 \"Storage\")");
_Static_assert(ACKEY_LEN == 20 && AXKEY_LEN == 24, "attc and attexp keys (PROTOCOL.md part 2)");

void store_att_totals(const struct store *s, uint64_t *count, uint64_t *bytes)
{
    *count = s->att_n;
    *bytes = s->att_bytes;
}

/* Checks an `att` value's layout; *info, recipients (n x DEVICE_ID_LEN) and their count. */
static int att_parse(const MDB_val *d, struct store_att *info, const uint8_t **rcpt, size_t *n)
{
    const uint8_t *p = d->mv_data;
    size_t cnt;

    if (d->mv_size < AVAL_FIXED)
        return VERR_STORE;
    cnt = ((size_t)p[AVAL_N] << 8) | p[AVAL_N + 1];
    if (d->mv_size != AVAL_FIXED + cnt * DEVICE_ID_LEN || cnt > WIRE_ATT_RCPT_MAX)
        return VERR_STORE;
    memcpy(info->sender, p, DEVICE_ID_LEN);
    info->ct_size = rd64(p + AVAL_CT_SIZE);
    info->c = rd32(p + AVAL_C);
    info->stored = rd32(p + AVAL_STORED);
    info->precedence = p[AVAL_PREC];
    info->expiry = rd64(p + AVAL_EXPIRY);
    info->accepted = rd64(p + AVAL_ACCEPTED);
    if (info->c == 0 || info->stored > info->c || info->precedence >= WIRE_PRECEDENCE_COUNT)
        return VERR_STORE;
    *rcpt = p + AVAL_FIXED;
    *n = cnt;
    return 0;
}

/* Ciphertext bytes of chunk i (PROTOCOL.md part 2 "Attachments"): 16400 but the last. */
static uint64_t att_chunk_len(uint64_t ct_size, uint32_t c, uint32_t i)
{
    return i + 1 < c ? WIRE_ATT_CHUNK_CT : ct_size - (uint64_t)WIRE_ATT_CHUNK_CT * (c - 1);
}

/* Chunk bytes of the first `stored` chunks. */
static uint64_t att_stored_bytes(const struct store_att *info)
{
    if (info->stored == 0)
        return 0;
    return (uint64_t)WIRE_ATT_CHUNK_CT * (info->stored - 1) +
           att_chunk_len(info->ct_size, info->c, info->stored - 1);
}

static int rcpt_index(const uint8_t *rcpt, size_t n, const uint8_t dev[static DEVICE_ID_LEN],
                      size_t *at)
{
    for (size_t k = 0; k < n; k++) {
        if (memcmp(rcpt + k * DEVICE_ID_LEN, dev, DEVICE_ID_LEN) == 0) {
            *at = k;
            return 1;
        }
    }
    return 0;
}

/* Adds (sign > 0) or releases an attachment's ct_size in dev's queued bytes; the count is unchanged. */
static int qstat_att(struct store *s, const uint8_t dev[static DEVICE_ID_LEN], int sign,
                     uint64_t size)
{
    uint64_t count, bytes;
    int r;

    if ((r = qstat_get(s, dev, &count, &bytes)) != 0)
        return r;
    if (sign > 0)
        bytes += size;
    else
        bytes = bytes > size ? bytes - size : 0;
    return qstat_put(s, dev, count, bytes);
}

static void att_audit(struct audit_record *rec, uint8_t event, uint64_t now, const uint8_t *device,
                      uint64_t serial, const uint8_t *peer, const uint8_t *att,
                      const struct store_att *info)
{
    audit_record_init(rec, event, now);
    memcpy(rec->device_id, device, DEVICE_ID_LEN);
    rec->cert_serial = serial;
    memcpy(rec->peer_id, peer, DEVICE_ID_LEN);
    memcpy(rec->envelope_id, att, WIRE_ID_LEN);
    /* --max-attachment is below 2^32 (relay/config.c) */
    rec->size = info->ct_size > UINT32_MAX ? UINT32_MAX : (uint32_t)info->ct_size;
    rec->precedence = info->precedence;
}

/*
 * Deletes an attachment: its chunks, expiry entry and record; releases the
 * queued bytes of the n recipients still pending.
 */
static int att_delete(struct store *s, const uint8_t att[static WIRE_ID_LEN],
                      const struct store_att *info, const uint8_t *rcpt, size_t n)
{
    uint8_t ckey[ACKEY_LEN], xkey[AXKEY_LEN];
    MDB_val k;
    int rc, r;

    memcpy(ckey, att, WIRE_ID_LEN);
    for (uint32_t i = 0; i < info->stored; i++) {
        be32(ckey + WIRE_ID_LEN, i);
        k = val(ckey, sizeof(ckey));
        if ((rc = mdb_del(s->txn, s->attc, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
            return mdb_to_verr(rc);
    }
    for (size_t j = 0; j < n; j++)
        if ((r = qstat_att(s, rcpt + j * DEVICE_ID_LEN, -1, info->ct_size)) != 0)
            return r;
    be64(xkey, info->expiry);
    memcpy(xkey + 8, att, WIRE_ID_LEN);
    k = val(xkey, sizeof(xkey));
    if ((rc = mdb_del(s->txn, s->attexp, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
        return mdb_to_verr(rc);
    k = val(att, WIRE_ID_LEN);
    if ((rc = mdb_del(s->txn, s->att, &k, NULL)) != 0)
        return mdb_to_verr(rc);
    s->att_n_txn = s->att_n_txn > 0 ? s->att_n_txn - 1 : 0;
    s->att_bytes_txn -= s->att_bytes_txn > att_stored_bytes(info) ? att_stored_bytes(info)
                                                                   : s->att_bytes_txn;
    return 0;
}

/* The same OPEN again (a resume), PROTOCOL.md part 2 "Attachments". */
static int att_same(const struct store_att *info, const uint8_t *rcpt, size_t n,
                    const uint8_t sender[static DEVICE_ID_LEN], const struct wire_attach *a,
                    uint64_t ttl)
{
    size_t at;

    if (memcmp(info->sender, sender, DEVICE_ID_LEN) != 0 || info->ct_size != a->ct_size ||
        info->c != a->c || info->precedence != a->precedence)
        return 0;
    /* the stored expiry is the effective one: the sent one, or the TTL cap below it */
    if (info->expiry != a->expiry &&
        !(info->expiry < a->expiry && info->expiry - info->accepted == ttl))
        return 0;
    /* recipients leave only once it is complete (ATTACH_DONE); until then the list is whole */
    if (info->stored < info->c)
        return n == a->n_rcpt && memcmp(rcpt, a->rcpt, n * DEVICE_ID_LEN) == 0;
    for (size_t j = 0; j < n; j++)
        if (!rcpt_index(a->rcpt, a->n_rcpt, rcpt + j * DEVICE_ID_LEN, &at))
            return 0;
    return 1;
}

int store_att_open(struct store *s, const uint8_t sender[static DEVICE_ID_LEN],
                   uint64_t sender_serial, const struct wire_attach *a, uint64_t ttl, uint64_t now,
                   const struct store_limits *lim, uint16_t *reason, uint32_t *stored)
{
    uint8_t xkey[AXKEY_LEN], *p;
    struct store_att info;
    struct audit_record rec;
    const uint8_t *rcpt;
    uint64_t count, bytes, expiry;
    size_t n;
    MDB_val k = val(a->att, WIRE_ID_LEN), d;
    int rc, r;

    *reason = WIRE_R_OK;
    *stored = 0;
    if (s->txn == NULL || a->n_rcpt == 0 || a->n_rcpt > WIRE_ATT_RCPT_MAX)
        return VERR_INTERNAL;
    rc = mdb_get(s->txn, s->att, &k, &d);
    if (rc == 0) {
        if ((r = att_parse(&d, &info, &rcpt, &n)) != 0)
            return r;
        if (!att_same(&info, rcpt, n, sender, a, ttl))
            *reason = WIRE_R_ID_CONFLICT;
        else if (info.expiry <= now)
            *reason = WIRE_R_EXPIRED; /* past its (capped) expiry, not swept yet */
        else
            *stored = info.stored;
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return mdb_to_verr(rc);
    /* every recipient's quota first: nothing is added unless all have room */
    for (size_t j = 0; j < a->n_rcpt; j++) {
        const uint8_t *to = a->rcpt + j * DEVICE_ID_LEN;

        if ((r = qstat_get(s, to, &count, &bytes)) != 0)
            return r;
        if (bytes + a->ct_size > lim->queue_max_bytes) {
            *reason = WIRE_R_QUEUE_FULL;
            audit_record_init(&rec, AUDIT_QUOTA_HIT, now);
            memcpy(rec.device_id, sender, DEVICE_ID_LEN);
            rec.cert_serial = sender_serial;
            memcpy(rec.peer_id, to, DEVICE_ID_LEN);
            memcpy(rec.envelope_id, a->att, WIRE_ID_LEN);
            rec.reason = WIRE_R_QUEUE_FULL;
            return store_audit_append(s, &rec);
        }
    }
    expiry = a->expiry - now > ttl ? now + ttl : a->expiry;
    k = val(a->att, WIRE_ID_LEN);
    d.mv_size = AVAL_FIXED + a->n_rcpt * DEVICE_ID_LEN;
    d.mv_data = NULL;
    if ((rc = mdb_put(s->txn, s->att, &k, &d, MDB_RESERVE)) != 0)
        return mdb_to_verr(rc);
    p = d.mv_data;
    memcpy(p, sender, DEVICE_ID_LEN);
    be64(p + AVAL_CT_SIZE, a->ct_size);
    be32(p + AVAL_C, a->c);
    be32(p + AVAL_STORED, 0);
    p[AVAL_PREC] = a->precedence;
    be64(p + AVAL_EXPIRY, expiry);
    be64(p + AVAL_ACCEPTED, now);
    p[AVAL_N] = (uint8_t)(a->n_rcpt >> 8);
    p[AVAL_N + 1] = (uint8_t)a->n_rcpt;
    memcpy(p + AVAL_FIXED, a->rcpt, a->n_rcpt * DEVICE_ID_LEN);
    be64(xkey, expiry);
    memcpy(xkey + 8, a->att, WIRE_ID_LEN);
    k = val(xkey, sizeof(xkey));
    d = val(NULL, 0);
    if ((rc = mdb_put(s->txn, s->attexp, &k, &d, 0)) != 0)
        return mdb_to_verr(rc);
    for (size_t j = 0; j < a->n_rcpt; j++)
        if ((r = qstat_att(s, a->rcpt + j * DEVICE_ID_LEN, 1, a->ct_size)) != 0)
            return r;
    s->att_n_txn++;
    return 0;
}

/* Rewrites the record's stored count (values are read-only in the map: copied, then put). */
static int att_set_stored(struct store *s, const uint8_t att[static WIRE_ID_LEN], const MDB_val *d,
                          uint32_t stored)
{
    uint8_t *copy;
    MDB_val k = val(att, WIRE_ID_LEN), nd;
    int rc;

    if ((copy = malloc(d->mv_size)) == NULL)
        return VERR_NOMEM;
    memcpy(copy, d->mv_data, d->mv_size);
    be32(copy + AVAL_STORED, stored);
    nd = val(copy, d->mv_size);
    rc = mdb_put(s->txn, s->att, &k, &nd, 0);
    free(copy);
    return mdb_to_verr(rc);
}

int store_att_put(struct store *s, const uint8_t sender[static DEVICE_ID_LEN],
                  uint64_t sender_serial, const struct wire_attach *a, uint64_t now,
                  uint16_t *reason)
{
    uint8_t ckey[ACKEY_LEN];
    struct store_att info;
    struct audit_record rec;
    const uint8_t *rcpt;
    uint8_t *copy;
    size_t n;
    MDB_val k = val(a->att, WIRE_ID_LEN), d, cd;
    int rc, r;

    *reason = WIRE_R_OK;
    if (s->txn == NULL)
        return VERR_INTERNAL;
    rc = mdb_get(s->txn, s->att, &k, &d);
    if (rc == MDB_NOTFOUND) {
        *reason = WIRE_R_ATTACHMENT_UNKNOWN;
        return 0;
    }
    if (rc != 0)
        return mdb_to_verr(rc);
    if ((r = att_parse(&d, &info, &rcpt, &n)) != 0)
        return r;
    if (memcmp(info.sender, sender, DEVICE_ID_LEN) != 0 || info.expiry <= now) {
        *reason = WIRE_R_ATTACHMENT_UNKNOWN;
        return 0;
    }
    if (a->i < info.stored)
        return 0; /* a duplicate: acknowledged again, not stored again */
    if (a->i != info.stored || a->i >= info.c ||
        a->ct_len != att_chunk_len(info.ct_size, info.c, a->i)) {
        *reason = WIRE_R_CHUNK_INVALID;
        return 0;
    }
    /* before any other write: d is valid until the next update */
    if ((r = att_set_stored(s, a->att, &d, a->i + 1)) != 0)
        return r;
    memcpy(ckey, a->att, WIRE_ID_LEN);
    be32(ckey + WIRE_ID_LEN, a->i);
    k = val(ckey, sizeof(ckey));
    cd = val(a->ct, a->ct_len);
    if ((rc = mdb_put(s->txn, s->attc, &k, &cd, MDB_NOOVERWRITE)) != 0)
        return mdb_to_verr(rc);
    s->att_bytes_txn += a->ct_len;
    if (a->i + 1 < info.c)
        return 0;
    /* complete: one record per recipient, in this transaction (appends write the map: a copy) */
    k = val(a->att, WIRE_ID_LEN);
    if ((rc = mdb_get(s->txn, s->att, &k, &d)) != 0)
        return mdb_to_verr(rc);
    if ((r = att_parse(&d, &info, &rcpt, &n)) != 0)
        return r;
    if ((copy = malloc(n * DEVICE_ID_LEN + 1)) == NULL)
        return VERR_NOMEM;
    memcpy(copy, rcpt, n * DEVICE_ID_LEN);
    r = 0;
    for (size_t j = 0; j < n && r == 0; j++) {
        att_audit(&rec, AUDIT_ATTACHMENT_ACCEPTED, now, sender, sender_serial,
                  copy + j * DEVICE_ID_LEN, a->att, &info);
        r = store_audit_append(s, &rec);
    }
    free(copy);
    return r;
}

int store_att_done(struct store *s, const uint8_t recipient[static DEVICE_ID_LEN],
                   uint64_t recipient_serial, const uint8_t att[static WIRE_ID_LEN], uint64_t now,
                   uint16_t *reason, uint32_t *c)
{
    struct store_att info;
    struct audit_record rec;
    const uint8_t *rcpt;
    uint8_t *copy = NULL;
    size_t n, at;
    MDB_val k = val(att, WIRE_ID_LEN), d;
    int rc, r = VERR_INTERNAL;

    *reason = WIRE_R_OK;
    *c = 0;
    if (s->txn == NULL)
        return VERR_INTERNAL;
    rc = mdb_get(s->txn, s->att, &k, &d);
    if (rc == MDB_NOTFOUND) {
        *reason = WIRE_R_ATTACHMENT_UNKNOWN;
        return 0;
    }
    if (rc != 0)
        return mdb_to_verr(rc);
    if ((r = att_parse(&d, &info, &rcpt, &n)) != 0)
        return r;
    if (info.expiry <= now || !rcpt_index(rcpt, n, recipient, &at)) {
        *reason = WIRE_R_ATTACHMENT_UNKNOWN;
        return 0;
    }
    if (info.stored < info.c) {
        *reason = WIRE_R_CHUNK_INVALID; /* it cannot hold every chunk yet */
        return 0;
    }
    *c = info.c;
    /* the record without this recipient (copied first: the map is read-only) */
    if ((copy = malloc(d.mv_size)) == NULL)
        return VERR_NOMEM;
    memcpy(copy, d.mv_data, AVAL_FIXED + at * DEVICE_ID_LEN);
    memcpy(copy + AVAL_FIXED + at * DEVICE_ID_LEN,
           (const uint8_t *)d.mv_data + AVAL_FIXED + (at + 1) * DEVICE_ID_LEN,
           (n - at - 1) * DEVICE_ID_LEN);
    copy[AVAL_N] = (uint8_t)((n - 1) >> 8);
    copy[AVAL_N + 1] = (uint8_t)(n - 1);
    if ((r = qstat_att(s, recipient, -1, info.ct_size)) != 0)
        goto out;
    att_audit(&rec, AUDIT_ATTACHMENT_DELIVERED, now, recipient, recipient_serial, info.sender, att,
              &info);
    if ((r = store_audit_append(s, &rec)) != 0)
        goto out;
    if (n == 1) {
        /* nobody left: the attachment and its chunks go in this transaction */
        r = att_delete(s, att, &info, NULL, 0);
        goto out;
    }
    k = val(att, WIRE_ID_LEN);
    d = val(copy, AVAL_FIXED + (n - 1) * DEVICE_ID_LEN);
    r = mdb_to_verr(mdb_put(s->txn, s->att, &k, &d, 0));
out:
    free(copy);
    return r;
}

int store_att_fetch(struct store *s, const uint8_t recipient[static DEVICE_ID_LEN],
                    const uint8_t att[static WIRE_ID_LEN], uint64_t now, uint32_t i,
                    struct buf *out, struct store_att *info)
{
    MDB_txn *txn = NULL;
    MDB_val k = val(att, WIRE_ID_LEN), d;
    struct wire_attach ch;
    uint8_t ckey[ACKEY_LEN];
    const uint8_t *rcpt;
    size_t n, at;
    int rc, r;

    memset(info, 0, sizeof(*info));
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return mdb_to_verr(rc);
    if ((rc = mdb_get(txn, s->att, &k, &d)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if ((r = att_parse(&d, info, &rcpt, &n)) != 0)
        goto out;
    /* one answer for unknown, not a recipient (or done) and expired */
    if (info->expiry <= now || !rcpt_index(rcpt, n, recipient, &at)) {
        memset(info, 0, sizeof(*info));
        r = VERR_UNKNOWN;
        goto out;
    }
    if (i >= info->stored) {
        r = 0;
        goto out;
    }
    memcpy(ckey, att, WIRE_ID_LEN);
    be32(ckey + WIRE_ID_LEN, i);
    k = val(ckey, sizeof(ckey));
    if ((rc = mdb_get(txn, s->attc, &k, &d)) != 0) {
        r = rc == MDB_NOTFOUND ? VERR_STORE : mdb_to_verr(rc);
        goto out;
    }
    if (d.mv_size != att_chunk_len(info->ct_size, info->c, i)) {
        r = VERR_STORE;
        goto out;
    }
    memset(&ch, 0, sizeof(ch));
    memcpy(ch.att, att, WIRE_ID_LEN);
    ch.i = i;
    ch.c = info->c;
    ch.ct = d.mv_data;
    ch.ct_len = (uint32_t)d.mv_size;
    r = wire_put_attach(out, WIRE_ATTACH_CHUNK, &ch);
out:
    mdb_txn_abort(txn);
    return r;
}

int store_att_sweep(struct store *s, uint64_t now, size_t limit,
                    void (*notify)(void *ctx, const uint8_t sender[DEVICE_ID_LEN]), void *ctx,
                    size_t *expired)
{
    MDB_cursor *cur = NULL;
    MDB_val k, d;
    uint8_t xkey[AXKEY_LEN], nkey[NKEY_LEN], nval[NVAL_LEN];
    struct store_att info;
    struct audit_record rec;
    const uint8_t *rcpt;
    uint8_t *copy = NULL;
    size_t n;
    int rc, r = VERR_INTERNAL;

    *expired = 0;
    if (s->txn == NULL)
        return VERR_INTERNAL;
    while (*expired < limit) {
        /* the first entry each time: the previous one was deleted */
        if ((rc = mdb_cursor_open(s->txn, s->attexp, &cur)) != 0)
            return mdb_to_verr(rc);
        rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
        if (rc == 0 && k.mv_size == AXKEY_LEN)
            memcpy(xkey, k.mv_data, sizeof(xkey));
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            break;
        if (rc != 0)
            return mdb_to_verr(rc);
        if (k.mv_size != AXKEY_LEN)
            return VERR_STORE;
        if (rd64(xkey) > now)
            break;
        k = val(xkey + 8, WIRE_ID_LEN);
        rc = mdb_get(s->txn, s->att, &k, &d);
        if (rc == MDB_NOTFOUND) { /* an index entry without its record: only it goes */
            k = val(xkey, sizeof(xkey));
            if ((rc = mdb_del(s->txn, s->attexp, &k, NULL)) != 0)
                return mdb_to_verr(rc);
            continue;
        }
        if (rc != 0)
            return mdb_to_verr(rc);
        if ((r = att_parse(&d, &info, &rcpt, &n)) != 0)
            return r;
        /* audit appends write the map: work on a copy of the recipients */
        if ((copy = malloc(n * DEVICE_ID_LEN + 1)) == NULL)
            return VERR_NOMEM;
        memcpy(copy, rcpt, n * DEVICE_ID_LEN);
        for (size_t j = 0; j < n; j++) {
            att_audit(&rec, AUDIT_ATTACHMENT_EXPIRED, now, info.sender, 0,
                      copy + j * DEVICE_ID_LEN, xkey + 8, &info);
            rec.reason = WIRE_R_EXPIRED;
            if ((r = store_audit_append(s, &rec)) != 0)
                goto out;
        }
        if (n > 0) {
            /* the sender is told, as for envelopes: one notice (key sender | id) */
            memcpy(nkey, info.sender, DEVICE_ID_LEN);
            memcpy(nkey + DEVICE_ID_LEN, xkey + 8, WIRE_ID_LEN);
            memcpy(nval, copy, DEVICE_ID_LEN);
            nval[DEVICE_ID_LEN] = 0;
            nval[DEVICE_ID_LEN + 1] = WIRE_R_EXPIRED;
            be64(nval + DEVICE_ID_LEN + 2, now);
            k = val(nkey, sizeof(nkey));
            d = val(nval, sizeof(nval));
            if ((rc = mdb_put(s->txn, s->nd, &k, &d, 0)) != 0) {
                r = mdb_to_verr(rc);
                goto out;
            }
        }
        if ((r = att_delete(s, xkey + 8, &info, copy, n)) != 0)
            goto out;
        if (n > 0 && notify != NULL)
            notify(ctx, info.sender);
        free(copy);
        copy = NULL;
        (*expired)++;
    }
    r = 0;
out:
    free(copy);
    return r;
}

/* ---- audit tree and checkpoints (PROTOCOL.md, part 6) ---- */

void store_set_checkpoint_fn(struct store *s, store_checkpoint_fn fn, void *ctx)
{
    s->cp_fn = fn;
    s->cp_ctx = ctx;
}

int store_audit_tree(const struct store *s, struct merkle_state *out)
{
    if (s->tree_err != 0)
        return s->tree_err;
    *out = s->tree;
    return 0;
}

int store_checkpoint_latest(struct store *s, uint64_t *size, struct buf *out)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, d;
    int rc, r;

    *size = 0;
    if ((r = buf_init(out, NOTE_MAX_LEN, 0)) != 0)
        return r;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if ((rc = mdb_cursor_open(txn, s->audit_cp, &cur)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if ((rc = mdb_cursor_get(cur, &k, &d, MDB_LAST)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if (k.mv_size != 8) {
        r = VERR_STORE;
        goto out;
    }
    *size = rd64(k.mv_data);
    r = buf_put_bytes(out, d.mv_data, d.mv_size);
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (r != 0)
        buf_free(out);
    return r;
}

struct record_reader {
    MDB_txn *txn;
    MDB_dbi audit;
    uint64_t bad;
};

/* merkle_leaf_fn: the RFC 9162 leaf hash of record index, hashed from the stored record. */
static int read_record_leaf(void *ctx, uint64_t index, uint8_t out[MERKLE_HASH_LEN])
{
    struct record_reader *rr = ctx;
    uint8_t kb[8];
    MDB_val k = val(kb, sizeof(kb)), d;
    int rc;

    rr->bad = index;
    be64(kb, index);
    if ((rc = mdb_get(rr->txn, rr->audit, &k, &d)) != 0)
        return rc == MDB_NOTFOUND ? VERR_STORE : mdb_to_verr(rc);
    if (d.mv_size != AUDIT_RECORD_LEN)
        return VERR_STORE;
    merkle_leaf_hash(out, d.mv_data, d.mv_size);
    return 0;
}

int store_audit_recompute(struct store *s, uint64_t at, uint8_t root_at[static MERKLE_HASH_LEN],
                          uint64_t size, uint8_t root[static MERKLE_HASH_LEN], uint64_t *bad)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, d;
    struct merkle_state st;
    uint8_t leaf[MERKLE_HASH_LEN];
    int rc, r = VERR_INTERNAL;

    *bad = 0;
    /*
     * Runs on the checker thread (relay/audit.c) beside the writer: nothing of
     * the writer's (audit_next) is read here; a size past the last record is
     * found by the pass itself, as a missing record.
     */
    if (at > size)
        return VERR_UNKNOWN;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return mdb_to_verr(rc);
    if ((rc = mdb_cursor_open(txn, s->audit, &cur)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    /* One pass in key order: the records are read sequentially, not looked up one by one. */
    merkle_state_init(&st);
    merkle_state_root(&st, root_at); /* the empty tree's root, if at is 0 */
    for (uint64_t i = 0; i < size; i++) {
        *bad = i;
        rc = mdb_cursor_get(cur, &k, &d, i == 0 ? MDB_FIRST : MDB_NEXT);
        if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size != 8 || rd64(k.mv_data) != i ||
                                               d.mv_size != AUDIT_RECORD_LEN))) {
            r = VERR_STORE; /* missing (a gap), or not a record */
            goto out;
        }
        if (rc != 0) {
            r = mdb_to_verr(rc);
            goto out;
        }
        merkle_leaf_hash(leaf, d.mv_data, d.mv_size);
        if ((r = merkle_state_append(&st, leaf)) != 0)
            goto out;
        if (i + 1 == at)
            merkle_state_root(&st, root_at);
    }
    merkle_state_root(&st, root);
    *bad = 0;
    r = 0;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return r;
}

int store_audit_proof(struct store *s, int inclusion, uint64_t a, uint64_t b,
                      struct merkle_proof *proof, uint8_t *rec)
{
    struct record_reader lr;
    uint8_t kb[8];
    MDB_val k, d;
    int rc, r;

    if (b > s->audit_next)
        return VERR_UNKNOWN;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &lr.txn)) != 0)
        return mdb_to_verr(rc);
    lr.audit = s->audit;
    lr.bad = 0;
    if (inclusion) {
        be64(kb, a);
        k = val(kb, sizeof(kb));
        if ((rc = mdb_get(lr.txn, s->audit, &k, &d)) != 0 || d.mv_size != AUDIT_RECORD_LEN) {
            r = rc != 0 ? mdb_to_verr(rc) : VERR_STORE;
            goto out;
        }
        memcpy(rec, d.mv_data, AUDIT_RECORD_LEN);
        r = merkle_inclusion_proof(proof, a, b, read_record_leaf, &lr);
    } else {
        r = merkle_consistency_proof(proof, a, b, read_record_leaf, &lr);
    }
out:
    mdb_txn_abort(lr.txn);
    return r;
}

/* ---- backup and restore (store.h; PROTOCOL.md part 2 "Backup and restore") ---- */

static const char meta_restore_pending[] = "restore_pending";

/* A new 0600 file "path.XXXXXX" beside path, its name in tmp. */
static int temp_beside(const char *path, char *tmp, size_t tmpsz, int *fd)
{
    int n = snprintf(tmp, tmpsz, "%s.XXXXXX", path);

    if (n < 0 || (size_t)n >= tmpsz)
        return VERR_TOO_LARGE;
    if ((*fd = mkstemp(tmp)) < 0)
        return errno == ENOSPC || errno == EDQUOT ? VERR_NOSPACE : VERR_IO;
    if (fchmod(*fd, 0600) != 0) {
        close(*fd);
        unlink(tmp);
        *fd = -1;
        return VERR_IO;
    }
    return 0;
}

/* The audit log's size (last key + 1) in an open transaction. */
static int audit_size_in(MDB_txn *txn, uint64_t *records)
{
    MDB_dbi dbi;
    MDB_cursor *cur = NULL;
    MDB_val k, d;
    int rc, r;

    *records = 0;
    if ((rc = mdb_dbi_open(txn, "audit", 0, &dbi)) != 0)
        return rc == MDB_NOTFOUND ? VERR_BAD_FORMAT : mdb_to_verr(rc);
    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
        return mdb_to_verr(rc);
    rc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
    if (rc == MDB_NOTFOUND)
        r = 0;
    else if (rc != 0)
        r = mdb_to_verr(rc);
    else if (k.mv_size != 8)
        r = VERR_BAD_FORMAT;
    else {
        *records = rd64(k.mv_data) + 1;
        r = 0;
    }
    mdb_cursor_close(cur);
    return r;
}

int store_backup(const char *dir, const char *out, uint64_t *records)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    char tmp[4096];
    int fd = -1, rc, r = VERR_INTERNAL, placed = 0;

    *records = 0;
    tmp[0] = '\0';
    if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 16)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    /* Read-only: a reader beside the running relay's writer (LMDB's MVCC). */
    if ((rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) != 0) {
        r = rc == ENOENT ? VERR_UNKNOWN : mdb_to_verr(rc);
        goto out;
    }
    if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    r = audit_size_in(txn, records);
    mdb_txn_abort(txn);
    txn = NULL;
    if (r != 0)
        goto out;
    if ((r = temp_beside(out, tmp, sizeof(tmp), &fd)) != 0) {
        tmp[0] = '\0';
        goto out;
    }
    /* One read transaction, free pages dropped: a consistent, compact snapshot. */
    if ((rc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if (fsync(fd) != 0) {
        r = VERR_IO;
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        r = VERR_IO;
        goto out;
    }
    fd = -1;
    if (rename(tmp, out) != 0) {
        r = VERR_IO;
        goto out;
    }
    placed = 1;
    r = file_fsync_parent(out);
out:
    if (fd >= 0)
        close(fd);
    if (!placed && tmp[0] != '\0')
        unlink(tmp);
    if (env != NULL)
        mdb_env_close(env);
    return r;
}

/* Copies the whole file from into fd. */
static int copy_file_to(const char *from, int fd)
{
    uint8_t chunk[65536];
    ssize_t n;
    int in, r = 0;

    if ((in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return errno == ENOENT ? VERR_UNKNOWN : VERR_IO;
    while ((n = read(in, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = VERR_IO;
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, chunk + off, (size_t)(n - off));

            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                r = errno == ENOSPC || errno == EDQUOT ? VERR_NOSPACE : VERR_IO;
                goto out;
            }
            off += w;
        }
    }
out:
    close(in);
    return r;
}

int store_restore(const char *dir, const char *from, uint64_t *records)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    MDB_val k, d;
    char target[4096], tmp[4096];
    uint8_t one = 1;
    int fd = -1, rc, r = VERR_INTERNAL, placed = 0;

    *records = 0;
    tmp[0] = '\0';
    if ((r = file_join(target, sizeof(target), dir, "data.mdb")) != 0)
        return r;
    if (file_exists(target))
        return VERR_EXISTS;
    if ((r = temp_beside(target, tmp, sizeof(tmp), &fd)) != 0) {
        tmp[0] = '\0';
        goto out;
    }
    if ((r = copy_file_to(from, fd)) != 0)
        goto out;
    if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 16)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    /* Nobody else can know the temporary name: no lock file beside it. */
    if ((rc = mdb_env_open(env, tmp, MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS, 0600)) != 0) {
        r = rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ? VERR_BAD_FORMAT : mdb_to_verr(rc);
        goto out;
    }
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    if ((r = audit_size_in(txn, records)) != 0)
        goto out;
    if ((rc = mdb_dbi_open(txn, "meta", 0, &meta)) != 0) {
        r = rc == MDB_NOTFOUND ? VERR_BAD_FORMAT : mdb_to_verr(rc);
        goto out;
    }
    k = val(meta_restore_pending, strlen(meta_restore_pending));
    d = val(&one, 1);
    if ((rc = mdb_put(txn, meta, &k, &d, 0)) != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    rc = mdb_txn_commit(txn); /* synced: LMDB's default full durability */
    txn = NULL;
    if (rc != 0) {
        r = mdb_to_verr(rc);
        goto out;
    }
    mdb_env_close(env);
    env = NULL;
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        r = VERR_IO;
        goto out;
    }
    fd = -1;
    if (file_exists(target)) { /* appeared meanwhile: never over a store */
        r = VERR_EXISTS;
        goto out;
    }
    if (rename(tmp, target) != 0) {
        r = VERR_IO;
        goto out;
    }
    placed = 1;
    r = file_fsync_parent(target);
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (env != NULL)
        mdb_env_close(env);
    if (fd >= 0)
        close(fd);
    if (!placed && tmp[0] != '\0')
        unlink(tmp);
    return r;
}

int store_restore_pending(struct store *s)
{
    MDB_txn *txn = NULL;
    MDB_val k = val(meta_restore_pending, strlen(meta_restore_pending)), d;
    int found = 0;

    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    found = mdb_get(txn, s->meta, &k, &d) == 0;
    mdb_txn_abort(txn);
    return found;
}

int store_restore_clear(struct store *s)
{
    MDB_val k = val(meta_restore_pending, strlen(meta_restore_pending));
    int rc;

    if (s->txn == NULL)
        return VERR_INTERNAL;
    rc = mdb_del(s->txn, s->meta, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : mdb_to_verr(rc);
}
