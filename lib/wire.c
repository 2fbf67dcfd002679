/* wire.c - the relay protocol codec (see wire.h, PROTOCOL.md, part 2). */
#include "wire.h"

#include <string.h>

#include "dir.h"

_Static_assert((size_t)WIRE_DIR_MAX >= (size_t)DIR_MAX_LEN, "a whole directory fits one message");
_Static_assert(WIRE_MAX_BATCH <= UINT16_MAX, "batch counts are u16");
_Static_assert(WIRE_MAX_OTK <= UINT16_MAX, "prekey counts are u16");
_Static_assert(WIRE_ENVELOPE_FIXED == 45, "envelope layout (PROTOCOL.md, part 2)");
_Static_assert(WIRE_SPK_BODY_LEN == 52, "signed prekey body (client/x3dh.h)");
_Static_assert(WIRE_HANDSHAKE_BODY_MAX == 161, "handshake body (PROTOCOL.md, part 2)");
_Static_assert(RELAYCERT_MAX_LEN <= UINT16_MAX, "relay certificate length is u16");
_Static_assert(WIRE_ATT_CHUNK_CT == 16400, "attachment chunk (PROTOCOL.md, part 2 \"Attachments\")");
_Static_assert(WIRE_ATT_RCPT_MAX <= UINT16_MAX, "attachment recipient counts are u16");
_Static_assert(WIRE_ATT_CT_MAX == ((uint64_t)1 << 40) + ((uint64_t)1 << 30), "2^40 + 16 * 2^26");

/* ---- decoding ---- */

static int get_envelope(struct buf *b, struct wire_envelope *e)
{
    uint32_t len;
    const uint8_t *ct;
    int r;

    if ((r = buf_get_bytes(b, e->id, WIRE_ID_LEN)) != 0 ||
        (r = buf_get_bytes(b, e->peer, DEVICE_ID_LEN)) != 0 ||
        (r = buf_get_u8(b, &e->precedence)) != 0 || (r = buf_get_u64(b, &e->expiry)) != 0 ||
        (r = buf_get_u32(b, &len)) != 0)
        return r;
    if (e->precedence >= WIRE_PRECEDENCE_COUNT)
        return VERR_BAD_FORMAT;
    /* An empty ciphertext carries nothing; a huge one is refused before reading. */
    if (len == 0)
        return VERR_BAD_FORMAT;
    if (len > WIRE_CT_MAX)
        return VERR_TOO_LARGE;
    ct = buf_rptr(b);
    if ((r = buf_get_view(b, len, &(struct buf){0})) != 0)
        return r;
    e->ct = ct;
    e->ct_len = len;
    return 0;
}

static int get_ack(struct buf *b, struct wire_ack *a)
{
    int r;

    if ((r = buf_get_bytes(b, a->id, WIRE_ID_LEN)) != 0 || (r = buf_get_u16(b, &a->reason)) != 0)
        return r;
    return a->reason <= WIRE_R_MAX ? 0 : VERR_BAD_FORMAT;
}

static int get_nd(struct buf *b, struct wire_nd *nd)
{
    int r;

    if ((r = buf_get_bytes(b, nd->id, WIRE_ID_LEN)) != 0 ||
        (r = buf_get_bytes(b, nd->recipient, DEVICE_ID_LEN)) != 0 ||
        (r = buf_get_u16(b, &nd->reason)) != 0)
        return r;
    return nd->reason <= WIRE_R_MAX ? 0 : VERR_BAD_FORMAT;
}

/* Reads the u16 count of a batch and checks each item; items must be 1..max. */
static int get_batch(struct buf *b, struct wire_msg *m, size_t min)
{
    uint16_t n;
    size_t start;
    int r;

    if ((r = buf_get_u16(b, &n)) != 0)
        return r;
    if (n < min)
        return VERR_BAD_FORMAT;
    if (n > WIRE_MAX_BATCH)
        return VERR_TOO_LARGE;
    start = buf_offset(b);
    m->u.batch.items = buf_rptr(b);
    for (size_t i = 0; i < n; i++) {
        switch (m->type) {
        case WIRE_SUBMIT:
        case WIRE_DELIVER: {
            struct wire_envelope e;
            r = get_envelope(b, &e);
            break;
        }
        case WIRE_SUBMIT_ACK: {
            struct wire_ack a;
            r = get_ack(b, &a);
            break;
        }
        case WIRE_NON_DELIVERY: {
            struct wire_nd nd;
            r = get_nd(b, &nd);
            break;
        }
        default: {
            uint8_t id[WIRE_ID_LEN];
            r = buf_get_bytes(b, id, sizeof(id));
            break;
        }
        }
        if (r != 0)
            return r;
    }
    m->u.batch.n = n;
    m->u.batch.len = buf_offset(b) - start;
    return 0;
}

static int get_spk(struct buf *b, struct wire_signed_prekey *spk)
{
    int r;

    if ((r = buf_get_u32(b, &spk->id)) != 0 || (r = buf_get_bytes(b, spk->pk, WIRE_PK_LEN)) != 0 ||
        (r = buf_get_bytes(b, spk->sig, SIG_LEN)) != 0)
        return r;
    return 0;
}

