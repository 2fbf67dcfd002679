/* relaytest.c - shared pieces of the relay integration tests (see relaytest.h). */
#define _XOPEN_SOURCE 700
#include "relaytest.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "sig.h"

#ifndef VALISE_RELAY_BIN
#error "VALISE_RELAY_BIN must name the valise-relay binary"
#endif

uint64_t tnow(void)
{
    return (uint64_t)time(NULL);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int tpki_init(struct tpki *p)
{
    uint8_t pk[SIG_PK_LEN];
    struct buf b;
    int r;

    memset(p, 0, sizeof(*p));
    if (sodium_init() < 0)
        return VERR_INTERNAL;
    snprintf(p->dir, sizeof(p->dir), "/tmp/valise-relay-test-XXXXXX");
    if (mkdtemp(p->dir) == NULL)
        return VERR_IO;
    crypto_sign_keypair(pk, p->org_sk);
    snprintf(p->org.name, sizeof(p->org.name), "Test Ministry");
    memcpy(p->org.pk, pk, SIG_PK_LEN);
    orgpub_id(p->org.id, pk);
    if ((r = file_join(p->orgpub_path, sizeof(p->orgpub_path), p->dir, "org.pub")) != 0 ||
        (r = file_join(p->dir_path, sizeof(p->dir_path), p->dir, "directory")) != 0 ||
        (r = file_join(p->data_path, sizeof(p->data_path), p->dir, "data")) != 0 ||
        (r = file_join(p->relaycert_path, sizeof(p->relaycert_path), p->dir, "relay.cert")) != 0)
        return r;
    if ((r = orgpub_encode(&p->org, &b)) != 0)
        return r;
    r = file_write_new(p->orgpub_path, buf_data(&b), buf_size(&b), 0644);
    buf_free(&b);
    return r;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tpki_cleanup(struct tpki *p)
{
    if (p->dir[0] != '\0' && getenv("VALISE_KEEP_TEST_DIRS") == NULL)
        nftw(p->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    sodium_memzero(p->org_sk, sizeof(p->org_sk));
}

int tdev_make(const struct tpki *p, struct tdev *d, uint64_t serial, uint64_t not_before,
              uint64_t not_after)
{
    uint8_t dh_sk[32];
    struct buf b;
    int r;

    memset(d, 0, sizeof(*d));
    d->cert.serial = serial;
    memcpy(d->cert.org_id, p->org.id, ORG_ID_LEN);
    randombytes_buf(d->cert.device_id, DEVICE_ID_LEN);
    memcpy(d->cert.person_id, d->cert.device_id, PERSON_ID_LEN); /* one person per device */
    snprintf(d->cert.name, sizeof(d->cert.name), "Test Person %llu", (unsigned long long)serial);
    snprintf(d->cert.post, sizeof(d->cert.post), "HQ");
    snprintf(d->cert.role, sizeof(d->cert.role), "duty");
    crypto_sign_keypair(d->cert.sign_pk, d->sk);
    randombytes_buf(dh_sk, sizeof(dh_sk));
    crypto_scalarmult_base(d->cert.dh_pk, dh_sk);
    sodium_memzero(dh_sk, sizeof(dh_sk));
    d->cert.not_before = not_before;
    d->cert.not_after = not_after;
    if ((r = cert_sign(&d->cert, p->org_sk, &b)) != 0)
        return r;
    memcpy(d->cert_bytes, buf_data(&b), buf_size(&b));
    d->cert_len = buf_size(&b);
    buf_free(&b);
    return 0;
}

static int by_serial(const void *a, const void *b)
{
    const struct cert *x = a, *y = b;
    return x->serial < y->serial ? -1 : x->serial > y->serial;
}

static int rev_by_serial(const void *a, const void *b)
{
    const struct dir_revocation *x = a, *y = b;
    return x->serial < y->serial ? -1 : x->serial > y->serial;
}

int tpki_write_dir(const struct tpki *p, uint64_t version, const struct tdev *const *devs,
                   size_t n, const struct tdev *const *revoked, size_t nrev)
{
    struct cert *certs = calloc(n + 1, sizeof(*certs));
    struct dir_revocation *revs = calloc(nrev + 1, sizeof(*revs));
    struct buf b = {0};
    int r = VERR_NOMEM;

    if (certs == NULL || revs == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        certs[i] = devs[i]->cert;
    for (size_t i = 0; i < nrev; i++) {
        revs[i].serial = revoked[i]->cert.serial;
        memcpy(revs[i].device_id, revoked[i]->cert.device_id, DEVICE_ID_LEN);
        revs[i].revoked_at = tnow();
    }
    qsort(certs, n, sizeof(*certs), by_serial);
    qsort(revs, nrev, sizeof(*revs), rev_by_serial);
    if ((r = dir_encode_sign(version, tnow(), tnow() + 7 * 86400, &p->org, certs, n, revs, nrev, p->org_sk, &b)) != 0)
        goto out;
    r = file_replace(p->dir_path, buf_data(&b), buf_size(&b), 0644);
out:
    buf_free(&b);
    free(certs);
    free(revs);
    return r;
}

int tpki_relay_cert(const struct tpki *p, const char *data_dir, const char *relay_id,
                    uint64_t not_before, uint64_t not_after, const char *path)
{
    char key_path[TPATH];
    uint8_t sk[SIG_SK_LEN];
    struct relaycert rc;
    struct buf b = {0};
    int r;

    memset(&rc, 0, sizeof(rc));
    if ((r = file_mkdir_private(data_dir)) != 0 ||
        (r = file_join(key_path, sizeof(key_path), data_dir, RELAYKEY_FILE)) != 0)
        return r;
    if (!file_exists(key_path) && (r = relaykey_create(key_path, rc.pk)) != 0)
        return r;
    if ((r = relaykey_load(key_path, sk, rc.pk)) != 0)
        return r;
    sodium_memzero(sk, sizeof(sk));
    rc.issued_at = tnow();
    memcpy(rc.org_id, p->org.id, ORG_ID_LEN);
    if (strlen(relay_id) >= sizeof(rc.relay_id))
        return VERR_TOO_LARGE;
    memcpy(rc.relay_id, relay_id, strlen(relay_id) + 1);
    rc.not_before = not_before;
    rc.not_after = not_after;
    if ((r = relaycert_sign(&rc, p->org_sk, &b)) != 0)
        return r;
    r = file_replace(path, buf_data(&b), buf_size(&b), 0644);
    buf_free(&b);
    return r;
}

int trelay_start(struct trelay *r, const struct tpki *p, const char *const *extra)
{
    const char *argv[64];
    const char *relay_id = "valise-relay", *data = p->data_path;
    int has_cert = 0;
    size_t n = 0;
    struct buf f;
    int rc;

    memset(r, 0, sizeof(*r));
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        if (strcmp(extra[i], "--relay-cert") == 0)
            has_cert = 1;
        if (strcmp(extra[i], "--relay-id") == 0 && extra[i + 1] != NULL)
            relay_id = extra[i + 1];
        if (strcmp(extra[i], "--data") == 0 && extra[i + 1] != NULL)
            data = extra[i + 1]; /* the last --data wins, as in the relay */
    }
    if (!has_cert &&
        (rc = tpki_relay_cert(p, data, relay_id, tnow() - 60, tnow() + 86400,
                              p->relaycert_path)) != 0)
        return rc;
    if ((rc = file_join(r->log_path, sizeof(r->log_path), p->dir, "relay.log")) != 0 ||
        (rc = file_join(r->port_path, sizeof(r->port_path), p->dir, "relay.port")) != 0)
        return rc;
    unlink(r->port_path);
    argv[n++] = VALISE_RELAY_BIN;
    argv[n++] = "--data";
    argv[n++] = p->data_path;
    argv[n++] = "--org-pub";
    argv[n++] = p->orgpub_path;
    argv[n++] = "--directory";
    argv[n++] = p->dir_path;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--port-file";
    argv[n++] = r->port_path;
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    if (!has_cert) {
        argv[n++] = "--relay-cert";
        argv[n++] = p->relaycert_path;
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    if ((r->pid = fork()) < 0)
        return VERR_IO;
    if (r->pid == 0) {
        int fd = open(r->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        /* A test that dies takes its relay with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        int st;

        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            r->pid = 0;
            return VERR_IO; /* exited at start: see the log */
        }
        if (file_read(r->port_path, 16, 0, &f) == 0) {
            char text[17] = {0};
            memcpy(text, buf_data(&f), buf_size(&f));
            buf_free(&f);
            r->port = (int)strtol(text, NULL, 10);
            if (r->port > 0)
                return 0;
        }
        sleep_ms(10);
    }
    rc = VERR_TIMEOUT;
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
    return rc;
}

int trelay_signal(struct trelay *r, int sig)
{
    int st = 0;

    if (r->pid <= 0)
        return -1;
    kill(r->pid, sig);
    if (sig != SIGTERM && sig != SIGKILL)
        return 0;
    for (int i = 0; i < 1000; i++) {
        pid_t w = waitpid(r->pid, &st, WNOHANG);
        if (w == r->pid) {
            r->pid = 0;
            return st;
        }
        sleep_ms(10);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, &st, 0);
    r->pid = 0;
    return -2;
}

int trelay_log_contains(const struct trelay *r, const uint8_t *p, size_t len)
{
    struct buf f;
    int found = 0;

    if (file_read(r->log_path, 64 << 20, 0, &f) != 0)
        return 0;
    for (size_t i = 0; len <= buf_size(&f) && i <= buf_size(&f) - len && !found; i++)
        found = memcmp(buf_data(&f) + i, p, len) == 0;
    buf_free(&f);
    return found;
}

int tc_recv(struct wsc *c, struct buf *msg, struct wire_msg *m, int timeout_ms)
{
    int r;

    for (;;) {
        if ((r = wsc_recv(c, msg, timeout_ms)) != 0)
            return r;
        if ((r = wire_decode(buf_data(msg), buf_size(msg), m)) != 0 || m->type != WIRE_QUEUE_EMPTY)
            return r;
        /* the relay's flow-control notice: not what these tests wait for (msg is reset) */
    }
}

int tc_expect(struct wsc *c, struct buf *msg, struct wire_msg *m, uint8_t type, int timeout_ms)
{
    int r;

    for (;;) {
        if ((r = tc_recv(c, msg, m, timeout_ms)) != 0)
            return r;
        if (m->type == type)
            return 0;
        if (m->type == WIRE_ERROR)
            return VERR_DENIED;
    }
}

int tc_send(struct wsc *c, const struct buf *msg)
{
    return wsc_send(c, buf_data(msg), buf_size(msg));
}

int tc_auth(struct wsc *c, int port, const struct tdev *d, uint16_t *reason)
{
    struct wire_msg ok;

    return tc_auth_ok(c, port, d, reason, &ok);
}

int tc_hello(struct wsc *c, int port, uint8_t cnonce[static WIRE_NONCE_LEN], struct buf *msg,
             struct wire_msg *m, uint16_t *reason)
{
    struct buf hello;
    int r;

    *reason = 0;
    if ((r = wsc_connect(c, port, "valise.v1", TWAIT)) != 0)
        return r;
    randombytes_buf(cnonce, WIRE_NONCE_LEN);
    if ((r = buf_init(&hello, 64, 0)) != 0)
        return r;
    if ((r = wire_put_hello(&hello, cnonce)) == 0)
        r = tc_send(c, &hello);
    buf_free(&hello);
    /* a refused connection may be closed before the HELLO is written: read its ERROR */
    if ((r = tc_recv(c, msg, m, TWAIT)) != 0)
        return r;
    if (m->type == WIRE_ERROR) {
        *reason = m->u.error.reason;
        return VERR_DENIED;
    }
    return m->type == WIRE_CHALLENGE ? 0 : VERR_PROTOCOL;
}

int tc_auth_msg(const struct tdev *d, const uint8_t cnonce[static WIRE_NONCE_LEN],
                const struct wire_msg *m, const uint8_t *binding, struct buf *out)
{
    static const uint8_t zero[WIRE_BINDING_LEN];
    struct relaycert rc;
    struct buf body;
    uint8_t sig[SIG_LEN];
    int r;

    if ((r = relaycert_parse(m->u.challenge.relay_cert, m->u.challenge.relay_cert_len, &rc)) != 0)
        return r;
    if ((r = buf_init(&body, WIRE_HANDSHAKE_BODY_MAX, 0)) != 0)
        return r;
    if ((r = wire_handshake_body(&body, rc.relay_id, cnonce, m->u.challenge.nonce,
                                 binding != NULL ? binding : zero)) == 0 &&
        (r = sig_sign(sig, SIG_CTX_RELAY_AUTH, buf_data(&body), buf_size(&body), d->sk)) == 0)
        r = wire_put_auth(out, d->cert_bytes, d->cert_len, sig);
    buf_free(&body);
    return r;
}

int tc_auth_ok(struct wsc *c, int port, const struct tdev *d, uint16_t *reason,
               struct wire_msg *ok)
{
    uint8_t cnonce[WIRE_NONCE_LEN];
    struct buf msg, out;
    struct wire_msg m;
    int r;

    *reason = 0;
    if ((r = buf_init(&msg, 1 << 20, 0)) != 0 || (r = buf_init(&out, 1024, 0)) != 0)
        return r;
    if ((r = tc_hello(c, port, cnonce, &msg, &m, reason)) != 0)
        goto out;
    if ((r = tc_auth_msg(d, cnonce, &m, NULL, &out)) != 0 || (r = tc_send(c, &out)) != 0)
        goto out;
    r = tc_expect(c, &msg, &m, WIRE_AUTH_OK, TWAIT);
    if (r == VERR_DENIED)
        *reason = m.u.error.reason;
    if (r == 0)
        *ok = m;
out:
    buf_free(&msg);
    buf_free(&out);
    return r;
}

int tc_submit(struct wsc *c, const struct wire_envelope *e, size_t n)
{
    struct buf b;
    int r;

    if ((r = buf_init(&b, 64 << 20, 0)) != 0)
        return r;
    if ((r = wire_put_envelopes(&b, WIRE_SUBMIT, e, n)) == 0)
        r = tc_send(c, &b);
    buf_free(&b);
    return r;
}

int tc_deliver_ack(struct wsc *c, const uint8_t *ids, size_t n)
{
    struct buf b;
    int r;

    if ((r = buf_init(&b, 1 << 20, 0)) != 0)
        return r;
    if ((r = wire_put_ids(&b, WIRE_DELIVER_ACK, ids, n)) == 0)
        r = tc_send(c, &b);
    buf_free(&b);
    return r;
}

void tc_envelope(struct wire_envelope *e, const uint8_t id[static WIRE_ID_LEN],
                 const struct tdev *to, uint8_t precedence, uint64_t expiry, const uint8_t *ct,
                 uint32_t len)
{
    memset(e, 0, sizeof(*e));
    memcpy(e->id, id, WIRE_ID_LEN);
    memcpy(e->peer, to->cert.device_id, DEVICE_ID_LEN);
    e->precedence = precedence;
    e->expiry = expiry;
    e->ct = ct;
    e->ct_len = len;
}

int trelay_start_slow_sync(struct trelay *r, const struct tpki *p, const char *const *extra,
                           const char *faultinject_so, unsigned sync_ms, const char *asan_extra)
{
    const char *env = getenv("ASAN_OPTIONS");
    char old[1024], asan[1200], ms[16];
    int had = env != NULL, rc;

    if (had && strlen(env) >= sizeof(old))
        return VERR_TOO_LARGE;
    snprintf(old, sizeof(old), "%s", had ? env : "");
    snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0%s%s", old, old[0] != 0 ? ":" : "",
             asan_extra != NULL ? ":" : "", asan_extra != NULL ? asan_extra : "");
    snprintf(ms, sizeof(ms), "%u", sync_ms);
    if (setenv("LD_PRELOAD", faultinject_so, 1) != 0 || setenv("VALISE_SLOW_SYNC_MS", ms, 1) != 0 ||
        setenv("ASAN_OPTIONS", asan, 1) != 0)
        rc = VERR_NOMEM;
    else
        rc = trelay_start(r, p, extra);
    unsetenv("LD_PRELOAD");
    unsetenv("VALISE_SLOW_SYNC_MS");
    if (had)
        (void)setenv("ASAN_OPTIONS", old, 1);
    else
        unsetenv("ASAN_OPTIONS");
    return rc;
}
