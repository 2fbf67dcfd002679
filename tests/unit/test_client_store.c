/*
 * test_client_store.c - the client's encrypted store (client/store.h):
 * round trip, a marker in values never appears in the raw LMDB files, a
 * record swapped to another key or moved to another table fails to open, a
 * flipped byte fails, a wrong store key fails, and commits survive reopening.
 *
 * The tampering cases edit the raw LMDB file through liblmdb itself (the
 * attacker's view); that is the only reason this test includes lmdb.h.
 */
#include "testutil.h"

#include <lmdb.h>
#include <sodium.h>
#include <unistd.h>

#include "fileio.h"
#include "store.h"

static char home[64];
static uint8_t key[CSTORE_KEY_LEN];

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    memcpy(home, "/tmp/valise-cstore.XXXXXX", 26);
    if (mkdtemp(home) == NULL)
        return -1;
    randombytes_buf(key, sizeof(key));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
    return system(cmd) == 0 ? 0 : -1;
}

static const char marker[] = "MARKER-7f3a9c-plaintext-of-a-secret-telegram";

static void put(struct cstore *s, enum cstore_table t, const char *k, const char *v)
{
    assert_int_equal(cstore_begin(s, 1), 0);
    assert_int_equal(cstore_put(s, t, (const uint8_t *)k, strlen(k), (const uint8_t *)v, strlen(v)),
                     0);
    assert_int_equal(cstore_commit(s), 0);
}

static int get_is(struct cstore *s, enum cstore_table t, const char *k, const char *want)
{
    struct buf b;
    int r = cstore_get(s, t, (const uint8_t *)k, strlen(k), &b);
    if (r != 0)
        return r;
    r = buf_size(&b) == strlen(want) && memcmp(buf_data(&b), want, strlen(want)) == 0 ? 0 : -999;
    buf_free(&b);
    return r;
}

static void raw_file(struct buf *out)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/store/data.mdb", home);
    assert_int_equal(file_read(p, (size_t)64 << 20, 0, out), 0);
}

static void test_roundtrip_and_marker(void **state)
{
    struct cstore *s;
    struct buf raw;
    (void)state;

    assert_int_equal(cstore_open(&s, home, key), 0);
    put(s, CS_INBOX, "msg-1", marker);
    put(s, CS_SESSIONS, "peer-1", marker);
    assert_int_equal(get_is(s, CS_INBOX, "msg-1", marker), 0);
    assert_int_equal(get_is(s, CS_INBOX, "msg-2", marker), VERR_UNKNOWN);
    cstore_close(s);
    raw_file(&raw);
    assert_true(buf_size(&raw) > 0);
    /* The raw file holds neither the marker nor any 16-byte piece of it. */
    for (size_t i = 0; i + 16 <= sizeof(marker) - 1; i++)
        if (bytes_contain(buf_data(&raw), buf_size(&raw), (const uint8_t *)marker + i, 16))
            fail_msg("plaintext piece at offset %zu found in data.mdb", i);
    assert_false(bytes_contain(buf_data(&raw), buf_size(&raw), key, sizeof(key)));
    buf_free(&raw);
    /* Durable and readable after reopening. */
    assert_int_equal(cstore_open(&s, home, key), 0);
    assert_int_equal(get_is(s, CS_SESSIONS, "peer-1", marker), 0);
    cstore_close(s);
}

