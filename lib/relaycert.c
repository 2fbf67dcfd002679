/* relaycert.c - relay certificates and the relay's handshake key (see relaycert.h). */
#include "relaycert.h"

#include <string.h>

#include <sodium.h>

#include "fileio.h"

static const uint8_t relaycert_magic[4] = {'V', 'R', 'L', 'C'};
static const uint8_t relaykey_magic[4] = {'V', 'R', 'H', 'K'};
static const uint8_t relaypub_magic[4] = {'V', 'R', 'H', 'P'};

enum { RELAYCERT_VERSION = 1, RELAYKEY_VERSION = 1 };

/* PROTOCOL.md part 1 "Relay certificate": 190 + ORG_ID_LEN bytes at most. */
_Static_assert(RELAYCERT_MAX_LEN == 190 + ORG_ID_LEN, "relay certificate layout (PROTOCOL.md)");
_Static_assert(RELAYKEY_FILE_LEN == 37 && RELAYPUB_FILE_LEN == 37,
               "handshake key files (PROTOCOL.md)");

int relaycert_valid_id(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > RELAY_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static int check_header(struct buf *b, const uint8_t magic[static 4], uint8_t version)
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

int relaycert_encode_body(const struct relaycert *c, struct buf *out)
{
    int r;

    if (!relaycert_valid_id(c->relay_id) || c->not_after <= c->not_before)
        return VERR_BAD_FORMAT;
    if ((r = buf_put_bytes(out, relaycert_magic, 4)) != 0 ||
        (r = buf_put_u8(out, RELAYCERT_VERSION)) != 0 ||
        (r = buf_put_u64(out, c->issued_at)) != 0 ||
        (r = buf_put_bytes(out, c->org_id, ORG_ID_LEN)) != 0 ||
        (r = buf_put_str8(out, c->relay_id)) != 0 ||
        (r = buf_put_bytes(out, c->pk, SIG_PK_LEN)) != 0 ||
        (r = buf_put_u64(out, c->not_before)) != 0 || (r = buf_put_u64(out, c->not_after)) != 0)
        return r;
    return 0;
}

int relaycert_encode(const struct relaycert *c, struct buf *out)
{
    int r;

    if ((r = buf_init(out, RELAYCERT_MAX_LEN, 0)) != 0)
        return r;
    if ((r = relaycert_encode_body(c, out)) != 0 || (r = buf_put_bytes(out, c->sig, SIG_LEN)) != 0)
        buf_free(out);
    return r;
}

int relaycert_parse(const uint8_t *p, size_t len, struct relaycert *c)
{
    struct buf b;
    int r;

    if (len > RELAYCERT_MAX_LEN)
        return VERR_TOO_LARGE;
    buf_view(&b, p, len);
    if ((r = check_header(&b, relaycert_magic, RELAYCERT_VERSION)) != 0 ||
        (r = buf_get_u64(&b, &c->issued_at)) != 0 ||
        (r = buf_get_bytes(&b, c->org_id, ORG_ID_LEN)) != 0 ||
        (r = buf_get_str8(&b, c->relay_id, sizeof(c->relay_id), 1, RELAY_ID_MAX)) != 0 ||
        (r = buf_get_bytes(&b, c->pk, SIG_PK_LEN)) != 0 ||
        (r = buf_get_u64(&b, &c->not_before)) != 0 || (r = buf_get_u64(&b, &c->not_after)) != 0 ||
        (r = buf_get_bytes(&b, c->sig, SIG_LEN)) != 0 || (r = buf_expect_end(&b)) != 0)
        return r;
    if (!relaycert_valid_id(c->relay_id) || c->not_after <= c->not_before)
        return VERR_BAD_FORMAT;
    /* Small-order points and points off the prime-order subgroup. */
    if (!crypto_core_ed25519_is_valid_point(c->pk))
        return VERR_BAD_KEY;
    return 0;
}

int relaycert_verify(const struct relaycert *c, const struct orgpub *org, uint64_t now)
{
    struct buf body;
    int r;

    if (memcmp(c->org_id, org->id, ORG_ID_LEN) != 0)
        return VERR_WRONG_ORG;
    if ((r = buf_init(&body, RELAYCERT_MAX_LEN, 0)) != 0)
        return r;
    /* Canonical encoding: re-encoding gives the signed bytes. */
    if ((r = relaycert_encode_body(c, &body)) != 0)
        goto out;
    if ((r = sig_verify(c->sig, SIG_CTX_RELAY_CERT, buf_data(&body), buf_size(&body), org->pk)) !=
        0)
        goto out;
    if (now < c->not_before)
        r = VERR_NOT_YET_VALID;
    else if (now >= c->not_after)
        r = VERR_EXPIRED;
out:
    buf_free(&body);
    return r;
}

int relaykey_create(const char *path, uint8_t pk[static SIG_PK_LEN])
{
    uint8_t file[RELAYKEY_FILE_LEN];
    uint8_t *sk = NULL;
    int r = VERR_NOMEM;

    if ((sk = sodium_malloc(SIG_SK_LEN)) == NULL)
        goto out;
    memcpy(file, relaykey_magic, 4);
    file[4] = RELAYKEY_VERSION;
    randombytes_buf(file + 5, SIG_SEED_LEN);
    if (crypto_sign_seed_keypair(pk, sk, file + 5) != 0) {
        r = VERR_INTERNAL;
        goto out;
    }
    r = file_write_new(path, file, sizeof(file), 0600);
out:
    sodium_memzero(file, sizeof(file));
    sodium_free(sk);
    return r;
}

int relaykey_load(const char *path, uint8_t sk[static SIG_SK_LEN], uint8_t pk[static SIG_PK_LEN])
{
    struct buf f = {0}, b;
    int r;

    if ((r = file_read(path, RELAYKEY_FILE_LEN, BUF_SECRET, &f)) != 0)
        goto out;
    buf_view(&b, buf_data(&f), buf_size(&f));
    if ((r = check_header(&b, relaykey_magic, RELAYKEY_VERSION)) != 0)
        goto out;
    if (buf_left(&b) != SIG_SEED_LEN) {
        r = buf_left(&b) < SIG_SEED_LEN ? VERR_TRUNCATED : VERR_TRAILING;
        goto out;
    }
    r = crypto_sign_seed_keypair(pk, sk, buf_rptr(&b)) == 0 ? 0 : VERR_INTERNAL;
out:
    buf_free(&f); /* BUF_SECRET: wiped */
    return r;
}

int relaypub_encode(const uint8_t pk[static SIG_PK_LEN], struct buf *out)
{
    int r;

    if ((r = buf_init(out, RELAYPUB_FILE_LEN, 0)) != 0)
        return r;
    if ((r = buf_put_bytes(out, relaypub_magic, 4)) != 0 ||
        (r = buf_put_u8(out, RELAYKEY_VERSION)) != 0 || (r = buf_put_bytes(out, pk, SIG_PK_LEN)) != 0)
        buf_free(out);
    return r;
}

int relaypub_parse(const uint8_t *p, size_t len, uint8_t pk[static SIG_PK_LEN])
{
    struct buf b;
    int r;

    buf_view(&b, p, len);
    if ((r = check_header(&b, relaypub_magic, RELAYKEY_VERSION)) != 0 ||
        (r = buf_get_bytes(&b, pk, SIG_PK_LEN)) != 0 || (r = buf_expect_end(&b)) != 0)
        return r;
    return crypto_core_ed25519_is_valid_point(pk) ? 0 : VERR_BAD_KEY;
}
