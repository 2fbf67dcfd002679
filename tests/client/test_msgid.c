/*
 * test_msgid.c - message ids are chosen by senders (issue 11, item 2), over
 * the REAL valise-relay at the library level (client/mailbox.h):
 *  - test_insider_reuses_circular_id: an insider co-recipient of a circular
 *    to *@JKT sends Budi, before Budi syncs, a message reusing the circular's
 *    id. Both are Budi's messages (replay is keyed by sender device and id),
 *    `read ID` asks to disambiguate and `read ID/SENDER` shows each, and HQ's
 *    outbox shows the circular delivered to Budi.
 *  - test_unknown_one_time_prekey_refused: a prekey message naming a one-time
 *    prekey the receiver does not hold is refused and counted, not silently
 *    acknowledged, and stays on the relay.
 *  - test_prekey_replay_after_eviction: a prekey message that used no
 *    one-time prekey, replayed under a fresh envelope id after the receiver
 *    evicted the session it set up (MB_SESS_KEEP newer sessions), builds no
 *    session that is stored, is not shown again, and is acknowledged and
 *    dropped as a replay (PROTOCOL.md part 4, receiver checks and `seen`).
 *  - test_insider_reuses_attachment_id (issue 13 item 2): an insider
 *    co-recipient of HQ's circular with an attachment sends Budi, as FLASH so
 *    it is stored first, a message naming the same attachment id with its
 *    own key. The relay refuses the insider's upload (id_conflict); Budi's
 *    download of HQ's attachment completes and saves intact, and the
 *    insider's is never complete (chunks that do not open, or gone).
 * The insider's forged id and the lost prekey are made by editing the
 * devices' own encrypted stores with the project's store.h and inner.h; the
 * replayed prekey messages are made with x3dh.h, ratchet.h and inner.h and
 * submitted with the sender device's own certificate and key.
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
#include "attach.h"
#include "inner.h"
#include "mailbox.h"
#include "mbox_attach.h"
#include "ratchet.h"
#include "clientside.h"
#include "relaytest.h"
#include "store.h"
#include "text.h"
#include "wire.h"
#include "x3dh.h"

static const char pass[] = "msgid test passphrase";




static void sync_ok(struct side *s, struct mbox_sync_stats *st)
{
    struct mbox_sync_opts o = {.quiet_ms = 300, .timeout_ms = 10000};
    int r = mbox_sync(s->m, &o, st);
    if (r != 0)
        fail_msg("sync of %s failed: %s (relay reason %u)", s->home, verr_str(r), st->relay_reason);
}

static void send_msg(struct side *from, const char *to, uint8_t prec, const char *subject,
                     uint8_t id[static INNER_ID_LEN])
{
    struct mbox_draft d;

    memset(&d, 0, sizeof(d));
    d.address = to;
    d.precedence = prec;
    d.label = "RESTRICTED";
    d.subject = subject;
    d.content = (const uint8_t *)subject;
    d.content_len = strlen(subject);
    assert_int_equal(mbox_send(from->m, &d, (uint64_t)time(NULL), id), 0);
}

static void device_addr(char out[64], const struct side *s)
{
    char hex[33];
    assert_int_equal(text_hex_encode(hex, sizeof(hex), s->dev.cert.device_id, DEVICE_ID_LEN), 0);
    snprintf(out, 64, "device:%s", hex);
}

/* ---- editing a device's own store, as a modified client could ---- */

struct found {
    uint8_t key[8];
    int n;
};

static int each_message_rec(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct found *f = ctx;
    /* outbox value: u8 version, u8 kind, u8 resolved, u64 created, u32 length, inner */
    if (kl == 8 && vl > 15 && v[1] == 1 && v[2] == 0) {
        memcpy(f->key, k, 8);
        f->n++;
    }
    return 0;
}

