/*
 * desk.c - the session behind `valise desk` (desk.h; issue 14): request
 * checks, the JSON API over the mailbox, idle locking and page events.
 * JSON is read and written with json-c only.
 */
#include "desk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <sodium.h>

#include "address.h"
#include "dir.h"
#include "mailbox.h"
#include "text.h"
#include "utf8.h"
#include "wire.h"

struct desk {
    char home[4096];
    struct mbox *m; /* NULL while locked */
    unsigned idle_secs;
    uint64_t last_activity, link_alive;
    uint16_t port;
    int token_spent, logged_in;
    char token[DESK_SECRET_HEX + 1];
    char cookie[DESK_SECRET_HEX + 1];
    /* what the pages last heard of */
    uint64_t seen_seq;
    uint8_t digest[crypto_generichash_BYTES];
    int locked_sent;
};

_Static_assert(DESK_SECRET_HEX == 2 * DESK_SECRET_LEN, "hex of the secrets");

static int desk_random_hex(char out[static DESK_SECRET_HEX + 1])
{
    uint8_t b[DESK_SECRET_LEN];
    int r;

    randombytes_buf(b, sizeof(b));
    r = text_hex_encode(out, DESK_SECRET_HEX + 1, b, sizeof(b));
    sodium_memzero(b, sizeof(b));
    return r;
}

