/*
 * buf.h - the bounded buffer: every byte from outside is read and written
 * through it (STYLE.md habit 1).
 *
 * Contract:
 *  - A buffer has a maximum size fixed at creation; a write that would pass it
 *    fails with VERR_TOO_LARGE and writes nothing.
 *  - A read takes exactly what it asked for or fails with VERR_TRUNCATED and
 *    takes nothing (the read position does not move).
 *  - Integers are big-endian (network order) on the wire.
 *  - A nested part is read as a child view: a read-only buffer over the
 *    parent's bytes, which must outlive it. Views allocate nothing.
 *  - A buffer made with BUF_SECRET lives in sodium_malloc memory (guard
 *    pages, mlock'd): it is wiped before it is freed or grown. Needs
 *    sodium_init() first.
 * The struct is public so views can live on the stack (no allocation on the
 * relay's hot path); its members are private to buf.c.
 */
#ifndef VALISE_BUF_H
#define VALISE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum { BUF_SECRET = 1 };

struct buf {
    uint8_t *p_data;    /* private */
    size_t p_size;      /* private: bytes written */
    size_t p_off;       /* private: read position */
    size_t p_alloc;     /* private: bytes allocated (0 for a view) */
    size_t p_max;       /* private: hard cap */
    unsigned p_flags;   /* private */
};

/* A writable, growable buffer of at most max bytes. flags: 0 or BUF_SECRET. */
int buf_init(struct buf *b, size_t max, unsigned flags) VL_MUST_CHECK;
/* A read-only view over len bytes at p; allocates nothing. */
void buf_view(struct buf *b, const uint8_t *p, size_t len);
/* Wipes (if secret) and frees; accepts NULL and zeroed structs. */
void buf_free(struct buf *b);
/* Forget contents (wiped if secret), keep the allocation. */
void buf_reset(struct buf *b);

/* Whole contents and size, independent of the read position. */
const uint8_t *buf_data(const struct buf *b);
size_t buf_size(const struct buf *b);
/* Unread bytes from the read position. */
const uint8_t *buf_rptr(const struct buf *b);
size_t buf_left(const struct buf *b);
/* Current read offset from the start (for signature spans). */
size_t buf_offset(const struct buf *b);

/* Readers. */
int buf_get_u8(struct buf *b, uint8_t *v) VL_MUST_CHECK;
int buf_get_u16(struct buf *b, uint16_t *v) VL_MUST_CHECK;
int buf_get_u32(struct buf *b, uint32_t *v) VL_MUST_CHECK;
int buf_get_u64(struct buf *b, uint64_t *v) VL_MUST_CHECK;
int buf_get_bytes(struct buf *b, uint8_t *out, size_t n) VL_MUST_CHECK;
/* Child view over the next n bytes. */
int buf_get_view(struct buf *b, size_t n, struct buf *child) VL_MUST_CHECK;
/* Child view over a u16- or u32-length-prefixed part of at most max bytes. */
int buf_get_view16(struct buf *b, size_t max, struct buf *child) VL_MUST_CHECK;
int buf_get_view32(struct buf *b, size_t max, struct buf *child) VL_MUST_CHECK;
/*
 * A u8-length-prefixed text of min..max bytes into out (NUL-terminated,
 * outsz > max). Refuses NUL and control bytes.
 */
int buf_get_str8(struct buf *b, char *out, size_t outsz, size_t min, size_t max) VL_MUST_CHECK;
/* VERR_TRAILING unless every byte has been read. */
int buf_expect_end(const struct buf *b) VL_MUST_CHECK;

/* Writers (fail on a read-only view). */
int buf_put_u8(struct buf *b, uint8_t v) VL_MUST_CHECK;
int buf_put_u16(struct buf *b, uint16_t v) VL_MUST_CHECK;
int buf_put_u32(struct buf *b, uint32_t v) VL_MUST_CHECK;
int buf_put_u64(struct buf *b, uint64_t v) VL_MUST_CHECK;
int buf_put_bytes(struct buf *b, const uint8_t *p, size_t n) VL_MUST_CHECK;
/* u8 length + text; the text must be 1..255 bytes without NUL. */
int buf_put_str8(struct buf *b, const char *s) VL_MUST_CHECK;
/* u16 / u32 length + bytes. */
int buf_put_bytes16(struct buf *b, const uint8_t *p, size_t n) VL_MUST_CHECK;
int buf_put_bytes32(struct buf *b, const uint8_t *p, size_t n) VL_MUST_CHECK;
/* Reserve n bytes and return a pointer to fill them (valid until next put). */
int buf_reserve(struct buf *b, size_t n, uint8_t **out) VL_MUST_CHECK;
/* Drop the last n written bytes (wiped if secret). */
void buf_truncate(struct buf *b, size_t size);

#endif
