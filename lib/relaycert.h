/*
 * relaycert.h - the relay's own identity: its handshake key and the relay
 * certificate the organisation root signs for it (issue 11 item 3; byte
 * layouts in PROTOCOL.md part 1, "Relay certificate" and "Relay handshake
 * key").
 *
 * Contract:
 *  - A relay certificate binds the organisation (org id), the relay id (the
 *    text the relay names in its CHALLENGE, --relay-id) and the relay's
 *    handshake Ed25519 public key, for a validity period. The handshake key
 *    has one purpose: signing the relay's CHALLENGE (context
 *    SIG_CTX_RELAY_CHALLENGE). It is not the audit key.
 *  - relaycert_parse accepts exactly the encoding (magic, version, field
 *    ranges, a valid public key, not_after > not_before, no trailing bytes);
 *    relaycert_verify checks the organisation, the root's signature and the
 *    validity at `now`.
 *  - The handshake key file (DATA/handshake.key) holds the 32-byte seed,
 *    created with O_EXCL, mode 0600; the public key file given to IT holds
 *    the public key. Both are strict, versioned encodings.
 */
#ifndef VALISE_RELAYCERT_H
#define VALISE_RELAYCERT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cert.h"
#include "sig.h"

#define RELAYKEY_FILE "handshake.key"

enum {
    RELAY_ID_MAX = 64,
    RELAYCERT_MAX_LEN = 4 + 1 + 8 + ORG_ID_LEN + 1 + RELAY_ID_MAX + SIG_PK_LEN + 8 + 8 + SIG_LEN,
    RELAYCERT_MIN_LEN = RELAYCERT_MAX_LEN - (RELAY_ID_MAX - 1),
    RELAYKEY_FILE_LEN = 4 + 1 + SIG_SEED_LEN,
    RELAYPUB_FILE_LEN = 4 + 1 + SIG_PK_LEN,
};

struct relaycert {
    uint64_t issued_at; /* Unix seconds, when IT signed it */
    uint8_t org_id[ORG_ID_LEN];
    char relay_id[RELAY_ID_MAX + 1];
    uint8_t pk[SIG_PK_LEN]; /* the relay's handshake key */
    uint64_t not_before, not_after;
    uint8_t sig[SIG_LEN];
};

/* Relay ids: 1..RELAY_ID_MAX of a-z A-Z 0-9 . _ - (also names the audit log). */
int relaycert_valid_id(const char *s);

int relaycert_encode_body(const struct relaycert *c, struct buf *out) VL_MUST_CHECK;
int relaycert_encode(const struct relaycert *c, struct buf *out) VL_MUST_CHECK;
int relaycert_parse(const uint8_t *p, size_t len, struct relaycert *c) VL_MUST_CHECK;
/* 0, or VERR_WRONG_ORG, VERR_BAD_SIGNATURE, VERR_NOT_YET_VALID, VERR_EXPIRED. */
int relaycert_verify(const struct relaycert *c, const struct orgpub *org,
                     uint64_t now) VL_MUST_CHECK;
/* Signing side (relaycert_sign.c): sets c->sig and writes the whole certificate. */
int relaycert_sign(struct relaycert *c, const uint8_t org_sk[static SIG_SK_LEN],
                   struct buf *out) VL_MUST_CHECK;

/*
 * Creates path (O_EXCL, 0600) holding a fresh handshake key; pk gets its
 * public half. VERR_EXISTS if the file is there.
 */
int relaykey_create(const char *path, uint8_t pk[static SIG_PK_LEN]) VL_MUST_CHECK;
/* Reads a handshake key file into sk (64 bytes, libsodium's form) and pk. */
int relaykey_load(const char *path, uint8_t sk[static SIG_SK_LEN],
                  uint8_t pk[static SIG_PK_LEN]) VL_MUST_CHECK;
/* The public key file for IT. */
int relaypub_encode(const uint8_t pk[static SIG_PK_LEN], struct buf *out) VL_MUST_CHECK;
int relaypub_parse(const uint8_t *p, size_t len, uint8_t pk[static SIG_PK_LEN]) VL_MUST_CHECK;

#endif
