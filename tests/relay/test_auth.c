/* test_auth.c - relay device authentication: success and every failure (issue 3). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "fileio.h"
#include "relaytest.h"
#include "sig.h"

struct fixture {
    struct tpki pki, other;
    struct tdev good, expired, revoked, stranger, future;
    struct trelay relay;
};

static int setup(void **state)
{
    static struct fixture f;
    const struct tdev *devs[4];
    const struct tdev *revs[1];
    uint64_t now = tnow();

    memset(&f, 0, sizeof(f));
    assert_int_equal(tpki_init(&f.pki), 0);
    assert_int_equal(tpki_init(&f.other), 0);
    assert_int_equal(tdev_make(&f.pki, &f.good, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.expired, 2, now - 7200, now - 3600), 0);
    assert_int_equal(tdev_make(&f.pki, &f.revoked, 3, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.future, 4, now + 3600, now + 86400), 0);
    assert_int_equal(tdev_make(&f.other, &f.stranger, 1, now - 60, now + 86400), 0);
    devs[0] = &f.good;
    devs[1] = &f.expired;
    devs[2] = &f.revoked;
    devs[3] = &f.future;
    revs[0] = &f.revoked;
    assert_int_equal(tpki_write_dir(&f.pki, 1, devs, 4, revs, 1), 0);
    /* settings from a config file; the command line wins over it */
    static char conf[TPATH + 16];
    static const char text[] = "# test relay\nrelay-id = relay-from-config\n"
                               "idle-timeout 30\nlog-level info\n";
    snprintf(conf, sizeof(conf), "%s/relay.conf", f.pki.dir);
    assert_int_equal(file_write_new(conf, (const uint8_t *)text, sizeof(text) - 1, 0600), 0);
    /* the relay's certificate names the relay id the config file gives */
    static char rcert[TPATH + 32];
    snprintf(rcert, sizeof(rcert), "%s/relay-from-config.cert", f.pki.dir);
    assert_int_equal(tpki_relay_cert(&f.pki, f.pki.data_path, "relay-from-config", now - 60,
                                     now + 86400, rcert),
                     0);
    static const char *args[] = {"--config", NULL, "--log-level", "debug", "--relay-cert", NULL,
                                 NULL};
    args[1] = conf;
    args[5] = rcert;
    assert_int_equal(trelay_start(&f.relay, &f.pki, args), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    trelay_signal(&f->relay, SIGKILL);
    tpki_cleanup(&f->pki);
    tpki_cleanup(&f->other);
    return 0;
}

static void expect_refused(struct fixture *f, const struct tdev *d, uint16_t want)
{
    struct wsc c;
    uint16_t reason = 0;
    int r = tc_auth(&c, f->relay.port, d, &reason);

    if (r != VERR_DENIED || reason != want)
        fail_msg("expected refusal with reason %s (%u), saw r=%d reason %s (%u)",
                 wire_reason_name(want), want, r, wire_reason_name(reason), reason);
    /* and the relay closes the connection */
    assert_true(wsc_wait_closed(&c, TWAIT));
    wsc_close(&c);
}

static void test_auth_ok(void **state)
{
    struct fixture *f = *state;
    struct wsc c;
    uint16_t reason;

    assert_int_equal(tc_auth(&c, f->relay.port, &f->good, &reason), 0);
    wsc_close(&c);
}

static void test_other_org(void **state)
{
    struct fixture *f = *state;
    expect_refused(f, &f->stranger, WIRE_R_WRONG_ORG);
}

static void test_expired(void **state)
{
    struct fixture *f = *state;
    expect_refused(f, &f->expired, WIRE_R_CERT_EXPIRED);
}

/*
 * A certificate that expires while its session is open: at the periodic
 * sweep after not_after the relay sends ERROR cert_expired and closes the
 * connection, and a new AUTH is refused.
 */
static void test_expires_mid_session(void **state)
{
    struct fixture *f = *state;
    struct tdev shortlived;
    struct buf msg;
    struct wire_msg m;
    struct wsc c;
    uint16_t reason;
    uint64_t now = tnow(), not_after = now + 2;
    static const uint8_t logline[] = "certificate expired, session closed";

    assert_int_equal(tdev_make(&f->pki, &shortlived, 6, now - 60, not_after), 0);
    assert_int_equal(buf_init(&msg, 1 << 20, 0), 0);
    assert_int_equal(tc_auth(&c, f->relay.port, &shortlived, &reason), 0);
    /* served until not_after, then closed within the sweep interval */
    assert_int_equal(tc_expect(&c, &msg, &m, WIRE_ERROR, TWAIT), 0);
    if (m.u.error.reason != WIRE_R_CERT_EXPIRED)
        fail_msg("expected ERROR cert_expired, saw %s", wire_reason_name(m.u.error.reason));
    if (tnow() < not_after)
        fail_msg("session closed at %llu, before not_after %llu", (unsigned long long)tnow(),
                 (unsigned long long)not_after);
    assert_true(wsc_wait_closed(&c, TWAIT));
    wsc_close(&c);
    assert_true(trelay_log_contains(&f->relay, logline, sizeof(logline) - 1));
    buf_free(&msg);
    expect_refused(f, &shortlived, WIRE_R_CERT_EXPIRED);
}

