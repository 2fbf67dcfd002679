/*
 * test_receipts.c - receipts that cost less (issue 13 item 3), with the
 * real valise-relay and the client library:
 *  - test_receipts_travel_together: three messages from one sender taken by
 *    one sync are confirmed by one receipt envelope; the one read at once
 *    (before that receipt went out) is confirmed delivered and read by the
 *    same entry; the two read later by one more envelope; the sender's
 *    outbox moves each device to "read".
 *  - test_store_from_version_1: a store kept from before inner version 2
 *    (a queued message and a received one in the version 1 encoding) is
 *    still read, and the queued one goes out signed again as version 2.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <signal.h>
#include <sodium.h>

#include "fileio.h"
#include "identity.h"
#include "mailbox.h"
#include "clientside.h"
#include "relaytest.h"
#include "sig.h"
#include "store.h"
#include "text.h"

static const char pass[] = "receipts test passphrase";




/* `run`-like: the diplomat opens the first new message as soon as it shows. */
struct read_at_once {
    struct mbox *m;
    int done;
};

static void on_event(void *ctx, int kind, const struct mbox_msg *msg)
{
    struct read_at_once *ra = ctx;
    struct mbox_msg full;
    char hex[2 * INNER_ID_LEN + 1];

    if (kind != MBOX_EV_MESSAGE || ra->done)
        return;
    assert_int_equal(text_hex_encode(hex, sizeof(hex), msg->id, INNER_ID_LEN), 0);
    assert_int_equal(mbox_read(ra->m, hex, (uint64_t)time(NULL), &full), 0);
    mbox_msg_clear(&full);
    ra->done = 1;
}

static void sync_ok(struct side *s, struct read_at_once *ra, struct mbox_sync_stats *st)
{
    struct mbox_sync_opts o = {.quiet_ms = 150, .timeout_ms = 10000};
    int r;

    if (ra != NULL) {
        o.event = on_event;
        o.event_ctx = ra;
    }
    r = mbox_sync(s->m, &o, st);
    if (r != 0 || !st->complete)
        fail_msg("sync of %s: %s", s->home, verr_str(r));
}

static void send_one(struct side *from, const char *subject)
{
    uint8_t id[INNER_ID_LEN];
    struct mbox_draft d;

    memset(&d, 0, sizeof(d));
    d.address = "duty@JKT";
    d.precedence = WIRE_ROUTINE;
    d.label = "RESTRICTED";
    d.subject = subject;
    d.content = (const uint8_t *)subject;
    d.content_len = strlen(subject);
    assert_int_equal(mbox_send(from->m, &d, (uint64_t)time(NULL), id), 0);
}

/* How many of HQ's message envelopes are in state. */
static size_t outbox_in_state(struct side *s, int state)
{
    struct mbox_out *list = NULL;
    size_t n = 0, k = 0;

    assert_int_equal(mbox_outbox(s->m, &list, &n), 0);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < list[i].ndev; j++)
            k += list[i].dev[j].state == state;
    mbox_outbox_free(list, n);
    return k;
}

