/* relay.c - the relay's core (see relay.h, PROTOCOL.md, part 2). */
#include "relay.h"

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
#include "log.h"
#include "sig.h"
#include "store.h"
#include "transport.h"
#include "wire.h"

enum {
    RX_BUFFER = 64 * 1024,       /* DESIGN.md limits: read 64 KiB at a time */
    PREAUTH_FRAME_MAX = 1024,    /* an AUTH is under 400 bytes */
    DELIVER_MAX_BYTES = 1 << 20, /* ciphertext per DELIVER message (at least one envelope) */
    ND_BATCH = 256,
    SWEEP_LIMIT = 10000,         /* expiries per turn, so one turn stays short */
    COMMIT_MAX_ITEMS = 2048,     /* envelopes and ids per transaction (BENCHMARKS.md item 4) */
    OUTQ_MAX = WIRE_DIR_MAX + (1 << 20), /* replies queued for a connection: one directory fits */
    OUTQ_KEEP = 4096,            /* an idle connection keeps at most this much allocated */
};

enum op_kind {
    OP_AUDIT = 1,
    OP_SUBMIT,
    OP_DELIVER_ACK,
    OP_ND_ACK,
    OP_PREKEYS,
    OP_BUNDLE,
    OP_DIR_PUT,
};

struct session {
    struct relay *rl;
    struct tp_conn *conn; /* NULL once closed */
    struct session *dev_next;
    uint8_t nonce[WIRE_NONCE_LEN];
    uint8_t device_id[DEVICE_ID_LEN];
    uint8_t sign_pk[SIG_PK_LEN];
    uint64_t serial;
    int authed, in_table, close_after_flush;
    unsigned pending_ops;
    /* reassembly of a message split over several reads */
    uint8_t *rx;
    size_t rx_len, rx_cap;
    /* replies waiting for the socket: [u32 len][message]... */
    struct buf outq;
    struct store_cursor cur;
    int want_deliver, want_nd;
    double tokens;
    uint64_t refill_ms;
    uint64_t idle_set_ms; /* when the idle time-out was last restarted */
};

struct op {
    uint8_t kind;
    uint8_t rate_limited;
    uint8_t flash; /* a SUBMIT carrying a FLASH envelope: committed ahead of the turn */
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

struct relay {
    const struct relay_config *cfg;
    struct orgpub org;
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
    int shutting_down;
    uint64_t last_sweep_ms;
    /* this turn */
    struct op *ops;
    size_t nops, ops_cap;
    struct op *ops_tmp; /* for putting FLASH ops first (ops_cap entries) */
    size_t ops_tmp_cap;
    struct vec arena;          /* message bytes of queued ops */
    struct buf replies;        /* staged reply messages */
    struct staged *staged;
    size_t nstaged, staged_cap;
    struct vec wake_deliver;   /* device ids (16 bytes each) to wake for delivery */
    struct vec wake_nd;        /* senders with new non-delivery notices */
    struct vec wake_prekey;    /* owners whose one-time prekeys ran low: id | u32 left */
    struct directory *new_dir; /* installed by this turn's commit */
    struct counters turn;
    struct buf scratch;        /* one outgoing message being built */
    /* metrics */
    struct counters total;
    uint64_t auth_ok, auth_fail, commits, commit_failures;
    uint64_t commit_hist[HIST_COMMIT + 1], batch_hist[HIST_BATCH + 1];
    double commit_sum;
    uint64_t batch_sum;
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

static int vec_put(struct vec *v, const void *p, size_t n)
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

static struct op *op_new(struct relay *rl, uint8_t kind, struct session *s)
{
    struct op *o;

    if (rl->nops == rl->ops_cap) {
        size_t ncap = rl->ops_cap < 64 ? 64 : rl->ops_cap * 2;
        struct op *np = realloc(rl->ops, ncap * sizeof(*np));

        if (np == NULL)
            return NULL;
        rl->ops = np;
        rl->ops_cap = ncap;
    }
    o = &rl->ops[rl->nops++];
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
    size_t off = rl->arena.len;
    struct op *o;
    int r;

