/* relay.c - the relay's core (see relay.h, PROTOCOL.md, part 2). */
#include "relay.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "audit.h"
#include "audit_record.h"
#include "cert.h"
#include "dir.h"
#include "fileio.h"
#include "log.h"
#include "netcheck.h"
#include "sdnotify.h"
#include "sig.h"
#include "store.h"
#include "transport.h"
#include "wire.h"

_Static_assert((int)TP_BINDING_LEN == (int)WIRE_BINDING_LEN, "tls-exporter is 32 bytes (RFC 9266)");

enum {
    RX_BUFFER = 64 * 1024,       /* DESIGN.md limits: read 64 KiB at a time */
    PREAUTH_FRAME_MAX = 1024,    /* a HELLO is 34 bytes, an AUTH under 400 */
    DELIVER_MAX_BYTES = 1 << 20, /* ciphertext per DELIVER message (at least one envelope) */
    /*
     * DELIVER flow control (PROTOCOL.md part 2 "Flow control"): a connection
     * starts with a window of FC_WINDOW_START bytes of DELIVER messages in
     * flight (sent, not yet answered by a DELIVER_ACK); an answer within
     * FC_TIMELY_MS grows it by the bytes answered (doubling per round trip,
     * up to FC_WINDOW_MAX); one later than FC_SLOW_MS halves it. One DELIVER
     * carries at most FC_PIECE_MAX bytes, so a cut loses little.
     */
    FC_WINDOW_START = 4096,
    FC_WINDOW_MIN = 2048,
    FC_WINDOW_MAX = 2 << 20,
    FC_PIECE_MAX = 64 * 1024,
    FC_TIMELY_MS = 4000,
    FC_SLOW_MS = 8000,
    FC_FLIGHT_MAX = 64, /* DELIVER messages in flight per connection */
    ND_BATCH = 256,
    SWEEP_LIMIT = 10000,         /* expiries per turn, so one turn stays short */
    COMMIT_MAX_ITEMS = 2048,     /* envelopes and ids per transaction (BENCHMARKS.md item 4) */
    /* While FLASH is recent, ROUTINE transactions are this small, so a FLASH that arrives
     * during one waits for a short commit (BENCHMARKS.md "FLASH lane"). */
    COMMIT_FLASH_ITEMS = 256,
    FLASH_RECENT_MS = 2000,
    OUTQ_MAX = WIRE_DIR_MAX + (1 << 20), /* replies queued for a connection: one directory fits */
    OUTQ_KEEP = 4096,            /* an idle connection keeps at most this much allocated */
    ATT_GETS_MAX = 16,           /* ATTACH_GETs served at once per connection (16 per message) */
    ATT_PUT_WEIGHT = 16,         /* an ATTACH_PUT counts as 16 items in a transaction's size */
    DELTA_CACHE = 8,             /* directory deltas kept, one per base version asked for */
    /*
     * --idle-timeout (PROTOCOL.md part 2 "Flow control"): a whole message
     * received restarts it; so does a time-out in which TCP moved at least
     * IDLE_MIN_RATE bytes a second (a long frame still arriving, or a device
     * still reading a long DELIVER), so a slow transfer is never cut while a
     * trickle is. The event loop looks once a second; lws's own timer, set
     * IDLE_GRACE_S later, is only the backstop.
     */
    IDLE_MIN_RATE = 100,
    IDLE_GRACE_S = 5,
};

enum op_kind {
    OP_AUDIT = 1,
    OP_SUBMIT,
    OP_DELIVER_ACK,
    OP_ND_ACK,
    OP_PREKEYS,
    OP_BUNDLE,
    OP_DIR_PUT,
    OP_AUDIT_GET, /* read-only: answered by the writer outside any write transaction */
    OP_ATT_OPEN,
    OP_ATT_PUT,
    OP_ATT_DONE,
};

/*
 * A connection's attachment downloads (PROTOCOL.md part 2 "Attachments"),
 * allocated at its first ATTACH_GET: the GETs being served, and the
 * ATTACH_CHUNKs in flight (sent, not yet answered by ATTACH_CHUNK_ACK),
 * which count in the DELIVER window's bytes in flight.
 */
struct att_out {
    struct {
        uint8_t att[WIRE_ID_LEN];
        uint32_t next; /* the next chunk index to send */
    } get[ATT_GETS_MAX];
    size_t nget;
    struct {
        uint8_t att[WIRE_ID_LEN];
        uint32_t i, bytes;
        uint64_t sent_ms;
    } flight[FC_FLIGHT_MAX];
    size_t nflight;
};

struct session {
    struct relay *rl;
    struct tp_conn *conn; /* NULL once closed */
    struct session *dev_next;
    uint8_t nonce[WIRE_NONCE_LEN];        /* the relay's, sent in CHALLENGE */
    uint8_t client_nonce[WIRE_NONCE_LEN]; /* from HELLO */
    uint8_t binding[WIRE_BINDING_LEN];    /* tls-exporter, or zero on ws:// */
    int challenged;                       /* CHALLENGE sent: AUTH is next */
    uint8_t device_id[DEVICE_ID_LEN];
    uint8_t sign_pk[SIG_PK_LEN];
    uint64_t serial;
    uint64_t not_after; /* the certificate's: the session ends there (PROTOCOL.md part 2) */
    int authed, in_table, close_after_flush;
    int auth_pending; /* authenticated, AUTH_OK not sent yet (waiting for a commit) */
    /* AUTH_OK waits until everything received before the AUTH is committed */
    struct session *auth_next; /* in rl->auth_wait */
    uint64_t auth_epoch;
    unsigned pending_ops;
    /* reassembly of a message split over several reads */
    uint8_t *rx;
    size_t rx_len, rx_cap;
    /* replies waiting for the socket: [u32 len][message]... */
    struct buf outq;
    struct store_cursor cur;
    int want_deliver, want_nd;
    /* DELIVER flow control: the messages in flight, oldest first (a ring) */
    struct {
        uint32_t bytes;
        uint64_t sent_ms;
    } flight[FC_FLIGHT_MAX];
    size_t flight_head, nflight;
    size_t inflight, window; /* bytes */
    int empty_sent;          /* QUEUE_EMPTY sent since the last DELIVER */
    struct att_out *att;     /* NULL until the first ATTACH_GET */
    double tokens;
    uint64_t refill_ms;
    uint64_t idle_set_ms; /* when the idle time-out was last restarted */
    uint64_t idle_tcp;    /* tp_tcp_bytes then */
    uint64_t opened_ms;   /* for the disconnect line */
    char peer[64];        /* numeric address, for the log (PROTOCOL.md part 2 "Logs") */
};

struct op {
    uint8_t kind;
    uint8_t rate_limited;
    uint8_t flash; /* a SUBMIT carrying a FLASH or IMMEDIATE envelope: committed ahead */
    uint16_t fail_reason; /* set by the writer when its transaction failed: ERROR at handback */
    struct session *s;
    size_t off, len; /* message bytes in the arena */
    struct audit_record rec;
};

/* A reply produced while applying an op: sent only once the commit is durable. */
struct staged {
    struct session *s;
    size_t off, len; /* in the reply arena */
};

struct dev_entry {
    uint8_t id[DEVICE_ID_LEN];
    const struct cert *cert;
};

struct vec {
    uint8_t *p;
    size_t len, cap;
};

enum { HIST_COMMIT = 10, HIST_BATCH = 8 };
static const double commit_bounds[HIST_COMMIT] = {0.0005, 0.001, 0.002, 0.005, 0.01,
                                                  0.02,   0.05,  0.1,   0.5,   1.0};
static const double batch_bounds[HIST_BATCH] = {1, 4, 16, 64, 256, 1024, 4096, 16384};

struct counters {
    uint64_t accepted, duplicates, delivered, expired, rejected[WIRE_R_MAX + 1];
};

/* One transaction's figures, for the /metrics histograms. */
struct chunk_stat {
    double secs;
    uint64_t envelopes;
};

/*
 * One op list and what applying it produced. Two of them: the event loop
 * fills one while the writer thread applies and commits the other
 * (BENCHMARKS.md, item "Writer thread"). A batch changes hands only
 * through relay.wstate under relay.mu, so one thread at a time touches it.
 */
struct batch {
    struct op *ops;
    size_t nops, ops_cap;
    struct op *ops_tmp; /* for putting FLASH ops first (ops_cap entries) */
    size_t ops_tmp_cap;
    struct vec arena;   /* message bytes of queued ops */
    size_t nflash;      /* FLASH SUBMITs among ops */
    uint64_t epoch;     /* the fill epoch it completes; 0: a part (FLASH, or the oldest ops) */
    int sweep;          /* run the expiry sweep in this batch */
    /* results: written by the writer, read by the event loop after the handback */
    struct buf replies;        /* staged reply messages */
    struct staged *staged;
    size_t nstaged, staged_cap;
    struct vec wake_deliver;   /* device ids (16 bytes each) to wake for delivery */
    struct vec wake_nd;        /* senders with new non-delivery notices */
    struct vec wake_prekey;    /* owners whose one-time prekeys ran low: id | u32 left */
    struct directory *new_dir; /* committed by this batch: installed at the handback */
    struct directory *txn_dir; /* put by the open transaction */
    struct counters turn;
    struct vec stats;          /* struct chunk_stat per committed transaction */
    uint64_t commit_failures;
    int commit_tried, commit_result; /* the batch's last transaction: 0 or its error */
    uint64_t queued, audit_size; /* the store's committed figures after the batch */
    uint64_t att_count, att_bytes;
};

enum writer_state { W_IDLE, W_BUSY, W_DONE };

struct relay {
    const struct relay_config *cfg;
    struct orgpub org;
    /* the relay's own identity (PROTOCOL.md part 1 "Relay certificate") */
    uint8_t *hs_sk; /* sodium_malloc: handshake key, signs CHALLENGE only */
    uint8_t relay_cert[RELAYCERT_MAX_LEN];
    size_t relay_cert_len;
    struct directory *dir;
    struct dev_entry *devs;
    size_t ndevs;
    struct store *st;
    struct raudit *audit; /* audit key and checkpoint policy (relay/audit.h) */
    struct tp *tp;
    struct store_limits lim;
    struct session **buckets;
    size_t nbuckets;
    size_t nconns, nauthed;
    volatile sig_atomic_t stop, reload;
    int audit_checked;  /* the start-up recomputation has ended (raudit_verify_poll) */
    int audit_failed;   /* ... and failed: stop, sign nothing more */
    int shutting_down;
    uint64_t last_sweep_ms;
    uint64_t last_expire_ms; /* sessions_expire, once a second */
    uint64_t flash_seen_ms;  /* when the event loop last received a FLASH or IMMEDIATE SUBMIT */
    /* op lists: fill is the event loop's, work the writer's while wstate is W_BUSY */
    struct batch batches[2];
    struct batch *fill, *work;
    pthread_t writer;
    /* mu guards wstate and wquit; fill and work are swapped only while the writer is
     * idle and reach it by W_BUSY, set under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    enum writer_state wstate;
    int wquit, writer_started;
    /*
     * Fill epochs: the list being filled is epoch fill_epoch; once a batch of
     * epoch e is handed back, everything received before that list went to the
     * writer is durable (epoch_done = e). Sessions in auth_wait get AUTH_OK then.
     */
    uint64_t fill_epoch, epoch_done;
    struct session *auth_wait;
    struct buf scratch;        /* one outgoing message being built (event loop only) */
    /* deltas made for devices (event loop only): from base to the served version `to` */
    struct {
        uint64_t base, to;
        int none; /* no delta worth sending: answer DIRECTORY_CURRENT */
        struct buf bytes;
    } deltas[DELTA_CACHE];
    size_t delta_next;
    /* metrics */
    struct counters total;
    uint64_t auth_ok, auth_fail, commits, commit_failures;
    int commit_error;          /* error of the last transaction tried, 0 when it committed */
    uint64_t commit_error_since; /* unix s of the first failure in the current run of them */
    uint64_t commit_hist[HIST_COMMIT + 1], batch_hist[HIST_BATCH + 1];
    double commit_sum;
    uint64_t batch_sum;
    uint64_t queued, audit_size; /* the store's committed figures as of the last handback */
    uint64_t att_count, att_bytes;
};

/* ---- small helpers ---- */

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static double now_sec_f(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Room for n more bytes. */
static int vec_reserve(struct vec *v, size_t n)
{
    if (n > SIZE_MAX - v->len)
        return VERR_NOMEM;
    if (v->len + n > v->cap) {
        size_t ncap = v->cap < 4096 ? 4096 : v->cap;
        uint8_t *np;

        while (ncap < v->len + n)
            ncap *= 2;
        if ((np = realloc(v->p, ncap)) == NULL)
            return VERR_NOMEM;
        v->p = np;
        v->cap = ncap;
    }
    return 0;
}

static int vec_put(struct vec *v, const void *p, size_t n)
{
    int r;

    if ((r = vec_reserve(v, n)) != 0)
        return r;
    memcpy(v->p + v->len, p, n);
    v->len += n;
    return 0;
}

static void vec_free(struct vec *v)
{
    free(v->p);
    memset(v, 0, sizeof(*v));
}

static uint16_t reason_of_verr(int r)
{
    switch (r) {
    case VERR_WRONG_ORG: return WIRE_R_WRONG_ORG;
    case VERR_EXPIRED: return WIRE_R_CERT_EXPIRED;
    case VERR_NOT_YET_VALID: return WIRE_R_CERT_NOT_YET_VALID;
    case VERR_REVOKED: return WIRE_R_REVOKED;
    case VERR_BAD_SIGNATURE: return WIRE_R_BAD_SIGNATURE;
    case VERR_NOSPACE: return WIRE_R_STORAGE_FULL;
    default: return verr_is_system(r) ? WIRE_R_STORAGE_ERROR : WIRE_R_BAD_CERT;
    }
}

/* ---- directory ---- */

static int dev_cmp(const void *a, const void *b)
{
    return memcmp(a, b, DEVICE_ID_LEN);
}

/* Sorted index of the directory's listed, unrevoked devices (newest serial wins). */
static int dev_index_build(struct relay *rl, const struct directory *d, struct dev_entry **out,
                           size_t *n)
{
    size_t nc = dir_cert_count(d), k = 0;
    struct dev_entry *e;

    *out = NULL;
    *n = 0;
    if ((e = calloc(nc > 0 ? nc : 1, sizeof(*e))) == NULL)
        return VERR_NOMEM;
    (void)rl;
    for (size_t i = 0; i < nc; i++) {
        const struct cert *c = dir_cert_at(d, i);

        if (dir_is_revoked(d, c->serial, c->device_id))
            continue;
        memcpy(e[k].id, c->device_id, DEVICE_ID_LEN);
        e[k].cert = c;
        k++;
    }
    qsort(e, k, sizeof(*e), dev_cmp);
    /* Certificates are in serial order, so for one device keep the last (newest). */
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        if (w > 0 && memcmp(e[w - 1].id, e[i].id, DEVICE_ID_LEN) == 0) {
            if (e[i].cert->serial > e[w - 1].cert->serial)
                e[w - 1] = e[i];
            continue;
        }
        e[w++] = e[i];
    }
    *out = e;
    *n = w;
    return 0;
}

