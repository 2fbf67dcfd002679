/*
 * ratchet.h - the Double Ratchet (Signal "The Double Ratchet Algorithm",
 * revision 1, 2016-11-20) for one pair of devices, without header encryption.
 *
 * Contract:
 *  - Pure library: no storage, no network, no clock. The store keeps a session
 *    as the bytes of ratchet_session_encode (encrypted at rest) and gets it
 *    back with ratchet_session_parse.
 *  - Primitives (spec 5.2): KDF_RK = HKDF-SHA256(salt = RK, IKM = DH output,
 *    info "valise/v1/ratchet-root") -> RK' || CK; KDF_CK = HMAC-SHA256(CK,
 *    0x01) for the message key, HMAC-SHA256(CK, 0x02) for the next chain key;
 *    the message key gives HKDF-SHA256(salt = 0^32, IKM = MK, info
 *    "valise/v1/ratchet-msg") -> the 32-byte XChaCha20-Poly1305-IETF key; the
 *    24-byte nonce is drawn at random for every message and sent with it.
 *    A message key normally encrypts one message, but a device whose state
 *    was rolled back (a restored backup, a cloned disk) derives the same key
 *    again for a different message: with a random 192-bit nonce that is still
 *    safe, where a nonce derived from the key would repeat (key, nonce).
 *    XChaCha20-Poly1305 is AES-free (constant time in software on any CPU)
 *    and is libsodium's recommended AEAD.
 *  - Associated data (spec 3.4 "AD", X3DH 3.3): version byte || sender
 *    device id || recipient device id || sender identity key || recipient
 *    identity key || encoded header (dh || u32 pn || u32 n). The direction is
 *    bound, so a message fed back to its sender (reflection) fails.
 *  - MAX_SKIP (spec 3.5): at most RATCHET_MAX_SKIP message keys are skipped
 *    in one chain (else VERR_LIMIT); at most RATCHET_MAX_SKIPPED keys are
 *    stored in all, the oldest evicted first (spec 6.4), and a skipped key
 *    is deleted once RATCHET_SKIPPED_MAX_STEPS further DH ratchet steps were
 *    taken on receipt (spec section 6: at most the current and the four
 *    previous receiving chains keep keys).
 *  - ratchet_decrypt works on a copy of the state and commits only after the
 *    AEAD verified and the plaintext was handed over: after ANY failure the
 *    session (and so its encoding) is byte for byte unchanged. Likewise
 *    ratchet_encrypt changes nothing when it fails.
 *  - Errors of ratchet_decrypt: VERR_REPLAY when the message number is one
 *    the current receiving chain already passed and no skipped key is stored
 *    for it (a redelivery of a message already read, or one whose skipped key
 *    was evicted); VERR_LIMIT past MAX_SKIP; VERR_DECRYPT for any
 *    authentication failure; parse errors for malformed bytes.
 *  - Session state lives in sodium_malloc'ed memory and is wiped when freed.
 */
#ifndef VALISE_RATCHET_H
#define VALISE_RATCHET_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "x3dh.h"

enum {
    RATCHET_MAX_SKIP = 1000,    /* skipped message keys in one chain (spec 3.5) */
    RATCHET_MAX_SKIPPED = 2000, /* stored skipped keys in all, oldest evicted */
    /* a skipped key is deleted once this many further DH ratchet steps were taken (spec 6) */
    RATCHET_SKIPPED_MAX_STEPS = 4,
    RATCHET_KEY_LEN = 32,
    RATCHET_TAG_LEN = 16,    /* Poly1305 */
    RATCHET_HEADER_LEN = 40, /* dh || u32 pn || u32 n */
    RATCHET_NONCE_LEN = 24,  /* XChaCha20-Poly1305 nonce, random per message */
    RATCHET_MSG_OVERHEAD = 2 + RATCHET_HEADER_LEN + RATCHET_NONCE_LEN + 4 + RATCHET_TAG_LEN,
    /* AD: version || sender id || recipient id || sender ik || recipient ik || header */
    RATCHET_AD_LEN = 1 + 2 * X3DH_DEVICE_ID_LEN + 2 * X3DH_PK_LEN + RATCHET_HEADER_LEN,
};
#define RATCHET_MAX_PLAINTEXT ((size_t)1 << 20)
#define RATCHET_MSG_MAX (RATCHET_MAX_PLAINTEXT + RATCHET_MSG_OVERHEAD)

