/*
 * test_lane.c - FLASH and IMMEDIATE SUBMITs go to the writer ahead of ROUTINE
 * ones that arrived before them (PROTOCOL.md part 2 "Store and forward"):
 * with every sync slowed to 250 ms (tests/fault/faultinject.c,
 * VALISE_SLOW_SYNC_MS) the writer is still committing a first SUBMIT when a
 * ROUTINE one and then an urgent one arrive; the urgent one is committed in a
 * transaction of its own first, so its SUBMIT_ACK comes before the ROUTINE
 * one's. Order of answers, not time, is what is checked.
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

struct fixture {
    struct tpki pki;
    struct tdev a, r;
    struct trelay relay;
    struct buf msg;
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
    /* the relay alone gets the slow disk */
    assert_int_equal(trelay_start_slow_sync(&f.relay, &f.pki, NULL, VALISE_FAULTINJECT, 250, NULL),
                     0);
    assert_int_equal(buf_init(&f.msg, 1 << 20, 0), 0);
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

static void submit(struct wsc *c, const struct tdev *to, const uint8_t id[WIRE_ID_LEN],
                   uint8_t prec)
{
    struct wire_envelope e;

    tc_envelope(&e, id, to, prec, tnow() + 3600, (const uint8_t *)"lane", 4);
    assert_int_equal(tc_submit(c, &e, 1), 0);
}

/*
 * ROUTINE z (with the writer), then ROUTINE a and urgent b: b is acknowledged
 * before a. (z comes first unless the writer was still busy with something
 * else when it arrived; then all three wait together and b still goes first.)
 */
static void lane_order(struct fixture *f, uint8_t prec)
{
    uint8_t ids[3][WIRE_ID_LEN];
    size_t pos[3] = {3, 3, 3};
    struct wsc c;
    struct wire_msg m;
    struct wire_iter it;
    struct wire_ack a;
    uint16_t reason;

    for (size_t i = 0; i < 3; i++)
        randombytes_buf(ids[i], WIRE_ID_LEN);
    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    submit(&c, &f->r, ids[0], WIRE_ROUTINE);
    usleep(30000); /* z is with the writer, in its 250 ms sync */
    submit(&c, &f->r, ids[1], WIRE_ROUTINE);
    submit(&c, &f->r, ids[2], prec);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(tc_expect(&c, &f->msg, &m, WIRE_SUBMIT_ACK, 4 * TWAIT), 0);
        assert_int_equal(m.u.batch.n, 1);
        wire_iter_init(&it, &m);
        assert_int_equal(wire_next_ack(&it, &a), 0);
        assert_int_equal(a.reason, WIRE_R_OK);
        for (size_t k = 0; k < 3; k++)
            if (memcmp(a.id, ids[k], WIRE_ID_LEN) == 0)
                pos[k] = i;
    }
    if (pos[0] == 3 || pos[1] == 3 || pos[2] == 3)
        fail_msg("precedence %u: an envelope was not acknowledged", prec);
    if (pos[2] > pos[1])
        fail_msg("precedence %u: acknowledged after the ROUTINE envelope submitted before it "
                 "(SUBMIT_ACK %zu against %zu)",
                 prec, pos[2], pos[1]);
    wsc_close(&c);
}

static void test_flash_ahead_of_routine(void **state)
{
    lane_order(*state, WIRE_FLASH);
}

static void test_immediate_ahead_of_routine(void **state)
{
    lane_order(*state, WIRE_IMMEDIATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flash_ahead_of_routine),
        cmocka_unit_test(test_immediate_ahead_of_routine),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, setup, teardown);
}
