/*
 * fileio.h - whole-file reads and crash-safe writes.
 *
 * Contract:
 *  - Reads are bounded: a file over max bytes is refused (VERR_TOO_LARGE)
 *    before it is read. Symlinks are never followed (O_NOFOLLOW).
 *  - file_write_new creates a file with O_EXCL (VERR_EXISTS if it is there),
 *    writes, fsyncs it and its directory; on any failure the file is removed,
 *    so no half-written file is ever left.
 *  - file_replace writes a temporary file beside the target, fsyncs, renames
 *    over the target and fsyncs the directory: readers see the old or the new
 *    contents, never a mix.
 */
#ifndef VALISE_FILEIO_H
#define VALISE_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

/* Reads the whole file into out (initialised here; flags as for buf_init). */
int file_read(const char *path, size_t max, unsigned flags, struct buf *out) VL_MUST_CHECK;
int file_write_new(const char *path, const uint8_t *data, size_t len, mode_t mode) VL_MUST_CHECK;
int file_replace(const char *path, const uint8_t *data, size_t len, mode_t mode) VL_MUST_CHECK;
/* 1 if path exists (without following a final symlink), 0 if not. */
int file_exists(const char *path);
/* Joins dir and name into out; VERR_TOO_LARGE if it does not fit. */
int file_join(char *out, size_t outsz, const char *dir, const char *name) VL_MUST_CHECK;
/* fsync of the directory that holds path (after a create, rename or link in it). */
int file_fsync_parent(const char *path);
/* Creates a directory with mode 0700 if it does not exist. */
int file_mkdir_private(const char *path) VL_MUST_CHECK;

#endif
