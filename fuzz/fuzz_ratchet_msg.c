/*
 * fuzz_ratchet_msg.c - libFuzzer harness for the end-to-end message codecs:
 * the ratchet message (ratchet.h) and the prekey message (x3dh.h), and the
 * decryption path behind them. Invariants checked:
 *  - what parses re-encodes to exactly the same bytes (one encoding per message);
 *  - a decryption that fails leaves the session's encoding byte for byte unchanged.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "ratchet.h"
#include "x3dh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ratchet_session *fz_session;

/* A responder session from fixed keys (ratchet_init_responder draws no randomness). */
static void fz_init(void)
{
    struct x3dh_party self, peer;
    uint8_t sk[32], spk_sk[32], ik_sk[32];

    if (fz_session != NULL)
        return;
    if (sodium_init() < 0)
        abort();
    memset(sk, 0x11, sizeof(sk));
    memset(spk_sk, 0x22, sizeof(spk_sk));
    memset(self.device_id, 0x33, sizeof(self.device_id));
    memset(peer.device_id, 0x44, sizeof(peer.device_id));
    memset(ik_sk, 0x55, sizeof(ik_sk));
    if (x3dh_public(self.identity_pk, ik_sk) != 0)
        abort();
    memset(ik_sk, 0x66, sizeof(ik_sk));
    if (x3dh_public(peer.identity_pk, ik_sk) != 0)
        abort();
    if (ratchet_init_responder(&fz_session, sk, &self, &peer, spk_sk) != 0)
        abort();
}

static void fz_ratchet_msg(const uint8_t *data, size_t size)
{
    struct ratchet_msg m;
    struct buf out, before, after, pt;

    if (ratchet_msg_parse(&m, data, size) == 0) {
        if (buf_init(&out, RATCHET_MSG_MAX, 0) != 0)
            abort();
        if (ratchet_msg_encode(m.header, m.nonce, m.ct, m.ct_len, &out) != 0 ||
            buf_size(&out) != size || memcmp(buf_data(&out), data, size) != 0)
            abort();
        buf_free(&out);
    }
    if (buf_init(&before, 1 << 20, BUF_SECRET) != 0 || buf_init(&after, 1 << 20, BUF_SECRET) != 0 ||
        buf_init(&pt, RATCHET_MAX_PLAINTEXT, BUF_SECRET) != 0)
        abort();
    if (ratchet_session_encode(fz_session, &before) != 0)
        abort();
    if (ratchet_decrypt(fz_session, data, size, &pt) != 0) {
        if (buf_size(&pt) != 0 || ratchet_session_encode(fz_session, &after) != 0 ||
            buf_size(&after) != buf_size(&before) ||
            memcmp(buf_data(&after), buf_data(&before), buf_size(&before)) != 0)
            abort();
    }
    buf_free(&before);
    buf_free(&after);
    buf_free(&pt);
}

static void fz_prekey_msg(const uint8_t *data, size_t size)
{
    struct x3dh_prekey_msg m;
    struct buf out;

    if (x3dh_prekey_msg_parse(&m, data, size) != 0)
        return;
    if (buf_init(&out, X3DH_PREKEY_MSG_FIXED + X3DH_MAX_INNER, 0) != 0)
        abort();
    if (x3dh_prekey_msg_encode(&m, &out) != 0 || buf_size(&out) != size ||
        memcmp(buf_data(&out), data, size) != 0)
        abort();
    buf_free(&out);
    fz_ratchet_msg(m.inner, m.inner_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t type;

    fz_init();
    if (x3dh_wire_type(data, size, &type) != 0)
        type = 0;
    if (type == E2E_TYPE_PREKEY)
        fz_prekey_msg(data, size);
    else
        fz_ratchet_msg(data, size);
    return 0;
}
