/*
 * desk_http.h - the desk's HTTP server and page websocket, on
 * libwebsockets (issue 14). The only desk file that includes
 * libwebsockets.h (STYLE.md habit 7; client/transport.c talks to the relay).
 *
 * Contract:
 *  - Listens on 127.0.0.1 only (PORT 0: any free port; desk_http_port says
 *    which). A TCP connection from another local user is refused before any
 *    byte is read: the peer socket's owner (/proc/net/tcp) must be our uid.
 *  - Every request passes the desk's checks (desk.h): Host, then the
 *    one-time token exchange (GET /login?token=T: 303 to / with the cookie)
 *    or the cookie; POST also Origin and "Content-Type: application/json";
 *    the websocket (subprotocol "valise.desk", path /ws) Host, Origin and
 *    cookie. Refusals answer with a status and no echo of the request.
 *  - Serves only the page's own files from web_dir (index.html, desk.css,
 *    desk.js, i18n/en.json, i18n/id.json) and /api/... (desk_api). Every
 *    answer carries a strict Content-Security-Policy (no inline script,
 *    nothing from another origin, frame-ancestors 'none'), nosniff,
 *    no-referrer and Cache-Control: no-store.
 *  - desk_http_run serves until *stop; about twice a second it reads
 *    link_fd (one byte per sign of life of the relay connection, from the
 *    syncing process) and runs desk_tick, pushing its events to every page;
 *    ten times a second it answers the session socket (session.h).
 */
#ifndef VALISE_CLIENT_DESK_HTTP_H
#define VALISE_CLIENT_DESK_HTTP_H

#include <stdint.h>

#include "err.h"

struct desk;
struct desk_http;

int desk_http_start(struct desk_http **out, struct desk *d, const char *web_dir,
                    uint16_t port) VL_MUST_CHECK;
uint16_t desk_http_port(const struct desk_http *h);
/* link_fd: non-blocking read end, or -1; session_fd: session_listen's, or -1. */
int desk_http_run(struct desk_http *h, volatile int *stop, int link_fd,
                  int session_fd) VL_MUST_CHECK;
void desk_http_stop(struct desk_http *h);

#endif
