/*
 * bench_overhead.c - bytes on a post's link (issue 13 item 3): the real
 * valise-relay, the client library, and the link emulator
 * (tests/support/linkemu.h) between the post's device and the relay at
 * 9,600 bit/s each way and 0.5 s one way, no cuts. The emulator counts the
 * bytes that crossed the link (TCP payload: websocket frames and the
 * protocol inside; TCP/IP headers are not counted).
 *
 * Measured, on the post's link only (HQ is on a fast path):
 *  - the post's first sync (directory, prekey upload);
 *  - an idle sync (nothing to send or receive): the price of connecting;
 *  - one 1 KiB message received, its delivery receipt sent back by that
 *    sync, then read and its read receipt sent by the next sync; the
 *    message's own cost is those two syncs less two idle syncs: for the
 *    first message of a session (a prekey message) and for a later one;
 *  - one read as soon as it is stored (as `run` or the desk may), so its
 *    delivery and read receipts are one entry: one sync less one idle;
 *  - ten 1 KiB messages received in one sync, all read, one more sync: the
 *    cost per message when receipts travel together.
 *
 * Writes a Markdown table on stdout (scripts/bench.sh puts it into
 * BENCHMARKS.md). Exit 0 when every message arrived and every receipt came
 * back, 1 otherwise. Nothing here is a timing: byte counts only.
 * usage: client_bench_overhead [--body BYTES]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "identity.h"
#include "linkemu.h"
#include "mailbox.h"
#include "clientside.h"
#include "relaytest.h"
#include "text.h"

static const char pass[] = "overhead bench passphrase";

enum { LINK_RATE = 1200, LINK_DELAY = 500, BATCH = 10 };


#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "bench_overhead: " __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)



static void sync_once(struct side *s, struct mbox_sync_stats *st)
{
    struct mbox_sync_opts o = {.quiet_ms = 150, .timeout_ms = 30000};
    int r = mbox_sync(s->m, &o, st);

    CHECK(r == 0 && st->complete, "sync of %s: %s", s->home, verr_str(r));
}

static void send_body(struct side *from, const char *to_addr, size_t body_len, int i)
{
    uint8_t id[INNER_ID_LEN], *body;
    char subject[32];
    struct mbox_draft d;

    CHECK((body = malloc(body_len)) != NULL, "malloc");
    randombytes_buf(body, body_len); /* nothing in it compresses */
    snprintf(subject, sizeof(subject), "Report %d", i);
    memset(&d, 0, sizeof(d));
    d.address = to_addr;
    d.precedence = WIRE_ROUTINE;
    d.label = "RESTRICTED";
    d.subject = subject;
    d.content = body;
    d.content_len = body_len;
    CHECK(mbox_send(from->m, &d, (uint64_t)time(NULL), id) == 0, "mbox_send");
    free(body);
}

struct bytes {
    uint64_t up, down;
};

/* `run`-like: the first new message is opened as soon as it is stored. */
struct read_at_once {
    struct mbox *m;
    int on, done;
};

static void on_event(void *ctx, int kind, const struct mbox_msg *msg)
{
    struct read_at_once *ra = ctx;
    struct mbox_msg full;
    char hex[2 * INNER_ID_LEN + 1];

    if (kind != MBOX_EV_MESSAGE || !ra->on || ra->done)
        return;
    CHECK(text_hex_encode(hex, sizeof(hex), msg->id, INNER_ID_LEN) == 0, "hex");
    CHECK(mbox_read(ra->m, hex, (uint64_t)time(NULL), &full) == 0, "read at once");
    mbox_msg_clear(&full);
    ra->done = 1;
}

static struct read_at_once ra;

/* Bytes that crossed the link during one sync of s. */
static struct bytes measured(struct linkemu *le, struct side *s, struct mbox_sync_stats *st)
{
    struct linkemu_counters a, b;
    struct mbox_sync_opts o = {.quiet_ms = 150, .timeout_ms = 30000, .event = on_event,
                               .event_ctx = &ra};
    struct bytes d;
    int r;

