/* sha256.c - SHA-256 for the Merkle tree: OpenSSL's libcrypto, libsodium as fallback (see sha256.h). */
#include "sha256.h"

#include <pthread.h>
#include <stdatomic.h>

#include <openssl/evp.h>
#include <sodium.h>

_Static_assert(SHA256_LEN == crypto_hash_sha256_BYTES, "SHA-256 is 32 bytes");

static pthread_once_t sha_once = PTHREAD_ONCE_INIT;
static pthread_key_t sha_key;
static int sha_key_ok;
static EVP_MD *sha_md; /* fetched once; lives as long as the process */
static atomic_int sha_use = 1;

static void sha_ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void sha_init(void)
{
    sha_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    sha_key_ok = pthread_key_create(&sha_key, sha_ctx_free) == 0;
}

/* This thread's digest context, made on first use; NULL if libcrypto cannot give one. */
static EVP_MD_CTX *sha_ctx(void)
{
    EVP_MD_CTX *c;

    if (pthread_once(&sha_once, sha_init) != 0 || sha_md == NULL || !sha_key_ok)
        return NULL;
    if ((c = pthread_getspecific(sha_key)) != NULL)
        return c;
    if ((c = EVP_MD_CTX_new()) == NULL)
        return NULL;
    if (pthread_setspecific(sha_key, c) != 0) {
        EVP_MD_CTX_free(c);
        return NULL;
    }
    return c;
}

static int sha_libcrypto(uint8_t out[static SHA256_LEN], const uint8_t *a, size_t alen,
                         const uint8_t *b, size_t blen)
{
    EVP_MD_CTX *c = sha_ctx();
    unsigned int n = 0;

    if (c == NULL || EVP_DigestInit_ex2(c, sha_md, NULL) != 1 ||
        (alen > 0 && EVP_DigestUpdate(c, a, alen) != 1) ||
        (blen > 0 && EVP_DigestUpdate(c, b, blen) != 1) || EVP_DigestFinal_ex(c, out, &n) != 1 ||
        n != SHA256_LEN)
        return -1;
    return 0;
}

void sha256_two(uint8_t out[static SHA256_LEN], const uint8_t *a, size_t alen, const uint8_t *b,
                size_t blen)
{
    crypto_hash_sha256_state st;

    if (atomic_load_explicit(&sha_use, memory_order_relaxed) &&
        sha_libcrypto(out, a, alen, b, blen) == 0)
        return;
    crypto_hash_sha256_init(&st);
    if (alen > 0)
        crypto_hash_sha256_update(&st, a, alen);
    if (blen > 0)
        crypto_hash_sha256_update(&st, b, blen);
    crypto_hash_sha256_final(&st, out);
}

void sha256_use_libcrypto(int use)
{
    atomic_store(&sha_use, use != 0);
}
