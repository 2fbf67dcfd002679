/*
 * mbox_sync.h - the sync state machine behind mbox_sync (mailbox.h): one
 * connection to the relay that authenticates, brings the directory and
 * prekeys up to date, sends the outbox and takes what the relay delivers
 * (PROTOCOL.md part 2 "Messages", part 4 "Sync").
 *
 * Contract (mbox_sync's in mailbox.h, in the order a sync runs):
 *  - HELLO / CHALLENGE / AUTH: nothing is signed for a relay that has not
 *    proven the enrolled relay id; AUTH_OK's marks are checked against
 *    this store's (VERR_ROLLBACK).
 *  - The directory is fetched when the relay's version differs from ours and
 *    installed only if it verifies and is not older (mbox_install_directory).
 *  - Prekeys are uploaded on the first sync and on PREKEY_LOW.
 *  - The outbox is fanned out, encrypted (envelope and advanced session in
 *    one transaction) and submitted in batches of at most MB_SUBMIT_BATCH
 *    envelopes / MB_SUBMIT_BYTES; SUBMIT_ACK reasons move envelopes forward.
 *  - A DELIVER is acknowledged only after its messages are durably stored.
 *    DELIVER and NON_DELIVERY arriving while a step waits for its reply are
 *    held (at most MB_DEFER_MAX / MB_DEFER_BYTES, the rest left unacknowledged
 *    for the relay to send again) and handled between steps.
 *  - Library code: no printing, no exit; counts come back in mbox_sync_stats.
 */
#ifndef VALISE_MBOX_SYNC_H
#define VALISE_MBOX_SYNC_H

enum {
    MB_SUBMIT_BATCH = 64, /* envelopes per SUBMIT */
    MB_SUBMIT_BYTES = 512 * 1024,
    MB_DEFER_MAX = 1024, /* DELIVER messages held until the current step is done */
    MB_DEFER_BYTES = 64 << 20,
    MB_TRIED_MAX = 256,
    MB_REFRESH_SECS = 300, /* `run`: directory asked for again after this long */
};

#endif
