/*
 * err.h - the one error vocabulary of Valise (STYLE.md habit 3).
 *
 * Every fallible function returns 0 on success or one of these negative codes.
 * The codes are grouped so that a caller can decide what to do without knowing
 * the function:
 *   -1   .. -99   the input or the peer is at fault: reject it, tell the user
 *                 or send the peer a reason code; nothing was changed.
 *   -100 .. -199  the system failed (I/O, memory, storage full): retry later
 *                 or report; nothing was changed.
 *   -200 ..       a bug in Valise: report it.
 * Library code never prints and never exits; a command's main() turns a code
 * into one line on stderr with verr_str().
 */
#ifndef VALISE_ERR_H
#define VALISE_ERR_H

#define VL_MUST_CHECK __attribute__((warn_unused_result))

enum verr {
    VERR_OK = 0,

    /* input or peer at fault */
    VERR_TRUNCATED = -1,      /* object ends before its declared length */
    VERR_TRAILING = -2,       /* bytes after the end of the object */
    VERR_BAD_MAGIC = -3,      /* not the kind of object expected */
    VERR_BAD_VERSION = -4,    /* a format version this build does not read */
    VERR_BAD_FORMAT = -5,     /* a field out of range or malformed */
    VERR_TOO_LARGE = -6,      /* over a hard size cap */
    VERR_BAD_SIGNATURE = -7,  /* signature does not verify */
    VERR_DECRYPT = -8,        /* authenticated decryption failed (wrong key or tampered) */
    VERR_WRONG_ORG = -9,      /* signed by another organisation's root */
    VERR_EXPIRED = -10,       /* certificate past its validity */
    VERR_NOT_YET_VALID = -11, /* certificate before its validity */
    VERR_REVOKED = -12,       /* device revoked in the directory */
    VERR_WEAK_PARAMS = -13,   /* KDF parameters below the minimum */
    VERR_BAD_KEY = -14,       /* degenerate or low-order public key */
    VERR_ROLLBACK = -15,      /* older than an object already seen */
    VERR_UNKNOWN = -16,       /* no such device, serial or record */
    VERR_EXISTS = -17,        /* refuses to overwrite or duplicate */
    VERR_USAGE = -18,         /* bad command-line or API argument */
    VERR_PASSPHRASE = -19,    /* passphrase empty, too long or not confirmed */
    VERR_REPLAY = -20,        /* message or challenge seen before */
    VERR_DENIED = -21,        /* not allowed for this identity or role */
    VERR_LIMIT = -22,         /* a configured bound was reached */
    VERR_PROTOCOL = -23,      /* message not valid in this protocol state */
    VERR_BAD_PROOF = -24,     /* Merkle inclusion or consistency proof does not verify */
    VERR_AMBIGUOUS = -25,     /* a name that stands for more than one person */

    /* system failures */
    VERR_IO = -100,       /* read, write, fsync or rename failed */
    VERR_NOMEM = -101,    /* allocation failed */
    VERR_NOSPACE = -102,  /* disk or LMDB map full */
    VERR_STORE = -103,    /* storage engine error */
    VERR_NET = -104,      /* network unreachable or connection lost */
    VERR_TIMEOUT = -105,  /* peer did not answer in time */

    /* bugs */
    VERR_INTERNAL = -200,
};

/* A short, stable, human-readable description; never NULL. */
const char *verr_str(int err);

/* Group tests: see the ranges above. */
int verr_is_input(int err);
int verr_is_system(int err);

#endif
