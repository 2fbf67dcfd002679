/*
 * mbox_attach.h - attachments in the mailbox (issue 13 item 2): sealing at
 * send time, uploading after the message, fetching after the message, and
 * saving (PROTOCOL.md part 4 "Attachments", part 2 "Attachments").
 *
 * Contract:
 *  - mba_seal seals a file at send time into HOME/attach/<id hex>.ct
 *    (attach.h: fresh id and key), so later changes to the file do not
 *    matter. mba_queue_upload (inside mbox_send's transaction) records one
 *    upload per descriptor of the signed message; mba_note_received (inside
 *    the transaction that stores a received message) one download.
 *  - mba_sync runs on a connection the sync has authenticated, after the
 *    message envelopes went out and the relay's queue was emptied:
 *    uploads first (ATTACH_OPEN; ATTACH_PUT sliding within a window of
 *    MBA_WINDOW_START chunks, one more per PUT_ACK back within MBA_TIMELY_MS
 *    of its PUT, up to MBA_WINDOW_MAX, halved once a piece after a slower
 *    one; pieces of about MBA_PIECE_MS; resumed from the relay's `stored`
 *    after a cut, the progress hook told where the resume starts: the whole
 *    ciphertext when the relay already holds every chunk), only for a
 *    message whose envelopes the relay has all answered, to the devices
 *    that accepted it (not this person's other devices). Between pieces the
 *    link's `between` hook handles what the relay pushed meanwhile and
 *    submits newly queued envelopes, so FLASH text never waits behind an
 *    upload. Then downloads: ATTACH_GET from the first chunk not held;
 *    every chunk is opened (its key, id, index and count checked) and
 *    written and fsync'd to HOME/attach/<id hex>.part before its
 *    ATTACH_CHUNK_ACK; once complete the file is renamed to
 *    .ct and ATTACH_DONE sent. A chunk that does not open is neither kept
 *    nor acknowledged (stats.bad_chunks), the download is marked bad for
 *    good (MBA_HAVE_BAD), and nothing more is fetched on that connection.
 *    Downloads are kept per (attachment id, sending device): another
 *    sender's message naming the same id is another download, with its
 *    own files (HOME/attach/<id hex>.<sender tag hex>.part / .ct).
 *  - Record states move forward only; every record change is one committed
 *    transaction; files are written before the record that names them.
 *  - Housekeeping (PROTOCOL.md part 4 "What stays on the device"): an
 *    upload's record shrinks to its short form once the relay holds every
 *    chunk (the sealed copy stays, so its sender can `save` it); a
 *    download's record is deleted once complete (the .ct and the message are
 *    what `read` and `save` use); a download that can no longer complete
 *    (gone from the relay, or bad) has its state committed, then its .part
 *    deleted. mba_sweep removes what a crash between two such steps left.
 *  - Library code: no printing; progress through the link's hook.
 */
#ifndef VALISE_MBOX_ATTACH_H
#define VALISE_MBOX_ATTACH_H

#include <stddef.h>
#include <stdint.h>

#include "attach.h"
#include "buf.h"
#include "err.h"
#include "inner.h"
#include "wire.h"

struct mbox;

enum {
    MBA_WINDOW_START = 1, /* chunks in flight at first */
    MBA_WINDOW_MAX = 32,  /* 512 KiB of chunks, as MB_SUBMIT_BYTES */
    MBA_TIMELY_MS = 3000, /* a PUT_ACK this soon after its PUT grows the window */
    MBA_PIECE_MS = 6000,  /* a piece stops taking new PUTs after this; then newly queued
                             envelopes go before the next piece */
    MBA_RETRY_MS = 5000,  /* `run`: a download waiting for its uploader, or an upload the
                             relay put off, is tried again after this */
    MBA_ORPHAN_AGE_S = 86400, /* a sealed copy no record names is a crashed send's after
                                 this (a younger one may be another process's send) */
};

/* What the sync lends the attachment steps. */
struct mba_link {
    void *ctx;
    int (*send)(void *ctx, const struct buf *msg);
    /* The next ATTACH_* message; the sync handles or holds anything else meanwhile. */
    int (*recv)(void *ctx, struct buf *raw, struct wire_msg *wm);
    /* Between pieces: held DELIVERs handled, newly queued envelopes submitted. */
    int (*between)(void *ctx);
    /* upload 1 / download 0: bytes of ciphertext done of total; NULL: none */
    void (*progress)(void *pctx, int upload, uint64_t done, uint64_t total);
    void *pctx;
    volatile int *stop;
    uint64_t retry_at_ms;    /* private: waiting downloads are asked again after this */
    uint64_t up_retry_at_ms; /* private: uploads the relay put off (queue full...) likewise */
    size_t up_pending, down_waiting; /* private: what the last look found */
};

struct mba_stats {
    size_t uploaded, downloaded; /* attachments completed this time */
    size_t up_pending;           /* uploads left (message not yet accepted, or relay busy) */
    size_t down_waiting;         /* downloads the relay does not hold in full yet */
    size_t refused;              /* uploads the relay refused for good (reason below) */
    uint16_t refused_reason;
    size_t bad_chunks;           /* chunks that did not open: not kept, not acknowledged */
    size_t lost;                 /* uploads whose sealed copy in HOME/attach was deleted */
    size_t gone;                 /* downloads the relay no longer has: partial copy deleted */
};

