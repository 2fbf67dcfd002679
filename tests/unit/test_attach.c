/*
 * test_attach.c - attachments sealed end to end (client/attach.h, issue 13
 * item 2): chunk sizes; a chunk opens only as itself (swapped from another
 * attachment, reordered, the count cut short, every bit flip, a wrong length
 * all refused); the descriptor and section codecs (valid, every truncation,
 * trailing bytes, each field rule); sealing a file and opening it again,
 * with the hash checked before the output is named, an incomplete
 * attachment refused, and a torn last write cut off.
 */
#include "testutil.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "attach.h"
#include "fileio.h"

static char dir[] = "/tmp/valise-attach-XXXXXX";

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0 || mkdtemp(dir) == NULL)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    char cmd[256];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void make_desc(struct attach_desc *d, uint64_t size)
{
    memset(d, 0, sizeof(*d));
    randombytes_buf(d->id, ATTACH_ID_LEN);
    randombytes_buf(d->key, ATTACH_KEY_LEN);
    randombytes_buf(d->hash, ATTACH_HASH_LEN);
    d->size = size;
    memcpy(d->name, "note-verbale.pdf", 17);
    memcpy(d->type, "application/pdf", 16);
}

static void path_in(char *out, size_t outsz, const char *name)
{
    assert_int_equal(file_join(out, outsz, dir, name), 0);
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    (void)unlink(path);
    assert_int_equal(file_write_new(path, p, n, 0600), 0);
}

static void test_chunk_sizes(void **state)
{
    (void)state;
    assert_int_equal(attach_chunk_count(0), 0);
    assert_int_equal(attach_chunk_count(1), 1);
    assert_int_equal(attach_chunk_count(16384), 1);
    assert_int_equal(attach_chunk_count(16385), 2);
    assert_int_equal(attach_chunk_count(ATTACH_SIZE_MAX), 1u << 26);
    assert_int_equal(attach_chunk_count(ATTACH_SIZE_MAX + 1), 0);
    assert_true(attach_ct_size(1) == 17);
    assert_true(attach_ct_size(16385) == 16385 + 32);
    assert_int_equal(attach_chunk_plain_len(16385, 0), 16384);
    assert_int_equal(attach_chunk_plain_len(16385, 1), 1);
    assert_int_equal(attach_chunk_plain_len(16385, 2), 0);
    /* the relay's consistency rule: 16400*(c-1) + 17 <= ct_size <= 16400*c (PROTOCOL.md part 2) */
    for (uint64_t s = 1; s < 5 * 16384; s += 4093) {
        uint64_t c = attach_chunk_count(s), ct = attach_ct_size(s);
        assert_true(16400 * (c - 1) + 17 <= ct && ct <= 16400 * c);
    }
}

