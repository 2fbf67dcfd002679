/*
 * termsafe.h - showing text that came from someone else on a terminal
 * (issue 12, item 1): bodies, subjects, names, roles, posts, labels,
 * addresses, relay messages, audit fields.
 *
 * Contract:
 *  - Well-formed UTF-8 text passes through unchanged, except that every
 *    control a terminal acts on is replaced by a visible, inert escape made
 *    only of printable ASCII:
 *      C0 controls (U+0000..U+001F) and DEL (U+007F)   \xNN  (e.g. ESC: \x1b)
 *      C1 controls (U+0080..U+009F) and bidirectional
 *      controls (utf8_is_control, lib/utf8.h)           \u{NNNN} (e.g. \u{202e})
 *      each byte that is not well-formed UTF-8          \xNN  (NN >= 80)
 *    TERMSAFE_MULTILINE keeps newline (U+000A) and tab (U+0009) as they are
 *    (message bodies); without it they are escaped too (one-line fields).
 *  - So no escape sequence (CSI, OSC 52, ...), carriage return, backspace or
 *    bidi override from the input ever reaches the terminal.
 *  - termsafe_render never writes more than outsz bytes, always
 *    NUL-terminates (outsz > 0), never cuts an escape or a UTF-8 sequence in
 *    two; it returns VERR_TOO_LARGE when the input did not fit (what was
 *    written is still safe). TERMSAFE_LEN(n) bytes always hold n input bytes.
 *  - termsafe_is_text: 1 when s is well-formed UTF-8 without NUL, i.e. a
 *    body that can be shown (escaped); anything else is not written to a
 *    terminal at all (valise read --out FILE writes the exact bytes).
 */
#ifndef VALISE_TERMSAFE_H
#define VALISE_TERMSAFE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

enum {
    TERMSAFE_MULTILINE = 1 << 0, /* keep newline and tab */
};

/* The longest escape, "\u{NNNN}" (8) for a 2- or 3-byte sequence, is at most 4 per input byte. */
#define TERMSAFE_LEN(n) (4 * (size_t)(n) + 1)

int termsafe_render(char *out, size_t outsz, const uint8_t *s, size_t len,
                    unsigned flags) VL_MUST_CHECK;
/* A NUL-terminated one-line field into out (TERMSAFE_LEN(strlen(s)) bytes hold it); returns out. */
const char *termsafe_str(char *out, size_t outsz, const char *s);
/* Writes s[0..len) to f, escaped as above. VERR_IO if f fails. */
int termsafe_fwrite(FILE *f, const uint8_t *s, size_t len, unsigned flags) VL_MUST_CHECK;
int termsafe_is_text(const uint8_t *s, size_t len);

#endif
