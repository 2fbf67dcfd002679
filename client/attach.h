/*
 * attach.h - attachments, sealed end to end (issue 13 item 2; byte layout in
 * PROTOCOL.md part 4 "Attachments"). The relay only ever carries the chunk
 * ciphertexts made here; the key travels in the signed inner message.
 *
 *   descriptor: 16 attachment id · 32 file key · u64 size · 32 SHA-256 of the
 *               plaintext · str8 file name · str8 media type
 *   section (type 1 inner message, after content): u8 count (0..ATTACH_MAX) ·
 *               count × descriptor
 *   chunk i of c: ChaCha20-Poly1305-IETF, key = file key,
 *               nonce = 8 zero bytes · u32 i,
 *               ad = "valise/v1/attachment-chunk" 0x00 · id · u32 i · u32 c
 *
 * Contract:
 *  - Plaintext is cut into chunks of ATTACH_CHUNK_PLAIN bytes, the last one
 *    1..ATTACH_CHUNK_PLAIN; a chunk's ciphertext is its plaintext + 16. So a
 *    chunk cannot be swapped in from another attachment (key, id in the ad),
 *    moved (i), or the attachment cut short (c, from the signed descriptor):
 *    attach_chunk_open refuses all three (VERR_DECRYPT), and a length that does
 *    not fit chunk i (VERR_BAD_FORMAT). A missing chunk is an incomplete
 *    attachment, never a shorter file.
 *  - attach_desc_parse / attach_section_parse are strict: every length capped,
 *    the name 1..ATTACH_NAME_MAX bytes of safe text (PROTOCOL.md part 1
 *    "Text fields") without '/', not "." or "..", the media type
 *    type/subtype of [a-z0-9.+-], size 1..ATTACH_SIZE_MAX. Encoders refuse
 *    what the parsers would refuse and write the one canonical encoding.
 *  - A descriptor holds a key: callers wipe it (attach_desc_wipe).
 *  - File helpers (no network): attach_seal_file seals a whole file into a
 *    ciphertext file (chunk i at offset i * ATTACH_CHUNK_CT), made atomically
 *    (temporary, fsync, rename); attach_held counts the whole chunks of a
 *    downloaded ciphertext file (attach_trim also cuts off a torn write); attach_open_file opens every chunk, checks
 *    the SHA-256 and only then renames the output (mode 0600) into place.
 */
#ifndef VALISE_ATTACH_H
#define VALISE_ATTACH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

enum {
    ATTACH_ID_LEN = 16,
    ATTACH_KEY_LEN = 32,
    ATTACH_HASH_LEN = 32,
    ATTACH_TAG_LEN = 16,
    ATTACH_CHUNK_PLAIN = 16384,
    ATTACH_CHUNK_CT = ATTACH_CHUNK_PLAIN + ATTACH_TAG_LEN,
    ATTACH_MAX = 16,        /* attachments in one message */
    ATTACH_NAME_MAX = 255,
    ATTACH_TYPE_MAX = 255,
    /* Fixed part of a descriptor: id, key, size, hash. */
    ATTACH_DESC_FIXED = ATTACH_ID_LEN + ATTACH_KEY_LEN + 8 + ATTACH_HASH_LEN,
    ATTACH_DESC_MAX = ATTACH_DESC_FIXED + 1 + ATTACH_NAME_MAX + 1 + ATTACH_TYPE_MAX,
    ATTACH_SECTION_MAX = 1 + ATTACH_MAX * ATTACH_DESC_MAX,
};
#define ATTACH_SIZE_MAX ((uint64_t)1 << 40)

struct attach_desc {
    uint8_t id[ATTACH_ID_LEN];
    uint8_t key[ATTACH_KEY_LEN];
    uint64_t size;
    uint8_t hash[ATTACH_HASH_LEN];
    char name[ATTACH_NAME_MAX + 1];
    char type[ATTACH_TYPE_MAX + 1];
};

/* c = ceil(size / ATTACH_CHUNK_PLAIN); 0 for a size out of range. */
uint32_t attach_chunk_count(uint64_t size);
/* size + 16 * c: the bytes the relay stores. */
uint64_t attach_ct_size(uint64_t size);
/* Plaintext bytes of chunk i (0 if i is not a chunk of this size). */
size_t attach_chunk_plain_len(uint64_t size, uint32_t i);

/* 1 if s is a valid file name / media type (see contract). */
int attach_valid_name(const char *s);
int attach_valid_type(const char *s);
/* A media type guessed from a file name's extension; "application/octet-stream" otherwise. */
const char *attach_guess_type(const char *name);