int desk_new(struct desk **out, const char *home, struct mbox *m, unsigned idle_secs, uint64_t now)
{
    struct desk *d = NULL;
    int r = VERR_INTERNAL;

    *out = NULL;
    if (strlen(home) >= sizeof(d->home) || idle_secs == 0) {
        r = VERR_USAGE;
        goto out;
    }
    if ((d = sodium_malloc(sizeof(*d))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    memset(d, 0, sizeof(*d));
    memcpy(d->home, home, strlen(home) + 1);
    d->idle_secs = idle_secs;
    d->last_activity = now;
    if ((r = desk_random_hex(d->token)) != 0 || (r = desk_random_hex(d->cookie)) != 0)
        goto out;
    d->m = m;
    m = NULL; /* owned by d now */
    *out = d;
    d = NULL;
    r = 0;
out:
    mbox_close(m);
    desk_free(d);
    return r;
}

void desk_free(struct desk *d)
{
    if (d == NULL)
        return;
    mbox_close(d->m);
    sodium_free(d); /* wipes the token and the cookie */
}

void desk_set_port(struct desk *d, uint16_t port)
{
    d->port = port;
}

const char *desk_token(const struct desk *d)
{
    return d->token;
}

int desk_host_ok(const struct desk *d, const char *host)
{
    char want[32];

    snprintf(want, sizeof(want), "127.0.0.1:%u", (unsigned)d->port);
    return host != NULL && d->port != 0 && strcmp(host, want) == 0;
}

int desk_origin_ok(const struct desk *d, const char *origin)
{
    char want[40];

    snprintf(want, sizeof(want), "http://127.0.0.1:%u", (unsigned)d->port);
    return origin != NULL && d->port != 0 && strcmp(origin, want) == 0;
}

int desk_cookie_ok(const struct desk *d, const char *h)
{
    char name[32];
    size_t nl;
    const char *p = h;

    if (h == NULL || !d->logged_in)
        return 0;
    snprintf(name, sizeof(name), "%s%u=", DESK_COOKIE_NAME, (unsigned)d->port);
    nl = strlen(name);
    /* RFC 6265 section 5.4: "name=value" pairs separated by "; ". */
    while (p != NULL && *p != 0) {
        while (*p == ' ')
            p++;
        if (strncmp(p, name, nl) == 0) {
            const char *v = p + nl;
            size_t vl = strcspn(v, ";");
            if (vl == DESK_SECRET_HEX && sodium_memcmp(v, d->cookie, DESK_SECRET_HEX) == 0)
                return 1;
        }
        p = strchr(p, ';');
        if (p != NULL)
            p++;
    }
    return 0;
}

int desk_login(struct desk *d, const char *token, char *set_cookie, size_t sz)
{
    int n;

    if (token == NULL || d->token_spent || strlen(token) != DESK_SECRET_HEX ||
        sodium_memcmp(token, d->token, DESK_SECRET_HEX) != 0)
        return 0;
    d->token_spent = 1; /* one time: a leaked URL (history, screen) is worth nothing later */
    sodium_memzero(d->token, sizeof(d->token));
    n = snprintf(set_cookie, sz, "%s%u=%s; Path=/; HttpOnly; SameSite=Strict", DESK_COOKIE_NAME,
                 (unsigned)d->port, d->cookie);
    if (n < 0 || (size_t)n >= sz)
        return 0;
    d->logged_in = 1;
    return 1;
}

/* ---- text ---- */

int desk_text_visible(const uint8_t *s, size_t len, int multiline, char **out)
{
    char *o;
    size_t pos = 0, w = 0;

    *out = NULL;
    /* "[U+XXXXXX]" is the longest replacement: 10 bytes for at least 1 input byte. */
    if (len > (SIZE_MAX - 1) / 10)
        return VERR_TOO_LARGE;
    if ((o = sodium_malloc(len * 10 + 1)) == NULL)
        return VERR_NOMEM;
    while (pos < len) {
        size_t start = pos;
        uint32_t cp;
        if (utf8_decode(s, len, &pos, &cp) != 0) {
            w += (size_t)snprintf(o + w, 7, "[0x%02X]", s[pos]);
            pos++;
            continue;
        }
        if (multiline && (cp == '\n' || cp == '\t')) {
            o[w++] = (char)cp;
        } else if (utf8_is_control(cp)) {
            w += (size_t)snprintf(o + w, 11, "[U+%04X]", (unsigned)cp);
        } else {
            memcpy(o + w, s + start, pos - start);
            w += pos - start;
        }
    }
    o[w] = 0;
    *out = o;
    return 0;
}

/* ---- JSON helpers ---- */

static int j_add(json_object *o, const char *k, json_object *v)
{
    if (v == NULL)
        return VERR_NOMEM;
    if (json_object_object_add(o, k, v) != 0) {
        json_object_put(v);
        return VERR_NOMEM;
    }
    return 0;
}

/* Someone else's text, made visible (desk_text_visible). */
static int j_text(json_object *o, const char *k, const char *s)
{
    char *v;
    int r;

    if ((r = desk_text_visible((const uint8_t *)s, strlen(s), 0, &v)) != 0)
        return r;
    r = j_add(o, k, json_object_new_string(v));
    sodium_free(v);
    return r;
}

static int j_hex(json_object *o, const char *k, const uint8_t *b, size_t n)
{
    char h[2 * 64 + 1];

    if (n > 64 || text_hex_encode(h, sizeof(h), b, n) != 0)
        return VERR_INTERNAL;
    return j_add(o, k, json_object_new_string(h));
}

static int j_u64(json_object *o, const char *k, uint64_t v)
{
    return j_add(o, k, json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v));
}

static int j_int(json_object *o, const char *k, int v)
{
    return j_add(o, k, json_object_new_int(v));
}

static int j_str(json_object *o, const char *k, const char *s)
{
    return j_add(o, k, json_object_new_string(s));
}

/* Serialises o into rep (sodium_malloc'ed); wipes json-c's own copy. */
static int j_reply(json_object *o, int status, struct desk_reply *rep)
{
    size_t n = 0;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);

    if (s == NULL)
        return VERR_NOMEM;
    if ((rep->body = sodium_malloc(n + 1)) == NULL)
        return VERR_NOMEM;
    memcpy(rep->body, s, n + 1);
    sodium_memzero((char *)s, n); /* json-c's print buffer (plaintext) */
    rep->len = n;
    rep->status = status;
    return 0;
}

static int reply_error(struct desk_reply *rep, int status, const char *code)
{
    json_object *o = json_object_new_object();
    int r;

    if (o == NULL)
        return VERR_NOMEM;
    /* code: one of this file's constants, never request bytes. */
    if ((r = j_str(o, "error", code)) == 0)
        r = j_reply(o, status, rep);
    json_object_put(o);
    return r;
}

