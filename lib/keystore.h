/*
 * keystore.h - secrets at rest under a passphrase.
 *
 * A keystore file holds one secret blob (the org root seed, or a device's
 * keys) encrypted with XChaCha20-Poly1305 under a key derived from the
 * passphrase with Argon2id (libargon2). Every header byte - including the
 * Argon2 parameters and salt - is the AEAD's associated data, so lowering the
 * parameters in the file makes decryption fail; parameters below the
 * production minimum (64 MiB, t=3) are refused before any work is done.
 * Format: PROTOCOL.md "Keystore". Errors: a wrong passphrase and a tampered
 * ciphertext are indistinguishable (VERR_DECRYPT).
 */
#ifndef VALISE_KEYSTORE_H
#define VALISE_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum ks_kind { KS_KIND_ORG = 1, KS_KIND_DEVICE = 2 };

enum {
    KS_VERSION = 1,
    KS_KDF_ARGON2ID = 1,
    KS_MIN_M_KIB = 65536,      /* 64 MiB */
    KS_MIN_T = 3,
    KS_MAX_M_KIB = 4194304,    /* 4 GiB: refuse files that would exhaust memory */
    KS_MAX_T = 64,
    KS_LANES = 1,
    KS_SALT_LEN = 16,
    KS_NONCE_LEN = 24,
    KS_TAG_LEN = 16,
    KS_MAX_SECRET = 4096,
    KS_HEADER_LEN = 4 + 1 + 1 + 1 + 4 + 4 + 4 + KS_SALT_LEN + KS_NONCE_LEN + 4,
    KS_MAX_FILE = KS_HEADER_LEN + KS_MAX_SECRET + KS_TAG_LEN,
};

struct ks_params {
    uint32_t m_kib;
    uint32_t t_cost;
    uint32_t lanes;
};

/* The production parameters: 64 MiB, t=3, one lane. */
void ks_params_default(struct ks_params *p);

/* Seals secret under pass into out (a new buffer). */
int ks_seal(struct buf *out, enum ks_kind kind, const struct ks_params *params, const char *pass,
            const uint8_t *secret, size_t len) VL_MUST_CHECK;
/*
 * Checks the structure of a keystore without the passphrase (magic, version,
 * kind, parameters within bounds, exact length). Cheap: used by the fuzzer.
 */
int ks_check(const uint8_t *file, size_t len, enum ks_kind kind) VL_MUST_CHECK;
/* Opens a keystore; secret is a new BUF_SECRET buffer holding the blob. */
int ks_open(const uint8_t *file, size_t len, enum ks_kind kind, const char *pass,
            struct buf *secret) VL_MUST_CHECK;

/*
 * ks_open in two steps, for a caller that opens one file many times (tests
 * of every mutation): derive the key once, then decrypt with it. The key is
 * secret; wipe it.
 */
int ks_derive_key(const uint8_t *file, size_t len, enum ks_kind kind, const char *pass,
                  uint8_t key[static 32]) VL_MUST_CHECK;
int ks_open_key(const uint8_t *file, size_t len, enum ks_kind kind, const uint8_t key[static 32],
                struct buf *secret) VL_MUST_CHECK;

/* File helpers: create with O_EXCL, mode 0600; read bounded. */
int ks_create_file(const char *path, enum ks_kind kind, const char *pass, const uint8_t *secret,
                   size_t len) VL_MUST_CHECK;
int ks_open_file(const char *path, enum ks_kind kind, const char *pass,
                 struct buf *secret) VL_MUST_CHECK;

#endif
