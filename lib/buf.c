/* buf.c - the bounded buffer (see buf.h). */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

enum { BUF_VIEW = 0x100 };

/*
 * STYLE.md habit 5: a secret buffer's block comes from sodium_malloc
 * (guard pages, canary, mlock'd so it is never swapped out) and goes back
 * through sodium_free, which wipes it. Other buffers use malloc.
 */
static uint8_t *buf_block_alloc(unsigned flags, size_t n)
{
    if (flags & BUF_SECRET)
        return sodium_malloc(n);
    return malloc(n);
}

static void buf_block_free(unsigned flags, uint8_t *p)
{
    if (flags & BUF_SECRET)
        sodium_free(p); /* wipes, unlocks and unmaps */
    else
        free(p);
}

int buf_init(struct buf *b, size_t max, unsigned flags)
{
    memset(b, 0, sizeof(*b));
    b->p_max = max;
    b->p_flags = flags & BUF_SECRET;
    return 0;
}

void buf_view(struct buf *b, const uint8_t *p, size_t len)
{
    memset(b, 0, sizeof(*b));
    /* The view never writes through p_data: every writer checks BUF_VIEW. */
    b->p_data = (uint8_t *)(uintptr_t)p;
    b->p_size = len;
    b->p_max = len;
    b->p_flags = BUF_VIEW;
}

void buf_free(struct buf *b)
{
    if (b == NULL)
        return;
    if (!(b->p_flags & BUF_VIEW) && b->p_data != NULL)
        buf_block_free(b->p_flags, b->p_data);
    memset(b, 0, sizeof(*b));
}

void buf_reset(struct buf *b)
{
    if (!(b->p_flags & BUF_VIEW) && b->p_data != NULL && (b->p_flags & BUF_SECRET))
        sodium_memzero(b->p_data, b->p_size);
    if (!(b->p_flags & BUF_VIEW))
        b->p_size = 0;
    b->p_off = 0;
}

const uint8_t *buf_data(const struct buf *b)
{
    return b->p_data;
}

size_t buf_size(const struct buf *b)
{
    return b->p_size;
}

const uint8_t *buf_rptr(const struct buf *b)
{
    return b->p_data == NULL ? NULL : b->p_data + b->p_off;
}

size_t buf_left(const struct buf *b)
{
    return b->p_size - b->p_off;
}

size_t buf_offset(const struct buf *b)
{
    return b->p_off;
}

static int buf_take(struct buf *b, size_t n, const uint8_t **p)
{
    if (n > b->p_size - b->p_off)
        return VERR_TRUNCATED;
    *p = b->p_data + b->p_off;
    b->p_off += n;
    return 0;
}

int buf_get_u8(struct buf *b, uint8_t *v)
{
    const uint8_t *p;
    int r;

    if ((r = buf_take(b, 1, &p)) != 0)
        return r;
    *v = p[0];
    return 0;
}

int buf_get_u16(struct buf *b, uint16_t *v)
{
    const uint8_t *p;
    int r;

    if ((r = buf_take(b, 2, &p)) != 0)
        return r;
    *v = (uint16_t)(((unsigned)p[0] << 8) | p[1]);
    return 0;
}

int buf_get_u32(struct buf *b, uint32_t *v)
{
    const uint8_t *p;
    int r;

    if ((r = buf_take(b, 4, &p)) != 0)
        return r;
    *v = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    return 0;
}

int buf_get_u64(struct buf *b, uint64_t *v)
{
    const uint8_t *p;
    uint64_t x = 0;
    int r;

    if ((r = buf_take(b, 8, &p)) != 0)
        return r;
    for (size_t i = 0; i < 8; i++)
        x = (x << 8) | p[i];
    *v = x;
    return 0;
}

int buf_get_bytes(struct buf *b, uint8_t *out, size_t n)
{
    const uint8_t *p;
    int r;

    if ((r = buf_take(b, n, &p)) != 0)
        return r;
    if (n > 0)
        memcpy(out, p, n);
    return 0;
}

int buf_get_view(struct buf *b, size_t n, struct buf *child)
{
    const uint8_t *p;
    int r;

    if ((r = buf_take(b, n, &p)) != 0)
        return r;
    buf_view(child, p, n);
    return 0;
}

static int buf_get_prefixed(struct buf *b, size_t lenbytes, size_t max, struct buf *child)
{
    size_t save = b->p_off;
    uint16_t l16 = 0;
    uint32_t l32 = 0;
    size_t n;
    int r;

    if (lenbytes == 2) {
        if ((r = buf_get_u16(b, &l16)) != 0)
            return r;
        n = l16;
    } else {
        if ((r = buf_get_u32(b, &l32)) != 0)
            return r;
        n = l32;
    }
    /* Check the declared length against the cap before anything else. */
    if (n > max) {
        b->p_off = save;
        return VERR_TOO_LARGE;
    }
    if ((r = buf_get_view(b, n, child)) != 0) {
        b->p_off = save;
        return r;
    }
    return 0;
}

