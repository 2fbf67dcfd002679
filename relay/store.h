/*
 * store.h - the relay's durable state in LMDB: ciphertext queues, the
 * envelope-id index, expiry index, non-delivery notices, prekeys, the
 * current directory, attachments and the audit log (layout: PROTOCOL.md, part 2
 * "Storage"). The only file of the relay that includes lmdb.h.
 *
 * Contract:
 *  - Durable: the environment is opened with LMDB's default full syncs (none
 *    of its no-sync or async flags), so store_commit returning 0 means the transaction is on
 *    disk. Nothing is acknowledged to a peer before that (DESIGN.md "Relay").
 *  - Group commit: store_begin opens one write transaction; every store_*
 *    mutation between it and store_commit / store_abort joins it. Audit
 *    records are appended in the same transaction as the change they
 *    describe (store_audit_append, the one place that writes the log).
 *  - On any system error inside a transaction (VERR_NOSPACE for MDB_MAP_FULL
 *    or a full disk, VERR_STORE otherwise) the caller must store_abort: the
 *    whole transaction is dropped, nothing is half-stored. Read functions
 *    keep working meanwhile (they use their own read transactions).
 *  - Envelope ids are scoped by recipient: (recipient, id) is stored once;
 *    the same sender resubmitting it gets WIRE_R_OK again with *duplicate set
 *    while it is queued and, after delivery, for the dedupe window (a
 *    tombstone kept that long; store_set_dedupe_window). A resubmission
 *    later than that is stored and delivered again.
 *  - Read scans (store_fill_*) must not run while a write transaction is
 *    open in the same thread.
 */
#ifndef VALISE_RELAY_STORE_H
#define VALISE_RELAY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "audit_record.h"
#include "buf.h"
#include "dir.h"
#include "err.h"
#include "merkle.h"
#include "wire.h"

struct store;

enum { STORE_DEDUPE_WINDOW = 3600 }; /* a sender resubmits only what it saw no SUBMIT_ACK for */
enum { STORE_DIR_HISTORY = 16 };     /* directory versions kept for deltas and pieces */

struct store_limits {
    uint64_t queue_max_count; /* envelopes queued per recipient device */
    uint64_t queue_max_bytes; /* ciphertext bytes queued per recipient device */
    uint32_t otk_max;         /* one-time prekeys kept per device */
};

/* Where a recipient's delivery scan has got to (one sequence per precedence). */
struct store_cursor {
    uint64_t after[WIRE_PRECEDENCE_COUNT];
    uint8_t nd_after[WIRE_ID_LEN];
    int nd_started;
};

/* Opens (creates) the environment in dir; clears stale readers. */
int store_open(struct store **out, const char *dir, uint64_t map_size) VL_MUST_CHECK;
void store_close(struct store *s);

/* Seconds a delivered envelope's id is remembered (default STORE_DEDUPE_WINDOW). */
void store_set_dedupe_window(struct store *s, uint64_t secs);

int store_begin(struct store *s) VL_MUST_CHECK;
int store_commit(struct store *s) VL_MUST_CHECK;
void store_abort(struct store *s);

/* Appends one audit record to the open transaction and its leaf hash to the Merkle frontier. */
int store_audit_append(struct store *s, const struct audit_record *rec) VL_MUST_CHECK;
/* Records in the log (committed). */
uint64_t store_audit_size(const struct store *s);

/*
 * Stores one envelope from sender for e->peer with the given effective expiry.
 * Returns 0 with *reason WIRE_R_OK (stored, or a duplicate: *duplicate = 1),
 * WIRE_R_QUEUE_FULL or WIRE_R_ID_CONFLICT; negative on a system error.
 * Appends the ENVELOPE_ACCEPTED audit record; rejections are the caller's to log.
 */
int store_envelope_put(struct store *s, const uint8_t sender[static DEVICE_ID_LEN],
                       uint64_t sender_serial, const struct wire_envelope *e, uint64_t expiry,
                       uint64_t now, const struct store_limits *lim, uint16_t *reason,
                       int *duplicate) VL_MUST_CHECK;
/* The recipient acknowledged: deletes the envelope. 0, VERR_UNKNOWN if not queued. */
int store_envelope_ack(struct store *s, const uint8_t recipient[static DEVICE_ID_LEN],
                       uint64_t recipient_serial, const uint8_t id[static WIRE_ID_LEN],
                       uint64_t now) VL_MUST_CHECK;
