/* mbox_dir.c - the directory by delta or in durable pieces (see mbox_dir.h). */
#include "mbox_dir.h"

#include <stdio.h>
#include <string.h>

#include "dir.h"
#include "mailbox.h"
#include "mbox_rec.h"
#include "store.h"
#include "wire.h"

static const char part_name[] = "dir.part";
enum { PART_LEN = 8 + 4 + 4, PIECE_NAME_LEN = 5 + 8 + 1 };

static void piece_name(char name[static PIECE_NAME_LEN], uint32_t offset)
{
    (void)snprintf(name, PIECE_NAME_LEN, "dirp.%08x", (unsigned)offset);
}

static uint32_t rd32(const uint8_t p[static 4])
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void be32(uint8_t p[static 4], uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int mbox_dir_part_get(struct mbox *m, uint64_t *version, uint32_t *total, uint32_t *have)
{
    struct buf b;
    int r;

    *version = 0;
    *total = *have = 0;
    if ((r = mb_cfg_get(m, part_name, &b)) == VERR_UNKNOWN)
        return 0;
    if (r != 0)
        return r;
    if (buf_size(&b) != PART_LEN) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    *version = mb_rd64(buf_data(&b));
    *total = rd32(buf_data(&b) + 8);
    *have = rd32(buf_data(&b) + 12);
    /* Our own record, but read strictly all the same. */
    if (*version == 0 || *total == 0 || *total > WIRE_DIR_MAX || *have > *total)
        r = VERR_BAD_FORMAT;
out:
    buf_free(&b);
    return r;
}

/* Deletes the pieces of a partial download holding have bytes (in the open transaction). */
static int part_del(struct mbox *m, uint32_t have)
{
    uint32_t off = 0;
    int r;

    while (off < have) {
        char name[PIECE_NAME_LEN];
        struct buf b;
        size_t n;

        piece_name(name, off);
        if ((r = mb_cfg_get(m, name, &b)) != 0)
            return r;
        n = buf_size(&b);
        buf_free(&b);
        if (n == 0)
            return VERR_BAD_FORMAT;
        if ((r = cstore_del(m->st, CS_CONFIG, (const uint8_t *)name, strlen(name))) != 0)
            return r;
        off += (uint32_t)n;
    }
    r = cstore_del(m->st, CS_CONFIG, (const uint8_t *)part_name, strlen(part_name));
    return r == VERR_UNKNOWN ? 0 : r;
}

int mbox_dir_part_drop(struct mbox *m)
{
    uint64_t v;
    uint32_t total, have;
    int r;

    if ((r = mbox_dir_part_get(m, &v, &total, &have)) != 0 && r != VERR_BAD_FORMAT)
        return r;
    if (r == 0 && v == 0)
        return 0;
    if (r != 0)
        have = 0; /* an unreadable header: drop it (and no piece is trusted) */
    if ((r = cstore_begin(m->st, 1)) != 0)
        return r;
    if ((r = part_del(m, have)) != 0 || (r = cstore_commit(m->st)) != 0)
        cstore_abort(m->st);
    return r;
}

int mbox_dir_part_add(struct mbox *m, uint64_t version, uint32_t total, uint32_t offset,
                      const uint8_t *p, size_t n)
{
    uint64_t pv;
    uint32_t ptotal, phave;
    uint8_t hdr[PART_LEN];
    char name[PIECE_NAME_LEN];
    int r;

    if (version == 0 || total == 0 || total > WIRE_DIR_MAX || n == 0 || offset > total ||
        n > total - offset)
        return VERR_USAGE;
    if ((r = mbox_dir_part_get(m, &pv, &ptotal, &phave)) != 0)
        return r;
    if (offset != 0 && (pv != version || ptotal != total || phave != offset))
        return VERR_PROTOCOL;
    if ((r = cstore_begin(m->st, 1)) != 0)
        return r;
    /* A new download replaces any other partial one. */
    if (offset == 0 && pv != 0 && (r = part_del(m, phave)) != 0)
        goto fail;
    piece_name(name, offset);
    mb_be64(hdr, version);
    be32(hdr + 8, total);
    be32(hdr + 12, offset + (uint32_t)n);
    if ((r = mb_cfg_put(m, name, p, n)) != 0 ||
        (r = mb_cfg_put(m, part_name, hdr, sizeof(hdr))) != 0 || (r = cstore_commit(m->st)) != 0)
        goto fail;
    return 0;
fail:
    cstore_abort(m->st);
    return r;
}

int mbox_dir_part_finish(struct mbox *m)
{
    struct buf whole = {0};
    uint64_t v;
    uint32_t total, have, off = 0;
    int r, dr;

    if ((r = mbox_dir_part_get(m, &v, &total, &have)) != 0)
        goto out;
    if (v == 0 || have != total) {
        r = VERR_USAGE;
        goto out;
    }
    if ((r = buf_init(&whole, total, 0)) != 0)
        goto out;
    while (off < total) {
        char name[PIECE_NAME_LEN];
        struct buf b;

        piece_name(name, off);
        if ((r = mb_cfg_get(m, name, &b)) != 0)
            goto out;
        r = buf_size(&b) == 0 ? VERR_BAD_FORMAT : buf_put_bytes(&whole, buf_data(&b), buf_size(&b));
        off += (uint32_t)buf_size(&b);
        buf_free(&b);
        if (r != 0)
            goto out;
    }
    r = mbox_install_directory(m, buf_data(&whole), buf_size(&whole));
out:
    buf_free(&whole);
    /* Installed or refused, the pieces have served (a bad one is fetched anew). */
    if ((dr = mbox_dir_part_drop(m)) != 0 && r == 0)
        r = dr;
    return r;
}

int mbox_dir_install_delta(struct mbox *m, const uint8_t *delta, size_t len)
{
    struct buf rebuilt = {0};
    const uint8_t *base;
    size_t blen;
    int r;

    if (m->dir == NULL)
        return VERR_USAGE;
    base = dir_bytes(m->dir, &blen);
    if ((r = dir_delta_apply(base, blen, delta, len, &rebuilt)) != 0)
        return r;
    /* Verified whole, against org.pub, and not older than seen: as if it came whole. */
    r = mbox_install_directory(m, buf_data(&rebuilt), buf_size(&rebuilt));
    buf_free(&rebuilt);
    return r;
}
