/* store.c - the client's encrypted LMDB store (see store.h, PROTOCOL.md, part 4 "Store"). */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <sodium.h>

#include "fileio.h"
#include "hkdf.h"

enum {
    CS_NONCE_LEN = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
    CS_TAG_LEN = crypto_aead_xchacha20poly1305_ietf_ABYTES,
    CS_PATH_MAX = 4096,
};
_Static_assert(CS_NONCE_LEN == 24 && CS_TAG_LEN == 16, "XChaCha20-Poly1305 sizes");
_Static_assert(CSTORE_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");

#define CS_MAP_SIZE ((size_t)1 << 30)

static const char *const cs_names[CS_TABLES] = {
    "config", "sessions", "prekeys", "outbox", "envelopes", "inbox", "seen",
};

struct cstore {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi[CS_TABLES];
    uint8_t *keys; /* CS_TABLES subkeys, sodium_malloc'ed */
};

static int cs_err(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return VERR_UNKNOWN;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case ENOSPC:
    case EDQUOT:
        return VERR_NOSPACE;
    case ENOMEM:
        return VERR_NOMEM;
    case EIO:
        return VERR_IO;
    default:
        return VERR_STORE;
    }
}

void cstore_close(struct cstore *s)
{
    if (s == NULL)
        return;
    if (s->txn != NULL)
        mdb_txn_abort(s->txn);
    if (s->env != NULL)
        mdb_env_close(s->env);
    sodium_free(s->keys); /* wipes */
    free(s);
}

int cstore_open(struct cstore **out, const char *home,
                const uint8_t store_key[static CSTORE_KEY_LEN])
{
    static const uint8_t salt[] = "valise/v1/store";
    char dir[CS_PATH_MAX], info[64];
    struct cstore *s;
    MDB_txn *txn = NULL;
    int r = VERR_INTERNAL, rc;

    *out = NULL;
    if ((r = file_join(dir, sizeof(dir), home, "store")) != 0)
        return r;
    if ((r = file_mkdir_private(dir)) != 0)
        return r;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return VERR_NOMEM;
    if ((s->keys = sodium_malloc((size_t)CS_TABLES * CSTORE_KEY_LEN)) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    for (size_t t = 0; t < CS_TABLES; t++) {
        size_t n = strlen(cs_names[t]);
        memcpy(info, "valise/v1/store/", 16);
        memcpy(info + 16, cs_names[t], n);
        if ((r = hkdf_sha256(s->keys + t * CSTORE_KEY_LEN, CSTORE_KEY_LEN, salt, sizeof(salt) - 1,
                             store_key, CSTORE_KEY_LEN, (const uint8_t *)info, 16 + n)) != 0)
            goto out;
    }
    /* Durable commits: none of LMDB's no-sync or async flags (DESIGN.md). */
    if ((rc = mdb_env_create(&s->env)) != 0 || (rc = mdb_env_set_maxdbs(s->env, CS_TABLES)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, CS_MAP_SIZE)) != 0 ||
        (rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600)) != 0) {
        r = cs_err(rc);
        goto out;
    }
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        r = cs_err(rc);
        goto out;
    }
    for (size_t t = 0; t < CS_TABLES; t++) {
        if ((rc = mdb_dbi_open(txn, cs_names[t], MDB_CREATE, &s->dbi[t])) != 0) {
            mdb_txn_abort(txn);
            r = cs_err(rc);
            goto out;
        }
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        r = cs_err(rc);
        goto out;
    }
    *out = s;
    s = NULL;
    r = 0;
out:
    cstore_close(s);
    return r;
}

int cstore_begin(struct cstore *s, int write)
{
    if (s->txn != NULL)
        return VERR_INTERNAL;
    return cs_err(mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &s->txn));
}

int cstore_commit(struct cstore *s)
{
    int rc;

    if (s->txn == NULL)
        return VERR_INTERNAL;
    rc = mdb_txn_commit(s->txn);
    s->txn = NULL;
    return cs_err(rc);
}

void cstore_abort(struct cstore *s)
{
    if (s != NULL && s->txn != NULL) {
        mdb_txn_abort(s->txn);
        s->txn = NULL;
    }
}

static int cs_check(enum cstore_table t, size_t klen)
{
    if ((unsigned)t >= CS_TABLES || klen == 0 || klen > CSTORE_KEY_MAX)
        return VERR_USAGE;
    return 0;
}

/* AD = u8 table || key: a record is bound to where it is stored. */
static size_t cs_ad(uint8_t ad[static 1 + CSTORE_KEY_MAX], enum cstore_table t, const uint8_t *key,
                    size_t klen)
{
    ad[0] = (uint8_t)t;
    memcpy(ad + 1, key, klen);
    return 1 + klen;
}

