/* transport.c - websocket client on libwebsockets (see transport.h). */
#include "transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "tcpmoved.h"
#include "tlsbind.h"
#include "text.h"

enum {
    CTP_HOST_MAX = 255,
    CTP_PATH_MAX = 255,
    CTP_RX_BUFFER = 65536,
    CTP_TICK_MS = 200, /* how often a wait looks for progress and for a stop */
};
#define CTP_QUEUE_MAX ((size_t)64 << 20) /* received bytes waiting for ctp_recv */

struct ctp_msg {
    struct ctp_msg *next;
    size_t len;
    uint8_t *data; /* LWS_PRE bytes of head room, then len bytes */
};

enum ctp_state { CTP_CONNECTING, CTP_OPEN, CTP_CLOSED };

struct ctp {
    struct lws_context *ctx;
    struct lws *wsi;
    enum ctp_state state;
    int timed_out, closing;
    lws_sorted_usec_list_t timer;
    struct ctp_msg *in_head, *in_tail;
    size_t in_bytes; /* received, not yet taken by ctp_recv */
    struct ctp_msg *out_head, *out_tail;
    struct buf rx; /* the message being reassembled */
    int rx_live;
    char host[CTP_HOST_MAX + 1], path[CTP_PATH_MAX + 1];
    int port, tls;
    /* progress: bytes received and handed to the socket */
    uint64_t rx_total, tx_total;
    volatile int *stop;
};

struct ctp_url {
    char host[CTP_HOST_MAX + 1], path[CTP_PATH_MAX + 1];
    int port, tls;
};

/* A numeric loopback address (127.0.0.0/8 or ::1) or "localhost"; never a name like 127.x.example.
 */
static int ctp_is_loopback(const char *h)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcmp(h, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, h, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int ctp_url_parse(const char *url, struct ctp_url *u)
{
    const char *p, *hend, *pend;
    char portbuf[8];
    uint64_t port;
    size_t hl;

    memset(u, 0, sizeof(*u));
    if (strncmp(url, "wss://", 6) == 0) {
        u->tls = 1;
        p = url + 6;
    } else if (strncmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else {
        return VERR_BAD_FORMAT;
    }
    if (*p == '[') { /* [v6 address] */
        if ((hend = strchr(p, ']')) == NULL)
            return VERR_BAD_FORMAT;
        p++;
        hl = (size_t)(hend - p);
        hend++;
    } else {
        hend = p + strcspn(p, ":/");
        hl = (size_t)(hend - p);
    }
    if (hl == 0 || hl > CTP_HOST_MAX || (*hend != ':' && *hend != '/' && *hend != 0))
        return VERR_BAD_FORMAT;
    memcpy(u->host, p, hl);
    u->host[hl] = 0;
    for (size_t i = 0; i < hl; i++)
        if (u->host[i] <= ' ' || u->host[i] == 0x7f)
            return VERR_BAD_FORMAT;
    if (*hend == ':') {
        pend = hend + 1 + strcspn(hend + 1, "/");
        if ((size_t)(pend - hend - 1) == 0 || (size_t)(pend - hend - 1) >= sizeof(portbuf))
            return VERR_BAD_FORMAT;
        memcpy(portbuf, hend + 1, (size_t)(pend - hend - 1));
        portbuf[pend - hend - 1] = 0;
        if (text_parse_u64(portbuf, 1, 65535, &port) != 0)
            return VERR_BAD_FORMAT;
    } else {
        /* No port: the scheme's default (RFC 6455 section 3: 443 for wss, 80 for ws). */
        pend = hend;
        port = u->tls ? 443 : 80;
    }
    u->port = (int)port;
    if (*pend == 0) {
        u->path[0] = '/';
    } else {
        size_t pl = strlen(pend);
        if (pl > CTP_PATH_MAX)
            return VERR_BAD_FORMAT;
        memcpy(u->path, pend, pl + 1);
    }
    /* Plain websocket only to this machine (DESIGN.md "Relay"). */
    if (!u->tls && !ctp_is_loopback(u->host))
        return VERR_DENIED;
    return 0;
}

int ctp_url_check(const char *url)
{
    struct ctp_url u;
    return ctp_url_parse(url, &u);
}

static void ctp_msg_free(struct ctp_msg *m)
{
    if (m == NULL)
        return;
    free(m->data);
    free(m);
}

static void ctp_on_timer(lws_sorted_usec_list_t *sul)
{
    struct ctp *c = (struct ctp *)(void *)((char *)sul - offsetof(struct ctp, timer));
    c->timed_out = 1;
    /* lws_service would go back to sleep after running the timer: wake it so it returns. */
    lws_cancel_service(c->ctx);
}

static int ctp_rx(struct ctp *c, struct lws *wsi, const uint8_t *p, size_t len)
{
    struct ctp_msg *m;

    if (!c->rx_live) {
        if (buf_init(&c->rx, CTP_MSG_MAX, 0) != 0)
            return -1;
        c->rx_live = 1;
    }
    if (len > 0 && buf_put_bytes(&c->rx, p, len) != 0)
        return -1; /* over CTP_MSG_MAX: close */
    c->rx_total += len;
    if (c->in_bytes + buf_size(&c->rx) > CTP_QUEUE_MAX)
        return -1; /* the relay sends faster than we take: close, nothing is lost */
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) != 0)
        return 0;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return -1;
    m->len = buf_size(&c->rx);
    if ((m->data = malloc(m->len > 0 ? m->len : 1)) == NULL) {
        free(m);
        return -1;
    }
    if (m->len > 0)
        memcpy(m->data, buf_data(&c->rx), m->len);
    buf_free(&c->rx);
    c->rx_live = 0;
    c->in_bytes += m->len;
    if (c->in_tail != NULL)
        c->in_tail->next = m;
    else
        c->in_head = m;
    c->in_tail = m;
    return 0;
}

