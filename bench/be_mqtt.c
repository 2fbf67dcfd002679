/*
 * be_mqtt.c - the Eclipse Mosquitto backend for the side-by-side run
 * (issue 7): the same peers, payloads and recipients through libmosquitto,
 * driven from the generator's own epoll loop (mosquitto_socket,
 * mosquitto_loop_read / _write), no library threads.
 *
 * Mapping: device d subscribes to topic "v/<d>" at QoS 1 with a persistent
 * session (clean_session false, client id "bench-<d>"), so messages to an
 * offline device are queued by the broker; a submission is a QoS 1 PUBLISH
 * to the recipient's topic; the acknowledgement is the PUBACK, which the
 * broker sends once the message is in its memory (persistence is a periodic
 * snapshot, not a per-message commit). MQTT has no precedence: a FLASH probe
 * is an ordinary QoS 1 message.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef BENCH_HAVE_MQTT

int be_mqtt_new(struct be **out, const struct be_server *srv, const struct bench_keys *k,
                const struct be_events *ev, size_t max_peers, size_t batch)
{
    (void)srv, (void)k, (void)ev, (void)max_peers, (void)batch;
    *out = NULL;
    fprintf(stderr, "valise-bench: built without libmosquitto (install libmosquitto-dev)\n");
    return VERR_USAGE;
}

#else

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mosquitto.h>

enum { TOPIC_MAX = 32 };

struct mconn {
    struct mosquitto *m;
    int fd;
    int peer;
    size_t device;
    int ready, out_armed;
    struct be *b;
};

struct mpriv {
    int ep;
    struct mconn *c;
    size_t max_peers;
    pid_t pid;
    int starts;
    char datadir[512], conf[512], logpath[512];
    unsigned long errors_printed;
};

static struct mpriv *P(struct be *b)
{
    return b->priv;
}

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = 0;

    if (fd < 0)
        return 0;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* The broker's configuration: loopback, persistence on, QoS 1 queues big enough. */
static int write_conf(struct be *b)
{
    struct mpriv *m = P(b);
    FILE *f = fopen(m->conf, "w");

    if (f == NULL)
        return VERR_IO;
    fprintf(f,
            "# written by valise-bench (bench/be_mqtt.c)\n"
            "listener %d 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            "persistence_location %s/\n"
            "autosave_interval 1800\n"
            "max_queued_messages %llu\n"
            "max_queued_bytes 0\n"
            "max_inflight_messages 1000\n"
            "max_keepalive 65535\n"
            "set_tcp_nodelay true\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
            "connection_messages false\n"
            /* Run as root, mosquitto would switch to user mosquitto and lose its data dir. */
            "%s",
            b->port, m->datadir, (unsigned long long)b->srv.queue_max,
            geteuid() == 0 ? "user root\n" : "");
    return fclose(f) == 0 ? 0 : VERR_IO;
}

static int m_start(struct be *b, int fresh)
{
    struct mpriv *m = P(b);
    char *argv[4];
    uint64_t deadline;
    int r;

    if (fresh || m->starts == 0) {
        snprintf(m->datadir, sizeof(m->datadir), "%s/mosq-data.%d", b->srv.workdir, m->starts);
        if (mkdir(m->datadir, 0700) != 0 && errno != EEXIST)
            return VERR_IO;
        if ((b->port = free_port()) == 0)
            return VERR_NET;
    }
    m->starts++;
    snprintf(m->conf, sizeof(m->conf), "%s/mosquitto.conf", b->srv.workdir);
    snprintf(m->logpath, sizeof(m->logpath), "%s/mosquitto.log", b->srv.workdir);
    if ((r = write_conf(b)) != 0)
        return r;
    argv[0] = (char *)b->srv.bin;
    argv[1] = "-c";
    argv[2] = m->conf;
    argv[3] = NULL;
    if ((m->pid = proc_spawn(argv, m->logpath)) < 0)
        return VERR_IO;
    deadline = bench_now_ns() + 120ull * 1000000000u;
    while (bench_now_ns() < deadline) {
        if (tcp_probe(b->port))
            return 0;
        if (proc_exited(m->pid)) {
            m->pid = 0;
            break;
        }
        usleep(200);
    }
    fprintf(stderr, "valise-bench: mosquitto did not start (see %s)\n", m->logpath);
    return VERR_IO;
}

static void m_stop(struct be *b, int sig)
{
    proc_stop(P(b)->pid, sig);
    P(b)->pid = 0;
}

static int m_healthy(struct be *b)
{
    return b->port > 0 && tcp_probe(b->port);
}

