/*
 * x3dh.h - X3DH key agreement (Signal "The X3DH Key Agreement Protocol",
 * revision 1, 2016-11-04), as Valise uses it.
 *
 * Contract:
 *  - Pure library: no storage, no network, no clock. Randomness only from
 *    libsodium's randombytes (tests may install a deterministic generator).
 *  - Identity keys (DESIGN.md "Trust and keys"): every device has a SEPARATE
 *    Ed25519 signing key and X25519 DH identity key, both bound in its
 *    certificate by the org root. There is no XEdDSA; the signed prekey is
 *    signed by the Ed25519 key with context SIG_CTX_PREKEY (lib/sig.h) over
 *    device_id || u32 spk_id || spk_pk. Checking the certificate itself is
 *    the caller's job: these functions take the keys of an already verified,
 *    unrevoked certificate.
 *  - KDF (X3DH 2.2): HKDF-SHA256, IKM = 32 bytes 0xFF || DH1 || DH2 || DH3
 *    [|| DH4], salt = 32 zero bytes, info = "valise/v1/x3dh", 32 bytes out.
 *  - Every public key that enters is checked (x3dh_pk_check) and every
 *    scalar multiplication's result is checked: all-zero, low-order and
 *    non-canonical keys are refused with VERR_BAD_KEY.
 *  - The responder must delete the one-time prekey only after the first
 *    ratchet message inside the prekey message decrypted (X3DH 3.4), and must
 *    check that the sender identity in the prekey message is the X25519 key
 *    of the sender device's verified certificate (X3DH 4.8).
 *  - Wire codec of the prekey message (the first message of a session) lives
 *    here; the ratchet message codec lives in ratchet.h. Formats: PROTOCOL.md, part 3.
 */
#ifndef VALISE_X3DH_H
#define VALISE_X3DH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

enum {
    X3DH_PK_LEN = 32,        /* X25519 public key (RFC 7748 little-endian u) */
    X3DH_SK_LEN = 32,        /* X25519 secret scalar */
    X3DH_SECRET_LEN = 32,    /* SK, the shared secret handed to the ratchet */
    X3DH_DEVICE_ID_LEN = 16, /* random device id from the certificate */
    X3DH_SIG_LEN = 64,       /* Ed25519 signature */
    X3DH_SIGN_PK_LEN = 32,   /* Ed25519 public key */
    X3DH_SIGN_SK_LEN = 64,   /* Ed25519 secret key (libsodium layout) */
    /* Signed prekey signature body: device_id || u32 spk_id || spk_pk. */
    X3DH_SPK_BODY_LEN = X3DH_DEVICE_ID_LEN + 4 + X3DH_PK_LEN,
};

/* Wire format: every end-to-end message starts with version, then type. */
enum {
    E2E_WIRE_VERSION = 0x01,
    E2E_TYPE_RATCHET = 0x01, /* ratchet message (ratchet.h) */
    E2E_TYPE_PREKEY = 0x02,  /* prekey message: X3DH header + ratchet message */
};

/* Hard cap on the ratchet message carried inside a prekey message. */
#define X3DH_MAX_INNER ((size_t)(1u << 20) + 128u)
/* Fixed part of a prekey message before the inner message bytes. */
enum {
    X3DH_PREKEY_MSG_FIXED = 1 + 1 + X3DH_DEVICE_ID_LEN + X3DH_PK_LEN + X3DH_PK_LEN + 4 + 1 + 4 + 4,
};

/* One end of a session: the device id and X25519 identity key from its cert. */
struct x3dh_party {
    uint8_t device_id[X3DH_DEVICE_ID_LEN];
    uint8_t identity_pk[X3DH_PK_LEN];
};

/*
 * A prekey bundle as the relay hands it out. device_id and identity_pk come
 * from the responder's verified certificate, the rest from the relay.
 */
struct x3dh_bundle {
    struct x3dh_party owner;
    uint32_t spk_id;
    uint8_t spk_pk[X3DH_PK_LEN];
    uint8_t spk_sig[X3DH_SIG_LEN];
    uint8_t has_opk; /* 0 or 1 */
    uint32_t opk_id;
    uint8_t opk_pk[X3DH_PK_LEN];
};

/* What the initiator must send so the responder can compute SK (X3DH 3.3). */
struct x3dh_init_header {
    uint8_t ek_pk[X3DH_PK_LEN];
    uint32_t spk_id;
    uint8_t has_opk;
    uint32_t opk_id;
};