static int get_cert_bytes(struct buf *b, const uint8_t **p, size_t *len)
{
    struct buf v;
    int r;

    if ((r = buf_get_view16(b, CERT_MAX_LEN, &v)) != 0)
        return r;
    if (buf_size(&v) < CERT_MIN_LEN)
        return VERR_BAD_FORMAT;
    *p = buf_data(&v);
    *len = buf_size(&v);
    return 0;
}

/* AUDIT_PROOF_GET and AUDIT_PROOF: kind, a, b checked as RFC 9162 2.1.3 / 2.1.4 require. */
static int get_audit_proof(struct buf *b, struct wire_msg *m)
{
    struct buf v;
    uint8_t n8;
    int r;

    if ((r = buf_get_u8(b, &m->u.audit.kind)) != 0 || (r = buf_get_u64(b, &m->u.audit.a)) != 0 ||
        (r = buf_get_u64(b, &m->u.audit.b)) != 0)
        return r;
    if (m->u.audit.kind == WIRE_AUDIT_INCLUSION ? m->u.audit.a >= m->u.audit.b
        : m->u.audit.kind == WIRE_AUDIT_CONSISTENCY
            ? m->u.audit.a == 0 || m->u.audit.a > m->u.audit.b
            : 1)
        return VERR_BAD_FORMAT;
    if (m->type == WIRE_AUDIT_PROOF_GET)
        return 0;
    if (m->u.audit.kind == WIRE_AUDIT_INCLUSION) {
        if ((r = buf_get_view(b, WIRE_AUDIT_RECORD_LEN, &v)) != 0)
            return r;
        m->u.audit.bytes = buf_data(&v);
        m->u.audit.len = WIRE_AUDIT_RECORD_LEN;
    }
    if ((r = buf_get_u8(b, &n8)) != 0)
        return r;
    if (n8 > WIRE_AUDIT_PROOF_MAX)
        return VERR_TOO_LARGE;
    m->u.audit.n = n8;
    m->u.audit.hashes = buf_rptr(b);
    return buf_get_view(b, (size_t)n8 * WIRE_AUDIT_HASH_LEN, &v);
}

/* ATTACH_*: the fields of struct wire_attach its type carries, each in its range. */
static int get_attach(struct buf *b, struct wire_msg *m)
{
    struct wire_attach *a = &m->u.attach;
    struct buf v;
    uint16_t n16;
    int r;

    if ((r = buf_get_bytes(b, a->att, WIRE_ID_LEN)) != 0)
        return r;
    switch (m->type) {
    case WIRE_ATTACH_OPEN:
        if ((r = buf_get_u64(b, &a->ct_size)) != 0 || (r = buf_get_u32(b, &a->c)) != 0 ||
            (r = buf_get_u8(b, &a->precedence)) != 0 || (r = buf_get_u64(b, &a->expiry)) != 0 ||
            (r = buf_get_u16(b, &n16)) != 0)
            return r;
        if (a->ct_size < WIRE_ATT_CT_MIN || a->c == 0 || a->precedence >= WIRE_PRECEDENCE_COUNT ||
            n16 == 0)
            return VERR_BAD_FORMAT;
        if (a->ct_size > WIRE_ATT_CT_MAX || a->c > WIRE_ATT_CHUNKS_MAX || n16 > WIRE_ATT_RCPT_MAX)
            return VERR_TOO_LARGE;
        a->n_rcpt = n16;
        a->rcpt = buf_rptr(b);
        return buf_get_view(b, (size_t)n16 * DEVICE_ID_LEN, &v);
    case WIRE_ATTACH_STATE:
        if ((r = buf_get_u16(b, &a->reason)) != 0 || (r = buf_get_u32(b, &a->c)) != 0 ||
            (r = buf_get_u32(b, &a->stored)) != 0)
            return r;
        if (a->reason > WIRE_R_MAX || a->c > WIRE_ATT_CHUNKS_MAX || a->stored > a->c)
            return VERR_BAD_FORMAT;
        return 0;
    case WIRE_ATTACH_PUT:
    case WIRE_ATTACH_CHUNK:
        if ((r = buf_get_u32(b, &a->i)) != 0 ||
            (m->type == WIRE_ATTACH_CHUNK && (r = buf_get_u32(b, &a->c)) != 0) ||
            (r = buf_get_u32(b, &a->ct_len)) != 0)
            return r;
        if (a->i >= WIRE_ATT_CHUNKS_MAX ||
            (m->type == WIRE_ATTACH_CHUNK && (a->c > WIRE_ATT_CHUNKS_MAX || a->i >= a->c)) ||
            a->ct_len == 0)
            return VERR_BAD_FORMAT;
        /* a chunk is never longer than WIRE_ATT_CHUNK_CT: refused before reading */
        if (a->ct_len > WIRE_ATT_CHUNK_CT)
            return VERR_TOO_LARGE;
        a->ct = buf_rptr(b);
        return buf_get_view(b, a->ct_len, &v);
    case WIRE_ATTACH_PUT_ACK:
        if ((r = buf_get_u32(b, &a->i)) != 0 || (r = buf_get_u16(b, &a->reason)) != 0)
            return r;
        return a->i >= WIRE_ATT_CHUNKS_MAX || a->reason > WIRE_R_MAX ? VERR_BAD_FORMAT : 0;
    case WIRE_ATTACH_GET:
        if ((r = buf_get_u32(b, &a->i)) != 0)
            return r;
        return a->i > WIRE_ATT_CHUNKS_MAX ? VERR_BAD_FORMAT : 0;
    case WIRE_ATTACH_CHUNK_ACK:
        if ((r = buf_get_u32(b, &a->i)) != 0)
            return r;
        return a->i >= WIRE_ATT_CHUNKS_MAX ? VERR_BAD_FORMAT : 0;
    case WIRE_ATTACH_DONE:
        return 0;
    default:
        return VERR_BAD_FORMAT;
    }
}

