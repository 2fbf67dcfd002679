/* test_text.c - strict text codecs (lib/text.h) and crash-safe files (lib/fileio.h). */
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "testutil.h"

#include "fileio.h"
#include "text.h"

static void test_b64_strict(void **state)
{
    uint8_t out[16];
    size_t n = 0;
    char enc[32];
    static const char high[] = "AAA\xaf"; /* libsodium 1.0.18 alone reads 0xaf as '/' */
    (void)state;
    assert_int_equal(text_b64_encode(enc, sizeof(enc), (const uint8_t *)"valise", 6), 0);
    assert_string_equal(enc, "dmFsaXNl");
    assert_int_equal(text_b64_decode(out, sizeof(out), &n, enc, strlen(enc)), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "valise", 6);
    assert_int_equal(text_b64_decode(out, sizeof(out), &n, high, 4), VERR_BAD_FORMAT);
    assert_int_not_equal(text_b64_decode(out, sizeof(out), &n, "dmFsaXNl ", 9), 0);
    assert_int_not_equal(text_b64_decode(out, sizeof(out), &n, "dmFsaXN", 7), 0);
    assert_int_not_equal(text_b64_decode(out, 3, &n, enc, strlen(enc)), 0);
}

static void test_hex_and_numbers(void **state)
{
    uint8_t b[2];
    uint64_t v;
    (void)state;
    assert_int_equal(text_hex_decode(b, 2, "0aFf"), 0);
    assert_int_equal(b[0], 0x0a);
    assert_int_equal(b[1], 0xff);
    assert_int_not_equal(text_hex_decode(b, 2, "0aF"), 0);
    assert_int_not_equal(text_hex_decode(b, 2, "0aFg"), 0);
    assert_int_not_equal(text_hex_decode(b, 2, "0aFf00"), 0);
    assert_int_equal(text_parse_u64("365", 1, 3650, &v), 0);
    assert_int_equal(v, 365);
    assert_int_not_equal(text_parse_u64("0", 1, 3650, &v), 0);
    assert_int_not_equal(text_parse_u64("3651", 1, 3650, &v), 0);
    assert_int_not_equal(text_parse_u64("12x", 1, 3650, &v), 0);
    assert_int_not_equal(text_parse_u64("-1", 0, 3650, &v), 0);
    assert_int_not_equal(text_parse_u64(" 1", 0, 3650, &v), 0);
    assert_int_not_equal(text_parse_u64("99999999999999999999999", 0, UINT64_MAX, &v), 0);
}

static void test_files(void **state)
{
    char dir[] = "/tmp/valise-file-XXXXXX", path[256], link[256];
    struct buf b;
    struct stat st;
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/f", dir);
    assert_int_equal(file_write_new(path, (const uint8_t *)"one", 3, 0600), 0);
    assert_int_equal(file_write_new(path, (const uint8_t *)"two", 3, 0600), VERR_EXISTS);
    assert_int_equal(file_replace(path, (const uint8_t *)"three", 5, 0644), 0);
    assert_int_equal(file_read(path, 16, 0, &b), 0);
    assert_int_equal(buf_size(&b), 5);
    assert_memory_equal(buf_data(&b), "three", 5);
    buf_free(&b);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    /* bounded read: refused before reading */
    assert_int_equal(file_read(path, 4, 0, &b), VERR_TOO_LARGE);
    /* no temporary or backup names left behind */
    {
        char p2[300];
        snprintf(p2, sizeof(p2), "%s.old.%ld", path, (long)getpid());
        assert_false(file_exists(p2));
        snprintf(p2, sizeof(p2), "%s.tmp.%ld", path, (long)getpid());
        assert_false(file_exists(p2));
    }
    snprintf(link, sizeof(link), "%s/l", dir);
    assert_int_equal(symlink(path, link), 0);
    assert_int_not_equal(file_read(link, 16, 0, &b), 0);
    unlink(link);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_strict),
        cmocka_unit_test(test_hex_and_numbers),
        cmocka_unit_test(test_files),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
