/*
 * fakeclock.c - an LD_PRELOAD library that moves the wall clock, so tests can
 * put a device days ahead (a directory near or past its expires_at) without
 * any clock override in a product binary (PROTOCOL.md part 4, "Directory
 * freshness"; tests/client/client_freshness.sh).
 *
 * Environment:
 *   VALISE_FAKE_TIME_OFFSET=S  seconds (a whole number, may be negative) added
 *                              to time(), gettimeofday() and
 *                              clock_gettime(CLOCK_REALTIME[_COARSE]).
 * Monotonic clocks are left alone (timeouts and backoff keep working). An
 * unset, empty or malformed value means no offset. Test code only; never
 * linked into a product binary.
 *
 * The real clock_gettime is the next one in symbol order (dlsym RTLD_NEXT):
 * glibc's in the release build, the sanitizer's interceptor in the ASan build
 * (run with ASAN_OPTIONS=verify_asan_link_order=0, since this library is
 * preloaded ahead of libasan, as tests/fault/faultinject.c is).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include <dlfcn.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static long long offset;
static int ready;

static void fakeclock_init(void)
{
    const char *s;
    char *end = NULL;
    long long v;

    if (ready)
        return;
    real_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    s = getenv("VALISE_FAKE_TIME_OFFSET");
    if (s != NULL && *s != '\0') {
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno == 0 && end != NULL && *end == '\0')
            offset = v;
    }
    ready = 1;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    int r;

    fakeclock_init();
    if (real_clock_gettime == NULL) {
        errno = ENOSYS;
        return -1;
    }
    r = real_clock_gettime(id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        ts->tv_sec += (time_t)offset;
    return r;
}

time_t time(time_t *out)
{
    struct timespec ts;
    time_t t;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (time_t)-1;
    t = ts.tv_sec;
    if (out != NULL)
        *out = t;
    return t;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    struct timespec ts;

    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return -1;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = (suseconds_t)(ts.tv_nsec / 1000);
    return 0;
}
