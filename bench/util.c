/* util.c - clocks, latency samples, child processes and /proc figures (see bench.h). */
#include "bench.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { HIST_MAX_SAMPLES = 64 << 20 };

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_wall(void)
{
    return (double)bench_now_ns() / 1e9;
}

void hist_add(struct bench_hist *h, uint64_t ns)
{
    if (h->n == h->cap) {
        size_t ncap = h->cap == 0 ? 65536 : h->cap * 2;
        uint32_t *nv;

        if (ncap > HIST_MAX_SAMPLES || (nv = realloc(h->v, ncap * sizeof(*nv))) == NULL) {
            h->dropped++;
            return;
        }
        h->v = nv;
        h->cap = ncap;
    }
    /* Microseconds in 32 bits: 1 us resolution, up to 71 minutes. */
    h->v[h->n++] = ns / 1000u > UINT32_MAX ? UINT32_MAX : (uint32_t)(ns / 1000u);
}

void hist_reset(struct bench_hist *h)
{
    h->n = 0;
    h->dropped = 0;
}

void hist_free(struct bench_hist *h)
{
    free(h->v);
    memset(h, 0, sizeof(*h));
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

uint64_t hist_q(struct bench_hist *h, double q)
{
    size_t i;

    if (h->n == 0)
        return 0;
    qsort(h->v, h->n, sizeof(h->v[0]), u32_cmp);
    i = (size_t)(q * (double)(h->n - 1) + 0.5);
    if (i >= h->n)
        i = h->n - 1;
    return (uint64_t)h->v[i] * 1000u;
}

static int read_small(const char *path, char *out, size_t outsz)
{
    int fd;
    ssize_t n;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    n = read(fd, out, outsz - 1);
    close(fd);
    if (n < 0)
        return -1;
    out[n] = '\0';
    return 0;
}

double proc_cpu(pid_t pid)
{
    char path[64], s[2048], *p;
    unsigned long long ut = 0, st = 0;
    long tck = sysconf(_SC_CLK_TCK);

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_small(path, s, sizeof(s)) != 0 || (p = strrchr(s, ')')) == NULL)
        return 0;
    /* After the command name: state is field 3; utime 14 and stime 15 (proc(5)). */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)(tck > 0 ? tck : 100);
}

static uint64_t proc_status_kib(pid_t pid, const char *field)
{
    char path[64], s[4096], *p;
    unsigned long long kib = 0;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (read_small(path, s, sizeof(s)) != 0 || (p = strstr(s, field)) == NULL)
        return 0;
    if (sscanf(p + strlen(field), "%llu", &kib) != 1)
        return 0;
    return kib;
}

uint64_t proc_rss_kib(pid_t pid)
{
    return proc_status_kib(pid, "VmRSS:");
}

uint64_t proc_anon_kib(pid_t pid)
{
    return proc_status_kib(pid, "RssAnon:");
}

uint64_t disk_written_bytes(void)
{
    DIR *d = opendir("/sys/block");
    struct dirent *de;
    uint64_t total = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        char path[300], s[512];
        unsigned long long f[7];

        if (de->d_name[0] == '.' || strncmp(de->d_name, "loop", 4) == 0 ||
            strncmp(de->d_name, "ram", 3) == 0)
            continue;
        snprintf(path, sizeof(path), "/sys/block/%s/stat", de->d_name);
        /* Field 7: sectors written, in 512-byte units (Documentation/block/stat.rst). */
        if (read_small(path, s, sizeof(s)) == 0 &&
            sscanf(s, "%llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3], &f[4],
                   &f[5], &f[6]) == 7)
            total += (uint64_t)f[6] * 512u;
    }
    closedir(d);
    return total;
}

pid_t proc_spawn(char *const argv[], const char *logpath)
{
    pid_t pid = fork();

    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

int proc_exited(pid_t pid)
{
    int st;

    return waitpid(pid, &st, WNOHANG) == pid;
}

void proc_stop(pid_t pid, int sig)
{
    int st;

    if (pid <= 0)
        return;
    kill(pid, sig);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
}

static int tcp_connect_blocking(int port)
{
    struct sockaddr_in a;
    int fd;

    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int tcp_probe(int port)
{
    int fd = tcp_connect_blocking(port);

    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

int http_get(int port, const char *path, char *body, size_t bodysz, int timeout_ms)
{
    char req[256];
    char *resp = NULL, *hdr_end;
    size_t have = 0, cap = 1 << 16;
    int fd, status = 0, n;
    uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;

    if (bodysz > 0)
        body[0] = '\0';
    if ((fd = tcp_connect_blocking(port)) < 0)
        return 0;
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    if (n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n)
        goto out;
    if ((resp = malloc(cap + 1)) == NULL)
        goto out;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        uint64_t now = bench_now_ns();
        ssize_t got;

        if (now >= deadline || have == cap)
            break;
        if (poll(&pf, 1, (int)((deadline - now) / 1000000u) + 1) <= 0)
            break;
        if ((got = read(fd, resp + have, cap - have)) <= 0)
            break;
        have += (size_t)got;
    }
    resp[have] = '\0';
    if (have < 12 || strncmp(resp, "HTTP/1.", 7) != 0)
        goto out;
    status = (int)strtol(resp + 9, NULL, 10);
    if ((hdr_end = strstr(resp, "\r\n\r\n")) != NULL && bodysz > 0)
        snprintf(body, bodysz, "%s", hdr_end + 4);
out:
    free(resp);
    close(fd);
    return status;
}

unsigned long fd_limit_raise(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    /* libmosquitto holds three descriptors per client: ask for room when allowed (root). */
    if (rl.rlim_max < 65536) {
        struct rlimit big = {.rlim_cur = 65536, .rlim_max = 65536};

        if (setrlimit(RLIMIT_NOFILE, &big) == 0)
            return 65536;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    return (unsigned long)rl.rlim_cur;
}
