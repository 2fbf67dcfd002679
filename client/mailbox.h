/*
 * mailbox.h - the client's engine behind the `valise` verbs: enrolment,
 * the durable outbox, synchronisation with the relay, the inbox, read
 * receipts and safety numbers (DESIGN.md "End-to-end encryption",
 * "Command-line contract"; issue 4; PROTOCOL.md, part 4).
 *
 * Modules: mbox_rec.h (the persistent state and its records),
 * mbox_prekeys.h (own prekeys), mbox_sync.h (the sync state machine behind
 * mbox_sync), and mailbox.c (the verbs: enrol, send, inbox, read, outbox,
 * safety numbers). This header stays the one API commands and tests use.
 *
 * Contract:
 *  - A mailbox is one unlocked identity (identity.h) and its encrypted store
 *    (store.h). Library code: no printing, no exit; results come back as
 *    structs for the command to show.
 *  - mbox_send works with no network: it returns 0 only once the signed
 *    inner message is durably in the outbox. Recipients are resolved at
 *    sync time against the newest directory (address.h).
 *  - mbox_sync: connect, authenticate, fetch the directory (refusing one
 *    older than the newest seen: VERR_ROLLBACK), upload prekeys when needed,
 *    fan each outbox message out to its recipient devices, download, decrypt,
 *    verify (inner.h) and store new messages, acknowledge them, then return.
 *    Each envelope's ciphertext and the session it advanced are stored in one
 *    transaction before it is submitted, so a retry resends the same envelope
 *    id and bytes and the relay stores it once. A message is acknowledged to
 *    the relay only after it is durably in the inbox. Interrupting at any
 *    point loses nothing and duplicates nothing.
 *  - Envelope states (PROTOCOL.md, part 4 "Outbox states") move forward only.
 */
#ifndef VALISE_MAILBOX_H
#define VALISE_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

#include "attach.h"
#include "mbox_attach.h"
#include "cert.h"
#include "identity.h"
#include "inner.h"

struct mbox;
struct directory;

enum mbox_env_state {
    MBOX_ENV_QUEUED = 1,       /* recipient known, not yet encrypted */
    MBOX_ENV_WAIT_PREKEYS = 2, /* the recipient has published no prekeys yet */
    MBOX_ENV_WAIT_DIR = 3,     /* the recipient is not (yet) in our directory */
    MBOX_ENV_SENDING = 4,      /* encrypted and stored, not yet accepted by the relay */
    MBOX_ENV_ACCEPTED = 5,     /* durably stored by the relay */
    MBOX_ENV_DELIVERED = 6,    /* the recipient device confirmed receipt (end to end) */
    MBOX_ENV_READ = 7,         /* the recipient read it (end-to-end read receipt) */
    MBOX_ENV_EXPIRED = 8,      /* the relay's non-delivery notice: expired undelivered */
    MBOX_ENV_REJECTED = 9,     /* the relay refused it for good (reason kept) */
};

const char *mbox_env_state_name(int state);

enum { MBOX_MAX_FANOUT = 4096 };

/* Opens HOME with the passphrase; the store is created on first use. */
int mbox_open(struct mbox **out, const char *home, const char *pass) VL_MUST_CHECK;
void mbox_close(struct mbox *m);
/* 1 once enrolled. */
int mbox_enrolled(const struct mbox *m);
const struct identity *mbox_identity(const struct mbox *m);
/* This device's certificate (meaningful once enrolled). */
const struct cert *mbox_cert(const struct mbox *m);

/*
 * Checks cert (this device's id and keys, chain to org.pub, valid now) and
 * stores it with org.pub, the relay URL, the relay id IT gave (the only
 * relay this device will authenticate to: its CHALLENGE must carry a relay
 * certificate of this organisation for that id, PROTOCOL.md part 2
 * "Authentication"; VERR_USAGE if it is not a valid relay id) and the CA
 * file that checks the relay's TLS certificate (NULL: the system store).
 * Refuses a second enrolment with another organisation (VERR_EXISTS).
 */