static const struct cert *dev_find(const struct relay *rl, const uint8_t id[static DEVICE_ID_LEN])
{
    const struct dev_entry *e = bsearch(id, rl->devs, rl->ndevs, sizeof(*rl->devs), dev_cmp);

    return e != NULL ? e->cert : NULL;
}

/* ---- sessions by device ---- */

static size_t bucket_of(const struct relay *rl, const uint8_t id[static DEVICE_ID_LEN])
{
    uint64_t h;

    /* Device ids are random (DESIGN.md "Trust and keys"): their bytes are the hash. */
    memcpy(&h, id, sizeof(h));
    return (size_t)(h & (rl->nbuckets - 1));
}

static void table_insert(struct relay *rl, struct session *s)
{
    size_t b = bucket_of(rl, s->device_id);

    s->dev_next = rl->buckets[b];
    rl->buckets[b] = s;
    s->in_table = 1;
    rl->nauthed++;
}

static void table_remove(struct relay *rl, struct session *s)
{
    struct session **pp;

    if (!s->in_table)
        return;
    for (pp = &rl->buckets[bucket_of(rl, s->device_id)]; *pp != NULL; pp = &(*pp)->dev_next) {
        if (*pp == s) {
            *pp = s->dev_next;
            break;
        }
    }
    s->in_table = 0;
    rl->nauthed--;
}

static size_t device_sessions(const struct relay *rl, const uint8_t id[static DEVICE_ID_LEN])
{
    size_t n = 0;

    for (struct session *s = rl->buckets[bucket_of(rl, id)]; s != NULL; s = s->dev_next)
        if (memcmp(s->device_id, id, DEVICE_ID_LEN) == 0)
            n++;
    return n;
}

/* ---- output ---- */

static int outq_put(struct session *s, const struct buf *msg, size_t off, size_t len)
{
    int r;
    size_t save = buf_size(&s->outq);

    if (s->conn == NULL)
        return 0;
    if ((r = buf_put_u32(&s->outq, (uint32_t)len)) != 0 ||
        (r = buf_put_bytes(&s->outq, buf_data(msg) + off, len)) != 0) {
        buf_truncate(&s->outq, save);
        /* A peer that does not read its replies is not given unbounded memory. */
        rlog(RLOG_WARN, "connection does not read its replies: closed");
        s->close_after_flush = 1;
        tp_close_async(s->conn);
        return r;
    }
    tp_want_write(s->conn);
    return 0;
}

/* Queues the message just built in rl->scratch for s. */
static int send_scratch(struct session *s)
{
    struct relay *rl = s->rl;
    int r = outq_put(s, &rl->scratch, 0, buf_size(&rl->scratch));

    buf_reset(&rl->scratch);
    return r;
}

/* The idle clock starts again at t (ms); lws's timer is the backstop (IDLE_GRACE_S). */
static void idle_restart(struct session *s, uint64_t t)
{
    s->idle_set_ms = t;
    s->idle_tcp = tp_tcp_bytes(s->conn);
    tp_set_timeout(s->conn, (unsigned)s->rl->cfg->idle_timeout + IDLE_GRACE_S);
}

/* Sends ERROR and closes once it is out (the connection reads nothing more). */
static void fail_session(struct session *s, uint16_t reason, const char *text)
{
    struct relay *rl = s->rl;

    buf_reset(&rl->scratch);
    if (wire_put_error(&rl->scratch, reason, text) == 0)
        (void)send_scratch(s);
    s->close_after_flush = 1;
    if (s->conn != NULL) {
        tp_want_write(s->conn);
        /* A peer that never reads is not waited for long. */
        tp_set_timeout(s->conn, 5);
    }
}

/* Sends ERROR and keeps the connection. */
static void error_reply(struct session *s, uint16_t reason, const char *text)
{
    struct relay *rl = s->rl;

    buf_reset(&rl->scratch);
    if (wire_put_error(&rl->scratch, reason, text) == 0)
        (void)send_scratch(s);
}

/* ---- ops of this turn ---- */

/* Ops are added by the event loop only, to the list it fills (rl->fill). */
static struct op *op_new(struct relay *rl, uint8_t kind, struct session *s)
{
    struct batch *b = rl->fill;
    struct op *o;

    if (b->nops == b->ops_cap) {
        size_t ncap = b->ops_cap < 64 ? 64 : b->ops_cap * 2;
        struct op *np = realloc(b->ops, ncap * sizeof(*np));

        if (np == NULL)
            return NULL;
        b->ops = np;
        b->ops_cap = ncap;
    }
    o = &b->ops[b->nops++];
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->s = s;
    if (s != NULL)
        s->pending_ops++;
    return o;
}

static int op_with_msg(struct relay *rl, uint8_t kind, struct session *s, const uint8_t *p,
                       size_t len, struct op **out)
{
    struct vec *arena = &rl->fill->arena;
    size_t off = arena->len;
    struct op *o;
    int r;

    if ((r = vec_put(arena, p, len)) != 0)
        return r;
    if ((o = op_new(rl, kind, s)) == NULL) {
        arena->len = off;
        return VERR_NOMEM;
    }
    o->off = off;
    o->len = len;
    if (out != NULL)
        *out = o;
    return 0;
}

static void audit_event(struct relay *rl, uint8_t event, const struct session *s, uint16_t reason,
                        uint64_t value)
{
    struct op *o = op_new(rl, OP_AUDIT, NULL);

    if (o == NULL) {
        rlog(RLOG_ERROR, "out of memory: audit event %s lost", audit_event_name(event));
        return;
    }
    audit_record_init(&o->rec, event, now_s());
    if (s != NULL) {
        memcpy(o->rec.device_id, s->device_id, DEVICE_ID_LEN);
        o->rec.cert_serial = s->serial;
    }
    o->rec.reason = reason;
    o->rec.value = value;
}

/* ---- authentication ---- */

static void auth_fail(struct session *s, uint16_t reason, const struct cert *c)
{
    struct relay *rl = s->rl;
    char hex[9];

    if (c != NULL) {
        memcpy(s->device_id, c->device_id, DEVICE_ID_LEN);
        s->serial = c->serial;
    }
    rl->auth_fail++;
    rlog(RLOG_INFO, "auth failed from %s: device %s serial %llu: %s", s->peer,
         rlog_hex(hex, s->device_id), (unsigned long long)s->serial, wire_reason_name(reason));
    audit_event(rl, AUDIT_AUTH_FAIL, s, reason, 0);
    fail_session(s, reason, wire_reason_name(reason));
}

static void auth_complete(struct session *s);

/* Event loop: completes s now if nothing received earlier is still uncommitted. */
static void auth_wait_add(struct relay *rl, struct session *s)
{
    int busy = 0;

    if (rl->writer_started) {
        pthread_mutex_lock(&rl->mu);
        busy = rl->wstate != W_IDLE;
        pthread_mutex_unlock(&rl->mu);
    }
    if (!busy && rl->fill->nops == 0) {
        auth_complete(s);
        return;
    }
    /* the fill list's epoch if it holds ops; else the batch with the writer (fill_epoch - 1) */
    s->auth_epoch = rl->fill->nops > 0 ? rl->fill_epoch : rl->fill_epoch - 1;
    s->pending_ops++; /* kept alive while waiting */
    s->auth_next = rl->auth_wait;
    rl->auth_wait = s;
}

static void session_free(struct session *s);

/* Event loop, after a handback: AUTH_OK for those whose wait is over. */
static void auth_wait_run(struct relay *rl)
{
    struct session **pp = &rl->auth_wait;

    while (*pp != NULL) {
        struct session *s = *pp;

        if (s->auth_epoch > rl->epoch_done) {
            pp = &s->auth_next;
            continue;
        }
        *pp = s->auth_next;
        s->auth_next = NULL;
        auth_complete(s);
        s->pending_ops--;
        if (s->pending_ops == 0 && s->conn == NULL)
            session_free(s);
    }
}

/*
 * HELLO carries the device's fresh nonce; the relay answers with CHALLENGE:
 * its own nonce, its relay certificate and its handshake key's signature
 * over relay id, both nonces and the channel binding, so the device can
 * check which relay it talks to before it signs anything.
 */
static void handle_hello(struct session *s, const struct wire_msg *m)
{
    struct relay *rl = s->rl;
    uint8_t sig[SIG_LEN];
    struct buf body;
    int r;

    memcpy(s->client_nonce, m->u.client_nonce, WIRE_NONCE_LEN);
    if (tp_channel_binding(s->conn, s->binding) != 0) {
        auth_fail(s, WIRE_R_CHANNEL_BINDING, NULL);
        return;
    }
    randombytes_buf(s->nonce, sizeof(s->nonce));
    if (buf_init(&body, WIRE_HANDSHAKE_BODY_MAX, 0) != 0) {
        auth_fail(s, WIRE_R_STORAGE_ERROR, NULL);
        return;
    }
    r = wire_handshake_body(&body, rl->cfg->relay_id, s->client_nonce, s->nonce, s->binding);
    if (r == 0)
        r = sig_sign(sig, SIG_CTX_RELAY_CHALLENGE, buf_data(&body), buf_size(&body), rl->hs_sk);
    buf_free(&body);
    buf_reset(&rl->scratch);
    if (r != 0 ||
        wire_put_challenge(&rl->scratch, s->nonce, rl->relay_cert, rl->relay_cert_len, sig) != 0 ||
        send_scratch(s) != 0) {
        auth_fail(s, WIRE_R_STORAGE_ERROR, NULL);
        return;
    }
    s->challenged = 1;
}

static void handle_auth(struct session *s, const struct wire_msg *m)
{
    struct relay *rl = s->rl;
    struct cert c;
    struct buf body;
    char hex[9];
    int r;

    if ((r = cert_parse(m->u.auth.cert, m->u.auth.cert_len, &c)) != 0) {
        auth_fail(s, WIRE_R_BAD_CERT, NULL);
        return;
    }
    /* Chain to --org-pub, validity now, and revocation in the served directory. */
    if ((r = dir_check_cert(rl->dir, &c, &rl->org, now_s())) != 0) {
        auth_fail(s, reason_of_verr(r), &c);
        return;
    }
    if (buf_init(&body, WIRE_HANDSHAKE_BODY_MAX, 0) != 0 ||
        wire_handshake_body(&body, rl->cfg->relay_id, s->client_nonce, s->nonce, s->binding) !=
            0) {
        buf_free(&body);
        auth_fail(s, WIRE_R_STORAGE_ERROR, &c);
        return;
    }
    r = sig_verify(m->u.auth.sig, SIG_CTX_RELAY_AUTH, buf_data(&body), buf_size(&body),
                   c.sign_pk);
    buf_free(&body);
    /* The challenge is single-use: this connection gets no second attempt. */
    sodium_memzero(s->nonce, sizeof(s->nonce));
    sodium_memzero(s->client_nonce, sizeof(s->client_nonce));
    if (r != 0) {
        auth_fail(s, WIRE_R_BAD_SIGNATURE, &c);
        return;
    }
    if (device_sessions(rl, c.device_id) >= rl->cfg->max_device_connections) {
        memcpy(s->device_id, c.device_id, DEVICE_ID_LEN);
        s->serial = c.serial;
        audit_event(rl, AUDIT_CONNECTION_REFUSED, s, WIRE_R_TOO_MANY_DEVICE_CONNECTIONS, 0);
        fail_session(s, WIRE_R_TOO_MANY_DEVICE_CONNECTIONS, "too many connections for device");
        return;
    }
    memcpy(s->device_id, c.device_id, DEVICE_ID_LEN);
    memcpy(s->sign_pk, c.sign_pk, SIG_PK_LEN);
    s->serial = c.serial;
    s->not_after = c.not_after;
    s->authed = 1;
    s->auth_pending = 1; /* until auth_complete: nothing is accepted or delivered */
    table_insert(rl, s);
    rl->auth_ok++;
    rlog(RLOG_INFO, "device %s serial %llu authenticated from %s", rlog_hex(hex, s->device_id),
         (unsigned long long)s->serial, s->peer);
    auth_wait_add(rl, s);
    audit_event(rl, AUDIT_AUTH_OK, s, 0, 0);
}

/*
 * AUTH_OK, marks and deliveries for an authenticated session, once all that
 * arrived before its AUTH (an earlier connection's DELIVER_ACKs, say) is
 * committed: the marks and queue it reads are then up to date.
 */
static void auth_complete(struct session *s)
{
    struct relay *rl = s->rl;
    char hex[9];

    s->auth_pending = 0;
    if (s->conn == NULL || s->close_after_flush)
        return;
    {
        uint8_t hi_sub[WIRE_ID_LEN], hi_ack[WIRE_ID_LEN];

        /* A mark that cannot be read is sent as none: detection is the
         * client's bonus, not a reason to refuse service. */
        if (store_devmark_get(rl->st, s->device_id, hi_sub, hi_ack) != 0)
            rlog(RLOG_WARN, "device %s: rollback marks unreadable", rlog_hex(hex, s->device_id));
        buf_reset(&rl->scratch);
        if (wire_put_auth_ok(&rl->scratch, dir_version(rl->dir), now_s(), hi_sub, hi_ack) == 0)
            (void)send_scratch(s);
    }
    /* An owner that was offline when its prekeys ran low is told now. */
    {
        uint32_t left;

        if (store_otk_count(rl->st, s->device_id, &left) == 0 && left <= rl->cfg->otk_low) {
            buf_reset(&rl->scratch);
            if (wire_put_count(&rl->scratch, WIRE_PREKEY_LOW, left) == 0)
                (void)send_scratch(s);
        }
    }
    s->want_deliver = s->want_nd = 1;
    s->window = FC_WINDOW_START;
    s->tokens = (double)rl->cfg->rate;
    s->refill_ms = now_ms();
    idle_restart(s, now_ms());
    tp_want_write(s->conn);
}

/* ---- messages ---- */

static int rate_take(struct session *s, size_t n)
{
    const struct relay_config *cfg = s->rl->cfg;
    uint64_t t = now_ms();
    double cap = (double)cfg->rate;

    s->tokens += (double)(t - s->refill_ms) * cap / 1000.0;
    if (s->tokens > cap)
        s->tokens = cap;
    s->refill_ms = t;
    if (s->tokens < (double)n)
        return 0;
    s->tokens -= (double)n;
    return 1;
}

/*
 * A header pass over the batch (decoded already): does it carry a FLASH or
 * IMMEDIATE envelope? Such a SUBMIT takes the FLASH lane (PROTOCOL.md part 2
 * "Store and forward"), as their DELIVERs go alone ("Flow control").
 */
static uint8_t submit_has_flash(const struct wire_msg *m)
{
    struct wire_iter it;
    struct wire_envelope e;

    wire_iter_init(&it, m);
    for (size_t i = 0; i < m->u.batch.n; i++) {
        if (wire_next_envelope(&it, &e) != 0)
            return 0;
        if (e.precedence == WIRE_FLASH || e.precedence == WIRE_IMMEDIATE)
            return 1;
    }
    return 0;
}

static void flight_answered(struct session *s);
static void window_answered(struct session *s, size_t bytes, uint64_t rtt);

/* An ATTACH_STATE answer now (scratch is free between messages). */
static void att_state_reply(struct session *s, const uint8_t att[static WIRE_ID_LEN],
                            uint16_t reason, uint32_t c, uint32_t stored)
{
    struct wire_attach a;

    memset(&a, 0, sizeof(a));
    memcpy(a.att, att, WIRE_ID_LEN);
    a.reason = reason;
    a.c = c;
    a.stored = stored;
    buf_reset(&s->rl->scratch);
    if (wire_put_attach(&s->rl->scratch, WIRE_ATTACH_STATE, &a) == 0)
        (void)send_scratch(s);
}

