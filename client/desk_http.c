/*
 * desk_http.c - HTTP and websocket for `valise desk` on libwebsockets
 * (desk_http.h). Request checks and answers come from desk.c.
 */
#include "desk_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <sodium.h>

#include "desk.h"
#include "fileio.h"
#include "session.h"

enum {
    DH_MAX_PAGES = 16,   /* open websockets */
    DH_EVENTS = 8,       /* events queued per page */
    DH_HDR_MAX = 4096,   /* header values we read */
    DH_CHUNK = 16384,    /* body bytes per write */
    DH_FILE_MAX = 1 << 20,
};

struct dh_conn {
    /* HTTP */
    int post;
    char path[64];
    uint8_t *body; /* request body (sodium_malloc'ed, DESK_BODY_MAX) */
    size_t body_len;
    int body_over;
    int status;
    const char *ctype;
    char extra[256]; /* Set-Cookie / Location header line values */
    int extra_kind;  /* 0 none, 1 login (cookie + location) */
    uint8_t *resp;   /* sodium_malloc'ed */
    size_t resp_len, resp_off;
    int headers_sent;
    /* attachments (issue 13 item 2): an upload being received, a download being sent */
    struct desk_upload *up;
    struct desk_download *dl;
    /* websocket */
    int is_page;
    char *events[DH_EVENTS];
    size_t nevents;
};

struct desk_http {
    struct desk *d;
    struct lws_context *ctx;
    char web_dir[4096];
    uint16_t port;
    struct lws *pages[DH_MAX_PAGES];
    struct dh_conn *page_conn[DH_MAX_PAGES];
    lws_sorted_usec_list_t sul;
    int link_fd, session_fd;
    unsigned ticks;
    int failed;
};

static uint64_t dh_now(void)
{
    return (uint64_t)time(NULL);
}

/* ---- who is connecting ---- */

/*
 * The owner of the peer end of a loopback TCP connection: the line of
 * /proc/net/tcp whose local end is the peer's port and remote end ours
 * (proc(5)). 1 if it is our uid; 0 otherwise or if not found.
 */
static int dh_peer_is_us(int fd)
{
    struct sockaddr_in me, peer;
    socklen_t ml = sizeof(me), pl = sizeof(peer);
    char line[512], want_l[32], want_r[32];
    FILE *f;
    int ok = 0;

    if (getsockname(fd, (struct sockaddr *)&me, &ml) != 0 ||
        getpeername(fd, (struct sockaddr *)&peer, &pl) != 0 || me.sin_family != AF_INET ||
        peer.sin_family != AF_INET)
        return 0;
    snprintf(want_l, sizeof(want_l), "%08X:%04X", (unsigned)peer.sin_addr.s_addr,
             (unsigned)ntohs(peer.sin_port));
    snprintf(want_r, sizeof(want_r), "%08X:%04X", (unsigned)me.sin_addr.s_addr,
             (unsigned)ntohs(me.sin_port));
    if ((f = fopen("/proc/net/tcp", "r")) == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char loc[64], rem[64];
        unsigned st, uid;
        unsigned long tx, rx;
        unsigned tr, retr;
        unsigned long when;
        if (sscanf(line, " %*u: %63s %63s %x %lx:%lx %x:%lx %x %u", loc, rem, &st, &tx, &rx, &tr,
                   &when, &retr, &uid) != 9)
            continue;
        if (strcmp(loc, want_l) == 0 && strcmp(rem, want_r) == 0) {
            ok = uid == (unsigned)getuid();
            break;
        }
    }
    fclose(f);
    return ok;
}

/* ---- answers ---- */

static void dh_conn_reset(struct dh_conn *c)
{
    desk_upload_abort(c->up); /* a connection that ended mid-upload leaves nothing */
    desk_download_end(c->dl);
    c->up = NULL;
    c->dl = NULL;
    sodium_free(c->body);
    sodium_free(c->resp);
    c->body = NULL;
    c->resp = NULL;
    c->body_len = c->resp_len = c->resp_off = 0;
    c->body_over = 0;
    c->headers_sent = 0;
    c->extra_kind = 0;
    c->status = 0;
}