/* Three chunks of attachment a, and a's chunk 0 opened as anything else fails. */
static void test_chunk_swap_reorder_truncate(void **state)
{
    struct attach_desc a, b, cut;
    uint8_t pt[3][ATTACH_CHUNK_PLAIN], ct[3][ATTACH_CHUNK_CT], out[ATTACH_CHUNK_PLAIN];
    uint64_t size = 2 * ATTACH_CHUNK_PLAIN + 100;
    (void)state;

    make_desc(&a, size);
    make_desc(&b, size);
    for (uint32_t i = 0; i < 3; i++) {
        size_t n = attach_chunk_plain_len(size, i);
        randombytes_buf(pt[i], n);
        assert_int_equal(attach_chunk_seal(&a, i, pt[i], n, ct[i]), 0);
        assert_int_equal(attach_chunk_open(&a, i, ct[i], n + ATTACH_TAG_LEN, out), 0);
        assert_memory_equal(out, pt[i], n);
    }
    /* reordered: chunk 1 presented as chunk 0 (same length) */
    assert_int_equal(attach_chunk_open(&a, 0, ct[1], ATTACH_CHUNK_CT, out), VERR_DECRYPT);
    /* swapped in from another attachment: another key and id */
    assert_int_equal(attach_chunk_open(&b, 0, ct[0], ATTACH_CHUNK_CT, out), VERR_DECRYPT);
    /* the same key under another id (the id is in the associated data) */
    memcpy(b.key, a.key, ATTACH_KEY_LEN);
    assert_int_equal(attach_chunk_open(&b, 0, ct[0], ATTACH_CHUNK_CT, out), VERR_DECRYPT);
    /* truncated: a relay claiming the attachment has 2 chunks (c is in the ad) */
    cut = a;
    cut.size = 2 * ATTACH_CHUNK_PLAIN;
    assert_int_equal(attach_chunk_open(&cut, 1, ct[1], ATTACH_CHUNK_CT, out), VERR_DECRYPT);
    /* a full chunk where the last, short one belongs; a length that fits no chunk */
    assert_int_equal(attach_chunk_open(&a, 2, ct[1], ATTACH_CHUNK_CT, out), VERR_BAD_FORMAT);
    assert_int_equal(attach_chunk_open(&a, 0, ct[0], ATTACH_CHUNK_CT - 1, out), VERR_BAD_FORMAT);
    assert_int_equal(attach_chunk_open(&a, 3, ct[2], 100 + ATTACH_TAG_LEN, out), VERR_BAD_FORMAT);
    /* sealing refuses a plaintext of the wrong length */
    assert_int_equal(attach_chunk_seal(&a, 2, pt[2], ATTACH_CHUNK_PLAIN, ct[2]), VERR_BAD_FORMAT);
    /* every bit flip of the last chunk's ciphertext is refused */
    for (size_t i = 0; i < 100 + ATTACH_TAG_LEN; i++)
        for (unsigned bit = 0; bit < 8; bit++) {
            uint8_t m[100 + ATTACH_TAG_LEN];
            assert_int_equal(attach_chunk_seal(&a, 2, pt[2], 100, m), 0);
            m[i] ^= (uint8_t)(1u << bit);
            if (attach_chunk_open(&a, 2, m, sizeof(m), out) != VERR_DECRYPT)
                fail_msg("a flip of bit %u of byte %zu was accepted", bit, i);
        }
    attach_desc_wipe(&a);
    attach_desc_wipe(&b);
    attach_desc_wipe(&cut);
}

/* Known bytes: nonce and associated data as PROTOCOL.md part 4 writes them. */
static void test_chunk_layout(void **state)
{
    static const char ctx[] = "valise/v1/attachment-chunk";
    struct attach_desc d;
    uint8_t ad[sizeof(ctx) + 16 + 8], nonce[12] = {0}, pt[5] = "hello", ct[5 + 16], mine[5 + 16];
    (void)state;

    make_desc(&d, 5);
    memcpy(ad, ctx, sizeof(ctx));
    memcpy(ad + sizeof(ctx), d.id, 16);
    memcpy(ad + sizeof(ctx) + 16, "\0\0\0\0\0\0\0\1", 8); /* i = 0, c = 1 */
    crypto_aead_chacha20poly1305_ietf_encrypt(ct, NULL, pt, 5, ad, sizeof(ad), NULL, nonce, d.key);
    assert_int_equal(attach_chunk_seal(&d, 0, pt, 5, mine), 0);
    assert_memory_equal(ct, mine, sizeof(ct));
    attach_desc_wipe(&d);
}

static int parse_desc(const uint8_t *p, size_t len, void *ctx)
{
    struct attach_desc d;
    struct buf b;
    int r;
    (void)ctx;

    buf_view(&b, p, len);
    if ((r = attach_desc_parse(&b, &d)) == 0)
        r = buf_expect_end(&b);
    attach_desc_wipe(&d);
    return r;
}

