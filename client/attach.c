/* attach.c - attachments sealed end to end (see attach.h, PROTOCOL.md part 4 "Attachments"). */
#include "attach.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "utf8.h"

_Static_assert(ATTACH_CHUNK_CT == 16400, "chunk ciphertext (PROTOCOL.md part 4)");
_Static_assert(ATTACH_TAG_LEN == crypto_aead_chacha20poly1305_ietf_ABYTES, "Poly1305 tag");
_Static_assert(ATTACH_KEY_LEN == crypto_aead_chacha20poly1305_ietf_KEYBYTES, "file key");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "nonce = 8 zero bytes || u32 i");
_Static_assert(ATTACH_HASH_LEN == crypto_hash_sha256_BYTES, "SHA-256");
_Static_assert(ATTACH_DESC_FIXED == 88, "descriptor layout (PROTOCOL.md part 4)");
_Static_assert(ATTACH_SECTION_MAX == 9601, "attachment section cap");

/* The associated data's context (PROTOCOL.md part 4 "Attachments"), NUL included. */
static const char chunk_ctx[] = "valise/v1/attachment-chunk";
enum { CHUNK_AD_LEN = sizeof(chunk_ctx) + ATTACH_ID_LEN + 4 + 4 };

uint32_t attach_chunk_count(uint64_t size)
{
    if (size == 0 || size > ATTACH_SIZE_MAX)
        return 0;
    return (uint32_t)((size + ATTACH_CHUNK_PLAIN - 1) / ATTACH_CHUNK_PLAIN);
}

uint64_t attach_ct_size(uint64_t size)
{
    return size + (uint64_t)ATTACH_TAG_LEN * attach_chunk_count(size);
}

size_t attach_chunk_plain_len(uint64_t size, uint32_t i)
{
    uint32_t c = attach_chunk_count(size);

    if (i >= c)
        return 0;
    if (i < c - 1)
        return ATTACH_CHUNK_PLAIN;
    return (size_t)(size - (uint64_t)ATTACH_CHUNK_PLAIN * (c - 1));
}

int attach_valid_name(const char *s)
{
    size_t n = strnlen(s, ATTACH_NAME_MAX + 1);

    if (n == 0 || n > ATTACH_NAME_MAX)
        return 0;
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || memchr(s, '/', n) != NULL)
        return 0;
    return utf8_is_safe_text((const uint8_t *)s, n, 0);
}

static int type_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '+' || c == '-';
}

int attach_valid_type(const char *s)
{
    size_t n = strnlen(s, ATTACH_TYPE_MAX + 1), slash = 0, nslash = 0;

    if (n == 0 || n > ATTACH_TYPE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/') {
            slash = i;
            nslash++;
        } else if (!type_char(s[i])) {
            return 0;
        }
    }
    /* exactly one '/', with at least one character on each side */
    return nslash == 1 && slash > 0 && slash + 1 < n;
}

