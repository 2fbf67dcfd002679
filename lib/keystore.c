/* keystore.c - Argon2id + XChaCha20-Poly1305 keystore (see keystore.h). */
#include "keystore.h"

#include <string.h>

#include <argon2.h>
#include <sodium.h>

#include "fileio.h"

static const uint8_t ks_magic[4] = {'V', 'K', 'S', 'T'};

_Static_assert(KS_HEADER_LEN == 63, "keystore header layout (PROTOCOL.md)");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == KS_NONCE_LEN, "nonce size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == KS_TAG_LEN, "tag size");

void ks_params_default(struct ks_params *p)
{
    p->m_kib = KS_MIN_M_KIB;
    p->t_cost = KS_MIN_T;
    p->lanes = KS_LANES;
}

struct ks_header {
    uint8_t kind;
    struct ks_params params;
    uint8_t salt[KS_SALT_LEN];
    uint8_t nonce[KS_NONCE_LEN];
    uint32_t ct_len;
};

static int ks_params_check(const struct ks_params *p)
{
    if (p->m_kib > KS_MAX_M_KIB || p->t_cost > KS_MAX_T || p->lanes != KS_LANES)
        return VERR_BAD_FORMAT;
    /* Refuse downgraded files before spending any work on them. */
    if (p->m_kib < KS_MIN_M_KIB || p->t_cost < KS_MIN_T)
        return VERR_WEAK_PARAMS;
    return 0;
}

static int ks_parse(const uint8_t *file, size_t len, enum ks_kind kind, struct ks_header *h,
                    struct buf *ct)
{
    struct buf b;
    uint8_t magic[4], version, kdf;
    int r;

    buf_view(&b, file, len);
    if ((r = buf_get_bytes(&b, magic, sizeof(magic))) != 0)
        return r;
    if (memcmp(magic, ks_magic, sizeof(magic)) != 0)
        return VERR_BAD_MAGIC;
    if ((r = buf_get_u8(&b, &version)) != 0)
        return r;
    if (version != KS_VERSION)
        return VERR_BAD_VERSION;
    if ((r = buf_get_u8(&b, &h->kind)) != 0 || (r = buf_get_u8(&b, &kdf)) != 0)
        return r;
    if (h->kind != (uint8_t)kind || kdf != KS_KDF_ARGON2ID)
        return VERR_BAD_FORMAT;
    if ((r = buf_get_u32(&b, &h->params.m_kib)) != 0 ||
        (r = buf_get_u32(&b, &h->params.t_cost)) != 0 ||
        (r = buf_get_u32(&b, &h->params.lanes)) != 0 ||
        (r = buf_get_bytes(&b, h->salt, sizeof(h->salt))) != 0 ||
        (r = buf_get_bytes(&b, h->nonce, sizeof(h->nonce))) != 0 ||
        (r = buf_get_u32(&b, &h->ct_len)) != 0)
        return r;
    /* PROTOCOL.md "Keystore": 16 < c; a bare tag would be an empty secret. */
    if (h->ct_len <= KS_TAG_LEN || h->ct_len > KS_MAX_SECRET + KS_TAG_LEN)
        return VERR_BAD_FORMAT;
    if ((r = buf_get_view(&b, h->ct_len, ct)) != 0)
        return r;
    if ((r = buf_expect_end(&b)) != 0)
        return r;
    return ks_params_check(&h->params);
}

static int ks_derive(uint8_t key[static 32], const char *pass, const struct ks_params *p,
                     const uint8_t salt[static KS_SALT_LEN])
{
    int ar;

    ar = argon2id_hash_raw(p->t_cost, p->m_kib, p->lanes, pass, strlen(pass), salt, KS_SALT_LEN,
                           key, 32);
    if (ar == ARGON2_MEMORY_ALLOCATION_ERROR)
        return VERR_NOMEM;
    return ar == ARGON2_OK ? 0 : VERR_INTERNAL;
}