    if ((r = vec_put(&rl->arena, p, len)) != 0)
        return r;
    if ((o = op_new(rl, kind, s)) == NULL) {
        rl->arena.len = off;
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
    rlog(RLOG_INFO, "auth failed: device %s serial %llu: %s", rlog_hex(hex, s->device_id),
         (unsigned long long)s->serial, wire_reason_name(reason));
    audit_event(rl, AUDIT_AUTH_FAIL, s, reason, 0);
    fail_session(s, reason, wire_reason_name(reason));
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
    if (buf_init(&body, 1 + WIRE_RELAY_ID_MAX + WIRE_NONCE_LEN, 0) != 0 ||
        wire_auth_body(&body, rl->cfg->relay_id, s->nonce) != 0) {
        buf_free(&body);
        auth_fail(s, WIRE_R_STORAGE_ERROR, &c);
        return;
    }
    r = sig_verify(m->u.auth.sig, SIG_CTX_RELAY_AUTH, buf_data(&body), buf_size(&body),
                   c.sign_pk);
    buf_free(&body);
    /* The challenge is single-use: this connection gets no second attempt. */
    sodium_memzero(s->nonce, sizeof(s->nonce));
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
    s->authed = 1;
    table_insert(rl, s);
    rl->auth_ok++;
    audit_event(rl, AUDIT_AUTH_OK, s, 0, 0);
    rlog(RLOG_INFO, "device %s serial %llu authenticated", rlog_hex(hex, s->device_id),
         (unsigned long long)s->serial);
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
    s->tokens = (double)rl->cfg->rate;
    s->refill_ms = now_ms();
    tp_set_timeout(s->conn, (unsigned)rl->cfg->idle_timeout);
    s->idle_set_ms = now_ms();
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

/* A header pass over the batch (decoded already): does it carry a FLASH envelope? */
static uint8_t submit_has_flash(const struct wire_msg *m)
{
    struct wire_iter it;
    struct wire_envelope e;

    wire_iter_init(&it, m);
    for (size_t i = 0; i < m->u.batch.n; i++) {
        if (wire_next_envelope(&it, &e) != 0)
            return 0;
        if (e.precedence == WIRE_FLASH)
            return 1;
    }
    return 0;
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
        if (m.type != WIRE_AUTH)
            auth_fail(s, WIRE_R_NOT_AUTHENTICATED, NULL);
        else
            handle_auth(s, &m);
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
        }
        break;
    case WIRE_DELIVER_ACK:
        r = op_with_msg(rl, OP_DELIVER_ACK, s, p, len, NULL);
        break;
    case WIRE_NON_DELIVERY_ACK:
        r = op_with_msg(rl, OP_ND_ACK, s, p, len, NULL);
        break;
    case WIRE_AUDIT_CHECKPOINT_GET:
    case WIRE_AUDIT_PROOF_GET: {
        /* read-only, answered at once (relay/audit.h); auditors only */
        const struct cert *c = dev_find(rl, s->device_id);

        buf_reset(&rl->scratch);
        if (raudit_serve(rl->st, c != NULL ? c->role : "", &m, &rl->scratch) == 0)
            (void)send_scratch(s);
        return;
    }
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
    if (buf_init(&s->outq, OUTQ_MAX, 0) != 0) {
        free(s);
        return NULL;
    }
    rl->nconns++;
    if (rl->nconns > rl->cfg->max_connections || rl->shutting_down) {
        uint16_t reason = rl->shutting_down ? WIRE_R_SHUTTING_DOWN : WIRE_R_TOO_MANY_CONNECTIONS;
        audit_event(rl, AUDIT_CONNECTION_REFUSED, NULL, reason, rl->nconns);
        fail_session(s, reason, wire_reason_name(reason));
        return s;
    }
    randombytes_buf(s->nonce, sizeof(s->nonce));
    buf_reset(&rl->scratch);
    if (wire_put_challenge(&rl->scratch, s->nonce, rl->cfg->relay_id) != 0 ||
        send_scratch(s) != 0) {
        rl->nconns--;
        session_free(s);
        return NULL;
    }
    /* Nothing but AUTH is accepted before this runs out. */
    tp_set_timeout(c, (unsigned)rl->cfg->handshake_timeout);
    return s;
}

/*
 * Only a whole message restarts the idle clock, so a peer that trickles a
 * frame byte by byte is cut when the idle time-out runs out.
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
    s->idle_set_ms = t;
    tp_set_timeout(s->conn, (unsigned)s->rl->cfg->idle_timeout);
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

static int on_writeable(void *ctx, void *sess)
{
    struct relay *rl = ctx;
    struct session *s = sess;
    size_t n;
    int more, r;

    if ((r = outq_flush(s)) != 0)
        return -1;
    if (buf_left(&s->outq) > 0) {
        tp_want_write(s->conn);
        return 0;
    }
    if (s->close_after_flush)
        return -1;
    if (!s->authed)
        return 0;
    while (!tp_choked(s->conn) && (s->want_nd || s->want_deliver)) {
        buf_reset(&rl->scratch);
        if (s->want_nd) {
            r = store_fill_nd(rl->st, s->device_id, &s->cur, ND_BATCH, &rl->scratch, &n, &more);
            if (r == 0 && !more)
                s->want_nd = 0;
        } else {
            r = store_fill_deliver(rl->st, s->device_id, &s->cur, now_s(),
                                   (size_t)rl->cfg->deliver_batch, DELIVER_MAX_BYTES,
                                   &rl->scratch, &n, &more);
            if (r == 0 && !more)
                s->want_deliver = 0;
        }
        if (r != 0) {
            rlog(RLOG_ERROR, "reading the queue failed: %s", verr_str(r));
            s->want_deliver = s->want_nd = 0;
            return 0;
        }
        if (n > 0 && tp_write(s->conn, buf_data(&rl->scratch), buf_size(&rl->scratch)) != 0)
            return -1;
    }
    buf_reset(&rl->scratch);
    if (s->want_nd || s->want_deliver)
        tp_want_write(s->conn);
    return 0;
}

static void on_closed(void *ctx, void *sess)
{
    struct relay *rl = ctx;
    struct session *s = sess;

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
           (unsigned long long)store_queue_total(rl->st));
    metric(b, "# TYPE valise_relay_audit_records gauge\nvalise_relay_audit_records %llu\n",
           (unsigned long long)store_audit_size(rl->st));
    metric(b, "# TYPE valise_relay_directory_version gauge\nvalise_relay_directory_version %llu\n",
           (unsigned long long)dir_version(rl->dir));
    metric(b, "# TYPE valise_relay_commits_total counter\nvalise_relay_commits_total %llu\n",
           (unsigned long long)rl->commits);
    metric(b, "# TYPE valise_relay_commit_failures_total counter\n"
              "valise_relay_commit_failures_total %llu\n",
           (unsigned long long)rl->commit_failures);
    histogram(b, "valise_relay_commit_seconds", commit_bounds, HIST_COMMIT, rl->commit_hist,
              rl->commit_sum);
    histogram(b, "valise_relay_commit_batch_envelopes", batch_bounds, HIST_BATCH, rl->batch_hist,
              (double)rl->batch_sum);
    return 200;
}

/* ---- applying a turn ---- */

static int stage_reply(struct relay *rl, struct session *s, size_t off)
{
    if (rl->nstaged == rl->staged_cap) {
        size_t ncap = rl->staged_cap < 64 ? 64 : rl->staged_cap * 2;
        struct staged *np = realloc(rl->staged, ncap * sizeof(*np));

        if (np == NULL)
            return VERR_NOMEM;
        rl->staged = np;
        rl->staged_cap = ncap;
    }
    rl->staged[rl->nstaged].s = s;
    rl->staged[rl->nstaged].off = off;
    rl->staged[rl->nstaged].len = buf_size(&rl->replies) - off;
    rl->nstaged++;
    return 0;
}

static void notify_nd(void *ctx, const uint8_t sender[DEVICE_ID_LEN])
{
    struct relay *rl = ctx;

    if (vec_put(&rl->wake_nd, sender, DEVICE_ID_LEN) != 0)
        rlog(RLOG_WARN, "out of memory: a sender learns of a non-delivery at its next connect");
}

static int apply_submit(struct relay *rl, struct op *o, const struct wire_msg *m, uint64_t now)
{
    struct session *s = o->s;
    struct wire_iter it;
    struct wire_envelope e;
    struct audit_record rec;
    size_t off = buf_size(&rl->replies), cnt = 0;
    int r;

    if ((r = wire_batch_begin(&rl->replies, WIRE_SUBMIT_ACK, &cnt)) != 0)
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
                rl->turn.accepted++;
                if ((r = vec_put(&rl->wake_deliver, e.peer, DEVICE_ID_LEN)) != 0)
                    return r;
            } else if (dup) {
                rl->turn.duplicates++;
            }
        }
        if (ack.reason != WIRE_R_OK) {
            rl->turn.rejected[ack.reason]++;
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
        if ((r = wire_put_ack(&rl->replies, &ack)) != 0)
            return r;
    }
    if ((r = wire_batch_end(&rl->replies, cnt, m->u.batch.n)) != 0)
        return r;
    return stage_reply(rl, s, off);
}

static int apply_bundle(struct relay *rl, struct op *o, const struct wire_msg *m, uint64_t now)
{
    struct session *s = o->s;
    const struct cert *owner = dev_find(rl, m->u.device_id);
    struct wire_signed_prekey spk;
    struct audit_record rec;
    struct buf cb = {0};
    uint8_t otk_pk[WIRE_PK_LEN], low[DEVICE_ID_LEN + 4];
    uint32_t otk_id = 0, left = 0;
    size_t off = buf_size(&rl->replies);
    int has_otk = 0, r;

    if (owner == NULL) {
        if ((r = wire_put_error(&rl->replies, WIRE_R_UNKNOWN_DEVICE, "no such device")) != 0)
            return r;
        return stage_reply(rl, s, off);
    }
    r = store_bundle_take(rl->st, m->u.device_id, &spk, &has_otk, &otk_id, otk_pk, &left);
    if (r == VERR_UNKNOWN) {
        if ((r = wire_put_error(&rl->replies, WIRE_R_NO_PREKEYS, "no prekeys uploaded")) != 0)
            return r;
        return stage_reply(rl, s, off);
    }
    if (r != 0)
        return r;
    if ((r = cert_encode(owner, &cb)) != 0)
        return r;
    r = wire_put_bundle(&rl->replies, buf_data(&cb), buf_size(&cb), &spk, otk_id,
                        has_otk ? otk_pk : NULL);
    buf_free(&cb);
    if (r != 0 || (r = stage_reply(rl, s, off)) != 0)
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
        return vec_put(&rl->wake_prekey, low, sizeof(low));
    }
    return 0;
}

