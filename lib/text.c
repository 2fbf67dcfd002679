/* text.c - base64, hex and decimal text (see text.h). */
#include "text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

int text_b64_encode(char *out, size_t outsz, const uint8_t *bin, size_t len)
{
    if (outsz < sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL))
        return VERR_TOO_LARGE;
    sodium_bin2base64(out, outsz, bin, len, sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

/* libsodium 1.0.18's decoder accepts some bytes >= 0x80 as base64 digits, so
 * the alphabet (RFC 4648 section 4) is checked here first. Not secret data
 * paths: the branch depends only on whether the text is well formed. */
static int b64_alphabet_ok(const char *s, size_t slen)
{
    for (size_t i = 0; i < slen; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '='))
            return 0;
    }
    return 1;
}

int text_b64_decode(uint8_t *out, size_t outmax, size_t *outlen, const char *s, size_t slen)
{
    const char *end = NULL;
    size_t n = 0;

    if (!b64_alphabet_ok(s, slen))
        return VERR_BAD_FORMAT;
    if (sodium_base642bin(out, outmax, s, slen, NULL, &n, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return VERR_BAD_FORMAT;
    if (end != s + slen)
        return VERR_TRAILING;
    *outlen = n;
    return 0;
}

int text_hex_encode(char *out, size_t outsz, const uint8_t *bin, size_t len)
{
    if (len > (SIZE_MAX - 1) / 2 || outsz < 2 * len + 1)
        return VERR_TOO_LARGE;
    sodium_bin2hex(out, outsz, bin, len);
    return 0;
}

int text_hex_decode(uint8_t *out, size_t len, const char *s)
{
    const char *end = NULL;
    size_t n = 0;
    size_t slen = strlen(s);

    if (slen != 2 * len)
        return VERR_BAD_FORMAT;
    if (sodium_hex2bin(out, len, s, slen, NULL, &n, &end) != 0 || n != len || end != s + slen)
        return VERR_BAD_FORMAT;
    return 0;
}

int text_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char *end = NULL;

    if (s == NULL || *s < '0' || *s > '9')
        return VERR_BAD_FORMAT;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return VERR_BAD_FORMAT;
    if (v < min || v > max)
        return VERR_BAD_FORMAT;
    *out = (uint64_t)v;
    return 0;
}
