/* fileio.c - bounded reads and crash-safe writes (see fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int errno_to_verr(int e)
{
    switch (e) {
    case ENOENT: return VERR_UNKNOWN;
    case EEXIST: return VERR_EXISTS;
    case ENOSPC:
    case EDQUOT: return VERR_NOSPACE;
    case ENOMEM: return VERR_NOMEM;
    case ELOOP: return VERR_USAGE; /* a symlink where a file was expected */
    default: return VERR_IO;
    }
}

int file_read(const char *path, size_t max, unsigned flags, struct buf *out)
{
    struct stat st;
    uint8_t *dst;
    size_t got = 0;
    ssize_t n;
    int fd = -1, r = VERR_INTERNAL;

    if ((r = buf_init(out, max, flags)) != 0)
        return r;
    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        r = errno_to_verr(errno);
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        r = VERR_IO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = VERR_USAGE;
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    if ((r = buf_reserve(out, (size_t)st.st_size, &dst)) != 0)
        goto out;
    while (got < (size_t)st.st_size) {
        n = read(fd, dst + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = VERR_IO;
            goto out;
        }
        got += (size_t)n;
    }
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    if (r != 0)
        buf_free(out);
    return r;
}

int file_fsync_parent(const char *path)
{
    char tmp[4096];
    int fd, r;

    if (strlen(path) >= sizeof(tmp))
        return VERR_TOO_LARGE;
    memcpy(tmp, path, strlen(path) + 1);
    if ((fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return VERR_IO;
    r = fsync(fd) == 0 ? 0 : VERR_IO;
    close(fd);
    return r;
}

static int write_all(int fd, const uint8_t *data, size_t len)
{
    size_t done = 0;
    ssize_t n;

    while (done < len) {
        n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno_to_verr(errno) : VERR_IO;
        done += (size_t)n;
    }
    if (fsync(fd) != 0)
        return errno_to_verr(errno);
    return 0;
}

int file_write_new(const char *path, const uint8_t *data, size_t len, mode_t mode)
{
    int fd, r;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return errno_to_verr(errno);
    r = write_all(fd, data, len);
    if (close(fd) != 0 && r == 0)
        r = VERR_IO;
    if (r == 0)
        r = file_fsync_parent(path);
    if (r != 0)
        unlink(path);
    return r;
}

int file_replace(const char *path, const uint8_t *data, size_t len, mode_t mode)
{
    char tmp[4096], old[4096];
    int n, r, had_old;

    n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return VERR_TOO_LARGE;
    n = snprintf(old, sizeof(old), "%s.old.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(old))
        return VERR_TOO_LARGE;
    (void)unlink(tmp); /* leftovers of a crashed earlier run of this pid */
    (void)unlink(old);
    if ((r = file_write_new(tmp, data, len, mode)) != 0)
        return r;
    /* Keep a second name for the old contents, so that a failure after the
     * rename can put them back: the caller sees success or no change. */
    had_old = link(path, old) == 0;
    if (!had_old && errno != ENOENT) {
        r = errno_to_verr(errno);
        unlink(tmp);
        return r;
    }
    if (rename(tmp, path) != 0) {
        r = errno_to_verr(errno);
        unlink(tmp);
        if (had_old)
            unlink(old);
        return r;
    }
    if ((r = file_fsync_parent(path)) != 0) {
        if (had_old)
            (void)rename(old, path);
        else
            (void)unlink(path);
        (void)file_fsync_parent(path);
        return r;
    }
    if (had_old)
        (void)unlink(old);
    return 0;
}

int file_exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

int file_join(char *out, size_t outsz, const char *dir, const char *name)
{
    int n = snprintf(out, outsz, "%s/%s", dir, name);

    if (n < 0 || (size_t)n >= outsz)
        return VERR_TOO_LARGE;
    return 0;
}

int file_mkdir_private(const char *path)
{
    struct stat st;

    if (mkdir(path, 0700) == 0)
        return 0;
    if (errno != EEXIST)
        return errno_to_verr(errno);
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return VERR_USAGE;
    return 0;
}
