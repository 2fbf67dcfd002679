/*
 * test_memory.c - the relay's memory stays bounded while its writer is
 * always behind (issue 16): a sender keeps a window of SUBMITs in flight
 * against a relay whose every sync takes 50 ms (tests/fault/faultinject.c,
 * VALISE_SLOW_SYNC_MS), so the event loop always has ops waiting for the
 * writer. The relay's anonymous memory must not grow with the total
 * submitted (160 MB here), only with what is in flight (8 MB).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "relaytest.h"

enum {
    CT_LEN = 1000,
    PER_SUBMIT = 256,
    IN_FLIGHT = 8192,   /* submitted, not acknowledged: over two transactions (2,048) */
    TOTAL = 160 * 1024, /* about 160 MB of SUBMITs */
    GROWTH_MAX_KIB = 96 * 1024,
};

struct fixture {
    struct tpki pki;
    struct tdev a, r;
    struct trelay relay;
    struct buf msg;
};

static const char *const flags[] = {
    "--queue-max-count", "1000000", "--queue-max-bytes",
    "1073741824",        "--rate",  "1000000",
    "--log-level",       "info",    NULL,
};

static int setup(void **state)
{
    static struct fixture f;
    const struct tdev *devs[2];
    uint64_t now = tnow();

    memset(&f, 0, sizeof(f));
    assert_int_equal(tpki_init(&f.pki), 0);
    assert_int_equal(tdev_make(&f.pki, &f.a, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.r, 2, now - 60, now + 86400), 0);
    devs[0] = &f.a;
    devs[1] = &f.r;
    assert_int_equal(tpki_write_dir(&f.pki, 1, devs, 2, NULL, 0), 0);
    /* the relay alone gets the slow disk; a small ASan quarantine keeps freed blocks from
     * counting as growth */
    assert_int_equal(trelay_start_slow_sync(&f.relay, &f.pki, flags, VALISE_FAULTINJECT, 50,
                                            "quarantine_size_mb=8"),
                     0);
    assert_int_equal(buf_init(&f.msg, 8 << 20, 0), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    trelay_signal(&f->relay, SIGKILL);
    buf_free(&f->msg);
    tpki_cleanup(&f->pki);
    return 0;
}

/* The relay's RssAnon from /proc (KiB). */
static unsigned long rss_anon_kib(pid_t pid)
{
    char path[64], line[256];
    unsigned long v = 0;
    FILE *fp;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((fp = fopen(path, "r")) == NULL)
        fail_msg("cannot read %s", path);
    while (fgets(line, sizeof(line), fp) != NULL)
        if (sscanf(line, "RssAnon: %lu kB", &v) == 1)
            break;
    fclose(fp);
    if (v == 0)
        fail_msg("no RssAnon line in %s", path);
    return v;
}

static void test_writer_behind_memory_bounded(void **state)
{
    struct fixture *f = *state;
    static uint8_t ct[CT_LEN];
    static struct wire_envelope e[PER_SUBMIT];
    static uint8_t ids[PER_SUBMIT][WIRE_ID_LEN];
    struct wsc c;
    struct wire_msg m;
    struct wire_iter it;
    struct wire_ack a;
    uint16_t reason;
    size_t sent = 0, acked = 0;
    unsigned long before, after;

    memset(ct, 'm', sizeof(ct));
    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    before = rss_anon_kib(f->relay.pid);
    while (acked < TOTAL) {
        while (sent < TOTAL && sent - acked + PER_SUBMIT <= IN_FLIGHT) {
            for (size_t i = 0; i < PER_SUBMIT; i++) {
                randombytes_buf(ids[i], WIRE_ID_LEN);
                tc_envelope(&e[i], ids[i], &f->r, WIRE_ROUTINE, tnow() + 3600, ct, CT_LEN);
            }
            assert_int_equal(tc_submit(&c, e, PER_SUBMIT), 0);
            sent += PER_SUBMIT;
        }
        if (tc_expect(&c, &f->msg, &m, WIRE_SUBMIT_ACK, 6 * TWAIT) != 0)
            fail_msg("no SUBMIT_ACK after %zu acknowledged of %zu sent", acked, sent);
        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            assert_int_equal(wire_next_ack(&it, &a), 0);
            if (a.reason != WIRE_R_OK)
                fail_msg("envelope %zu: expected ok, saw %s", acked + i,
                         wire_reason_name(a.reason));
        }
        acked += m.u.batch.n;
    }
    after = rss_anon_kib(f->relay.pid);
    printf("# relay RssAnon %lu KiB before, %lu KiB after %d envelopes\n", before, after, TOTAL);
    if (after > before + GROWTH_MAX_KIB)
        fail_msg("the relay's anonymous memory grew by %lu KiB for %d envelopes of %d bytes "
                 "with at most %d in flight: expected under %d KiB",
                 after - before, TOTAL, CT_LEN, IN_FLIGHT, GROWTH_MAX_KIB);
    wsc_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_behind_memory_bounded),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, setup, teardown);
}