static pid_t m_pid(struct be *b)
{
    return P(b)->pid;
}

static int m_commits(struct be *b, double c[static 4])
{
    (void)b, (void)c;
    return -1;
}

static void topic_of(char out[TOPIC_MAX], size_t device)
{
    snprintf(out, TOPIC_MAX, "v/%zu", device);
}

static void set_interest(struct mpriv *p, struct mconn *c)
{
    int want = c->m != NULL && mosquitto_want_write(c->m);
    struct epoll_event e = {.events = EPOLLIN | (want ? EPOLLOUT : 0u),
                            .data.u32 = (uint32_t)c->peer};

    if (c->fd < 0 || want == c->out_armed)
        return;
    if (epoll_ctl(p->ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->out_armed = want;
}

static void on_connect(struct mosquitto *mq, void *obj, int rc)
{
    struct mconn *c = obj;
    char topic[TOPIC_MAX];

    if (rc != 0) {
        fprintf(stderr, "valise-bench: mosquitto refused peer %d: %s\n", c->peer,
                mosquitto_connack_string(rc));
        return;
    }
    topic_of(topic, c->device);
    if (mosquitto_subscribe(mq, NULL, topic, 1) != MOSQ_ERR_SUCCESS)
        fprintf(stderr, "valise-bench: subscribe failed for peer %d\n", c->peer);
}

static void on_subscribe(struct mosquitto *mq, void *obj, int mid, int n, const int *qos)
{
    struct mconn *c = obj;

    (void)mq, (void)mid, (void)n, (void)qos;
    c->ready = 1;
    if (c->b->ev.ready != NULL)
        c->b->ev.ready(c->b->ev.ctx, c->peer);
}

static void on_publish(struct mosquitto *mq, void *obj, int mid)
{
    struct mconn *c = obj;

    (void)mq, (void)mid;
    if (c->b->ev.acked != NULL)
        c->b->ev.acked(c->b->ev.ctx, c->peer, 1, 0);
}

static void on_message(struct mosquitto *mq, void *obj, const struct mosquitto_message *msg)
{
    struct mconn *c = obj;

    (void)mq;
    if (c->b->ev.delivered != NULL && msg->payloadlen > 0)
        c->b->ev.delivered(c->b->ev.ctx, c->peer, msg->payload, (size_t)msg->payloadlen);
}

static void conn_drop(struct be *b, int peer, int notify)
{
    struct mpriv *p = P(b);
    struct mconn *c = &p->c[peer];

    if (c->m == NULL)
        return;
    if (c->fd >= 0)
        epoll_ctl(p->ep, EPOLL_CTL_DEL, c->fd, NULL);
    mosquitto_destroy(c->m);
    c->m = NULL;
    c->fd = -1;
    c->ready = 0;
    if (notify && b->ev.closed != NULL)
        b->ev.closed(b->ev.ctx, peer);
}

static int m_open(struct be *b, int peer, size_t device)
{
    struct mpriv *p = P(b);
    struct mconn *c;
    struct epoll_event e;
    char id[32];
    int rc;

    if (peer < 0 || (size_t)peer >= p->max_peers)
        return VERR_USAGE;
    c = &p->c[peer];
    conn_drop(b, peer, 0);
    c->peer = peer;
    c->device = device;
    c->b = b;
    c->out_armed = 0;
    snprintf(id, sizeof(id), "bench-%zu", device);
    if ((c->m = mosquitto_new(id, false, c)) == NULL)
        return VERR_NOMEM;
    mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_max_inflight_messages_set(c->m, 0);
    mosquitto_connect_callback_set(c->m, on_connect);
    mosquitto_subscribe_callback_set(c->m, on_subscribe);
    mosquitto_publish_callback_set(c->m, on_publish);
    mosquitto_message_callback_set(c->m, on_message);
    if ((rc = mosquitto_connect(c->m, "127.0.0.1", b->port, 3600)) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "valise-bench: mosquitto connect: %s\n", mosquitto_strerror(rc));
        conn_drop(b, peer, 0);
        return VERR_NET;
    }
    c->fd = mosquitto_socket(c->m);
    e.events = EPOLLIN;
    e.data.u32 = (uint32_t)peer;
    if (c->fd < 0 || epoll_ctl(p->ep, EPOLL_CTL_ADD, c->fd, &e) != 0) {
        conn_drop(b, peer, 0);
        return VERR_NET;
    }
    set_interest(p, c);
    return 0;
}

static void m_close(struct be *b, int peer)
{
    struct mconn *c = &P(b)->c[peer];

    if (c->m != NULL) {
        mosquitto_disconnect(c->m);
        (void)mosquitto_loop_write(c->m, 1);
    }
    conn_drop(b, peer, 0);
}

static int m_submit(struct be *b, int peer, size_t to, int flash, const uint8_t *payload,
                    size_t len)
{
    struct mpriv *p = P(b);
    struct mconn *c = &p->c[peer];
    char topic[TOPIC_MAX];
    int rc;

    (void)flash; /* MQTT has no precedence classes */
    if (c->m == NULL || !c->ready || len > INT32_MAX)
        return VERR_PROTOCOL;
    topic_of(topic, to);
    rc = mosquitto_publish(c->m, NULL, topic, (int)len, payload, 1, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        if (p->errors_printed++ < 5)
            fprintf(stderr, "valise-bench: publish: %s\n", mosquitto_strerror(rc));
        return VERR_NET;
    }
    return 0;
}

static int m_flush(struct be *b)
{
    struct mpriv *p = P(b);

    /* libmosquitto writes at publish time; finish what the socket did not take. */
    for (size_t i = 0; i < p->max_peers; i++) {
        struct mconn *c = &p->c[i];

        if (c->m == NULL)
            continue;
        if (c->out_armed || mosquitto_want_write(c->m))
            set_interest(p, c);
    }
    return 0;
}

static int m_run(struct be *b, int timeout_ms)
{
    struct mpriv *p = P(b);
    struct epoll_event ev[512];
    int n = epoll_wait(p->ep, ev, 512, timeout_ms);

    if (n < 0)
        return errno == EINTR ? 0 : VERR_NET;
    for (int i = 0; i < n; i++) {
        int peer = (int)ev[i].data.u32;
        struct mconn *c = &p->c[peer];
        int rc = MOSQ_ERR_SUCCESS;

        if (c->m == NULL)
            continue;
        /*
         * mosquitto_loop_read reads as many packets as the client has QoS>0
         * messages queued, so a pure receiver would get one packet per call:
         * call it until the socket is drained (it leaves errno at EAGAIN).
         */
        for (int k = 0;
             k < 4096 && rc == MOSQ_ERR_SUCCESS && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR));
             k++) {
            errno = 0;
            rc = mosquitto_loop_read(c->m, 1);
            if (errno == EAGAIN || errno == EWOULDBLOCK || c->m == NULL)
                break;
        }
        if (rc == MOSQ_ERR_SUCCESS && (ev[i].events & EPOLLOUT))
            rc = mosquitto_loop_write(c->m, 1000);
        if (rc != MOSQ_ERR_SUCCESS) {
            conn_drop(b, peer, 1);
            continue;
        }
        set_interest(p, c);
    }
    return m_flush(b);
}

