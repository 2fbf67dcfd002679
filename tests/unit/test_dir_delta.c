/*
 * test_dir_delta.c - directory deltas (lib/dir.h, PROTOCOL.md part 1
 * "Directory delta"): a delta rebuilds exactly the bytes the root signed; a
 * delta for another base, a truncated, flipped, padded or inconsistent one is
 * refused or rebuilds nothing that verifies.
 */
#include <sodium.h>

#include "dir.h"
#include "testutil.h"

enum { NOW = 1800000000, NCERTS = 6 };

static uint8_t org_sk[SIG_SK_LEN];
static struct orgpub org;
static struct cert pool[NCERTS + 2]; /* serials 1..NCERTS, then a re-signed 4 and a 7 */

static void make_cert(struct cert *c, uint64_t serial, const char *name)
{
    uint8_t sk[SIG_SK_LEN], dh_sk[32];
    struct buf b;

    memset(c, 0, sizeof(*c));
    c->serial = serial;
    memcpy(c->org_id, org.id, ORG_ID_LEN);
    randombytes_buf(c->device_id, DEVICE_ID_LEN);
    memcpy(c->person_id, c->device_id, PERSON_ID_LEN);
    c->person_id[0] |= 1;
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->post, sizeof(c->post), "JKT");
    snprintf(c->role, sizeof(c->role), "duty");
    crypto_sign_keypair(c->sign_pk, sk);
    randombytes_buf(dh_sk, sizeof(dh_sk));
    assert_int_equal(crypto_scalarmult_base(c->dh_pk, dh_sk), 0);
    c->not_before = NOW - 100;
    c->not_after = NOW + 86400;
    assert_int_equal(cert_sign(c, org_sk, &b), 0);
    buf_free(&b);
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    crypto_sign_keypair(org.pk, org_sk);
    snprintf(org.name, sizeof(org.name), "Ministry");
    orgpub_id(org.id, org.pk);
    for (int i = 0; i < NCERTS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "Person %d", i + 1);
        make_cert(&pool[i], (uint64_t)(i + 1), name);
    }
    pool[NCERTS] = pool[3];
    snprintf(pool[NCERTS].name, sizeof(pool[NCERTS].name), "Person 4 renamed");
    {
        struct buf b;
        assert_int_equal(cert_sign(&pool[NCERTS], org_sk, &b), 0);
        buf_free(&b);
    }
    make_cert(&pool[NCERTS + 1], 7, "Person 7");
    return 0;
}

static void sign_dir(uint64_t version, const struct cert *certs, size_t n,
                     const struct dir_revocation *revs, size_t nrevs, struct buf *out)
{
    assert_int_equal(
        dir_encode_sign(version, NOW, NOW + 7 * 86400, &org, certs, n, revs, nrevs, org_sk, out),
        0);
}

/* v1: serials 1..6, 5 revoked. v2: 2 gone, 4 re-signed, 7 added, 3 revoked too. */
static void two_versions(struct buf *v1, struct buf *v2)
{
    struct cert c1[NCERTS], c2[NCERTS];
    struct dir_revocation r[2];

    memcpy(c1, pool, sizeof(c1));
    memset(r, 0, sizeof(r));
    r[0].serial = 3;
    memcpy(r[0].device_id, pool[2].device_id, DEVICE_ID_LEN);
    r[0].revoked_at = NOW;
    r[1].serial = 5;
    memcpy(r[1].device_id, pool[4].device_id, DEVICE_ID_LEN);
    r[1].revoked_at = NOW - 50;
    sign_dir(1, c1, NCERTS, &r[1], 1, v1);
    c2[0] = pool[0];
    c2[1] = pool[2];
    c2[2] = pool[NCERTS];
    c2[3] = pool[4];
    c2[4] = pool[5];
    c2[5] = pool[NCERTS + 1];
    sign_dir(2, c2, NCERTS, r, 2, v2);
}

