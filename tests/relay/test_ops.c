/*
 * test_ops.c - what an operator runs and reads (issue 15, issue 12 item 13):
 * the log lines for connections, authentication failures, disconnects, a bad
 * directory on SIGHUP and the final checkpoint on SIGTERM; the hot backup and
 * the restore drill (back up, keep traffic flowing, lose the data directory,
 * restore, start: nothing acknowledged lost, the officer told of a restore).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "fileio.h"
#include "relaytest.h"

enum { OUT_MAX = 1 << 16 };

struct fixture {
    struct tpki pki;
    struct tdev a, b, stranger;
    struct trelay relay;
    struct buf msg;
    char home[TPATH];
};

static char out[OUT_MAX];

static int setup(void **state)
{
    static struct fixture f;
    const struct tdev *devs[2];
    uint64_t now = tnow();

    memset(&f, 0, sizeof(f));
    assert_int_equal(tpki_init(&f.pki), 0);
    assert_int_equal(tdev_make(&f.pki, &f.a, 1, now - 60, now + 86400), 0);
    assert_int_equal(tdev_make(&f.pki, &f.b, 2, now - 60, now + 86400), 0);
    /* its certificate has expired: its AUTH fails */
    assert_int_equal(tdev_make(&f.pki, &f.stranger, 3, now - 7200, now - 3600), 0);
    devs[0] = &f.a;
    devs[1] = &f.b;
    assert_int_equal(tpki_write_dir(&f.pki, 1, devs, 2, NULL, 0), 0);
    assert_int_equal(file_join(f.home, sizeof(f.home), f.pki.dir, "home"), 0);
    assert_int_equal(file_mkdir_private(f.home), 0);
    assert_int_equal(buf_init(&f.msg, 8 << 20, 0), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    trelay_signal(&f->relay, SIGKILL);
    buf_free(&f->msg);
    tpki_cleanup(&f->pki);
    return 0;
}