static int get_body(struct buf *b, struct wire_msg *m)
{
    struct buf v;
    uint16_t n16;
    uint8_t n8;
    int r;

    switch (m->type) {
    case WIRE_HELLO:
        return buf_get_bytes(b, m->u.client_nonce, WIRE_NONCE_LEN);
    case WIRE_CHALLENGE:
        if ((r = buf_get_bytes(b, m->u.challenge.nonce, WIRE_NONCE_LEN)) != 0 ||
            (r = buf_get_view16(b, RELAYCERT_MAX_LEN, &v)) != 0)
            return r;
        if (buf_size(&v) < RELAYCERT_MIN_LEN)
            return VERR_BAD_FORMAT;
        m->u.challenge.relay_cert = buf_data(&v);
        m->u.challenge.relay_cert_len = buf_size(&v);
        return buf_get_bytes(b, m->u.challenge.sig, SIG_LEN);
    case WIRE_AUTH:
        if ((r = get_cert_bytes(b, &m->u.auth.cert, &m->u.auth.cert_len)) != 0)
            return r;
        return buf_get_bytes(b, m->u.auth.sig, SIG_LEN);
    case WIRE_AUTH_OK:
        if ((r = buf_get_u64(b, &m->u.auth_ok.dir_version)) != 0 ||
            (r = buf_get_u64(b, &m->u.auth_ok.time)) != 0 ||
            (r = buf_get_bytes(b, m->u.auth_ok.hi_submitted, WIRE_ID_LEN)) != 0)
            return r;
        return buf_get_bytes(b, m->u.auth_ok.hi_acked, WIRE_ID_LEN);
    case WIRE_ERROR:
        if ((r = buf_get_u16(b, &m->u.error.reason)) != 0)
            return r;
        if (m->u.error.reason == WIRE_R_OK || m->u.error.reason > WIRE_R_MAX)
            return VERR_BAD_FORMAT;
        /* An empty text is allowed: peek at the length so 0 is not refused. */
        if ((r = buf_get_u8(b, &n8)) != 0)
            return r;
        if (n8 > WIRE_ERROR_TEXT_MAX)
            return VERR_TOO_LARGE;
        if ((r = buf_get_view(b, n8, &v)) != 0)
            return r;
        for (size_t i = 0; i < n8; i++) {
            uint8_t c = buf_data(&v)[i];
            if (c < 0x20 || c == 0x7f)
                return VERR_BAD_FORMAT;
        }
        if (n8 > 0)
            memcpy(m->u.error.text, buf_data(&v), n8);
        m->u.error.text[n8] = '\0';
        return 0;
    case WIRE_DIRECTORY_GET:
        return 0;
    case WIRE_DIRECTORY:
    case WIRE_DIRECTORY_PUT:
        if ((r = buf_get_view32(b, WIRE_DIR_MAX, &v)) != 0)
            return r;
        if (buf_size(&v) == 0)
            return VERR_BAD_FORMAT;
        m->u.directory.bytes = buf_data(&v);
        m->u.directory.len = buf_size(&v);
        return 0;
    case WIRE_DIRECTORY_OK:
        return buf_get_u64(b, &m->u.dir_version);
    case WIRE_PREKEY_UPLOAD:
        if ((r = get_spk(b, &m->u.prekey_upload.spk)) != 0 || (r = buf_get_u16(b, &n16)) != 0)
            return r;
        if (n16 > WIRE_MAX_OTK)
            return VERR_TOO_LARGE;
        m->u.prekey_upload.n_otk = n16;
        m->u.prekey_upload.otk = buf_rptr(b);
        return buf_get_view(b, (size_t)n16 * WIRE_OTK_LEN, &v);
    case WIRE_PREKEY_OK:
    case WIRE_PREKEY_LOW:
        return buf_get_u32(b, &m->u.count);
    case WIRE_BUNDLE_GET:
        return buf_get_bytes(b, m->u.device_id, DEVICE_ID_LEN);
    case WIRE_BUNDLE:
        if ((r = get_cert_bytes(b, &m->u.bundle.cert, &m->u.bundle.cert_len)) != 0 ||
            (r = get_spk(b, &m->u.bundle.spk)) != 0 ||
            (r = buf_get_u8(b, &m->u.bundle.has_otk)) != 0)
            return r;
        if (m->u.bundle.has_otk > 1)
            return VERR_BAD_FORMAT;
        if (!m->u.bundle.has_otk)
            return 0;
        if ((r = buf_get_u32(b, &m->u.bundle.otk_id)) != 0)
            return r;
        return buf_get_bytes(b, m->u.bundle.otk_pk, WIRE_PK_LEN);
    case WIRE_DELIVER_ACK:
        /* Every DELIVER is answered, also one of which nothing was kept (flow control). */
        return get_batch(b, m, 0);
    case WIRE_SUBMIT:
    case WIRE_NON_DELIVERY_ACK:
        return get_batch(b, m, 1);
    case WIRE_DELIVER:
    case WIRE_SUBMIT_ACK:
    case WIRE_NON_DELIVERY:
        return get_batch(b, m, 1);
    case WIRE_AUDIT_CHECKPOINT_GET:
    case WIRE_QUEUE_EMPTY:
        return 0;
    case WIRE_AUDIT_CHECKPOINT:
        if ((r = buf_get_view32(b, WIRE_AUDIT_NOTE_MAX, &v)) != 0)
            return r;
        if (buf_size(&v) == 0)
            return VERR_BAD_FORMAT;
        m->u.audit.bytes = buf_data(&v);
        m->u.audit.len = buf_size(&v);
        return 0;
    case WIRE_AUDIT_PROOF_GET:
    case WIRE_AUDIT_PROOF:
        return get_audit_proof(b, m);
    case WIRE_ATTACH_OPEN:
    case WIRE_ATTACH_STATE:
    case WIRE_ATTACH_PUT:
    case WIRE_ATTACH_PUT_ACK:
    case WIRE_ATTACH_GET:
    case WIRE_ATTACH_CHUNK:
    case WIRE_ATTACH_CHUNK_ACK:
    case WIRE_ATTACH_DONE:
        return get_attach(b, m);
    default:
        return VERR_BAD_FORMAT;
    }
}

