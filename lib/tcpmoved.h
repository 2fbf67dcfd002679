/*
 * tcpmoved.h - how far a TCP connection has moved, by TCP's own counts:
 * bytes received from the peer plus bytes the peer acknowledged (Linux
 * TCP_INFO, RFC 4898 names). It moves while a long message is still
 * arriving or still being read by the far end, before the websocket layer
 * hands over or takes any of it; the client's and the relay's waits count
 * it as progress (PROTOCOL.md part 2 "Flow control", time-outs).
 *
 * Contract: tcp_moved(fd) never fails: 0 when fd is negative or the socket
 * cannot say (not TCP, or getsockopt refused). Monotonic for one connection.
 */
#ifndef VALISE_TCPMOVED_H
#define VALISE_TCPMOVED_H

#include <stdint.h>

uint64_t tcp_moved(int fd);

#endif