static void test_delta_rebuilds_signed_bytes(void **state)
{
    struct buf v1, v2, delta, out;
    struct directory *d = NULL;
    (void)state;

    two_versions(&v1, &v2);
    assert_int_equal(
        dir_delta_make(buf_data(&v1), buf_size(&v1), buf_data(&v2), buf_size(&v2), &delta), 0);
    assert_true(buf_size(&delta) < buf_size(&v2));
    assert_int_equal(
        dir_delta_apply(buf_data(&v1), buf_size(&v1), buf_data(&delta), buf_size(&delta), &out), 0);
    assert_int_equal(buf_size(&out), buf_size(&v2));
    assert_memory_equal(buf_data(&out), buf_data(&v2), buf_size(&v2));
    assert_int_equal(dir_parse_verify(buf_data(&out), buf_size(&out), &org, &d), 0);
    assert_int_equal(dir_version(d), 2);
    dir_free(d);
    buf_free(&out);
    /* Backwards works too (the relay never offers it; the device refuses rollback). */
    buf_free(&delta);
    assert_int_equal(
        dir_delta_make(buf_data(&v2), buf_size(&v2), buf_data(&v1), buf_size(&v1), &delta), 0);
    assert_int_equal(
        dir_delta_apply(buf_data(&v2), buf_size(&v2), buf_data(&delta), buf_size(&delta), &out), 0);
    assert_memory_equal(buf_data(&out), buf_data(&v1), buf_size(&v1));
    buf_free(&out);
    /* No change: the header and the signature alone. */
    buf_free(&delta);
    assert_int_equal(
        dir_delta_make(buf_data(&v1), buf_size(&v1), buf_data(&v1), buf_size(&v1), &delta), 0);
    assert_int_equal(buf_size(&delta), DIR_DELTA_FIXED);
    buf_free(&delta);
    buf_free(&v1);
    buf_free(&v2);
}

static void test_delta_other_base(void **state)
{
    struct buf v1, v2, delta, out;
    (void)state;

    two_versions(&v1, &v2);
    assert_int_equal(
        dir_delta_make(buf_data(&v1), buf_size(&v1), buf_data(&v2), buf_size(&v2), &delta), 0);
    /* Applied to a directory other than the one it was made from. */
    assert_int_equal(
        dir_delta_apply(buf_data(&v2), buf_size(&v2), buf_data(&delta), buf_size(&delta), &out),
        VERR_UNKNOWN);
    buf_free(&delta);
    buf_free(&v1);
    buf_free(&v2);
}

struct apply_ctx {
    const struct buf *base;
};

/* "Accepted" means: applied and the rebuilt directory verifies. */
static int apply_verify(const uint8_t *p, size_t len, void *ctx)
{
    const struct apply_ctx *a = ctx;
    struct buf out;
    struct directory *d = NULL;
    int r;

    if ((r = dir_delta_apply(buf_data(a->base), buf_size(a->base), p, len, &out)) != 0)
        return r;
    r = dir_parse_verify(buf_data(&out), buf_size(&out), &org, &d);
    dir_free(d);
    buf_free(&out);
    return r;
}

static void test_delta_mutations(void **state)
{
    struct buf v1, v2, delta;
    struct apply_ctx a = {&v1};
    (void)state;

    two_versions(&v1, &v2);
    assert_int_equal(
        dir_delta_make(buf_data(&v1), buf_size(&v1), buf_data(&v2), buf_size(&v2), &delta), 0);
    mutation_sweep(buf_data(&delta), buf_size(&delta), apply_verify, &a);
    buf_free(&delta);
    buf_free(&v1);
    buf_free(&v2);
}