static int dh_set_resp(struct dh_conn *c, int status, const char *ctype, const void *p, size_t n)
{
    sodium_free(c->resp);
    if ((c->resp = sodium_malloc(n + 1)) == NULL)
        return -1;
    memcpy(c->resp, p, n);
    c->resp_len = n;
    c->resp_off = 0;
    c->status = status;
    c->ctype = ctype;
    return 0;
}

/* A refusal: status and a fixed JSON code (never request bytes). */
static int dh_refuse(struct lws *wsi, struct dh_conn *c, int status, const char *code)
{
    char b[96];
    int n = snprintf(b, sizeof(b), "{\"error\":\"%s\"}", code);

    if (n < 0 || dh_set_resp(c, status, "application/json", b, (size_t)n) != 0)
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int dh_hdr(struct lws *wsi, enum lws_token_indexes t, char *out, int outsz)
{
    int n = lws_hdr_total_length(wsi, t);

    out[0] = 0;
    if (n <= 0)
        return 0;
    if (n >= outsz || lws_hdr_copy(wsi, out, outsz, t) < 0)
        return -1;
    return 1;
}

/* The page's files: a fixed list, nothing else is served from web_dir. */
static const struct {
    const char *path, *file, *ctype;
} dh_files[] = {
    {"/", "index.html", "text/html; charset=utf-8"},
    {"/desk.css", "desk.css", "text/css; charset=utf-8"},
    {"/desk.js", "desk.js", "text/javascript; charset=utf-8"},
    {"/i18n/en.json", "i18n/en.json", "application/json"},
    {"/i18n/id.json", "i18n/id.json", "application/json"},
};

static int dh_serve_file(struct desk_http *h, struct lws *wsi, struct dh_conn *c, const char *path)
{
    for (size_t i = 0; i < sizeof(dh_files) / sizeof(dh_files[0]); i++) {
        char fp[4200];
        struct buf b;
        int r;
        if (strcmp(path, dh_files[i].path) != 0)
            continue;
        if (file_join(fp, sizeof(fp), h->web_dir, dh_files[i].file) != 0 ||
            file_read(fp, DH_FILE_MAX, 0, &b) != 0)
            return dh_refuse(wsi, c, 500, "page_files_missing");
        r = dh_set_resp(c, 200, dh_files[i].ctype, buf_data(&b), buf_size(&b));
        buf_free(&b);
        if (r != 0)
            return -1;
        lws_callback_on_writable(wsi);
        return 0;
    }
    return dh_refuse(wsi, c, 404, "not_found");
}

static int dh_api(struct desk_http *h, struct lws *wsi, struct dh_conn *c)
{
    struct desk_reply rep;
    int r = desk_api(h->d, c->post, c->path, c->body, c->body_len, dh_now(), &rep);

    if (r != 0)
        return dh_refuse(wsi, c, 500, "internal");
    r = dh_set_resp(c, rep.status, "application/json", rep.body, rep.len);
    desk_reply_free(&rep);
    if (r != 0)
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int dh_add_hdr(struct lws *wsi, const char *name, const char *v, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v,
                                       (int)strlen(v), p, end);
}

static int dh_write_headers(struct desk_http *h, struct lws *wsi, struct dh_conn *c)
{
    uint8_t buf[LWS_PRE + 4096];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    char csp[512];

    /*
     * CSP level 3: scripts, styles and connections only from this origin;
     * no inline script or style, no framing, no forms elsewhere.
     */
    snprintf(csp, sizeof(csp),
             "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
             "connect-src 'self' ws://127.0.0.1:%u; frame-ancestors 'none'; base-uri 'none'; "
             "form-action 'none'",
             (unsigned)h->port);
    if (lws_add_http_header_status(wsi, (unsigned)c->status, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (const unsigned char *)c->ctype, (int)strlen(c->ctype), &p,
                                     end) ||
        lws_add_http_header_content_length(
            wsi, c->dl != NULL ? desk_download_size(c->dl) : c->resp_len, &p, end) ||
        dh_add_hdr(wsi, "content-security-policy:", csp, &p, end) ||
        dh_add_hdr(wsi, "x-content-type-options:", "nosniff", &p, end) ||
        dh_add_hdr(wsi, "x-frame-options:", "DENY", &p, end) ||
        dh_add_hdr(wsi, "referrer-policy:", "no-referrer", &p, end) ||
        dh_add_hdr(wsi, "cross-origin-opener-policy:", "same-origin", &p, end) ||
        dh_add_hdr(wsi, "cross-origin-resource-policy:", "same-origin", &p, end) ||
        dh_add_hdr(wsi, "cache-control:", "no-store", &p, end))
        return -1;
    if (c->extra_kind == 1 && (dh_add_hdr(wsi, "set-cookie:", c->extra, &p, end) ||
                               dh_add_hdr(wsi, "location:", "/", &p, end)))
        return -1;
    /* a saved attachment: always a download, never shown in the page (RFC 6266) */
    if (c->dl != NULL &&
        dh_add_hdr(wsi, "content-disposition:", desk_download_disposition(c->dl), &p, end))
        return -1;
    if (lws_finalize_http_header(wsi, &p, end))
        return -1;
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) != (int)(p - start))
        return -1;
    c->headers_sent = 1;
    return 0;
}

