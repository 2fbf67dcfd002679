/*
 * dir_sign.c - the organisation root signs the directory (see dir.h). Kept
 * apart from dir.c so that verify-only programs link no signing code.
 */
#include "dir.h"

#include <string.h>

static const uint8_t dir_magic[4] = {'V', 'D', 'I', 'R'};
enum { DIR_FORMAT_VERSION = 2 };

static int dir_put_header(struct buf *out, const struct orgpub *org, uint64_t version,
                          uint64_t issued_at, uint64_t expires_at)
{
    int r;

    if ((r = buf_put_bytes(out, dir_magic, sizeof(dir_magic))) != 0 ||
        (r = buf_put_u8(out, DIR_FORMAT_VERSION)) != 0 ||
        (r = buf_put_bytes(out, org->id, ORG_ID_LEN)) != 0 ||
        (r = buf_put_u64(out, version)) != 0 || (r = buf_put_u64(out, issued_at)) != 0 ||
        (r = buf_put_u64(out, expires_at)) != 0)
        return r;
    return 0;
}

int dir_encode_sign(uint64_t version, uint64_t issued_at, uint64_t expires_at,
                    const struct orgpub *org,
                    const struct cert *certs, size_t ncerts, const struct dir_revocation *revs,
                    size_t nrevs, const uint8_t org_sk[static SIG_SK_LEN], struct buf *out)
{
    uint8_t sig[SIG_LEN];
    int r;

    if ((r = buf_init(out, DIR_MAX_LEN, 0)) != 0)
        return r;
    if (ncerts > DIR_MAX_CERTS || nrevs > DIR_MAX_REVOKED) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    if (issued_at >= expires_at) {
        r = VERR_USAGE;
        goto out;
    }
    if ((r = dir_put_header(out, org, version, issued_at, expires_at)) != 0 ||
        (r = buf_put_u32(out, (uint32_t)ncerts)) != 0)
        goto out;
    for (size_t i = 0; i < ncerts; i++) {
        if (i > 0 && certs[i].serial <= certs[i - 1].serial) {
            r = VERR_USAGE;
            goto out;
        }
        if ((r = cert_encode_body(&certs[i], out)) != 0 ||
            (r = buf_put_bytes(out, certs[i].sig, SIG_LEN)) != 0)
            goto out;
    }
    if ((r = buf_put_u32(out, (uint32_t)nrevs)) != 0)
        goto out;
    for (size_t i = 0; i < nrevs; i++) {
        if (i > 0 && revs[i].serial <= revs[i - 1].serial) {
            r = VERR_USAGE;
            goto out;
        }
        if ((r = buf_put_u64(out, revs[i].serial)) != 0 ||
            (r = buf_put_bytes(out, revs[i].device_id, DEVICE_ID_LEN)) != 0 ||
            (r = buf_put_u64(out, revs[i].revoked_at)) != 0)
            goto out;
    }
    if ((r = sig_sign(sig, SIG_CTX_DIRECTORY, buf_data(out), buf_size(out), org_sk)) != 0)
        goto out;
    r = buf_put_bytes(out, sig, sizeof(sig));
out:
    if (r != 0)
        buf_free(out);
    return r;
}
