/* mbox_prekeys.c - this device's own prekeys (see mbox_prekeys.h). */
#include "mbox_prekeys.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "mbox_rec.h"

/* ---- own prekeys ---- */

void pk_key(uint8_t key[static MB_PK_KEY_LEN], char kind, uint32_t id)
{
    key[0] = (uint8_t)kind;
    key[1] = (uint8_t)(id >> 24);
    key[2] = (uint8_t)(id >> 16);
    key[3] = (uint8_t)(id >> 8);
    key[4] = (uint8_t)id;
}

/* sk || pk of a stored prekey into out (64 bytes, secret). */
int pk_get(struct mbox *m, char kind, uint32_t id, uint8_t out[static 64])
{
    uint8_t key[5];
    struct buf b;
    int r;

    pk_key(key, kind, id);
    if ((r = cstore_get(m->st, CS_PREKEYS, key, 5, &b)) != 0)
        return r;
    r = buf_size(&b) == 64 ? 0 : VERR_BAD_FORMAT;
    if (r == 0)
        memcpy(out, buf_data(&b), 64);
    buf_free(&b);
    return r;
}

static int pk_new(struct mbox *m, char kind, uint32_t id, uint8_t pk[static 32])
{
    uint8_t key[5], *kp;
    int r;

    if ((kp = sodium_malloc(64)) == NULL)
        return VERR_NOMEM;
    if ((r = x3dh_keypair(kp + 32, kp)) == 0) {
        pk_key(key, kind, id);
        memcpy(pk, kp + 32, 32);
        r = cstore_put(m->st, CS_PREKEYS, key, 5, kp, 64);
    }
    sodium_free(kp);
    return r;
}

/*
 * Makes (durably, before upload) a signed prekey if there is none and a batch
 * of one-time prekeys, and encodes the PREKEY_UPLOAD message into msg.
 */
int pk_prepare_upload(struct mbox *m, size_t n, struct buf *msg)
{
    struct wire_signed_prekey spk;
    uint8_t *otk = NULL, kp[64];
    uint64_t next, spk_id;
    int r;

    if (n == 0 || n > MB_OTK_BATCH)
        return VERR_USAGE;
    if ((otk = malloc(n * WIRE_OTK_LEN)) == NULL)
        return VERR_NOMEM;
    if ((r = cstore_begin(m->st, 1)) != 0)
        goto out;
    if ((r = mb_cfg_get_u64(m, "pk.next", &next)) != 0 || (r = mb_cfg_get_u64(m, "pk.spk", &spk_id)) != 0)
        goto fail;
    if (next == 0)
        next = 1;
    if (spk_id == 0) {
        spk_id = next++;
        if ((r = pk_new(m, 'S', (uint32_t)spk_id, spk.pk)) != 0)
            goto fail;
    } else {
        if ((r = pk_get(m, 'S', (uint32_t)spk_id, kp)) != 0)
            goto fail;
        memcpy(spk.pk, kp + 32, 32);
        sodium_memzero(kp, sizeof(kp));
    }
    spk.id = (uint32_t)spk_id;
    if ((r = x3dh_spk_sign(spk.sig, m->id.device_id, spk.id, spk.pk, m->id.sign_sk)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = (uint32_t)next++;
        uint8_t *item = otk + i * WIRE_OTK_LEN;
        item[0] = (uint8_t)(id >> 24);
        item[1] = (uint8_t)(id >> 16);
        item[2] = (uint8_t)(id >> 8);
        item[3] = (uint8_t)id;
        if ((r = pk_new(m, 'O', id, item + 4)) != 0)
            goto fail;
    }
    if (next > UINT32_MAX) {
        r = VERR_LIMIT;
        goto fail;
    }
    if ((r = mb_cfg_put_u64(m, "pk.next", next)) != 0 || (r = mb_cfg_put_u64(m, "pk.spk", spk_id)) != 0 ||
        (r = cstore_commit(m->st)) != 0)
        goto fail;
    if ((r = buf_init(msg, 1 << 20, 0)) != 0)
        goto out;
    if ((r = wire_put_prekey_upload(msg, &spk, otk, n)) != 0)
        buf_free(msg);
    goto out;
fail:
    cstore_abort(m->st);
out:
    free(otk);
    return r;
}

