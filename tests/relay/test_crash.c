/*
 * test_crash.c - durability: kill -9 the relay while senders submit, restart
 * it, and check that every acknowledged envelope is delivered exactly once;
 * SIGTERM exits cleanly; the raw LMDB files and the log hold no plaintext and
 * the log no ciphertext (issue 3).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "fileio.h"
#include "relaytest.h"

enum { MAX_ENV = 200000, BATCH = 20, CT_LEN = 48 };

struct env_state {
    uint8_t id[WIRE_ID_LEN];
    uint8_t acked;
    uint8_t received;
};

struct fixture {
    struct tpki pki;
    struct tdev a, b;
    struct trelay relay;
    struct buf msg;
    struct env_state *env;
    size_t nenv;
};

static const char *const fast[] = {"--rate", "100000000", NULL};

static int setup(void **state)
{
    static struct fixture f;
    const struct tdev *devs[2];
    uint64_t now = tnow();

    memset(&f, 0, sizeof(f));
    assert_int_equal(tpki_init(&f.pki), 0);
    assert_int_equal(tdev_make(&f.pki, &f.a, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.b, 2, now - 60, now + 86400), 0);
    devs[0] = &f.a;
    devs[1] = &f.b;
    assert_int_equal(tpki_write_dir(&f.pki, 1, devs, 2, NULL, 0), 0);
    assert_int_equal(buf_init(&f.msg, 16 << 20, 0), 0);
    assert_non_null(f.env = calloc(MAX_ENV, sizeof(*f.env)));
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->relay.pid > 0)
        trelay_signal(&f->relay, SIGKILL);
    free(f->env);
    buf_free(&f->msg);
    tpki_cleanup(&f->pki);
    return 0;
}

/* The ciphertext of envelope i is derived from its id, so the receiver can check it. */
static void ct_of(const struct env_state *e, uint8_t ct[CT_LEN])
{
    crypto_generichash(ct, CT_LEN, e->id, WIRE_ID_LEN, NULL, 0);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int send_batch(struct fixture *f, struct wsc *c, const size_t *idx, size_t n)
{
    struct wire_envelope e[BATCH];
    static uint8_t ct[BATCH][CT_LEN];

    for (size_t i = 0; i < n; i++) {
        ct_of(&f->env[idx[i]], ct[i]);
        tc_envelope(&e[i], f->env[idx[i]].id, &f->b, (uint8_t)(idx[i] % 4), tnow() + 3600, ct[i],
                    CT_LEN);
    }
    return tc_submit(c, e, n);
}

static size_t find_env(const struct fixture *f, const uint8_t id[WIRE_ID_LEN])
{
    /* ids are id[0..7] = index, so no search is needed */
    uint64_t i = 0;
    memcpy(&i, id, sizeof(i));
    return i < f->nenv && memcmp(f->env[i].id, id, WIRE_ID_LEN) == 0 ? (size_t)i : SIZE_MAX;
}

/* Reads SUBMIT_ACKs for up to wait_ms; marks acknowledged envelopes. */
static int read_acks(struct fixture *f, struct wsc *c, int wait_ms)
{
    struct wire_msg m;
    int r;

    while ((r = tc_recv(c, &f->msg, &m, wait_ms)) == 0) {
        struct wire_iter it;
        struct wire_ack a;

        if (m.type != WIRE_SUBMIT_ACK)
            continue;
        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            assert_int_equal(wire_next_ack(&it, &a), 0);
            size_t k = find_env(f, a.id);
            assert_true(k != SIZE_MAX);
            if (a.reason == WIRE_R_OK)
                f->env[k].acked = 1;
        }
    }
    return r;
}

static size_t new_env(struct fixture *f)
{
    uint64_t i = f->nenv++;

    assert_true(f->nenv <= MAX_ENV);
    memcpy(f->env[i].id, &i, sizeof(i));
    randombytes_buf(f->env[i].id + 8, WIRE_ID_LEN - 8);
    return (size_t)i;
}

/* Sends every envelope not acknowledged yet (the client's outbox after a reconnect). */
static void resubmit(struct fixture *f, struct wsc *c)
{
    size_t idx[BATCH], n = 0;

    for (size_t i = 0; i < f->nenv; i++) {
        if (f->env[i].acked)
            continue;
        idx[n++] = i;
        if (n == BATCH) {
            if (send_batch(f, c, idx, n) != 0)
                return;
            n = 0;
        }
    }
    if (n > 0)
        (void)send_batch(f, c, idx, n);
}

