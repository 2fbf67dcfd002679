/*
 * harden.h - process hardening for every program that holds keys.
 *
 * Contract: harden_process() makes the calling process non-dumpable
 * (prctl PR_SET_DUMPABLE 0: no core file, no ptrace attach by the same user,
 * /proc/PID files owned by root) and sets RLIMIT_CORE to 0 (soft and hard),
 * so a crash never writes keys, passphrases or plaintext to disk. Call it
 * first in main, before any secret is read. Returns 0, or VERR_INTERNAL if
 * either call fails (the caller refuses to run: THREAT_MODEL.md, seized
 * device).
 */
#ifndef VALISE_HARDEN_H
#define VALISE_HARDEN_H

#include "err.h"

int harden_process(void) VL_MUST_CHECK;

#endif