    linkemu_counters(le, &a);
    r = mbox_sync(s->m, &o, st);
    CHECK(r == 0 && st->complete, "sync of %s: %s", s->home, verr_str(r));
    usleep(2 * LINK_DELAY * 1000); /* what the relay wrote last has crossed */
    linkemu_counters(le, &b);
    d.up = b.up_bytes - a.up_bytes;
    d.down = b.down_bytes - a.down_bytes;
    return d;
}

static void read_all(struct side *s, size_t expect)
{
    struct mbox_msg *list = NULL, msg;
    size_t n = 0;
    char hex[2 * INNER_ID_LEN + 1];

    CHECK(mbox_inbox(s->m, &list, &n) == 0, "inbox");
    CHECK(n == expect, "expected %zu messages, the inbox holds %zu", expect, n);
    for (size_t i = 0; i < n; i++) {
        if (list[i].read)
            continue;
        CHECK(text_hex_encode(hex, sizeof(hex), list[i].id, INNER_ID_LEN) == 0, "hex");
        CHECK(mbox_read(s->m, hex, (uint64_t)time(NULL), &msg) == 0, "read");
        mbox_msg_clear(&msg);
    }
    free(list);
}

/* Every envelope of HQ's outbox has reached state read. */
static int all_read(struct side *s)
{
    struct mbox_out *list = NULL;
    size_t n = 0;
    int ok = 1;

    CHECK(mbox_outbox(s->m, &list, &n) == 0, "outbox");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < list[i].ndev; j++)
            ok &= list[i].dev[j].state == MBOX_ENV_READ;
    mbox_outbox_free(list, n);
    return ok;
}

static void row(const char *what, struct bytes b, const char *note)
{
    printf("| %s | %llu | %llu | %llu | %s |\n", what, (unsigned long long)b.up,
           (unsigned long long)b.down, (unsigned long long)(b.up + b.down), note);
}