int buf_get_view16(struct buf *b, size_t max, struct buf *child)
{
    return buf_get_prefixed(b, 2, max, child);
}

int buf_get_view32(struct buf *b, size_t max, struct buf *child)
{
    return buf_get_prefixed(b, 4, max, child);
}

int buf_get_str8(struct buf *b, char *out, size_t outsz, size_t min, size_t max)
{
    size_t save = b->p_off;
    const uint8_t *p;
    uint8_t n;
    int r;

    if (max >= outsz || max > 255)
        return VERR_INTERNAL;
    if ((r = buf_get_u8(b, &n)) != 0)
        return r;
    if (n < min || n > max) {
        b->p_off = save;
        return VERR_BAD_FORMAT;
    }
    if ((r = buf_take(b, n, &p)) != 0) {
        b->p_off = save;
        return r;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            b->p_off = save;
            return VERR_BAD_FORMAT;
        }
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

int buf_expect_end(const struct buf *b)
{
    return b->p_off == b->p_size ? 0 : VERR_TRAILING;
}

int buf_reserve(struct buf *b, size_t n, uint8_t **out)
{
    size_t need, nalloc;
    uint8_t *np;

    if (b->p_flags & BUF_VIEW)
        return VERR_INTERNAL;
    if (n > b->p_max - b->p_size)
        return VERR_TOO_LARGE;
    need = b->p_size + n;
    if (need > b->p_alloc) {
        nalloc = b->p_alloc < 64 ? 64 : b->p_alloc;
        while (nalloc < need)
            nalloc = nalloc > SIZE_MAX / 2 ? need : nalloc * 2;
        if (nalloc > b->p_max)
            nalloc = b->p_max;
        if ((np = buf_block_alloc(b->p_flags, nalloc)) == NULL)
            return VERR_NOMEM;
        if (b->p_data != NULL) {
            memcpy(np, b->p_data, b->p_size);
            /* A secret's old block is wiped by sodium_free. */
            buf_block_free(b->p_flags, b->p_data);
        }
        b->p_data = np;
        b->p_alloc = nalloc;
    }
    *out = b->p_data + b->p_size;
    b->p_size += n;
    return 0;
}

void buf_truncate(struct buf *b, size_t size)
{
    if ((b->p_flags & BUF_VIEW) || size >= b->p_size)
        return;
    if (b->p_flags & BUF_SECRET)
        sodium_memzero(b->p_data + size, b->p_size - size);
    b->p_size = size;
    if (b->p_off > size)
        b->p_off = size;
}

int buf_put_bytes(struct buf *b, const uint8_t *p, size_t n)
{
    uint8_t *dst;
    int r;

    if ((r = buf_reserve(b, n, &dst)) != 0)
        return r;
    if (n > 0)
        memcpy(dst, p, n);
    return 0;
}

int buf_put_u8(struct buf *b, uint8_t v)
{
    return buf_put_bytes(b, &v, 1);
}

int buf_put_u16(struct buf *b, uint16_t v)
{
    uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return buf_put_bytes(b, p, sizeof(p));
}

int buf_put_u32(struct buf *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return buf_put_bytes(b, p, sizeof(p));
}

int buf_put_u64(struct buf *b, uint64_t v)
{
    uint8_t p[8];

    for (size_t i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
    return buf_put_bytes(b, p, sizeof(p));
}

int buf_put_str8(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    size_t save = b->p_size;
    int r;

    if (n == 0 || n > 255)
        return VERR_BAD_FORMAT;
    if ((r = buf_put_u8(b, (uint8_t)n)) != 0)
        return r;
    if ((r = buf_put_bytes(b, (const uint8_t *)s, n)) != 0) {
        buf_truncate(b, save);
        return r;
    }
    return 0;
}

int buf_put_bytes16(struct buf *b, const uint8_t *p, size_t n)
{
    size_t save = b->p_size;
    int r;

    if (n > UINT16_MAX)
        return VERR_TOO_LARGE;
    if ((r = buf_put_u16(b, (uint16_t)n)) != 0)
        return r;
    if ((r = buf_put_bytes(b, p, n)) != 0) {
        buf_truncate(b, save);
        return r;
    }
    return 0;
}

int buf_put_bytes32(struct buf *b, const uint8_t *p, size_t n)
{
    size_t save = b->p_size;
    int r;

    if (n > UINT32_MAX)
        return VERR_TOO_LARGE;
    if ((r = buf_put_u32(b, (uint32_t)n)) != 0)
        return r;
    if ((r = buf_put_bytes(b, p, n)) != 0) {
        buf_truncate(b, save);
        return r;
    }
    return 0;
}
