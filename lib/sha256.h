/*
 * sha256.h - SHA-256 (FIPS 180-4) of public data for the audit log's Merkle
 * tree (lib/merkle.c): the x86 SHA extensions when the CPU has them,
 * libsodium's crypto_hash_sha256 otherwise.
 *
 * Contract:
 *  - sha256_two(out, a, alen, b, blen) = SHA-256(a || b), byte for byte what
 *    crypto_hash_sha256 gives for the concatenation; either part may be empty
 *    (NULL with length 0). out may alias neither input.
 *  - The choice of implementation is made once, from CPUID, and can only
 *    change the speed: tests/unit/test_sha256 checks every length 0..1100
 *    and random splits against libsodium, on whichever path this CPU takes
 *    and, when it has the extensions, on the libsodium path too.
 *  - For public data only (Merkle leaves and nodes): nothing is wiped.
 *  - No allocation, no failure.
 */
#ifndef VALISE_SHA256_H
#define VALISE_SHA256_H

#include <stddef.h>
#include <stdint.h>

enum { SHA256_LEN = 32 };

void sha256_two(uint8_t out[static SHA256_LEN], const uint8_t *a, size_t alen, const uint8_t *b,
                size_t blen);

/* 1 when sha256_two uses the CPU's SHA extensions (for tests and benchmarks). */
int sha256_accelerated(void);

/*
 * Tests only: 0 makes sha256_two use libsodium even on a CPU with the
 * extensions, 1 restores the CPUID choice.
 */
void sha256_allow_accel(int allow);

#endif
