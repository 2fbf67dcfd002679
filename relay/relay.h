/*
 * relay.h - the relay's core: sessions, authentication, the protocol state
 * machine, group commit, delivery, expiry and metrics (DESIGN.md "Relay").
 *
 * Contract:
 *  - Single-threaded: everything runs in relay_run's event loop.
 *  - Each loop turn: the transport services every ready connection; what
 *    they sent that changes state is queued; then one LMDB transaction
 *    applies it all and commits; only then are acknowledgements queued
 *    (one SUBMIT_ACK per SUBMIT) and online recipients woken.
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