static int apply_dir_put(struct relay *rl, struct op *o, const struct wire_msg *m, uint64_t now)
{
    struct directory *d = NULL;
    struct audit_record rec;
    size_t off = buf_size(&rl->replies);
    uint64_t current = rl->new_dir != NULL ? dir_version(rl->new_dir) : dir_version(rl->dir);
    int r;

    if (dir_parse_verify(m->u.directory.bytes, m->u.directory.len, &rl->org, &d) != 0) {
        r = wire_put_error(&rl->replies, WIRE_R_DIRECTORY_INVALID, "directory does not verify");
    } else if (dir_version(d) <= current) {
        r = wire_put_error(&rl->replies, WIRE_R_DIRECTORY_OLD, "not newer than the current one");
    } else {
        if ((r = store_dir_put(rl->st, m->u.directory.bytes, m->u.directory.len)) != 0)
            goto out;
        audit_record_init(&rec, AUDIT_DIRECTORY_INSTALLED, now);
        memcpy(rec.device_id, o->s->device_id, DEVICE_ID_LEN);
        rec.cert_serial = o->s->serial;
        rec.value = dir_version(d);
        if ((r = store_audit_append(rl->st, &rec)) != 0 ||
            (r = raudit_directory_changes(rl->st, rl->new_dir != NULL ? rl->new_dir : rl->dir,
                                          d, now)) != 0 ||
            (r = wire_put_directory_ok(&rl->replies, dir_version(d))) != 0)
            goto out;
        dir_free(rl->new_dir);
        rl->new_dir = d;
        d = NULL; /* owned by the turn now */
    }
    if (r == 0)
        r = stage_reply(rl, o->s, off);
out:
    dir_free(d);
    return r;
}

