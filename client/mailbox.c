/* mailbox.c - the verbs of the client's engine (see mailbox.h, PROTOCOL.md, part 4). */
#include "mailbox.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "address.h"
#include "mbox_attach.h"
#include "mbox_rec.h"
#include "transport.h"

static const uint64_t mb_ttl[WIRE_PRECEDENCE_COUNT] = {
    2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, /* the relay's defaults */
};

const char *mbox_env_state_name(int state)
{
    switch (state) {
    case MBOX_ENV_QUEUED:
        return "queued";
    case MBOX_ENV_WAIT_PREKEYS:
        return "waiting for prekeys";
    case MBOX_ENV_WAIT_DIR:
        return "waiting for directory";
    case MBOX_ENV_SENDING:
        return "queued (encrypted, not yet accepted)";
    case MBOX_ENV_ACCEPTED:
        return "accepted by relay";
    case MBOX_ENV_DELIVERED:
        return "delivered";
    case MBOX_ENV_READ:
        return "read";
    case MBOX_ENV_EXPIRED:
        return "expired undelivered";
    case MBOX_ENV_REJECTED:
        return "rejected by relay";
    default:
        return "?";
    }
}

/* The CA file for wss://, or none (the system store). */
static int mb_put_ca(struct mbox *m, const char *ca_file)
{
    int r;

    if (ca_file[0] != 0)
        return mb_cfg_put(m, "ca", (const uint8_t *)ca_file, strlen(ca_file));
    r = cstore_del(m->st, CS_CONFIG, (const uint8_t *)"ca", 2);
    return r == VERR_UNKNOWN ? 0 : r;
}

int mbox_enroll(struct mbox *m, const uint8_t *cert, size_t cert_len, const uint8_t *orgpub,
                size_t orgpub_len, const char *relay_url, const char *relay_id,
                const char *ca_file, uint64_t now)
{
    struct orgpub org;
    struct cert c;
    int r;

    if ((r = orgpub_parse(orgpub, orgpub_len, &org)) != 0 ||
        (r = cert_parse(cert, cert_len, &c)) != 0)
        return r;
    /* The certificate must be for this device's own keys (DESIGN.md "Trust and keys"). */
    if (memcmp(c.device_id, m->id.device_id, DEVICE_ID_LEN) != 0 ||
        sodium_memcmp(c.sign_pk, m->id.sign_pk, SIG_PK_LEN) != 0 ||
        sodium_memcmp(c.dh_pk, m->id.dh_pk, DH_PK_LEN) != 0)
        return VERR_DENIED;
    if ((r = cert_verify(&c, &org, now)) != 0)
        return r;
    if (strlen(relay_url) > MB_URL_MAX || (r = ctp_url_check(relay_url)) != 0)
        return r != 0 ? r : VERR_TOO_LARGE;
    if (!relaycert_valid_id(relay_id))
        return VERR_USAGE;
    if (ca_file == NULL)
        ca_file = "";
    if (strlen(ca_file) > MB_URL_MAX)
        return VERR_TOO_LARGE;
    /* A new certificate (renewal) is fine; another organisation is not. */
    if (m->enrolled && memcmp(m->org.pk, org.pk, SIG_PK_LEN) != 0)
        return VERR_EXISTS;
    if ((r = cstore_begin(m->st, 1)) != 0)
        return r;
    if ((r = mb_cfg_put(m, "orgpub", orgpub, orgpub_len)) != 0 ||
        (r = mb_cfg_put(m, "cert", cert, cert_len)) != 0 ||
        (r = mb_cfg_put(m, "relay", (const uint8_t *)relay_url, strlen(relay_url))) != 0 ||
        (r = mb_cfg_put(m, "relay.id", (const uint8_t *)relay_id, strlen(relay_id))) != 0 ||
        (r = mb_put_ca(m, ca_file)) != 0 || (r = cstore_commit(m->st)) != 0) {
        cstore_abort(m->st);
        return r;
    }
    m->org = org;
    m->self = c;
    memcpy(m->cert_bytes, cert, cert_len);
    m->cert_len = cert_len;
    memcpy(m->relay, relay_url, strlen(relay_url) + 1);
    memcpy(m->relay_id, relay_id, strlen(relay_id) + 1);
    memcpy(m->ca, ca_file, strlen(ca_file) + 1);
    m->enrolled = 1;
    return 0;
}

