/* test_relaycert.c - relay certificate and handshake key files (lib/relaycert.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "fileio.h"
#include "relaycert.h"

enum { T0 = 1767225600 };

struct world {
    uint8_t org_sk[SIG_SK_LEN], other_sk[SIG_SK_LEN], hs_sk[SIG_SK_LEN];
    struct orgpub org, other;
    struct relaycert c;
    struct buf bytes;
};

static void make_org(struct orgpub *o, uint8_t sk[static SIG_SK_LEN])
{
    memset(o, 0, sizeof(*o));
    crypto_sign_keypair(o->pk, sk);
    memcpy(o->name, "Test", 5);
    orgpub_id(o->id, o->pk);
}

static int setup(void **state)
{
    static struct world w;

    if (sodium_init() < 0)
        return -1;
    memset(&w, 0, sizeof(w));
    make_org(&w.org, w.org_sk);
    make_org(&w.other, w.other_sk);
    w.c.issued_at = T0;
    memcpy(w.c.org_id, w.org.id, ORG_ID_LEN);
    memcpy(w.c.relay_id, "mfa-relay", 10);
    crypto_sign_keypair(w.c.pk, w.hs_sk);
    w.c.not_before = T0;
    w.c.not_after = T0 + 86400;
    if (relaycert_sign(&w.c, w.org_sk, &w.bytes) != 0)
        return -1;
    *state = &w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;

    buf_free(&w->bytes);
    return 0;
}

static void test_valid(void **state)
{
    struct world *w = *state;
    struct relaycert c;
    struct buf again;

    assert_int_equal(buf_size(&w->bytes), RELAYCERT_MAX_LEN - RELAY_ID_MAX + strlen("mfa-relay"));
    assert_memory_equal(buf_data(&w->bytes), "VRLC\x01", 5);
    assert_int_equal(relaycert_parse(buf_data(&w->bytes), buf_size(&w->bytes), &c), 0);
    assert_string_equal(c.relay_id, "mfa-relay");
    assert_memory_equal(c.pk, w->c.pk, SIG_PK_LEN);
    assert_int_equal(relaycert_verify(&c, &w->org, T0), 0);
    assert_int_equal(relaycert_verify(&c, &w->org, T0 + 86399), 0);
    /* canonical: re-encoding gives the same bytes */
    assert_int_equal(relaycert_encode(&c, &again), 0);
    assert_int_equal(buf_size(&again), buf_size(&w->bytes));
    assert_memory_equal(buf_data(&again), buf_data(&w->bytes), buf_size(&again));
    buf_free(&again);
}

static void test_validity_and_org(void **state)
{
    struct world *w = *state;
    struct relaycert c;
    struct buf b;

    assert_int_equal(relaycert_parse(buf_data(&w->bytes), buf_size(&w->bytes), &c), 0);
    assert_int_equal(relaycert_verify(&c, &w->org, T0 - 1), VERR_NOT_YET_VALID);
    assert_int_equal(relaycert_verify(&c, &w->org, T0 + 86400), VERR_EXPIRED);
    assert_int_equal(relaycert_verify(&c, &w->other, T0), VERR_WRONG_ORG);
    /* another root signing for this organisation's id */
    c = w->c;
    assert_int_equal(relaycert_sign(&c, w->other_sk, &b), 0);
    assert_int_equal(relaycert_parse(buf_data(&b), buf_size(&b), &c), 0);
    assert_int_equal(relaycert_verify(&c, &w->org, T0), VERR_BAD_SIGNATURE);
    buf_free(&b);
    /* the root's signature for another purpose (context valise/v1/device-cert) is refused */
    c = w->c;
    {
        struct buf body;
        assert_int_equal(buf_init(&body, RELAYCERT_MAX_LEN, 0), 0);
        assert_int_equal(relaycert_encode_body(&w->c, &body), 0);
        assert_int_equal(sig_sign(c.sig, SIG_CTX_CERT, buf_data(&body), buf_size(&body), w->org_sk),
                         0);
        assert_int_equal(relaycert_verify(&c, &w->org, T0), VERR_BAD_SIGNATURE);
        buf_free(&body);
    }
}

static void test_truncated_and_trailing(void **state)
{
    struct world *w = *state;
    struct relaycert c;
    uint8_t copy[RELAYCERT_MAX_LEN + 1];
    size_t n = buf_size(&w->bytes);

    for (size_t k = 0; k < n; k++)
        if (relaycert_parse(buf_data(&w->bytes), k, &c) == 0)
            fail_msg("cut to %zu of %zu bytes: expected an error, saw 0", k, n);
    memcpy(copy, buf_data(&w->bytes), n);
    copy[n] = 0;
    assert_int_equal(relaycert_parse(copy, n + 1, &c), VERR_TRAILING);
}