/* The insider's one unresolved outbox message gets the id `id`, signed again by its key. */
static void forge_outbox_id(struct side *s, const uint8_t id[static INNER_ID_LEN])
{
    struct identity ident;
    struct cstore *st = NULL;
    struct found f;
    struct buf rec, enc, out;
    struct inner in;

    mbox_close(s->m);
    s->m = NULL;
    assert_int_equal(identity_unlock(s->home, pass, &ident), 0);
    assert_int_equal(cstore_open(&st, s->home, ident.store_key), 0);
    memset(&f, 0, sizeof(f));
    assert_int_equal(cstore_each(st, CS_OUTBOX, each_message_rec, &f), 0);
    assert_int_equal(f.n, 1);
    assert_int_equal(cstore_get(st, CS_OUTBOX, f.key, 8, &rec), 0);
    assert_int_equal(inner_parse(buf_data(&rec) + 15, buf_size(&rec) - 15, &in), 0);
    memcpy(in.id, id, INNER_ID_LEN);
    assert_int_equal(buf_init(&enc, INNER_MAX_LEN, BUF_SECRET), 0);
    assert_int_equal(inner_sign_encode(&in, ident.sign_sk, &enc), 0);
    assert_int_equal(buf_init(&out, 16 + buf_size(&enc), BUF_SECRET), 0);
    assert_int_equal(buf_put_bytes(&out, buf_data(&rec), 11), 0);
    assert_int_equal(buf_put_bytes32(&out, buf_data(&enc), buf_size(&enc)), 0);
    assert_int_equal(cstore_begin(st, 1), 0);
    assert_int_equal(cstore_put(st, CS_OUTBOX, f.key, 8, buf_data(&out), buf_size(&out)), 0);
    assert_int_equal(cstore_commit(st), 0);
    buf_free(&out);
    buf_free(&enc);
    buf_free(&rec);
    cstore_close(st);
    identity_free(&ident);
    assert_int_equal(mbox_open(&s->m, s->home, pass), 0);
}

static int each_opk(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct mb_keys {
        uint8_t k[256][5];
        size_t n;
    } *ks = ctx;
    (void)v;
    (void)vl;
    if (kl == 5 && k[0] == 'O' && ks->n < 256)
        memcpy(ks->k[ks->n++], k, 5);
    return 0;
}

/* The device loses every one-time prekey secret (as if it never had them). */
static void drop_one_time_prekeys(struct side *s)
{
    struct identity ident;
    struct cstore *st = NULL;
    struct {
        uint8_t k[256][5];
        size_t n;
    } ks;

    mbox_close(s->m);
    s->m = NULL;
    memset(&ks, 0, sizeof(ks));
    assert_int_equal(identity_unlock(s->home, pass, &ident), 0);
    assert_int_equal(cstore_open(&st, s->home, ident.store_key), 0);
    assert_int_equal(cstore_each(st, CS_PREKEYS, each_opk, &ks), 0);
    assert_true(ks.n > 0);
    assert_int_equal(cstore_begin(st, 1), 0);
    for (size_t i = 0; i < ks.n; i++)
        assert_int_equal(cstore_del(st, CS_PREKEYS, ks.k[i], 5), 0);
    assert_int_equal(cstore_commit(st), 0);
    cstore_close(st);
    identity_free(&ident);
    assert_int_equal(mbox_open(&s->m, s->home, pass), 0);
}