int mbox_install_directory(struct mbox *m, const uint8_t *p, size_t len)
{
    struct directory *d = NULL;
    uint64_t v;
    int r;

    if (!m->enrolled)
        return VERR_USAGE;
    if ((r = dir_parse_verify(p, len, &m->org, &d)) != 0)
        return r;
    v = dir_version(d);
    /* DESIGN.md "Trust and keys": refuse a directory older than one already seen. */
    if (v < m->dir_seen) {
        dir_free(d);
        return VERR_ROLLBACK;
    }
    if (m->dir != NULL && v == dir_version(m->dir)) {
        dir_free(d);
        return 0;
    }
    if ((r = cstore_begin(m->st, 1)) != 0) {
        dir_free(d);
        return r;
    }
    if ((r = mb_cfg_put(m, "dir", p, len)) != 0 || (r = mb_cfg_put_u64(m, "dir.seen", v)) != 0 ||
        (r = cstore_commit(m->st)) != 0) {
        cstore_abort(m->st);
        dir_free(d);
        return r;
    }
    dir_free(m->dir);
    m->dir = d;
    m->dir_seen = v;
    return 0;
}

int mbox_reload_directory(struct mbox *m)
{
    struct buf b;
    struct directory *d = NULL;
    int r;

    if (!m->enrolled)
        return 0;
    if ((r = mb_cfg_get(m, "dir", &b)) == VERR_UNKNOWN)
        return 0;
    if (r != 0)
        return r;
    r = dir_parse_verify(buf_data(&b), buf_size(&b), &m->org, &d);
    buf_free(&b);
    if (r != 0)
        return r;
    if (m->dir != NULL && dir_version(d) <= dir_version(m->dir)) {
        dir_free(d);
        return 0;
    }
    dir_free(m->dir);
    m->dir = d;
    return mb_cfg_get_u64(m, "dir.seen", &m->dir_seen);
}

const struct directory *mbox_directory(const struct mbox *m)
{
    return m->dir;
}

int mbox_dir_freshness(const struct mbox *m, uint64_t now, uint64_t *expires_at)
{
    uint64_t exp, period, warn;

    *expires_at = 0;
    if (m->dir == NULL)
        return MBOX_DIR_NONE;
    exp = dir_expires_at(m->dir);
    *expires_at = exp;
    if (now >= exp)
        return MBOX_DIR_EXPIRED;
    /* issued_at < expires_at holds for every parsed directory (dir.h). */
    period = exp - dir_issued_at(m->dir);
    warn = period / 4 < MBOX_DIR_WARN_SECS ? period / 4 : MBOX_DIR_WARN_SECS;
    return exp - now <= warn ? MBOX_DIR_EXPIRING : MBOX_DIR_FRESH;
}

int mbox_send(struct mbox *m, const struct mbox_draft *d, uint64_t now,
              uint8_t id[static INNER_ID_LEN])
{
    struct address a;
    struct inner in;
    struct mb_outrec o;
    struct buf enc;
    uint64_t seq;
    size_t na = d->addresses != NULL ? d->naddresses : 1;
    int r;

    if (!m->enrolled)
        return VERR_USAGE;
    if (na == 0 || na > INNER_ADDRESSES_MAX || (d->addresses == NULL && d->address == NULL))
        return VERR_USAGE;
    memset(&in, 0, sizeof(in));
    in.naddr = na;
    for (size_t i = 0; i < na; i++) {
        const char *text = d->addresses != NULL ? d->addresses[i] : d->address;

        if ((r = addr_parse(text, &a)) != 0 ||
            (r = addr_format(&a, in.address[i], sizeof(in.address[i]))) != 0)
            return r;
        /* The list is canonical: each address once (PROTOCOL.md part 4 section 1). */
        for (size_t j = 0; j < i; j++)
            if (strcmp(in.address[j], in.address[i]) == 0)
                return VERR_EXISTS;
        if (a.kind == ADDR_PERSON && m->dir != NULL) {
            /* person:NAME must be one person in the directory we hold (issue 11 item 1). */
            uint8_t person[PERSON_ID_LEN];

            if ((r = addr_person_id(&a, m->dir, &m->org, now, person)) == VERR_AMBIGUOUS)
                return r;
        }
    }
    in.type = INNER_TYPE_MESSAGE;
    randombytes_buf(in.id, INNER_ID_LEN);
    memcpy(in.sender, m->id.device_id, DEVICE_ID_LEN);
    memcpy(in.role, m->self.role, sizeof(in.role));
    in.time = now;
    in.precedence = d->precedence;
    if (strlen(d->label) > INNER_LABEL_MAX)
        return VERR_BAD_FORMAT;
    memcpy(in.label, d->label, strlen(d->label) + 1);
    in.subject = (const uint8_t *)d->subject;
    in.subject_len = strlen(d->subject);
    in.content = d->content;
    in.content_len = d->content_len;
    in.attach_section = d->attach_section;
    in.attach_section_len = d->attach_section_len;
    if ((r = buf_init(&enc, INNER_MAX_LEN, BUF_SECRET)) != 0)
        return r;
    if ((r = inner_sign_encode(&in, m->id.sign_sk, &enc)) != 0)
        goto out;
    o.kind = MB_KIND_MESSAGE;
    o.resolved = 0;
    o.created = now;
    o.inner = buf_data(&enc);
    o.inner_len = buf_size(&enc);
    if ((r = cstore_begin(m->st, 1)) != 0)
        goto out;
    if ((r = mb_next_seq(m, &seq)) != 0 || (r = mb_outrec_put(m, seq, &o)) != 0 ||
        (r = mba_queue_upload(m, seq, &in)) != 0 || (r = cstore_commit(m->st)) != 0) {
        cstore_abort(m->st);
        goto out;
    }
    memcpy(id, in.id, INNER_ID_LEN);
    r = 0;
out:
    buf_free(&enc);
    return r;
}