int wire_decode(const uint8_t *p, size_t len, struct wire_msg *m)
{
    struct buf b;
    uint8_t version;
    int r;

    memset(m, 0, sizeof(*m));
    buf_view(&b, p, len);
    if ((r = buf_get_u8(&b, &version)) != 0)
        return r;
    if (version != WIRE_VERSION)
        return VERR_BAD_VERSION;
    if ((r = buf_get_u8(&b, &m->type)) != 0 || (r = get_body(&b, m)) != 0 ||
        (r = buf_expect_end(&b)) != 0) {
        memset(m, 0, sizeof(*m));
        return r;
    }
    return 0;
}

void wire_iter_init(struct wire_iter *it, const struct wire_msg *m)
{
    if (m->type == WIRE_PREKEY_UPLOAD)
        buf_view(&it->p_b, m->u.prekey_upload.otk, m->u.prekey_upload.n_otk * WIRE_OTK_LEN);
    else
        buf_view(&it->p_b, m->u.batch.items, m->u.batch.len);
}

int wire_next_envelope(struct wire_iter *it, struct wire_envelope *e)
{
    return get_envelope(&it->p_b, e);
}

int wire_next_ack(struct wire_iter *it, struct wire_ack *a)
{
    return get_ack(&it->p_b, a);
}

int wire_next_nd(struct wire_iter *it, struct wire_nd *nd)
{
    return get_nd(&it->p_b, nd);
}

int wire_next_id(struct wire_iter *it, uint8_t id[static WIRE_ID_LEN])
{
    return buf_get_bytes(&it->p_b, id, WIRE_ID_LEN);
}

int wire_next_otk(struct wire_iter *it, uint32_t *id, uint8_t pk[static WIRE_PK_LEN])
{
    int r;

    if ((r = buf_get_u32(&it->p_b, id)) != 0)
        return r;
    return buf_get_bytes(&it->p_b, pk, WIRE_PK_LEN);
}

/* ---- encoding ---- */

static int put_header(struct buf *out, uint8_t type)
{
    int r;

    if ((r = buf_put_u8(out, WIRE_VERSION)) != 0)
        return r;
    return buf_put_u8(out, type);
}

/* Every encoder: on failure the buffer is cut back to where it was. */
#define WIRE_ENCODE_END(out, save, r)                                                              \
    do {                                                                                           \
        if ((r) != 0)                                                                              \
            buf_truncate((out), (save));                                                           \
        return (r);                                                                                \
    } while (0)

