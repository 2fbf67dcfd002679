/*
 * main.c - valise-bench: scenarios and the report (DESIGN.md "Performance
 * targets", issue 7). Every scenario starts its own server on a fresh data
 * directory, so one scenario's queues never slow the next.
 *
 * Scenarios:
 *   max      senders -> recipients at the highest rate the server takes
 *            (each sender keeps `window` submissions unacknowledged)
 *   rate     the same at a fixed offered rate (latency target)
 *   light    the same at a lower rate the server can carry (latency below saturation)
 *   flash    a FLASH probe (100 per s from one device) while ROUTINE traffic saturates
 *   idle     C authenticated idle connections, server memory per connection
 *   backlog  M envelopes to an offline device, server restart with them
 *            queued, then the drain rate when it connects
 *
 * Output: a readable report and lines "RESULT backend metric value unit"
 * that scripts/bench.sh turns into BENCHMARKS.md.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "dir.h"
#include "fileio.h"

enum role { R_NONE, R_SENDER, R_RECIPIENT, R_PROBE, R_IDLE };

struct peer {
    enum role role;
    int ready, closed;
    size_t to; /* recipient device (senders) */
    uint64_t sent, acked, failed, outstanding, received;
};

struct opts {
    const char *relay_bin, *mosq_bin, *workdir, *relay_flags, *scenarios, *backend;
    size_t pairs, payload, batch, window, conns, backlog, backlog_senders;
    int ordered_ids;
    double rate, light_rate, probe_rate, duration, warmup;
    int keep;
};

struct metric {
    char backend[16], name[32], unit[16];
    double value;
};

struct run {
    struct opts o;
    struct be *b;
    struct bench_keys keys;
    char dir_small[700], dir_large[700];
    size_t n_small;
    struct peer *peers;
    size_t npeers;
    uint8_t *payload;
    int measuring;
    uint64_t delivered, delivered_probe, acked, failed, closed;
    uint64_t first_delivery_ns, last_delivery_ns;
    struct bench_hist lat, lat_probe;
    struct metric *metrics;
    size_t nmetrics, capmetrics;
    unsigned long fd_limit;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---- results ---- */

static void result(struct run *rn, const char *name, double value, const char *unit)
{
    struct metric *m;

    printf("RESULT %s %s %.6g %s\n", rn->b->ops->name, name, value, unit);
    fflush(stdout);
    if (rn->nmetrics == rn->capmetrics) {
        size_t ncap = rn->capmetrics == 0 ? 64 : rn->capmetrics * 2;
        struct metric *nm = realloc(rn->metrics, ncap * sizeof(*nm));

        if (nm == NULL)
            return;
        rn->metrics = nm;
        rn->capmetrics = ncap;
    }
    m = &rn->metrics[rn->nmetrics++];
    snprintf(m->backend, sizeof(m->backend), "%s", rn->b->ops->name);
    snprintf(m->name, sizeof(m->name), "%s", name);
    snprintf(m->unit, sizeof(m->unit), "%s", unit);
    m->value = value;
}

static void latency_results(struct run *rn, const char *prefix, struct bench_hist *h)
{
    static const struct {
        const char *n;
        double q;
    } qs[] = {{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"max", 1.0}};
    char name[32];

    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        snprintf(name, sizeof(name), "%s.%s_ms", prefix, qs[i].n);
        result(rn, name, (double)hist_q(h, qs[i].q) / 1e6, "ms");
    }
    snprintf(name, sizeof(name), "%s.samples", prefix);
    result(rn, name, (double)h->n, "count");
}

/* ---- events from the backend ---- */

static void ev_ready(void *ctx, int peer)
{
    struct run *rn = ctx;

    rn->peers[peer].ready = 1;
    rn->peers[peer].closed = 0;
}

static void ev_acked(void *ctx, int peer, size_t n, size_t failed)
{
    struct run *rn = ctx;
    struct peer *p = &rn->peers[peer];

    p->acked += n;
    p->failed += failed;
    p->outstanding = p->outstanding > n ? p->outstanding - n : 0;
    rn->acked += n;
    rn->failed += failed;
}

static void ev_delivered(void *ctx, int peer, const uint8_t *payload, size_t len)
{
    struct run *rn = ctx;
    struct bench_stamp st;
    uint64_t now = bench_now_ns();

    if (len < sizeof(st))
        return;
    memcpy(&st, payload, sizeof(st));
    if (rn->first_delivery_ns == 0)
        rn->first_delivery_ns = now;
    rn->last_delivery_ns = now;
    if (st.flags & BENCH_PROBE) {
        rn->delivered_probe++;
        if (rn->measuring)
            hist_add(&rn->lat_probe, now - st.sent_ns);
        return;
    }
    rn->peers[peer].received++;
    rn->delivered++;
    if (rn->measuring)
        hist_add(&rn->lat, now - st.sent_ns);
}

