/*
 * test_wsabuse.c - websocket abuse against a live valise-relay (issue 6),
 * beyond tests/relay/test_bounds.c (which covers oversize messages and
 * declared lengths, fragmentation, truncated frames, random bytes, stalls,
 * trickles, rate and connection caps). Here: RFC 6455 violations (unmasked
 * client frames 5.1, reserved bits 5.2, undefined opcodes 5.2, control
 * frames over 125 bytes or fragmented 5.5), slowloris (many half-sent HTTP
 * upgrades), 1,000 connections that never authenticate, and a flood from
 * one authenticated device. In every case an honest device on another
 * connection keeps being served (a DIRECTORY_GET answered within the
 * generous TWAIT), and a new honest device can still authenticate.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "relaytest.h"

enum { N_SLOW = 200, N_IDLE = 1000, HANDSHAKE_S = 4 };

struct fixture {
    struct tpki pki;
    struct tdev flooder, honest, fresh, sink;
    struct trelay relay;
    struct buf msg;
    struct wsc bystander; /* the honest, authenticated session */
};

static int setup(void **state)
{
    static struct fixture f;
    static const char *const flags[] = {"--handshake-timeout", "4", NULL};
    const struct tdev *devs[4];
    uint64_t now = tnow();
    uint16_t reason;

    memset(&f, 0, sizeof(f));
    assert_int_equal(tpki_init(&f.pki), 0);
    assert_int_equal(tdev_make(&f.pki, &f.flooder, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.honest, 2, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.fresh, 3, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.sink, 4, now - 60, now + 86400), 0);
    devs[0] = &f.flooder;
    devs[1] = &f.honest;
    devs[2] = &f.fresh;
    devs[3] = &f.sink;
    assert_int_equal(tpki_write_dir(&f.pki, 1, devs, 4, NULL, 0), 0);
    assert_int_equal(trelay_start(&f.relay, &f.pki, flags), 0);
    assert_int_equal(buf_init(&f.msg, 8 << 20, 0), 0);
    assert_int_equal(tc_auth(&f.bystander, f.relay.port, &f.honest, &reason), 0);
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

/* The honest session is served: a DIRECTORY_GET gets its DIRECTORY. */
static void honest_served(struct fixture *f, const char *during)
{
    struct wire_msg m;

    buf_reset(&f->msg);
    assert_int_equal(wire_put_directory(&f->msg, WIRE_DIRECTORY_GET, NULL, 0), 0);
    assert_int_equal(tc_send(&f->bystander, &f->msg), 0);
    if (tc_expect(&f->bystander, &f->msg, &m, WIRE_DIRECTORY, TWAIT) != 0)
        fail_msg("expected the honest connection served %s, saw no DIRECTORY", during);
}

/* A new honest device can still connect and authenticate. */
static void fresh_authenticates(struct fixture *f, const char *during)
{
    struct wsc c;
    uint16_t reason = 0;
    int r = tc_auth(&c, f->relay.port, &f->fresh, &reason);

    if (r != 0)
        fail_msg("expected a new device to authenticate %s, saw r=%d reason %s", during, r,
                 wire_reason_name(reason));
    wsc_close(&c);
}

/* One frame with a raw first byte; masked with a zero key or unmasked. */
static void send_frame(struct wsc *c, uint8_t b0, int masked, const uint8_t *p, size_t len)
{
    uint8_t h[14];
    size_t n = 0;

    assert_true(len < 65536);
    h[n++] = b0;
    if (len < 126) {
        h[n++] = (uint8_t)((masked ? 0x80 : 0) | len);
    } else {
        h[n++] = (uint8_t)((masked ? 0x80 : 0) | 126);
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    }
    if (masked) {
        memset(h + n, 0, 4); /* a zero masking key leaves the payload as is */
        n += 4;
    }
    assert_int_equal(wsc_send_raw(c, h, n), 0);
    if (len > 0)
        assert_int_equal(wsc_send_raw(c, p, len), 0);
}

/* An authenticated attacker sends one bad frame: the relay must close it. */
static void expect_closed_after(struct fixture *f, uint8_t b0, int masked, size_t len,
                                const char *what)
{
    static uint8_t payload[300];
    struct wsc c;
    uint16_t reason;

    assert_true(len <= sizeof(payload));
    memset(payload, 'x', sizeof(payload));
    assert_int_equal(tc_auth(&c, f->relay.port, &f->flooder, &reason), 0);
    send_frame(&c, b0, masked, payload, len);
    if (!wsc_wait_closed(&c, TWAIT))
        fail_msg("expected the relay to close the connection after %s, saw it kept open", what);
    wsc_close(&c);
    honest_served(f, what);
}

/* RFC 6455 5.1: a server MUST close on an unmasked client frame. */
static void test_unmasked_frame(void **state)
{
    struct fixture *f = *state;

    struct wsc c;
    struct wire_msg m;
    uint16_t reason;
    static const uint8_t ping[4] = {'p', 'i', 'n', 'g'};

    expect_closed_after(f, 0x82, 0, 40, "an unmasked binary frame");
    /* Known deviation (docs/adversarial.md): libwebsockets 4.1 answers an
     * unmasked ping instead of failing the connection. Masking protects
     * HTTP intermediaries from browser scripts (RFC 6455 10.3), which do not
     * exist between valise and its relay; what matters is that the frame
     * neither breaks this session nor anyone else's. */
    assert_int_equal(tc_auth(&c, f->relay.port, &f->flooder, &reason), 0);
    send_frame(&c, 0x89, 0, ping, sizeof(ping));
    buf_reset(&f->msg);
    assert_int_equal(wire_put_directory(&f->msg, WIRE_DIRECTORY_GET, NULL, 0), 0);
    if (tc_send(&c, &f->msg) == 0 && tc_expect(&c, &f->msg, &m, WIRE_DIRECTORY, TWAIT) != 0 &&
        !wsc_wait_closed(&c, TWAIT))
        fail_msg("expected an unmasked ping either to close the connection or to leave it "
                 "working, saw it hang");
    wsc_close(&c);
    honest_served(f, "an unmasked ping");
}

/* RFC 6455 5.2: RSV1-3 without a negotiated extension fail the connection. */
static void test_reserved_bits(void **state)
{
    struct fixture *f = *state;

    expect_closed_after(f, 0x82 | 0x40, 1, 40, "RSV1 set");
    expect_closed_after(f, 0x82 | 0x20, 1, 40, "RSV2 set");
    expect_closed_after(f, 0x82 | 0x10, 1, 40, "RSV3 set");
}

/* RFC 6455 5.2: opcodes 3-7 and 0xB-0xF are reserved. */
static void test_invalid_opcodes(void **state)
{
    static const uint8_t ops[] = {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF};
    struct fixture *f = *state;
    char what[64];

    for (size_t i = 0; i < sizeof(ops); i++) {
        snprintf(what, sizeof(what), "reserved opcode 0x%X", ops[i]);
        expect_closed_after(f, (uint8_t)(0x80 | ops[i]), 1, 10, what);
    }
    /* a continuation frame with nothing to continue */
    expect_closed_after(f, 0x80, 1, 10, "an orphan continuation frame");
}

/* RFC 6455 5.5: control frames carry at most 125 bytes and are never fragmented. */
static void test_control_frames(void **state)
{
    struct fixture *f = *state;

    expect_closed_after(f, 0x89, 1, 126, "a 126-byte ping");
    expect_closed_after(f, 0x8A, 1, 200, "a 200-byte pong");
    expect_closed_after(f, 0x09, 1, 10, "a fragmented ping (FIN clear)");
    expect_closed_after(f, 0x88, 1, 300, "a 300-byte close");
}

static int tcp_connect(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 1 if the peer closed fd (EOF or reset) within ms; data is discarded. */
static int tcp_closed_within(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    uint8_t b[512];

    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
        return 0;
    for (;;) {
        ssize_t n = recv(fd, b, sizeof(b), 0);
        if (n <= 0)
            return n == 0 || errno == ECONNRESET;
    }
}

/* Slowloris: many HTTP upgrades sent half-way and never finished. */
static void test_slowloris(void **state)
{
    static const char part[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n";
    struct fixture *f = *state;
    static int fds[N_SLOW];
    int open_n = 0, closed = 0;

    for (int i = 0; i < N_SLOW; i++) {
        fds[i] = tcp_connect(f->relay.port);
        if (fds[i] < 0)
            continue;
        open_n++;
        (void)!send(fds[i], part, sizeof(part) - 1, MSG_NOSIGNAL);
    }
    assert_true(open_n > 0);
    honest_served(f, "during a slowloris of 200 half-sent upgrades");
    fresh_authenticates(f, "during a slowloris");
    /* every half-open upgrade is cut by the handshake time-out, not held for ever */
    for (int i = 0; i < N_SLOW; i++) {
        if (fds[i] < 0)
            continue;
        closed += tcp_closed_within(fds[i], (HANDSHAKE_S + 8) * 1000);
        close(fds[i]);
    }
    if (closed != open_n)
        fail_msg("expected all %d half-sent upgrades closed by the handshake time-out, saw %d",
                 open_n, closed);
    honest_served(f, "after the slowloris");
}

/* 1,000 websocket connections that never authenticate. */
static void test_thousand_unauthenticated(void **state)
{
    struct fixture *f = *state;
    static struct wsc idle[N_IDLE];
    int connected = 0, closed = 0;

    for (int i = 0; i < N_IDLE; i++) {
        if (wsc_connect(&idle[i], f->relay.port, "valise.v1", TWAIT) == 0)
            connected++;
        else
            idle[i].fd = -1;
    }
    if (connected != N_IDLE)
        fail_msg("expected %d upgrades accepted (under --max-connections), saw %d", N_IDLE,
                 connected);
    honest_served(f, "with 1,000 unauthenticated connections open");
    fresh_authenticates(f, "with 1,000 unauthenticated connections open");
    for (int i = 0; i < N_IDLE; i++) {
        if (idle[i].fd < 0)
            continue;
        closed += wsc_wait_closed(&idle[i], (HANDSHAKE_S + 8) * 1000);
        wsc_close(&idle[i]);
    }
    if (closed != connected)
        fail_msg("expected all %d unauthenticated connections closed by the handshake "
                 "time-out, saw %d",
                 connected, closed);
    honest_served(f, "after the unauthenticated connections");
}

/* One authenticated device submits as fast as it can without reading. */
static void test_flood_one_device(void **state)
{
    struct fixture *f = *state;
    static uint8_t ct[1024];
    struct wire_envelope e[32];
    uint8_t ids[32][WIRE_ID_LEN];
    struct wsc c;
    uint16_t reason;
    int sent = 0;

    memset(ct, 'f', sizeof(ct));
    assert_int_equal(tc_auth(&c, f->relay.port, &f->flooder, &reason), 0);
    for (int round = 0; round < 300; round++) {
        for (size_t i = 0; i < 32; i++) {
            randombytes_buf(ids[i], WIRE_ID_LEN);
            tc_envelope(&e[i], ids[i], &f->sink, WIRE_ROUTINE, tnow() + 3600, ct, sizeof(ct));
        }
        if (tc_submit(&c, e, 32) != 0)
            break; /* cut by the relay (rate limit or back-pressure): also fine */
        sent++;
        if (round % 50 == 0)
            honest_served(f, "during a flood from one authenticated device");
    }
    assert_true(sent > 0);
    honest_served(f, "after a flood from one authenticated device");
    fresh_authenticates(f, "after a flood from one authenticated device");
    wsc_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unmasked_frame),   cmocka_unit_test(test_reserved_bits),
        cmocka_unit_test(test_invalid_opcodes),  cmocka_unit_test(test_control_frames),
        cmocka_unit_test(test_slowloris),        cmocka_unit_test(test_thousand_unauthenticated),
        cmocka_unit_test(test_flood_one_device),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