/* Offsets in the delta of two_versions (PROTOCOL.md part 1 "Directory delta"). */
enum { D_REMOVED_COUNT = 4 + 1 + DIR_DELTA_HASH_LEN + DIR_DELTA_HEADER_LEN };

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static void test_delta_inconsistent(void **state)
{
    struct buf v1, v2, delta, out;
    uint8_t *m;
    size_t n;
    (void)state;

    two_versions(&v1, &v2);
    assert_int_equal(
        dir_delta_make(buf_data(&v1), buf_size(&v1), buf_data(&v2), buf_size(&v2), &delta), 0);
    n = buf_size(&delta);
    assert_non_null(m = malloc(n));
    /* Removed: serials 2 and 4 (4 re-signed). */
    memcpy(m, buf_data(&delta), n);
    assert_int_equal(m[D_REMOVED_COUNT + 3], 2);
    put_be(m + D_REMOVED_COUNT + 4, 8, 8); /* 2 -> 8: a serial the base does not hold */
    assert_int_equal(dir_delta_apply(buf_data(&v1), buf_size(&v1), m, n, &out), VERR_BAD_FORMAT);
    memcpy(m, buf_data(&delta), n);
    put_be(m + D_REMOVED_COUNT + 12, 1, 8); /* 4 -> 1: not increasing */
    assert_int_equal(dir_delta_apply(buf_data(&v1), buf_size(&v1), m, n, &out), VERR_BAD_FORMAT);
    memcpy(m, buf_data(&delta), n);
    put_be(m + D_REMOVED_COUNT + 12, 3, 8); /* 4 -> 3: the re-signed 4 lands on a kept 4 */
    assert_int_equal(dir_delta_apply(buf_data(&v1), buf_size(&v1), m, n, &out), VERR_BAD_FORMAT);
    memcpy(m, buf_data(&delta), n);
    put_be(m + D_REMOVED_COUNT, 0xffffffffu, 4); /* a count over the cap, before any allocation */
    assert_int_equal(dir_delta_apply(buf_data(&v1), buf_size(&v1), m, n, &out), VERR_TOO_LARGE);
    memcpy(m, buf_data(&delta), n);
    put_be(m + D_REMOVED_COUNT, 3000, 4); /* under the cap, more than the bytes left */
    assert_int_equal(dir_delta_apply(buf_data(&v1), buf_size(&v1), m, n, &out), VERR_TRUNCATED);
    free(m);
    buf_free(&delta);
    buf_free(&v1);
    buf_free(&v2);
}

/* A large organisation: one device added costs a few hundred bytes, not the directory. */
static void test_delta_small_for_one_change(void **state)
{
    enum { N = 2000 };
    struct cert *certs = calloc(N + 1, sizeof(*certs));
    struct buf v1, v2, delta, out;
    (void)state;

    assert_non_null(certs);
    for (size_t i = 0; i < N; i++) {
        certs[i] = pool[i % NCERTS];
        certs[i].serial = i + 1;
        assert_int_equal(cert_sign(&certs[i], org_sk, &out), 0);
        buf_free(&out);
    }
    sign_dir(1, certs, N, NULL, 0, &v1);
    certs[N] = pool[NCERTS + 1];
    certs[N].serial = N + 1;
    assert_int_equal(cert_sign(&certs[N], org_sk, &out), 0);
    buf_free(&out);
    sign_dir(2, certs, N + 1, NULL, 0, &v2);
    assert_int_equal(
        dir_delta_make(buf_data(&v1), buf_size(&v1), buf_data(&v2), buf_size(&v2), &delta), 0);
    if (buf_size(&delta) > 500)
        fail_msg("one device added: a %zu-byte delta (directory %zu bytes)", buf_size(&delta),
                 buf_size(&v2));
    assert_int_equal(
        dir_delta_apply(buf_data(&v1), buf_size(&v1), buf_data(&delta), buf_size(&delta), &out), 0);
    assert_memory_equal(buf_data(&out), buf_data(&v2), buf_size(&v2));
    buf_free(&out);
    buf_free(&delta);
    buf_free(&v1);
    buf_free(&v2);
    free(certs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delta_rebuilds_signed_bytes),
        cmocka_unit_test(test_delta_other_base),
        cmocka_unit_test(test_delta_mutations),
        cmocka_unit_test(test_delta_inconsistent),
        cmocka_unit_test(test_delta_small_for_one_change),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
