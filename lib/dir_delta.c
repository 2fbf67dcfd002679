/* dir_delta.c - directory deltas (see dir.h; PROTOCOL.md part 1 "Directory delta"). */
#include "dir.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static const uint8_t delta_magic[4] = {'V', 'D', 'D', 'T'};
static const uint8_t dir_magic[4] = {'V', 'D', 'I', 'R'};
enum {
    DELTA_FORMAT_VERSION = 1,
    DIR_FORMAT = 2, /* the directory format a delta rebuilds (PROTOCOL.md part 1) */
};
_Static_assert(DIR_DELTA_HASH_LEN == crypto_generichash_BYTES, "BLAKE2b-256 of the base");
_Static_assert(DIR_DELTA_HEADER_LEN == 45, "magic, format, org id, version, issued, expires");
_Static_assert(DIR_DELTA_FIXED == 162, "a delta with no change (PROTOCOL.md part 1)");
_Static_assert(DIR_DELTA_MAX <= 16 << 20, "a delta fits one DIRECTORY_DELTA (WIRE_DIR_MAX)");

/*
 * Steps over one certificate (PROTOCOL.md part 1 "Device certificate"),
 * checking its structure (magic, version, each text length in range) but
 * nothing else: deltas move certificates as bytes, and whatever a device
 * installs goes through dir_parse_verify, which checks every field and
 * signature (cert_read costs a point validation per key: too slow here for a
 * relay making a delta of 10,000 certificates on its event loop).
 */
static int dd_skip_cert(struct buf *b, uint64_t *serial)
{
    static const uint8_t magic[4] = {'V', 'C', 'R', 'T'};
    static const struct {
        size_t min, max;
    } text[3] = {{1, PERSON_NAME_MAX}, {1, POST_MAX}, {1, ROLE_MAX}};
    uint8_t m[4], ver, n;
    struct buf v;
    int r;

    if ((r = buf_get_bytes(b, m, sizeof(m))) != 0 || (r = buf_get_u8(b, &ver)) != 0)
        return r;
    if (memcmp(m, magic, sizeof(m)) != 0)
        return VERR_BAD_MAGIC;
    if (ver != 2)
        return VERR_BAD_VERSION;
    if ((r = buf_get_u64(b, serial)) != 0 ||
        (r = buf_get_view(b, ORG_ID_LEN + DEVICE_ID_LEN + PERSON_ID_LEN, &v)) != 0)
        return r;
    for (size_t i = 0; i < 3; i++) {
        if ((r = buf_get_u8(b, &n)) != 0)
            return r;
        if (n < text[i].min || n > text[i].max)
            return VERR_BAD_FORMAT;
        if ((r = buf_get_view(b, n, &v)) != 0)
            return r;
    }
    return buf_get_view(b, SIG_PK_LEN + DH_PK_LEN + 8 + 8 + SIG_LEN, &v);
}

/* Where one certificate or revocation sits in a directory's bytes. */
struct dd_item {
    uint64_t serial;
    size_t off, len;
};

/* The structure of a directory encoding: items in order, no signature checked. */
struct dd_layout {
    struct dd_item *certs, *revs;
    size_t ncerts, nrevs;
    size_t sig_off;
};

static void dd_layout_free(struct dd_layout *l)
{
    free(l->certs);
    free(l->revs);
    memset(l, 0, sizeof(*l));
}

/*
 * Walks a directory encoding strictly (PROTOCOL.md part 1 "Directory"):
 * magic, format 2, counts bounded before allocating, serials strictly
 * increasing, the signature last. Signatures are not checked here.
 */
