/* mbox_attach.c - attachments in the mailbox (see mbox_attach.h, PROTOCOL.md part 4 "Attachments"). */
#include "mbox_attach.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "mailbox.h"
#include "mbox_rec.h"
#include "text.h"

/* Records in CS_CONFIG, named by prefix and the attachment id in hex (PROTOCOL.md part 4). */
#define UP_PREFIX "att.up."
#define DL_PREFIX "att.dl."
enum {
    MBA_REC_VERSION = 1,    /* att.dl; att.up of version 1 (read only: no stored count) */
    MBA_UP_VERSION = 2,     /* att.up written now: with the stored count */
    NAME_LEN = 7 + 2 * ATTACH_ID_LEN, /* prefix + hex */
    /*
     * A download is named by the attachment id and the first DL_TAG_LEN bytes
     * of the sending device's id: another sender's message naming the same
     * id (an insider who saw it as a co-recipient) is another record, with
     * its own files, and cannot take the real one's place.
     */
    DL_TAG_LEN = 8,
    DL_NAME_LEN = NAME_LEN + 1 + 2 * DL_TAG_LEN,
    UP_NEW = 0,     /* queued with its message; recipients not fixed yet */
    UP_OPEN = 1,    /* recipients fixed (the OPEN's fields never change after) */
    UP_DONE = 2,    /* every chunk stored by the relay */
    UP_REFUSED = 3, /* the relay refused it for good (reason kept) */
    UP_LOST = 4,    /* its sealed copy in HOME/attach is gone: nothing to upload */
    DL_FETCH = 0,   /* chunks to fetch */
    DL_DONE = 1,    /* complete and ATTACH_DONE answered */
    DL_GONE = 2,    /* the relay no longer has it for this device */
    DL_BAD = 3,     /* the relay's chunks do not open under the signed key */
    UP_FIXED = 1 + 8 + 8 + 1 + 2 + 1 + 8 + 4 + 2,
};
_Static_assert(DL_NAME_LEN + 1 <= CSTORE_KEY_MAX, "record names fit a store key");

struct uprec {
    uint64_t seq, size, expiry;
    uint8_t state, precedence;
    uint16_t reason;
    uint32_t stored; /* chunks the relay confirmed (ATTACH_STATE, PUT_ACK), saved per piece */
    size_t n;
    uint8_t (*rcpt)[DEVICE_ID_LEN]; /* malloc'ed */
};

struct dlrec {
    uint64_t seq;
    uint8_t sender[DEVICE_ID_LEN];
    uint8_t state;
    struct attach_desc d;
};

static uint64_t mba_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int rec_name(char out[static NAME_LEN + 1], const char *prefix,
                    const uint8_t id[static ATTACH_ID_LEN])
{
    memcpy(out, prefix, 7);
    return text_hex_encode(out + 7, 2 * ATTACH_ID_LEN + 1, id, ATTACH_ID_LEN);
}

int mba_path(const struct mbox *m, const uint8_t id[static ATTACH_ID_LEN], const char *ext,
             char *out, size_t outsz)
{
    char hex[2 * ATTACH_ID_LEN + 1];
    int n, r;

    if ((r = text_hex_encode(hex, sizeof(hex), id, ATTACH_ID_LEN)) != 0)
        return r;
    n = snprintf(out, outsz, "%s/attach/%s.%s", m->home, hex, ext);
    return n < 0 || (size_t)n >= outsz ? VERR_TOO_LARGE : 0;
}

/* A received attachment's file: HOME/attach/<id hex>.<sender tag hex>.<ext>. */
static int dl_path(const struct mbox *m, const uint8_t id[static ATTACH_ID_LEN],
                   const uint8_t tag[static DL_TAG_LEN], const char *ext, char *out, size_t outsz)
{
    char hex[2 * ATTACH_ID_LEN + 1], th[2 * DL_TAG_LEN + 1];
    int n, r;

    if ((r = text_hex_encode(hex, sizeof(hex), id, ATTACH_ID_LEN)) != 0 ||
        (r = text_hex_encode(th, sizeof(th), tag, DL_TAG_LEN)) != 0)
        return r;
    n = snprintf(out, outsz, "%s/attach/%s.%s.%s", m->home, hex, th, ext);
    return n < 0 || (size_t)n >= outsz ? VERR_TOO_LARGE : 0;
}

static int dl_name(char out[static DL_NAME_LEN + 1], const uint8_t id[static ATTACH_ID_LEN],
                   const uint8_t tag[static DL_TAG_LEN])
{
    int r;

    if ((r = rec_name(out, DL_PREFIX, id)) != 0)
        return r;
    out[NAME_LEN] = '.';
    return text_hex_encode(out + NAME_LEN + 1, 2 * DL_TAG_LEN + 1, tag, DL_TAG_LEN);
}

/* ---- records ---- */

static int up_encode(const struct uprec *u, struct buf *b)
{
    int r;

    if ((r = buf_init(b, UP_FIXED + u->n * DEVICE_ID_LEN, 0)) != 0)
        return r;
    if ((r = buf_put_u8(b, MBA_UP_VERSION)) != 0 || (r = buf_put_u64(b, u->seq)) != 0 ||
        (r = buf_put_u64(b, u->size)) != 0 || (r = buf_put_u8(b, u->state)) != 0 ||
        (r = buf_put_u16(b, u->reason)) != 0 || (r = buf_put_u8(b, u->precedence)) != 0 ||
        (r = buf_put_u64(b, u->expiry)) != 0 || (r = buf_put_u32(b, u->stored)) != 0 ||
        (r = buf_put_u16(b, (uint16_t)u->n)) != 0)
        goto out;
    for (size_t i = 0; i < u->n; i++)
        if ((r = buf_put_bytes(b, u->rcpt[i], DEVICE_ID_LEN)) != 0)
            goto out;
    r = 0;
out:
    if (r != 0)
        buf_free(b);
    return r;
}

static int up_parse(const uint8_t *p, size_t len, struct uprec *u)
{
    struct buf b;
    uint8_t v;
    uint16_t n;
    int r;

    memset(u, 0, sizeof(*u));
    buf_view(&b, p, len);
    if ((r = buf_get_u8(&b, &v)) != 0)
        return r;
    if (v != MBA_REC_VERSION && v != MBA_UP_VERSION)
        return VERR_BAD_VERSION;
    if ((r = buf_get_u64(&b, &u->seq)) != 0 || (r = buf_get_u64(&b, &u->size)) != 0 ||
        (r = buf_get_u8(&b, &u->state)) != 0 || (r = buf_get_u16(&b, &u->reason)) != 0 ||
        (r = buf_get_u8(&b, &u->precedence)) != 0 || (r = buf_get_u64(&b, &u->expiry)) != 0 ||
        (v == MBA_UP_VERSION && (r = buf_get_u32(&b, &u->stored)) != 0) ||
        (r = buf_get_u16(&b, &n)) != 0)
        return r;
    if (u->state > UP_LOST || u->precedence >= WIRE_PRECEDENCE_COUNT ||
        attach_chunk_count(u->size) == 0 || u->stored > attach_chunk_count(u->size) ||
        n > MBOX_MAX_FANOUT || buf_left(&b) != (size_t)n * DEVICE_ID_LEN)
        return VERR_BAD_FORMAT;
    /* version 1 kept no count: a done upload had every chunk stored */
    if (v == MBA_REC_VERSION && u->state == UP_DONE)
        u->stored = attach_chunk_count(u->size);
    if (n > 0) {
        if ((u->rcpt = malloc((size_t)n * DEVICE_ID_LEN)) == NULL)
            return VERR_NOMEM;
        if ((r = buf_get_bytes(&b, u->rcpt[0], (size_t)n * DEVICE_ID_LEN)) != 0) {
            free(u->rcpt);
            u->rcpt = NULL;
            return r;
        }
    }
    u->n = n;
    return 0;
}

