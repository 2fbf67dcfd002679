/* sig_sign.c - context-bound Ed25519 signing (see sig.h). */
#include "sig.h"

#include <sodium.h>

#include "sig_ctx.h"

int sig_sign(uint8_t sig[static SIG_LEN], const char *ctx, const uint8_t *body, size_t len,
             const uint8_t sk[static SIG_SK_LEN])
{
    uint8_t *m = NULL;
    size_t mlen = 0;
    int r;

    if ((r = sig_ctx_message(ctx, body, len, &m, &mlen)) != 0)
        return r;
    r = crypto_sign_detached(sig, NULL, m, mlen, sk) == 0 ? 0 : VERR_INTERNAL;
    sig_ctx_free(m, mlen);
    return r;
}
