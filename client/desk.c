/*
 * desk.c - the session behind `valise desk` (desk.h; issue 14): request
 * checks, the JSON API over the mailbox, idle locking and page events.
 * JSON is read and written with json-c only.
 */
#include "desk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "address.h"
#include "attach.h"
#include "dir.h"
#include "fileio.h"
#include "mailbox.h"
#include "mbox_attach.h"
#include "text.h"
#include "utf8.h"
#include "wire.h"

/* An uploaded, sealed attachment waiting for its POST /api/send. */
struct desk_handle {
    int used;
    uint8_t handle[DESK_SECRET_LEN / 2];
    uint64_t expires;
    struct attach_desc a; /* holds the file key */
};

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
    /* attachments of composes in progress (issue 13 item 2) */
    struct desk_handle att[DESK_ATTACH_HANDLES];
    size_t uploading;
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

/* Deletes the upload-* folders (plaintext being uploaded) a stopped desk left in HOME/attach. */
static void desk_sweep_uploads(const char *home)
{
    char dir[4200];
    DIR *top;
    struct dirent *e;

    if (file_join(dir, sizeof(dir), home, "attach") != 0 || (top = opendir(dir)) == NULL)
        return;
    while ((e = readdir(top)) != NULL) {
        const char *nm = e->d_name;
        int fd;
        DIR *sub;
        struct dirent *f;
        if (strncmp(nm, "upload-", 7) != 0 || strlen(nm) != 7 + 16 ||
            strspn(nm + 7, "0123456789abcdef") != 16)
            continue;
        if ((fd = openat(dirfd(top), nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
            continue;
        if ((sub = fdopendir(fd)) == NULL) {
            close(fd);
            continue;
        }
        while ((f = readdir(sub)) != NULL)
            if (strcmp(f->d_name, ".") != 0 && strcmp(f->d_name, "..") != 0)
                (void)unlinkat(fd, f->d_name, 0);
        closedir(sub);
        (void)unlinkat(dirfd(top), nm, AT_REMOVEDIR);
    }
    closedir(top);
}

/* A handle's sealed copy deleted, its key wiped (never sent). */
static void desk_handle_drop(struct desk *d, struct desk_handle *h)
{
    if (!h->used)
        return;
    if (d->m != NULL)
        mba_discard(d->m, &h->a);
    sodium_memzero(h, sizeof(*h));
}

static void desk_handles_drop_all(struct desk *d)
{
    for (size_t i = 0; i < DESK_ATTACH_HANDLES; i++)
        desk_handle_drop(d, &d->att[i]);
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
    desk_sweep_uploads(d->home);
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
    desk_handles_drop_all(d);
    mbox_close(d->m);
    sodium_free(d); /* wipes the token, the cookie and the handles' keys */
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

/* An id or a prefix of 8+ hex digits, optionally "/SENDER" (mbox_read). */
static int desk_id_ok(const char *id, size_t idl)
{
    return id != NULL && idl >= 8 && idl <= 2 * INNER_ID_LEN + 1 + 2 * DEVICE_ID_LEN &&
           strspn(id, "0123456789abcdefABCDEF/") == idl;
}

/* enum mba_up in the page's words (web/desk: up_* and att_upload_*). */
static const char *upload_state_name(int state)
{
    return state == MBA_UP_DONE      ? "uploaded"
           : state == MBA_UP_SENDING ? "uploading"
           : state == MBA_UP_REFUSED ? "refused"
           : state == MBA_UP_LOST    ? "lost"
                                     : "waiting";
}

/*
 * The attachments of a message read: name, size, media type (the sender's
 * text, made visible) and where this device's copy stands, in the words of
 * `valise read` (state: complete, part, gone, bad; or, for one this person
 * sent, upload_waiting, upload_uploading (held of chunks confirmed by the
 * relay), upload_uploaded, upload_refused, upload_lost, upload_elsewhere for
 * a copy sent from another device).
 */
static int j_read_attachments(struct desk *d, json_object *o, const struct mbox_msg *msg)
{
    json_object *arr;
    int r;

    if ((arr = json_object_new_array()) == NULL || (r = j_add(o, "attachments", arr)) != 0)
        return VERR_NOMEM;
    if (msg->n_attach == 0)
        return 0;
    for (size_t i = 0; i < msg->n_attach; i++) {
        const struct attach_desc *a = &msg->attach[i];
        json_object *e = json_object_new_object();
        char st[32] = "unknown";
        int have = 0;
        uint32_t held = 0, c = attach_chunk_count(a->size);
        if (e == NULL || json_object_array_add(arr, e) != 0) {
            json_object_put(e);
            r = VERR_NOMEM;
            goto out;
        }
        if (msg->sent) {
            struct mba_up_state us;
            if ((r = mba_upload_state(d->m, a->id, a->size, &us)) != 0)
                goto out;
            if (us.state == MBA_UP_NONE)
                snprintf(st, sizeof(st), "upload_elsewhere");
            else
                snprintf(st, sizeof(st), "upload_%s", upload_state_name(us.state));
            held = us.stored;
        } else if (mba_state(d->m, a, msg->sender_id, &have, &held, &c) == 0) {
            snprintf(st, sizeof(st), "%s",
                     have == MBA_HAVE_COMPLETE ? "complete"
                     : have == MBA_HAVE_GONE   ? "gone"
                     : have == MBA_HAVE_BAD    ? "bad"
                                               : "part");
        }
        if ((r = j_u64(e, "n", i + 1)) != 0 || (r = j_text(e, "name", a->name)) != 0 ||
            (r = j_u64(e, "size", a->size)) != 0 || (r = j_text(e, "type", a->type)) != 0 ||
            (r = j_str(e, "state", st)) != 0 || (r = j_u64(e, "held", held)) != 0 ||
            (r = j_u64(e, "chunks", c)) != 0)
            goto out;
    }
    r = 0;
out:
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
    if (!desk_id_ok(id, idl))
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
        (r = j_add(o, "body", json_object_new_string(body))) != 0 ||
        (r = j_read_attachments(d, o, &msg)) != 0)
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

/* An outbox message's uploads: {"size","state","reason","held","chunks"} each (mbox_attach.h). */
static int j_outbox_uploads(json_object *e, uint64_t seq, const struct mba_upload *up, size_t nup)
{
    json_object *arr = json_object_new_array();
    int r;

    if (arr == NULL || (r = j_add(e, "attachments", arr)) != 0)
        return VERR_NOMEM;
    for (size_t k = 0; k < nup; k++) {
        json_object *a;
        if (up[k].seq != seq)
            continue;
        if ((a = json_object_new_object()) == NULL || json_object_array_add(arr, a) != 0) {
            json_object_put(a);
            return VERR_NOMEM;
        }
        if ((r = j_u64(a, "size", up[k].size)) != 0 ||
            (r = j_str(a, "state", upload_state_name(up[k].st.state))) != 0 ||
            (r = j_str(a, "reason",
                       up[k].st.reason != 0 ? wire_reason_name(up[k].st.reason) : "")) != 0 ||
            (r = j_u64(a, "held", up[k].st.stored)) != 0 || (r = j_u64(a, "chunks", up[k].st.c)) != 0)
            return r;
    }
    return 0;
}

static int api_outbox(struct desk *d, struct desk_reply *rep)
{
    struct mbox_out *list = NULL;
    struct mba_upload *up = NULL;
    size_t n = 0, nup = 0;
    json_object *o = NULL, *arr;
    int r;

    if ((r = mbox_outbox(d->m, &list, &n)) != 0)
        return r;
    if ((r = mba_uploads(d->m, &up, &nup)) != 0)
        goto out;
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
            (r = j_add(e, "resolved", json_object_new_boolean(x->resolved))) != 0 ||
            (r = j_outbox_uploads(e, x->seq, up, nup)) != 0)
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
    free(up);
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

/* A live handle by its hex (32 digits), or NULL. */
static struct desk_handle *desk_handle_find(struct desk *d, const char *hex, size_t len)
{
    uint8_t h[DESK_SECRET_LEN / 2];

    if (hex == NULL || len != 2 * sizeof(h) || text_hex_decode(h, sizeof(h), hex) != 0)
        return NULL;
    for (size_t i = 0; i < DESK_ATTACH_HANDLES; i++)
        if (d->att[i].used && sodium_memcmp(d->att[i].handle, h, sizeof(h)) == 0)
            return &d->att[i];
    return NULL;
}

/*
 * The "attachments" of a send: absent, or 0..ATTACH_MAX handles, each
 * once. *n handles into hs; 0, or an answer already in rep (*refused).
 */
static int send_handles(struct desk *d, json_object *req, struct desk_handle **hs, size_t *n,
                        struct desk_reply *rep, int *refused)
{
    json_object *arr;
    size_t k;

    *n = 0;
    *refused = 0;
    if (!json_object_object_get_ex(req, "attachments", &arr))
        return 0;
    *refused = 1;
    if (!json_object_is_type(arr, json_type_array) ||
        (k = json_object_array_length(arr)) > ATTACH_MAX)
        return reply_error(rep, 400, "bad_attachments");
    for (size_t i = 0; i < k; i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        struct desk_handle *h;
        if (!json_object_is_type(v, json_type_string))
            return reply_error(rep, 400, "bad_attachments");
        if ((h = desk_handle_find(d, json_object_get_string(v),
                                  (size_t)json_object_get_string_len(v))) == NULL)
            return reply_error(rep, 410, "attachment_expired"); /* attach it again */
        for (size_t j = 0; j < i; j++)
            if (hs[j] == h)
                return reply_error(rep, 400, "bad_attachments");
        hs[i] = h;
    }
    *n = k;
    *refused = 0;
    return 0;
}

/*
 * POST /api/send: {"to":[ADDRESS...],"precedence":P,"label":L,"subject":S,"body":B,
 * "attachments":[HANDLE...]}: one message to every address (1..16, no two
 * alike), one id (issue 12, item 6); the attachments uploaded by POST
 * /api/attach, as `valise send --attach` (issue 13 item 2; the body may then be empty).
 */
static int api_send(struct desk *d, json_object *req, uint64_t now, struct desk_reply *rep)
{
    json_object *to, *o = NULL, *ids;
    const char *addrs[INNER_ADDRESSES_MAX];
    struct mbox_draft dr;
    struct desk_handle *hs[ATTACH_MAX];
    struct attach_desc *descs = NULL;
    struct buf section = {0};
    const char *prec, *body;
    size_t nto, l = 0, bl = 0, nh = 0;
    int refused = 0;
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
    if ((r = send_handles(d, req, hs, &nh, rep, &refused)) != 0 || refused)
        return r;
    if ((body = j_get_str(req, "body", &bl)) == NULL || (bl == 0 && nh == 0))
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
    if (nh > 0) {
        /* the section of the signed message, as `valise send --attach` makes it */
        if ((descs = sodium_malloc(ATTACH_MAX * sizeof(*descs))) == NULL) {
            r = VERR_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < nh; i++)
            descs[i] = hs[i]->a;
        if ((r = buf_init(&section, ATTACH_SECTION_MAX, BUF_SECRET)) != 0 ||
            (r = attach_section_encode(descs, nh, &section)) != 0)
            goto out;
        dr.attach_section = buf_data(&section);
        dr.attach_section_len = buf_size(&section);
    }
    /* One message, durably in the outbox (as `valise send`). */
    r = mbox_send(d->m, &dr, now, id);
    if (r == 0)
        for (size_t i = 0; i < nh; i++) /* the sealed copies are the uploads' now */
            sodium_memzero(hs[i], sizeof(*hs[i]));
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
    sodium_free(descs); /* wipes the keys */
    buf_free(&section);
    return r;
}

/* POST /api/attach_drop {"handle":H}: removed from a compose before sending. */
static int api_attach_drop(struct desk *d, json_object *req, struct desk_reply *rep)
{
    json_object *o;
    struct desk_handle *h;
    const char *hex;
    size_t hl = 0;
    int r;

    hex = j_get_str(req, "handle", &hl);
    if ((h = desk_handle_find(d, hex, hl)) == NULL)
        return reply_error(rep, 404, "attachment_expired");
    desk_handle_drop(d, h);
    if ((o = json_object_new_object()) == NULL)
        return VERR_NOMEM;
    if ((r = j_add(o, "dropped", json_object_new_boolean(1))) == 0)
        r = j_reply(o, 200, rep);
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
    desk_handles_drop_all(d); /* attachments not sent yet: deleted, keys wiped */
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
    } else if (strcmp(path, "/api/attach_drop") == 0 && post) {
        r = api_attach_drop(d, req, rep);
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
    struct mba_upload *up = NULL;
    size_t nin = 0, nob = 0, nup = 0;
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
    for (size_t i = 0; i < DESK_ATTACH_HANDLES; i++)
        if (d->att[i].used && now >= d->att[i].expires)
            desk_handle_drop(d, &d->att[i]); /* an abandoned compose leaves nothing */
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
    /* uploads finishing change the outbox page too */
    if ((r = mba_uploads(d->m, &up, &nup)) != 0)
        goto out;
    for (size_t i = 0; i < nup; i++) {
        uint8_t st = (uint8_t)up[i].st.state;
        crypto_generichash_update(&h, up[i].id, ATTACH_ID_LEN);
        crypto_generichash_update(&h, &st, 1);
        crypto_generichash_update(&h, (const uint8_t *)&up[i].st.stored, sizeof(up[i].st.stored));
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
    free(up);
    return r;
}

/* ---- attachments: upload, download (issue 13 item 2) ---- */

struct desk_upload {
    struct desk *d;
    char dir[4200];
    char path[4500];
    uint64_t len, got;
    int fd;
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int desk_name_decode(const char *pct, char out[static 256])
{
    /* what encodeURIComponent leaves as it is (ECMA-262 section 19.2.6.5) */
    static const char plain[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()";
    size_t w = 0;

    out[0] = 0;
    if (pct == NULL || strlen(pct) > DESK_NAME_PCT_MAX)
        return VERR_BAD_FORMAT;
    for (const char *p = pct; *p != 0; p++) {
        int hi, lo;
        if (w == ATTACH_NAME_MAX)
            return VERR_BAD_FORMAT;
        if (*p != '%') {
            if (strchr(plain, *p) == NULL)
                return VERR_BAD_FORMAT;
            out[w++] = *p;
            continue;
        }
        if ((hi = hexval(p[1])) < 0 || (lo = hexval(p[2])) < 0)
            return VERR_BAD_FORMAT;
        out[w++] = (char)(hi * 16 + lo);
        p += 2;
    }
    out[w] = 0;
    /* a NUL inside, a '/', controls, bidi, invalid UTF-8, "." or "..": refused */
    if (strlen(out) != w || !attach_valid_name(out)) {
        sodium_memzero(out, 256);
        return VERR_BAD_FORMAT;
    }
    return 0;
}

int desk_disposition(const char *name, char *out, size_t outsz)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t nl = strlen(name), w = 0;
    int n;

    /* 'attachment; filename="' + nl + '"; filename*=UTF-8\'\'' + 3 nl + NUL */
    if (nl > ATTACH_NAME_MAX || outsz < 48 + 4 * nl)
        return VERR_TOO_LARGE;
    n = snprintf(out, outsz, "attachment; filename=\"");
    w = (size_t)n;
    for (size_t i = 0; i < nl; i++) {
        char c = name[i];
        int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == ' ' || c == '.' || c == '_' || c == '-' || c == '(' || c == ')';
        out[w++] = keep && !(i == 0 && c == '.') ? c : '_';
    }
    n = snprintf(out + w, outsz - w, "\"; filename*=UTF-8''");
    w += (size_t)n;
    for (size_t i = 0; i < nl; i++) {
        unsigned char c = (unsigned char)name[i];
        /* RFC 8187 section 3.2.1 attr-char */
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("!#$&+-.^_`|~", (int)c) != NULL) {
            out[w++] = (char)c;
        } else {
            out[w++] = '%';
            out[w++] = hexd[c >> 4];
            out[w++] = hexd[c & 15];
        }
    }
    out[w] = 0;
    return 0;
}

const char *desk_safe_type(const char *type)
{
    /* what the browser may know the file as; never HTML, SVG, XML or script */
    static const char *const ok[] = {
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/tiff",
        "text/plain",
        "application/zip",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (type != NULL && strcmp(type, ok[i]) == 0)
            return ok[i];
    return "application/octet-stream";
}

static size_t desk_handles_live(const struct desk *d)
{
    size_t n = d->uploading;

    for (size_t i = 0; i < DESK_ATTACH_HANDLES; i++)
        n += d->att[i].used != 0;
    return n;
}

int desk_upload_begin(struct desk *d, const char *name_pct, const char *length, uint64_t now,
                      struct desk_upload **out, struct desk_reply *rep)
{
    struct desk_upload *up = NULL;
    char name[ATTACH_NAME_MAX + 1], attdir[4200], tag[17];
    uint8_t rnd[8];
    uint64_t len = 0;
    int r = VERR_INTERNAL;

    *out = NULL;
    memset(rep, 0, sizeof(*rep));
    if (d->m == NULL)
        return reply_error(rep, 423, "locked");
    d->last_activity = now; /* the person at the page */
    if (length == NULL || text_parse_u64(length, 0, UINT64_MAX, &len) != 0)
        return reply_error(rep, 411, "length_required");
    if (desk_name_decode(name_pct, name) != 0)
        return reply_error(rep, 400, "bad_name");
    /* the rules of `valise send --attach` (attach_precheck) */
    if (len == 0)
        return reply_error(rep, 400, "empty_file");
    if (len > ATTACH_SIZE_MAX)
        return reply_error(rep, 413, "file_too_large");
    if (desk_handles_live(d) >= DESK_ATTACH_HANDLES)
        return reply_error(rep, 429, "too_many_attachments");
    if ((up = calloc(1, sizeof(*up))) == NULL)
        return VERR_NOMEM;
    up->fd = -1;
    randombytes_buf(rnd, sizeof(rnd));
    if ((r = text_hex_encode(tag, sizeof(tag), rnd, sizeof(rnd))) != 0 ||
        (r = file_join(attdir, sizeof(attdir), d->home, "attach")) != 0 ||
        (r = file_mkdir_private(attdir)) != 0)
        goto out;
    if (snprintf(up->dir, sizeof(up->dir), "%s/upload-%s", attdir, tag) >= (int)sizeof(up->dir) ||
        (r = file_join(up->path, sizeof(up->path), up->dir, name)) != 0) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    if (mkdir(up->dir, 0700) != 0) {
        up->dir[0] = 0;
        r = VERR_IO;
        goto out;
    }
    if ((up->fd = open(up->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) <
        0) {
        r = VERR_IO;
        goto out;
    }
    up->d = d;
    up->len = len;
    d->uploading++;
    *out = up;
    up = NULL; /* the caller's now */
    r = 0;
out:
    if (up != NULL) {
        if (up->dir[0] != 0)
            (void)rmdir(up->dir);
        free(up);
    }
    sodium_memzero(name, sizeof(name));
    if (r == VERR_IO || r == VERR_TOO_LARGE)
        r = reply_error(rep, 500, "attach_failed");
    return r;
}

int desk_upload_write(struct desk_upload *up, const uint8_t *p, size_t n)
{
    size_t done = 0;

    if (n > up->len - up->got)
        return VERR_TOO_LARGE; /* more than its Content-Length */
    while (done < n) {
        ssize_t k = write(up->fd, p + done, n - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return errno == ENOSPC ? VERR_NOSPACE : VERR_IO;
        done += (size_t)k;
    }
    up->got += n;
    return 0;
}

/* The plaintext copy deleted, the upload freed. */
static void desk_upload_free(struct desk_upload *up)
{
    if (up == NULL)
        return;
    if (up->fd >= 0)
        close(up->fd);
    (void)unlink(up->path);
    (void)rmdir(up->dir);
    if (up->d != NULL && up->d->uploading > 0)
        up->d->uploading--;
    free(up);
}

void desk_upload_abort(struct desk_upload *up)
{
    desk_upload_free(up);
}

int desk_upload_end(struct desk_upload *up, uint64_t now, struct desk_reply *rep)
{
    struct desk *d = up->d;
    struct desk_handle *h = NULL;
    json_object *o = NULL;
    char hex[DESK_SECRET_LEN + 1];
    int r = VERR_INTERNAL;

    memset(rep, 0, sizeof(*rep));
    if (up->got != up->len) {
        r = reply_error(rep, 400, "upload_incomplete");
        goto out;
    }
    if (d->m == NULL) {
        r = reply_error(rep, 423, "locked");
        goto out;
    }
    close(up->fd);
    up->fd = -1;
    for (size_t i = 0; i < DESK_ATTACH_HANDLES && h == NULL; i++)
        if (!d->att[i].used)
            h = &d->att[i];
    if (h == NULL) {
        r = reply_error(rep, 429, "too_many_attachments");
        goto out;
    }
    /* sealed as `valise send --attach` seals a file: name, type, size and hash from it */
    r = mba_seal(d->m, up->path, &h->a, NULL, NULL);
    if (r != 0) {
        sodium_memzero(h, sizeof(*h));
        r = r == VERR_USAGE      ? reply_error(rep, 400, "empty_file")
            : r == VERR_TOO_LARGE ? reply_error(rep, 413, "file_too_large")
            : r == VERR_BAD_FORMAT ? reply_error(rep, 400, "bad_name")
            : r == VERR_NOSPACE    ? reply_error(rep, 507, "no_space")
                                   : reply_error(rep, 500, "attach_failed");
        goto out;
    }
    randombytes_buf(h->handle, sizeof(h->handle));
    h->expires = now + DESK_ATTACH_TTL;
    h->used = 1;
    r = VERR_NOMEM;
    if ((o = json_object_new_object()) == NULL ||
        (r = text_hex_encode(hex, sizeof(hex), h->handle, sizeof(h->handle))) != 0 ||
        (r = j_str(o, "handle", hex)) != 0 || (r = j_text(o, "name", h->a.name)) != 0 ||
        (r = j_u64(o, "size", h->a.size)) != 0 || (r = j_str(o, "type", h->a.type)) != 0 ||
        (r = j_reply(o, 200, rep)) != 0) {
        desk_handle_drop(d, h);
        goto out;
    }
    r = 0;
out:
    json_object_put(o);
    desk_upload_free(up); /* the plaintext copy is gone whatever happened */
    return r;
}

struct desk_download {
    struct attach_reader *rd;
    uint64_t size, left;
    const char *type;
    char disp[DESK_DISPOSITION_MAX];
};

int desk_download_begin(struct desk *d, const char *id, const char *from, const char *nstr,
                        uint64_t now, struct desk_download **out, struct desk_reply *rep)
{
    struct desk_download *dl = NULL;
    struct mbox_msg msg;
    const struct attach_desc *a;
    char ref[2 * INNER_ID_LEN + 1 + 2 * DEVICE_ID_LEN + 1];
    uint64_t n = 0;
    uint32_t held = 0, c = 0;
    int have = 0, r = VERR_INTERNAL;

    *out = NULL;
    memset(rep, 0, sizeof(*rep));
    memset(&msg, 0, sizeof(msg));
    if (d->m == NULL)
        return reply_error(rep, 423, "locked");
    d->last_activity = now; /* the person at the page asked for it */
    /* hex digits only in each part: "ID" or "ID/SENDER" for mbox_read */
    if (id == NULL || strlen(id) < 8 || strlen(id) > 2 * INNER_ID_LEN ||
        strspn(id, "0123456789abcdefABCDEF") != strlen(id) ||
        (from != NULL && (strlen(from) < 8 || strlen(from) > 2 * DEVICE_ID_LEN ||
                          strspn(from, "0123456789abcdefABCDEF") != strlen(from))))
        return reply_error(rep, 400, "bad_id");
    snprintf(ref, sizeof(ref), "%s%s%s", id, from != NULL ? "/" : "", from != NULL ? from : "");
    if (nstr == NULL || text_parse_u64(nstr, 1, ATTACH_MAX, &n) != 0)
        return reply_error(rep, 400, "bad_number");
    r = mbox_read(d->m, ref, now, &msg);
    if (r == VERR_UNKNOWN || r == VERR_USAGE)
        return reply_error(rep, 404, "no_such_message");
    if (r != 0)
        return r;
    if (n > msg.n_attach) {
        r = reply_error(rep, 404, "no_such_attachment");
        goto out;
    }
    a = &msg.attach[n - 1];
    if (msg.sent || mba_state(d->m, a, msg.sender_id, &have, &held, &c) != 0 ||
        have != MBA_HAVE_COMPLETE) {
        r = reply_error(rep, 409, "attachment_incomplete");
        goto out;
    }
    if ((dl = calloc(1, sizeof(*dl))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    /* every chunk opened and the sender's SHA-256 checked before a byte leaves */
    if ((r = mba_reader(d->m, a, msg.sender_id, &dl->rd)) == 0) {
        uint8_t *pt = sodium_malloc(ATTACH_CHUNK_PLAIN);
        size_t k = 1;
        if (pt == NULL)
            r = VERR_NOMEM;
        while (r == 0 && k > 0)
            r = attach_reader_next(dl->rd, pt, &k);
        sodium_free(pt);
        attach_reader_close(dl->rd);
        dl->rd = NULL;
    }
    if (r == 0)
        r = mba_reader(d->m, a, msg.sender_id, &dl->rd);
    if (r == VERR_DECRYPT || r == VERR_BAD_FORMAT) {
        r = reply_error(rep, 409, "attachment_damaged");
        goto out;
    }
    if (r == VERR_UNKNOWN) {
        r = reply_error(rep, 409, "attachment_incomplete");
        goto out;
    }
    if (r != 0 || (r = desk_disposition(a->name, dl->disp, sizeof(dl->disp))) != 0)
        goto out;
    dl->size = dl->left = a->size;
    dl->type = desk_safe_type(a->type);
    *out = dl;
    dl = NULL; /* the caller's now */
    r = 0;
out:
    desk_download_end(dl);
    mbox_msg_clear(&msg);
    return r;
}

uint64_t desk_download_size(const struct desk_download *dl)
{
    return dl->size;
}

uint64_t desk_download_left(const struct desk_download *dl)
{
    return dl->left;
}

const char *desk_download_type(const struct desk_download *dl)
{
    return dl->type;
}

const char *desk_download_disposition(const struct desk_download *dl)
{
    return dl->disp;
}

int desk_download_next(struct desk_download *dl, uint8_t *out, size_t *n)
{
    int r;

    _Static_assert((int)DESK_DOWNLOAD_CHUNK == (int)ATTACH_CHUNK_PLAIN, "one chunk per piece");
    *n = 0;
    if (dl->left == 0)
        return 0;
    if ((r = attach_reader_next(dl->rd, out, n)) != 0)
        return r;
    if (*n == 0 || *n > dl->left)
        return VERR_DECRYPT; /* fewer or more bytes than the signed size: never completed */
    dl->left -= *n;
    return 0;
}

void desk_download_end(struct desk_download *dl)
{
    if (dl == NULL)
        return;
    attach_reader_close(dl->rd);
    free(dl);
}