static int up_put(struct mbox *m, const uint8_t id[static ATTACH_ID_LEN], const struct uprec *u)
{
    char name[NAME_LEN + 1];
    struct buf b;
    int r;

    if ((r = rec_name(name, UP_PREFIX, id)) != 0 || (r = up_encode(u, &b)) != 0)
        return r;
    r = mb_cfg_put(m, name, buf_data(&b), buf_size(&b));
    buf_free(&b);
    return r;
}

static int up_get(struct mbox *m, const uint8_t id[static ATTACH_ID_LEN], struct uprec *u)
{
    char name[NAME_LEN + 1];
    struct buf b;
    int r;

    if ((r = rec_name(name, UP_PREFIX, id)) != 0 || (r = mb_cfg_get(m, name, &b)) != 0)
        return r;
    r = up_parse(buf_data(&b), buf_size(&b), u);
    buf_free(&b);
    return r;
}

static int dl_put(struct mbox *m, const struct dlrec *x)
{
    char name[DL_NAME_LEN + 1];
    struct buf b;
    int r;

    if ((r = dl_name(name, x->d.id, x->sender)) != 0)
        return r;
    if ((r = buf_init(&b, 1 + 8 + DEVICE_ID_LEN + 1 + ATTACH_DESC_MAX, BUF_SECRET)) != 0)
        return r;
    if ((r = buf_put_u8(&b, MBA_REC_VERSION)) == 0 && (r = buf_put_u64(&b, x->seq)) == 0 &&
        (r = buf_put_bytes(&b, x->sender, DEVICE_ID_LEN)) == 0 &&
        (r = buf_put_u8(&b, x->state)) == 0 && (r = attach_desc_encode(&x->d, &b)) == 0)
        r = mb_cfg_put(m, name, buf_data(&b), buf_size(&b));
    buf_free(&b);
    return r;
}

static int dl_parse(const uint8_t *p, size_t len, struct dlrec *x)
{
    struct buf b;
    uint8_t v;
    int r;

    memset(x, 0, sizeof(*x));
    buf_view(&b, p, len);
    if ((r = buf_get_u8(&b, &v)) != 0)
        return r;
    if (v != MBA_REC_VERSION)
        return VERR_BAD_VERSION;
    if ((r = buf_get_u64(&b, &x->seq)) != 0 ||
        (r = buf_get_bytes(&b, x->sender, DEVICE_ID_LEN)) != 0 ||
        (r = buf_get_u8(&b, &x->state)) != 0 || (r = attach_desc_parse(&b, &x->d)) != 0)
        return r;
    if (x->state > DL_BAD || (r = buf_expect_end(&b)) != 0) {
        attach_desc_wipe(&x->d);
        return r != 0 ? r : VERR_BAD_FORMAT;
    }
    return 0;
}

static int dl_get(struct mbox *m, const uint8_t id[static ATTACH_ID_LEN],
                  const uint8_t tag[static DL_TAG_LEN], struct dlrec *x)
{
    char name[DL_NAME_LEN + 1];
    struct buf b;
    int r;

    memset(x, 0, sizeof(*x));
    if ((r = dl_name(name, id, tag)) != 0 || (r = mb_cfg_get(m, name, &b)) != 0)
        return r;
    r = dl_parse(buf_data(&b), buf_size(&b), x);
    buf_free(&b);
    if (r == 0 && (memcmp(x->d.id, id, ATTACH_ID_LEN) != 0 ||
                   memcmp(x->sender, tag, DL_TAG_LEN) != 0)) {
        attach_desc_wipe(&x->d);
        r = VERR_BAD_FORMAT; /* a record under another's name */
    }
    return r;
}

/* One record change, committed on its own. */
static int commit_up(struct mbox *m, const uint8_t id[static ATTACH_ID_LEN], const struct uprec *u)
{
    int r;

    if ((r = cstore_begin(m->st, 1)) != 0)
        return r;
    if ((r = up_put(m, id, u)) != 0 || (r = cstore_commit(m->st)) != 0) {
        cstore_abort(m->st);
        return r;
    }
    return 0;
}

/* The relay's stored count, kept for `outbox` (one commit per piece, not per chunk). */
static int up_note_stored(struct mbox *m, const uint8_t id[static ATTACH_ID_LEN], struct uprec *u,
                          uint32_t stored)
{
    if (u->stored == stored)
        return 0;
    u->stored = stored;
    return commit_up(m, id, u);
}

static int commit_dl(struct mbox *m, const struct dlrec *x)
{
    int r;

    if ((r = cstore_begin(m->st, 1)) != 0)
        return r;
    if ((r = dl_put(m, x)) != 0 || (r = cstore_commit(m->st)) != 0) {
        cstore_abort(m->st);
        return r;
    }
    return 0;
}

/* A download's record removed, committed on its own (it is finished: PROTOCOL.md part 4). */
static int drop_dl(struct mbox *m, const uint8_t id[static ATTACH_ID_LEN],
                   const uint8_t tag[static DL_TAG_LEN])
{
    char name[DL_NAME_LEN + 1];
    int r;

    if ((r = dl_name(name, id, tag)) != 0 || (r = cstore_begin(m->st, 1)) != 0)
        return r;
    r = cstore_del(m->st, CS_CONFIG, (const uint8_t *)name, strlen(name));
    if (r == VERR_UNKNOWN)
        r = 0; /* removed before a crash, or by another process */
    if (r != 0 || (r = cstore_commit(m->st)) != 0) {
        cstore_abort(m->st);
        return r;
    }
    return 0;
}

/* The ids of the records of one kind (names of CS_CONFIG starting with prefix). */
struct idlist {
    const char *prefix;
    size_t name_len; /* NAME_LEN, or DL_NAME_LEN with a sender tag */
    uint8_t (*id)[ATTACH_ID_LEN];
    uint8_t (*tag)[DL_TAG_LEN];
    size_t n, cap;
};