static void m_destroy(struct be *b)
{
    struct mpriv *p;

    if (b == NULL)
        return;
    p = P(b);
    if (p != NULL) {
        for (size_t i = 0; p->c != NULL && i < p->max_peers; i++)
            conn_drop(b, (int)i, 0);
        if (p->pid > 0)
            proc_stop(p->pid, SIGTERM);
        if (p->ep >= 0)
            close(p->ep);
        free(p->c);
        free(p);
    }
    free(b);
    mosquitto_lib_cleanup();
}

static const struct be_ops mqtt_ops = {
    .name = "mosquitto",
    .start = m_start,
    .stop = m_stop,
    .healthy = m_healthy,
    .pid = m_pid,
    .open = m_open,
    .close = m_close,
    .submit = m_submit,
    .flush = m_flush,
    .run = m_run,
    .commits = m_commits,
    .destroy = m_destroy,
};

int be_mqtt_new(struct be **out, const struct be_server *srv, const struct bench_keys *k,
                const struct be_events *ev, size_t max_peers, size_t batch)
{
    struct be *b;
    struct mpriv *p;
    int r = VERR_NOMEM;

    *out = NULL;
    mosquitto_lib_init();
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return VERR_NOMEM;
    b->ops = &mqtt_ops;
    b->srv = *srv;
    b->ev = *ev;
    b->keys = k;
    b->batch = batch;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        goto out;
    b->priv = p;
    p->ep = -1;
    p->max_peers = max_peers;
    if ((p->c = calloc(max_peers, sizeof(*p->c))) == NULL)
        goto out;
    for (size_t i = 0; i < max_peers; i++)
        p->c[i].fd = -1;
    if ((p->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        r = VERR_IO;
        goto out;
    }
    *out = b;
    b = NULL;
    r = 0;
out:
    m_destroy(b);
    return r;
}

#endif
