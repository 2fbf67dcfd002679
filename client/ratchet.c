/* ratchet.c - the Double Ratchet and its message and session codecs (see ratchet.h). */
#include "ratchet.h"

#include <stddef.h>
#include <string.h>

#include <sodium.h>

#include "hkdf.h"

enum {
    RT_AEAD_KEY_LEN = crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
    RT_AEAD_NONCE_LEN = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
    RT_SESSION_VERSION = 2,    /* 2 adds the receiving step counter and each key's step */
    RT_SESSION_VERSION_V1 = 1, /* still read: every stored key taken as of step 0 */
    RT_HAS_DHR = 0x01,
    RT_HAS_CKS = 0x02,
    RT_HAS_CKR = 0x04,
    RT_SKIPPED_WIRE = X3DH_PK_LEN + 4 + 4 + RATCHET_KEY_LEN, /* dh || n || step || mk */
    RT_SKIPPED_WIRE_V1 = X3DH_PK_LEN + 4 + RATCHET_KEY_LEN,  /* dh || n || mk */
    RT_PENDING_WIRE = X3DH_PK_LEN + 4 + 1 + 4, /* ek || spk_id || has_opk || opk_id */
    RT_SESSION_FIXED = 4 + 1 + 1 + 2 * (X3DH_DEVICE_ID_LEN + X3DH_PK_LEN) + 2 * 32 + 4 * 32 +
                       3 * 4 + RT_PENDING_WIRE + 4 + 4,
    RT_SESSION_FIXED_V1 = RT_SESSION_FIXED - 4, /* no step counter */
};
#define RT_SESSION_MAX ((size_t)RT_SESSION_FIXED + (size_t)RATCHET_MAX_SKIPPED * RT_SKIPPED_WIRE)

_Static_assert(RT_AEAD_KEY_LEN == 32, "XChaCha20-Poly1305 key");
_Static_assert(RT_AEAD_NONCE_LEN == 24, "XChaCha20-Poly1305 nonce");
_Static_assert(RATCHET_TAG_LEN == crypto_aead_xchacha20poly1305_ietf_ABYTES, "Poly1305 tag");
_Static_assert(RATCHET_KEY_LEN == crypto_auth_hmacsha256_BYTES, "chain keys are HMAC outputs");
_Static_assert(RATCHET_HEADER_LEN == X3DH_PK_LEN + 4 + 4, "header is dh || pn || n");
_Static_assert(RATCHET_MSG_MAX <= X3DH_MAX_INNER, "a ratchet message fits in a prekey message");
_Static_assert(RATCHET_MAX_SKIP < RATCHET_MAX_SKIPPED, "one chain's skip fits in the store");
_Static_assert(RATCHET_MSG_MAX <= UINT32_MAX, "ciphertext length fits its u32 prefix");
_Static_assert(RT_SESSION_FIXED == 355, "session layout of PROTOCOL.md, part 3 section 5");
_Static_assert(RT_SKIPPED_WIRE == 72 && RT_SKIPPED_WIRE_V1 == 68,
               "skipped key entries of PROTOCOL.md, part 3 section 5");
_Static_assert(RT_SESSION_FIXED_V1 + (size_t)RATCHET_MAX_SKIPPED * RT_SKIPPED_WIRE_V1 <=
                   RT_SESSION_FIXED + (size_t)RATCHET_MAX_SKIPPED * RT_SKIPPED_WIRE,
               "the size cap covers both versions");
_Static_assert(RATCHET_AD_LEN == 137, "AD layout of PROTOCOL.md, part 3 section 4.3");
_Static_assert((size_t)RT_AEAD_NONCE_LEN == (size_t)RATCHET_NONCE_LEN,
               "the sent nonce is the AEAD nonce");
_Static_assert(RATCHET_MSG_OVERHEAD == 70 + RATCHET_TAG_LEN,
               "message layout of PROTOCOL.md part 3, section 4.2");

static const char rt_info_root[] = "valise/v1/ratchet-root";
static const char rt_info_msg[] = "valise/v1/ratchet-msg";
static const uint8_t rt_magic[4] = {'V', 'R', 'S', 'N'};

struct rt_skipped {
    uint8_t dh[X3DH_PK_LEN];
    uint32_t n;
    uint32_t step; /* the session's receiving step counter when the key was stored */
    uint8_t mk[RATCHET_KEY_LEN];
};

