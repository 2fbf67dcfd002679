/*
 * session.c - the desk's session socket (session.h; issue 12 item 14).
 */
#define _GNU_SOURCE 1 /* struct ucred, SO_PEERCRED, accept4 (unix(7), accept(2)) */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "desk.h"

static int session_path(const char *home, struct sockaddr_un *sa)
{
    int n;

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", home, SESSION_SOCKET_NAME);
    return n < 0 || (size_t)n >= sizeof(sa->sun_path) ? VERR_USAGE : 0;
}

static void session_timeouts(int fd, unsigned secs)
{
    struct timeval tv = {.tv_sec = (time_t)secs, .tv_usec = 0};

    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* 1 if the other end of a unix socket runs as our uid (SO_PEERCRED, unix(7)). */
static int session_peer_is_us(int fd)
{
    struct ucred cr;
    socklen_t l = sizeof(cr);

    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0 && l == sizeof(cr) &&
           cr.uid == getuid();
}

int session_listen(const char *home, int *fd)
{
    struct sockaddr_un sa;
    struct stat st;
    mode_t old;
    int s = -1, r;

    *fd = -1;
    if ((r = session_path(home, &sa)) != 0)
        return r;
    /* The home guards the socket: ours and closed to others (as ssh's ~/.ssh). */
    if (stat(home, &st) != 0)
        return VERR_IO;
    if (st.st_uid != getuid() || (st.st_mode & 077) != 0)
        return VERR_DENIED;
    /* A stale socket of a desk that died is replaced; a file that is not a socket is not. */
    if (lstat(sa.sun_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return VERR_EXISTS;
        if (unlink(sa.sun_path) != 0)
            return VERR_IO;
    }
    if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        return VERR_IO;
    old = umask(0177); /* the socket file is created 0600 */
    r = bind(s, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r != 0 || listen(s, 8) != 0) {
        close(s);
        return VERR_IO;
    }
    *fd = s;
    return 0;
}

void session_close(const char *home, int fd)
{
    struct sockaddr_un sa;

    if (fd < 0)
        return;
    close(fd);
    if (session_path(home, &sa) == 0)
        (void)unlink(sa.sun_path);
}

/* Reads until end of file, at most max bytes; 0 and *len, or an error. */
static int session_read_all(int fd, uint8_t *buf, size_t max, size_t *len)
{
    *len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + *len, max - *len);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? VERR_TIMEOUT : VERR_IO;
        }
        *len += (size_t)n;
        if (*len == max)
            return VERR_TOO_LARGE;
    }
}

static int session_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;

    while (n > 0) {
        /* MSG_NOSIGNAL: a peer that went away is an error here, not SIGPIPE. */
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return VERR_IO;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The desk call behind a verb: path and method. */
static int session_route(const uint8_t *req, size_t len, const char **path, int *post)
{
    struct json_tokener *tok = json_tokener_new_ex(4);
    json_object *o = NULL, *v;
    const char *verb;
    int r = VERR_BAD_FORMAT;

    if (tok == NULL)
        return VERR_NOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    if (len == 0 || len > INT32_MAX)
        goto out;
    o = json_tokener_parse_ex(tok, (const char *)req, (int)len);
    if (o == NULL || json_tokener_get_parse_end(tok) != len ||
        !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "verb", &v) ||
        !json_object_is_type(v, json_type_string))
        goto out;
    verb = json_object_get_string(v);
    if (strcmp(verb, "inbox") == 0) {
        *path = "/api/inbox";
        *post = 0;
    } else if (strcmp(verb, "outbox") == 0) {
        *path = "/api/outbox";
        *post = 0;
    } else if (strcmp(verb, "read") == 0) {
        *path = "/api/read";
        *post = 1;
    } else if (strcmp(verb, "send") == 0) {
        *path = "/api/send";
        *post = 1;
    } else if (strcmp(verb, "fingerprint") == 0) {
        *path = "/api/fingerprint";
        *post = 1;
    } else {
        goto out;
    }
    r = 0;
out:
    if (o != NULL && json_object_object_get_ex(o, "body", &v) &&
        json_object_is_type(v, json_type_string))
        sodium_memzero((char *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
    json_object_put(o);
    json_tokener_free(tok);
    return r;
}

static void session_answer(int c, struct desk *d, uint64_t now)
{
    uint8_t *req = NULL;
    size_t len = 0;
    const char *path = NULL;
    int post = 0;
    struct desk_reply rep;
    char head[48];
    int hn;

    memset(&rep, 0, sizeof(rep));
    if ((req = sodium_malloc(SESSION_REQ_MAX)) == NULL)
        return;
    if (session_read_all(c, req, SESSION_REQ_MAX, &len) != 0)
        goto out;
    if (session_route(req, len, &path, &post) != 0) {
        static const char bad[] = "{\"status\":400,\"reply\":{\"error\":\"bad_request\"}}";
        (void)session_write_all(c, bad, sizeof(bad) - 1);
        goto out;
    }
    if (desk_api(d, post, path, req, len, now, &rep) != 0) {
        static const char bad[] = "{\"status\":500,\"reply\":{\"error\":\"internal\"}}";
        (void)session_write_all(c, bad, sizeof(bad) - 1);
        goto out;
    }
    /* Framing only: the reply object is json-c's output (desk.c). */
    hn = snprintf(head, sizeof(head), "{\"status\":%d,\"reply\":", rep.status);
    if (hn > 0 && (size_t)hn < sizeof(head) && session_write_all(c, head, (size_t)hn) == 0 &&
        session_write_all(c, rep.body, rep.len) == 0)
        (void)session_write_all(c, "}", 1);
out:
    desk_reply_free(&rep);
    sodium_free(req); /* wipes */
}

void session_serve(int fd, struct desk *d, uint64_t now)
{
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            return; /* EAGAIN: nobody else waiting */
        /* Blocking from here, bounded: a client that stalls costs 2 s at most. */
        if (fcntl(c, F_SETFL, 0) == 0 && session_peer_is_us(c)) {
            session_timeouts(c, 2);
            session_answer(c, d, now);
        }
        close(c);
    }
}

int session_call(const char *home, const char *req, size_t req_len, char **reply, size_t *reply_len)
{
    struct sockaddr_un sa;
    uint8_t *buf = NULL;
    size_t n = 0;
    int s = -1, r;

    *reply = NULL;
    *reply_len = 0;
    if ((r = session_path(home, &sa)) != 0)
        return r;
    if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return VERR_IO;
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        r = errno == ENOENT || errno == ECONNREFUSED ? VERR_UNKNOWN : VERR_IO;
        goto out;
    }
    /* The desk must be ours too (a socket in our 0700 home is, but say it). */
    if (!session_peer_is_us(s)) {
        r = VERR_DENIED;
        goto out;
    }
    session_timeouts(s, 10);
    if ((r = session_write_all(s, req, req_len)) != 0)
        goto out;
    (void)shutdown(s, SHUT_WR);
    if ((buf = sodium_malloc(SESSION_REPLY_MAX)) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    if ((r = session_read_all(s, buf, SESSION_REPLY_MAX - 1, &n)) != 0)
        goto out;
    if (n == 0) {
        r = VERR_DENIED; /* closed unanswered */
        goto out;
    }
    buf[n] = 0;
    *reply = (char *)buf;
    *reply_len = n;
    buf = NULL;
    r = 0;
out:
    sodium_free(buf);
    if (s >= 0)
        close(s);
    return r;
}