const char *attach_guess_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".pdf", "application/pdf"},   {".txt", "text/plain"},
        {".jpg", "image/jpeg"},        {".jpeg", "image/jpeg"},
        {".png", "image/png"},         {".tif", "image/tiff"},
        {".tiff", "image/tiff"},       {".zip", "application/zip"},
        {".odt", "application/vnd.oasis.opendocument.text"},
        {".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
        {".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    };
    size_t n = strlen(name);

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t e = strlen(types[i].ext);
        if (n > e && strcasecmp(name + n - e, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

void attach_desc_wipe(struct attach_desc *d)
{
    if (d != NULL)
        sodium_memzero(d, sizeof(*d));
}

int attach_desc_encode(const struct attach_desc *d, struct buf *out)
{
    size_t start = buf_size(out);
    int r;

    if (d->size == 0 || d->size > ATTACH_SIZE_MAX || !attach_valid_name(d->name) ||
        !attach_valid_type(d->type))
        return VERR_BAD_FORMAT;
    if ((r = buf_put_bytes(out, d->id, ATTACH_ID_LEN)) != 0 ||
        (r = buf_put_bytes(out, d->key, ATTACH_KEY_LEN)) != 0 ||
        (r = buf_put_u64(out, d->size)) != 0 ||
        (r = buf_put_bytes(out, d->hash, ATTACH_HASH_LEN)) != 0 ||
        (r = buf_put_str8(out, d->name)) != 0 || (r = buf_put_str8(out, d->type)) != 0) {
        buf_truncate(out, start);
        return r;
    }
    return 0;
}

int attach_desc_parse(struct buf *b, struct attach_desc *d)
{
    int r = VERR_INTERNAL;

    memset(d, 0, sizeof(*d));
    if ((r = buf_get_bytes(b, d->id, ATTACH_ID_LEN)) != 0 ||
        (r = buf_get_bytes(b, d->key, ATTACH_KEY_LEN)) != 0 ||
        (r = buf_get_u64(b, &d->size)) != 0 ||
        (r = buf_get_bytes(b, d->hash, ATTACH_HASH_LEN)) != 0 ||
        (r = buf_get_str8(b, d->name, sizeof(d->name), 1, ATTACH_NAME_MAX)) != 0 ||
        (r = buf_get_str8(b, d->type, sizeof(d->type), 3, ATTACH_TYPE_MAX)) != 0)
        goto out;
    if (d->size == 0 || d->size > ATTACH_SIZE_MAX || !attach_valid_name(d->name) ||
        !attach_valid_type(d->type)) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    r = 0;
out:
    if (r != 0)
        attach_desc_wipe(d);
    return r;
}

int attach_section_encode(const struct attach_desc *d, size_t n, struct buf *out)
{
    size_t start = buf_size(out);
    int r;

    if (n > ATTACH_MAX)
        return VERR_TOO_LARGE;
    if ((r = buf_put_u8(out, (uint8_t)n)) != 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        /* two descriptors with one id would share chunks at the relay */
        for (size_t j = 0; j < i; j++)
            if (memcmp(d[i].id, d[j].id, ATTACH_ID_LEN) == 0) {
                buf_truncate(out, start);
                return VERR_BAD_FORMAT;
            }
        if ((r = attach_desc_encode(&d[i], out)) != 0) {
            buf_truncate(out, start);
            return r;
        }
    }
    return 0;
}

int attach_section_parse(struct buf *b, struct attach_desc *d, size_t *n)
{
    struct attach_desc one;
    uint8_t ids[ATTACH_MAX][ATTACH_ID_LEN];
    uint8_t count;
    int r = VERR_INTERNAL;

    *n = 0;
    if ((r = buf_get_u8(b, &count)) != 0)
        return r;
    if (count > ATTACH_MAX) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        struct attach_desc *dst = d != NULL ? &d[i] : &one;
        if ((r = attach_desc_parse(b, dst)) != 0)
            goto out;
        for (size_t j = 0; j < i; j++)
            if (memcmp(ids[j], dst->id, ATTACH_ID_LEN) == 0) {
                r = VERR_BAD_FORMAT;
                goto out;
            }
        memcpy(ids[i], dst->id, ATTACH_ID_LEN);
    }
    *n = count;
    r = 0;
out:
    attach_desc_wipe(&one);
    if (r != 0) {
        if (d != NULL)
            for (size_t i = 0; i < count && i < ATTACH_MAX; i++)
                attach_desc_wipe(&d[i]);
    }
    return r;
}

static void put32(uint8_t p[static 4], uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* nonce = 8 zero bytes || u32 i; ad = context NUL || id || u32 i || u32 c (part 4). */
static void chunk_nonce_ad(const struct attach_desc *d, uint32_t i,
                           uint8_t nonce[static crypto_aead_chacha20poly1305_ietf_NPUBBYTES],
                           uint8_t ad[static CHUNK_AD_LEN])
{
    memset(nonce, 0, crypto_aead_chacha20poly1305_ietf_NPUBBYTES);
    put32(nonce + 8, i);
    memcpy(ad, chunk_ctx, sizeof(chunk_ctx));
    memcpy(ad + sizeof(chunk_ctx), d->id, ATTACH_ID_LEN);
    put32(ad + sizeof(chunk_ctx) + ATTACH_ID_LEN, i);
    put32(ad + sizeof(chunk_ctx) + ATTACH_ID_LEN + 4, attach_chunk_count(d->size));
}

int attach_chunk_seal(const struct attach_desc *d, uint32_t i, const uint8_t *pt, size_t len,
                      uint8_t *ct)
{
    uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES], ad[CHUNK_AD_LEN];

    if (len == 0 || len != attach_chunk_plain_len(d->size, i))
        return VERR_BAD_FORMAT;
    chunk_nonce_ad(d, i, nonce, ad);
    crypto_aead_chacha20poly1305_ietf_encrypt(ct, NULL, pt, len, ad, sizeof(ad), NULL, nonce,
                                              d->key);
    return 0;
}

int attach_chunk_open(const struct attach_desc *d, uint32_t i, const uint8_t *ct, size_t ct_len,
                      uint8_t *pt)
{
    uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES], ad[CHUNK_AD_LEN];
    size_t want = attach_chunk_plain_len(d->size, i);

    if (want == 0 || ct_len != want + ATTACH_TAG_LEN)
        return VERR_BAD_FORMAT;
    chunk_nonce_ad(d, i, nonce, ad);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct, ct_len, ad, sizeof(ad),
                                                  nonce, d->key) != 0) {
        sodium_memzero(pt, want);
        return VERR_DECRYPT;
    }
    return 0;
}