/* ---- inbox, read, outbox ---- */

uint64_t mbox_ttl(uint8_t precedence)
{
    return mb_ttl[precedence < WIRE_PRECEDENCE_COUNT ? precedence : WIRE_PRECEDENCE_COUNT - 1];
}

int mbox_msg_delayed(const struct mbox_msg *msg)
{
    return msg->received > msg->time && msg->received - msg->time > mbox_ttl(msg->precedence);
}

void mbox_msg_clear(struct mbox_msg *msg)
{
    if (msg == NULL)
        return;
    sodium_free(msg->content);
    sodium_free(msg->attach); /* sodium_free wipes */
    memset(msg, 0, sizeof(*msg));
}

struct mb_inrec {
    uint8_t read;
    uint64_t received;
    struct cert cert;
    const uint8_t *cert_bytes;
    size_t cert_len;
    const uint8_t *inner;
    size_t inner_len;
    struct inner in;
};

static int mb_inrec_parse(const uint8_t *p, size_t len, struct mb_inrec *x)
{
    struct buf b, cpart, ipart;
    uint8_t v;
    int r;

    buf_view(&b, p, len);
    if ((r = buf_get_u8(&b, &v)) != 0 || (r = buf_get_u8(&b, &x->read)) != 0 ||
        (r = buf_get_u64(&b, &x->received)) != 0 ||
        (r = buf_get_view16(&b, CERT_MAX_LEN, &cpart)) != 0 ||
        (r = buf_get_view32(&b, INNER_MAX_LEN, &ipart)) != 0 || (r = buf_expect_end(&b)) != 0)
        return r;
    if (v != MB_REC_VERSION || x->read > 1)
        return VERR_BAD_FORMAT;
    x->cert_bytes = buf_data(&cpart);
    x->cert_len = buf_size(&cpart);
    x->inner = buf_data(&ipart);
    x->inner_len = buf_size(&ipart);
    if ((r = cert_parse(x->cert_bytes, x->cert_len, &x->cert)) != 0)
        return r;
    return inner_parse(x->inner, x->inner_len, &x->in);
}

static void mb_fill_msg(struct mbox_msg *msg, uint64_t seq, const struct mb_inrec *x)
{
    memset(msg, 0, sizeof(*msg));
    memcpy(msg->id, x->in.id, INNER_ID_LEN);
    msg->seq = seq;
    msg->precedence = x->in.precedence;
    memcpy(msg->label, x->in.label, sizeof(msg->label));
    inner_addresses_text(&x->in, msg->address, sizeof(msg->address));
    msg->naddr = x->in.naddr;
    msg->time = x->in.time;
    msg->received = x->received;
    msg->read = x->read;
    memcpy(msg->sender_id, x->in.sender, DEVICE_ID_LEN);
    memcpy(msg->sender_name, x->cert.name, sizeof(msg->sender_name));
    memcpy(msg->sender_role, x->cert.role, sizeof(msg->sender_role));
    memcpy(msg->sender_post, x->cert.post, sizeof(msg->sender_post));
    msg->sender_serial = x->cert.serial;
    mb_text(msg->subject, sizeof(msg->subject), x->in.subject, x->in.subject_len);
}

