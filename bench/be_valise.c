/*
 * be_valise.c - the Valise relay backend: raw non-blocking client sockets in
 * one epoll loop, with the generator's own websocket client framing
 * (RFC 6455: HTTP upgrade, masked binary frames from the client, unmasked
 * from the server). DESIGN.md "Performance targets" explains why: the
 * libwebsockets client parses a byte per call and would measure itself.
 *
 * Reads take up to 64 KiB at a time; every frame queued during a loop turn
 * goes out in one write per connection; SUBMIT carries `batch` envelopes and
 * every DELIVER is acknowledged by one DELIVER_ACK. Protocol messages are
 * built and parsed by lib/wire (the one codec of the format).
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "wire.h"

enum {
    RX_CHUNK = 64 * 1024,
    FRAME_MAX = 16 << 20, /* largest server frame we accept */
    WS_HDR_MAX = 14,
    MASK_POOL = 4096,
    ID_POOL = 64 * 1024,
    MAX_EXTRA_ARGS = 32,
};

enum cstate { C_FREE, C_CONNECTING, C_UPGRADE, C_WS_AUTH, C_READY, C_CLOSED };

struct vconn {
    int fd;
    enum cstate state;
    size_t device;
    uint8_t *rx;
    size_t rx_off, rx_len, rx_cap;
    uint8_t *frag; /* a fragmented message being reassembled (rare) */
    size_t frag_len, frag_cap;
    uint8_t *tx;
    size_t tx_off, tx_len, tx_cap;
    struct buf sub; /* SUBMIT being filled */
    size_t sub_cnt_off, sub_n;
    uint32_t seq;
    uint8_t cnonce[WIRE_NONCE_LEN]; /* sent in HELLO */
    int out_armed, dirty;
};

struct vpriv {
    int ep;
    struct vconn *c;
    size_t max_peers;
    int *dirty;
    size_t ndirty;
    uint8_t nonce[8];
    uint8_t mask_pool[MASK_POOL];
    size_t mask_off;
    uint8_t id_pool[ID_POOL];
    size_t id_off;
    struct buf scratch;
    uint8_t *ids;
    pid_t pid;
    int starts;
    char datadir[512], portfile[512], logpath[512];
    unsigned long errors_printed;
};

static struct vpriv *P(struct be *b)
{
    return b->priv;
}

/* ---- server process ---- */

static int read_port_file(const char *path)
{
    char s[32] = {0};
    FILE *f = fopen(path, "r");
    long v = 0;

    if (f == NULL)
        return 0;
    if (fgets(s, sizeof(s), f) != NULL)
        v = strtol(s, NULL, 10);
    fclose(f);
    return v > 0 && v < 65536 ? (int)v : 0;
}

static int v_start(struct be *b, int fresh)
{
    struct vpriv *v = P(b);
    char listen[64], extra[1024], relay_cert[600];
    char *argv[16 + MAX_EXTRA_ARGS];
    size_t argc = 0;
    uint64_t deadline;

    if (fresh || v->starts == 0) {
        snprintf(v->datadir, sizeof(v->datadir), "%s/relay-data.%d", b->srv.workdir, v->starts);
        b->port = 0;
    }
    v->starts++;
    snprintf(v->portfile, sizeof(v->portfile), "%s/relay.port", b->srv.workdir);
    snprintf(v->logpath, sizeof(v->logpath), "%s/relay.log", b->srv.workdir);
    unlink(v->portfile);
    snprintf(relay_cert, sizeof(relay_cert), "%s/relay.cert", b->srv.workdir);
    if (keys_relay_cert(b->keys, v->datadir, relay_cert) != 0) {
        fprintf(stderr, "valise-bench: cannot make the relay certificate in %s\n", v->datadir);
        return VERR_IO;
    }
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", b->port);
    argv[argc++] = (char *)b->srv.bin;
    argv[argc++] = "--data";
    argv[argc++] = v->datadir;
    argv[argc++] = "--org-pub";
    argv[argc++] = (char *)b->srv.org_pub;
    argv[argc++] = "--directory";
    argv[argc++] = (char *)b->srv.directory;
    argv[argc++] = "--listen";
    argv[argc++] = listen;
    argv[argc++] = "--port-file";
    argv[argc++] = v->portfile;
    argv[argc++] = "--log-level";
    argv[argc++] = "warn";
    argv[argc++] = "--relay-cert";
    argv[argc++] = relay_cert;
    snprintf(extra, sizeof(extra), "%s", b->srv.extra != NULL ? b->srv.extra : "");
    /* Extra flags: words separated by single spaces. */
    for (char *t = extra; *t != '\0' && argc < 15 + MAX_EXTRA_ARGS;) {
        char *sp = strchr(t, ' ');

        argv[argc++] = t;
        if (sp == NULL)
            break;
        *sp = '\0';
        t = sp + 1;
    }
    argv[argc] = NULL;
    if ((v->pid = proc_spawn(argv, v->logpath)) < 0)
        return VERR_IO;
    deadline = bench_now_ns() + 60ull * 1000000000u;
    while (bench_now_ns() < deadline) {
        int port = read_port_file(v->portfile);

        if (port > 0) {
            b->port = port;
            return 0;
        }
        if (proc_exited(v->pid)) {
            v->pid = 0;
            break;
        }
        usleep(200);
    }
    fprintf(stderr, "valise-bench: the relay did not start (see %s)\n", v->logpath);
    return VERR_IO;
}