/* A parsed ratchet message; header and ct point into the parsed bytes. */
struct ratchet_msg {
    uint8_t dh[X3DH_PK_LEN]; /* sender's current ratchet public key */
    uint32_t pn;             /* messages in the sender's previous sending chain */
    uint32_t n;              /* number of this message in its chain */
    const uint8_t *header;   /* RATCHET_HEADER_LEN bytes: dh || pn || n */
    const uint8_t *nonce;    /* RATCHET_NONCE_LEN bytes */
    const uint8_t *ct;       /* ciphertext || tag */
    size_t ct_len;
};

struct ratchet_session; /* opaque */

/*
 * Initiator (spec 3.3 RatchetInitAlice, 5.1): sk and x3dh from x3dh_initiate;
 * the responder's signed prekey is its first ratchet key. self/peer are the
 * device ids and X25519 identity keys of both ends. The session keeps x3dh
 * until the first reply (ratchet_session_pending_prekey).
 */
int ratchet_init_initiator(struct ratchet_session **out, const uint8_t sk[static X3DH_SECRET_LEN],
                           const struct x3dh_init_header *x3dh, const struct x3dh_party *self,
                           const struct x3dh_party *peer,
                           const uint8_t peer_spk_pk[static X3DH_PK_LEN]) VL_MUST_CHECK;
/* Responder (spec 3.3 RatchetInitBob): its signed prekey pair is the first ratchet key pair. */
int ratchet_init_responder(struct ratchet_session **out, const uint8_t sk[static X3DH_SECRET_LEN],
                           const struct x3dh_party *self, const struct x3dh_party *peer,
                           const uint8_t spk_sk[static X3DH_SK_LEN]) VL_MUST_CHECK;
/* Wipes and frees; accepts NULL. */
void ratchet_session_free(struct ratchet_session *s);

/* The two ends the session was made for. */
void ratchet_session_parties(const struct ratchet_session *s, struct x3dh_party *self,
                             struct x3dh_party *peer);

/*
 * 1 once the session has decrypted a message from the peer, else 0. Until
 * then an initiator sends each message inside a prekey message (X3DH 3.3),
 * so the responder can set the session up from whichever arrives first.
 */
int ratchet_session_received_any(const struct ratchet_session *s);
/*
 * 1 and *hdr filled while the session is an initiator's that has had no reply
 * yet: every message it sends then goes inside a prekey message with this
 * header (PROTOCOL.md, part 3). 0 otherwise.
 */
int ratchet_session_pending_prekey(const struct ratchet_session *s, struct x3dh_init_header *hdr);

/*
 * Spec 3.4 RatchetEncrypt: append one encoded ratchet message to out. Fails
 * with VERR_PROTOCOL for a responder that has not yet received a message
 * (no sending chain), VERR_TOO_LARGE past RATCHET_MAX_PLAINTEXT, VERR_LIMIT
 * when the message counter would wrap.
 */
int ratchet_encrypt(struct ratchet_session *s, const uint8_t *pt, size_t pt_len,
                    struct buf *out) VL_MUST_CHECK;
/*
 * Spec 3.5 RatchetDecrypt: append the plaintext of one encoded ratchet
 * message to out (make out with BUF_SECRET). On error nothing is appended and
 * the session is unchanged.
 */
int ratchet_decrypt(struct ratchet_session *s, const uint8_t *msg, size_t msg_len,
                    struct buf *out) VL_MUST_CHECK;

/* Append the versioned encoding of the session (secret: use BUF_SECRET). */
int ratchet_session_encode(const struct ratchet_session *s, struct buf *out) VL_MUST_CHECK;
/* Strict parse of a whole encoded session into a new session. */
int ratchet_session_parse(struct ratchet_session **out, const uint8_t *p, size_t len) VL_MUST_CHECK;

/* Ratchet message codec (PROTOCOL.md, part 3). parse: strict, keys checked, no trailing bytes. */
int ratchet_msg_parse(struct ratchet_msg *m, const uint8_t *p, size_t len) VL_MUST_CHECK;
/* Append version || type || header || nonce || u32 ct_len || ct; nothing appended on error. */
int ratchet_msg_encode(const uint8_t header[static RATCHET_HEADER_LEN],
                       const uint8_t nonce[static RATCHET_NONCE_LEN], const uint8_t *ct,
                       size_t ct_len, struct buf *out) VL_MUST_CHECK;

#endif
