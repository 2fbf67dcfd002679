/* test_bounds.c - every bound gives its reason code and other connections stay served (issue 3). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "relaytest.h"

struct fixture {
    struct tpki pki;
    struct tdev a, b, q, r, s, t;
    struct trelay relay;
    struct buf msg;
    struct wsc bystander; /* an honest session that must keep working */
};

static const char *const bounds[] = {
    "--max-envelope", "1000", "--max-frame", "4096", "--queue-max-count", "3", "--queue-max-bytes", "2500",
    "--rate", "20", "--max-connections", "12", "--max-device-connections", "2",
    "--handshake-timeout", "2", "--idle-timeout", "6", "--max-batch", "10", NULL,
};

static int setup(void **state)
{
    static struct fixture f;
    const struct tdev *devs[6];
    uint64_t now = tnow();
    uint16_t reason;

    memset(&f, 0, sizeof(f));
    assert_int_equal(tpki_init(&f.pki), 0);
    assert_int_equal(tdev_make(&f.pki, &f.a, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.b, 2, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.q, 3, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.r, 4, now - 60, now + 86400), 0);
    devs[0] = &f.a;
    devs[1] = &f.b;
    devs[2] = &f.q;
    devs[3] = &f.r;
    assert_int_equal(tdev_make(&f.pki, &f.s, 5, now - 60, now + 86400), 0);
    devs[4] = &f.s;
    assert_int_equal(tdev_make(&f.pki, &f.t, 6, now - 60, now + 86400), 0);
    devs[5] = &f.t;
    assert_int_equal(tpki_write_dir(&f.pki, 1, devs, 6, NULL, 0), 0);
    assert_int_equal(trelay_start(&f.relay, &f.pki, bounds), 0);
    assert_int_equal(buf_init(&f.msg, 8 << 20, 0), 0);
    assert_int_equal(tc_auth(&f.bystander, f.relay.port, &f.b, &reason), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    wsc_close(&f->bystander);
    trelay_signal(&f->relay, SIGKILL);
    buf_free(&f->msg);
    tpki_cleanup(&f->pki);
    return 0;
}

/* The bystander is still served: a DIRECTORY_GET gets its DIRECTORY. */
static void bystander_ok(struct fixture *f)
{
    struct wire_msg m;

    buf_reset(&f->msg);
    assert_int_equal(wire_put_directory(&f->msg, WIRE_DIRECTORY_GET, NULL, 0), 0);
    assert_int_equal(tc_send(&f->bystander, &f->msg), 0);
    if (tc_expect(&f->bystander, &f->msg, &m, WIRE_DIRECTORY, TWAIT) != 0)
        fail_msg("the honest connection was not served");
}

static void expect_error(struct fixture *f, struct wsc *c, uint16_t want, int closes)
{
    struct wire_msg m;
    int r = tc_expect(c, &f->msg, &m, WIRE_ERROR, TWAIT);

    if (r != 0 || m.u.error.reason != want)
        fail_msg("expected ERROR %s, saw r=%d type %s reason %s", wire_reason_name(want), r,
                 wire_type_name(m.type), r == 0 ? wire_reason_name(m.u.error.reason) : "-");
    if (closes && !wsc_wait_closed(c, TWAIT))
        fail_msg("expected the relay to close the connection after %s", wire_reason_name(want));
}

/* Submits n envelopes to `to` and returns the SUBMIT_ACK reasons. */
static void submit_n(struct fixture *f, struct wsc *c, const struct tdev *to, size_t n,
                     uint32_t ct_len, uint16_t *reasons)
{
    static uint8_t ct[4096];
    struct wire_envelope e[16];
    uint8_t ids[16][WIRE_ID_LEN];
    struct wire_msg m;
    struct wire_iter it;
    struct wire_ack a;

    assert_true(n <= 16 && ct_len <= sizeof(ct));
    memset(ct, 'c', sizeof(ct));
    for (size_t i = 0; i < n; i++) {
        randombytes_buf(ids[i], WIRE_ID_LEN);
        tc_envelope(&e[i], ids[i], to, WIRE_ROUTINE, tnow() + 3600, ct, ct_len);
    }
    assert_int_equal(tc_submit(c, e, n), 0);
    assert_int_equal(tc_expect(c, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    assert_int_equal(m.u.batch.n, n);
    wire_iter_init(&it, &m);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(wire_next_ack(&it, &a), 0);
        reasons[i] = a.reason;
    }
}

static void test_envelope_too_large(void **state)
{
    struct fixture *f = *state;
    struct wsc c;
    uint16_t reason, rs[2];

    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    submit_n(f, &c, &f->r, 1, 1001, rs);
    assert_int_equal(rs[0], WIRE_R_ENVELOPE_TOO_LARGE);
    /* the connection stays usable */
    submit_n(f, &c, &f->r, 1, 1000, rs);
    assert_int_equal(rs[0], WIRE_R_OK);
    wsc_close(&c);
    bystander_ok(f);
}

static void test_frame_too_large(void **state)
{
    struct fixture *f = *state;
    static uint8_t big[5000];
    struct wsc c;
    uint16_t reason;

    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    big[0] = WIRE_VERSION;
    big[1] = WIRE_SUBMIT;
    assert_int_equal(wsc_send(&c, big, sizeof(big)), 0);
    expect_error(f, &c, WIRE_R_FRAME_TOO_LARGE, 1);
    wsc_close(&c);
    bystander_ok(f);
}

static void test_queue_count(void **state)
{
    struct fixture *f = *state;
    struct wsc c;
    uint16_t reason, rs[4];

    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    submit_n(f, &c, &f->q, 4, 10, rs);
    assert_int_equal(rs[0], WIRE_R_OK);
    assert_int_equal(rs[1], WIRE_R_OK);
    assert_int_equal(rs[2], WIRE_R_OK);
    assert_int_equal(rs[3], WIRE_R_QUEUE_FULL);
    wsc_close(&c);
    bystander_ok(f);
}

static void test_queue_bytes(void **state)
{
    struct fixture *f = *state;
    struct wsc c;
    uint16_t reason, rs[3];

    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    submit_n(f, &c, &f->s, 3, 1000, rs); /* 3 envelopes fit the count, not the 2500 bytes */
    assert_int_equal(rs[0], WIRE_R_OK);
    assert_int_equal(rs[1], WIRE_R_OK);
    assert_int_equal(rs[2], WIRE_R_QUEUE_FULL);
    wsc_close(&c);
    bystander_ok(f);
}

/* Submits the envelopes ids[0..n) to `to` and returns the SUBMIT_ACK reasons. */
static void submit_ids(struct fixture *f, struct wsc *c, const struct tdev *to,
                       const uint8_t (*ids)[WIRE_ID_LEN], size_t n, uint16_t *reasons)
{
    struct wire_envelope e[4];
    struct wire_msg m;
    struct wire_iter it;
    struct wire_ack a;

    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++)
        tc_envelope(&e[i], ids[i], to, WIRE_ROUTINE, tnow() + 3600, (const uint8_t *)"dup", 3);
    assert_int_equal(tc_submit(c, e, n), 0);
    assert_int_equal(tc_expect(c, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    assert_int_equal(m.u.batch.n, n);
    wire_iter_init(&it, &m);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(wire_next_ack(&it, &a), 0);
        assert_memory_equal(a.id, ids[i], WIRE_ID_LEN);
        reasons[i] = a.reason;
    }
}

/*
 * A full queue still tells a resubmission from a new envelope: the same
 * sender's id already stored is acknowledged (duplicate), another sender's
 * is an id conflict, and only a new id is queue_full (DESIGN.md "Relay").
 */
static void test_queue_full_duplicate(void **state)
{
    struct fixture *f = *state;
    struct wsc c, c2;
    uint8_t ids[4][WIRE_ID_LEN];
    uint16_t reason, rs[4];

    for (size_t i = 0; i < 4; i++)
        randombytes_buf(ids[i], WIRE_ID_LEN);
    assert_int_equal(tc_auth(&c, f->relay.port, &f->s, &reason), 0);
    submit_ids(f, &c, &f->t, ids, 3, rs); /* t's queue holds 3: full */
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(rs[i], WIRE_R_OK);
    memcpy(ids[2], ids[3], WIRE_ID_LEN); /* ids[2] is new now */
    submit_ids(f, &c, &f->t, (const uint8_t(*)[WIRE_ID_LEN])ids[1], 2, rs);
    if (rs[0] != WIRE_R_OK || rs[1] != WIRE_R_QUEUE_FULL)
        fail_msg("full queue: expected the stored id ok and the new one queue_full, saw %s, %s",
                 wire_reason_name(rs[0]), wire_reason_name(rs[1]));
    assert_int_equal(tc_auth(&c2, f->relay.port, &f->q, &reason), 0);
    submit_ids(f, &c2, &f->t, ids, 1, rs);
    if (rs[0] != WIRE_R_ID_CONFLICT)
        fail_msg("full queue, another sender's id: expected id_conflict, saw %s",
                 wire_reason_name(rs[0]));
    wsc_close(&c2);
    wsc_close(&c);
    bystander_ok(f);
}

static void test_batch_too_large(void **state)
{
    struct fixture *f = *state;
    struct wsc c;
    struct wire_envelope e[11];
    uint8_t id[WIRE_ID_LEN];
    uint16_t reason;

    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    for (size_t i = 0; i < 11; i++) {
        randombytes_buf(id, sizeof(id));
        tc_envelope(&e[i], id, &f->r, WIRE_ROUTINE, tnow() + 60, (const uint8_t *)"x", 1);
    }
    assert_int_equal(tc_submit(&c, e, 11), 0);
    expect_error(f, &c, WIRE_R_BATCH_TOO_LARGE, 0);
    wsc_close(&c);
}

static void test_rate_limit(void **state)
{
    struct fixture *f = *state;
    struct wsc c;
    uint16_t reason, rs[10];

    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    submit_n(f, &c, &f->r, 10, 1, rs);
    submit_n(f, &c, &f->r, 10, 1, rs);
    submit_n(f, &c, &f->r, 10, 1, rs); /* over 20 per second */
    for (size_t i = 0; i < 10; i++)
        if (rs[i] != WIRE_R_RATE_LIMITED)
            fail_msg("envelope %zu: expected rate_limited, saw %s", i, wire_reason_name(rs[i]));
    wsc_close(&c);
    bystander_ok(f);
}

static void test_device_connections(void **state)
{
    struct fixture *f = *state;
    struct wsc c1, c2, c3;
    uint16_t reason;

    usleep(200000); /* let the relay see earlier closes of this device's sessions */
    assert_int_equal(tc_auth(&c1, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_auth(&c2, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_auth(&c3, f->relay.port, &f->a, &reason), VERR_DENIED);
    assert_int_equal(reason, WIRE_R_TOO_MANY_DEVICE_CONNECTIONS);
    wsc_close(&c1);
    wsc_close(&c2);
    wsc_close(&c3);
    bystander_ok(f);
}

static void test_total_connections(void **state)
{
    struct fixture *f = *state;
    struct wsc c[16];
    struct wire_msg m;
    size_t n = 0;
    int refused = 0;

    usleep(200000); /* let the relay see earlier closes */
    while (n < 16 && !refused) {
        uint8_t cn[WIRE_NONCE_LEN];
        uint16_t reason = 0;
        int r = tc_hello(&c[n], f->relay.port, cn, &f->msg, &m, &reason);

        if (r == VERR_DENIED) {
            assert_int_equal(reason, WIRE_R_TOO_MANY_CONNECTIONS);
            assert_true(wsc_wait_closed(&c[n], TWAIT));
            refused = 1;
        } else {
            assert_int_equal(r, 0);
            assert_int_equal(m.type, WIRE_CHALLENGE);
        }
        n++;
    }
    assert_true(refused);
    assert_true(n <= 13); /* the bound is 12 in total */
    bystander_ok(f);
    for (size_t i = 0; i < n; i++)
        wsc_close(&c[i]);
}

/* ---- malformed and hostile input ---- */

static void test_random_frame(void **state)
{
    struct fixture *f = *state;
    uint8_t junk[300];
    struct wsc c;
    uint16_t reason;

    randombytes_buf(junk, sizeof(junk));
    junk[0] = 0x7f; /* not our version */
    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(wsc_send(&c, junk, sizeof(junk)), 0);
    expect_error(f, &c, WIRE_R_VERSION, 1);
    wsc_close(&c);
    junk[0] = WIRE_VERSION;
    junk[1] = WIRE_SUBMIT;
    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(wsc_send(&c, junk, sizeof(junk)), 0);
    expect_error(f, &c, WIRE_R_MALFORMED, 1);
    wsc_close(&c);
    /* before authentication too */
    assert_int_equal(wsc_connect(&c, f->relay.port, "valise.v1", TWAIT), 0);
    assert_int_equal(wsc_send(&c, junk, sizeof(junk)), 0);
    expect_error(f, &c, WIRE_R_MALFORMED, 1);
    wsc_close(&c);
    bystander_ok(f);
}

static void test_not_websocket(void **state)
{
    struct fixture *f = *state;
    uint8_t junk[2000];
    struct wsc c;

    randombytes_buf(junk, sizeof(junk));
    /* a websocket handshake, then random bytes instead of frames */
    assert_int_equal(wsc_connect(&c, f->relay.port, "valise.v1", TWAIT), 0);
    assert_int_equal(wsc_send_raw(&c, junk, sizeof(junk)), 0);
    assert_true(wsc_wait_closed(&c, TWAIT));
    wsc_close(&c);
    bystander_ok(f);
}

static void test_oversize_length(void **state)
{
    struct fixture *f = *state;
    uint8_t mask[4];
    struct wsc c;
    uint16_t reason;

    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(wsc_send_header(&c, 1, 2, UINT64_C(1) << 40, mask), 0);
    uint8_t some[64] = {WIRE_VERSION ^ 0, 0};
    for (size_t i = 0; i < sizeof(some); i++)
        some[i] ^= mask[i & 3];
    assert_int_equal(wsc_send_raw(&c, some, sizeof(some)), 0);
    /* either an ERROR frame_too_large then close, or lws refuses the length outright */
    struct wire_msg m;
    int r = tc_expect(&c, &f->msg, &m, WIRE_ERROR, TWAIT);
    if (r == 0)
        assert_int_equal(m.u.error.reason, WIRE_R_FRAME_TOO_LARGE);
    else
        assert_int_equal(r, VERR_NET);
    assert_true(wsc_wait_closed(&c, TWAIT));
    wsc_close(&c);
    bystander_ok(f);
}

/* A message split over continuation frames (RFC 6455 5.4) is reassembled. */
static void test_fragmented_message(void **state)
{
    struct fixture *f = *state;
    struct wire_envelope e;
    struct wire_msg m;
    struct buf sub;
    uint8_t id[WIRE_ID_LEN], mask[4], *part;
    uint16_t reason;
    struct wsc c;
    size_t half;

    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    randombytes_buf(id, sizeof(id));
    tc_envelope(&e, id, &f->r, WIRE_FLASH, tnow() + 60, (const uint8_t *)"fragmented", 10);
    assert_int_equal(buf_init(&sub, 4096, 0), 0);
    assert_int_equal(wire_put_envelopes(&sub, WIRE_SUBMIT, &e, 1), 0);
    half = buf_size(&sub) / 2;
    assert_non_null(part = malloc(buf_size(&sub)));
    memcpy(part, buf_data(&sub), buf_size(&sub));
    /* first frame: binary, not final */
    assert_int_equal(wsc_send_header(&c, 0, 2, half, mask), 0);
    for (size_t i = 0; i < half; i++)
        part[i] ^= mask[i & 3];
    assert_int_equal(wsc_send_raw(&c, part, half), 0);
    usleep(50000);
    /* then a continuation frame, final */
    assert_int_equal(wsc_send_header(&c, 1, 0, buf_size(&sub) - half, mask), 0);
    for (size_t i = half; i < buf_size(&sub); i++)
        part[i] ^= mask[(i - half) & 3];
    assert_int_equal(wsc_send_raw(&c, part + half, buf_size(&sub) - half), 0);
    assert_int_equal(tc_expect(&c, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    assert_int_equal(m.u.batch.n, 1);
    free(part);
    buf_free(&sub);
    wsc_close(&c);
}

static void test_truncated_frame(void **state)
{
    struct fixture *f = *state;
    uint8_t mask[4], part[10] = {0};
    struct wsc c;
    uint16_t reason;

    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(wsc_send_header(&c, 1, 2, 100, mask), 0);
    assert_int_equal(wsc_send_raw(&c, part, sizeof(part)), 0);
    wsc_close(&c); /* gone mid-frame */
    bystander_ok(f);
}

static double elapsed(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A client that stalls mid-frame before authenticating is cut at the handshake time-out. */
static void test_stall_before_auth(void **state)
{
    struct fixture *f = *state;
    uint8_t mask[4], part[10] = {0};
    struct timespec t0;
    struct wsc c;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(wsc_connect(&c, f->relay.port, "valise.v1", TWAIT), 0);
    assert_int_equal(wsc_send_header(&c, 1, 2, 200, mask), 0);
    assert_int_equal(wsc_send_raw(&c, part, sizeof(part)), 0);
    assert_true(wsc_wait_closed(&c, 6000));
    double s = elapsed(&t0);
    if (s < 1.5 || s > 5.0)
        fail_msg("expected a close after the 2 s handshake time-out, saw %.2f s", s);
    wsc_close(&c);
    bystander_ok(f);
}

/* A peer that trickles a message byte by byte is cut at the idle time-out too. */
static void test_trickle_after_auth(void **state)
{
    struct fixture *f = *state;
    uint8_t mask[4], one = 0;
    struct timespec t0;
    struct wsc c;
    uint16_t reason;
    int closed = 0;

    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(wsc_send_header(&c, 1, 2, 200, mask), 0);
    for (int i = 0; i < 200 && !closed; i++) {
        if (wsc_send_raw(&c, &one, 1) != 0 || wsc_wait_closed(&c, 100))
            closed = 1;
    }
    if (!closed)
        closed = wsc_wait_closed(&c, 10000);
    assert_true(closed);
    double s = elapsed(&t0);
    if (s < 5.5 || s > 9.0)
        fail_msg("expected a close after the 6 s idle time-out, saw %.2f s", s);
    wsc_close(&c);
}

/*
 * But a long frame still arriving at a slow link's pace (here 350 bytes a
 * second, over 8 s) outlives the 6 s idle time-out: TCP moved more than
 * 100 bytes a second meanwhile (PROTOCOL.md part 2 "Flow control"), and the
 * message is answered once whole.
 */
static void test_slow_frame_after_auth(void **state)
{
    struct fixture *f = *state;
    static uint8_t ct[900];
    struct wire_envelope e[3];
    uint8_t ids[3][WIRE_ID_LEN], mask[4];
    struct tdev ghost; /* not in the directory: every envelope is refused, nothing stored */
    struct wire_msg m;
    struct wire_iter it;
    struct wire_ack a;
    struct timespec t0;
    struct buf frame;
    struct wsc c;
    uint16_t reason;
    double s;

    assert_int_equal(tdev_make(&f->pki, &ghost, 9, tnow() - 60, tnow() + 86400), 0);
    memset(ct, 'c', sizeof(ct));
    for (size_t i = 0; i < 3; i++) {
        randombytes_buf(ids[i], WIRE_ID_LEN);
        tc_envelope(&e[i], ids[i], &ghost, WIRE_ROUTINE, tnow() + 3600, ct, sizeof(ct));
    }
    assert_int_equal(buf_init(&frame, 4096, 0), 0);
    assert_int_equal(wire_put_envelopes(&frame, WIRE_SUBMIT, e, 3), 0);
    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(wsc_send_header(&c, 1, 2, buf_size(&frame), mask), 0);
    for (size_t off = 0; off < buf_size(&frame); off += 35) {
        uint8_t part[35];
        size_t n = buf_size(&frame) - off < sizeof(part) ? buf_size(&frame) - off : sizeof(part);
        for (size_t i = 0; i < n; i++)
            part[i] = buf_data(&frame)[off + i] ^ mask[(off + i) % 4];
        if (wsc_send_raw(&c, part, n) != 0)
            fail_msg("the relay closed the slow frame after %.2f s", elapsed(&t0));
        usleep(100000);
    }
    buf_free(&frame);
    s = elapsed(&t0);
    if (tc_expect(&c, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT) != 0)
        fail_msg("no SUBMIT_ACK for a frame that took %.2f s at 350 bytes/s (idle time-out 6 s)",
                 s);
    assert_true(s > 7.0);
    assert_int_equal(m.u.batch.n, 3);
    wire_iter_init(&it, &m);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(wire_next_ack(&it, &a), 0);
        assert_int_equal(a.reason, WIRE_R_UNKNOWN_DEVICE);
    }
    wsc_close(&c);
}

/* And after authenticating, at the idle time-out. */
static void test_stall_after_auth(void **state)
{
    struct fixture *f = *state;
    uint8_t mask[4], part[10] = {0};
    struct timespec t0;
    struct wsc c;
    uint16_t reason;

    assert_int_equal(tc_auth(&c, f->relay.port, &f->a, &reason), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(wsc_send_header(&c, 1, 2, 200, mask), 0);
    assert_int_equal(wsc_send_raw(&c, part, sizeof(part)), 0);
    assert_true(wsc_wait_closed(&c, 10000));
    double s = elapsed(&t0);
    if (s < 5.5 || s > 9.0)
        fail_msg("expected a close after the 6 s idle time-out, saw %.2f s", s);
    wsc_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_too_large),
        cmocka_unit_test(test_frame_too_large),
        cmocka_unit_test(test_queue_count),
        cmocka_unit_test(test_queue_bytes),
        cmocka_unit_test(test_queue_full_duplicate),
        cmocka_unit_test(test_batch_too_large),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_device_connections),
        cmocka_unit_test(test_total_connections),
        cmocka_unit_test(test_random_frame),
        cmocka_unit_test(test_not_websocket),
        cmocka_unit_test(test_oversize_length),
        cmocka_unit_test(test_fragmented_message),
        cmocka_unit_test(test_truncated_frame),
        cmocka_unit_test(test_stall_before_auth),
        cmocka_unit_test(test_stall_after_auth),
        cmocka_unit_test(test_trickle_after_auth),
        cmocka_unit_test(test_slow_frame_after_auth),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
