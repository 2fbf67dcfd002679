/* inner.c - the signed inner message (see inner.h, PROTOCOL.md, part 4 "Inner message"). */
#include "inner.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "address.h"
#include "sig.h"
#include "utf8.h"

_Static_assert((int)INNER_ADDRESS_MAX == (int)ADDR_TEXT_MAX, "address text fits the inner field");
_Static_assert((int)INNER_ADDRESSES_MAX == (int)ADDR_LIST_MAX, "one address list size");
_Static_assert(INNER_MAX_LEN < (1 << 20), "inner message fits one ratchet message");
_Static_assert(INNER_RECEIPT_LEN_MAX < INNER_MAX_LEN, "a receipt fits where a message does");
_Static_assert(INNER_RECEIPT_MAX <= UINT16_MAX, "receipt count is a u16");
_Static_assert(INNER_MAX_LEN < 256 * 1024, "an envelope stays under the relay's 256 KiB default");

static const char *const prec_names[] = {"FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"};

const char *inner_precedence_name(uint8_t p)
{
    return p <= INNER_PRECEDENCE_MAX ? prec_names[p] : "?";
}

void inner_addresses_text(const struct inner *m, char *out, size_t outsz)
{
    size_t pos = 0;

    if (outsz == 0)
        return;
    out[0] = 0;
    for (size_t i = 0; i < m->naddr && i < INNER_ADDRESSES_MAX; i++) {
        int n = snprintf(out + pos, outsz - pos, "%s%s", i > 0 ? ", " : "", m->address[i]);
        if (n < 0 || (size_t)n >= outsz - pos)
            return; /* cut short: outsz was below INNER_TO_TEXT_MAX + 1 */
        pos += (size_t)n;
    }
}

int inner_precedence_parse(const char *s, uint8_t *p)
{
    for (uint8_t i = 0; i <= INNER_PRECEDENCE_MAX; i++)
        if (strcmp(s, prec_names[i]) == 0) {
            *p = i;
            return 0;
        }
    return VERR_BAD_FORMAT;
}