/* The sender acknowledged a non-delivery notice: deletes it. */
int store_nd_ack(struct store *s, const uint8_t sender[static DEVICE_ID_LEN],
                 const uint8_t id[static WIRE_ID_LEN]) VL_MUST_CHECK;
/*
 * Removes up to limit envelopes whose expiry <= now, and then tombstones
 * older than the dedupe window; each
 * expired envelope becomes a non-delivery notice for its sender, notify is
 * called with that sender.
 */
int store_sweep(struct store *s, uint64_t now, size_t limit,
                void (*notify)(void *ctx, const uint8_t sender[DEVICE_ID_LEN]), void *ctx,
                size_t *expired) VL_MUST_CHECK;

/*
 * Appends to out one DELIVER message with the recipient's next envelopes
 * after cur, precedence first then age, at most max_n items and max_bytes
 * of ciphertext (at least one envelope, unless max_bytes is 0); advances
 * cur. A FLASH or IMMEDIATE envelope goes alone in its DELIVER; with
 * max_bytes 0 only such an envelope is taken (it passes a full flow-control
 * window, PROTOCOL.md part 2 "Flow control"). *n = 0: nothing to send (out
 * unchanged). *more = 1 if it stopped at a bound.
 */
int store_fill_deliver(struct store *s, const uint8_t recipient[static DEVICE_ID_LEN],
                       struct store_cursor *cur, uint64_t now, size_t max_n, size_t max_bytes,
                       struct buf *out, size_t *n, int *more) VL_MUST_CHECK;
/* The same for non-delivery notices waiting for sender. */
int store_fill_nd(struct store *s, const uint8_t sender[static DEVICE_ID_LEN],
                  struct store_cursor *cur, size_t max_n, struct buf *out, size_t *n,
                  int *more) VL_MUST_CHECK;

/* Directory: the stored bytes (VERR_UNKNOWN if none), and replacing them in the txn. */
int store_dir_get(struct store *s, struct buf *out) VL_MUST_CHECK;
/*
 * Also adds the directory's certificates to the archive of every certificate
 * seen, and the directory to the history (the newest STORE_DIR_HISTORY versions).
 */
int store_dir_put(struct store *s, const struct directory *dir) VL_MUST_CHECK;
/*
 * In the open transaction: adds dir to the history unless its version is
 * there already (a data directory from before the history existed).
 */
int store_dir_hist_keep(struct store *s, const struct directory *dir) VL_MUST_CHECK;
/*
 * Appends to out at most max bytes at offset of the kept directory version
 * (its own read transaction); *total = its length. VERR_UNKNOWN: not kept,
 * or offset at or past its end.
 */
int store_dir_hist_read(struct store *s, uint64_t version, size_t offset, size_t max,
                        struct buf *out, size_t *total) VL_MUST_CHECK;

/*
 * Replaces the device's signed prekey and adds one-time prekeys (items of
 * WIRE_OTK_LEN: u32 id || pk), keeping at most lim->otk_max; *stored = count kept.
 */
int store_prekeys_put(struct store *s, const uint8_t device[static DEVICE_ID_LEN],
                      const struct wire_signed_prekey *spk, const uint8_t *otk, size_t n,
                      const struct store_limits *lim, uint32_t *stored) VL_MUST_CHECK;
/*
 * Takes a bundle for owner: its signed prekey and, if any is left, one
 * one-time prekey, which is deleted in the same transaction (handed out
 * once). *left = one-time prekeys remaining. VERR_UNKNOWN: no signed prekey.
 */
int store_bundle_take(struct store *s, const uint8_t owner[static DEVICE_ID_LEN],
                      struct wire_signed_prekey *spk, int *has_otk, uint32_t *otk_id,
                      uint8_t otk_pk[static WIRE_PK_LEN], uint32_t *left) VL_MUST_CHECK;

/*
 * One-time prekeys left for device (read transaction). VERR_UNKNOWN if the
 * device never uploaded a signed prekey.
 */
int store_otk_count(struct store *s, const uint8_t device[static DEVICE_ID_LEN],
                    uint32_t *left) VL_MUST_CHECK;

