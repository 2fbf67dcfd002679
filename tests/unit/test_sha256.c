/*
 * test_sha256.c - lib/sha256.h against FIPS 180-4's examples and against
 * libsodium's crypto_hash_sha256 for every length 0..1100 (every padding
 * case: the length field in the last block or in one of its own) with the
 * input split at every kind of point, through libcrypto and through the
 * libsodium fallback.
 */
#include <sodium.h>

#include "testutil.h"

#include "sha256.h"
#include "text.h"

enum { MAX_LEN = 1100 };

/* FIPS 180-2 appendix B.1 and B.2: one block and two blocks. */
static void test_fips_examples(void **state)
{
    static const char abc_hex[] =
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    static const char two_hex[] =
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
    static const char two[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    static const char empty_hex[] =
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    uint8_t want[SHA256_LEN], seen[SHA256_LEN];
    (void)state;

    for (int use = 1; use >= 0; use--) {
        sha256_use_libcrypto(use);
        assert_int_equal(text_hex_decode(want, sizeof(want), abc_hex), 0);
        sha256_two(seen, (const uint8_t *)"a", 1, (const uint8_t *)"bc", 2);
        assert_memory_equal(want, seen, SHA256_LEN);
        assert_int_equal(text_hex_decode(want, sizeof(want), two_hex), 0);
        sha256_two(seen, (const uint8_t *)two, strlen(two), NULL, 0);
        assert_memory_equal(want, seen, SHA256_LEN);
        assert_int_equal(text_hex_decode(want, sizeof(want), empty_hex), 0);
        sha256_two(seen, NULL, 0, NULL, 0);
        assert_memory_equal(want, seen, SHA256_LEN);
    }
    sha256_use_libcrypto(1);
}

/* Every length, split at 0, 1, the middle, 63, 64, 65 and the end: same as libsodium. */
static void test_against_libsodium(void **state)
{
    static uint8_t msg[MAX_LEN];
    uint8_t want[SHA256_LEN], seen[SHA256_LEN];
    (void)state;

    randombytes_buf_deterministic(msg, sizeof(msg),
                                  (const uint8_t *)"valise sha256 test vectors 32 b.");
    for (int use = 1; use >= 0; use--) {
        sha256_use_libcrypto(use);
        for (size_t len = 0; len <= MAX_LEN; len++) {
            size_t cuts[] = {0, 1, len / 2, 63, 64, 65, len};

            crypto_hash_sha256(want, msg, len);
            for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
                size_t a = cuts[i] > len ? len : cuts[i];

                sha256_two(seen, a > 0 ? msg : NULL, a, len > a ? msg + a : NULL, len - a);
                if (memcmp(want, seen, SHA256_LEN) != 0)
                    fail_msg("length %zu split at %zu (libcrypto %d): differs from libsodium",
                             len, a, use);
            }
        }
    }
    sha256_use_libcrypto(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips_examples),
        cmocka_unit_test(test_against_libsodium),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