/* Reads a JSON object body strictly: whole body, depth 4, an object. */
static int j_parse(const uint8_t *body, size_t len, json_object **out)
{
    struct json_tokener *tok;
    json_object *o;
    int r = VERR_BAD_FORMAT;

    *out = NULL;
    if (len == 0 || len > DESK_BODY_MAX || len > INT32_MAX)
        return VERR_BAD_FORMAT;
    if ((tok = json_tokener_new_ex(4)) == NULL)
        return VERR_NOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, (const char *)body, (int)len);
    if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        goto out;
    }
    *out = o;
    r = 0;
out:
    json_tokener_free(tok);
    return r;
}

/* A string member, or NULL (absent or not a string). */
static const char *j_get_str(json_object *o, const char *k, size_t *len)
{
    json_object *v;

    if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    *len = (size_t)json_object_get_string_len(v);
    return json_object_get_string(v);
}

/* Wipes a string member (passphrase, body) before the object is freed. */
static void j_wipe_str(json_object *o, const char *k)
{
    json_object *v;

    if (json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string))
        sodium_memzero((char *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

/* ---- API ---- */

static int api_state(struct desk *d, uint64_t now, struct desk_reply *rep)
{
    json_object *o = json_object_new_object(), *me = NULL, *link = NULL;
    int r = VERR_NOMEM;

    if (o == NULL)
        return VERR_NOMEM;
    if ((r = j_add(o, "locked", json_object_new_boolean(d->m == NULL))) != 0 ||
        (r = j_u64(o, "idle_secs", d->idle_secs)) != 0 || (r = j_u64(o, "now", now)) != 0)
        goto out;
    if ((link = json_object_new_object()) == NULL)
        goto out;
    r = j_add(o, "link", link);
    if (r != 0)
        goto out;
    if ((r = j_add(link, "online",
                   json_object_new_boolean(d->link_alive != 0 &&
                                           now <= d->link_alive + DESK_LINK_STALE))) != 0 ||
        (r = j_u64(link, "last_contact", d->link_alive)) != 0)
        goto out;
    if (d->m != NULL) {
        const struct cert *c = mbox_cert(d->m);
        uint64_t exp = 0;
        int fr = mbox_dir_freshness(d->m, now, &exp);
        struct mbox_out *ol = NULL;
        size_t on = 0, waiting = 0;

        if ((me = json_object_new_object()) == NULL || (r = j_add(o, "me", me)) != 0)
            goto out;
        if ((r = j_text(me, "name", c->name)) != 0 || (r = j_text(me, "role", c->role)) != 0 ||
            (r = j_text(me, "post", c->post)) != 0 ||
            (r = j_hex(me, "device", c->device_id, DEVICE_ID_LEN)) != 0 ||
            (r = j_str(o, "directory",
                       fr == MBOX_DIR_FRESH      ? "fresh"
                       : fr == MBOX_DIR_EXPIRING ? "expiring"
                       : fr == MBOX_DIR_EXPIRED  ? "expired"
                                                 : "none")) != 0 ||
            (r = j_u64(o, "directory_expires", exp)) != 0)
            goto out;
        if ((r = mbox_outbox(d->m, &ol, &on)) != 0)
            goto out;
        for (size_t i = 0; i < on; i++) {
            int w = !ol[i].resolved && ol[i].ndev == 0;
            for (size_t j = 0; j < ol[i].ndev; j++)
                w |= ol[i].dev[j].state < MBOX_ENV_ACCEPTED;
            waiting += (size_t)w;
        }
        mbox_outbox_free(ol, on);
        if ((r = j_u64(link, "outbox_waiting", waiting)) != 0)
            goto out;
    }
    r = j_reply(o, 200, rep);
out:
    json_object_put(o);
    return r;
}

static int api_inbox(struct desk *d, struct desk_reply *rep)
{
    struct mbox_msg *list = NULL;
    size_t n = 0;
    json_object *o = NULL, *arr;
    int r;

    if ((r = mbox_inbox(d->m, &list, &n)) != 0)
        return r;
    r = VERR_NOMEM;
    if ((o = json_object_new_object()) == NULL || (arr = json_object_new_array()) == NULL ||
        j_add(o, "messages", arr) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const struct mbox_msg *x = &list[i];
        json_object *e = json_object_new_object();
        if (e == NULL || json_object_array_add(arr, e) != 0) {
            json_object_put(e);
            goto out;
        }
        if ((r = j_hex(e, "id", x->id, INNER_ID_LEN)) != 0 ||
            (r = j_hex(e, "sender_device", x->sender_id, DEVICE_ID_LEN)) != 0 ||
            (r = j_str(e, "precedence", inner_precedence_name(x->precedence))) != 0 ||
            (r = j_text(e, "label", x->label)) != 0 || (r = j_text(e, "to", x->address)) != 0 ||
            (r = j_u64(e, "to_count", x->naddr)) != 0 ||
            (r = j_u64(e, "time", x->time)) != 0 || (r = j_u64(e, "received", x->received)) != 0 ||
            (r = j_add(e, "read", json_object_new_boolean(x->read))) != 0 ||
            (r = j_text(e, "sender_name", x->sender_name)) != 0 ||
            (r = j_text(e, "sender_role", x->sender_role)) != 0 ||
            (r = j_text(e, "sender_post", x->sender_post)) != 0 ||
            (r = j_text(e, "subject", x->subject)) != 0)
            goto out;
    }
    r = j_reply(o, 200, rep);
out:
    json_object_put(o);
    if (list != NULL)
        sodium_memzero(list, n * sizeof(*list));
    free(list);
    return r;
}

static int api_read(struct desk *d, json_object *req, uint64_t now, struct desk_reply *rep)
{
    struct mbox_msg msg;
    json_object *o = NULL;
    const char *id;
    char *body = NULL;
    size_t idl = 0;
    int r;

    memset(&msg, 0, sizeof(msg));
    id = j_get_str(req, "id", &idl);
    /* An id or a prefix of 8+ hex digits, optionally "/SENDER" (mbox_read). */
    if (id == NULL || idl < 8 || idl > 2 * INNER_ID_LEN + 1 + 2 * DEVICE_ID_LEN ||
        strspn(id, "0123456789abcdefABCDEF/") != idl)
        return reply_error(rep, 400, "bad_id");
    r = mbox_read(d->m, id, now, &msg);
    if (r == VERR_UNKNOWN || r == VERR_USAGE)
        return reply_error(rep, 404, "no_such_message");
    if (r != 0)
        return r;
    r = VERR_NOMEM;
    if ((o = json_object_new_object()) == NULL)
        goto out;
    if ((r = desk_text_visible(msg.content, msg.content_len, 1, &body)) != 0)
        goto out;
    if ((r = j_hex(o, "id", msg.id, INNER_ID_LEN)) != 0 ||
        (r = j_hex(o, "sender_device", msg.sender_id, DEVICE_ID_LEN)) != 0 ||
        (r = j_text(o, "sender_name", msg.sender_name)) != 0 ||
        (r = j_text(o, "sender_role", msg.sender_role)) != 0 ||
        (r = j_text(o, "sender_post", msg.sender_post)) != 0 ||
        (r = j_text(o, "to", msg.address)) != 0 || (r = j_u64(o, "to_count", msg.naddr)) != 0 ||
        (r = j_add(o, "sent", json_object_new_boolean(msg.sent))) != 0 ||
        (r = j_str(o, "precedence", inner_precedence_name(msg.precedence))) != 0 ||
        (r = j_text(o, "label", msg.label)) != 0 || (r = j_u64(o, "time", msg.time)) != 0 ||
        (r = j_u64(o, "received", msg.received)) != 0 ||
        (r = j_add(o, "delayed", json_object_new_boolean(mbox_msg_delayed(&msg)))) != 0 ||
        (r = j_u64(o, "ttl_days", mbox_ttl(msg.precedence) / 86400)) != 0 ||
        (r = j_text(o, "subject", msg.subject)) != 0 ||
        (r = j_add(o, "signature_ok", json_object_new_boolean(msg.sig_ok))) != 0 ||
        (r = j_add(o, "certificate_ok", json_object_new_boolean(msg.cert_ok))) != 0 ||
        (r = j_str(o, "certificate_now",
                   msg.cert_status == 0              ? "valid"
                   : msg.cert_status == VERR_REVOKED ? "revoked"
                   : msg.cert_status == VERR_EXPIRED ? "expired"
                                                     : "unknown")) != 0 ||
        (r = j_add(o, "body", json_object_new_string(body))) != 0)
        goto out;
    r = j_reply(o, 200, rep);
out:
    if (o != NULL)
        j_wipe_str(o, "body");
    json_object_put(o);
    sodium_free(body);
    mbox_msg_clear(&msg);
    return r;
}

static int api_outbox(struct desk *d, struct desk_reply *rep)
{
    struct mbox_out *list = NULL;
    size_t n = 0;
    json_object *o = NULL, *arr;
    int r;

    if ((r = mbox_outbox(d->m, &list, &n)) != 0)
        return r;
    r = VERR_NOMEM;
    if ((o = json_object_new_object()) == NULL || (arr = json_object_new_array()) == NULL ||
        j_add(o, "messages", arr) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const struct mbox_out *x = &list[i];
        json_object *e = json_object_new_object(), *devs;
        if (e == NULL || json_object_array_add(arr, e) != 0) {
            json_object_put(e);
            goto out;
        }
        if ((r = j_hex(e, "id", x->id, INNER_ID_LEN)) != 0 ||
            (r = j_u64(e, "created", x->created)) != 0 || (r = j_text(e, "to", x->address)) != 0 ||
            (r = j_u64(e, "to_count", x->naddr)) != 0 ||
            (r = j_str(e, "precedence", inner_precedence_name(x->precedence))) != 0 ||
            (r = j_text(e, "label", x->label)) != 0 || (r = j_text(e, "subject", x->subject)) != 0 ||
            (r = j_add(e, "resolved", json_object_new_boolean(x->resolved))) != 0)
            goto out;
        r = VERR_NOMEM;
        if ((devs = json_object_new_array()) == NULL || j_add(e, "devices", devs) != 0)
            goto out;
        for (size_t j = 0; j < x->ndev; j++) {
            const struct mbox_out_dev *v = &x->dev[j];
            json_object *dv = json_object_new_object();
            if (dv == NULL || json_object_array_add(devs, dv) != 0) {
                json_object_put(dv);
                r = VERR_NOMEM;
                goto out;
            }
            /* state: a key of the page's catalogue ("state.N"). */
            if ((r = j_hex(dv, "device", v->device, DEVICE_ID_LEN)) != 0 ||
                (r = j_text(dv, "name", v->name)) != 0 || (r = j_text(dv, "role", v->role)) != 0 ||
                (r = j_text(dv, "post", v->post)) != 0 || (r = j_int(dv, "state", v->state)) != 0 ||
                (r = j_str(dv, "reason", v->reason != 0 ? wire_reason_name(v->reason) : "")) != 0)
                goto out;
        }
    }
    r = j_reply(o, 200, rep);
out:
    json_object_put(o);
    mbox_outbox_free(list, n);
    return r;
}

static int j_cert(json_object *e, const struct cert *c)
{
    int r;

    if ((r = j_hex(e, "device", c->device_id, DEVICE_ID_LEN)) != 0 ||
        (r = j_hex(e, "person", c->person_id, PERSON_ID_LEN)) != 0 ||
        (r = j_text(e, "name", c->name)) != 0 || (r = j_text(e, "role", c->role)) != 0 ||
        (r = j_text(e, "post", c->post)) != 0 || (r = j_u64(e, "serial", c->serial)) != 0)
        return r;
    return 0;
}

static int api_directory(struct desk *d, uint64_t now, struct desk_reply *rep)
{
    const struct directory *dir;
    json_object *o = NULL, *devs, *rev;
    int r;

    if ((r = mbox_reload_directory(d->m)) != 0)
        return r;
    if ((dir = mbox_directory(d->m)) == NULL)
        return reply_error(rep, 404, "no_directory");
    r = VERR_NOMEM;
    if ((o = json_object_new_object()) == NULL || (devs = json_object_new_array()) == NULL ||
        j_add(o, "devices", devs) != 0 || (rev = json_object_new_array()) == NULL ||
        j_add(o, "revoked", rev) != 0)
        goto out;
    if ((r = j_u64(o, "version", dir_version(dir))) != 0 ||
        (r = j_u64(o, "expires", dir_expires_at(dir))) != 0)
        goto out;
    for (size_t i = 0; i < dir_cert_count(dir); i++) {
        const struct cert *c = dir_cert_at(dir, i);
        int revoked = dir_is_revoked(dir, c->serial, c->device_id);
        json_object *e = json_object_new_object();
        if (e == NULL || json_object_array_add(revoked ? rev : devs, e) != 0) {
            json_object_put(e);
            r = VERR_NOMEM;
            goto out;
        }
        if ((r = j_cert(e, c)) != 0 ||
            (r = j_add(e, "me", json_object_new_boolean(
                                    sodium_memcmp(c->device_id, mbox_cert(d->m)->device_id,
                                                  DEVICE_ID_LEN) == 0))) != 0 ||
            (r = j_add(e, "valid", json_object_new_boolean(now >= c->not_before &&
                                                           now <= c->not_after))) != 0)
            goto out;
    }
    r = j_reply(o, 200, rep);
out:
    json_object_put(o);
    return r;
}

static int api_fingerprint(struct desk *d, json_object *req, uint64_t now, struct desk_reply *rep)
{
    struct mbox_contact *list = NULL;
    json_object *o = NULL, *arr;
    const char *dev;
    size_t n = 0, dl = 0;
    uint8_t raw[DEVICE_ID_LEN];
    int r;

    dev = j_get_str(req, "device", &dl);
    if (dev == NULL || dl != 2 * DEVICE_ID_LEN || text_hex_decode(raw, sizeof(raw), dev) != 0)
        return reply_error(rep, 400, "bad_device");
    if ((r = mbox_reload_directory(d->m)) != 0)
        return r;
    r = mbox_fingerprint(d->m, dev, now, &list, &n);
    if (r == VERR_UNKNOWN || r == VERR_USAGE)
        return reply_error(rep, 404, "no_such_device");
    if (r != 0)
        return r;
    r = VERR_NOMEM;
    if ((o = json_object_new_object()) == NULL || (arr = json_object_new_array()) == NULL ||
        j_add(o, "contacts", arr) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_new_object();
        if (e == NULL || json_object_array_add(arr, e) != 0) {
            json_object_put(e);
            goto out;
        }
        if ((r = j_cert(e, &list[i].cert)) != 0 || (r = j_str(e, "safety", list[i].safety)) != 0)
            goto out;
        r = VERR_NOMEM;
    }
    r = j_reply(o, 200, rep);
out:
    json_object_put(o);
    free(list);
    return r;
}

/*
 * POST /api/send: {"to":[ADDRESS...],"precedence":P,"label":L,"subject":S,"body":B}:
 * one message to every address (1..16, no two alike), one id (issue 12, item 6).
 */
static int api_send(struct desk *d, json_object *req, uint64_t now, struct desk_reply *rep)
{
    json_object *to, *o = NULL, *ids;
    const char *addrs[INNER_ADDRESSES_MAX];
    struct mbox_draft dr;
    const char *prec, *body;
    size_t nto, l = 0, bl = 0;
    uint8_t id[INNER_ID_LEN];
    char hex[2 * INNER_ID_LEN + 1];
    int r;

    memset(&dr, 0, sizeof(dr));
    if (!json_object_object_get_ex(req, "to", &to) || !json_object_is_type(to, json_type_array) ||
        (nto = json_object_array_length(to)) == 0 || nto > INNER_ADDRESSES_MAX)
        return reply_error(rep, 400, "bad_recipients");
    for (size_t i = 0; i < nto; i++) {
        json_object *a = json_object_array_get_idx(to, i);
        struct address ad;
        if (!json_object_is_type(a, json_type_string) ||
            addr_parse(json_object_get_string(a), &ad) != 0)
            return reply_error(rep, 400, "bad_recipients");
        addrs[i] = json_object_get_string(a);
    }
    dr.addresses = addrs;
    dr.naddresses = nto;
    if ((prec = j_get_str(req, "precedence", &l)) == NULL ||
        inner_precedence_parse(prec, &dr.precedence) != 0)
        return reply_error(rep, 400, "bad_precedence");
    if ((dr.label = j_get_str(req, "label", &l)) == NULL || !inner_valid_label(dr.label))
        return reply_error(rep, 400, "bad_label");
    if ((dr.subject = j_get_str(req, "subject", &l)) == NULL || l > INNER_SUBJECT_MAX ||
        !inner_valid_subject((const uint8_t *)dr.subject, l))
        return reply_error(rep, 400, "bad_subject");
    if ((body = j_get_str(req, "body", &bl)) == NULL || bl == 0)
        return reply_error(rep, 400, "empty_body");
    if (bl > INNER_CONTENT_MAX)
        return reply_error(rep, 400, "body_too_large");
    dr.content = (const uint8_t *)body;
    dr.content_len = bl;
    if ((o = json_object_new_object()) == NULL || (ids = json_object_new_array()) == NULL ||
        j_add(o, "queued", ids) != 0) {
        r = VERR_NOMEM;
        goto out;
    }
    /* One message, durably in the outbox (as `valise send`). */
    r = mbox_send(d->m, &dr, now, id);
    if (r == VERR_AMBIGUOUS) {
        r = reply_error(rep, 409, "ambiguous_person");
        goto out;
    }
    if (r == VERR_EXISTS) {
        r = reply_error(rep, 400, "bad_recipients");
        goto out;
    }
    if (r != 0)
        goto out;
    if ((r = text_hex_encode(hex, sizeof(hex), id, sizeof(id))) != 0 ||
        (r = json_object_array_add(ids, json_object_new_string(hex))) != 0)
        goto out;
    r = j_reply(o, 200, rep);
out:
    json_object_put(o);
    return r;
}

static int api_unlock(struct desk *d, json_object *req, uint64_t now, struct desk_reply *rep)
{
    struct mbox *m = NULL;
    const char *pass;
    size_t pl = 0;
    int r;

    if (d->m != NULL)
        return reply_error(rep, 409, "not_locked");
    if ((pass = j_get_str(req, "passphrase", &pl)) == NULL || pl == 0 || pl > 1024 ||
        strlen(pass) != pl)
        return reply_error(rep, 400, "bad_passphrase");
    r = mbox_open(&m, d->home, pass);
    if (r == VERR_DECRYPT)
        return reply_error(rep, 403, "wrong_passphrase");
    if (r != 0)
        return r;
    d->m = m;
    d->last_activity = now;
    d->locked_sent = 0;
    return api_state(d, now, rep);
}

static void desk_lock(struct desk *d)
{
    mbox_close(d->m); /* wipes the keys (identity_free) */
    d->m = NULL;
}

int desk_api(struct desk *d, int post, const char *path, const uint8_t *body, size_t len,
             uint64_t now, struct desk_reply *rep)
{
    json_object *req = NULL;
    int r = VERR_INTERNAL;

    memset(rep, 0, sizeof(*rep));
    if (post) {
        if (j_parse(body, len, &req) != 0) {
            r = reply_error(rep, 400, "bad_request");
            goto out;
        }
        /* Any POST is the person at the page (the page polls with GET only). */
        d->last_activity = now;
    }
    if (strcmp(path, "/api/state") == 0 && !post) {
        r = api_state(d, now, rep);
        goto out;
    }
    if (strcmp(path, "/api/activity") == 0 && post) {
        r = api_state(d, now, rep);
        goto out;
    }
    if (strcmp(path, "/api/unlock") == 0 && post) {
        r = api_unlock(d, req, now, rep);
        j_wipe_str(req, "passphrase");
        goto out;
    }
    if (d->m == NULL) {
        r = reply_error(rep, 423, "locked");
        goto out;
    }
    if (strcmp(path, "/api/lock") == 0 && post) {
        desk_lock(d);
        r = api_state(d, now, rep);
    } else if (strcmp(path, "/api/inbox") == 0 && !post) {
        r = api_inbox(d, rep);
    } else if (strcmp(path, "/api/outbox") == 0 && !post) {
        r = api_outbox(d, rep);
    } else if (strcmp(path, "/api/directory") == 0 && !post) {
        r = api_directory(d, now, rep);
    } else if (strcmp(path, "/api/read") == 0 && post) {
        r = api_read(d, req, now, rep);
    } else if (strcmp(path, "/api/fingerprint") == 0 && post) {
        r = api_fingerprint(d, req, now, rep);
    } else if (strcmp(path, "/api/send") == 0 && post) {
        r = api_send(d, req, now, rep);
        j_wipe_str(req, "body");
    } else {
        r = reply_error(rep, 404, "no_such_call");
    }
out:
    json_object_put(req);
    if (r != 0)
        desk_reply_free(rep);
    return r;
}

void desk_reply_free(struct desk_reply *rep)
{
    if (rep == NULL)
        return;
    sodium_free(rep->body); /* wipes */
    memset(rep, 0, sizeof(*rep));
}

void desk_link_alive(struct desk *d, uint64_t now)
{
    d->link_alive = now;
}

/* ---- events ---- */

static int desk_event(const char *type, int flash, char **event)
{
    json_object *o = json_object_new_object();
    const char *s;
    int r = VERR_NOMEM;

    *event = NULL;
    if (o == NULL)
        return VERR_NOMEM;
    if ((r = j_str(o, "type", type)) != 0 || (r = j_int(o, "flash", flash)) != 0)
        goto out;
    r = VERR_NOMEM;
    if ((s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) == NULL ||
        (*event = strdup(s)) == NULL)
        goto out;
    r = 0;
out:
    json_object_put(o);
    return r;
}

int desk_tick(struct desk *d, uint64_t now, char **event)
{
    struct mbox_msg *in = NULL;
    struct mbox_out *ob = NULL;
    size_t nin = 0, nob = 0;
    crypto_generichash_state h;
    uint8_t digest[crypto_generichash_BYTES];
    uint64_t maxseq = d->seen_seq;
    int flash = 0, r;

    *event = NULL;
    if (d->m != NULL && now >= d->last_activity + d->idle_secs)
        desk_lock(d);
    if (d->m == NULL) {
        if (d->locked_sent)
            return 0;
        d->locked_sent = 1;
        return desk_event("locked", 0, event);
    }
    /* Inbox and outbox in brief: a change is pushed, the page asks for the lists. */
    if ((r = mbox_inbox(d->m, &in, &nin)) != 0)
        goto out;
    if ((r = mbox_outbox(d->m, &ob, &nob)) != 0)
        goto out;
    crypto_generichash_init(&h, NULL, 0, sizeof(digest));
    for (size_t i = 0; i < nin; i++) {
        uint8_t rec[9];
        memcpy(rec, &in[i].seq, 8);
        rec[8] = (uint8_t)in[i].read;
        crypto_generichash_update(&h, rec, sizeof(rec));
        if (in[i].seq > d->seen_seq && in[i].precedence == WIRE_FLASH && !in[i].read)
            flash++;
        if (in[i].seq > maxseq)
            maxseq = in[i].seq;
    }
    for (size_t i = 0; i < nob; i++) {
        crypto_generichash_update(&h, (const uint8_t *)&ob[i].seq, 8);
        for (size_t j = 0; j < ob[i].ndev; j++) {
            uint8_t st = (uint8_t)ob[i].dev[j].state;
            crypto_generichash_update(&h, &st, 1);
        }
    }
    crypto_generichash_final(&h, digest, sizeof(digest));
    d->seen_seq = maxseq;
    if (memcmp(digest, d->digest, sizeof(digest)) == 0 && flash == 0) {
        r = 0;
        goto out;
    }
    memcpy(d->digest, digest, sizeof(digest));
    r = desk_event("changed", flash, event);
out:
    if (in != NULL)
        sodium_memzero(in, nin * sizeof(*in));
    free(in);
    mbox_outbox_free(ob, nob);
    return r;
}