static void ev_closed(void *ctx, int peer)
{
    struct run *rn = ctx;

    rn->peers[peer].closed = 1;
    rn->peers[peer].ready = 0;
    rn->closed++;
}

/* ---- driving ---- */

static void reset_peers(struct run *rn)
{
    memset(rn->peers, 0, rn->npeers * sizeof(*rn->peers));
    rn->delivered = rn->delivered_probe = rn->acked = rn->failed = rn->closed = 0;
    rn->first_delivery_ns = rn->last_delivery_ns = 0;
    rn->measuring = 0;
    hist_reset(&rn->lat);
    hist_reset(&rn->lat_probe);
}

static int submit_one(struct run *rn, int peer, size_t to, int probe, uint64_t now)
{
    struct peer *p = &rn->peers[peer];
    struct bench_stamp st = {.sent_ns = now,
                             .sender = (uint32_t)peer,
                             .seq = (uint32_t)p->sent,
                             .flags = probe ? BENCH_PROBE : 0};
    int r;

    memcpy(rn->payload, &st, sizeof(st));
    if ((r = rn->b->ops->submit(rn->b, peer, to, probe, rn->payload, rn->o.payload)) != 0)
        return r;
    p->sent++;
    p->outstanding++;
    return 0;
}

/*
 * Submits what is due: per sender, `rate` per second since t0 (0: as many as
 * the window allows), never more than `window` unacknowledged.
 */
static void pump(struct run *rn, uint64_t t0, double rate_per_sender, uint64_t limit_per_sender,
                 int e2e)
{
    uint64_t now = bench_now_ns();

    for (size_t i = 0; i < rn->npeers; i++) {
        struct peer *p = &rn->peers[i];
        uint64_t due, room, inflight;

        if (p->role != R_SENDER || !p->ready)
            continue;
        /*
         * End to end when the recipient is online (submitted but not yet
         * received), so a server that acknowledges faster than it delivers
         * cannot pile up an unbounded queue; by acknowledgements otherwise.
         */
        inflight = p->outstanding;
        if (e2e && p->to < rn->npeers && p->sent > rn->peers[p->to].received &&
            p->sent - rn->peers[p->to].received > inflight)
            inflight = p->sent - rn->peers[p->to].received;
        room = inflight < rn->o.window ? rn->o.window - inflight : 0;
        if (rate_per_sender > 0) {
            double want = rate_per_sender * (double)(now - t0) / 1e9;

            due = want > (double)p->sent ? (uint64_t)(want - (double)p->sent) : 0;
        } else {
            due = room;
        }
        if (due > room)
            due = room;
        /* At most one batch per sender per turn, so a turn stays short for everyone. */
        if (due > rn->o.batch)
            due = rn->o.batch;
        if (limit_per_sender > 0 && p->sent + due > limit_per_sender)
            due = limit_per_sender - p->sent;
        for (uint64_t k = 0; k < due; k++)
            if (submit_one(rn, (int)i, p->to, 0, now) != 0)
                break;
    }
}

static int turn(struct run *rn, int timeout_ms)
{
    int r;

    if ((r = rn->b->ops->flush(rn->b)) != 0)
        return r;
    return rn->b->ops->run(rn->b, timeout_ms);
}

static size_t count_ready(const struct run *rn, size_t from, size_t to)
{
    size_t n = 0;

    for (size_t i = from; i < to; i++)
        n += rn->peers[i].ready != 0;
    return n;
}

/* Opens peers [from, to) as devices [dev0, ...), at most `wave` handshakes at a time. */
static int open_peers(struct run *rn, size_t from, size_t to, size_t dev0, double timeout_s)
{
    size_t next = from, wave = 256;
    uint64_t deadline = bench_now_ns() + (uint64_t)(timeout_s * 1e9);
    int r;

    while (!interrupted && bench_now_ns() < deadline) {
        size_t ready = count_ready(rn, from, to);

        if (ready == to - from)
            return 0;
        while (next < to && next - from < ready + wave) {
            if ((r = rn->b->ops->open(rn->b, (int)next, dev0 + (next - from))) != 0) {
                fprintf(stderr, "valise-bench: cannot open peer %zu: %s\n", next, verr_str(r));
                return r;
            }
            next++;
        }
        if ((r = turn(rn, 1)) != 0)
            return r;
    }
    fprintf(stderr, "valise-bench: only %zu of %zu connections authenticated\n",
            count_ready(rn, from, to), to - from);
    return VERR_TIMEOUT;
}