int mbox_enroll(struct mbox *m, const uint8_t *cert, size_t cert_len, const uint8_t *orgpub,
                size_t orgpub_len, const char *relay_url, const char *relay_id,
                const char *ca_file, uint64_t now) VL_MUST_CHECK;

struct mbox_draft {
    const char *address; /* one address, or NULL when addresses is given */
    /* several (issue 12, item 6): 1..INNER_ADDRESSES_MAX, no two alike (VERR_EXISTS) */
    const char *const *addresses;
    size_t naddresses;
    uint8_t precedence;
    const char *label;
    const char *subject;
    const uint8_t *content;
    size_t content_len;
    /* Attachments (mbox_attach.h): a section made by attach_section_encode, or NULL / 0. */
    const uint8_t *attach_section;
    size_t attach_section_len;
};
/*
 * Signs and queues durably one message to every address of d (one id, one
 * outbox record); id receives the message id. VERR_USAGE: no address or
 * more than INNER_ADDRESSES_MAX; VERR_BAD_FORMAT: one is not an address;
 * VERR_EXISTS: two name the same canonical address; VERR_AMBIGUOUS: a
 * person:NAME names two persons in the directory held.
 * Each attachment of the draft gets its upload record in the same
 * transaction (mbox_attach.h).
 */
int mbox_send(struct mbox *m, const struct mbox_draft *d, uint64_t now,
              uint8_t id[static INNER_ID_LEN]) VL_MUST_CHECK;

/* Installs a directory if it verifies and is not older than the newest seen. */
int mbox_install_directory(struct mbox *m, const uint8_t *p, size_t len) VL_MUST_CHECK;

/*
 * How fresh the newest directory held is at now (PROTOCOL.md part 4,
 * "Directory freshness"). EXPIRING: within MBOX_DIR_WARN_SECS of its
 * expires_at, or within a quarter of its validity period if that is
 * shorter; EXPIRED: now >= expires_at. Once EXPIRED, sync encrypts to no
 * device and accepts nothing from any device (left on the relay, counted in
 * mbox_sync_stats.held) until a newer directory arrives. *expires_at gets
 * the directory's expires_at (0 with no directory).
 */
enum mbox_dir_freshness {
    MBOX_DIR_NONE = 0,
    MBOX_DIR_FRESH = 1,
    MBOX_DIR_EXPIRING = 2,
    MBOX_DIR_EXPIRED = 3,
};
enum { MBOX_DIR_WARN_SECS = 48 * 3600 };
int mbox_dir_freshness(const struct mbox *m, uint64_t now, uint64_t *expires_at);

