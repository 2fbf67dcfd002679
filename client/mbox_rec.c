/* mbox_rec.c - the mailbox's persistent state and records (see mbox_rec.h; PROTOCOL.md part 4). */
#include "mbox_rec.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "text.h"

/* ---- small helpers ---- */

void mb_be64(uint8_t p[static 8], uint64_t v)
{
    for (size_t i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

uint64_t mb_rd64(const uint8_t p[static 8])
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

int mb_cfg_get(struct mbox *m, const char *name, struct buf *out)
{
    return cstore_get(m->st, CS_CONFIG, (const uint8_t *)name, strlen(name), out);
}

int mb_cfg_put(struct mbox *m, const char *name, const uint8_t *p, size_t len)
{
    return cstore_put(m->st, CS_CONFIG, (const uint8_t *)name, strlen(name), p, len);
}

static void mb_peer_name(char name[static 5 + 2 * DEVICE_ID_LEN + 1],
                         const uint8_t id[static DEVICE_ID_LEN])
{
    memcpy(name, "peer.", 5);
    if (text_hex_encode(name + 5, 2 * DEVICE_ID_LEN + 1, id, DEVICE_ID_LEN) != 0)
        name[5] = 0;
}

int mb_peer_remember(struct mbox *m, const struct cert *c)
{
    char name[5 + 2 * DEVICE_ID_LEN + 1];
    struct buf b;
    int r;

    mb_peer_name(name, c->device_id);
    if ((r = mb_cfg_get(m, name, &b)) == 0) {
        buf_free(&b);
        return 0;
    }
    if (r != VERR_UNKNOWN)
        return r;
    if ((r = buf_init(&b, CERT_MAX_LEN, 0)) != 0)
        return r;
    if ((r = cert_encode(c, &b)) == 0)
        r = mb_cfg_put(m, name, buf_data(&b), buf_size(&b));
    buf_free(&b);
    return r;
}

int mb_peer_recall(struct mbox *m, const uint8_t id[static DEVICE_ID_LEN], struct cert *c)
{
    char name[5 + 2 * DEVICE_ID_LEN + 1];
    struct buf b;
    int r;

    mb_peer_name(name, id);
    if ((r = mb_cfg_get(m, name, &b)) != 0)
        return r;
    r = cert_parse(buf_data(&b), buf_size(&b), c);
    buf_free(&b);
    if (r == 0 && memcmp(c->device_id, id, DEVICE_ID_LEN) != 0)
        r = VERR_BAD_FORMAT;
    return r;
}

int mb_cfg_get_u64(struct mbox *m, const char *name, uint64_t *v)
{
    struct buf b;
    int r;

    *v = 0;
    if ((r = mb_cfg_get(m, name, &b)) == VERR_UNKNOWN)
        return 0;
    if (r != 0)
        return r;
    r = buf_size(&b) == 8 ? 0 : VERR_BAD_FORMAT;
    if (r == 0)
        *v = mb_rd64(buf_data(&b));
    buf_free(&b);
    return r;
}

int mb_cfg_put_u64(struct mbox *m, const char *name, uint64_t v)
{
    uint8_t p[8];
    mb_be64(p, v);
    return mb_cfg_put(m, name, p, 8);
}

/*
 * Rollback marks (PROTOCOL.md part 4 "Rollback detection"): the highest
 * envelope id this device ever created ("mark-sent") and ever acknowledged
 * ("mark-acked"), raised in the transaction that stores the envelope or the
 * received message, before the relay can see the id. The relay keeps the same
 * maxima; if its are higher, this store is older than the device's history.
 */
static const char *const mb_mark_name[2] = {"mark-sent", "mark-acked"};

int mb_mark_get(struct mbox *m, int which, uint8_t mark[static WIRE_ID_LEN])
{
    struct buf b;
    int r;

    memset(mark, 0, WIRE_ID_LEN);
    if ((r = mb_cfg_get(m, mb_mark_name[which], &b)) == VERR_UNKNOWN)
        return 0;
    if (r != 0)
        return r;
    r = buf_size(&b) == WIRE_ID_LEN ? 0 : VERR_BAD_FORMAT;
    if (r == 0)
        memcpy(mark, buf_data(&b), WIRE_ID_LEN);
    buf_free(&b);
    return r;
}

/* In the open write transaction. */
int mb_mark_raise(struct mbox *m, int which, const uint8_t id[static WIRE_ID_LEN])
{
    uint8_t cur[WIRE_ID_LEN];
    int r;

    if ((r = mb_mark_get(m, which, cur)) != 0)
        return r;
    if (memcmp(id, cur, WIRE_ID_LEN) <= 0)
        return 0;
    return mb_cfg_put(m, mb_mark_name[which], id, WIRE_ID_LEN);
}

/* The next sequence number, in the open write transaction. */
int mb_next_seq(struct mbox *m, uint64_t *seq)
{
    int r;

    if ((r = mb_cfg_get_u64(m, "seq", seq)) != 0)
        return r;
    (*seq)++;
    return mb_cfg_put_u64(m, "seq", *seq);
}

void mb_self_party(const struct mbox *m, struct x3dh_party *p)
{
    memcpy(p->device_id, m->id.device_id, DEVICE_ID_LEN);
    memcpy(p->identity_pk, m->id.dh_pk, X3DH_PK_LEN);
}

/* Copies text for display, replacing control bytes. */
void mb_text(char *out, size_t outsz, const uint8_t *p, size_t n)
{
    size_t k = n < outsz - 1 ? n : outsz - 1;
    for (size_t i = 0; i < k; i++)
        out[i] = (p[i] < 0x20 || p[i] == 0x7f) ? '?' : (char)p[i];
    out[k] = 0;
}

/* ---- open, enrol, directory ---- */

static int mb_load(struct mbox *m)
{
    struct buf b;
    struct directory *d = NULL;
    int r;

    if ((r = mb_cfg_get(m, "cert", &b)) == VERR_UNKNOWN)
        return 0;
    if (r != 0)
        return r;
    if (buf_size(&b) > CERT_MAX_LEN) {
        buf_free(&b);
        return VERR_BAD_FORMAT;
    }
    memcpy(m->cert_bytes, buf_data(&b), buf_size(&b));
    m->cert_len = buf_size(&b);
    r = cert_parse(buf_data(&b), buf_size(&b), &m->self);
    buf_free(&b);
    if (r != 0)
        return r;
    if ((r = mb_cfg_get(m, "orgpub", &b)) != 0)
        return r;
    r = orgpub_parse(buf_data(&b), buf_size(&b), &m->org);
    buf_free(&b);
    if (r != 0)
        return r;
    if ((r = mb_cfg_get(m, "relay", &b)) != 0)
        return r;
    if (buf_size(&b) == 0 || buf_size(&b) > MB_URL_MAX) {
        buf_free(&b);
        return VERR_BAD_FORMAT;
    }
    memcpy(m->relay, buf_data(&b), buf_size(&b));
    m->relay[buf_size(&b)] = 0;
    buf_free(&b);
    if ((r = mb_cfg_get(m, "relay.id", &b)) != 0)
        return r;
    if (buf_size(&b) > RELAY_ID_MAX) {
        buf_free(&b);
        return VERR_BAD_FORMAT;
    }
    memcpy(m->relay_id, buf_data(&b), buf_size(&b));
    m->relay_id[buf_size(&b)] = 0;
    buf_free(&b);
    if (!relaycert_valid_id(m->relay_id))
        return VERR_BAD_FORMAT;
    if ((r = mb_cfg_get(m, "ca", &b)) == 0) {
        if (buf_size(&b) > MB_URL_MAX) {
            buf_free(&b);
            return VERR_BAD_FORMAT;
        }
        memcpy(m->ca, buf_data(&b), buf_size(&b));
        m->ca[buf_size(&b)] = 0;
        buf_free(&b);
    } else if (r != VERR_UNKNOWN) {
        return r;
    }
    if ((r = mb_cfg_get_u64(m, "dir.seen", &m->dir_seen)) != 0)
        return r;
    r = mb_cfg_get(m, "dir", &b);
    if (r == 0) {
        r = dir_parse_verify(buf_data(&b), buf_size(&b), &m->org, &d);
        buf_free(&b);
        if (r != 0)
            return r;
        m->dir = d;
    } else if (r != VERR_UNKNOWN) {
        return r;
    }
    m->enrolled = 1;
    return 0;
}

int mbox_open(struct mbox **out, const char *home, const char *pass)
{
    struct mbox *m;
    size_t hl = strlen(home);
    int r;

    *out = NULL;
    if (hl == 0 || hl >= sizeof(m->home))
        return VERR_USAGE;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return VERR_NOMEM;
    memcpy(m->home, home, hl + 1);
    if ((r = identity_unlock(home, pass, &m->id)) != 0) {
        free(m);
        return r;
    }
    if ((r = cstore_open(&m->st, home, m->id.store_key)) != 0 || (r = mb_load(m)) != 0) {
        mbox_close(m);
        return r;
    }
    *out = m;
    return 0;
}

void mbox_close(struct mbox *m)
{
    if (m == NULL)
        return;
    cstore_close(m->st);
    dir_free(m->dir);
    identity_free(&m->id);
    free(m);
}

int mbox_enrolled(const struct mbox *m)
{
    return m->enrolled;
}

const struct identity *mbox_identity(const struct mbox *m)
{
    return &m->id;
}

const struct cert *mbox_cert(const struct mbox *m)
{
    return &m->self;
}

const char *mbox_relay_id(const struct mbox *m)
{
    return m->relay_id;
}

/*
 * 1 when the newest directory is past its expires_at: a coerced relay may be
 * serving it to hide a revocation, so nothing is encrypted to or accepted
 * from any device until a newer one arrives (PROTOCOL.md part 4).
 */
int mb_dir_stale(const struct mbox *m, uint64_t now)
{
    uint64_t exp;

    return mbox_dir_freshness(m, now, &exp) == MBOX_DIR_EXPIRED;
}

/* ---- outbox records ---- */

int mb_outrec_parse(const uint8_t *p, size_t len, struct mb_outrec *o)
{
    struct buf b, part;
    uint8_t v;
    int r;

    buf_view(&b, p, len);
    if ((r = buf_get_u8(&b, &v)) != 0 || (r = buf_get_u8(&b, &o->kind)) != 0 ||
        (r = buf_get_u8(&b, &o->resolved)) != 0 || (r = buf_get_u64(&b, &o->created)) != 0 ||
        (r = buf_get_view32(&b, INNER_MAX_LEN, &part)) != 0 || (r = buf_expect_end(&b)) != 0)
        return r;
    if (v != MB_REC_VERSION || (o->kind != MB_KIND_MESSAGE && o->kind != MB_KIND_RECEIPT) ||
        o->resolved > 1)
        return VERR_BAD_FORMAT;
    o->inner = buf_data(&part);
    o->inner_len = buf_size(&part);
    return 0;
}

int mb_outrec_put(struct mbox *m, uint64_t seq, const struct mb_outrec *o)
{
    uint8_t key[8];
    struct buf b;
    int r;

    mb_be64(key, seq);
    if ((r = buf_init(&b, 16 + o->inner_len, BUF_SECRET)) != 0)
        return r;
    if ((r = buf_put_u8(&b, MB_REC_VERSION)) == 0 && (r = buf_put_u8(&b, o->kind)) == 0 &&
        (r = buf_put_u8(&b, o->resolved)) == 0 && (r = buf_put_u64(&b, o->created)) == 0 &&
        (r = buf_put_bytes32(&b, o->inner, o->inner_len)) == 0)
        r = cstore_put(m->st, CS_OUTBOX, key, 8, buf_data(&b), buf_size(&b));
    buf_free(&b);
    return r;
}

int mb_envrec_parse(const uint8_t *p, size_t len, struct mb_envrec *e)
{
    struct buf b, part;
    uint8_t v;
    int r;

    buf_view(&b, p, len);
    if ((r = buf_get_u8(&b, &v)) != 0 || (r = buf_get_u8(&b, &e->state)) != 0 ||
        (r = buf_get_u16(&b, &e->reason)) != 0 ||
        (r = buf_get_bytes(&b, e->env_id, WIRE_ID_LEN)) != 0 ||
        (r = buf_get_u8(&b, &e->precedence)) != 0 || (r = buf_get_u64(&b, &e->expiry)) != 0 ||
        (r = buf_get_view32(&b, WIRE_CT_MAX, &part)) != 0 || (r = buf_expect_end(&b)) != 0)
        return r;
    if (v != MB_REC_VERSION || e->state < MBOX_ENV_QUEUED || e->state > MBOX_ENV_REJECTED ||
        e->precedence >= WIRE_PRECEDENCE_COUNT)
        return VERR_BAD_FORMAT;
    e->ct = buf_data(&part);
    e->ct_len = buf_size(&part);
    return 0;
}

int mb_envrec_put(struct mbox *m, const uint8_t key[static ENV_KEY_LEN],
                  const struct mb_envrec *e)
{
    struct buf b;
    int r;

    if ((r = buf_init(&b, 64 + e->ct_len, 0)) != 0)
        return r;
    if ((r = buf_put_u8(&b, MB_REC_VERSION)) == 0 && (r = buf_put_u8(&b, e->state)) == 0 &&
        (r = buf_put_u16(&b, e->reason)) == 0 &&
        (r = buf_put_bytes(&b, e->env_id, WIRE_ID_LEN)) == 0 &&
        (r = buf_put_u8(&b, e->precedence)) == 0 && (r = buf_put_u64(&b, e->expiry)) == 0 &&
        (r = buf_put_bytes32(&b, e->ct, e->ct_len)) == 0)
        r = cstore_put(m->st, CS_ENVELOPES, key, ENV_KEY_LEN, buf_data(&b), buf_size(&b));
    buf_free(&b);
    return r;
}

/* Moves an envelope's state forward only (a late ack never undoes "read"). */
int mb_env_advance(struct mbox *m, const uint8_t key[static ENV_KEY_LEN], uint8_t state,
                   uint16_t reason)
{
    struct buf b;
    struct mb_envrec e;
    int r;

    if ((r = cstore_get(m->st, CS_ENVELOPES, key, ENV_KEY_LEN, &b)) != 0)
        return r;
    if ((r = mb_envrec_parse(buf_data(&b), buf_size(&b), &e)) == 0) {
        int terminal = e.state == MBOX_ENV_EXPIRED || e.state == MBOX_ENV_REJECTED;
        if (state > e.state && !(terminal && state <= MBOX_ENV_READ)) {
            e.state = state;
            e.reason = reason;
            r = mb_envrec_put(m, key, &e);
        }
    }
    buf_free(&b);
    return r;
}

int mb_env_resubmit(struct mbox *m, const uint8_t key[static ENV_KEY_LEN], int *moved)
{
    struct buf b;
    struct mb_envrec e;
    int r;

    *moved = 0;
    if ((r = cstore_get(m->st, CS_ENVELOPES, key, ENV_KEY_LEN, &b)) != 0)
        return r;
    if ((r = mb_envrec_parse(buf_data(&b), buf_size(&b), &e)) == 0 &&
        e.state == MBOX_ENV_ACCEPTED) {
        e.state = MBOX_ENV_SENDING;
        e.reason = 0;
        if ((r = mb_envrec_put(m, key, &e)) == 0)
            *moved = 1;
    }
    buf_free(&b);
    return r;
}

/* config "rcpt.HEX": the outbox sequence of the newest receipt queued for device HEX. */
static void mb_rcpt_name(char name[static 5 + 2 * DEVICE_ID_LEN + 1],
                         const uint8_t id[static DEVICE_ID_LEN])
{
    memcpy(name, "rcpt.", 5);
    if (text_hex_encode(name + 5, 2 * DEVICE_ID_LEN + 1, id, DEVICE_ID_LEN) != 0)
        name[5] = 0;
}

/*
 * Adds (ref, kind) to the receipt of outbox record seq for device to if it
 * is still queued (not yet encrypted) and has room: *merged = 1. Re-signed,
 * same receipt id (issue 13 item 3: receipts to one device travel together;
 * a read before the delivery receipt went out makes one entry of kind 3).
 */
static int mb_receipt_merge(struct mbox *m, uint64_t seq, const uint8_t ref[static INNER_ID_LEN],
                            const uint8_t to[static DEVICE_ID_LEN], uint8_t kind, int *merged)
{
    struct buf eb, ob, enc;
    struct mb_envrec e;
    struct mb_outrec o;
    struct inner *in = NULL;
    uint8_t key[ENV_KEY_LEN];
    size_t i;
    int r, have_ob = 0, have_enc = 0;

    *merged = 0;
    mb_be64(key, seq);
    memcpy(key + 8, to, DEVICE_ID_LEN);
    if ((r = cstore_get(m->st, CS_ENVELOPES, key, ENV_KEY_LEN, &eb)) != 0)
        return r == VERR_UNKNOWN ? 0 : r;
    r = mb_envrec_parse(buf_data(&eb), buf_size(&eb), &e);
    buf_free(&eb);
    if (r != 0 || e.state != MBOX_ENV_QUEUED)
        return r;
    if ((in = malloc(sizeof(*in))) == NULL)
        return VERR_NOMEM;
    if ((r = cstore_get(m->st, CS_OUTBOX, key, 8, &ob)) != 0)
        goto out;
    have_ob = 1;
    if ((r = mb_outrec_parse(buf_data(&ob), buf_size(&ob), &o)) != 0 ||
        (r = inner_parse(o.inner, o.inner_len, in)) != 0)
        goto out;
    if (o.kind != MB_KIND_RECEIPT || in->type != INNER_TYPE_RECEIPT) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    for (i = 0; i < in->nref; i++)
        if (memcmp(in->ref_id[i], ref, INNER_ID_LEN) == 0)
            break;
    if (i == in->nref) {
        if (in->nref == INNER_RECEIPT_MAX) {
            r = 0; /* full: a new receipt */
            goto out;
        }
        memcpy(in->ref_id[i], ref, INNER_ID_LEN);
        in->receipt_kind[i] = 0;
        in->nref++;
    }
    in->receipt_kind[i] |= kind;
    if ((r = buf_init(&enc, INNER_RECEIPT_LEN_MAX, 0)) != 0)
        goto out;
    have_enc = 1;
    if ((r = inner_sign_encode(in, m->id.sign_sk, &enc)) != 0)
        goto out;
    o.inner = buf_data(&enc);
    o.inner_len = buf_size(&enc);
    if ((r = mb_outrec_put(m, seq, &o)) != 0)
        goto out;
    *merged = 1;
out:
    if (have_enc)
        buf_free(&enc);
    if (have_ob)
        buf_free(&ob);
    free(in);
    return r;
}

/* Queues a receipt for one device (in the open write transaction). */
int mb_queue_receipt(struct mbox *m, const uint8_t ref[static INNER_ID_LEN],
                     const uint8_t to[static DEVICE_ID_LEN], uint8_t kind, uint64_t now)
{
    struct inner *in = NULL;
    struct mb_outrec o;
    struct mb_envrec e;
    struct buf enc;
    char name[5 + 2 * DEVICE_ID_LEN + 1];
    uint8_t key[ENV_KEY_LEN];
    uint64_t seq = 0;
    int r, merged = 0;

    mb_rcpt_name(name, to);
    if ((r = mb_cfg_get_u64(m, name, &seq)) != 0)
        return r;
    if (seq != 0 && ((r = mb_receipt_merge(m, seq, ref, to, kind, &merged)) != 0 || merged))
        return r;
    if ((in = calloc(1, sizeof(*in))) == NULL)
        return VERR_NOMEM;
    in->type = INNER_TYPE_RECEIPT;
    randombytes_buf(in->id, INNER_ID_LEN);
    memcpy(in->sender, m->id.device_id, DEVICE_ID_LEN);
    memcpy(in->role, m->self.role, sizeof(in->role));
    in->time = now;
    in->nref = 1;
    memcpy(in->ref_id[0], ref, INNER_ID_LEN);
    in->receipt_kind[0] = kind;
    if ((r = buf_init(&enc, INNER_RECEIPT_LEN_MAX, 0)) != 0) {
        free(in);
        return r;
    }
    if ((r = inner_sign_encode(in, m->id.sign_sk, &enc)) != 0)
        goto out;
    o.kind = MB_KIND_RECEIPT;
    o.resolved = 1;
    o.created = now;
    o.inner = buf_data(&enc);
    o.inner_len = buf_size(&enc);
    if ((r = mb_next_seq(m, &seq)) != 0 || (r = mb_outrec_put(m, seq, &o)) != 0)
        goto out;
    memset(&e, 0, sizeof(e));
    e.state = MBOX_ENV_QUEUED;
    e.precedence = WIRE_ROUTINE;
    mb_be64(key, seq);
    memcpy(key + 8, to, DEVICE_ID_LEN);
    if ((r = mb_envrec_put(m, key, &e)) != 0)
        goto out;
    /* The next receipt for this device joins this one while it is queued. */
    r = mb_cfg_put_u64(m, name, seq);
out:
    buf_free(&enc);
    free(in);
    return r;
}

/* ---- sessions: up to MB_SESS_KEEP per peer, the first one sends ---- */

void mb_sessions_free(struct mb_sessions *ss)
{
    for (size_t i = 0; i < ss->n; i++)
        ratchet_session_free(ss->s[i]);
    memset(ss, 0, sizeof(*ss));
}

int mb_sessions_load(struct mbox *m, const uint8_t peer[static DEVICE_ID_LEN],
                     struct mb_sessions *ss)
{
    struct buf b, v, part;
    uint8_t ver, n;
    int r;

    memset(ss, 0, sizeof(*ss));
    if ((r = cstore_get(m->st, CS_SESSIONS, peer, DEVICE_ID_LEN, &b)) == VERR_UNKNOWN)
        return 0;
    if (r != 0)
        return r;
    buf_view(&v, buf_data(&b), buf_size(&b));
    if ((r = buf_get_u8(&v, &ver)) != 0 || (r = buf_get_u8(&v, &n)) != 0)
        goto out;
    if (ver != MB_REC_VERSION || n == 0 || n > MB_SESS_KEEP) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((r = buf_get_bytes(&v, ss->ek[i], X3DH_PK_LEN)) != 0 ||
            (r = buf_get_view32(&v, CSTORE_VALUE_MAX, &part)) != 0 ||
            (r = ratchet_session_parse(&ss->s[i], buf_data(&part), buf_size(&part))) != 0)
            goto out;
        ss->n = i + 1;
    }
    r = buf_expect_end(&v);
out:
    buf_free(&b);
    if (r != 0)
        mb_sessions_free(ss);
    return r;
}

int mb_sessions_put(struct mbox *m, const uint8_t peer[static DEVICE_ID_LEN],
                    const struct mb_sessions *ss)
{
    struct buf b, one;
    int r;

    if ((r = buf_init(&b, CSTORE_VALUE_MAX, BUF_SECRET)) != 0)
        return r;
    if ((r = buf_put_u8(&b, MB_REC_VERSION)) != 0 || (r = buf_put_u8(&b, (uint8_t)ss->n)) != 0)
        goto out;
    for (size_t i = 0; i < ss->n; i++) {
        if ((r = buf_init(&one, CSTORE_VALUE_MAX, BUF_SECRET)) != 0)
            goto out;
        if ((r = ratchet_session_encode(ss->s[i], &one)) == 0 &&
            (r = buf_put_bytes(&b, ss->ek[i], X3DH_PK_LEN)) == 0)
            r = buf_put_bytes32(&b, buf_data(&one), buf_size(&one));
        buf_free(&one);
        if (r != 0)
            goto out;
    }
    r = cstore_put(m->st, CS_SESSIONS, peer, DEVICE_ID_LEN, buf_data(&b), buf_size(&b));
out:
    buf_free(&b);
    return r;
}

/* Puts s first (the sending session); the oldest beyond MB_SESS_KEEP is dropped. */
void mb_sessions_push(struct mb_sessions *ss, struct ratchet_session *s,
                      const uint8_t ek[static X3DH_PK_LEN])
{
    if (ss->n == MB_SESS_KEEP) {
        ratchet_session_free(ss->s[MB_SESS_KEEP - 1]);
        ss->n--;
    }
    memmove(&ss->s[1], &ss->s[0], ss->n * sizeof(ss->s[0]));
    memmove(&ss->ek[1], &ss->ek[0], ss->n * sizeof(ss->ek[0]));
    ss->s[0] = s;
    memcpy(ss->ek[0], ek, X3DH_PK_LEN);
    ss->n++;
}

/* The session that last decrypted becomes the sending one (converges after a crossed set-up). */
void mb_sessions_front(struct mb_sessions *ss, size_t i)
{
    struct ratchet_session *s = ss->s[i];
    uint8_t ek[X3DH_PK_LEN];

    if (i == 0)
        return;
    memcpy(ek, ss->ek[i], X3DH_PK_LEN);
    memmove(&ss->s[1], &ss->s[0], i * sizeof(ss->s[0]));
    memmove(&ss->ek[1], &ss->ek[0], i * sizeof(ss->ek[0]));
    ss->s[0] = s;
    memcpy(ss->ek[0], ek, X3DH_PK_LEN);
}

int mb_inbox_put(struct mbox *m, uint64_t seq, uint8_t read, uint64_t received,
                 const uint8_t *cert, size_t cert_len, const uint8_t *inner, size_t len)
{
    uint8_t key[8];
    struct buf b;
    int r;

    mb_be64(key, seq);
    if ((r = buf_init(&b, 32 + cert_len + len, BUF_SECRET)) != 0)
        return r;
    if ((r = buf_put_u8(&b, MB_REC_VERSION)) == 0 && (r = buf_put_u8(&b, read)) == 0 &&
        (r = buf_put_u64(&b, received)) == 0 && (r = buf_put_bytes16(&b, cert, cert_len)) == 0 &&
        (r = buf_put_bytes32(&b, inner, len)) == 0)
        r = cstore_put(m->st, CS_INBOX, key, 8, buf_data(&b), buf_size(&b));
    buf_free(&b);
    return r;
}

