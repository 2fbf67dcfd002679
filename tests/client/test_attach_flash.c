/*
 * test_attach_flash.c - FLASH text never waits behind an attachment's
 * download (issue 13 item 2), over the REAL valise-relay at the library
 * level (client/mailbox.h):
 *  - test_flash_during_download: Jakarta downloads HQ's 8 MiB attachment; an
 *    eighth of the way in, HQ sends a FLASH. The relay puts the FLASH between
 *    two chunks (PROTOCOL.md part 2 "Attachments"); Jakarta must store it,
 *    and say so (the `run` event), before the download ends. Before the fix
 *    the DELIVER was held until the whole attachment was fetched.
 * The attachment still arrives whole and saves intact.
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

#include "attach.h"
#include "clientside.h"
#include "fileio.h"
#include "mailbox.h"
#include "mbox_attach.h"
#include "relaytest.h"
#include "text.h"
#include "wire.h"

static const char pass[] = "attachment flash test passphrase";

enum { ATT_SIZE = 8 << 20 }; /* 512 chunks: more than the relay's largest window (2 MiB) */

static void sync_ok(struct side *s, const struct mbox_sync_opts *o, struct mbox_sync_stats *st)
{
    int r = mbox_sync(s->m, o, st);
    if (r != 0)
        fail_msg("sync of %s failed: %s (relay reason %u)", s->home, verr_str(r), st->relay_reason);
}

static void device_addr(char out[64], const struct side *s)
{
    char hex[33];
    assert_int_equal(text_hex_encode(hex, sizeof(hex), s->dev.cert.device_id, DEVICE_ID_LEN), 0);
    snprintf(out, 64, "device:%s", hex);
}

struct probe {
    struct side *hq;
    const struct side *post;
    uint64_t done, total; /* the post's download, as its progress callback last saw it */
    int flash_sent;
    uint64_t flash_stored_at; /* download bytes done when the FLASH was stored; 0: not yet */
    int flash_seen;
};

static void send_text(struct side *from, const struct side *to, uint8_t prec, const char *subject,
                      const struct attach_desc *d)
{
    struct mbox_draft dr;
    struct buf sec;
    uint8_t id[INNER_ID_LEN];
    char addr[64];

    device_addr(addr, to);
    memset(&dr, 0, sizeof(dr));
    dr.address = addr;
    dr.precedence = prec;
    dr.label = "RESTRICTED";
    dr.subject = subject;
    dr.content = (const uint8_t *)"text";
    dr.content_len = 4;
    assert_int_equal(buf_init(&sec, ATTACH_SECTION_MAX, BUF_SECRET), 0);
    if (d != NULL) {
        assert_int_equal(attach_section_encode(d, 1, &sec), 0);
        dr.attach_section = buf_data(&sec);
        dr.attach_section_len = buf_size(&sec);
    }
    assert_int_equal(mbox_send(from->m, &dr, (uint64_t)time(NULL), id), 0);
    buf_free(&sec);
}

/* The post's download: an eighth in, HQ sends a FLASH (HQ's own sync, on its own connection). */
static void on_progress(void *ctx, int upload, uint64_t done, uint64_t total)
{
    struct probe *pr = ctx;
    struct mbox_sync_opts o = {.quiet_ms = 300, .timeout_ms = 10000};
    struct mbox_sync_stats st;

    if (upload)
        return;
    pr->done = done;
    pr->total = total;
    if (!pr->flash_sent && done >= total / 8) {
        send_text(pr->hq, pr->post, WIRE_FLASH, "flash during download", NULL);
        memset(&st, 0, sizeof(st));
        sync_ok(pr->hq, &o, &st);
        assert_int_equal(st.accepted, 1);
        pr->flash_sent = 1;
    }
}

/* `run`'s event: a message durably stored. */
static void on_event(void *ctx, int kind, const struct mbox_msg *msg)
{
    struct probe *pr = ctx;

    if (kind != MBOX_EV_MESSAGE || strcmp(msg->subject, "flash during download") != 0)
        return;
    pr->flash_seen = 1;
    pr->flash_stored_at = pr->done;
}

