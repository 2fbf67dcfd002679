/*
 * transport.h - the client's websocket connection to the relay, on
 * libwebsockets. The only client file that includes libwebsockets.h
 * (STYLE.md habit 7).
 *
 * Contract:
 *  - One connection per ctp, subprotocol "valise.v1", binary messages only;
 *    one websocket message is one protocol message (wire.h).
 *  - URLs: wss://HOST[:PORT][/PATH] (TLS, the server certificate checked
 *    against the system CAs or ca_file), or ws://HOST[:PORT][/PATH] only when
 *    HOST is a loopback address (DESIGN.md "Relay": plain only on loopback);
 *    without PORT, 443 for wss and 80 for ws (RFC 6455 section 3).
 *    VERR_DENIED: well formed, but ws:// to a host that is not loopback.
 *  - Blocking calls with time-outs, for a single-threaded command: the event
 *    loop only runs inside ctp_connect, ctp_recv and ctp_flush. A time-out
 *    counts from the last progress (a byte received or acknowledged by the
 *    peer, TCP's own counts), not from the call: a slow transfer that
 *    still moves is never cut (issue 13). With a stop flag set (ctp_set_stop)
 *    a wait returns VERR_TIMEOUT within 200 ms.
 *  - ctp_send queues a copy; it is written while the loop runs.
 *  - ctp_recv returns the next whole message (out initialised here), or
 *    VERR_TIMEOUT (connection still usable), or VERR_NET once the connection
 *    is closed or failed. A message over CTP_MSG_MAX, or more than 64 MiB
 *    received and not yet taken, closes the connection.
 */
#ifndef VALISE_CLIENT_TRANSPORT_H
#define VALISE_CLIENT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define CTP_PROTOCOL "valise.v1"
#define CTP_MSG_MAX ((size_t)(17u << 20))

enum { CTP_BINDING_LEN = 32 };

struct ctp;

/* Checks the URL syntax and the loopback rule without connecting. */
int ctp_url_check(const char *url) VL_MUST_CHECK;
/* ca_file: NULL for the system CAs. */
int ctp_connect(struct ctp **out, const char *url, const char *ca_file,
                unsigned timeout_ms) VL_MUST_CHECK;
/* The same, with the stop flag of ctp_set_stop already set (NULL: none). */
int ctp_connect_stop(struct ctp **out, const char *url, const char *ca_file, unsigned timeout_ms,
                     volatile int *stop) VL_MUST_CHECK;
int ctp_send(struct ctp *c, const uint8_t *p, size_t len) VL_MUST_CHECK;
int ctp_recv(struct ctp *c, struct buf *out, unsigned timeout_ms) VL_MUST_CHECK;
/*
 * The connection's channel binding (PROTOCOL.md part 2 "Authentication"):
 * the RFC 9266 tls-exporter value under TLS 1.3 (wss://), 32 zero bytes on
 * ws:// (loopback only). VERR_DENIED under TLS older than 1.3.
 */
int ctp_channel_binding(struct ctp *c, uint8_t out[static CTP_BINDING_LEN]) VL_MUST_CHECK;
/* Runs the loop until every queued message is written (VERR_TIMEOUT, VERR_NET). */
int ctp_flush(struct ctp *c, unsigned timeout_ms) VL_MUST_CHECK;
/* A flag (set by a signal handler) that ends every wait early; NULL: none. */
void ctp_set_stop(struct ctp *c, volatile int *stop);
void ctp_close(struct ctp *c);

#endif
