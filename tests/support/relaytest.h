/*
 * relaytest.h - what the relay's integration tests share: a throw-away
 * organisation (org key, device certificates, signed directories made with
 * the project's own cert.h/dir.h), a real valise-relay process on a free
 * loopback port, and protocol steps over the raw websocket client.
 */
#ifndef VALISE_TEST_RELAYTEST_H
#define VALISE_TEST_RELAYTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cert.h"
#include "dir.h"
#include "relaycert.h"
#include "wire.h"
#include "wsclient.h"

enum { TPATH = 512, TWAIT = 5000 /* ms for any single answer */ };

struct tpki {
    uint8_t org_sk[SIG_SK_LEN];
    struct orgpub org;
    char dir[TPATH];
    char orgpub_path[TPATH], dir_path[TPATH], data_path[TPATH];
    char relaycert_path[TPATH]; /* written by trelay_start unless --relay-cert is given */
};

struct tdev {
    uint8_t sk[SIG_SK_LEN];
    struct cert cert;
    uint8_t cert_bytes[CERT_MAX_LEN];
    size_t cert_len;
};

struct trelay {
    pid_t pid;
    int port;
    char log_path[TPATH], port_path[TPATH];
};

/* A temporary directory with org.pub; p->data_path is the relay's data dir. */
int tpki_init(struct tpki *p) VL_MUST_CHECK;
void tpki_cleanup(struct tpki *p);
/* A device certified by p's root, valid [not_before, not_after). */
int tdev_make(const struct tpki *p, struct tdev *d, uint64_t serial, uint64_t not_before,
              uint64_t not_after) VL_MUST_CHECK;
/* Writes p->dir_path (replacing it): the given devices, and the revoked ones. */
int tpki_write_dir(const struct tpki *p, uint64_t version, const struct tdev *const *devs,
                   size_t n, const struct tdev *const *revoked, size_t nrev) VL_MUST_CHECK;

/*
 * Makes DATA/handshake.key if absent and writes a relay certificate for it
 * signed by p's root, for relay_id, valid [not_before, not_after), to path.
 */
int tpki_relay_cert(const struct tpki *p, const char *data_dir, const char *relay_id,
                    uint64_t not_before, uint64_t not_after, const char *path) VL_MUST_CHECK;
/*
 * Starts valise-relay (VALISE_RELAY_BIN) with extra flags (NULL-terminated).
 * Unless extra holds --relay-cert, a relay certificate of p's organisation for
 * the relay id in extra (--relay-id, default valise-relay) is made first.
 */
int trelay_start(struct trelay *r, const struct tpki *p, const char *const *extra) VL_MUST_CHECK;
/*
 * The same with a slow disk for the relay alone: the fault-injection library
 * (faultinject_so, tests/fault) preloaded with VALISE_SLOW_SYNC_MS=sync_ms, so
 * each of its syncs takes that long. asan_extra (or NULL) is added to
 * ASAN_OPTIONS for the relay (in the ASan build the preloaded library comes
 * before libasan: verify_asan_link_order=0 is always added). The test's own
 * environment is as it was on return.
 */
int trelay_start_slow_sync(struct trelay *r, const struct tpki *p, const char *const *extra,
                           const char *faultinject_so, unsigned sync_ms,
                           const char *asan_extra) VL_MUST_CHECK;
/* Sends sig; for SIGTERM and SIGKILL waits for the exit and returns its status. */
int trelay_signal(struct trelay *r, int sig);
/* 1 if the relay's log contains the bytes. */
int trelay_log_contains(const struct trelay *r, const uint8_t *p, size_t len);

/*
 * Connects, sends HELLO with a fresh nonce (cnonce gets it) and receives the
 * CHALLENGE into msg/m (VERR_DENIED with *reason on ERROR).
 */
int tc_hello(struct wsc *c, int port, uint8_t cnonce[static WIRE_NONCE_LEN], struct buf *msg,
             struct wire_msg *m, uint16_t *reason) VL_MUST_CHECK;
/*
 * The AUTH a device would send for challenge m on a plain ws:// connection
 * (binding zero), or with the given binding; relay id from m's certificate.
 */
int tc_auth_msg(const struct tdev *d, const uint8_t cnonce[static WIRE_NONCE_LEN],
                const struct wire_msg *m, const uint8_t *binding, struct buf *out) VL_MUST_CHECK;
/* Connects and authenticates d; 0 on AUTH_OK, else VERR_DENIED with *reason from ERROR. */
int tc_auth(struct wsc *c, int port, const struct tdev *d, uint16_t *reason) VL_MUST_CHECK;
/* The same; on success *ok is the decoded AUTH_OK (its fields are values, no pointers). */
int tc_auth_ok(struct wsc *c, int port, const struct tdev *d, uint16_t *reason,
               struct wire_msg *ok) VL_MUST_CHECK;
/* Receives one message into msg and decodes it into m; QUEUE_EMPTY is skipped. */
int tc_recv(struct wsc *c, struct buf *msg, struct wire_msg *m, int timeout_ms) VL_MUST_CHECK;
/* Receives until a message of type arrives (others are skipped, counted in *skipped). */
int tc_expect(struct wsc *c, struct buf *msg, struct wire_msg *m, uint8_t type,
              int timeout_ms) VL_MUST_CHECK;
/* Sends an encoded message. */
int tc_send(struct wsc *c, const struct buf *msg) VL_MUST_CHECK;
int tc_submit(struct wsc *c, const struct wire_envelope *e, size_t n) VL_MUST_CHECK;
int tc_deliver_ack(struct wsc *c, const uint8_t *ids, size_t n) VL_MUST_CHECK;
/* Fills e with id, recipient, precedence, expiry and ct (pointer kept). */
void tc_envelope(struct wire_envelope *e, const uint8_t id[static WIRE_ID_LEN],
                 const struct tdev *to, uint8_t precedence, uint64_t expiry, const uint8_t *ct,
                 uint32_t len);
uint64_t tnow(void);

#endif
