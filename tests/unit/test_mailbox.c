/*
 * test_mailbox.c - the client engine without a network (client/mailbox.h):
 * enrolment refuses another device's certificate, another organisation and a
 * non-loopback ws:// relay; a directory older than one seen is refused
 * (rollback) and nothing changes; send works offline, is durable across a
 * reopen, shows "waiting for directory", and its text never appears in the
 * raw store files; a wrong passphrase opens nothing.
 */
#include "testutil.h"

#include <unistd.h>

#include "client_fixture.h"
#include "fileio.h"
#include "identity.h"
#include "mailbox.h"

static const char pass[] = "mailbox test passphrase";
static char tmp[64], home[128];
static struct fx_org org, other_org;
static struct fx_dev self_dev, peer;
static uint8_t cert_bytes[CERT_MAX_LEN];
static size_t cert_len;
static struct buf orgpub_bytes, other_orgpub_bytes;

static int setup(void **state)
{
    char req[160];
    uint8_t devid[DEVICE_ID_LEN];
    struct identity id;
    struct buf b;
    (void)state;

    if (sodium_init() < 0)
        return -1;
    memcpy(tmp, "/tmp/valise-mbox.XXXXXX", 24);
    if (mkdtemp(tmp) == NULL)
        return -1;
    snprintf(home, sizeof(home), "%s/home", tmp);
    snprintf(req, sizeof(req), "%s/req", tmp);
    if (identity_create(home, "Anna", pass, req, devid) != 0 ||
        identity_unlock(home, pass, &id) != 0)
        return -1;
    fx_org_init(&org);
    fx_org_init(&other_org);
    /* This device's own certificate, made from its keys. */
    if (fx_dev_make(&org, &self_dev, 1, "Anna", "HQ", "duty", 30) != 0)
        return -1;
    memcpy(self_dev.cert.device_id, id.device_id, DEVICE_ID_LEN);
    memcpy(self_dev.cert.sign_pk, id.sign_pk, SIG_PK_LEN);
    memcpy(self_dev.cert.dh_pk, id.dh_pk, DH_PK_LEN);
    identity_free(&id);
    if (buf_init(&b, CERT_MAX_LEN, 0) != 0 || cert_sign(&self_dev.cert, org.sk, &b) != 0)
        return -1;
    memcpy(cert_bytes, buf_data(&b), buf_size(&b));
    cert_len = buf_size(&b);
    buf_free(&b);
    if (fx_dev_make(&org, &peer, 2, "Budi", "JKT", "ambassador", 30) != 0)
        return -1;
    if (orgpub_encode(&org.pub, &orgpub_bytes) != 0 ||
        orgpub_encode(&other_org.pub, &other_orgpub_bytes) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    buf_free(&orgpub_bytes);
    buf_free(&other_orgpub_bytes);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_enroll_refusals(void **state)
{
    struct mbox *m;
    struct buf b;
    uint8_t peer_cert[CERT_MAX_LEN];
    size_t peer_len;
    uint64_t now = (uint64_t)time(NULL);
    (void)state;

    assert_int_equal(mbox_open(&m, home, pass), 0);
    assert_false(mbox_enrolled(m));
    assert_int_equal(buf_init(&b, CERT_MAX_LEN, 0), 0);
    assert_int_equal(cert_encode(&peer.cert, &b), 0);
    memcpy(peer_cert, buf_data(&b), buf_size(&b));
    peer_len = buf_size(&b);
    buf_free(&b);
    /* Another device's certificate. */
    assert_int_equal(mbox_enroll(m, peer_cert, peer_len, buf_data(&orgpub_bytes),
                                 buf_size(&orgpub_bytes), "ws://127.0.0.1:1", "valise-relay", NULL, now),
                     VERR_DENIED);
    /* Our certificate, but checked against another organisation's root. */
    assert_int_equal(mbox_enroll(m, cert_bytes, cert_len, buf_data(&other_orgpub_bytes),
                                 buf_size(&other_orgpub_bytes), "ws://127.0.0.1:1", "valise-relay", NULL,
                                 now),
                     VERR_WRONG_ORG);
    /* Plain websocket to another machine. */
    assert_int_equal(mbox_enroll(m, cert_bytes, cert_len, buf_data(&orgpub_bytes),
                                 buf_size(&orgpub_bytes), "ws://relay.example:80", "valise-relay",
                                 NULL, now),
                     VERR_DENIED);
    /* A relay id that is not one (PROTOCOL.md part 1 "Relay certificate"). */
    assert_int_equal(mbox_enroll(m, cert_bytes, cert_len, buf_data(&orgpub_bytes),
                                 buf_size(&orgpub_bytes), "ws://127.0.0.1:1", "evil relay", NULL,
                                 now),
                     VERR_USAGE);
    assert_false(mbox_enrolled(m));
    assert_int_equal(mbox_enroll(m, cert_bytes, cert_len, buf_data(&orgpub_bytes),
                                 buf_size(&orgpub_bytes), "ws://127.0.0.1:1", "valise-relay", NULL, now),
                     0);
    assert_string_equal(mbox_relay_id(m), "valise-relay");
    assert_true(mbox_enrolled(m));
    mbox_close(m);
}

static void install(struct mbox *m, uint64_t v, int want)
{
    const struct fx_dev *devs[] = {&self_dev, &peer};
    struct directory *d = NULL;
    struct buf b;

    assert_int_equal(fx_dir(&org, v, devs, 2, NULL, 0, &d, &b), 0);
    assert_int_equal(mbox_install_directory(m, buf_data(&b), buf_size(&b)), want);
    dir_free(d);
    buf_free(&b);
}

static void test_directory_rollback(void **state)
{
    struct mbox *m;
    struct mbox_contact *list = NULL;
    size_t n = 0;
    (void)state;

    assert_int_equal(mbox_open(&m, home, pass), 0);
    install(m, 5, 0);
    install(m, 5, 0);             /* the same version again is fine */
    install(m, 4, VERR_ROLLBACK); /* older than seen: refused */
    install(m, 6, 0);
    mbox_close(m);
    /* The highest version seen survives a restart. */
    assert_int_equal(mbox_open(&m, home, pass), 0);
    install(m, 5, VERR_ROLLBACK);
    /* The directory in use lets us compute a safety number with the peer. */
    assert_int_equal(mbox_fingerprint(m, "ambassador@JKT", (uint64_t)time(NULL), &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(strlen(list[0].safety), MBOX_SAFETY_DIGITS);
    free(list);
    mbox_close(m);
}

static void install_valid(struct mbox *m, uint64_t v, uint64_t issued, uint64_t expires)
{
    const struct fx_dev *devs[] = {&self_dev, &peer};
    struct directory *d = NULL;
    struct buf b;

    assert_int_equal(fx_dir_valid(&org, v, issued, expires, devs, 2, NULL, 0, &d, &b), 0);
    assert_int_equal(mbox_install_directory(m, buf_data(&b), buf_size(&b)), 0);
    dir_free(d);
    buf_free(&b);
}

/*
 * PROTOCOL.md part 4 "Directory freshness": warn within 48 h of expires_at
 * (or a quarter of the period if shorter), expired from expires_at on; a
 * newer directory makes it fresh again.
 */
static void test_directory_freshness(void **state)
{
    const uint64_t t = 1900000000, h = 3600;
    struct mbox *m;
    uint64_t exp;
    (void)state;

    assert_int_equal(mbox_open(&m, home, pass), 0);
    /* 14 days: the warning starts 48 h before the end. */
    install_valid(m, 100, t, t + 14 * 24 * h);
    assert_int_equal(mbox_dir_freshness(m, t, &exp), MBOX_DIR_FRESH);
    assert_int_equal(exp, t + 14 * 24 * h);
    assert_int_equal(mbox_dir_freshness(m, t + 12 * 24 * h - 1, &exp), MBOX_DIR_FRESH);
    assert_int_equal(mbox_dir_freshness(m, t + 12 * 24 * h, &exp), MBOX_DIR_EXPIRING);
    assert_int_equal(mbox_dir_freshness(m, t + 14 * 24 * h - 1, &exp), MBOX_DIR_EXPIRING);
    assert_int_equal(mbox_dir_freshness(m, t + 14 * 24 * h, &exp), MBOX_DIR_EXPIRED);
    /* 7 days (the default): a quarter of it, 42 h, is shorter than 48 h. */
    install_valid(m, 101, t + 14 * 24 * h, t + 21 * 24 * h);
    assert_int_equal(mbox_dir_freshness(m, t + 21 * 24 * h - 42 * h - 1, &exp), MBOX_DIR_FRESH);
    assert_int_equal(mbox_dir_freshness(m, t + 21 * 24 * h - 42 * h, &exp), MBOX_DIR_EXPIRING);
    /* 1 day: a quarter of it (6 h). */
    install_valid(m, 102, t + 10 * 24 * h, t + 11 * 24 * h);
    assert_int_equal(mbox_dir_freshness(m, t + 10 * 24 * h + 18 * h - 1, &exp), MBOX_DIR_FRESH);
    assert_int_equal(mbox_dir_freshness(m, t + 10 * 24 * h + 18 * h, &exp), MBOX_DIR_EXPIRING);
    assert_int_equal(mbox_dir_freshness(m, t + 11 * 24 * h, &exp), MBOX_DIR_EXPIRED);
    /* A newer directory unblocks; the state survives a reopen. */
    install_valid(m, 103, t + 11 * 24 * h, t + 18 * 24 * h);
    mbox_close(m);
    assert_int_equal(mbox_open(&m, home, pass), 0);
    assert_int_equal(mbox_dir_freshness(m, t + 11 * 24 * h, &exp), MBOX_DIR_FRESH);
    assert_int_equal(exp, t + 18 * 24 * h);
    mbox_close(m);
}

static void test_send_offline_durable_encrypted(void **state)
{
    static const char marker[] = "MARKER-offline-telegram-4c1d";
    struct mbox *m;
    struct mbox_draft d;
    struct mbox_out *out = NULL;
    size_t n = 0;
    uint8_t id[INNER_ID_LEN];
    char path[192];
    struct buf raw;
    (void)state;

    assert_int_equal(mbox_open(&m, home, pass), 0);
    memset(&d, 0, sizeof(d));
    d.address = "consul@OSL"; /* nobody there yet */
    d.precedence = 1;
    d.label = "CONFIDENTIAL";
    d.subject = "Offline subject";
    d.content = (const uint8_t *)marker;
    d.content_len = sizeof(marker) - 1;
    assert_int_equal(mbox_send(m, &d, (uint64_t)time(NULL), id), 0);
    d.address = "not an address";
    assert_int_equal(mbox_send(m, &d, (uint64_t)time(NULL), id), VERR_BAD_FORMAT);
    mbox_close(m);
    /* Durable: there after reopening, waiting for a directory that knows consul@OSL. */
    assert_int_equal(mbox_open(&m, home, pass), 0);
    assert_int_equal(mbox_outbox(m, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].address, "consul@OSL");
    assert_string_equal(out[0].label, "CONFIDENTIAL");
    assert_false(out[0].resolved);
    assert_int_equal(out[0].ndev, 0);
    mbox_outbox_free(out, n);
    mbox_close(m);
    snprintf(path, sizeof(path), "%s/store/data.mdb", home);
    assert_int_equal(file_read(path, (size_t)64 << 20, 0, &raw), 0);
    assert_false(
        bytes_contain(buf_data(&raw), buf_size(&raw), (const uint8_t *)marker, sizeof(marker) - 1));
    assert_false(
        bytes_contain(buf_data(&raw), buf_size(&raw), (const uint8_t *)"Offline subject", 15));
    assert_false(bytes_contain(buf_data(&raw), buf_size(&raw), (const uint8_t *)"consul@OSL", 10));
    buf_free(&raw);
}

/* person:NAME behind two persons (two person ids carry "Budi") is refused at
 * send as ambiguous, never queued for both (issue 11 item 1). */
static void test_send_person_ambiguous(void **state)
{
    struct fx_dev namesake;
    const struct fx_dev *devs[] = {&self_dev, &peer, &namesake};
    struct directory *d = NULL;
    struct mbox *m;
    struct mbox_draft dr;
    struct buf b;
    uint8_t id[INNER_ID_LEN];
    (void)state;

    assert_int_equal(fx_dev_make(&org, &namesake, 3, "Budi", "GVA", "clerk", 30), 0);
    assert_int_equal(fx_dev_set_person(&org, &namesake, 0xb0), 0);
    assert_int_equal(mbox_open(&m, home, pass), 0);
    assert_int_equal(fx_dir(&org, 200, devs, 3, NULL, 0, &d, &b), 0);
    assert_int_equal(mbox_install_directory(m, buf_data(&b), buf_size(&b)), 0);
    dir_free(d);
    buf_free(&b);
    memset(&dr, 0, sizeof(dr));
    dr.address = "person:Budi";
    dr.label = "SECRET";
    dr.subject = "for Budi";
    dr.content = (const uint8_t *)"x";
    dr.content_len = 1;
    assert_int_equal(mbox_send(m, &dr, (uint64_t)time(NULL), id), VERR_AMBIGUOUS);
    dr.address = "ambassador@JKT"; /* the same Budi by his role: fine */
    assert_int_equal(mbox_send(m, &dr, (uint64_t)time(NULL), id), 0);
    mbox_close(m);
}

/*
 * A message received later after its signed time than its precedence's
 * time to live is flagged for `read` (boundary: exactly the TTL is not).
 */
static void test_delayed_message_flag(void **state)
{
    struct mbox_msg msg;
    (void)state;

    memset(&msg, 0, sizeof(msg));
    for (uint8_t p = 0; p <= INNER_PRECEDENCE_MAX; p++) {
        msg.precedence = p;
        msg.time = 1800000000;
        msg.received = msg.time + mbox_ttl(p);
        assert_false(mbox_msg_delayed(&msg));
        msg.received++;
        assert_true(mbox_msg_delayed(&msg));
        /* a time ahead of the receipt (clock skew) is never a delay */
        msg.received = msg.time - 1;
        assert_false(mbox_msg_delayed(&msg));
    }
    assert_int_equal(mbox_ttl(0), 2 * 86400);
    assert_int_equal(mbox_ttl(3), 30 * 86400);
}

static void test_wrong_passphrase(void **state)
{
    struct mbox *m = NULL;
    (void)state;
    assert_int_equal(mbox_open(&m, home, "not the passphrase"), VERR_DECRYPT);
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enroll_refusals),
        cmocka_unit_test(test_directory_rollback),
        cmocka_unit_test(test_send_offline_durable_encrypted),
        cmocka_unit_test(test_wrong_passphrase),
        cmocka_unit_test(test_directory_freshness),
        cmocka_unit_test(test_send_person_ambiguous),
        cmocka_unit_test(test_delayed_message_flag),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