static void test_not_yet_valid(void **state)
{
    struct fixture *f = *state;
    expect_refused(f, &f->future, WIRE_R_CERT_NOT_YET_VALID);
}

static void test_revoked(void **state)
{
    struct fixture *f = *state;
    expect_refused(f, &f->revoked, WIRE_R_REVOKED);
}

static void test_bad_signature(void **state)
{
    struct fixture *f = *state;
    struct tdev wrong = f->good;

    /* the good certificate, but signed with another key */
    uint8_t pk[SIG_PK_LEN];
    crypto_sign_keypair(pk, wrong.sk);
    expect_refused(f, &wrong, WIRE_R_BAD_SIGNATURE);
}

/*
 * Issue 6: a valid device edits its own certificate to claim another post or
 * role (to be handed that post's traffic): the root's signature no longer
 * covers it, so the relay refuses it before anything is delivered.
 */
static void test_edited_post_or_role(void **state)
{
    static const struct {
        const char *from, *to;
    } edits[] = {{"HQ", "JK"}, {"duty", "amba"}};
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        struct tdev forged = f->good;
        size_t n = strlen(edits[i].from), hits = 0;

        /* str8 fields: the length byte then the text, edited in place. */
        for (size_t at = 1; at + n <= forged.cert_len; at++)
            if (forged.cert_bytes[at - 1] == n && memcmp(forged.cert_bytes + at, edits[i].from, n) == 0) {
                memcpy(forged.cert_bytes + at, edits[i].to, n);
                hits++;
            }
        assert_int_equal(hits, 1);
        expect_refused(f, &forged, WIRE_R_BAD_SIGNATURE);
    }
}

/* The answer to connection 1's challenge is worthless on connection 2. */
static void test_replayed_answer(void **state)
{
    struct fixture *f = *state;
    struct wsc c1, c2;
    struct buf msg, auth;
    struct wire_msg m;
    uint8_t cn1[WIRE_NONCE_LEN], cn2[WIRE_NONCE_LEN];
    uint16_t reason;

    assert_int_equal(buf_init(&msg, 1 << 20, 0), 0);
    assert_int_equal(buf_init(&auth, 1024, 0), 0);
    assert_int_equal(tc_hello(&c1, f->relay.port, cn1, &msg, &m, &reason), 0);
    assert_int_equal(tc_auth_msg(&f->good, cn1, &m, NULL, &auth), 0);
    /* replay on a second connection, which got a different challenge */
    assert_int_equal(tc_hello(&c2, f->relay.port, cn2, &msg, &m, &reason), 0);
    assert_int_equal(tc_send(&c2, &auth), 0);
    assert_int_equal(tc_recv(&c2, &msg, &m, TWAIT), 0);
    if (m.type != WIRE_ERROR || m.u.error.reason != WIRE_R_BAD_SIGNATURE)
        fail_msg("replayed answer: expected ERROR bad_signature, saw type %s reason %u",
                 wire_type_name(m.type), m.type == WIRE_ERROR ? m.u.error.reason : 0);
    assert_true(wsc_wait_closed(&c2, TWAIT));
    /* the original connection still works with its own answer */
    assert_int_equal(tc_send(&c1, &auth), 0);
    assert_int_equal(tc_expect(&c1, &msg, &m, WIRE_AUTH_OK, TWAIT), 0);
    wsc_close(&c1);
    wsc_close(&c2);
    buf_free(&msg);
    buf_free(&auth);
}

/*
 * The CHALLENGE proves the relay: a relay certificate of this organisation
 * for the configured relay id, and the handshake key's signature over relay
 * id, both nonces and the binding (32 zero bytes on ws://).
 */
