/*
 * test_attach_house.c - attachment housekeeping (issue 13 item 2), over the
 * REAL valise-relay at the library level (client/mailbox.h, mbox_attach.h):
 *  - test_upload_states: an upload is "waiting" before the first sync,
 *    "uploading K of C chunks" after a sync cut off mid-upload (the relay
 *    killed after a few PUT_ACKs: the stored count was kept), "uploaded"
 *    once complete, when its record has shrunk to its short form; the
 *    recipient's download record is deleted once complete and `save` still
 *    works; the sender saves its own sent attachment from its sealed copy,
 *    hash checked, and a damaged or deleted copy is refused.
 *  - test_gone_deletes_partial: a download cut off half way whose
 *    attachment then expires on the relay: the next sync deletes the
 *    partial file and counts it once (att_gone), `read` sees "gone".
 *  - test_sweep: what a crash between two steps leaves in HOME/attach (a
 *    .part no download names, a seal's temporary of a dead process, an old
 *    sealed copy no upload names) is removed by the next sync's sweep;
 *    a young sealed copy (maybe another process's send), a temporary of a
 *    live process, files of finished transfers and foreign files stay. The
 *    records of an older store are read (att.up version 1) and tidied (a
 *    done download's record deleted, a done upload's shrunk).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <signal.h>
#include <sodium.h>

#include "attach.h"
#include "fileio.h"
#include "identity.h"
#include "mailbox.h"
#include "mbox_attach.h"
#include "mbox_rec.h"
#include "clientside.h"
#include "relaytest.h"
#include "store.h"
#include "text.h"

static const char pass[] = "attach housekeeping test passphrase";

enum { BIG = 2 * 1024 * 1024, KILL_AFTER = 3 /* chunks */ };


struct world {
    struct tpki p;
    struct trelay relay;
    struct side hq, budi;
};

static void world_start(struct world *w)
{
    assert_int_equal(tpki_init(&w->p), 0);
    /* messages are signed up to 30 days back: certificates valid from 40 days ago */
    assert_int_equal(side_make_from(&w->p, &w->hq, "hq", "HQ", "duty", 1, NULL, pass,
                                    (uint64_t)time(NULL) - 40 * 86400),
                     0);
    assert_int_equal(side_make_from(&w->p, &w->budi, "budi", "JKT", "duty", 2, NULL, pass,
                                    (uint64_t)time(NULL) - 40 * 86400),
                     0);
    {
        const struct tdev *devs[] = {&w->hq.dev, &w->budi.dev};
        assert_int_equal(tpki_write_dir(&w->p, 1, devs, 2, NULL, 0), 0);
    }
    assert_int_equal(trelay_start(&w->relay, &w->p, NULL), 0);
    assert_int_equal(side_enroll(&w->p, &w->hq, w->relay.port, pass), 0);
    assert_int_equal(side_enroll(&w->p, &w->budi, w->relay.port, pass), 0);
}

static void world_restart_relay(struct world *w)
{
    assert_int_equal(trelay_start(&w->relay, &w->p, NULL), 0);
    assert_int_equal(side_enroll(&w->p, &w->hq, w->relay.port, pass), 0);
    assert_int_equal(side_enroll(&w->p, &w->budi, w->relay.port, pass), 0);
}

static void world_stop(struct world *w)
{
    mbox_close(w->hq.m);
    mbox_close(w->budi.m);
    if (w->relay.pid > 0)
        (void)trelay_signal(&w->relay, SIGTERM);
    tpki_cleanup(&w->p);
}

/* Kills the relay once `after` chunks went the watched way (a cut in the middle of a transfer). */
struct cutter {
    struct trelay *relay;
    int upload;
    uint64_t after;
    int done;
};

static void cut_progress(void *ctx, int upload, uint64_t done, uint64_t total)
{
    struct cutter *k = ctx;
    (void)total;

    if (k->done || upload != k->upload || done < k->after * ATTACH_CHUNK_CT)
        return;
    k->done = 1;
    (void)trelay_signal(k->relay, SIGKILL);
    k->relay->pid = 0;
}

