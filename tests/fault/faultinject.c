/*
 * faultinject.c - an LD_PRELOAD library that makes the N-th call of a class
 * fail, for SQLite-style fault-injection loops (THREAT_MODEL.md, tests/fault).
 *
 * Environment:
 *   VALISE_FAIL_ALLOC=N  the N-th malloc/calloc/realloc/posix_memalign
 *                        returns NULL with ENOMEM (and every later one works)
 *   VALISE_FAIL_WRITE=N  the N-th write/pwrite/writev/pwritev fails (ENOSPC)
 *   VALISE_FAIL_SYNC=N   the N-th fsync/fdatasync/msync fails (EIO)
 *   VALISE_CRASH_STEP=N  the N-th step (fsync, fdatasync, msync, rename,
 *                        renameat, unlink, unlinkat) kills the process with
 *                        SIGKILL before it runs: a crash between any two
 *                        durable steps (no destructor runs: no report either)
 *   VALISE_FAULT_REPORT=FILE  at exit, append "alloc=A write=W sync=S" (the
 *                        counts seen), so a loop knows when N passed the end.
 *   VALISE_SLOW_SYNC_MS=M  every fsync/fdatasync/msync first sleeps M ms (a
 *                        slow disk: the relay's writer is always behind, so
 *                        its event loop always has ops waiting; tests/relay)
 *   VALISE_FAIL_AFTER_MS=M  count nothing until M ms after the first call, so
 *                        a server's start-up is left alone and only the work
 *                        a test drives afterwards is failed (tests/adversarial).
 * Counting starts just before main (or M ms later). Test code only; never
 * linked into a product binary.
 *
 * The real allocator is the next one in symbol order (dlsym RTLD_NEXT): glibc's
 * in the release build, the sanitizer's in the ASan build (run with
 * ASAN_OPTIONS=verify_asan_link_order=0, since this library is preloaded ahead
 * of libasan), so LeakSanitizer sees every allocation and reports what a
 * failure path leaked. While dlsym itself runs, allocations come from a small
 * static arena that is never handed to the real free.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <dlfcn.h>
#include <stdint.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int resolving;
static _Alignas(16) unsigned char arena[16384];
static size_t arena_used;

static void *arena_alloc(size_t n)
{
    void *p;

    n = (n + 15) & ~(size_t)15;
    if (n > sizeof(arena) - arena_used)
        return NULL;
    p = arena + arena_used;
    arena_used += n;
    return p; /* static storage: already zero, as calloc wants */
}

static int in_arena(const void *p)
{
    return (uintptr_t)p >= (uintptr_t)arena && (uintptr_t)p < (uintptr_t)(arena + sizeof(arena));
}

static void resolve(void)
{
    if (real_free != NULL || resolving)
        return;
    resolving = 1;
    *(void **)&real_malloc = dlsym(RTLD_NEXT, "malloc");
    *(void **)&real_calloc = dlsym(RTLD_NEXT, "calloc");
    *(void **)&real_realloc = dlsym(RTLD_NEXT, "realloc");
    *(void **)&real_free = dlsym(RTLD_NEXT, "free");
    resolving = 0;
}

static unsigned long fail_alloc, fail_write, fail_sync, crash_step, n_step;
static unsigned long n_alloc, n_write, n_sync;
static int configured;
static unsigned long after_ms, slow_sync_ms;
static struct timespec started;

static unsigned long env_num(const char *name)
{
    const char *s = getenv(name);
    unsigned long v = 0;

    if (s == NULL)
        return 0;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (unsigned long)(*s - '0');
    return v;
}

static void configure(void)
{
    if (configured)
        return;
    configured = 1; /* set first: getenv does not allocate, but be safe */
    fail_alloc = env_num("VALISE_FAIL_ALLOC");
    fail_write = env_num("VALISE_FAIL_WRITE");
    fail_sync = env_num("VALISE_FAIL_SYNC");
    crash_step = env_num("VALISE_CRASH_STEP");
    after_ms = env_num("VALISE_FAIL_AFTER_MS");
    slow_sync_ms = env_num("VALISE_SLOW_SYNC_MS");
    if (after_ms != 0)
        (void)clock_gettime(CLOCK_MONOTONIC, &started); /* vDSO: no allocation */
}

/*
 * Runs after the libraries' initialisers, just before main. Under ASan the
 * first allocations come from the sanitizer's start-up, before libc has set
 * up the environment (getenv sees nothing then), so the configuration is read
 * again here and counting starts here: N is the N-th allocation of the
 * program's own run, the same in both builds.
 */
__attribute__((constructor)) static void fault_start(void)
{
    configured = 0;
    configure();
    n_alloc = n_write = n_sync = 0;
}

/* 1 while VALISE_FAIL_AFTER_MS has not yet passed. */
static int still_starting(void)
{
    struct timespec now;
    long long ms;

    if (after_ms == 0)
        return 0;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return 0;
    ms =
        (long long)(now.tv_sec - started.tv_sec) * 1000 + (now.tv_nsec - started.tv_nsec) / 1000000;
    if (ms < (long long)after_ms)
        return 1;
    after_ms = 0; /* armed for good */
    return 0;
}

