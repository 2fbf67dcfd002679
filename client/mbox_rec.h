/*
 * mbox_rec.h - the mailbox's persistent state: the one struct mbox shared by
 * the mailbox modules (mbox_rec.c, mbox_prekeys.c, mbox_sync.c, mailbox.c),
 * and the records it keeps in the encrypted store (store.h): configuration,
 * rollback marks, outbox messages, per-device envelopes, ratchet sessions
 * and the inbox (PROTOCOL.md part 4, "Tables").
 *
 * Contract:
 *  - Internal to the client's mailbox modules; commands and tests use
 *    mailbox.h, where struct mbox stays opaque.
 *  - Record parsers are strict (version byte first, exact lengths, no
 *    trailing bytes); a parsed record points into the bytes it came from.
 *  - Every *_put, mb_next_seq, mb_mark_raise, mb_env_advance,
 *    mb_env_resubmit and mb_queue_receipt needs the store's open write
 *    transaction: the caller commits or aborts, so a record never changes
 *    without its companions.
 *  - Envelope states (mbox_env_state) only move forward (mb_env_advance),
 *    except ACCEPTED back to SENDING for a relay restored from a backup
 *    (mb_env_resubmit).
 */
#ifndef VALISE_MBOX_REC_H
#define VALISE_MBOX_REC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cert.h"
#include "dir.h"
#include "err.h"
#include "identity.h"
#include "inner.h"
#include "mailbox.h"
#include "ratchet.h"
#include "relaycert.h"
#include "store.h"
#include "wire.h"
#include "x3dh.h"

enum {
    MB_REC_VERSION = 1,
    MB_KIND_MESSAGE = 1,
    MB_KIND_RECEIPT = 2,
    MB_SESS_KEEP = 4,   /* sessions kept per peer (simultaneous set-up, DR 3.3) */
    MB_OTK_BATCH = 100, /* one-time prekeys per upload on PREKEY_LOW */
    /* in a device's first upload: 2,880 bytes fewer on a post's first sync; the
     * relay's PREKEY_LOW (--otk-low, default 10) brings a full batch when needed
     * (issue 13 item 3) */
    MB_OTK_FIRST = 20,
    MB_URL_MAX = 255,
    ENV_KEY_LEN = 8 + DEVICE_ID_LEN,
};

struct mbox {
    char home[4096];
    struct identity id;
    struct cstore *st;
    int enrolled;
    struct orgpub org;
    struct cert self;
    uint8_t cert_bytes[CERT_MAX_LEN];
    size_t cert_len;
    char relay[MB_URL_MAX + 1];
    char relay_id[RELAY_ID_MAX + 1]; /* the relay this device authenticates to */
    char ca[MB_URL_MAX + 1];         /* CA file for wss://, "" for the system store */
    struct directory *dir;
    uint64_t dir_seen;
};

/* Big-endian u64 (record keys are sequence numbers in this order). */
void mb_be64(uint8_t p[static 8], uint64_t v);
uint64_t mb_rd64(const uint8_t p[static 8]);

/* Configuration records (table CS_CONFIG), by name. VERR_UNKNOWN: none. */
int mb_cfg_get(struct mbox *m, const char *name, struct buf *out) VL_MUST_CHECK;
int mb_cfg_put(struct mbox *m, const char *name, const uint8_t *p, size_t len) VL_MUST_CHECK;
/* A missing u64 reads as 0. */
int mb_cfg_get_u64(struct mbox *m, const char *name, uint64_t *v) VL_MUST_CHECK;
int mb_cfg_put_u64(struct mbox *m, const char *name, uint64_t v) VL_MUST_CHECK;

/*
 * A recipient device's certificate as the directory listed it when a message
 * was fanned out to it (config "peer.HEX"), so `outbox` can still name it
 * once IT revoked it and a newer directory no longer lists it (issue 12,
 * item 9). mb_peer_remember keeps the first one seen; mb_peer_recall:
 * VERR_UNKNOWN if none.
 */
int mb_peer_remember(struct mbox *m, const struct cert *c) VL_MUST_CHECK;
int mb_peer_recall(struct mbox *m, const uint8_t id[static DEVICE_ID_LEN],
                   struct cert *c) VL_MUST_CHECK;

/* Rollback marks: which 0 = highest envelope id created, 1 = highest acknowledged. */
int mb_mark_get(struct mbox *m, int which, uint8_t mark[static WIRE_ID_LEN]) VL_MUST_CHECK;
int mb_mark_raise(struct mbox *m, int which, const uint8_t id[static WIRE_ID_LEN]) VL_MUST_CHECK;
/* The next sequence number (outbox and inbox keys share it). */
int mb_next_seq(struct mbox *m, uint64_t *seq) VL_MUST_CHECK;

