/* cert.c - org.pub, enrolment requests and device certificates (see cert.h). */
#include "cert.h"

#include <string.h>

#include <sodium.h>

#include "fileio.h"
#include "utf8.h"

static const uint8_t orgpub_magic[4] = {'V', 'O', 'R', 'G'};
static const uint8_t request_magic[4] = {'V', 'R', 'E', 'Q'};
static const uint8_t cert_magic[4] = {'V', 'C', 'R', 'T'};

/* org.pub and the enrolment request are at version 1; the certificate at 2
 * (version 2 added the person id). */
enum { OBJ_VERSION = 1, CERT_VERSION = 2 };

_Static_assert(CERT_MAX_LEN == 320, "certificate layout (PROTOCOL.md)");
_Static_assert(CERT_MIN_LEN == 211, "certificate layout (PROTOCOL.md)");
_Static_assert(ORG_ID_TEXT_LEN == 40, "org id text: 8 groups of 4 hex digits");
_Static_assert(REQUEST_MAX_LEN == 222, "request layout (PROTOCOL.md)");
_Static_assert(crypto_sign_PUBLICKEYBYTES == SIG_PK_LEN, "Ed25519 public key size");
_Static_assert(crypto_scalarmult_BYTES == DH_PK_LEN, "X25519 public key size");

static int is_alnum_ascii(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* A post or role is a real name: its alphabet, a letter or digit at both
 * ends, and no "--" (so "-", "-X", "X-" and "A--B" are refused). */
static int valid_token(const char *s, size_t max, char lo, char hi)
{
    size_t n = strnlen(s, max + 1);

    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= lo && c <= hi) || (c >= '0' && c <= '9') || c == '-'))
            return 0;
        if (c == '-' && (i == 0 || i == n - 1 || s[i - 1] == '-'))
            return 0;
    }
    return is_alnum_ascii(s[0]) && is_alnum_ascii(s[n - 1]);
}

int cert_valid_post(const char *s)
{
    return valid_token(s, POST_MAX, 'A', 'Z');
}

int cert_valid_role(const char *s)
{
    return valid_token(s, ROLE_MAX, 'a', 'z');
}

int cert_valid_name(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n == 0 || n > max)
        return 0;
    return utf8_is_safe_text((const uint8_t *)s, n, 0);
}

int cert_names_clash(const char *a, const char *b)
{
    size_t i;

    for (i = 0; a[i] != '\0' && b[i] != '\0'; i++) {
        char x = a[i], y = b[i];

        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return a[i] == b[i];
}

int cert_check_dh_pk(const uint8_t pk[static DH_PK_LEN])
{
    /* Any clamped scalar is a multiple of the cofactor, so a point of low order
     * maps to the all-zero output, which libsodium reports as failure. */
    static const uint8_t probe[32] = {0x5a, 0x11, 0x5e, 0x01};
    uint8_t out[32];
    int ok;

    if (sodium_is_zero(pk, DH_PK_LEN))
        return VERR_BAD_KEY;
    ok = crypto_scalarmult(out, probe, pk) == 0;
    sodium_memzero(out, sizeof(out));
    return ok ? 0 : VERR_BAD_KEY;
}

static int check_sign_pk(const uint8_t pk[static SIG_PK_LEN])
{
    /* Rejects small-order points and points off the prime-order subgroup. */
    return crypto_core_ed25519_is_valid_point(pk) ? 0 : VERR_BAD_KEY;
}

static int read_header(struct buf *b, const uint8_t magic[static 4], uint8_t version)
{
    uint8_t m[4], v;
    int r;

    if ((r = buf_get_bytes(b, m, sizeof(m))) != 0)
        return r;
    if (memcmp(m, magic, sizeof(m)) != 0)
        return VERR_BAD_MAGIC;
    if ((r = buf_get_u8(b, &v)) != 0)
        return r;
    return v == version ? 0 : VERR_BAD_VERSION;
}

static int put_header(struct buf *b, const uint8_t magic[static 4], uint8_t version)
{
    int r;

    if ((r = buf_put_bytes(b, magic, 4)) != 0)
        return r;
    return buf_put_u8(b, version);
}

/* ---- org.pub ---- */

void orgpub_id(uint8_t id[static ORG_ID_LEN], const uint8_t pk[static SIG_PK_LEN])
{
    static const char label[] = "valise/v1/org-id";
    crypto_hash_sha256_state st;
    uint8_t h[crypto_hash_sha256_BYTES];

    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)label, sizeof(label)); /* with NUL */
    crypto_hash_sha256_update(&st, pk, SIG_PK_LEN);
    crypto_hash_sha256_final(&st, h);
    memcpy(id, h, ORG_ID_LEN);
    sodium_memzero(h, sizeof(h));
}