static int should_fail(unsigned long *count, unsigned long target)
{
    configure();
    if (still_starting())
        return 0;
    ++*count;
    return target != 0 && *count == target;
}

void *malloc(size_t n)
{
    resolve();
    if (real_malloc == NULL)
        return arena_alloc(n);
    if (should_fail(&n_alloc, fail_alloc)) {
        errno = ENOMEM;
        return NULL;
    }
    return real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    resolve();
    if (real_calloc == NULL)
        return b != 0 && a > SIZE_MAX / b ? NULL : arena_alloc(a * b);
    if (should_fail(&n_alloc, fail_alloc)) {
        errno = ENOMEM;
        return NULL;
    }
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    resolve();
    if (in_arena(p) || real_realloc == NULL) {
        void *q = malloc(n); /* an arena block moves to the real heap; never shrinks */
        if (q != NULL && p != NULL)
            memcpy(q, p,
                   n < (size_t)(arena + sizeof(arena) - (unsigned char *)p)
                       ? n
                       : (size_t)(arena + sizeof(arena) - (unsigned char *)p));
        return q;
    }
    if (n != 0 && should_fail(&n_alloc, fail_alloc)) {
        errno = ENOMEM;
        return NULL;
    }
    return real_realloc(p, n);
}

void free(void *p)
{
    if (p == NULL || in_arena(p))
        return;
    resolve();
    if (real_free != NULL)
        real_free(p);
}

#define WRAP_IO(ret, name, counter, target, crash, err, params, args)                              \
    ret name params                                                                                \
    {                                                                                              \
        static ret(*real) params;                                                                  \
        if (real == NULL)                                                                          \
            *(void **)&real = dlsym_next(#name);                                                   \
        if (&counter == &n_sync)                                                                   \
            slow_sync();                                                                           \
        if (should_fail(&counter, target)) {                                                       \
            errno = err;                                                                           \
            return (ret)-1;                                                                        \
        }                                                                                          \
        if (crash)                                                                                 \
            crash_point();                                                                         \
        return real args;                                                                          \
    }

/* VALISE_SLOW_SYNC_MS: a disk whose every sync takes that long. */
static void slow_sync(void)
{
    struct timespec d;

    if (slow_sync_ms == 0)
        return;
    d.tv_sec = (time_t)(slow_sync_ms / 1000);
    d.tv_nsec = (long)(slow_sync_ms % 1000) * 1000000L;
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
}

static void *dlsym_next(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* VALISE_CRASH_STEP: the N-th durable step is never reached. */
static void crash_point(void)
{
    configure();
    if (crash_step != 0 && ++n_step == crash_step)
        (void)kill(getpid(), SIGKILL);
}

int rename(const char *a, const char *b)
{
    static int (*real)(const char *, const char *);
    if (real == NULL)
        *(void **)&real = dlsym_next("rename");
    crash_point();
    return real(a, b);
}

int renameat(int fa, const char *a, int fb, const char *b)
{
    static int (*real)(int, const char *, int, const char *);
    if (real == NULL)
        *(void **)&real = dlsym_next("renameat");
    crash_point();
    return real(fa, a, fb, b);
}

int unlink(const char *a)
{
    static int (*real)(const char *);
    if (real == NULL)
        *(void **)&real = dlsym_next("unlink");
    crash_point();
    return real(a);
}

int unlinkat(int fd, const char *a, int f)
{
    static int (*real)(int, const char *, int);
    if (real == NULL)
        *(void **)&real = dlsym_next("unlinkat");
    crash_point();
    return real(fd, a, f);
}

WRAP_IO(ssize_t, write, n_write, fail_write, 0, ENOSPC, (int fd, const void *b, size_t n), (fd, b, n))
WRAP_IO(ssize_t, pwrite, n_write, fail_write, 0, ENOSPC, (int fd, const void *b, size_t n, off_t o),
        (fd, b, n, o))
WRAP_IO(ssize_t, pwrite64, n_write, fail_write, 0, ENOSPC, (int fd, const void *b, size_t n, off_t o),
        (fd, b, n, o))
WRAP_IO(ssize_t, writev, n_write, fail_write, 0, ENOSPC, (int fd, const struct iovec *v, int c),
        (fd, v, c))
WRAP_IO(ssize_t, pwritev, n_write, fail_write, 0, ENOSPC,
        (int fd, const struct iovec *v, int c, off_t o), (fd, v, c, o))
WRAP_IO(int, fsync, n_sync, fail_sync, 1, EIO, (int fd), (fd))
WRAP_IO(int, fdatasync, n_sync, fail_sync, 1, EIO, (int fd), (fd))
WRAP_IO(int, msync, n_sync, fail_sync, 1, EIO, (void *a, size_t l, int f), (a, l, f))

__attribute__((destructor)) static void fault_report(void)
{
    const char *path = getenv("VALISE_FAULT_REPORT");
    char line[128];
    int fd, n;

    if (path == NULL)
        return;
    n = snprintf(line, sizeof(line), "alloc=%lu write=%lu sync=%lu\n", n_alloc, n_write, n_sync);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0 && n > 0) {
        fail_write = 0; /* never fail our own report */
        (void)!write(fd, line, (size_t)n);
        close(fd);
    }
}