/* Spec 3.2 state variables; the whole struct lives in sodium_malloc'ed memory. */
struct ratchet_session {
    struct x3dh_party self, peer;
    uint8_t dhs_sk[X3DH_SK_LEN], dhs_pk[X3DH_PK_LEN]; /* DHs */
    uint8_t dhr[X3DH_PK_LEN];                         /* DHr, valid if has_dhr */
    uint8_t rk[RATCHET_KEY_LEN];
    uint8_t cks[RATCHET_KEY_LEN], ckr[RATCHET_KEY_LEN];
    uint8_t flags; /* RT_HAS_* */
    uint32_t ns, nr, pn;
    uint32_t steps; /* DH ratchet steps taken on receipt (mod 2^32): ages skipped keys */
    struct x3dh_init_header pending; /* initiator before the first reply, else zero */
    uint32_t nskipped;               /* MKSKIPPED, oldest first */
    struct rt_skipped skipped[RATCHET_MAX_SKIPPED];
};

/* ---- small helpers ---- */

static void rt_store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static struct ratchet_session *rt_alloc(void)
{
    struct ratchet_session *s = sodium_malloc(sizeof(*s));

    if (s != NULL)
        memset(s, 0, sizeof(*s));
    return s;
}

/* Only the used part of the skipped-key table is copied. */
static void rt_copy(struct ratchet_session *dst, const struct ratchet_session *src)
{
    memcpy(dst, src, offsetof(struct ratchet_session, skipped));
    if (src->nskipped > 0)
        memcpy(dst->skipped, src->skipped, src->nskipped * sizeof(src->skipped[0]));
    if (dst->nskipped < RATCHET_MAX_SKIPPED)
        sodium_memzero(&dst->skipped[dst->nskipped],
                       (RATCHET_MAX_SKIPPED - dst->nskipped) * sizeof(dst->skipped[0]));
}

void ratchet_session_free(struct ratchet_session *s)
{
    if (s == NULL)
        return;
    sodium_memzero(s, sizeof(*s));
    sodium_free(s);
}

void ratchet_session_parties(const struct ratchet_session *s, struct x3dh_party *self,
                             struct x3dh_party *peer)
{
    *self = s->self;
    *peer = s->peer;
}

int ratchet_session_received_any(const struct ratchet_session *s)
{
    return (s->flags & RT_HAS_CKR) ? 1 : 0;
}

int ratchet_session_pending_prekey(const struct ratchet_session *s, struct x3dh_init_header *hdr)
{
    if (s->flags != (RT_HAS_DHR | RT_HAS_CKS))
        return 0;
    *hdr = s->pending;
    return 1;
}

/* ---- KDFs (spec 5.2) ---- */

/* KDF_RK(rk, dh_out) = HKDF(salt = rk, IKM = dh_out, info) -> rk' || ck. */
static int rt_kdf_rk(uint8_t rk[static RATCHET_KEY_LEN], uint8_t ck[static RATCHET_KEY_LEN],
                     const uint8_t dh_out[static 32])
{
    uint8_t okm[2 * RATCHET_KEY_LEN];
    int r;

    r = hkdf_sha256(okm, sizeof(okm), rk, RATCHET_KEY_LEN, dh_out, 32,
                    (const uint8_t *)rt_info_root, sizeof(rt_info_root) - 1);
    if (r == 0) {
        memcpy(rk, okm, RATCHET_KEY_LEN);
        memcpy(ck, okm + RATCHET_KEY_LEN, RATCHET_KEY_LEN);
    }
    sodium_memzero(okm, sizeof(okm));
    return r;
}

/* KDF_CK(ck): mk = HMAC(ck, 0x01), ck' = HMAC(ck, 0x02); ck is replaced in place. */
static void rt_kdf_ck(uint8_t ck[static RATCHET_KEY_LEN], uint8_t mk[static RATCHET_KEY_LEN])
{
    static const uint8_t c_mk = 0x01, c_ck = 0x02;
    uint8_t next[RATCHET_KEY_LEN];

    crypto_auth_hmacsha256(mk, &c_mk, 1, ck);
    crypto_auth_hmacsha256(next, &c_ck, 1, ck);
    memcpy(ck, next, RATCHET_KEY_LEN);
    sodium_memzero(next, sizeof(next));
}

/*
 * Message key -> AEAD key (spec 5.2 derives key material from mk with HKDF).
 * The nonce is random and sent (ratchet.h): a rolled-back state that derives
 * this key again must not also repeat the nonce.
 */
static int rt_msg_key(uint8_t key[static RT_AEAD_KEY_LEN], const uint8_t mk[static RATCHET_KEY_LEN])
{
    return hkdf_sha256(key, RT_AEAD_KEY_LEN, NULL, 0, mk, RATCHET_KEY_LEN,
                       (const uint8_t *)rt_info_msg, sizeof(rt_info_msg) - 1);
}

