/*
 * inner.h - the inner message: what a sender signs and the ratchet encrypts
 * (DESIGN.md "End-to-end encryption"; byte layout in PROTOCOL.md, part 4 "Inner
 * message").
 *
 *   u8  version (1)   u8 type (1 message, 2 receipt)
 *   16  message id    16 sender device id   str8 sender role   u64 time
 *   type 1: str8 address  u8 precedence (0..3)  str8 label
 *           u16 subject length || subject (0..INNER_SUBJECT_MAX)
 *           u32 content length || content (0..INNER_CONTENT_MAX)
 *           attachment section: u8 count (0..ATTACH_MAX) · count × descriptor
 *           (attach.h, PROTOCOL.md part 4 "Attachments")
 *   type 2: 16 referenced message id   u8 receipt kind (1 delivered, 2 read)
 *   64  Ed25519 signature, context SIG_CTX_MESSAGE, over every byte before it
 *
 * Contract:
 *  - inner_sign_encode fills in the signature and writes the one canonical
 *    encoding. inner_parse is strict (version and type first, every length
 *    capped before use, text fields printable, no trailing bytes) and checks
 *    structure only; subject and content point into the parsed bytes.
 *  - inner_verify is the whole receiver check, done before anything is
 *    stored or shown: the signature under the sender certificate's Ed25519
 *    key, that certificate valid and unrevoked in the newest directory
 *    (dir_check_cert), the inner sender equal to the device the envelope
 *    came from, the sender role equal to the certificate's role, and the
 *    address including the receiving device (address.h), and the message's
 *    time at most INNER_MAX_FUTURE seconds after the receiver's clock
 *    (VERR_NOT_YET_VALID otherwise: PROTOCOL.md part 4, receiver checks).
 */
#ifndef VALISE_INNER_H
#define VALISE_INNER_H

#include <stddef.h>
#include <stdint.h>

#include "attach.h"
#include "buf.h"
#include "cert.h"
#include "dir.h"

enum {
    INNER_VERSION = 1,
    INNER_TYPE_MESSAGE = 1,
    INNER_TYPE_RECEIPT = 2,
    INNER_RECEIPT_DELIVERED = 1,
    INNER_RECEIPT_READ = 2,
    INNER_ID_LEN = 16,
    INNER_ADDRESS_MAX = 80,
    INNER_LABEL_MAX = 32,
    INNER_SUBJECT_MAX = 256,
    INNER_CONTENT_MAX = 200 * 1024, /* an envelope stays under the relay's 256 KiB default */
    INNER_PRECEDENCE_MAX = 3,       /* FLASH 0, IMMEDIATE 1, PRIORITY 2, ROUTINE 3 (wire.h) */
    INNER_MAX_FUTURE = 600,         /* seconds of clock skew tolerated: time <= now + this */
    INNER_MAX_LEN = 2 + 2 * 16 + 1 + ROLE_MAX + 8 + 1 + INNER_ADDRESS_MAX + 1 + 1 +
                    INNER_LABEL_MAX + 2 + INNER_SUBJECT_MAX + 4 + INNER_CONTENT_MAX +
                    ATTACH_SECTION_MAX + SIG_LEN,
};

struct inner {
    uint8_t type;
    uint8_t id[INNER_ID_LEN];
    uint8_t sender[DEVICE_ID_LEN];
    char role[ROLE_MAX + 1];
    uint64_t time;
    /* type 1 */
    char address[INNER_ADDRESS_MAX + 1];
    uint8_t precedence;
    char label[INNER_LABEL_MAX + 1];
    const uint8_t *subject;
    size_t subject_len;
    const uint8_t *content;
    size_t content_len;
    /*
     * The whole attachment section, count byte included (attach.h; read the
     * descriptors with attach_section_parse on a view of it). Encoding: a
     * section made by attach_section_encode, or NULL / 0 for none (a count
     * of 0 is written). Parsing: points into the parsed bytes, n_attach set.
     * It holds file keys: wipe copies of it.
     */
    const uint8_t *attach_section;
    size_t attach_section_len;
    uint8_t n_attach;
    /* type 2 */
    uint8_t ref_id[INNER_ID_LEN];
    uint8_t receipt_kind;
    uint8_t sig[SIG_LEN];
};

/* Signs m with the sender's Ed25519 key (sets m->sig) and appends the encoding to out. */
int inner_sign_encode(struct inner *m, const uint8_t sign_sk[static SIG_SK_LEN],
                      struct buf *out) VL_MUST_CHECK;
/* Strict structural parse of a whole inner message. */
int inner_parse(const uint8_t *p, size_t len, struct inner *m) VL_MUST_CHECK;
/*
 * The receiver's checks (see contract) on a parsed message p/len. from: the
 * device the envelope came from; self: the receiving device's certificate.
 * On success *sender_cert points at the sender's certificate in d.
 * VERR_BAD_SIGNATURE, VERR_UNKNOWN (sender not in directory), VERR_REVOKED,
 * VERR_EXPIRED..., VERR_DENIED (sender, role or address mismatch),
 * VERR_NOT_YET_VALID (time more than INNER_MAX_FUTURE after now).
 */
int inner_verify(const uint8_t *p, size_t len, const struct inner *m,
                 const uint8_t from[static DEVICE_ID_LEN], const struct cert *self,
                 const struct directory *d, const struct orgpub *org, uint64_t now,
                 const struct cert **sender_cert) VL_MUST_CHECK;

/* Precedence names: "FLASH", ... ; inner_precedence_parse is case-sensitive. */
const char *inner_precedence_name(uint8_t p);
int inner_precedence_parse(const char *s, uint8_t *p) VL_MUST_CHECK;
/* A classification label: 1..INNER_LABEL_MAX bytes of [A-Z0-9 /_-]. */
int inner_valid_label(const char *s);
/* A subject: 0..INNER_SUBJECT_MAX bytes of safe UTF-8 (utf8_is_safe_text, flags 0). */
int inner_valid_subject(const uint8_t *p, size_t n);

#endif
