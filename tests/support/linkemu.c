/* linkemu.c - the tests' userspace link emulator (see linkemu.h). */
#include "linkemu.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    LE_MAX_CONNS = 32,
    LE_READ = 512,           /* bytes taken from a socket at a time */
    LE_QUEUE_MAX = 64 * 1024, /* bytes held per direction on a link without a rate */
    /*
     * A router's queue in front of the link: what a direction holds beyond
     * its bandwidth-delay product (rate x one-way delay) before it stops
     * reading, so the sender's TCP sees its bytes acknowledged at the
     * link's rate, as on a real link, not all at once.
     */
    LE_ROUTER_QUEUE = 2048,
    /*
     * The emulator's own sockets take only this much into their kernel
     * receive buffer (Linux doubles it, and keeps a floor of about 4.6 KB):
     * what the kernel acknowledges before the emulator reads it.
     */
    LE_SOCK_RCVBUF = 2048,
    LE_TICK_MS = 2,
};

struct le_chunk {
    struct le_chunk *next;
    uint64_t due_ms;
    size_t len, off;
    uint8_t data[LE_READ];
};

struct le_dir {
    struct le_chunk *head, *tail;
    size_t queued;
    uint64_t free_ms; /* when the serialiser is free again */
    int eof;          /* the source side closed: shut down the far side once drained */
    int shut;
};

struct le_conn {
    int used;
    int fd[2]; /* 0: client side, 1: server side */
    struct le_dir dir[2]; /* 0: up (client -> server), 1: down */
};

struct linkemu {
    struct linkemu_cfg cfg;
    size_t hold[2]; /* bytes a direction holds before it stops reading its source */
    int lfd;
    pthread_t th;
    pthread_mutex_t mu;
    int stop, manual_down, was_down;
    uint64_t start_ms;
    struct linkemu_counters cnt;
    struct le_conn conns[LE_MAX_CONNS];
};