static void close_peers(struct run *rn, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        rn->b->ops->close(rn->b, (int)i);
        rn->peers[i].ready = 0;
    }
    (void)turn(rn, 0);
}

static int server_start(struct run *rn, const char *directory)
{
    int r;

    rn->b->srv.directory = directory;
    if ((r = rn->b->ops->start(rn->b, 1)) != 0)
        return r;
    for (int i = 0; i < 20000 && !rn->b->ops->healthy(rn->b); i++)
        usleep(500);
    return rn->b->ops->healthy(rn->b) ? 0 : VERR_TIMEOUT;
}

static void server_stop(struct run *rn)
{
    close_peers(rn, 0, rn->npeers);
    rn->b->ops->stop(rn->b, SIGTERM);
}

/* ---- scenarios ---- */

/* Steady traffic: pairs senders -> pairs recipients; rate 0 = maximum. Optional FLASH probe. */
static int scenario_traffic(struct run *rn, const char *name, double rate, int probe)
{
    size_t P = rn->o.pairs, probe_peer = 2 * P;
    uint64_t t0, t_meas, t_end, next_probe, probe_seq = 0;
    double cpu0, cpu1, bench0, bench1, c0[4], c1[4];
    int have_c0 = 0;
    uint64_t deliv0, acked0, rss, dw0 = 0, next_report = 0, deliv_report = 0;
    pid_t pid;
    char key[48];
    int r;

    reset_peers(rn);
    printf("\n== %s: %s, %zu pairs, %s, %zu-byte payloads, batch %zu, window %zu%s\n",
           rn->b->ops->name, name, P, rate > 0 ? "fixed rate" : "maximum rate", rn->o.payload,
           rn->o.batch, rn->o.window, probe ? ", FLASH probe" : "");
    if (rate > 0)
        printf("   offered: %.0f envelopes/s\n", rate);
    if ((r = server_start(rn, rn->dir_small)) != 0)
        return r;
    pid = rn->b->ops->pid(rn->b);
    for (size_t i = 0; i < P; i++) {
        rn->peers[i].role = R_SENDER;
        rn->peers[i].to = P + i;
        rn->peers[P + i].role = R_RECIPIENT;
    }
    if ((r = open_peers(rn, P, 2 * P, P, 30)) != 0 || (r = open_peers(rn, 0, P, 0, 30)) != 0)
        goto out;
    if (probe) {
        rn->peers[probe_peer].role = R_PROBE;
        if ((r = open_peers(rn, probe_peer, probe_peer + 1, probe_peer, 30)) != 0)
            goto out;
    }
    t0 = bench_now_ns();
    t_meas = t0 + (uint64_t)(rn->o.warmup * 1e9);
    t_end = t_meas + (uint64_t)(rn->o.duration * 1e9);
    next_probe = t0;
    cpu0 = bench0 = 0;
    deliv0 = acked0 = 0;
    while (!interrupted) {
        uint64_t now = bench_now_ns();

        if (!rn->measuring && now >= t_meas) {
            rn->measuring = 1;
            cpu0 = proc_cpu(pid);
            bench0 = proc_cpu(getpid());
            dw0 = disk_written_bytes();
            deliv0 = rn->delivered;
            acked0 = rn->acked;
            have_c0 = rn->b->ops->commits(rn->b, c0) == 0;
            hist_reset(&rn->lat);
            hist_reset(&rn->lat_probe);
            t_meas = now;
        }
        if (rn->measuring && now >= t_end)
            break;
        /* Progress every 5 s, so a rate that sinks as the store grows shows. */
        if (rn->measuring && now >= next_report) {
            if (next_report > 0)
                printf("   %5.1f s: %.0f delivered/s\n", (double)(now - t_meas) / 1e9,
                       (double)(rn->delivered - deliv_report) / 5.0);
            next_report = (next_report == 0 ? now : next_report) + 5000000000u;
            deliv_report = rn->delivered;
        }
        if (rn->closed > 0) {
            fprintf(stderr, "valise-bench: %llu connections closed by the server\n",
                    (unsigned long long)rn->closed);
            r = VERR_NET;
            goto out;
        }
        pump(rn, t0, rate > 0 ? rate / (double)P : 0, 0, 1);
        /* Every probe that is due, each stamped now: a slow turn delays the probe too. */
        while (probe && rn->peers[probe_peer].ready && now >= next_probe) {
            (void)submit_one(rn, (int)probe_peer, P + (size_t)(probe_seq++ % P), 1, now);
            next_probe += (uint64_t)(1e9 / rn->o.probe_rate);
        }
        if ((r = turn(rn, 1)) != 0)
            goto out;
    }
    {
        double secs = (double)(bench_now_ns() - t_meas) / 1e9;
        uint64_t deliv = rn->delivered - deliv0, acked = rn->acked - acked0;

        cpu1 = proc_cpu(pid);
        bench1 = proc_cpu(getpid());
        rss = proc_rss_kib(pid);
        rn->measuring = 0;
        snprintf(key, sizeof(key), "%s.delivered_per_s", name);
        result(rn, key, (double)deliv / secs, "1/s");
        snprintf(key, sizeof(key), "%s.acked_per_s", name);
        result(rn, key, (double)acked / secs, "1/s");
        latency_results(rn, name, &rn->lat);
        if (probe) {
            snprintf(key, sizeof(key), "%s.probe", name);
            latency_results(rn, key, &rn->lat_probe);
        }
        snprintf(key, sizeof(key), "%s.server_cpu", name);
        result(rn, key, 100.0 * (cpu1 - cpu0) / secs, "%core");
        snprintf(key, sizeof(key), "%s.bench_cpu", name);
        result(rn, key, 100.0 * (bench1 - bench0) / secs, "%core");
        if (deliv > 0 && dw0 > 0) {
            snprintf(key, sizeof(key), "%s.disk_write_per_env", name);
            result(rn, key, (double)(disk_written_bytes() - dw0) / (double)deliv, "B");
        }
        snprintf(key, sizeof(key), "%s.server_rss", name);
        result(rn, key, (double)rss / 1024.0, "MiB");
        if (have_c0 && rn->b->ops->commits(rn->b, c1) == 0 && c1[1] > c0[1] && c1[3] > c0[3]) {
            snprintf(key, sizeof(key), "%s.commit_batch_mean", name);
            result(rn, key, (c1[0] - c0[0]) / (c1[1] - c0[1]), "envelopes");
            snprintf(key, sizeof(key), "%s.commits_per_s", name);
            result(rn, key, (c1[3] - c0[3]) / secs, "1/s");
            snprintf(key, sizeof(key), "%s.commit_mean_ms", name);
            result(rn, key, 1e3 * (c1[2] - c0[2]) / (c1[3] - c0[3]), "ms");
            snprintf(key, sizeof(key), "%s.commit_busy", name);
            result(rn, key, 100.0 * (c1[2] - c0[2]) / secs, "%wall");
        }
        if (rn->failed > 0) {
            snprintf(key, sizeof(key), "%s.refused", name);
            result(rn, key, (double)rn->failed, "count");
        }
    }
    /* A run that relayed nothing is a failure, whatever the figures say. */
    r = rn->delivered > 0 ? 0 : VERR_TIMEOUT;
out:
    server_stop(rn);
    return r;
}

