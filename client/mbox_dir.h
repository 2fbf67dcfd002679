/*
 * mbox_dir.h - how the directory reaches a device on any link (PROTOCOL.md
 * part 2 "Directory transfer", part 4 section 6): a delta from the version
 * it holds, or the whole directory in pieces kept durably across cuts.
 *
 * Contract:
 *  - Nothing is installed until the whole directory verifies against org.pub
 *    and is not older than the newest seen (mbox_install_directory): a delta
 *    is applied to the device's own verified copy and the rebuilt bytes are
 *    verified as if they had come whole.
 *  - A partial download is kept in the store (table CS_CONFIG): the record
 *    "dir.part" = u64 version · u32 total length · u32 bytes held, and each
 *    piece under "dirp.OFFSET" (OFFSET as 8 lower-case hex digits), written in
 *    one transaction with the header, so a cut or a crash loses at most the
 *    piece in flight. Pieces are contiguous from offset 0.
 *  - A partial download that does not verify once complete is dropped.
 */
#ifndef VALISE_MBOX_DIR_H
#define VALISE_MBOX_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct mbox;

/* The partial download held: *version 0 when none. */
int mbox_dir_part_get(struct mbox *m, uint64_t *version, uint32_t *total,
                      uint32_t *have) VL_MUST_CHECK;
/*
 * Adds the n bytes at offset of directory version (total bytes long) to the
 * partial download, durably. offset 0 starts a new one (an older partial is
 * dropped); otherwise version and total must be the partial's and offset its
 * bytes held (VERR_PROTOCOL).
 */
int mbox_dir_part_add(struct mbox *m, uint64_t version, uint32_t total, uint32_t offset,
                      const uint8_t *p, size_t n) VL_MUST_CHECK;
/*
 * The partial download is complete: installs it (mbox_install_directory) and
 * drops the partial whether it verified or not. Returns the install's result.
 */
int mbox_dir_part_finish(struct mbox *m) VL_MUST_CHECK;
/* Drops the partial download, if any. */
int mbox_dir_part_drop(struct mbox *m) VL_MUST_CHECK;
/* Applies a delta to the held directory and installs the result if it verifies. */
int mbox_dir_install_delta(struct mbox *m, const uint8_t *delta, size_t len) VL_MUST_CHECK;

#endif
