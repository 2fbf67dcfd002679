/*
 * test_bulk.c - 1,000 messages in both directions, interleaved, through the
 * REAL valise-relay (issue 4): two enrolled devices send 500 messages each
 * to the other, syncing in turns, with both X3DH set-ups crossing in flight.
 * Every message must arrive exactly once and in order per sender, every
 * envelope must end accepted or better, and a sync after everything is in
 * must bring nothing new (no duplicates on retry). Runs at the library
 * level (client/mailbox.h) so it needs no thousand process launches.
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
#include "text.h"

enum { PER_SIDE = 500, SYNC_EVERY = 50 };

static const char pass[] = "bulk test passphrase";




static void sync_ok(struct side *s, struct mbox_sync_stats *st)
{
    struct mbox_sync_opts o = {.quiet_ms = 150, .timeout_ms = 10000};
    int r = mbox_sync(s->m, &o, st);
    if (r != 0)
        fail_msg("sync of %s failed: %s (relay reason %u)", s->home, verr_str(r), st->relay_reason);
}

static void send_to(struct side *from, const struct side *to, const char *tag, int i)
{
    char addr[64] = "device:", hex[33], subject[32], body[64];
    struct mbox_draft d;
    uint8_t id[INNER_ID_LEN];

    assert_int_equal(text_hex_encode(hex, sizeof(hex), to->dev.cert.device_id, DEVICE_ID_LEN), 0);
    memcpy(addr + 7, hex, 33);
    snprintf(subject, sizeof(subject), "%s-%04d", tag, i);
    snprintf(body, sizeof(body), "body of %s-%04d", tag, i);
    memset(&d, 0, sizeof(d));
    d.address = addr;
    d.precedence = 3;
    d.label = "RESTRICTED";
    d.subject = subject;
    d.content = (const uint8_t *)body;
    d.content_len = strlen(body);
    assert_int_equal(mbox_send(from->m, &d, (uint64_t)time(NULL), id), 0);
}

/* The inbox holds exactly tag-0000 .. tag-(n-1), once each, in that order. */
static int inbox_complete(struct side *s, const char *tag, int n, int strict)
{
    struct mbox_msg *list = NULL;
    size_t cnt = 0;
    int ok = 1;

    assert_int_equal(mbox_inbox(s->m, &list, &cnt), 0);
    if (cnt != (size_t)n) {
        if (strict)
            fprintf(stderr, "%s: expected %d messages, saw %zu\n", s->home, n, cnt);
        free(list);
        return 0;
    }
    for (size_t i = 0; i < cnt; i++) {
        char want[32];
        snprintf(want, sizeof(want), "%s-%04zu", tag, i);
        if (strcmp(list[i].subject, want) != 0) {
            if (strict)
                fprintf(stderr, "%s: message %zu: expected %s, saw %s\n", s->home, i, want,
                        list[i].subject);
            ok = 0;
            break;
        }
        if (strcmp(list[i].sender_role, "duty") != 0)
            ok = 0;
    }
    free(list);
    return ok;
}

static int all_accepted(struct side *s, size_t n)
{
    struct mbox_out *list = NULL;
    size_t cnt = 0, good = 0;

    assert_int_equal(mbox_outbox(s->m, &list, &cnt), 0);
    for (size_t i = 0; i < cnt; i++)
        for (size_t j = 0; j < list[i].ndev; j++)
            if (list[i].dev[j].state == MBOX_ENV_ACCEPTED ||
                list[i].dev[j].state == MBOX_ENV_DELIVERED)
                good++;
    mbox_outbox_free(list, cnt);
    if (good != n)
        fprintf(stderr, "%s: %zu of %zu envelopes accepted or delivered\n", s->home, good, n);
    return good == n;
}

static void test_thousand_interleaved(void **state)
{
    struct tpki p;
    struct trelay relay;
    struct side a, b;
    struct mbox_sync_stats st;
    (void)state;

    assert_int_equal(tpki_init(&p), 0);
    assert_int_equal(side_make(&p, &a, "alpha", "HQ", "duty", 1, NULL, pass), 0);
    assert_int_equal(side_make(&p, &b, "bravo", "JKT", "duty", 2, NULL, pass), 0);
    {
        const struct tdev *devs[] = {&a.dev, &b.dev};
        assert_int_equal(tpki_write_dir(&p, 1, devs, 2, NULL, 0), 0);
    }
    assert_int_equal(trelay_start(&relay, &p, NULL), 0);
    assert_int_equal(side_enroll(&p, &a, relay.port, pass), 0);
    assert_int_equal(side_enroll(&p, &b, relay.port, pass), 0);
    /* Each publishes its prekeys; neither has a session yet, so both X3DH set-ups cross. */
    sync_ok(&a, &st);
    sync_ok(&b, &st);
    for (int i = 0; i < PER_SIDE; i++) {
        send_to(&a, &b, "A", i);
        send_to(&b, &a, "B", i);
        if ((i + 1) % SYNC_EVERY == 0) {
            sync_ok(&a, &st);
            sync_ok(&b, &st);
        }
    }
    for (int round = 0; round < 10; round++) {
        sync_ok(&a, &st);
        sync_ok(&b, &st);
        if (inbox_complete(&a, "B", PER_SIDE, 0) && inbox_complete(&b, "A", PER_SIDE, 0))
            break;
    }
    assert_true(inbox_complete(&a, "B", PER_SIDE, 1));
    assert_true(inbox_complete(&b, "A", PER_SIDE, 1));
    /* Nothing new on another pass: no duplicates after retries. */
    sync_ok(&a, &st);
    assert_int_equal(st.received, 0);
    sync_ok(&b, &st);
    assert_int_equal(st.received, 0);
    assert_true(inbox_complete(&a, "B", PER_SIDE, 1));
    assert_true(inbox_complete(&b, "A", PER_SIDE, 1));
    assert_true(all_accepted(&a, PER_SIDE));
    assert_true(all_accepted(&b, PER_SIDE));
    mbox_close(a.m);
    mbox_close(b.m);
    assert_int_equal(trelay_signal(&relay, SIGTERM), 0);
    tpki_cleanup(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thousand_interleaved),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