static int scenario_idle(struct run *rn)
{
    size_t C = rn->o.conns;
    uint64_t rss0, rss1, t0;
    pid_t pid;
    int r;

    /* libmosquitto holds three descriptors per client (its socket and a socket pair). */
    if (strcmp(rn->b->ops->name, "mosquitto") == 0 && C * 3 + 64 > rn->fd_limit) {
        C = (rn->fd_limit - 64) / 3;
        printf("   open-file limit %lu: %zu libmosquitto clients at most\n", rn->fd_limit, C);
    }
    reset_peers(rn);
    printf("\n== %s: idle, %zu authenticated connections\n", rn->b->ops->name, C);
    if ((r = server_start(rn, rn->dir_large)) != 0)
        return r;
    pid = rn->b->ops->pid(rn->b);
    usleep(200000);
    rss0 = proc_anon_kib(pid);
    for (size_t i = 0; i < C; i++)
        rn->peers[i].role = R_IDLE;
    t0 = bench_now_ns();
    if ((r = open_peers(rn, 0, C, 0, 120)) != 0)
        goto out;
    result(rn, "idle.connect_s", (double)(bench_now_ns() - t0) / 1e9, "s");
    /* Let the server settle, then check that every connection is still there. */
    for (uint64_t end = bench_now_ns() + 2000000000u; bench_now_ns() < end && !interrupted;)
        (void)turn(rn, 50);
    /* Per connection: growth of anonymous memory; LMDB's mapped pages are not the connections'. */
    rss1 = proc_anon_kib(pid);
    result(rn, "idle.connections", (double)count_ready(rn, 0, C), "count");
    result(rn, "idle.server_rss", (double)proc_rss_kib(pid) / 1024.0, "MiB");
    result(rn, "idle.kib_per_conn", rss1 > rss0 ? (double)(rss1 - rss0) / (double)C : 0, "KiB");
    r = 0;
out:
    server_stop(rn);
    return r;
}