static int each_rec(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct idlist *l = ctx;
    char hex[2 * ATTACH_ID_LEN + 1];
    (void)v;
    (void)vl;

    if (kl != l->name_len || memcmp(k, l->prefix, 7) != 0)
        return 0;
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 16;
        void *p = realloc(l->id, nc * sizeof(*l->id)), *q;
        if (p == NULL)
            return VERR_NOMEM;
        l->id = p;
        if ((q = realloc(l->tag, nc * sizeof(*l->tag))) == NULL)
            return VERR_NOMEM;
        l->tag = q;
        l->cap = nc;
    }
    memcpy(hex, k + 7, 2 * ATTACH_ID_LEN);
    hex[2 * ATTACH_ID_LEN] = '\0';
    if (text_hex_decode(l->id[l->n], ATTACH_ID_LEN, hex) != 0)
        return VERR_BAD_FORMAT;
    memset(l->tag[l->n], 0, DL_TAG_LEN);
    if (l->name_len == DL_NAME_LEN) {
        char th[2 * DL_TAG_LEN + 1];
        memcpy(th, k + NAME_LEN + 1, 2 * DL_TAG_LEN);
        th[2 * DL_TAG_LEN] = '\0';
        if (k[NAME_LEN] != '.' || text_hex_decode(l->tag[l->n], DL_TAG_LEN, th) != 0)
            return VERR_BAD_FORMAT;
    }
    l->n++;
    return 0;
}

static void idlist_free(struct idlist *l)
{
    free(l->id);
    free(l->tag);
}

static int list_recs(struct mbox *m, const char *prefix, struct idlist *l)
{
    memset(l, 0, sizeof(*l));
    l->prefix = prefix;
    l->name_len = strcmp(prefix, DL_PREFIX) == 0 ? DL_NAME_LEN : NAME_LEN;
    return cstore_each(m->st, CS_CONFIG, each_rec, l);
}

/* ---- send time ---- */

int mba_seal(struct mbox *m, const char *path, struct attach_desc *d, attach_progress_fn progress,
             void *pctx)
{
    char dir[4200], ct[4300];
    const char *base = strrchr(path, '/');
    int r;

    memset(d, 0, sizeof(*d));
    base = base != NULL ? base + 1 : path;
    if (!attach_valid_name(base))
        return VERR_BAD_FORMAT;
    memcpy(d->name, base, strlen(base) + 1);
    {
        const char *t = attach_guess_type(base);
        memcpy(d->type, t, strlen(t) + 1);
    }
    randombytes_buf(d->id, ATTACH_ID_LEN);
    randombytes_buf(d->key, ATTACH_KEY_LEN);
    if ((r = file_join(dir, sizeof(dir), m->home, "attach")) != 0 ||
        (r = file_mkdir_private(dir)) != 0 || (r = mba_path(m, d->id, "ct", ct, sizeof(ct))) != 0)
        goto out;
    r = attach_seal_file(path, 0, ct, d, progress, pctx);
out:
    if (r != 0)
        attach_desc_wipe(d);
    return r;
}

void mba_discard(struct mbox *m, const struct attach_desc *d)
{
    char ct[4300];

    if (mba_path(m, d->id, "ct", ct, sizeof(ct)) == 0)
        (void)unlink(ct);
}

/* The descriptors of in (a type 1 inner message) into d (ATTACH_MAX). */
static int inner_descs(const struct inner *in, struct attach_desc *d, size_t *n)
{
    struct buf v;
    int r;

    *n = 0;
    if (in->type != INNER_TYPE_MESSAGE || in->attach_section_len == 0)
        return 0;
    buf_view(&v, in->attach_section, in->attach_section_len);
    if ((r = attach_section_parse(&v, d, n)) != 0)
        return r;
    return buf_expect_end(&v);
}

