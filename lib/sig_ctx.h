/* sig_ctx.h - private to sig_sign.c and sig_verify.c: builds context || 0x00 || body. */
#ifndef VALISE_SIG_CTX_H
#define VALISE_SIG_CTX_H

#include <stdlib.h>
#include <string.h>

#include "err.h"

static inline int sig_ctx_message(const char *ctx, const uint8_t *body, size_t len,
                                  uint8_t **out, size_t *outlen)
{
    size_t clen = strlen(ctx);
    uint8_t *m;

    if (len > SIZE_MAX - clen - 1)
        return VERR_TOO_LARGE;
    if ((m = malloc(clen + 1 + len + 1)) == NULL)
        return VERR_NOMEM;
    memcpy(m, ctx, clen);
    m[clen] = 0;
    if (len > 0)
        memcpy(m + clen + 1, body, len);
    *out = m;
    *outlen = clen + 1 + len;
    return 0;
}

#endif
