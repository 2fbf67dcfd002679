/*
 * note.h - C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and
 * the transparency-log checkpoints they carry (c2sp.org/tlog-checkpoint):
 * how the relay's audit log commits to its Merkle tree (DESIGN.md "Audit
 * log"). The format as Valise uses it is in PROTOCOL.md, part 5.
 *
 * Contract:
 *  - This file and note.c verify only. Signing (note_sign) and making a
 *    verifier key string live in note_sign.c, so valise-audit, which links
 *    no signing code, does not link them (STYLE.md habit 7).
 *  - A verifier key is "name+keyid+base64(0x01 || Ed25519 public key)", key
 *    ID = the first 4 bytes, big-endian, of SHA-256(name || 0x0A || 0x01 ||
 *    public key) (signed-note, "Ed25519 signatures"). Parsing checks that the
 *    ID matches the key, and that the key is a valid, non-small-order point.
 *  - A note is parsed strictly: at most NOTE_MAX_LEN bytes, valid UTF-8, no
 *    control byte but newline, text ending in a newline, a blank line, then
 *    1..NOTE_MAX_SIGS lines "U+2014 U+0020 name U+0020 base64(id || sig)\n",
 *    nothing after. Signatures by other keys are ignored, as the spec says;
 *    the note verifies only if the verifier's key (same name and ID) signed
 *    it exactly once and the signature is good.
 *    VERR_BAD_FORMAT / VERR_TOO_LARGE: malformed; VERR_UNKNOWN: no signature
 *    by this key; VERR_BAD_SIGNATURE: its signature does not verify.
 *  - A checkpoint text is: origin line, decimal tree size (no sign, no
 *    leading zero, fits in 64 bits), base64 of the 32-byte root, then at most
 *    NOTE_MAX_EXTENSIONS non-empty extension lines, each line ending in a
 *    newline. Extension lines are counted, never interpreted.
 *  - Nothing here is secret. No function allocates except through a
 *    caller's struct buf.
 */
#ifndef VALISE_NOTE_H
#define VALISE_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "merkle.h"
#include "sig.h"

enum {
    NOTE_MAX_LEN = 16384,       /* a whole signed note, signatures included */
    NOTE_MAX_SIGS = 16,         /* signed-note: MUST accept at least 16 */
    NOTE_MAX_NAME_LEN = 255,    /* key name or origin, in bytes */
    NOTE_MAX_EXTENSIONS = 16,   /* checkpoint extension lines */
    NOTE_KEY_ID_LEN = 4,
    NOTE_ALG_ED25519 = 0x01,    /* signed-note signature type */
    NOTE_ED25519_SIG_LEN = NOTE_KEY_ID_LEN + SIG_LEN,       /* 68 bytes before base64 */
    NOTE_ED25519_SIG_B64_LEN = (NOTE_ED25519_SIG_LEN + 2) / 3 * 4, /* 92 */
    NOTE_KEY_B64_LEN = (1 + SIG_PK_LEN + 2) / 3 * 4,        /* 44: base64(0x01 || pk) */
    NOTE_HASH_B64_LEN = (MERKLE_HASH_LEN + 2) / 3 * 4,      /* 44 */
    /* name "+" 8 hex digits "+" base64 key, NUL */
    NOTE_VERIFIER_KEY_MAX = NOTE_MAX_NAME_LEN + 1 + 2 * NOTE_KEY_ID_LEN + 1 + NOTE_KEY_B64_LEN + 1,
};

/* A parsed verifier key. */
struct note_verifier {
    char name[NOTE_MAX_NAME_LEN + 1];
    uint32_t key_id;
    uint8_t pk[SIG_PK_LEN];
};

/* A parsed checkpoint body. */
struct note_checkpoint {
    char origin[NOTE_MAX_NAME_LEN + 1];
    uint64_t size;
    uint8_t root[MERKLE_HASH_LEN];
    size_t n_extensions;
};

/* signed-note "Ed25519 signatures": the RECOMMENDED key ID. name is 1..255 bytes. */
uint32_t note_key_id(const char *name, const uint8_t pk[static SIG_PK_LEN]);

/*
 * 1 if s (len bytes) is a valid key name: 1..NOTE_MAX_NAME_LEN bytes of
 * UTF-8 with no control byte, no Unicode space and no '+'.
 */
int note_name_valid(const char *s, size_t len);

/* Parses "name+keyid+base64(0x01||pk)" (exactly len bytes, no newline). */
int note_verifier_parse(struct note_verifier *v, const char *s, size_t len) VL_MUST_CHECK;

/*
 * Verifies a signed note against one key. On success *text_len is the
 * length of the signed text, which is note[0 .. *text_len) and ends in '\n'.
 */
int note_open(const uint8_t *note, size_t len, const struct note_verifier *v,
              size_t *text_len) VL_MUST_CHECK;

/* Parses a checkpoint text (the signed text of a note, final newline included). */
int note_checkpoint_parse(struct note_checkpoint *cp, const uint8_t *text,
                          size_t len) VL_MUST_CHECK;

/*
 * note_open, then note_checkpoint_parse, then: the origin line must equal
 * the key name (tlog-checkpoint "Signatures": the log's key name matches
 * its origin; Valise always makes them equal). cp is written only on success.
 */
int note_checkpoint_open(struct note_checkpoint *cp, const uint8_t *note, size_t len,
                         const struct note_verifier *v) VL_MUST_CHECK;

/*
 * Appends the checkpoint text "origin\nsize\nbase64(root)\n" to out (no
 * extension lines). origin must satisfy note_name_valid.
 */
int note_checkpoint_text(struct buf *out, const char *origin, uint64_t size,
                         const uint8_t root[static MERKLE_HASH_LEN]) VL_MUST_CHECK;

/* ---- note_sign.c: signing side, not linked by valise-audit ---- */

/*
 * Appends to out the signed note: text (len bytes, a valid note text ending
 * in '\n'), a blank line and one Ed25519 signature line by key name with sk
 * (libsodium's 64-byte secret key).
 */
int note_sign(struct buf *out, const uint8_t *text, size_t len, const char *name,
              const uint8_t sk[static SIG_SK_LEN]) VL_MUST_CHECK;

/* Writes the verifier key string for name and pk into out (NUL-terminated). */
int note_verifier_format(char *out, size_t outsz, const char *name,
                         const uint8_t pk[static SIG_PK_LEN]) VL_MUST_CHECK;

#endif
