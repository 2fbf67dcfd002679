/* transport.c - websocket and HTTP server on libwebsockets (see transport.h). */
#include "transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "tcpmoved.h"
#include "tlsbind.h"
#include "log.h"

struct tp {
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct tp_handlers h;
    struct lws_protocols protocols[3];
    lws_sorted_usec_list_t tick;
    SSL_CTX *tls; /* the listener's, for certificate reloads; NULL without TLS */
    uint8_t *scratch; /* LWS_PRE head room + one message */
    size_t scratch_cap;
    int port;
};

/* Per-connection data: the caller's session, or an HTTP reply in flight. */
struct tp_psd {
    void *sess;
    uint8_t *http_body;
    size_t http_len;
};

/* The binding both ends sign (lib/tlsbind.h); 32 zero bytes on plain ws://. */
static int channel_binding(struct lws *wsi, int tls, uint8_t out[static TLSBIND_LEN])
{
    memset(out, 0, TLSBIND_LEN);
    if (!tls)
        return 0;
    return tlsbind_exporter(lws_get_ssl(wsi), out);
}

static struct tp *tp_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

static int scratch_fit(struct tp *t, size_t len)
{
    uint8_t *np;
    size_t need;

    if (len > SIZE_MAX - LWS_PRE)
        return VERR_TOO_LARGE;
    need = LWS_PRE + len;
    if (need <= t->scratch_cap)
        return 0;
    if ((np = realloc(t->scratch, need)) == NULL)
        return VERR_NOMEM;
    t->scratch = np;
    t->scratch_cap = need;
    return 0;
}