static void test_insider_reuses_circular_id(void **state)
{
    struct tpki p;
    struct trelay relay;
    struct side hq, budi, insider;
    struct mbox_sync_stats st;
    struct mbox_msg *list = NULL, msg;
    struct mbox_out *out = NULL;
    size_t n = 0, nout = 0;
    uint8_t circ_id[INNER_ID_LEN], ins_id[INNER_ID_LEN];
    char addr[64], idhex[33], sel[80], hqhex[33], inshex[33];
    int from_hq = 0, from_insider = 0, delivered = 0;
    (void)state;

    assert_int_equal(tpki_init(&p), 0);
    assert_int_equal(side_make(&p, &hq, "hq", "HQ", "duty", 1, NULL, pass), 0);
    assert_int_equal(side_make(&p, &budi, "budi", "JKT", "duty", 2, NULL, pass), 0);
    assert_int_equal(side_make(&p, &insider, "insider", "JKT", "duty", 3, NULL, pass), 0);
    {
        const struct tdev *devs[] = {&hq.dev, &budi.dev, &insider.dev};
        assert_int_equal(tpki_write_dir(&p, 1, devs, 3, NULL, 0), 0);
    }
    assert_int_equal(trelay_start(&relay, &p, NULL), 0);
    assert_int_equal(side_enroll(&p, &hq, relay.port, pass), 0);
    assert_int_equal(side_enroll(&p, &budi, relay.port, pass), 0);
    assert_int_equal(side_enroll(&p, &insider, relay.port, pass), 0);
    sync_ok(&hq, &st);
    sync_ok(&budi, &st);
    sync_ok(&insider, &st);

    /* HQ's circular to every JKT device; the insider receives it and learns its id. */
    send_msg(&hq, "*@JKT", 3 /* ROUTINE */, "Circular from HQ", circ_id);
    sync_ok(&hq, &st);
    assert_int_equal(st.accepted, 2);
    sync_ok(&insider, &st);
    assert_int_equal(st.received, 1);
    /* Before Budi syncs, the insider sends Budi a FLASH (delivered first) reusing that id. */
    device_addr(addr, &budi);
    send_msg(&insider, addr, 0 /* FLASH */, "Insider with a borrowed id", ins_id);
    forge_outbox_id(&insider, circ_id);
    sync_ok(&insider, &st);
    assert_int_equal(st.accepted, 1);

    /* Budi gets both, as two messages. */
    sync_ok(&budi, &st);
    assert_int_equal(st.received, 2);
    assert_int_equal(mbox_inbox(budi.m, &list, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_memory_equal(list[i].id, circ_id, INNER_ID_LEN);
        if (memcmp(list[i].sender_id, hq.dev.cert.device_id, DEVICE_ID_LEN) == 0)
            from_hq = strcmp(list[i].subject, "Circular from HQ") == 0;
        if (memcmp(list[i].sender_id, insider.dev.cert.device_id, DEVICE_ID_LEN) == 0)
            from_insider = strcmp(list[i].subject, "Insider with a borrowed id") == 0;
    }
    free(list);
    assert_true(from_hq);
    assert_true(from_insider);

    /* `read ID` is ambiguous; ID/SENDER picks each one. */
    assert_int_equal(text_hex_encode(idhex, sizeof(idhex), circ_id, INNER_ID_LEN), 0);
    assert_int_equal(text_hex_encode(hqhex, sizeof(hqhex), hq.dev.cert.device_id, DEVICE_ID_LEN), 0);
    assert_int_equal(
        text_hex_encode(inshex, sizeof(inshex), insider.dev.cert.device_id, DEVICE_ID_LEN), 0);
    assert_int_equal(mbox_read(budi.m, idhex, (uint64_t)time(NULL), &msg), VERR_USAGE);
    snprintf(sel, sizeof(sel), "%s/%.8s", idhex, hqhex);
    assert_int_equal(mbox_read(budi.m, sel, (uint64_t)time(NULL), &msg), 0);
    assert_string_equal(msg.subject, "Circular from HQ");
    assert_memory_equal(msg.sender_id, hq.dev.cert.device_id, DEVICE_ID_LEN);
    mbox_msg_clear(&msg);
    snprintf(sel, sizeof(sel), "%.12s/%s", idhex, inshex);
    assert_int_equal(mbox_read(budi.m, sel, (uint64_t)time(NULL), &msg), 0);
    assert_string_equal(msg.subject, "Insider with a borrowed id");
    mbox_msg_clear(&msg);
    snprintf(sel, sizeof(sel), "%s/zz", idhex);
    assert_int_equal(mbox_read(budi.m, sel, (uint64_t)time(NULL), &msg), VERR_USAGE);

    /* Budi's receipts go out; HQ's outbox shows the circular delivered (or read) to Budi. */
    sync_ok(&budi, &st);
    sync_ok(&hq, &st);
    assert_int_equal(mbox_outbox(hq.m, &out, &nout), 0);
    for (size_t i = 0; i < nout; i++)
        for (size_t j = 0; j < out[i].ndev; j++)
            if (memcmp(out[i].dev[j].device, budi.dev.cert.device_id, DEVICE_ID_LEN) == 0)
                delivered = out[i].dev[j].state == MBOX_ENV_DELIVERED ||
                            out[i].dev[j].state == MBOX_ENV_READ;
    mbox_outbox_free(out, nout);
    assert_true(delivered);

    mbox_close(hq.m);
    mbox_close(budi.m);
    mbox_close(insider.m);
    assert_int_equal(trelay_signal(&relay, SIGTERM), 0);
    tpki_cleanup(&p);
}

/* Queues a message with one attachment (descriptor d: sealed from path, or given). */
static void send_with_attachment(struct side *from, const char *to, uint8_t prec,
                                 const char *subject, const char *path, struct attach_desc *d,
                                 uint8_t id[static INNER_ID_LEN])
{
    struct mbox_draft dr;
    struct buf sec;

    if (path != NULL)
        assert_int_equal(mba_seal(from->m, path, d, NULL, NULL), 0);
    assert_int_equal(buf_init(&sec, ATTACH_SECTION_MAX, BUF_SECRET), 0);
    assert_int_equal(attach_section_encode(d, 1, &sec), 0);
    memset(&dr, 0, sizeof(dr));
    dr.address = to;
    dr.precedence = prec;
    dr.label = "RESTRICTED";
    dr.subject = subject;
    dr.attach_section = buf_data(&sec);
    dr.attach_section_len = buf_size(&sec);
    assert_int_equal(mbox_send(from->m, &dr, (uint64_t)time(NULL), id), 0);
    buf_free(&sec);
}

static void test_insider_reuses_attachment_id(void **state)
{
    struct tpki p;
    struct trelay relay;
    struct side hq, budi, insider;
    struct mbox_sync_stats st;
    struct mbox_msg msg;
    struct attach_desc real, fake;
    uint8_t circ_id[INNER_ID_LEN], ins_id[INNER_ID_LEN], *data;
    char addr[64], hex[33], file[TPATH + 16], out[TPATH + 16];
    struct buf a, b;
    int have;
    uint32_t held, c;
    (void)state;

    assert_int_equal(tpki_init(&p), 0);
    assert_int_equal(side_make(&p, &hq, "hq", "HQ", "duty", 1, NULL, pass), 0);
    assert_int_equal(side_make(&p, &budi, "budi", "JKT", "duty", 2, NULL, pass), 0);
    assert_int_equal(side_make(&p, &insider, "insider", "JKT", "duty", 3, NULL, pass), 0);
    {
        const struct tdev *devs[] = {&hq.dev, &budi.dev, &insider.dev};
        assert_int_equal(tpki_write_dir(&p, 1, devs, 3, NULL, 0), 0);
    }
    assert_int_equal(trelay_start(&relay, &p, NULL), 0);
    assert_int_equal(side_enroll(&p, &hq, relay.port, pass), 0);
    assert_int_equal(side_enroll(&p, &budi, relay.port, pass), 0);
    assert_int_equal(side_enroll(&p, &insider, relay.port, pass), 0);
    sync_ok(&hq, &st);
    sync_ok(&budi, &st);
    sync_ok(&insider, &st);

    /* HQ's circular to every JKT device with a 100 KiB attachment, uploaded. */
    snprintf(file, sizeof(file), "%s/circular.pdf", p.dir);
    assert_non_null(data = malloc(100 * 1024));
    randombytes_buf(data, 100 * 1024);
    assert_int_equal(file_write_new(file, data, 100 * 1024, 0600), 0);
    free(data);
    send_with_attachment(&hq, "*@JKT", 3 /* ROUTINE */, "Circular with annex", file, &real,
                         circ_id);
    sync_ok(&hq, &st);
    assert_int_equal(st.att_uploaded, 1);
    /* The insider receives it and learns the attachment's id. */
    sync_ok(&insider, &st);
    assert_int_equal(st.received, 1);
    assert_int_equal(text_hex_encode(hex, sizeof(hex), circ_id, INNER_ID_LEN), 0);
    assert_int_equal(mbox_read(insider.m, hex, (uint64_t)time(NULL), &msg), 0);
    assert_int_equal(msg.n_attach, 1);
    fake = msg.attach[0];
    mbox_msg_clear(&msg);
    randombytes_buf(fake.key, ATTACH_KEY_LEN); /* the insider's own key under HQ's id */
    /* A FLASH to Budi naming that id: stored before HQ's ROUTINE circular. */
    device_addr(addr, &budi);
    send_with_attachment(&insider, addr, 0 /* FLASH */, "Insider's annex", NULL, &fake, ins_id);
    {
        /* the insider's "sealed copy": chunks of the right sizes under its own key */
        char dir[TPATH + 16], ct[TPATH + 64];
        uint8_t *z;
        size_t len = (size_t)attach_ct_size(fake.size);
        snprintf(dir, sizeof(dir), "%s/attach", insider.home);
        assert_int_equal(file_mkdir_private(dir), 0);
        assert_int_equal(mba_path(insider.m, fake.id, "ct", ct, sizeof(ct)), 0);
        assert_non_null(z = calloc(1, len));
        assert_int_equal(file_write_new(ct, z, len, 0600), 0);
        free(z);
    }
    sync_ok(&insider, &st);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.att_refused, 1); /* the relay keeps the id to HQ: id_conflict */
    assert_int_equal(st.att_refused_reason, WIRE_R_ID_CONFLICT);

    /*
     * Budi: both messages; HQ's attachment complete and intact whatever the
     * order. When the insider's download comes first its chunks (HQ's) do not
     * open: it is marked bad and that connection ends; the next sync fetches
     * HQ's.
     */
    sync_ok(&budi, &st);
    assert_int_equal(st.received, 2);
    if (st.att_bad_chunks > 0) {
        assert_int_equal(st.att_bad_chunks, 1);
        sync_ok(&budi, &st);
        assert_int_equal(st.att_bad_chunks, 0);
    }
    assert_int_equal(mba_state(budi.m, &real, hq.dev.cert.device_id, &have, &held, &c), 0);
    if (have != MBA_HAVE_COMPLETE)
        fail_msg("HQ's attachment: state %d, %u of %u chunks", have, held, c);
    snprintf(out, sizeof(out), "%s/saved.pdf", p.dir);
    assert_int_equal(mba_save(budi.m, &real, hq.dev.cert.device_id, out, NULL, NULL), 0);
    assert_int_equal(file_read(out, 1 << 20, 0, &a), 0);
    assert_int_equal(file_read(file, 1 << 20, 0, &b), 0);
    assert_int_equal(buf_size(&a), buf_size(&b));
    assert_memory_equal(buf_data(&a), buf_data(&b), buf_size(&a));
    buf_free(&a);
    buf_free(&b);
    assert_int_equal(mba_state(budi.m, &fake, insider.dev.cert.device_id, &have, &held, &c), 0);
    assert_int_not_equal(have, MBA_HAVE_COMPLETE);
    assert_int_equal(mba_save(budi.m, &fake, insider.dev.cert.device_id, out, NULL, NULL),
                     VERR_UNKNOWN);

    attach_desc_wipe(&real);
    attach_desc_wipe(&fake);
    mbox_close(hq.m);
    mbox_close(budi.m);
    mbox_close(insider.m);
    assert_int_equal(trelay_signal(&relay, SIGTERM), 0);
    tpki_cleanup(&p);
}

