/* wsclient.c - raw-socket websocket client for tests (see wsclient.h). */
#include "wsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* memmem is a GNU extension; this is the portable few lines. */
static const uint8_t *find_bytes(const uint8_t *h, size_t hlen, const char *needle)
{
    size_t n = strlen(needle);

    for (size_t i = 0; n <= hlen && i <= hlen - n; i++)
        if (memcmp(h + i, needle, n) == 0)
            return h + i;
    return NULL;
}

static int tcp_connect(int port)
{
    struct sockaddr_in sa;
    int fd, one = 1;

    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return VERR_NET;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads more bytes into c->in, waiting until the deadline. */
static int fill(struct wsc *c, uint64_t deadline)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    uint64_t t = mono_ms();
    ssize_t n;
    int pr;

    if (c->closed)
        return VERR_NET;
    if (t >= deadline)
        return VERR_TIMEOUT;
    pr = poll(&pfd, 1, (int)(deadline - t));
    if (pr == 0)
        return VERR_TIMEOUT;
    if (pr < 0)
        return errno == EINTR ? 0 : VERR_NET;
    if (c->in_cap - c->in_len < 65536) {
        size_t ncap = c->in_cap == 0 ? 131072 : c->in_cap * 2;
        uint8_t *np = realloc(c->in, ncap);

        if (np == NULL)
            return VERR_NOMEM;
        c->in = np;
        c->in_cap = ncap;
    }
    n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n < 0 && errno == EINTR)
        return 0;
    if (n <= 0) {
        c->closed = 1;
        return VERR_NET;
    }
    c->in_len += (size_t)n;
    return 0;
}

