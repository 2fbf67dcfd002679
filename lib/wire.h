/*
 * wire.h - the relay protocol codec, shared by the relay, the client and the
 * load generator (DESIGN.md "Relay"; byte layouts in PROTOCOL.md, part 2).
 *
 * Contract:
 *  - One websocket binary message carries exactly one protocol message. It
 *    starts with the version byte WIRE_VERSION and a type byte; integers are
 *    big-endian; every length is checked against its cap before anything is
 *    read behind it; trailing bytes are an error.
 *  - wire_decode validates the whole message (every item of a batch) before
 *    returning 0. It allocates nothing: variable parts (certificate,
 *    directory, ciphertext, batch items) are pointers into the caller's
 *    bytes, which must outlive the decoded message. Batch items are then read
 *    with the wire_*_next iterators, which cannot fail on a decoded message.
 *  - Encoders append one whole message to a caller's buffer (so the relay can
 *    keep head room in front of it) or, on failure, leave it as it was.
 *  - The codec knows the hard caps of the format (WIRE_*_MAX); the relay's
 *    configurable bounds are lower and checked by the relay.
 *  - The sender of a DELIVER envelope is set by the relay from the
 *    authenticated session; a SUBMIT has no sender field at all.
 */
#ifndef VALISE_WIRE_H
#define VALISE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cert.h"
#include "err.h"
#include "relaycert.h"

enum {
    WIRE_VERSION = 1,
    WIRE_HEADER_LEN = 2,
    WIRE_NONCE_LEN = 32,
    WIRE_ID_LEN = 16,
    WIRE_RELAY_ID_MAX = RELAY_ID_MAX,
    /* RFC 9266 tls-exporter value; 32 zero bytes on plain ws:// (loopback only). */
    WIRE_BINDING_LEN = 32,
    /* Signed handshake body: u8 len · relay id · client nonce · server nonce · binding. */
    WIRE_HANDSHAKE_BODY_MAX = 1 + WIRE_RELAY_ID_MAX + 2 * WIRE_NONCE_LEN + WIRE_BINDING_LEN,
    WIRE_ERROR_TEXT_MAX = 120,
    /* Hard caps of the format; the relay's configured bounds are lower. */
    WIRE_MAX_BATCH = 4096,             /* items in one SUBMIT, DELIVER, ACK... */
    WIRE_CT_MAX = 1 << 20,             /* ciphertext bytes in one envelope */
    WIRE_DIR_MAX = 16 << 20,           /* directory bytes */
    WIRE_MAX_OTK = 1000,               /* one-time prekeys in one upload */
    WIRE_PK_LEN = 32,
    /* Fixed part of an envelope in SUBMIT and DELIVER. */
    WIRE_ENVELOPE_FIXED = WIRE_ID_LEN + DEVICE_ID_LEN + 1 + 8 + 4,
    WIRE_OTK_LEN = 4 + WIRE_PK_LEN,
    WIRE_ACK_ITEM_LEN = WIRE_ID_LEN + 2,
    WIRE_ND_ITEM_LEN = WIRE_ID_LEN + DEVICE_ID_LEN + 2,
    /* Signed prekey signature body: device_id || u32 spk_id || spk_pk (x3dh.h). */
    WIRE_SPK_BODY_LEN = DEVICE_ID_LEN + 4 + WIRE_PK_LEN,
};

