/* sig_ctx.h - private to sig_sign.c and sig_verify.c: builds context || 0x00 || body. */
#ifndef VALISE_SIG_CTX_H
#define VALISE_SIG_CTX_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"

/*
 * The buffer holds clen + 1 + len bytes and one spare byte: clen + len + 2
 * in all, so the guard must leave room for both extra bytes.
 */
static inline int sig_ctx_message(const char *ctx, const uint8_t *body, size_t len,
                                  uint8_t **out, size_t *outlen)
{
    size_t clen = strlen(ctx);
    uint8_t *m;

    if (clen > SIZE_MAX - 2 || len > SIZE_MAX - clen - 2)
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

/* The signed message may be an inner message's plaintext: wipe it before free. */
static inline void sig_ctx_free(uint8_t *m, size_t mlen)
{
    if (m == NULL)
        return;
    sodium_memzero(m, mlen);
    free(m);
}

#endif