static void test_kill9_loop(void **state)
{
    struct fixture *f = *state;
    const char *rounds_env = getenv("VALISE_CRASH_ROUNDS");
    const char *long_env = getenv("VALISE_LONG"); /* scripts/test.sh --long */
    long rounds = rounds_env != NULL                               ? strtol(rounds_env, NULL, 10)
                  : long_env != NULL && strcmp(long_env, "1") == 0 ? 200
                                                                   : 20;
    struct wsc ca, cb;
    uint16_t reason;
    size_t acked_total = 0, unacked = 0, received = 0;

    if (rounds <= 0 || rounds > 1000)
        rounds = 20;
    /* at most 25 batches of BATCH per round: MAX_ENV covers 400 rounds */
    for (long round = 0; round < rounds; round++) {
        uint64_t t0, stop_after = 20 + randombytes_uniform(130);

        assert_int_equal(trelay_start(&f->relay, &f->pki, fast), 0);
        assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
        resubmit(f, &ca);
        t0 = mono_ms();
        for (int b = 0; b < 25 && mono_ms() - t0 < stop_after; b++) {
            size_t idx[BATCH];
            for (size_t i = 0; i < BATCH; i++)
                idx[i] = new_env(f);
            if (send_batch(f, &ca, idx, BATCH) != 0)
                break;
            (void)read_acks(f, &ca, 1);
        }
        /* kill -9 with submissions in flight */
        int st = trelay_signal(&f->relay, SIGKILL);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        (void)read_acks(f, &ca, 200); /* whatever was acknowledged before the kill */
        wsc_close(&ca);
    }
    /* the test proves something only if acknowledgements came before kills */
    size_t acked_before = 0, pending_at_kill = 0;
    for (size_t i = 0; i < f->nenv; i++) {
        acked_before += f->env[i].acked;
        pending_at_kill += !f->env[i].acked;
    }
    fprintf(stderr, "crash test: %zu acknowledged before a kill, %zu unacknowledged at kills\n",
            acked_before, pending_at_kill);
    assert_true(acked_before > 0);
    /* last round: no crash; the outbox drains completely */
    assert_int_equal(trelay_start(&f->relay, &f->pki, fast), 0);
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    resubmit(f, &ca);
    for (int tries = 0; tries < 50; tries++) {
        size_t left = 0;
        (void)read_acks(f, &ca, 200);
        for (size_t i = 0; i < f->nenv; i++)
            left += !f->env[i].acked;
        if (left == 0)
            break;
    }
    for (size_t i = 0; i < f->nenv; i++) {
        acked_total += f->env[i].acked;
        unacked += !f->env[i].acked;
    }
    if (unacked > 0)
        fail_msg("%zu of %zu envelopes never acknowledged", unacked, f->nenv);
    /* the recipient connects once and drains its queue */
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    struct wire_msg m;
    while (received < f->nenv && tc_recv(&cb, &f->msg, &m, 3000) == 0) {
        struct wire_iter it;
        struct wire_envelope e;
        uint8_t ct[CT_LEN];
        static uint8_t ids[WIRE_MAX_BATCH * WIRE_ID_LEN];

        if (m.type != WIRE_DELIVER)
            continue;
        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            assert_int_equal(wire_next_envelope(&it, &e), 0);
            size_t k = find_env(f, e.id);
            if (k == SIZE_MAX)
                fail_msg("delivered an envelope that was never submitted");
            if (f->env[k].received++)
                fail_msg("envelope %zu delivered twice", k);
            ct_of(&f->env[k], ct);
            assert_int_equal(e.ct_len, CT_LEN);
            assert_memory_equal(e.ct, ct, CT_LEN);
            assert_memory_equal(e.peer, f->a.cert.device_id, DEVICE_ID_LEN);
            memcpy(ids + i * WIRE_ID_LEN, e.id, WIRE_ID_LEN);
            received++;
        }
        assert_int_equal(tc_deliver_ack(&cb, ids, m.u.batch.n), 0);
    }
    if (received != f->nenv)
        fail_msg("expected %zu envelopes delivered exactly once, saw %zu", f->nenv, received);
    fprintf(stderr, "crash test: %ld kill -9 rounds, %zu envelopes, all delivered once\n", rounds,
            acked_total);
    /* SIGTERM: a clean exit with status 0 */
    usleep(200000);
    int st = trelay_signal(&f->relay, SIGTERM);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("SIGTERM: expected exit status 0, saw %d", st);
    wsc_close(&ca);
    wsc_close(&cb);
}

