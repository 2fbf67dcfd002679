/*
 * lmdb_rewrite.c - plays a malicious relay operator for relay_rewrite.sh:
 * edits the queued envelopes in a STOPPED relay's LMDB (layout:
 * PROTOCOL.md, part 2 "Storage": `qdata` key seq u64, value id[16] .
 * sender[16] . expiry . accepted . ciphertext; `qindex` key recipient[16] .
 * precedence u8 . seq u64, empty value).
 *
 *   lmdb_rewrite DATA sender    FROM TO   every envelope sent by FROM now
 *                                         claims to come from TO
 *   lmdb_rewrite DATA recipient FROM TO   every envelope queued for FROM is
 *                                         moved into TO's queue
 *   lmdb_rewrite DATA spk       FROM TO   FROM's signed prekey record (`spk`:
 *                                         id u32 . spk[32] . signature[64])
 *                                         replaced by TO's (validly signed,
 *                                         but by another device)
 *   lmdb_rewrite DATA spk-zero  FROM TO   FROM's signed prekey replaced by a
 *                                         fresh random key, signature zeroed
 *                                         (TO unused)
 *   lmdb_rewrite DATA swap-type FROM TO   in every envelope sent by FROM, the
 *                                         end-to-end type byte (ciphertext
 *                                         byte 1, client/x3dh.h) swapped
 *                                         between ratchet (1) and prekey (2)
 *                                         message (TO unused); prints the new
 *                                         type(s): "ratchet" and/or "prekey"
 * FROM and TO are 32 hex digits (device ids). Prints the number rewritten;
 * exit 1 if none or on error. Test code only.
 */
#include <lmdb.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ID_LEN = 16, KEY_LEN = 16 + 1 + 8, DKEY_LEN = 8, VAL_MIN = 16 + 16 + 8 + 8, MAX_MOVE = 4096 };