/* Message types (PROTOCOL.md, part 2). C = client to relay, R = relay to client. */
enum wire_type {
    WIRE_CHALLENGE = 0x01,        /* R */
    WIRE_AUTH = 0x02,             /* C */
    WIRE_AUTH_OK = 0x03,          /* R */
    WIRE_ERROR = 0x04,            /* R */
    WIRE_HELLO = 0x05,            /* C, first message of a connection */
    WIRE_DIRECTORY_GET = 0x10,    /* C */
    WIRE_DIRECTORY = 0x11,        /* R */
    WIRE_DIRECTORY_PUT = 0x12,    /* C */
    WIRE_DIRECTORY_OK = 0x13,     /* R */
    WIRE_PREKEY_UPLOAD = 0x20,    /* C */
    WIRE_PREKEY_OK = 0x21,        /* R */
    WIRE_BUNDLE_GET = 0x22,       /* C */
    WIRE_BUNDLE = 0x23,           /* R */
    WIRE_PREKEY_LOW = 0x24,       /* R */
    WIRE_SUBMIT = 0x30,           /* C */
    WIRE_SUBMIT_ACK = 0x31,       /* R */
    WIRE_DELIVER = 0x32,          /* R */
    WIRE_DELIVER_ACK = 0x33,      /* C */
    WIRE_NON_DELIVERY = 0x34,     /* R */
    WIRE_NON_DELIVERY_ACK = 0x35, /* C */
    WIRE_QUEUE_EMPTY = 0x36,      /* R: everything queued was delivered and acknowledged */
    /* audit log, for devices whose certificate role is "auditor" (PROTOCOL.md, part 6) */
    WIRE_AUDIT_CHECKPOINT_GET = 0x40, /* C */
    WIRE_AUDIT_CHECKPOINT = 0x41,     /* R */
    WIRE_AUDIT_PROOF_GET = 0x42,      /* C */
    WIRE_AUDIT_PROOF = 0x43,          /* R */
    /* attachments (PROTOCOL.md part 2 "Attachments") */
    WIRE_ATTACH_OPEN = 0x50,      /* C */
    WIRE_ATTACH_STATE = 0x51,     /* R */
    WIRE_ATTACH_PUT = 0x52,       /* C */
    WIRE_ATTACH_PUT_ACK = 0x53,   /* R */
    WIRE_ATTACH_GET = 0x54,       /* C */
    WIRE_ATTACH_CHUNK = 0x55,     /* R */
    WIRE_ATTACH_CHUNK_ACK = 0x56, /* C */
    WIRE_ATTACH_DONE = 0x57,      /* C */
};

/*
 * Attachment bounds (PROTOCOL.md part 2 "Attachments"): chunks of
 * WIRE_ATT_CHUNK_PLAIN plaintext bytes sealed with a 16-byte tag, so every
 * chunk but the last is WIRE_ATT_CHUNK_CT bytes of ciphertext and the last
 * 17..WIRE_ATT_CHUNK_CT. Plaintext size 1..2^40: at most WIRE_ATT_CHUNKS_MAX
 * chunks and WIRE_ATT_CT_MAX bytes of ciphertext (format caps; the relay's
 * --max-attachment is lower).
 */
enum {
    WIRE_ATT_CHUNK_PLAIN = 16384,
    WIRE_ATT_TAG_LEN = 16,
    WIRE_ATT_CHUNK_CT = WIRE_ATT_CHUNK_PLAIN + WIRE_ATT_TAG_LEN,
    WIRE_ATT_RCPT_MAX = 4096,
    WIRE_ATT_CHUNKS_MAX = 1 << 26, /* ceil(2^40 / 16384) */
};
#define WIRE_ATT_CT_MIN ((uint64_t)1 + WIRE_ATT_TAG_LEN)
#define WIRE_ATT_CT_MAX (((uint64_t)1 << 40) + (uint64_t)WIRE_ATT_TAG_LEN * WIRE_ATT_CHUNKS_MAX)

/* AUDIT_PROOF_GET / AUDIT_PROOF kinds and bounds (PROTOCOL.md, part 6 "Auditors"). */
enum {
    WIRE_AUDIT_INCLUSION = 1,   /* a = record index, b = tree size; a < b */
    WIRE_AUDIT_CONSISTENCY = 2, /* a = size1, b = size2; 0 < a <= b */
    WIRE_AUDIT_NOTE_MAX = 16384,
    WIRE_AUDIT_RECORD_LEN = 81,
    WIRE_AUDIT_HASH_LEN = 32,
    WIRE_AUDIT_PROOF_MAX = 64,
};

