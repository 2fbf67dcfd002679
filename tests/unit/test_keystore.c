/*
 * test_keystore.c - keystore at rest (lib/keystore.h): round trip, wrong
 * passphrase, lowered and altered Argon2 parameters, wrong version and kind,
 * every bit flip and truncation, O_EXCL and 0600 on create.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "testutil.h"

#include "fileio.h"
#include "keystore.h"

static const char pass[] = "correct horse battery staple";
static const uint8_t secret[32] = {0x11, 0x22, 0x33, 0x44, 0x55};

enum { OFF_M = 7, OFF_T = 11, OFF_SALT = 19 };

static struct buf sealed;
static uint8_t cached_key[32];

static int setup(void **state)
{
    struct ks_params p;
    (void)state;
    ks_params_default(&p);
    if (ks_seal(&sealed, KS_KIND_ORG, &p, pass, secret, sizeof(secret)) != 0)
        return -1;
    return ks_derive_key(buf_data(&sealed), buf_size(&sealed), KS_KIND_ORG, pass, cached_key);
}

static int teardown(void **state)
{
    (void)state;
    buf_free(&sealed);
    return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_roundtrip(void **state)
{
    struct buf out;
    (void)state;
    assert_int_equal(buf_size(&sealed), KS_HEADER_LEN + sizeof(secret) + KS_TAG_LEN);
    assert_int_equal(ks_open(buf_data(&sealed), buf_size(&sealed), KS_KIND_ORG, pass, &out), 0);
    assert_int_equal(buf_size(&out), sizeof(secret));
    assert_memory_equal(buf_data(&out), secret, sizeof(secret));
    buf_free(&out);
    /* the secret does not appear in the file */
    assert_false(bytes_contain(buf_data(&sealed), buf_size(&sealed), secret, 5));
}

static void test_wrong_passphrase(void **state)
{
    struct buf out;
    (void)state;
    assert_int_equal(
        ks_open(buf_data(&sealed), buf_size(&sealed), KS_KIND_ORG, "correct horse battery", &out),
        VERR_DECRYPT);
    buf_free(&out);
}

static void test_lowered_parameters_refused(void **state)
{
    uint8_t f[256];
    struct buf out;
    struct ks_params weak = {KS_MIN_M_KIB / 2, KS_MIN_T, KS_LANES};
    size_t n = buf_size(&sealed);
    (void)state;
    /* refused at creation */
    assert_int_equal(ks_seal(&out, KS_KIND_ORG, &weak, pass, secret, sizeof(secret)),
                     VERR_WEAK_PARAMS);
    /* and in a file whose header was lowered: refused before any work */
    memcpy(f, buf_data(&sealed), n);
    put_be32(f + OFF_M, KS_MIN_M_KIB / 2);
    assert_int_equal(ks_open(f, n, KS_KIND_ORG, pass, &out), VERR_WEAK_PARAMS);
    buf_free(&out);
    memcpy(f, buf_data(&sealed), n);
    put_be32(f + OFF_T, KS_MIN_T - 1);
    assert_int_equal(ks_open(f, n, KS_KIND_ORG, pass, &out), VERR_WEAK_PARAMS);
    buf_free(&out);
    /* raised: the parameters are authenticated, so decryption fails */
    memcpy(f, buf_data(&sealed), n);
    put_be32(f + OFF_T, KS_MIN_T + 1);
    assert_int_equal(ks_open(f, n, KS_KIND_ORG, pass, &out), VERR_DECRYPT);
    buf_free(&out);
    /* absurd: refused as malformed, no 2^32 KiB allocation attempted */
    memcpy(f, buf_data(&sealed), n);
    put_be32(f + OFF_M, 0xffffffffu);
    assert_int_equal(ks_check(f, n, KS_KIND_ORG), VERR_BAD_FORMAT);
}