void orgpub_id_text(char out[static ORG_ID_TEXT_LEN], const uint8_t id[static ORG_ID_LEN])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < ORG_ID_LEN; i++) {
        if (i > 0 && i % 2 == 0)
            out[o++] = ' ';
        out[o++] = hex[id[i] >> 4];
        out[o++] = hex[id[i] & 0x0f];
    }
    out[o] = '\0';
}

int orgpub_encode(const struct orgpub *o, struct buf *out)
{
    int r;

    if ((r = buf_init(out, ORGPUB_MAX_LEN, 0)) != 0)
        return r;
    if (!cert_valid_name(o->name, ORG_NAME_MAX)) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    if ((r = put_header(out, orgpub_magic, OBJ_VERSION)) != 0 || (r = buf_put_str8(out, o->name)) != 0 ||
        (r = buf_put_bytes(out, o->pk, SIG_PK_LEN)) != 0)
        goto out;
    r = 0;
out:
    if (r != 0)
        buf_free(out);
    return r;
}

int orgpub_parse(const uint8_t *p, size_t len, struct orgpub *o)
{
    struct buf b;
    int r;

    buf_view(&b, p, len);
    if ((r = read_header(&b, orgpub_magic, OBJ_VERSION)) != 0 ||
        (r = buf_get_str8(&b, o->name, sizeof(o->name), 1, ORG_NAME_MAX)) != 0 ||
        (r = buf_get_bytes(&b, o->pk, SIG_PK_LEN)) != 0 || (r = buf_expect_end(&b)) != 0)
        return r;
    if (!cert_valid_name(o->name, ORG_NAME_MAX))
        return VERR_BAD_FORMAT;
    if ((r = check_sign_pk(o->pk)) != 0)
        return r;
    orgpub_id(o->id, o->pk);
    return 0;
}

int orgpub_load(const char *path, struct orgpub *o)
{
    struct buf f;
    int r;

    if ((r = file_read(path, ORGPUB_MAX_LEN, 0, &f)) != 0)
        return r == VERR_TOO_LARGE ? VERR_TRAILING : r;
    r = orgpub_parse(buf_data(&f), buf_size(&f), o);
    buf_free(&f);
    return r;
}

/* ---- enrolment request ---- */

int request_encode_body(const struct enrol_request *q, struct buf *out)
{
    int r;

    if (!cert_valid_name(q->name, PERSON_NAME_MAX))
        return VERR_BAD_FORMAT;
    if ((r = put_header(out, request_magic, OBJ_VERSION)) != 0 ||
        (r = buf_put_bytes(out, q->device_id, DEVICE_ID_LEN)) != 0 ||
        (r = buf_put_str8(out, q->name)) != 0 ||
        (r = buf_put_bytes(out, q->sign_pk, SIG_PK_LEN)) != 0 ||
        (r = buf_put_bytes(out, q->dh_pk, DH_PK_LEN)) != 0 ||
        (r = buf_put_u64(out, q->created)) != 0)
        return r;
    return 0;
}

int request_parse(const uint8_t *p, size_t len, struct enrol_request *q)
{
    struct buf b;
    uint8_t sig[SIG_LEN];
    size_t body_len;
    int r;

    buf_view(&b, p, len);
    if ((r = read_header(&b, request_magic, OBJ_VERSION)) != 0 ||
        (r = buf_get_bytes(&b, q->device_id, DEVICE_ID_LEN)) != 0 ||
        (r = buf_get_str8(&b, q->name, sizeof(q->name), 1, PERSON_NAME_MAX)) != 0 ||
        (r = buf_get_bytes(&b, q->sign_pk, SIG_PK_LEN)) != 0 ||
        (r = buf_get_bytes(&b, q->dh_pk, DH_PK_LEN)) != 0 ||
        (r = buf_get_u64(&b, &q->created)) != 0)
        return r;
    body_len = buf_offset(&b);
    if ((r = buf_get_bytes(&b, sig, sizeof(sig))) != 0 || (r = buf_expect_end(&b)) != 0)
        return r;
    if (!cert_valid_name(q->name, PERSON_NAME_MAX))
        return VERR_BAD_FORMAT;
    if ((r = check_sign_pk(q->sign_pk)) != 0 || (r = cert_check_dh_pk(q->dh_pk)) != 0)
        return r;
    /* The request proves possession of the signing key it asks to certify. */
    return sig_verify(sig, SIG_CTX_REQUEST, p, body_len, q->sign_pk);
}

/* ---- certificate ---- */