static void rt_ad(uint8_t ad[static RATCHET_AD_LEN], const struct x3dh_party *sender,
                  const struct x3dh_party *recipient,
                  const uint8_t header[static RATCHET_HEADER_LEN])
{
    uint8_t *p = ad;

    *p++ = E2E_WIRE_VERSION;
    memcpy(p, sender->device_id, X3DH_DEVICE_ID_LEN);
    p += X3DH_DEVICE_ID_LEN;
    memcpy(p, recipient->device_id, X3DH_DEVICE_ID_LEN);
    p += X3DH_DEVICE_ID_LEN;
    memcpy(p, sender->identity_pk, X3DH_PK_LEN);
    p += X3DH_PK_LEN;
    memcpy(p, recipient->identity_pk, X3DH_PK_LEN);
    p += X3DH_PK_LEN;
    memcpy(p, header, RATCHET_HEADER_LEN);
}

/* ---- initialisation (spec 3.3) ---- */

static int rt_check_parties(const struct x3dh_party *self, const struct x3dh_party *peer)
{
    int r;

    if ((r = x3dh_pk_check(self->identity_pk)) != 0 || (r = x3dh_pk_check(peer->identity_pk)) != 0)
        return r;
    return 0;
}

/* The X3DH header kept by an initiator: same rules as in a prekey message. */
static int rt_check_pending(const struct x3dh_init_header *h)
{
    if (h->has_opk > 1 || (!h->has_opk && h->opk_id != 0))
        return VERR_BAD_FORMAT;
    return x3dh_pk_check(h->ek_pk);
}

static int rt_pending_is_zero(const struct x3dh_init_header *h)
{
    return sodium_is_zero(h->ek_pk, X3DH_PK_LEN) && h->spk_id == 0 && h->has_opk == 0 &&
           h->opk_id == 0;
}