/* 1 if an ATTACH_OPEN names a recipient twice (refused as malformed: never counted once). */
static int att_rcpt_repeated(const struct wire_attach *a, int *repeated)
{
    uint8_t *ids;

    *repeated = 0;
    if ((ids = malloc(a->n_rcpt * DEVICE_ID_LEN)) == NULL)
        return VERR_NOMEM;
    memcpy(ids, a->rcpt, a->n_rcpt * DEVICE_ID_LEN);
    qsort(ids, a->n_rcpt, DEVICE_ID_LEN, dev_cmp);
    for (size_t i = 1; i < a->n_rcpt && !*repeated; i++)
        *repeated = memcmp(ids + (i - 1) * DEVICE_ID_LEN, ids + i * DEVICE_ID_LEN,
                           DEVICE_ID_LEN) == 0;
    free(ids);
    return 0;
}

/*
 * ATTACH_GET: served by on_writeable, chunk by chunk, when no DELIVER is
 * waiting. A GET of an attachment already being served restarts it at from.
 */
static void att_get_add(struct session *s, const struct wire_attach *a)
{
    struct att_out *ao = s->att;
    size_t k;

    if (ao == NULL && (ao = s->att = calloc(1, sizeof(*ao))) == NULL) {
        error_reply(s, WIRE_R_STORAGE_ERROR, "relay out of memory");
        return;
    }
    for (k = 0; k < ao->nget; k++)
        if (memcmp(ao->get[k].att, a->att, WIRE_ID_LEN) == 0)
            break;
    if (k == ao->nget) {
        if (ao->nget == ATT_GETS_MAX) {
            att_state_reply(s, a->att, WIRE_R_RATE_LIMITED, 0, 0);
            return;
        }
        memcpy(ao->get[k].att, a->att, WIRE_ID_LEN);
        ao->nget++;
    }
    ao->get[k].next = a->i;
    tp_want_write(s->conn);
}

/* ATTACH_CHUNK_ACK: answers that chunk in flight (normally the oldest). */
static void att_chunk_answered(struct session *s, const struct wire_attach *a)
{
    struct att_out *ao = s->att;

    if (ao == NULL)
        return;
    for (size_t k = 0; k < ao->nflight; k++) {
        if (ao->flight[k].i != a->i || memcmp(ao->flight[k].att, a->att, WIRE_ID_LEN) != 0)
            continue;
        window_answered(s, ao->flight[k].bytes, now_ms() - ao->flight[k].sent_ms);
        memmove(&ao->flight[k], &ao->flight[k + 1], (ao->nflight - k - 1) * sizeof(ao->flight[0]));
        ao->nflight--;
        if (s->conn != NULL)
            tp_want_write(s->conn);
        return;
    }
    /* a chunk of an earlier connection, or answered twice: nothing in flight changes */
}

/* DIRECTORY_CURRENT: the served version and its length (PROTOCOL.md part 2 "Directory transfer"). */
static void dir_answer_current(struct session *s)
{
    struct relay *rl = s->rl;
    size_t len;

    (void)dir_bytes(rl->dir, &len);
    buf_reset(&rl->scratch);
    if (wire_put_dir_current(&rl->scratch, dir_version(rl->dir), len) == 0)
        (void)send_scratch(s);
}

/*
 * DIRECTORY_DELTA_GET: a delta from the device's version to the served one
 * when the history keeps that version and the delta is smaller than the
 * directory; else DIRECTORY_CURRENT. Deltas are made once per base version
 * (the device verifies what it rebuilds, so nothing here is trusted).
 */
static void dir_answer_delta(struct session *s, uint64_t base)
{
    struct relay *rl = s->rl;
    uint64_t to = dir_version(rl->dir);
    size_t len, total = 0, slot = DELTA_CACHE;
    const uint8_t *cur = dir_bytes(rl->dir, &len);
    struct buf old = {0}, delta = {0};

    if (base == 0 || base >= to) {
        dir_answer_current(s);
        return;
    }
    for (size_t i = 0; i < DELTA_CACHE; i++)
        if (rl->deltas[i].to == to && rl->deltas[i].base == base)
            slot = i;
    if (slot == DELTA_CACHE) {
        slot = rl->delta_next;
        rl->delta_next = (rl->delta_next + 1) % DELTA_CACHE;
        buf_free(&rl->deltas[slot].bytes);
        rl->deltas[slot].base = base;
        rl->deltas[slot].to = to;
        rl->deltas[slot].none = 1;
        if (buf_init(&old, WIRE_DIR_MAX, 0) == 0 &&
            store_dir_hist_read(rl->st, base, 0, WIRE_DIR_MAX, &old, &total) == 0 &&
            dir_delta_make(buf_data(&old), buf_size(&old), cur, len, &delta) == 0) {
            if (buf_size(&delta) < len) {
                rl->deltas[slot].bytes = delta;
                rl->deltas[slot].none = 0;
                memset(&delta, 0, sizeof(delta)); /* owned by the cache now */
            }
            buf_free(&delta);
        }
        buf_free(&old);
    }
    if (rl->deltas[slot].none) {
        dir_answer_current(s);
        return;
    }
    buf_reset(&rl->scratch);
    if (wire_put_directory(&rl->scratch, WIRE_DIRECTORY_DELTA, buf_data(&rl->deltas[slot].bytes),
                           buf_size(&rl->deltas[slot].bytes)) == 0)
        (void)send_scratch(s);
}

/*
 * DIRECTORY_PIECE_GET: up to the bytes asked for at offset of the served
 * version (0: the served one) or of one the history keeps, so a download
 * begun before a new directory can be finished; else DIRECTORY_CURRENT.
 */
static void dir_answer_piece(struct session *s, const struct wire_msg *m)
{
    struct relay *rl = s->rl;
    uint64_t v = m->u.dir_piece.version;
    size_t len, total = 0, off = m->u.dir_piece.offset, n = m->u.dir_piece.len;
    const uint8_t *cur = dir_bytes(rl->dir, &len);
    struct buf piece = {0};

    if (v == 0)
        v = dir_version(rl->dir);
    if (v == dir_version(rl->dir)) {
        if (off >= len) {
            dir_answer_current(s);
            return;
        }
        if (n > len - off)
            n = len - off;
        buf_reset(&rl->scratch);
        if (wire_put_dir_piece(&rl->scratch, v, len, (uint32_t)off, cur + off, n) == 0)
            (void)send_scratch(s);
        return;
    }
    if (buf_init(&piece, WIRE_DIR_PIECE_MAX, 0) != 0 ||
        store_dir_hist_read(rl->st, v, off, n, &piece, &total) != 0) {
        buf_free(&piece);
        dir_answer_current(s);
        return;
    }
    buf_reset(&rl->scratch);
    if (wire_put_dir_piece(&rl->scratch, v, total, (uint32_t)off, buf_data(&piece),
                           buf_size(&piece)) == 0)
        (void)send_scratch(s);
    buf_free(&piece);
}

static void handle_msg(struct session *s, const uint8_t *p, size_t len)
{
    struct relay *rl = s->rl;
    struct wire_msg m;
    struct op *o;
    int r;

    if ((r = wire_decode(p, len, &m)) != 0) {
        uint16_t reason = r == VERR_BAD_VERSION ? WIRE_R_VERSION : WIRE_R_MALFORMED;
        if (!s->authed)
            auth_fail(s, reason, NULL);
        else
            fail_session(s, reason, verr_str(r));
        return;
    }
    if (!s->authed) {
        /* PROTOCOL.md part 2 "Authentication": HELLO, then AUTH, nothing else. */
        if (!s->challenged && m.type == WIRE_HELLO)
            handle_hello(s, &m);
        else if (s->challenged && m.type == WIRE_AUTH)
            handle_auth(s, &m);
        else
            auth_fail(s, WIRE_R_NOT_AUTHENTICATED, NULL);
        return;
    }
    /* PROTOCOL.md part 2: nothing but AUTH before AUTH_OK, also while AUTH_OK waits. */
    if (s->auth_pending) {
        fail_session(s, WIRE_R_NOT_AUTHENTICATED, "message before AUTH_OK");
        return;
    }
    switch (m.type) {
    case WIRE_DIRECTORY_GET: {
        size_t dlen;
        const uint8_t *d = dir_bytes(rl->dir, &dlen);

        buf_reset(&rl->scratch);
        if (wire_put_directory(&rl->scratch, WIRE_DIRECTORY, d, dlen) == 0)
            (void)send_scratch(s);
        return;
    }
    case WIRE_DIRECTORY_DELTA_GET:
        dir_answer_delta(s, m.u.dir_piece.version);
        return;
    case WIRE_DIRECTORY_PIECE_GET:
        dir_answer_piece(s, &m);
        return;
    case WIRE_DIRECTORY_PUT:
        r = op_with_msg(rl, OP_DIR_PUT, s, p, len, NULL);
        break;
    case WIRE_PREKEY_UPLOAD: {
        uint8_t body[WIRE_SPK_BODY_LEN];

        /* Checked once here, not per bundle: the signed prekey is the owner's (X3DH 3.2). */
        memcpy(body, s->device_id, DEVICE_ID_LEN);
        body[DEVICE_ID_LEN] = (uint8_t)(m.u.prekey_upload.spk.id >> 24);
        body[DEVICE_ID_LEN + 1] = (uint8_t)(m.u.prekey_upload.spk.id >> 16);
        body[DEVICE_ID_LEN + 2] = (uint8_t)(m.u.prekey_upload.spk.id >> 8);
        body[DEVICE_ID_LEN + 3] = (uint8_t)m.u.prekey_upload.spk.id;
        memcpy(body + DEVICE_ID_LEN + 4, m.u.prekey_upload.spk.pk, WIRE_PK_LEN);
        if (sig_verify(m.u.prekey_upload.spk.sig, SIG_CTX_PREKEY, body, sizeof(body),
                       s->sign_pk) != 0 ||
            cert_check_dh_pk(m.u.prekey_upload.spk.pk) != 0) {
            error_reply(s, WIRE_R_BAD_SIGNATURE, "signed prekey does not verify");
            return;
        }
        r = op_with_msg(rl, OP_PREKEYS, s, p, len, NULL);
        break;
    }
    case WIRE_BUNDLE_GET:
        r = op_with_msg(rl, OP_BUNDLE, s, p, len, NULL);
        break;
    case WIRE_SUBMIT:
        if (rl->shutting_down) {
            error_reply(s, WIRE_R_SHUTTING_DOWN, "relay is stopping; resubmit later");
            return;
        }
        if (m.u.batch.n > rl->cfg->max_batch) {
            error_reply(s, WIRE_R_BATCH_TOO_LARGE, "too many envelopes in one SUBMIT");
            return;
        }
        if ((r = op_with_msg(rl, OP_SUBMIT, s, p, len, &o)) == 0) {
            if (!rate_take(s, m.u.batch.n))
                o->rate_limited = 1;
            o->flash = submit_has_flash(&m);
            rl->fill->nflash += o->flash;
            if (o->flash)
                rl->flash_seen_ms = now_ms();
        }
        break;
    case WIRE_DELIVER_ACK:
        flight_answered(s);
        if (m.u.batch.n > 0)
            r = op_with_msg(rl, OP_DELIVER_ACK, s, p, len, NULL);
        break;
    case WIRE_NON_DELIVERY_ACK:
        r = op_with_msg(rl, OP_ND_ACK, s, p, len, NULL);
        break;
    case WIRE_AUDIT_CHECKPOINT_GET:
    case WIRE_AUDIT_PROOF_GET:
        /* The store's committed tree is the writer's: answered by it (relay/audit.h). */
        r = op_with_msg(rl, OP_AUDIT_GET, s, p, len, NULL);
        break;
    case WIRE_ATTACH_OPEN: {
        int repeated = 0;

        if (rl->shutting_down) {
            error_reply(s, WIRE_R_SHUTTING_DOWN, "relay is stopping; open later");
            return;
        }
        if ((r = att_rcpt_repeated(&m.u.attach, &repeated)) == 0 && repeated) {
            fail_session(s, WIRE_R_MALFORMED, "ATTACH_OPEN names a recipient twice");
            return;
        }
        if (r == 0)
            r = op_with_msg(rl, OP_ATT_OPEN, s, p, len, NULL);
        break;
    }
    case WIRE_ATTACH_PUT:
        if (rl->shutting_down) {
            error_reply(s, WIRE_R_SHUTTING_DOWN, "relay is stopping; resume later");
            return;
        }
        r = op_with_msg(rl, OP_ATT_PUT, s, p, len, NULL);
        break;
    case WIRE_ATTACH_DONE:
        r = op_with_msg(rl, OP_ATT_DONE, s, p, len, NULL);
        break;
    case WIRE_ATTACH_GET:
        att_get_add(s, &m.u.attach);
        return;
    case WIRE_ATTACH_CHUNK_ACK:
        att_chunk_answered(s, &m.u.attach);
        return;
    case WIRE_AUTH:
        fail_session(s, WIRE_R_UNEXPECTED, "already authenticated");
        return;
    default:
        fail_session(s, WIRE_R_UNEXPECTED, "not a client message");
        return;
    }
    if (r != 0)
        error_reply(s, WIRE_R_STORAGE_ERROR, "relay out of memory");
}

/* ---- transport handlers ---- */

static void session_free(struct session *s)
{
    if (s == NULL)
        return;
    free(s->rx);
    buf_free(&s->outq);
    free(s->att);
    free(s);
}

static void *on_open(void *ctx, struct tp_conn *c)
{
    struct relay *rl = ctx;
    struct session *s;

    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    s->rl = rl;
    s->conn = c;
    s->opened_ms = now_ms();
    tp_peer(c, s->peer, sizeof(s->peer));
    if (buf_init(&s->outq, OUTQ_MAX, 0) != 0) {
        free(s);
        return NULL;
    }
    rl->nconns++;
    if (rl->nconns > rl->cfg->max_connections || rl->shutting_down) {
        uint16_t reason = rl->shutting_down ? WIRE_R_SHUTTING_DOWN : WIRE_R_TOO_MANY_CONNECTIONS;
        rlog(RLOG_INFO, "connection from %s refused: %s", s->peer, wire_reason_name(reason));
        audit_event(rl, AUDIT_CONNECTION_REFUSED, NULL, reason, rl->nconns);
        fail_session(s, reason, wire_reason_name(reason));
        return s;
    }
    rlog(RLOG_INFO, "connection from %s", s->peer);
    /* The device speaks first (HELLO); nothing but HELLO and AUTH before this runs out. */
    tp_set_timeout(c, (unsigned)rl->cfg->handshake_timeout);
    return s;
}

/*
 * A whole message restarts the idle clock (and sessions_idle when TCP kept
 * moving at IDLE_MIN_RATE), so a peer that trickles a frame byte by byte is
 * cut when the idle time-out runs out.
 */
static void message_done(struct session *s)
{
    uint64_t t;

    if (!s->authed || s->close_after_flush || s->conn == NULL)
        return;
    /* lws re-sorts its timer list on every set: at most once a second (BENCHMARKS.md item 6). */
    t = now_ms();
    if (t - s->idle_set_ms < 1000)
        return;
    idle_restart(s, t);
}