static void test_flash_during_download(void **state)
{
    struct tpki p;
    struct trelay relay;
    struct side hq, post;
    struct mbox_sync_stats st;
    struct attach_desc d;
    struct probe pr;
    struct mbox_msg *inbox = NULL;
    size_t n = 0;
    char src[TPATH + 16], out[TPATH + 16];
    uint8_t *data;
    struct mbox_sync_opts plain = {.quiet_ms = 300, .timeout_ms = 10000};
    struct mbox_sync_opts watched = {.quiet_ms = 300, .timeout_ms = 10000};
    struct buf saved;
    (void)state;

    assert_int_equal(tpki_init(&p), 0);
    assert_int_equal(side_make(&p, &hq, "hq", "HQ", "duty", 1, NULL, pass), 0);
    assert_int_equal(side_make(&p, &post, "jakarta", "JKT", "duty", 2, NULL, pass), 0);
    {
        const struct tdev *devs[] = {&hq.dev, &post.dev};
        assert_int_equal(tpki_write_dir(&p, 1, devs, 2, NULL, 0), 0);
    }
    assert_int_equal(trelay_start(&relay, &p, NULL), 0);
    assert_int_equal(side_enroll(&p, &hq, relay.port, pass), 0);
    assert_int_equal(side_enroll(&p, &post, relay.port, pass), 0);
    sync_ok(&hq, &plain, &st);
    sync_ok(&post, &plain, &st);

    /* HQ sends the attachment and uploads all of it. */
    assert_non_null(data = malloc(ATT_SIZE));
    randombytes_buf(data, ATT_SIZE);
    snprintf(src, sizeof(src), "%s/annex.bin", p.dir);
    assert_int_equal(file_write_new(src, data, ATT_SIZE, 0600), 0);
    assert_int_equal(mba_seal(hq.m, src, &d, NULL, NULL), 0);
    send_text(&hq, &post, WIRE_ROUTINE, "annex", &d);
    sync_ok(&hq, &plain, &st);
    assert_int_equal(st.att_uploaded, 1);

    /* Jakarta: the message, then the download, with HQ's FLASH sent an eighth in. */
    memset(&pr, 0, sizeof(pr));
    pr.hq = &hq;
    pr.post = &post;
    watched.att_progress = on_progress;
    watched.att_progress_ctx = &pr;
    watched.event = on_event;
    watched.event_ctx = &pr;
    sync_ok(&post, &watched, &st);
    assert_int_equal(st.att_downloaded, 1);
    assert_true(pr.flash_sent);
    if (!pr.flash_seen) {
        /* the old behaviour: held until the download ended, stored by the next step or sync */
        sync_ok(&post, &plain, &st);
        fail_msg("the FLASH was not stored during the download (it waited for all %llu bytes)",
                 (unsigned long long)pr.total);
    }
    if (pr.flash_stored_at >= pr.total)
        fail_msg("the FLASH was stored only after the download ended (%llu of %llu bytes)",
                 (unsigned long long)pr.flash_stored_at, (unsigned long long)pr.total);
    print_message("FLASH stored with %llu of %llu attachment bytes downloaded\n",
                  (unsigned long long)pr.flash_stored_at, (unsigned long long)pr.total);
    assert_int_equal(mbox_inbox(post.m, &inbox, &n), 0);
    assert_int_equal(n, 2);
    free(inbox);

    /* The attachment is whole. */
    snprintf(out, sizeof(out), "%s/annex.saved", p.dir);
    assert_int_equal(mba_save(post.m, &d, hq.dev.cert.device_id, out, NULL, NULL), 0);
    assert_int_equal(file_read(out, ATT_SIZE + 1, 0, &saved), 0);
    assert_int_equal(buf_size(&saved), ATT_SIZE);
    assert_memory_equal(buf_data(&saved), data, ATT_SIZE);
    buf_free(&saved);
    free(data);
    attach_desc_wipe(&d);
    mbox_close(hq.m);
    mbox_close(post.m);
    assert_int_equal(trelay_signal(&relay, SIGTERM), 0);
    tpki_cleanup(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flash_during_download),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