int ratchet_init_initiator(struct ratchet_session **out, const uint8_t sk[static X3DH_SECRET_LEN],
                           const struct x3dh_init_header *x3dh, const struct x3dh_party *self,
                           const struct x3dh_party *peer,
                           const uint8_t peer_spk_pk[static X3DH_PK_LEN])
{
    struct ratchet_session *s = NULL;
    uint8_t dh_out[32];
    int r = VERR_INTERNAL;

    *out = NULL;
    if ((r = rt_check_parties(self, peer)) != 0 || (r = rt_check_pending(x3dh)) != 0)
        goto out;
    if ((s = rt_alloc()) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    s->self = *self;
    s->peer = *peer;
    s->pending = *x3dh;
    /* RatchetInitAlice: DHs = GENERATE_DH(); DHr = Bob's signed prekey (5.1). */
    if ((r = x3dh_keypair(s->dhs_pk, s->dhs_sk)) != 0)
        goto out;
    memcpy(s->dhr, peer_spk_pk, X3DH_PK_LEN);
    memcpy(s->rk, sk, RATCHET_KEY_LEN);
    /* RK, CKs = KDF_RK(SK, DH(DHs, DHr)). */
    if ((r = x3dh_dh(dh_out, s->dhs_sk, s->dhr)) != 0 ||
        (r = rt_kdf_rk(s->rk, s->cks, dh_out)) != 0)
        goto out;
    s->flags = RT_HAS_DHR | RT_HAS_CKS;
    *out = s;
    s = NULL; /* owned by the caller now */
    r = 0;
out:
    sodium_memzero(dh_out, sizeof(dh_out));
    ratchet_session_free(s);
    return r;
}

int ratchet_init_responder(struct ratchet_session **out, const uint8_t sk[static X3DH_SECRET_LEN],
                           const struct x3dh_party *self, const struct x3dh_party *peer,
                           const uint8_t spk_sk[static X3DH_SK_LEN])
{
    struct ratchet_session *s = NULL;
    int r = VERR_INTERNAL;

    *out = NULL;
    if ((r = rt_check_parties(self, peer)) != 0)
        goto out;
    if ((s = rt_alloc()) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    s->self = *self;
    s->peer = *peer;
    /* RatchetInitBob: DHs = the signed prekey pair, RK = SK, no chains yet. */
    memcpy(s->dhs_sk, spk_sk, X3DH_SK_LEN);
    if ((r = x3dh_public(s->dhs_pk, s->dhs_sk)) != 0)
        goto out;
    memcpy(s->rk, sk, RATCHET_KEY_LEN);
    s->flags = 0;
    *out = s;
    s = NULL; /* owned by the caller now */
    r = 0;
out:
    ratchet_session_free(s);
    return r;
}

/* ---- message codec ---- */

static int rt_msg_put_prefix(struct buf *out, const uint8_t header[static RATCHET_HEADER_LEN],
                             const uint8_t nonce[static RATCHET_NONCE_LEN], size_t ct_len)
{
    int r;

    if (ct_len <= RATCHET_TAG_LEN || ct_len > RATCHET_MAX_PLAINTEXT + RATCHET_TAG_LEN)
        return VERR_TOO_LARGE;
    if ((r = buf_put_u8(out, E2E_WIRE_VERSION)) != 0 ||
        (r = buf_put_u8(out, E2E_TYPE_RATCHET)) != 0 ||
        (r = buf_put_bytes(out, header, RATCHET_HEADER_LEN)) != 0 ||
        (r = buf_put_bytes(out, nonce, RATCHET_NONCE_LEN)) != 0 ||
        (r = buf_put_u32(out, (uint32_t)ct_len)) != 0)
        return r;
    return 0;
}

int ratchet_msg_encode(const uint8_t header[static RATCHET_HEADER_LEN],
                       const uint8_t nonce[static RATCHET_NONCE_LEN], const uint8_t *ct,
                       size_t ct_len, struct buf *out)
{
    size_t save = buf_size(out);
    int r;

    if ((r = rt_msg_put_prefix(out, header, nonce, ct_len)) != 0 ||
        (r = buf_put_bytes(out, ct, ct_len)) != 0)
        buf_truncate(out, save);
    return r;
}

int ratchet_msg_parse(struct ratchet_msg *m, const uint8_t *p, size_t len)
{
    struct buf b, ct, nonce;
    uint8_t v, t;
    int r;

    memset(m, 0, sizeof(*m));
    buf_view(&b, p, len);
    if ((r = buf_get_u8(&b, &v)) != 0 || (r = buf_get_u8(&b, &t)) != 0)
        return r;
    if (v != E2E_WIRE_VERSION)
        return VERR_BAD_VERSION;
    if (t != E2E_TYPE_RATCHET)
        return VERR_BAD_FORMAT;
    m->header = buf_rptr(&b);
    if ((r = buf_get_bytes(&b, m->dh, X3DH_PK_LEN)) != 0 || (r = buf_get_u32(&b, &m->pn)) != 0 ||
        (r = buf_get_u32(&b, &m->n)) != 0)
        return r;
    if ((r = x3dh_pk_check(m->dh)) != 0)
        return r;
    if ((r = buf_get_view(&b, RATCHET_NONCE_LEN, &nonce)) != 0)
        return r;
    m->nonce = buf_data(&nonce);
    if ((r = buf_get_view32(&b, RATCHET_MAX_PLAINTEXT + RATCHET_TAG_LEN, &ct)) != 0)
        return r;
    /* A message carries at least one plaintext byte. */
    if (buf_size(&ct) <= RATCHET_TAG_LEN)
        return VERR_BAD_FORMAT;
    if ((r = buf_expect_end(&b)) != 0)
        return r;
    m->ct = buf_data(&ct);
    m->ct_len = buf_size(&ct);
    return 0;
}

/* ---- encryption (spec 3.4) ---- */

struct rt_msg_secrets {
    uint8_t ck[RATCHET_KEY_LEN];
    uint8_t mk[RATCHET_KEY_LEN];
    uint8_t key[RT_AEAD_KEY_LEN];
};

int ratchet_encrypt(struct ratchet_session *s, const uint8_t *pt, size_t pt_len, struct buf *out)
{
    struct rt_msg_secrets k;
    uint8_t header[RATCHET_HEADER_LEN], ad[RATCHET_AD_LEN], nonce[RATCHET_NONCE_LEN];
    size_t save = buf_size(out);
    uint8_t *ct;
    unsigned long long ct_len = 0;
    int r = VERR_INTERNAL;

    sodium_memzero(&k, sizeof(k));
    if (!(s->flags & RT_HAS_CKS)) {
        r = VERR_PROTOCOL; /* Bob sends only after Alice's first message (spec 3.3) */
        goto out;
    }
    if (pt_len == 0) {
        r = VERR_USAGE;
        goto out;
    }
    if (pt_len > RATCHET_MAX_PLAINTEXT) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    /* n never wraps: a receiver would take a wrapped number for a replay. */
    if (s->ns == UINT32_MAX) {
        r = VERR_LIMIT;
        goto out;
    }
    /* CKs, mk = KDF_CK(CKs), on a copy until the message is written. */
    memcpy(k.ck, s->cks, RATCHET_KEY_LEN);
    rt_kdf_ck(k.ck, k.mk);
    if ((r = rt_msg_key(k.key, k.mk)) != 0)
        goto out;
    randombytes_buf(nonce, sizeof(nonce));
    memcpy(header, s->dhs_pk, X3DH_PK_LEN);
    rt_store32(header + 32, s->pn);
    rt_store32(header + 36, s->ns);
    rt_ad(ad, &s->self, &s->peer, header);
    if ((r = rt_msg_put_prefix(out, header, nonce, pt_len + RATCHET_TAG_LEN)) != 0 ||
        (r = buf_reserve(out, pt_len + RATCHET_TAG_LEN, &ct)) != 0)
        goto out;
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &ct_len, pt, pt_len, ad, sizeof(ad), NULL,
                                                   nonce, k.key) != 0 ||
        ct_len != pt_len + RATCHET_TAG_LEN) {
        r = VERR_INTERNAL;
        goto out;
    }
    /* Commit: the message is written. */
    memcpy(s->cks, k.ck, RATCHET_KEY_LEN);
    s->ns++;
    r = 0;
out:
    if (r != 0)
        buf_truncate(out, save);
    sodium_memzero(&k, sizeof(k));
    return r;
}