static void test_desc_codec(void **state)
{
    struct attach_desc d, back;
    struct buf b, v;
    (void)state;

    make_desc(&d, 123456);
    assert_int_equal(buf_init(&b, ATTACH_DESC_MAX, 0), 0);
    assert_int_equal(attach_desc_encode(&d, &b), 0);
    assert_int_equal(buf_size(&b), ATTACH_DESC_FIXED + 1 + 16 + 1 + 15);
    buf_view(&v, buf_data(&b), buf_size(&b));
    assert_int_equal(attach_desc_parse(&v, &back), 0);
    assert_int_equal(buf_expect_end(&v), 0);
    assert_memory_equal(&d, &back, sizeof(d) - sizeof(d.name) - sizeof(d.type));
    assert_string_equal(back.name, d.name);
    assert_string_equal(back.type, d.type);
    /* every truncation and a trailing byte */
    for (size_t n = 0; n < buf_size(&b); n++)
        if (parse_desc(buf_data(&b), n, NULL) == 0)
            fail_msg("a truncation to %zu bytes was accepted", n);
    {
        uint8_t t[ATTACH_DESC_MAX + 1];
        memcpy(t, buf_data(&b), buf_size(&b));
        t[buf_size(&b)] = 0;
        assert_int_equal(parse_desc(t, buf_size(&b) + 1, NULL), VERR_TRAILING);
        /* size 0 and over 2^40, written by hand */
        memset(t + 48, 0, 8);
        assert_int_equal(parse_desc(t, buf_size(&b), NULL), VERR_BAD_FORMAT);
        memcpy(t + 48, "\0\0\1\0\0\0\0\1", 8);
        assert_int_equal(parse_desc(t, buf_size(&b), NULL), VERR_BAD_FORMAT);
        memcpy(t + 48, "\0\0\1\0\0\0\0\0", 8); /* exactly 2^40 */
        assert_int_equal(parse_desc(t, buf_size(&b), NULL), 0);
    }
    buf_free(&b);
    attach_desc_wipe(&d);
    attach_desc_wipe(&back);
}

static void test_desc_field_rules(void **state)
{
    static const char *const bad_names[] = {
        "", ".", "..", "a/b", "/etc/passwd", "tab\there", "esc\x1b[31m", "bidi\xe2\x80\xae.pdf",
        "nel\xc2\x85", "\xff\xfe", "half\xe2\x80",
    };
    static const char *const good_names[] = {"a", "...", ".profile", "Note verbale 12.pdf",
                                             "Ca\xc3\xa7\xc4\xb1.pdf"};
    static const char *const bad_types[] = {"", "pdf", "application/", "/pdf", "a/b/c",
                                            "Application/pdf", "text/plain; charset=utf-8",
                                            "image/*", "a b/c"};
    static const char *const good_types[] = {"application/pdf", "image/svg+xml",
                                             "application/vnd.ms-excel", "x/y"};
    struct attach_desc d;
    struct buf b;
    char longname[ATTACH_NAME_MAX + 2];
    (void)state;

    assert_int_equal(buf_init(&b, ATTACH_DESC_MAX, 0), 0);
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        make_desc(&d, 10);
        memcpy(d.name, bad_names[i], strlen(bad_names[i]) + 1);
        if (attach_valid_name(d.name) || attach_desc_encode(&d, &b) == 0)
            fail_msg("name %zu accepted", i);
    }
    for (size_t i = 0; i < sizeof(good_names) / sizeof(good_names[0]); i++)
        if (!attach_valid_name(good_names[i]))
            fail_msg("name %s refused", good_names[i]);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[ATTACH_NAME_MAX + 1] = '\0';
    assert_false(attach_valid_name(longname));
    longname[ATTACH_NAME_MAX] = '\0';
    assert_true(attach_valid_name(longname));
    for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++)
        if (attach_valid_type(bad_types[i]))
            fail_msg("type %s accepted", bad_types[i]);
    for (size_t i = 0; i < sizeof(good_types) / sizeof(good_types[0]); i++)
        if (!attach_valid_type(good_types[i]))
            fail_msg("type %s refused", good_types[i]);
    assert_string_equal(attach_guess_type("x.PDF"), "application/pdf");
    assert_string_equal(attach_guess_type("pdf"), "application/octet-stream");
    /* a name with a '/' written by hand is refused by the parser too */
    make_desc(&d, 10);
    memcpy(d.name, "a-b", 4);
    buf_reset(&b);
    assert_int_equal(attach_desc_encode(&d, &b), 0);
    {
        uint8_t t[ATTACH_DESC_MAX];
        memcpy(t, buf_data(&b), buf_size(&b));
        t[ATTACH_DESC_FIXED + 2] = '/';
        assert_int_equal(parse_desc(t, buf_size(&b), NULL), VERR_BAD_FORMAT);
        t[ATTACH_DESC_FIXED + 2] = 'c';
        assert_int_equal(parse_desc(t, buf_size(&b), NULL), 0);
        t[ATTACH_DESC_FIXED + 1 + 3 + 1] = 'A'; /* "Application/pdf" */
        assert_int_equal(parse_desc(t, buf_size(&b), NULL), VERR_BAD_FORMAT);
    }
    buf_free(&b);
    attach_desc_wipe(&d);
}