/* Precedence classes; the queue drains in this order. */
enum wire_precedence {
    WIRE_FLASH = 0,
    WIRE_IMMEDIATE = 1,
    WIRE_PRIORITY = 2,
    WIRE_ROUTINE = 3,
    WIRE_PRECEDENCE_COUNT = 4,
};

/* Reason codes in ERROR, SUBMIT_ACK and NON_DELIVERY (u16 on the wire). */
enum wire_reason {
    WIRE_R_OK = 0,
    WIRE_R_MALFORMED = 1,          /* message does not decode */
    WIRE_R_VERSION = 2,            /* unsupported protocol version */
    WIRE_R_NOT_AUTHENTICATED = 3,  /* anything but AUTH before AUTH_OK */
    WIRE_R_UNEXPECTED = 4,         /* message not valid in this state or direction */
    WIRE_R_BAD_SIGNATURE = 5,      /* auth signature or prekey signature */
    WIRE_R_WRONG_ORG = 6,
    WIRE_R_CERT_EXPIRED = 7,
    WIRE_R_CERT_NOT_YET_VALID = 8,
    WIRE_R_REVOKED = 9,
    WIRE_R_BAD_CERT = 10,          /* certificate does not parse */
    WIRE_R_FRAME_TOO_LARGE = 11,
    WIRE_R_ENVELOPE_TOO_LARGE = 12,
    WIRE_R_BATCH_TOO_LARGE = 13,
    WIRE_R_QUEUE_FULL = 14,        /* recipient's queue count or bytes bound */
    WIRE_R_RATE_LIMITED = 15,
    WIRE_R_TOO_MANY_CONNECTIONS = 16,
    WIRE_R_TOO_MANY_DEVICE_CONNECTIONS = 17,
    WIRE_R_TIMEOUT = 18,
    WIRE_R_STORAGE_FULL = 19,      /* LMDB map or disk full: nothing stored, retry */
    WIRE_R_STORAGE_ERROR = 20,
    WIRE_R_EXPIRED = 21,           /* expiry passed (at submit or in the queue) */
    WIRE_R_UNKNOWN_DEVICE = 22,    /* recipient or bundle owner not in the directory */
    WIRE_R_DIRECTORY_OLD = 23,     /* not newer than the one installed */
    WIRE_R_DIRECTORY_INVALID = 24,
    WIRE_R_ID_CONFLICT = 25,       /* envelope id already used by another sender */
    WIRE_R_NO_PREKEYS = 26,        /* no signed prekey uploaded for that device */
    WIRE_R_SHUTTING_DOWN = 27,
    WIRE_R_BAD_PRECEDENCE = 28,
    WIRE_R_CHANNEL_BINDING = 29,   /* TLS channel binding unavailable (TLS below 1.3) */
    WIRE_R_ATTACHMENT_UNKNOWN = 30, /* no such attachment for this device (unknown, not a
                                       recipient, expired: one answer for all three) */
    WIRE_R_ATTACHMENT_TOO_LARGE = 31, /* over --max-attachment */
    WIRE_R_CHUNK_INVALID = 32,     /* chunk index or length does not fit the attachment */
    WIRE_R_MAX = 32,
};

/* An envelope of SUBMIT (peer = recipient) or DELIVER (peer = sender). */
struct wire_envelope {
    uint8_t id[WIRE_ID_LEN];
    uint8_t peer[DEVICE_ID_LEN];
    uint8_t precedence;
    uint64_t expiry; /* unix seconds */
    const uint8_t *ct;
    uint32_t ct_len;
};

/* SUBMIT_ACK item. */
struct wire_ack {
    uint8_t id[WIRE_ID_LEN];
    uint16_t reason;
};

