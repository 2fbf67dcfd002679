/* datadir.c - the relay's claim on its data directory (see datadir.h). */
#include "datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fileio.h"

enum { PID_TEXT_MAX = 24 };

/* A recorded id is one line of 1..64 printable ASCII bytes, no space. */
static int id_valid(const char *s, size_t n)
{
    if (n == 0 || n > WIRE_RELAY_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

int datadir_stored_id(const char *dir, char *out, size_t outsz)
{
    char path[4096];
    struct buf b = {0};
    size_t n;
    int r;

    if ((r = file_join(path, sizeof(path), dir, DATADIR_ID_FILE)) != 0)
        return r;
    if (!file_exists(path))
        return VERR_UNKNOWN;
    if ((r = file_read(path, WIRE_RELAY_ID_MAX + 1, 0, &b)) != 0)
        return r;
    n = buf_size(&b);
    if (n > 0 && buf_data(&b)[n - 1] == '\n')
        n--;
    if (!id_valid((const char *)buf_data(&b), n) || n >= outsz) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    memcpy(out, buf_data(&b), n);
    out[n] = '\0';
    r = 0;
out:
    buf_free(&b);
    return r;
}

/* The pid written in a lock file held by someone else, or 0 if unreadable. */
static long holder_pid(int fd)
{
    char text[PID_TEXT_MAX];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    long pid = 0;

    if (n <= 0)
        return 0;
    text[n] = '\0';
    for (ssize_t i = 0; i < n && text[i] >= '0' && text[i] <= '9' && pid < 100000000; i++)
        pid = pid * 10 + (text[i] - '0');
    return pid;
}

static int take_lock(struct datadir *d, const char *dir, char *err, size_t errsz)
{
    char path[4096], text[PID_TEXT_MAX];
    int fd, n;

    if (file_join(path, sizeof(path), dir, DATADIR_LOCK_FILE) != 0) {
        snprintf(err, errsz, "--data %s: path too long", dir);
        return VERR_USAGE;
    }
    fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errsz, "--data %s: cannot open %s: %s", dir, DATADIR_LOCK_FILE,
                 strerror(errno));
        return VERR_IO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        long pid = holder_pid(fd);

        close(fd);
        if (e == EWOULDBLOCK) {
            if (pid > 0)
                snprintf(err, errsz,
                         "--data %s is in use by another valise-relay (pid %ld): stop it first, "
                         "or give this one its own --data",
                         dir, pid);
            else
                snprintf(err, errsz,
                         "--data %s is in use by another valise-relay: stop it first, or give "
                         "this one its own --data",
                         dir);
            return VERR_EXISTS;
        }
        snprintf(err, errsz, "--data %s: cannot lock %s: %s", dir, DATADIR_LOCK_FILE,
                 strerror(e));
        return VERR_IO;
    }
    n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    /* The pid is advice for the message above; the flock is the lock. */
    if (n <= 0 || ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        snprintf(err, errsz, "--data %s: cannot write %s", dir, DATADIR_LOCK_FILE);
        close(fd);
        return VERR_IO;
    }
    d->lock_fd = fd;
    return 0;
}

int datadir_claim(struct datadir *d, const char *dir, const char *want, char *err, size_t errsz)
{
    char stored[WIRE_RELAY_ID_MAX + 1];
    int r;

    memset(d, 0, sizeof(*d));
    d->lock_fd = -1;
    if ((r = file_mkdir_private(dir)) != 0) {
        snprintf(err, errsz, "--data %s: cannot create the directory: %s", dir, verr_str(r));
        return r;
    }
    if ((r = take_lock(d, dir, err, errsz)) != 0)
        return r;
    if (want != NULL && !id_valid(want, strlen(want))) {
        snprintf(err, errsz, "--relay-id \"%s\": 1 to %d printable characters, no spaces", want,
                 WIRE_RELAY_ID_MAX);
        r = VERR_USAGE;
        goto out;
    }
    r = datadir_stored_id(dir, stored, sizeof(stored));
    if (r == 0) {
        if (want != NULL && strcmp(want, stored) != 0) {
            snprintf(err, errsz,
                     "--data %s belongs to relay \"%s\" (recorded at its first start), not "
                     "\"%s\": start it with --relay-id %s",
                     dir, stored, want, stored);
            r = VERR_DENIED;
            goto out;
        }
        memcpy(d->relay_id, stored, sizeof(stored));
        d->recorded = 1;
        return 0;
    }
    if (r != VERR_UNKNOWN) {
        snprintf(err, errsz, "--data %s: %s: %s", dir, DATADIR_ID_FILE, verr_str(r));
        goto out;
    }
    /* First start: the id the audit log will be signed under, recorded once it runs. */
    snprintf(d->relay_id, sizeof(d->relay_id), "%s", want != NULL ? want : DATADIR_DEFAULT_ID);
    return 0;
out:
    datadir_release(d);
    return r;
}

int datadir_record(struct datadir *d, const char *dir, char *err, size_t errsz)
{
    char path[4096], line[WIRE_RELAY_ID_MAX + 2];
    int n, r;

    if (d->recorded)
        return 0;
    n = snprintf(line, sizeof(line), "%s\n", d->relay_id);
    if ((r = file_join(path, sizeof(path), dir, DATADIR_ID_FILE)) != 0 || n <= 0 ||
        (r = file_write_new(path, (const uint8_t *)line, (size_t)n, 0600)) != 0) {
        snprintf(err, errsz, "--data %s: cannot write %s: %s", dir, DATADIR_ID_FILE, verr_str(r));
        return r != 0 ? r : VERR_INTERNAL;
    }
    d->recorded = 1;
    return 0;
}

void datadir_release(struct datadir *d)
{
    if (d != NULL && d->lock_fd >= 0) {
        close(d->lock_fd);
        d->lock_fd = -1;
    }
}