int cstore_put(struct cstore *s, enum cstore_table t, const uint8_t *key, size_t klen,
               const uint8_t *val, size_t vlen)
{
    uint8_t ad[1 + CSTORE_KEY_MAX];
    MDB_val k, v;
    uint8_t *p;
    size_t adlen;
    int r, rc;

    if ((r = cs_check(t, klen)) != 0)
        return r;
    if (s->txn == NULL)
        return VERR_INTERNAL;
    if (vlen > CSTORE_VALUE_MAX)
        return VERR_TOO_LARGE;
    adlen = cs_ad(ad, t, key, klen);
    k.mv_data = (void *)(uintptr_t)key;
    k.mv_size = klen;
    v.mv_data = NULL;
    v.mv_size = CS_NONCE_LEN + vlen + CS_TAG_LEN;
    /* Seal straight into the page LMDB reserves: no plaintext copy outside. */
    if ((rc = mdb_put(s->txn, s->dbi[t], &k, &v, MDB_RESERVE)) != 0)
        return cs_err(rc);
    p = v.mv_data;
    randombytes_buf(p, CS_NONCE_LEN);
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(p + CS_NONCE_LEN, NULL, val, vlen, ad, adlen,
                                                   NULL, p,
                                                   s->keys + (size_t)t * CSTORE_KEY_LEN) != 0)
        return VERR_INTERNAL;
    return 0;
}

static int cs_open_value(struct cstore *s, enum cstore_table t, const MDB_val *k, const MDB_val *v,
                         struct buf *out)
{
    uint8_t ad[1 + CSTORE_KEY_MAX], *pt;
    const uint8_t *c = v->mv_data;
    size_t adlen, ptlen;
    int r;

    if (k->mv_size == 0 || k->mv_size > CSTORE_KEY_MAX || v->mv_size < CS_NONCE_LEN + CS_TAG_LEN)
        return VERR_DECRYPT;
    ptlen = v->mv_size - CS_NONCE_LEN - CS_TAG_LEN;
    adlen = cs_ad(ad, t, k->mv_data, k->mv_size);
    if ((r = buf_init(out, ptlen > 0 ? ptlen : 1, BUF_SECRET)) != 0)
        return r;
    if ((r = buf_reserve(out, ptlen, &pt)) != 0)
        goto fail;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, c + CS_NONCE_LEN,
                                                   v->mv_size - CS_NONCE_LEN, ad, adlen, c,
                                                   s->keys + (size_t)t * CSTORE_KEY_LEN) != 0) {
        r = VERR_DECRYPT;
        goto fail;
    }
    return 0;
fail:
    buf_free(out);
    return r;
}

/* Runs with the open transaction or a temporary read transaction. */
static int cs_txn(struct cstore *s, MDB_txn **txn, int *temp)
{
    *temp = 0;
    if (s->txn != NULL) {
        *txn = s->txn;
        return 0;
    }
    *temp = 1;
    return cs_err(mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn));
}

int cstore_get(struct cstore *s, enum cstore_table t, const uint8_t *key, size_t klen,
               struct buf *out)
{
    MDB_txn *txn;
    MDB_val k, v;
    int r, rc, temp;

    if ((r = cs_check(t, klen)) != 0)
        return r;
    if ((r = cs_txn(s, &txn, &temp)) != 0)
        return r;
    k.mv_data = (void *)(uintptr_t)key;
    k.mv_size = klen;
    if ((rc = mdb_get(txn, s->dbi[t], &k, &v)) != 0)
        r = cs_err(rc);
    else
        r = cs_open_value(s, t, &k, &v, out);
    if (temp)
        mdb_txn_abort(txn);
    return r;
}

int cstore_del(struct cstore *s, enum cstore_table t, const uint8_t *key, size_t klen)
{
    MDB_val k;
    int r;

    if ((r = cs_check(t, klen)) != 0)
        return r;
    if (s->txn == NULL)
        return VERR_INTERNAL;
    k.mv_data = (void *)(uintptr_t)key;
    k.mv_size = klen;
    return cs_err(mdb_del(s->txn, s->dbi[t], &k, NULL));
}

int cstore_each(struct cstore *s, enum cstore_table t, cstore_each_fn fn, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int r, rc, temp;

    if ((unsigned)t >= CS_TABLES)
        return VERR_USAGE;
    if ((r = cs_txn(s, &txn, &temp)) != 0)
        return r;
    if ((rc = mdb_cursor_open(txn, s->dbi[t], &cur)) != 0) {
        r = cs_err(rc);
        goto out;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct buf pt;
        if ((r = cs_open_value(s, t, &k, &v, &pt)) != 0)
            goto out;
        r = fn(ctx, k.mv_data, k.mv_size, buf_data(&pt), buf_size(&pt));
        buf_free(&pt);
        if (r != 0)
            goto out;
    }
    r = rc == MDB_NOTFOUND ? 0 : cs_err(rc);
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (temp)
        mdb_txn_abort(txn);
    return r;
}