/*
 * A saved attachment, one chunk per writeable callback. A chunk or the hash
 * failing on the way cuts the connection: the browser sees fewer bytes than
 * Content-Length and keeps no file.
 */
static int dh_write_download(struct lws *wsi, struct dh_conn *c)
{
    uint8_t buf[LWS_PRE + DESK_DOWNLOAD_CHUNK];
    size_t n = 0;
    int r, last;

    if (desk_download_next(c->dl, buf + LWS_PRE, &n) != 0 || n == 0) {
        sodium_memzero(buf, sizeof(buf));
        return -1;
    }
    last = desk_download_left(c->dl) == 0;
    r = lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    sodium_memzero(buf, sizeof(buf));
    return r == (int)n ? 0 : -1;
}

static int dh_writeable(struct desk_http *h, struct lws *wsi, struct dh_conn *c)
{
    uint8_t buf[LWS_PRE + DH_CHUNK];
    size_t n;
    int last;

    if (c->status == 0)
        return 0;
    if (!c->headers_sent) {
        if (dh_write_headers(h, wsi, c) != 0)
            return -1;
        if (c->resp_len > 0 || c->dl != NULL) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }
    if (c->dl != NULL) {
        if (dh_write_download(wsi, c) != 0)
            return -1;
        if (desk_download_left(c->dl) > 0) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        dh_conn_reset(c);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    n = c->resp_len - c->resp_off;
    if (n > DH_CHUNK)
        n = DH_CHUNK;
    last = c->resp_off + n == c->resp_len;
    if (n > 0) {
        memcpy(buf + LWS_PRE, c->resp + c->resp_off, n);
        if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
            (int)n) {
            sodium_memzero(buf, sizeof(buf));
            return -1;
        }
        sodium_memzero(buf, sizeof(buf));
        c->resp_off += n;
    }
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    dh_conn_reset(c);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- HTTP requests ---- */

static int dh_reply(struct lws *wsi, struct dh_conn *c, struct desk_reply *rep)
{
    int r = dh_set_resp(c, rep->status, "application/json", rep->body, rep->len);

    desk_reply_free(rep);
    if (r != 0)
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

/* GET /api/attachment?id=ID&from=SENDER&n=N: a received attachment as a download (desk.h). */
static int dh_download(struct desk_http *h, struct lws *wsi, struct dh_conn *c)
{
    struct desk_reply rep;
    /* each as large as the longest argument: lws stops at the first that does not fit */
    char id[128], from[128], n[128];
    const char *ip = lws_get_urlarg_by_name(wsi, "id=", id, (int)sizeof(id));
    const char *fp = lws_get_urlarg_by_name(wsi, "from=", from, (int)sizeof(from));
    const char *np = lws_get_urlarg_by_name(wsi, "n=", n, (int)sizeof(n));

    if (desk_download_begin(h->d, ip, fp, np, dh_now(), &c->dl, &rep) != 0)
        return dh_refuse(wsi, c, 500, "internal");
    if (c->dl == NULL)
        return dh_reply(wsi, c, &rep);
    c->status = 200;
    c->ctype = desk_download_type(c->dl);
    lws_callback_on_writable(wsi);
    return 0;
}

/* POST /api/attach: the body goes to the desk's upload (desk.h), never into memory whole. */
static int dh_upload(struct desk_http *h, struct lws *wsi, struct dh_conn *c)
{
    struct desk_reply rep;
    char name[DESK_NAME_PCT_MAX + 2], len[32];
    int nl = lws_hdr_custom_length(wsi, "x-valise-name:", 14), ll;

    name[0] = 0;
    if (nl < 0 || nl >= (int)sizeof(name) ||
        lws_hdr_custom_copy(wsi, name, (int)sizeof(name), "x-valise-name:", 14) < 0)
        return dh_refuse(wsi, c, 400, "bad_name");
    ll = dh_hdr(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, len, sizeof(len));
    if (desk_upload_begin(h->d, name, ll == 1 ? len : NULL, dh_now(), &c->up, &rep) != 0)
        return dh_refuse(wsi, c, 500, "internal");
    if (c->up == NULL)
        return dh_reply(wsi, c, &rep);
    return 0; /* the body follows (LWS_CALLBACK_HTTP_BODY) */
}

/* A piece of an upload's body; a failure answers at once and deletes what came. */
static int dh_upload_body(struct lws *wsi, struct dh_conn *c, const void *in, size_t len)
{
    int r = desk_upload_write(c->up, in, len);

    if (r == 0)
        return 0;
    desk_upload_abort(c->up);
    c->up = NULL;
    return dh_refuse(wsi, c, r == VERR_TOO_LARGE ? 400 : r == VERR_NOSPACE ? 507 : 500,
                     r == VERR_TOO_LARGE ? "upload_incomplete"
                     : r == VERR_NOSPACE ? "no_space"
                                         : "attach_failed");
}

static int dh_upload_done(struct lws *wsi, struct dh_conn *c)
{
    struct desk_reply rep;
    struct desk_upload *up = c->up;

    c->up = NULL; /* desk_upload_end frees it */
    if (desk_upload_end(up, dh_now(), &rep) != 0)
        return dh_refuse(wsi, c, 500, "internal");
    return dh_reply(wsi, c, &rep);
}

static int dh_http(struct desk_http *h, struct lws *wsi, struct dh_conn *c, const char *uri)
{
    char host[256], cookie[DH_HDR_MAX], origin[256], ctype[128];

    dh_conn_reset(c);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0) {
        c->post = 0;
    } else if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0) {
        c->post = 1;
    } else {
        return dh_refuse(wsi, c, 405, "method_not_allowed");
    }
    /* DNS rebinding: a page of another origin resolving to 127.0.0.1 sends its own Host. */
    if (dh_hdr(wsi, WSI_TOKEN_HOST, host, sizeof(host)) != 1 || !desk_host_ok(h->d, host))
        return dh_refuse(wsi, c, 421, "wrong_host");
    if (strlen(uri) >= sizeof(c->path))
        return dh_refuse(wsi, c, 404, "not_found");
    memcpy(c->path, uri, strlen(uri) + 1);
    if (!c->post && strcmp(c->path, "/login") == 0) {
        char tok[DESK_SECRET_HEX + 16];
        const char *t = lws_get_urlarg_by_name(wsi, "token=", tok, (int)sizeof(tok));
        if (t == NULL || !desk_login(h->d, t, c->extra, sizeof(c->extra))) {
            sodium_memzero(tok, sizeof(tok));
            return dh_refuse(wsi, c, 403, "bad_or_used_token");
        }
        sodium_memzero(tok, sizeof(tok));
        c->extra_kind = 1;
        if (dh_set_resp(c, 303, "text/plain; charset=utf-8", "", 0) != 0)
            return -1;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (dh_hdr(wsi, WSI_TOKEN_HTTP_COOKIE, cookie, sizeof(cookie)) != 1 ||
        !desk_cookie_ok(h->d, cookie))
        return dh_refuse(wsi, c, 403, "log_in_with_the_link");
    if (!c->post) {
        if (strcmp(c->path, "/api/attachment") == 0)
            return dh_download(h, wsi, c);
        if (strncmp(c->path, "/api/", 5) == 0)
            return dh_api(h, wsi, c);
        return dh_serve_file(h, wsi, c, c->path);
    }
    /* Anything that changes something: this page's origin, JSON only (no form post). */
    if (dh_hdr(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin)) != 1 ||
        !desk_origin_ok(h->d, origin))
        return dh_refuse(wsi, c, 403, "wrong_origin");
    if (strcmp(c->path, "/api/attach") == 0) {
        /* a file's raw bytes: not a form (no CORS-safelisted type), not JSON */
        if (dh_hdr(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof(ctype)) != 1 ||
            strcmp(ctype, "application/octet-stream") != 0)
            return dh_refuse(wsi, c, 415, "octet_stream_only");
        return dh_upload(h, wsi, c);
    }
    if (dh_hdr(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof(ctype)) != 1 ||
        strncmp(ctype, "application/json", 16) != 0)
        return dh_refuse(wsi, c, 415, "json_only");
    if (strncmp(c->path, "/api/", 5) != 0)
        return dh_refuse(wsi, c, 404, "not_found");
    if ((c->body = sodium_malloc(DESK_BODY_MAX)) == NULL)
        return -1;
    return 0; /* the body follows (LWS_CALLBACK_HTTP_BODY) */
}