struct mb_list {
    struct mbox_msg *v;
    size_t n, cap;
};

static int each_inbox(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct mb_list *l = ctx;
    struct mb_inrec x;
    int r;

    if (kl != 8)
        return VERR_BAD_FORMAT;
    if ((r = mb_inrec_parse(v, vl, &x)) != 0)
        return r;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 32;
        void *p = realloc(l->v, nc * sizeof(*l->v));
        if (p == NULL)
            return VERR_NOMEM;
        l->v = p;
        l->cap = nc;
    }
    mb_fill_msg(&l->v[l->n++], mb_rd64(k), &x);
    return 0;
}

static int mb_cmp_inbox(const void *a, const void *b)
{
    const struct mbox_msg *x = a, *y = b;
    if (x->precedence != y->precedence)
        return x->precedence < y->precedence ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int mbox_inbox(struct mbox *m, struct mbox_msg **list, size_t *n)
{
    struct mb_list l = {0};
    int r;

    *list = NULL;
    *n = 0;
    if ((r = cstore_each(m->st, CS_INBOX, each_inbox, &l)) != 0) {
        free(l.v);
        return r;
    }
    /* FLASH first (issue 4), then in order of arrival. */
    if (l.n > 1)
        qsort(l.v, l.n, sizeof(*l.v), mb_cmp_inbox);
    *list = l.v;
    *n = l.n;
    return 0;
}

int mb_inbox_msg(struct mbox *m, uint64_t seq, struct mbox_msg *msg)
{
    struct mb_inrec x;
    struct buf b;
    uint8_t key[8];
    int r;

    memset(msg, 0, sizeof(*msg));
    mb_be64(key, seq);
    if ((r = cstore_get(m->st, CS_INBOX, key, sizeof(key), &b)) != 0)
        return r;
    if ((r = mb_inrec_parse(buf_data(&b), buf_size(&b), &x)) == 0)
        mb_fill_msg(msg, seq, &x);
    buf_free(&b);
    return r;
}

/* A hex prefix of 8..32 digits of a 16-byte id (message id or sender device id). */
struct mb_prefix {
    uint8_t b[16];
    size_t plen; /* hex digits; 0: matches anything */
};
_Static_assert(INNER_ID_LEN == 16 && DEVICE_ID_LEN == 16, "ids in read are 16 bytes");

struct mb_match {
    struct mb_prefix id, sender;
    uint8_t key[8];
    int count;
};

static int mb_hex_prefix_n(const char *s, size_t n, struct mb_prefix *p)
{
    memset(p, 0, sizeof(*p));
    if (n < 8 || n > 32)
        return VERR_USAGE;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return VERR_USAGE;
        p->b[i / 2] |= (uint8_t)(i % 2 == 0 ? d << 4 : d);
    }
    p->plen = n;
    return 0;
}

/*
 * "ID" or "ID/SENDER": message ids are chosen by senders, so two senders'
 * messages may share one; the sender's device id tells them apart
 * (PROTOCOL.md part 4, "Commands").
 */
static int mb_hex_prefix(const char *s, struct mb_match *mm)
{
    const char *slash = strchr(s, '/');
    int r;

    memset(mm, 0, sizeof(*mm));
    if (slash == NULL)
        return mb_hex_prefix_n(s, strlen(s), &mm->id);
    if ((r = mb_hex_prefix_n(s, (size_t)(slash - s), &mm->id)) != 0)
        return r;
    return mb_hex_prefix_n(slash + 1, strlen(slash + 1), &mm->sender);
}

static int mb_prefix_matches(const struct mb_prefix *p, const uint8_t id[static 16])
{
    size_t full = p->plen / 2;
    if (memcmp(id, p->b, full) != 0)
        return 0;
    return p->plen % 2 == 0 || (id[full] & 0xf0) == p->b[full];
}

static int each_match(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct mb_match *mm = ctx;
    struct mb_inrec x;

    if (kl != 8 || mb_inrec_parse(v, vl, &x) != 0)
        return VERR_BAD_FORMAT;
    if (mb_prefix_matches(&mm->id, x.in.id) && mb_prefix_matches(&mm->sender, x.in.sender)) {
        memcpy(mm->key, k, 8);
        mm->count++;
    }
    return 0;
}