static int dd_scan(const uint8_t *p, size_t len, struct dd_layout *l)
{
    struct buf b;
    uint8_t hdr[DIR_DELTA_HEADER_LEN];
    uint32_t n;
    int r = VERR_INTERNAL;

    memset(l, 0, sizeof(*l));
    if (len > DIR_MAX_LEN)
        return VERR_TOO_LARGE;
    buf_view(&b, p, len);
    if ((r = buf_get_bytes(&b, hdr, sizeof(hdr))) != 0)
        return r;
    if (memcmp(hdr, dir_magic, sizeof(dir_magic)) != 0)
        return VERR_BAD_MAGIC;
    if (hdr[4] != DIR_FORMAT)
        return VERR_BAD_VERSION;
    if ((r = buf_get_u32(&b, &n)) != 0)
        goto out;
    if (n > DIR_MAX_CERTS || n > buf_left(&b) / CERT_MIN_LEN) {
        r = n > DIR_MAX_CERTS ? VERR_TOO_LARGE : VERR_TRUNCATED;
        goto out;
    }
    if (n > 0 && (l->certs = calloc(n, sizeof(*l->certs))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    for (l->ncerts = 0; l->ncerts < n; l->ncerts++) {
        struct dd_item *it = &l->certs[l->ncerts];

        it->off = buf_offset(&b);
        if ((r = dd_skip_cert(&b, &it->serial)) != 0)
            goto out;
        it->len = buf_offset(&b) - it->off;
        if (l->ncerts > 0 && it->serial <= l->certs[l->ncerts - 1].serial) {
            r = VERR_BAD_FORMAT;
            goto out;
        }
    }
    if ((r = buf_get_u32(&b, &n)) != 0)
        goto out;
    if (n > DIR_MAX_REVOKED || n > buf_left(&b) / DIR_REVOCATION_LEN) {
        r = n > DIR_MAX_REVOKED ? VERR_TOO_LARGE : VERR_TRUNCATED;
        goto out;
    }
    if (n > 0 && (l->revs = calloc(n, sizeof(*l->revs))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    for (l->nrevs = 0; l->nrevs < n; l->nrevs++) {
        struct dd_item *it = &l->revs[l->nrevs];
        struct buf v;

        it->off = buf_offset(&b);
        it->len = DIR_REVOCATION_LEN;
        if ((r = buf_get_u64(&b, &it->serial)) != 0 ||
            (r = buf_get_view(&b, DIR_REVOCATION_LEN - 8, &v)) != 0)
            goto out;
        if (l->nrevs > 0 && it->serial <= l->revs[l->nrevs - 1].serial) {
            r = VERR_BAD_FORMAT;
            goto out;
        }
    }
    l->sig_off = buf_offset(&b);
    if (buf_left(&b) < SIG_LEN) {
        r = VERR_TRUNCATED;
        goto out;
    }
    r = buf_left(&b) > SIG_LEN ? VERR_TRAILING : 0;
out:
    if (r != 0)
        dd_layout_free(l);
    return r;
}

static int dd_same(const uint8_t *a, const struct dd_item *x, const uint8_t *b,
                   const struct dd_item *y)
{
    return x->len == y->len && memcmp(a + x->off, b + y->off, x->len) == 0;
}

/* 1 if base item i is kept unchanged in cur (both lists sorted by serial). */
static int dd_kept(const uint8_t *base, const struct dd_item *x, const uint8_t *cur,
                   const struct dd_item *ci, size_t cn, size_t *j)
{
    while (*j < cn && ci[*j].serial < x->serial)
        (*j)++;
    return *j < cn && ci[*j].serial == x->serial && dd_same(base, x, cur, &ci[*j]);
}

/*
 * One list's part of a delta: u32 r · r removed serials, u32 a · a added
 * items (PROTOCOL.md part 1 "Directory delta"). An item whose serial is in
 * both with other bytes is removed and added again.
 */
static int dd_put_changes(struct buf *out, const uint8_t *base, const struct dd_item *bi, size_t bn,
                          const uint8_t *cur, const struct dd_item *ci, size_t cn)
{
    size_t j, nrem = 0, nadd = 0;
    int r;

    for (size_t i = 0, jj = 0; i < bn; i++)
        nrem += !dd_kept(base, &bi[i], cur, ci, cn, &jj);
    for (size_t i = 0, jj = 0; i < cn; i++)
        nadd += !dd_kept(cur, &ci[i], base, bi, bn, &jj);
    if ((r = buf_put_u32(out, (uint32_t)nrem)) != 0)
        return r;
    j = 0;
    for (size_t i = 0; i < bn; i++)
        if (!dd_kept(base, &bi[i], cur, ci, cn, &j) && (r = buf_put_u64(out, bi[i].serial)) != 0)
            return r;
    if ((r = buf_put_u32(out, (uint32_t)nadd)) != 0)
        return r;
    j = 0;
    for (size_t i = 0; i < cn; i++)
        if (!dd_kept(cur, &ci[i], base, bi, bn, &j) &&
            (r = buf_put_bytes(out, cur + ci[i].off, ci[i].len)) != 0)
            return r;
    return 0;
}

int dir_delta_make(const uint8_t *base, size_t base_len, const uint8_t *cur, size_t cur_len,
                   struct buf *out)
{
    struct dd_layout lb = {0}, lc = {0};
    uint8_t h[DIR_DELTA_HASH_LEN];
    int r = VERR_INTERNAL;

    if ((r = buf_init(out, DIR_DELTA_MAX, 0)) != 0)
        return r;
    if ((r = dd_scan(base, base_len, &lb)) != 0 || (r = dd_scan(cur, cur_len, &lc)) != 0)
        goto out;
    crypto_generichash(h, sizeof(h), base, base_len, NULL, 0);
    if ((r = buf_put_bytes(out, delta_magic, sizeof(delta_magic))) != 0 ||
        (r = buf_put_u8(out, DELTA_FORMAT_VERSION)) != 0 ||
        (r = buf_put_bytes(out, h, sizeof(h))) != 0 ||
        (r = buf_put_bytes(out, cur, DIR_DELTA_HEADER_LEN)) != 0 ||
        (r = dd_put_changes(out, base, lb.certs, lb.ncerts, cur, lc.certs, lc.ncerts)) != 0 ||
        (r = dd_put_changes(out, base, lb.revs, lb.nrevs, cur, lc.revs, lc.nrevs)) != 0 ||
        (r = buf_put_bytes(out, cur + lc.sig_off, SIG_LEN)) != 0)
        goto out;
    r = 0;
out:
    dd_layout_free(&lb);
    dd_layout_free(&lc);
    if (r != 0)
        buf_free(out);
    return r;
}

/* Reads u32 n and n strictly increasing serials (a view: out points into d). */
static int dd_get_removed(struct buf *d, size_t cap, struct buf *list, size_t *n)
{
    uint32_t k;
    uint64_t prev = 0, s;
    int r;

    if ((r = buf_get_u32(d, &k)) != 0)
        return r;
    if (k > cap)
        return VERR_TOO_LARGE;
    if (k > buf_left(d) / 8)
        return VERR_TRUNCATED;
    if ((r = buf_get_view(d, (size_t)k * 8, list)) != 0)
        return r;
    for (uint32_t i = 0; i < k; i++) {
        if ((r = buf_get_u64(list, &s)) != 0)
            return r;
        if (i > 0 && s <= prev)
            return VERR_BAD_FORMAT;
        prev = s;
    }
    buf_view(list, buf_data(list), buf_size(list)); /* rewound for the merge */
    *n = k;
    return 0;
}

/*
 * Merges one list: the base's items (bi, bn) minus the removed serials, plus
 * the added items read from d (certificates when certs, else revocations),
 * in strictly increasing serial order, written as u32 count · items.
 */
static int dd_merge(struct buf *d, int certs, const uint8_t *base, const struct dd_item *bi,
                    size_t bn, struct buf *out)
{
    struct buf removed;
    size_t nrem = 0, nadd, cap = certs ? DIR_MAX_CERTS : DIR_MAX_REVOKED, i = 0, total;
    uint32_t k;
    uint64_t rem = 0, prev_add = 0;
    size_t rem_left;
    int r;

    if ((r = dd_get_removed(d, cap, &removed, &nrem)) != 0)
        return r;
    if ((r = buf_get_u32(d, &k)) != 0)
        return r;
    nadd = k;
    if (nadd > cap)
        return VERR_TOO_LARGE;
    if (nadd > buf_left(d) / (certs ? CERT_MIN_LEN : DIR_REVOCATION_LEN))
        return VERR_TRUNCATED;
    /* Every removed serial must be in the base: so total = bn - nrem + nadd. */
    if (nrem > bn)
        return VERR_BAD_FORMAT;
    total = bn - nrem + nadd;
    if (total > cap)
        return VERR_TOO_LARGE;
    if ((r = buf_put_u32(out, (uint32_t)total)) != 0)
        return r;
    rem_left = nrem;
    if (rem_left > 0 && (r = buf_get_u64(&removed, &rem)) != 0)
        return r;
    for (size_t a = 0; a <= nadd; a++) {
        uint64_t serial = UINT64_MAX;
        size_t item_off = 0, item_len = 0;

        if (a < nadd) {
            item_off = buf_offset(d);
            if (certs) {
                if ((r = dd_skip_cert(d, &serial)) != 0)
                    return r;
            } else {
                struct buf v;
                if ((r = buf_get_u64(d, &serial)) != 0 ||
                    (r = buf_get_view(d, DIR_REVOCATION_LEN - 8, &v)) != 0)
                    return r;
            }
            item_len = buf_offset(d) - item_off;
            if (a > 0 && serial <= prev_add)
                return VERR_BAD_FORMAT;
            prev_add = serial;
        }
        /* The base's items before this added one, less those removed. */
        while (i < bn && (a == nadd || bi[i].serial <= serial)) {
            if (rem_left > 0 && rem == bi[i].serial) {
                rem_left--;
                if (rem_left > 0 && (r = buf_get_u64(&removed, &rem)) != 0)
                    return r;
                i++;
                continue;
            }
            if (rem_left > 0 && rem < bi[i].serial)
                return VERR_BAD_FORMAT; /* a removed serial the base does not hold */
            if (a < nadd && bi[i].serial == serial)
                return VERR_BAD_FORMAT; /* added over a kept item */
            if ((r = buf_put_bytes(out, base + bi[i].off, bi[i].len)) != 0)
                return r;
            i++;
        }
        if (a < nadd && (r = buf_put_bytes(out, buf_data(d) + item_off, item_len)) != 0)
            return r;
    }
    return rem_left == 0 ? 0 : VERR_BAD_FORMAT;
}

int dir_delta_apply(const uint8_t *base, size_t base_len, const uint8_t *delta, size_t delta_len,
                    struct buf *out)
{
    struct dd_layout lb = {0};
    struct buf d;
    uint8_t magic[4], ver, h[DIR_DELTA_HASH_LEN], mine[DIR_DELTA_HASH_LEN];
    uint8_t hdr[DIR_DELTA_HEADER_LEN], sig[SIG_LEN];
    int r = VERR_INTERNAL;

    if ((r = buf_init(out, DIR_MAX_LEN, 0)) != 0)
        return r;
    if (delta_len > DIR_DELTA_MAX) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    buf_view(&d, delta, delta_len);
    if ((r = buf_get_bytes(&d, magic, sizeof(magic))) != 0)
        goto out;
    if (memcmp(magic, delta_magic, sizeof(magic)) != 0) {
        r = VERR_BAD_MAGIC;
        goto out;
    }
    if ((r = buf_get_u8(&d, &ver)) != 0)
        goto out;
    if (ver != DELTA_FORMAT_VERSION) {
        r = VERR_BAD_VERSION;
        goto out;
    }
    if ((r = buf_get_bytes(&d, h, sizeof(h))) != 0 ||
        (r = buf_get_bytes(&d, hdr, sizeof(hdr))) != 0)
        goto out;
    crypto_generichash(mine, sizeof(mine), base, base_len, NULL, 0);
    if (memcmp(h, mine, sizeof(h)) != 0) {
        r = VERR_UNKNOWN; /* made from another directory than the one held */
        goto out;
    }
    if ((r = dd_scan(base, base_len, &lb)) != 0)
        goto out;
    if ((r = buf_put_bytes(out, hdr, sizeof(hdr))) != 0 ||
        (r = dd_merge(&d, 1, base, lb.certs, lb.ncerts, out)) != 0 ||
        (r = dd_merge(&d, 0, base, lb.revs, lb.nrevs, out)) != 0 ||
        (r = buf_get_bytes(&d, sig, sizeof(sig))) != 0 || (r = buf_expect_end(&d)) != 0 ||
        (r = buf_put_bytes(out, sig, sizeof(sig))) != 0)
        goto out;
    r = 0;
out:
    dd_layout_free(&lb);
    if (r != 0)
        buf_free(out);
    return r;
}