struct mbox_msg;
struct mbox_sync_opts {
    unsigned quiet_ms;   /* `run`: look at the outbox this often (a sync ends on QUEUE_EMPTY) */
    unsigned timeout_ms; /* give up after this long without progress (bytes moving) */
    int stay;            /* `run`: stay connected, pick up new outbox messages */
    volatile int *stop;  /* `run`: set by a signal handler to return */
    /* `desk`: called (if set) each time the connection is seen alive, about every quiet_ms */
    void (*alive)(void *ctx);
    void *alive_ctx;
    /*
     * `run` (issue 12, item 8): called (if set) once the relay has
     * authenticated this device and the directory is current
     * (MBOX_EV_CONNECTED, msg NULL), and for each new message once it is
     * durably stored (MBOX_EV_MESSAGE, msg its header fields, no content).
     */
    void (*event)(void *ctx, int kind, const struct mbox_msg *msg);
    void *event_ctx;
    /* Attachments (issue 13 item 2): ciphertext bytes moved, upload 1 / download 0; NULL: none. */
    void (*att_progress)(void *ctx, int upload, uint64_t done, uint64_t total);
    void *att_progress_ctx;
};
enum { MBOX_EV_CONNECTED = 1, MBOX_EV_MESSAGE = 2 };
enum { MBOX_WHY_MAX = 4 }; /* distinct refusals a sync names (the rest only counted) */
struct mbox_sync_stats {
    /* submitted, accepted: message envelopes; receipts_sent: receipts (issue 12, item 9) */
    size_t submitted, accepted, received, receipts, refused, expired, waiting;
    size_t receipts_sent;
    size_t from_own; /* sent from another device of this person: put in the outbox (item 10) */
    size_t rejected; /* our envelopes the relay refused for good (outbox: REJECTED) */
    struct {
        uint16_t reason; /* WIRE_R_* */
        size_t n;
    } rejected_why[MBOX_WHY_MAX];
    /* Incoming envelopes refused (in refused): by sender device and error (VERR_*). */
    struct {
        uint8_t sender[DEVICE_ID_LEN];
        int err;
        size_t n;
    } refused_why[MBOX_WHY_MAX];
    size_t prekeys_uploaded; /* one-time prekeys published (first sync, PREKEY_LOW) */
    size_t held; /* delivered while the directory had expired: left on the relay, not acked */
    size_t unknown_prekey; /* refused (also in refused): a one-time prekey id we do not hold */
    size_t replayed; /* copies already had (PROTOCOL.md part 4): acknowledged and dropped */
    /* accepted before, lost by a relay restored from a backup: sent again (part 2) */
    size_t resubmitted;
    uint64_t dir_version;
    int dir_delta;          /* the directory was updated by a delta */
    int dir_delta_refused;  /* a delta did not rebuild a verified directory: fetched whole */
    size_t dir_piece_bytes; /* directory bytes received in pieces (resumable download) */
    uint16_t relay_reason; /* reason of a relay ERROR that ended the sync */
    int store_rolled_back; /* VERR_ROLLBACK: the relay has seen this device further than its store */
    /* VERR_DENIED before any AUTH: the relay did not prove it is the enrolled relay id */
    const char *relay_unproven; /* why, or NULL */
    /* Attachments (mbox_attach.h): completed, left to upload, waiting for the uploader,
     * refused by the relay (last reason), chunks that did not open (not kept). */
    size_t att_uploaded, att_downloaded, att_up_pending, att_down_waiting, att_refused;
    uint16_t att_refused_reason;
    size_t att_bad_chunks;
    size_t att_lost; /* uploads whose sealed copy in HOME/attach was deleted: never sent */
    size_t att_gone; /* downloads the relay no longer has (expired): partial copies deleted */
    size_t att_swept; /* leftovers of an interrupted run removed from HOME/attach */
    int connected; /* the relay authenticated this device (AUTH_OK) */
    int complete;  /* sync: the outbox went out and the relay's queue was empty */
};
/*
 * `desk`: another process of the same session (the one that syncs) may have
 * installed a newer directory in the store; take it (0 also when none is newer).
 */
int mbox_reload_directory(struct mbox *m) VL_MUST_CHECK;
/* The newest directory held, or NULL. */
const struct directory *mbox_directory(const struct mbox *m);

/* The relay id recorded at enrolment. */
const char *mbox_relay_id(const struct mbox *m);
int mbox_sync(struct mbox *m, const struct mbox_sync_opts *o,
              struct mbox_sync_stats *st) VL_MUST_CHECK;

/* One inbox entry, for the list and for `read`. */
struct mbox_msg {
    uint8_t id[INNER_ID_LEN];
    uint64_t seq;
    uint8_t precedence;
    char label[INNER_LABEL_MAX + 1];
    char address[INNER_TO_TEXT_MAX + 1]; /* every address, joined by ", " */
    size_t naddr;                        /* how many */
    uint64_t time, received;
    int read;
    uint8_t sender_id[DEVICE_ID_LEN];
    char sender_name[PERSON_NAME_MAX + 1];
    char sender_role[ROLE_MAX + 1];
    char sender_post[POST_MAX + 1];
    uint64_t sender_serial;
    char subject[INNER_SUBJECT_MAX + 1];
    /* Filled by mbox_read only (sodium_malloc'ed, wiped by mbox_msg_clear). */
    uint8_t *content;
    size_t content_len;
    struct attach_desc *attach; /* n_attach descriptors (file keys: wiped by mbox_msg_clear) */
    size_t n_attach;
    int sig_ok;      /* the stored signature verifies again under the stored certificate */
    int cert_ok;     /* that certificate chains to org.pub */
    int cert_status; /* 0 or the error of dir_check_cert in the newest directory now */
    int sent; /* mbox_read: one this person sent (from this or another device), from the outbox */
};
void mbox_msg_clear(struct mbox_msg *msg);
/*
 * PROTOCOL.md part 4 (receiver checks): 1 when the message reached this
 * device later after its signed time than its precedence's time to live
 * (the relay's defaults: FLASH 2 days ... ROUTINE 30 days), else 0. Such a
 * message is shown, with a warning: an outbox can hold a message that long
 * while its sender is offline, but so can someone who held it back.
 */