/* The attachment descriptors of a read message (mbox_attach.h). */
static int mb_fill_attach(struct mbox_msg *msg, const struct inner *in)
{
    struct buf v;
    int r;

    if (in->n_attach == 0)
        return 0;
    if ((msg->attach = sodium_malloc(ATTACH_MAX * sizeof(*msg->attach))) == NULL)
        return VERR_NOMEM;
    buf_view(&v, in->attach_section, in->attach_section_len);
    if ((r = attach_section_parse(&v, msg->attach, &msg->n_attach)) != 0)
        return r;
    return 0;
}

static int each_out_match(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct mb_match *mm = ctx;
    struct mb_outrec o;
    struct inner in;

    if (kl != 8 || mb_outrec_parse(v, vl, &o) != 0)
        return VERR_BAD_FORMAT;
    if (o.kind != MB_KIND_MESSAGE)
        return 0;
    if (inner_parse(o.inner, o.inner_len, &in) != 0)
        return VERR_BAD_FORMAT;
    if (mb_prefix_matches(&mm->id, in.id) && mb_prefix_matches(&mm->sender, in.sender)) {
        memcpy(mm->key, k, 8);
        mm->count++;
    }
    return 0;
}

/*
 * A message this person sent, from this device or (a copy kept in the
 * outbox, issue 12 item 10) from another of its devices: shown like a
 * received one, its signature checked under the sending device's
 * certificate (this one, the directory's, or the one remembered); no
 * receipt, nothing changes.
 */
/*
 * What `read` shows of a stored message beyond its header: the proof checked
 * again (signature under the stored certificate, the certificate's chain to
 * the root, its standing in the newest directory), the content and the
 * attachment list. x->inner is the signed inner message as stored.
 */
static int mb_msg_open(struct mbox *m, const struct mb_inrec *x, uint64_t now,
                       struct mbox_msg *msg)
{
    msg->sig_ok = sig_verify(x->in.sig, SIG_CTX_MESSAGE, x->inner, x->inner_len - SIG_LEN,
                             x->cert.sign_pk) == 0 &&
                  memcmp(x->cert.device_id, x->in.sender, DEVICE_ID_LEN) == 0;
    msg->cert_ok = cert_verify(&x->cert, &m->org, x->in.time) == 0;
    msg->cert_status =
        m->dir != NULL ? dir_check_cert(m->dir, &x->cert, &m->org, now) : VERR_UNKNOWN;
    if ((msg->content = sodium_malloc(x->in.content_len + 1)) == NULL)
        return VERR_NOMEM;
    memcpy(msg->content, x->in.content, x->in.content_len);
    msg->content_len = x->in.content_len;
    return mb_fill_attach(msg, &x->in);
}

static int mb_read_sent(struct mbox *m, const struct mb_match *mm, uint64_t now,
                        struct mbox_msg *msg)
{
    struct mb_inrec x;
    struct mb_outrec o;
    struct buf b;
    const struct cert *c;
    int r;

    memset(&x, 0, sizeof(x));
    if ((r = cstore_get(m->st, CS_OUTBOX, mm->key, 8, &b)) != 0)
        return r;
    if ((r = mb_outrec_parse(buf_data(&b), buf_size(&b), &o)) != 0 ||
        (r = inner_parse(o.inner, o.inner_len, &x.in)) != 0)
        goto out;
    if (memcmp(x.in.sender, m->id.device_id, DEVICE_ID_LEN) == 0)
        x.cert = m->self;
    else if (m->dir != NULL && (c = dir_find_device(m->dir, x.in.sender)) != NULL)
        x.cert = *c;
    else if ((r = mb_peer_recall(m, x.in.sender, &x.cert)) != 0)
        goto out;
    x.read = 1;
    x.received = o.created;
    x.inner = o.inner;
    x.inner_len = o.inner_len;
    mb_fill_msg(msg, mb_rd64(mm->key), &x);
    /* attachments listed with their upload states; this device's own can be saved */
    if ((r = mb_msg_open(m, &x, now, msg)) != 0)
        goto out;
    msg->sent = 1;
    r = 0;
out:
    buf_free(&b);
    if (r != 0)
        mbox_msg_clear(msg);
    return r;
}

