/* pass.c - passphrase input (see pass.h). */
#include "pass.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "fileio.h"

static int pass_from_file(const char *file, char *out)
{
    struct buf b;
    const uint8_t *p;
    size_t n, i;
    int r;

    if ((r = file_read(file, PASS_MAX + 2, BUF_SECRET, &b)) != 0)
        return r == VERR_TOO_LARGE ? VERR_PASSPHRASE : r;
    p = buf_data(&b);
    n = buf_size(&b);
    /* One line: the passphrase is everything before the first newline. */
    for (i = 0; i < n && p[i] != '\n'; i++)
        ;
    if (i > 0 && p[i - 1] == '\r')
        i--;
    if (i > PASS_MAX || memchr(p, 0, i) != NULL) {
        buf_free(&b);
        return VERR_PASSPHRASE;
    }
    memcpy(out, p, i);
    out[i] = '\0';
    buf_free(&b);
    return 0;
}

static int pass_from_tty(const char *prompt, char *out)
{
    struct termios old, quiet;
    size_t n = 0;
    char c;
    ssize_t got;
    int fd, r = VERR_PASSPHRASE;

    if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC)) < 0)
        return VERR_PASSPHRASE;
    if (tcgetattr(fd, &old) != 0)
        goto out_close;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &quiet) != 0)
        goto out_close;
    for (;;) {
        got = read(fd, &c, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0 || c == '\n')
            break;
        if (n >= PASS_MAX)
            goto out_restore;
        out[n++] = c;
    }
    out[n] = '\0';
    r = 0;
out_restore:
    (void)tcsetattr(fd, TCSAFLUSH, &old);
    (void)!write(fd, "\n", 1);
out_close:
    c = 0;
    close(fd);
    return r;
}

int pass_read(const char *file, const char *prompt, int confirm, char **out)
{
    char *p = NULL, *again = NULL;
    int r = VERR_INTERNAL;

    *out = NULL;
    if ((p = sodium_malloc(PASS_MAX + 1)) == NULL)
        return VERR_NOMEM;
    if (file != NULL)
        r = pass_from_file(file, p);
    else
        r = pass_from_tty(prompt, p);
    if (r != 0)
        goto out;
    if (p[0] == '\0' || (confirm && strlen(p) < PASS_MIN_NEW)) {
        r = VERR_PASSPHRASE;
        goto out;
    }
    if (confirm && file == NULL) {
        if ((again = sodium_malloc(PASS_MAX + 1)) == NULL) {
            r = VERR_NOMEM;
            goto out;
        }
        if ((r = pass_from_tty("Repeat passphrase: ", again)) != 0)
            goto out;
        if (strlen(again) != strlen(p) || sodium_memcmp(again, p, strlen(p)) != 0) {
            r = VERR_PASSPHRASE;
            goto out;
        }
    }
    *out = p;
    p = NULL; /* owned by the caller now */
    r = 0;
out:
    pass_free(p);
    pass_free(again);
    return r;
}

void pass_free(char *p)
{
    if (p != NULL)
        sodium_free(p); /* sodium_free wipes before release */
}
