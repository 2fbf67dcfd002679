/* log.c - the relay's log (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int rlog_level = RLOG_INFO;

void rlog_set_level(int level)
{
    rlog_level = level;
}

int rlog_enabled(int level)
{
    return level <= rlog_level;
}

int rlog_parse_level(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};

    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void rlog(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char line[512], ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;

    if (!rlog_enabled(level) || level < 0 || level > RLOG_DEBUG)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ valise-relay %s: %s\n", ts, now.tv_nsec / 1000000L, names[level],
            line);
}

const char *rlog_hex(char out[static 9], const uint8_t *id)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < 4; i++) {
        out[2 * i] = hex[id[i] >> 4];
        out[2 * i + 1] = hex[id[i] & 15];
    }
    out[8] = '\0';
    return out;
}