static void test_unknown_one_time_prekey_refused(void **state)
{
    struct tpki p;
    struct trelay relay;
    struct side a, b;
    struct mbox_sync_stats st;
    uint8_t id[INNER_ID_LEN];
    char addr[64];
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
    sync_ok(&a, &st);
    sync_ok(&b, &st);
    /* a's first message names one of b's published one-time prekeys ... */
    device_addr(addr, &b);
    send_msg(&a, addr, 3, "first contact", id);
    sync_ok(&a, &st);
    assert_int_equal(st.accepted, 1);
    /* ... which b no longer holds. Refused and counted; not acknowledged, so again next time. */
    drop_one_time_prekeys(&b);
    for (int round = 0; round < 2; round++) {
        sync_ok(&b, &st);
        assert_int_equal(st.received, 0);
        assert_int_equal(st.refused, 1);
        assert_int_equal(st.unknown_prekey, 1);
    }
    mbox_close(a.m);
    mbox_close(b.m);
    assert_int_equal(trelay_signal(&relay, SIGTERM), 0);
    tpki_cleanup(&p);
}

/* ---- a sender's own prekey messages, made with the library and submitted raw ---- */

enum { SESS_KEEP = 4 /* MB_SESS_KEEP in client/mailbox.c: sessions kept per peer */ };

