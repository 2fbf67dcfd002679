/*
 * test_relay_identity.c - the client authenticates only to the relay it was
 * enrolled with (issue 11 item 3), against the REAL valise-relay: a relay
 * whose certificate is of another organisation, names another relay id, or
 * has expired is refused before any AUTH is sent (the relay's log shows no
 * authentication attempt); under TLS both sides bind the handshake to the
 * connection with the RFC 9266 tls-exporter, so an AUTH signed over another
 * binding is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <signal.h>
#include <sodium.h>

#include "fileio.h"
#include "identity.h"
#include "mailbox.h"
#include "relaytest.h"
#include "transport.h"

static const char pass[] = "relay identity test passphrase";

struct fixture {
    struct tpki pki, other;
    char home[TPATH];
    struct tdev dev; /* the device's certificate (keys from its identity) */
    struct mbox *m;
};

static struct fixture F;

static int setup(void **state)
{
    char req[TPATH + 8];
    uint8_t devid[DEVICE_ID_LEN];
    struct identity id;
    struct buf b;
    const struct tdev *devs[1] = {&F.dev};

    memset(&F, 0, sizeof(F));
    assert_int_equal(tpki_init(&F.pki), 0);
    assert_int_equal(tpki_init(&F.other), 0);
    assert_int_equal(file_join(F.home, sizeof(F.home), F.pki.dir, "home"), 0);
    snprintf(req, sizeof(req), "%s.req", F.home);
    assert_int_equal(identity_create(F.home, "Anna", pass, req, devid), 0);
    assert_int_equal(identity_unlock(F.home, pass, &id), 0);
    memcpy(F.dev.cert.device_id, id.device_id, DEVICE_ID_LEN);
    memcpy(F.dev.cert.sign_pk, id.sign_pk, SIG_PK_LEN);
    memcpy(F.dev.cert.dh_pk, id.dh_pk, DH_PK_LEN);
    memcpy(F.dev.sk, id.sign_sk, SIG_SK_LEN); /* for AUTHs written by hand */
    identity_free(&id);
    F.dev.cert.serial = 1;
    randombytes_buf(F.dev.cert.person_id, PERSON_ID_LEN);
    memcpy(F.dev.cert.org_id, F.pki.org.id, ORG_ID_LEN);
    snprintf(F.dev.cert.name, sizeof(F.dev.cert.name), "Anna");
    snprintf(F.dev.cert.post, sizeof(F.dev.cert.post), "HQ");
    snprintf(F.dev.cert.role, sizeof(F.dev.cert.role), "duty");
    F.dev.cert.not_before = tnow() - 3600;
    F.dev.cert.not_after = tnow() + 86400;
    assert_int_equal(cert_sign(&F.dev.cert, F.pki.org_sk, &b), 0);
    memcpy(F.dev.cert_bytes, buf_data(&b), buf_size(&b));
    F.dev.cert_len = buf_size(&b);
    buf_free(&b);
    assert_int_equal(tpki_write_dir(&F.pki, 1, devs, 1, NULL, 0), 0);
    assert_int_equal(tpki_write_dir(&F.other, 1, NULL, 0, NULL, 0), 0);
    assert_int_equal(mbox_open(&F.m, F.home, pass), 0);
    *state = &F;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mbox_close(F.m);
    sodium_memzero(F.dev.sk, sizeof(F.dev.sk));
    tpki_cleanup(&F.pki);
    tpki_cleanup(&F.other);
    return 0;
}

/* Enrols the device with the relay at url as relay id "valise-relay". */
static void enroll(const char *url, const char *ca)
{
    struct buf org;

    assert_int_equal(file_read(F.pki.orgpub_path, ORGPUB_MAX_LEN, 0, &org), 0);
    assert_int_equal(mbox_enroll(F.m, F.dev.cert_bytes, F.dev.cert_len, buf_data(&org),
                                 buf_size(&org), url, "valise-relay", ca, tnow()),
                     0);
    buf_free(&org);
}

/* Starts a relay of p with a fresh log (trelay_start appends), so the log is this run's only. */
static void start_fresh(struct trelay *r, const struct tpki *p, const char *const *args)
{
    char log[TPATH + 16];

    snprintf(log, sizeof(log), "%s/relay.log", p->dir);
    unlink(log);
    assert_int_equal(trelay_start(r, p, args), 0);
}

static int sync_once(struct mbox_sync_stats *st)
{
    struct mbox_sync_opts o = {.quiet_ms = 100, .timeout_ms = 5000};

    return mbox_sync(F.m, &o, st);
}

/*
 * The device syncs with relay r (enrolled for "valise-relay" at r's port):
 * refused before any AUTH, with why in the reason, and r saw no AUTH.
 */
static void expect_unproven(struct trelay *r, const char *why)
{
    static const char auth_ok[] = "authenticated", auth_fail[] = "auth failed";
    struct mbox_sync_stats st;
    char url[64];
    int rc;

    snprintf(url, sizeof(url), "ws://127.0.0.1:%d", r->port);
    enroll(url, NULL);
    rc = sync_once(&st);
    if (rc != VERR_DENIED || st.relay_unproven == NULL || strstr(st.relay_unproven, why) == NULL)
        fail_msg("expected the relay refused (\"%s\"), saw %s, \"%s\"", why, verr_str(rc),
                 st.relay_unproven != NULL ? st.relay_unproven : "(none)");
    assert_int_equal(st.submitted, 0);
    usleep(200000); /* the relay logs what it gets */
    if (trelay_log_contains(r, (const uint8_t *)auth_ok, sizeof(auth_ok) - 1) ||
        trelay_log_contains(r, (const uint8_t *)auth_fail, sizeof(auth_fail) - 1))
        fail_msg("the device sent an AUTH to a relay that did not prove itself");
}