int mbox_read(struct mbox *m, const char *idhex, uint64_t now, struct mbox_msg *msg)
{
    struct mb_match mm;
    struct mb_inrec x;
    struct buf b;
    int r;

    memset(msg, 0, sizeof(*msg));
    if ((r = mb_hex_prefix(idhex, &mm)) != 0)
        return r;
    if ((r = cstore_each(m->st, CS_INBOX, each_match, &mm)) != 0)
        return r;
    if (mm.count == 0) {
        /* Not received: one this person sent (issue 12, item 10)? */
        if ((r = cstore_each(m->st, CS_OUTBOX, each_out_match, &mm)) != 0)
            return r;
        if (mm.count == 1)
            return mb_read_sent(m, &mm, now, msg);
    }
    if (mm.count == 0)
        return VERR_UNKNOWN;
    if (mm.count > 1)
        return VERR_USAGE;
    if ((r = cstore_begin(m->st, 1)) != 0)
        return r;
    if ((r = cstore_get(m->st, CS_INBOX, mm.key, 8, &b)) != 0)
        goto fail;
    if ((r = mb_inrec_parse(buf_data(&b), buf_size(&b), &x)) != 0)
        goto fail_b;
    mb_fill_msg(msg, mb_rd64(mm.key), &x);
    /* Shown only with the proof again: signature under the stored certificate, chain to root. */
    if ((r = mb_msg_open(m, &x, now, msg)) != 0)
        goto fail_b;
    if (!x.read) {
        /* Marked read and the read receipt queued in one transaction. */
        if ((r = mb_inbox_put(m, mb_rd64(mm.key), 1, x.received, x.cert_bytes, x.cert_len, x.inner,
                              x.inner_len)) != 0 ||
            (r = mb_queue_receipt(m, x.in.id, x.in.sender, INNER_RECEIPT_READ, now)) != 0)
            goto fail_b;
        msg->read = 1;
    }
    buf_free(&b);
    if ((r = cstore_commit(m->st)) != 0) {
        mbox_msg_clear(msg);
        return r;
    }
    return 0;
fail_b:
    buf_free(&b);
fail:
    cstore_abort(m->st);
    mbox_msg_clear(msg);
    return r;
}

/* The attachments of a sent message, without their keys; states filled by mbox_outbox. */
static int mb_out_attach(struct mbox_out *x, const struct inner *in)
{
    struct attach_desc *d = NULL;
    struct buf v;
    size_t n = 0;
    int r;

    if (in->n_attach == 0)
        return 0;
    if ((d = sodium_malloc(ATTACH_MAX * sizeof(*d))) == NULL)
        return VERR_NOMEM;
    buf_view(&v, in->attach_section, in->attach_section_len);
    if ((r = attach_section_parse(&v, d, &n)) != 0)
        goto out;
    if ((x->att = calloc(n, sizeof(*x->att))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(x->att[i].id, d[i].id, ATTACH_ID_LEN);
        x->att[i].size = d[i].size;
        memcpy(x->att[i].name, d[i].name, sizeof(x->att[i].name));
    }
    x->n_att = n;
    r = 0;
out:
    sodium_free(d); /* wipes the keys */
    return r;
}

struct mb_outlist {
    struct mbox *m;
    struct mbox_out *v;
    size_t n, cap;
};

static int each_outbox(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct mb_outlist *l = ctx;
    struct mb_outrec o;
    struct inner in;
    struct mbox_out *x;
    int r;

    if (kl != 8 || (r = mb_outrec_parse(v, vl, &o)) != 0 ||
        (r = inner_parse(o.inner, o.inner_len, &in)) != 0)
        return VERR_BAD_FORMAT;
    if (o.kind != MB_KIND_MESSAGE)
        return 0;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 32;
        void *p = realloc(l->v, nc * sizeof(*l->v));
        if (p == NULL)
            return VERR_NOMEM;
        l->v = p;
        l->cap = nc;
    }
    x = &l->v[l->n++];
    memset(x, 0, sizeof(*x));
    memcpy(x->id, in.id, INNER_ID_LEN);
    x->seq = mb_rd64(k);
    x->created = o.created;
    inner_addresses_text(&in, x->address, sizeof(x->address));
    x->naddr = in.naddr;
    x->precedence = in.precedence;
    memcpy(x->label, in.label, sizeof(x->label));
    mb_text(x->subject, sizeof(x->subject), in.subject, in.subject_len);
    x->resolved = o.resolved;
    memcpy(x->sender, in.sender, DEVICE_ID_LEN);
    x->from_other = memcmp(in.sender, l->m->id.device_id, DEVICE_ID_LEN) != 0;
    return mb_out_attach(x, &in);
}