/* to's bundle, fetched as the authenticated connection c; its one-time prekey is left unused. */
static void fetch_bundle(struct wsc *c, const struct side *to, struct x3dh_bundle *xb)
{
    struct buf msg;
    struct wire_msg wm;

    assert_int_equal(buf_init(&msg, 1 << 20, 0), 0);
    assert_int_equal(wire_put_bundle_get(&msg, to->dev.cert.device_id), 0);
    assert_int_equal(tc_send(c, &msg), 0);
    assert_int_equal(tc_expect(c, &msg, &wm, WIRE_BUNDLE, TWAIT), 0);
    memset(xb, 0, sizeof(*xb));
    memcpy(xb->owner.device_id, to->dev.cert.device_id, DEVICE_ID_LEN);
    memcpy(xb->owner.identity_pk, to->dev.cert.dh_pk, X3DH_PK_LEN);
    xb->spk_id = wm.u.bundle.spk.id;
    memcpy(xb->spk_pk, wm.u.bundle.spk.pk, X3DH_PK_LEN);
    memcpy(xb->spk_sig, wm.u.bundle.spk.sig, SIG_LEN);
    xb->has_opk = 0; /* the set-up uses the signed prekey alone */
    buf_free(&msg);
}

/*
 * A prekey message from `from` (keys in fid) to `to` that sets up a new
 * session with xb's signed prekey alone; its ephemeral key into ek, the
 * inner message's id into id, the end-to-end bytes into ct.
 */
