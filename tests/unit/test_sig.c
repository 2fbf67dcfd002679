/*
 * test_sig.c - context-bound signatures (lib/sig.h): round trip, and the
 * overflow guard of the context || 0x00 || body buffer at its exact boundary.
 */
#include <sodium.h>

#include "testutil.h"

#include "sig.h"
#include "sig_ctx.h"

static void test_sign_verify_roundtrip(void **state)
{
    uint8_t pk[SIG_PK_LEN], sk[SIG_SK_LEN], sig[SIG_LEN];
    static const uint8_t body[] = "note verbale";
    (void)state;
    crypto_sign_keypair(pk, sk);
    assert_int_equal(sig_sign(sig, SIG_CTX_MESSAGE, body, sizeof(body), sk), 0);
    assert_int_equal(sig_verify(sig, SIG_CTX_MESSAGE, body, sizeof(body), pk), 0);
    assert_int_equal(sig_verify(sig, SIG_CTX_PREKEY, body, sizeof(body), pk), VERR_BAD_SIGNATURE);
    assert_int_equal(sig_sign(sig, SIG_CTX_MESSAGE, NULL, 0, sk), 0);
    assert_int_equal(sig_verify(sig, SIG_CTX_MESSAGE, NULL, 0, pk), 0);
    sodium_memzero(sk, sizeof(sk));
}

/*
 * The buffer is clen + 1 + len + 1 bytes. At len = SIZE_MAX - clen - 1 that
 * sum wraps to 0: the guard must refuse it before any allocation or copy
 * (the body pointer here is far too short to be read that far).
 */
static void test_overflow_guard_boundary(void **state)
{
    static const uint8_t body[4] = {1, 2, 3, 4};
    uint8_t pk[SIG_PK_LEN], sk[SIG_SK_LEN], sig[SIG_LEN] = {0};
    size_t clen = strlen(SIG_CTX_MESSAGE), mlen = 0;
    uint8_t *m = NULL;
    (void)state;
    crypto_sign_keypair(pk, sk);
    assert_int_equal(sig_ctx_message(SIG_CTX_MESSAGE, body, SIZE_MAX - clen - 1, &m, &mlen),
                     VERR_TOO_LARGE);
    assert_null(m);
    assert_int_equal(sig_ctx_message(SIG_CTX_MESSAGE, body, SIZE_MAX - clen, &m, &mlen),
                     VERR_TOO_LARGE);
    assert_int_equal(sig_ctx_message(SIG_CTX_MESSAGE, body, SIZE_MAX, &m, &mlen),
                     VERR_TOO_LARGE);
    assert_int_equal(sig_sign(sig, SIG_CTX_MESSAGE, body, SIZE_MAX - clen - 1, sk),
                     VERR_TOO_LARGE);
    assert_int_equal(sig_verify(sig, SIG_CTX_MESSAGE, body, SIZE_MAX - clen - 1, pk),
                     VERR_TOO_LARGE);
    /* Just inside the bound the message is built exactly. */
    assert_int_equal(sig_ctx_message(SIG_CTX_MESSAGE, body, sizeof(body), &m, &mlen), 0);
    assert_int_equal(mlen, clen + 1 + sizeof(body));
    assert_memory_equal(m, SIG_CTX_MESSAGE, clen);
    assert_int_equal(m[clen], 0);
    assert_memory_equal(m + clen + 1, body, sizeof(body));
    sig_ctx_free(m, mlen);
    sodium_memzero(sk, sizeof(sk));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify_roundtrip),
        cmocka_unit_test(test_overflow_guard_boundary),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
