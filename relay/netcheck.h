/*
 * netcheck.h - why the relay could not start listening, in words an
 * operator can act on. libwebsockets reports only that creating the
 * listener failed; these checks find the cause.
 *
 * Contract:
 *  - netcheck_tls_files: each given file must be a readable regular file;
 *    otherwise one line naming the flag, the file and the system's reason.
 *  - netcheck_listen: binds a throw-away socket to host:port (numeric) and
 *    turns the failure into one line: the port in use, a privileged port
 *    without the capability, an address that is not this machine's. Called
 *    only after the real listener failed, so it never races a working one.
 *  - Both return 0 when they find nothing wrong (err untouched).
 */
#ifndef VALISE_RELAY_NETCHECK_H
#define VALISE_RELAY_NETCHECK_H

#include <stddef.h>

int netcheck_tls_files(const char *cert, const char *key, char *err, size_t errsz);
int netcheck_listen(const char *host, int port, char *err, size_t errsz);

#endif
