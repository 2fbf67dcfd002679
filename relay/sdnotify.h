/*
 * sdnotify.h - readiness for a service manager without libsystemd: the
 * sd_notify(3) datagram protocol written by hand (the documented wire
 * protocol of $NOTIFY_SOCKET: one AF_UNIX datagram of "KEY=value" lines).
 *
 * Contract:
 *  - sdnotify_send does nothing when $NOTIFY_SOCKET is unset (not under
 *    systemd's Type=notify) and never fails the relay: readiness is advice to
 *    the service manager, so an error is returned for the log only.
 *  - A path starting with '@' is in the abstract namespace (a leading NUL).
 */
#ifndef VALISE_RELAY_SDNOTIFY_H
#define VALISE_RELAY_SDNOTIFY_H

#include "err.h"

int sdnotify_send(const char *state) VL_MUST_CHECK;

#endif