/* ---- pages (websocket) ---- */

static int dh_page_ok(struct desk_http *h, struct lws *wsi)
{
    char host[256], origin[256], cookie[DH_HDR_MAX];

    return dh_hdr(wsi, WSI_TOKEN_HOST, host, sizeof(host)) == 1 && desk_host_ok(h->d, host) &&
           dh_hdr(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin)) == 1 &&
           desk_origin_ok(h->d, origin) &&
           dh_hdr(wsi, WSI_TOKEN_HTTP_COOKIE, cookie, sizeof(cookie)) == 1 &&
           desk_cookie_ok(h->d, cookie);
}

static void dh_page_add(struct desk_http *h, struct lws *wsi, struct dh_conn *c)
{
    for (size_t i = 0; i < DH_MAX_PAGES; i++) {
        if (h->pages[i] == NULL) {
            h->pages[i] = wsi;
            h->page_conn[i] = c;
            c->is_page = 1;
            return;
        }
    }
}

static void dh_page_drop(struct desk_http *h, struct lws *wsi, struct dh_conn *c)
{
    for (size_t i = 0; i < DH_MAX_PAGES; i++)
        if (h->pages[i] == wsi) {
            h->pages[i] = NULL;
            h->page_conn[i] = NULL;
        }
    for (size_t i = 0; i < c->nevents; i++)
        free(c->events[i]);
    c->nevents = 0;
}

