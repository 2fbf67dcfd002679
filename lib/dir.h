/*
 * dir.h - the signed directory (DESIGN.md "Trust and keys").
 *
 * One object signed by the organisation root: a version that only grows, a
 * validity period (issued_at < expires_at, Unix seconds), the valid device
 * certificates and the revoked serials. The validity period bounds how long a
 * coerced relay can keep serving an old directory that hides a revocation:
 * clients stop using a directory past its expires_at (PROTOCOL.md part 4). The relay serves the
 * newest one it was given; clients refuse one older than they have seen.
 *
 * Contract:
 *  - dir_parse_verify accepts exactly the canonical encoding (PROTOCOL.md
 *    "Directory"): certificates sorted by strictly increasing serial, the same
 *    for revocations, format version 2 only, issued_at < expires_at (both
 *    covered by the signature), every certificate of this organisation with a valid root
 *    signature, no trailing bytes, and the root's signature over the whole.
 *  - A parsed directory is immutable and keeps a copy of its bytes, so it can
 *    be served as it was signed.
 *  - dir_check_cert is the one revocation check every component uses.
 */
#ifndef VALISE_DIR_H
#define VALISE_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "cert.h"

enum {
    DIR_MAX_CERTS = 20000,
    DIR_MAX_REVOKED = 100000,
    DIR_REVOCATION_LEN = 8 + DEVICE_ID_LEN + 8,
    /* magic, format version, org id, directory version, issued_at, expires_at, count */
    DIR_HEADER_LEN = 4 + 1 + ORG_ID_LEN + 8 + 8 + 8 + 4,
    DIR_MAX_LEN = DIR_HEADER_LEN + DIR_MAX_CERTS * CERT_MAX_LEN + 4 +
                  DIR_MAX_REVOKED * DIR_REVOCATION_LEN + SIG_LEN,
};

struct dir_revocation {
    uint64_t serial;
    uint8_t device_id[DEVICE_ID_LEN];
    uint64_t revoked_at;
};

struct directory;

int dir_parse_verify(const uint8_t *p, size_t len, const struct orgpub *org,
                     struct directory **out) VL_MUST_CHECK;
/* Reads a directory file and verifies it against org. */
int dir_load(const char *path, const struct orgpub *org, struct directory **out) VL_MUST_CHECK;
/*
 * certs and revocations must already be sorted by increasing serial;
 * issued_at < expires_at (else VERR_USAGE).
 */
int dir_encode_sign(uint64_t version, uint64_t issued_at, uint64_t expires_at,
                    const struct orgpub *org,
                    const struct cert *certs, size_t ncerts, const struct dir_revocation *revs,
                    size_t nrevs, const uint8_t org_sk[static SIG_SK_LEN],
                    struct buf *out) VL_MUST_CHECK;
void dir_free(struct directory *d);

uint64_t dir_version(const struct directory *d);
uint64_t dir_issued_at(const struct directory *d);
uint64_t dir_expires_at(const struct directory *d);
const uint8_t *dir_bytes(const struct directory *d, size_t *len);
size_t dir_cert_count(const struct directory *d);
const struct cert *dir_cert_at(const struct directory *d, size_t i);
size_t dir_revoked_count(const struct directory *d);
const struct dir_revocation *dir_revoked_at(const struct directory *d, size_t i);

/* The listed, unrevoked certificate of a device, or NULL. */
const struct cert *dir_find_device(const struct directory *d,
                                   const uint8_t id[static DEVICE_ID_LEN]);
/* The listed certificate with this serial (revoked or not), or NULL. */
const struct cert *dir_find_serial(const struct directory *d, uint64_t serial);
/* 1 if the directory's revocation list holds this serial. */
int dir_revokes_serial(const struct directory *d, uint64_t serial);
/* 1 if the revocation list names this device. */
int dir_revokes_device(const struct directory *d, const uint8_t id[static DEVICE_ID_LEN]);
/* 1 if the serial or the device id is revoked. */
int dir_is_revoked(const struct directory *d, uint64_t serial,
                   const uint8_t id[static DEVICE_ID_LEN]);
/*
 * The whole check of a presented certificate: this organisation, root
 * signature, validity at now (cert_verify), and not revoked in d.
 */
int dir_check_cert(const struct directory *d, const struct cert *c, const struct orgpub *org,
                   uint64_t now) VL_MUST_CHECK;

/*
 * Directory deltas (PROTOCOL.md part 1 "Directory delta"; lib/dir_delta.c).
 * A delta turns one signed directory (the base, whose hash it names) into
 * another: the new header, the certificates and revocations removed (by
 * serial) and added (whole), and the root's signature of the new directory.
 * The directory encoding is canonical (sorted by strictly increasing serial,
 * each certificate as it was signed), so the device rebuilds exactly the bytes
 * the root signed and verifies them with dir_parse_verify: a delta carries no
 * trust of its own.
 *
 *  - dir_delta_make: structural only (no signature checked: the relay's own
 *    stored copies, and the device verifies the result). out is initialised
 *    here (at most DIR_DELTA_MAX bytes).
 *  - dir_delta_apply: base is the device's verified directory. Strict: magic,
 *    format 1, the base hash equal to BLAKE2b-256 of base (else
 *    VERR_UNKNOWN: a delta from another directory), removed serials present
 *    in the base and strictly increasing, added serials strictly increasing
 *    and not left in the base, no trailing bytes. out (initialised here) gets
 *    the rebuilt directory, which the caller must dir_parse_verify before use.
 */
enum {
    DIR_DELTA_HASH_LEN = 32,
    DIR_DELTA_HEADER_LEN = DIR_HEADER_LEN - 4, /* the new directory's header without its count */
    DIR_DELTA_FIXED = 4 + 1 + DIR_DELTA_HASH_LEN + DIR_DELTA_HEADER_LEN + 4 * 4 + SIG_LEN,
    DIR_DELTA_MAX = DIR_DELTA_FIXED + DIR_MAX_CERTS * (8 + CERT_MAX_LEN) +
                    DIR_MAX_REVOKED * (8 + DIR_REVOCATION_LEN),
};
int dir_delta_make(const uint8_t *base, size_t base_len, const uint8_t *cur, size_t cur_len,
                   struct buf *out) VL_MUST_CHECK;
int dir_delta_apply(const uint8_t *base, size_t base_len, const uint8_t *delta, size_t delta_len,
                    struct buf *out) VL_MUST_CHECK;

#endif
