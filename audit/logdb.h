/*
 * logdb.h - valise-audit's read-only view of a relay's LMDB data directory:
 * the audit records, the signed checkpoints and the stored directory
 * (layout: PROTOCOL.md, part 6 "LMDB tables"). The only file of valise-audit
 * that includes lmdb.h (STYLE.md habit 7).
 *
 * Contract:
 *  - The environment is opened with MDB_RDONLY and one read transaction is
 *    held until alog_close: every call sees the same snapshot, also while
 *    the relay keeps writing.
 *  - Nothing here trusts the relay's stored leaf hashes or tree state: the
 *    caller recomputes the tree from the records.
 *  - Record keys must be 0, 1, 2, ... in order; a missing or extra key is
 *    reported as VERR_BAD_FORMAT with *bad_index set (alog_each_record).
 */
#ifndef VALISE_AUDIT_LOGDB_H
#define VALISE_AUDIT_LOGDB_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

struct alog;

int alog_open(struct alog **out, const char *dir) VL_MUST_CHECK;
void alog_close(struct alog *l);

/*
 * Calls fn for every record in key order with its index and raw bytes; stops
 * at the first non-zero return of fn and returns it. A key that is not the
 * next index: VERR_BAD_FORMAT, *bad_index = the index expected there.
 */
typedef int (*alog_record_fn)(void *ctx, uint64_t index, const uint8_t *rec, size_t len);
int alog_each_record(struct alog *l, alog_record_fn fn, void *ctx,
                     uint64_t *bad_index) VL_MUST_CHECK;

/* Calls fn for every stored checkpoint in increasing tree size (the key). */
typedef int (*alog_checkpoint_fn)(void *ctx, uint64_t key_size, const uint8_t *note, size_t len);
int alog_each_checkpoint(struct alog *l, alog_checkpoint_fn fn, void *ctx) VL_MUST_CHECK;

/*
 * Calls fn for every certificate the relay ever installed in a directory
 * (table `certs`, serial order), also those later directories dropped; none
 * for a data dir from before the table existed. The bytes are unverified.
 */
typedef int (*alog_cert_fn)(void *ctx, const uint8_t *cert, size_t len);
int alog_each_cert(struct alog *l, alog_cert_fn fn, void *ctx) VL_MUST_CHECK;

/* The directory the relay serves (VERR_UNKNOWN if none); out is initialised here. */
int alog_directory(struct alog *l, struct buf *out) VL_MUST_CHECK;

#endif
