/*
 * fuzz_utf8.c - libFuzzer harness for the strict UTF-8 decoder and the
 * safe-text rule (lib/utf8.h). Checks, on any bytes: what decodes re-encodes
 * to the same bytes (one canonical form: no overlong, no surrogate, nothing
 * above U+10FFFF), and safe text holds exactly the decodable, control-free
 * inputs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t reencode(uint8_t out[4], uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    int all_ok = 1, any_control = 0;

    while (pos < size) {
        size_t before = pos, n;
        uint32_t cp;
        uint8_t again[4];

        if (utf8_decode(data, size, &pos, &cp) != 0) {
            if (pos != before)
                abort(); /* a refusal consumes nothing */
            all_ok = 0;
            break;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            abort();
        n = reencode(again, cp);
        if (n != pos - before || memcmp(again, data + before, n) != 0)
            abort(); /* not the one canonical encoding */
        any_control |= utf8_is_control(cp);
    }
    if (utf8_is_safe_text(data, size, 0) != (all_ok && !any_control))
        abort();
    return 0;
}
