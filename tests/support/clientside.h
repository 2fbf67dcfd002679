/*
 * clientside.h - a client device for the client's integration tests: an
 * identity created in a throw-away home (client/identity.c), a device
 * certificate signed by the test organisation's root (tests/support/
 * relaytest.h), and the mailbox enrolled with a real relay on loopback.
 *
 * Contract: every function returns 0 or a VERR_* code and leaves the test to
 * assert (cmocka tests and the overhead benchmark both use it); nothing here
 * is a mock: the mailbox is the real client library over the real relay.
 */
#ifndef VALISE_TEST_CLIENTSIDE_H
#define VALISE_TEST_CLIENTSIDE_H

#include <stdint.h>

#include "mailbox.h"
#include "relaytest.h"
#include "sig.h"

struct side {
    char home[TPATH];
    struct mbox *m; /* NULL until side_enroll (or the test's own mbox_open) */
    struct tdev dev; /* the certificate IT staff would issue; dev.sk unused */
};

/*
 * Creates the identity in p->dir/name with passphrase pass and a certificate
 * (serial, post, role, valid from an hour ago for a day) signed by p's root.
 * person_id NULL: the person is the device (one device per person).
 */
int side_make(const struct tpki *p, struct side *s, const char *name, const char *post,
              const char *role, uint64_t serial, const uint8_t *person_id,
              const char *pass) VL_MUST_CHECK;
/* The same with a certificate valid from not_before (messages dated back to it verify). */
int side_make_from(const struct tpki *p, struct side *s, const char *name, const char *post,
                   const char *role, uint64_t serial, const uint8_t *person_id, const char *pass,
                   uint64_t not_before) VL_MUST_CHECK;

/*
 * Opens the mailbox (unless already open) and enrols it with the relay on
 * ws://127.0.0.1:port, relay id "valise-relay", with p's org.pub.
 */
int side_enroll(const struct tpki *p, struct side *s, int port, const char *pass) VL_MUST_CHECK;

#endif
