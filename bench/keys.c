/*
 * keys.c - a throw-away organisation and its devices, made in-process with
 * the library's own encoders (the same bytes valise-keys writes).
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "dir.h"
#include "fileio.h"
#include "relaycert.h"

int keys_create(struct bench_keys *k, const char *dir, size_t n)
{
    struct buf out = {0};
    uint8_t seed[SIG_SEED_LEN], dh_sk[32];
    uint64_t now = (uint64_t)time(NULL);
    int r = VERR_INTERNAL;

    memset(k, 0, sizeof(*k));
    if (n == 0 || n > DIR_MAX_CERTS)
        return VERR_USAGE;
    if (snprintf(k->dir, sizeof(k->dir), "%s", dir) >= (int)sizeof(k->dir) ||
        file_join(k->org_pub, sizeof(k->org_pub), dir, "org.pub") != 0)
        return VERR_TOO_LARGE;
    k->n = n;
    if ((k->sks = sodium_malloc((n + 1) * SIG_SK_LEN)) == NULL ||
        (k->certs = calloc(n, sizeof(*k->certs))) == NULL ||
        (k->dev = calloc(n, sizeof(*k->dev))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    /* The organisation root: key slot 0. */
    snprintf(k->org.name, sizeof(k->org.name), "bench");
    randombytes_buf(seed, sizeof(seed));
    crypto_sign_seed_keypair(k->org.pk, k->sks, seed);
    orgpub_id(k->org.id, k->org.pk);
    /* The encoders initialise their output buffer themselves (cert.h). */
    if ((r = orgpub_encode(&k->org, &out)) != 0)
        goto out;
    r = file_write_new(k->org_pub, buf_data(&out), buf_size(&out), 0644);
    buf_free(&out);
    if (r != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct cert *c = &k->certs[i];
        struct bench_device *d = &k->dev[i];

        d->sk = k->sks + (i + 1) * SIG_SK_LEN;
        c->serial = i + 1;
        memcpy(c->org_id, k->org.id, ORG_ID_LEN);
        randombytes_buf(c->device_id, DEVICE_ID_LEN);
        memcpy(c->person_id, c->device_id, PERSON_ID_LEN); /* one person per device */
        snprintf(c->name, sizeof(c->name), "Bench Device %zu", i);
        snprintf(c->post, sizeof(c->post), "BENCH");
        snprintf(c->role, sizeof(c->role), "d%zu", i);
        crypto_sign_keypair(c->sign_pk, d->sk);
        crypto_box_keypair(c->dh_pk, dh_sk);
        c->not_before = now - 60;
        c->not_after = now + 30 * 86400;
        if ((r = cert_sign(c, k->sks, &out)) != 0)
            goto out;
        if (buf_size(&out) > sizeof(d->cert)) {
            r = VERR_INTERNAL;
            goto out;
        }
        memcpy(d->cert, buf_data(&out), buf_size(&out));
        d->cert_len = buf_size(&out);
        buf_free(&out);
        memcpy(d->id, c->device_id, DEVICE_ID_LEN);
    }
    r = 0;
out:
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(dh_sk, sizeof(dh_sk));
    buf_free(&out);
    if (r != 0)
        keys_free(k);
    return r;
}

int keys_directory(const struct bench_keys *k, size_t n, const char *path)
{
    struct buf out = {0};
    int r;

    if (n > k->n)
        return VERR_USAGE;
    /* Certificates are in increasing serial order, as the directory requires; the encoder
     * initialises out itself. */
    if ((r = dir_encode_sign(1, (uint64_t)time(NULL), (uint64_t)time(NULL) + 7 * 86400, &k->org, k->certs, n, NULL, 0, k->sks,
                             &out)) == 0)
        r = file_write_new(path, buf_data(&out), buf_size(&out), 0644);
    buf_free(&out);
    return r;
}

void keys_free(struct bench_keys *k)
{
    if (k == NULL)
        return;
    if (k->sks != NULL)
        sodium_free(k->sks);
    free(k->certs);
    free(k->dev);
    memset(k, 0, sizeof(*k));
}

int keys_relay_cert(const struct bench_keys *k, const char *data_dir, const char *path)
{
    char key_path[512];
    uint8_t *sk = NULL;
    struct relaycert rc;
    struct buf b = {0};
    int r;

    memset(&rc, 0, sizeof(rc));
    if ((r = file_mkdir_private(data_dir)) != 0 ||
        (r = file_join(key_path, sizeof(key_path), data_dir, RELAYKEY_FILE)) != 0)
        return r;
    if (!file_exists(key_path) && (r = relaykey_create(key_path, rc.pk)) != 0)
        return r;
    if ((sk = sodium_malloc(SIG_SK_LEN)) == NULL)
        return VERR_NOMEM;
    r = relaykey_load(key_path, sk, rc.pk);
    sodium_free(sk);
    if (r != 0)
        return r;
    rc.issued_at = (uint64_t)time(NULL);
    memcpy(rc.org_id, k->org.id, ORG_ID_LEN);
    memcpy(rc.relay_id, "valise-relay", sizeof("valise-relay"));
    rc.not_before = rc.issued_at - 60;
    rc.not_after = rc.issued_at + 86400;
    if ((r = relaycert_sign(&rc, k->sks, &b)) != 0)
        return r;
    r = file_replace(path, buf_data(&b), buf_size(&b), 0644);
    buf_free(&b);
    return r;
}
