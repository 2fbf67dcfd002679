/*
 * sig.h - Ed25519 signatures, each bound to a context string.
 *
 * DESIGN.md "Trust and keys": every signature carries a distinct context, so a
 * signature made for one purpose can never be accepted for another. The signed
 * message is  context || 0x00 || body  (contexts contain no NUL, so the
 * boundary is unambiguous). Verification and signing live in separate object
 * files: the audit verifier links sig_verify only (STYLE.md habit 7).
 */
#ifndef VALISE_SIG_H
#define VALISE_SIG_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SIG_CTX_REQUEST "valise/v1/enrol-request"
#define SIG_CTX_CERT "valise/v1/device-cert"
#define SIG_CTX_DIRECTORY "valise/v1/directory"
#define SIG_CTX_RELAY_AUTH "valise/v1/relay-auth"
#define SIG_CTX_PREKEY "valise/v1/prekey"
#define SIG_CTX_MESSAGE "valise/v1/message"
#define SIG_CTX_REGISTRY "valise/v1/registry"
#define SIG_CTX_RELAY_CERT "valise/v1/relay-cert"
#define SIG_CTX_RELAY_CHALLENGE "valise/v1/relay-challenge"

enum { SIG_LEN = 64, SIG_PK_LEN = 32, SIG_SK_LEN = 64, SIG_SEED_LEN = 32 };

int sig_sign(uint8_t sig[static SIG_LEN], const char *ctx, const uint8_t *body, size_t len,
             const uint8_t sk[static SIG_SK_LEN]) VL_MUST_CHECK;
/* 0 if valid, VERR_BAD_SIGNATURE otherwise. */
int sig_verify(const uint8_t sig[static SIG_LEN], const char *ctx, const uint8_t *body,
               size_t len, const uint8_t pk[static SIG_PK_LEN]) VL_MUST_CHECK;

#endif
