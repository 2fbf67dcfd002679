/*
 * session.h - the unlocked session of a running `valise desk`, offered to
 * the other `valise` verbs of the same user (issue 12 item 14), ssh-agent
 * style: the verb asks the desk to do the work; keys and passphrase never
 * leave the desk's process.
 *
 * Contract:
 *  - The desk listens on HOME/session.sock (AF_UNIX stream), created mode
 *    0600 inside a HOME that must be mode 0700 and ours (else VERR_DENIED:
 *    no socket). A connection whose peer (SO_PEERCRED) is another uid is
 *    closed unanswered.
 *  - One request per connection: the client writes one JSON object (at most
 *    SESSION_REQ_MAX bytes) and shuts down its writing side; the desk answers
 *    one JSON object and closes. Request: {"verb":V, ...} with V one of
 *    "inbox", "outbox" (no other member), "read" ({"id":HEX[/SENDER]}),
 *    "send" (the members of the desk's POST /api/send) and "fingerprint"
 *    ({"device":HEX}). Answer: {"status":HTTP-STATUS,"reply":OBJECT} where
 *    OBJECT is exactly what the desk's /api/ call answers (desk.c).
 *  - session_call returns VERR_UNKNOWN when no desk is listening (no socket,
 *    or nobody behind it): the caller unlocks by itself as before.
 */
#ifndef VALISE_CLIENT_SESSION_H
#define VALISE_CLIENT_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct desk;

enum { SESSION_REQ_MAX = 512 * 1024, SESSION_REPLY_MAX = 16 << 20 };
#define SESSION_SOCKET_NAME "session.sock"

/* Creates HOME/session.sock (replacing a stale one); *fd non-blocking. */
int session_listen(const char *home, int *fd) VL_MUST_CHECK;
/* Answers every connection waiting on fd (each bounded by a 2 s time-out). */
void session_serve(int fd, struct desk *d, uint64_t now);
/* Removes the socket file and closes fd. */
void session_close(const char *home, int fd);

/*
 * Sends req (a JSON object) to the desk serving HOME; *reply gets the answer
 * (sodium_malloc'ed, NUL-terminated; free with sodium_free).
 */
int session_call(const char *home, const char *req, size_t req_len, char **reply,
                 size_t *reply_len) VL_MUST_CHECK;

#endif