static void dh_broadcast(struct desk_http *h, const char *event)
{
    for (size_t i = 0; i < DH_MAX_PAGES; i++) {
        struct dh_conn *c = h->page_conn[i];
        char *e;
        if (h->pages[i] == NULL || c == NULL)
            continue;
        if (c->nevents == DH_EVENTS) { /* drop the oldest: the page reloads the lists anyway */
            free(c->events[0]);
            memmove(c->events, c->events + 1, (DH_EVENTS - 1) * sizeof(c->events[0]));
            c->nevents--;
        }
        if ((e = strdup(event)) == NULL)
            continue;
        c->events[c->nevents++] = e;
        lws_callback_on_writable(h->pages[i]);
    }
}

static int dh_page_write(struct lws *wsi, struct dh_conn *c)
{
    uint8_t buf[LWS_PRE + 512];
    size_t n;

    if (c->nevents == 0)
        return 0;
    n = strlen(c->events[0]);
    if (n <= 512) {
        memcpy(buf + LWS_PRE, c->events[0], n);
        if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT) != (int)n)
            return -1;
    }
    free(c->events[0]);
    memmove(c->events, c->events + 1, (c->nevents - 1) * sizeof(c->events[0]));
    c->nevents--;
    if (c->nevents > 0)
        lws_callback_on_writable(wsi);
    return 0;
}