int ks_seal(struct buf *out, enum ks_kind kind, const struct ks_params *params, const char *pass,
            const uint8_t *secret, size_t len)
{
    uint8_t key[32], salt[KS_SALT_LEN], nonce[KS_NONCE_LEN], *ct;
    unsigned long long ctlen = 0;
    int r = VERR_INTERNAL;

    if (buf_init(out, KS_MAX_FILE, 0) != 0)
        return VERR_INTERNAL;
    if (len == 0 || len > KS_MAX_SECRET) {
        r = VERR_USAGE;
        goto out;
    }
    if ((r = ks_params_check(params)) != 0)
        goto out;
    randombytes_buf(salt, sizeof(salt));
    randombytes_buf(nonce, sizeof(nonce));
    if ((r = buf_put_bytes(out, ks_magic, sizeof(ks_magic))) != 0 ||
        (r = buf_put_u8(out, KS_VERSION)) != 0 || (r = buf_put_u8(out, (uint8_t)kind)) != 0 ||
        (r = buf_put_u8(out, KS_KDF_ARGON2ID)) != 0 ||
        (r = buf_put_u32(out, params->m_kib)) != 0 ||
        (r = buf_put_u32(out, params->t_cost)) != 0 ||
        (r = buf_put_u32(out, params->lanes)) != 0 ||
        (r = buf_put_bytes(out, salt, sizeof(salt))) != 0 ||
        (r = buf_put_bytes(out, nonce, sizeof(nonce))) != 0 ||
        (r = buf_put_u32(out, (uint32_t)(len + KS_TAG_LEN))) != 0)
        goto out;
    if ((r = ks_derive(key, pass, params, salt)) != 0)
        goto out;
    if ((r = buf_reserve(out, len + KS_TAG_LEN, &ct)) != 0)
        goto out;
    /* The whole header is associated data: parameters cannot be altered. */
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &ctlen, secret, len, buf_data(out),
                                                   KS_HEADER_LEN, NULL, nonce, key) != 0) {
        r = VERR_INTERNAL;
        goto out;
    }
    r = 0;
out:
    sodium_memzero(key, sizeof(key));
    if (r != 0)
        buf_free(out);
    return r;
}

int ks_check(const uint8_t *file, size_t len, enum ks_kind kind)
{
    struct ks_header h;
    struct buf ct;

    return ks_parse(file, len, kind, &h, &ct);
}

int ks_derive_key(const uint8_t *file, size_t len, enum ks_kind kind, const char *pass,
                  uint8_t key[static 32])
{
    struct ks_header h;
    struct buf ct;
    int r;

    if ((r = ks_parse(file, len, kind, &h, &ct)) != 0)
        return r;
    return ks_derive(key, pass, &h.params, h.salt);
}

int ks_open_key(const uint8_t *file, size_t len, enum ks_kind kind, const uint8_t key[static 32],
                struct buf *secret)
{
    struct ks_header h;
    struct buf ct;
    uint8_t *pt;
    unsigned long long ptlen = 0;
    int r = VERR_INTERNAL;

    if (buf_init(secret, KS_MAX_SECRET, BUF_SECRET) != 0)
        return VERR_INTERNAL;
    if ((r = ks_parse(file, len, kind, &h, &ct)) != 0)
        goto out;
    if ((r = buf_reserve(secret, buf_size(&ct) - KS_TAG_LEN, &pt)) != 0)
        goto out;
    /* The header (parameters, salt, nonce, length) is the associated data. */
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &ptlen, NULL, buf_data(&ct), buf_size(&ct),
                                                   file, KS_HEADER_LEN, h.nonce, key) != 0) {
        r = VERR_DECRYPT;
        goto out;
    }
    r = 0;
out:
    if (r != 0)
        buf_free(secret);
    return r;
}

int ks_open(const uint8_t *file, size_t len, enum ks_kind kind, const char *pass,
            struct buf *secret)
{
    uint8_t key[32];
    int r;

    if ((r = ks_derive_key(file, len, kind, pass, key)) != 0) {
        buf_view(secret, NULL, 0); /* leave the caller a freeable buffer */
        return r;
    }
    r = ks_open_key(file, len, kind, key, secret);
    sodium_memzero(key, sizeof(key));
    return r;
}

int ks_create_file(const char *path, enum ks_kind kind, const char *pass, const uint8_t *secret,
                   size_t len)
{
    struct ks_params p;
    struct buf file;
    int r;

    if (file_exists(path))
        return VERR_EXISTS;
    ks_params_default(&p);
    if ((r = ks_seal(&file, kind, &p, pass, secret, len)) != 0)
        return r;
    r = file_write_new(path, buf_data(&file), buf_size(&file), 0600);
    buf_free(&file);
    return r;
}

int ks_open_file(const char *path, enum ks_kind kind, const char *pass, struct buf *secret)
{
    struct buf file;
    int r;

    if ((r = file_read(path, KS_MAX_FILE, 0, &file)) != 0) {
        buf_view(secret, NULL, 0); /* leave the caller a freeable buffer */
        return r == VERR_TOO_LARGE ? VERR_BAD_FORMAT : r;
    }
    r = ks_open(buf_data(&file), buf_size(&file), kind, pass, secret);
    buf_free(&file);
    return r;
}