/* NON_DELIVERY item. */
struct wire_nd {
    uint8_t id[WIRE_ID_LEN];
    uint8_t recipient[DEVICE_ID_LEN];
    uint16_t reason;
};

/*
 * An attachment message (types WIRE_ATTACH_*); which fields a type carries:
 *   OPEN:      att, ct_size, c, precedence, expiry, n_rcpt, rcpt
 *   STATE:     att, reason, c, stored
 *   PUT:       att, i, ct, ct_len          PUT_ACK:   att, i, reason
 *   GET:       att, i (= from)             CHUNK:     att, i, c, ct, ct_len
 *   CHUNK_ACK: att, i                      DONE:      att
 */
struct wire_attach {
    uint8_t att[WIRE_ID_LEN];
    uint64_t ct_size;
    uint64_t expiry; /* unix seconds */
    uint32_t c, i, stored;
    uint8_t precedence;
    uint16_t reason;
    size_t n_rcpt;
    const uint8_t *rcpt; /* n_rcpt x DEVICE_ID_LEN bytes */
    const uint8_t *ct;   /* 1..WIRE_ATT_CHUNK_CT bytes */
    uint32_t ct_len;
};

struct wire_signed_prekey {
    uint32_t id;
    uint8_t pk[WIRE_PK_LEN];
    uint8_t sig[SIG_LEN];
};

/* A decoded message; which member is set depends on type. */
struct wire_msg {
    uint8_t type;
    union {
        uint8_t client_nonce[WIRE_NONCE_LEN]; /* HELLO */
        struct {
            uint8_t nonce[WIRE_NONCE_LEN]; /* the relay's (server) nonce */
            const uint8_t *relay_cert;     /* RELAYCERT_MIN_LEN..RELAYCERT_MAX_LEN bytes */
            size_t relay_cert_len;
            uint8_t sig[SIG_LEN];          /* context SIG_CTX_RELAY_CHALLENGE */
        } challenge;
        struct {
            const uint8_t *cert;
            size_t cert_len;
            uint8_t sig[SIG_LEN];
        } auth;
        struct {
            uint64_t dir_version;
            uint64_t time;
            /* Highest envelope ids the relay holds on record for this device:
             * submitted by it, and acknowledged by it (rollback detection,
             * PROTOCOL.md part 2 "Authentication"). All zero: none. */
            uint8_t hi_submitted[WIRE_ID_LEN];
            uint8_t hi_acked[WIRE_ID_LEN];
        } auth_ok;
        struct {
            uint16_t reason;
            char text[WIRE_ERROR_TEXT_MAX + 1];
        } error;
        struct {
            const uint8_t *bytes; /* DIRECTORY, DIRECTORY_PUT */
            size_t len;
        } directory;
        uint64_t dir_version; /* DIRECTORY_OK */
        uint32_t count;       /* PREKEY_OK (stored), PREKEY_LOW (left) */
        struct {
            struct wire_signed_prekey spk;
            size_t n_otk;
            const uint8_t *otk; /* n_otk items of WIRE_OTK_LEN: u32 id || pk */
        } prekey_upload;
        uint8_t device_id[DEVICE_ID_LEN]; /* BUNDLE_GET */
        struct {
            const uint8_t *cert;
            size_t cert_len;
            struct wire_signed_prekey spk;
            uint8_t has_otk;
            uint32_t otk_id;
            uint8_t otk_pk[WIRE_PK_LEN];
        } bundle;
        /* AUDIT_CHECKPOINT (note), AUDIT_PROOF_GET (kind, a, b), AUDIT_PROOF (all) */
        struct {
            uint8_t kind;
            uint64_t a, b;
            const uint8_t *bytes; /* AUDIT_CHECKPOINT: the note; AUDIT_PROOF: record a
                                     (inclusion) or NULL */
            size_t len;
            size_t n;             /* AUDIT_PROOF: hashes of WIRE_AUDIT_HASH_LEN bytes */
            const uint8_t *hashes;
        } audit;
        struct wire_attach attach; /* ATTACH_* */
        /* SUBMIT, DELIVER, SUBMIT_ACK, DELIVER_ACK, NON_DELIVERY, NON_DELIVERY_ACK */
        struct {
            size_t n;
            const uint8_t *items;
            size_t len;
        } batch;
    } u;
};