static int sync_with(struct side *s, struct mbox_sync_stats *st, struct cutter *k)
{
    struct mbox_sync_opts o = {.quiet_ms = 300, .timeout_ms = 10000};

    if (k != NULL) {
        o.att_progress = cut_progress;
        o.att_progress_ctx = k;
    }
    return mbox_sync(s->m, &o, st);
}

static void sync_ok(struct side *s, struct mbox_sync_stats *st)
{
    int r = sync_with(s, st, NULL);

    if (r != 0)
        fail_msg("sync of %s failed: %s (relay reason %u)", s->home, verr_str(r), st->relay_reason);
}

/* A file of n random bytes at DIR/name. */
static void random_file(const struct tpki *p, const char *name, size_t n, char *path, size_t psz)
{
    uint8_t *data;

    snprintf(path, psz, "%s/%s", p->dir, name);
    assert_non_null(data = malloc(n));
    randombytes_buf(data, n);
    assert_int_equal(file_write_new(path, data, n, 0600), 0);
    free(data);
}

static void send_attached(struct side *from, const struct side *to, const char *path,
                          uint64_t when, struct attach_desc *d, uint8_t id[static INNER_ID_LEN])
{
    char addr[64] = "device:", hex[33];
    struct mbox_draft dr;
    struct buf sec;

    assert_int_equal(text_hex_encode(hex, sizeof(hex), to->dev.cert.device_id, DEVICE_ID_LEN), 0);
    memcpy(addr + 7, hex, 33);
    assert_int_equal(mba_seal(from->m, path, d, NULL, NULL), 0);
    assert_int_equal(buf_init(&sec, ATTACH_SECTION_MAX, BUF_SECRET), 0);
    assert_int_equal(attach_section_encode(d, 1, &sec), 0);
    memset(&dr, 0, sizeof(dr));
    dr.address = addr;
    dr.precedence = 3; /* ROUTINE */
    dr.label = "RESTRICTED";
    dr.subject = "Note verbale with annex";
    dr.attach_section = buf_data(&sec);
    dr.attach_section_len = buf_size(&sec);
    assert_int_equal(mbox_send(from->m, &dr, when, id), 0);
    buf_free(&sec);
}

/* The outbox entry's one attachment state. */
static struct mba_up_state outbox_state(struct side *s)
{
    struct mbox_out *list = NULL;
    struct mba_up_state u;
    size_t n = 0;

    assert_int_equal(mbox_outbox(s->m, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].n_att, 1);
    u = list[0].att[0].up;
    mbox_outbox_free(list, n);
    return u;
}

/* The record att.up.<id> / att.dl.<id>.<tag> of s: its size, or 0 if there is none. */
static size_t record_size(struct side *s, const char *prefix, const uint8_t id[static ATTACH_ID_LEN],
                          const uint8_t *tag)
{
    char name[80], hex[2 * ATTACH_ID_LEN + 1], th[17];
    struct buf b;
    size_t n;
    int r;

    assert_int_equal(text_hex_encode(hex, sizeof(hex), id, ATTACH_ID_LEN), 0);
    if (tag != NULL) {
        assert_int_equal(text_hex_encode(th, sizeof(th), tag, 8), 0);
        snprintf(name, sizeof(name), "%s%s.%s", prefix, hex, th);
    } else {
        snprintf(name, sizeof(name), "%s%s", prefix, hex);
    }
    r = mb_cfg_get(s->m, name, &b);
    if (r == VERR_UNKNOWN)
        return 0;
    assert_int_equal(r, 0);
    n = buf_size(&b);
    buf_free(&b);
    return n;
}

static void expect_same_file(const char *a, const char *b)
{
    struct buf x, y;

    assert_int_equal(file_read(a, BIG + 1, 0, &x), 0);
    assert_int_equal(file_read(b, BIG + 1, 0, &y), 0);
    assert_int_equal(buf_size(&x), buf_size(&y));
    assert_memory_equal(buf_data(&x), buf_data(&y), buf_size(&x));
    buf_free(&x);
    buf_free(&y);
}

