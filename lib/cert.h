/*
 * cert.h - the organisation's public key, enrolment requests and device
 * certificates (DESIGN.md "Trust and keys"; byte layouts in PROTOCOL.md).
 *
 * Contract:
 *  - Each object has one strict, versioned binary encoding. *_parse accepts
 *    exactly that encoding (magic, version, field ranges, no trailing bytes)
 *    and nothing else; since the encoding is canonical, re-encoding a parsed
 *    object gives back the same bytes, which is what signatures cover.
 *  - request_parse also verifies the request's self-signature, so a corrupted
 *    or substituted request never parses.
 *  - cert_parse checks structure only; cert_verify checks the organisation,
 *    the root's signature and the validity period at `now`. Revocation is the
 *    directory's job (dir.h, dir_check_cert).
 *  - Every public key is checked: Ed25519 keys must not be small-order,
 *    X25519 keys must not be all-zero or low-order.
 */
#ifndef VALISE_CERT_H
#define VALISE_CERT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "sig.h"

enum {
    DEVICE_ID_LEN = 16,
    PERSON_ID_LEN = 16,
    ORG_ID_LEN = 16,
    ORG_ID_TEXT_LEN = 2 * ORG_ID_LEN + ORG_ID_LEN / 2 - 1 + 1, /* 8 groups of 4 hex, NUL */
    DH_PK_LEN = 32,
    ORG_NAME_MAX = 64,
    PERSON_NAME_MAX = 64,
    POST_MAX = 16,
    ROLE_MAX = 32,
    ORGPUB_MAX_LEN = 4 + 1 + 1 + ORG_NAME_MAX + SIG_PK_LEN,
    REQUEST_MAX_LEN = 4 + 1 + DEVICE_ID_LEN + 1 + PERSON_NAME_MAX + SIG_PK_LEN + DH_PK_LEN + 8 +
                      SIG_LEN,
    CERT_MAX_LEN = 4 + 1 + 8 + ORG_ID_LEN + DEVICE_ID_LEN + PERSON_ID_LEN + 1 + PERSON_NAME_MAX +
                   1 + POST_MAX + 1 + ROLE_MAX + SIG_PK_LEN + DH_PK_LEN + 8 + 8 + SIG_LEN,
    CERT_MIN_LEN = CERT_MAX_LEN - (PERSON_NAME_MAX - 1) - (POST_MAX - 1) - (ROLE_MAX - 1),
};

/* The organisation root's public half, distributed as org.pub. */
struct orgpub {
    char name[ORG_NAME_MAX + 1];
    uint8_t pk[SIG_PK_LEN];
    uint8_t id[ORG_ID_LEN]; /* derived: see orgpub_id */
};

/* A device's request to be enrolled, self-signed by its Ed25519 key. */
struct enrol_request {
    uint8_t device_id[DEVICE_ID_LEN];
    char name[PERSON_NAME_MAX + 1];
    uint8_t sign_pk[SIG_PK_LEN];
    uint8_t dh_pk[DH_PK_LEN];
    uint64_t created;
};

/*
 * A device certificate (VCRT version 2), signed by the organisation root.
 * person_id is the person IT assigned the device to (random, never all-zero):
 * a person's devices share it; names are for display only.
 */
struct cert {
    uint64_t serial;
    uint8_t org_id[ORG_ID_LEN];
    uint8_t device_id[DEVICE_ID_LEN];
    uint8_t person_id[PERSON_ID_LEN];
    char name[PERSON_NAME_MAX + 1];
    char post[POST_MAX + 1];
    char role[ROLE_MAX + 1];
    uint8_t sign_pk[SIG_PK_LEN];
    uint8_t dh_pk[DH_PK_LEN];
    uint64_t not_before;
    uint64_t not_after;
    uint8_t sig[SIG_LEN];
};

/* org id = first 16 bytes of SHA-256("valise/v1/org-id" || 0x00 || pk). */
void orgpub_id(uint8_t id[static ORG_ID_LEN], const uint8_t pk[static SIG_PK_LEN]);
/* The org id for reading aloud: 8 groups of 4 lower-case hex digits, space-separated. */
void orgpub_id_text(char out[static ORG_ID_TEXT_LEN], const uint8_t id[static ORG_ID_LEN]);
int orgpub_encode(const struct orgpub *o, struct buf *out) VL_MUST_CHECK;
int orgpub_parse(const uint8_t *p, size_t len, struct orgpub *o) VL_MUST_CHECK;
/* Reads and parses an org.pub file. */
int orgpub_load(const char *path, struct orgpub *o) VL_MUST_CHECK;

/* Encodes the signed body of a request (everything but the signature). */
int request_encode_body(const struct enrol_request *q, struct buf *out) VL_MUST_CHECK;
/* Signing (cert_sign.c, not linked into verify-only programs). */
int request_encode_sign(const struct enrol_request *q, const uint8_t sign_sk[static SIG_SK_LEN],
                        struct buf *out) VL_MUST_CHECK;
int request_parse(const uint8_t *p, size_t len, struct enrol_request *q) VL_MUST_CHECK;

/* Encodes the signed body (everything but the signature). */
int cert_encode_body(const struct cert *c, struct buf *out) VL_MUST_CHECK;
/* Signs c with the root key (sets c->sig) and writes the whole certificate. */
int cert_sign(struct cert *c, const uint8_t org_sk[static SIG_SK_LEN],
              struct buf *out) VL_MUST_CHECK;
int cert_encode(const struct cert *c, struct buf *out) VL_MUST_CHECK;
/* Reads one certificate from b (b advances); for certificates nested in other objects. */
int cert_read(struct buf *b, struct cert *c) VL_MUST_CHECK;
int cert_parse(const uint8_t *p, size_t len, struct cert *c) VL_MUST_CHECK;
int cert_verify(const struct cert *c, const struct orgpub *org, uint64_t now) VL_MUST_CHECK;

/*
 * Field syntax, shared by the CLI and the parsers (PROTOCOL.md part 1, "Text
 * fields"). Posts and roles: 1..max of their alphabet, starting and ending
 * with a letter or digit, no "--". Names: 1..max bytes of safe UTF-8
 * (utf8.h: no C0, DEL, C1 or bidirectional controls, nothing malformed).
 */
int cert_valid_post(const char *s);   /* [A-Z0-9-]{1,16} */
int cert_valid_role(const char *s);   /* [a-z0-9-]{1,32} */
int cert_valid_name(const char *s, size_t max);
/* 1 if the names are equal ignoring the case of ASCII letters (IT's uniqueness rule). */
int cert_names_clash(const char *a, const char *b);

/* X25519 public key checks: not all-zero, not of low order. */
int cert_check_dh_pk(const uint8_t pk[static DH_PK_LEN]) VL_MUST_CHECK;

#endif