/* One descriptor appended to out / read from b (strict). */
int attach_desc_encode(const struct attach_desc *d, struct buf *out) VL_MUST_CHECK;
int attach_desc_parse(struct buf *b, struct attach_desc *d) VL_MUST_CHECK;
/* The section: u8 count and n descriptors (n <= ATTACH_MAX). */
int attach_section_encode(const struct attach_desc *d, size_t n, struct buf *out) VL_MUST_CHECK;
/*
 * Reads a section from b. d: room for ATTACH_MAX descriptors, or NULL to
 * check the section only (nothing secret is kept then).
 */
int attach_section_parse(struct buf *b, struct attach_desc *d, size_t *n) VL_MUST_CHECK;
void attach_desc_wipe(struct attach_desc *d);

/*
 * Seals chunk i of the attachment d (plaintext pt of exactly
 * attach_chunk_plain_len(d->size, i) bytes) into ct (len + ATTACH_TAG_LEN bytes).
 */
int attach_chunk_seal(const struct attach_desc *d, uint32_t i, const uint8_t *pt, size_t len,
                      uint8_t *ct) VL_MUST_CHECK;
/* Opens chunk i into pt (ct_len - ATTACH_TAG_LEN bytes); VERR_DECRYPT, VERR_BAD_FORMAT. */
int attach_chunk_open(const struct attach_desc *d, uint32_t i, const uint8_t *ct, size_t ct_len,
                      uint8_t *pt) VL_MUST_CHECK;

/* Progress of a long file operation: done and total bytes. */
typedef void (*attach_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/*
 * Fills d's size and hash from the file at src (d's id and key: the
 * caller's fresh random values; name and type: the caller's) and writes its sealed chunks to ct_path.
 * VERR_USAGE: src is empty, not a regular file; VERR_TOO_LARGE: over
 * ATTACH_SIZE_MAX or max; VERR_IO: it cannot be read. Nothing is left at
 * ct_path on failure.
 */
int attach_seal_file(const char *src, uint64_t max, const char *ct_path, struct attach_desc *d,
                     attach_progress_fn progress, void *pctx) VL_MUST_CHECK;
/*
 * Whole chunks held in the ciphertext file at path (0 if it does not exist),
 * in order from chunk 0: c once its size is attach_ct_size(d->size). The file
 * is not changed (a torn last write is simply not counted).
 * VERR_BAD_FORMAT: the file is longer than the attachment.
 */
int attach_held(const char *path, const struct attach_desc *d, uint32_t *held) VL_MUST_CHECK;
/*
 * The same for the one process that writes the file (the download): a torn
 * last write (a part of a chunk) is cut off so the next chunk goes at the
 * right offset.
 */
int attach_trim(const char *path, const struct attach_desc *d, uint32_t *held) VL_MUST_CHECK;
/*
 * Opens every chunk of the ciphertext file at ct_path, checks the SHA-256
 * against d->hash, and writes the plaintext to out (temporary beside it,
 * fsync, rename, mode 0600). VERR_UNKNOWN: not every chunk is there;
 * VERR_DECRYPT: a chunk does not open or the hash differs (no output then);
 * VERR_EXISTS: out exists.
 */
int attach_open_file(const struct attach_desc *d, const char *ct_path, const char *out,
                     attach_progress_fn progress, void *pctx) VL_MUST_CHECK;

/*
 * Reading a complete ciphertext file chunk by chunk (the desk streams a
 * saved attachment to the browser, issue 13 item 2). attach_reader_open
 * copies d (the key is wiped by attach_reader_close); VERR_UNKNOWN: not
 * every chunk is there. attach_reader_next opens the next chunk into pt
 * (ATTACH_CHUNK_PLAIN bytes of room), *len its plaintext bytes, 0 once all
 * were given; the SHA-256 of the whole is checked before the last chunk is
 * handed out (VERR_DECRYPT then, as for a chunk that does not open), so a
 * reader that got every chunk got the bytes the sender signed.
 */
struct attach_reader;
int attach_reader_open(const struct attach_desc *d, const char *ct_path,
                       struct attach_reader **out) VL_MUST_CHECK;
int attach_reader_next(struct attach_reader *rd, uint8_t *pt, size_t *len) VL_MUST_CHECK;
void attach_reader_close(struct attach_reader *rd);
/* Every chunk opened and the hash checked, nothing written: 0 or as attach_reader_next. */
int attach_verify_file(const struct attach_desc *d, const char *ct_path) VL_MUST_CHECK;

#endif