/*
 * Audit tree and checkpoints (PROTOCOL.md, part 6). The Merkle frontier is
 * updated by store_audit_append and persisted by store_commit in the same
 * transaction. When the log is larger than its latest checkpoint, store_commit
 * calls fn (if set) inside the transaction with the tree to commit; fn may
 * append a signed checkpoint note to note, which is then stored in
 * `audit_cp` under the tree size in that same transaction.
 */
typedef int (*store_checkpoint_fn)(void *ctx, const struct merkle_state *tree,
                                   uint64_t last_checkpoint_size, struct buf *note);
void store_set_checkpoint_fn(struct store *s, store_checkpoint_fn fn, void *ctx);
/* The committed tree state; the parse error if the persisted state is corrupt. */
int store_audit_tree(const struct store *s, struct merkle_state *out) VL_MUST_CHECK;
/* The latest stored checkpoint: tree size and note (out is initialised here). */
int store_checkpoint_latest(struct store *s, uint64_t *size, struct buf *out) VL_MUST_CHECK;
/*
 * Start-up check (PROTOCOL.md part 6 section 5): MTH over records [0, at)
 * into root_at and over [0, size) into root, at <= size, recomputed from the
 * records themselves in one sequential pass of one read transaction.
 * VERR_STORE if a record is missing (also: size larger than the log) or of
 * the wrong length (*bad is its index), VERR_UNKNOWN if at is larger than
 * size. Safe on another thread than the writer's. O(size).
 */
int store_audit_recompute(struct store *s, uint64_t at, uint8_t root_at[static MERKLE_HASH_LEN],
                          uint64_t size, uint8_t root[static MERKLE_HASH_LEN],
                          uint64_t *bad) VL_MUST_CHECK;
/*
 * From the committed log's records, each leaf hash computed from its record
 * (one read transaction; no leaf hashes are stored):
 * inclusion = 1: PATH(a, D[b]) and record a into rec (AUDIT_RECORD_LEN bytes);
 * otherwise PROOF(a, D[b]). VERR_UNKNOWN if b is larger than the log.
 * O(b) record reads and hashes: for auditors, not for the hot path.
 */
int store_audit_proof(struct store *s, int inclusion, uint64_t a, uint64_t b,
                      struct merkle_proof *proof, uint8_t *rec) VL_MUST_CHECK;

/*
 * Rollback marks (PROTOCOL.md part 2 "Authentication"): the highest envelope
 * id the device submitted that was stored, and the highest it acknowledged,
 * raised in the transaction that stores or deletes the envelope. Read from
 * committed state; both all zero when the device has none.
 */
enum { STORE_DEVMARK_LEN = 2 * WIRE_ID_LEN };
int store_devmark_get(struct store *s, const uint8_t device[static DEVICE_ID_LEN],
                      uint8_t hi_submitted[static WIRE_ID_LEN],
                      uint8_t hi_acked[static WIRE_ID_LEN]) VL_MUST_CHECK;

/*
 * Backup and restore (PROTOCOL.md part 2 "Backup and restore").
 *
 * store_backup: a hot, consistent copy of DIR's store while a relay may be
 * writing it: one LMDB read transaction copied with compaction
 * (mdb_env_copyfd2, MDB_CP_COMPACT) to a new file beside out, fsynced, then
 * renamed over out (the directory fsynced): out is either the old file or the
 * whole new copy. *records gets the audit log size in the copy.
 *
 * store_restore: installs the backup file from as DIR/data.mdb. DIR must hold
 * no data.mdb. The copy is written beside it, opened without a lock (nobody
 * else can see it yet), checked to be a relay store, marked "restore
 * pending" in its meta table and fsynced before it is renamed into place.
 * *records gets the audit log size of the backup.
 *
 * store_restore_pending: 1 if the open store carries the mark (the relay's
 * first start after a restore); store_restore_clear removes it in the open
 * transaction, which also holds the relay_restored audit record.
 */
int store_backup(const char *dir, const char *out, uint64_t *records) VL_MUST_CHECK;
int store_restore(const char *dir, const char *from, uint64_t *records) VL_MUST_CHECK;
int store_restore_pending(struct store *s);
int store_restore_clear(struct store *s) VL_MUST_CHECK;