/* ---- files ---- */

static int errno_verr(int e)
{
    switch (e) {
    case ENOENT: return VERR_UNKNOWN;
    case EEXIST: return VERR_EXISTS;
    case ENOSPC:
    case EDQUOT: return VERR_NOSPACE;
    case ELOOP: return VERR_USAGE;
    default: return VERR_IO;
    }
}

static int read_full(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t k = read(fd, p + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return VERR_IO;
        got += (size_t)k;
    }
    return 0;
}

static int write_full(int fd, const uint8_t *p, size_t n)
{
    size_t done = 0;

    while (done < n) {
        ssize_t k = write(fd, p + done, n - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return errno == ENOSPC ? VERR_NOSPACE : VERR_IO;
        done += (size_t)k;
    }
    return 0;
}

static int tmp_name(char *out, size_t outsz, const char *path)
{
    int n = snprintf(out, outsz, "%s.tmp.%ld", path, (long)getpid());

    return n < 0 || (size_t)n >= outsz ? VERR_TOO_LARGE : 0;
}

int attach_seal_file(const char *src, uint64_t max, const char *ct_path, struct attach_desc *d,
                     attach_progress_fn progress, void *pctx)
{
    crypto_hash_sha256_state h;
    struct stat st;
    uint8_t *pt = NULL, *ct = NULL;
    char tmp[4096];
    int in = -1, outfd = -1, made = 0, r = VERR_INTERNAL;
    uint32_t c;

    tmp[0] = '\0';
    if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
        r = errno_verr(errno);
        goto out;
    }
    if (fstat(in, &st) != 0) {
        r = VERR_IO;
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
        r = VERR_USAGE;
        goto out;
    }
    if ((uint64_t)st.st_size > ATTACH_SIZE_MAX || (max > 0 && (uint64_t)st.st_size > max)) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    d->size = (uint64_t)st.st_size;
    c = attach_chunk_count(d->size);
    if ((pt = sodium_malloc(ATTACH_CHUNK_PLAIN)) == NULL || (ct = malloc(ATTACH_CHUNK_CT)) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    if ((r = tmp_name(tmp, sizeof(tmp), ct_path)) != 0)
        goto out;
    (void)unlink(tmp); /* a leftover of a crashed run of this pid */
    outfd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (outfd < 0) {
        r = errno_verr(errno);
        goto out;
    }
    made = 1;
    crypto_hash_sha256_init(&h);
    for (uint32_t i = 0; i < c; i++) {
        size_t n = attach_chunk_plain_len(d->size, i);
        /* a file that changes while it is read is refused, not sealed half old, half new */
        if ((r = read_full(in, pt, n)) != 0)
            goto out;
        crypto_hash_sha256_update(&h, pt, n);
        if ((r = attach_chunk_seal(d, i, pt, n, ct)) != 0 ||
            (r = write_full(outfd, ct, n + ATTACH_TAG_LEN)) != 0)
            goto out;
        if (progress != NULL)
            progress(pctx, (uint64_t)i * ATTACH_CHUNK_PLAIN + n, d->size);
    }
    {
        uint8_t extra;
        if (read(in, &extra, 1) != 0) {
            r = VERR_IO; /* grew while it was read */
            goto out;
        }
    }
    crypto_hash_sha256_final(&h, d->hash);
    if (fsync(outfd) != 0) {
        r = VERR_IO;
        goto out;
    }
    if (close(outfd) != 0) {
        outfd = -1;
        r = VERR_IO;
        goto out;
    }
    outfd = -1;
    if (rename(tmp, ct_path) != 0) {
        r = errno_verr(errno);
        goto out;
    }
    made = 0;
    if ((r = file_fsync_parent(ct_path)) != 0) {
        (void)unlink(ct_path);
        goto out;
    }
    r = 0;
out:
    sodium_memzero(&h, sizeof(h));
    if (outfd >= 0)
        close(outfd);
    if (made)
        (void)unlink(tmp);
    if (in >= 0)
        close(in);
    sodium_free(pt);
    free(ct);
    if (r != 0) {
        sodium_memzero(d->key, ATTACH_KEY_LEN);
        d->size = 0;
    }
    return r;
}

static int held_chunks(const char *path, const struct attach_desc *d, int trim, uint32_t *held)
{
    struct stat st;
    uint64_t total = attach_ct_size(d->size), whole;
    uint32_t c = attach_chunk_count(d->size);

    *held = 0;
    if (c == 0)
        return VERR_BAD_FORMAT;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : VERR_IO;
    if (!S_ISREG(st.st_mode))
        return VERR_USAGE;
    if ((uint64_t)st.st_size > total)
        return VERR_BAD_FORMAT;
    if ((uint64_t)st.st_size == total) {
        *held = c;
        return 0;
    }
    whole = (uint64_t)st.st_size / ATTACH_CHUNK_CT;
    if (trim && whole * ATTACH_CHUNK_CT != (uint64_t)st.st_size &&
        truncate(path, (off_t)(whole * ATTACH_CHUNK_CT)) != 0)
        return VERR_IO;
    *held = (uint32_t)whole;
    return 0;
}

int attach_held(const char *path, const struct attach_desc *d, uint32_t *held)
{
    return held_chunks(path, d, 0, held);
}

int attach_trim(const char *path, const struct attach_desc *d, uint32_t *held)
{
    return held_chunks(path, d, 1, held);
}

int attach_open_file(const struct attach_desc *d, const char *ct_path, const char *out,
                     attach_progress_fn progress, void *pctx)
{
    crypto_hash_sha256_state h;
    uint8_t got[ATTACH_HASH_LEN];
    uint8_t *pt = NULL, *ct = NULL;
    char tmp[4096];
    uint32_t c = attach_chunk_count(d->size), held;
    int in = -1, outfd = -1, made = 0, r = VERR_INTERNAL;

    if ((r = attach_held(ct_path, d, &held)) != 0)
        return r;
    if (held != c)
        return VERR_UNKNOWN;
    if (file_exists(out))
        return VERR_EXISTS;
    if ((pt = sodium_malloc(ATTACH_CHUNK_PLAIN)) == NULL || (ct = malloc(ATTACH_CHUNK_CT)) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    if ((in = open(ct_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        r = errno_verr(errno);
        goto out;
    }
    if ((r = tmp_name(tmp, sizeof(tmp), out)) != 0)
        goto out;
    (void)unlink(tmp);
    if ((outfd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
        r = errno_verr(errno);
        goto out;
    }
    made = 1;
    crypto_hash_sha256_init(&h);
    for (uint32_t i = 0; i < c; i++) {
        size_t n = attach_chunk_plain_len(d->size, i);
        if ((r = read_full(in, ct, n + ATTACH_TAG_LEN)) != 0 ||
            (r = attach_chunk_open(d, i, ct, n + ATTACH_TAG_LEN, pt)) != 0)
            goto out;
        crypto_hash_sha256_update(&h, pt, n);
        if ((r = write_full(outfd, pt, n)) != 0)
            goto out;
        if (progress != NULL)
            progress(pctx, (uint64_t)i * ATTACH_CHUNK_PLAIN + n, d->size);
    }
    crypto_hash_sha256_final(&h, got);
    /* the hash covers the whole file: checked before the output gets its name */
    if (sodium_memcmp(got, d->hash, ATTACH_HASH_LEN) != 0) {
        r = VERR_DECRYPT;
        goto out;
    }
    if (fsync(outfd) != 0) {
        r = VERR_IO;
        goto out;
    }
    if (close(outfd) != 0) {
        outfd = -1;
        r = VERR_IO;
        goto out;
    }
    outfd = -1;
    /* link, not rename: never replaces a file that appeared meanwhile */
    if (link(tmp, out) != 0) {
        r = errno_verr(errno);
        goto out;
    }
    if ((r = file_fsync_parent(out)) != 0) {
        (void)unlink(out);
        goto out;
    }
    r = 0;
out:
    sodium_memzero(&h, sizeof(h));
    if (outfd >= 0)
        close(outfd);
    if (made)
        (void)unlink(tmp);
    if (in >= 0)
        close(in);
    sodium_free(pt);
    free(ct);
    return r;
}

struct attach_reader {
    struct attach_desc d;
    crypto_hash_sha256_state h;
    uint8_t ct[ATTACH_CHUNK_CT];
    uint32_t i, c;
    int fd;
};

int attach_reader_open(const struct attach_desc *d, const char *ct_path, struct attach_reader **out)
{
    struct attach_reader *rd = NULL;
    uint32_t held;
    int r = VERR_INTERNAL;

    *out = NULL;
    if ((r = attach_held(ct_path, d, &held)) != 0)
        return r;
    if (held != attach_chunk_count(d->size))
        return VERR_UNKNOWN;
    if ((rd = sodium_malloc(sizeof(*rd))) == NULL)
        return VERR_NOMEM;
    memset(rd, 0, sizeof(*rd));
    rd->fd = -1;
    if ((rd->fd = open(ct_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        r = errno_verr(errno);
        goto out;
    }
    rd->d = *d;
    rd->c = held;
    crypto_hash_sha256_init(&rd->h);
    *out = rd;
    rd = NULL; /* the caller's now */
    r = 0;
out:
    attach_reader_close(rd);
    return r;
}

int attach_reader_next(struct attach_reader *rd, uint8_t *pt, size_t *len)
{
    uint8_t got[ATTACH_HASH_LEN];
    size_t n;
    int r;

    *len = 0;
    if (rd->i == rd->c)
        return 0;
    n = attach_chunk_plain_len(rd->d.size, rd->i);
    if ((r = read_full(rd->fd, rd->ct, n + ATTACH_TAG_LEN)) != 0 ||
        (r = attach_chunk_open(&rd->d, rd->i, rd->ct, n + ATTACH_TAG_LEN, pt)) != 0)
        return r;
    crypto_hash_sha256_update(&rd->h, pt, n);
    if (rd->i + 1 == rd->c) {
        /* the whole file's hash, before its last bytes leave (PROTOCOL.md part 4 section 9) */
        crypto_hash_sha256_final(&rd->h, got);
        if (sodium_memcmp(got, rd->d.hash, ATTACH_HASH_LEN) != 0) {
            sodium_memzero(pt, n);
            return VERR_DECRYPT;
        }
    }
    rd->i++;
    *len = n;
    return 0;
}

void attach_reader_close(struct attach_reader *rd)
{
    if (rd == NULL)
        return;
    if (rd->fd >= 0)
        close(rd->fd);
    sodium_free(rd); /* wipes the key and the hash state */
}

int attach_verify_file(const struct attach_desc *d, const char *ct_path)
{
    struct attach_reader *rd = NULL;
    uint8_t *pt = NULL;
    size_t n = 1;
    int r;

    if ((r = attach_reader_open(d, ct_path, &rd)) != 0)
        return r;
    if ((pt = sodium_malloc(ATTACH_CHUNK_PLAIN)) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    while (n > 0)
        if ((r = attach_reader_next(rd, pt, &n)) != 0)
            goto out;
    r = 0;
out:
    sodium_free(pt);
    attach_reader_close(rd);
    return r;
}