/* Every single-bit flip is refused by the parser or by the signature. */
static void test_every_bit_flipped(void **state)
{
    struct world *w = *state;
    struct relaycert c;
    uint8_t copy[RELAYCERT_MAX_LEN];
    size_t n = buf_size(&w->bytes);

    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(copy, buf_data(&w->bytes), n);
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (relaycert_parse(copy, n, &c) == 0 && relaycert_verify(&c, &w->org, T0) == 0)
            fail_msg("bit %zu flipped: expected refusal, the certificate verified", bit);
    }
}

static void test_field_rules(void **state)
{
    struct world *w = *state;
    struct relaycert c = w->c;
    struct buf b;

    assert_true(relaycert_valid_id("mfa-relay"));
    assert_true(relaycert_valid_id("relay_2.example"));
    assert_false(relaycert_valid_id(""));
    assert_false(relaycert_valid_id("evil relay"));
    assert_false(relaycert_valid_id("a+b"));
    assert_false(relaycert_valid_id("\xe2\x80\xae"));
    memset(c.relay_id, 'a', RELAY_ID_MAX);
    c.relay_id[RELAY_ID_MAX] = 0;
    assert_true(relaycert_valid_id(c.relay_id));
    assert_int_equal(relaycert_sign(&c, w->org_sk, &b), 0);
    assert_int_equal(buf_size(&b), RELAYCERT_MAX_LEN);
    buf_free(&b);
    /* not_after must follow not_before */
    c = w->c;
    c.not_after = c.not_before;
    assert_int_equal(relaycert_sign(&c, w->org_sk, &b), VERR_BAD_FORMAT);
    /* a relay id with a space, written by hand and correctly signed, does not parse */
    c = w->c;
    memcpy(c.relay_id, "mfa relay", 10);
    {
        uint8_t raw[RELAYCERT_MAX_LEN];
        size_t n = buf_size(&w->bytes);
        struct relaycert p;
        memcpy(raw, buf_data(&w->bytes), n);
        raw[5 + 8 + ORG_ID_LEN + 1 + 3] = ' '; /* "mfa-relay" -> "mfa relay" */
        assert_int_equal(relaycert_parse(raw, n, &p), VERR_BAD_FORMAT);
    }
    /* a small-order handshake key is refused */
    {
        uint8_t raw[RELAYCERT_MAX_LEN];
        size_t n = buf_size(&w->bytes), at = 5 + 8 + ORG_ID_LEN + 1 + strlen("mfa-relay");
        struct relaycert p;
        memcpy(raw, buf_data(&w->bytes), n);
        memset(raw + at, 0, SIG_PK_LEN);
        raw[at] = 1; /* the identity point, of order 1 */
        assert_int_equal(relaycert_parse(raw, n, &p), VERR_BAD_KEY);
    }
}

static void test_key_files(void **state)
{
    char dir[] = "/tmp/valise-relaycert-XXXXXX", path[256], pub_path[256];
    uint8_t pk[SIG_PK_LEN], pk2[SIG_PK_LEN], pk3[SIG_PK_LEN], sk[SIG_SK_LEN];
    struct buf pub, f;
    struct stat st;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/%s", dir, RELAYKEY_FILE);
    snprintf(pub_path, sizeof(pub_path), "%s/relay.pub", dir);
    assert_int_equal(relaykey_create(path, pk), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(relaykey_create(path, pk2), VERR_EXISTS); /* never overwritten */
    assert_int_equal(relaykey_load(path, sk, pk2), 0);
    assert_memory_equal(pk, pk2, SIG_PK_LEN);
    assert_int_equal(relaypub_encode(pk, &pub), 0);
    assert_int_equal(buf_size(&pub), RELAYPUB_FILE_LEN);
    assert_int_equal(relaypub_parse(buf_data(&pub), buf_size(&pub), pk3), 0);
    assert_memory_equal(pk, pk3, SIG_PK_LEN);
    assert_int_equal(relaypub_parse(buf_data(&pub), buf_size(&pub) - 1, pk3), VERR_TRUNCATED);
    /* a truncated key file is refused */
    assert_int_equal(file_read(path, RELAYKEY_FILE_LEN, BUF_SECRET, &f), 0);
    assert_int_equal(file_write_new(pub_path, buf_data(&f), buf_size(&f) - 1, 0600), 0);
    assert_int_equal(relaykey_load(pub_path, sk, pk3), VERR_TRUNCATED);
    buf_free(&f);
    buf_free(&pub);
    sodium_memzero(sk, sizeof(sk));
    unlink(pub_path);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_validity_and_org),
        cmocka_unit_test(test_truncated_and_trailing),
        cmocka_unit_test(test_every_bit_flipped),
        cmocka_unit_test(test_field_rules),
        cmocka_unit_test(test_key_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
