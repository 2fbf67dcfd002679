/*
 * mbox_sync.h - the sync state machine behind mbox_sync (mailbox.h): one
 * connection to the relay that authenticates, brings the directory and
 * prekeys up to date, sends the outbox and takes what the relay delivers
 * (PROTOCOL.md part 2 "Messages", part 4 "Sync").
 *
 * Contract (mbox_sync's in mailbox.h, in the order a sync runs):
 *  - HELLO / CHALLENGE / AUTH: nothing is signed for a relay that has not
 *    proven the enrolled relay id; AUTH_OK's marks are checked against
 *    this store's (VERR_ROLLBACK). A hi_submitted below this store's
 *    mark-sent (a relay restored from a backup) puts every ACCEPTED envelope
 *    with a higher id back to SENDING, to go again (stats.resubmitted).
 *  - The directory is fetched when the relay's version differs from ours and
 *    installed only if it verifies and is not older (mbox_install_directory):
 *    as a delta from the version held (DIRECTORY_DELTA_GET), else whole in
 *    pieces kept durably across cuts (mbox_dir.h), MB_PIECE_FLIGHT requests
 *    in flight, each MB_PIECE_START bytes at first, doubling after an answer
 *    that took at most MB_SUBMIT_TIMELY_MS, halving after one over twice that,
 *    within MB_PIECE_MIN..WIRE_DIR_PIECE_MAX.
 *  - Prekeys are uploaded on the first sync and on PREKEY_LOW.
 *  - The outbox is fanned out, encrypted (envelope and advanced session in
 *    one transaction) and submitted in pieces of at most MB_SUBMIT_BATCH
 *    envelopes, sized to the link (MB_SUBMIT_START doubling to
 *    MB_SUBMIT_BYTES while answers come back in time), so a cut loses at
 *    most one piece; SUBMIT_ACK reasons move envelopes forward.
 *  - A DELIVER is acknowledged only after its messages are durably stored;
 *    `run`'s event hook (mbox_sync_opts.event) hears of each new message
 *    only after that commit; a copy sent from another device of this
 *    person goes to the outbox, not the inbox (issue 12, items 8 and 10);
 *    every DELIVER is answered by one DELIVER_ACK, in order, empty if
 *    nothing of it was kept (the relay's flow control counts answers).
 *  - `sync` ends when the relay has said QUEUE_EMPTY after the outbox went
 *    out and nothing new is to be sent (stats.complete = 1); waits time out
 *    only after timeout_ms without progress (transport.h).
 *    DELIVER and NON_DELIVERY arriving while a step waits for its reply are
 *    held (at most MB_DEFER_MAX / MB_DEFER_BYTES, the rest left unacknowledged
 *    for the relay to send again) and handled between steps.
 *  - Attachments (mbox_attach.h) move once the messages have, on the same
 *    connection: uploads of messages the relay accepted, then downloads of
 *    messages received; between upload pieces newly queued envelopes go
 *    first. A chunk that does not open ends the connection (not complete).
 *  - Library code: no printing, no exit; counts come back in mbox_sync_stats.
 */
#ifndef VALISE_MBOX_SYNC_H
#define VALISE_MBOX_SYNC_H

enum {
    MB_SUBMIT_BATCH = 64, /* envelopes per SUBMIT */
    /* A SUBMIT piece starts at MB_SUBMIT_START bytes and doubles after each
     * answer within MB_SUBMIT_TIMELY_MS, up to MB_SUBMIT_BYTES (issue 13). */
    MB_SUBMIT_START = 4096,
    MB_SUBMIT_TIMELY_MS = 3000,
    MB_SUBMIT_BYTES = 512 * 1024,
    MB_DEFER_MAX = 1024, /* DELIVER messages held until the current step is done */
    MB_DEFER_BYTES = 64 << 20,
    MB_TRIED_MAX = 256,
    MB_REFRESH_SECS = 300, /* `run`: directory asked for again after this long */
    MB_PIECE_START = 4096, /* directory pieces (PROTOCOL.md part 2 "Directory transfer") */
    MB_PIECE_MIN = 2048,
    MB_PIECE_FLIGHT = 2,
    MB_PIECE_RESTARTS = 3, /* the relay moved on this many times in one sync: give up */
};

#endif