static void test_receipts_travel_together(void **state)
{
    struct tpki p;
    struct trelay relay;
    struct side hq, jkt;
    struct read_at_once ra = {0};
    struct mbox_sync_stats st;
    struct mbox_msg *list = NULL, msg;
    size_t n = 0;
    (void)state;

    assert_int_equal(tpki_init(&p), 0);
    assert_int_equal(side_make(&p, &hq, "hq", "HQ", "duty", 1, NULL, pass), 0);
    assert_int_equal(side_make(&p, &jkt, "jakarta", "JKT", "duty", 2, NULL, pass), 0);
    {
        const struct tdev *devs[] = {&hq.dev, &jkt.dev};
        assert_int_equal(tpki_write_dir(&p, 1, devs, 2, NULL, 0), 0);
    }
    assert_int_equal(trelay_start(&relay, &p, NULL), 0);
    assert_int_equal(side_enroll(&p, &hq, relay.port, pass), 0);
    assert_int_equal(side_enroll(&p, &jkt, relay.port, pass), 0);
    sync_ok(&jkt, NULL, &st); /* prekeys published */
    sync_ok(&hq, NULL, &st);
    send_one(&hq, "first");
    send_one(&hq, "second");
    send_one(&hq, "third");
    sync_ok(&hq, NULL, &st);
    assert_int_equal(st.submitted, 3);

    /* One sync takes all three; the first is read as it shows. */
    ra.m = jkt.m;
    sync_ok(&jkt, &ra, &st);
    assert_int_equal(st.received, 3);
    assert_true(ra.done);
    if (st.receipts_sent != 1)
        fail_msg("expected one receipt envelope for three messages, saw %zu", st.receipts_sent);
    sync_ok(&hq, NULL, &st);
    assert_int_equal(st.receipts, 3); /* entries applied */
    assert_int_equal(outbox_in_state(&hq, MBOX_ENV_READ), 1);
    assert_int_equal(outbox_in_state(&hq, MBOX_ENV_DELIVERED), 2);

    /* The other two read later: their read receipts travel together too. */
    assert_int_equal(mbox_inbox(jkt.m, &list, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        char hex[2 * INNER_ID_LEN + 1];
        if (list[i].read)
            continue;
        assert_int_equal(text_hex_encode(hex, sizeof(hex), list[i].id, INNER_ID_LEN), 0);
        assert_int_equal(mbox_read(jkt.m, hex, (uint64_t)time(NULL), &msg), 0);
        mbox_msg_clear(&msg);
    }
    free(list);
    sync_ok(&jkt, NULL, &st);
    if (st.receipts_sent != 1)
        fail_msg("expected one read receipt envelope for two messages, saw %zu", st.receipts_sent);
    sync_ok(&hq, NULL, &st);
    assert_int_equal(st.receipts, 2);
    assert_int_equal(outbox_in_state(&hq, MBOX_ENV_READ), 3);

    mbox_close(hq.m);
    mbox_close(jkt.m);
    (void)trelay_signal(&relay, SIGTERM);
    tpki_cleanup(&p);
}

/* The version 1 encoding of a one-address message, signed with sk (PROTOCOL.md part 4
 * section 1, before issue 12 item 6): no address count. */
static void encode_v1(const struct inner *in, const uint8_t *sk, struct buf *out)
{
    uint8_t sig[SIG_LEN];
    size_t start = buf_size(out);

    assert_int_equal(in->type, INNER_TYPE_MESSAGE);
    assert_int_equal(buf_put_u8(out, 1), 0);
    assert_int_equal(buf_put_u8(out, in->type), 0);
    assert_int_equal(buf_put_bytes(out, in->id, INNER_ID_LEN), 0);
    assert_int_equal(buf_put_bytes(out, in->sender, DEVICE_ID_LEN), 0);
    assert_int_equal(buf_put_str8(out, in->role), 0);
    assert_int_equal(buf_put_u64(out, in->time), 0);
    assert_int_equal(buf_put_str8(out, in->address[0]), 0);
    assert_int_equal(buf_put_u8(out, in->precedence), 0);
    assert_int_equal(buf_put_str8(out, in->label), 0);
    assert_int_equal(buf_put_bytes16(out, in->subject, in->subject_len), 0);
    assert_int_equal(buf_put_bytes32(out, in->content, in->content_len), 0);
    assert_int_equal(sig_sign(sig, SIG_CTX_MESSAGE, buf_data(out) + start, buf_size(out) - start,
                              sk),
                     0);
    assert_int_equal(buf_put_bytes(out, sig, SIG_LEN), 0);
}

struct first_rec {
    enum cstore_table t;
    uint8_t key[8];
    int n;
};

static int each_first(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct first_rec *f = ctx;
    (void)v;
    (void)vl;
    /* outbox: u8 version, u8 kind (1 message); inbox: any record */
    if (kl == 8 && (f->t == CS_INBOX || (vl > 2 && v[1] == 1)) && f->n++ == 0)
        memcpy(f->key, k, 8);
    return 0;
}

/*
 * Rewrites the one message record of table t in s's store with its inner
 * message in the version 1 encoding, signed by signer's key: as a store
 * kept from before version 2 holds it. hdr: bytes before the u32 inner
 * length (outbox 11; inbox 10 + u16 + certificate).
 */
static void make_v1(struct side *s, enum cstore_table t, const char *signer_home)
{
    struct identity own, signer;
    struct cstore *st = NULL;
    struct first_rec f = {t, {0}, 0};
    struct buf rec, enc, out;
    struct inner in;
    size_t hdr;

    mbox_close(s->m);
    s->m = NULL;
    assert_int_equal(identity_unlock(s->home, pass, &own), 0);
    assert_int_equal(identity_unlock(signer_home, pass, &signer), 0);
    assert_int_equal(cstore_open(&st, s->home, own.store_key), 0);
    assert_int_equal(cstore_each(st, t, each_first, &f), 0);
    assert_int_equal(f.n, 1);
    assert_int_equal(cstore_get(st, t, f.key, 8, &rec), 0);
    hdr = t == CS_OUTBOX ? 11 : 10 + 2 + (size_t)((buf_data(&rec)[10] << 8) | buf_data(&rec)[11]);
    assert_int_equal(inner_parse(buf_data(&rec) + hdr + 4, buf_size(&rec) - hdr - 4, &in), 0);
    assert_int_equal(in.version, INNER_VERSION);
    assert_int_equal(buf_init(&enc, INNER_MAX_LEN, BUF_SECRET), 0);
    encode_v1(&in, signer.sign_sk, &enc);
    assert_int_equal(buf_init(&out, hdr + 4 + buf_size(&enc), BUF_SECRET), 0);
    assert_int_equal(buf_put_bytes(&out, buf_data(&rec), hdr), 0);
    assert_int_equal(buf_put_bytes32(&out, buf_data(&enc), buf_size(&enc)), 0);
    assert_int_equal(cstore_begin(st, 1), 0);
    assert_int_equal(cstore_put(st, t, f.key, 8, buf_data(&out), buf_size(&out)), 0);
    assert_int_equal(cstore_commit(st), 0);
    buf_free(&out);
    buf_free(&enc);
    buf_free(&rec);
    cstore_close(st);
    identity_free(&own);
    identity_free(&signer);
    assert_int_equal(mbox_open(&s->m, s->home, pass), 0);
}

static void test_store_from_version_1(void **state)
{
    struct tpki p;
    struct trelay relay;
    struct side hq, jkt;
    struct mbox_sync_stats st;
    struct mbox_msg *list = NULL, msg;
    struct mbox_out *out = NULL;
    size_t n = 0;
    char hex[2 * INNER_ID_LEN + 1];
    (void)state;

    assert_int_equal(tpki_init(&p), 0);
    assert_int_equal(side_make(&p, &hq, "hq", "HQ", "duty", 1, NULL, pass), 0);
    assert_int_equal(side_make(&p, &jkt, "jakarta", "JKT", "duty", 2, NULL, pass), 0);
    {
        const struct tdev *devs[] = {&hq.dev, &jkt.dev};
        assert_int_equal(tpki_write_dir(&p, 1, devs, 2, NULL, 0), 0);
    }
    assert_int_equal(trelay_start(&relay, &p, NULL), 0);
    assert_int_equal(side_enroll(&p, &hq, relay.port, pass), 0);
    assert_int_equal(side_enroll(&p, &jkt, relay.port, pass), 0);
    sync_ok(&jkt, NULL, &st);
    sync_ok(&hq, NULL, &st);

    /* Queued before the upgrade: the outbox shows it, and it goes out as version 2. */
    send_one(&hq, "queued before the upgrade");
    make_v1(&hq, CS_OUTBOX, hq.home);
    assert_int_equal(mbox_outbox(hq.m, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].address, "duty@JKT");
    mbox_outbox_free(out, n);
    sync_ok(&hq, NULL, &st);
    assert_int_equal(st.submitted, 1);
    sync_ok(&jkt, NULL, &st);
    assert_int_equal(st.received, 1);
    assert_int_equal(st.refused, 0);

    /* Received before the upgrade: listed, and its version 1 signature verifies. */
    make_v1(&jkt, CS_INBOX, hq.home);
    assert_int_equal(mbox_inbox(jkt.m, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].address, "duty@JKT");
    assert_string_equal(list[0].subject, "queued before the upgrade");
    assert_int_equal(text_hex_encode(hex, sizeof(hex), list[0].id, INNER_ID_LEN), 0);
    free(list);
    assert_int_equal(mbox_read(jkt.m, hex, (uint64_t)time(NULL), &msg), 0);
    assert_true(msg.sig_ok);
    assert_int_equal(msg.content_len, strlen("queued before the upgrade"));
    mbox_msg_clear(&msg);
    /* Its read receipt (version 2) reaches HQ. */
    sync_ok(&jkt, NULL, &st);
    assert_int_equal(st.receipts_sent, 1);
    sync_ok(&hq, NULL, &st);
    assert_int_equal(outbox_in_state(&hq, MBOX_ENV_READ), 1);

    mbox_close(hq.m);
    mbox_close(jkt.m);
    (void)trelay_signal(&relay, SIGTERM);
    tpki_cleanup(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receipts_travel_together),
        cmocka_unit_test(test_store_from_version_1),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