static void test_section_codec(void **state)
{
    struct attach_desc d[ATTACH_MAX + 1], back[ATTACH_MAX];
    struct buf b, v;
    size_t n;
    (void)state;

    for (size_t i = 0; i <= ATTACH_MAX; i++)
        make_desc(&d[i], i + 1);
    assert_int_equal(buf_init(&b, ATTACH_SECTION_MAX + ATTACH_DESC_MAX, 0), 0);
    assert_int_equal(attach_section_encode(d, 0, &b), 0);
    assert_int_equal(buf_size(&b), 1);
    buf_reset(&b);
    assert_int_equal(attach_section_encode(d, ATTACH_MAX + 1, &b), VERR_TOO_LARGE);
    assert_int_equal(buf_size(&b), 0);
    assert_int_equal(attach_section_encode(d, ATTACH_MAX, &b), 0);
    buf_view(&v, buf_data(&b), buf_size(&b));
    assert_int_equal(attach_section_parse(&v, back, &n), 0);
    assert_int_equal(n, ATTACH_MAX);
    assert_int_equal(buf_expect_end(&v), 0);
    for (size_t i = 0; i < n; i++)
        assert_memory_equal(back[i].key, d[i].key, ATTACH_KEY_LEN);
    /* a count of 17, written by hand, is refused before anything is read */
    {
        uint8_t t[1] = {ATTACH_MAX + 1};
        buf_view(&v, t, 1);
        assert_int_equal(attach_section_parse(&v, back, &n), VERR_TOO_LARGE);
    }
    /* two descriptors with one id */
    memcpy(d[1].id, d[0].id, ATTACH_ID_LEN);
    buf_reset(&b);
    assert_int_equal(attach_section_encode(d, 2, &b), VERR_BAD_FORMAT);
    buf_reset(&b);
    assert_int_equal(buf_put_u8(&b, 2), 0);
    assert_int_equal(attach_desc_encode(&d[0], &b), 0);
    assert_int_equal(attach_desc_encode(&d[1], &b), 0);
    buf_view(&v, buf_data(&b), buf_size(&b));
    assert_int_equal(attach_section_parse(&v, NULL, &n), VERR_BAD_FORMAT);
    buf_free(&b);
    for (size_t i = 0; i <= ATTACH_MAX; i++)
        attach_desc_wipe(&d[i]);
    for (size_t i = 0; i < ATTACH_MAX; i++)
        attach_desc_wipe(&back[i]);
}

static uint64_t last_done, last_total;
static void progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    last_done = done;
    last_total = total;
}