static int on_rx(void *ctx, void *sess, const uint8_t *p, size_t len, int first, int final,
                 size_t remaining, int binary)
{
    struct relay *rl = ctx;
    struct session *s = sess;
    size_t max = s->authed ? rl->cfg->max_frame : PREAUTH_FRAME_MAX;

    (void)rl;
    if (s->close_after_flush)
        return 0; /* reads nothing more */
    if (!binary) {
        fail_session(s, WIRE_R_MALFORMED, "text frames are not used");
        return 0;
    }
    if (first)
        s->rx_len = 0;
    /* The declared frame length is known at the first read: refuse before buffering. */
    if (len > max || remaining > max - len || s->rx_len > max - len - remaining) {
        if (s->authed)
            fail_session(s, WIRE_R_FRAME_TOO_LARGE, "message too large");
        else
            auth_fail(s, WIRE_R_FRAME_TOO_LARGE, NULL);
        return 0;
    }
    if (first && final && remaining == 0) {
        handle_msg(s, p, len); /* the common case: no copy */
        message_done(s);
        return 0;
    }
    if (s->rx_len + len > s->rx_cap) {
        size_t ncap = s->rx_len + len + remaining;
        uint8_t *np;

        if (ncap > max)
            ncap = max;
        if ((np = realloc(s->rx, ncap)) == NULL) {
            fail_session(s, WIRE_R_STORAGE_ERROR, "relay out of memory");
            return 0;
        }
        s->rx = np;
        s->rx_cap = ncap;
    }
    memcpy(s->rx + s->rx_len, p, len);
    s->rx_len += len;
    if (final && remaining == 0) {
        handle_msg(s, s->rx, s->rx_len);
        message_done(s);
        /* Split messages are rare: an idle connection keeps no buffer (DESIGN.md limits). */
        free(s->rx);
        s->rx = NULL;
        s->rx_len = s->rx_cap = 0;
    }
    return 0;
}

static int outq_flush(struct session *s)
{
    struct buf *q = &s->outq;
    int r;

    while (buf_left(q) > 0 && !tp_choked(s->conn)) {
        uint32_t n;
        struct buf msg;

        if ((r = buf_get_u32(q, &n)) != 0 || (r = buf_get_view(q, n, &msg)) != 0)
            return r;
        if ((r = tp_write(s->conn, buf_data(&msg), n)) != 0)
            return r;
    }
    if (buf_left(q) == 0) {
        if (buf_size(q) > OUTQ_KEEP) {
            buf_free(q);
            if ((r = buf_init(q, OUTQ_MAX, 0)) != 0)
                return r;
        } else {
            buf_reset(q);
        }
    }
    return 0;
}

/* A DELIVER message of len bytes went out: it is in flight until answered. */
static void flight_sent(struct session *s, size_t len)
{
    size_t i = (s->flight_head + s->nflight) % FC_FLIGHT_MAX;

    s->flight[i].bytes = (uint32_t)len;
    s->flight[i].sent_ms = now_ms();
    s->nflight++;
    s->inflight += len;
    s->empty_sent = 0;
}

/*
 * A DELIVER_ACK answers the oldest DELIVER in flight (the device answers
 * each, in order, PROTOCOL.md part 2 "Flow control"): the window grows on a
 * timely answer and shrinks on a slow one.
 */
static void flight_answered(struct session *s)
{
    uint64_t rtt;
    size_t bytes;

    if (s->nflight == 0)
        return; /* an answer to a DELIVER of an earlier connection */
    bytes = s->flight[s->flight_head].bytes;
    rtt = now_ms() - s->flight[s->flight_head].sent_ms;
    s->flight_head = (s->flight_head + 1) % FC_FLIGHT_MAX;
    s->nflight--;
    window_answered(s, bytes, rtt);
}

/* Bytes in flight answered after rtt ms: the window grows or shrinks (FC_* above). */
static void window_answered(struct session *s, size_t bytes, uint64_t rtt)
{
    s->inflight = s->inflight > bytes ? s->inflight - bytes : 0;
    if (rtt <= FC_TIMELY_MS)
        s->window = s->window + bytes > FC_WINDOW_MAX ? FC_WINDOW_MAX : s->window + bytes;
    else if (rtt > FC_SLOW_MS)
        s->window = s->window / 2 < FC_WINDOW_MIN ? FC_WINDOW_MIN : s->window / 2;
    if (s->conn != NULL)
        tp_want_write(s->conn);
}

static void att_get_drop(struct att_out *ao, size_t k)
{
    memmove(&ao->get[k], &ao->get[k + 1], (ao->nget - k - 1) * sizeof(ao->get[0]));
    ao->nget--;
}

/*
 * ATTACH_CHUNKs for the GETs being served, oldest GET first, under the
 * DELIVER window: a chunk goes while the window has room left (like the
 * first envelope of a DELIVER) and counts in the bytes in flight until its
 * ATTACH_CHUNK_ACK. The caller runs this only when no DELIVER is waiting.
 * -1 when the socket failed; *stalled = 1 when the window or the flight
 * ring is full (an ATTACH_CHUNK_ACK resumes it).
 */
static int att_send(struct session *s, int *stalled)
{
    struct relay *rl = s->rl;
    struct att_out *ao = s->att;
    struct store_att info;
    char hex[9];
    int r;

    *stalled = 0;
    while (ao != NULL && ao->nget > 0 && !tp_choked(s->conn)) {
        uint8_t att[WIRE_ID_LEN];
        uint32_t i = ao->get[0].next;

        if (s->inflight >= s->window || ao->nflight == FC_FLIGHT_MAX) {
            *stalled = 1;
            break;
        }
        memcpy(att, ao->get[0].att, WIRE_ID_LEN);
        buf_reset(&rl->scratch);
        r = store_att_fetch(rl->st, s->device_id, att, now_s(), i, &rl->scratch, &info);
        if (r != 0) {
            if (r != VERR_UNKNOWN)
                rlog(RLOG_ERROR, "device %s: reading an attachment failed: %s",
                     rlog_hex(hex, s->device_id), verr_str(r));
            att_get_drop(ao, 0);
            /* unknown, not a recipient, expired: the same answer (PROTOCOL.md part 2) */
            att_state_reply(s, att,
                            r == VERR_UNKNOWN ? WIRE_R_ATTACHMENT_UNKNOWN : WIRE_R_STORAGE_ERROR,
                            0, 0);
            continue;
        }
        if (i >= info.stored) {
            /* nothing more now (or from past the end): the device asks again later */
            att_get_drop(ao, 0);
            if (i > info.c)
                att_state_reply(s, att, WIRE_R_CHUNK_INVALID, 0, 0);
            else
                att_state_reply(s, att, WIRE_R_OK, info.c, info.stored);
            continue;
        }
        if (tp_write(s->conn, buf_data(&rl->scratch), buf_size(&rl->scratch)) != 0)
            return -1;
        memcpy(ao->flight[ao->nflight].att, att, WIRE_ID_LEN);
        ao->flight[ao->nflight].i = i;
        ao->flight[ao->nflight].bytes = (uint32_t)buf_size(&rl->scratch);
        ao->flight[ao->nflight].sent_ms = now_ms();
        ao->nflight++;
        s->inflight += buf_size(&rl->scratch);
        buf_reset(&rl->scratch);
        if (++ao->get[0].next >= info.c)
            att_get_drop(ao, 0); /* every chunk sent: the device says ATTACH_DONE */
        else if (i + 1 >= info.stored) {
            /* the upload is not complete: say how far it is (PROTOCOL.md part 2) */
            att_get_drop(ao, 0);
            att_state_reply(s, att, WIRE_R_OK, info.c, info.stored);
        }
    }
    buf_reset(&rl->scratch);
    return 0;
}

static int on_writeable(void *ctx, void *sess)
{
    struct relay *rl = ctx;
    struct session *s = sess;
    size_t n;
    int more, r, stalled = 0, att_stalled = 0;

    if ((r = outq_flush(s)) != 0)
        return -1;
    if (buf_left(&s->outq) > 0) {
        tp_want_write(s->conn);
        return 0;
    }
    if (s->close_after_flush)
        return -1;
    /* Deliveries start with auth_complete, which reads the queue once the
     * previous connection's acknowledgements are committed. */
    if (!s->authed || s->auth_pending)
        return 0;
    while (!tp_choked(s->conn) && (s->want_nd || s->want_deliver)) {
        int window_full = 0;

        stalled = 0;
        buf_reset(&rl->scratch);
        if (s->want_nd) {
            r = store_fill_nd(rl->st, s->device_id, &s->cur, ND_BATCH, &rl->scratch, &n, &more);
            if (r == 0 && !more)
                s->want_nd = 0;
        } else {
            /* What the window leaves; 0: only a FLASH or IMMEDIATE envelope may pass. */
            size_t budget = s->window > s->inflight ? s->window - s->inflight : 0;

            if (budget > FC_PIECE_MAX)
                budget = FC_PIECE_MAX;
            if (s->nflight == FC_FLIGHT_MAX) {
                stalled = 1;
                break;
            }
            r = store_fill_deliver(rl->st, s->device_id, &s->cur, now_s(),
                                   (size_t)rl->cfg->deliver_batch, budget, &rl->scratch, &n,
                                   &more);
            if (r == 0 && !more)
                s->want_deliver = 0;
            window_full = r == 0 && n == 0 && more;
        }
        if (r != 0) {
            rlog(RLOG_ERROR, "reading the queue failed: %s", verr_str(r));
            s->want_deliver = s->want_nd = 0;
            return 0;
        }
        if (n > 0 && tp_write(s->conn, buf_data(&rl->scratch), buf_size(&rl->scratch)) != 0)
            return -1;
        if (n > 0 && buf_data(&rl->scratch)[1] == WIRE_DELIVER)
            flight_sent(s, buf_size(&rl->scratch));
        if (window_full) {
            stalled = 1;
            break; /* resumed by the next DELIVER_ACK (flight_answered) */
        }
    }
    buf_reset(&rl->scratch);
    /* Attachment chunks only when no DELIVER is waiting: envelopes, FLASH above all, go first. */
    if (!s->want_nd && !s->want_deliver && att_send(s, &att_stalled) != 0)
        return -1;
    /* Everything queued went out and was answered: say so, once (PROTOCOL.md part 2). */
    if (!s->want_nd && !s->want_deliver && s->nflight == 0 && !s->empty_sent &&
        !tp_choked(s->conn)) {
        if (wire_put_queue_empty(&rl->scratch) == 0 &&
            tp_write(s->conn, buf_data(&rl->scratch), buf_size(&rl->scratch)) != 0)
            return -1;
        s->empty_sent = 1;
        buf_reset(&rl->scratch);
    }
    /* A stalled window waits for flight_answered (or a FLASH's wake), not for the socket. */
    if (s->want_nd || (s->want_deliver && !stalled) || (tp_choked(s->conn) && !s->empty_sent) ||
        (s->att != NULL && s->att->nget > 0 && !s->want_deliver && !att_stalled))
        tp_want_write(s->conn);
    return 0;
}

static void on_closed(void *ctx, void *sess)
{
    struct relay *rl = ctx;
    struct session *s = sess;
    char hex[9];

    if (s->authed)
        rlog(RLOG_INFO, "connection from %s closed: device %s serial %llu, after %llu s", s->peer,
             rlog_hex(hex, s->device_id), (unsigned long long)s->serial,
             (unsigned long long)((now_ms() - s->opened_ms) / 1000));
    else
        rlog(RLOG_INFO, "connection from %s closed before authentication, after %llu s", s->peer,
             (unsigned long long)((now_ms() - s->opened_ms) / 1000));
    table_remove(rl, s);
    s->conn = NULL;
    if (rl->nconns > 0)
        rl->nconns--;
    if (s->pending_ops == 0)
        session_free(s);
}

/* ---- metrics ---- */

