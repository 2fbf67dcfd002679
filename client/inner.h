/*
 * inner.h - the inner message: what a sender signs and the ratchet encrypts
 * (DESIGN.md "End-to-end encryption"; byte layout in PROTOCOL.md, part 4 "Inner
 * message").
 *
 *   u8  version (2)   u8 type (1 message, 2 receipt)
 *   16  message id    16 sender device id   str8 sender role   u64 time
 *   type 1: u8 address count (1..INNER_ADDRESSES_MAX) || that many str8
 *           addresses (canonical, no two alike, in the order given)
 *           u8 precedence (0..3)  str8 label
 *           u16 subject length || subject (0..INNER_SUBJECT_MAX)
 *           u32 content length || content (0..INNER_CONTENT_MAX)
 *           attachment section (version 2): u8 count (0..ATTACH_MAX) · count ×
 *           descriptor (attach.h, PROTOCOL.md part 4 "Attachments")
 *   type 2: u16 n (1..INNER_RECEIPT_MAX) || n x (16 referenced message id,
 *           u8 receipt kind: 1 delivered, 2 read, 3 delivered and read);
 *           no id twice (issue 13 item 3: receipts travel together)
 *   64  Ed25519 signature, context SIG_CTX_MESSAGE, over every byte before it
 *
 * As transmitted (the ratchet's plaintext, issue 13 item 3) the sender
 * device id and role are left out: the receiver knows the envelope's sender
 * and its certificate, and puts both back (inner_wire_decode) before
 * inner_parse and inner_verify, so the signature still covers them. What is
 * stored (outbox, inbox) is the signed form above. The transmitted form is
 * padded (issue 13 item 3, PROTOCOL.md part 4 section 2): 0x80 then zero
 * bytes up to inner_padded_len: at least INNER_PAD_MIN bytes, above that
 * Padme (a length of E+1 significant bits keeps about log2(E)+1 of them).
 *
 * Version 1 (one address; a receipt about one message, kind 1 or 2) is
 * accepted by inner_parse for what a store kept from before version 2, so
 * an archive stays readable; it is never transmitted: inner_wire_decode
 * refuses it, and inner_wire_encode takes version 2 only (the sender signs
 * a stored version 1 message again as version 2 before it goes out).
 *
 * Contract:
 *  - inner_wire_encode turns a signed inner message into what is
 *    encrypted (padded); inner_wire_decode is its strict inverse for a given
 *    sender (padding exactly as inner_padded_len says, else refused; then
 *    version and type checked first, length capped before anything is
 *    copied); the result still goes through inner_parse and inner_verify.
 *  - inner_sign_encode fills in the signature and writes the one canonical
 *    encoding. inner_parse is strict (version and type first, every length
 *    capped before use, text fields printable, no trailing bytes) and checks
 *    structure only; subject and content point into the parsed bytes.
 *  - inner_verify is the whole receiver check, done before anything is
 *    stored or shown: the signature under the sender certificate's Ed25519
 *    key, that certificate valid and unrevoked in the newest directory
 *    (dir_check_cert), the inner sender equal to the device the envelope
 *    came from, the sender role equal to the certificate's role, and the
 *    addresses including the receiving device (any of them, address.h), and the message's
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
    INNER_VERSION = 2, /* 2: a list of addresses (issue 12, item 6) */
    INNER_VERSION_1 = 1, /* stored before version 2: read, never sent or accepted */
    INNER_TYPE_MESSAGE = 1,
    INNER_TYPE_RECEIPT = 2,
    INNER_RECEIPT_DELIVERED = 1,
    INNER_RECEIPT_READ = 2,
    INNER_RECEIPT_BOTH = 3,   /* delivered and read: a bit set */
    INNER_RECEIPT_MAX = 256,  /* messages one receipt is about */
    INNER_ID_LEN = 16,
    INNER_ADDRESS_MAX = 80,
    INNER_ADDRESSES_MAX = 16, /* addresses per message */
    /* the addresses shown joined by ", " (inner_addresses_text) */
    INNER_TO_TEXT_MAX = INNER_ADDRESSES_MAX * (INNER_ADDRESS_MAX + 2),
    INNER_LABEL_MAX = 32,
    INNER_SUBJECT_MAX = 256,
    INNER_CONTENT_MAX = 200 * 1024, /* an envelope stays under the relay's 256 KiB default */
    INNER_PRECEDENCE_MAX = 3,       /* FLASH 0, IMMEDIATE 1, PRIORITY 2, ROUTINE 3 (wire.h) */
    INNER_MAX_FUTURE = 600,         /* seconds of clock skew tolerated: time <= now + this */
    /* The sender id and role are not transmitted: offset of the time in the wire form. */
    INNER_WIRE_HEAD = 2 + 16,
    /* Padding: the smallest transmitted plaintext (receipts look like short messages). */
    INNER_PAD_MIN = 256,
    INNER_PAD_MARK = 0x80,
    INNER_MAX_LEN = 2 + 2 * 16 + 1 + ROLE_MAX + 8 + 1 +
                    INNER_ADDRESSES_MAX * (1 + INNER_ADDRESS_MAX) + 1 + 1 + INNER_LABEL_MAX + 2 +
                    INNER_SUBJECT_MAX + 4 + INNER_CONTENT_MAX + ATTACH_SECTION_MAX + SIG_LEN,
    /* a receipt is far shorter than the longest message */
    INNER_RECEIPT_LEN_MAX = 2 + 2 * 16 + 1 + ROLE_MAX + 8 + 2 + INNER_RECEIPT_MAX * 17 + SIG_LEN,
    /* Padme adds at most 4095 bytes below 2^18 (inner.c); the marker 1. */
    INNER_PADDED_MAX = INNER_MAX_LEN + 1 + 4095,
};

