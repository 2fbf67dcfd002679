/*
 * test_utf8.c - the strict UTF-8 decoder and the safe-text rule (lib/utf8.h):
 * every single byte, every code point encoded and decoded back, overlong
 * forms, surrogates, values above U+10FFFF, truncation at every length, and
 * each control class the names, subjects and labels must not carry.
 */
#include "testutil.h"

#include "utf8.h"

/* The test's own encoder (RFC 3629 section 3), independent of the decoder. */
static size_t enc(uint8_t out[4], uint32_t cp)
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

static int decodes(const uint8_t *s, size_t len, uint32_t *cp)
{
    size_t pos = 0;

    if (utf8_decode(s, len, &pos, cp) != 0)
        return 0;
    return pos == len;
}

static void test_single_bytes(void **state)
{
    (void)state;
    for (unsigned b = 0; b < 256; b++) {
        uint8_t s[1] = {(uint8_t)b};
        uint32_t cp = 0;
        int ok = decodes(s, 1, &cp), safe = utf8_is_safe_text(s, 1, 0);

        if (ok != (b < 0x80))
            fail_msg("byte %02x: expected %s, saw %s", b, b < 0x80 ? "decoded" : "refused",
                     ok ? "decoded" : "refused");
        if (safe != (b >= 0x20 && b < 0x7f))
            fail_msg("byte %02x: safe text expected %d, saw %d", b, b >= 0x20 && b < 0x7f, safe);
    }
    /* the newline flag admits U+000A and nothing else */
    assert_true(utf8_is_safe_text((const uint8_t *)"a\nb", 3, UTF8_ALLOW_NEWLINE));
    assert_false(utf8_is_safe_text((const uint8_t *)"a\nb", 3, 0));
    assert_false(utf8_is_safe_text((const uint8_t *)"a\rb", 3, UTF8_ALLOW_NEWLINE));
    assert_true(utf8_is_safe_text((const uint8_t *)"", 0, 0));
}

static void test_every_code_point(void **state)
{
    (void)state;
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        uint8_t s[4];
        size_t n = enc(s, cp);
        uint32_t back = 0;
        int surrogate = cp >= 0xd800 && cp <= 0xdfff, ok = decodes(s, n, &back);

        if (ok == surrogate)
            fail_msg("U+%04X: expected %s, saw %s", cp, surrogate ? "refused" : "decoded",
                     ok ? "decoded" : "refused");
        if (ok && back != cp)
            fail_msg("U+%04X decoded as U+%04X", cp, back);
        /* every proper prefix is truncated */
        for (size_t k = 1; k < n; k++)
            if (decodes(s, k, &back) || utf8_is_safe_text(s, k, 0))
                fail_msg("U+%04X cut to %zu bytes was accepted", cp, k);
        if (ok && utf8_is_safe_text(s, n, 0) == utf8_is_control(cp))
            fail_msg("U+%04X: safe text disagrees with the control classes", cp);
    }
}

static void test_malformed(void **state)
{
    static const struct {
        const char *what;
        uint8_t b[5];
        size_t n;
    } bad[] = {
        {"overlong NUL", {0xc0, 0x80}, 2},
        {"overlong '/'", {0xc1, 0xaf}, 2},
        {"overlong 3-byte", {0xe0, 0x80, 0xaf}, 3},
        {"overlong 3-byte max", {0xe0, 0x9f, 0xbf}, 3},
        {"overlong 4-byte", {0xf0, 0x80, 0x80, 0xaf}, 4},
        {"overlong 4-byte max", {0xf0, 0x8f, 0xbf, 0xbf}, 4},
        {"surrogate D800", {0xed, 0xa0, 0x80}, 3},
        {"surrogate DFFF", {0xed, 0xbf, 0xbf}, 3},
        {"above U+10FFFF", {0xf4, 0x90, 0x80, 0x80}, 4},
        {"lead F5", {0xf5, 0x80, 0x80, 0x80}, 4},
        {"lead FF", {0xff}, 1},
        {"lone continuation", {0x80}, 1},
        {"continuation missing", {0xc3, 0x41}, 2},
        {"5-byte form", {0xf8, 0x88, 0x80, 0x80, 0x80}, 5},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint32_t cp;
        size_t pos = 0;

        if (utf8_decode(bad[i].b, bad[i].n, &pos, &cp) == 0 && pos == bad[i].n)
            fail_msg("%s: expected refused, saw U+%04X", bad[i].what, cp);
        if (utf8_is_safe_text(bad[i].b, bad[i].n, 0))
            fail_msg("%s: accepted as safe text", bad[i].what);
    }
    /* a refused sequence leaves the position where it was */
    {
        size_t pos = 1;
        uint32_t cp;
        assert_int_equal(utf8_decode((const uint8_t *)"a\xc3", 2, &pos, &cp), VERR_BAD_FORMAT);
        assert_int_equal(pos, 1);
        assert_int_equal(utf8_decode((const uint8_t *)"a", 1, &pos, &cp), VERR_BAD_FORMAT);
    }
}

static void test_control_classes(void **state)
{
    static const uint32_t controls[] = {0x00, 0x09, 0x0a, 0x1b, 0x1f, 0x7f, 0x80, 0x85,
                                        0x9b, 0x9f, 0x061c, 0x200e, 0x200f, 0x202a, 0x202b,
                                        0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069};
    static const uint32_t fine[] = {0x20, 0x7e, 0xa0, 0xe9, 0x061b, 0x061d, 0x200d, 0x2010,
                                    0x2029, 0x202f, 0x2065, 0x206a, 0x4e2d, 0x1f600, 0x10ffff};
    (void)state;
    for (size_t i = 0; i < sizeof(controls) / sizeof(controls[0]); i++) {
        uint8_t s[8] = {'A'};
        size_t n = 1 + enc(s + 1, controls[i]);
        if (!utf8_is_control(controls[i]) || utf8_is_safe_text(s, n, 0))
            fail_msg("U+%04X: expected refused as a control", controls[i]);
    }
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        uint8_t s[8] = {'A'};
        size_t n = 1 + enc(s + 1, fine[i]);
        if (utf8_is_control(fine[i]) || !utf8_is_safe_text(s, n, 0))
            fail_msg("U+%04X: expected accepted", fine[i]);
    }
    /* a real name in three scripts */
    {
        static const char name[] = "Zo\xc3\xab \xd8\xb9\xd9\x84\xd9\x8a \xe7\x8e\x8b";
        assert_true(utf8_is_safe_text((const uint8_t *)name, sizeof(name) - 1, 0));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_bytes),
        cmocka_unit_test(test_every_code_point),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_control_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