static int apply_op(struct relay *rl, struct op *o, uint64_t now, int deletions_only)
{
    struct wire_msg m;
    struct wire_iter it;
    uint8_t id[WIRE_ID_LEN];
    int r;

    if (o->kind == OP_AUDIT)
        return deletions_only ? 0 : store_audit_append(rl->st, &o->rec);
    if (deletions_only && o->kind != OP_DELIVER_ACK && o->kind != OP_ND_ACK)
        return 0;
    /* Decoded when it arrived; decoding again is a cheap pass over the headers. */
    if ((r = wire_decode(rl->arena.p + o->off, o->len, &m)) != 0)
        return VERR_INTERNAL;
    switch (o->kind) {
    case OP_SUBMIT:
        return apply_submit(rl, o, &m, now);
    case OP_DELIVER_ACK:
        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            if ((r = wire_next_id(&it, id)) != 0)
                return r;
            r = store_envelope_ack(rl->st, o->s->device_id, o->s->serial, id, now);
            if (r == 0)
                rl->turn.delivered++;
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
        size_t off = buf_size(&rl->replies);

        if ((r = store_prekeys_put(rl->st, o->s->device_id, &m.u.prekey_upload.spk,
                                   m.u.prekey_upload.otk, m.u.prekey_upload.n_otk, &rl->lim,
                                   &stored)) != 0)
            return r;
        audit_record_init(&rec, AUDIT_PREKEYS_UPLOADED, now);
        memcpy(rec.device_id, o->s->device_id, DEVICE_ID_LEN);
        rec.cert_serial = o->s->serial;
        rec.value = stored;
        if ((r = store_audit_append(rl->st, &rec)) != 0 ||
            (r = wire_put_count(&rl->replies, WIRE_PREKEY_OK, stored)) != 0)
            return r;
        return stage_reply(rl, o->s, off);
    }
    case OP_BUNDLE:
        return apply_bundle(rl, o, &m, now);
    case OP_DIR_PUT:
        return apply_dir_put(rl, o, &m, now);
    default:
        return VERR_INTERNAL;
    }
}