static void test_upload_states(void **state)
{
    struct world w;
    struct mbox_sync_stats st;
    struct mba_up_state u;
    struct attach_desc d;
    struct cutter k = {0};
    uint8_t id[INNER_ID_LEN];
    char file[TPATH + 32], out[TPATH + 32], ct[4300];
    uint32_t c = attach_chunk_count(BIG), held;
    int have;
    (void)state;

    world_start(&w);
    sync_ok(&w.hq, &st);
    sync_ok(&w.budi, &st);
    random_file(&w.p, "annex.pdf", BIG, file, sizeof(file));
    send_attached(&w.hq, &w.budi, file, (uint64_t)time(NULL), &d, id);

    /* before any sync: nothing stored on the relay yet */
    u = outbox_state(&w.hq);
    assert_int_equal(u.state, MBA_UP_WAITING);
    assert_int_equal(u.c, c);
    assert_true(u.copy);

    /* the relay dies a few chunks in: the count it confirmed is kept */
    k.relay = &w.relay;
    k.upload = 1;
    k.after = KILL_AFTER;
    assert_int_not_equal(sync_with(&w.hq, &st, &k), 0);
    assert_true(k.done);
    u = outbox_state(&w.hq);
    if (u.state != MBA_UP_SENDING || u.stored < KILL_AFTER || u.stored >= c)
        fail_msg("after a cut mid-upload: state %d, %u of %u chunks (expected uploading, at "
                 "least %d)", u.state, u.stored, u.c, KILL_AFTER);

    /* resumed and finished: uploaded, the record in its short form (no recipients) */
    world_restart_relay(&w);
    sync_ok(&w.hq, &st);
    assert_int_equal(st.att_uploaded, 1);
    u = outbox_state(&w.hq);
    assert_int_equal(u.state, MBA_UP_DONE);
    assert_int_equal(u.stored, c);
    assert_int_equal(record_size(&w.hq, "att.up.", d.id, NULL), 1 + 8 + 8 + 1 + 2 + 1 + 8 + 4 + 2);

    /* the recipient: complete, its download record gone, save still works */
    sync_ok(&w.budi, &st);
    assert_int_equal(st.att_downloaded, 1);
    assert_int_equal(record_size(&w.budi, "att.dl.", d.id, w.hq.dev.cert.device_id), 0);
    assert_int_equal(mba_state(w.budi.m, &d, w.hq.dev.cert.device_id, &have, &held, &c), 0);
    assert_int_equal(have, MBA_HAVE_COMPLETE);
    snprintf(out, sizeof(out), "%s/budi-saved.pdf", w.p.dir);
    assert_int_equal(mba_save(w.budi.m, &d, w.hq.dev.cert.device_id, out, NULL, NULL), 0);
    expect_same_file(out, file);

    /* the sender saves its own sent attachment from its sealed copy, hash checked */
    assert_int_equal(mba_state(w.hq.m, &d, w.hq.dev.cert.device_id, &have, &held, &c), 0);
    assert_int_equal(have, MBA_HAVE_COMPLETE);
    snprintf(out, sizeof(out), "%s/hq-saved.pdf", w.p.dir);
    assert_int_equal(mba_save(w.hq.m, &d, w.hq.dev.cert.device_id, out, NULL, NULL), 0);
    expect_same_file(out, file);
    /* damaged: refused, nothing written */
    assert_int_equal(mba_path(w.hq.m, d.id, "ct", ct, sizeof(ct)), 0);
    {
        FILE *f = fopen(ct, "r+b");
        assert_non_null(f);
        assert_int_equal(fseek(f, 40000, SEEK_SET), 0);
        assert_int_equal(fputc(0x5a ^ 0xff, f) == EOF, 0);
        assert_int_equal(fclose(f), 0);
    }
    snprintf(out, sizeof(out), "%s/hq-damaged.pdf", w.p.dir);
    assert_int_equal(mba_save(w.hq.m, &d, w.hq.dev.cert.device_id, out, NULL, NULL), VERR_DECRYPT);
    assert_false(file_exists(out));
    /* deleted: `outbox` says uploaded (the copy gone), save has nothing to open */
    assert_int_equal(unlink(ct), 0);
    u = outbox_state(&w.hq);
    assert_int_equal(u.state, MBA_UP_DONE);
    assert_false(u.copy);
    assert_int_equal(mba_state(w.hq.m, &d, w.hq.dev.cert.device_id, &have, &held, &c), 0);
    assert_int_equal(have, MBA_HAVE_MISSING);

    attach_desc_wipe(&d);
    world_stop(&w);
}