static void metric(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void metric(struct buf *b, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* A full body is cut short; the scrape shows what fitted. */
    if (n > 0 && (size_t)n < sizeof(line) && buf_put_bytes(b, (const uint8_t *)line, (size_t)n) != 0)
        return;
}

static void histogram(struct buf *b, const char *name, const double *bounds, size_t nb,
                      const uint64_t *counts, double sum)
{
    uint64_t cum = 0;

    metric(b, "# TYPE %s histogram\n", name);
    for (size_t i = 0; i < nb; i++) {
        cum += counts[i];
        metric(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += counts[nb];
    metric(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    metric(b, "%s_sum %g\n%s_count %llu\n", name, sum, name, (unsigned long long)cum);
}

static unsigned on_http(void *ctx, const char *path, struct buf *b, const char **ctype)
{
    struct relay *rl = ctx;

    *ctype = "text/plain; charset=utf-8";
    if (strcmp(path, "/healthz") == 0) {
        /* Not healthy while nothing can be stored: a load balancer must stop sending here. */
        if (rl->commit_error != 0) {
            metric(b, "failing: commits fail since %llu: %s\n",
                   (unsigned long long)rl->commit_error_since, verr_str(rl->commit_error));
            return 503;
        }
        metric(b, "ok\n");
        return 200;
    }
    if (strcmp(path, "/metrics") != 0) {
        metric(b, "not found\n");
        return 404;
    }
    *ctype = "text/plain; version=0.0.4; charset=utf-8";
    metric(b, "# TYPE valise_relay_connections gauge\nvalise_relay_connections %zu\n",
           rl->nconns);
    metric(b, "# TYPE valise_relay_sessions_authenticated gauge\n"
              "valise_relay_sessions_authenticated %zu\n",
           rl->nauthed);
    metric(b, "# TYPE valise_relay_auth_total counter\n");
    metric(b, "valise_relay_auth_total{result=\"ok\"} %llu\n", (unsigned long long)rl->auth_ok);
    metric(b, "valise_relay_auth_total{result=\"fail\"} %llu\n",
           (unsigned long long)rl->auth_fail);
    metric(b, "# TYPE valise_relay_envelopes_accepted_total counter\n"
              "valise_relay_envelopes_accepted_total %llu\n",
           (unsigned long long)rl->total.accepted);
    metric(b, "# TYPE valise_relay_envelopes_duplicate_total counter\n"
              "valise_relay_envelopes_duplicate_total %llu\n",
           (unsigned long long)rl->total.duplicates);
    metric(b, "# TYPE valise_relay_envelopes_delivered_total counter\n"
              "valise_relay_envelopes_delivered_total %llu\n",
           (unsigned long long)rl->total.delivered);
    metric(b, "# TYPE valise_relay_envelopes_expired_total counter\n"
              "valise_relay_envelopes_expired_total %llu\n",
           (unsigned long long)rl->total.expired);
    metric(b, "# TYPE valise_relay_envelopes_rejected_total counter\n");
    for (uint16_t i = 1; i <= WIRE_R_MAX; i++)
        if (rl->total.rejected[i] > 0)
            metric(b, "valise_relay_envelopes_rejected_total{reason=\"%s\"} %llu\n",
                   wire_reason_name(i), (unsigned long long)rl->total.rejected[i]);
    metric(b, "# TYPE valise_relay_queue_depth gauge\nvalise_relay_queue_depth %llu\n",
           (unsigned long long)rl->queued);
    metric(b, "# TYPE valise_relay_attachments_stored gauge\nvalise_relay_attachments_stored %llu\n",
           (unsigned long long)rl->att_count);
    metric(b, "# TYPE valise_relay_attachment_bytes_stored gauge\n"
              "valise_relay_attachment_bytes_stored %llu\n",
           (unsigned long long)rl->att_bytes);
    metric(b, "# TYPE valise_relay_audit_records gauge\nvalise_relay_audit_records %llu\n",
           (unsigned long long)rl->audit_size);
    metric(b, "# TYPE valise_relay_directory_version gauge\nvalise_relay_directory_version %llu\n",
           (unsigned long long)dir_version(rl->dir));
    /* Unix time the served directory expires: alert well before it (PROTOCOL.md part 2). */
    metric(b, "# TYPE valise_directory_expires_seconds gauge\nvalise_directory_expires_seconds %llu\n",
           (unsigned long long)dir_expires_at(rl->dir));
    metric(b, "# TYPE valise_relay_commits_total counter\nvalise_relay_commits_total %llu\n",
           (unsigned long long)rl->commits);
    metric(b, "# TYPE valise_relay_commit_failures_total counter\n"
              "valise_relay_commit_failures_total %llu\n",
           (unsigned long long)rl->commit_failures);
    {
        /* for the "disk near map size" and "checkpoint overdue" alerts (README) */
        uint64_t used = 0, size = 0, signed_size = 0;
        struct buf note = {0};

        if (store_map_usage(rl->st, &used, &size) == 0)
            metric(b, "# TYPE valise_relay_map_used_bytes gauge\nvalise_relay_map_used_bytes %llu\n"
                      "# TYPE valise_relay_map_size_bytes gauge\nvalise_relay_map_size_bytes %llu\n",
                   (unsigned long long)used, (unsigned long long)size);
        if (store_checkpoint_latest(rl->st, &signed_size, &note) != 0)
            signed_size = 0;
        buf_free(&note);
        metric(b, "# TYPE valise_relay_audit_signed_records gauge\n"
                  "valise_relay_audit_signed_records %llu\n",
               (unsigned long long)signed_size);
    }
    metric(b, "# TYPE valise_relay_commit_failing gauge\n");
    metric(b, "valise_relay_commit_failing{reason=\"storage_full\"} %d\n",
           rl->commit_error == VERR_NOSPACE);
    metric(b, "valise_relay_commit_failing{reason=\"storage_error\"} %d\n",
           rl->commit_error != 0 && rl->commit_error != VERR_NOSPACE);
    histogram(b, "valise_relay_commit_seconds", commit_bounds, HIST_COMMIT, rl->commit_hist,
              rl->commit_sum);
    histogram(b, "valise_relay_commit_batch_envelopes", batch_bounds, HIST_BATCH, rl->batch_hist,
              (double)rl->batch_sum);
    return 200;
}

/* ---- applying a turn ---- */

static int stage_reply(struct batch *b, struct session *s, size_t off)
{
    if (b->nstaged == b->staged_cap) {
        size_t ncap = b->staged_cap < 64 ? 64 : b->staged_cap * 2;
        struct staged *np = realloc(b->staged, ncap * sizeof(*np));

        if (np == NULL)
            return VERR_NOMEM;
        b->staged = np;
        b->staged_cap = ncap;
    }
    b->staged[b->nstaged].s = s;
    b->staged[b->nstaged].off = off;
    b->staged[b->nstaged].len = buf_size(&b->replies) - off;
    b->nstaged++;
    return 0;
}

static void notify_nd(void *ctx, const uint8_t sender[DEVICE_ID_LEN])
{
    struct batch *b = ctx;

    if (vec_put(&b->wake_nd, sender, DEVICE_ID_LEN) != 0)
        rlog(RLOG_WARN, "out of memory: a sender learns of a non-delivery at its next connect");
}

static int apply_submit(struct relay *rl, struct batch *b, struct op *o, const struct wire_msg *m,
                        uint64_t now)
{
    struct session *s = o->s;
    struct wire_iter it;
    struct wire_envelope e;
    struct audit_record rec;
    size_t off = buf_size(&b->replies), cnt = 0;
    int r;

    if ((r = wire_batch_begin(&b->replies, WIRE_SUBMIT_ACK, &cnt)) != 0)
        return r;
    if (o->rate_limited) {
        audit_record_init(&rec, AUDIT_RATE_LIMIT_HIT, now);
        memcpy(rec.device_id, s->device_id, DEVICE_ID_LEN);
        rec.cert_serial = s->serial;
        rec.reason = WIRE_R_RATE_LIMITED;
        rec.value = m->u.batch.n;
        if ((r = store_audit_append(rl->st, &rec)) != 0)
            return r;
    }
    wire_iter_init(&it, m);
    for (size_t i = 0; i < m->u.batch.n; i++) {
        struct wire_ack ack;
        int dup = 0;

        if ((r = wire_next_envelope(&it, &e)) != 0)
            return r;
        memcpy(ack.id, e.id, WIRE_ID_LEN);
        ack.reason = WIRE_R_OK;
        if (o->rate_limited)
            ack.reason = WIRE_R_RATE_LIMITED;
        else if (e.ct_len > rl->cfg->max_envelope)
            ack.reason = WIRE_R_ENVELOPE_TOO_LARGE;
        else if (dev_find(rl, e.peer) == NULL)
            ack.reason = WIRE_R_UNKNOWN_DEVICE;
        else if (e.expiry <= now)
            ack.reason = WIRE_R_EXPIRED;
        else {
            /* Each precedence has a longest time to live (DESIGN.md "Relay"). */
            uint64_t ttl = rl->cfg->ttl[e.precedence];
            uint64_t expiry = e.expiry - now > ttl ? now + ttl : e.expiry;

            if ((r = store_envelope_put(rl->st, s->device_id, s->serial, &e, expiry, now,
                                        &rl->lim, &ack.reason, &dup)) != 0)
                return r;
            if (ack.reason == WIRE_R_OK && !dup) {
                b->turn.accepted++;
                if ((r = vec_put(&b->wake_deliver, e.peer, DEVICE_ID_LEN)) != 0)
                    return r;
            } else if (dup) {
                b->turn.duplicates++;
            }
        }
        if (ack.reason != WIRE_R_OK) {
            b->turn.rejected[ack.reason]++;
            if (ack.reason != WIRE_R_RATE_LIMITED) {
                audit_record_init(&rec, ack.reason == WIRE_R_QUEUE_FULL ? AUDIT_QUOTA_HIT
                                                                          : AUDIT_ENVELOPE_REJECTED,
                                  now);
                memcpy(rec.device_id, s->device_id, DEVICE_ID_LEN);
                rec.cert_serial = s->serial;
                memcpy(rec.peer_id, e.peer, DEVICE_ID_LEN);
                memcpy(rec.envelope_id, e.id, WIRE_ID_LEN);
                rec.size = e.ct_len;
                rec.precedence = e.precedence;
                rec.reason = ack.reason;
                if ((r = store_audit_append(rl->st, &rec)) != 0)
                    return r;
            }
        }
        if ((r = wire_put_ack(&b->replies, &ack)) != 0)
            return r;
    }
    if ((r = wire_batch_end(&b->replies, cnt, m->u.batch.n)) != 0)
        return r;
    return stage_reply(b, s, off);
}

static int apply_bundle(struct relay *rl, struct batch *b, struct op *o, const struct wire_msg *m,
                        uint64_t now)
{
    struct session *s = o->s;
    const struct cert *owner = dev_find(rl, m->u.device_id);
    struct wire_signed_prekey spk;
    struct audit_record rec;
    struct buf cb = {0};
    uint8_t otk_pk[WIRE_PK_LEN], low[DEVICE_ID_LEN + 4];
    uint32_t otk_id = 0, left = 0;
    size_t off = buf_size(&b->replies);
    int has_otk = 0, r;

    if (owner == NULL) {
        if ((r = wire_put_error(&b->replies, WIRE_R_UNKNOWN_DEVICE, "no such device")) != 0)
            return r;
        return stage_reply(b, s, off);
    }
    r = store_bundle_take(rl->st, m->u.device_id, &spk, &has_otk, &otk_id, otk_pk, &left);
    if (r == VERR_UNKNOWN) {
        if ((r = wire_put_error(&b->replies, WIRE_R_NO_PREKEYS, "no prekeys uploaded")) != 0)
            return r;
        return stage_reply(b, s, off);
    }
    if (r != 0)
        return r;
    if ((r = cert_encode(owner, &cb)) != 0)
        return r;
    r = wire_put_bundle(&b->replies, buf_data(&cb), buf_size(&cb), &spk, otk_id,
                        has_otk ? otk_pk : NULL);
    buf_free(&cb);
    if (r != 0 || (r = stage_reply(b, s, off)) != 0)
        return r;
    audit_record_init(&rec, AUDIT_PREKEY_ISSUED, now);
    memcpy(rec.device_id, s->device_id, DEVICE_ID_LEN);
    rec.cert_serial = s->serial;
    memcpy(rec.peer_id, m->u.device_id, DEVICE_ID_LEN);
    rec.value = has_otk ? otk_id : UINT64_MAX;
    if ((r = store_audit_append(rl->st, &rec)) != 0)
        return r;
    if (left <= rl->cfg->otk_low) {
        memcpy(low, m->u.device_id, DEVICE_ID_LEN);
        low[DEVICE_ID_LEN] = (uint8_t)(left >> 24);
        low[DEVICE_ID_LEN + 1] = (uint8_t)(left >> 16);
        low[DEVICE_ID_LEN + 2] = (uint8_t)(left >> 8);
        low[DEVICE_ID_LEN + 3] = (uint8_t)left;
        return vec_put(&b->wake_prekey, low, sizeof(low));
    }
    return 0;
}

static int apply_dir_put(struct relay *rl, struct batch *b, struct op *o, const struct wire_msg *m,
                         uint64_t now)
{
    struct directory *d = NULL;
    struct audit_record rec;
    size_t off = buf_size(&b->replies);
    /* the newest of: put earlier in this transaction, committed earlier in this batch, served */
    const struct directory *cur = b->txn_dir != NULL   ? b->txn_dir
                                  : b->new_dir != NULL ? b->new_dir
                                                       : rl->dir;
    uint64_t current = dir_version(cur);
    int r;

    if (dir_parse_verify(m->u.directory.bytes, m->u.directory.len, &rl->org, &d) != 0) {
        r = wire_put_error(&b->replies, WIRE_R_DIRECTORY_INVALID, "directory does not verify");
    } else if (dir_version(d) <= current) {
        r = wire_put_error(&b->replies, WIRE_R_DIRECTORY_OLD, "not newer than the current one");
    } else {
        if ((r = store_dir_put(rl->st, d)) != 0)
            goto out;
        audit_record_init(&rec, AUDIT_DIRECTORY_INSTALLED, now);
        memcpy(rec.device_id, o->s->device_id, DEVICE_ID_LEN);
        rec.cert_serial = o->s->serial;
        rec.value = dir_version(d);
        if ((r = store_audit_append(rl->st, &rec)) != 0 ||
            (r = raudit_directory_changes(rl->st, cur, d, now)) != 0 ||
            (r = wire_put_directory_ok(&b->replies, dir_version(d))) != 0)
            goto out;
        dir_free(b->txn_dir);
        b->txn_dir = d;
        d = NULL; /* owned by the transaction now: the batch's once it commits */
    }
    if (r == 0)
        r = stage_reply(b, o->s, off);
out:
    dir_free(d);
    return r;
}

/* An ATTACH_STATE or ATTACH_PUT_ACK staged for o's session. */
static int stage_attach(struct batch *b, struct op *o, uint8_t type, const struct wire_attach *a)
{
    size_t off = buf_size(&b->replies);
    int r;

    if ((r = wire_put_attach(&b->replies, type, a)) != 0)
        return r;
    return stage_reply(b, o->s, off);
}

/* ATTACH_OPEN, checked in the order of PROTOCOL.md part 2 "Attachments". */
static int apply_att_open(struct relay *rl, struct batch *b, struct op *o,
                          const struct wire_msg *m, uint64_t now)
{
    const struct wire_attach *a = &m->u.attach;
    struct wire_attach st;
    uint32_t stored = 0;
    int r;

    memset(&st, 0, sizeof(st));
    memcpy(st.att, a->att, WIRE_ID_LEN);
    st.reason = WIRE_R_OK;
    for (size_t j = 0; j < a->n_rcpt && st.reason == WIRE_R_OK; j++)
        if (dev_find(rl, a->rcpt + j * DEVICE_ID_LEN) == NULL)
            st.reason = WIRE_R_UNKNOWN_DEVICE;
    if (st.reason == WIRE_R_UNKNOWN_DEVICE)
        goto out;
    if (a->ct_size > rl->cfg->max_attachment)
        st.reason = WIRE_R_ATTACHMENT_TOO_LARGE;
    else if (a->ct_size < (uint64_t)WIRE_ATT_CHUNK_CT * (a->c - 1) + WIRE_ATT_CT_MIN ||
             a->ct_size > (uint64_t)WIRE_ATT_CHUNK_CT * a->c)
        st.reason = WIRE_R_CHUNK_INVALID; /* 16400*(c-1) + 17 <= ct_size <= 16400*c */
    else if (a->expiry <= now)
        st.reason = WIRE_R_EXPIRED;
    else if ((r = store_att_open(rl->st, o->s->device_id, o->s->serial, a,
                                 rl->cfg->ttl[a->precedence], now, &rl->lim, &st.reason,
                                 &stored)) != 0)
        return r;
    if (st.reason == WIRE_R_OK) {
        st.c = a->c;
        st.stored = stored; /* a resume: the next chunk to send */
    }
out:
    return stage_attach(b, o, WIRE_ATTACH_STATE, &st);
}

static int apply_att_put(struct relay *rl, struct batch *b, struct op *o,
                         const struct wire_msg *m, uint64_t now)
{
    struct wire_attach ack;
    int r;

    memset(&ack, 0, sizeof(ack));
    memcpy(ack.att, m->u.attach.att, WIRE_ID_LEN);
    ack.i = m->u.attach.i;
    if ((r = store_att_put(rl->st, o->s->device_id, o->s->serial, &m->u.attach, now,
                           &ack.reason)) != 0)
        return r;
    /* staged: sent once the transaction holding the chunk has returned (durable) */
    return stage_attach(b, o, WIRE_ATTACH_PUT_ACK, &ack);
}

static int apply_att_done(struct relay *rl, struct batch *b, struct op *o,
                          const struct wire_msg *m, uint64_t now)
{
    struct wire_attach st;
    uint32_t c = 0;
    int r;

    memset(&st, 0, sizeof(st));
    memcpy(st.att, m->u.attach.att, WIRE_ID_LEN);
    if ((r = store_att_done(rl->st, o->s->device_id, o->s->serial, m->u.attach.att, now,
                            &st.reason, &c)) != 0)
        return r;
    if (st.reason == WIRE_R_OK)
        st.c = st.stored = c;
    return stage_attach(b, o, WIRE_ATTACH_STATE, &st);
}

static int apply_op(struct relay *rl, struct batch *b, struct op *o, uint64_t now,
                    int deletions_only)
{
    struct wire_msg m;
    struct wire_iter it;
    uint8_t id[WIRE_ID_LEN];
    int r;

    if (o->kind == OP_AUDIT)
        return deletions_only ? 0 : store_audit_append(rl->st, &o->rec);
    if (o->kind == OP_AUDIT_GET ||
        (deletions_only && o->kind != OP_DELIVER_ACK && o->kind != OP_ND_ACK))
        return 0;
    /* Decoded when it arrived; decoding again is a cheap pass over the headers. */
    if ((r = wire_decode(b->arena.p + o->off, o->len, &m)) != 0)
        return VERR_INTERNAL;
    switch (o->kind) {
    case OP_SUBMIT:
        return apply_submit(rl, b, o, &m, now);
    case OP_DELIVER_ACK:
        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            if ((r = wire_next_id(&it, id)) != 0)
                return r;
            r = store_envelope_ack(rl->st, o->s->device_id, o->s->serial, id, now);
            if (r == 0)
                b->turn.delivered++;
            else if (r != VERR_UNKNOWN)
                return r;
        }
        return 0;
    case OP_ND_ACK:
        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            if ((r = wire_next_id(&it, id)) != 0)
                return r;
            r = store_nd_ack(rl->st, o->s->device_id, id);
            if (r != 0 && r != VERR_UNKNOWN)
                return r;
        }
        return 0;
    case OP_PREKEYS: {
        struct audit_record rec;
        uint32_t stored = 0;
        size_t off = buf_size(&b->replies);

        if ((r = store_prekeys_put(rl->st, o->s->device_id, &m.u.prekey_upload.spk,
                                   m.u.prekey_upload.otk, m.u.prekey_upload.n_otk, &rl->lim,
                                   &stored)) != 0)
            return r;
        audit_record_init(&rec, AUDIT_PREKEYS_UPLOADED, now);
        memcpy(rec.device_id, o->s->device_id, DEVICE_ID_LEN);
        rec.cert_serial = o->s->serial;
        rec.value = stored;
        if ((r = store_audit_append(rl->st, &rec)) != 0 ||
            (r = wire_put_count(&b->replies, WIRE_PREKEY_OK, stored)) != 0)
            return r;
        return stage_reply(b, o->s, off);
    }
    case OP_BUNDLE:
        return apply_bundle(rl, b, o, &m, now);
    case OP_DIR_PUT:
        return apply_dir_put(rl, b, o, &m, now);
    case OP_ATT_OPEN:
        return apply_att_open(rl, b, o, &m, now);
    case OP_ATT_PUT:
        return apply_att_put(rl, b, o, &m, now);
    case OP_ATT_DONE:
        return apply_att_done(rl, b, o, &m, now);
    default:
        return VERR_INTERNAL;
    }
}

/* What a transaction has added to the batch's results, so a failed one can be taken back. */
struct batch_mark {
    size_t replies, nstaged, wake_deliver, wake_nd, wake_prekey;
    struct counters turn;
};

static void batch_mark(const struct batch *b, struct batch_mark *m)
{
    m->replies = buf_size(&b->replies);
    m->nstaged = b->nstaged;
    m->wake_deliver = b->wake_deliver.len;
    m->wake_nd = b->wake_nd.len;
    m->wake_prekey = b->wake_prekey.len;
    m->turn = b->turn;
}

static void batch_rewind(struct batch *b, const struct batch_mark *m)
{
    buf_truncate(&b->replies, m->replies);
    b->nstaged = m->nstaged;
    b->wake_deliver.len = m->wake_deliver;
    b->wake_nd.len = m->wake_nd;
    b->wake_prekey.len = m->wake_prekey;
    b->turn = m->turn;
    dir_free(b->txn_dir);
    b->txn_dir = NULL;
}

/* Applies ops [from, to) and, if asked, the expiry sweep in one transaction (writer thread). */
static int apply_turn(struct relay *rl, struct batch *b, size_t from, size_t to, uint64_t now,
                      int sweep, int deletions_only, size_t *expired, size_t *att_expired)
{
    int r;

    *expired = *att_expired = 0;
    if ((r = store_begin(rl->st)) != 0)
        return r;
    for (size_t i = from; i < to; i++)
        if ((r = apply_op(rl, b, &b->ops[i], now, deletions_only)) != 0)
            goto fail;
    if (sweep && (r = store_sweep(rl->st, now, SWEEP_LIMIT, notify_nd, b, expired)) != 0)
        goto fail;
    /* attachments past expiry, chunks included (PROTOCOL.md part 2 "Attachments") */
    if (sweep && (r = store_att_sweep(rl->st, now, SWEEP_LIMIT, notify_nd, b, att_expired)) != 0)
        goto fail;
    /* Durable before anything is acknowledged (DESIGN.md "Relay"). */
    if ((r = store_commit(rl->st)) != 0)
        return r;
    return 0;
fail:
    store_abort(rl->st);
    return r;
}

static void stat_put(struct batch *b, double secs, uint64_t envelopes)
{
    struct chunk_stat cs = {secs, envelopes};

    if (vec_put(&b->stats, &cs, sizeof(cs)) != 0)
        return; /* one histogram sample fewer */
}

/* One transaction for ops [from, to) (writer thread); replies wait for the handback. */
static void commit_chunk(struct relay *rl, struct batch *b, size_t from, size_t to, int sweep)
{
    struct batch_mark mk;
    uint64_t now = now_s();
    double t0 = now_sec_f();
    size_t expired = 0, att_expired = 0;
    int r;

    batch_mark(b, &mk);
    r = apply_turn(rl, b, from, to, now, sweep, 0, &expired, &att_expired);
    b->commit_tried = 1;
    b->commit_result = r;
    if (r == 0) {
        if (b->txn_dir != NULL) {
            dir_free(b->new_dir);
            b->new_dir = b->txn_dir;
            b->txn_dir = NULL; /* committed: installed at the handback */
        }
        b->turn.expired += expired;
        stat_put(b, now_sec_f() - t0, b->turn.accepted - mk.turn.accepted);
        if (expired > 0)
            rlog(RLOG_INFO, "%zu envelopes expired; senders notified", expired);
        if (att_expired > 0)
            rlog(RLOG_INFO, "%zu attachments expired and deleted; senders notified", att_expired);
        return;
    }
    batch_rewind(b, &mk);
    b->commit_failures++;
    rlog(RLOG_ERROR, "commit failed: %s; nothing from it is acknowledged", verr_str(r));
    /* Deletions free space: keep them going even when the map is full. */
    if (r == VERR_NOSPACE) {
        if (apply_turn(rl, b, from, to, now, 0, 1, &expired, &att_expired) == 0)
            stat_put(b, now_sec_f() - t0, 0);
        else
            batch_rewind(b, &mk);
    }
    for (size_t i = from; i < to; i++) {
        struct op *o = &b->ops[i];

        if (o->s == NULL || o->kind == OP_DELIVER_ACK || o->kind == OP_ND_ACK ||
            o->kind == OP_AUDIT_GET)
            continue;
        o->fail_reason = r == VERR_NOSPACE ? WIRE_R_STORAGE_FULL : WIRE_R_STORAGE_ERROR;
    }
}

/* Envelopes or ids an op carries: what a transaction's size is counted in. */
static size_t op_weight(const struct batch *b, const struct op *o)
{
    const uint8_t *p = b->arena.p + o->off;

    if ((o->kind == OP_SUBMIT || o->kind == OP_DELIVER_ACK || o->kind == OP_ND_ACK) &&
        o->len >= WIRE_HEADER_LEN + 2)
        return ((size_t)p[2] << 8) | p[3]; /* the batch count, checked when it arrived */
    if (o->kind == OP_ATT_PUT)
        return ATT_PUT_WEIGHT; /* 16 KiB of chunk: a transaction holds at most 128 */
    return 1;
}

/*
 * Moves SUBMITs that carry FLASH to the front, keeping the order within each
 * part; returns how many. Ops are independent of each other (each envelope id
 * is acknowledged by itself), so a FLASH may be stored before ROUTINE that
 * arrived earlier (DESIGN.md "Relay": precedence).
 */
static size_t flash_first(struct batch *b)
{
    size_t nf = 0, k = 0;

    for (size_t i = 0; i < b->nops; i++)
        nf += b->ops[i].flash;
    if (nf == 0 || nf == b->nops)
        return nf;
    if (b->ops_tmp_cap < b->nops) {
        struct op *np = realloc(b->ops_tmp, b->ops_cap * sizeof(*np));

        if (np == NULL)
            return 0; /* no lane this time: FLASH is committed in arrival order */
        b->ops_tmp = np;
        b->ops_tmp_cap = b->ops_cap;
    }
    for (size_t i = 0; i < b->nops; i++)
        if (b->ops[i].flash)
            b->ops_tmp[k++] = b->ops[i];
    for (size_t i = 0; i < b->nops; i++)
        if (!b->ops[i].flash)
            b->ops_tmp[k++] = b->ops[i];
    memcpy(b->ops, b->ops_tmp, b->nops * sizeof(*b->ops));
    return nf;
}

/* Read-only requests, answered from committed state with no write transaction open. */
static void answer_audit_gets(struct relay *rl, struct batch *b)
{
    for (size_t i = 0; i < b->nops; i++) {
        struct op *o = &b->ops[i];
        const struct cert *c;
        struct wire_msg m;
        size_t off = buf_size(&b->replies);

        if (o->kind != OP_AUDIT_GET || wire_decode(b->arena.p + o->off, o->len, &m) != 0)
            continue;
        c = dev_find(rl, o->s->device_id);
        if (raudit_serve(rl->st, c != NULL ? c->role : "", &m, &b->replies) != 0 ||
            stage_reply(b, o->s, off) != 0)
            buf_truncate(&b->replies, off); /* unanswered; the auditor asks again */
    }
}

/*
 * The writer's work on one batch: group commit in transactions of about
 * COMMIT_MAX_ITEMS envelopes (LMDB's cost per page grows with the
 * transaction: BENCHMARKS.md item 4), FLASH first in one of its own.
 */
static void batch_apply(struct relay *rl, struct batch *b)
{
    size_t i = 0, nflash;

    if (b->nops > 0 || b->sweep) {
        nflash = flash_first(b);
        do {
            size_t j = i, w = 0, end = i < nflash ? nflash : b->nops;

            while (j < end && (j == i || w + op_weight(b, &b->ops[j]) <= COMMIT_MAX_ITEMS))
                w += op_weight(b, &b->ops[j++]);
            /* the expiry sweep joins the first ROUTINE chunk (or the last, if all is FLASH) */
            commit_chunk(rl, b, i, j,
                         b->sweep && (i == nflash || (nflash == b->nops && j == b->nops)));
            i = j;
        } while (i < b->nops);
        answer_audit_gets(rl, b);
    }
    /* Read here, where they are written: /metrics gets them at the handback. */
    b->queued = store_queue_total(rl->st);
    b->audit_size = store_audit_size(rl->st);
    store_att_totals(rl->st, &b->att_count, &b->att_bytes);
}

static void wake(struct relay *rl, const uint8_t *id, int nd)
{
    for (struct session *s = rl->buckets[bucket_of(rl, id)]; s != NULL; s = s->dev_next) {
        if (memcmp(s->device_id, id, DEVICE_ID_LEN) != 0 || s->conn == NULL)
            continue;
        if (nd) {
            /* Notices are keyed by random id: a new one may sort before the cursor. */
            s->want_nd = 1;
            s->cur.nd_started = 0;
        }
        else
            s->want_deliver = 1;
        tp_want_write(s->conn);
    }
}

static void install_directory(struct relay *rl, struct directory *d);

static void batch_release(struct relay *rl, struct batch *b)
{
    (void)rl;
    for (size_t i = 0; i < b->nops; i++) {
        struct session *s = b->ops[i].s;

        if (s == NULL)
            continue;
        s->pending_ops--;
        if (s->pending_ops == 0 && s->conn == NULL)
            session_free(s);
    }
    b->nops = 0;
    b->nflash = 0;
    b->epoch = 0;
    b->arena.len = 0;
    b->sweep = 0;
    buf_reset(&b->replies);
    b->nstaged = 0;
    b->wake_deliver.len = b->wake_nd.len = b->wake_prekey.len = 0;
    b->stats.len = 0;
    memset(&b->turn, 0, sizeof(b->turn));
    b->commit_failures = 0;
    b->commit_tried = 0;
    b->commit_result = 0;
    dir_free(b->new_dir);
    b->new_dir = NULL;
    dir_free(b->txn_dir);
    b->txn_dir = NULL;
}

/*
 * The handback, on the event loop with the writer idle: everything in the
 * batch is durable now, so the acknowledgements and DELIVER wake-ups go out
 * (DESIGN.md "Relay"), then the batch's directory is installed.
 */
static void batch_finish(struct relay *rl, struct batch *b)
{
    struct directory *d;
    size_t i;

    for (i = 0; i < b->nstaged; i++)
        (void)outq_put(b->staged[i].s, &b->replies, b->staged[i].off, b->staged[i].len);
    for (i = 0; i < b->nops; i++)
        if (b->ops[i].fail_reason != 0)
            error_reply(b->ops[i].s, b->ops[i].fail_reason, "not stored; retry later");
    for (i = 0; i + DEVICE_ID_LEN <= b->wake_deliver.len; i += DEVICE_ID_LEN)
        wake(rl, b->wake_deliver.p + i, 0);
    for (i = 0; i + DEVICE_ID_LEN <= b->wake_nd.len; i += DEVICE_ID_LEN)
        wake(rl, b->wake_nd.p + i, 1);
    for (i = 0; i + DEVICE_ID_LEN + 4 <= b->wake_prekey.len; i += DEVICE_ID_LEN + 4) {
        const uint8_t *id = b->wake_prekey.p + i, *lp = id + DEVICE_ID_LEN;
        uint32_t left = ((uint32_t)lp[0] << 24) | ((uint32_t)lp[1] << 16) |
                        ((uint32_t)lp[2] << 8) | lp[3];

        for (struct session *s = rl->buckets[bucket_of(rl, id)]; s != NULL; s = s->dev_next) {
            if (memcmp(s->device_id, id, DEVICE_ID_LEN) != 0)
                continue;
            buf_reset(&rl->scratch);
            if (wire_put_count(&rl->scratch, WIRE_PREKEY_LOW, left) == 0)
                (void)send_scratch(s);
        }
    }
    rl->total.accepted += b->turn.accepted;
    rl->total.duplicates += b->turn.duplicates;
    rl->total.delivered += b->turn.delivered;
    rl->total.expired += b->turn.expired;
    for (i = 0; i <= WIRE_R_MAX; i++)
        rl->total.rejected[i] += b->turn.rejected[i];
    rl->commit_failures += b->commit_failures;
    if (b->commit_tried) {
        if (b->commit_result != 0 && rl->commit_error == 0)
            rl->commit_error_since = now_s();
        rl->commit_error = b->commit_result;
    }
    for (size_t k = 0; k + sizeof(struct chunk_stat) <= b->stats.len;
         k += sizeof(struct chunk_stat)) {
        struct chunk_stat cs;

        memcpy(&cs, b->stats.p + k, sizeof(cs));
        rl->commits++;
        rl->commit_sum += cs.secs;
        for (i = 0; i < HIST_COMMIT && cs.secs > commit_bounds[i]; i++)
            ;
        rl->commit_hist[i]++;
        if (cs.envelopes > 0) {
            rl->batch_sum += cs.envelopes;
            for (i = 0; i < HIST_BATCH && (double)cs.envelopes > batch_bounds[i]; i++)
                ;
            rl->batch_hist[i]++;
        }
    }
    rl->queued = b->queued;
    rl->audit_size = b->audit_size;
    rl->att_count = b->att_count;
    rl->att_bytes = b->att_bytes;
    if (b->epoch != 0)
        rl->epoch_done = b->epoch;
    d = b->new_dir;
    b->new_dir = NULL;
    batch_release(rl, b);
    /* Its revocations add audit ops to the list being filled: the next batch commits them. */
    if (d != NULL)
        install_directory(rl, d);
    auth_wait_run(rl);
}

/* ---- the writer thread ---- */

static void *writer_main(void *arg)
{
    struct relay *rl = arg;

    pthread_mutex_lock(&rl->mu);
    for (;;) {
        while (rl->wstate != W_BUSY && !rl->wquit)
            pthread_cond_wait(&rl->cv_work, &rl->mu);
        if (rl->wstate != W_BUSY)
            break;
        pthread_mutex_unlock(&rl->mu);
        batch_apply(rl, rl->work); /* rl->work is not swapped while W_BUSY */
        pthread_mutex_lock(&rl->mu);
        rl->wstate = W_DONE;
        pthread_cond_signal(&rl->cv_done);
        pthread_mutex_unlock(&rl->mu);
        tp_cancel(rl->tp); /* the loop may be waiting in poll: the replies can go out */
        pthread_mutex_lock(&rl->mu);
    }
    pthread_mutex_unlock(&rl->mu);
    return NULL;
}

/* Event loop: takes back a batch the writer finished; wait = 1 waits for a busy one. */
static void writer_collect(struct relay *rl, int wait)
{
    int done;

    if (!rl->writer_started)
        return;
    pthread_mutex_lock(&rl->mu);
    while (wait && rl->wstate == W_BUSY)
        pthread_cond_wait(&rl->cv_done, &rl->mu);
    done = rl->wstate == W_DONE;
    if (done)
        rl->wstate = W_IDLE;
    pthread_mutex_unlock(&rl->mu);
    if (done)
        batch_finish(rl, rl->work);
}

/*
 * After ops left the fill batch f, drops the message bytes no op of f still
 * uses. Under saturation f is never empty (the writer takes the oldest part,
 * the loop keeps appending), so without this its arena only grew: 1.3 GiB of
 * RSS in an 8 s `max` run, and a page fault for every fresh 4 KiB of it.
 * The live bytes are moved down only when the dead part in front of them is
 * at least as large, so each byte is moved O(1) times on average.
 */
static void arena_compact(struct batch *f)
{
    size_t lo = f->arena.len;

    for (size_t i = 0; i < f->nops; i++)
        if (f->ops[i].len > 0 && f->ops[i].off < lo)
            lo = f->ops[i].off;
    if (lo < f->arena.len - lo)
        return;
    if (lo < f->arena.len)
        memmove(f->arena.p, f->arena.p + lo, f->arena.len - lo);
    f->arena.len -= lo;
    for (size_t i = 0; i < f->nops; i++)
        f->ops[i].off = f->ops[i].len > 0 ? f->ops[i].off - lo : 0;
}

/*
 * Moves ops (and their message bytes) from f to the empty batch w: FLASH
 * SUBMITs only (flash_only), or the oldest ops up to cap envelopes (at least
 * one). The rest stays in f in its order. Nothing moves unless there is room.
 */
static int batch_move(struct batch *f, struct batch *w, int flash_only, size_t cap)
{
    size_t bytes = 0, n = 0, prefix = 0, weight = 0, k = 0;
    int r;

    for (size_t i = 0; i < f->nops; i++) {
        if (flash_only) {
            if (!f->ops[i].flash)
                continue;
        } else {
            if (i > 0 && weight + op_weight(f, &f->ops[i]) > cap)
                break;
            weight += op_weight(f, &f->ops[i]);
            prefix = i + 1;
        }
        bytes += f->ops[i].len;
        n++;
    }
    if (w->ops_cap < n) {
        struct op *np = realloc(w->ops, n * sizeof(*np));

        if (np == NULL)
            return VERR_NOMEM;
        w->ops = np;
        w->ops_cap = n;
    }
    if ((r = vec_reserve(&w->arena, bytes)) != 0)
        return r;
    for (size_t i = 0; i < f->nops; i++) {
        struct op o = f->ops[i];

        if (flash_only ? !o.flash : i >= prefix) {
            f->ops[k++] = o;
            continue;
        }
        memcpy(w->arena.p + w->arena.len, f->arena.p + o.off, o.len);
        o.off = w->arena.len;
        w->arena.len += o.len;
        w->ops[w->nops++] = o;
        w->nflash += o.flash;
    }
    f->nops = k;
    f->nflash -= w->nflash;
    arena_compact(f);
    return 0;
}

/*
 * Event loop: hands work to an idle writer; 1 if it got some, *swept = 1 if
 * the expiry sweep went with it. A batch is at most about COMMIT_MAX_ITEMS
 * envelopes, one transaction, so a FLASH waits for at most one ROUTINE
 * transaction; when FLASH is pending it goes alone, in a short transaction
 * ahead of the ROUTINE rest (BENCHMARKS.md, FLASH).
 */
static int writer_kick(struct relay *rl, int sweep, int *swept)
{
    struct batch *f = rl->fill, *w;
    size_t weight = 0, cap = COMMIT_MAX_ITEMS;
    int idle;

    *swept = 0;
    if (f->nops == 0 && !sweep)
        return 0;
    pthread_mutex_lock(&rl->mu);
    idle = rl->wstate == W_IDLE;
    pthread_mutex_unlock(&rl->mu);
    if (!idle)
        return 0;
    w = rl->work; /* idle and collected: empty, and the loop's until W_BUSY */
    if (rl->flash_seen_ms != 0 && now_ms() - rl->flash_seen_ms < FLASH_RECENT_MS)
        cap = COMMIT_FLASH_ITEMS;
    for (size_t i = 0; i < f->nops && weight <= cap; i++)
        weight += op_weight(f, &f->ops[i]);
    if (f->nflash > 0 && f->nflash < f->nops && batch_move(f, w, 1, 0) == 0) {
        sweep = 0; /* FLASH alone, short */
    } else if (weight > cap && batch_move(f, w, 0, cap) == 0) {
        ; /* the oldest part; the rest in the next batch */
    } else {
        rl->work = f;
        rl->fill = w;
        f = w;
        w = rl->work;
    }
    /* All that was received before the list went is with the writer now. */
    if (f->nops == 0)
        w->epoch = rl->fill_epoch++;
    w->sweep = sweep;
    *swept = sweep;
    pthread_mutex_lock(&rl->mu);
    rl->wstate = W_BUSY;
    pthread_cond_signal(&rl->cv_work);
    pthread_mutex_unlock(&rl->mu);
    return 1;
}

static int writer_start(struct relay *rl)
{
    if (pthread_create(&rl->writer, NULL, writer_main, rl) != 0)
        return VERR_NOMEM;
    rl->writer_started = 1;
    return 0;
}

/* Waits for the batch in progress, takes it back, and ends the thread. */
static void writer_stop(struct relay *rl)
{
    if (!rl->writer_started)
        return;
    writer_collect(rl, 1);
    pthread_mutex_lock(&rl->mu);
    rl->wquit = 1;
    pthread_cond_signal(&rl->cv_work);
    pthread_mutex_unlock(&rl->mu);
    pthread_join(rl->writer, NULL);
    rl->writer_started = 0;
}

/* ---- directory install and reload ---- */

/*
 * The relay keeps serving what it has (it may be the coerced party; clients
 * judge freshness themselves), but says loudly when that is an expired
 * directory, which devices will no longer use (PROTOCOL.md part 4).
 */
static void warn_if_expired(const struct directory *d, const char *what)
{
    if (dir_expires_at(d) > now_s())
        return;
    rlog(RLOG_WARN,
         "%s: directory version %llu expired at %llu (Unix time): devices refuse to send or "
         "accept with it; IT must sign and publish a new one",
         what, (unsigned long long)dir_version(d), (unsigned long long)dir_expires_at(d));
}

static void install_directory(struct relay *rl, struct directory *d)
{
    struct dev_entry *devs = NULL;
    size_t ndevs = 0;
    char hex[9];

    if (dev_index_build(rl, d, &devs, &ndevs) != 0) {
        rlog(RLOG_ERROR, "out of memory installing directory version %llu",
             (unsigned long long)dir_version(d));
        dir_free(d);
        return;
    }
    dir_free(rl->dir);
    free(rl->devs);
    rl->dir = d;
    rl->devs = devs;
    rl->ndevs = ndevs;
    rlog(RLOG_INFO, "directory version %llu installed: %zu devices, %zu revoked, expires %llu",
         (unsigned long long)dir_version(d), ndevs, dir_revoked_count(d),
         (unsigned long long)dir_expires_at(d));
    warn_if_expired(d, "installed");
    /* A revoked device is refused even mid-session (issue 3). */
    for (size_t b = 0; b < rl->nbuckets; b++) {
        for (struct session *s = rl->buckets[b]; s != NULL; s = s->dev_next) {
            if (!s->authed || s->close_after_flush || !dir_is_revoked(d, s->serial, s->device_id))
                continue;
            rlog(RLOG_INFO, "device %s revoked: session closed", rlog_hex(hex, s->device_id));
            audit_event(rl, AUDIT_SESSION_REVOKED, s, WIRE_R_REVOKED, dir_version(d));
            fail_session(s, WIRE_R_REVOKED, "device revoked");
        }
    }
}

/*
 * At the periodic sweep: a session whose certificate's not_after has passed
 * ends with ERROR cert_expired and a session_revoked audit record (reason
 * cert_expired, value = not_after), as AUTH would refuse it now.
 */
static void sessions_expire(struct relay *rl, uint64_t now)
{
    char hex[9];

    for (size_t b = 0; b < rl->nbuckets; b++) {
        for (struct session *s = rl->buckets[b]; s != NULL; s = s->dev_next) {
            /* cert_verify: valid while now < not_after */
            if (!s->authed || s->close_after_flush || now < s->not_after)
                continue;
            rlog(RLOG_INFO, "device %s serial %llu: certificate expired, session closed",
                 rlog_hex(hex, s->device_id), (unsigned long long)s->serial);
            audit_event(rl, AUDIT_SESSION_REVOKED, s, WIRE_R_CERT_EXPIRED, s->not_after);
            fail_session(s, WIRE_R_CERT_EXPIRED, "certificate expired");
        }
    }
}

/*
 * Once a second: an authenticated session whose idle time-out ran out is
 * closed, unless TCP moved at least IDLE_MIN_RATE bytes a second meanwhile
 * (received, or acknowledged by the device): then the clock starts again.
 */
static void sessions_idle(struct relay *rl, uint64_t t)
{
    uint64_t limit = rl->cfg->idle_timeout * 1000u;
    char hex[9];

    for (size_t b = 0; b < rl->nbuckets; b++) {
        for (struct session *s = rl->buckets[b]; s != NULL; s = s->dev_next) {
            uint64_t moved, idle;

            if (!s->authed || s->auth_pending || s->close_after_flush || s->conn == NULL ||
                t - s->idle_set_ms < limit)
                continue;
            idle = t - s->idle_set_ms;
            moved = tp_tcp_bytes(s->conn);
            moved = moved > s->idle_tcp ? moved - s->idle_tcp : 0; /* 0: the socket cannot say */
            if (moved >= idle / 1000u * IDLE_MIN_RATE) {
                idle_restart(s, t); /* a slow transfer, still moving */
                continue;
            }
            rlog(RLOG_INFO, "device %s: no whole message for %llu s and %llu bytes moved, closed",
                 rlog_hex(hex, s->device_id), (unsigned long long)(idle / 1000u),
                 (unsigned long long)moved);
            s->close_after_flush = 1;
            tp_close_async(s->conn);
        }
    }
}

/* Installs the file's directory if it is newer than the served one. */
static int directory_from_file(struct relay *rl, int at_start)
{
    struct directory *d = NULL;
    struct audit_record rec;
    int r;

    if ((r = dir_load(rl->cfg->directory, &rl->org, &d)) != 0) {
        if (rl->dir != NULL)
            rlog(RLOG_ERROR, "directory %s: %s; kept version %llu", rl->cfg->directory,
                 verr_str(r), (unsigned long long)dir_version(rl->dir));
        else
            rlog(RLOG_ERROR, "directory %s: %s", rl->cfg->directory, verr_str(r));
        return r;
    }
    if (!at_start)
        warn_if_expired(d, rl->cfg->directory);
    if (rl->dir != NULL && dir_version(d) <= dir_version(rl->dir)) {
        if (!at_start)
            rlog(RLOG_WARN, "directory %s: version %llu is not newer than %llu; kept version %llu",
                 rl->cfg->directory, (unsigned long long)dir_version(d),
                 (unsigned long long)dir_version(rl->dir),
                 (unsigned long long)dir_version(rl->dir));
        dir_free(d);
        return 0;
    }
    if ((r = store_begin(rl->st)) != 0)
        goto out;
    audit_record_init(&rec, AUDIT_DIRECTORY_INSTALLED, now_s());
    rec.value = dir_version(d);
    if ((r = store_dir_put(rl->st, d)) != 0 || (r = store_audit_append(rl->st, &rec)) != 0 ||
        (r = raudit_directory_changes(rl->st, rl->dir, d, rec.time)) != 0) {
        store_abort(rl->st);
        goto out;
    }
    if ((r = store_commit(rl->st)) != 0)
        goto out;
    install_directory(rl, d);
    d = NULL;
out:
    if (r != 0)
        rlog(RLOG_ERROR, "installing directory failed: %s", verr_str(r));
    dir_free(d);
    return r;
}

/* ---- life cycle ---- */

static int audit_now(struct relay *rl, uint8_t event)
{
    struct audit_record rec;
    int r;

    audit_record_init(&rec, event, now_s());
    if ((r = store_begin(rl->st)) != 0)
        return r;
    if ((r = store_audit_append(rl->st, &rec)) != 0) {
        store_abort(rl->st);
        return r;
    }
    return store_commit(rl->st);
}

/*
 * First start after valise-relay restore (PROTOCOL.md part 2 "Backup and
 * restore"): the log is the backup's, older than the one officers verified.
 * Say so in the log itself: relay_restored, signed at once in a checkpoint,
 * in the transaction that clears the store's restore mark.
 */
static int record_restore(struct relay *rl)
{
    struct audit_record rec;
    uint64_t size = store_audit_size(rl->st);
    int r;

    audit_record_init(&rec, AUDIT_RELAY_RESTORED, now_s());
    rec.value = size;
    raudit_force_checkpoint(rl->audit);
    if ((r = store_begin(rl->st)) != 0)
        return r;
    if ((r = store_audit_append(rl->st, &rec)) != 0 || (r = store_restore_clear(rl->st)) != 0) {
        store_abort(rl->st);
        return r;
    }
    if ((r = store_commit(rl->st)) != 0)
        return r;
    rlog(RLOG_WARN,
         "restored from a backup: the audit log restarts at %llu records; relay_restored is "
         "record %llu, signed in a checkpoint of size %llu",
         (unsigned long long)size, (unsigned long long)size, (unsigned long long)(size + 1));
    return 0;
}

/*
 * The relay's identity at start: DATA/handshake.key and --relay-cert, which
 * must verify against --org-pub now, name --relay-id and certify this key.
 */
static int load_identity(struct relay *rl, char *err, size_t errsz)
{
    const struct relay_config *cfg = rl->cfg;
    char path[4096];
    uint8_t pk[SIG_PK_LEN];
    struct relaycert rc;
    struct buf f = {0};
    int r;

    if ((rl->hs_sk = sodium_malloc(SIG_SK_LEN)) == NULL)
        return VERR_NOMEM;
    if ((r = file_join(path, sizeof(path), cfg->data_dir, RELAYKEY_FILE)) != 0)
        return r;
    if ((r = relaykey_load(path, rl->hs_sk, pk)) != 0) {
        snprintf(err, errsz,
                 "--data %s: handshake key %s: %s (create it once with valise-relay "
                 "--init-handshake-key --data %s --out FILE and have IT sign a relay certificate)",
                 cfg->data_dir, RELAYKEY_FILE, verr_str(r), cfg->data_dir);
        return r;
    }
    if ((r = file_read(cfg->relay_cert, RELAYCERT_MAX_LEN, 0, &f)) != 0) {
        snprintf(err, errsz, "--relay-cert %s: %s", cfg->relay_cert, verr_str(r));
        return r;
    }
    r = relaycert_parse(buf_data(&f), buf_size(&f), &rc);
    if (r == 0) {
        memcpy(rl->relay_cert, buf_data(&f), buf_size(&f));
        rl->relay_cert_len = buf_size(&f);
    }
    buf_free(&f);
    if (r != 0) {
        snprintf(err, errsz, "--relay-cert %s: %s", cfg->relay_cert, verr_str(r));
        return r;
    }
    if ((r = relaycert_verify(&rc, &rl->org, now_s())) != 0) {
        snprintf(err, errsz, "--relay-cert %s: %s (against --org-pub %s); ask IT for a new one",
                 cfg->relay_cert, verr_str(r), cfg->org_pub);
        return r;
    }
    if (strcmp(rc.relay_id, cfg->relay_id) != 0) {
        snprintf(err, errsz, "--relay-cert %s is for relay id \"%s\", not --relay-id \"%s\"",
                 cfg->relay_cert, rc.relay_id, cfg->relay_id);
        return VERR_DENIED;
    }
    if (sodium_memcmp(rc.pk, pk, SIG_PK_LEN) != 0) {
        snprintf(err, errsz,
                 "--relay-cert %s certifies another handshake key than %s/%s; ask IT to sign "
                 "this relay's public key",
                 cfg->relay_cert, cfg->data_dir, RELAYKEY_FILE);
        return VERR_DENIED;
    }
    return 0;
}

int relay_create(struct relay **out, const struct relay_config *cfg, char *err, size_t errsz)
{
    struct relay *rl;
    struct tp_handlers h;
    struct tp_opts to;
    struct buf stored = {0};
    int r;

    *out = NULL;
    if ((rl = calloc(1, sizeof(*rl))) == NULL)
        return VERR_NOMEM;
    rl->cfg = cfg;
    rl->lim.queue_max_count = cfg->queue_max_count;
    rl->lim.queue_max_bytes = cfg->queue_max_bytes;
    rl->lim.otk_max = (uint32_t)cfg->otk_max;
    for (rl->nbuckets = 64; rl->nbuckets < cfg->max_connections; rl->nbuckets *= 2)
        ;
    rl->fill = &rl->batches[0];
    rl->work = &rl->batches[1];
    rl->fill_epoch = 1;
    if (pthread_mutex_init(&rl->mu, NULL) != 0) {
        free(rl);
        return VERR_NOMEM;
    }
    if (pthread_cond_init(&rl->cv_work, NULL) != 0) {
        pthread_mutex_destroy(&rl->mu);
        free(rl);
        return VERR_NOMEM;
    }
    if (pthread_cond_init(&rl->cv_done, NULL) != 0) {
        pthread_cond_destroy(&rl->cv_work);
        pthread_mutex_destroy(&rl->mu);
        free(rl);
        return VERR_NOMEM;
    }
    if ((rl->buckets = calloc(rl->nbuckets, sizeof(*rl->buckets))) == NULL ||
        (r = buf_init(&rl->batches[0].replies, SIZE_MAX, 0)) != 0 ||
        (r = buf_init(&rl->batches[1].replies, SIZE_MAX, 0)) != 0 ||
        (r = buf_init(&rl->scratch, (size_t)cfg->max_frame + WIRE_DIR_MAX, 0)) != 0) {
        r = VERR_NOMEM;
        goto out;
    }
    if ((r = orgpub_load(cfg->org_pub, &rl->org)) != 0) {
        snprintf(err, errsz, "--org-pub %s: %s", cfg->org_pub, verr_str(r));
        goto out;
    }
    if ((r = store_open(&rl->st, cfg->data_dir, cfg->map_size)) != 0) {
        snprintf(err, errsz, "--data %s: %s", cfg->data_dir, verr_str(r));
        goto out;
    }
    if ((r = load_identity(rl, err, errsz)) != 0)
        goto out;
    store_set_dedupe_window(rl->st, cfg->dedupe_window);
    if ((r = raudit_open(&rl->audit, cfg, rl->st, err, errsz)) != 0)
        goto out;
    /* The newest of the stored directory and the file is served. */
    if (store_dir_get(rl->st, &stored) == 0) {
        struct directory *d = NULL;

        if (dir_parse_verify(buf_data(&stored), buf_size(&stored), &rl->org, &d) == 0)
            install_directory(rl, d);
        else
            rlog(RLOG_WARN, "stored directory does not verify against --org-pub; ignored");
        buf_free(&stored);
    }
    if ((r = directory_from_file(rl, 1)) != 0 && rl->dir == NULL) {
        snprintf(err, errsz, "--directory %s: %s", cfg->directory, verr_str(r));
        goto out;
    }
    /* The served directory is in the history (PROTOCOL.md part 2 "Directory transfer"). */
    if ((r = store_begin(rl->st)) == 0) {
        if ((r = store_dir_hist_keep(rl->st, rl->dir)) == 0)
            r = store_commit(rl->st);
        else
            store_abort(rl->st);
    }
    if (r != 0) {
        snprintf(err, errsz, "--data %s: keeping the directory history: %s", cfg->data_dir,
                 verr_str(r));
        goto out;
    }
    if (store_restore_pending(rl->st) && (r = record_restore(rl)) != 0) {
        snprintf(err, errsz, "--data %s: recording the restore failed: %s", cfg->data_dir,
                 verr_str(r));
        goto out;
    }
    if ((r = audit_now(rl, AUDIT_RELAY_START)) != 0) {
        snprintf(err, errsz, "--data %s: %s", cfg->data_dir, verr_str(r));
        goto out;
    }
    memset(&h, 0, sizeof(h));
    h.ctx = rl;
    h.open = on_open;
    h.rx = on_rx;
    h.writeable = on_writeable;
    h.closed = on_closed;
    h.http = on_http;
    memset(&to, 0, sizeof(to));
    to.host = cfg->host;
    to.port = cfg->port;
    to.tls_cert = cfg->tls_cert;
    to.tls_key = cfg->tls_key;
    to.rx_buffer = RX_BUFFER;
    to.handshake_timeout = (unsigned)cfg->handshake_timeout;
    to.max_fds = (unsigned)(cfg->max_connections + 64);
    if ((r = tp_create(&rl->tp, &to, &h)) != 0) {
        /* libwebsockets does not say why: find the cause an operator can act on */
        if (netcheck_tls_files(cfg->tls_cert, cfg->tls_key, err, errsz) == 0 &&
            netcheck_listen(cfg->host, cfg->port, err, errsz) == 0)
            snprintf(err, errsz, "cannot listen on %s: %s%s", cfg->listen, verr_str(r),
                     cfg->tls_cert != NULL ? " (check that --tls-cert and --tls-key are a "
                                             "matching PEM certificate and key)"
                                           : "");
        goto out;
    }
    rl->last_sweep_ms = now_ms();
    /* Single-threaded until relay_run starts the writer. */
    rl->queued = store_queue_total(rl->st);
    rl->audit_size = store_audit_size(rl->st);
    store_att_totals(rl->st, &rl->att_count, &rl->att_bytes);
    *out = rl;
    rl = NULL;
    r = 0;
out:
    relay_destroy(rl);
    return r;
}

int relay_port(const struct relay *rl)
{
    return tp_port(rl->tp);
}

void relay_request_stop(struct relay *rl)
{
    rl->stop = 1;
    tp_cancel(rl->tp);
}

void relay_request_reload(struct relay *rl)
{
    rl->reload = 1;
    tp_cancel(rl->tp);
}

/* Type=notify state changes (sdnotify.h); a failure is only logged. */
static void notify_manager(const char *state)
{
    int r = sdnotify_send(state);

    if (r != 0)
        rlog(RLOG_WARN, "NOTIFY_SOCKET: %s not sent: %s", state, verr_str(r));
}

/* The operator's confirmation that the shutdown is covered by a signed checkpoint. */
static void log_final_checkpoint(struct relay *rl)
{
    struct buf note = {0};
    uint64_t size = 0;
    int r = store_checkpoint_latest(rl->st, &size, &note);

    buf_free(&note);
    if (r == 0 && size == store_audit_size(rl->st))
        rlog(RLOG_INFO, "final checkpoint signed: tree size %llu covers relay_stop",
             (unsigned long long)size);
    else
        rlog(RLOG_ERROR, "no final checkpoint covers relay_stop (latest %llu of %llu records%s%s)",
             (unsigned long long)size, (unsigned long long)store_audit_size(rl->st),
             r != 0 ? ": " : "", r != 0 ? verr_str(r) : "");
}

/*
 * The start-up recomputation of the audit tree (audit.h), once it has ended:
 * logged either way; a failure stops the relay (exit status 1).
 */
static void audit_check_poll(struct relay *rl)
{
    char err[256];
    int done = 0, r = raudit_verify_poll(rl->audit, &done, err, sizeof(err));

    if (!done)
        return;
    rl->audit_checked = 1;
    if (r == 0) {
        rlog(RLOG_INFO, "audit log checked: every record rehashed matches the signed checkpoint "
                        "and the tree state");
        return;
    }
    rl->audit_failed = 1;
    rl->stop = 1;
    rlog(RLOG_ERROR, "%s", err);
}

/* Waits for the writer, then commits and acknowledges everything queued so far. */
static void writer_drain(struct relay *rl)
{
    int swept;

    do {
        writer_collect(rl, 1);
    } while (writer_kick(rl, 0, &swept));
    writer_collect(rl, 1);
}

int relay_run(struct relay *rl)
{
    uint64_t t;
    int r, swept;

    if ((r = writer_start(rl)) != 0) {
        rlog(RLOG_ERROR, "cannot start the writer thread");
        return r;
    }
    if ((r = raudit_verify_start(rl->audit)) != 0) {
        rlog(RLOG_ERROR, "cannot start the audit log check: %s", verr_str(r));
        writer_stop(rl);
        return r;
    }
    while (!rl->stop) {
        if ((r = tp_service(rl->tp)) != 0) {
            rlog(RLOG_ERROR, "event loop failed");
            writer_stop(rl);
            return r;
        }
        writer_collect(rl, 0);
        if (rl->reload) {
            rl->reload = 0;
            notify_manager("RELOADING=1");
            rlog(RLOG_INFO, "SIGHUP: reloading %s", rl->cfg->directory);
            /* The store has one write transaction: the writer must be idle. */
            writer_collect(rl, 1);
            (void)directory_from_file(rl, 0);
            if (rl->cfg->tls_cert != NULL) {
                if ((r = tp_tls_reload(rl->tp, rl->cfg->tls_cert, rl->cfg->tls_key)) == 0)
                    rlog(RLOG_INFO, "SIGHUP: TLS certificate %s and key %s reloaded; open "
                                    "connections kept",
                         rl->cfg->tls_cert, rl->cfg->tls_key);
                else
                    rlog(RLOG_ERROR, "SIGHUP: TLS certificate %s / key %s: %s (not a matching "
                                     "PEM chain and key); kept the previous certificate",
                         rl->cfg->tls_cert, rl->cfg->tls_key, verr_str(r));
            }
            notify_manager("READY=1");
        }
        t = now_ms();
        if (t - rl->last_expire_ms >= 1000) {
            sessions_expire(rl, now_s());
            sessions_idle(rl, t);
            rl->last_expire_ms = t;
        }
        if (!rl->audit_checked)
            audit_check_poll(rl);
        if (writer_kick(rl, t - rl->last_sweep_ms >= 1000, &swept) && swept)
            rl->last_sweep_ms = t;
    }
    /* SIGTERM: what has arrived is committed and acknowledged, then we stop. */
    rl->shutting_down = 1;
    notify_manager("STOPPING=1");
    writer_drain(rl);
    t = now_ms();
    while (now_ms() - t < 300) {
        if (tp_service(rl->tp) != 0)
            break;
        writer_collect(rl, 0);
        (void)writer_kick(rl, 0, &swept);
    }
    writer_drain(rl);
    writer_stop(rl);
    raudit_verify_join(rl->audit);
    if (!rl->audit_checked)
        audit_check_poll(rl);
    if (rl->audit_failed) {
        /* Nothing more is signed over a log whose records fail the check. */
        rlog(RLOG_ERROR, "stopped without a final checkpoint: the audit log failed its start-up "
                         "check");
        return VERR_BAD_PROOF;
    }
    raudit_force_checkpoint(rl->audit); /* the stop record is covered by a checkpoint */
    if ((r = audit_now(rl, AUDIT_RELAY_STOP)) != 0)
        rlog(RLOG_ERROR, "audit of stop failed: %s; no final checkpoint", verr_str(r));
    else
        log_final_checkpoint(rl);
    rlog(RLOG_INFO, "stopped");
    return 0;
}

static void batch_free(struct relay *rl, struct batch *b)
{
    batch_release(rl, b);
    free(b->ops);
    free(b->ops_tmp);
    free(b->staged);
    vec_free(&b->arena);
    vec_free(&b->wake_deliver);
    vec_free(&b->wake_nd);
    vec_free(&b->wake_prekey);
    vec_free(&b->stats);
    buf_free(&b->replies);
}

void relay_destroy(struct relay *rl)
{
    if (rl == NULL)
        return;
    writer_stop(rl); /* it calls tp_cancel: gone before the transport */
    tp_destroy(rl->tp); /* closes every connection: sessions are freed in on_closed */
    rl->tp = NULL;
    while (rl->auth_wait != NULL) {
        struct session *s = rl->auth_wait;

        rl->auth_wait = s->auth_next;
        if (--s->pending_ops == 0 && s->conn == NULL)
            session_free(s);
    }
    batch_free(rl, &rl->batches[0]);
    batch_free(rl, &rl->batches[1]);
    raudit_verify_join(rl->audit); /* its read transaction ends before the store closes */
    store_close(rl->st);
    raudit_free(rl->audit);
    sodium_free(rl->hs_sk); /* wipes */
    dir_free(rl->dir);
    free(rl->devs);
    free(rl->buckets);
    buf_free(&rl->scratch);
    for (size_t i = 0; i < DELTA_CACHE; i++)
        buf_free(&rl->deltas[i].bytes);
    pthread_cond_destroy(&rl->cv_done);
    pthread_cond_destroy(&rl->cv_work);
    pthread_mutex_destroy(&rl->mu);
    sodium_memzero(&rl->org, sizeof(rl->org));
    free(rl);
}