/* An iterator over the items of a decoded batch. */
struct wire_iter {
    struct buf p_b; /* private */
};

/*
 * Decodes one message of len bytes. 0 or VERR_BAD_VERSION, VERR_BAD_FORMAT
 * (unknown type, field out of range), VERR_TRUNCATED, VERR_TRAILING,
 * VERR_TOO_LARGE (a count or length over its cap).
 */
int wire_decode(const uint8_t *p, size_t len, struct wire_msg *m) VL_MUST_CHECK;

/* Item iterators for a decoded batch message of the matching type. */
void wire_iter_init(struct wire_iter *it, const struct wire_msg *m);
int wire_next_envelope(struct wire_iter *it, struct wire_envelope *e) VL_MUST_CHECK;
int wire_next_ack(struct wire_iter *it, struct wire_ack *a) VL_MUST_CHECK;
int wire_next_nd(struct wire_iter *it, struct wire_nd *nd) VL_MUST_CHECK;
int wire_next_id(struct wire_iter *it, uint8_t id[static WIRE_ID_LEN]) VL_MUST_CHECK;
int wire_next_otk(struct wire_iter *it, uint32_t *id, uint8_t pk[static WIRE_PK_LEN]) VL_MUST_CHECK;

/* Encoders: each appends one whole message to out. */
int wire_put_hello(struct buf *out, const uint8_t client_nonce[static WIRE_NONCE_LEN]) VL_MUST_CHECK;
int wire_put_challenge(struct buf *out, const uint8_t nonce[static WIRE_NONCE_LEN],
                       const uint8_t *relay_cert, size_t relay_cert_len,
                       const uint8_t sig[static SIG_LEN]) VL_MUST_CHECK;
int wire_put_auth(struct buf *out, const uint8_t *cert, size_t cert_len,
                  const uint8_t sig[static SIG_LEN]) VL_MUST_CHECK;
int wire_put_auth_ok(struct buf *out, uint64_t dir_version, uint64_t time,
                     const uint8_t hi_submitted[static WIRE_ID_LEN],
                     const uint8_t hi_acked[static WIRE_ID_LEN]) VL_MUST_CHECK;
/* text: NULL or at most WIRE_ERROR_TEXT_MAX printable bytes (longer is cut). */
int wire_put_error(struct buf *out, uint16_t reason, const char *text) VL_MUST_CHECK;
/* type: WIRE_DIRECTORY_GET (p ignored), WIRE_DIRECTORY or WIRE_DIRECTORY_PUT. */
int wire_put_directory(struct buf *out, uint8_t type, const uint8_t *p, size_t len) VL_MUST_CHECK;
int wire_put_directory_ok(struct buf *out, uint64_t version) VL_MUST_CHECK;
/* otk: n items of WIRE_OTK_LEN bytes (u32 id || pk). */
int wire_put_prekey_upload(struct buf *out, const struct wire_signed_prekey *spk,
                           const uint8_t *otk, size_t n) VL_MUST_CHECK;
/* type: WIRE_PREKEY_OK or WIRE_PREKEY_LOW. */
int wire_put_count(struct buf *out, uint8_t type, uint32_t count) VL_MUST_CHECK;
int wire_put_bundle_get(struct buf *out, const uint8_t device_id[static DEVICE_ID_LEN]) VL_MUST_CHECK;
/* otk_pk NULL: no one-time prekey. */
int wire_put_bundle(struct buf *out, const uint8_t *cert, size_t cert_len,
                    const struct wire_signed_prekey *spk, uint32_t otk_id,
                    const uint8_t *otk_pk) VL_MUST_CHECK;