static void v_stop(struct be *b, int sig)
{
    struct vpriv *v = P(b);

    proc_stop(v->pid, sig);
    v->pid = 0;
}

static int v_healthy(struct be *b)
{
    char body[256];

    return b->port > 0 && http_get(b->port, "/healthz", body, sizeof(body), 500) == 200;
}

static pid_t v_pid(struct be *b)
{
    return P(b)->pid;
}

static double metric_value(const char *text, const char *name)
{
    const char *p = text;
    size_t nl = strlen(name);

    while ((p = strstr(p, name)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[nl] == ' ')
            return strtod(p + nl + 1, NULL);
        p += nl;
    }
    return -1;
}

static int v_commits(struct be *b, double c[static 4])
{
    static char text[1 << 16];

    if (http_get(b->port, "/metrics", text, sizeof(text), 1000) != 200)
        return -1;
    c[0] = metric_value(text, "valise_relay_commit_batch_envelopes_sum");
    c[1] = metric_value(text, "valise_relay_commit_batch_envelopes_count");
    c[2] = metric_value(text, "valise_relay_commit_seconds_sum");
    c[3] = metric_value(text, "valise_relay_commit_seconds_count");
    return c[0] < 0 || c[1] < 0 || c[2] < 0 || c[3] < 0 ? -1 : 0;
}

/* ---- websocket framing ---- */

static int grow(uint8_t **p, size_t *cap, size_t need)
{
    size_t ncap = *cap == 0 ? 4096 : *cap;
    uint8_t *np;

    if (need <= *cap)
        return 0;
    while (ncap < need)
        ncap *= 2;
    if ((np = realloc(*p, ncap)) == NULL)
        return VERR_NOMEM;
    *p = np;
    *cap = ncap;
    return 0;
}

static void mark_dirty(struct vpriv *v, int peer)
{
    struct vconn *c = &v->c[peer];

    if (!c->dirty) {
        c->dirty = 1;
        v->dirty[v->ndirty++] = peer;
    }
}

static void mask_key(struct vpriv *v, uint8_t key[4])
{
    if (v->mask_off + 4 > MASK_POOL) {
        randombytes_buf(v->mask_pool, MASK_POOL);
        v->mask_off = 0;
    }
    memcpy(key, v->mask_pool + v->mask_off, 4);
    v->mask_off += 4;
}