/* Waits until cond(rn) or timeout; returns 0 when cond held. */
static int wait_for(struct run *rn, int (*cond)(struct run *), double timeout_s)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)(timeout_s * 1e9);
    int r;

    while (!interrupted && bench_now_ns() < deadline) {
        if (cond(rn))
            return 0;
        if ((r = turn(rn, 1)) != 0)
            return r;
    }
    return cond(rn) ? 0 : VERR_TIMEOUT;
}

static int backlog_first(struct run *rn)
{
    return rn->delivered > 0;
}

static int backlog_drained(struct run *rn)
{
    return rn->delivered >= rn->o.backlog;
}

static int backlog_fill(struct run *rn, size_t S, double *fill_rate)
{
    uint64_t per = rn->o.backlog / S, t0;
    int r;

    for (size_t i = 0; i < S; i++) {
        rn->peers[i].role = R_SENDER;
        rn->peers[i].to = S;
    }
    if ((r = open_peers(rn, 0, S, 0, 30)) != 0)
        return r;
    t0 = bench_now_ns();
    while (!interrupted && rn->acked < rn->o.backlog) {
        pump(rn, t0, 0, per, 0);
        if ((r = turn(rn, 1)) != 0)
            return r;
        if (rn->closed > 0)
            return VERR_NET;
    }
    if (rn->failed > 0) {
        fprintf(stderr, "valise-bench: %llu backlog submissions refused\n",
                (unsigned long long)rn->failed);
        return VERR_LIMIT;
    }
    *fill_rate = (double)rn->o.backlog / ((double)(bench_now_ns() - t0) / 1e9);
    close_peers(rn, 0, S);
    return 0;
}

static int scenario_backlog(struct run *rn, int restart)
{
    size_t S = rn->o.backlog_senders, R = S;
    double fill_rate = 0;
    uint64_t t0, t_ready, t_first, t_healthy;
    int r, sig = strcmp(rn->b->ops->name, "valise") == 0 ? SIGKILL : SIGTERM;

    reset_peers(rn);
    /* Whole batches per sender. */
    rn->o.backlog = rn->o.backlog / S * S;
    printf("\n== %s: backlog of %zu envelopes to one offline device (%zu senders)%s\n",
           rn->b->ops->name, rn->o.backlog, S, restart ? ", restart with it queued" : "");
    if ((r = server_start(rn, rn->dir_small)) != 0)
        return r;
    /* The recipient registers (a persistent subscription for MQTT), then goes offline. */
    rn->peers[R].role = R_RECIPIENT;
    if ((r = open_peers(rn, R, R + 1, R, 30)) != 0)
        goto out;
    close_peers(rn, R, R + 1);
    if ((r = backlog_fill(rn, S, &fill_rate)) != 0)
        goto out;
    result(rn, "backlog.envelopes", (double)rn->o.backlog, "count");
    result(rn, "backlog.fill_per_s", fill_rate, "1/s");
    result(rn, "backlog.server_rss", (double)proc_rss_kib(rn->b->ops->pid(rn->b)) / 1024.0, "MiB");
    if (restart) {
        uint64_t ts = bench_now_ns();

        rn->b->ops->stop(rn->b, sig);
        result(rn, "restart.stop_s", (double)(bench_now_ns() - ts) / 1e9, "s");
        printf("   stopped with %s\n",
               sig == SIGKILL ? "SIGKILL (crash)" : "SIGTERM (saves its database)");
        t0 = bench_now_ns();
        if ((r = rn->b->ops->start(rn->b, 0)) != 0)
            goto out;
        while (!rn->b->ops->healthy(rn->b) && bench_now_ns() - t0 < 300000000000u)
            usleep(200);
        t_healthy = bench_now_ns();
        result(rn, "restart.healthy_ms", (double)(t_healthy - t0) / 1e6, "ms");
    } else {
        t0 = bench_now_ns();
    }
    rn->peers[R].role = R_RECIPIENT;
    /* The drain is timed from the reconnect: a broker may push before its SUBACK. */
    t_ready = bench_now_ns();
    if ((r = open_peers(rn, R, R + 1, R, 60)) != 0)
        goto out;
    if ((r = wait_for(rn, backlog_first, 60)) != 0)
        goto out;
    t_first = rn->first_delivery_ns;
    if (restart)
        result(rn, "restart.first_deliver_ms", (double)(t_first - t0) / 1e6, "ms");
    if ((r = wait_for(rn, backlog_drained, 600)) != 0) {
        fprintf(stderr, "valise-bench: drained %llu of %zu\n", (unsigned long long)rn->delivered,
                rn->o.backlog);
        goto out;
    }
    result(rn, "backlog.drain_per_s",
           (double)rn->delivered / ((double)(rn->last_delivery_ns - t_ready) / 1e9), "1/s");
    r = 0;
out:
    server_stop(rn);
    return r;
}

