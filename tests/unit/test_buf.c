/* test_buf.c - the bounded buffer's contract (lib/buf.h). */
#include <sodium.h>

#include "testutil.h"

#include "buf.h"

static void test_roundtrip_big_endian(void **state)
{
    struct buf b, v;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    char s[8];
    static const uint8_t expect[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                     0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
                                     0x0f, 0x03, 'a',  'b',  'c'};
    (void)state;
    assert_int_equal(buf_init(&b, 64, 0), 0);
    assert_int_equal(buf_put_u8(&b, 0x01), 0);
    assert_int_equal(buf_put_u16(&b, 0x0203), 0);
    assert_int_equal(buf_put_u32(&b, 0x04050607), 0);
    assert_int_equal(buf_put_u64(&b, 0x08090a0b0c0d0e0fULL), 0);
    assert_int_equal(buf_put_str8(&b, "abc"), 0);
    assert_int_equal(buf_size(&b), sizeof(expect));
    assert_memory_equal(buf_data(&b), expect, sizeof(expect));

    buf_view(&v, buf_data(&b), buf_size(&b));
    assert_int_equal(buf_get_u8(&v, &u8), 0);
    assert_int_equal(u8, 0x01);
    assert_int_equal(buf_get_u16(&v, &u16), 0);
    assert_int_equal(u16, 0x0203);
    assert_int_equal(buf_get_u32(&v, &u32), 0);
    assert_int_equal(u32, 0x04050607);
    assert_int_equal(buf_get_u64(&v, &u64), 0);
    assert_true(u64 == 0x08090a0b0c0d0e0fULL);
    assert_int_equal(buf_get_str8(&v, s, sizeof(s), 1, 7), 0);
    assert_string_equal(s, "abc");
    assert_int_equal(buf_expect_end(&v), 0);
    buf_free(&b);
}

static void test_read_takes_all_or_nothing(void **state)
{
    static const uint8_t three[] = {1, 2, 3};
    struct buf v;
    uint32_t u32;
    uint8_t out[4] = {0};
    uint16_t u16;
    (void)state;
    buf_view(&v, three, sizeof(three));
    assert_int_equal(buf_get_u32(&v, &u32), VERR_TRUNCATED);
    assert_int_equal(buf_left(&v), 3);
    assert_int_equal(buf_get_bytes(&v, out, 4), VERR_TRUNCATED);
    assert_int_equal(buf_left(&v), 3);
    assert_int_equal(buf_get_u16(&v, &u16), 0);
    assert_int_equal(u16, 0x0102);
    assert_int_equal(buf_expect_end(&v), VERR_TRAILING);
}

static void test_write_bounded(void **state)
{
    struct buf b;
    uint8_t big[9] = {0};
    (void)state;
    assert_int_equal(buf_init(&b, 8, BUF_SECRET), 0);
    assert_int_equal(buf_put_bytes(&b, big, 9), VERR_TOO_LARGE);
    assert_int_equal(buf_size(&b), 0);
    assert_int_equal(buf_put_bytes(&b, big, 8), 0);
    assert_int_equal(buf_put_u8(&b, 1), VERR_TOO_LARGE);
    assert_int_equal(buf_size(&b), 8);
    /* str8 that does not fit leaves nothing of itself behind */
    buf_truncate(&b, 6);
    assert_int_equal(buf_put_str8(&b, "abc"), VERR_TOO_LARGE);
    assert_int_equal(buf_size(&b), 6);
    buf_free(&b);
    buf_free(NULL);
}

static void test_prefixed_views(void **state)
{
    static const uint8_t msg[] = {0x00, 0x03, 'x', 'y', 'z', 0x00, 0x00, 0x00, 0x09, 'a'};
    struct buf v, c;
    uint8_t x;
    (void)state;
    buf_view(&v, msg, sizeof(msg));
    assert_int_equal(buf_get_view16(&v, 2, &c), VERR_TOO_LARGE); /* cap before reading */
    assert_int_equal(buf_left(&v), sizeof(msg));
    assert_int_equal(buf_get_view16(&v, 3, &c), 0);
    assert_int_equal(buf_left(&c), 3);
    assert_int_equal(buf_get_u8(&c, &x), 0);
    assert_int_equal(x, 'x');
    /* declared 9 bytes, 1 present: truncated, nothing consumed */
    assert_int_equal(buf_get_view32(&v, 100, &c), VERR_TRUNCATED);
    assert_int_equal(buf_left(&v), 5);
}

static void test_str8_rejects_control_and_length(void **state)
{
    static const uint8_t nul[] = {3, 'a', 0, 'b'};
    static const uint8_t empty[] = {0};
    static const uint8_t nl[] = {2, 'a', '\n'};
    char s[8];
    struct buf v;
    (void)state;
    buf_view(&v, nul, sizeof(nul));
    assert_int_equal(buf_get_str8(&v, s, sizeof(s), 1, 7), VERR_BAD_FORMAT);
    assert_int_equal(buf_left(&v), sizeof(nul));
    buf_view(&v, empty, sizeof(empty));
    assert_int_equal(buf_get_str8(&v, s, sizeof(s), 1, 7), VERR_BAD_FORMAT);
    buf_view(&v, nl, sizeof(nl));
    assert_int_equal(buf_get_str8(&v, s, sizeof(s), 1, 7), VERR_BAD_FORMAT);
}

static void test_growth_keeps_contents(void **state)
{
    struct buf b;
    (void)state;
    assert_int_equal(buf_init(&b, 100000, BUF_SECRET), 0);
    for (uint32_t i = 0; i < 20000; i++)
        assert_int_equal(buf_put_u32(&b, i), 0);
    for (uint32_t i = 0; i < 20000; i++) {
        uint32_t v;
        assert_int_equal(buf_get_u32(&b, &v), 0);
        assert_int_equal(v, i);
    }
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_big_endian),
        cmocka_unit_test(test_read_takes_all_or_nothing),
        cmocka_unit_test(test_write_bounded),
        cmocka_unit_test(test_prefixed_views),
        cmocka_unit_test(test_str8_rejects_control_and_length),
        cmocka_unit_test(test_growth_keeps_contents),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