struct inner {
    uint8_t version; /* inner_parse: 2, or 1 for a record stored before version 2 */
    uint8_t type;
    uint8_t id[INNER_ID_LEN];
    uint8_t sender[DEVICE_ID_LEN];
    char role[ROLE_MAX + 1];
    uint64_t time;
    /* type 1 */
    size_t naddr; /* 1..INNER_ADDRESSES_MAX */
    char address[INNER_ADDRESSES_MAX][INNER_ADDRESS_MAX + 1];
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
    size_t nref; /* 1..INNER_RECEIPT_MAX */
    uint8_t ref_id[INNER_RECEIPT_MAX][INNER_ID_LEN];
    uint8_t receipt_kind[INNER_RECEIPT_MAX];
    uint8_t sig[SIG_LEN];
};

/* Signs m with the sender's Ed25519 key (sets m->sig) and appends the encoding to out. */
int inner_sign_encode(struct inner *m, const uint8_t sign_sk[static SIG_SK_LEN],
                      struct buf *out) VL_MUST_CHECK;
/*
 * Signed form p/len (structure checked) -> the transmitted form appended to
 * out: the same bytes without the sender device id and role.
 */
int inner_wire_encode(const uint8_t *p, size_t len, struct buf *out) VL_MUST_CHECK;
/*
 * Transmitted form p/len from the device sender whose certificate carries
 * role -> the signed form appended to out. VERR_BAD_VERSION, VERR_BAD_FORMAT,
 * VERR_TRUNCATED, VERR_TOO_LARGE.
 */
int inner_wire_decode(const uint8_t *p, size_t len, const uint8_t sender[static DEVICE_ID_LEN],
                      const char *role, struct buf *out) VL_MUST_CHECK;
/*
 * The padded length of n bytes (n + 1 with the marker): INNER_PAD_MIN if
 * that is more, else Padme of n + 1. inner_pad appends p || 0x80 || zeros to
 * out; inner_unpad gives in *n the length before the marker, VERR_BAD_FORMAT
 * unless the padding is exactly what inner_pad writes.
 */
size_t inner_padded_len(size_t n);
int inner_pad(const uint8_t *p, size_t n, struct buf *out) VL_MUST_CHECK;
int inner_unpad(const uint8_t *p, size_t len, size_t *n) VL_MUST_CHECK;
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

/* The addresses of a message joined by ", " into out (outsz > INNER_TO_TEXT_MAX). */
void inner_addresses_text(const struct inner *m, char *out, size_t outsz);

/* Precedence names: "FLASH", ... ; inner_precedence_parse is case-sensitive. */
const char *inner_precedence_name(uint8_t p);
int inner_precedence_parse(const char *s, uint8_t *p) VL_MUST_CHECK;
/* A classification label: 1..INNER_LABEL_MAX bytes of [A-Z0-9 /_-]. */
int inner_valid_label(const char *s);
/* A subject: 0..INNER_SUBJECT_MAX bytes of safe UTF-8 (utf8_is_safe_text, flags 0). */
int inner_valid_subject(const uint8_t *p, size_t n);

#endif
