/* pass.c - passphrase input (see pass.h). */
#include "pass.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "fileio.h"

static int pass_from_file(const char *file, char *out, const char **why)
{
    struct buf b;
    const uint8_t *p;
    size_t n, i;
    int r;

    if ((r = file_read(file, PASS_MAX + 2, BUF_SECRET, &b)) != 0) {
        *why = r == VERR_TOO_LARGE ? "longer than 1024 bytes"
               : r == VERR_UNKNOWN ? "no such file"
                                   : "cannot be read";
        return r == VERR_TOO_LARGE ? VERR_PASSPHRASE : r;
    }
    p = buf_data(&b);
    n = buf_size(&b);
    /* One line: the passphrase is everything before the first newline. */
    for (i = 0; i < n && p[i] != '\n'; i++)
        ;
    if (i > 0 && p[i - 1] == '\r')
        i--;
    if (i > PASS_MAX || memchr(p, 0, i) != NULL) {
        buf_free(&b);
        *why = i > PASS_MAX ? "its first line is longer than 1024 bytes"
                            : "its first line holds a NUL byte";
        return VERR_PASSPHRASE;
    }
    memcpy(out, p, i);
    out[i] = '\0';
    buf_free(&b);
    return 0;
}

/* The terminal's settings while echo is off, for the signal handler. */
static struct termios pass_saved;
static volatile sig_atomic_t pass_saved_fd = -1;
static const int pass_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
enum { PASS_NSIG = sizeof(pass_signals) / sizeof(pass_signals[0]) };

/* Ctrl-C at the prompt: echo back on (tcsetattr is async-signal-safe), then die of the signal. */
static void pass_on_signal(int sig)
{
    if (pass_saved_fd >= 0)
        (void)tcsetattr(pass_saved_fd, TCSAFLUSH, &pass_saved);
    (void)!write(pass_saved_fd >= 0 ? pass_saved_fd : 2, "\n", 1);
    (void)signal(sig, SIG_DFL);
    (void)raise(sig);
}

static int pass_from_tty(const char *prompt, char *out, const char **why)
{
    struct termios old, quiet;
    struct sigaction sa, prev[PASS_NSIG];
    size_t n = 0;
    char c;
    ssize_t got;
    int fd, r = VERR_PASSPHRASE, caught = 0;

    *why = "no terminal to ask it on: give --passphrase-file FILE";
    if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC)) < 0)
        return VERR_PASSPHRASE;
    if (tcgetattr(fd, &old) != 0)
        goto out_close;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    pass_saved = old;
    pass_saved_fd = fd;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = pass_on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t k = 0; k < PASS_NSIG; k++)
        (void)sigaction(pass_signals[k], &sa, &prev[k]);
    caught = 1;
    if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &quiet) != 0)
        goto out_restore;
    *why = "longer than 1024 bytes";
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
    if (caught) {
        for (size_t k = 0; k < PASS_NSIG; k++)
            (void)sigaction(pass_signals[k], &prev[k], NULL);
        pass_saved_fd = -1;
    }
out_close:
    c = 0;
    close(fd);
    return r;
}

int pass_read(const char *file, const char *prompt, int confirm, char **out)
{
    const char *why;

    return pass_read_why(file, prompt, confirm, out, &why);
}

int pass_read_why(const char *file, const char *prompt, int confirm, char **out, const char **why)
{
    char *p = NULL, *again = NULL;
    int r = VERR_INTERNAL;

    *out = NULL;
    *why = "out of memory";
    if ((p = sodium_malloc(PASS_MAX + 1)) == NULL)
        return VERR_NOMEM;
    if (file != NULL)
        r = pass_from_file(file, p, why);
    else
        r = pass_from_tty(prompt, p, why);
    if (r != 0)
        goto out;
    if (p[0] == '\0' || (confirm && strlen(p) < PASS_MIN_NEW)) {
        *why = p[0] == '\0' ? "empty" : "shorter than 8 characters";
        r = VERR_PASSPHRASE;
        goto out;
    }
    if (confirm && file == NULL) {
        if ((again = sodium_malloc(PASS_MAX + 1)) == NULL) {
            r = VERR_NOMEM;
            goto out;
        }
        if ((r = pass_from_tty("Repeat passphrase: ", again, why)) != 0)
            goto out;
        if (strlen(again) != strlen(p) || sodium_memcmp(again, p, strlen(p)) != 0) {
            *why = "the two entries differ; nothing was created, run the command again";
            r = VERR_PASSPHRASE;
            goto out;
        }
    }
    *out = p;
    p = NULL; /* owned by the caller now */
    *why = NULL;
    r = 0;
out:
    pass_free(p);
    pass_free(again);
    return r;
}

int pass_file_exposed(const char *file, unsigned *mode)
{
    struct stat st;

    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    *mode = (unsigned)(st.st_mode & 07777);
    return (st.st_mode & 077) != 0;
}

void pass_free(char *p)
{
    if (p != NULL)
        sodium_free(p); /* sodium_free wipes before release */
}