static int file_has(const char *path, const uint8_t *p, size_t len)
{
    struct buf f;
    int found = 0;

    if (file_read(path, (size_t)1 << 31, 0, &f) != 0)
        return -1;
    for (size_t i = 0; len <= buf_size(&f) && i <= buf_size(&f) - len && !found; i++)
        found = memcmp(buf_data(&f) + i, p, len) == 0;
    buf_free(&f);
    return found;
}

/* The relay stores only what it was given: ciphertext, never the plaintext behind it. */
static void test_no_plaintext(void **state)
{
    struct fixture *f = *state;
    uint8_t key[crypto_secretbox_KEYBYTES], nonce[crypto_secretbox_NONCEBYTES];
    char marker[64];
    uint8_t ct[2][sizeof(marker) + crypto_secretbox_MACBYTES];
    uint8_t id[2][WIRE_ID_LEN];
    struct wire_envelope e[2];
    struct wire_msg m;
    struct wsc ca, cb;
    uint16_t reason;
    char data[TPATH + 16];

    randombytes_buf(key, sizeof(key));
    randombytes_buf(nonce, sizeof(nonce));
    snprintf(marker, sizeof(marker), "VALISE-PLAINTEXT-MARKER-%08x%08x", randombytes_random(),
             randombytes_random());
    for (int i = 0; i < 2; i++) {
        nonce[0] ^= (uint8_t)(i + 1);
        crypto_secretbox_easy(ct[i], (const uint8_t *)marker, sizeof(marker), nonce, key);
        randombytes_buf(id[i], WIRE_ID_LEN);
        tc_envelope(&e[i], id[i], &f->b, WIRE_ROUTINE, tnow() + 3600, ct[i], sizeof(ct[i]));
    }
    assert_int_equal(trelay_start(&f->relay, &f->pki, fast), 0);
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    assert_int_equal(tc_submit(&ca, e, 2), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    /* one is delivered and acknowledged, the other stays queued */
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    assert_int_equal(tc_expect(&cb, &f->msg, &m, WIRE_DELIVER, TWAIT), 0);
    assert_int_equal(tc_deliver_ack(&cb, id[0], 1), 0);
    usleep(300000);
    wsc_close(&ca);
    wsc_close(&cb);
    int st = trelay_signal(&f->relay, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(data, sizeof(data), "%s/data.mdb", f->pki.data_path);
    /* the search works: the queued ciphertext is there, byte for byte */
    assert_int_equal(file_has(data, ct[1], sizeof(ct[1])), 1);
    /* and the plaintext is nowhere */
    assert_int_equal(file_has(data, (const uint8_t *)marker, strlen(marker)), 0);
    snprintf(data, sizeof(data), "%s/lock.mdb", f->pki.data_path);
    assert_int_equal(file_has(data, (const uint8_t *)marker, strlen(marker)), 0);
    /* the log holds neither ciphertext nor plaintext */
    assert_false(trelay_log_contains(&f->relay, ct[0] + 8, 16));
    assert_false(trelay_log_contains(&f->relay, ct[1] + 8, 16));
    assert_false(trelay_log_contains(&f->relay, (const uint8_t *)marker, strlen(marker)));
    sodium_memzero(key, sizeof(key));
}

/* SIGTERM with a SUBMIT in flight: it is acknowledged (and kept) or refused, never lost silently. */
static void test_sigterm_in_flight(void **state)
{
    struct fixture *f = *state;
    struct wire_envelope e[BATCH];
    uint8_t ids[BATCH][WIRE_ID_LEN], ct[CT_LEN];
    struct wire_msg m;
    struct wsc ca, cb;
    uint16_t reason;
    int acked = 0, refused = 0;

    randombytes_buf(ct, sizeof(ct));
    for (int round = 0; round < 5; round++) {
        assert_int_equal(trelay_start(&f->relay, &f->pki, fast), 0);
        assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
        for (size_t i = 0; i < BATCH; i++) {
            randombytes_buf(ids[i], WIRE_ID_LEN);
            tc_envelope(&e[i], ids[i], &f->b, WIRE_IMMEDIATE, tnow() + 3600, ct, sizeof(ct));
        }
        assert_int_equal(tc_submit(&ca, e, BATCH), 0);
        kill(f->relay.pid, SIGTERM);
        int r = tc_recv(&ca, &f->msg, &m, TWAIT);
        int st = trelay_signal(&f->relay, SIGTERM);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        wsc_close(&ca);
        if (r == 0 && m.type == WIRE_ERROR) {
            assert_int_equal(m.u.error.reason, WIRE_R_SHUTTING_DOWN);
            refused++;
            continue;
        }
        if (r != 0)
            continue; /* closed before reading it: not acknowledged, the client resends */
        assert_int_equal(m.type, WIRE_SUBMIT_ACK);
        acked++;
        /* acknowledged before the exit: there after a restart */
        assert_int_equal(trelay_start(&f->relay, &f->pki, fast), 0);
        assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
        size_t got = 0;
        while (got < BATCH && tc_expect(&cb, &f->msg, &m, WIRE_DELIVER, TWAIT) == 0) {
            struct wire_iter it;
            struct wire_envelope d;
            wire_iter_init(&it, &m);
            for (size_t i = 0; i < m.u.batch.n; i++) {
                assert_int_equal(wire_next_envelope(&it, &d), 0);
                assert_int_equal(tc_deliver_ack(&cb, d.id, 1), 0);
                for (size_t k = 0; k < BATCH; k++)
                    got += memcmp(d.id, ids[k], WIRE_ID_LEN) == 0; /* others are older tests' */
            }
        }
        assert_int_equal(got, BATCH);
        usleep(200000);
        wsc_close(&cb);
        st = trelay_signal(&f->relay, SIGTERM);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    fprintf(stderr, "SIGTERM in flight: %d acknowledged and kept, %d refused\n", acked, refused);
}

static int body_has(const struct buf *b, const char *s)
{
    size_t n = strlen(s);

    for (size_t i = 0; n <= buf_size(b) && i <= buf_size(b) - n; i++)
        if (memcmp(buf_data(b) + i, s, n) == 0)
            return 1;
    return 0;
}

/* A full LMDB map: the write fails with a reason and no acknowledgement, reads go on. */
static void test_storage_full(void **state)
{
    struct fixture *f = *state;
    static uint8_t ct[200000];
    char data[TPATH + 16];
    const char *args[] = {"--data", data, "--map-size", "1048576", "--max-envelope", "200000", NULL};
    struct wire_envelope e;
    struct wire_msg m;
    struct wsc ca, cb;
    uint16_t reason;
    uint8_t id[WIRE_ID_LEN];
    int stored = 0, full = 0;

    snprintf(data, sizeof(data), "%s/small", f->pki.dir);
    randombytes_buf(ct, sizeof(ct));
    assert_int_equal(trelay_start(&f->relay, &f->pki, args), 0);
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    for (int i = 0; i < 40 && !full; i++) {
        randombytes_buf(id, sizeof(id));
        tc_envelope(&e, id, &f->b, WIRE_ROUTINE, tnow() + 3600, ct, sizeof(ct));
        assert_int_equal(tc_submit(&ca, &e, 1), 0);
        assert_int_equal(tc_recv(&ca, &f->msg, &m, TWAIT), 0);
        if (m.type == WIRE_ERROR) {
            assert_int_equal(m.u.error.reason, WIRE_R_STORAGE_FULL);
            full = 1;
        } else {
            assert_int_equal(m.type, WIRE_SUBMIT_ACK);
            stored++;
        }
    }
    assert_true(full);
    assert_true(stored > 0);
    /* nothing can be stored: /healthz must not say ok, and /metrics says why */
    {
        struct buf body;

        assert_int_equal(buf_init(&body, 1 << 20, 0), 0);
        assert_int_equal(http_get(f->relay.port, "/healthz", &body, TWAIT), 503);
        assert_true(body_has(&body, "failing"));
        assert_int_equal(http_get(f->relay.port, "/metrics", &body, TWAIT), 200);
        assert_true(body_has(&body, "valise_relay_commit_failing{reason=\"storage_full\"} 1"));
        /* the map is --map-size and nearly all of it is in use */
        assert_true(body_has(&body, "valise_relay_map_size_bytes 1048576\n"));
        {
            char text[16384];
            const char *u;
            unsigned long long used = 0;
            size_t n = buf_size(&body) < sizeof(text) - 1 ? buf_size(&body) : sizeof(text) - 1;

            memcpy(text, buf_data(&body), n);
            text[n] = '\0';
            assert_non_null(u = strstr(text, "\nvalise_relay_map_used_bytes "));
            assert_int_equal(sscanf(u + 1, "valise_relay_map_used_bytes %llu", &used), 1);
            assert_true(used > 1048576 / 2 && used <= 1048576);
        }
        assert_true(body_has(&body, "valise_relay_audit_signed_records "));
        buf_free(&body);
    }
    /* reads keep working */
    buf_reset(&f->msg);
    assert_int_equal(wire_put_directory(&f->msg, WIRE_DIRECTORY_GET, NULL, 0), 0);
    assert_int_equal(tc_send(&ca, &f->msg), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_DIRECTORY, TWAIT), 0);
    /* the recipient drains what was stored; its acknowledgements free space */
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    int got = 0;
    while (got < stored && tc_expect(&cb, &f->msg, &m, WIRE_DELIVER, TWAIT) == 0) {
        struct wire_iter it;
        struct wire_envelope d;
        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            assert_int_equal(wire_next_envelope(&it, &d), 0);
            assert_int_equal(tc_deliver_ack(&cb, d.id, 1), 0);
            got++;
        }
    }
    assert_int_equal(got, stored);
    usleep(300000);
    /* and the relay recovers: a new envelope is stored again */
    randombytes_buf(id, sizeof(id));
    tc_envelope(&e, id, &f->b, WIRE_ROUTINE, tnow() + 3600, ct, 1000);
    assert_int_equal(tc_submit(&ca, &e, 1), 0);
    assert_int_equal(tc_expect(&ca, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    {
        struct buf body;

        assert_int_equal(buf_init(&body, 1 << 20, 0), 0);
        assert_int_equal(http_get(f->relay.port, "/healthz", &body, TWAIT), 200);
        buf_free(&body);
    }
    wsc_close(&ca);
    wsc_close(&cb);
    int st = trelay_signal(&f->relay, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/*
 * One relay per data directory: a second one on the same --data is refused
 * with the pid of the first (two writers would fork the audit log), and the
 * relay id recorded at the first start cannot silently change.
 */
static void test_one_relay_per_data_dir(void **state)
{
    struct fixture *f = *state;
    const char *as_other[] = {"--relay-id", "another-relay", NULL};
    const char *as_first[] = {"--relay-id", "first-relay", NULL};
    char expect[128], saved[TPATH], first_cert[TPATH + 16];
    const char *by_cert[] = {"--relay-cert", first_cert, NULL};
    struct trelay second;
    struct buf cert;
    pid_t first;
    int st;

    /* a data directory of its own: the fixture's already records the default id */
    memcpy(saved, f->pki.data_path, sizeof(saved));
    assert_true((size_t)snprintf(f->pki.data_path, sizeof(f->pki.data_path), "%s/onlyone",
                                 f->pki.dir) < sizeof(f->pki.data_path));
    assert_int_equal(trelay_start(&f->relay, &f->pki, as_first), 0);
    first = f->relay.pid;
    /* keep the certificate IT made for first-relay */
    snprintf(first_cert, sizeof(first_cert), "%s/first.rcert", f->pki.dir);
    assert_int_equal(file_read(f->pki.relaycert_path, 4096, 0, &cert), 0);
    assert_int_equal(file_replace(first_cert, buf_data(&cert), buf_size(&cert), 0600), 0);
    buf_free(&cert);
    assert_int_not_equal(trelay_start(&second, &f->pki, as_first), 0);
    snprintf(expect, sizeof(expect), "is in use by another valise-relay (pid %ld)", (long)first);
    if (!trelay_log_contains(&f->relay, (const uint8_t *)expect, strlen(expect)))
        fail_msg("second relay not refused with \"%s\"", expect);
    /* the first one still works */
    {
        struct buf body;

        assert_int_equal(buf_init(&body, 1 << 20, 0), 0);
        assert_int_equal(http_get(f->relay.port, "/healthz", &body, TWAIT), 200);
        buf_free(&body);
    }
    st = trelay_signal(&f->relay, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* another id on the same data (with a certificate for that id): refused */
    assert_int_not_equal(trelay_start(&second, &f->pki, as_other), 0);
    snprintf(expect, sizeof(expect), "belongs to relay \"first-relay\"");
    if (!trelay_log_contains(&f->relay, (const uint8_t *)expect, strlen(expect)))
        fail_msg("other --relay-id not refused with \"%s\"", expect);
    /* no --relay-id: the certificate's, which is the recorded one */
    assert_int_equal(trelay_start(&f->relay, &f->pki, by_cert), 0);
    st = trelay_signal(&f->relay, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(expect, sizeof(expect), "valise/first-relay+");
    if (!trelay_log_contains(&f->relay, (const uint8_t *)expect, strlen(expect)))
        fail_msg("restart without --relay-id did not sign as \"%s\"", expect);
    memcpy(f->pki.data_path, saved, sizeof(saved));
}

/* Start-up refusals an operator can act on: each names its cause, not "network error". */
static void test_operator_errors(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_in sa;
    socklen_t slen = sizeof(sa);
    char listen_arg[64], cfg_path[TPATH + 16], expect[TPATH + 128];
    const char *busy[] = {"--listen", listen_arg, NULL};
    const char *no_tls[] = {"--tls-cert", "/nonexistent/relay.crt", "--tls-key",
                            "/nonexistent/relay.key", NULL};
    const char *bad_cfg[] = {"--config", cfg_path, NULL};
    static const char cfg_text[] = "# relay\nmax-frame = 12abc\n";
    static const char cfg_junk[] = "\x1b]52;c;AAAA\x07 = 1\n";
    struct trelay t;
    int fd;

    /* a port some other program holds */
    assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &slen), 0);
    snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%d", ntohs(sa.sin_port));
    assert_int_not_equal(trelay_start(&t, &f->pki, busy), 0);
    snprintf(expect, sizeof(expect), "port %d: the port is in use by another program",
             ntohs(sa.sin_port));
    if (!trelay_log_contains(&t, (const uint8_t *)expect, strlen(expect)))
        fail_msg("a port in use was not named: expected \"%s\"", expect);
    close(fd);
    /* TLS files that are not there */
    assert_int_not_equal(trelay_start(&t, &f->pki, no_tls), 0);
    snprintf(expect, sizeof(expect), "--tls-cert /nonexistent/relay.crt: No such file");
    if (!trelay_log_contains(&t, (const uint8_t *)expect, strlen(expect)))
        fail_msg("a missing TLS file was not named: expected \"%s\"", expect);
    /* a config file error names the file and line */
    snprintf(cfg_path, sizeof(cfg_path), "%s/relay.conf", f->pki.dir);
    assert_int_equal(file_replace(cfg_path, (const uint8_t *)cfg_text, sizeof(cfg_text) - 1, 0600),
                     0);
    assert_int_not_equal(trelay_start(&t, &f->pki, bad_cfg), 0);
    snprintf(expect, sizeof(expect), "--config %s line 2: max-frame: expected a whole number",
             cfg_path);
    if (!trelay_log_contains(&t, (const uint8_t *)expect, strlen(expect)))
        fail_msg("config error without file and line: expected \"%s\"", expect);
    /* and never echoes the file's control bytes */
    assert_int_equal(file_replace(cfg_path, (const uint8_t *)cfg_junk, sizeof(cfg_junk) - 1, 0600),
                     0);
    assert_int_not_equal(trelay_start(&t, &f->pki, bad_cfg), 0);
    assert_false(trelay_log_contains(&t, (const uint8_t *)"\x1b]52", 3));
    {
        static const char shown[] = "unknown setting \"?]52;c;AAAA?\"";

        assert_true(trelay_log_contains(&t, (const uint8_t *)shown, sizeof(shown) - 1));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_loop),
        cmocka_unit_test(test_no_plaintext),
        cmocka_unit_test(test_sigterm_in_flight),
        cmocka_unit_test(test_storage_full),
        cmocka_unit_test(test_one_relay_per_data_dir),
        cmocka_unit_test(test_operator_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