/* HOME/attach/<id hex>.ct or .part into out. */
int mba_path(const struct mbox *m, const uint8_t id[static ATTACH_ID_LEN], const char *ext,
             char *out, size_t outsz) VL_MUST_CHECK;
/*
 * Seals the file at path for sending (name: its last path component; media
 * type from its extension). VERR_USAGE: empty or not a regular file;
 * VERR_UNKNOWN: no such file; VERR_BAD_FORMAT: the name is not a valid
 * attachment name; VERR_TOO_LARGE: over ATTACH_SIZE_MAX.
 */
int mba_seal(struct mbox *m, const char *path, struct attach_desc *d, attach_progress_fn progress,
             void *pctx) VL_MUST_CHECK;
/* Removes a sealed file that no message names (a send that failed). */
void mba_discard(struct mbox *m, const struct attach_desc *d);
/* In mbox_send's write transaction: one upload record per descriptor of in. */
int mba_queue_upload(struct mbox *m, uint64_t outbox_seq, const struct inner *in) VL_MUST_CHECK;
/* In the receiving transaction: one download record per descriptor of in. */
int mba_note_received(struct mbox *m, uint64_t seq, const uint8_t sender[static DEVICE_ID_LEN],
                      const struct inner *in) VL_MUST_CHECK;
/* Uploads, then downloads (contract). *moved: 1 if any chunk or state moved. */
int mba_sync(struct mbox *m, struct mba_link *l, struct mba_stats *st, int *moved) VL_MUST_CHECK;

/* How much of a received attachment this device holds. */
enum mba_have {
    MBA_HAVE_PART = 1,     /* held of c chunks, more to come */
    MBA_HAVE_COMPLETE = 2, /* every chunk */
    MBA_HAVE_GONE = 3,     /* the relay no longer has it (expired) and this device has not all */
    MBA_HAVE_BAD = 4,      /* the relay's chunks did not open under the signed key */
    MBA_HAVE_MISSING = 5,  /* this device sent it, and its sealed copy is gone */
};
/* sender: the device the message came from (downloads are kept per sender and id). */
int mba_state(struct mbox *m, const struct attach_desc *d,
              const uint8_t sender[static DEVICE_ID_LEN], int *have, uint32_t *held,
              uint32_t *c) VL_MUST_CHECK;
/*
 * attach_open_file on the complete ciphertext (attach.h); VERR_UNKNOWN if
 * incomplete. sender == this device: the sealed copy it made at send time.
 */
int mba_save(struct mbox *m, const struct attach_desc *d,
             const uint8_t sender[static DEVICE_ID_LEN], const char *out,
             attach_progress_fn progress, void *pctx) VL_MUST_CHECK;

/* An upload as `outbox` and `read` show it (from its record and the sealed copy). */
enum mba_up {
    MBA_UP_NONE = 0,    /* no upload record: sent from this person's other device */
    MBA_UP_WAITING = 1, /* nothing stored on the relay yet (the message goes first) */
    MBA_UP_SENDING = 2, /* stored of c chunks confirmed by the relay */
    MBA_UP_DONE = 3,    /* the relay holds every chunk */
    MBA_UP_REFUSED = 4, /* refused for good (reason) */
    MBA_UP_LOST = 5,    /* not uploaded, and its sealed copy is gone: never will be */
};
struct mba_up_state {
    int state;          /* enum mba_up */
    uint32_t stored, c; /* chunks the relay confirmed, of c */
    uint64_t ct_size;   /* the ciphertext bytes of all c chunks */
    uint16_t reason;    /* MBA_UP_REFUSED: WIRE_R_* */
    int copy;           /* the sealed copy is on this device, whole (`save` can open it) */
};
int mba_upload_state(struct mbox *m, const uint8_t id[static ATTACH_ID_LEN], uint64_t size,
                     struct mba_up_state *out) VL_MUST_CHECK;

/*
 * Start-up sweep (each sync, before it connects): deletes download records
 * left done by an older store, shrinks done upload records, and removes the
 * orphans a crash can leave in HOME/attach: a .part no download in progress
 * names, a seal's temporary whose process is gone, and a sealed copy no
 * upload record names once it is MBA_ORPHAN_AGE_S old (younger ones may be
 * another process's send in progress). *removed: files deleted. A file
 * that cannot be removed is left for the next sweep (never an error).
 */
int mba_sweep(struct mbox *m, size_t *removed) VL_MUST_CHECK;

/* Bytes held in HOME/attach, by kind (by file name; no key needed). */
struct mba_usage {
    uint64_t sent_bytes, received_bytes, partial_bytes;
    size_t sent_files, received_files, partial_files;
};
int mba_disk_use(const char *home, struct mba_usage *u) VL_MUST_CHECK;

/* The desk (issue 13 item 2): a complete received attachment, read chunk by chunk (attach.h). */
int mba_reader(struct mbox *m, const struct attach_desc *d,
               const uint8_t sender[static DEVICE_ID_LEN], struct attach_reader **out) VL_MUST_CHECK;

/* The desk's outbox: every upload of this device, with its state as mba_upload_state gives it. */
struct mba_upload {
    uint8_t id[ATTACH_ID_LEN];
    uint64_t seq;  /* the outbox record of its message */
    uint64_t size; /* plaintext bytes */
    struct mba_up_state st;
};
/* Every upload record; *list malloc'ed (free with free()), *n entries. */
int mba_uploads(struct mbox *m, struct mba_upload **list, size_t *n) VL_MUST_CHECK;

#endif
