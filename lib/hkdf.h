/*
 * hkdf.h - HKDF-SHA256 (RFC 5869) on libsodium's HMAC-SHA256.
 * libsodium 1.0.18 has no HKDF; this is the extract-then-expand construction
 * of RFC 5869 section 2, checked against its appendix A test cases.
 */
#ifndef VALISE_HKDF_H
#define VALISE_HKDF_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum { HKDF_HASH_LEN = 32, HKDF_MAX_OUT = 255 * HKDF_HASH_LEN };

/* RFC 5869 2.2: PRK = HMAC-SHA256(salt, IKM); an empty salt means 32 zero bytes. */
void hkdf_extract(uint8_t prk[static HKDF_HASH_LEN], const uint8_t *salt, size_t salt_len,
                  const uint8_t *ikm, size_t ikm_len);
/* RFC 5869 2.3: out_len <= 255*32, else VERR_USAGE and nothing written. */
int hkdf_expand(uint8_t *out, size_t out_len, const uint8_t prk[static HKDF_HASH_LEN],
                const uint8_t *info, size_t info_len) VL_MUST_CHECK;
/* Extract then expand; intermediate PRK wiped. */
int hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
                const uint8_t *ikm, size_t ikm_len, const uint8_t *info,
                size_t info_len) VL_MUST_CHECK;

#endif