/* ---- decryption (spec 3.5), always on a working copy ---- */

static int rt_open(const struct ratchet_session *w, const uint8_t mk[static RATCHET_KEY_LEN],
                   const struct ratchet_msg *m, uint8_t *pt)
{
    uint8_t key[RT_AEAD_KEY_LEN], ad[RATCHET_AD_LEN];
    unsigned long long pt_len = 0;
    int r;

    if ((r = rt_msg_key(key, mk)) != 0)
        goto out;
    /* The sender is the peer: a message reflected back to its sender fails here. */
    rt_ad(ad, &w->peer, &w->self, m->header);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &pt_len, NULL, m->ct, m->ct_len, ad,
                                                   sizeof(ad), m->nonce, key) != 0) {
        r = VERR_DECRYPT;
        goto out;
    }
    r = 0;
out:
    sodium_memzero(key, sizeof(key));
    return r;
}

static void rt_skipped_remove(struct ratchet_session *w, uint32_t first, uint32_t count)
{
    uint32_t tail = w->nskipped - first - count;

    if (tail > 0)
        memmove(&w->skipped[first], &w->skipped[first + count], tail * sizeof(w->skipped[0]));
    w->nskipped -= count;
    sodium_memzero(&w->skipped[w->nskipped], count * sizeof(w->skipped[0]));
}

/* Spec 3.5 SkipMessageKeys, with the stored total capped (oldest evicted, 6.4). */
static int rt_skip(struct ratchet_session *w, uint32_t until)
{
    uint32_t k;
    struct rt_skipped *e;

    if ((uint64_t)w->nr + RATCHET_MAX_SKIP < until)
        return VERR_LIMIT;
    if (!(w->flags & RT_HAS_CKR) || until <= w->nr)
        return 0;
    k = until - w->nr;
    if (w->nskipped + k > RATCHET_MAX_SKIPPED)
        rt_skipped_remove(w, 0, w->nskipped + k - RATCHET_MAX_SKIPPED);
    while (w->nr < until) {
        e = &w->skipped[w->nskipped++];
        memcpy(e->dh, w->dhr, X3DH_PK_LEN);
        e->n = w->nr;
        e->step = w->steps;
        rt_kdf_ck(w->ckr, e->mk);
        w->nr++;
    }
    return 0;
}

/*
 * Spec section 6 (deletion of skipped message keys): after a DH ratchet step,
 * keys stored more than RATCHET_SKIPPED_MAX_STEPS steps ago are deleted. The
 * table is oldest first, so they are a prefix of it.
 */
static void rt_skipped_age(struct ratchet_session *w)
{
    uint32_t old = 0;

    while (old < w->nskipped && w->steps - w->skipped[old].step > RATCHET_SKIPPED_MAX_STEPS)
        old++;
    if (old > 0)
        rt_skipped_remove(w, 0, old);
}