static void test_challenge_proves_relay(void **state)
{
    struct fixture *f = *state;
    static const uint8_t zero[WIRE_BINDING_LEN];
    struct wsc c;
    struct buf msg, body;
    struct wire_msg m;
    struct relaycert rc;
    uint8_t cn[WIRE_NONCE_LEN], other[WIRE_NONCE_LEN];
    uint16_t reason;

    assert_int_equal(buf_init(&msg, 1 << 20, 0), 0);
    assert_int_equal(buf_init(&body, WIRE_HANDSHAKE_BODY_MAX, 0), 0);
    assert_int_equal(tc_hello(&c, f->relay.port, cn, &msg, &m, &reason), 0);
    assert_int_equal(relaycert_parse(m.u.challenge.relay_cert, m.u.challenge.relay_cert_len, &rc), 0);
    assert_int_equal(relaycert_verify(&rc, &f->pki.org, tnow()), 0);
    assert_string_equal(rc.relay_id, "relay-from-config");
    assert_int_equal(wire_handshake_body(&body, rc.relay_id, cn, m.u.challenge.nonce, zero), 0);
    assert_int_equal(sig_verify(m.u.challenge.sig, SIG_CTX_RELAY_CHALLENGE, buf_data(&body),
                                buf_size(&body), rc.pk),
                     0);
    /* the signature covers the client's nonce: another nonce does not verify */
    memcpy(other, cn, sizeof(other));
    other[0] ^= 1;
    buf_reset(&body);
    assert_int_equal(wire_handshake_body(&body, rc.relay_id, other, m.u.challenge.nonce, zero), 0);
    assert_int_equal(sig_verify(m.u.challenge.sig, SIG_CTX_RELAY_CHALLENGE, buf_data(&body),
                                buf_size(&body), rc.pk),
                     VERR_BAD_SIGNATURE);
    wsc_close(&c);
    buf_free(&msg);
    buf_free(&body);
}

/*
 * An AUTH signed over another channel binding (a relayed AUTH from a TLS
 * connection the attacker terminated) is refused.
 */
static void test_wrong_binding(void **state)
{
    struct fixture *f = *state;
    uint8_t bind[WIRE_BINDING_LEN], cn[WIRE_NONCE_LEN];
    struct wsc c;
    struct buf msg, auth;
    struct wire_msg m;
    uint16_t reason;

    memset(bind, 0x42, sizeof(bind));
    assert_int_equal(buf_init(&msg, 1 << 20, 0), 0);
    assert_int_equal(buf_init(&auth, 1024, 0), 0);
    assert_int_equal(tc_hello(&c, f->relay.port, cn, &msg, &m, &reason), 0);
    assert_int_equal(tc_auth_msg(&f->good, cn, &m, bind, &auth), 0);
    assert_int_equal(tc_send(&c, &auth), 0);
    assert_int_equal(tc_recv(&c, &msg, &m, TWAIT), 0);
    if (m.type != WIRE_ERROR || m.u.error.reason != WIRE_R_BAD_SIGNATURE)
        fail_msg("AUTH over another binding: expected ERROR bad_signature, saw %s reason %u",
                 wire_type_name(m.type), m.type == WIRE_ERROR ? m.u.error.reason : 0);
    assert_true(wsc_wait_closed(&c, TWAIT));
    wsc_close(&c);
    buf_free(&msg);
    buf_free(&auth);
}

/* AUTH before HELLO: there is no challenge to answer. */
static void test_auth_before_hello(void **state)
{
    struct fixture *f = *state;
    uint8_t sig[SIG_LEN] = {0};
    struct wsc c;
    struct buf msg;
    struct wire_msg m;

    assert_int_equal(buf_init(&msg, 1 << 20, 0), 0);
    assert_int_equal(wsc_connect(&c, f->relay.port, "valise.v1", TWAIT), 0);
    assert_int_equal(wire_put_auth(&msg, f->good.cert_bytes, f->good.cert_len, sig), 0);
    assert_int_equal(tc_send(&c, &msg), 0);
    assert_int_equal(tc_recv(&c, &msg, &m, TWAIT), 0);
    assert_int_equal(m.type, WIRE_ERROR);
    assert_int_equal(m.u.error.reason, WIRE_R_NOT_AUTHENTICATED);
    assert_true(wsc_wait_closed(&c, TWAIT));
    wsc_close(&c);
    buf_free(&msg);
}

/* Expects valise-relay to refuse to start (exit non-zero) with a log line holding want. */
static void expect_start_refused(struct tpki *p, const char *const *args, const char *want)
{
    struct trelay r;

    if (trelay_start(&r, p, args) != VERR_IO)
        fail_msg("expected the relay to refuse to start (%s)", want);
    if (!trelay_log_contains(&r, (const uint8_t *)want, strlen(want)))
        fail_msg("relay log lacks \"%s\"", want);
}

