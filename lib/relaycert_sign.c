/*
 * relaycert_sign.c - the organisation root signs a relay certificate
 * (relaycert.h). Apart from relaycert.c so verify-only programs link no
 * signing code.
 */
#include "relaycert.h"

int relaycert_sign(struct relaycert *c, const uint8_t org_sk[static SIG_SK_LEN], struct buf *out)
{
    int r;

    if ((r = buf_init(out, RELAYCERT_MAX_LEN, 0)) != 0)
        return r;
    if ((r = relaycert_encode_body(c, out)) != 0)
        goto out;
    if ((r = sig_sign(c->sig, SIG_CTX_RELAY_CERT, buf_data(out), buf_size(out), org_sk)) != 0)
        goto out;
    r = buf_put_bytes(out, c->sig, SIG_LEN);
out:
    if (r != 0)
        buf_free(out);
    return r;
}