static void test_file_seal_open(void **state)
{
    struct attach_desc d;
    size_t size = 3 * ATTACH_CHUNK_PLAIN + 7;
    uint8_t *data = malloc(size), h[32];
    char src[512], ct[512], out[512];
    struct buf got;
    uint32_t held;
    (void)state;

    assert_non_null(data);
    randombytes_buf(data, size);
    path_in(src, sizeof(src), "src.bin");
    path_in(ct, sizeof(ct), "a.ct");
    path_in(out, sizeof(out), "saved.bin");
    write_file(src, data, size);
    memset(&d, 0, sizeof(d));
    randombytes_buf(d.id, ATTACH_ID_LEN);
    randombytes_buf(d.key, ATTACH_KEY_LEN);
    memcpy(d.name, "src.bin", 8);
    memcpy(d.type, "application/octet-stream", 25);
    assert_int_equal(attach_seal_file(src, 0, ct, &d, progress, NULL), 0);
    assert_true(d.size == size);
    assert_true(last_done == size && last_total == size);
    crypto_hash_sha256(h, data, size);
    assert_memory_equal(d.hash, h, 32);
    /* the ciphertext file holds no plaintext chunk and is the stored size */
    assert_int_equal(file_read(ct, 1 << 20, 0, &got), 0);
    assert_true(buf_size(&got) == attach_ct_size(size));
    assert_false(bytes_contain(buf_data(&got), buf_size(&got), data, 64));
    buf_free(&got);
    /* later changes to the source do not matter: it is sealed now */
    data[0] ^= 1;
    write_file(src, data, size);
    data[0] ^= 1;
    assert_int_equal(attach_held(ct, &d, &held), 0);
    assert_int_equal(held, 4);
    assert_int_equal(attach_open_file(&d, ct, out, progress, NULL), 0);
    assert_int_equal(file_read(out, 1 << 20, 0, &got), 0);
    assert_true(buf_size(&got) == size);
    assert_memory_equal(buf_data(&got), data, size);
    buf_free(&got);
    {
        struct stat st;
        assert_int_equal(stat(out, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
    /* an existing output is never replaced */
    assert_int_equal(attach_open_file(&d, ct, out, NULL, NULL), VERR_EXISTS);
    assert_int_equal(unlink(out), 0);
    /* a hash that differs: nothing written */
    d.hash[5] ^= 0x40;
    assert_int_equal(attach_open_file(&d, ct, out, NULL, NULL), VERR_DECRYPT);
    assert_false(file_exists(out));
    d.hash[5] ^= 0x40;
    /* incomplete: the last chunk missing, then a torn half chunk */
    assert_int_equal(truncate(ct, 3 * ATTACH_CHUNK_CT + 5), 0);
    assert_int_equal(attach_held(ct, &d, &held), 0);
    assert_int_equal(held, 3);
    {
        struct stat st;
        /* counting changes nothing (a reader must not cut a write in progress) */
        assert_int_equal(stat(ct, &st), 0);
        assert_true(st.st_size == 3 * ATTACH_CHUNK_CT + 5);
        assert_int_equal(attach_trim(ct, &d, &held), 0);
        assert_int_equal(held, 3);
        assert_int_equal(stat(ct, &st), 0);
        assert_true(st.st_size == 3 * ATTACH_CHUNK_CT); /* the torn bytes were cut off */
    }
    assert_int_equal(attach_open_file(&d, ct, out, NULL, NULL), VERR_UNKNOWN);
    assert_false(file_exists(out));
    free(data);
    attach_desc_wipe(&d);
}

/* The desk's reader (attach_reader_*): every chunk in order, the hash before the last one. */
static void test_file_reader(void **state)
{
    struct attach_desc d;
    struct attach_reader *rd = NULL;
    size_t size = 2 * ATTACH_CHUNK_PLAIN + 100, got = 0, n = 1;
    uint8_t *data = malloc(size), *pt = malloc(ATTACH_CHUNK_PLAIN), *all = malloc(size);
    char src[512], ct[512];
    (void)state;

    assert_non_null(data);
    assert_non_null(pt);
    assert_non_null(all);
    randombytes_buf(data, size);
    path_in(src, sizeof(src), "reader.bin");
    path_in(ct, sizeof(ct), "reader.ct");
    write_file(src, data, size);
    (void)unlink(ct);
    make_desc(&d, 1);
    assert_int_equal(attach_seal_file(src, 0, ct, &d, NULL, NULL), 0);
    assert_int_equal(attach_verify_file(&d, ct), 0);
    assert_int_equal(attach_reader_open(&d, ct, &rd), 0);
    while (n > 0) {
        assert_int_equal(attach_reader_next(rd, pt, &n), 0);
        assert_true(got + n <= size);
        memcpy(all + got, pt, n);
        got += n;
    }
    assert_true(got == size);
    assert_memory_equal(all, data, size);
    attach_reader_close(rd);
    /* a hash that differs: the first chunks come, the last never does */
    d.hash[0] ^= 1;
    assert_int_equal(attach_verify_file(&d, ct), VERR_DECRYPT);
    assert_int_equal(attach_reader_open(&d, ct, &rd), 0);
    assert_int_equal(attach_reader_next(rd, pt, &n), 0);
    assert_int_equal(n, ATTACH_CHUNK_PLAIN);
    assert_int_equal(attach_reader_next(rd, pt, &n), 0);
    assert_int_equal(attach_reader_next(rd, pt, &n), VERR_DECRYPT);
    assert_int_equal(n, 0);
    attach_reader_close(rd);
    d.hash[0] ^= 1;
    /* a chunk changed on disk does not open; an incomplete file does not open at all */
    {
        int fd = open(ct, O_WRONLY);
        uint8_t x = 0x55;
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, &x, 1, ATTACH_CHUNK_CT + 3), 1);
        close(fd);
    }
    assert_int_equal(attach_verify_file(&d, ct), VERR_DECRYPT);
    assert_int_equal(truncate(ct, ATTACH_CHUNK_CT), 0);
    assert_int_equal(attach_reader_open(&d, ct, &rd), VERR_UNKNOWN);
    assert_null(rd);
    attach_reader_close(NULL);
    free(data);
    free(pt);
    free(all);
    attach_desc_wipe(&d);
}

static void test_file_refusals(void **state)
{
    struct attach_desc d;
    char src[512], ct[512], big[512];
    uint8_t b[20] = {0};
    uint32_t held;
    (void)state;

    path_in(src, sizeof(src), "empty");
    path_in(ct, sizeof(ct), "e.ct");
    write_file(src, b, 0);
    memset(&d, 0, sizeof(d));
    assert_int_equal(attach_seal_file(src, 0, ct, &d, NULL, NULL), VERR_USAGE);
    assert_false(file_exists(ct));
    assert_int_equal(attach_seal_file(dir, 0, ct, &d, NULL, NULL), VERR_USAGE);
    path_in(src, sizeof(src), "missing");
    assert_int_equal(attach_seal_file(src, 0, ct, &d, NULL, NULL), VERR_UNKNOWN);
    path_in(big, sizeof(big), "ten");
    write_file(big, b, sizeof(b));
    assert_int_equal(attach_seal_file(big, 19, ct, &d, NULL, NULL), VERR_TOO_LARGE);
    assert_false(file_exists(ct));
    /* a downloaded file longer than the attachment is refused, not trimmed */
    make_desc(&d, 1);
    write_file(ct, b, sizeof(b));
    assert_int_equal(attach_held(ct, &d, &held), VERR_BAD_FORMAT);
    attach_desc_wipe(&d);
}

/* The fuzzer's seeds are valid sections. */
static void test_fuzz_seeds_parse(void **state)
{
    static const char *const seeds[] = {"none", "one_pdf", "two_utf8"};
    (void)state;
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char path[512];
        struct buf b, v;
        size_t n;
        snprintf(path, sizeof(path), "%s/fuzz/corpus/attach/%s", VALISE_SOURCE_DIR, seeds[i]);
        assert_int_equal(file_read(path, ATTACH_SECTION_MAX, 0, &b), 0);
        buf_view(&v, buf_data(&b), buf_size(&b));
        if (attach_section_parse(&v, NULL, &n) != 0 || buf_expect_end(&v) != 0)
            fail_msg("seed %s does not parse", seeds[i]);
        buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_sizes),
        cmocka_unit_test(test_chunk_swap_reorder_truncate),
        cmocka_unit_test(test_chunk_layout),
        cmocka_unit_test(test_desc_codec),
        cmocka_unit_test(test_desc_field_rules),
        cmocka_unit_test(test_section_codec),
        cmocka_unit_test(test_file_seal_open),
        cmocka_unit_test(test_file_reader),
        cmocka_unit_test(test_file_refusals),
        cmocka_unit_test(test_fuzz_seeds_parse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