/* Control: the organisation's own relay for "valise-relay" is accepted. */
static void test_enrolled_relay_accepted(void **state)
{
    struct trelay r;
    struct mbox_sync_stats st;
    char url[64];
    int rc;

    (void)state;
    assert_int_equal(trelay_start(&r, &F.pki, NULL), 0);
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d", r.port);
    enroll(url, NULL);
    rc = sync_once(&st);
    if (rc != 0)
        fail_msg("sync with the enrolled relay: %s (%s)", verr_str(rc),
                 st.relay_unproven != NULL ? st.relay_unproven : "");
    trelay_signal(&r, SIGTERM);
}

/* A relay certified by another organisation's root (its own, valid for itself). */
static void test_relay_of_other_org_refused(void **state)
{
    struct trelay r;

    (void)state;
    start_fresh(&r, &F.other, NULL);
    expect_unproven(&r, "of another organisation");
    trelay_signal(&r, SIGKILL);
}

/* This organisation's relay certificate, but for another relay id (the MITM of issue 11). */
static void test_relay_with_other_id_refused(void **state)
{
    static char data[TPATH + 16];
    static const char *args[] = {"--relay-id", "evil-relay", "--data", data, NULL};
    struct trelay r;

    (void)state;
    snprintf(data, sizeof(data), "%s/evil-data", F.pki.dir);
    start_fresh(&r, &F.pki, args);
    expect_unproven(&r, "names another relay id");
    trelay_signal(&r, SIGKILL);
}

/* A relay certificate that was valid at the relay's start and has expired since. */
static void test_expired_relay_cert_refused(void **state)
{
    static char path[TPATH + 16];
    static const char *args[] = {"--relay-cert", path, NULL};
    struct trelay r;
    uint64_t now = tnow();

    (void)state;
    snprintf(path, sizeof(path), "%s/short.cert", F.pki.dir);
    assert_int_equal(tpki_relay_cert(&F.pki, F.pki.data_path, "valise-relay", now - 60, now + 2,
                                     path),
                     0);
    start_fresh(&r, &F.pki, args);
    while (tnow() < now + 3)
        usleep(100000);
    expect_unproven(&r, "has expired");
    trelay_signal(&r, SIGKILL);
}

/*
 * TLS: the tls-exporter is non-zero and the same on both sides (the real
 * client authenticates over wss://), and an AUTH signed over the zero
 * binding of plain ws:// is refused on a TLS connection.
 */
static void test_tls_channel_binding(void **state)
{
    static const uint8_t zero[CTP_BINDING_LEN];
    static char crt[TPATH + 16], key[TPATH + 16], cmd[3 * TPATH];
    static const char *args[] = {"--tls-cert", crt, "--tls-key", key, NULL};
    struct trelay r;
    struct mbox_sync_stats st;
    struct ctp *c;
    struct buf msg, out;
    struct wire_msg m;
    uint8_t cn[WIRE_NONCE_LEN], bind[CTP_BINDING_LEN];
    char url[64];
    int rc;

    (void)state;
    snprintf(crt, sizeof(crt), "%s/tls.crt", F.pki.dir);
    snprintf(key, sizeof(key), "%s/tls.key", F.pki.dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
             ">/dev/null 2>&1",
             key, crt);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(trelay_start(&r, &F.pki, args), 0);
    snprintf(url, sizeof(url), "wss://127.0.0.1:%d", r.port);
    enroll(url, crt);
    rc = sync_once(&st);
    if (rc != 0)
        fail_msg("sync over TLS: %s (%s)", verr_str(rc),
                 st.relay_unproven != NULL ? st.relay_unproven : "");
    /* by hand: the binding is not zero, and a zero-binding AUTH is refused */
    assert_int_equal(buf_init(&out, 1024, 0), 0);
    assert_int_equal(ctp_connect(&c, url, crt, 5000), 0);
    randombytes_buf(cn, sizeof(cn));
    assert_int_equal(wire_put_hello(&out, cn), 0);
    assert_int_equal(ctp_send(c, buf_data(&out), buf_size(&out)), 0);
    assert_int_equal(ctp_recv(c, &msg, 5000), 0);
    assert_int_equal(wire_decode(buf_data(&msg), buf_size(&msg), &m), 0);
    assert_int_equal(m.type, WIRE_CHALLENGE);
    assert_int_equal(ctp_channel_binding(c, bind), 0);
    assert_memory_not_equal(bind, zero, sizeof(bind));
    buf_reset(&out);
    assert_int_equal(tc_auth_msg(&F.dev, cn, &m, zero, &out), 0);
    buf_free(&msg);
    assert_int_equal(ctp_send(c, buf_data(&out), buf_size(&out)), 0);
    assert_int_equal(ctp_recv(c, &msg, 5000), 0);
    assert_int_equal(wire_decode(buf_data(&msg), buf_size(&msg), &m), 0);
    if (m.type != WIRE_ERROR || m.u.error.reason != WIRE_R_BAD_SIGNATURE)
        fail_msg("AUTH over the zero binding under TLS: expected ERROR bad_signature, saw %s",
                 wire_type_name(m.type));
    buf_free(&msg);
    buf_free(&out);
    ctp_close(c);
    trelay_signal(&r, SIGTERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enrolled_relay_accepted),
        cmocka_unit_test(test_relay_of_other_org_refused),
        cmocka_unit_test(test_relay_with_other_id_refused),
        cmocka_unit_test(test_expired_relay_cert_refused),
        cmocka_unit_test(test_tls_channel_binding),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
