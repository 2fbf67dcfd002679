/* hkdf.c - HKDF-SHA256, RFC 5869 (see hkdf.h). */
#include "hkdf.h"

#include <string.h>

#include <sodium.h>

void hkdf_extract(uint8_t prk[static HKDF_HASH_LEN], const uint8_t *salt, size_t salt_len,
                  const uint8_t *ikm, size_t ikm_len)
{
    static const uint8_t zero_salt[HKDF_HASH_LEN];
    crypto_auth_hmacsha256_state st;

    /* RFC 5869 2.2: "if not provided, [salt] is set to a string of HashLen zeros". */
    if (salt == NULL || salt_len == 0) {
        salt = zero_salt;
        salt_len = sizeof(zero_salt);
    }
    crypto_auth_hmacsha256_init(&st, salt, salt_len);
    crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
    crypto_auth_hmacsha256_final(&st, prk);
    sodium_memzero(&st, sizeof(st));
}

int hkdf_expand(uint8_t *out, size_t out_len, const uint8_t prk[static HKDF_HASH_LEN],
                const uint8_t *info, size_t info_len)
{
    crypto_auth_hmacsha256_state st;
    uint8_t t[HKDF_HASH_LEN];
    size_t done = 0, n;
    uint8_t counter = 1;

    if (out_len > HKDF_MAX_OUT)
        return VERR_USAGE;
    /* RFC 5869 2.3: T(i) = HMAC(PRK, T(i-1) | info | i). */
    while (done < out_len) {
        crypto_auth_hmacsha256_init(&st, prk, HKDF_HASH_LEN);
        if (done > 0)
            crypto_auth_hmacsha256_update(&st, t, sizeof(t));
        if (info_len > 0)
            crypto_auth_hmacsha256_update(&st, info, info_len);
        crypto_auth_hmacsha256_update(&st, &counter, 1);
        crypto_auth_hmacsha256_final(&st, t);
        n = out_len - done < sizeof(t) ? out_len - done : sizeof(t);
        memcpy(out + done, t, n);
        done += n;
        counter++;
    }
    sodium_memzero(&st, sizeof(st));
    sodium_memzero(t, sizeof(t));
    return 0;
}

int hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
                const uint8_t *ikm, size_t ikm_len, const uint8_t *info, size_t info_len)
{
    uint8_t prk[HKDF_HASH_LEN];
    int r;

    hkdf_extract(prk, salt, salt_len, ikm, ikm_len);
    r = hkdf_expand(out, out_len, prk, info, info_len);
    sodium_memzero(prk, sizeof(prk));
    return r;
}
