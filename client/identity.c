/* identity.c - the device's own keys (see identity.h). */
#include "identity.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "keystore.h"

enum { HOME_PATH_LEN = 4096 };

void identity_free(struct identity *id)
{
    if (id == NULL)
        return;
    sodium_free(id->sign_sk); /* wipes */
    sodium_free(id->dh_sk);
    sodium_free(id->store_key);
    memset(id, 0, sizeof(*id));
}

static int identity_alloc(struct identity *id)
{
    memset(id, 0, sizeof(*id));
    id->sign_sk = sodium_malloc(SIG_SK_LEN);
    id->dh_sk = sodium_malloc(32);
    id->store_key = sodium_malloc(IDENTITY_STORE_KEY_LEN);
    if (id->sign_sk == NULL || id->dh_sk == NULL || id->store_key == NULL) {
        identity_free(id);
        return VERR_NOMEM;
    }
    return 0;
}

/* Derives the public halves from the keystore secret. */
static int identity_from_secret(struct identity *id, const uint8_t *secret)
{
    if (crypto_sign_seed_keypair(id->sign_pk, id->sign_sk, secret) != 0)
        return VERR_INTERNAL;
    memcpy(id->dh_sk, secret + 32, 32);
    if (crypto_scalarmult_base(id->dh_pk, id->dh_sk) != 0)
        return VERR_BAD_KEY;
    memcpy(id->store_key, secret + 64, IDENTITY_STORE_KEY_LEN);
    return 0;
}

int identity_create(const char *home, const char *name, const char *pass, const char *out_path,
                    uint8_t device_id[static DEVICE_ID_LEN])
{
    char kpath[HOME_PATH_LEN], qpath[HOME_PATH_LEN];
    struct identity id;
    struct enrol_request q;
    struct buf req;
    uint8_t *secret = NULL;
    int r, have_req = 0, made_key = 0, made_req = 0, made_home;

    if (!cert_valid_name(name, PERSON_NAME_MAX))
        return VERR_USAGE;
    if ((r = file_join(kpath, sizeof(kpath), home, "device.key")) != 0 ||
        (r = file_join(qpath, sizeof(qpath), home, "request")) != 0)
        return r;
    if (file_exists(kpath) || file_exists(qpath) || file_exists(out_path))
        return VERR_EXISTS;
    made_home = access(home, F_OK) != 0;
    if ((r = file_mkdir_private(home)) != 0)
        return r;
    if ((r = identity_alloc(&id)) != 0) {
        if (made_home)
            (void)rmdir(home);
        return r;
    }
    if ((secret = sodium_malloc(IDENTITY_SECRET_LEN)) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    randombytes_buf(secret, IDENTITY_SECRET_LEN);
    if ((r = identity_from_secret(&id, secret)) != 0)
        goto out;
    memset(&q, 0, sizeof(q));
    randombytes_buf(q.device_id, sizeof(q.device_id));
    memcpy(q.name, name, strlen(name) + 1);
    memcpy(q.sign_pk, id.sign_pk, SIG_PK_LEN);
    memcpy(q.dh_pk, id.dh_pk, DH_PK_LEN);
    q.created = (uint64_t)time(NULL);
    if ((r = request_encode_sign(&q, id.sign_sk, &req)) != 0)
        goto out;
    have_req = 1;
    if ((r = ks_create_file(kpath, KS_KIND_DEVICE, pass, secret, IDENTITY_SECRET_LEN)) != 0)
        goto out;
    made_key = 1;
    if ((r = file_write_new(qpath, buf_data(&req), buf_size(&req), 0644)) != 0)
        goto out;
    made_req = 1;
    if ((r = file_write_new(out_path, buf_data(&req), buf_size(&req), 0644)) != 0)
        goto out;
    memcpy(device_id, q.device_id, DEVICE_ID_LEN);
    r = 0;
out:
    if (r != 0) {
        /* Nothing half-made stays behind. */
        if (made_req)
            (void)remove(qpath);
        if (made_key)
            (void)remove(kpath);
        /* A home this call created goes too: no empty home behind (issue 12, item 11). */
        if (made_home)
            (void)rmdir(home);
    }
    if (have_req)
        buf_free(&req);
    sodium_free(secret);
    identity_free(&id);
    return r;
}

int identity_unlock(const char *home, const char *pass, struct identity *id)
{
    char kpath[HOME_PATH_LEN], qpath[HOME_PATH_LEN];
    struct buf secret, req;
    struct enrol_request q;
    int r;

    if ((r = file_join(kpath, sizeof(kpath), home, "device.key")) != 0 ||
        (r = file_join(qpath, sizeof(qpath), home, "request")) != 0)
        return r;
    if ((r = file_read(qpath, REQUEST_MAX_LEN, 0, &req)) != 0)
        return r;
    r = request_parse(buf_data(&req), buf_size(&req), &q);
    buf_free(&req);
    if (r != 0)
        return r;
    if ((r = ks_open_file(kpath, KS_KIND_DEVICE, pass, &secret)) != 0)
        return r;
    if (buf_size(&secret) != IDENTITY_SECRET_LEN) {
        buf_free(&secret);
        return VERR_BAD_FORMAT;
    }
    if ((r = identity_alloc(id)) != 0) {
        buf_free(&secret);
        return r;
    }
    r = identity_from_secret(id, buf_data(&secret));
    buf_free(&secret);
    if (r == 0 && (sodium_memcmp(id->sign_pk, q.sign_pk, SIG_PK_LEN) != 0 ||
                   sodium_memcmp(id->dh_pk, q.dh_pk, DH_PK_LEN) != 0))
        r = VERR_BAD_KEY; /* request and keystore are not of the same device */
    if (r != 0) {
        identity_free(id);
        return r;
    }
    memcpy(id->device_id, q.device_id, DEVICE_ID_LEN);
    memcpy(id->name, q.name, sizeof(id->name));
    return 0;
}