/* Spec 3.5 DHRatchet. */
static int rt_dh_ratchet(struct ratchet_session *w, const uint8_t dh[static X3DH_PK_LEN])
{
    uint8_t dh_out[32];
    int r;

    w->pn = w->ns;
    w->ns = 0;
    w->nr = 0;
    memcpy(w->dhr, dh, X3DH_PK_LEN);
    if ((r = x3dh_dh(dh_out, w->dhs_sk, w->dhr)) != 0 ||
        (r = rt_kdf_rk(w->rk, w->ckr, dh_out)) != 0)
        goto out;
    if ((r = x3dh_keypair(w->dhs_pk, w->dhs_sk)) != 0 ||
        (r = x3dh_dh(dh_out, w->dhs_sk, w->dhr)) != 0 ||
        (r = rt_kdf_rk(w->rk, w->cks, dh_out)) != 0)
        goto out;
    w->flags = RT_HAS_DHR | RT_HAS_CKS | RT_HAS_CKR;
    w->steps++; /* wraps after 2^32 steps: ages are computed mod 2^32 */
    rt_skipped_age(w);
    /* A reply arrived (if this is the initiator): no more prekey messages. */
    memset(&w->pending, 0, sizeof(w->pending));
    r = 0;
out:
    sodium_memzero(dh_out, sizeof(dh_out));
    return r;
}

static int rt_decrypt_on(struct ratchet_session *w, const struct ratchet_msg *m, uint8_t *pt)
{
    uint8_t mk[RATCHET_KEY_LEN];
    uint32_t i;
    int r = VERR_INTERNAL;

    /* TrySkippedMessageKeys. */
    for (i = 0; i < w->nskipped; i++) {
        if (w->skipped[i].n == m->n && memcmp(w->skipped[i].dh, m->dh, X3DH_PK_LEN) == 0) {
            if ((r = rt_open(w, w->skipped[i].mk, m, pt)) != 0)
                goto out;
            rt_skipped_remove(w, i, 1);
            r = 0;
            goto out;
        }
    }
    /* A receiving chain never reaches UINT32_MAX + 1 (see ratchet_encrypt). */
    if (m->n == UINT32_MAX) {
        r = VERR_LIMIT;
        goto out;
    }
    if (!(w->flags & RT_HAS_DHR) || memcmp(m->dh, w->dhr, X3DH_PK_LEN) != 0) {
        if ((r = rt_skip(w, m->pn)) != 0 || (r = rt_dh_ratchet(w, m->dh)) != 0)
            goto out;
    } else if (!(w->flags & RT_HAS_CKR)) {
        /*
         * DHr is the peer's signed prekey and no receiving chain exists yet
         * (spec 3.3: CKr = None). Deriving from an absent chain key would use a
         * value any forger can compute: refuse.
         */
        r = VERR_DECRYPT;
        goto out;
    } else if (m->n < w->nr) {
        /* Current chain already past n and no skipped key: seen before. */
        r = VERR_REPLAY;
        goto out;
    }
    if ((r = rt_skip(w, m->n)) != 0)
        goto out;
    /* Never derive from an absent chain key (all zero, known to anyone). */
    if (!(w->flags & RT_HAS_CKR)) {
        r = VERR_INTERNAL;
        goto out;
    }
    rt_kdf_ck(w->ckr, mk);
    w->nr++;
    r = rt_open(w, mk, m, pt);
out:
    sodium_memzero(mk, sizeof(mk));
    return r;
}

