/*
 * wsclient.h - a small websocket client on a raw socket, with its own
 * framing (RFC 6455), for the relay's integration and abuse tests. It does
 * not use libwebsockets on purpose: tests must be able to send what a
 * library would refuse to (bad lengths, truncated frames, stalls).
 *
 * Contract:
 *  - Blocking socket; every receive takes a time-out in milliseconds and
 *    returns VERR_TIMEOUT when it runs out, VERR_NET when the peer closed.
 *  - Frames sent by wsc_send are masked, as a client's must be.
 *  - wsc_recv returns one whole message (continuation frames joined); ping
 *    frames are answered, close frames end the connection.
 */
#ifndef VALISE_TEST_WSCLIENT_H
#define VALISE_TEST_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

struct wsc {
    int fd;
    int closed;
    uint16_t close_code;
    uint8_t *in; /* bytes read but not yet used */
    size_t in_len, in_cap;
};

/* Connects to 127.0.0.1:port and upgrades with the given subprotocol (NULL: none). */
int wsc_connect(struct wsc *c, int port, const char *protocol, int timeout_ms) VL_MUST_CHECK;
void wsc_close(struct wsc *c);
/* One binary message in one masked frame. */
int wsc_send(struct wsc *c, const uint8_t *p, size_t len) VL_MUST_CHECK;
/* A frame header alone (for abuse tests): fin, opcode, declared length; masked. */
int wsc_send_header(struct wsc *c, int fin, uint8_t opcode, uint64_t len,
                    uint8_t mask[4]) VL_MUST_CHECK;
/* Raw bytes on the socket (the caller masks them if it wants to). */
int wsc_send_raw(struct wsc *c, const uint8_t *p, size_t len) VL_MUST_CHECK;
/* Next message into out (reset first; out must have room for it). */
int wsc_recv(struct wsc *c, struct buf *out, int timeout_ms) VL_MUST_CHECK;
/* 1 if the peer closed (close frame or end of stream) within timeout_ms; messages are dropped. */
int wsc_wait_closed(struct wsc *c, int timeout_ms);

/* One HTTP GET on a fresh connection; body into out. Returns the status or < 0. */
int http_get(int port, const char *path, struct buf *out, int timeout_ms);

#endif