static int hex_id(const char *s, uint8_t out[ID_LEN])
{
    if (strlen(s) != 2 * ID_LEN)
        return -1;
    for (size_t i = 0; i < ID_LEN; i++) {
        unsigned v = 0;
        for (size_t j = 0; j < 2; j++) {
            char c = s[2 * i + j];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else
                return -1;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* The relay hands out a substituted signed prekey for device `from`. */
static int rewrite_spk(const char *data, const uint8_t from[ID_LEN], const uint8_t to[ID_LEN],
                       int zero)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_val kf = {ID_LEN, (void *)(uintptr_t)from}, kt = {ID_LEN, (void *)(uintptr_t)to}, v;
    uint8_t rec[4 + 32 + 64];
    int rc = 1;

    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0 ||
        mdb_env_open(env, data, 0, 0600) != 0 || mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
        mdb_dbi_open(txn, "spk", 0, &dbi) != 0 || mdb_get(txn, dbi, zero ? &kf : &kt, &v) != 0 ||
        v.mv_size != sizeof(rec)) {
        fprintf(stderr, "lmdb_rewrite: no signed prekey to copy in %s\n", data);
        goto out;
    }
    memcpy(rec, v.mv_data, sizeof(rec));
    if (zero) {
        randombytes_buf(rec + 4, 32);
        memset(rec + 36, 0, 64);
    }
    v.mv_size = sizeof(rec);
    v.mv_data = rec;
    if (mdb_put(txn, dbi, &kf, &v, 0) != 0 || mdb_txn_commit(txn) != 0)
        goto out;
    txn = NULL;
    printf("1\n");
    rc = 0;
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (env != NULL)
        mdb_env_close(env);
    return rc;
}

int main(int argc, char **argv)
{
    static uint8_t keys[MAX_MOVE][KEY_LEN];
    uint8_t from[ID_LEN], to[ID_LEN];
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi dbi;
    MDB_val k, v;
    size_t n = 0, nkeys = 0;
    int by_sender, swap_type, rc = 1;
    unsigned swapped_to = 0; /* bit t: some envelope now has type t */

    if (argc != 5 || hex_id(argv[3], from) != 0 || hex_id(argv[4], to) != 0) {
        fprintf(stderr, "usage: lmdb_rewrite DATA sender|recipient|spk|spk-zero FROM TO\n");
        return 2;
    }
    if (strcmp(argv[2], "spk") == 0 || strcmp(argv[2], "spk-zero") == 0)
        return rewrite_spk(argv[1], from, to, strcmp(argv[2], "spk-zero") == 0);
    swap_type = strcmp(argv[2], "swap-type") == 0;
    if (strcmp(argv[2], "sender") != 0 && strcmp(argv[2], "recipient") != 0 && !swap_type)
        return 2;
    by_sender = strcmp(argv[2], "sender") == 0 || swap_type;
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0 ||
        mdb_env_open(env, argv[1], 0, 0600) != 0 || mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
        mdb_dbi_open(txn, by_sender ? "qdata" : "qindex", 0, &dbi) != 0 ||
        mdb_cursor_open(txn, dbi, &cur) != 0) {
        fprintf(stderr, "lmdb_rewrite: cannot open %s\n", argv[1]);
        goto out;
    }
    for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op) == 0; op = MDB_NEXT) {
        if (by_sender ? k.mv_size != DKEY_LEN || v.mv_size < VAL_MIN : k.mv_size != KEY_LEN)
            continue;
        if (by_sender && memcmp((uint8_t *)v.mv_data + 16, from, ID_LEN) == 0) {
            uint8_t *copy = malloc(v.mv_size);
            MDB_val nv = {v.mv_size, copy};
            if (copy == NULL)
                goto out;
            memcpy(copy, v.mv_data, v.mv_size);
            if (!swap_type)
                memcpy(copy + 16, to, ID_LEN);
            else if (v.mv_size > VAL_MIN + 1 && (copy[VAL_MIN + 1] == 1 || copy[VAL_MIN + 1] == 2))
                swapped_to |= 1u << (copy[VAL_MIN + 1] ^= 3); /* 1 <-> 2 */
            else {
                free(copy);
                continue;
            }
            if (mdb_cursor_put(cur, &k, &nv, MDB_CURRENT) != 0) {
                free(copy);
                goto out;
            }
            free(copy);
            n++;
        } else if (!by_sender && memcmp(k.mv_data, from, ID_LEN) == 0 && nkeys < MAX_MOVE) {
            memcpy(keys[nkeys++], k.mv_data, KEY_LEN);
        }
    }
    mdb_cursor_close(cur);
    cur = NULL;
    for (size_t i = 0; i < nkeys; i++) {
        MDB_val ok = {KEY_LEN, keys[i]}, nk, val;
        uint8_t newkey[KEY_LEN];
        uint8_t *copy;
        if (mdb_get(txn, dbi, &ok, &val) != 0 || (copy = malloc(val.mv_size + 1)) == NULL)
            goto out;
        memcpy(copy, val.mv_data, val.mv_size);
        memcpy(newkey, keys[i], KEY_LEN);
        memcpy(newkey, to, ID_LEN);
        nk.mv_size = KEY_LEN;
        nk.mv_data = newkey;
        val.mv_data = copy;
        if (mdb_del(txn, dbi, &ok, NULL) != 0 || mdb_put(txn, dbi, &nk, &val, 0) != 0) {
            free(copy);
            goto out;
        }
        free(copy);
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "lmdb_rewrite: no queued envelope matched\n");
        goto out;
    }
    if (mdb_txn_commit(txn) != 0)
        goto out;
    txn = NULL;
    if (swap_type) /* the new types, for the caller to check which way it went */
        printf("%s%s\n", (swapped_to & 2u) ? "ratchet" : "", (swapped_to & 4u) ? "prekey" : "");
    else
        printf("%zu\n", n);
    rc = 0;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (env != NULL)
        mdb_env_close(env);
    return rc;
}