/* Raw LMDB surgery: copy the sealed value of (from_db, from) over (to_db, to). */
static void raw_copy(const char *from_db, const char *from, const char *to_db, const char *to)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi a, b;
    MDB_val k, v, k2;
    char dir[128];
    uint8_t *copy;

    snprintf(dir, sizeof(dir), "%s/store", home);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, from_db, 0, &a), 0);
    assert_int_equal(mdb_dbi_open(txn, to_db, 0, &b), 0);
    k.mv_data = (void *)(uintptr_t)from;
    k.mv_size = strlen(from);
    assert_int_equal(mdb_get(txn, a, &k, &v), 0);
    copy = malloc(v.mv_size);
    assert_non_null(copy);
    memcpy(copy, v.mv_data, v.mv_size);
    v.mv_data = copy;
    k2.mv_data = (void *)(uintptr_t)to;
    k2.mv_size = strlen(to);
    assert_int_equal(mdb_put(txn, b, &k2, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(copy);
}

static void raw_flip(const char *db, const char *k_, size_t at)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi a;
    MDB_val k, v;
    char dir[128];
    uint8_t *copy;

    snprintf(dir, sizeof(dir), "%s/store", home);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &a), 0);
    k.mv_data = (void *)(uintptr_t)k_;
    k.mv_size = strlen(k_);
    assert_int_equal(mdb_get(txn, a, &k, &v), 0);
    copy = malloc(v.mv_size);
    assert_non_null(copy);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[at % v.mv_size] ^= 0x01;
    v.mv_data = copy;
    assert_int_equal(mdb_put(txn, a, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(copy);
}

static void test_swapped_and_tampered(void **state)
{
    struct cstore *s;
    (void)state;

    assert_int_equal(cstore_open(&s, home, key), 0);
    put(s, CS_OUTBOX, "A", "message for A");
    put(s, CS_OUTBOX, "B", "message for B");
    put(s, CS_OUTBOX, "C", "message for C");
    cstore_close(s);
    /* B's sealed value placed under key A: bound to B's key, it must not open as A. */
    raw_copy("outbox", "B", "outbox", "A");
    /* C's sealed value moved into another table under the same key. */
    raw_copy("outbox", "C", "inbox", "C");
    raw_flip("outbox", "B", 30);
    assert_int_equal(cstore_open(&s, home, key), 0);
    assert_int_equal(get_is(s, CS_OUTBOX, "A", "message for B"), VERR_DECRYPT);
    assert_int_equal(get_is(s, CS_INBOX, "C", "message for C"), VERR_DECRYPT);
    assert_int_equal(get_is(s, CS_OUTBOX, "B", "message for B"), VERR_DECRYPT);
    assert_int_equal(get_is(s, CS_OUTBOX, "C", "message for C"), 0);
    cstore_close(s);
}

static int count_each(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    (void)k;
    (void)kl;
    (void)v;
    (void)vl;
    (*(int *)ctx)++;
    return 0;
}

static void test_wrong_key_and_abort(void **state)
{
    struct cstore *s;
    uint8_t other[CSTORE_KEY_LEN];
    int n = 0;
    (void)state;

    assert_int_equal(cstore_open(&s, home, key), 0);
    put(s, CS_CONFIG, "relay", "ws://127.0.0.1:1");
    /* An aborted transaction leaves nothing. */
    assert_int_equal(cstore_begin(s, 1), 0);
    assert_int_equal(cstore_put(s, CS_CONFIG, (const uint8_t *)"x", 1, (const uint8_t *)"y", 1), 0);
    cstore_abort(s);
    assert_int_equal(get_is(s, CS_CONFIG, "x", "y"), VERR_UNKNOWN);
    assert_int_equal(cstore_each(s, CS_CONFIG, count_each, &n), 0);
    assert_int_equal(n, 1);
    /* put outside a write transaction is a bug, not a silent write */
    assert_int_equal(cstore_put(s, CS_CONFIG, (const uint8_t *)"x", 1, (const uint8_t *)"y", 1),
                     VERR_INTERNAL);
    cstore_close(s);
    memcpy(other, key, sizeof(other));
    other[0] ^= 1;
    assert_int_equal(cstore_open(&s, home, other), 0);
    assert_int_equal(get_is(s, CS_CONFIG, "relay", "ws://127.0.0.1:1"), VERR_DECRYPT);
    cstore_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_marker),
        cmocka_unit_test(test_swapped_and_tampered),
        cmocka_unit_test(test_wrong_key_and_abort),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