/*
 * At start the relay checks its certificate against --org-pub, its handshake
 * key and --relay-id, and refuses to start without one.
 */
static void test_relay_identity_refused(void **state)
{
    struct fixture *f = *state;
    uint64_t now = tnow();
    char path[TPATH + 32];
    const char *args[] = {"--relay-cert", path, NULL};
    const char *args_id[] = {"--relay-cert", path, "--relay-id", "valise-relay", NULL};
    const char *none[] = {"--relay-cert", "/nonexistent/relay.cert", NULL};

    snprintf(path, sizeof(path), "%s/start.cert", f->other.dir);
    /* signed by another organisation's root than --org-pub */
    assert_int_equal(tpki_relay_cert(&f->pki, f->other.data_path, "valise-relay", now - 60,
                                     now + 86400, path),
                     0);
    expect_start_refused(&f->other, args, "signed by another organisation");
    /* this organisation, another relay id */
    assert_int_equal(tpki_relay_cert(&f->other, f->other.data_path, "evil-relay", now - 60,
                                     now + 86400, path),
                     0);
    expect_start_refused(&f->other, args_id, "is for relay id \"evil-relay\"");
    /* expired */
    assert_int_equal(tpki_relay_cert(&f->other, f->other.data_path, "valise-relay", now - 7200,
                                     now - 3600, path),
                     0);
    expect_start_refused(&f->other, args, "ask IT for a new one");
    /* another relay's key: the certificate names the key of f->pki's relay */
    assert_int_equal(tpki_relay_cert(&f->other, f->pki.data_path, "valise-relay", now - 60,
                                     now + 86400, path),
                     0);
    expect_start_refused(&f->other, args, "certifies another handshake key");
    /* no certificate at all */
    expect_start_refused(&f->other, none, "--relay-cert /nonexistent/relay.cert");
}

/* Nothing but AUTH is accepted before authentication. */
static void test_message_before_auth(void **state)
{
    struct fixture *f = *state;
    struct wsc c;
    struct buf msg;
    struct wire_msg m;

    assert_int_equal(buf_init(&msg, 1 << 20, 0), 0);
    assert_int_equal(wsc_connect(&c, f->relay.port, "valise.v1", TWAIT), 0);
    assert_int_equal(wire_put_directory(&msg, WIRE_DIRECTORY_GET, NULL, 0), 0);
    assert_int_equal(tc_send(&c, &msg), 0);
    assert_int_equal(tc_recv(&c, &msg, &m, TWAIT), 0);
    assert_int_equal(m.type, WIRE_ERROR);
    assert_int_equal(m.u.error.reason, WIRE_R_NOT_AUTHENTICATED);
    assert_true(wsc_wait_closed(&c, TWAIT));
    wsc_close(&c);
    buf_free(&msg);
}

/* /healthz answers and /metrics counts the failures above. */
static void test_health_and_metrics(void **state)
{
    struct fixture *f = *state;
    struct buf body;
    char text[65536];

    assert_int_equal(buf_init(&body, 1 << 20, 0), 0);
    assert_int_equal(http_get(f->relay.port, "/healthz", &body, TWAIT), 200);
    assert_int_equal(http_get(f->relay.port, "/metrics", &body, TWAIT), 200);
    assert_true(buf_size(&body) < sizeof(text));
    memcpy(text, buf_data(&body), buf_size(&body));
    text[buf_size(&body)] = '\0';
    if (strstr(text, "valise_relay_auth_total{result=\"ok\"}") == NULL ||
        strstr(text, "valise_relay_commit_seconds_bucket") == NULL ||
        strstr(text, "valise_relay_queue_depth") == NULL)
        fail_msg("metrics lack expected names:\n%s", text);
    assert_null(strstr(text, "valise_relay_auth_total{result=\"fail\"} 0\n"));
    assert_int_equal(http_get(f->relay.port, "/nope", &body, TWAIT), 404);
    buf_free(&body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_ok),
        cmocka_unit_test(test_other_org),
        cmocka_unit_test(test_edited_post_or_role),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_not_yet_valid),
        cmocka_unit_test(test_expires_mid_session),
        cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_replayed_answer),
        cmocka_unit_test(test_challenge_proves_relay),
        cmocka_unit_test(test_wrong_binding),
        cmocka_unit_test(test_auth_before_hello),
        cmocka_unit_test(test_relay_identity_refused),
        cmocka_unit_test(test_message_before_auth),
        cmocka_unit_test(test_health_and_metrics),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