static void test_version_and_kind(void **state)
{
    uint8_t f[256];
    size_t n = buf_size(&sealed);
    (void)state;
    memcpy(f, buf_data(&sealed), n);
    f[4] = 2;
    assert_int_equal(ks_check(f, n, KS_KIND_ORG), VERR_BAD_VERSION);
    assert_int_equal(ks_check(buf_data(&sealed), n, KS_KIND_DEVICE), VERR_BAD_FORMAT);
    memcpy(f, buf_data(&sealed), n);
    f[0] = 'X';
    assert_int_equal(ks_check(f, n, KS_KIND_ORG), VERR_BAD_MAGIC);
}

/*
 * PROTOCOL.md "Keystore": 16 < c. A file whose ciphertext is the 16-byte tag
 * alone (an empty secret) is malformed; 17 bytes is the smallest accepted.
 */
static void test_ciphertext_length_boundary(void **state)
{
    uint8_t f[KS_HEADER_LEN + KS_TAG_LEN + 1];
    (void)state;
    memcpy(f, buf_data(&sealed), KS_HEADER_LEN);
    memset(f + KS_HEADER_LEN, 0xa5, sizeof(f) - KS_HEADER_LEN);
    put_be32(f + KS_HEADER_LEN - 4, KS_TAG_LEN);
    assert_int_equal(ks_check(f, KS_HEADER_LEN + KS_TAG_LEN, KS_KIND_ORG), VERR_BAD_FORMAT);
    put_be32(f + KS_HEADER_LEN - 4, KS_TAG_LEN + 1);
    assert_int_equal(ks_check(f, sizeof(f), KS_KIND_ORG), 0);
    put_be32(f + KS_HEADER_LEN - 4, 0);
    assert_int_equal(ks_check(f, KS_HEADER_LEN, KS_KIND_ORG), VERR_BAD_FORMAT);
}

static int open_with_cached_key(const uint8_t *p, size_t len, void *ctx)
{
    struct buf out;
    int r;
    (void)ctx;
    r = ks_open_key(p, len, KS_KIND_ORG, cached_key, &out);
    if (r == 0)
        buf_free(&out);
    return r;
}

static void test_every_mutation_rejected(void **state)
{
    (void)state;
    /* With the key derived once from the valid file: any change to the header
     * (authenticated as associated data) or ciphertext must fail. */
    mutation_sweep(buf_data(&sealed), buf_size(&sealed), open_with_cached_key, NULL);
}

static void test_salt_flip_fails_with_passphrase(void **state)
{
    uint8_t f[256];
    struct buf out;
    size_t n = buf_size(&sealed);
    (void)state;
    memcpy(f, buf_data(&sealed), n);
    f[OFF_SALT + 3] ^= 0x10;
    assert_int_equal(ks_open(f, n, KS_KIND_ORG, pass, &out), VERR_DECRYPT);
    buf_free(&out);
}

static void test_file_created_exclusive_private(void **state)
{
    char dir[] = "/tmp/valise-ks-XXXXXX", path[256], link[256];
    struct stat st;
    struct buf out;
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/org.key", dir);
    assert_int_equal(ks_create_file(path, KS_KIND_ORG, pass, secret, sizeof(secret)), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(ks_create_file(path, KS_KIND_ORG, pass, secret, sizeof(secret)), VERR_EXISTS);
    assert_int_equal(ks_open_file(path, KS_KIND_ORG, pass, &out), 0);
    assert_memory_equal(buf_data(&out), secret, sizeof(secret));
    buf_free(&out);
    /* a symlink is never followed */
    snprintf(link, sizeof(link), "%s/link.key", dir);
    assert_int_equal(symlink(path, link), 0);
    assert_int_not_equal(ks_open_file(link, KS_KIND_ORG, pass, &out), 0);
    buf_free(&out);
    unlink(link);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_wrong_passphrase),
        cmocka_unit_test(test_lowered_parameters_refused),
        cmocka_unit_test(test_version_and_kind),
        cmocka_unit_test(test_ciphertext_length_boundary),
        cmocka_unit_test(test_every_mutation_rejected),
        cmocka_unit_test(test_salt_flip_fails_with_passphrase),
        cmocka_unit_test(test_file_created_exclusive_private),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, setup, teardown);
}
