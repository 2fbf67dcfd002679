/*
 * desk.h - `valise desk`: the diplomat's local web interface (issue 14). The
 * session behind the page: the unlocked mailbox, the one-time login token,
 * the session cookie, the checks every request passes, the JSON API and the
 * events pushed to open pages. No HTTP here (desk_http.h carries the bytes).
 *
 * Contract:
 *  - The page is served on 127.0.0.1 only. A request is served only if its
 *    Host header is exactly "127.0.0.1:PORT" (DNS rebinding) and it carries
 *    the session cookie; the cookie is given once, in exchange for the
 *    one-time token printed at start-up (sodium_memcmp on fixed lengths).
 *    Every request that changes anything (POST, the websocket) must also
 *    carry Origin "http://127.0.0.1:PORT".
 *  - desk_api answers JSON only (json-c); it never puts request bytes into
 *    an answer. Text that came from someone else (names, subjects, labels,
 *    bodies) has its control and bidirectional characters and invalid UTF-8
 *    made visible ("[U+202E]", "[0x9B]"), as for the terminal; the page
 *    shows it as text only.
 *  - Locking (idle for idle_secs without a POST from the page, or asked for)
 *    closes the mailbox: its keys are wiped from this process, and every
 *    API call but state, activity and unlock answers 423 until the
 *    passphrase is given again (POST /api/unlock).
 *  - Answers that hold plaintext live in sodium_malloc'ed memory; free them
 *    with desk_reply_free, which wipes them.
 */
#ifndef VALISE_CLIENT_DESK_H
#define VALISE_CLIENT_DESK_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct mbox;
struct desk;

enum {
    DESK_SECRET_LEN = 32,                     /* token and cookie: random bytes */
    DESK_SECRET_HEX = 2 * DESK_SECRET_LEN,    /* as text */
    DESK_BODY_MAX = 512 * 1024,               /* largest request body (JSON) */
    DESK_IDLE_DEFAULT = 600,                  /* seconds */
    DESK_LINK_STALE = 5,                      /* seconds without a sign of life: offline */
};
/* "valise_desk_PORT": browsers share cookies across the ports of one host */
#define DESK_COOKIE_NAME "valise_desk_"

/* m: an open, enrolled mailbox, owned by the desk from now on (also on failure). */
int desk_new(struct desk **out, const char *home, struct mbox *m, unsigned idle_secs,
             uint64_t now) VL_MUST_CHECK;
void desk_free(struct desk *d);
/* The listening port, once known (it is part of the Host and Origin checks). */
void desk_set_port(struct desk *d, uint16_t port);
/* The one-time login token as hex (valid until used once). */
const char *desk_token(const struct desk *d);

/* 1 if the request may be served: Host exactly 127.0.0.1:PORT. */
int desk_host_ok(const struct desk *d, const char *host);
/* 1 if Origin is exactly http://127.0.0.1:PORT. */
int desk_origin_ok(const struct desk *d, const char *origin);
/* 1 if the Cookie header carries this desk's session cookie. */
int desk_cookie_ok(const struct desk *d, const char *cookie_header);
/*
 * Exchanges the one-time token for the session cookie: 1 and the
 * Set-Cookie value in set_cookie (HttpOnly, SameSite=Strict) if token is
 * right and unused; 0 otherwise. The token is spent either way once right.
 */
int desk_login(struct desk *d, const char *token, char *set_cookie, size_t set_cookie_sz);

struct desk_reply {
    int status;  /* HTTP status */
    char *body;  /* JSON, sodium_malloc'ed */
    size_t len;
};
/*
 * Serves /api/NAME: post 0 for GET, 1 for POST (body: its bytes). Always
 * fills rep (status and JSON) unless it returns an error (VERR_NOMEM...).
 */
int desk_api(struct desk *d, int post, const char *path, const uint8_t *body, size_t len,
             uint64_t now, struct desk_reply *rep) VL_MUST_CHECK;
void desk_reply_free(struct desk_reply *rep);

/* The syncing process showed the relay connection alive at now. */
void desk_link_alive(struct desk *d, uint64_t now);
/*
 * Run about once a second: locks after the idle time, notices new messages
 * and outbox changes. *event: NULL, or a JSON event for every open page
 * (malloc'ed, free with free()).
 */
int desk_tick(struct desk *d, uint64_t now, char **event) VL_MUST_CHECK;

/*
 * Text from another party for the page: valid UTF-8 where every control
 * (C0 but newline and tab when multiline, DEL, C1) and bidirectional control
 * is written "[U+XXXX]" and every invalid byte "[0xNN]". out: sodium_malloc'ed,
 * NUL-terminated; free with sodium_free.
 */
int desk_text_visible(const uint8_t *s, size_t len, int multiline, char **out) VL_MUST_CHECK;

#endif
