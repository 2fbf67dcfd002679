/* netcheck.c - why the relay could not start listening (see netcheck.h). */
#include "netcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

static int check_file(const char *flag, const char *path, char *err, size_t errsz)
{
    struct stat st;
    int fd;

    if (path == NULL)
        return 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errsz, "%s %s: %s", flag, path, strerror(errno));
        return VERR_IO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(err, errsz, "%s %s: not a regular file", flag, path);
        return VERR_IO;
    }
    close(fd);
    return 0;
}

int netcheck_tls_files(const char *cert, const char *key, char *err, size_t errsz)
{
    int r;

    if ((r = check_file("--tls-cert", cert, err, errsz)) != 0)
        return r;
    return check_file("--tls-key", key, err, errsz);
}

int netcheck_listen(const char *host, int port, char *err, size_t errsz)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, one = 1, e;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        len = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        len = sizeof(struct sockaddr_in6);
    } else {
        return 0;
    }
    if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return 0;
    /* as the real listener does: a port in TIME_WAIT is not "in use" */
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) == 0) {
        close(fd);
        return 0;
    }
    e = errno;
    close(fd);
    if (e == EADDRINUSE)
        snprintf(err, errsz, "cannot listen on %s port %d: the port is in use by another program",
                 host, port);
    else if (e == EACCES)
        snprintf(err, errsz,
                 "cannot listen on %s port %d: ports below 1024 need CAP_NET_BIND_SERVICE (or "
                 "run as root)",
                 host, port);
    else if (e == EADDRNOTAVAIL)
        snprintf(err, errsz, "cannot listen on %s port %d: %s is not an address of this machine",
                 host, port, host);
    else
        snprintf(err, errsz, "cannot listen on %s port %d: %s", host, port, strerror(e));
    return VERR_NET;
}
