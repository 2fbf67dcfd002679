/*
 * test_hkdf.c - HKDF-SHA256 against RFC 5869 appendix A, test cases 1-3
 * (the SHA-256 cases), and the output-length bound.
 */
#include <sodium.h>

#include "testutil.h"

#include "hkdf.h"
#include "text.h"

struct rfc5869_case {
    const char *ikm, *salt, *info, *prk, *okm;
    size_t len;
};

/* RFC 5869, A.1 - A.3. */
static const struct rfc5869_case cases[] = {
    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c",
     "f0f1f2f3f4f5f6f7f8f9", "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865", 42},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
     "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
     "404142434445464748494a4b4c4d4e4f",
     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
     "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
     "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
     "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
     "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
     "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
     "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
     "cc30c58179ec3e87c14c01d5c1f3434f1d87",
     82},
    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
     "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8", 42},
};

static void unhex(uint8_t *out, size_t *len, const char *s)
{
    *len = strlen(s) / 2;
    assert_int_equal(text_hex_decode(out, *len, s), 0);
}

static void test_rfc5869_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t ikm[128], salt[128], info[128], prk[32], want_prk[32], okm[128], want[128];
        size_t ikm_len, salt_len, info_len, n;

        unhex(ikm, &ikm_len, cases[i].ikm);
        unhex(salt, &salt_len, cases[i].salt);
        unhex(info, &info_len, cases[i].info);
        unhex(want_prk, &n, cases[i].prk);
        unhex(want, &n, cases[i].okm);
        assert_int_equal(n, cases[i].len);

        hkdf_extract(prk, salt_len ? salt : NULL, salt_len, ikm, ikm_len);
        assert_memory_equal(prk, want_prk, 32);
        assert_int_equal(hkdf_expand(okm, n, prk, info, info_len), 0);
        assert_memory_equal(okm, want, n);
        memset(okm, 0, sizeof(okm));
        assert_int_equal(hkdf_sha256(okm, n, salt, salt_len, ikm, ikm_len, info, info_len), 0);
        assert_memory_equal(okm, want, n);
    }
}

static void test_output_length_bound(void **state)
{
    static uint8_t out[HKDF_MAX_OUT + 1];
    uint8_t prk[32] = {1};
    (void)state;
    assert_int_equal(hkdf_expand(out, HKDF_MAX_OUT, prk, NULL, 0), 0);
    assert_int_equal(hkdf_expand(out, HKDF_MAX_OUT + 1, prk, NULL, 0), VERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5869_vectors),
        cmocka_unit_test(test_output_length_bound),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