/* The prekey message (PROTOCOL.md, part 3); inner points into the parsed bytes. */
struct x3dh_prekey_msg {
    struct x3dh_party sender;
    struct x3dh_init_header init;
    const uint8_t *inner; /* the embedded ratchet message */
    size_t inner_len;
};

/*
 * 0 if pk is a canonical X25519 public key (top bit clear, u < 2^255-19)
 * that is not one of the points of small order (including zero); else
 * VERR_BAD_KEY.
 */
int x3dh_pk_check(const uint8_t pk[static X3DH_PK_LEN]) VL_MUST_CHECK;
/* X25519(sk, pk) after x3dh_pk_check; VERR_BAD_KEY if the output is all zero. */
int x3dh_dh(uint8_t out[static 32], const uint8_t sk[static X3DH_SK_LEN],
            const uint8_t pk[static X3DH_PK_LEN]) VL_MUST_CHECK;
/* A fresh X25519 key pair from randombytes. */
int x3dh_keypair(uint8_t pk[static X3DH_PK_LEN], uint8_t sk[static X3DH_SK_LEN]) VL_MUST_CHECK;
/* pk = X25519 base point times sk. */
int x3dh_public(uint8_t pk[static X3DH_PK_LEN], const uint8_t sk[static X3DH_SK_LEN]) VL_MUST_CHECK;

/* Owner side (X3DH 3.2): sign a signed prekey with the device's Ed25519 key. */
int x3dh_spk_sign(uint8_t sig[static X3DH_SIG_LEN],
                  const uint8_t device_id[static X3DH_DEVICE_ID_LEN], uint32_t spk_id,
                  const uint8_t spk_pk[static X3DH_PK_LEN],
                  const uint8_t sign_sk[static X3DH_SIGN_SK_LEN]) VL_MUST_CHECK;
/*
 * Verify a bundle (X3DH 3.3: "Alice verifies the prekey signature and aborts
 * the protocol if verification fails"): the signature under the owner's
 * Ed25519 key sign_pk, and every key in it. VERR_BAD_SIGNATURE / VERR_BAD_KEY /
 * VERR_BAD_FORMAT (has_opk not 0 or 1).
 */
int x3dh_bundle_verify(const struct x3dh_bundle *b,
                       const uint8_t sign_pk[static X3DH_SIGN_PK_LEN]) VL_MUST_CHECK;

/*
 * Initiator (X3DH 3.3): verifies the bundle, makes an ephemeral key, computes
 * SK into sk_out (32 bytes) and fills hdr. The ephemeral secret and the DH
 * outputs are wiped before returning. On error sk_out is zero.
 */
int x3dh_initiate(uint8_t sk_out[static X3DH_SECRET_LEN], struct x3dh_init_header *hdr,
                  const struct x3dh_bundle *b, const uint8_t sign_pk[static X3DH_SIGN_PK_LEN],
                  const uint8_t self_ik_sk[static X3DH_SK_LEN]) VL_MUST_CHECK;
/*
 * Responder (X3DH 3.4): SK from its identity secret, the secret of the
 * signed prekey named by spk_id, the one-time prekey secret (NULL when the
 * message used none; then hdr->has_opk must be 0), the initiator's identity
 * key (from its verified certificate) and hdr. On error sk_out is zero.
 */
int x3dh_respond(uint8_t sk_out[static X3DH_SECRET_LEN], const struct x3dh_init_header *hdr,
                 const uint8_t self_ik_sk[static X3DH_SK_LEN],
                 const uint8_t spk_sk[static X3DH_SK_LEN], const uint8_t *opk_sk,
                 const uint8_t peer_ik_pk[static X3DH_PK_LEN]) VL_MUST_CHECK;

/* Append an encoded prekey message to out (nothing appended on error). */
int x3dh_prekey_msg_encode(const struct x3dh_prekey_msg *m, struct buf *out) VL_MUST_CHECK;
/*
 * Parse a whole prekey message strictly: version and type first, keys
 * checked, inner length capped and nonzero, no trailing bytes. m->inner points
 * into p. Nothing of m is meaningful on error.
 */
int x3dh_prekey_msg_parse(struct x3dh_prekey_msg *m, const uint8_t *p, size_t len) VL_MUST_CHECK;
/*
 * The type of an end-to-end message (E2E_TYPE_*) after checking its version
 * byte: VERR_TRUNCATED, VERR_BAD_VERSION or VERR_BAD_FORMAT (unknown type).
 */
int x3dh_wire_type(const uint8_t *p, size_t len, uint8_t *type) VL_MUST_CHECK;

#endif