static int dh_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct desk_http *h;
    struct dh_conn *c = user;

    /* Another local user's process: refused before reading anything. */
    if (reason == LWS_CALLBACK_FILTER_NETWORK_CONNECTION)
        return dh_peer_is_us((int)(lws_intptr_t)in) ? 0 : -1;
    if (wsi == NULL || lws_get_context(wsi) == NULL)
        return 0;
    h = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return dh_http(h, wsi, c, (const char *)in);
    case LWS_CALLBACK_HTTP_BODY:
        if (c->up != NULL && c->status == 0)
            return dh_upload_body(wsi, c, in, len);
        if (c->body == NULL || c->status != 0)
            return 0;
        if (len > DESK_BODY_MAX - c->body_len) {
            c->body_over = 1;
            return 0;
        }
        memcpy(c->body + c->body_len, in, len);
        c->body_len += len;
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (c->status != 0)
            return 0;
        if (c->up != NULL)
            return dh_upload_done(wsi, c);
        if (c->body_over)
            return dh_refuse(wsi, c, 413, "too_large");
        return dh_api(h, wsi, c);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return dh_writeable(h, wsi, c);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c != NULL)
            dh_conn_reset(c);
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return dh_page_ok(h, wsi) ? 0 : -1;
    case LWS_CALLBACK_ESTABLISHED:
        dh_page_add(h, wsi, c);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return dh_page_write(wsi, c);
    case LWS_CALLBACK_RECEIVE:
        return 0; /* the page only listens */
    case LWS_CALLBACK_CLOSED:
        if (c != NULL && c->is_page)
            dh_page_drop(h, wsi, c);
        return 0;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols dh_protocols[] = {
    {"http", dh_callback, sizeof(struct dh_conn), 0, 0, NULL, 0},
    {"valise.desk", dh_callback, sizeof(struct dh_conn), 512, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void dh_tick(lws_sorted_usec_list_t *sul)
{
    struct desk_http *h = lws_container_of(sul, struct desk_http, sul);
    char *event = NULL;
    uint8_t b[64];

    if (h->session_fd >= 0)
        session_serve(h->session_fd, h->d, dh_now());
    if (h->ticks++ % 5 != 0) {
        lws_sul_schedule(h->ctx, 0, &h->sul, dh_tick, 100 * LWS_US_PER_MS);
        return;
    }
    if (h->link_fd >= 0) {
        ssize_t n;
        int alive = 0;
        while ((n = read(h->link_fd, b, sizeof(b))) > 0)
            alive = 1;
        if (alive)
            desk_link_alive(h->d, dh_now());
    }
    if (desk_tick(h->d, dh_now(), &event) == 0 && event != NULL)
        dh_broadcast(h, event);
    free(event);
    lws_sul_schedule(h->ctx, 0, &h->sul, dh_tick, 100 * LWS_US_PER_MS);
}

int desk_http_start(struct desk_http **out, struct desk *d, const char *web_dir, uint16_t port)
{
    struct lws_context_creation_info info;
    struct desk_http *h;
    struct lws_vhost *vh;

    *out = NULL;
    if (strlen(web_dir) >= sizeof(h->web_dir))
        return VERR_USAGE;
    if ((h = calloc(1, sizeof(*h))) == NULL)
        return VERR_NOMEM;
    h->d = d;
    h->link_fd = -1;
    h->session_fd = -1;
    memcpy(h->web_dir, web_dir, strlen(web_dir) + 1);
    lws_set_log_level(0, NULL); /* the desk prints its own lines; nothing from requests */
    memset(&info, 0, sizeof(info));
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = dh_protocols;
    info.gid = -1;
    info.uid = -1;
    info.user = h;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_VALIDATE_UTF8;
    if ((h->ctx = lws_create_context(&info)) == NULL) {
        free(h);
        return VERR_NET;
    }
    vh = lws_get_vhost_by_name(h->ctx, "default");
    h->port = vh != NULL ? (uint16_t)lws_get_vhost_listen_port(vh) : 0;
    if (h->port == 0) {
        desk_http_stop(h);
        return VERR_NET;
    }
    desk_set_port(d, h->port);
    *out = h;
    return 0;
}

uint16_t desk_http_port(const struct desk_http *h)
{
    return h->port;
}

int desk_http_run(struct desk_http *h, volatile int *stop, int link_fd, int session_fd)
{
    h->link_fd = link_fd;
    h->session_fd = session_fd;
    lws_sul_schedule(h->ctx, 0, &h->sul, dh_tick, 100 * LWS_US_PER_MS);
    while (!*stop && !h->failed)
        if (lws_service(h->ctx, 0) < 0)
            return VERR_NET;
    return 0;
}

void desk_http_stop(struct desk_http *h)
{
    if (h == NULL)
        return;
    lws_context_destroy(h->ctx);
    free(h);
}