static uint64_t le_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void le_reset_fd(int fd)
{
    struct linger lg = {1, 0};

    if (fd < 0)
        return;
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static void le_dir_free(struct le_dir *d)
{
    struct le_chunk *c, *n;

    for (c = d->head; c != NULL; c = n) {
        n = c->next;
        free(c);
    }
    memset(d, 0, sizeof(*d));
}

static void le_conn_close(struct le_conn *c, int reset)
{
    for (int i = 0; i < 2; i++) {
        if (reset)
            le_reset_fd(c->fd[i]);
        else if (c->fd[i] >= 0)
            close(c->fd[i]);
        le_dir_free(&c->dir[i]);
    }
    memset(c, 0, sizeof(*c));
}

static int le_down(struct linkemu *le, uint64_t now)
{
    uint64_t t = now - le->start_ms;

    if (le->manual_down)
        return 1;
    if (le->cfg.period_ms == 0 || t < le->cfg.period_ms)
        return 0;
    return t % le->cfg.period_ms < le->cfg.cut_ms;
}

/* The kernel acknowledges little ahead of what the emulator took (LE_SOCK_RCVBUF). */
static void le_small_rcvbuf(int fd)
{
    int sz = LE_SOCK_RCVBUF;

    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

static void le_accept(struct linkemu *le, int down)
{
    struct sockaddr_in sa;
    int cfd, sfd, one = 1;

    while ((cfd = accept(le->lfd, NULL, NULL)) >= 0) {
        struct le_conn *c = NULL;

        if (down) {
            le_reset_fd(cfd); /* the link is down: the connection dies at once */
            continue;
        }
        for (size_t i = 0; i < LE_MAX_CONNS; i++)
            if (!le->conns[i].used) {
                c = &le->conns[i];
                break;
            }
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)le->cfg.upstream_port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (c == NULL || (sfd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
            le_reset_fd(cfd);
            continue;
        }
        le_small_rcvbuf(sfd); /* before connect: the window it announces */
        if (connect(sfd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            close(sfd);
            le_reset_fd(cfd);
            continue;
        }
        (void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        (void)setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        (void)fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) | O_NONBLOCK);
        (void)fcntl(sfd, F_SETFL, fcntl(sfd, F_GETFL) | O_NONBLOCK);
        memset(c, 0, sizeof(*c));
        c->used = 1;
        c->fd[0] = cfd;
        c->fd[1] = sfd;
        le->cnt.connections++;
    }
}

/* Reads what the source of direction d offers into its queue, timed at the link's rate. */
static int le_read(struct linkemu *le, struct le_conn *c, int d, uint64_t now)
{
    struct le_dir *q = &c->dir[d];
    uint32_t rate = d == 0 ? le->cfg.up_rate : le->cfg.down_rate;

    while (!q->eof && q->queued < le->hold[d]) {
        struct le_chunk *k = malloc(sizeof(*k));
        ssize_t n;
        uint64_t start;

        if (k == NULL)
            return -1;
        n = read(c->fd[d], k->data, sizeof(k->data));
        if (n <= 0) {
            free(k);
            if (n == 0) {
                q->eof = 1;
                return 0;
            }
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        k->next = NULL;
        k->len = (size_t)n;
        k->off = 0;
        start = q->free_ms > now ? q->free_ms : now;
        q->free_ms = start + (rate > 0 ? ((uint64_t)n * 1000u + rate - 1) / rate : 0);
        k->due_ms = q->free_ms + le->cfg.delay_ms;
        if (q->tail != NULL)
            q->tail->next = k;
        else
            q->head = k;
        q->tail = k;
        q->queued += (size_t)n;
    }
    return 0;
}

/* Writes what is due of direction d to its far side. */
static int le_write(struct linkemu *le, struct le_conn *c, int d, uint64_t now)
{
    struct le_dir *q = &c->dir[d];
    int to = c->fd[1 - d];

    while (q->head != NULL && q->head->due_ms <= now) {
        struct le_chunk *k = q->head;
        /* A peer gone (a killed `valise run`) is an error here, not SIGPIPE. */
        ssize_t n = send(to, k->data + k->off, k->len - k->off, MSG_NOSIGNAL);

        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        k->off += (size_t)n;
        q->queued -= (size_t)n;
        if (d == 0)
            le->cnt.up_bytes += (uint64_t)n;
        else
            le->cnt.down_bytes += (uint64_t)n;
        if (k->off < k->len)
            return 0;
        q->head = k->next;
        if (q->head == NULL)
            q->tail = NULL;
        free(k);
    }
    if (q->head == NULL && q->eof && !q->shut) {
        (void)shutdown(to, SHUT_WR);
        q->shut = 1;
    }
    return 0;
}

static void *le_thread(void *arg)
{
    struct linkemu *le = arg;

    for (;;) {
        struct pollfd pfd[1 + 2 * LE_MAX_CONNS];
        size_t np = 0;
        uint64_t now;
        int down;

        pthread_mutex_lock(&le->mu);
        if (le->stop) {
            pthread_mutex_unlock(&le->mu);
            break;
        }
        now = le_now();
        down = le_down(le, now);
        if (down && !le->was_down) {
            le->cnt.cuts++;
            for (size_t i = 0; i < LE_MAX_CONNS; i++)
                if (le->conns[i].used) {
                    le_conn_close(&le->conns[i], 1);
                    le->cnt.resets++;
                }
        }
        le->was_down = down;
        le_accept(le, down);
        for (size_t i = 0; i < LE_MAX_CONNS; i++) {
            struct le_conn *c = &le->conns[i];
            if (!c->used)
                continue;
            if (le_read(le, c, 0, now) != 0 || le_read(le, c, 1, now) != 0 ||
                le_write(le, c, 0, now) != 0 || le_write(le, c, 1, now) != 0 ||
                (c->dir[0].shut && c->dir[1].shut)) {
                le_conn_close(c, 0);
                continue;
            }
        }
        pfd[np].fd = le->lfd;
        pfd[np++].events = POLLIN;
        for (size_t i = 0; i < LE_MAX_CONNS; i++)
            if (le->conns[i].used)
                for (int d = 0; d < 2; d++) {
                    pfd[np].fd = le->conns[i].fd[d];
                    pfd[np++].events = le->conns[i].dir[d].queued < le->hold[d] ? POLLIN : 0;
                }
        pthread_mutex_unlock(&le->mu);
        (void)poll(pfd, (nfds_t)np, LE_TICK_MS);
    }
    return NULL;
}

int linkemu_start(struct linkemu **out, const struct linkemu_cfg *cfg, int *port)
{
    struct linkemu *le;
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int one = 1;

    *out = NULL;
    if ((le = calloc(1, sizeof(*le))) == NULL)
        return -1;
    le->cfg = *cfg;
    for (int d = 0; d < 2; d++) {
        uint32_t rate = d == 0 ? cfg->up_rate : cfg->down_rate;
        /* what is on the wire (rate x delay) plus a router's queue */
        le->hold[d] = rate == 0 ? LE_QUEUE_MAX
                                : (size_t)((uint64_t)rate * cfg->delay_ms / 1000u) +
                                      LE_ROUTER_QUEUE;
    }
    le->start_ms = le_now();
    pthread_mutex_init(&le->mu, NULL);
    if ((le->lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        goto fail;
    (void)setsockopt(le->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    le_small_rcvbuf(le->lfd); /* before listen: accepted sockets inherit it */
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(le->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(le->lfd, 16) != 0 ||
        getsockname(le->lfd, (struct sockaddr *)&sa, &sl) != 0)
        goto fail;
    (void)fcntl(le->lfd, F_SETFL, fcntl(le->lfd, F_GETFL) | O_NONBLOCK);
    *port = ntohs(sa.sin_port);
    if (pthread_create(&le->th, NULL, le_thread, le) != 0)
        goto fail;
    *out = le;
    return 0;
fail:
    if (le->lfd >= 0)
        close(le->lfd);
    pthread_mutex_destroy(&le->mu);
    free(le);
    return -1;
}

void linkemu_set_down(struct linkemu *le, int down)
{
    pthread_mutex_lock(&le->mu);
    le->manual_down = down;
    pthread_mutex_unlock(&le->mu);
}

uint64_t linkemu_up_for(struct linkemu *le)
{
    uint64_t now = le_now(), t, left;

    pthread_mutex_lock(&le->mu);
    t = now - le->start_ms;
    if (le_down(le, now))
        left = 0;
    else if (le->cfg.period_ms == 0)
        left = UINT64_MAX;
    else
        left = le->cfg.period_ms - t % le->cfg.period_ms;
    pthread_mutex_unlock(&le->mu);
    return left;
}

void linkemu_counters(struct linkemu *le, struct linkemu_counters *c)
{
    pthread_mutex_lock(&le->mu);
    *c = le->cnt;
    pthread_mutex_unlock(&le->mu);
}

void linkemu_stop(struct linkemu *le)
{
    if (le == NULL)
        return;
    pthread_mutex_lock(&le->mu);
    le->stop = 1;
    pthread_mutex_unlock(&le->mu);
    pthread_join(le->th, NULL);
    for (size_t i = 0; i < LE_MAX_CONNS; i++)
        if (le->conns[i].used)
            le_conn_close(&le->conns[i], 1);
    close(le->lfd);
    pthread_mutex_destroy(&le->mu);
    free(le);
}
