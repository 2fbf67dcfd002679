/*
 * store.h - the client's local store: one LMDB environment per home
 * (HOME/store/), every value encrypted at rest (DESIGN.md "End-to-end
 * encryption", issue 4 "Local store"). The only client file that includes
 * lmdb.h (STYLE.md habit 7). Layout and encryption: PROTOCOL.md, part 4 "Store".
 *
 * Contract:
 *  - Tables hold key -> value records. Keys are ids and sequence numbers
 *    only (never content); every value is sealed with XChaCha20-Poly1305
 *    under a per-table subkey HKDF-SHA256(store key, "valise/v1/store/<table>"),
 *    a fresh random 24-byte nonce, and the associated data u8 table || key,
 *    so a record moved to another key or table fails to open (VERR_DECRYPT).
 *  - Durable: the environment is opened with LMDB's default full syncs (none of
 *    its no-sync or async flags); cstore_commit returning 0 means the change is on disk.
 *  - One transaction at a time per store (the client is single-threaded).
 *    cstore_put / cstore_del need an open write transaction; cstore_get and
 *    cstore_each use the open transaction, or a short read transaction.
 *  - cstore_get fills out (initialised here, BUF_SECRET) with the plaintext.
 *  - cstore_each calls fn for every record in key order with the plaintext
 *    (wiped after the call); fn must not modify the table it walks. A
 *    non-zero return from fn stops the walk and is returned (use 1 for
 *    "stop, found").
 */
#ifndef VALISE_CLIENT_STORE_H
#define VALISE_CLIENT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

enum cstore_table {
    CS_CONFIG = 0, /* name -> value: org.pub, cert, relay URL, directory, counters */
    CS_SESSIONS,   /* peer device id -> ratchet sessions with that device */
    CS_PREKEYS,    /* 's'|u32 id or 'o'|u32 id -> prekey secret and public key */
    CS_OUTBOX,     /* u64 seq -> outgoing message and its fan-out state */
    CS_ENVELOPES,  /* u64 outbox seq || recipient device id -> envelope and status */
    CS_INBOX,      /* u64 seq -> received, verified message */
    CS_SEEN,       /* sender id || message id -> inbox seq; 'E'|u32 spk|sender|ek -> spk (replay) */
    CS_TABLES,
};

enum { CSTORE_KEY_MAX = 64, CSTORE_KEY_LEN = 32 };
#define CSTORE_VALUE_MAX ((size_t)32 << 20)

struct cstore;

/* Opens (creating) HOME/store with the 32-byte store key of the identity. */
int cstore_open(struct cstore **out, const char *home,
                const uint8_t store_key[static CSTORE_KEY_LEN]) VL_MUST_CHECK;
void cstore_close(struct cstore *s);

int cstore_begin(struct cstore *s, int write) VL_MUST_CHECK;
int cstore_commit(struct cstore *s) VL_MUST_CHECK;
void cstore_abort(struct cstore *s);

int cstore_put(struct cstore *s, enum cstore_table t, const uint8_t *key, size_t klen,
               const uint8_t *val, size_t vlen) VL_MUST_CHECK;
/* VERR_UNKNOWN if there is no such record. */
int cstore_get(struct cstore *s, enum cstore_table t, const uint8_t *key, size_t klen,
               struct buf *out) VL_MUST_CHECK;
/* VERR_UNKNOWN if there is no such record. */
int cstore_del(struct cstore *s, enum cstore_table t, const uint8_t *key,
               size_t klen) VL_MUST_CHECK;

typedef int (*cstore_each_fn)(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val,
                              size_t vlen);
int cstore_each(struct cstore *s, enum cstore_table t, cstore_each_fn fn, void *ctx) VL_MUST_CHECK;

#endif
