/*
 * text.h - base64 and hex through libsodium's constant-time codecs
 * (sodium_bin2base64 / sodium_base642bin, sodium_bin2hex / sodium_hex2bin).
 * Decoders are strict: the whole input must decode, with no ignored
 * characters, to exactly the expected length where one is given.
 */
#ifndef VALISE_TEXT_H
#define VALISE_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Standard base64 with padding (RFC 4648 section 4). out is NUL-terminated. */
int text_b64_encode(char *out, size_t outsz, const uint8_t *bin, size_t len) VL_MUST_CHECK;
/* Decodes all of s (of length slen); *outlen receives the decoded length. */
int text_b64_decode(uint8_t *out, size_t outmax, size_t *outlen, const char *s,
                    size_t slen) VL_MUST_CHECK;
/* Lower-case hex. out is NUL-terminated, outsz >= 2*len+1. */
int text_hex_encode(char *out, size_t outsz, const uint8_t *bin, size_t len) VL_MUST_CHECK;
/* Exactly len bytes from exactly 2*len hex digits. */
int text_hex_decode(uint8_t *out, size_t len, const char *s) VL_MUST_CHECK;
/* Parse a whole decimal field into [min, max] (STYLE.md habit 2). */
int text_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) VL_MUST_CHECK;

#endif
