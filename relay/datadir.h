/*
 * datadir.h - the relay's claim on its data directory (`--data DIR`).
 *
 * Contract:
 *  - datadir_claim creates DIR (0700) if needed and takes an exclusive,
 *    non-blocking flock(2) on DIR/relay.lock, held until datadir_release or
 *    the process ends (the kernel drops it even after kill -9). The lock file
 *    holds the owner's pid as text. A second relay on the same DIR gets
 *    VERR_EXISTS and a message naming the pid that holds it: two writers on
 *    one audit log would fork it (PROTOCOL.md part 2 "Storage").
 *  - The relay id is part of what the data directory is: its audit log's
 *    checkpoints are signed under "valise/<relay-id>". datadir_record writes
 *    it to DIR/relay-id once the first start has succeeded (a refused start
 *    records nothing); later starts without --relay-id take it from there,
 *    and with a different --relay-id they are refused (VERR_DENIED) rather
 *    than silently signing under another name.
 *  - datadir_stored_id reads the recorded id without claiming anything (for
 *    --print-audit-key, which may run beside the relay).
 *  - Errors come with one line in err naming the file and what to do.
 */
#ifndef VALISE_RELAY_DATADIR_H
#define VALISE_RELAY_DATADIR_H

#include <stddef.h>

#include "err.h"
#include "wire.h"

#define DATADIR_LOCK_FILE "relay.lock"
#define DATADIR_ID_FILE "relay-id"
#define DATADIR_DEFAULT_ID "valise-relay"

struct datadir {
    int lock_fd;                         /* -1 when not held */
    int recorded;                        /* DIR/relay-id holds relay_id */
    char relay_id[WIRE_RELAY_ID_MAX + 1];
};

/*
 * Claims dir for this process and settles the relay id: want is --relay-id
 * (NULL when not given). On success d->relay_id is the id to use.
 */
int datadir_claim(struct datadir *d, const char *dir, const char *want, char *err,
                  size_t errsz) VL_MUST_CHECK;
/* Records d->relay_id in dir if this is the first start (after it succeeded). */
int datadir_record(struct datadir *d, const char *dir, char *err, size_t errsz) VL_MUST_CHECK;
void datadir_release(struct datadir *d);
/* The id recorded in dir into out (size > WIRE_RELAY_ID_MAX); VERR_UNKNOWN if none yet. */
int datadir_stored_id(const char *dir, char *out, size_t outsz) VL_MUST_CHECK;

#endif
