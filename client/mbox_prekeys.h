/*
 * mbox_prekeys.h - this device's own X3DH prekeys (PROTOCOL.md part 3,
 * section 2; part 4 "Tables": prekeys).
 *
 * Contract:
 *  - A prekey's secret is stored (table CS_PREKEYS, key kind || u32 id,
 *    value sk || pk, 64 bytes) durably before its public half can leave
 *    the device, so a message to it can always be answered.
 *  - Kinds: 'S' signed prekey (one, kept), 'O' one-time prekey (deleted
 *    once a session set-up used it, in the transaction that stores it).
 *  - Ids grow from the config record "pk.next"; none is ever reused.
 */
#ifndef VALISE_MBOX_PREKEYS_H
#define VALISE_MBOX_PREKEYS_H

#include <stdint.h>

#include "buf.h"
#include "err.h"

struct mbox;

enum { MB_PK_KEY_LEN = 5 };

/* The store key of a prekey: kind || u32 id (big-endian). */
void pk_key(uint8_t key[static MB_PK_KEY_LEN], char kind, uint32_t id);
/* sk || pk of a stored prekey into out (64 bytes, secret). VERR_UNKNOWN: none. */
int pk_get(struct mbox *m, char kind, uint32_t id, uint8_t out[static 64]) VL_MUST_CHECK;
/*
 * Makes (durably, before upload) a signed prekey if there is none and a
 * batch of n one-time prekeys (1..MB_OTK_BATCH), and encodes the
 * PREKEY_UPLOAD message into msg (initialised here on success).
 */
int pk_prepare_upload(struct mbox *m, size_t n, struct buf *msg) VL_MUST_CHECK;

#endif