static void test_gone_deletes_partial(void **state)
{
    struct world w;
    struct mbox_sync_stats st;
    struct attach_desc d;
    struct cutter k = {0};
    uint8_t id[INNER_ID_LEN];
    char file[TPATH + 32], part[4300], hex[33], th[17];
    uint32_t c, held;
    uint64_t sent, ttl = mbox_ttl(3);
    int have;
    (void)state;

    world_start(&w);
    sync_ok(&w.hq, &st);
    sync_ok(&w.budi, &st);
    random_file(&w.p, "annex.pdf", BIG, file, sizeof(file));
    /* signed so that the message and its attachment expire 20 s from now */
    sent = (uint64_t)time(NULL) + 20 - ttl;
    send_attached(&w.hq, &w.budi, file, sent, &d, id);
    sync_ok(&w.hq, &st);
    assert_int_equal(st.att_uploaded, 1);

    /* Budi gets the message and part of the attachment, then the relay dies */
    k.relay = &w.relay;
    k.upload = 0;
    k.after = KILL_AFTER;
    assert_int_not_equal(sync_with(&w.budi, &st, &k), 0);
    assert_true(k.done);
    assert_int_equal(st.received, 1);
    assert_int_equal(text_hex_encode(hex, sizeof(hex), d.id, ATTACH_ID_LEN), 0);
    assert_int_equal(text_hex_encode(th, sizeof(th), w.hq.dev.cert.device_id, 8), 0);
    snprintf(part, sizeof(part), "%s/attach/%s.%s.part", w.budi.home, hex, th);
    assert_true(file_exists(part));
    assert_int_equal(mba_state(w.budi.m, &d, w.hq.dev.cert.device_id, &have, &held, &c), 0);
    assert_int_equal(have, MBA_HAVE_PART);
    assert_true(held >= KILL_AFTER && held < c);

    /* the attachment expires on the relay before Budi comes back */
    while ((uint64_t)time(NULL) <= sent + ttl + 1)
        sleep(1);
    world_restart_relay(&w);
    sleep(2); /* the relay's sweeper runs once a second */
    sync_ok(&w.budi, &st);
    assert_int_equal(st.att_gone, 1);
    assert_false(file_exists(part));
    assert_int_equal(mba_state(w.budi.m, &d, w.hq.dev.cert.device_id, &have, &held, &c), 0);
    assert_int_equal(have, MBA_HAVE_GONE);
    /* said once */
    sync_ok(&w.budi, &st);
    assert_int_equal(st.att_gone, 0);
    assert_false(file_exists(part));

    attach_desc_wipe(&d);
    world_stop(&w);
}

