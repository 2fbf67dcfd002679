/* logdb.c - read-only access to the relay's LMDB (see logdb.h). */
#include "logdb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "note.h"
#include "wire.h"

struct alog {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi audit, cp, meta;
    int has_cp;
};

static int mdb_err(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return VERR_UNKNOWN;
    case ENOENT:
        return VERR_IO;
    case ENOMEM:
        return VERR_NOMEM;
    case EIO:
        return VERR_IO;
    default:
        return VERR_STORE;
    }
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;

    for (size_t i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

int alog_open(struct alog **out, const char *dir)
{
    struct alog *l = NULL;
    int rc, r = VERR_INTERNAL;

    *out = NULL;
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return VERR_NOMEM;
    if ((rc = mdb_env_create(&l->env)) != 0 || (rc = mdb_env_set_maxdbs(l->env, 16)) != 0) {
        r = mdb_err(rc);
        goto out;
    }
    /* Read-only: the auditor never writes the relay's data (issue 5). */
    if ((rc = mdb_env_open(l->env, dir, MDB_RDONLY, 0600)) != 0) {
        r = mdb_err(rc);
        goto out;
    }
    if ((rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &l->txn)) != 0) {
        l->txn = NULL;
        r = mdb_err(rc);
        goto out;
    }
    if ((rc = mdb_dbi_open(l->txn, "audit", 0, &l->audit)) != 0 ||
        (rc = mdb_dbi_open(l->txn, "meta", 0, &l->meta)) != 0) {
        r = rc == MDB_NOTFOUND ? VERR_BAD_MAGIC : mdb_err(rc); /* not a relay's data */
        goto out;
    }
    rc = mdb_dbi_open(l->txn, "audit_cp", 0, &l->cp);
    if (rc == 0)
        l->has_cp = 1;
    else if (rc != MDB_NOTFOUND) {
        r = mdb_err(rc);
        goto out;
    }
    *out = l;
    l = NULL;
    r = 0;
out:
    alog_close(l);
    return r;
}

void alog_close(struct alog *l)
{
    if (l == NULL)
        return;
    if (l->txn != NULL)
        mdb_txn_abort(l->txn);
    if (l->env != NULL)
        mdb_env_close(l->env);
    free(l);
}

int alog_each_record(struct alog *l, alog_record_fn fn, void *ctx, uint64_t *bad_index)
{
    MDB_cursor *c = NULL;
    MDB_val k, d;
    uint64_t next = 0;
    int rc, r = VERR_INTERNAL;

    *bad_index = 0;
    if ((rc = mdb_cursor_open(l->txn, l->audit, &c)) != 0)
        return mdb_err(rc);
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size != 8 || rd64(k.mv_data) != next) {
            *bad_index = next;
            r = VERR_BAD_FORMAT;
            goto out;
        }
        if ((r = fn(ctx, next, d.mv_data, d.mv_size)) != 0)
            goto out;
        next++;
    }
    r = rc == MDB_NOTFOUND ? 0 : mdb_err(rc);
out:
    mdb_cursor_close(c);
    return r;
}

int alog_each_checkpoint(struct alog *l, alog_checkpoint_fn fn, void *ctx)
{
    MDB_cursor *c = NULL;
    MDB_val k, d;
    int rc, r = VERR_INTERNAL;

    if (!l->has_cp)
        return 0;
    if ((rc = mdb_cursor_open(l->txn, l->cp, &c)) != 0)
        return mdb_err(rc);
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size != 8 || d.mv_size > NOTE_MAX_LEN) {
            r = VERR_BAD_FORMAT;
            goto out;
        }
        if ((r = fn(ctx, rd64(k.mv_data), d.mv_data, d.mv_size)) != 0)
            goto out;
    }
    r = rc == MDB_NOTFOUND ? 0 : mdb_err(rc);
out:
    mdb_cursor_close(c);
    return r;
}

int alog_each_cert(struct alog *l, alog_cert_fn fn, void *ctx)
{
    MDB_cursor *c = NULL;
    MDB_dbi certs;
    MDB_val k, d;
    int rc, r = VERR_INTERNAL;

    rc = mdb_dbi_open(l->txn, "certs", 0, &certs);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return mdb_err(rc);
    if ((rc = mdb_cursor_open(l->txn, certs, &c)) != 0)
        return mdb_err(rc);
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size != 8) {
            r = VERR_BAD_FORMAT;
            goto out;
        }
        if ((r = fn(ctx, d.mv_data, d.mv_size)) != 0)
            goto out;
    }
    r = rc == MDB_NOTFOUND ? 0 : mdb_err(rc);
out:
    mdb_cursor_close(c);
    return r;
}

int alog_directory(struct alog *l, struct buf *out)
{
    static const char name[] = "directory";
    MDB_val k = {.mv_size = sizeof(name) - 1, .mv_data = (void *)(uintptr_t)name}, d;
    int rc, r;

    if ((r = buf_init(out, WIRE_DIR_MAX, 0)) != 0)
        return r;
    if ((rc = mdb_get(l->txn, l->meta, &k, &d)) != 0)
        r = mdb_err(rc);
    else
        r = buf_put_bytes(out, d.mv_data, d.mv_size);
    if (r != 0)
        buf_free(out);
    return r;
}
