/*
 * relay.h - the relay's core: sessions, authentication, the protocol state
 * machine, group commit, delivery, expiry and metrics (DESIGN.md "Relay").
 *
 * Contract:
 *  - Two threads: relay_run's event loop (every socket, session and reply)
 *    and a writer thread that alone writes the store. The loop fills one op
 *    list while the writer applies and commits the other, in transactions of
 *    at most about 2,048 envelopes, FLASH and IMMEDIATE in one of their own ahead of pending
 *    ROUTINE; they swap under one mutex (BENCHMARKS.md).
 *  - Only after the writer's commit is durable does the loop queue the
 *    acknowledgements (one SUBMIT_ACK per SUBMIT) and wake online
 *    recipients. AUTH_OK is sent once everything received before the AUTH is
 *    committed, so its marks and the first DELIVER see it.
 *  - relay_request_stop / relay_request_reload are async-signal-safe.
 */
#ifndef VALISE_RELAY_RELAY_H
#define VALISE_RELAY_RELAY_H

#include "config.h"
#include "err.h"

struct relay;

/* Loads the org key and directory, opens the store, binds the listener. */
int relay_create(struct relay **out, const struct relay_config *cfg, char *err,
                 size_t errsz) VL_MUST_CHECK;
/* Serves until a stop is requested; finishes the batch in flight. */
int relay_run(struct relay *rl) VL_MUST_CHECK;
void relay_destroy(struct relay *rl);
int relay_port(const struct relay *rl);

void relay_request_stop(struct relay *rl);
void relay_request_reload(struct relay *rl);

#endif