/*
 * Attachments (PROTOCOL.md part 2 "Attachments"): tables `att` (one record
 * per attachment: sender, sizes, chunks stored, expiry, the recipients not
 * done yet), `attc` (chunk ciphertext by attachment id and index) and
 * `attexp` (expiry index). An attachment's ct_size counts toward each
 * pending recipient's queued bytes in `qstat` until that recipient is done
 * or the attachment expires. Mutations join the open transaction and append
 * their audit records to it; reasons are returned in *reason, negative
 * values are system errors (abort the transaction).
 */
struct store_att {
    uint8_t sender[DEVICE_ID_LEN];
    uint64_t ct_size, expiry, accepted; /* expiry: effective; accepted: time of the first OPEN */
    uint32_t c, stored;
    uint8_t precedence;
};

/*
 * ATTACH_OPEN from sender; the caller has checked the bounds, that c fits
 * ct_size, that expiry is in the future and that every recipient is listed
 * and unrevoked. A new id gets a record with expiry min(a->expiry, now +
 * ttl) and *stored = 0. The same id opened by the same sender with the same
 * ct_size, c, precedence, expiry (the one sent: equal to the stored
 * effective expiry, or later when that was the TTL cap) and recipients is a
 * resume: *stored = chunks stored. Else *reason WIRE_R_ID_CONFLICT; over a
 * recipient's queued bytes WIRE_R_QUEUE_FULL (a quota_hit record).
 */
int store_att_open(struct store *s, const uint8_t sender[static DEVICE_ID_LEN],
                   uint64_t sender_serial, const struct wire_attach *a, uint64_t ttl, uint64_t now,
                   const struct store_limits *lim, uint16_t *reason,
                   uint32_t *stored) VL_MUST_CHECK;
/*
 * ATTACH_PUT of chunk a->i from sender: stored if i equals the chunks stored
 * and its length fits (else WIRE_R_CHUNK_INVALID); i below that is a
 * duplicate, WIRE_R_OK and not stored again. Unknown, another sender's or
 * expired: WIRE_R_ATTACHMENT_UNKNOWN. The last chunk appends one
 * attachment_accepted record per recipient.
 */
int store_att_put(struct store *s, const uint8_t sender[static DEVICE_ID_LEN],
                  uint64_t sender_serial, const struct wire_attach *a, uint64_t now,
                  uint16_t *reason) VL_MUST_CHECK;
/*
 * ATTACH_DONE from recipient: removed from the record, its queued bytes
 * released, an attachment_delivered record; the last one deletes the
 * attachment and its chunks. *c = chunk count. WIRE_R_ATTACHMENT_UNKNOWN if
 * it is not a pending recipient (or unknown, or expired); WIRE_R_CHUNK_INVALID
 * while the upload is not complete.
 */
int store_att_done(struct store *s, const uint8_t recipient[static DEVICE_ID_LEN],
                   uint64_t recipient_serial, const uint8_t att[static WIRE_ID_LEN], uint64_t now,
                   uint16_t *reason, uint32_t *c) VL_MUST_CHECK;
/*
 * Read transaction: the attachment as recipient may see it (VERR_UNKNOWN
 * if it is not a pending recipient, or the attachment is unknown or past
 * its expiry) into *info; if i < info->stored, appends chunk i to out as
 * one ATTACH_CHUNK message.
 */
int store_att_fetch(struct store *s, const uint8_t recipient[static DEVICE_ID_LEN],
                    const uint8_t att[static WIRE_ID_LEN], uint64_t now, uint32_t i,
                    struct buf *out, struct store_att *info) VL_MUST_CHECK;
/*
 * Deletes up to limit attachments whose expiry <= now, chunks included:
 * one attachment_expired record per recipient not done and one
 * NON_DELIVERY notice (reason expired, id = attachment id, recipient = the
 * first not done) for the sender, notify called with it.
 */
int store_att_sweep(struct store *s, uint64_t now, size_t limit,
                    void (*notify)(void *ctx, const uint8_t sender[DEVICE_ID_LEN]), void *ctx,
                    size_t *expired) VL_MUST_CHECK;
/* Attachments stored and their chunk bytes stored (committed), for /metrics. */
void store_att_totals(const struct store *s, uint64_t *count, uint64_t *bytes);

/* Envelopes queued in total (committed), for /metrics. */
uint64_t store_queue_total(const struct store *s);
/* Bytes of the LMDB map in use (up to the last page written) and the map's size (--map-size). */
int store_map_usage(struct store *s, uint64_t *used, uint64_t *size) VL_MUST_CHECK;

#endif
