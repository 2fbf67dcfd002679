/*
 * testutil.h - helpers shared by the unit tests (test code only).
 *
 * mutation_sweep: STYLE.md habit 9. Every single-bit flip and every strict
 * truncation of a valid object must be rejected by its parser; a failing case
 * prints which mutation was accepted.
 */
#ifndef VALISE_TESTUTIL_H
#define VALISE_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <cmocka.h>

/* Returns 0 if the parser accepts the bytes. */
typedef int (*parse_fn)(const uint8_t *p, size_t len, void *ctx);

static inline void mutation_sweep(const uint8_t *valid, size_t len, parse_fn parse, void *ctx)
{
    uint8_t *m = malloc(len + 1);
    size_t accepted = 0;

    assert_non_null(m);
    assert_int_equal(parse(valid, len, ctx), 0);
    for (size_t i = 0; i < len; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            memcpy(m, valid, len);
            m[i] ^= (uint8_t)(1u << bit);
            if (parse(m, len, ctx) == 0) {
                fprintf(stderr, "accepted a flip of bit %u of byte %zu (of %zu)\n", bit, i, len);
                accepted++;
            }
        }
    }
    for (size_t n = 0; n < len; n++) {
        if (parse(valid, n, ctx) == 0) {
            fprintf(stderr, "accepted a truncation to %zu of %zu bytes\n", n, len);
            accepted++;
        }
    }
    memcpy(m, valid, len);
    m[len] = 0;
    if (parse(m, len + 1, ctx) == 0) {
        fprintf(stderr, "accepted a trailing byte\n");
        accepted++;
    }
    free(m);
    assert_int_equal(accepted, 0);
}

/* 1 if needle occurs in hay (for "no secret in the file" checks). */
static inline int bytes_contain(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    for (size_t i = 0; m <= n && i <= n - m; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

#endif
