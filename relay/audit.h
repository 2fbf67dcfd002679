/*
 * audit.h - the relay's side of the audit log that is not storage: the
 * dedicated audit signing key, the checkpoint policy, the start-up check of
 * the Merkle tree state, and the device enrolment / revocation records of a
 * new directory (DESIGN.md "Audit log", issue 5, PROTOCOL.md, part 6).
 *
 * Contract:
 *  - The audit key is an Ed25519 key used for checkpoints and nothing else
 *    (not the org root, not a device key). It lives in DATA/audit.key,
 *    created on first start with O_EXCL and mode 0600, and in sodium_malloc
 *    memory while the relay runs.
 *  - Checkpoints are C2SP tlog-checkpoints in C2SP signed notes; origin and
 *    key name are "valise/<relay-id>". One is signed inside the committing
 *    transaction when the log has grown by checkpoint_records records since
 *    the latest one, or checkpoint_seconds have passed and it has grown, or
 *    after raudit_force_checkpoint (clean shutdown).
 *  - raudit_open refuses to start (one clear line in err) when the persisted
 *    tree state does not parse, does not cover exactly the records in the
 *    log, or disagrees with the latest signed checkpoint (all O(log n)).
 *  - The O(n) part of the start-up check (every record rehashed, roots at the
 *    checkpoint's size and the log's, PROTOCOL.md part 6 section 5) runs in
 *    its own thread from raudit_verify_start, beside the event loop, on a
 *    read transaction of its own: the relay serves at once after a restart.
 *    raudit_verify_poll reports it (done, and non-zero with the one line in
 *    err once it failed); raudit_verify_join waits for it, and must run
 *    before the store is closed (raudit_free calls it too).
 */
#ifndef VALISE_RELAY_AUDIT_H
#define VALISE_RELAY_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dir.h"
#include "err.h"
#include "store.h"
#include "wire.h"

enum {
    RAUDIT_KEY_FILE_LEN = 4 + 1 + 32, /* "vauk" || version 0x01 || Ed25519 seed */
};

#define RAUDIT_KEY_FILE "audit.key"
#define RAUDIT_KEY_MAGIC "vauk"
#define RAUDIT_ORIGIN_PREFIX "valise/"

struct raudit;

/* Loads (or creates) the key, checks the tree state, installs the checkpoint policy on st. */
int raudit_open(struct raudit **out, const struct relay_config *cfg, struct store *st, char *err,
                size_t errsz) VL_MUST_CHECK;
int raudit_verify_start(struct raudit *ra) VL_MUST_CHECK;
int raudit_verify_poll(struct raudit *ra, int *done, char *err, size_t errsz) VL_MUST_CHECK;
void raudit_verify_join(struct raudit *ra);
void raudit_free(struct raudit *ra);
/* The C2SP verifier key "name+keyid+base64(0x01||pk)". */
const char *raudit_verifier_key(const struct raudit *ra);
/* The next commit that finds the log grown signs a checkpoint whatever the policy. */
void raudit_force_checkpoint(struct raudit *ra);

/*
 * Appends, to st's open transaction, DEVICE_ENROLLED for every certificate of
 * nw whose serial old does not list, and DEVICE_REVOKED for every serial nw
 * revokes that old did not (old may be NULL: everything in nw is new).
 */
int raudit_directory_changes(struct store *st, const struct directory *old,
                             const struct directory *nw, uint64_t now) VL_MUST_CHECK;

/* The certificate role that may read the audit log over the wire. */
#define RAUDIT_ROLE "auditor"

/*
 * Answers AUDIT_CHECKPOINT_GET or AUDIT_PROOF_GET (m) from a device whose
 * certificate role is role: appends to out the AUDIT_CHECKPOINT / AUDIT_PROOF
 * reply, or an ERROR (unexpected: not an auditor; unknown_device: no such
 * checkpoint or tree size yet). Only an error building the reply is returned.
 */
int raudit_serve(struct store *st, const char *role, const struct wire_msg *m,
                 struct buf *out) VL_MUST_CHECK;

/* 1 if argv asks for --print-audit-key. */
int raudit_print_wanted(int argc, char **argv);
/* valise-relay --print-audit-key --data DIR [--relay-id NAME]: the exit status. */
int raudit_print_main(int argc, char **argv);

#endif