/* Records as a store from before (version 1, no stored count; a finished download kept). */
static void put_old_records(struct side *s, const uint8_t up_id[static ATTACH_ID_LEN],
                            const struct attach_desc *dl, const uint8_t sender[static DEVICE_ID_LEN])
{
    char name[80], hex[33], th[17];
    struct buf b;

    assert_int_equal(cstore_begin(s->m->st, 1), 0);
    /* att.up v1, done, with its one recipient still listed */
    assert_int_equal(buf_init(&b, 64, 0), 0);
    assert_int_equal(buf_put_u8(&b, 1), 0);
    assert_int_equal(buf_put_u64(&b, 7), 0);
    assert_int_equal(buf_put_u64(&b, 40000), 0);
    assert_int_equal(buf_put_u8(&b, 2), 0);
    assert_int_equal(buf_put_u16(&b, 0), 0);
    assert_int_equal(buf_put_u8(&b, 3), 0);
    assert_int_equal(buf_put_u64(&b, (uint64_t)time(NULL) + 86400), 0);
    assert_int_equal(buf_put_u16(&b, 1), 0);
    assert_int_equal(buf_put_bytes(&b, sender, DEVICE_ID_LEN), 0);
    assert_int_equal(text_hex_encode(hex, sizeof(hex), up_id, ATTACH_ID_LEN), 0);
    snprintf(name, sizeof(name), "att.up.%s", hex);
    assert_int_equal(mb_cfg_put(s->m, name, buf_data(&b), buf_size(&b)), 0);
    buf_free(&b);
    /* att.dl v1 in state done (1): no longer written, deleted by the sweep */
    assert_int_equal(buf_init(&b, 1024, BUF_SECRET), 0);
    assert_int_equal(buf_put_u8(&b, 1), 0);
    assert_int_equal(buf_put_u64(&b, 9), 0);
    assert_int_equal(buf_put_bytes(&b, sender, DEVICE_ID_LEN), 0);
    assert_int_equal(buf_put_u8(&b, 1), 0);
    assert_int_equal(attach_desc_encode(dl, &b), 0);
    assert_int_equal(text_hex_encode(hex, sizeof(hex), dl->id, ATTACH_ID_LEN), 0);
    assert_int_equal(text_hex_encode(th, sizeof(th), sender, 8), 0);
    snprintf(name, sizeof(name), "att.dl.%s.%s", hex, th);
    assert_int_equal(mb_cfg_put(s->m, name, buf_data(&b), buf_size(&b)), 0);
    buf_free(&b);
    assert_int_equal(cstore_commit(s->m->st), 0);
}

static void put_file(const char *dir, const char *name, size_t n, time_t age)
{
    char path[4400];
    uint8_t z[64] = {0};
    struct timeval tv[2];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_true(n <= sizeof(z));
    assert_int_equal(file_write_new(path, z, n, 0600), 0);
    if (age > 0) {
        tv[0].tv_sec = tv[1].tv_sec = time(NULL) - age;
        tv[0].tv_usec = tv[1].tv_usec = 0;
        assert_int_equal(utimes(path, tv), 0);
    }
}

static int in_dir(const char *dir, const char *name)
{
    char path[4400];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return file_exists(path);
}