void mb_self_party(const struct mbox *m, struct x3dh_party *p);
/* Copies text for display, replacing control bytes; always NUL-terminated. */
void mb_text(char *out, size_t outsz, const uint8_t *p, size_t n);
/* 1 when the newest directory is past its expires_at (PROTOCOL.md part 4). */
int mb_dir_stale(const struct mbox *m, uint64_t now);

/* An outbox record (key: u64 seq): a signed inner message or receipt. */
struct mb_outrec {
    uint8_t kind, resolved;
    uint64_t created;
    const uint8_t *inner;
    size_t inner_len;
};
int mb_outrec_parse(const uint8_t *p, size_t len, struct mb_outrec *o) VL_MUST_CHECK;
int mb_outrec_put(struct mbox *m, uint64_t seq, const struct mb_outrec *o) VL_MUST_CHECK;

/* An envelope record (key: u64 seq || recipient device id). */
struct mb_envrec {
    uint8_t state;
    uint16_t reason;
    uint8_t env_id[WIRE_ID_LEN];
    uint8_t precedence;
    uint64_t expiry;
    const uint8_t *ct;
    size_t ct_len;
};
int mb_envrec_parse(const uint8_t *p, size_t len, struct mb_envrec *e) VL_MUST_CHECK;
int mb_envrec_put(struct mbox *m, const uint8_t key[static ENV_KEY_LEN],
                  const struct mb_envrec *e) VL_MUST_CHECK;
/* Moves an envelope's state forward only (a late ack never undoes "read"). */
int mb_env_advance(struct mbox *m, const uint8_t key[static ENV_KEY_LEN], uint8_t state,
                   uint16_t reason) VL_MUST_CHECK;
/*
 * The one step back: an envelope the relay accepted but lost (restored from
 * a backup, PROTOCOL.md part 2 "Backup and restore") goes from ACCEPTED back
 * to SENDING, same id and bytes. *moved = 1 if it did, 0 if it was in any
 * other state (left as it was).
 */
int mb_env_resubmit(struct mbox *m, const uint8_t key[static ENV_KEY_LEN],
                    int *moved) VL_MUST_CHECK;
/*
 * Queues a signed receipt of kind about ref for device to: added to the
 * receipt already queued for that device while it is not yet encrypted
 * (kinds or'ed: delivered then read makes 3), else a new one (issue 13
 * item 3; config "rcpt.HEX" names the newest).
 */
int mb_queue_receipt(struct mbox *m, const uint8_t ref[static INNER_ID_LEN],
                     const uint8_t to[static DEVICE_ID_LEN], uint8_t kind,
                     uint64_t now) VL_MUST_CHECK;

/* Ratchet sessions with one peer: up to MB_SESS_KEEP, the first one sends. */
struct mb_sessions {
    size_t n;
    uint8_t ek[MB_SESS_KEEP][X3DH_PK_LEN]; /* the X3DH ephemeral key that made each */
    struct ratchet_session *s[MB_SESS_KEEP];
};
void mb_sessions_free(struct mb_sessions *ss);
/* None stored: ss->n == 0 and 0. */
int mb_sessions_load(struct mbox *m, const uint8_t peer[static DEVICE_ID_LEN],
                     struct mb_sessions *ss) VL_MUST_CHECK;
int mb_sessions_put(struct mbox *m, const uint8_t peer[static DEVICE_ID_LEN],
                    const struct mb_sessions *ss) VL_MUST_CHECK;
/* Puts s first (owned by ss now); the oldest beyond MB_SESS_KEEP is dropped. */
void mb_sessions_push(struct mb_sessions *ss, struct ratchet_session *s,
                      const uint8_t ek[static X3DH_PK_LEN]);
/* Session i becomes the sending one. */
void mb_sessions_front(struct mb_sessions *ss, size_t i);

/* An inbox record (key: u64 seq). */
int mb_inbox_put(struct mbox *m, uint64_t seq, uint8_t read, uint64_t received, const uint8_t *cert,
                 size_t cert_len, const uint8_t *inner, size_t len) VL_MUST_CHECK;
/* The header fields of inbox record seq (no content), as mbox_inbox lists them. */
int mb_inbox_msg(struct mbox *m, uint64_t seq, struct mbox_msg *msg) VL_MUST_CHECK;

#endif
