/*
 * client_fixture.h - a throw-away organisation for the client's unit tests
 * (test code only): a root key, device certificates with chosen post, role,
 * name and validity, and a signed directory with revocations, all made with
 * the project's own cert.h / dir.h.
 */
#ifndef VALISE_CLIENT_FIXTURE_H
#define VALISE_CLIENT_FIXTURE_H

#include <string.h>
#include <time.h>

#include <sodium.h>

#include "cert.h"
#include "dir.h"

struct fx_org {
    uint8_t sk[SIG_SK_LEN];
    struct orgpub pub;
};

struct fx_dev {
    uint8_t sign_sk[SIG_SK_LEN];
    uint8_t dh_sk[32];
    struct cert cert;
};

static inline void fx_org_init(struct fx_org *o)
{
    memset(o, 0, sizeof(*o));
    crypto_sign_keypair(o->pub.pk, o->sk);
    memcpy(o->pub.name, "Test Ministry", 14);
    orgpub_id(o->pub.id, o->pub.pk);
}

/* A device certified by o; valid from now-3600 for days days (negative: already expired). */
static inline int fx_dev_make(const struct fx_org *o, struct fx_dev *d, uint64_t serial,
                              const char *name, const char *post, const char *role, int days)
{
    uint64_t now = (uint64_t)time(NULL);
    struct buf out;
    int r;

    memset(d, 0, sizeof(*d));
    crypto_sign_keypair(d->cert.sign_pk, d->sign_sk);
    randombytes_buf(d->dh_sk, 32);
    if (crypto_scalarmult_base(d->cert.dh_pk, d->dh_sk) != 0)
        return -1;
    randombytes_buf(d->cert.device_id, DEVICE_ID_LEN);
    /* One person per name here, as IT's registry makes it (tests that need two
     * persons with one name use fx_dev_set_person). */
    {
        uint8_t h[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(h, (const uint8_t *)name, strlen(name));
        memcpy(d->cert.person_id, h, PERSON_ID_LEN);
    }
    d->cert.serial = serial;
    memcpy(d->cert.org_id, o->pub.id, ORG_ID_LEN);
    memcpy(d->cert.name, name, strlen(name) + 1);
    memcpy(d->cert.post, post, strlen(post) + 1);
    memcpy(d->cert.role, role, strlen(role) + 1);
    if (days >= 0) {
        d->cert.not_before = now - 3600;
        d->cert.not_after = now + (uint64_t)days * 86400;
    } else {
        d->cert.not_before = now - 10 * 86400;
        d->cert.not_after = now - 86400;
    }
    if ((r = buf_init(&out, CERT_MAX_LEN, 0)) != 0)
        return r;
    r = cert_sign(&d->cert, o->sk, &out);
    buf_free(&out);
    return r;
}

/* Gives d the person id tag,0x11,0x11,... (another person than its name's) and re-signs it. */
static inline int fx_dev_set_person(const struct fx_org *o, struct fx_dev *d, uint8_t tag)
{
    struct buf out;
    int r;

    memset(d->cert.person_id, 0x11, PERSON_ID_LEN);
    d->cert.person_id[0] = tag;
    if ((r = buf_init(&out, CERT_MAX_LEN, 0)) != 0)
        return r;
    r = cert_sign(&d->cert, o->sk, &out);
    buf_free(&out);
    return r;
}

/* A directory of version v valid from issued to expires, listing devs (sorted by serial). */
static inline int fx_dir_valid(const struct fx_org *o, uint64_t v, uint64_t issued,
                               uint64_t expires, const struct fx_dev *const *devs, size_t n,
                               const struct fx_dev *const *revs, size_t nrev,
                               struct directory **out, struct buf *bytes)
{
    struct cert certs[32];
    struct dir_revocation rv[32];
    int r;

    for (size_t i = 0; i < n; i++)
        certs[i] = devs[i]->cert;
    for (size_t i = 0; i < nrev; i++) {
        rv[i].serial = revs[i]->cert.serial;
        memcpy(rv[i].device_id, revs[i]->cert.device_id, DEVICE_ID_LEN);
        rv[i].revoked_at = (uint64_t)time(NULL) - 60;
    }
    if ((r = buf_init(bytes, DIR_MAX_LEN, 0)) != 0)
        return r;
    if ((r = dir_encode_sign(v, issued, expires, &o->pub, certs, n, rv, nrev, o->sk, bytes)) != 0)
        return r;
    return dir_parse_verify(buf_data(bytes), buf_size(bytes), &o->pub, out);
}

/* A directory of version v, issued now and valid 7 days, listing devs, revoking revs. */
static inline int fx_dir(const struct fx_org *o, uint64_t v, const struct fx_dev *const *devs,
                         size_t n, const struct fx_dev *const *revs, size_t nrev,
                         struct directory **out, struct buf *bytes)
{
    uint64_t now = (uint64_t)time(NULL);

    return fx_dir_valid(o, v, now, now + 7 * 86400, devs, n, revs, nrev, out, bytes);
}

#endif