static void consume(struct wsc *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

int wsc_connect(struct wsc *c, int port, const char *protocol, int timeout_ms)
{
    uint8_t key[16];
    char b64[32], req[512];
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    int n, r;

    memset(c, 0, sizeof(*c));
    if ((c->fd = tcp_connect(port)) < 0)
        return VERR_NET;
    randombytes_buf(key, sizeof(key));
    sodium_bin2base64(b64, sizeof(b64), key, sizeof(key), sodium_base64_VARIANT_ORIGINAL);
    n = snprintf(req, sizeof(req),
                 "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                 port, b64, protocol != NULL ? "Sec-WebSocket-Protocol: " : "",
                 protocol != NULL ? protocol : "", protocol != NULL ? "\r\n" : "");
    if (n <= 0 || (size_t)n >= sizeof(req))
        return VERR_INTERNAL;
    if ((r = write_all(c->fd, (const uint8_t *)req, (size_t)n)) != 0)
        goto fail;
    for (;;) {
        const uint8_t *end = find_bytes(c->in, c->in_len, "\r\n\r\n");

        if (end != NULL) {
            size_t hlen = (size_t)(end - c->in) + 4;

            if (c->in_len < 12 || memcmp(c->in, "HTTP/1.1 101", 12) != 0) {
                r = VERR_PROTOCOL;
                goto fail;
            }
            consume(c, hlen);
            return 0;
        }
        if ((r = fill(c, deadline)) != 0)
            goto fail;
    }
fail:
    wsc_close(c);
    return r;
}

void wsc_close(struct wsc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
}

int wsc_send_header(struct wsc *c, int fin, uint8_t opcode, uint64_t len, uint8_t mask[4])
{
    uint8_t h[14];
    size_t n = 0;

    h[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        h[n++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        h[n++] = 0x80 | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)(len >> (8 * i));
    }
    randombytes_buf(mask, 4);
    memcpy(h + n, mask, 4);
    n += 4;
    return write_all(c->fd, h, n);
}

int wsc_send_raw(struct wsc *c, const uint8_t *p, size_t len)
{
    return write_all(c->fd, p, len);
}

static int send_frame(struct wsc *c, uint8_t opcode, const uint8_t *p, size_t len)
{
    uint8_t mask[4], *m;
    int r;

    if ((r = wsc_send_header(c, 1, opcode, len, mask)) != 0)
        return r;
    if (len == 0)
        return 0;
    if ((m = malloc(len)) == NULL)
        return VERR_NOMEM;
    for (size_t i = 0; i < len; i++)
        m[i] = p[i] ^ mask[i & 3];
    r = write_all(c->fd, m, len);
    free(m);
    return r;
}

int wsc_send(struct wsc *c, const uint8_t *p, size_t len)
{
    return send_frame(c, 2, p, len);
}

int wsc_recv(struct wsc *c, struct buf *out, int timeout_ms)
{
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    int r;

    buf_reset(out);
    for (;;) {
        size_t need = 2, hl;
        uint64_t plen;
        uint8_t op;
        int fin, masked;

        while (c->in_len < need)
            if ((r = fill(c, deadline)) != 0)
                return r;
        fin = (c->in[0] & 0x80) != 0;
        op = c->in[0] & 0x0f;
        masked = (c->in[1] & 0x80) != 0;
        plen = c->in[1] & 0x7f;
        hl = 2;
        if (plen == 126)
            hl += 2;
        else if (plen == 127)
            hl += 8;
        if (masked)
            hl += 4;
        while (c->in_len < hl)
            if ((r = fill(c, deadline)) != 0)
                return r;
        if (plen == 126)
            plen = ((uint64_t)c->in[2] << 8) | c->in[3];
        else if (plen == 127) {
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | c->in[2 + i];
        }
        if (plen > (1u << 30) || masked)
            return VERR_PROTOCOL; /* servers do not mask (RFC 6455 5.1) */
        while (c->in_len < hl + plen)
            if ((r = fill(c, deadline)) != 0)
                return r;
        if (op == 8) {
            c->close_code = plen >= 2 ? (uint16_t)(((unsigned)c->in[hl] << 8) | c->in[hl + 1]) : (uint16_t)0;
            consume(c, hl + (size_t)plen);
            c->closed = 1;
            return VERR_NET;
        }
        if (op == 9) { /* ping: answer with the same payload */
            uint8_t pl[125];
            size_t n = plen < sizeof(pl) ? (size_t)plen : sizeof(pl);
            memcpy(pl, c->in + hl, n);
            consume(c, hl + (size_t)plen);
            if ((r = send_frame(c, 10, pl, n)) != 0)
                return r;
            continue;
        }
        if (op == 10) {
            consume(c, hl + (size_t)plen);
            continue;
        }
        if ((r = buf_put_bytes(out, c->in + hl, (size_t)plen)) != 0)
            return r;
        consume(c, hl + (size_t)plen);
        if (fin)
            return 0;
    }
}

int wsc_wait_closed(struct wsc *c, int timeout_ms)
{
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    struct buf sink;
    int r = 0;

    if (buf_init(&sink, (size_t)1 << 30, 0) != 0)
        return 0;
    /* A close frame or the end of the stream both count; messages are dropped. */
    while (!c->closed) {
        uint64_t t = mono_ms();

        if (t >= deadline)
            break;
        r = wsc_recv(c, &sink, (int)(deadline - t));
        if (r == VERR_TIMEOUT)
            break;
        if (r != 0) {
            c->closed = 1;
            break;
        }
    }
    buf_free(&sink);
    return c->closed;
}

int http_get(int port, const char *path, struct buf *out, int timeout_ms)
{
    struct wsc c;
    char req[256];
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    int n, r, status = -1;

    memset(&c, 0, sizeof(c));
    if ((c.fd = tcp_connect(port)) < 0)
        return VERR_NET;
    n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                 path);
    if (n <= 0 || (size_t)n >= sizeof(req) || write_all(c.fd, (const uint8_t *)req, (size_t)n) != 0) {
        wsc_close(&c);
        return VERR_NET;
    }
    /* Read until the peer closes or the body is complete per Content-Length. */
    for (;;) {
        const uint8_t *end = find_bytes(c.in, c.in_len, "\r\n\r\n");

        if (end != NULL) {
            size_t hlen = (size_t)(end - c.in) + 4;
            const uint8_t *cl = find_bytes(c.in, hlen, "content-length:");
            if (cl == NULL)
                cl = find_bytes(c.in, hlen, "Content-Length:");
            if (cl != NULL) {
                size_t want = (size_t)strtoul((const char *)cl + 15, NULL, 10);
                if (c.in_len >= hlen + want) {
                    if (sscanf((const char *)c.in, "HTTP/1.1 %d", &status) != 1)
                        status = -1;
                    buf_reset(out);
                    if (buf_put_bytes(out, c.in + hlen, want) != 0)
                        status = -1;
                    break;
                }
            }
        }
        r = fill(&c, deadline);
        if (r != 0)
            break;
    }
    wsc_close(&c);
    return status;
}
