/*
 * tlsbind.h - the TLS channel binding both ends of the relay connection sign
 * (PROTOCOL.md part 2 "Authentication"): RFC 9266 tls-exporter, the RFC 8446
 * section 7.5 exporter with label "EXPORTER-Channel-Binding", an empty
 * context, 32 bytes.
 *
 * Contract:
 *  - tlsbind_exporter takes the connection's OpenSSL SSL object (from
 *    lws_get_ssl in the two transport modules, the only ones that include
 *    libwebsockets.h). Only TLS 1.3 gives a binding unique to the connection
 *    (RFC 9266 section 3): an older version, a missing SSL or a failed
 *    export is VERR_DENIED with out all zero.
 *  - Plain ws:// (loopback only) has no TLS: the binding is 32 zero bytes,
 *    which the callers write themselves (tlsbind_none).
 */
#ifndef VALISE_TLSBIND_H
#define VALISE_TLSBIND_H

#include <stdint.h>

#include "err.h"

enum { TLSBIND_LEN = 32 };

struct ssl_st;

int tlsbind_exporter(struct ssl_st *ssl, uint8_t out[static TLSBIND_LEN]) VL_MUST_CHECK;

#endif
