/*
 * storebench.c - the relay's store alone under the relay's write pattern:
 * what one envelope costs in bytes written and CPU, independent of the
 * machine's load (issue 16; BENCHMARKS.md "Bytes and CPU per envelope").
 *
 * Each transaction stores `batch` envelopes (1 KiB ciphertext, time-ordered
 * ids as client/mailbox.c makes them, round robin over `pairs` recipients)
 * and acknowledges the ones stored `lag` transactions earlier, as the relay
 * does when recipients acknowledge DELIVERs after the commit. Every commit is
 * durable (LMDB's default syncs). Prints bytes handed to write system calls
 * (/proc/self/io wchar: LMDB's page and meta writes), CPU time and commits,
 * each per envelope, over the envelopes stored and acknowledged after the
 * warm-up. Not a test: nothing passes or fails on these figures.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <sodium.h>

#include "store.h"

enum { CT_LEN = 1024, MAX_PAIRS = 1000 };

struct opts {
    const char *dir;
    unsigned long pairs, batch, txns, warm, lag;
};

static int read_wchar(uint64_t *out)
{
    char line[128];
    FILE *f = fopen("/proc/self/io", "r");
    int r = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "wchar: ", 7) == 0) {
            char *end;

            errno = 0;
            *out = strtoull(line + 7, &end, 10);
            if (errno == 0 && end != line + 7)
                r = 0;
            break;
        }
    }
    fclose(f);
    return r;
}

static double cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double wall_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Envelope n's recipient and id: 48-bit time then a per-run counter. */
static void envelope_id(unsigned long n, uint64_t ms, uint8_t id[static WIRE_ID_LEN])
{
    for (int i = 0; i < 6; i++)
        id[i] = (uint8_t)(ms >> (40 - 8 * i));
    memset(id + 6, 0, WIRE_ID_LEN - 6);
    for (int i = 0; i < 8; i++)
        id[8 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
}

/* Device i's id, random-looking as real ones are (the relay hashes their first bytes). */
static void device(unsigned long i, int sender, uint8_t dev[static DEVICE_ID_LEN])
{
    uint8_t in[9];

    in[0] = sender ? 0x11 : 0x22;
    for (int b = 0; b < 8; b++)
        in[1 + b] = (uint8_t)((uint64_t)i >> (56 - 8 * b));
    crypto_generichash(dev, DEVICE_ID_LEN, in, sizeof(in), NULL, 0);
}

static int parse_ul(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int run(const struct opts *o)
{
    static uint8_t ct[CT_LEN], rcpts[MAX_PAIRS][DEVICE_ID_LEN], senders[MAX_PAIRS][DEVICE_ID_LEN];
    struct store *s = NULL;
    struct store_limits lim = {.queue_max_count = 1000000, .queue_max_bytes = 1ULL << 34};
    uint64_t *ms_of = NULL, w0 = 0, w1 = 0, now = (uint64_t)time(NULL);
    double c0 = 0, c1, t0 = 0, t1;
    unsigned long stored = 0, acked = 0, commits = 0, counted_env = 0;
    int r = VERR_INTERNAL;

    randombytes_buf(ct, sizeof(ct));
    for (unsigned long p = 0; p < o->pairs; p++) { /* made once: only the store is measured */
        device(p, 0, rcpts[p]);
        device(p, 1, senders[p]);
    }
    ms_of = calloc(o->txns, sizeof(*ms_of));
    if (ms_of == NULL)
        goto out;
    if ((r = store_open(&s, o->dir, 8ULL << 30)) != 0)
        goto out;
    for (unsigned long t = 0; t < o->txns + o->lag; t++) {
        if (t == o->warm) {
            if (read_wchar(&w0) != 0) {
                r = VERR_IO;
                goto out;
            }
            c0 = cpu_seconds();
            t0 = wall_seconds();
            counted_env = 0;
            commits = 0;
        }
        if ((r = store_begin(s)) != 0)
            goto out;
        if (t < o->txns) {
            ms_of[t] = now * 1000 + t;
            for (unsigned long i = 0; i < o->batch; i++) {
                unsigned long n = t * o->batch + i, p = n % o->pairs;
                struct wire_envelope e;
                uint16_t reason;
                int dup;

                memset(&e, 0, sizeof(e));
                envelope_id(n, ms_of[t], e.id);
                memcpy(e.peer, rcpts[p], DEVICE_ID_LEN);
                e.precedence = WIRE_ROUTINE;
                e.expiry = now + 86400;
                e.ct = ct;
                e.ct_len = CT_LEN;
                if ((r = store_envelope_put(s, senders[p], 7, &e, e.expiry, now, &lim, &reason,
                                            &dup)) != 0)
                    goto out;
                if (reason != WIRE_R_OK || dup) {
                    r = VERR_INTERNAL;
                    goto out;
                }
                stored++;
            }
        }
        if (t >= o->lag) {
            unsigned long a = t - o->lag;

            for (unsigned long i = 0; i < o->batch; i++) {
                unsigned long n = a * o->batch + i, p = n % o->pairs;
                uint8_t id[WIRE_ID_LEN];

                envelope_id(n, ms_of[a], id);
                if ((r = store_envelope_ack(s, rcpts[p], 9, id, now)) != 0)
                    goto out;
                acked++;
            }
        }
        if ((r = store_commit(s)) != 0)
            goto out;
        commits++;
        if (t >= o->warm && t < o->txns)
            counted_env += o->batch;
    }
    if (read_wchar(&w1) != 0) {
        r = VERR_IO;
        goto out;
    }
    c1 = cpu_seconds();
    t1 = wall_seconds();
    if (counted_env == 0) {
        r = VERR_INTERNAL;
        goto out;
    }
    printf("storebench: pairs %lu, batch %lu, transactions %lu (+%lu to drain, first %lu not "
           "counted), ack lag %lu\n",
           o->pairs, o->batch, o->txns, o->lag, o->warm, o->lag);
    printf("RESULT store bytes_written_per_env %.1f B\n", (double)(w1 - w0) / (double)counted_env);
    printf("RESULT store cpu_us_per_env %.2f us\n", (c1 - c0) * 1e6 / (double)counted_env);
    printf("RESULT store commits_per_env %.5f count\n", (double)commits / (double)counted_env);
    printf("RESULT store wall_us_per_env %.2f us\n", (t1 - t0) * 1e6 / (double)counted_env);
    printf("RESULT store audit_records %" PRIu64 " count\n", store_audit_size(s));
    printf("(stored %lu, acknowledged %lu)\n", stored, acked);
    r = 0;
out:
    store_close(s);
    free(ms_of);
    return r;
}

int main(int argc, char **argv)
{
    struct opts o = {.pairs = 100, .batch = 1024, .txns = 200, .warm = 20, .lag = 1};
    int r;

    for (int i = 1; i < argc; i++) {
        unsigned long *dst = NULL, lo = 1, hi = 1000000;

        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            o.dir = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--pairs") == 0)
            dst = &o.pairs, hi = MAX_PAIRS;
        else if (strcmp(argv[i], "--batch") == 0)
            dst = &o.batch;
        else if (strcmp(argv[i], "--txns") == 0)
            dst = &o.txns;
        else if (strcmp(argv[i], "--warm") == 0)
            dst = &o.warm, lo = 0;
        else if (strcmp(argv[i], "--lag") == 0)
            dst = &o.lag, hi = 64;
        if (dst == NULL || i + 1 >= argc) {
            fprintf(stderr,
                    "valise-storebench: unknown argument '%s' or no value after it; usage: "
                    "valise-storebench --dir EMPTY_DIR [--pairs N] [--batch N] [--txns N] "
                    "[--warm N] [--lag N]\n",
                    argv[i]);
            return 2;
        }
        if (parse_ul(argv[i + 1], lo, hi, dst) != 0) {
            fprintf(stderr, "valise-storebench: %s: '%s' is not a whole number in %lu..%lu\n",
                    argv[i], argv[i + 1], lo, hi);
            return 2;
        }
        i++;
    }
    if (o.dir == NULL || o.warm >= o.txns) {
        fprintf(stderr, "valise-storebench: --dir is required and --warm must be below --txns\n");
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "valise-storebench: libsodium did not initialise\n");
        return 1;
    }
    if ((r = run(&o)) != 0) {
        fprintf(stderr, "valise-storebench: %s\n", verr_str(r));
        return 1;
    }
    return 0;
}
