/* termsafe.c - text from others made harmless for a terminal (see termsafe.h). */
#include "termsafe.h"

#include <string.h>

#include <sodium.h>

#include "utf8.h"

/*
 * The rendering of the one item at s[*pos] (a scalar value or an invalid
 * byte) into item (at most 9 bytes with the NUL); advances *pos.
 */
static size_t termsafe_item(char item[static 16], const uint8_t *s, size_t len, size_t *pos,
                            unsigned flags)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = *pos, n;
    uint32_t cp;

    if (utf8_decode(s, len, pos, &cp) != 0) {
        /* Not well-formed: this one byte, shown as its value. */
        uint8_t b = s[start];
        *pos = start + 1;
        item[0] = '\\';
        item[1] = 'x';
        item[2] = hex[b >> 4];
        item[3] = hex[b & 15];
        return 4;
    }
    if ((flags & TERMSAFE_MULTILINE) && (cp == '\n' || cp == '\t')) {
        item[0] = (char)cp;
        return 1;
    }
    if (cp < 0x20 || cp == 0x7f) {
        item[0] = '\\';
        item[1] = 'x';
        item[2] = hex[cp >> 4];
        item[3] = hex[cp & 15];
        return 4;
    }
    if (utf8_is_control(cp)) {
        /* C1 and bidirectional controls: U+0080..U+2069, four hex digits. */
        item[0] = '\\';
        item[1] = 'u';
        item[2] = '{';
        item[3] = hex[(cp >> 12) & 15];
        item[4] = hex[(cp >> 8) & 15];
        item[5] = hex[(cp >> 4) & 15];
        item[6] = hex[cp & 15];
        item[7] = '}';
        return 8;
    }
    n = *pos - start;
    memcpy(item, s + start, n);
    return n;
}

int termsafe_render(char *out, size_t outsz, const uint8_t *s, size_t len, unsigned flags)
{
    size_t pos = 0, w = 0;

    if (outsz == 0)
        return VERR_TOO_LARGE;
    while (pos < len) {
        char item[16];
        size_t n = termsafe_item(item, s, len, &pos, flags);

        if (n > outsz - 1 - w) {
            out[w] = 0;
            return VERR_TOO_LARGE;
        }
        memcpy(out + w, item, n);
        w += n;
    }
    out[w] = 0;
    return 0;
}

const char *termsafe_str(char *out, size_t outsz, const char *s)
{
    /* A field that does not fit is cut at an item boundary: still safe to show. */
    if (termsafe_render(out, outsz, (const uint8_t *)s, strlen(s), 0) != 0) {
        /* cut short, still safe to show */
    }
    return out;
}

int termsafe_fwrite(FILE *f, const uint8_t *s, size_t len, unsigned flags)
{
    size_t pos = 0;

    while (pos < len) {
        char item[16];
        size_t n = termsafe_item(item, s, len, &pos, flags);
        size_t put = fwrite(item, 1, n, f);

        sodium_memzero(item, sizeof(item)); /* a body's plaintext (STYLE.md habit 5) */
        if (put != n)
            return VERR_IO;
    }
    return 0;
}

int termsafe_is_text(const uint8_t *s, size_t len)
{
    size_t pos = 0;
    uint32_t cp;

    while (pos < len) {
        if (utf8_decode(s, len, &pos, &cp) != 0 || cp == 0)
            return 0;
    }
    return 1;
}