static void make_prekey_msg(const struct side *from, const struct identity *fid,
                            const struct side *to, const struct x3dh_bundle *xb,
                            const char *subject, uint8_t id[static INNER_ID_LEN],
                            uint8_t ek[static X3DH_PK_LEN], struct buf *ct)
{
    struct inner in;
    struct buf enc, rm;
    struct x3dh_init_header hdr;
    struct x3dh_prekey_msg pm;
    struct ratchet_session *rs = NULL;
    uint8_t sk[X3DH_SECRET_LEN];
    char addr[64];

    memset(&in, 0, sizeof(in));
    in.type = INNER_TYPE_MESSAGE;
    randombytes_buf(in.id, INNER_ID_LEN);
    memcpy(in.sender, from->dev.cert.device_id, DEVICE_ID_LEN);
    snprintf(in.role, sizeof(in.role), "%s", from->dev.cert.role);
    in.time = (uint64_t)time(NULL);
    device_addr(addr, to);
    in.naddr = 1;
    snprintf(in.address[0], sizeof(in.address[0]), "%s", addr);
    in.precedence = 3; /* ROUTINE */
    snprintf(in.label, sizeof(in.label), "RESTRICTED");
    in.subject = (const uint8_t *)subject;
    in.subject_len = strlen(subject);
    in.content = (const uint8_t *)subject;
    in.content_len = strlen(subject);
    assert_int_equal(buf_init(&enc, INNER_MAX_LEN, BUF_SECRET), 0);
    assert_int_equal(inner_sign_encode(&in, fid->sign_sk, &enc), 0);
    memcpy(id, in.id, INNER_ID_LEN);

    memset(&pm, 0, sizeof(pm));
    memcpy(pm.sender.device_id, from->dev.cert.device_id, DEVICE_ID_LEN);
    memcpy(pm.sender.identity_pk, fid->dh_pk, X3DH_PK_LEN);
    assert_int_equal(x3dh_initiate(sk, &hdr, xb, to->dev.cert.sign_pk, fid->dh_sk), 0);
    assert_int_equal(hdr.has_opk, 0);
    assert_int_equal(ratchet_init_initiator(&rs, sk, &hdr, &pm.sender, &xb->owner, xb->spk_pk), 0);
    sodium_memzero(sk, sizeof(sk));
    assert_int_equal(buf_init(&rm, RATCHET_MSG_MAX, 0), 0);
    {
        /* Encrypted as transmitted: without the sender id and role (client/inner.h). */
        struct buf wire;
        assert_int_equal(buf_init(&wire, INNER_MAX_LEN, BUF_SECRET), 0);
        assert_int_equal(inner_wire_encode(buf_data(&enc), buf_size(&enc), &wire), 0);
        assert_int_equal(ratchet_encrypt(rs, buf_data(&wire), buf_size(&wire), &rm), 0);
        buf_free(&wire);
    }
    pm.init = hdr;
    pm.inner = buf_data(&rm);
    pm.inner_len = buf_size(&rm);
    assert_int_equal(buf_init(ct, WIRE_CT_MAX, 0), 0);
    assert_int_equal(x3dh_prekey_msg_encode(&pm, ct), 0);
    memcpy(ek, hdr.ek_pk, X3DH_PK_LEN);
    ratchet_session_free(rs);
    buf_free(&rm);
    buf_free(&enc);
}