int main(int argc, char **argv)
{
    struct tpki p;
    struct trelay relay;
    struct side hq, post;
    struct linkemu *le;
    struct linkemu_cfg cfg = {.up_rate = LINK_RATE, .down_rate = LINK_RATE,
                              .delay_ms = LINK_DELAY};
    struct mbox_sync_stats st;
    struct bytes first, idle, idle2, m1, m2, one, later, once, b1, b2, batch;
    uint64_t body = 1024;
    int le_port;
    char addr[64];

    if (argc == 3 && strcmp(argv[1], "--body") == 0) {
        if (text_parse_u64(argv[2], 1, INNER_CONTENT_MAX, &body) != 0) {
            fprintf(stderr, "bench_overhead: --body %s: 1 to %d bytes\n", argv[2],
                    INNER_CONTENT_MAX);
            return 2;
        }
    } else if (argc != 1) {
        fputs("usage: client_bench_overhead [--body BYTES]\n", stderr);
        return 2;
    }
    CHECK(sodium_init() >= 0, "sodium_init");
    CHECK(tpki_init(&p) == 0, "tpki_init");
    CHECK(side_make(&p, &hq, "hq", "HQ", "duty", 1, NULL, pass) == 0, "side_make");
    CHECK(side_make(&p, &post, "jakarta", "JKT", "ambassador", 2, NULL, pass) == 0, "side_make");
    {
        const struct tdev *devs[] = {&hq.dev, &post.dev};
        CHECK(tpki_write_dir(&p, 1, devs, 2, NULL, 0) == 0, "directory");
    }
    CHECK(trelay_start(&relay, &p, NULL) == 0, "relay");
    cfg.upstream_port = relay.port;
    CHECK(linkemu_start(&le, &cfg, &le_port) == 0, "link emulator");
    CHECK(side_enroll(&p, &hq, relay.port, pass) == 0, "side_enroll");
    CHECK(side_enroll(&p, &post, le_port, pass) == 0, "side_enroll");
    sync_once(&hq, &st);

    first = measured(le, &post, &st);
    idle = measured(le, &post, &st);

    /* One message, its delivery receipt, then its read receipt: first of its session, later. */
    snprintf(addr, sizeof(addr), "ambassador@JKT");
    ra.m = post.m;
    for (int k = 0; k < 2; k++) {
        struct bytes *to = k == 0 ? &one : &later;
        send_body(&hq, addr, (size_t)body, 100 + k);
        sync_once(&hq, &st);
        m1 = measured(le, &post, &st);
        CHECK(st.received == 1, "the message did not arrive (%zu)", st.received);
        read_all(&post, 1 + (size_t)k);
        m2 = measured(le, &post, &st);
        sync_once(&hq, &st);
        CHECK(all_read(&hq), "HQ did not get both receipts");
        to->up = m1.up + m2.up - 2 * idle.up;
        to->down = m1.down + m2.down - 2 * idle.down;
    }
    idle2 = measured(le, &post, &st);
    /* Read at once: one receipt entry says delivered and read. */
    send_body(&hq, addr, (size_t)body, 200);
    sync_once(&hq, &st);
    ra.on = 1;
    m1 = measured(le, &post, &st);
    ra.on = 0;
    CHECK(ra.done && st.received == 1 && st.receipts_sent == 1, "read at once: %zu receipts",
          st.receipts_sent);
    sync_once(&hq, &st);
    CHECK(all_read(&hq), "HQ did not get the receipt of the message read at once");
    once.up = m1.up - idle.up;
    once.down = m1.down - idle.down;

    /* Ten at once: received by one sync, all read, receipts sent by the next. */
    for (int i = 1; i <= BATCH; i++)
        send_body(&hq, addr, (size_t)body, i);
    sync_once(&hq, &st);
    b1 = measured(le, &post, &st);
    CHECK(st.received == BATCH, "the batch did not arrive (%zu)", st.received);
    read_all(&post, 3 + BATCH);
    b2 = measured(le, &post, &st);
    sync_once(&hq, &st);
    CHECK(all_read(&hq), "HQ did not get every receipt of the batch");
    batch.up = (b1.up + b2.up - 2 * idle.up) / BATCH;
    batch.down = (b1.down + b2.down - 2 * idle.down) / BATCH;

    printf("| on the post's link (9,600 bit/s, 0.5 s one way) | up (bytes) | down (bytes) | "
           "total | |\n");
    printf("|---|---:|---:|---:|---|\n");
    row("first sync of a new device", first, "directory down, signed prekey and one-time "
                                             "prekeys up");
    row("idle sync (nothing to do)", idle, "connect, authenticate, QUEUE_EMPTY");
    if (idle2.up != idle.up || idle2.down != idle.down)
        printf("| idle sync, later | %llu | %llu | %llu | differs from the first: the figures "
               "below are less exact |\n",
               (unsigned long long)idle2.up, (unsigned long long)idle2.down,
               (unsigned long long)(idle2.up + idle2.down));
    {
        char what[96], note[160];
        snprintf(what, sizeof(what), "one %llu-byte message, first of its session, delivery and "
                                     "read receipts",
                 (unsigned long long)body);
        snprintf(note, sizeof(note), "two syncs less two idle syncs; **overhead %lld bytes**",
                 (long long)(one.up + one.down) - (long long)body);
        row(what, one, note);
        snprintf(what, sizeof(what), "one %llu-byte message, session established, delivery and "
                                     "read receipts",
                 (unsigned long long)body);
        snprintf(note, sizeof(note), "two syncs less two idle syncs; **overhead %lld bytes**",
                 (long long)(later.up + later.down) - (long long)body);
        row(what, later, note);
        snprintf(what, sizeof(what), "one %llu-byte message read at once (session established)",
                 (unsigned long long)body);
        snprintf(note, sizeof(note), "one receipt entry, delivered and read; one sync less one "
                                     "idle sync; **overhead %lld bytes**",
                 (long long)(once.up + once.down) - (long long)body);
        row(what, once, note);
        snprintf(what, sizeof(what), "%d such messages at once, per message", BATCH);
        snprintf(note, sizeof(note), "received by one sync, read, receipts sent by the next; "
                                     "**overhead %lld bytes** per message",
                 (long long)(batch.up + batch.down) - (long long)body);
        row(what, batch, note);
    }
    linkemu_stop(le);
    mbox_close(hq.m);
    mbox_close(post.m);
    (void)trelay_signal(&relay, SIGTERM);
    tpki_cleanup(&p);
    return 0;
}