/* Runs argv with HOME set to the fixture's; stdout and stderr into out; the exit status. */
static int run(const struct fixture *f, const char *const *argv)
{
    char path[TPATH];
    struct buf b;
    pid_t pid;
    int st, fd;

    assert_int_equal(file_join(path, sizeof(path), f->pki.dir, "run.out"), 0);
    unlink(path);
    if ((pid = fork()) == 0) {
        setenv("HOME", f->home, 1);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    out[0] = '\0';
    if (file_read(path, OUT_MAX - 1, 0, &b) == 0) {
        if (buf_size(&b) > 0)
            memcpy(out, buf_data(&b), buf_size(&b));
        out[buf_size(&b)] = '\0';
        buf_free(&b);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_run(const struct fixture *f, const char *const *argv, int status,
                       const char *needle)
{
    int st = run(f, argv);

    if (st != status || (needle != NULL && strstr(out, needle) == NULL))
        fail_msg("%s %s: expected exit %d and \"%s\", saw exit %d and:\n%s", argv[0], argv[1],
                 status, needle != NULL ? needle : "", st, out);
}

/* Waits (generously: the machine is shared) until the relay's log holds needle. */
static void expect_log(const struct trelay *r, const char *needle)
{
    for (int i = 0; i < 200; i++) {
        if (trelay_log_contains(r, (const uint8_t *)needle, strlen(needle)))
            return;
        usleep(50 * 1000);
    }
    {
        struct buf b;

        if (file_read(r->log_path, OUT_MAX - 1, 0, &b) == 0) {
            memcpy(out, buf_data(&b), buf_size(&b));
            out[buf_size(&b)] = '\0';
            buf_free(&b);
        } else
            memcpy(out, "(no log)", sizeof("(no log)"));
    }
    fprintf(stderr, "the relay's log:\n%s\n", out);
    fail_msg("the relay's log never said \"%s\" (the log is printed above)", needle);
}

static void submit_one(struct fixture *f, struct wsc *c, const uint8_t id[WIRE_ID_LEN],
                       const struct tdev *to, const char *text)
{
    struct wire_envelope e;
    struct wire_msg m;
    struct wire_iter it;
    struct wire_ack a;

    tc_envelope(&e, id, to, WIRE_ROUTINE, tnow() + 3600, (const uint8_t *)text,
                (uint32_t)strlen(text));
    assert_int_equal(tc_submit(c, &e, 1), 0);
    assert_int_equal(tc_expect(c, &f->msg, &m, WIRE_SUBMIT_ACK, TWAIT), 0);
    assert_int_equal(m.u.batch.n, 1);
    wire_iter_init(&it, &m);
    assert_int_equal(wire_next_ack(&it, &a), 0);
    assert_memory_equal(a.id, id, WIRE_ID_LEN);
    if (a.reason != WIRE_R_OK)
        fail_msg("SUBMIT_ACK: expected ok, saw %s", wire_reason_name(a.reason));
}

/* Envelope ids as the client makes them: 48-bit unix ms, then random (PROTOCOL.md part 2). */
static void new_id(uint8_t id[WIRE_ID_LEN])
{
    struct timespec ts;
    uint64_t ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    for (int i = 0; i < 6; i++)
        id[i] = (uint8_t)(ms >> (40 - 8 * i));
    randombytes_buf(id + 6, WIRE_ID_LEN - 6);
    usleep(2000); /* the next id is in a later millisecond: ordered */
}

/* The ids DELIVERed until the relay is quiet, acknowledged; how many into *n. */
static void collect(struct fixture *f, struct wsc *c, uint8_t ids[][WIRE_ID_LEN], size_t max,
                    size_t *n)
{
    struct wire_msg m;

    *n = 0;
    while (tc_recv(c, &f->msg, &m, 600) == 0) {
        struct wire_iter it;
        struct wire_envelope e;
        size_t first = *n;

        if (m.type != WIRE_DELIVER)
            continue;
        wire_iter_init(&it, &m);
        for (size_t i = 0; i < m.u.batch.n; i++) {
            assert_int_equal(wire_next_envelope(&it, &e), 0);
            assert_true(*n < max);
            memcpy(ids[(*n)++], e.id, WIRE_ID_LEN);
        }
        if (*n > first)
            assert_int_equal(tc_deliver_ack(c, ids[first], *n - first), 0);
    }
}

static int has_id(uint8_t ids[][WIRE_ID_LEN], size_t n, const uint8_t id[WIRE_ID_LEN])
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(ids[i], id, WIRE_ID_LEN) == 0)
            return 1;
    return 0;
}

/*
 * The log names the peer of each connection and failed authentication, has a
 * line for each disconnect, keeps "version N" on a garbage directory at
 * SIGHUP, and confirms at SIGTERM that the final checkpoint was signed.
 */
static void test_operator_log_lines(void **state)
{
    struct fixture *f = *state;
    const struct tdev *devs[2] = {&f->a, &f->b};
    struct wsc ca, cs;
    uint16_t reason;
    static const uint8_t garbage[] = "this is not a directory\n";

    assert_int_equal(trelay_start(&f->relay, &f->pki, NULL), 0);
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    expect_log(&f->relay, "connection from 127.0.0.1");
    expect_log(&f->relay, "authenticated from 127.0.0.1");
    assert_int_equal(tc_auth(&cs, f->relay.port, &f->stranger, &reason), VERR_DENIED);
    wsc_close(&cs);
    expect_log(&f->relay, "auth failed from 127.0.0.1");
    expect_log(&f->relay, "closed before authentication");
    wsc_close(&ca);
    expect_log(&f->relay, "closed: device");
    /* a garbage directory file on SIGHUP: the served version stays, and says so */
    assert_int_equal(file_replace(f->pki.dir_path, garbage, sizeof(garbage) - 1, 0600), 0);
    assert_int_equal(trelay_signal(&f->relay, SIGHUP), 0);
    expect_log(&f->relay, "kept version 1");
    /* and an older one too */
    assert_int_equal(tpki_write_dir(&f->pki, 1, devs, 2, NULL, 0), 0);
    assert_int_equal(trelay_signal(&f->relay, SIGHUP), 0);
    expect_log(&f->relay, "is not newer than 1; kept version 1");
    assert_int_equal(trelay_signal(&f->relay, SIGTERM), 0);
    assert_true(trelay_log_contains(&f->relay, (const uint8_t *)"final checkpoint signed",
                                    strlen("final checkpoint signed")));
    assert_true(trelay_log_contains(&f->relay, (const uint8_t *)"covers relay_stop",
                                    strlen("covers relay_stop")));
}

static void copy_file(const char *from, const char *to)
{
    struct buf b;

    assert_int_equal(file_read(from, 1 << 20, 0, &b), 0);
    assert_int_equal(file_write_new(to, buf_data(&b), buf_size(&b), 0600), 0);
    buf_free(&b);
}

/* The files IT and the operator keep from the start (README "Backup and restore"). */
static const char *const key_files[] = {"handshake.key", "audit.key", "relay-id"};

static void keep_keys(const char *data, const char *keep)
{
    char from[TPATH], to[TPATH];

    assert_int_equal(file_mkdir_private(keep), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(file_join(from, sizeof(from), data, key_files[i]), 0);
        assert_int_equal(file_join(to, sizeof(to), keep, key_files[i]), 0);
        copy_file(from, to);
    }
}

static void lose_data_dir(const char *data)
{
    char cmd[TPATH + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data);
    assert_int_equal(system(cmd), 0);
    assert_false(file_exists(data));
}

/*
 * The restore drill (issue 15 item 4): a hot backup while the relay runs and
 * takes traffic; more is acknowledged after it; the data directory is lost;
 * the backup is restored and the relay started. The sender's marks in AUTH_OK
 * are those of the backup, below what it knows it submitted, so it resubmits
 * what was accepted after them (PROTOCOL.md part 4 "Relay restored"): the
 * recipient receives every acknowledged envelope. The officer's verify reports
 * RESTORED with the signed relay_restored record, exit 4; then ok.
 */
static void test_restore_drill(void **state)
{
    struct fixture *f = *state;
    const char *const extra[] = {"--checkpoint-records", "1", NULL};
    char backup[TPATH], keep[TPATH], statef[TPATH], key[512], from[TPATH], to[TPATH];
    uint8_t ids[6][WIRE_ID_LEN], got[16][WIRE_ID_LEN];
    struct wsc ca, cb;
    struct wire_msg ok;
    uint16_t reason;
    size_t n;

    assert_int_equal(file_join(backup, sizeof(backup), f->pki.dir, "relay-backup.mdb"), 0);
    assert_int_equal(file_join(keep, sizeof(keep), f->pki.dir, "keys-kept"), 0);
    assert_int_equal(file_join(statef, sizeof(statef), f->pki.dir, "officer.state"), 0);
    assert_int_equal(trelay_start(&f->relay, &f->pki, extra), 0);
    keep_keys(f->pki.data_path, keep);
    {
        const char *argv[] = {VALISE_RELAY_BIN, "--print-audit-key", "--data", f->pki.data_path,
                              NULL};
        char *nl;

        expect_run(f, argv, 0, "valise/");
        assert_true(strlen(out) < sizeof(key));
        memcpy(key, out, strlen(out) + 1);
        if ((nl = strchr(key, '\n')) != NULL)
            *nl = '\0';
    }
    /* traffic before the backup: a sends 0, 1 to b (offline) */
    assert_int_equal(tc_auth(&ca, f->relay.port, &f->a, &reason), 0);
    for (int i = 0; i < 2; i++) {
        new_id(ids[i]);
        submit_one(f, &ca, ids[i], &f->b, "before the backup");
    }
    /* the hot backup, the relay running and the connection open */
    {
        const char *argv[] = {VALISE_RELAY_BIN, "backup", "--data", f->pki.data_path,
                              "--out",          backup,   NULL};
        expect_run(f, argv, 0, "audit log of");
    }
    /* traffic keeps flowing: 2..5 acknowledged after the backup */
    for (int i = 2; i < 6; i++) {
        new_id(ids[i]);
        submit_one(f, &ca, ids[i], &f->b, "after the backup");
    }
    wsc_close(&ca);
    /* the officer verified the newer log (its checkpoint covers the post-backup records) */
    {
        const char *argv[] = {VALISE_AUDIT_BIN, "verify", "--data", f->pki.data_path, "--key",
                              key,              "--state", statef,  NULL};
        expect_run(f, argv, 0, "ok:");
    }
    /* the disk dies */
    (void)trelay_signal(&f->relay, SIGKILL);
    lose_data_dir(f->pki.data_path);
    /* restore: the kept keys, then the backup */
    assert_int_equal(file_mkdir_private(f->pki.data_path), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(file_join(from, sizeof(from), keep, key_files[i]), 0);
        assert_int_equal(file_join(to, sizeof(to), f->pki.data_path, key_files[i]), 0);
        copy_file(from, to);
    }
    {
        const char *argv[] = {VALISE_RELAY_BIN, "restore", "--data", f->pki.data_path,
                              "--from",         backup,    NULL};
        expect_run(f, argv, 0, "restored");
        /* never over a store */
        expect_run(f, argv, 1, "already holds a store");
    }
    assert_int_equal(trelay_start(&f->relay, &f->pki, extra), 0);
    expect_log(&f->relay, "restored from a backup");
    /* the sender's marks are the backup's: behind ids[5], at ids[1] */
    assert_int_equal(tc_auth_ok(&ca, f->relay.port, &f->a, &reason, &ok), 0);
    assert_memory_equal(ok.u.auth_ok.hi_submitted, ids[1], WIRE_ID_LEN);
    /* the client resubmits what it holds as accepted above the relay's mark */
    for (int i = 2; i < 6; i++)
        if (memcmp(ids[i], ok.u.auth_ok.hi_submitted, WIRE_ID_LEN) > 0)
            submit_one(f, &ca, ids[i], &f->b, "after the backup");
    wsc_close(&ca);
    /* nothing acknowledged is lost */
    assert_int_equal(tc_auth(&cb, f->relay.port, &f->b, &reason), 0);
    collect(f, &cb, got, 16, &n);
    wsc_close(&cb);
    assert_int_equal(n, 6);
    for (int i = 0; i < 6; i++)
        assert_true(has_id(got, n, ids[i]));
    /* the officer: a restore, with its evidence, not an unexplained rollback */
    {
        const char *argv[] = {VALISE_AUDIT_BIN, "verify", "--data", f->pki.data_path, "--key",
                              key,              "--state", statef,  NULL};
        const char *report[] = {VALISE_AUDIT_BIN, "report", "--data", f->pki.data_path,
                                "--state",        statef,   NULL};

        expect_run(f, argv, 4, "RESTORED: the relay was restored from a backup");
        assert_non_null(strstr(out, "relay_restored"));
        assert_null(strstr(out, "ALARM"));
        /* the evidence stays; later runs check the restored log */
        expect_run(f, argv, 0, "consistent with the checkpoint verified before");
        expect_run(f, report, 0, "restores from a backup: 1");
    }
    assert_int_equal(trelay_signal(&f->relay, SIGTERM), 0);
}

/* A backup refuses a directory without a store and leaves --out as it was. */
static void test_backup_refusals(void **state)
{
    struct fixture *f = *state;
    char outp[TPATH], empty[TPATH];
    static const uint8_t old[] = "an older backup";
    struct buf b;

    assert_int_equal(file_join(outp, sizeof(outp), f->pki.dir, "keep.mdb"), 0);
    assert_int_equal(file_join(empty, sizeof(empty), f->pki.dir, "empty"), 0);
    assert_int_equal(file_mkdir_private(empty), 0);
    assert_int_equal(file_replace(outp, old, sizeof(old) - 1, 0600), 0);
    {
        const char *argv[] = {VALISE_RELAY_BIN, "backup", "--data", empty, "--out", outp, NULL};
        expect_run(f, argv, 1, "no relay store there");
    }
    assert_int_equal(file_read(outp, 1024, 0, &b), 0);
    assert_int_equal(buf_size(&b), sizeof(old) - 1);
    assert_memory_equal(buf_data(&b), old, sizeof(old) - 1);
    buf_free(&b);
    {
        const char *argv[] = {VALISE_RELAY_BIN, "restore", "--data", empty, "--from", outp, NULL};
        expect_run(f, argv, 1, "not a valise-relay backup");
    }
    {
        const char *argv[] = {VALISE_RELAY_BIN, "backup", "--data", empty, NULL};
        expect_run(f, argv, 2, "needs --data DIR and --out FILE");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_operator_log_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_drill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
