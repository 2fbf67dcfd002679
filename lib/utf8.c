/* utf8.c - strict UTF-8 and the safe-text rule (see utf8.h). */
#include "utf8.h"

int utf8_decode(const uint8_t *s, size_t len, size_t *pos, uint32_t *cp)
{
    size_t i = *pos, need;
    uint32_t v, min;
    uint8_t c;

    if (i >= len)
        return VERR_BAD_FORMAT;
    c = s[i];
    if (c < 0x80) {
        *cp = c;
        *pos = i + 1;
        return 0;
    }
    /* RFC 3629 section 4: lead bytes C2..F4 only (C0, C1 and F5..FF can only
     * start overlong or out-of-range forms). */
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        v = c & 0x1fu;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        v = c & 0x0fu;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        v = c & 0x07u;
        min = 0x10000;
    } else {
        return VERR_BAD_FORMAT;
    }
    if (need > len - i - 1)
        return VERR_BAD_FORMAT; /* truncated */
    for (size_t k = 1; k <= need; k++) {
        uint8_t t = s[i + k];

        if ((t & 0xc0) != 0x80)
            return VERR_BAD_FORMAT;
        v = (v << 6) | (t & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return VERR_BAD_FORMAT; /* overlong, out of range, surrogate */
    *cp = v;
    *pos = i + 1 + need;
    return 0;
}

int utf8_is_control(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c ||
           cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

int utf8_is_safe_text(const uint8_t *s, size_t len, unsigned flags)
{
    size_t pos = 0;
    uint32_t cp;

    while (pos < len) {
        if (utf8_decode(s, len, &pos, &cp) != 0)
            return 0;
        if (cp == 0x0a && (flags & UTF8_ALLOW_NEWLINE))
            continue;
        if (utf8_is_control(cp))
            return 0;
    }
    return 1;
}