/* Submits ct to `to` under a fresh envelope id over c; the relay accepts it. */
static void submit_raw(struct wsc *c, const struct side *to, const struct buf *ct)
{
    struct wire_envelope e;
    struct wire_msg wm;
    struct wire_iter it;
    struct wire_ack ack;
    struct buf msg;
    uint8_t env_id[WIRE_ID_LEN];

    randombytes_buf(env_id, sizeof(env_id));
    tc_envelope(&e, env_id, &to->dev, 3 /* ROUTINE */, tnow() + 3600, buf_data(ct),
                (uint32_t)buf_size(ct));
    assert_int_equal(tc_submit(c, &e, 1), 0);
    assert_int_equal(buf_init(&msg, 1 << 20, 0), 0);
    assert_int_equal(tc_expect(c, &msg, &wm, WIRE_SUBMIT_ACK, TWAIT), 0);
    assert_int_equal(wm.u.batch.n, 1);
    wire_iter_init(&it, &wm);
    assert_int_equal(wire_next_ack(&it, &ack), 0);
    assert_memory_equal(ack.id, env_id, WIRE_ID_LEN);
    assert_int_equal(ack.reason, WIRE_R_OK);
    buf_free(&msg);
}

/* The plaintext of s's record table/key (VERR_UNKNOWN: none), read with the store API. */
static int store_record(struct side *s, enum cstore_table t, const uint8_t *key, size_t klen,
                        struct buf *out)
{
    struct identity ident;
    struct cstore *st = NULL;
    int r;

    mbox_close(s->m);
    s->m = NULL;
    assert_int_equal(identity_unlock(s->home, pass, &ident), 0);
    assert_int_equal(cstore_open(&st, s->home, ident.store_key), 0);
    r = cstore_get(st, t, key, klen, out);
    cstore_close(st);
    identity_free(&ident);
    assert_int_equal(mbox_open(&s->m, s->home, pass), 0);
    return r;
}

/* The X3DH ephemeral keys of a `sessions` record (PROTOCOL.md part 4, table 1); their count. */
static size_t session_eks(const struct buf *rec, uint8_t ek[static SESS_KEEP][X3DH_PK_LEN])
{
    struct buf v, part;
    uint8_t ver, n;

    buf_view(&v, buf_data(rec), buf_size(rec));
    assert_int_equal(buf_get_u8(&v, &ver), 0);
    assert_int_equal(ver, 1);
    assert_int_equal(buf_get_u8(&v, &n), 0);
    assert_true(n >= 1 && n <= SESS_KEEP);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(buf_get_bytes(&v, ek[i], X3DH_PK_LEN), 0);
        assert_int_equal(buf_get_view32(&v, buf_size(rec), &part), 0);
    }
    assert_int_equal(buf_expect_end(&v), 0);
    return n;
}

static size_t inbox_count(struct side *s)
{
    struct mbox_msg *list = NULL;
    size_t n = 0;

    assert_int_equal(mbox_inbox(s->m, &list, &n), 0);
    free(list);
    return n;
}

