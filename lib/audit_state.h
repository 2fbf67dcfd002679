/*
 * audit_state.h - the security officer's state file for valise-audit: the
 * last checkpoint it verified, so that a later run detects a rollback or a
 * fork of the relay's log (DESIGN.md "Audit log", PROTOCOL.md, part 6
 * "Officer's state file").
 *
 * Format (text, every line ending in '\n'):
 *     "valise-audit-state 1"
 *     the verifier key the checkpoint was verified with
 *     the signed checkpoint note, verbatim (C2SP signed note)
 *
 * Contract:
 *  - The state is self-authenticating: audit_state_parse accepts it only if
 *    the note is a checkpoint that verifies with the key on line 2 and whose
 *    origin is that key's name. Editing the file to forge a remembered
 *    checkpoint needs the audit key.
 *  - Parsing is strict: exact first line, a verifier key that parses, a note
 *    that note_checkpoint_open accepts, nothing before or after; at most
 *    AUDIT_STATE_MAX_LEN bytes. audit_state_encode(parse(x)) == x.
 *  - Nothing here is secret; no signing code.
 */
#ifndef VALISE_AUDIT_STATE_H
#define VALISE_AUDIT_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "note.h"

#define AUDIT_STATE_MAGIC "valise-audit-state 1\n"

enum {
    AUDIT_STATE_MAGIC_LEN = sizeof(AUDIT_STATE_MAGIC) - 1,
    AUDIT_STATE_MAX_LEN = AUDIT_STATE_MAGIC_LEN + NOTE_VERIFIER_KEY_MAX + NOTE_MAX_LEN,
};

struct audit_state {
    char key[NOTE_VERIFIER_KEY_MAX]; /* verifier key text, NUL-terminated */
    struct note_verifier v;
    struct note_checkpoint cp;  /* the remembered checkpoint */
    uint8_t note[NOTE_MAX_LEN]; /* and its signed note, as evidence */
    size_t note_len;
};

int audit_state_parse(struct audit_state *st, const uint8_t *p, size_t len) VL_MUST_CHECK;
/*
 * Builds a state from a verifier key text and a signed checkpoint note, with
 * the same checks as the parser; st is written only on success.
 */
int audit_state_make(struct audit_state *st, const char *key, const uint8_t *note,
                     size_t note_len) VL_MUST_CHECK;
/* Appends the file bytes to out. */
int audit_state_encode(const struct audit_state *st, struct buf *out) VL_MUST_CHECK;

#endif
