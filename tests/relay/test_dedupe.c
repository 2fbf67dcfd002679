/*
 * test_dedupe.c - the dedupe window (PROTOCOL.md, part 2 "Duplicates"): a
 * delivered id is recognised as a resubmission for --dedupe-window seconds,
 * then forgotten; an id still queued is never forgotten, however old.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "relaytest.h"

enum { WINDOW_S = 2 };

struct fixture {
    struct tpki pki;
    struct tdev a, c;
    struct trelay relay;
    struct buf msg;
};

static int setup(void **state)
{
    static struct fixture f;
    static const char *const extra[] = {"--dedupe-window", "2", NULL};
    const struct tdev *devs[2];
    uint64_t now = tnow();

    memset(&f, 0, sizeof(f));
    assert_int_equal(tpki_init(&f.pki), 0);
    assert_int_equal(tdev_make(&f.pki, &f.a, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.c, 3, now - 60, now + 86400), 0);
    devs[0] = &f.a;
    devs[1] = &f.c;
    assert_int_equal(tpki_write_dir(&f.pki, 1, devs, 2, NULL, 0), 0);
    assert_int_equal(trelay_start(&f.relay, &f.pki, extra), 0);
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

/* Envelopes DELIVERed until quiet_ms of silence, each acknowledged; how many carried id. */
static size_t collect_id(struct fixture *f, struct wsc *c, const uint8_t id[WIRE_ID_LEN],
                         size_t *total)
{
    struct wire_msg m;
    size_t hits = 0;

    *total = 0;
    while (tc_recv(c, &f->msg, &m, 500) == 0) {
        struct wire_iter it;
        struct wire_envelope e;
        uint8_t ids[64 * WIRE_ID_LEN];
        size_t k = 0;

        if (m.type != WIRE_DELIVER)
            continue;
        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            assert_int_equal(wire_next_envelope(&it, &e), 0);
            assert_true(k < 64);
            memcpy(ids + k * WIRE_ID_LEN, e.id, WIRE_ID_LEN);
            hits += memcmp(e.id, id, WIRE_ID_LEN) == 0;
            k++;
        }
        *total += k;
        if (k > 0)
            assert_int_equal(tc_deliver_ack(c, ids, k), 0);
    }
    return hits;
}

static void submit_ok(struct fixture *f, struct wsc *c, const uint8_t id[WIRE_ID_LEN])
{
    struct wire_envelope e;
    struct wire_msg m;
    struct wire_iter it;
    struct wire_ack a;

    tc_envelope(&e, id, &f->c, WIRE_ROUTINE, tnow() + 3600, (const uint8_t *)"dedupe", 6);
    assert_int_equal(tc_submit(c, &e, 1), 0);
    assert_int_equal(tc_expect(c, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    assert_int_equal(m.u.batch.n, 1);
    wire_iter_init(&it, &m);
    assert_int_equal(wire_next_ack(&it, &a), 0);
    assert_memory_equal(a.id, id, WIRE_ID_LEN);
    if (a.reason != WIRE_R_OK)
        fail_msg("SUBMIT_ACK: expected OK, saw %s", wire_reason_name(a.reason));
}

/* Within the window a delivered id is not delivered again; after it, it is a new envelope. */
static void test_window_after_delivery(void **state)
{
    struct fixture *f = *state;
    struct wsc ca, cc;
    uint16_t reason;
    uint8_t id[WIRE_ID_LEN];
    size_t total, hits;

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    randombytes_buf(id, sizeof(id));
    submit_ok(f, &ca, id);
    hits = collect_id(f, &cc, id, &total);
    if (hits != 1)
        fail_msg("first submission: expected 1 delivery, saw %zu", hits);
    /* inside the window: acknowledged, stored once, not delivered again */
    submit_ok(f, &ca, id);
    hits = collect_id(f, &cc, id, &total);
    if (hits != 0)
        fail_msg("resubmission inside the window: expected 0 deliveries, saw %zu", hits);
    /* past the window (and a sweep, once a second): the id is forgotten */
    sleep(WINDOW_S + 3);
    submit_ok(f, &ca, id);
    hits = collect_id(f, &cc, id, &total);
    if (hits != 1)
        fail_msg("resubmission after the window: expected 1 delivery, saw %zu", hits);
    wsc_close(&ca);
    wsc_close(&cc);
}

/* An undelivered envelope older than the window is still deduplicated. */
static void test_queued_never_forgotten(void **state)
{
    struct fixture *f = *state;
    struct wsc ca, cc;
    uint16_t reason;
    uint8_t id[WIRE_ID_LEN];
    size_t total, hits;

    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    randombytes_buf(id, sizeof(id));
    submit_ok(f, &ca, id); /* the recipient is offline */
    sleep(WINDOW_S + 3);
    submit_ok(f, &ca, id);
    assert_int_equal(tc_auth(&cc, f->relay.port, &f->c, &reason), 0);
    hits = collect_id(f, &cc, id, &total);
    if (hits != 1)
        fail_msg("queued id resubmitted after the window: expected 1 delivery, saw %zu", hits);
    wsc_close(&ca);
    wsc_close(&cc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_after_delivery),
        cmocka_unit_test(test_queued_never_forgotten),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
