/* dir.c - the signed directory (see dir.h). */
#include "dir.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fileio.h"

static const uint8_t dir_magic[4] = {'V', 'D', 'I', 'R'};
enum { DIR_FORMAT_VERSION = 2 }; /* PROTOCOL.md part 1 "Directory": 2 adds expires_at */
_Static_assert(DIR_HEADER_LEN == 33 + ORG_ID_LEN, "directory header layout (PROTOCOL.md part 1)");

struct directory {
    uint64_t version;
    uint64_t issued_at;
    uint64_t expires_at;
    struct cert *certs;
    size_t ncerts;
    struct dir_revocation *revs;
    size_t nrevs;
    uint8_t *bytes;
    size_t len;
};

void dir_free(struct directory *d)
{
    if (d == NULL)
        return;
    free(d->certs);
    free(d->revs);
    free(d->bytes);
    free(d);
}

int dir_parse_verify(const uint8_t *p, size_t len, const struct orgpub *org,
                     struct directory **out)
{
    struct directory *d = NULL;
    struct buf b;
    uint8_t magic[4], ver, org_id[ORG_ID_LEN], sig[SIG_LEN];
    uint32_t n;
    size_t body_len;
    int r = VERR_INTERNAL;

    *out = NULL;
    if (len > DIR_MAX_LEN)
        return VERR_TOO_LARGE;
    buf_view(&b, p, len);
    if ((r = buf_get_bytes(&b, magic, sizeof(magic))) != 0)
        return r;
    if (memcmp(magic, dir_magic, sizeof(magic)) != 0)
        return VERR_BAD_MAGIC;
    if ((r = buf_get_u8(&b, &ver)) != 0)
        return r;
    if (ver != DIR_FORMAT_VERSION)
        return VERR_BAD_VERSION;
    if ((d = calloc(1, sizeof(*d))) == NULL)
        return VERR_NOMEM;
    if ((r = buf_get_bytes(&b, org_id, sizeof(org_id))) != 0 ||
        (r = buf_get_u64(&b, &d->version)) != 0 || (r = buf_get_u64(&b, &d->issued_at)) != 0 ||
        (r = buf_get_u64(&b, &d->expires_at)) != 0 || (r = buf_get_u32(&b, &n)) != 0)
        goto out;
    /* A validity period that ends before it starts is malformed, not repaired. */
    if (d->issued_at >= d->expires_at) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    if (memcmp(org_id, org->id, ORG_ID_LEN) != 0) {
        r = VERR_WRONG_ORG;
        goto out;
    }
    /* Bound the count by what the remaining bytes could hold before allocating. */
    if (n > DIR_MAX_CERTS || n > buf_left(&b) / CERT_MIN_LEN) {
        r = n > DIR_MAX_CERTS ? VERR_TOO_LARGE : VERR_TRUNCATED;
        goto out;
    }
    if (n > 0 && (d->certs = calloc(n, sizeof(*d->certs))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    for (d->ncerts = 0; d->ncerts < n; d->ncerts++) {
        struct cert *c = &d->certs[d->ncerts];

        if ((r = cert_read(&b, c)) != 0)
            goto out;
        if (d->ncerts > 0 && c->serial <= d->certs[d->ncerts - 1].serial) {
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
    if (n > 0 && (d->revs = calloc(n, sizeof(*d->revs))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    for (d->nrevs = 0; d->nrevs < n; d->nrevs++) {
        struct dir_revocation *v = &d->revs[d->nrevs];

        if ((r = buf_get_u64(&b, &v->serial)) != 0 ||
            (r = buf_get_bytes(&b, v->device_id, DEVICE_ID_LEN)) != 0 ||
            (r = buf_get_u64(&b, &v->revoked_at)) != 0)
            goto out;
        if (d->nrevs > 0 && v->serial <= d->revs[d->nrevs - 1].serial) {
            r = VERR_BAD_FORMAT;
            goto out;
        }
    }
    body_len = buf_offset(&b);
    if ((r = buf_get_bytes(&b, sig, sizeof(sig))) != 0 || (r = buf_expect_end(&b)) != 0)
        goto out;
    if ((r = sig_verify(sig, SIG_CTX_DIRECTORY, p, body_len, org->pk)) != 0)
        goto out;
    /* Each listed certificate must stand on its own, too (time is checked at use). */
    for (size_t i = 0; i < d->ncerts; i++) {
        r = cert_verify(&d->certs[i], org, d->certs[i].not_before);
        if (r != 0)
            goto out;
    }
    if ((d->bytes = malloc(len)) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    memcpy(d->bytes, p, len);
    d->len = len;
    *out = d;
    d = NULL; /* owned by the caller now */
    r = 0;
out:
    dir_free(d);
    return r;
}

int dir_load(const char *path, const struct orgpub *org, struct directory **out)
{
    struct buf f;
    int r;

    *out = NULL;
    if ((r = file_read(path, DIR_MAX_LEN, 0, &f)) != 0)
        return r;
    r = dir_parse_verify(buf_data(&f), buf_size(&f), org, out);
    buf_free(&f);
    return r;
}

uint64_t dir_version(const struct directory *d)
{
    return d->version;
}

uint64_t dir_issued_at(const struct directory *d)
{
    return d->issued_at;
}

uint64_t dir_expires_at(const struct directory *d)
{
    return d->expires_at;
}

const uint8_t *dir_bytes(const struct directory *d, size_t *len)
{
    *len = d->len;
    return d->bytes;
}

size_t dir_cert_count(const struct directory *d)
{
    return d->ncerts;
}

const struct cert *dir_cert_at(const struct directory *d, size_t i)
{
    return i < d->ncerts ? &d->certs[i] : NULL;
}

size_t dir_revoked_count(const struct directory *d)
{
    return d->nrevs;
}

const struct dir_revocation *dir_revoked_at(const struct directory *d, size_t i)
{
    return i < d->nrevs ? &d->revs[i] : NULL;
}

const struct cert *dir_find_serial(const struct directory *d, uint64_t serial)
{
    size_t lo = 0, hi = d->ncerts;

    /* Certificates are sorted by strictly increasing serial (checked at parse). */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (d->certs[mid].serial == serial)
            return &d->certs[mid];
        if (d->certs[mid].serial < serial)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int dir_revokes_serial(const struct directory *d, uint64_t serial)
{
    size_t lo = 0, hi = d->nrevs;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (d->revs[mid].serial == serial)
            return 1;
        if (d->revs[mid].serial < serial)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

int dir_revokes_device(const struct directory *d, const uint8_t id[static DEVICE_ID_LEN])
{
    for (size_t i = 0; i < d->nrevs; i++)
        if (memcmp(d->revs[i].device_id, id, DEVICE_ID_LEN) == 0)
            return 1;
    return 0;
}

int dir_is_revoked(const struct directory *d, uint64_t serial,
                   const uint8_t id[static DEVICE_ID_LEN])
{
    /* A revoked device stays revoked whatever certificate it presents. */
    return dir_revokes_serial(d, serial) || dir_revokes_device(d, id);
}

const struct cert *dir_find_device(const struct directory *d,
                                   const uint8_t id[static DEVICE_ID_LEN])
{
    const struct cert *found = NULL;

    for (size_t i = 0; i < d->ncerts; i++)
        if (memcmp(d->certs[i].device_id, id, DEVICE_ID_LEN) == 0)
            found = &d->certs[i]; /* the newest serial wins */
    if (found != NULL && dir_is_revoked(d, found->serial, found->device_id))
        return NULL;
    return found;
}

int dir_check_cert(const struct directory *d, const struct cert *c, const struct orgpub *org,
                   uint64_t now)
{
    int r;

    if ((r = cert_verify(c, org, now)) != 0)
        return r;
    return dir_is_revoked(d, c->serial, c->device_id) ? VERR_REVOKED : 0;
}