int mba_queue_upload(struct mbox *m, uint64_t outbox_seq, const struct inner *in)
{
    struct attach_desc d[ATTACH_MAX];
    size_t n = 0;
    int r;

    if ((r = inner_descs(in, d, &n)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct uprec u = {0};
        u.seq = outbox_seq;
        u.size = d[i].size;
        u.state = UP_NEW;
        u.precedence = in->precedence;
        /* the same time to live as the message's envelopes */
        u.expiry = in->time + mbox_ttl(in->precedence);
        if ((r = up_put(m, d[i].id, &u)) != 0)
            goto out;
    }
    r = 0;
out:
    for (size_t i = 0; i < n; i++)
        attach_desc_wipe(&d[i]);
    return r;
}

int mba_note_received(struct mbox *m, uint64_t seq, const uint8_t sender[static DEVICE_ID_LEN],
                      const struct inner *in)
{
    struct attach_desc d[ATTACH_MAX];
    struct dlrec x;
    size_t n = 0;
    int r;

    memset(&x, 0, sizeof(x));
    if ((r = inner_descs(in, d, &n)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct dlrec old;
        /* a second message naming an id we already fetch does not replace its key */
        if ((r = dl_get(m, d[i].id, sender, &old)) == 0) {
            attach_desc_wipe(&old.d);
            continue;
        }
        if (r != VERR_UNKNOWN)
            goto out;
        x.seq = seq;
        memcpy(x.sender, sender, DEVICE_ID_LEN);
        x.state = DL_FETCH;
        x.d = d[i];
        if ((r = dl_put(m, &x)) != 0)
            goto out;
    }
    r = 0;
out:
    attach_desc_wipe(&x.d);
    for (size_t i = 0; i < n; i++)
        attach_desc_wipe(&d[i]);
    return r;
}

/* ---- upload ---- */

struct envscan {
    const struct mbox *m;
    uint8_t seq[8];
    size_t unanswered; /* envelopes not yet accepted or refused by the relay */
    size_t waiting;    /* envelopes waiting for prekeys or a directory */
    size_t final;      /* envelopes expired or refused */
    size_t n;
    uint8_t (*dev)[DEVICE_ID_LEN];
};

static int each_env_of(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct envscan *es = ctx;
    struct mb_envrec e;
    const struct cert *c;

    if (kl != ENV_KEY_LEN || memcmp(k, es->seq, 8) != 0)
        return 0;
    if (mb_envrec_parse(v, vl, &e) != 0)
        return VERR_BAD_FORMAT;
    switch (e.state) {
    case MBOX_ENV_QUEUED:
    case MBOX_ENV_SENDING:
        es->unanswered++;
        return 0;
    case MBOX_ENV_ACCEPTED:
    case MBOX_ENV_DELIVERED:
    case MBOX_ENV_READ:
        break;
    case MBOX_ENV_WAIT_PREKEYS:
    case MBOX_ENV_WAIT_DIR:
        es->waiting++;
        return 0;
    default:
        es->final++;
        return 0;
    }
    /* This person's other devices keep the message as sent, without its attachments. */
    c = es->m->dir != NULL ? dir_find_device(es->m->dir, k + 8) : NULL;
    if (c != NULL && sodium_memcmp(c->person_id, es->m->self.person_id, PERSON_ID_LEN) == 0)
        return 0;
    if (es->n == MBOX_MAX_FANOUT)
        return VERR_LIMIT;
    memcpy(es->dev[es->n++], k + 8, DEVICE_ID_LEN);
    return 0;
}

/* Fixes the recipients of an UP_NEW record once every envelope has its answer. 1: ready. */
static int up_fix_recipients(struct mbox *m, const uint8_t id[static ATTACH_ID_LEN],
                             struct uprec *u)
{
    struct envscan es;
    int r;

    memset(&es, 0, sizeof(es));
    es.m = m;
    mb_be64(es.seq, u->seq);
    if ((es.dev = malloc((size_t)MBOX_MAX_FANOUT * DEVICE_ID_LEN)) == NULL)
        return VERR_NOMEM;
    if ((r = cstore_each(m->st, CS_ENVELOPES, each_env_of, &es)) != 0)
        goto out;
    /*
     * Not yet: the message goes first, and the recipients are the devices
     * that accepted it (a device still waiting for prekeys then does not get
     * the attachment: PROTOCOL.md part 4 "Attachments").
     */
    if (es.unanswered > 0 || (es.n == 0 && (es.final == 0 || es.waiting > 0))) {
        r = 0;
        goto out;
    }
    if (es.n == 0) {
        u->state = UP_REFUSED; /* no device took the message */
        u->reason = WIRE_R_UNKNOWN_DEVICE;
    } else {
        free(u->rcpt);
        u->rcpt = es.dev;
        es.dev = NULL; /* owned by u now */
        u->n = es.n;
        u->state = UP_OPEN;
    }
    if ((r = commit_up(m, id, u)) != 0)
        goto out;
    r = u->state == UP_OPEN ? 1 : 0;
out:
    free(es.dev);
    return r;
}

static int read_chunk(int fd, uint32_t i, uint8_t *p, size_t n)
{
    size_t got = 0;
    off_t off = (off_t)i * ATTACH_CHUNK_CT;

    while (got < n) {
        ssize_t k = pread(fd, p + got, n - got, off + (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return VERR_IO;
        got += (size_t)k;
    }
    return 0;
}

static size_t chunk_ct_len(uint64_t size, uint32_t i)
{
    return attach_chunk_plain_len(size, i) + ATTACH_TAG_LEN;
}

/* Waits for the next ATTACH_* message about att of one of the types a/b. */
static int recv_for(struct mba_link *l, const uint8_t att[static ATTACH_ID_LEN], uint8_t a,
                    uint8_t b, struct buf *raw, struct wire_msg *wm)
{
    int r;

    for (;;) {
        if ((r = l->recv(l->ctx, raw, wm)) != 0)
            return r;
        if ((wm->type == a || wm->type == b) &&
            memcmp(wm->u.attach.att, att, ATTACH_ID_LEN) == 0)
            return 0;
        buf_free(raw); /* a late answer about another attachment: nothing to do */
    }
}

static int send_attach(struct mba_link *l, uint8_t type, const struct wire_attach *a)
{
    struct buf msg;
    int r;

    if ((r = buf_init(&msg, 64 + ATTACH_CHUNK_CT + (size_t)a->n_rcpt * DEVICE_ID_LEN, 0)) != 0)
        return r;
    if ((r = wire_put_attach(&msg, type, a)) == 0)
        r = l->send(l->ctx, &msg);
    buf_free(&msg);
    return r;
}

/* A reason after which the same OPEN would be refused again. */
static int reason_final(uint16_t reason)
{
    switch (reason) {
    case WIRE_R_QUEUE_FULL:
    case WIRE_R_RATE_LIMITED:
    case WIRE_R_STORAGE_FULL:
    case WIRE_R_STORAGE_ERROR:
    case WIRE_R_SHUTTING_DOWN:
        return 0;
    default:
        return 1;
    }
}

static int upload_one(struct mbox *m, struct mba_link *l, const uint8_t id[static ATTACH_ID_LEN],
                      struct uprec *u, struct mba_stats *st, int *moved)
{
    struct wire_attach a;
    struct buf raw;
    struct wire_msg wm;
    uint8_t *ct = NULL;
    char path[4300];
    uint32_t c = attach_chunk_count(u->size), acked = u->stored, next;
    unsigned window = MBA_WINDOW_START;
    uint64_t sent_ms[MBA_WINDOW_MAX];
    uint64_t ct_size = attach_ct_size(u->size);
    int fd = -1, r;

    if (u->n == 0 || u->rcpt == NULL)
        return VERR_BAD_FORMAT; /* an open record names its recipients */
    if ((r = mba_path(m, id, "ct", path, sizeof(path))) != 0)
        return r;
    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        if (errno != ENOENT)
            return VERR_IO;
        /* the sealed copy was deleted: reported once, never asked of the relay */
        u->state = UP_LOST;
        st->lost++;
        *moved = 1;
        return commit_up(m, id, u);
    }
    if ((ct = malloc(ATTACH_CHUNK_CT)) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    /* OPEN: the same fields every time, so a second OPEN is a resume (PROTOCOL.md part 2). */
    memset(&a, 0, sizeof(a));
    memcpy(a.att, id, ATTACH_ID_LEN);
    a.ct_size = ct_size;
    a.c = c;
    a.precedence = u->precedence;
    a.expiry = u->expiry;
    a.n_rcpt = u->n;
    a.rcpt = u->rcpt[0];
    if ((r = send_attach(l, WIRE_ATTACH_OPEN, &a)) != 0 ||
        (r = recv_for(l, id, WIRE_ATTACH_STATE, WIRE_ATTACH_STATE, &raw, &wm)) != 0)
        goto out;
    if (wm.u.attach.reason != WIRE_R_OK) {
        uint16_t reason = wm.u.attach.reason;
        buf_free(&raw);
        if (!reason_final(reason)) {
            st->up_pending++;
            l->up_retry_at_ms = mba_ms() + MBA_RETRY_MS; /* `run`: not again at once */
            r = 0;
            goto out;
        }
        u->state = UP_REFUSED;
        u->reason = reason;
        st->refused++;
        st->refused_reason = reason;
        *moved = 1;
        r = commit_up(m, id, u);
        goto out;
    }
    if (wm.u.attach.c != c || wm.u.attach.stored > c) {
        buf_free(&raw);
        r = VERR_PROTOCOL;
        goto out;
    }
    acked = next = wm.u.attach.stored;
    buf_free(&raw);
    if ((r = up_note_stored(m, id, u, acked)) != 0)
        goto out;
    /*
     * A resume: the meter starts where the relay is, and says complete when
     * it already holds every chunk (a cut took only the last PUT_ACK).
     */
    if (acked > 0 && l->progress != NULL)
        l->progress(l->pctx, 1, acked == c ? ct_size : (uint64_t)acked * ATTACH_CHUNK_CT,
                    ct_size);
    while (acked < c) {
        uint64_t t0 = mba_ms();
        int halved = 0;
        if (l->stop != NULL && *l->stop) {
            st->up_pending++;
            r = 0;
            goto out;
        }
        /*
         * One piece of about MBA_PIECE_MS: PUTs slide within the window (a
         * new one as each PUT_ACK comes back, in order), then the piece
         * drains so the sync can send what was queued meanwhile.
         */
        for (;;) {
            uint16_t reason;
            uint32_t i;
            uint64_t now = mba_ms(), delay;
            while (next < c && next - acked < window && now - t0 < MBA_PIECE_MS) {
                size_t n = chunk_ct_len(u->size, next);
                if ((r = read_chunk(fd, next, ct, n)) != 0)
                    goto out;
                memset(&a, 0, sizeof(a));
                memcpy(a.att, id, ATTACH_ID_LEN);
                a.i = next;
                a.ct = ct;
                a.ct_len = (uint32_t)n;
                if ((r = send_attach(l, WIRE_ATTACH_PUT, &a)) != 0)
                    goto out;
                sent_ms[next % MBA_WINDOW_MAX] = now;
                next++;
            }
            if (acked == next)
                break; /* the piece is drained */
            if ((r = recv_for(l, id, WIRE_ATTACH_PUT_ACK, WIRE_ATTACH_PUT_ACK, &raw, &wm)) != 0)
                goto out;
            reason = wm.u.attach.reason;
            i = wm.u.attach.i;
            buf_free(&raw);
            if (reason != WIRE_R_OK) {
                /* refused: the next connection opens again and resumes from `stored` */
                if (reason_final(reason)) {
                    u->state = UP_REFUSED;
                    u->reason = reason;
                    st->refused++;
                    st->refused_reason = reason;
                    r = commit_up(m, id, u);
                } else {
                    st->up_pending++;
                    l->up_retry_at_ms = mba_ms() + MBA_RETRY_MS;
                    r = 0;
                }
                goto out;
            }
            if (i != acked) {
                r = VERR_PROTOCOL; /* PUT_ACKs come in order (PROTOCOL.md part 2) */
                goto out;
            }
            /*
             * The window grows like the SUBMIT pieces: by one chunk per PUT_ACK
             * that came back within MBA_TIMELY_MS of its PUT (so about doubling
             * per round trip), halved once a piece when one took over twice that.
             */
            delay = mba_ms() - sent_ms[acked % MBA_WINDOW_MAX];
            if (delay <= MBA_TIMELY_MS && window < MBA_WINDOW_MAX)
                window++;
            else if (delay > 2 * MBA_TIMELY_MS && window > 1 && !halved) {
                window /= 2;
                halved = 1;
            }
            acked++;
            *moved = 1;
            if (l->progress != NULL)
                l->progress(l->pctx, 1,
                            acked == c ? ct_size : (uint64_t)acked * ATTACH_CHUNK_CT, ct_size);
        }
        if (acked < c && ((r = up_note_stored(m, id, u, acked)) != 0 ||
                          (r = l->between(l->ctx)) != 0))
            goto out;
    }
    /*
     * Done: the record keeps only what `outbox` says ("uploaded"); the
     * recipient list, which only a resumed OPEN needed, goes (PROTOCOL.md
     * part 4 "What the client stores"). The sealed copy stays for `save`.
     */
    u->state = UP_DONE;
    u->stored = c;
    free(u->rcpt);
    u->rcpt = NULL;
    u->n = 0;
    st->uploaded++;
    r = commit_up(m, id, u);
out:
    /* a cut or a stop: what the relay confirmed so far, for `outbox` */
    if (u->state == UP_OPEN && acked > u->stored) {
        int r2 = up_note_stored(m, id, u, acked);
        if (r == 0)
            r = r2;
    }
    if (fd >= 0)
        close(fd);
    free(ct);
    return r;
}

static int upload_all(struct mbox *m, struct mba_link *l, struct mba_stats *st, int *moved)
{
    struct idlist ids;
    int r;

    if (l->up_retry_at_ms != 0 && mba_ms() < l->up_retry_at_ms) {
        st->up_pending = l->up_pending; /* as the last look found them */
        return 0;
    }
    l->up_retry_at_ms = 0;
    if ((r = list_recs(m, UP_PREFIX, &ids)) != 0)
        goto out;
    for (size_t i = 0; i < ids.n; i++) {
        struct uprec u;
        if ((r = up_get(m, ids.id[i], &u)) != 0)
            goto out;
        if (u.state == UP_NEW) {
            if ((r = up_fix_recipients(m, ids.id[i], &u)) < 0) {
                free(u.rcpt);
                goto out;
            }
            /* still UP_NEW: the message itself waits (for prekeys, a directory) */
        }
        r = 0;
        if (u.state == UP_OPEN)
            r = upload_one(m, l, ids.id[i], &u, st, moved);
        free(u.rcpt);
        if (r != 0)
            goto out;
    }
    r = 0;
out:
    l->up_pending = st->up_pending;
    idlist_free(&ids);
    return r;
}

/* ---- download ---- */

static int write_chunk_durably(int fd, uint32_t i, const uint8_t *p, size_t n)
{
    size_t done = 0;
    off_t off = (off_t)i * ATTACH_CHUNK_CT;

    while (done < n) {
        ssize_t k = pwrite(fd, p + done, n - done, off + (off_t)done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return errno == ENOSPC ? VERR_NOSPACE : VERR_IO;
        done += (size_t)k;
    }
    /* acknowledged only once on disk (PROTOCOL.md part 4 "Attachments") */
    return fdatasync(fd) == 0 ? 0 : VERR_IO;
}

static int fsync_attach_dir(const struct mbox *m)
{
    char dir[4200];
    int fd, r = 0;

    if (file_join(dir, sizeof(dir), m->home, "attach") != 0)
        return VERR_TOO_LARGE;
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return VERR_IO;
    if (fsync(fd) != 0)
        r = VERR_IO;
    close(fd);
    return r;
}

/* Every chunk held: .part becomes .ct, then DONE; the record says done once the relay answered. */
static int download_finish(struct mbox *m, struct mba_link *l, struct dlrec *x, int *moved)
{
    struct wire_attach a;
    struct buf raw;
    struct wire_msg wm;
    char part[4300], ct[4300];
    int r;

    if ((r = dl_path(m, x->d.id, x->sender, "part", part, sizeof(part))) != 0 ||
        (r = dl_path(m, x->d.id, x->sender, "ct", ct, sizeof(ct))) != 0)
        return r;
    if (file_exists(part)) {
        if (rename(part, ct) != 0)
            return VERR_IO;
        if ((r = fsync_attach_dir(m)) != 0)
            return r;
    }
    memset(&a, 0, sizeof(a));
    memcpy(a.att, x->d.id, ATTACH_ID_LEN);
    if ((r = send_attach(l, WIRE_ATTACH_DONE, &a)) != 0 ||
        (r = recv_for(l, x->d.id, WIRE_ATTACH_STATE, WIRE_ATTACH_STATE, &raw, &wm)) != 0)
        return r;
    buf_free(&raw);
    /*
     * reason 0, or attachment_unknown for a DONE the relay had already taken:
     * done either way. The record goes: `read` and `save` need only the .ct
     * and the message. A crash before this commit sends DONE again next time.
     */
    *moved = 1;
    return drop_dl(m, x->d.id, x->sender);
}

/*
 * A download that can no longer complete (gone from the relay, or its chunks
 * do not open): the state is committed first, then the partial file goes, so
 * a crash between the two leaves a .part the start-up sweep removes.
 */
static int download_abandon(struct mbox *m, struct dlrec *x, uint8_t state)
{
    char part[4300];
    int r;

    x->state = state;
    if ((r = commit_dl(m, x)) != 0 ||
        (r = dl_path(m, x->d.id, x->sender, "part", part, sizeof(part))) != 0)
        return r;
    if (unlink(part) != 0)
        return errno == ENOENT ? 0 : VERR_IO;
    return fsync_attach_dir(m);
}

/*
 * ATTACH_STATE attachment_unknown for a download holding no chunk yet, of a
 * message still within its time to live: the sender has most likely not
 * opened the upload yet (it submits the message first, PROTOCOL.md part 2
 * "Attachments"; `run` and the desk fetch as soon as the message lands), so
 * it is asked again later, not given up. 1 when it is gone for good.
 */
static int dl_unknown_is_gone(struct mbox *m, const struct dlrec *x, uint32_t held)
{
    struct mbox_msg msg;
    int gone = 1;

    if (held > 0)
        return 1; /* it was there: expired since (or done) */
    memset(&msg, 0, sizeof(msg));
    if (mb_inbox_msg(m, x->seq, &msg) == 0)
        gone = (uint64_t)time(NULL) >= msg.time + mbox_ttl(msg.precedence);
    mbox_msg_clear(&msg);
    return gone;
}

static int download_one(struct mbox *m, struct mba_link *l, struct dlrec *x, struct mba_stats *st,
                        int *moved)
{
    struct wire_attach a;
    struct buf raw;
    struct wire_msg wm;
    uint8_t *pt = NULL;
    char part[4300], ct[4300];
    uint32_t c = attach_chunk_count(x->d.size), held = 0;
    uint64_t total = attach_ct_size(x->d.size);
    int fd = -1, r;

    if ((r = dl_path(m, x->d.id, x->sender, "part", part, sizeof(part))) != 0 ||
        (r = dl_path(m, x->d.id, x->sender, "ct", ct, sizeof(ct))) != 0)
        return r;
    if (file_exists(ct)) {
        held = c;
    } else {
        char dir[4200];
        if ((r = file_join(dir, sizeof(dir), m->home, "attach")) != 0 ||
            (r = file_mkdir_private(dir)) != 0 || (r = attach_trim(part, &x->d, &held)) != 0)
            return r;
    }
    if (held == c) {
        r = download_finish(m, l, x, moved);
        if (r == 0)
            st->downloaded++;
        return r;
    }
    if ((pt = sodium_malloc(ATTACH_CHUNK_PLAIN)) == NULL)
        return VERR_NOMEM;
    if ((fd = open(part, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
        r = VERR_IO;
        goto out;
    }
    memset(&a, 0, sizeof(a));
    memcpy(a.att, x->d.id, ATTACH_ID_LEN);
    a.i = held; /* from: the first chunk not held */
    if ((r = send_attach(l, WIRE_ATTACH_GET, &a)) != 0)
        goto out;
    while (held < c) {
        const struct wire_attach *w;
        if ((r = recv_for(l, x->d.id, WIRE_ATTACH_CHUNK, WIRE_ATTACH_STATE, &raw, &wm)) != 0)
            goto out;
        w = &wm.u.attach;
        if (wm.type == WIRE_ATTACH_STATE) {
            uint16_t reason = w->reason;
            buf_free(&raw);
            if (reason == WIRE_R_ATTACHMENT_UNKNOWN && dl_unknown_is_gone(m, x, held)) {
                /* expired, or this device is not a recipient: said once, by this sync */
                st->gone++;
                *moved = 1;
                r = download_abandon(m, x, DL_GONE);
            } else {
                st->down_waiting++; /* the uploader has not finished: asked again later */
                l->retry_at_ms = mba_ms() + MBA_RETRY_MS;
                r = 0;
            }
            goto out;
        }
        /* The chunk must be the next one and open under the signed descriptor's key. */
        if (w->i != held || w->c != c ||
            attach_chunk_open(&x->d, w->i, w->ct, w->ct_len, pt) != 0) {
            buf_free(&raw);
            st->bad_chunks++;
            /*
             * Damaged or substituted (another sender's message naming this id,
             * or a relay's doing): never fetched again; `read` says so. Only
             * the sender can mend it, by sending the file again.
             */
            *moved = 1;
            if ((r = download_abandon(m, x, DL_BAD)) == 0)
                r = VERR_DECRYPT;
            goto out;
        }
        r = write_chunk_durably(fd, held, w->ct, w->ct_len);
        buf_free(&raw);
        if (r != 0)
            goto out;
        memset(&a, 0, sizeof(a));
        memcpy(a.att, x->d.id, ATTACH_ID_LEN);
        a.i = held;
        if ((r = send_attach(l, WIRE_ATTACH_CHUNK_ACK, &a)) != 0)
            goto out;
        held++;
        *moved = 1;
        if (l->progress != NULL)
            l->progress(l->pctx, 0, held == c ? total : (uint64_t)held * ATTACH_CHUNK_CT, total);
    }
    close(fd);
    fd = -1;
    if ((r = download_finish(m, l, x, moved)) == 0)
        st->downloaded++;
out:
    if (fd >= 0)
        close(fd);
    sodium_free(pt);
    return r;
}

static int download_all(struct mbox *m, struct mba_link *l, struct mba_stats *st, int *moved)
{
    struct idlist ids;
    int r;

    if (l->retry_at_ms != 0 && mba_ms() < l->retry_at_ms) {
        st->down_waiting = l->down_waiting; /* as the last look found them */
        return 0;
    }
    l->retry_at_ms = 0;
    if ((r = list_recs(m, DL_PREFIX, &ids)) != 0)
        goto out;
    for (size_t i = 0; i < ids.n; i++) {
        struct dlrec x;
        if (l->stop != NULL && *l->stop)
            break;
        if ((r = dl_get(m, ids.id[i], ids.tag[i], &x)) != 0)
            goto out;
        r = x.state == DL_FETCH ? download_one(m, l, &x, st, moved) : 0;
        attach_desc_wipe(&x.d);
        /*
         * A relay sending a chunk that does not open: counted (stats.bad_chunks),
         * and nothing more is fetched on this connection, whose chunks in flight
         * will never be acknowledged (the sync ends it); the download is marked
         * bad, the others go on at the next connection.
         */
        if (r == VERR_DECRYPT) {
            r = 0;
            break;
        }
        if (r != 0)
            goto out;
        if ((r = l->between(l->ctx)) != 0)
            goto out;
    }
    r = 0;
out:
    l->down_waiting = st->down_waiting;
    idlist_free(&ids);
    return r;
}

int mba_sync(struct mbox *m, struct mba_link *l, struct mba_stats *st, int *moved)
{
    int r;

    *moved = 0;
    if ((r = upload_all(m, l, st, moved)) != 0)
        return r;
    return download_all(m, l, st, moved);
}

/* ---- reading and saving ---- */

/* 1 if sender is this device: its own sealed copy, HOME/attach/<id hex>.ct. */
static int is_self(const struct mbox *m, const uint8_t sender[static DEVICE_ID_LEN])
{
    return memcmp(sender, m->id.device_id, DEVICE_ID_LEN) == 0;
}

int mba_state(struct mbox *m, const struct attach_desc *d,
              const uint8_t sender[static DEVICE_ID_LEN], int *have, uint32_t *held, uint32_t *c)
{
    struct dlrec x;
    char part[4300], ct[4300];
    int r;

    *c = attach_chunk_count(d->size);
    *held = 0;
    *have = MBA_HAVE_PART;
    if (is_self(m, sender)) {
        /* one this device sent: the sealed copy made at send time, kept (PROTOCOL.md part 4) */
        if ((r = mba_path(m, d->id, "ct", ct, sizeof(ct))) != 0 ||
            (r = attach_held(ct, d, held)) != 0)
            return r;
        *have = *held == *c ? MBA_HAVE_COMPLETE : MBA_HAVE_MISSING;
        return 0;
    }
    if ((r = dl_path(m, d->id, sender, "part", part, sizeof(part))) != 0 ||
        (r = dl_path(m, d->id, sender, "ct", ct, sizeof(ct))) != 0)
        return r;
    if (file_exists(ct)) {
        if ((r = attach_held(ct, d, held)) != 0)
            return r;
    } else if ((r = attach_held(part, d, held)) != 0) {
        return r;
    }
    if (*held == *c) {
        *have = MBA_HAVE_COMPLETE;
        return 0;
    }
    if (dl_get(m, d->id, sender, &x) == 0) {
        if (x.state == DL_GONE)
            *have = MBA_HAVE_GONE;
        else if (x.state == DL_BAD)
            *have = MBA_HAVE_BAD;
        attach_desc_wipe(&x.d);
    }
    return 0;
}

int mba_save(struct mbox *m, const struct attach_desc *d,
             const uint8_t sender[static DEVICE_ID_LEN], const char *out,
             attach_progress_fn progress, void *pctx)
{
    char ct[4300];
    int r;

    if ((r = is_self(m, sender) ? mba_path(m, d->id, "ct", ct, sizeof(ct))
                                : dl_path(m, d->id, sender, "ct", ct, sizeof(ct))) != 0)
        return r;
    if (!file_exists(ct))
        return VERR_UNKNOWN;
    return attach_open_file(d, ct, out, progress, pctx);
}

/* An upload's state from its record (u NULL: there is none) and its sealed copy. */
static int up_state(struct mbox *m, const uint8_t id[static ATTACH_ID_LEN], uint64_t size,
                    const struct uprec *u, struct mba_up_state *out)
{
    struct attach_desc d;
    char ct[4300];
    uint32_t held = 0;
    int r;

    memset(out, 0, sizeof(*out));
    out->c = attach_chunk_count(size);
    out->ct_size = attach_ct_size(size);
    memset(&d, 0, sizeof(d));
    memcpy(d.id, id, ATTACH_ID_LEN);
    d.size = size; /* attach_held needs the id and the size only */
    if ((r = mba_path(m, id, "ct", ct, sizeof(ct))) != 0 || (r = attach_held(ct, &d, &held)) != 0)
        return r;
    out->copy = out->c != 0 && held == out->c;
    if (u == NULL) {
        out->state = MBA_UP_NONE; /* not this device's upload (sent from another device) */
        return 0;
    }
    out->stored = u->stored;
    out->reason = u->reason;
    switch (u->state) {
    case UP_DONE:
        out->state = MBA_UP_DONE;
        break;
    case UP_REFUSED:
        out->state = MBA_UP_REFUSED;
        break;
    case UP_LOST:
        out->state = MBA_UP_LOST;
        break;
    default:
        /* what the next sync would find: a deleted sealed copy cannot be uploaded */
        if (!out->copy)
            out->state = MBA_UP_LOST;
        else
            out->state = u->state == UP_OPEN && u->stored > 0 ? MBA_UP_SENDING : MBA_UP_WAITING;
    }
    return 0;
}

int mba_upload_state(struct mbox *m, const uint8_t id[static ATTACH_ID_LEN], uint64_t size,
                     struct mba_up_state *out)
{
    struct uprec u;
    int r = up_get(m, id, &u);

    if (r == VERR_UNKNOWN)
        return up_state(m, id, size, NULL, out);
    if (r != 0)
        return r;
    r = up_state(m, id, size, &u, out);
    free(u.rcpt);
    return r;
}

/* ---- housekeeping (PROTOCOL.md part 4 "What stays on the device") ---- */

/* 1 if s is n lower-case hex digits. */
static int hex_run(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* The kinds of file in HOME/attach, by name. */
enum att_kind {
    ATT_OTHER = 0, /* not ours: left alone */
    ATT_SENT,      /* <id>.ct: a sealed copy made at send time */
    ATT_SEAL_TMP,  /* <id>.ct.tmp.<pid>: a seal in progress (attach_seal_file) */
    ATT_RECEIVED,  /* <id>.<tag>.ct: a complete download */
    ATT_PART,      /* <id>.<tag>.part: a download in progress */
};

static enum att_kind att_classify(const char *name, uint8_t id[static ATTACH_ID_LEN],
                                  uint8_t tag[static DL_TAG_LEN], long *pid)
{
    const size_t h = 2 * ATTACH_ID_LEN, t = 2 * DL_TAG_LEN;
    size_t len = strlen(name);
    char hex[2 * ATTACH_ID_LEN + 1];

    if (len < h + 3 || !hex_run(name, h) || name[h] != '.')
        return ATT_OTHER;
    memcpy(hex, name, h);
    hex[h] = '\0';
    if (text_hex_decode(id, ATTACH_ID_LEN, hex) != 0)
        return ATT_OTHER;
    if (strcmp(name + h, ".ct") == 0)
        return ATT_SENT;
    if (strncmp(name + h, ".ct.tmp.", 8) == 0) {
        uint64_t v;
        if (text_parse_u64(name + h + 8, 1, 0x7fffffff, &v) != 0)
            return ATT_OTHER;
        *pid = (long)v;
        return ATT_SEAL_TMP;
    }
    if (len < h + 1 + t + 3 || !hex_run(name + h + 1, t) || name[h + 1 + t] != '.')
        return ATT_OTHER;
    memcpy(hex, name + h + 1, t);
    hex[t] = '\0';
    if (text_hex_decode(tag, DL_TAG_LEN, hex) != 0)
        return ATT_OTHER;
    if (strcmp(name + h + 1 + t, ".ct") == 0)
        return ATT_RECEIVED;
    if (strcmp(name + h + 1 + t, ".part") == 0)
        return ATT_PART;
    return ATT_OTHER;
}

/* Finished records: a download done (a store from before it was dropped), an upload's long form. */
static int sweep_records(struct mbox *m)
{
    struct idlist ids;
    int r;

    if ((r = list_recs(m, DL_PREFIX, &ids)) != 0)
        goto out;
    for (size_t i = 0; i < ids.n; i++) {
        struct dlrec x;
        if ((r = dl_get(m, ids.id[i], ids.tag[i], &x)) != 0)
            goto out;
        attach_desc_wipe(&x.d);
        if (x.state == DL_DONE && (r = drop_dl(m, ids.id[i], ids.tag[i])) != 0)
            goto out;
    }
    idlist_free(&ids);
    if ((r = list_recs(m, UP_PREFIX, &ids)) != 0)
        goto out;
    for (size_t i = 0; i < ids.n; i++) {
        struct uprec u;
        if ((r = up_get(m, ids.id[i], &u)) != 0)
            goto out;
        if (u.state == UP_DONE && u.n > 0) {
            free(u.rcpt);
            u.rcpt = NULL;
            u.n = 0;
            u.stored = attach_chunk_count(u.size);
            r = commit_up(m, ids.id[i], &u);
        }
        free(u.rcpt);
        if (r != 0)
            goto out;
    }
    r = 0;
out:
    idlist_free(&ids);
    return r;
}

/* 1 if the file at path is an orphan the sweep removes (see mba_sweep). */
static int sweep_is_orphan(struct mbox *m, int dfd, const char *name)
{
    uint8_t id[ATTACH_ID_LEN], tag[DL_TAG_LEN];
    struct stat sb;
    struct uprec u;
    struct dlrec x;
    long pid = 0;
    int r;

    switch (att_classify(name, id, tag, &pid)) {
    case ATT_SENT:
        /* no record: a send that never committed; young ones may be another process's send */
        if ((r = up_get(m, id, &u)) == 0) {
            free(u.rcpt);
            return 0;
        }
        return r == VERR_UNKNOWN && fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
               (uint64_t)sb.st_mtime + (uint64_t)MBA_ORPHAN_AGE_S < (uint64_t)time(NULL);
    case ATT_SEAL_TMP:
        /* a seal whose process is gone (kill(2): ESRCH) */
        return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    case ATT_PART:
        /* no download to finish: gone, bad, done, or never recorded */
        if ((r = dl_get(m, id, tag, &x)) != 0)
            return r == VERR_UNKNOWN;
        attach_desc_wipe(&x.d);
        return x.state != DL_FETCH;
    default:
        return 0;
    }
}

int mba_sweep(struct mbox *m, size_t *removed)
{
    char dir[4200];
    DIR *dp = NULL;
    struct dirent *e;
    int r;

    *removed = 0;
    if ((r = sweep_records(m)) != 0)
        return r;
    if ((r = file_join(dir, sizeof(dir), m->home, "attach")) != 0)
        return r;
    /*
     * Best effort: a leftover that cannot be read or removed now (permissions)
     * must not keep the device from syncing; it is tried again next time.
     */
    if ((dp = opendir(dir)) == NULL)
        return 0;
    while ((e = readdir(dp)) != NULL)
        if (sweep_is_orphan(m, dirfd(dp), e->d_name) && unlinkat(dirfd(dp), e->d_name, 0) == 0)
            (*removed)++;
    closedir(dp);
    return *removed > 0 ? fsync_attach_dir(m) : 0;
}

int mba_disk_use(const char *home, struct mba_usage *u)
{
    char dir[4200];
    DIR *dp = NULL;
    struct dirent *e;
    int r;

    memset(u, 0, sizeof(*u));
    if ((r = file_join(dir, sizeof(dir), home, "attach")) != 0)
        return r;
    if ((dp = opendir(dir)) == NULL)
        return errno == ENOENT ? 0 : VERR_IO;
    while ((e = readdir(dp)) != NULL) {
        uint8_t id[ATTACH_ID_LEN], tag[DL_TAG_LEN];
        struct stat sb;
        long pid = 0;
        enum att_kind k = att_classify(e->d_name, id, tag, &pid);
        if (k == ATT_OTHER || fstatat(dirfd(dp), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(sb.st_mode))
            continue;
        if (k == ATT_SENT) {
            u->sent_bytes += (uint64_t)sb.st_size;
            u->sent_files++;
        } else if (k == ATT_RECEIVED) {
            u->received_bytes += (uint64_t)sb.st_size;
            u->received_files++;
        } else {
            u->partial_bytes += (uint64_t)sb.st_size;
            u->partial_files++;
        }
    }
    closedir(dp);
    return 0;
}

/* ---- the desk (issue 13 item 2): accessors, each on its own ---- */

int mba_reader(struct mbox *m, const struct attach_desc *d,
               const uint8_t sender[static DEVICE_ID_LEN], struct attach_reader **out)
{
    char ct[4300];
    int r;

    *out = NULL;
    if ((r = dl_path(m, d->id, sender, "ct", ct, sizeof(ct))) != 0)
        return r;
    if (!file_exists(ct))
        return VERR_UNKNOWN;
    return attach_reader_open(d, ct, out);
}

int mba_uploads(struct mbox *m, struct mba_upload **list, size_t *n)
{
    struct idlist ids;
    struct mba_upload *l = NULL;
    size_t k = 0;
    int r;

    *list = NULL;
    *n = 0;
    if ((r = list_recs(m, UP_PREFIX, &ids)) != 0)
        goto out;
    if (ids.n > 0 && (l = calloc(ids.n, sizeof(*l))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < ids.n; i++) {
        struct uprec u;
        if ((r = up_get(m, ids.id[i], &u)) != 0)
            goto out;
        memcpy(l[k].id, ids.id[i], ATTACH_ID_LEN);
        l[k].seq = u.seq;
        l[k].size = u.size;
        /* the same state, in the same words, as `valise outbox` */
        r = up_state(m, ids.id[i], u.size, &u, &l[k].st);
        free(u.rcpt);
        if (r != 0)
            goto out;
        k++;
    }
    *list = l;
    *n = k;
    l = NULL; /* the caller's now */
    r = 0;
out:
    free(l);
    idlist_free(&ids);
    return r;
}