static void test_sweep(void **state)
{
    struct world w;
    struct mbox_sync_stats st;
    struct mba_usage u;
    struct attach_desc d;
    uint8_t id[INNER_ID_LEN];
    char file[TPATH + 32], dir[TPATH + 16], hex[33], th[17], name[TPATH + 32], sent_ct[64], recv_ct[80];
    char orphan_old[64], orphan_young[64], tmp_dead[80], tmp_live[80], stray_part[80];
    uint8_t old_up[ATTACH_ID_LEN], old_dl[ATTACH_ID_LEN];
    pid_t dead;
    (void)state;

    world_start(&w);
    sync_ok(&w.hq, &st);
    sync_ok(&w.budi, &st);
    random_file(&w.p, "minutes.txt", 40000, file, sizeof(file));
    send_attached(&w.hq, &w.budi, file, (uint64_t)time(NULL), &d, id);
    sync_ok(&w.hq, &st);
    sync_ok(&w.budi, &st);
    assert_int_equal(st.att_downloaded, 1);
    assert_int_equal(st.att_swept, 0);

    /* a dead process's id: a child that has exited and been reaped */
    dead = fork();
    assert_true(dead >= 0);
    if (dead == 0)
        _exit(0);
    {
        int ws;
        assert_int_equal(waitpid(dead, &ws, 0), dead);
    }
    assert_int_equal(text_hex_encode(hex, sizeof(hex), d.id, ATTACH_ID_LEN), 0);
    assert_int_equal(text_hex_encode(th, sizeof(th), w.hq.dev.cert.device_id, 8), 0);
    snprintf(sent_ct, sizeof(sent_ct), "%s.ct", hex);
    snprintf(recv_ct, sizeof(recv_ct), "%s.%s.ct", hex, th);
    snprintf(orphan_old, sizeof(orphan_old), "%032x.ct", 0xabc);
    snprintf(orphan_young, sizeof(orphan_young), "%032x.ct", 0xdef);
    snprintf(tmp_dead, sizeof(tmp_dead), "%032x.ct.tmp.%ld", 0x123, (long)dead);
    snprintf(tmp_live, sizeof(tmp_live), "%032x.ct.tmp.%ld", 0x456, (long)getpid());
    /* a crash after a download was abandoned (record committed) and before its .part went */
    snprintf(stray_part, sizeof(stray_part), "%s.%s.part", hex, th);

    /* HQ: a crashed send's sealed copy (2 days old), a young one, two seal temporaries */
    snprintf(dir, sizeof(dir), "%s/attach", w.hq.home);
    put_file(dir, orphan_old, 32, 2 * 86400);
    put_file(dir, orphan_young, 32, 0);
    put_file(dir, tmp_dead, 16, 0);
    put_file(dir, tmp_live, 16, 0);
    put_file(dir, "notes.txt", 8, 2 * 86400);
    /* records of an older store: a v1 upload done (read as every chunk stored), a download done */
    {
        struct mba_up_state us;
        struct attach_desc old = d;
        randombytes_buf(old_up, sizeof(old_up));
        randombytes_buf(old.id, ATTACH_ID_LEN);
        memcpy(old_dl, old.id, ATTACH_ID_LEN);
        put_old_records(&w.hq, old_up, &old, w.budi.dev.cert.device_id);
        attach_desc_wipe(&old);
        assert_int_not_equal(record_size(&w.hq, "att.dl.", old_dl, w.budi.dev.cert.device_id), 0);
        assert_int_equal(mba_upload_state(w.hq.m, old_up, 40000, &us), 0);
        assert_int_equal(us.state, MBA_UP_DONE);
        assert_int_equal(us.stored, attach_chunk_count(40000));
        assert_int_equal(record_size(&w.hq, "att.up.", old_up, NULL), 31 + DEVICE_ID_LEN); /* v1 */
    }
    assert_int_equal(mba_disk_use(w.hq.home, &u), 0);
    assert_int_equal(u.sent_files, 3);
    assert_int_equal(u.partial_files, 2);
    assert_int_equal(u.partial_bytes, 32);
    sync_ok(&w.hq, &st);
    assert_int_equal(st.att_swept, 2);
    assert_int_equal(record_size(&w.hq, "att.up.", old_up, NULL), 35); /* its short form */
    assert_int_equal(record_size(&w.hq, "att.dl.", old_dl, w.budi.dev.cert.device_id), 0);
    assert_false(in_dir(dir, orphan_old));
    assert_false(in_dir(dir, tmp_dead));
    assert_true(in_dir(dir, orphan_young));
    assert_true(in_dir(dir, tmp_live));
    assert_true(in_dir(dir, "notes.txt"));
    assert_true(in_dir(dir, sent_ct)); /* the sender's copy of a finished upload stays */
    sync_ok(&w.hq, &st);
    assert_int_equal(st.att_swept, 0);

    /* Budi: a .part of a finished download (no record any more) */
    snprintf(dir, sizeof(dir), "%s/attach", w.budi.home);
    put_file(dir, stray_part, 64, 0);
    assert_int_equal(mba_disk_use(w.budi.home, &u), 0);
    assert_int_equal(u.received_files, 1);
    assert_int_equal(u.received_bytes, attach_ct_size(40000));
    assert_int_equal(u.partial_bytes, 64);
    sync_ok(&w.budi, &st);
    assert_int_equal(st.att_swept, 1);
    assert_false(in_dir(dir, stray_part));
    assert_true(in_dir(dir, recv_ct));
    assert_int_equal(mba_disk_use(w.budi.home, &u), 0);
    assert_int_equal(u.partial_files, 0);
    snprintf(name, sizeof(name), "%s/budi-saved.txt", w.p.dir);
    assert_int_equal(mba_save(w.budi.m, &d, w.hq.dev.cert.device_id, name, NULL, NULL), 0);
    expect_same_file(name, file);

    attach_desc_wipe(&d);
    world_stop(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload_states),
        cmocka_unit_test(test_gone_deletes_partial),
        cmocka_unit_test(test_sweep),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