int ratchet_decrypt(struct ratchet_session *s, const uint8_t *msg, size_t msg_len, struct buf *out)
{
    struct ratchet_session *w = NULL;
    struct ratchet_msg m;
    size_t save = buf_size(out);
    uint8_t *pt;
    int r = VERR_INTERNAL;

    if ((r = ratchet_msg_parse(&m, msg, msg_len)) != 0)
        goto out;
    if ((r = buf_reserve(out, m.ct_len - RATCHET_TAG_LEN, &pt)) != 0)
        goto out;
    if ((w = rt_alloc()) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    rt_copy(w, s);
    if ((r = rt_decrypt_on(w, &m, pt)) != 0)
        goto out;
    /* Commit only now: the AEAD verified and the plaintext is in out. */
    rt_copy(s, w);
    r = 0;
out:
    if (r != 0)
        buf_truncate(out, save);
    ratchet_session_free(w);
    return r;
}

/* ---- session codec ---- */

int ratchet_session_encode(const struct ratchet_session *s, struct buf *out)
{
    size_t save = buf_size(out);
    uint32_t i;
    int r = VERR_INTERNAL;

    if ((r = buf_put_bytes(out, rt_magic, sizeof(rt_magic))) != 0 ||
        (r = buf_put_u8(out, RT_SESSION_VERSION)) != 0 || (r = buf_put_u8(out, s->flags)) != 0 ||
        (r = buf_put_bytes(out, s->self.device_id, X3DH_DEVICE_ID_LEN)) != 0 ||
        (r = buf_put_bytes(out, s->self.identity_pk, X3DH_PK_LEN)) != 0 ||
        (r = buf_put_bytes(out, s->peer.device_id, X3DH_DEVICE_ID_LEN)) != 0 ||
        (r = buf_put_bytes(out, s->peer.identity_pk, X3DH_PK_LEN)) != 0 ||
        (r = buf_put_bytes(out, s->dhs_sk, X3DH_SK_LEN)) != 0 ||
        (r = buf_put_bytes(out, s->dhs_pk, X3DH_PK_LEN)) != 0 ||
        (r = buf_put_bytes(out, s->dhr, X3DH_PK_LEN)) != 0 ||
        (r = buf_put_bytes(out, s->rk, RATCHET_KEY_LEN)) != 0 ||
        (r = buf_put_bytes(out, s->cks, RATCHET_KEY_LEN)) != 0 ||
        (r = buf_put_bytes(out, s->ckr, RATCHET_KEY_LEN)) != 0 ||
        (r = buf_put_u32(out, s->ns)) != 0 || (r = buf_put_u32(out, s->nr)) != 0 ||
        (r = buf_put_u32(out, s->pn)) != 0 ||
        (r = buf_put_bytes(out, s->pending.ek_pk, X3DH_PK_LEN)) != 0 ||
        (r = buf_put_u32(out, s->pending.spk_id)) != 0 ||
        (r = buf_put_u8(out, s->pending.has_opk)) != 0 ||
        (r = buf_put_u32(out, s->pending.opk_id)) != 0 || (r = buf_put_u32(out, s->nskipped)) != 0 ||
        (r = buf_put_u32(out, s->steps)) != 0)
        goto out;
    for (i = 0; i < s->nskipped; i++) {
        if ((r = buf_put_bytes(out, s->skipped[i].dh, X3DH_PK_LEN)) != 0 ||
            (r = buf_put_u32(out, s->skipped[i].n)) != 0 ||
            (r = buf_put_u32(out, s->skipped[i].step)) != 0 ||
            (r = buf_put_bytes(out, s->skipped[i].mk, RATCHET_KEY_LEN)) != 0)
            goto out;
    }
    r = 0;
out:
    if (r != 0)
        buf_truncate(out, save);
    return r;
}

int ratchet_session_parse(struct ratchet_session **out, const uint8_t *p, size_t len)
{
    struct ratchet_session *s = NULL;
    struct buf b;
    uint8_t magic[sizeof(rt_magic)], version, pk[X3DH_PK_LEN];
    size_t entry_len;
    uint32_t i;
    int r = VERR_INTERNAL;

    *out = NULL;
    /* Caps before allocation: the fixed part and the whole table bound the size. */
    if (len > RT_SESSION_MAX) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    buf_view(&b, p, len);
    if ((r = buf_get_bytes(&b, magic, sizeof(magic))) != 0)
        goto out;
    if (memcmp(magic, rt_magic, sizeof(magic)) != 0) {
        r = VERR_BAD_MAGIC;
        goto out;
    }
    if ((r = buf_get_u8(&b, &version)) != 0)
        goto out;
    if (version != RT_SESSION_VERSION && version != RT_SESSION_VERSION_V1) {
        r = VERR_BAD_VERSION;
        goto out;
    }
    entry_len = version == RT_SESSION_VERSION ? RT_SKIPPED_WIRE : RT_SKIPPED_WIRE_V1;
    if ((s = rt_alloc()) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    if ((r = buf_get_u8(&b, &s->flags)) != 0 ||
        (r = buf_get_bytes(&b, s->self.device_id, X3DH_DEVICE_ID_LEN)) != 0 ||
        (r = buf_get_bytes(&b, s->self.identity_pk, X3DH_PK_LEN)) != 0 ||
        (r = buf_get_bytes(&b, s->peer.device_id, X3DH_DEVICE_ID_LEN)) != 0 ||
        (r = buf_get_bytes(&b, s->peer.identity_pk, X3DH_PK_LEN)) != 0 ||
        (r = buf_get_bytes(&b, s->dhs_sk, X3DH_SK_LEN)) != 0 ||
        (r = buf_get_bytes(&b, s->dhs_pk, X3DH_PK_LEN)) != 0 ||
        (r = buf_get_bytes(&b, s->dhr, X3DH_PK_LEN)) != 0 ||
        (r = buf_get_bytes(&b, s->rk, RATCHET_KEY_LEN)) != 0 ||
        (r = buf_get_bytes(&b, s->cks, RATCHET_KEY_LEN)) != 0 ||
        (r = buf_get_bytes(&b, s->ckr, RATCHET_KEY_LEN)) != 0 ||
        (r = buf_get_u32(&b, &s->ns)) != 0 || (r = buf_get_u32(&b, &s->nr)) != 0 ||
        (r = buf_get_u32(&b, &s->pn)) != 0 ||
        (r = buf_get_bytes(&b, s->pending.ek_pk, X3DH_PK_LEN)) != 0 ||
        (r = buf_get_u32(&b, &s->pending.spk_id)) != 0 ||
        (r = buf_get_u8(&b, &s->pending.has_opk)) != 0 ||
        (r = buf_get_u32(&b, &s->pending.opk_id)) != 0 || (r = buf_get_u32(&b, &s->nskipped)) != 0)
        goto out;
    /* Version 1 has no step counter: its keys are taken as stored at step 0. */
    if (version == RT_SESSION_VERSION && (r = buf_get_u32(&b, &s->steps)) != 0)
        goto out;
    /*
     * Only three phases exist: responder before its first message (no DHr,
     * no chains), initiator before its first reply (DHr and CKs), and running
     * (all three). Absent keys must be zero, so every session has one encoding.
     */
    if (s->flags != 0 && s->flags != (RT_HAS_DHR | RT_HAS_CKS) &&
        s->flags != (RT_HAS_DHR | RT_HAS_CKS | RT_HAS_CKR)) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    if ((!(s->flags & RT_HAS_DHR) && !sodium_is_zero(s->dhr, X3DH_PK_LEN)) ||
        (!(s->flags & RT_HAS_CKS) && !sodium_is_zero(s->cks, RATCHET_KEY_LEN)) ||
        (!(s->flags & RT_HAS_CKR) && !sodium_is_zero(s->ckr, RATCHET_KEY_LEN))) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    /* The X3DH header is kept exactly in the initiator-before-reply phase. */
    if (s->flags == (RT_HAS_DHR | RT_HAS_CKS)) {
        if ((r = rt_check_pending(&s->pending)) != 0)
            goto out;
    } else if (!rt_pending_is_zero(&s->pending)) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    if ((r = rt_check_parties(&s->self, &s->peer)) != 0 || (r = x3dh_pk_check(s->dhs_pk)) != 0)
        goto out;
    if ((s->flags & RT_HAS_DHR) && (r = x3dh_pk_check(s->dhr)) != 0)
        goto out;
    /* The stored public half must belong to the stored secret. */
    if ((r = x3dh_public(pk, s->dhs_sk)) != 0)
        goto out;
    if (sodium_memcmp(pk, s->dhs_pk, X3DH_PK_LEN) != 0) {
        r = VERR_BAD_KEY;
        goto out;
    }
    if (s->nskipped > RATCHET_MAX_SKIPPED) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    if (buf_left(&b) != (size_t)s->nskipped * entry_len) {
        r = buf_left(&b) < (size_t)s->nskipped * entry_len ? VERR_TRUNCATED : VERR_TRAILING;
        goto out;
    }
    for (i = 0; i < s->nskipped; i++) {
        if ((r = buf_get_bytes(&b, s->skipped[i].dh, X3DH_PK_LEN)) != 0 ||
            (r = buf_get_u32(&b, &s->skipped[i].n)) != 0 ||
            (version == RT_SESSION_VERSION && (r = buf_get_u32(&b, &s->skipped[i].step)) != 0) ||
            (r = buf_get_bytes(&b, s->skipped[i].mk, RATCHET_KEY_LEN)) != 0)
            goto out;
        if ((r = x3dh_pk_check(s->skipped[i].dh)) != 0)
            goto out;
        /*
         * No key older than the bound, none from a later step than the
         * session's, and oldest first (ages computed mod 2^32).
         */
        if (s->steps - s->skipped[i].step > RATCHET_SKIPPED_MAX_STEPS ||
            (i > 0 && s->steps - s->skipped[i].step > s->steps - s->skipped[i - 1].step)) {
            r = VERR_BAD_FORMAT;
            goto out;
        }
    }
    if ((r = buf_expect_end(&b)) != 0)
        goto out;
    *out = s;
    s = NULL; /* owned by the caller now */
    r = 0;
out:
    ratchet_session_free(s);
    return r;
}