int inner_valid_label(const char *s)
{
    size_t n = strnlen(s, INNER_LABEL_MAX + 1);

    if (n == 0 || n > INNER_LABEL_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' || c == '/' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Subjects are one line of well-formed UTF-8 without C0, C1 or
 * bidirectional controls (utf8.h; PROTOCOL.md part 1 "Text fields"). */
int inner_valid_subject(const uint8_t *p, size_t n)
{
    return n == 0 || utf8_is_safe_text(p, n, 0);
}

/* The trailing attachment section of a type 1 message (PROTOCOL.md part 4 "Attachments"). */
static int inner_put_attachments(const struct inner *m, struct buf *out)
{
    struct buf v;
    size_t n;
    int r;

    if (m->attach_section_len == 0)
        return buf_put_u8(out, 0);
    if (m->attach_section == NULL || m->attach_section_len > ATTACH_SECTION_MAX)
        return VERR_BAD_FORMAT;
    /* only a section the parser accepts is signed */
    buf_view(&v, m->attach_section, m->attach_section_len);
    if ((r = attach_section_parse(&v, NULL, &n)) != 0 || (r = buf_expect_end(&v)) != 0)
        return r;
    return buf_put_bytes(out, m->attach_section, m->attach_section_len);
}

static int inner_get_attachments(struct buf *b, struct inner *m)
{
    const uint8_t *start = buf_rptr(b);
    size_t off = buf_offset(b), n;
    int r;

    if ((r = attach_section_parse(b, NULL, &n)) != 0)
        return r;
    m->attach_section = start;
    m->attach_section_len = buf_offset(b) - off;
    m->n_attach = (uint8_t)n;
    return 0;
}

static int inner_check_fields(const struct inner *m)
{
    struct address a;

    if (!cert_valid_role(m->role))
        return VERR_BAD_FORMAT;
    if (m->type == INNER_TYPE_MESSAGE) {
        if (m->precedence > INNER_PRECEDENCE_MAX || !inner_valid_label(m->label) ||
            m->subject_len > INNER_SUBJECT_MAX || m->content_len > INNER_CONTENT_MAX ||
            (m->subject_len > 0 && m->subject == NULL) ||
            (m->content_len > 0 && m->content == NULL) ||
            !inner_valid_subject(m->subject, m->subject_len))
            return VERR_BAD_FORMAT;
        /* 1..16 addresses, each in canonical text, no two alike (PROTOCOL.md part 4
         * section 1): one encoding per list, so only it is signed. */
        if (m->naddr == 0 || m->naddr > INNER_ADDRESSES_MAX)
            return VERR_BAD_FORMAT;
        for (size_t i = 0; i < m->naddr; i++) {
            char canon[ADDR_TEXT_MAX + 1];
            if (addr_parse(m->address[i], &a) != 0 ||
                addr_format(&a, canon, sizeof(canon)) != 0 || strcmp(canon, m->address[i]) != 0)
                return VERR_BAD_FORMAT;
            for (size_t j = 0; j < i; j++)
                if (strcmp(m->address[j], m->address[i]) == 0)
                    return VERR_BAD_FORMAT;
        }
    } else if (m->type == INNER_TYPE_RECEIPT) {
        /* 1..256 entries, kinds 1..3, no message id twice: one encoding per set. */
        if (m->nref == 0 || m->nref > INNER_RECEIPT_MAX)
            return VERR_BAD_FORMAT;
        for (size_t i = 0; i < m->nref; i++) {
            if (m->receipt_kind[i] < INNER_RECEIPT_DELIVERED ||
                m->receipt_kind[i] > INNER_RECEIPT_BOTH)
                return VERR_BAD_FORMAT;
            for (size_t j = 0; j < i; j++)
                if (memcmp(m->ref_id[i], m->ref_id[j], INNER_ID_LEN) == 0)
                    return VERR_BAD_FORMAT;
        }
    } else {
        return VERR_BAD_FORMAT;
    }
    return 0;
}

int inner_sign_encode(struct inner *m, const uint8_t sign_sk[static SIG_SK_LEN], struct buf *out)
{
    size_t start = buf_size(out);
    int r;

    if ((r = inner_check_fields(m)) != 0)
        return r;
    if ((r = buf_put_u8(out, INNER_VERSION)) != 0 || (r = buf_put_u8(out, m->type)) != 0 ||
        (r = buf_put_bytes(out, m->id, INNER_ID_LEN)) != 0 ||
        (r = buf_put_bytes(out, m->sender, DEVICE_ID_LEN)) != 0 ||
        (r = buf_put_str8(out, m->role)) != 0 || (r = buf_put_u64(out, m->time)) != 0)
        goto fail;
    if (m->type == INNER_TYPE_MESSAGE) {
        if ((r = buf_put_u8(out, (uint8_t)m->naddr)) != 0)
            goto fail;
        for (size_t i = 0; i < m->naddr; i++)
            if ((r = buf_put_str8(out, m->address[i])) != 0)
                goto fail;
        if ((r = buf_put_u8(out, m->precedence)) != 0 ||
            (r = buf_put_str8(out, m->label)) != 0 ||
            (r = buf_put_bytes16(out, m->subject, m->subject_len)) != 0 ||
            (r = buf_put_bytes32(out, m->content, m->content_len)) != 0 ||
            (r = inner_put_attachments(m, out)) != 0)
            goto fail;
    } else {
        if ((r = buf_put_u16(out, (uint16_t)m->nref)) != 0)
            goto fail;
        for (size_t i = 0; i < m->nref; i++)
            if ((r = buf_put_bytes(out, m->ref_id[i], INNER_ID_LEN)) != 0 ||
                (r = buf_put_u8(out, m->receipt_kind[i])) != 0)
                goto fail;
    }
    if ((r = sig_sign(m->sig, SIG_CTX_MESSAGE, buf_data(out) + start, buf_size(out) - start,
                      sign_sk)) != 0 ||
        (r = buf_put_bytes(out, m->sig, SIG_LEN)) != 0)
        goto fail;
    return 0;
fail:
    buf_truncate(out, start);
    return r;
}

static size_t floor_log2(size_t v)
{
    size_t e = 0;

    while (v >>= 1)
        e++;
    return e;
}

/* Padme (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
 * Communication with PURBs", PoPETs 2019, section 4): E = floor(log2 L),
 * S = floor(log2 E) + 1, the low E - S bits rounded up. */
size_t inner_padded_len(size_t n)
{
    size_t l = n + 1, e, s, mask;

    if (l <= INNER_PAD_MIN)
        return INNER_PAD_MIN;
    e = floor_log2(l);
    s = floor_log2(e) + 1;
    mask = ((size_t)1 << (e - s)) - 1;
    return (l + mask) & ~mask;
}

_Static_assert(INNER_MAX_LEN < (1 << 18), "E <= 17, S = 5: Padme adds at most 2^12 - 1 bytes");
_Static_assert(INNER_PAD_MIN >= 256, "Padme is applied where E >= 8, so E - S >= 4");
/* Padded, with a prekey message's 95 bytes, the ratchet's 86 and the envelope's 45, a
 * message still fits the relay's default --max-envelope of 256 KiB. */
_Static_assert(INNER_PADDED_MAX + 95 + 86 + 45 < 256 * 1024, "a padded message fits an envelope");

int inner_pad(const uint8_t *p, size_t n, struct buf *out)
{
    static const uint8_t zeros[256];
    size_t start = buf_size(out), left;
    int r;

    if (n > INNER_MAX_LEN)
        return VERR_TOO_LARGE;
    left = inner_padded_len(n) - n - 1;
    if ((r = buf_put_bytes(out, p, n)) != 0 || (r = buf_put_u8(out, INNER_PAD_MARK)) != 0)
        goto fail;
    while (left > 0) {
        size_t k = left < sizeof(zeros) ? left : sizeof(zeros);
        if ((r = buf_put_bytes(out, zeros, k)) != 0)
            goto fail;
        left -= k;
    }
    return 0;
fail:
    buf_truncate(out, start);
    return r;
}

int inner_unpad(const uint8_t *p, size_t len, size_t *n)
{
    size_t i = len;

    *n = 0;
    if (len < INNER_PAD_MIN || len > INNER_PADDED_MAX)
        return VERR_BAD_FORMAT;
    while (i > 0 && p[i - 1] == 0)
        i--;
    /* The last byte that is not zero is the marker, and the length is the
     * one inner_pad gives: any other padding is refused, not repaired. */
    if (i == 0 || p[i - 1] != INNER_PAD_MARK || inner_padded_len(i - 1) != len)
        return VERR_BAD_FORMAT;
    *n = i - 1;
    return 0;
}

int inner_wire_encode(const uint8_t *p, size_t len, struct buf *out)
{
    struct buf b;
    size_t start = buf_size(out), head;
    uint8_t v, rl;
    int r;

    if (len > INNER_MAX_LEN)
        return VERR_TOO_LARGE;
    buf_view(&b, p, len);
    /* version, type, id | sender id, str8 role | the rest */
    if ((r = buf_get_u8(&b, &v)) != 0)
        return r;
    if (v != INNER_VERSION)
        return VERR_BAD_VERSION;
    if (len < INNER_WIRE_HEAD + DEVICE_ID_LEN + 1)
        return VERR_TRUNCATED;
    rl = p[INNER_WIRE_HEAD + DEVICE_ID_LEN];
    head = INNER_WIRE_HEAD + DEVICE_ID_LEN + 1 + rl;
    if (rl == 0 || rl > ROLE_MAX)
        return VERR_BAD_FORMAT;
    if (len < head)
        return VERR_TRUNCATED;
    {
        /* The transmitted bytes, then padded (PROTOCOL.md part 4 section 2). */
        struct buf t;
        if ((r = buf_init(&t, INNER_MAX_LEN, BUF_SECRET)) != 0)
            return r;
        if ((r = buf_put_bytes(&t, p, INNER_WIRE_HEAD)) != 0 ||
            (r = buf_put_bytes(&t, p + head, len - head)) != 0 ||
            (r = inner_pad(buf_data(&t), buf_size(&t), out)) != 0)
            buf_truncate(out, start);
        buf_free(&t);
    }
    return r;
}

int inner_wire_decode(const uint8_t *p, size_t len, const uint8_t sender[static DEVICE_ID_LEN],
                      const char *role, struct buf *out)
{
    size_t start = buf_size(out);
    int r;

    /* The padding first: exactly inner_pad's, else nothing else is looked at. */
    if ((r = inner_unpad(p, len, &len)) != 0)
        return r;
    if (len < 2)
        return VERR_TRUNCATED;
    if (p[0] != INNER_VERSION)
        return VERR_BAD_VERSION;
    if (p[1] != INNER_TYPE_MESSAGE && p[1] != INNER_TYPE_RECEIPT)
        return VERR_BAD_FORMAT;
    if (len > INNER_MAX_LEN - DEVICE_ID_LEN - 1 - strnlen(role, ROLE_MAX + 1))
        return VERR_TOO_LARGE;
    if (len < INNER_WIRE_HEAD)
        return VERR_TRUNCATED;
    if (!cert_valid_role(role))
        return VERR_USAGE;
    if ((r = buf_put_bytes(out, p, INNER_WIRE_HEAD)) != 0 ||
        (r = buf_put_bytes(out, sender, DEVICE_ID_LEN)) != 0 ||
        (r = buf_put_str8(out, role)) != 0 ||
        (r = buf_put_bytes(out, p + INNER_WIRE_HEAD, len - INNER_WIRE_HEAD)) != 0) {
        buf_truncate(out, start);
        return r;
    }
    return 0;
}

int inner_parse(const uint8_t *p, size_t len, struct inner *m)
{
    struct buf b, part;
    uint8_t version;
    int r;

    memset(m, 0, sizeof(*m));
    if (len > INNER_MAX_LEN)
        return VERR_TOO_LARGE;
    buf_view(&b, p, len);
    if ((r = buf_get_u8(&b, &version)) != 0)
        return r;
    /* 1: kept in a store from before version 2 (never from the wire: inner_wire_decode). */
    if (version != INNER_VERSION && version != INNER_VERSION_1)
        return VERR_BAD_VERSION;
    m->version = version;
    if ((r = buf_get_u8(&b, &m->type)) != 0)
        return r;
    if (m->type != INNER_TYPE_MESSAGE && m->type != INNER_TYPE_RECEIPT)
        return VERR_BAD_FORMAT;
    if ((r = buf_get_bytes(&b, m->id, INNER_ID_LEN)) != 0 ||
        (r = buf_get_bytes(&b, m->sender, DEVICE_ID_LEN)) != 0 ||
        (r = buf_get_str8(&b, m->role, sizeof(m->role), 1, ROLE_MAX)) != 0 ||
        (r = buf_get_u64(&b, &m->time)) != 0)
        return r;
    if (m->type == INNER_TYPE_MESSAGE) {
        uint8_t naddr = 1;

        /* The count is checked before any address is read; version 1 had one address. */
        if (version != INNER_VERSION_1 && (r = buf_get_u8(&b, &naddr)) != 0)
            return r;
        if (naddr == 0 || naddr > INNER_ADDRESSES_MAX)
            return VERR_BAD_FORMAT;
        m->naddr = naddr;
        for (size_t i = 0; i < m->naddr; i++)
            if ((r = buf_get_str8(&b, m->address[i], sizeof(m->address[i]), 1,
                                  INNER_ADDRESS_MAX)) != 0)
                return r;
        if ((r = buf_get_u8(&b, &m->precedence)) != 0 ||
            (r = buf_get_str8(&b, m->label, sizeof(m->label), 1, INNER_LABEL_MAX)) != 0)
            return r;
        if ((r = buf_get_view16(&b, INNER_SUBJECT_MAX, &part)) != 0)
            return r;
        m->subject = buf_data(&part);
        m->subject_len = buf_size(&part);
        if ((r = buf_get_view32(&b, INNER_CONTENT_MAX, &part)) != 0)
            return r;
        m->content = buf_data(&part);
        m->content_len = buf_size(&part);
        /* version 1 had no attachment section */
        if (version != INNER_VERSION_1 && (r = inner_get_attachments(&b, m)) != 0)
            return r;
    } else {
        uint16_t n = 1;

        /* The count is checked before any entry is read; version 1 had one entry. */
        if (version != INNER_VERSION_1 && (r = buf_get_u16(&b, &n)) != 0)
            return r;
        if (n == 0 || n > INNER_RECEIPT_MAX)
            return VERR_BAD_FORMAT;
        m->nref = n;
        for (size_t i = 0; i < m->nref; i++)
            if ((r = buf_get_bytes(&b, m->ref_id[i], INNER_ID_LEN)) != 0 ||
                (r = buf_get_u8(&b, &m->receipt_kind[i])) != 0)
                return r;
    }
    if ((r = buf_get_bytes(&b, m->sig, SIG_LEN)) != 0)
        return r;
    if ((r = buf_expect_end(&b)) != 0)
        return r;
    if (version == INNER_VERSION_1 && m->type == INNER_TYPE_RECEIPT &&
        m->receipt_kind[0] == INNER_RECEIPT_BOTH)
        return VERR_BAD_FORMAT; /* version 1 had kinds 1 and 2 only */
    return inner_check_fields(m);
}

int inner_verify(const uint8_t *p, size_t len, const struct inner *m,
                 const uint8_t from[static DEVICE_ID_LEN], const struct cert *self,
                 const struct directory *d, const struct orgpub *org, uint64_t now,
                 const struct cert **sender_cert)
{
    const struct cert *c;
    struct address a[INNER_ADDRESSES_MAX];
    int r;

    *sender_cert = NULL;
    if (len < SIG_LEN)
        return VERR_TRUNCATED;
    /* The signer is the device the envelope came from: no forwarding of another's message. */
    if (sodium_memcmp(m->sender, from, DEVICE_ID_LEN) != 0)
        return VERR_DENIED;
    if ((c = dir_find_device(d, m->sender)) == NULL)
        return dir_is_revoked(d, 0, m->sender) ? VERR_REVOKED : VERR_UNKNOWN;
    if ((r = dir_check_cert(d, c, org, now)) != 0)
        return r;
    if ((r = sig_verify(m->sig, SIG_CTX_MESSAGE, p, len - SIG_LEN, c->sign_pk)) != 0)
        return r;
    if (strcmp(m->role, c->role) != 0)
        return VERR_DENIED;
    /* A time ahead of the receiver's clock could only be shown wrong: refused (and not
     * acknowledged, so a later sync takes it once the time has come). */
    if (m->time > now && m->time - now > INNER_MAX_FUTURE)
        return VERR_NOT_YET_VALID;
    if (m->type == INNER_TYPE_MESSAGE) {
        if (m->naddr == 0 || m->naddr > INNER_ADDRESSES_MAX)
            return VERR_BAD_FORMAT;
        for (size_t i = 0; i < m->naddr; i++)
            if (addr_parse(m->address[i], &a[i]) != 0)
                return VERR_BAD_FORMAT;
        /* Any one of the addresses covering this device will do. */
        if (!addr_includes_list(a, m->naddr, self, c))
            return VERR_DENIED;
    }
    *sender_cert = c;
    return 0;
}
