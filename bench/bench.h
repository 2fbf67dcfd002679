/*
 * bench.h - valise-bench, the load generator (DESIGN.md "Performance
 * targets", issue 7). Not part of the product: it creates throw-away keys,
 * starts the server under test, drives it and prints figures.
 *
 * Contract:
 *  - Two backends with the same interface (struct be): the Valise relay over
 *    raw non-blocking sockets with the generator's own websocket framing
 *    (be_valise.c), and Eclipse Mosquitto through libmosquitto (be_mqtt.c).
 *    Scenarios (main.c) only see peers, submissions, acknowledgements and
 *    deliveries, so both systems run the same traffic.
 *  - A "device" is an index into the key set; a "peer" is one client
 *    connection acting as a device. Deliveries are acknowledged by the
 *    backend itself, in one frame per received batch.
 *  - Payloads are opaque; the first bytes carry the submit time (struct
 *    bench_stamp), the rest is filler.
 */
#ifndef VALISE_BENCH_H
#define VALISE_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "sig.h"
#include "cert.h"

/* ---- time, histogram, processes (util.c) ---- */

uint64_t bench_now_ns(void);
double bench_wall(void);

/* Latency samples (kept in microseconds); percentiles from the sorted samples. */
struct bench_hist {
    uint32_t *v;
    size_t n, cap, dropped;
};
void hist_add(struct bench_hist *h, uint64_t ns);
void hist_reset(struct bench_hist *h);
void hist_free(struct bench_hist *h);
/* Sorts; q in [0,1]; 0 when empty. Returns nanoseconds. */
uint64_t hist_q(struct bench_hist *h, double q);

/* CPU seconds (user + system) and resident KiB of a process; 0 if gone. */
double proc_cpu(pid_t pid);
uint64_t proc_rss_kib(pid_t pid);
/* Anonymous resident KiB (RssAnon): memory of its own, not pages of mapped files (LMDB). */
uint64_t proc_anon_kib(pid_t pid);
/* Bytes written to all block devices so far (/sys/block/ * /stat), whoever wrote them. */
uint64_t disk_written_bytes(void);

/* Starts argv[0] with argv, stdout/stderr to logpath; returns the pid or -1. */
pid_t proc_spawn(char *const argv[], const char *logpath);
/* 1 if the child has exited (and is reaped now). */
int proc_exited(pid_t pid);
/* Sends sig and waits for the process. */
void proc_stop(pid_t pid, int sig);

/* A blocking HTTP GET on 127.0.0.1:port; returns the status (0: no answer). */
int http_get(int port, const char *path, char *body, size_t bodysz, int timeout_ms);
/* 1 when something accepts a TCP connection on 127.0.0.1:port. */
int tcp_probe(int port);
/* Raises RLIMIT_NOFILE to its hard limit; returns the new soft limit. */
unsigned long fd_limit_raise(void);

/* ---- keys (keys.c) ---- */

struct bench_device {
    uint8_t id[DEVICE_ID_LEN];
    uint8_t *sk; /* SIG_SK_LEN bytes inside keys->sks (sodium_malloc) */
    uint8_t cert[CERT_MAX_LEN];
    size_t cert_len;
};

struct bench_keys {
    char dir[256];
    char org_pub[300];
    uint8_t *sks; /* org key, then n x SIG_SK_LEN, guarded */
    struct orgpub org;
    struct cert *certs;
    struct bench_device *dev;
    size_t n;
};

/*
 * Creates an organisation and n devices (post BENCH, role dNNNN) under dir:
 * org.pub and a signed directory file per call of keys_directory.
 */
int keys_create(struct bench_keys *k, const char *dir, size_t n) VL_MUST_CHECK;
/* Writes a directory of the first n devices to path. */
int keys_directory(const struct bench_keys *k, size_t n, const char *path) VL_MUST_CHECK;
void keys_free(struct bench_keys *k);
/*
 * Makes DATA/handshake.key if absent and writes to path a relay certificate
 * for it, relay id "valise-relay", signed by the organisation (one day).
 */
int keys_relay_cert(const struct bench_keys *k, const char *data_dir,
                    const char *path) VL_MUST_CHECK;

/* ---- backends ---- */

enum { BENCH_STAMP_LEN = 24 };

/* What a payload starts with (host order: only this process reads it). */
struct bench_stamp {
    uint64_t sent_ns;
    uint32_t sender;
    uint32_t seq;
    uint32_t flags; /* BENCH_PROBE */
    uint32_t pad;
};
_Static_assert(sizeof(struct bench_stamp) == BENCH_STAMP_LEN, "stamp layout");
enum { BENCH_PROBE = 1 };

struct be_events {
    void *ctx;
    void (*ready)(void *ctx, int peer);
    /* n submissions of peer acknowledged by the server (failed: refused ones). */
    void (*acked)(void *ctx, int peer, size_t n, size_t failed);
    void (*delivered)(void *ctx, int peer, const uint8_t *payload, size_t len);
    void (*closed)(void *ctx, int peer);
};

struct be_server {
    const char *bin;       /* valise-relay or mosquitto */
    const char *workdir;   /* temp dir of this run */
    const char *directory; /* Valise: directory file */
    const char *org_pub;
    const char *extra;  /* extra server flags, space separated (Valise) */
    uint64_t queue_max; /* envelopes per offline device the server must hold */
};

struct be;

struct be_ops {
    const char *name;
    /* Starts the server on a fresh data dir (fresh) or the existing one. */
    int (*start)(struct be *b, int fresh);
    /* Stops the server with sig (SIGKILL: crash, SIGTERM: clean). */
    void (*stop)(struct be *b, int sig);
    /* 1 when the server answers (Valise: /healthz 200; Mosquitto: accepts). */
    int (*healthy)(struct be *b);
    pid_t (*pid)(struct be *b);
    /* Opens peer slot `peer` as device `device`; ready() fires when usable. */
    int (*open)(struct be *b, int peer, size_t device);
    void (*close)(struct be *b, int peer);
    /* Queues one submission from peer to device `to` (precedence: Valise only). */
    int (*submit)(struct be *b, int peer, size_t to, int flash, const uint8_t *payload, size_t len);
    /* Sends everything queued. */
    int (*flush)(struct be *b);
    /* One turn: waits up to timeout_ms, dispatches events. */
    int (*run)(struct be *b, int timeout_ms);
    /*
     * Group commits so far, from the server's metrics: c[0] envelopes in
     * commit batches, c[1] batches, c[2] seconds spent committing, c[3]
     * commits in total. -1 if the server has no such figures.
     */
    int (*commits)(struct be *b, double c[static 4]);
    void (*destroy)(struct be *b);
};

struct be {
    const struct be_ops *ops;
    struct be_server srv;
    struct be_events ev;
    const struct bench_keys *keys;
    int port;
    size_t batch;    /* submissions per SUBMIT message (Valise) */
    int ordered_ids; /* Valise ids: 0 as the client (ms time | random), 1 counter, 2 random */
    void *priv;
};

int be_valise_new(struct be **out, const struct be_server *srv, const struct bench_keys *k,
                  const struct be_events *ev, size_t max_peers, size_t batch) VL_MUST_CHECK;
int be_mqtt_new(struct be **out, const struct be_server *srv, const struct bench_keys *k,
                const struct be_events *ev, size_t max_peers, size_t batch) VL_MUST_CHECK;

#endif