static void turn_reset(struct relay *rl)
{
    buf_reset(&rl->replies);
    rl->nstaged = 0;
    rl->wake_deliver.len = rl->wake_nd.len = rl->wake_prekey.len = 0;
    memset(&rl->turn, 0, sizeof(rl->turn));
    dir_free(rl->new_dir);
    rl->new_dir = NULL;
}

/* Applies ops [from, to) and, if asked, the expiry sweep in one transaction. */
static int apply_turn(struct relay *rl, size_t from, size_t to, uint64_t now, int sweep,
                      int deletions_only, size_t *expired)
{
    int r;

    *expired = 0;
    turn_reset(rl);
    if ((r = store_begin(rl->st)) != 0)
        return r;
    for (size_t i = from; i < to; i++)
        if ((r = apply_op(rl, &rl->ops[i], now, deletions_only)) != 0)
            goto fail;
    if (sweep && (r = store_sweep(rl->st, now, SWEEP_LIMIT, notify_nd, rl, expired)) != 0)
        goto fail;
    /* Durable before anything is acknowledged (DESIGN.md "Relay"). */
    if ((r = store_commit(rl->st)) != 0)
        return r;
    return 0;
fail:
    store_abort(rl->st);
    return r;
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

static void after_commit(struct relay *rl, uint64_t envelopes, double secs)
{
    size_t i;

    for (i = 0; i < rl->nstaged; i++)
        (void)outq_put(rl->staged[i].s, &rl->replies, rl->staged[i].off, rl->staged[i].len);
    for (i = 0; i + DEVICE_ID_LEN <= rl->wake_deliver.len; i += DEVICE_ID_LEN)
        wake(rl, rl->wake_deliver.p + i, 0);
    for (i = 0; i + DEVICE_ID_LEN <= rl->wake_nd.len; i += DEVICE_ID_LEN)
        wake(rl, rl->wake_nd.p + i, 1);
    for (i = 0; i + DEVICE_ID_LEN + 4 <= rl->wake_prekey.len; i += DEVICE_ID_LEN + 4) {
        const uint8_t *id = rl->wake_prekey.p + i, *lp = id + DEVICE_ID_LEN;
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
    rl->total.accepted += rl->turn.accepted;
    rl->total.duplicates += rl->turn.duplicates;
    rl->total.delivered += rl->turn.delivered;
    rl->total.expired += rl->turn.expired;
    for (i = 0; i <= WIRE_R_MAX; i++)
        rl->total.rejected[i] += rl->turn.rejected[i];
    rl->commits++;
    rl->commit_sum += secs;
    for (i = 0; i < HIST_COMMIT && secs > commit_bounds[i]; i++)
        ;
    rl->commit_hist[i]++;
    if (envelopes > 0) {
        rl->batch_sum += envelopes;
        for (i = 0; i < HIST_BATCH && (double)envelopes > batch_bounds[i]; i++)
            ;
        rl->batch_hist[i]++;
    }
}

static void release_ops(struct relay *rl)
{
    for (size_t i = 0; i < rl->nops; i++) {
        struct session *s = rl->ops[i].s;

        if (s == NULL)
            continue;
        s->pending_ops--;
        if (s->pending_ops == 0 && s->conn == NULL)
            session_free(s);
    }
    rl->nops = 0;
    rl->arena.len = 0;
}

/* Envelopes or ids an op carries: what a transaction's size is counted in. */
static size_t op_weight(const struct relay *rl, const struct op *o)
{
    const uint8_t *p = rl->arena.p + o->off;

    if ((o->kind == OP_SUBMIT || o->kind == OP_DELIVER_ACK || o->kind == OP_ND_ACK) &&
        o->len >= WIRE_HEADER_LEN + 2)
        return ((size_t)p[2] << 8) | p[3]; /* the batch count, checked when it arrived */
    return 1;
}

/* One transaction for ops [from, to): commit, then acknowledge. */
static void commit_chunk(struct relay *rl, size_t from, size_t to, int sweep)
{
    uint64_t now = now_s();
    double t0 = now_sec_f();
    size_t expired = 0;
    int r;

    r = apply_turn(rl, from, to, now, sweep, 0, &expired);
    if (r == 0) {
        struct directory *d = rl->new_dir;

        rl->new_dir = NULL; /* installed once this chunk's replies are out */
        rl->turn.expired = expired;
        after_commit(rl, rl->turn.accepted, now_sec_f() - t0);
        if (expired > 0)
            rlog(RLOG_INFO, "%zu envelopes expired; senders notified", expired);
        turn_reset(rl);
        /* Its revocations add audit ops, applied by a later chunk of this turn. */
        if (d != NULL)
            install_directory(rl, d);
        return;
    }
    rl->commit_failures++;
    rlog(RLOG_ERROR, "commit failed: %s; nothing from it is acknowledged", verr_str(r));
    /* Deletions free space: keep them going even when the map is full. */
    if (r == VERR_NOSPACE && apply_turn(rl, from, to, now, 0, 1, &expired) == 0)
        after_commit(rl, 0, now_sec_f() - t0);
    turn_reset(rl);
    for (size_t i = from; i < to; i++) {
        struct op *o = &rl->ops[i];

        if (o->s == NULL || o->kind == OP_DELIVER_ACK || o->kind == OP_ND_ACK)
            continue;
        error_reply(o->s, r == VERR_NOSPACE ? WIRE_R_STORAGE_FULL : WIRE_R_STORAGE_ERROR,
                    "not stored; retry later");
    }
}

/*
 * Group commit of everything that arrived in this loop turn, in transactions
 * of about COMMIT_MAX_ITEMS envelopes: LMDB's cost per page grows with the
 * transaction, and acknowledgements of the first part go out sooner
 * (BENCHMARKS.md item 4).
 */
/*
 * Moves SUBMITs that carry FLASH to the front, keeping the order within each
 * part; returns how many. Ops are independent of each other (each envelope id
 * is acknowledged by itself), so a FLASH may be stored before ROUTINE that
 * arrived earlier in the same turn (DESIGN.md "Relay": precedence).
 */
static size_t flash_first(struct relay *rl)
{
    size_t nf = 0, k = 0;

    for (size_t i = 0; i < rl->nops; i++)
        nf += rl->ops[i].flash;
    if (nf == 0 || nf == rl->nops)
        return nf;
    if (rl->ops_tmp_cap < rl->nops) {
        struct op *np = realloc(rl->ops_tmp, rl->ops_cap * sizeof(*np));

        if (np == NULL)
            return 0; /* no lane this turn: FLASH is committed in arrival order */
        rl->ops_tmp = np;
        rl->ops_tmp_cap = rl->ops_cap;
    }
    for (size_t i = 0; i < rl->nops; i++)
        if (rl->ops[i].flash)
            rl->ops_tmp[k++] = rl->ops[i];
    for (size_t i = 0; i < rl->nops; i++)
        if (!rl->ops[i].flash)
            rl->ops_tmp[k++] = rl->ops[i];
    memcpy(rl->ops, rl->ops_tmp, rl->nops * sizeof(*rl->ops));
    return nf;
}

static void commit_turn(struct relay *rl, int sweep)
{
    size_t i = 0, nflash;

    if (rl->nops == 0 && !sweep)
        return;
    /* FLASH in a small transaction of its own, ahead of the ROUTINE batch (DESIGN.md targets). */
    nflash = flash_first(rl);
    do {
        size_t j = i, w = 0, end = i < nflash ? nflash : rl->nops;

        while (j < end && (j == i || w + op_weight(rl, &rl->ops[j]) <= COMMIT_MAX_ITEMS))
            w += op_weight(rl, &rl->ops[j++]);
        /* the expiry sweep joins the first ROUTINE chunk (or the last, if all is FLASH) */
        commit_chunk(rl, i, j, sweep && (i == nflash || (nflash == rl->nops && j == rl->nops)));
        i = j;
    } while (i < rl->nops);
    release_ops(rl);
}

/* ---- directory install and reload ---- */

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
    rlog(RLOG_INFO, "directory version %llu installed: %zu devices, %zu revoked",
         (unsigned long long)dir_version(d), ndevs, dir_revoked_count(d));
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

/* Installs the file's directory if it is newer than the served one. */
static int directory_from_file(struct relay *rl, int at_start)
{
    struct directory *d = NULL;
    struct audit_record rec;
    size_t len;
    const uint8_t *p;
    int r;

    if ((r = dir_load(rl->cfg->directory, &rl->org, &d)) != 0) {
        rlog(RLOG_ERROR, "directory %s: %s", rl->cfg->directory, verr_str(r));
        return r;
    }
    if (rl->dir != NULL && dir_version(d) <= dir_version(rl->dir)) {
        if (!at_start)
            rlog(RLOG_WARN, "directory %s: version %llu is not newer than %llu; kept the current",
                 rl->cfg->directory, (unsigned long long)dir_version(d),
                 (unsigned long long)dir_version(rl->dir));
        dir_free(d);
        return 0;
    }
    p = dir_bytes(d, &len);
    if ((r = store_begin(rl->st)) != 0)
        goto out;
    audit_record_init(&rec, AUDIT_DIRECTORY_INSTALLED, now_s());
    rec.value = dir_version(d);
    if ((r = store_dir_put(rl->st, p, len)) != 0 || (r = store_audit_append(rl->st, &rec)) != 0 ||
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
    if ((rl->buckets = calloc(rl->nbuckets, sizeof(*rl->buckets))) == NULL ||
        (r = buf_init(&rl->replies, SIZE_MAX, 0)) != 0 ||
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
        snprintf(err, errsz, "cannot listen on %s: %s", cfg->listen, verr_str(r));
        goto out;
    }
    rl->last_sweep_ms = now_ms();
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

int relay_run(struct relay *rl)
{
    uint64_t t;
    int r;

    while (!rl->stop) {
        if ((r = tp_service(rl->tp)) != 0) {
            rlog(RLOG_ERROR, "event loop failed");
            return r;
        }
        if (rl->reload) {
            rl->reload = 0;
            rlog(RLOG_INFO, "SIGHUP: reloading %s", rl->cfg->directory);
            (void)directory_from_file(rl, 0);
        }
        t = now_ms();
        commit_turn(rl, t - rl->last_sweep_ms >= 1000);
        if (t - rl->last_sweep_ms >= 1000)
            rl->last_sweep_ms = t;
    }
    /* SIGTERM: what has arrived is committed and acknowledged, then we stop. */
    rl->shutting_down = 1;
    commit_turn(rl, 0);
    t = now_ms();
    while (now_ms() - t < 300) {
        if (tp_service(rl->tp) != 0)
            break;
        commit_turn(rl, 0);
    }
    raudit_force_checkpoint(rl->audit); /* the stop record is covered by a checkpoint */
    if ((r = audit_now(rl, AUDIT_RELAY_STOP)) != 0)
        rlog(RLOG_ERROR, "audit of stop failed: %s", verr_str(r));
    rlog(RLOG_INFO, "stopped");
    return 0;
}

void relay_destroy(struct relay *rl)
{
    if (rl == NULL)
        return;
    tp_destroy(rl->tp); /* closes every connection: sessions are freed in on_closed */
    rl->tp = NULL;
    release_ops(rl);
    store_close(rl->st);
    raudit_free(rl->audit);
    dir_free(rl->dir);
    dir_free(rl->new_dir);
    free(rl->devs);
    free(rl->buckets);
    free(rl->ops);
    free(rl->ops_tmp);
    free(rl->staged);
    vec_free(&rl->arena);
    vec_free(&rl->wake_deliver);
    vec_free(&rl->wake_nd);
    vec_free(&rl->wake_prekey);
    buf_free(&rl->replies);
    buf_free(&rl->scratch);
    sodium_memzero(&rl->org, sizeof(rl->org));
    free(rl);
}
