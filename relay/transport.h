/*
 * transport.h - the relay's websocket and HTTP server on libwebsockets. The
 * only file of the relay that includes libwebsockets.h (STYLE.md habit 7).
 *
 * Contract:
 *  - One websocket subprotocol, TRANSPORT_PROTOCOL, binary messages; /healthz
 *    and /metrics are plain HTTP GETs on the same port.
 *  - tp_service runs one turn of the event loop: one poll, every ready
 *    connection serviced, then it returns so the caller can commit what
 *    arrived in that turn as one group (DESIGN.md "Relay").
 *  - Handlers return 0 to keep the connection or -1 to close it at once.
 *  - tp_write sends one whole binary websocket message (copied into an
 *    internal buffer with the head room libwebsockets needs).
 *  - tp_cancel is async-signal-safe: it wakes a tp_service that is waiting.
 */
#ifndef VALISE_RELAY_TRANSPORT_H
#define VALISE_RELAY_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define TRANSPORT_PROTOCOL "valise.v1"

enum { TP_BINDING_LEN = 32 };

struct tp;
struct tp_conn;

struct tp_handlers {
    void *ctx;
    /* A websocket was established; returns the caller's session (NULL: refuse). */
    void *(*open)(void *ctx, struct tp_conn *c);
    /* Part of a message: first/final fragment flags, bytes still to come in this frame. */
    int (*rx)(void *ctx, void *sess, const uint8_t *p, size_t len, int first, int final,
              size_t remaining, int binary);
    int (*writeable)(void *ctx, void *sess);
    void (*closed)(void *ctx, void *sess);
    /* An HTTP GET of path: fills body and *ctype, returns an HTTP status. */
    unsigned (*http)(void *ctx, const char *path, struct buf *body, const char **ctype);
};

struct tp_opts {
    const char *host; /* numeric address to bind */
    int port;         /* 0: any free port (see tp_port) */
    const char *tls_cert, *tls_key; /* both or neither */
    size_t rx_buffer;               /* bytes read per call (64 KiB: DESIGN.md limits) */
    unsigned handshake_timeout;     /* seconds for the HTTP upgrade */
    unsigned max_fds;               /* connections the event loop can hold */
};

int tp_create(struct tp **out, const struct tp_opts *o, const struct tp_handlers *h) VL_MUST_CHECK;
void tp_destroy(struct tp *t);
int tp_port(const struct tp *t);
/* One turn of the event loop; VERR_NET if the loop failed. */
int tp_service(struct tp *t) VL_MUST_CHECK;
void tp_cancel(struct tp *t);

int tp_write(struct tp_conn *c, const uint8_t *p, size_t len) VL_MUST_CHECK;
/* 1 if the socket cannot take more now (wait for writeable). */
int tp_choked(struct tp_conn *c);
void tp_want_write(struct tp_conn *c);
/* Closes the connection unless it is active again within secs seconds. */
void tp_set_timeout(struct tp_conn *c, unsigned secs);
/*
 * TCP's count of bytes received from the peer plus bytes the peer
 * acknowledged (Linux TCP_INFO, RFC 4898 names): it moves while a long
 * message still arrives or is still being read. 0 when the socket cannot say.
 */
uint64_t tp_tcp_bytes(struct tp_conn *c);
/*
 * The connection's channel binding (PROTOCOL.md part 2 "Authentication"):
 * the RFC 9266 tls-exporter value under TLS 1.3, 32 zero bytes on plain
 * ws://. VERR_DENIED under TLS older than 1.3 or if the export fails.
 */
int tp_channel_binding(struct tp_conn *c, uint8_t out[static TP_BINDING_LEN]) VL_MUST_CHECK;
/*
 * The peer's numeric address ("192.0.2.7", "::1") into out, for the log;
 * "?" when the socket cannot say.
 */
void tp_peer(struct tp_conn *c, char *out, size_t outsz);
/*
 * Replaces the listener's TLS certificate chain and key with the PEM files
 * cert and key for every later handshake; open connections are untouched.
 * The pair is loaded and matched on a scratch context first: on any error
 * (VERR_BAD_FORMAT) the listener keeps the pair it had.
 */
int tp_tls_reload(struct tp *t, const char *cert, const char *key) VL_MUST_CHECK;
/* Closes the connection from outside a handler (soon, asynchronously). */
void tp_close_async(struct tp_conn *c);

#endif
