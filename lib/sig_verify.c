/* sig_verify.c - context-bound Ed25519 verification (see sig.h). */
#include "sig.h"

#include <sodium.h>

#include "sig_ctx.h"

int sig_verify(const uint8_t sig[static SIG_LEN], const char *ctx, const uint8_t *body,
               size_t len, const uint8_t pk[static SIG_PK_LEN])
{
    uint8_t *m = NULL;
    size_t mlen = 0;
    int r;

    if ((r = sig_ctx_message(ctx, body, len, &m, &mlen)) != 0)
        return r;
    /* libsodium rejects small-order keys and non-canonical signatures. */
    r = crypto_sign_verify_detached(sig, m, mlen, pk) == 0 ? 0 : VERR_BAD_SIGNATURE;
    sig_ctx_free(m, mlen);
    return r;
}