struct mb_envlist {
    struct mbox *m;
    struct mbox_out *v;
    size_t n;
};

static int each_env_list(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct mb_envlist *l = ctx;
    struct mb_envrec e;
    uint64_t seq;

    if (kl != ENV_KEY_LEN || mb_envrec_parse(v, vl, &e) != 0)
        return VERR_BAD_FORMAT;
    seq = mb_rd64(k);
    for (size_t i = 0; i < l->n; i++) {
        struct mbox_out *x = &l->v[i];
        struct mbox_out_dev *d;
        const struct cert *c;
        if (x->seq != seq)
            continue;
        d = realloc(x->dev, (x->ndev + 1) * sizeof(*x->dev));
        if (d == NULL)
            return VERR_NOMEM;
        x->dev = d;
        d = &x->dev[x->ndev++];
        memset(d, 0, sizeof(*d));
        memcpy(d->device, k + 8, DEVICE_ID_LEN);
        d->state = e.state;
        d->reason = e.reason;
        if (l->m->dir != NULL && (c = dir_find_device(l->m->dir, k + 8)) != NULL) {
            memcpy(d->name, c->name, sizeof(d->name));
            memcpy(d->role, c->role, sizeof(d->role));
            memcpy(d->post, c->post, sizeof(d->post));
        } else if (l->m->dir != NULL) {
            /* Revoked since: named if the directory still lists it, and when (issue 12, item 9). */
            for (size_t j = 0; j < dir_cert_count(l->m->dir); j++) {
                c = dir_cert_at(l->m->dir, j);
                if (memcmp(c->device_id, k + 8, DEVICE_ID_LEN) != 0)
                    continue;
                memcpy(d->name, c->name, sizeof(d->name));
                memcpy(d->role, c->role, sizeof(d->role));
                memcpy(d->post, c->post, sizeof(d->post));
            }
            for (size_t j = 0; j < dir_revoked_count(l->m->dir); j++) {
                const struct dir_revocation *rv = dir_revoked_at(l->m->dir, j);
                if (memcmp(rv->device_id, k + 8, DEVICE_ID_LEN) == 0)
                    d->revoked_at = rv->revoked_at;
            }
        }
        if (d->name[0] == '\0') {
            /* Not listed any more: the certificate it had when the message went to it. */
            struct cert pc;
            if (mb_peer_recall(l->m, k + 8, &pc) == 0) {
                memcpy(d->name, pc.name, sizeof(d->name));
                memcpy(d->role, pc.role, sizeof(d->role));
                memcpy(d->post, pc.post, sizeof(d->post));
            }
        }
        break;
    }
    return 0;
}

void mbox_outbox_free(struct mbox_out *list, size_t n)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(list[i].dev);
        free(list[i].att);
    }
    free(list);
}

int mbox_outbox(struct mbox *m, struct mbox_out **list, size_t *n)
{
    struct mb_outlist l = {0};
    struct mb_envlist el;
    int r;

    *list = NULL;
    *n = 0;
    l.m = m;
    if ((r = cstore_begin(m->st, 0)) != 0)
        return r;
    if ((r = cstore_each(m->st, CS_OUTBOX, each_outbox, &l)) == 0) {
        el.m = m;
        el.v = l.v;
        el.n = l.n;
        r = cstore_each(m->st, CS_ENVELOPES, each_env_list, &el);
    }
    /* each attachment's upload, from its record and its sealed copy (mbox_attach.h) */
    for (size_t i = 0; r == 0 && i < l.n; i++)
        for (size_t j = 0; r == 0 && j < l.v[i].n_att; j++)
            r = mba_upload_state(m, l.v[i].att[j].id, l.v[i].att[j].size, &l.v[i].att[j].up);
    cstore_abort(m->st);
    if (r != 0) {
        mbox_outbox_free(l.v, l.n);
        return r;
    }
    *list = l.v;
    *n = l.n;
    return 0;
}

/* ---- safety numbers ---- */

