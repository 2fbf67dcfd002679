/*
 * sha256.h - SHA-256 (FIPS 180-4) of public data for the audit log's Merkle
 * tree (lib/merkle.c), two hashes per envelope on the relay's commit path.
 * Computed by OpenSSL's libcrypto (EVP), which uses the CPU's SHA extensions
 * where it has them (about 3 times libsodium's portable SHA-256 on an 82-byte
 * leaf: BENCHMARKS.md "Third round"); libsodium's crypto_hash_sha256 if
 * libcrypto fails (no digest context, an EVP call refusing).
 *
 * Contract:
 *  - sha256_two(out, a, alen, b, blen) = SHA-256(a || b), byte for byte what
 *    crypto_hash_sha256 gives for the concatenation; either part may be empty
 *    (NULL with length 0). out may alias neither input.
 *  - Thread-safe: each thread keeps its own digest context (freed when the
 *    thread ends).
 *  - For public data only (Merkle leaves and nodes): nothing is wiped.
 *  - Never fails.
 */
#ifndef VALISE_SHA256_H
#define VALISE_SHA256_H

#include <stddef.h>
#include <stdint.h>

enum { SHA256_LEN = 32 };

void sha256_two(uint8_t out[static SHA256_LEN], const uint8_t *a, size_t alen, const uint8_t *b,
                size_t blen);

/* Tests only: 0 makes sha256_two use libsodium (the fallback), 1 libcrypto again. */
void sha256_use_libcrypto(int use);

#endif
