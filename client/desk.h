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
 *  - Attachments (issue 13 item 2): POST /api/attach carries one file's raw
 *    bytes (Content-Type application/octet-stream, Content-Length 1..2^40,
 *    its name percent-encoded UTF-8 in X-Valise-Name). The bytes go to
 *    HOME/attach/upload-<16 hex>/NAME (mode 0600, never held in memory),
 *    are sealed there by mba_seal exactly as `valise send --attach FILE`
 *    seals FILE, and the plaintext copy is deleted at once; the answer is a
 *    handle (32 hex) that POST /api/send names in "attachments". A handle
 *    not sent within DESK_ATTACH_TTL, dropped (POST /api/attach_drop), or
 *    alive when the desk locks or stops has its sealed copy deleted and its
 *    key wiped; at start the desk deletes upload-* folders a crash left.
 *    GET /api/attachment?id=ID&from=SENDER&n=N streams a received attachment's
 *    plaintext after every chunk opened and the sender's SHA-256 matched
 *    (desk_download_*); desk_http sends it as a download only.
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
    DESK_ATTACH_HANDLES = 32,                 /* uploads and unsent handles at once */
    DESK_ATTACH_TTL = 3600,                   /* seconds a handle waits for its send */
    DESK_NAME_PCT_MAX = 3 * 255,              /* X-Valise-Name: 255 bytes percent-encoded */
    DESK_DISPOSITION_MAX = 1152,              /* Content-Disposition value with its NUL */
    DESK_DOWNLOAD_CHUNK = 16384,              /* plaintext bytes per desk_download_next */
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

/* ---- attachments (issue 13 item 2) ---- */

struct desk_upload;
/*
 * POST /api/attach: name_pct is X-Valise-Name, length Content-Length (both
 * NULL when absent). Either *up (the body follows: desk_upload_write, then
 * desk_upload_end or desk_upload_abort) or a refusal in rep ("locked",
 * "bad_name", "length_required", "empty_file", "file_too_large",
 * "too_many_attachments"); errors only for VERR_NOMEM and the like.
 */
int desk_upload_begin(struct desk *d, const char *name_pct, const char *length, uint64_t now,
                      struct desk_upload **up, struct desk_reply *rep) VL_MUST_CHECK;
/* Appends body bytes; VERR_TOO_LARGE past the Content-Length, VERR_IO, VERR_NOSPACE. */
int desk_upload_write(struct desk_upload *up, const uint8_t *p, size_t n) VL_MUST_CHECK;
/*
 * The body is complete: seals it, deletes the plaintext, answers
 * {"handle","name","size","type"} or a refusal ("upload_incomplete", "locked",
 * "too_many_attachments", "no_space", "attach_failed"). Frees up in every case.
 */
int desk_upload_end(struct desk_upload *up, uint64_t now, struct desk_reply *rep) VL_MUST_CHECK;
/* The connection ended first: the plaintext copy is deleted, up freed (NULL: nothing). */
void desk_upload_abort(struct desk_upload *up);

struct desk_download;
/*
 * GET /api/attachment?id=ID&from=SENDER&n=N: ID 8..32 hex digits of the
 * message id, SENDER (optional) 8..32 of its sender's device id, as POST
 * /api/read takes "ID/SENDER"; n 1..16.
 * Either *dl, with every chunk opened and the hash checked, or a refusal in
 * rep ("bad_id", "bad_number", "no_such_message", "no_such_attachment",
 * "attachment_incomplete", "attachment_damaged", "locked"). Marks the
 * message read, as `valise save` does.
 */
int desk_download_begin(struct desk *d, const char *id, const char *from, const char *n,
                        uint64_t now,
                        struct desk_download **dl, struct desk_reply *rep) VL_MUST_CHECK;
uint64_t desk_download_size(const struct desk_download *dl);
/* Plaintext bytes not yet given by desk_download_next. */
uint64_t desk_download_left(const struct desk_download *dl);
/* The checked media type if on the allow-list (desk_safe_type), else application/octet-stream. */
const char *desk_download_type(const struct desk_download *dl);
/* The Content-Disposition value (desk_disposition). */
const char *desk_download_disposition(const struct desk_download *dl);
/*
 * The next plaintext bytes into out (DESK_DOWNLOAD_CHUNK of room), *n of
 * them, 0 at the end; VERR_DECRYPT if a chunk or the hash fails on the way
 * (then the answer must be cut short, never completed).
 */
int desk_download_next(struct desk_download *dl, uint8_t *out, size_t *n) VL_MUST_CHECK;
void desk_download_end(struct desk_download *dl);

/*
 * Strict percent-decoding of an attachment name (RFC 3986 section 2.1):
 * only A-Z a-z 0-9 - _ . ! ~ * ' ( ) stand for themselves, every other byte
 * is %XX; the result must be a valid attachment name (attach_valid_name).
 * VERR_BAD_FORMAT otherwise.
 */
int desk_name_decode(const char *pct, char out[static 256]) VL_MUST_CHECK;
/*
 * "attachment; filename=\"ASCII\"; filename*=UTF-8''PCT" (RFC 6266, RFC
 * 8187): ASCII keeps A-Z a-z 0-9 space . _ - ( ) of name and writes '_'
 * for any other byte and for a leading '.'; PCT percent-encodes every byte
 * but the RFC 8187 attr-chars. Printable ASCII only.
 */
int desk_disposition(const char *name, char *out, size_t outsz) VL_MUST_CHECK;
/* type if it is one the desk lets the browser see as itself, else "application/octet-stream". */
const char *desk_safe_type(const char *type);

#endif
