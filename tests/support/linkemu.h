/*
 * linkemu.h - a userspace link emulator for the tests (issue 13 item 4): a
 * TCP proxy on a loopback port in front of another loopback port (the real
 * relay), with a bandwidth per direction, a one-way delay, periodic cuts
 * that reset every connection, and byte counters the test can read. No tc
 * netem: it runs as a thread of the test process.
 *
 * Contract:
 *  - Bytes are forwarded in order; each direction is serialised at its
 *    rate (bytes per second) and then held for delay_ms before it is
 *    written, as a real link of that rate and latency would.
 *  - A direction holds only what such a link has in flight: its
 *    bandwidth-delay product (rate x delay) plus a router's queue of 2 KiB,
 *    and its sockets take little into their kernel buffers; it reads from
 *    its source only while below that. So the sender's TCP sees its bytes
 *    acknowledged at the link's rate as they go (about 5 KB ahead of the far
 *    end at 9,600 bit/s), not a whole message at once. Without a rate a
 *    direction holds up to 64 KiB.
 *  - A cut (periodic: cut_ms every period_ms, the first after period_ms;
 *    or linkemu_set_down) resets every open connection on both sides
 *    (RST, data in flight lost) and refuses new ones until the link is up.
 *  - Counters count bytes that crossed the link (written to the far side).
 *  - linkemu_start returns once the listening port is ready; linkemu_stop
 *    closes everything and joins the thread. Not for production code.
 */
#ifndef VALISE_TEST_LINKEMU_H
#define VALISE_TEST_LINKEMU_H

#include <stdint.h>

struct linkemu;

struct linkemu_cfg {
    int upstream_port;      /* 127.0.0.1:upstream_port is the far side */
    uint32_t up_rate;       /* client -> server, bytes/s (0: unlimited) */
    uint32_t down_rate;     /* server -> client, bytes/s (0: unlimited) */
    uint32_t delay_ms;      /* one way, each direction */
    uint32_t period_ms;     /* 0: no periodic cuts */
    uint32_t cut_ms;        /* length of each periodic cut */
};

struct linkemu_counters {
    uint64_t up_bytes, down_bytes; /* crossed the link */
    uint64_t connections, resets;  /* accepted, and reset by a cut */
    uint64_t cuts;                 /* times the link went down (periodic or set_down) */
};

int linkemu_start(struct linkemu **out, const struct linkemu_cfg *cfg, int *port);
/* Takes the link down (1: reset all, refuse new) or brings it back (0). */
void linkemu_set_down(struct linkemu *le, int down);
void linkemu_counters(struct linkemu *le, struct linkemu_counters *c);
/* Milliseconds until the next periodic cut: 0 while down, UINT64_MAX with no cuts. */
uint64_t linkemu_up_for(struct linkemu *le);
void linkemu_stop(struct linkemu *le);

#endif