/* Appends one masked frame (RFC 6455 section 5.2, 5.3) to the connection's output. */
static int frame_out_op(struct vpriv *v, int peer, uint8_t op, const uint8_t *p, size_t len)
{
    struct vconn *c = &v->c[peer];
    uint8_t key[4], *o;
    uint64_t k8;
    size_t h = 0, i = 0;
    int r;

    if ((r = grow(&c->tx, &c->tx_cap, c->tx_len + WS_HDR_MAX + len)) != 0)
        return r;
    o = c->tx + c->tx_len;
    o[h++] = (uint8_t)(0x80 | op); /* FIN */
    if (len < 126) {
        o[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        o[h++] = 0x80 | 126;
        o[h++] = (uint8_t)(len >> 8);
        o[h++] = (uint8_t)len;
    } else {
        o[h++] = 0x80 | 127;
        for (int s = 56; s >= 0; s -= 8)
            o[h++] = (uint8_t)((uint64_t)len >> s);
    }
    mask_key(v, key);
    memcpy(o + h, key, 4);
    h += 4;
    o += h;
    /* Mask eight bytes at a time: the key repeats every four bytes. */
    memcpy(&k8, key, 4);
    memcpy((uint8_t *)&k8 + 4, key, 4);
    for (; i + 8 <= len; i += 8) {
        uint64_t w;

        memcpy(&w, p + i, 8);
        w ^= k8;
        memcpy(o + i, &w, 8);
    }
    for (; i < len; i++)
        o[i] = p[i] ^ key[i & 3];
    c->tx_len += h + len;
    mark_dirty(v, peer);
    return 0;
}

static int frame_out(struct vpriv *v, int peer, const uint8_t *p, size_t len)
{
    return frame_out_op(v, peer, 0x2, p, len);
}

static void set_out_interest(struct vpriv *v, int peer, int want)
{
    struct vconn *c = &v->c[peer];
    struct epoll_event e = {.events = EPOLLIN | (want ? EPOLLOUT : 0u), .data.u32 = (uint32_t)peer};

    if (c->out_armed == want)
        return;
    if (epoll_ctl(v->ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->out_armed = want;
}

static void conn_close(struct be *b, int peer, int notify)
{
    struct vpriv *v = P(b);
    struct vconn *c = &v->c[peer];

    if (c->state == C_FREE || c->state == C_CLOSED)
        return;
    if (c->fd >= 0) {
        epoll_ctl(v->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_CLOSED;
    c->rx_off = c->rx_len = c->tx_off = c->tx_len = c->frag_len = 0;
    c->sub_n = 0;
    if (notify && b->ev.closed != NULL)
        b->ev.closed(b->ev.ctx, peer);
}

static int conn_write(struct be *b, int peer)
{
    struct vpriv *v = P(b);
    struct vconn *c = &v->c[peer];

    while (c->tx_off < c->tx_len && c->state != C_CONNECTING) {
        ssize_t n = write(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_close(b, peer, 1);
            return -1;
        }
        c->tx_off += (size_t)n;
    }
    if (c->tx_off == c->tx_len) {
        c->tx_off = c->tx_len = 0;
        set_out_interest(v, peer, c->state == C_CONNECTING);
    } else {
        set_out_interest(v, peer, 1);
    }
    return 0;
}

/* ---- protocol ---- */

static void report_error(struct vpriv *v, const char *what, unsigned reason, const char *text)
{
    if (v->errors_printed++ < 5)
        fprintf(stderr, "valise-bench: %s: %s%s%s\n", what, wire_reason_name((uint16_t)reason),
                text != NULL ? ": " : "", text != NULL ? text : "");
}

static int send_msg(struct be *b, int peer)
{
    struct vpriv *v = P(b);

    return frame_out(v, peer, buf_data(&v->scratch), buf_size(&v->scratch));
}

static int on_challenge(struct be *b, int peer, const struct wire_msg *m)
{
    struct vpriv *v = P(b);
    const struct bench_device *d = &b->keys->dev[v->c[peer].device];
    static const uint8_t binding[WIRE_BINDING_LEN]; /* plain ws:// on loopback */
    struct relaycert rc;
    uint8_t sig[SIG_LEN];
    int r;

    /* The load generator trusts its own relay: the id is read, not checked. */
    if ((r = relaycert_parse(m->u.challenge.relay_cert, m->u.challenge.relay_cert_len, &rc)) != 0)
        return r;
    buf_reset(&v->scratch);
    if ((r = wire_handshake_body(&v->scratch, rc.relay_id, v->c[peer].cnonce,
                                 m->u.challenge.nonce, binding)) != 0 ||
        (r = sig_sign(sig, SIG_CTX_RELAY_AUTH, buf_data(&v->scratch), buf_size(&v->scratch),
                      d->sk)) != 0)
        return r;
    buf_reset(&v->scratch);
    if ((r = wire_put_auth(&v->scratch, d->cert, d->cert_len, sig)) != 0)
        return r;
    return send_msg(b, peer);
}

static int on_message(struct be *b, int peer, const uint8_t *p, size_t len)
{
    struct vpriv *v = P(b);
    struct vconn *c = &v->c[peer];
    struct wire_msg m;
    struct wire_iter it;
    int r;

    if ((r = wire_decode(p, len, &m)) != 0) {
        fprintf(stderr, "valise-bench: peer %d: undecodable message: %s\n", peer, verr_str(r));
        return r;
    }
    switch (m.type) {
    case WIRE_CHALLENGE:
        return on_challenge(b, peer, &m);
    case WIRE_AUTH_OK:
        if (c->state != C_WS_AUTH)
            return VERR_PROTOCOL;
        c->state = C_READY;
        if (b->ev.ready != NULL)
            b->ev.ready(b->ev.ctx, peer);
        return 0;
    case WIRE_ERROR:
        report_error(v, "relay error", m.u.error.reason, m.u.error.text);
        return c->state == C_READY ? 0 : VERR_PROTOCOL;
    case WIRE_SUBMIT_ACK: {
        struct wire_ack a;
        size_t failed = 0;

        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            if ((r = wire_next_ack(&it, &a)) != 0)
                return r;
            if (a.reason != WIRE_R_OK) {
                failed++;
                report_error(v, "submission refused", a.reason, NULL);
            }
        }
        if (b->ev.acked != NULL)
            b->ev.acked(b->ev.ctx, peer, m.u.batch.n, failed);
        return 0;
    }
    case WIRE_DELIVER: {
        struct wire_envelope e;

        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            if ((r = wire_next_envelope(&it, &e)) != 0)
                return r;
            memcpy(v->ids + i * WIRE_ID_LEN, e.id, WIRE_ID_LEN);
            if (b->ev.delivered != NULL)
                b->ev.delivered(b->ev.ctx, peer, e.ct, e.ct_len);
        }
        /* One acknowledgement frame for the whole batch (DESIGN.md limits). */
        buf_reset(&v->scratch);
        if ((r = wire_put_ids(&v->scratch, WIRE_DELIVER_ACK, v->ids, m.u.batch.n)) != 0)
            return r;
        return send_msg(b, peer);
    }
    case WIRE_NON_DELIVERY: {
        struct wire_nd nd;

        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            if ((r = wire_next_nd(&it, &nd)) != 0)
                return r;
            memcpy(v->ids + i * WIRE_ID_LEN, nd.id, WIRE_ID_LEN);
            report_error(v, "non-delivery", nd.reason, NULL);
        }
        buf_reset(&v->scratch);
        if ((r = wire_put_ids(&v->scratch, WIRE_NON_DELIVERY_ACK, v->ids, m.u.batch.n)) != 0)
            return r;
        return send_msg(b, peer);
    }
    default:
        return 0; /* PREKEY_LOW and the like: not part of the benchmark */
    }
}

/* Handles one complete frame of the server (unmasked, RFC 6455 section 5.1). */
static int on_frame(struct be *b, int peer, unsigned op, int fin, const uint8_t *p, size_t len)
{
    struct vpriv *v = P(b);
    struct vconn *c = &v->c[peer];
    int r;

    switch (op) {
    case 0x0: /* continuation */
    case 0x2:
        if (op == 0x2 && fin && c->frag_len == 0)
            return on_message(b, peer, p, len);
        if ((r = grow(&c->frag, &c->frag_cap, c->frag_len + len)) != 0)
            return r;
        memcpy(c->frag + c->frag_len, p, len);
        c->frag_len += len;
        if (!fin)
            return 0;
        r = on_message(b, peer, c->frag, c->frag_len);
        c->frag_len = 0;
        return r;
    case 0x8:
        return VERR_NET;
    case 0x9: /* ping: answer with a pong carrying the same bytes */
        return len > 125 ? VERR_PROTOCOL : frame_out_op(v, peer, 0xa, p, len);
    case 0xa:
        return 0;
    default:
        return VERR_PROTOCOL;
    }
}

static int parse_rx(struct be *b, int peer)
{
    struct vpriv *v = P(b);
    struct vconn *c = &v->c[peer];
    int r;

    if (c->state == C_UPGRADE) {
        uint8_t *start = c->rx + c->rx_off, *end;
        size_t have = c->rx_len - c->rx_off;

        end = NULL;
        for (size_t i = 0; i + 4 <= have && end == NULL; i++)
            if (memcmp(start + i, "\r\n\r\n", 4) == 0)
                end = start + i;
        if (end == NULL)
            return have > 8192 ? VERR_PROTOCOL : 0;
        if (have < 12 || memcmp(start, "HTTP/1.1 101", 12) != 0) {
            fprintf(stderr, "valise-bench: upgrade refused: %.*s\n", (int)(have < 40 ? have : 40),
                    (const char *)start);
            return VERR_PROTOCOL;
        }
        c->rx_off += (size_t)(end + 4 - start);
        c->state = C_WS_AUTH;
        /* PROTOCOL.md part 2 "Authentication": the device speaks first. */
        randombytes_buf(c->cnonce, sizeof(c->cnonce));
        buf_reset(&v->scratch);
        if ((r = wire_put_hello(&v->scratch, c->cnonce)) != 0 || (r = send_msg(b, peer)) != 0)
            return r;
    }
    while (c->rx_len - c->rx_off >= 2) {
        const uint8_t *f = c->rx + c->rx_off;
        size_t have = c->rx_len - c->rx_off, h = 2;
        uint64_t len = f[1] & 0x7f;

        if (f[1] & 0x80)
            return VERR_PROTOCOL; /* a server never masks */
        if (len == 126) {
            if (have < 4)
                break;
            len = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            if (have < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | f[2 + i];
            h = 10;
        }
        if (len > FRAME_MAX)
            return VERR_TOO_LARGE;
        if (have - h < len) {
            /* Make room for the whole frame behind what is already here. */
            if ((r = grow(&c->rx, &c->rx_cap, c->rx_off + h + (size_t)len + RX_CHUNK)) != 0)
                return r;
            break;
        }
        c->rx_off += h + (size_t)len;
        if ((r = on_frame(b, peer, f[0] & 0x0fu, (f[0] & 0x80) != 0, f + h, (size_t)len)) != 0)
            return r;
        if (c->state == C_CLOSED)
            return 0;
    }
    if (c->rx_off == c->rx_len) {
        c->rx_off = c->rx_len = 0;
    } else if (c->rx_off > 0 && c->rx_cap - c->rx_len < RX_CHUNK) {
        memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
        c->rx_len -= c->rx_off;
        c->rx_off = 0;
    }
    return 0;
}

static int conn_read(struct be *b, int peer)
{
    struct vpriv *v = P(b);
    struct vconn *c = &v->c[peer];

    for (int turns = 0; turns < 4 && c->state != C_CLOSED; turns++) {
        ssize_t n;
        int r;

        if ((r = grow(&c->rx, &c->rx_cap, c->rx_len + RX_CHUNK)) != 0)
            return r;
        n = read(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return VERR_NET;
        c->rx_len += (size_t)n;
        if ((r = parse_rx(b, peer)) != 0)
            return r;
        if ((size_t)n < RX_CHUNK)
            return 0;
    }
    return 0;
}

/* ---- peers ---- */

static int v_open(struct be *b, int peer, size_t device)
{
    struct vpriv *v = P(b);
    struct vconn *c;
    struct sockaddr_in a;
    struct epoll_event e;
    uint8_t key[16];
    char req[512], k64[32];
    int one = 1, n;

    if (peer < 0 || (size_t)peer >= v->max_peers || device >= b->keys->n)
        return VERR_USAGE;
    c = &v->c[peer];
    conn_close(b, peer, 0);
    c->device = device;
    c->out_armed = 0;
    if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return VERR_NET;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)b->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->state = C_UPGRADE;
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (errno != EINPROGRESS) {
            close(c->fd);
            c->fd = -1;
            c->state = C_CLOSED;
            return VERR_NET;
        }
        c->state = C_CONNECTING;
    }
    e.events = EPOLLIN | EPOLLOUT;
    e.data.u32 = (uint32_t)peer;
    if (epoll_ctl(v->ep, EPOLL_CTL_ADD, c->fd, &e) != 0) {
        close(c->fd);
        c->fd = -1;
        c->state = C_CLOSED;
        return VERR_NET;
    }
    c->out_armed = 1;
    randombytes_buf(key, sizeof(key));
    sodium_bin2base64(k64, sizeof(k64), key, sizeof(key), sodium_base64_VARIANT_ORIGINAL);
    n = snprintf(req, sizeof(req),
                 "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Protocol: valise.v1\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 b->port, k64);
    if (n < 0 || (size_t)n >= sizeof(req) || grow(&c->tx, &c->tx_cap, (size_t)n) != 0)
        return VERR_INTERNAL;
    memcpy(c->tx, req, (size_t)n);
    c->tx_off = 0;
    c->tx_len = (size_t)n;
    mark_dirty(v, peer);
    return 0;
}

static void v_close(struct be *b, int peer)
{
    conn_close(b, peer, 0);
}

static int finish_submit(struct be *b, int peer)
{
    struct vpriv *v = P(b);
    struct vconn *c = &v->c[peer];
    int r;

    if (c->sub_n == 0)
        return 0;
    if ((r = wire_batch_end(&c->sub, c->sub_cnt_off, c->sub_n)) != 0)
        return r;
    c->sub_n = 0;
    return frame_out(v, peer, buf_data(&c->sub), buf_size(&c->sub));
}

static int v_submit(struct be *b, int peer, size_t to, int flash, const uint8_t *payload,
                    size_t len)
{
    struct vpriv *v = P(b);
    struct vconn *c = &v->c[peer];
    struct wire_envelope e;
    uint32_t pid = (uint32_t)peer;
    int r;

    if (c->state != C_READY || to >= b->keys->n || len > UINT32_MAX)
        return VERR_PROTOCOL;
    if (c->sub_n == 0) {
        buf_reset(&c->sub);
        if ((r = wire_batch_begin(&c->sub, WIRE_SUBMIT, &c->sub_cnt_off)) != 0)
            return r;
    }
    if (b->ordered_ids == 1) {
        /* This run's nonce, then peer and counter big-endian: ids grow per sender. */
        memcpy(e.id, v->nonce, 8);
        for (int i = 0; i < 4; i++) {
            e.id[8 + i] = (uint8_t)(pid >> (24 - 8 * i));
            e.id[12 + i] = (uint8_t)(c->seq >> (24 - 8 * i));
        }
    } else {
        /* Random bits from a pooled draw (the client draws them per envelope). */
        if (v->id_off + WIRE_ID_LEN > ID_POOL) {
            randombytes_buf(v->id_pool, ID_POOL);
            v->id_off = 0;
        }
        memcpy(e.id, v->id_pool + v->id_off, WIRE_ID_LEN);
        v->id_off += WIRE_ID_LEN;
        if (b->ordered_ids == 0) {
            /* The client's layout (client/mailbox.c): 48-bit ms time, then random. */
            struct timespec ts;
            uint64_t ms;

            clock_gettime(CLOCK_REALTIME, &ts);
            ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
            for (int i = 0; i < 6; i++)
                e.id[i] = (uint8_t)(ms >> (40 - 8 * i));
        }
    }
    c->seq++;
    memcpy(e.peer, b->keys->dev[to].id, DEVICE_ID_LEN);
    e.precedence = flash ? WIRE_FLASH : WIRE_ROUTINE;
    e.expiry = (uint64_t)time(NULL) + 3600;
    e.ct = payload;
    e.ct_len = (uint32_t)len;
    if ((r = wire_put_envelope(&c->sub, &e)) != 0)
        return r;
    if (++c->sub_n >= b->batch)
        return finish_submit(b, peer);
    mark_dirty(v, peer);
    return 0;
}

static int v_flush(struct be *b)
{
    struct vpriv *v = P(b);

    for (size_t i = 0; i < v->ndirty; i++) {
        int peer = v->dirty[i];
        struct vconn *c = &v->c[peer];

        c->dirty = 0;
        if (c->state == C_CLOSED || c->state == C_FREE)
            continue;
        if (finish_submit(b, peer) != 0) {
            conn_close(b, peer, 1);
            continue;
        }
        (void)conn_write(b, peer);
    }
    v->ndirty = 0;
    return 0;
}

static int v_run(struct be *b, int timeout_ms)
{
    struct vpriv *v = P(b);
    struct epoll_event ev[512];
    int n = epoll_wait(v->ep, ev, 512, timeout_ms);

    if (n < 0)
        return errno == EINTR ? 0 : VERR_NET;
    for (int i = 0; i < n; i++) {
        int peer = (int)ev[i].data.u32;
        struct vconn *c = &v->c[peer];

        if (c->state == C_CLOSED || c->state == C_FREE)
            continue;
        if (c->state == C_CONNECTING && (ev[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            int err = 0;
            socklen_t el = sizeof(err);

            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
                conn_close(b, peer, 1);
                continue;
            }
            c->state = C_UPGRADE;
        }
        if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            if (conn_read(b, peer) != 0) {
                conn_close(b, peer, 1);
                continue;
            }
        }
        if ((ev[i].events & EPOLLOUT) && c->state != C_CLOSED)
            mark_dirty(v, peer);
    }
    return v_flush(b);
}

static void v_destroy(struct be *b)
{
    struct vpriv *v;

    if (b == NULL)
        return;
    v = P(b);
    if (v != NULL) {
        for (size_t i = 0; i < v->max_peers; i++) {
            conn_close(b, (int)i, 0);
            free(v->c[i].rx);
            free(v->c[i].tx);
            free(v->c[i].frag);
            buf_free(&v->c[i].sub);
        }
        if (v->pid > 0)
            proc_stop(v->pid, SIGTERM);
        if (v->ep >= 0)
            close(v->ep);
        buf_free(&v->scratch);
        free(v->ids);
        free(v->dirty);
        free(v->c);
        free(v);
    }
    free(b);
}

static const struct be_ops valise_ops = {
    .name = "valise",
    .start = v_start,
    .stop = v_stop,
    .healthy = v_healthy,
    .pid = v_pid,
    .open = v_open,
    .close = v_close,
    .submit = v_submit,
    .flush = v_flush,
    .run = v_run,
    .commits = v_commits,
    .destroy = v_destroy,
};

int be_valise_new(struct be **out, const struct be_server *srv, const struct bench_keys *k,
                  const struct be_events *ev, size_t max_peers, size_t batch)
{
    struct be *b;
    struct vpriv *v;
    int r = VERR_NOMEM;

    *out = NULL;
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return VERR_NOMEM;
    b->ops = &valise_ops;
    b->srv = *srv;
    b->ev = *ev;
    b->keys = k;
    b->batch = batch == 0 ? 1 : batch > WIRE_MAX_BATCH ? WIRE_MAX_BATCH : batch;
    if ((v = calloc(1, sizeof(*v))) == NULL)
        goto out;
    b->priv = v;
    v->ep = -1;
    v->max_peers = max_peers;
    v->mask_off = MASK_POOL;
    v->id_off = ID_POOL;
    randombytes_buf(v->nonce, sizeof(v->nonce));
    if ((v->c = calloc(max_peers, sizeof(*v->c))) == NULL ||
        (v->dirty = calloc(max_peers, sizeof(*v->dirty))) == NULL ||
        (v->ids = malloc((size_t)WIRE_MAX_BATCH * WIRE_ID_LEN)) == NULL)
        goto out;
    for (size_t i = 0; i < max_peers; i++) {
        v->c[i].fd = -1;
        if ((r = buf_init(&v->c[i].sub, (size_t)WIRE_MAX_BATCH * (WIRE_ENVELOPE_FIXED + 2048) + 64,
                          0)) != 0)
            goto out;
    }
    if ((r = buf_init(&v->scratch, (size_t)WIRE_MAX_BATCH * WIRE_ID_LEN + 4096, 0)) != 0)
        goto out;
    if ((v->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        r = VERR_IO;
        goto out;
    }
    *out = b;
    b = NULL;
    r = 0;
out:
    v_destroy(b);
    return r;
}