/*
 * One device's half: 30 digits from SHA-512 iterated 5200 times over
 * "valise/v1/fingerprint" || device id || Ed25519 key || X25519 key (in the
 * manner of Signal's safety numbers); each 5 bytes give 5 digits.
 */
static void mb_half(char out[31], const uint8_t id[static DEVICE_ID_LEN],
                    const uint8_t sign_pk[static SIG_PK_LEN], const uint8_t dh_pk[static DH_PK_LEN])
{
    static const char ctx[] = "valise/v1/fingerprint";
    uint8_t h[crypto_hash_sha512_BYTES];
    crypto_hash_sha512_state st;

    crypto_hash_sha512_init(&st);
    crypto_hash_sha512_update(&st, (const uint8_t *)ctx, sizeof(ctx));
    crypto_hash_sha512_update(&st, id, DEVICE_ID_LEN);
    crypto_hash_sha512_update(&st, sign_pk, SIG_PK_LEN);
    crypto_hash_sha512_update(&st, dh_pk, DH_PK_LEN);
    crypto_hash_sha512_final(&st, h);
    for (int i = 1; i < 5200; i++) {
        crypto_hash_sha512_init(&st);
        crypto_hash_sha512_update(&st, h, sizeof(h));
        crypto_hash_sha512_update(&st, sign_pk, SIG_PK_LEN);
        crypto_hash_sha512_update(&st, dh_pk, DH_PK_LEN);
        crypto_hash_sha512_final(&st, h);
    }
    for (size_t g = 0; g < 6; g++) {
        uint64_t v = 0;
        for (size_t j = 0; j < 5; j++)
            v = (v << 8) | h[g * 5 + j];
        v %= 100000;
        for (size_t d = 0; d < 5; d++) {
            out[g * 5 + 4 - d] = (char)('0' + v % 10);
            v /= 10;
        }
    }
    out[30] = 0;
}

/* Both halves in a fixed order (smaller first), so both ends show the same number. */
static void mb_safety(char out[MBOX_SAFETY_DIGITS + 1], const struct mbox *m, const struct cert *c)
{
    char a[31], b[31];

    mb_half(a, m->id.device_id, m->id.sign_pk, m->id.dh_pk);
    mb_half(b, c->device_id, c->sign_pk, c->dh_pk);
    if (strcmp(a, b) <= 0) {
        memcpy(out, a, 30);
        memcpy(out + 30, b, 31);
    } else {
        memcpy(out, b, 30);
        memcpy(out + 30, a, 31);
    }
}

int mbox_fingerprint(struct mbox *m, const char *who, uint64_t now, struct mbox_contact **list,
                     size_t *n)
{
    struct mbox_contact *v = NULL;
    uint8_t(*ids)[DEVICE_ID_LEN] = NULL;
    struct address a;
    size_t cnt = 0;
    int r;

    *list = NULL;
    *n = 0;
    if (!m->enrolled || m->dir == NULL)
        return VERR_UNKNOWN;
    if (strlen(who) == 2 * DEVICE_ID_LEN && strchr(who, '@') == NULL && strchr(who, ':') == NULL) {
        char buf[8 + 2 * DEVICE_ID_LEN];
        memcpy(buf, "device:", 7);
        memcpy(buf + 7, who, 2 * DEVICE_ID_LEN + 1);
        r = addr_parse(buf, &a);
    } else {
        r = addr_parse(who, &a);
    }
    if (r != 0)
        return VERR_USAGE;
    if ((ids = malloc(MBOX_MAX_FANOUT * sizeof(*ids))) == NULL)
        return VERR_NOMEM;
    /* Only the devices the address names (addr_resolve adds our own others: filter them). */
    if ((r = addr_resolve(&a, m->dir, &m->org, now, &m->self, ids, MBOX_MAX_FANOUT, &cnt)) != 0)
        goto out;
    if ((v = calloc(cnt + 1, sizeof(*v))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    *n = 0;
    for (size_t i = 0; i < cnt; i++) {
        const struct cert *c = dir_find_device(m->dir, ids[i]);
        if (c == NULL || !addr_matches(&a, c))
            continue;
        v[*n].cert = *c;
        mb_safety(v[*n].safety, m, c);
        (*n)++;
    }
    if (*n == 0) {
        r = VERR_UNKNOWN;
        goto out;
    }
    *list = v;
    v = NULL;
    r = 0;
out:
    free(v);
    free(ids);
    return r;
}

