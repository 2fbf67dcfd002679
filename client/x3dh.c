/* x3dh.c - X3DH key agreement and the prekey message codec (see x3dh.h). */
#include "x3dh.h"

#include <string.h>

#include <sodium.h>

#include "hkdf.h"
#include "sig.h"

_Static_assert(X3DH_PK_LEN == crypto_scalarmult_BYTES, "X25519 public key size");
_Static_assert(X3DH_SK_LEN == crypto_scalarmult_SCALARBYTES, "X25519 scalar size");
_Static_assert((int)X3DH_SIG_LEN == (int)SIG_LEN, "Ed25519 signature size");
_Static_assert((int)X3DH_SIGN_PK_LEN == (int)SIG_PK_LEN, "Ed25519 public key size");
_Static_assert((int)X3DH_SIGN_SK_LEN == (int)SIG_SK_LEN, "Ed25519 secret key size");
_Static_assert((int)X3DH_SECRET_LEN == (int)HKDF_HASH_LEN, "SK is one hash length");
_Static_assert(X3DH_MAX_INNER <= UINT32_MAX, "inner length fits its u32 prefix");
_Static_assert(X3DH_PREKEY_MSG_FIXED == 95, "prekey message layout of PROTOCOL.md, part 3 section 3");
_Static_assert(X3DH_SPK_BODY_LEN == 52, "signed prekey body: device_id || u32 id || key");

static const char x3dh_info[] = "valise/v1/x3dh";

/*
 * The canonical encodings (u < p, top bit clear) of points of small order on
 * Curve25519: 0 (order 4), 1 (order 1), the two points of order 8 and p-1
 * (order 2). Non-canonical encodings (p, p+1, ... and top bit set) are refused
 * separately. Source: the list of small-order points published with
 * Curve25519 (cr.yp.to/ecdh.html) as also used by libsodium.
 */