static int ctp_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    struct ctp *c = lws_context_user(lws_get_context(wsi));
    (void)user;

    if (c == NULL)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->state = CTP_OPEN;
        if (c->out_head != NULL)
            lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    case LWS_CALLBACK_CLIENT_CLOSED:
        c->state = CTP_CLOSED;
        c->wsi = NULL;
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        if (c->wsi == wsi || c->wsi == NULL) {
            c->state = CTP_CLOSED;
            c->wsi = NULL;
        }
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!lws_frame_is_binary(wsi))
            return -1;
        return ctp_rx(c, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        struct ctp_msg *m = c->out_head;
        if (c->closing)
            return -1;
        if (m == NULL)
            break;
        if (lws_write(wsi, m->data + LWS_PRE, m->len, LWS_WRITE_BINARY) < (int)m->len)
            return -1;
        c->tx_total += m->len;
        c->out_head = m->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        ctp_msg_free(m);
        if (c->out_head != NULL)
            lws_callback_on_writable(wsi);
        break;
    }
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols ctp_protocols[] = {
    {CTP_PROTOCOL, ctp_callback, 0, CTP_RX_BUFFER, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static uint64_t ctp_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* TCP's own count of bytes moved on this connection (lib/tcpmoved.h). */
static uint64_t ctp_tcp_bytes(const struct ctp *c)
{
    return c->wsi == NULL ? 0 : tcp_moved((int)lws_get_socket_fd(c->wsi));
}

/*
 * Runs the loop until done(c), or until timeout_ms pass without progress:
 * a byte received or acknowledged by the peer (TCP's counts), or a message
 * taken or handed over. A transfer that still
 * moves is never abandoned (issue 13). A set stop flag ends the wait within
 * CTP_TICK_MS. VERR_TIMEOUT or 0 (or VERR_NET once closed).
 */
static int ctp_loop(struct ctp *c, int (*done)(const struct ctp *), unsigned timeout_ms)
{
    uint64_t now = ctp_now_ms(), deadline = now + timeout_ms;
    uint64_t rx = c->rx_total, tx = c->tx_total, tcp = ctp_tcp_bytes(c);

    while (!done(c) && c->state != CTP_CLOSED && !(c->stop != NULL && *c->stop)) {
        uint64_t tick, t;

        now = ctp_now_ms();
        t = ctp_tcp_bytes(c);
        if (c->rx_total != rx || c->tx_total != tx || t != tcp) {
            rx = c->rx_total;
            tx = c->tx_total;
            tcp = t;
            deadline = now + timeout_ms;
        }
        if (now >= deadline)
            break;
        tick = deadline - now < CTP_TICK_MS ? deadline - now : CTP_TICK_MS;
        c->timed_out = 0;
        lws_sul_schedule(c->ctx, 0, &c->timer, ctp_on_timer, (lws_usec_t)tick * 1000);
        while (!done(c) && !c->timed_out && c->state != CTP_CLOSED) {
            if (lws_service(c->ctx, 0) < 0) {
                c->state = CTP_CLOSED;
                break;
            }
        }
        lws_sul_cancel(&c->timer);
    }
    if (done(c))
        return 0;
    return c->state == CTP_CLOSED ? VERR_NET : VERR_TIMEOUT;
}

void ctp_set_stop(struct ctp *c, volatile int *stop)
{
    c->stop = stop;
}

static int ctp_is_open(const struct ctp *c)
{
    return c->state == CTP_OPEN;
}

static int ctp_has_input(const struct ctp *c)
{
    return c->in_head != NULL;
}

static int ctp_is_closed(const struct ctp *c)
{
    return c->state == CTP_CLOSED;
}

static int ctp_out_empty(const struct ctp *c)
{
    return c->out_head == NULL;
}

void ctp_close(struct ctp *c)
{
    struct ctp_msg *m, *n;

    if (c == NULL)
        return;
    if (c->ctx != NULL) {
        lws_sul_cancel(&c->timer);
        /*
         * Close from inside the loop (a WRITEABLE callback returning -1), so the
         * context has no live connection left to wait for when it is destroyed.
         */
        if (c->wsi != NULL && c->state == CTP_OPEN) {
            c->closing = 1;
            lws_callback_on_writable(c->wsi);
            (void)ctp_loop(c, ctp_is_closed, 1000);
        }
        lws_context_destroy(c->ctx); /* closes the connection */
    }
    for (m = c->in_head; m != NULL; m = n) {
        n = m->next;
        ctp_msg_free(m);
    }
    for (m = c->out_head; m != NULL; m = n) {
        n = m->next;
        ctp_msg_free(m);
    }
    if (c->rx_live)
        buf_free(&c->rx);
    free(c);
}

/* The binding both ends sign (lib/tlsbind.h); 32 zero bytes on plain ws://. */
static int channel_binding(struct lws *wsi, int tls, uint8_t out[static TLSBIND_LEN])
{
    memset(out, 0, TLSBIND_LEN);
    if (!tls)
        return 0;
    return tlsbind_exporter(lws_get_ssl(wsi), out);
}

int ctp_channel_binding(struct ctp *c, uint8_t out[static CTP_BINDING_LEN])
{
    if (c->state != CTP_OPEN || c->wsi == NULL)
        return VERR_NET;
    return channel_binding(c->wsi, c->tls, out);
}

int ctp_connect(struct ctp **out, const char *url, const char *ca_file, unsigned timeout_ms)
{
    return ctp_connect_stop(out, url, ca_file, timeout_ms, NULL);
}

int ctp_connect_stop(struct ctp **out, const char *url, const char *ca_file, unsigned timeout_ms,
                     volatile int *stop)
{
    struct lws_context_creation_info info;
    struct lws_client_connect_info ci;
    struct ctp_url u;
    struct ctp *c;
    int r;

    *out = NULL;
    if ((r = ctp_url_parse(url, &u)) != 0)
        return r;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return VERR_NOMEM;
    memcpy(c->host, u.host, sizeof(c->host));
    memcpy(c->path, u.path, sizeof(c->path));
    c->port = u.port;
    c->tls = u.tls;
    c->stop = stop;
    lws_set_log_level(0, NULL); /* library code never prints (STYLE.md habit 3) */
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = ctp_protocols;
    info.user = c;
    info.gid = -1;
    info.uid = -1;
    if (c->tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.client_ssl_ca_filepath = ca_file;
    }
    if ((c->ctx = lws_create_context(&info)) == NULL) {
        free(c);
        return VERR_NET;
    }
    memset(&ci, 0, sizeof(ci));
    ci.context = c->ctx;
    ci.address = c->host;
    ci.port = c->port;
    ci.path = c->path;
    ci.host = c->host;
    ci.origin = c->host;
    ci.protocol = CTP_PROTOCOL;
    ci.ssl_connection = c->tls ? LCCSCF_USE_SSL : 0;
    ci.pwsi = &c->wsi;
    if (lws_client_connect_via_info(&ci) == NULL && c->state != CTP_OPEN) {
        ctp_close(c);
        return VERR_NET;
    }
    if ((r = ctp_loop(c, ctp_is_open, timeout_ms)) != 0) {
        ctp_close(c);
        return r == VERR_TIMEOUT ? VERR_TIMEOUT : VERR_NET;
    }
    *out = c;
    return 0;
}

int ctp_send(struct ctp *c, const uint8_t *p, size_t len)
{
    struct ctp_msg *m;

    if (c->state != CTP_OPEN || c->wsi == NULL)
        return VERR_NET;
    if (len == 0 || len > CTP_MSG_MAX)
        return VERR_TOO_LARGE;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return VERR_NOMEM;
    if ((m->data = malloc(LWS_PRE + len)) == NULL) {
        free(m);
        return VERR_NOMEM;
    }
    memcpy(m->data + LWS_PRE, p, len);
    m->len = len;
    if (c->out_tail != NULL)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
    lws_callback_on_writable(c->wsi);
    return 0;
}

int ctp_flush(struct ctp *c, unsigned timeout_ms)
{
    return ctp_loop(c, ctp_out_empty, timeout_ms);
}

int ctp_recv(struct ctp *c, struct buf *out, unsigned timeout_ms)
{
    struct ctp_msg *m;
    int r;

    if (c->in_head == NULL) {
        if (c->state == CTP_CLOSED)
            return VERR_NET;
        if ((r = ctp_loop(c, ctp_has_input, timeout_ms)) != 0)
            return r;
    }
    m = c->in_head;
    c->in_bytes -= m->len;
    c->in_head = m->next;
    if (c->in_head == NULL)
        c->in_tail = NULL;
    if ((r = buf_init(out, m->len, 0)) != 0 || (r = buf_put_bytes(out, m->data, m->len)) != 0) {
        buf_free(out);
        ctp_msg_free(m);
        return r;
    }
    ctp_msg_free(m);
    return 0;
}
