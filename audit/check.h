/*
 * check.h - valise-audit's view of a log loaded in memory and its
 * verification (DESIGN.md "Audit log", PROTOCOL.md, part 6 "Verification").
 *
 * Contract:
 *  - aload reads every record and checkpoint from one snapshot of the relay's
 *    data dir and recomputes every leaf hash from the record bytes; nothing
 *    the relay computed (leaf hashes, tree state) is used.
 *  - averify_log checks the log against its own signed checkpoints: every
 *    record numbered without gaps and well-formed, every checkpoint signed by
 *    the given key, stored under its own size, not larger than the log, with
 *    the root of the tree recomputed at its size. Any failure is TAMPER.
 *  - averify_state then compares the newest checkpoint with the one the
 *    officer remembered: smaller is ROLLBACK, same size and another root is
 *    FORK, a larger tree that is not an extension of it (RFC 9162 2.1.4
 *    consistency proof, generated from the records and verified against both
 *    signed roots) is INCONSISTENT. These are the ALARM verdicts, unless a
 *    relay_restored record covered by the newest verified checkpoint restarts
 *    the log at or below the remembered size: then RESTORED (a backup put
 *    back, PROTOCOL.md part 6 "Restores"), with the lost range in the reason.
 *  - Verdict reasons are one line of text for the officer.
 */
#ifndef VALISE_AUDIT_CHECK_H
#define VALISE_AUDIT_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "audit_record.h"
#include "audit_state.h"
#include "err.h"
#include "merkle.h"
#include "note.h"

struct acp {
    uint64_t key_size; /* the size it is stored under */
    uint8_t *note;
    size_t len;
    int verr; /* 0 if it verified with the key (set by averify_log) */
    struct note_checkpoint cp;
};

struct alogdata {
    uint64_t n;                       /* records read */
    uint8_t (*leaf)[MERKLE_HASH_LEN]; /* recomputed leaf hashes */
    struct audit_record *rec;
    int *rec_verr;     /* 0 if the record parsed */
    int numbering_gap; /* keys not 0..n-1: the log stops at the gap */
    uint64_t gap_index;
    struct acp *cps;
    size_t ncps;
};

enum averdict {
    AV_OK = 0,
    AV_TAMPER,
    AV_ROLLBACK,
    AV_FORK,
    AV_INCONSISTENT,
    AV_RESTORED, /* one of the three above, explained by a signed relay_restored record */
};

struct averify_out {
    enum averdict verdict;
    char reason[512];
    const struct acp *latest;   /* newest verified checkpoint, or NULL */
    const struct acp *evidence; /* the log's checkpoint in an alarm, or NULL */
    size_t checkpoints;         /* verified */
    uint64_t restore_index;     /* AV_RESTORED: the relay_restored record's number */
};

int aload(struct alogdata *d, const char *dir) VL_MUST_CHECK;
void aload_free(struct alogdata *d);

/* Name of a verdict for messages ("rollback", "fork", ...). */
const char *averdict_name(enum averdict v);

/* Fills o; returns 0 whatever the verdict, an error code only if it could not check. */
/*
 * 1 if the log has checkpoints and none of them carries a signature line by
 * v (its name and key id), good or bad: the key belongs to another log, not
 * to this one tampered with. origin gets the first checkpoint's origin line
 * (printable ASCII only, else "?"), for the officer's message.
 */
int akey_foreign(const struct alogdata *d, const struct note_verifier *v, char *origin,
                 size_t originsz);
int averify_log(struct alogdata *d, const struct note_verifier *v,
                struct averify_out *o) VL_MUST_CHECK;
/* After averify_log said AV_OK: the comparison with the remembered state. */
int averify_state(const struct alogdata *d, const struct audit_state *st,
                  struct averify_out *o) VL_MUST_CHECK;

/* The verified checkpoint of exactly this size, or NULL. */
const struct acp *acp_find(const struct alogdata *d, uint64_t size);

#endif
