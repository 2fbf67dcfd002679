/*
 * test_termsafe.c - text from others shown on a terminal (lib/termsafe.h,
 * issue 12 item 1): each class of control, byte by byte, as it is rendered;
 * nothing a terminal acts on survives; buffers never overrun.
 */
#include "testutil.h"

#include <stdio.h>

#include "termsafe.h"
#include "utf8.h"

/* 1 if s is well-formed UTF-8 whose only controls are newline and tab. */
static int utf8_safe_multiline(const char *s)
{
    size_t pos = 0, len = strlen(s);
    uint32_t cp;

    while (pos < len) {
        if (utf8_decode((const uint8_t *)s, len, &pos, &cp) != 0)
            return 0;
        if (utf8_is_control(cp) && cp != '\n' && cp != '\t')
            return 0;
    }
    return 1;
}

static void check(const char *in, size_t inlen, unsigned flags, const char *want)
{
    char out[256];

    assert_int_equal(termsafe_render(out, sizeof(out), (const uint8_t *)in, inlen, flags), 0);
    if (strcmp(out, want) != 0)
        fail_msg("rendered '%s', expected '%s'", out, want);
}

/* Literal input, its length without the final NUL. */
#define CHECK(lit, flags, want) check((lit), sizeof(lit) - 1, (flags), (want))

static void test_plain_text_unchanged(void **state)
{
    (void)state;
    CHECK("Demarche today", 0, "Demarche today");
    CHECK("J\xc3\xb8rgen \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x93\x9c", 0,
          "J\xc3\xb8rgen \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x93\x9c");
    CHECK("", 0, "");
}

static void test_c0_del_escaped(void **state)
{
    (void)state;
    /* A fake header drawn after clearing the screen: ESC [ 2 J, CR, BEL, BS. */
    CHECK("\x1b[2J\x1b[HFrom: x\r\a\b", 0, "\\x1b[2J\\x1b[HFrom: x\\x0d\\x07\\x08");
    CHECK("a\x7f" "b", 0, "a\\x7fb");
    CHECK("a\0b", 0, "a\\x00b");
    /* OSC 52 (clipboard) terminated by ST or BEL. */
    CHECK("\x1b]52;c;ZXZpbA==\x07", 0, "\\x1b]52;c;ZXZpbA==\\x07");
}

static void test_newline_tab(void **state)
{
    (void)state;
    CHECK("a\nb\tc", 0, "a\\x0ab\\x09c");
    CHECK("a\nb\tc", TERMSAFE_MULTILINE, "a\nb\tc");
    CHECK("a\r\nb", TERMSAFE_MULTILINE, "a\\x0d\nb");
}

static void test_c1_bidi_escaped(void **state)
{
    (void)state;
    /* U+009B (CSI as a C1 control), U+0085 (NEL) */
    CHECK("\xc2\x9b" "2J\xc2\x85", 0, "\\u{009b}2J\\u{0085}");
    /* U+202E right-to-left override, U+2066 LRI, U+200F RLM, U+061C ALM */
    CHECK("abc\xe2\x80\xae" "fdp.exe", 0, "abc\\u{202e}fdp.exe");
    CHECK("\xe2\x81\xa6\xe2\x80\x8f\xd8\x9c", 0, "\\u{2066}\\u{200f}\\u{061c}");
}

static void test_invalid_utf8_escaped(void **state)
{
    (void)state;
    CHECK("\x9b" "2J", 0, "\\x9b2J");                 /* a lone 8-bit CSI byte */
    CHECK("\xc0\xaf", 0, "\\xc0\\xaf");               /* overlong '/' */
    CHECK("\xed\xa0\x80", 0, "\\xed\\xa0\\x80");      /* surrogate */
    CHECK("ok\xe2\x80", TERMSAFE_MULTILINE, "ok\\xe2\\x80"); /* truncated at the end */
    CHECK("\xff\xfe", 0, "\\xff\\xfe");
}

/* Every byte value alone and after each lead byte: the output is printable ASCII or UTF-8 with no control. */
static void test_no_control_survives(void **state)
{
    (void)state;
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            uint8_t in[3] = {(uint8_t)a, (uint8_t)b, 0x80};
            char out[TERMSAFE_LEN(3)];

            assert_int_equal(termsafe_render(out, sizeof(out), in, 3, TERMSAFE_MULTILINE), 0);
            for (size_t i = 0; out[i] != 0; i++) {
                unsigned char c = (unsigned char)out[i];
                if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
                    fail_msg("byte %02x survived from %02x %02x", c, a, b);
            }
            assert_int_equal(utf8_safe_multiline(out), 1);
        }
    }
}

static void test_bounded(void **state)
{
    char out[6];
    (void)state;
    /* "ab" fits, the escape after it does not: cut before it, NUL-terminated. */
    assert_int_equal(termsafe_render(out, sizeof(out), (const uint8_t *)"ab\x1b", 3, 0),
                     VERR_TOO_LARGE);
    assert_string_equal(out, "ab");
    assert_int_equal(termsafe_render(out, 0, (const uint8_t *)"a", 1, 0), VERR_TOO_LARGE);
    assert_string_equal(termsafe_str(out, sizeof(out), "abcdefgh"), "abcde");
}

static void test_is_text(void **state)
{
    (void)state;
    assert_int_equal(termsafe_is_text((const uint8_t *)"plain\n\x1b[2J", 9), 1);
    assert_int_equal(termsafe_is_text((const uint8_t *)"a\0b", 3), 0);
    assert_int_equal(termsafe_is_text((const uint8_t *)"\x89PNG", 4), 0);
    assert_int_equal(termsafe_is_text((const uint8_t *)"", 0), 1);
}

static void test_fwrite(void **state)
{
    char got[64] = {0};
    FILE *f = tmpfile();
    (void)state;
    assert_non_null(f);
    static const char in[] = "x\x1b]52;c;QQ==\x07\ny\xe2\x80\xae";
    assert_int_equal(termsafe_fwrite(f, (const uint8_t *)in, sizeof(in) - 1, TERMSAFE_MULTILINE), 0);
    rewind(f);
    assert_int_equal(fread(got, 1, sizeof(got) - 1, f), 29);
    assert_string_equal(got, "x\\x1b]52;c;QQ==\\x07\ny\\u{202e}");
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_text_unchanged), cmocka_unit_test(test_c0_del_escaped),
        cmocka_unit_test(test_newline_tab),          cmocka_unit_test(test_c1_bidi_escaped),
        cmocka_unit_test(test_invalid_utf8_escaped), cmocka_unit_test(test_no_control_survives),
        cmocka_unit_test(test_bounded),              cmocka_unit_test(test_is_text),
        cmocka_unit_test(test_fwrite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