int mbox_msg_delayed(const struct mbox_msg *msg);
/* The time to live of a precedence (seconds): the relay's default. */
uint64_t mbox_ttl(uint8_t precedence);

/* The inbox, FLASH first, then IMMEDIATE..ROUTINE, each oldest first. Free with free(). */
int mbox_inbox(struct mbox *m, struct mbox_msg **list, size_t *n) VL_MUST_CHECK;
/*
 * Finds a message by its id in hex (a unique prefix of at least 8 digits),
 * re-verifies it, marks it read and queues an encrypted read receipt. A
 * message not in the inbox is looked for among those this person sent (the
 * outbox, also copies from its other devices): shown with msg->sent = 1,
 * nothing changed, no receipt.
 * VERR_UNKNOWN: no such message; VERR_USAGE: the prefix is ambiguous.
 */
int mbox_read(struct mbox *m, const char *idhex, uint64_t now, struct mbox_msg *msg) VL_MUST_CHECK;

struct mbox_out_dev {
    uint8_t device[DEVICE_ID_LEN];
    char name[PERSON_NAME_MAX + 1], role[ROLE_MAX + 1], post[POST_MAX + 1];
    int state;
    uint16_t reason;
    uint64_t revoked_at; /* non-zero: the newest directory revokes this device since then */
};
/* One attachment of a sent message, as `outbox` shows it (no key). */
struct mbox_out_att {
    uint8_t id[ATTACH_ID_LEN];
    uint64_t size;
    char name[ATTACH_NAME_MAX + 1];
    struct mba_up_state up; /* mbox_attach.h */
};
struct mbox_out {
    uint8_t id[INNER_ID_LEN];
    uint64_t seq, created;
    char address[INNER_TO_TEXT_MAX + 1]; /* every address, joined by ", " */
    size_t naddr;                        /* how many */
    uint8_t precedence;
    char label[INNER_LABEL_MAX + 1];
    char subject[INNER_SUBJECT_MAX + 1];
    int resolved; /* 0: waiting for a directory that knows the address */
    /* Sent from another device of this person (issue 12, item 10): that device's id. */
    int from_other;
    uint8_t sender[DEVICE_ID_LEN];
    size_t ndev;
    struct mbox_out_dev *dev; /* malloc'ed */
    size_t n_att;
    struct mbox_out_att *att; /* malloc'ed; n_att of them */
};
/* The outbox, oldest first (receipts are not listed). Free with mbox_outbox_free. */
int mbox_outbox(struct mbox *m, struct mbox_out **list, size_t *n) VL_MUST_CHECK;
void mbox_outbox_free(struct mbox_out *list, size_t n);

enum { MBOX_SAFETY_DIGITS = 60 };
struct mbox_contact {
    struct cert cert;
    char safety[MBOX_SAFETY_DIGITS + 1];
};
/*
 * The safety number of this device and each device named by who (a device
 * id in hex, or an address): the same 60 digits on both sides, from both
 * devices' ids and identity keys. Free with free().
 */
int mbox_fingerprint(struct mbox *m, const char *who, uint64_t now, struct mbox_contact **list,
                     size_t *n) VL_MUST_CHECK;

#endif