int wire_put_hello(struct buf *out, const uint8_t client_nonce[static WIRE_NONCE_LEN])
{
    size_t save = buf_size(out);
    int r;

    if ((r = put_header(out, WIRE_HELLO)) == 0)
        r = buf_put_bytes(out, client_nonce, WIRE_NONCE_LEN);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_challenge(struct buf *out, const uint8_t nonce[static WIRE_NONCE_LEN],
                       const uint8_t *relay_cert, size_t relay_cert_len,
                       const uint8_t sig[static SIG_LEN])
{
    size_t save = buf_size(out);
    int r;

    if (relay_cert_len < RELAYCERT_MIN_LEN || relay_cert_len > RELAYCERT_MAX_LEN)
        return VERR_USAGE;
    if ((r = put_header(out, WIRE_CHALLENGE)) == 0 &&
        (r = buf_put_bytes(out, nonce, WIRE_NONCE_LEN)) == 0 &&
        (r = buf_put_bytes16(out, relay_cert, relay_cert_len)) == 0)
        r = buf_put_bytes(out, sig, SIG_LEN);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_auth(struct buf *out, const uint8_t *cert, size_t cert_len,
                  const uint8_t sig[static SIG_LEN])
{
    size_t save = buf_size(out);
    int r;

    if (cert_len > CERT_MAX_LEN)
        return VERR_TOO_LARGE;
    if ((r = put_header(out, WIRE_AUTH)) == 0 && (r = buf_put_bytes16(out, cert, cert_len)) == 0)
        r = buf_put_bytes(out, sig, SIG_LEN);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_auth_ok(struct buf *out, uint64_t dir_version, uint64_t time,
                     const uint8_t hi_submitted[static WIRE_ID_LEN],
                     const uint8_t hi_acked[static WIRE_ID_LEN])
{
    size_t save = buf_size(out);
    int r;

    if ((r = put_header(out, WIRE_AUTH_OK)) == 0 && (r = buf_put_u64(out, dir_version)) == 0 &&
        (r = buf_put_u64(out, time)) == 0 &&
        (r = buf_put_bytes(out, hi_submitted, WIRE_ID_LEN)) == 0)
        r = buf_put_bytes(out, hi_acked, WIRE_ID_LEN);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_error(struct buf *out, uint16_t reason, const char *text)
{
    size_t save = buf_size(out);
    size_t n = 0;
    int r;

    if (reason == WIRE_R_OK || reason > WIRE_R_MAX)
        return VERR_USAGE;
    if (text != NULL) {
        while (text[n] != '\0' && n < WIRE_ERROR_TEXT_MAX) {
            if ((unsigned char)text[n] < 0x20 || text[n] == 0x7f)
                return VERR_USAGE;
            n++;
        }
    }
    if ((r = put_header(out, WIRE_ERROR)) == 0 && (r = buf_put_u16(out, reason)) == 0 &&
        (r = buf_put_u8(out, (uint8_t)n)) == 0)
        r = buf_put_bytes(out, (const uint8_t *)text, n);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_directory(struct buf *out, uint8_t type, const uint8_t *p, size_t len)
{
    size_t save = buf_size(out);
    int r;

    if (type == WIRE_DIRECTORY_GET) {
        r = put_header(out, type);
        WIRE_ENCODE_END(out, save, r);
    }
    if ((type != WIRE_DIRECTORY && type != WIRE_DIRECTORY_PUT) || len == 0)
        return VERR_USAGE;
    if (len > WIRE_DIR_MAX)
        return VERR_TOO_LARGE;
    if ((r = put_header(out, type)) == 0)
        r = buf_put_bytes32(out, p, len);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_directory_ok(struct buf *out, uint64_t version)
{
    size_t save = buf_size(out);
    int r;

    if ((r = put_header(out, WIRE_DIRECTORY_OK)) == 0)
        r = buf_put_u64(out, version);
    WIRE_ENCODE_END(out, save, r);
}

static int put_spk(struct buf *out, const struct wire_signed_prekey *spk)
{
    int r;

    if ((r = buf_put_u32(out, spk->id)) != 0 || (r = buf_put_bytes(out, spk->pk, WIRE_PK_LEN)) != 0)
        return r;
    return buf_put_bytes(out, spk->sig, SIG_LEN);
}

int wire_put_prekey_upload(struct buf *out, const struct wire_signed_prekey *spk,
                           const uint8_t *otk, size_t n)
{
    size_t save = buf_size(out);
    int r;

    if (n > WIRE_MAX_OTK)
        return VERR_TOO_LARGE;
    if ((r = put_header(out, WIRE_PREKEY_UPLOAD)) == 0 && (r = put_spk(out, spk)) == 0 &&
        (r = buf_put_u16(out, (uint16_t)n)) == 0)
        r = buf_put_bytes(out, otk, n * WIRE_OTK_LEN);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_count(struct buf *out, uint8_t type, uint32_t count)
{
    size_t save = buf_size(out);
    int r;

    if (type != WIRE_PREKEY_OK && type != WIRE_PREKEY_LOW)
        return VERR_USAGE;
    if ((r = put_header(out, type)) == 0)
        r = buf_put_u32(out, count);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_bundle_get(struct buf *out, const uint8_t device_id[static DEVICE_ID_LEN])
{
    size_t save = buf_size(out);
    int r;

    if ((r = put_header(out, WIRE_BUNDLE_GET)) == 0)
        r = buf_put_bytes(out, device_id, DEVICE_ID_LEN);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_bundle(struct buf *out, const uint8_t *cert, size_t cert_len,
                    const struct wire_signed_prekey *spk, uint32_t otk_id, const uint8_t *otk_pk)
{
    size_t save = buf_size(out);
    int r;

    if (cert_len > CERT_MAX_LEN)
        return VERR_TOO_LARGE;
    if ((r = put_header(out, WIRE_BUNDLE)) != 0 || (r = buf_put_bytes16(out, cert, cert_len)) != 0 ||
        (r = put_spk(out, spk)) != 0 || (r = buf_put_u8(out, otk_pk != NULL)) != 0)
        goto out;
    if (otk_pk != NULL && ((r = buf_put_u32(out, otk_id)) != 0 ||
                           (r = buf_put_bytes(out, otk_pk, WIRE_PK_LEN)) != 0))
        goto out;
    r = 0;
out:
    WIRE_ENCODE_END(out, save, r);
}

int wire_batch_begin(struct buf *out, uint8_t type, size_t *count_off)
{
    size_t save = buf_size(out);
    int r;

    if ((r = put_header(out, type)) == 0) {
        *count_off = buf_size(out);
        r = buf_put_u16(out, 0);
    }
    WIRE_ENCODE_END(out, save, r);
}

int wire_batch_end(struct buf *out, size_t count_off, size_t n)
{
    uint8_t *p;

    if (n > WIRE_MAX_BATCH || count_off > buf_size(out) || buf_size(out) - count_off < 2)
        return VERR_USAGE;
    /* out is the caller's writable buffer (never a view): patch the count in place. */
    p = (uint8_t *)(uintptr_t)buf_data(out) + count_off;
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    return 0;
}

int wire_put_envelope(struct buf *out, const struct wire_envelope *e)
{
    size_t save = buf_size(out);
    int r;

    if (e->precedence >= WIRE_PRECEDENCE_COUNT || e->ct_len == 0)
        return VERR_USAGE;
    if (e->ct_len > WIRE_CT_MAX)
        return VERR_TOO_LARGE;
    if ((r = buf_put_bytes(out, e->id, WIRE_ID_LEN)) == 0 &&
        (r = buf_put_bytes(out, e->peer, DEVICE_ID_LEN)) == 0 &&
        (r = buf_put_u8(out, e->precedence)) == 0 && (r = buf_put_u64(out, e->expiry)) == 0)
        r = buf_put_bytes32(out, e->ct, e->ct_len);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_ack(struct buf *out, const struct wire_ack *a)
{
    size_t save = buf_size(out);
    int r;

    if (a->reason > WIRE_R_MAX)
        return VERR_USAGE;
    if ((r = buf_put_bytes(out, a->id, WIRE_ID_LEN)) == 0)
        r = buf_put_u16(out, a->reason);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_nd(struct buf *out, const struct wire_nd *nd)
{
    size_t save = buf_size(out);
    int r;

    if (nd->reason > WIRE_R_MAX)
        return VERR_USAGE;
    if ((r = buf_put_bytes(out, nd->id, WIRE_ID_LEN)) == 0 &&
        (r = buf_put_bytes(out, nd->recipient, DEVICE_ID_LEN)) == 0)
        r = buf_put_u16(out, nd->reason);
    WIRE_ENCODE_END(out, save, r);
}

static int check_batch_n(size_t n)
{
    if (n == 0)
        return VERR_USAGE;
    return n > WIRE_MAX_BATCH ? VERR_TOO_LARGE : 0;
}

int wire_put_envelopes(struct buf *out, uint8_t type, const struct wire_envelope *e, size_t n)
{
    size_t save = buf_size(out), off = 0;
    int r;

    if (type != WIRE_SUBMIT && type != WIRE_DELIVER)
        return VERR_USAGE;
    if ((r = check_batch_n(n)) != 0)
        return r;
    if ((r = wire_batch_begin(out, type, &off)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if ((r = wire_put_envelope(out, &e[i])) != 0)
            goto out;
    r = wire_batch_end(out, off, n);
out:
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_submit_ack(struct buf *out, const struct wire_ack *a, size_t n)
{
    size_t save = buf_size(out), off = 0;
    int r;

    if ((r = check_batch_n(n)) != 0)
        return r;
    if ((r = wire_batch_begin(out, WIRE_SUBMIT_ACK, &off)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if ((r = wire_put_ack(out, &a[i])) != 0)
            goto out;
    r = wire_batch_end(out, off, n);
out:
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_ids(struct buf *out, uint8_t type, const uint8_t *ids, size_t n)
{
    size_t save = buf_size(out);
    int r;

    if (type != WIRE_DELIVER_ACK && type != WIRE_NON_DELIVERY_ACK)
        return VERR_USAGE;
    if ((type != WIRE_DELIVER_ACK || n != 0) && (r = check_batch_n(n)) != 0)
        return r;
    if ((r = put_header(out, type)) == 0 && (r = buf_put_u16(out, (uint16_t)n)) == 0)
        r = buf_put_bytes(out, ids, n * WIRE_ID_LEN);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_queue_empty(struct buf *out)
{
    size_t save = buf_size(out);
    int r;

    r = put_header(out, WIRE_QUEUE_EMPTY);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_non_delivery(struct buf *out, const struct wire_nd *nd, size_t n)
{
    size_t save = buf_size(out), off = 0;
    int r;

    if ((r = check_batch_n(n)) != 0)
        return r;
    if ((r = wire_batch_begin(out, WIRE_NON_DELIVERY, &off)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if ((r = wire_put_nd(out, &nd[i])) != 0)
            goto out;
    r = wire_batch_end(out, off, n);
out:
    WIRE_ENCODE_END(out, save, r);
}

int wire_handshake_body(struct buf *out, const char *relay_id,
                        const uint8_t client_nonce[static WIRE_NONCE_LEN],
                        const uint8_t server_nonce[static WIRE_NONCE_LEN],
                        const uint8_t binding[static WIRE_BINDING_LEN])
{
    size_t save = buf_size(out);
    int r;

    if (strlen(relay_id) == 0 || strlen(relay_id) > WIRE_RELAY_ID_MAX)
        return VERR_TOO_LARGE;
    if ((r = buf_put_str8(out, relay_id)) == 0 &&
        (r = buf_put_bytes(out, client_nonce, WIRE_NONCE_LEN)) == 0 &&
        (r = buf_put_bytes(out, server_nonce, WIRE_NONCE_LEN)) == 0)
        r = buf_put_bytes(out, binding, WIRE_BINDING_LEN);
    WIRE_ENCODE_END(out, save, r);
}

int wire_put_audit_checkpoint(struct buf *out, uint8_t type, const uint8_t *note, size_t len)
{
    size_t save = buf_size(out);
    int r;

    if (type != WIRE_AUDIT_CHECKPOINT_GET &&
        (type != WIRE_AUDIT_CHECKPOINT || len == 0 || len > WIRE_AUDIT_NOTE_MAX))
        return VERR_USAGE;
    if ((r = buf_put_u8(out, WIRE_VERSION)) != 0 || (r = buf_put_u8(out, type)) != 0 ||
        (type == WIRE_AUDIT_CHECKPOINT && (r = buf_put_bytes32(out, note, len)) != 0))
        buf_truncate(out, save);
    return r;
}

static int put_audit_head(struct buf *out, uint8_t type, uint8_t kind, uint64_t a, uint64_t b)
{
    if (kind == WIRE_AUDIT_INCLUSION ? a >= b
        : kind == WIRE_AUDIT_CONSISTENCY ? a == 0 || a > b
                                         : 1)
        return VERR_USAGE;
    if (buf_put_u8(out, WIRE_VERSION) != 0 || buf_put_u8(out, type) != 0 ||
        buf_put_u8(out, kind) != 0 || buf_put_u64(out, a) != 0 || buf_put_u64(out, b) != 0)
        return VERR_TOO_LARGE;
    return 0;
}

int wire_put_audit_proof_get(struct buf *out, uint8_t kind, uint64_t a, uint64_t b)
{
    size_t save = buf_size(out);
    int r;

    if ((r = put_audit_head(out, WIRE_AUDIT_PROOF_GET, kind, a, b)) != 0)
        buf_truncate(out, save);
    return r;
}

int wire_put_audit_proof(struct buf *out, uint8_t kind, uint64_t a, uint64_t b,
                         const uint8_t *record, const uint8_t *hashes, size_t n)
{
    size_t save = buf_size(out);
    int r;

    if (n > WIRE_AUDIT_PROOF_MAX || (kind == WIRE_AUDIT_INCLUSION) != (record != NULL))
        return VERR_USAGE;
    if ((r = put_audit_head(out, WIRE_AUDIT_PROOF, kind, a, b)) != 0 ||
        (record != NULL && (r = buf_put_bytes(out, record, WIRE_AUDIT_RECORD_LEN)) != 0) ||
        (r = buf_put_u8(out, (uint8_t)n)) != 0 ||
        (n > 0 && (r = buf_put_bytes(out, hashes, n * WIRE_AUDIT_HASH_LEN)) != 0))
        buf_truncate(out, save);
    return r;
}

/* What get_attach accepts, checked before anything is written. */
static int attach_check(uint8_t type, const struct wire_attach *a)
{
    switch (type) {
    case WIRE_ATTACH_OPEN:
        if (a->ct_size < WIRE_ATT_CT_MIN || a->ct_size > WIRE_ATT_CT_MAX || a->c == 0 ||
            a->c > WIRE_ATT_CHUNKS_MAX || a->precedence >= WIRE_PRECEDENCE_COUNT ||
            a->n_rcpt == 0 || a->n_rcpt > WIRE_ATT_RCPT_MAX || a->rcpt == NULL)
            return VERR_USAGE;
        return 0;
    case WIRE_ATTACH_STATE:
        return a->reason > WIRE_R_MAX || a->c > WIRE_ATT_CHUNKS_MAX || a->stored > a->c
                   ? VERR_USAGE
                   : 0;
    case WIRE_ATTACH_PUT:
    case WIRE_ATTACH_CHUNK:
        if (a->i >= WIRE_ATT_CHUNKS_MAX || a->ct_len == 0 || a->ct_len > WIRE_ATT_CHUNK_CT ||
            a->ct == NULL ||
            (type == WIRE_ATTACH_CHUNK && (a->c > WIRE_ATT_CHUNKS_MAX || a->i >= a->c)))
            return VERR_USAGE;
        return 0;
    case WIRE_ATTACH_PUT_ACK:
        return a->i >= WIRE_ATT_CHUNKS_MAX || a->reason > WIRE_R_MAX ? VERR_USAGE : 0;
    case WIRE_ATTACH_GET:
        return a->i > WIRE_ATT_CHUNKS_MAX ? VERR_USAGE : 0;
    case WIRE_ATTACH_CHUNK_ACK:
        return a->i >= WIRE_ATT_CHUNKS_MAX ? VERR_USAGE : 0;
    case WIRE_ATTACH_DONE:
        return 0;
    default:
        return VERR_USAGE;
    }
}

int wire_put_attach(struct buf *out, uint8_t type, const struct wire_attach *a)
{
    size_t save = buf_size(out);
    int r;

    if ((r = attach_check(type, a)) != 0)
        return r;
    if ((r = put_header(out, type)) != 0 || (r = buf_put_bytes(out, a->att, WIRE_ID_LEN)) != 0)
        goto out;
    switch (type) {
    case WIRE_ATTACH_OPEN:
        if ((r = buf_put_u64(out, a->ct_size)) != 0 || (r = buf_put_u32(out, a->c)) != 0 ||
            (r = buf_put_u8(out, a->precedence)) != 0 || (r = buf_put_u64(out, a->expiry)) != 0 ||
            (r = buf_put_u16(out, (uint16_t)a->n_rcpt)) != 0)
            goto out;
        r = buf_put_bytes(out, a->rcpt, a->n_rcpt * DEVICE_ID_LEN);
        break;
    case WIRE_ATTACH_STATE:
        if ((r = buf_put_u16(out, a->reason)) == 0 && (r = buf_put_u32(out, a->c)) == 0)
            r = buf_put_u32(out, a->stored);
        break;
    case WIRE_ATTACH_PUT:
    case WIRE_ATTACH_CHUNK:
        if ((r = buf_put_u32(out, a->i)) != 0 ||
            (type == WIRE_ATTACH_CHUNK && (r = buf_put_u32(out, a->c)) != 0))
            goto out;
        r = buf_put_bytes32(out, a->ct, a->ct_len);
        break;
    case WIRE_ATTACH_PUT_ACK:
        if ((r = buf_put_u32(out, a->i)) == 0)
            r = buf_put_u16(out, a->reason);
        break;
    case WIRE_ATTACH_GET:
    case WIRE_ATTACH_CHUNK_ACK:
        r = buf_put_u32(out, a->i);
        break;
    default: /* DONE: the id alone */
        r = 0;
        break;
    }
out:
    WIRE_ENCODE_END(out, save, r);
}

const char *wire_type_name(uint8_t type)
{
    switch (type) {
    case WIRE_CHALLENGE: return "challenge";
    case WIRE_AUTH: return "auth";
    case WIRE_AUTH_OK: return "auth_ok";
    case WIRE_ERROR: return "error";
    case WIRE_HELLO: return "hello";
    case WIRE_DIRECTORY_GET: return "directory_get";
    case WIRE_DIRECTORY: return "directory";
    case WIRE_DIRECTORY_PUT: return "directory_put";
    case WIRE_DIRECTORY_OK: return "directory_ok";
    case WIRE_PREKEY_UPLOAD: return "prekey_upload";
    case WIRE_PREKEY_OK: return "prekey_ok";
    case WIRE_BUNDLE_GET: return "bundle_get";
    case WIRE_BUNDLE: return "bundle";
    case WIRE_PREKEY_LOW: return "prekey_low";
    case WIRE_SUBMIT: return "submit";
    case WIRE_SUBMIT_ACK: return "submit_ack";
    case WIRE_DELIVER: return "deliver";
    case WIRE_DELIVER_ACK: return "deliver_ack";
    case WIRE_NON_DELIVERY: return "non_delivery";
    case WIRE_NON_DELIVERY_ACK: return "non_delivery_ack";
    case WIRE_QUEUE_EMPTY: return "queue_empty";
    case WIRE_AUDIT_CHECKPOINT_GET: return "audit_checkpoint_get";
    case WIRE_AUDIT_CHECKPOINT: return "audit_checkpoint";
    case WIRE_AUDIT_PROOF_GET: return "audit_proof_get";
    case WIRE_AUDIT_PROOF: return "audit_proof";
    case WIRE_ATTACH_OPEN: return "attach_open";
    case WIRE_ATTACH_STATE: return "attach_state";
    case WIRE_ATTACH_PUT: return "attach_put";
    case WIRE_ATTACH_PUT_ACK: return "attach_put_ack";
    case WIRE_ATTACH_GET: return "attach_get";
    case WIRE_ATTACH_CHUNK: return "attach_chunk";
    case WIRE_ATTACH_CHUNK_ACK: return "attach_chunk_ack";
    case WIRE_ATTACH_DONE: return "attach_done";
    default: return "unknown";
    }
}

const char *wire_reason_name(uint16_t reason)
{
    static const char *const names[] = {
        "ok", "malformed", "version", "not_authenticated", "unexpected", "bad_signature",
        "wrong_org", "cert_expired", "cert_not_yet_valid", "revoked", "bad_cert",
        "frame_too_large", "envelope_too_large", "batch_too_large", "queue_full",
        "rate_limited", "too_many_connections", "too_many_device_connections", "timeout",
        "storage_full", "storage_error", "expired", "unknown_device", "directory_old",
        "directory_invalid", "id_conflict", "no_prekeys", "shutting_down", "bad_precedence",
        "channel_binding", "attachment_unknown", "attachment_too_large", "chunk_invalid",
    };
    _Static_assert(sizeof(names) / sizeof(names[0]) == WIRE_R_MAX + 1, "one name per reason");

    return reason <= WIRE_R_MAX ? names[reason] : "unknown";
}
