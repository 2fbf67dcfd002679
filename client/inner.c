/* inner.c - the signed inner message (see inner.h, PROTOCOL.md, part 4 "Inner message"). */
#include "inner.h"

#include <string.h>

#include <sodium.h>

#include "address.h"
#include "sig.h"
#include "utf8.h"

_Static_assert((int)INNER_ADDRESS_MAX == (int)ADDR_TEXT_MAX, "address text fits the inner field");
_Static_assert(INNER_MAX_LEN < (1 << 20), "inner message fits one ratchet message");
_Static_assert(INNER_MAX_LEN < 256 * 1024, "an envelope stays under the relay's 256 KiB default");

static const char *const prec_names[] = {"FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"};

const char *inner_precedence_name(uint8_t p)
{
    return p <= INNER_PRECEDENCE_MAX ? prec_names[p] : "?";
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
        /* Only the canonical address text is signed. */
        if (addr_parse(m->address, &a) != 0)
            return VERR_BAD_FORMAT;
        {
            char canon[ADDR_TEXT_MAX + 1];
            if (addr_format(&a, canon, sizeof(canon)) != 0 || strcmp(canon, m->address) != 0)
                return VERR_BAD_FORMAT;
        }
    } else if (m->type == INNER_TYPE_RECEIPT) {
        if (m->receipt_kind != INNER_RECEIPT_DELIVERED && m->receipt_kind != INNER_RECEIPT_READ)
            return VERR_BAD_FORMAT;
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
        if ((r = buf_put_str8(out, m->address)) != 0 || (r = buf_put_u8(out, m->precedence)) != 0 ||
            (r = buf_put_str8(out, m->label)) != 0 ||
            (r = buf_put_bytes16(out, m->subject, m->subject_len)) != 0 ||
            (r = buf_put_bytes32(out, m->content, m->content_len)) != 0 ||
            (r = inner_put_attachments(m, out)) != 0)
            goto fail;
    } else {
        if ((r = buf_put_bytes(out, m->ref_id, INNER_ID_LEN)) != 0 ||
            (r = buf_put_u8(out, m->receipt_kind)) != 0)
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
    if (version != INNER_VERSION)
        return VERR_BAD_VERSION;
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
        if ((r = buf_get_str8(&b, m->address, sizeof(m->address), 1, INNER_ADDRESS_MAX)) != 0 ||
            (r = buf_get_u8(&b, &m->precedence)) != 0 ||
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
        if ((r = inner_get_attachments(&b, m)) != 0)
            return r;
    } else {
        if ((r = buf_get_bytes(&b, m->ref_id, INNER_ID_LEN)) != 0 ||
            (r = buf_get_u8(&b, &m->receipt_kind)) != 0)
            return r;
    }
    if ((r = buf_get_bytes(&b, m->sig, SIG_LEN)) != 0)
        return r;
    if ((r = buf_expect_end(&b)) != 0)
        return r;
    return inner_check_fields(m);
}

int inner_verify(const uint8_t *p, size_t len, const struct inner *m,
                 const uint8_t from[static DEVICE_ID_LEN], const struct cert *self,
                 const struct directory *d, const struct orgpub *org, uint64_t now,
                 const struct cert **sender_cert)
{
    const struct cert *c;
    struct address a;
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
        if (addr_parse(m->address, &a) != 0)
            return VERR_BAD_FORMAT;
        if (!addr_includes(&a, self, c))
            return VERR_DENIED;
    }
    *sender_cert = c;
    return 0;
}
