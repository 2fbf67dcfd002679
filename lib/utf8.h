/*
 * utf8.h - strict UTF-8 decoding and the "safe text" rule for names and
 * subjects (PROTOCOL.md part 1, "Text fields").
 *
 * Contract:
 *  - utf8_decode reads exactly one well-formed scalar value (RFC 3629
 *    section 4): no overlong forms, no surrogates (U+D800..U+DFFF), nothing
 *    above U+10FFFF, no truncated sequence. It never reads past len.
 *  - utf8_is_safe_text accepts s only when all of it is well-formed UTF-8
 *    holding no C0 control (U+0000..U+001F), no DEL (U+007F), no C1 control
 *    (U+0080..U+009F) and no bidirectional control (U+061C, U+200E, U+200F,
 *    U+202A..U+202E, U+2066..U+2069), so that what one device writes cannot
 *    reorder or hide what another's terminal shows. Flags widen it.
 *  - Pure functions: no allocation, no state; safe on any bytes.
 */
#ifndef VALISE_UTF8_H
#define VALISE_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum {
    UTF8_ALLOW_NEWLINE = 1 << 0, /* also accept U+000A (multi-line text) */
};

/*
 * Decodes the scalar value at s[*pos] into *cp and advances *pos past it.
 * VERR_BAD_FORMAT (and *pos unchanged) if it is not well formed.
 */
int utf8_decode(const uint8_t *s, size_t len, size_t *pos, uint32_t *cp) VL_MUST_CHECK;
/* 1 if the code point is a C0, DEL, C1 or bidirectional control. */
int utf8_is_control(uint32_t cp);
/* 1 if s[0..len) is well-formed UTF-8 free of controls (see contract). */
int utf8_is_safe_text(const uint8_t *s, size_t len, unsigned flags);

#endif