/* type: WIRE_SUBMIT or WIRE_DELIVER. */
int wire_put_envelopes(struct buf *out, uint8_t type, const struct wire_envelope *e,
                       size_t n) VL_MUST_CHECK;
int wire_put_submit_ack(struct buf *out, const struct wire_ack *a, size_t n) VL_MUST_CHECK;
/*
 * type: WIRE_DELIVER_ACK or WIRE_NON_DELIVERY_ACK; ids: n x WIRE_ID_LEN bytes.
 * A DELIVER_ACK may carry no id (n = 0): a DELIVER of which nothing was kept.
 */
int wire_put_ids(struct buf *out, uint8_t type, const uint8_t *ids, size_t n) VL_MUST_CHECK;
/* QUEUE_EMPTY: the header alone (PROTOCOL.md part 2 "Flow control"). */
int wire_put_queue_empty(struct buf *out) VL_MUST_CHECK;
int wire_put_non_delivery(struct buf *out, const struct wire_nd *nd, size_t n) VL_MUST_CHECK;

/*
 * Streaming batch encoding (the relay builds DELIVER straight from storage):
 * wire_batch_begin writes the header and a count placeholder, wire_batch_end
 * patches the count. Between them, wire_put_envelope appends items.
 */
int wire_batch_begin(struct buf *out, uint8_t type, size_t *count_off) VL_MUST_CHECK;
int wire_put_envelope(struct buf *out, const struct wire_envelope *e) VL_MUST_CHECK;
int wire_put_ack(struct buf *out, const struct wire_ack *a) VL_MUST_CHECK;
int wire_put_nd(struct buf *out, const struct wire_nd *nd) VL_MUST_CHECK;
int wire_batch_end(struct buf *out, size_t count_off, size_t n) VL_MUST_CHECK;

/* type AUDIT_CHECKPOINT_GET (note ignored) or AUDIT_CHECKPOINT (1..WIRE_AUDIT_NOTE_MAX bytes). */
int wire_put_audit_checkpoint(struct buf *out, uint8_t type, const uint8_t *note,
                              size_t len) VL_MUST_CHECK;
int wire_put_audit_proof_get(struct buf *out, uint8_t kind, uint64_t a, uint64_t b) VL_MUST_CHECK;
/* record: WIRE_AUDIT_RECORD_LEN bytes for an inclusion proof, NULL for consistency. */
int wire_put_audit_proof(struct buf *out, uint8_t kind, uint64_t a, uint64_t b,
                         const uint8_t *record, const uint8_t *hashes, size_t n) VL_MUST_CHECK;

/*
 * Any ATTACH_* message, from the fields its type carries (struct
 * wire_attach). Refuses (VERR_USAGE) what the decoder would refuse: counts,
 * lengths, precedence or reason out of range, stored > c.
 */
int wire_put_attach(struct buf *out, uint8_t type, const struct wire_attach *a) VL_MUST_CHECK;

/*
 * The body both handshake signatures cover (PROTOCOL.md part 2
 * "Authentication"): u8 len || relay_id || client nonce || server nonce ||
 * channel binding. The relay signs it with context SIG_CTX_RELAY_CHALLENGE
 * and its handshake key, the device with SIG_CTX_RELAY_AUTH and its own key.
 */
int wire_handshake_body(struct buf *out, const char *relay_id,
                        const uint8_t client_nonce[static WIRE_NONCE_LEN],
                        const uint8_t server_nonce[static WIRE_NONCE_LEN],
                        const uint8_t binding[static WIRE_BINDING_LEN]) VL_MUST_CHECK;

/* Stable names for logs and metrics; never NULL. */
const char *wire_type_name(uint8_t type);
const char *wire_reason_name(uint16_t reason);

#endif