static const uint8_t x3dh_small_order[][X3DH_PK_LEN] = {
    {0},
    {1},
    {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
     0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
     0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
    {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1,
     0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c,
     0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
};

int x3dh_pk_check(const uint8_t pk[static X3DH_PK_LEN])
{
    size_t i;

    /* The brief's first rule: an all-zero key is refused up front. */
    if (sodium_is_zero(pk, X3DH_PK_LEN))
        return VERR_BAD_KEY;
    /* RFC 7748 5 lets a receiver mask the top bit; strict parsing refuses it. */
    if (pk[31] & 0x80)
        return VERR_BAD_KEY;
    /* u >= p = 2^255 - 19 is a second encoding of a small value: refuse. */
    if (pk[31] == 0x7f && pk[0] >= 0xed) {
        for (i = 1; i < 31 && pk[i] == 0xff; i++)
            ;
        if (i == 31)
            return VERR_BAD_KEY;
    }
    for (i = 0; i < sizeof(x3dh_small_order) / sizeof(x3dh_small_order[0]); i++)
        if (memcmp(pk, x3dh_small_order[i], X3DH_PK_LEN) == 0)
            return VERR_BAD_KEY;
    return 0;
}

int x3dh_dh(uint8_t out[static 32], const uint8_t sk[static X3DH_SK_LEN],
            const uint8_t pk[static X3DH_PK_LEN])
{
    int r;

    if ((r = x3dh_pk_check(pk)) != 0) {
        sodium_memzero(out, 32);
        return r;
    }
    /* libsodium returns -1 when the result is all zero (a low-order input). */
    if (crypto_scalarmult(out, sk, pk) != 0) {
        sodium_memzero(out, 32);
        return VERR_BAD_KEY;
    }
    return 0;
}

int x3dh_public(uint8_t pk[static X3DH_PK_LEN], const uint8_t sk[static X3DH_SK_LEN])
{
    if (crypto_scalarmult_base(pk, sk) != 0)
        return VERR_BAD_KEY;
    return 0;
}

int x3dh_keypair(uint8_t pk[static X3DH_PK_LEN], uint8_t sk[static X3DH_SK_LEN])
{
    int r;

    randombytes_buf(sk, X3DH_SK_LEN);
    if ((r = x3dh_public(pk, sk)) != 0)
        sodium_memzero(sk, X3DH_SK_LEN);
    return r;
}

/* The signed body of a signed prekey: device_id || u32 spk_id || spk_pk. */
static void x3dh_spk_body(uint8_t body[static X3DH_SPK_BODY_LEN],
                          const uint8_t device_id[static X3DH_DEVICE_ID_LEN], uint32_t spk_id,
                          const uint8_t spk_pk[static X3DH_PK_LEN])
{
    memcpy(body, device_id, X3DH_DEVICE_ID_LEN);
    body[16] = (uint8_t)(spk_id >> 24);
    body[17] = (uint8_t)(spk_id >> 16);
    body[18] = (uint8_t)(spk_id >> 8);
    body[19] = (uint8_t)spk_id;
    memcpy(body + 20, spk_pk, X3DH_PK_LEN);
}

int x3dh_spk_sign(uint8_t sig[static X3DH_SIG_LEN],
                  const uint8_t device_id[static X3DH_DEVICE_ID_LEN], uint32_t spk_id,
                  const uint8_t spk_pk[static X3DH_PK_LEN],
                  const uint8_t sign_sk[static X3DH_SIGN_SK_LEN])
{
    uint8_t body[X3DH_SPK_BODY_LEN];
    int r;

    if ((r = x3dh_pk_check(spk_pk)) != 0)
        return r;
    x3dh_spk_body(body, device_id, spk_id, spk_pk);
    return sig_sign(sig, SIG_CTX_PREKEY, body, sizeof(body), sign_sk);
}

int x3dh_bundle_verify(const struct x3dh_bundle *b, const uint8_t sign_pk[static X3DH_SIGN_PK_LEN])
{
    uint8_t body[X3DH_SPK_BODY_LEN];
    int r;

    if (b->has_opk > 1)
        return VERR_BAD_FORMAT;
    if ((r = x3dh_pk_check(b->owner.identity_pk)) != 0 || (r = x3dh_pk_check(b->spk_pk)) != 0)
        return r;
    if (b->has_opk && (r = x3dh_pk_check(b->opk_pk)) != 0)
        return r;
    x3dh_spk_body(body, b->owner.device_id, b->spk_id, b->spk_pk);
    return sig_verify(b->spk_sig, SIG_CTX_PREKEY, body, sizeof(body), sign_pk);
}

/* Key material of one agreement, kept together in guarded memory. */
struct x3dh_km {
    uint8_t ek_sk[X3DH_SK_LEN];
    uint8_t ikm[32 + 4 * 32]; /* F || DH1 || DH2 || DH3 [|| DH4] */
};

/* X3DH 2.2: KDF(KM) = HKDF(F || KM, salt = 0^32, info), F = 32 bytes 0xFF. */
static int x3dh_kdf(uint8_t sk_out[static X3DH_SECRET_LEN], const uint8_t *ikm, size_t ikm_len)
{
    return hkdf_sha256(sk_out, X3DH_SECRET_LEN, NULL, 0, ikm, ikm_len, (const uint8_t *)x3dh_info,
                       sizeof(x3dh_info) - 1);
}

int x3dh_initiate(uint8_t sk_out[static X3DH_SECRET_LEN], struct x3dh_init_header *hdr,
                  const struct x3dh_bundle *b, const uint8_t sign_pk[static X3DH_SIGN_PK_LEN],
                  const uint8_t self_ik_sk[static X3DH_SK_LEN])
{
    struct x3dh_km *km = NULL;
    uint8_t ek_pk[X3DH_PK_LEN];
    size_t n;
    int r = VERR_INTERNAL;

    sodium_memzero(sk_out, X3DH_SECRET_LEN);
    if ((r = x3dh_bundle_verify(b, sign_pk)) != 0)
        goto out;
    if ((km = sodium_malloc(sizeof(*km))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    if ((r = x3dh_keypair(ek_pk, km->ek_sk)) != 0)
        goto out;
    memset(km->ikm, 0xff, 32);
    /* X3DH 3.3: DH1 = DH(IKA, SPKB), DH2 = DH(EKA, IKB), DH3 = DH(EKA, SPKB). */
    if ((r = x3dh_dh(km->ikm + 32, self_ik_sk, b->spk_pk)) != 0 ||
        (r = x3dh_dh(km->ikm + 64, km->ek_sk, b->owner.identity_pk)) != 0 ||
        (r = x3dh_dh(km->ikm + 96, km->ek_sk, b->spk_pk)) != 0)
        goto out;
    n = 128;
    /* DH4 = DH(EKA, OPKB) when the bundle had a one-time prekey. */
    if (b->has_opk) {
        if ((r = x3dh_dh(km->ikm + 128, km->ek_sk, b->opk_pk)) != 0)
            goto out;
        n = 160;
    }
    if ((r = x3dh_kdf(sk_out, km->ikm, n)) != 0)
        goto out;
    memcpy(hdr->ek_pk, ek_pk, X3DH_PK_LEN);
    hdr->spk_id = b->spk_id;
    hdr->has_opk = b->has_opk;
    hdr->opk_id = b->has_opk ? b->opk_id : 0;
    r = 0;
out:
    if (r != 0)
        sodium_memzero(sk_out, X3DH_SECRET_LEN);
    if (km != NULL) {
        /* X3DH 3.3: delete the ephemeral private key and the DH outputs. */
        sodium_memzero(km, sizeof(*km));
        sodium_free(km);
    }
    return r;
}

int x3dh_respond(uint8_t sk_out[static X3DH_SECRET_LEN], const struct x3dh_init_header *hdr,
                 const uint8_t self_ik_sk[static X3DH_SK_LEN],
                 const uint8_t spk_sk[static X3DH_SK_LEN], const uint8_t *opk_sk,
                 const uint8_t peer_ik_pk[static X3DH_PK_LEN])
{
    struct x3dh_km *km = NULL;
    size_t n;
    int r = VERR_INTERNAL;

    sodium_memzero(sk_out, X3DH_SECRET_LEN);
    /* The header and the caller must agree on whether a one-time key was used. */
    if (hdr->has_opk > 1 || (hdr->has_opk == 1) != (opk_sk != NULL)) {
        r = VERR_USAGE;
        goto out;
    }
    if ((km = sodium_malloc(sizeof(*km))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    memset(km->ikm, 0xff, 32);
    /* X3DH 3.4: the same DHs as 3.3, seen from Bob's side. */
    if ((r = x3dh_dh(km->ikm + 32, spk_sk, peer_ik_pk)) != 0 ||
        (r = x3dh_dh(km->ikm + 64, self_ik_sk, hdr->ek_pk)) != 0 ||
        (r = x3dh_dh(km->ikm + 96, spk_sk, hdr->ek_pk)) != 0)
        goto out;
    n = 128;
    if (opk_sk != NULL) {
        if ((r = x3dh_dh(km->ikm + 128, opk_sk, hdr->ek_pk)) != 0)
            goto out;
        n = 160;
    }
    if ((r = x3dh_kdf(sk_out, km->ikm, n)) != 0)
        goto out;
    r = 0;
out:
    if (r != 0)
        sodium_memzero(sk_out, X3DH_SECRET_LEN);
    if (km != NULL) {
        sodium_memzero(km, sizeof(*km));
        sodium_free(km);
    }
    return r;
}

int x3dh_wire_type(const uint8_t *p, size_t len, uint8_t *type)
{
    struct buf b;
    uint8_t v, t;
    int r;

    buf_view(&b, p, len);
    if ((r = buf_get_u8(&b, &v)) != 0 || (r = buf_get_u8(&b, &t)) != 0)
        return r;
    if (v != E2E_WIRE_VERSION)
        return VERR_BAD_VERSION;
    if (t != E2E_TYPE_RATCHET && t != E2E_TYPE_PREKEY)
        return VERR_BAD_FORMAT;
    *type = t;
    return 0;
}

int x3dh_prekey_msg_encode(const struct x3dh_prekey_msg *m, struct buf *out)
{
    size_t save = buf_size(out);
    int r = VERR_INTERNAL;

    if (m->init.has_opk > 1 || (!m->init.has_opk && m->init.opk_id != 0) || m->inner_len == 0 ||
        m->inner_len > X3DH_MAX_INNER) {
        r = VERR_USAGE;
        goto out;
    }
    if ((r = buf_put_u8(out, E2E_WIRE_VERSION)) != 0 ||
        (r = buf_put_u8(out, E2E_TYPE_PREKEY)) != 0 ||
        (r = buf_put_bytes(out, m->sender.device_id, X3DH_DEVICE_ID_LEN)) != 0 ||
        (r = buf_put_bytes(out, m->sender.identity_pk, X3DH_PK_LEN)) != 0 ||
        (r = buf_put_bytes(out, m->init.ek_pk, X3DH_PK_LEN)) != 0 ||
        (r = buf_put_u32(out, m->init.spk_id)) != 0 ||
        (r = buf_put_u8(out, m->init.has_opk)) != 0 ||
        (r = buf_put_u32(out, m->init.opk_id)) != 0 ||
        (r = buf_put_bytes32(out, m->inner, m->inner_len)) != 0)
        goto out;
    r = 0;
out:
    if (r != 0)
        buf_truncate(out, save);
    return r;
}

int x3dh_prekey_msg_parse(struct x3dh_prekey_msg *m, const uint8_t *p, size_t len)
{
    struct buf b, inner;
    uint8_t v, t;
    int r;

    memset(m, 0, sizeof(*m));
    buf_view(&b, p, len);
    /* Version and type first (STYLE.md habit 2). */
    if ((r = buf_get_u8(&b, &v)) != 0 || (r = buf_get_u8(&b, &t)) != 0)
        return r;
    if (v != E2E_WIRE_VERSION)
        return VERR_BAD_VERSION;
    if (t != E2E_TYPE_PREKEY)
        return VERR_BAD_FORMAT;
    if ((r = buf_get_bytes(&b, m->sender.device_id, X3DH_DEVICE_ID_LEN)) != 0 ||
        (r = buf_get_bytes(&b, m->sender.identity_pk, X3DH_PK_LEN)) != 0 ||
        (r = buf_get_bytes(&b, m->init.ek_pk, X3DH_PK_LEN)) != 0 ||
        (r = buf_get_u32(&b, &m->init.spk_id)) != 0 ||
        (r = buf_get_u8(&b, &m->init.has_opk)) != 0 || (r = buf_get_u32(&b, &m->init.opk_id)) != 0)
        return r;
    if (m->init.has_opk > 1 || (!m->init.has_opk && m->init.opk_id != 0))
        return VERR_BAD_FORMAT;
    if ((r = x3dh_pk_check(m->sender.identity_pk)) != 0 || (r = x3dh_pk_check(m->init.ek_pk)) != 0)
        return r;
    if ((r = buf_get_view32(&b, X3DH_MAX_INNER, &inner)) != 0)
        return r;
    if (buf_size(&inner) == 0)
        return VERR_BAD_FORMAT;
    if ((r = buf_expect_end(&b)) != 0)
        return r;
    m->inner = buf_data(&inner);
    m->inner_len = buf_size(&inner);
    return 0;
}
