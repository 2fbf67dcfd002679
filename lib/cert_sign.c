/*
 * cert_sign.c - the signing side of cert.h: a device signs its enrolment
 * request, the organisation root signs certificates. Kept apart from cert.c
 * so that verify-only programs (valise-audit) link no signing code.
 */
#include "cert.h"

int request_encode_sign(const struct enrol_request *q, const uint8_t sign_sk[static SIG_SK_LEN],
                        struct buf *out)
{
    uint8_t sig[SIG_LEN];
    int r;

    if ((r = buf_init(out, REQUEST_MAX_LEN, 0)) != 0)
        return r;
    if ((r = request_encode_body(q, out)) != 0)
        goto out;
    if ((r = sig_sign(sig, SIG_CTX_REQUEST, buf_data(out), buf_size(out), sign_sk)) != 0)
        goto out;
    r = buf_put_bytes(out, sig, sizeof(sig));
out:
    if (r != 0)
        buf_free(out);
    return r;
}

int cert_sign(struct cert *c, const uint8_t org_sk[static SIG_SK_LEN], struct buf *out)
{
    int r;

    if ((r = buf_init(out, CERT_MAX_LEN, 0)) != 0)
        return r;
    if ((r = cert_encode_body(c, out)) != 0)
        goto out;
    if ((r = sig_sign(c->sig, SIG_CTX_CERT, buf_data(out), buf_size(out), org_sk)) != 0)
        goto out;
    r = buf_put_bytes(out, c->sig, SIG_LEN);
out:
    if (r != 0)
        buf_free(out);
    return r;
}