static int http_reply(struct tp *t, struct lws *wsi, struct tp_psd *psd, const char *path)
{
    uint8_t hdr[LWS_PRE + 512], *start = &hdr[LWS_PRE], *p = start, *end = &hdr[sizeof(hdr) - 1];
    const char *ctype = "text/plain";
    struct buf body;
    unsigned status;
    int r;

    if ((r = buf_init(&body, 1 << 20, 0)) != 0)
        return -1;
    status = t->h.http(t->h.ctx, path, &body, &ctype);
    if (buf_size(&body) > 0) {
        if ((psd->http_body = malloc(buf_size(&body))) == NULL) {
            buf_free(&body);
            return -1;
        }
        memcpy(psd->http_body, buf_data(&body), buf_size(&body));
        psd->http_len = buf_size(&body);
    }
    buf_free(&body);
    if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)psd->http_len, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int tp_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct tp_psd *psd = user;
    struct tp *t;

    switch (reason) {
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
        /* user is the vhost's SSL_CTX: kept to swap the certificate on reload */
        tp_of(wsi)->tls = user;
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        t = tp_of(wsi);
        psd->sess = t->h.open(t->h.ctx, (struct tp_conn *)wsi);
        return psd->sess == NULL ? -1 : 0;
    case LWS_CALLBACK_RECEIVE:
        t = tp_of(wsi);
        if (psd == NULL || psd->sess == NULL)
            return -1;
        return t->h.rx(t->h.ctx, psd->sess, in, len, lws_is_first_fragment(wsi),
                       lws_is_final_fragment(wsi), lws_remaining_packet_payload(wsi),
                       lws_frame_is_binary(wsi));
    case LWS_CALLBACK_SERVER_WRITEABLE:
        t = tp_of(wsi);
        if (psd == NULL || psd->sess == NULL)
            return 0;
        return t->h.writeable(t->h.ctx, psd->sess);
    case LWS_CALLBACK_CLOSED:
        t = tp_of(wsi);
        if (psd != NULL && psd->sess != NULL)
            t->h.closed(t->h.ctx, psd->sess);
        if (psd != NULL)
            psd->sess = NULL;
        return 0;
    case LWS_CALLBACK_HTTP:
        t = tp_of(wsi);
        return http_reply(t, wsi, psd, in != NULL ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        int done;

        t = tp_of(wsi);
        if (psd->http_len > 0) {
            if (scratch_fit(t, psd->http_len) != 0)
                return -1;
            memcpy(t->scratch + LWS_PRE, psd->http_body, psd->http_len);
            if (lws_write(wsi, t->scratch + LWS_PRE, psd->http_len, LWS_WRITE_HTTP_FINAL) <
                (int)psd->http_len)
                return -1;
        }
        free(psd->http_body);
        psd->http_body = NULL;
        psd->http_len = 0;
        done = lws_http_transaction_completed(wsi);
        return done ? -1 : 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (psd != NULL) {
            free(psd->http_body);
            psd->http_body = NULL;
            psd->http_len = 0;
        }
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static void tp_log(int level, const char *line)
{
    size_t n = strlen(line);

    /* lws lines end with a newline; the relay's logger adds its own. */
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    rlog(level == LLL_ERR ? RLOG_ERROR : RLOG_WARN, "lws: %.*s", (int)n, line);
}

/* A periodic wake-up so the caller's loop runs its timers (expiry sweep) at least 4 x per s. */
static void tp_tick(lws_sorted_usec_list_t *sul)
{
    struct tp *t = lws_container_of(sul, struct tp, tick);

    lws_sul_schedule(t->ctx, 0, &t->tick, tp_tick, 250 * LWS_US_PER_MS);
}

int tp_create(struct tp **out, const struct tp_opts *o, const struct tp_handlers *h)
{
    struct lws_context_creation_info info;
    struct tp *t;
    int r = VERR_INTERNAL;

    *out = NULL;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return VERR_NOMEM;
    t->h = *h;
    lws_set_log_level(LLL_ERR | LLL_WARN, tp_log);
    /* protocols[0] serves HTTP (/healthz, /metrics); [1] is the relay protocol. */
    t->protocols[0].name = "http";
    t->protocols[0].callback = tp_callback;
    t->protocols[0].per_session_data_size = sizeof(struct tp_psd);
    t->protocols[1].name = TRANSPORT_PROTOCOL;
    t->protocols[1].callback = tp_callback;
    t->protocols[1].per_session_data_size = sizeof(struct tp_psd);
    t->protocols[1].rx_buffer_size = o->rx_buffer;
    t->protocols[1].tx_packet_size = 0;
    memset(&info, 0, sizeof(info));
    info.port = o->port;
    info.iface = o->host;
    info.protocols = t->protocols;
    info.user = t;
    info.timeout_secs = o->handshake_timeout;
    /* The socket read size is the context's service buffer, not the protocol's
     * rx_buffer_size: read 64 KiB at a time (DESIGN.md limits, BENCHMARKS.md item 3). */
    info.pt_serv_buf_size = (unsigned int)o->rx_buffer;
    info.fd_limit_per_thread = o->max_fds;
    info.options = 0;
    if (o->tls_cert != NULL) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = o->tls_cert;
        info.ssl_private_key_filepath = o->tls_key;
    }
    if ((t->ctx = lws_create_context(&info)) == NULL) {
        r = VERR_NET;
        goto out;
    }
    t->vh = lws_get_vhost_by_name(t->ctx, "default");
    t->port = t->vh != NULL ? lws_get_vhost_listen_port(t->vh) : o->port;
    lws_sul_schedule(t->ctx, 0, &t->tick, tp_tick, 250 * LWS_US_PER_MS);
    *out = t;
    t = NULL;
    r = 0;
out:
    tp_destroy(t);
    return r;
}

void tp_destroy(struct tp *t)
{
    if (t == NULL)
        return;
    if (t->ctx != NULL)
        lws_context_destroy(t->ctx);
    free(t->scratch);
    free(t);
}

int tp_port(const struct tp *t)
{
    return t->port;
}

int tp_service(struct tp *t)
{
    if (lws_service(t->ctx, 0) < 0)
        return VERR_NET;
    /*
     * lws hands over one message per connection per poll and keeps the rest
     * of what it read for "forced service" (lws-service.h): drain it now, so
     * everything read in this turn joins this turn's commit.
     */
    for (int i = 0; i < 256 && lws_service_adjust_timeout(t->ctx, 1, 0) == 0; i++)
        if (lws_service_tsi(t->ctx, -1, 0) < 0)
            return VERR_NET;
    return 0;
}

void tp_cancel(struct tp *t)
{
    if (t != NULL && t->ctx != NULL)
        lws_cancel_service(t->ctx);
}

int tp_write(struct tp_conn *c, const uint8_t *p, size_t len)
{
    struct lws *wsi = (struct lws *)c;
    struct tp *t = tp_of(wsi);
    int r;

    if (len > INT32_MAX)
        return VERR_TOO_LARGE;
    if ((r = scratch_fit(t, len)) != 0)
        return r;
    memcpy(t->scratch + LWS_PRE, p, len);
    /* lws keeps whatever the socket did not take and sends it before anything else. */
    if (lws_write(wsi, t->scratch + LWS_PRE, len, LWS_WRITE_BINARY) < (int)len)
        return VERR_NET;
    return 0;
}

int tp_choked(struct tp_conn *c)
{
    return lws_send_pipe_choked((struct lws *)c);
}

void tp_want_write(struct tp_conn *c)
{
    lws_callback_on_writable((struct lws *)c);
}

void tp_set_timeout(struct tp_conn *c, unsigned secs)
{
    lws_set_timeout((struct lws *)c, PENDING_TIMEOUT_USER_OK, (int)secs);
}

uint64_t tp_tcp_bytes(struct tp_conn *c)
{
    return tcp_moved((int)lws_get_socket_fd((struct lws *)c));
}

void tp_close_async(struct tp_conn *c)
{
    lws_set_timeout((struct lws *)c, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

int tp_channel_binding(struct tp_conn *c, uint8_t out[static TP_BINDING_LEN])
{
    struct lws *wsi = (struct lws *)c;

    return channel_binding(wsi, lws_is_ssl(wsi), out);
}

void tp_peer(struct tp_conn *c, char *out, size_t outsz)
{
    if (outsz == 0)
        return;
    out[0] = '\0';
    if (lws_get_peer_simple((struct lws *)c, out, outsz) == NULL || out[0] == '\0') {
        snprintf(out, outsz, "?");
        return;
    }
    /* An IPv4 peer on a dual-stack socket: show the address operators know. */
    if (strncmp(out, "::ffff:", 7) == 0 && strchr(out + 7, '.') != NULL)
        memmove(out, out + 7, strlen(out + 7) + 1);
}

/* 0 if cert (a PEM chain) and key load into ctx and match. */
static int tls_load(SSL_CTX *ctx, const char *cert, const char *key)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        return VERR_BAD_FORMAT;
    return 0;
}

int tp_tls_reload(struct tp *t, const char *cert, const char *key)
{
    SSL_CTX *trial;
    int r;

    if (t->tls == NULL)
        return VERR_INTERNAL;
    /* Tried on a scratch context first: the listener keeps its pair if this fails. */
    if ((trial = SSL_CTX_new(TLS_server_method())) == NULL)
        return VERR_NOMEM;
    r = tls_load(trial, cert, key);
    SSL_CTX_free(trial);
    if (r != 0)
        return r;
    /* New handshakes use the new pair; open connections keep their sessions. */
    return tls_load(t->tls, cert, key);
}