/* ---- set-up ---- */

static void usage(void)
{
    fprintf(
        stderr,
        "usage: valise-bench [--backend valise|mosquitto|both] [--relay BIN] [--mosquitto BIN]\n"
        "         [--scenarios max,rate,light,flash,idle,backlog,restart] [--pairs N]\n"
        "         [--rate R] [--light-rate R]\n"
        "         [--duration S] [--warmup S] [--payload BYTES] [--batch N] [--window N]\n"
        "         [--conns C] [--backlog M] [--backlog-senders N] [--relay-flags \"...\"]\n"
        "         [--workdir DIR] [--keep] [--ordered-ids | --random-ids]\n"
        "Starts the server(s) on loopback with fresh data directories, runs the scenarios\n"
        "and prints RESULT lines; with --backend both, one ratio per figure.\n");
}

static int parse_num(const char *s, double min, double max, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return VERR_USAGE;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {{"backend", 1, 0, 'B'},
                                       {"relay", 1, 0, 'R'},
                                       {"mosquitto", 1, 0, 'M'},
                                       {"scenarios", 1, 0, 's'},
                                       {"pairs", 1, 0, 'p'},
                                       {"rate", 1, 0, 'r'},
                                       {"duration", 1, 0, 'd'},
                                       {"warmup", 1, 0, 'w'},
                                       {"payload", 1, 0, 'l'},
                                       {"batch", 1, 0, 'b'},
                                       {"window", 1, 0, 'W'},
                                       {"conns", 1, 0, 'c'},
                                       {"backlog", 1, 0, 'm'},
                                       {"backlog-senders", 1, 0, 'S'},
                                       {"relay-flags", 1, 0, 'F'},
                                       {"workdir", 1, 0, 'D'},
                                       {"keep", 0, 0, 'k'},
                                       {"ordered-ids", 0, 0, 'O'},
                                       {"random-ids", 0, 0, 'X'},
                                       {"light-rate", 1, 0, 'L'},
                                       {"probe-rate", 1, 0, 'P'},
                                       {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
    double v;
    int c;

    memset(o, 0, sizeof(*o));
    o->backend = "valise";
    o->scenarios = "max,rate,light,flash,idle,backlog,restart";
    o->mosq_bin = "/usr/sbin/mosquitto";
    o->pairs = 50;
    o->rate = 50000;
    o->light_rate = 10000;
    o->probe_rate = 100;
    o->duration = 5;
    o->warmup = 1;
    o->payload = 1024;
    o->batch = 64;
    o->window = 256;
    o->conns = 10000;
    o->backlog = 100000;
    o->backlog_senders = 16;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        const char *a = optarg;

        switch (c) {
        case 'B':
            o->backend = a;
            break;
        case 'R':
            o->relay_bin = a;
            break;
        case 'M':
            o->mosq_bin = a;
            break;
        case 's':
            o->scenarios = a;
            break;
        case 'F':
            o->relay_flags = a;
            break;
        case 'D':
            o->workdir = a;
            break;
        case 'k':
            o->keep = 1;
            break;
        case 'O':
            o->ordered_ids = 1;
            break;
        case 'X':
            o->ordered_ids = 2; /* wholly random, as clients made them before UUIDv7 ids */
            break;
        case 'h':
            usage();
            return 1;
        case 'r':
        case 'P':
        case 'L':
        case 'd':
        case 'w':
            if (parse_num(a, 0, 1e9, &v) != 0)
                goto bad;
            if (c == 'r')
                o->rate = v;
            else if (c == 'L')
                o->light_rate = v;
            else if (c == 'P')
                o->probe_rate = v > 0 ? v : 1;
            else if (c == 'd')
                o->duration = v;
            else
                o->warmup = v;
            break;
        case 'p':
        case 'l':
        case 'b':
        case 'W':
        case 'c':
        case 'm':
        case 'S':
            if (parse_num(a, 1, 1e8, &v) != 0)
                goto bad;
            *(c == 'p'   ? &o->pairs
              : c == 'l' ? &o->payload
              : c == 'b' ? &o->batch
              : c == 'W' ? &o->window
              : c == 'c' ? &o->conns
              : c == 'm' ? &o->backlog
                         : &o->backlog_senders) = (size_t)v;
            break;
        default:
            usage();
            return -1;
        }
        continue;
    bad:
        fprintf(stderr, "valise-bench: bad option value: %s\n", a);
        return -1;
    }
    if (optind != argc || o->payload < BENCH_STAMP_LEN || o->payload > (1 << 20)) {
        usage();
        return -1;
    }
    return 0;
}

static int has_scenario(const struct opts *o, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = o->scenarios; (p = strstr(p, name)) != NULL; p += n)
        if ((p == o->scenarios || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

/* Runs one scenario on one system (a fresh server; see scenario_*). */
static int run_backend(struct run *rn, int mqtt, const char *scenario)
{
    struct be_server srv;
    struct be_events ev = {.ctx = rn,
                           .ready = ev_ready,
                           .acked = ev_acked,
                           .delivered = ev_delivered,
                           .closed = ev_closed};
    char extra[1024];
    uint64_t qmax = rn->o.backlog * 2 > 100000 ? rn->o.backlog * 2 : 100000;
    int r;

    /* Queue bounds big enough for the backlog; everything else at the relay's defaults. */
    snprintf(extra, sizeof(extra), "--queue-max-count %llu --queue-max-bytes %llu%s%s",
             (unsigned long long)qmax, (unsigned long long)qmax * (rn->o.payload + 1024),
             rn->o.relay_flags != NULL ? " " : "",
             rn->o.relay_flags != NULL ? rn->o.relay_flags : "");
    memset(&srv, 0, sizeof(srv));
    srv.bin = mqtt ? rn->o.mosq_bin : rn->o.relay_bin;
    srv.workdir = rn->o.workdir;
    srv.org_pub = rn->keys.org_pub;
    srv.extra = extra;
    srv.queue_max = qmax;
    r = mqtt ? be_mqtt_new(&rn->b, &srv, &rn->keys, &ev, rn->npeers, rn->o.batch)
             : be_valise_new(&rn->b, &srv, &rn->keys, &ev, rn->npeers, rn->o.batch);
    if (r != 0)
        return r;
    rn->b->ordered_ids = rn->o.ordered_ids;
    if (!mqtt)
        printf("\nvalise-relay flags: %s (durable LMDB commit before every acknowledgement)\n",
               extra);
    else
        printf("\nmosquitto: QoS 1, persistent sessions, persistence on (snapshot every 1800 s "
               "and at shutdown): a PUBACK means the message is in the broker's memory\n");
    if (strcmp(scenario, "max") == 0)
        r = scenario_traffic(rn, "max", 0, 0);
    else if (strcmp(scenario, "rate") == 0)
        r = scenario_traffic(rn, "rate", rn->o.rate, 0);
    else if (strcmp(scenario, "light") == 0)
        r = scenario_traffic(rn, "light", rn->o.light_rate, 0);
    else if (strcmp(scenario, "flash") == 0)
        r = scenario_traffic(rn, "flash", 0, 1);
    else if (strcmp(scenario, "idle") == 0)
        r = scenario_idle(rn);
    else
        r = scenario_backlog(rn, has_scenario(&rn->o, "restart"));
    if (r != 0)
        fprintf(stderr, "valise-bench: %s %s scenario failed: %s\n", rn->b->ops->name, scenario,
                verr_str(r));
    rn->b->ops->destroy(rn->b);
    rn->b = NULL;
    return r;
}

static const char *const scenario_order[] = {"max", "rate", "light", "flash", "idle", "backlog"};

static void print_ratios(const struct run *rn)
{
    printf("\n== side by side: valise / mosquitto\n");
    printf("%-32s %14s %14s %8s\n", "figure", "valise", "mosquitto", "ratio");
    for (size_t i = 0; i < rn->nmetrics; i++) {
        const struct metric *v = &rn->metrics[i];

        if (strcmp(v->backend, "valise") != 0)
            continue;
        for (size_t j = 0; j < rn->nmetrics; j++) {
            const struct metric *m = &rn->metrics[j];

            if (strcmp(m->backend, "mosquitto") != 0 || strcmp(m->name, v->name) != 0)
                continue;
            printf("%-32s %14.6g %14.6g %8.3g\n", v->name, v->value, m->value,
                   m->value != 0 ? v->value / m->value : 0);
            printf("RATIO %s %.6g\n", v->name, m->value != 0 ? v->value / m->value : 0);
        }
    }
}

int main(int argc, char **argv)
{
    struct run rn;
    char tmpl[] = "/tmp/valise-bench.XXXXXX", keydir[600];
    size_t ndev;
    unsigned long fds;
    int r, status = 1, made_workdir = 0;

    memset(&rn, 0, sizeof(rn));
    if ((r = parse_opts(argc, argv, &rn.o)) != 0)
        return r > 0 ? 0 : 2;
    if (sodium_init() < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_sigint);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(rn.o.backend, "mosquitto") != 0 && rn.o.relay_bin == NULL) {
        fprintf(stderr, "valise-bench: --relay BIN is needed for the valise backend\n");
        return 2;
    }
    fds = fd_limit_raise();
    rn.fd_limit = fds;
    if (rn.o.conns + 64 > fds) {
        fprintf(stderr, "valise-bench: open-file limit %lu: idle connections capped at %lu\n", fds,
                fds - 64);
        rn.o.conns = fds - 64;
    }
    if (rn.o.workdir == NULL) {
        if (mkdtemp(tmpl) == NULL) {
            fprintf(stderr, "valise-bench: cannot create a temporary directory\n");
            return 1;
        }
        rn.o.workdir = tmpl;
        made_workdir = 1;
    }
    /* Devices: pairs x 2 + the probe, the backlog senders + recipient, and the idle ones. */
    rn.n_small = 2 * rn.o.pairs + 1;
    if (rn.o.backlog_senders + 1 > rn.n_small)
        rn.n_small = rn.o.backlog_senders + 1;
    ndev = rn.o.conns > rn.n_small ? rn.o.conns : rn.n_small;
    if (ndev > DIR_MAX_CERTS) {
        fprintf(stderr, "valise-bench: at most %d devices\n", DIR_MAX_CERTS);
        return 2;
    }
    rn.npeers = ndev;
    if ((rn.peers = calloc(ndev, sizeof(*rn.peers))) == NULL ||
        (rn.payload = malloc(rn.o.payload)) == NULL)
        goto out;
    randombytes_buf(rn.payload, rn.o.payload); /* opaque, incompressible */
    if (file_join(keydir, sizeof(keydir), rn.o.workdir, "keys") != 0 ||
        file_mkdir_private(keydir) != 0)
        goto out;
    printf("valise-bench: %zu devices, work directory %s\n", ndev, rn.o.workdir);
    if ((r = keys_create(&rn.keys, keydir, ndev)) != 0) {
        fprintf(stderr, "valise-bench: keys: %s\n", verr_str(r));
        goto out;
    }
    snprintf(rn.dir_small, sizeof(rn.dir_small), "%s/directory-small", keydir);
    snprintf(rn.dir_large, sizeof(rn.dir_large), "%s/directory-large", keydir);
    if ((r = keys_directory(&rn.keys, rn.n_small, rn.dir_small)) != 0 ||
        (r = keys_directory(&rn.keys, ndev, rn.dir_large)) != 0) {
        fprintf(stderr, "valise-bench: directory: %s\n", verr_str(r));
        goto out;
    }
    status = 0;
    /*
     * Scenario by scenario, Valise then Mosquitto: on a shared machine a
     * burst of other work then hits both sides of a ratio, not one system.
     */
    for (size_t i = 0; i < sizeof(scenario_order) / sizeof(scenario_order[0]) && !interrupted;
         i++) {
        const char *sc = scenario_order[i];

        if (!has_scenario(&rn.o, sc) &&
            !(strcmp(sc, "backlog") == 0 && has_scenario(&rn.o, "restart")))
            continue;
        if (strcmp(rn.o.backend, "mosquitto") != 0 && run_backend(&rn, 0, sc) != 0)
            status = 1;
        if ((strcmp(rn.o.backend, "mosquitto") == 0 || strcmp(rn.o.backend, "both") == 0) &&
            run_backend(&rn, 1, sc) != 0)
            status = 1;
    }
    if (strcmp(rn.o.backend, "both") == 0)
        print_ratios(&rn);
out:
    keys_free(&rn.keys);
    hist_free(&rn.lat);
    hist_free(&rn.lat_probe);
    free(rn.metrics);
    free(rn.peers);
    free(rn.payload);
    if (made_workdir && status != 0)
        fprintf(stderr, "valise-bench: kept %s for the logs\n", tmpl);
    if (made_workdir && !rn.o.keep && status == 0) {
        char *rm[] = {"/bin/rm", "-rf", tmpl, NULL};
        pid_t pid;

        if ((pid = proc_spawn(rm, "/dev/null")) > 0)
            proc_stop(pid, 0);
    }
    return status;
}