static void test_prekey_replay_after_eviction(void **state)
{
    struct tpki p;
    struct trelay relay;
    struct side a, b;
    struct identity aid;
    struct mbox_sync_stats st;
    struct x3dh_bundle xb;
    struct wsc c;
    struct buf ct0, ct, before, after, seen;
    uint8_t id[INNER_ID_LEN], ek0[X3DH_PK_LEN], ek[X3DH_PK_LEN], kept[SESS_KEEP][X3DH_PK_LEN];
    uint8_t ekey[1 + 4 + DEVICE_ID_LEN + X3DH_PK_LEN];
    uint16_t reason = 0;
    size_t n;
    (void)state;

    assert_int_equal(tpki_init(&p), 0);
    assert_int_equal(side_make(&p, &a, "alpha", "HQ", "duty", 1, NULL, pass), 0);
    assert_int_equal(side_make(&p, &b, "bravo", "JKT", "duty", 2, NULL, pass), 0);
    {
        const struct tdev *devs[] = {&a.dev, &b.dev};
        assert_int_equal(tpki_write_dir(&p, 1, devs, 2, NULL, 0), 0);
    }
    assert_int_equal(trelay_start(&relay, &p, NULL), 0);
    assert_int_equal(side_enroll(&p, &b, relay.port, pass), 0);
    sync_ok(&b, &st); /* b's prekeys are on the relay */
    assert_true(st.prekeys_uploaded > 0);
    /* a is a certified device that speaks for itself, with its own certificate and keys. */
    assert_int_equal(identity_unlock(a.home, pass, &aid), 0);
    memcpy(a.dev.sk, aid.sign_sk, SIG_SK_LEN);
    assert_int_equal(tc_auth(&c, relay.port, &a.dev, &reason), 0);
    fetch_bundle(&c, &b, &xb);

    /* 1. b accepts a's first contact, set up with b's signed prekey alone. */
    make_prekey_msg(&a, &aid, &b, &xb, "first contact, signed prekey alone", id, ek0, &ct0);
    submit_raw(&c, &b, &ct0);
    sync_ok(&b, &st);
    assert_int_equal(st.received, 1);
    assert_int_equal(st.refused, 0);
    /* The lasting record of that set-up: 'E' || u32 spk id || sender || ek (PROTOCOL.md part 4). */
    ekey[0] = 'E';
    ekey[1] = (uint8_t)(xb.spk_id >> 24);
    ekey[2] = (uint8_t)(xb.spk_id >> 16);
    ekey[3] = (uint8_t)(xb.spk_id >> 8);
    ekey[4] = (uint8_t)xb.spk_id;
    memcpy(ekey + 5, a.dev.cert.device_id, DEVICE_ID_LEN);
    memcpy(ekey + 5 + DEVICE_ID_LEN, ek0, X3DH_PK_LEN);
    assert_int_equal(store_record(&b, CS_SEEN, ekey, sizeof(ekey), &seen), 0);
    buf_free(&seen);

    /* 2. SESS_KEEP newer sessions from a: b evicts the first one. */
    for (int k = 0; k < SESS_KEEP; k++) {
        char subject[64];
        snprintf(subject, sizeof(subject), "new session %d", k + 1);
        make_prekey_msg(&a, &aid, &b, &xb, subject, id, ek, &ct);
        submit_raw(&c, &b, &ct);
        buf_free(&ct);
        sync_ok(&b, &st);
        assert_int_equal(st.received, 1);
        assert_int_equal(st.refused, 0);
    }
    sync_ok(&b, &st); /* receipts and all settled: nothing more moves */
    assert_int_equal(st.received + st.refused + st.replayed, 0);
    assert_int_equal(inbox_count(&b), 1 + SESS_KEEP);
    assert_int_equal(store_record(&b, CS_SESSIONS, a.dev.cert.device_id, DEVICE_ID_LEN, &before),
                     0);
    n = session_eks(&before, kept);
    assert_int_equal(n, SESS_KEEP);
    for (size_t i = 0; i < n; i++)
        assert_memory_not_equal(kept[i], ek0, X3DH_PK_LEN);

    /* 3. The first prekey message again, byte for byte, under a fresh envelope id. */
    submit_raw(&c, &b, &ct0);
    sync_ok(&b, &st);
    assert_int_equal(st.received, 0); /* not shown as a new message */
    assert_int_equal(st.refused, 0);  /* not refused either ... */
    assert_int_equal(st.unknown_prekey, 0);
    assert_int_equal(st.replayed, 1); /* ... but acknowledged and dropped as a replay */
    assert_int_equal(inbox_count(&b), 1 + SESS_KEEP);
    /* The session built to decrypt it was not stored: b's sessions for a are unchanged. */
    assert_int_equal(store_record(&b, CS_SESSIONS, a.dev.cert.device_id, DEVICE_ID_LEN, &after), 0);
    assert_int_equal(buf_size(&after), buf_size(&before));
    assert_memory_equal(buf_data(&after), buf_data(&before), buf_size(&before));
    buf_free(&after);
    /* Acknowledged: the relay does not deliver it again. */
    sync_ok(&b, &st);
    assert_int_equal(st.received + st.refused + st.replayed, 0);
    assert_int_equal(store_record(&b, CS_SESSIONS, a.dev.cert.device_id, DEVICE_ID_LEN, &after), 0);
    assert_int_equal(buf_size(&after), buf_size(&before));
    assert_memory_equal(buf_data(&after), buf_data(&before), buf_size(&before));
    assert_int_equal(inbox_count(&b), 1 + SESS_KEEP);

    buf_free(&after);
    buf_free(&before);
    buf_free(&ct0);
    wsc_close(&c);
    identity_free(&aid);
    mbox_close(b.m);
    assert_int_equal(trelay_signal(&relay, SIGTERM), 0);
    tpki_cleanup(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insider_reuses_circular_id),
        cmocka_unit_test(test_unknown_one_time_prekey_refused),
        cmocka_unit_test(test_prekey_replay_after_eviction),
        cmocka_unit_test(test_insider_reuses_attachment_id),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