int cert_encode_body(const struct cert *c, struct buf *out)
{
    int r;

    if (!cert_valid_name(c->name, PERSON_NAME_MAX) || !cert_valid_post(c->post) ||
        !cert_valid_role(c->role) || c->not_after <= c->not_before ||
        sodium_is_zero(c->person_id, PERSON_ID_LEN))
        return VERR_BAD_FORMAT;
    if ((r = put_header(out, cert_magic, CERT_VERSION)) != 0 || (r = buf_put_u64(out, c->serial)) != 0 ||
        (r = buf_put_bytes(out, c->org_id, ORG_ID_LEN)) != 0 ||
        (r = buf_put_bytes(out, c->device_id, DEVICE_ID_LEN)) != 0 ||
        (r = buf_put_bytes(out, c->person_id, PERSON_ID_LEN)) != 0 ||
        (r = buf_put_str8(out, c->name)) != 0 || (r = buf_put_str8(out, c->post)) != 0 ||
        (r = buf_put_str8(out, c->role)) != 0 ||
        (r = buf_put_bytes(out, c->sign_pk, SIG_PK_LEN)) != 0 ||
        (r = buf_put_bytes(out, c->dh_pk, DH_PK_LEN)) != 0 ||
        (r = buf_put_u64(out, c->not_before)) != 0 || (r = buf_put_u64(out, c->not_after)) != 0)
        return r;
    return 0;
}

int cert_encode(const struct cert *c, struct buf *out)
{
    int r;

    if ((r = buf_init(out, CERT_MAX_LEN, 0)) != 0)
        return r;
    if ((r = cert_encode_body(c, out)) != 0 || (r = buf_put_bytes(out, c->sig, SIG_LEN)) != 0)
        buf_free(out);
    return r;
}

int cert_read(struct buf *b, struct cert *c)
{
    int r;

    if ((r = read_header(b, cert_magic, CERT_VERSION)) != 0 || (r = buf_get_u64(b, &c->serial)) != 0 ||
        (r = buf_get_bytes(b, c->org_id, ORG_ID_LEN)) != 0 ||
        (r = buf_get_bytes(b, c->device_id, DEVICE_ID_LEN)) != 0 ||
        (r = buf_get_bytes(b, c->person_id, PERSON_ID_LEN)) != 0 ||
        (r = buf_get_str8(b, c->name, sizeof(c->name), 1, PERSON_NAME_MAX)) != 0 ||
        (r = buf_get_str8(b, c->post, sizeof(c->post), 1, POST_MAX)) != 0 ||
        (r = buf_get_str8(b, c->role, sizeof(c->role), 1, ROLE_MAX)) != 0 ||
        (r = buf_get_bytes(b, c->sign_pk, SIG_PK_LEN)) != 0 ||
        (r = buf_get_bytes(b, c->dh_pk, DH_PK_LEN)) != 0 ||
        (r = buf_get_u64(b, &c->not_before)) != 0 || (r = buf_get_u64(b, &c->not_after)) != 0 ||
        (r = buf_get_bytes(b, c->sig, SIG_LEN)) != 0)
        return r;
    if (!cert_valid_name(c->name, PERSON_NAME_MAX) || !cert_valid_post(c->post) ||
        !cert_valid_role(c->role) || c->not_after <= c->not_before ||
        sodium_is_zero(c->person_id, PERSON_ID_LEN))
        return VERR_BAD_FORMAT;
    if ((r = check_sign_pk(c->sign_pk)) != 0 || (r = cert_check_dh_pk(c->dh_pk)) != 0)
        return r;
    return 0;
}

int cert_parse(const uint8_t *p, size_t len, struct cert *c)
{
    struct buf b;
    int r;

    buf_view(&b, p, len);
    if ((r = cert_read(&b, c)) != 0)
        return r;
    return buf_expect_end(&b);
}

int cert_verify(const struct cert *c, const struct orgpub *org, uint64_t now)
{
    struct buf body;
    int r;

    if (memcmp(c->org_id, org->id, ORG_ID_LEN) != 0)
        return VERR_WRONG_ORG;
    if ((r = buf_init(&body, CERT_MAX_LEN, 0)) != 0)
        return r;
    /* The encoding is canonical, so re-encoding gives the signed bytes. */
    if ((r = cert_encode_body(c, &body)) != 0)
        goto out;
    if ((r = sig_verify(c->sig, SIG_CTX_CERT, buf_data(&body), buf_size(&body), org->pk)) != 0)
        goto out;
    if (now < c->not_before)
        r = VERR_NOT_YET_VALID;
    else if (now >= c->not_after)
        r = VERR_EXPIRED;
out:
    buf_free(&body);
    return r;
}
