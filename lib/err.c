/* err.c - descriptions for the error vocabulary (see err.h). */
#include "err.h"

const char *verr_str(int err)
{
    switch ((enum verr)err) {
    case VERR_OK: return "success";
    case VERR_TRUNCATED: return "truncated";
    case VERR_TRAILING: return "unexpected trailing bytes";
    case VERR_BAD_MAGIC: return "not the expected kind of object";
    case VERR_BAD_VERSION: return "unsupported format version";
    case VERR_BAD_FORMAT: return "malformed field";
    case VERR_TOO_LARGE: return "larger than allowed";
    case VERR_BAD_SIGNATURE: return "signature does not verify";
    case VERR_DECRYPT: return "wrong passphrase or tampered data";
    case VERR_WRONG_ORG: return "signed by another organisation";
    case VERR_EXPIRED: return "certificate expired";
    case VERR_NOT_YET_VALID: return "certificate not yet valid";
    case VERR_REVOKED: return "device revoked";
    case VERR_WEAK_PARAMS: return "key-derivation parameters below the minimum";
    case VERR_BAD_KEY: return "invalid public key";
    case VERR_ROLLBACK: return "older than one already seen (rollback)";
    case VERR_UNKNOWN: return "not found";
    case VERR_EXISTS: return "already exists";
    case VERR_USAGE: return "invalid argument";
    case VERR_PASSPHRASE: return "unusable passphrase";
    case VERR_REPLAY: return "replayed";
    case VERR_DENIED: return "not permitted";
    case VERR_LIMIT: return "limit reached";
    case VERR_PROTOCOL: return "protocol violation";
    case VERR_BAD_PROOF: return "Merkle proof does not verify";
    case VERR_AMBIGUOUS: return "the name stands for more than one person";
    case VERR_IO: return "input/output error";
    case VERR_NOMEM: return "out of memory";
    case VERR_NOSPACE: return "no space left";
    case VERR_STORE: return "storage error";
    case VERR_NET: return "network error";
    case VERR_TIMEOUT: return "timed out";
    case VERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}

int verr_is_input(int err)
{
    return err < 0 && err > -100;
}

int verr_is_system(int err)
{
    return err <= -100 && err > -200;
}
