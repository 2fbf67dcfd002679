/* config.c - valise-relay's settings (see config.h). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "log.h"

enum { CFG_FILE_MAX = 64 * 1024 };

enum opt_kind { OPT_STR, OPT_U64, OPT_LEVEL, OPT_CONFIG, OPT_HELP };

struct opt {
    const char *name;
    enum opt_kind kind;
    size_t off;
    uint64_t min, max;
    const char *help;
};

#define S(f) offsetof(struct relay_config, f)
static const struct opt opts[] = {
    {"data", OPT_STR, S(data_dir), 0, 0, "DIR  LMDB data directory (created 0700)"},
    {"org-pub", OPT_STR, S(org_pub), 0, 0, "FILE organisation public key (org.pub)"},
    {"directory", OPT_STR, S(directory), 0, 0, "FILE signed directory (reloaded on SIGHUP)"},
    {"listen", OPT_STR, S(listen), 0, 0, "HOST:PORT numeric address; port 0 picks a free one"},
    {"tls-cert", OPT_STR, S(tls_cert), 0, 0, "FILE TLS certificate (PEM)"},
    {"tls-key", OPT_STR, S(tls_key), 0, 0, "FILE TLS private key (PEM)"},
    {"config", OPT_CONFIG, 0, 0, 0, "FILE settings file: lines \"name value\""},
    {"relay-id", OPT_STR, S(relay_id), 0, 0, "NAME relay identity; recorded in --data at the first start (default: the recorded one, else valise-relay)"},
    {"relay-cert", OPT_STR, S(relay_cert), 0, 0, "FILE relay certificate IT signed for --relay-id and DATA/handshake.key"},
    {"port-file", OPT_STR, S(port_file), 0, 0, "FILE write the listening port here once bound"},
    {"map-size", OPT_U64, S(map_size), 1 << 20, UINT64_C(1) << 40, "BYTES LMDB map size (8 GiB)"},
    {"max-frame", OPT_U64, S(max_frame), 1024, WIRE_DIR_MAX + 64, "BYTES largest client message (2 MiB)"},
    {"max-envelope", OPT_U64, S(max_envelope), 1, WIRE_CT_MAX, "BYTES largest ciphertext (256 KiB)"},
    {"max-batch", OPT_U64, S(max_batch), 1, WIRE_MAX_BATCH, "N envelopes per SUBMIT (1024)"},
    {"queue-max-count", OPT_U64, S(queue_max_count), 1, UINT64_C(1) << 40, "N envelopes queued per device (100000)"},
    {"queue-max-bytes", OPT_U64, S(queue_max_bytes), 1, UINT64_C(1) << 50, "BYTES queued per device (256 MiB)"},
    {"max-connections", OPT_U64, S(max_connections), 1, 1000000, "N connections in total (20000)"},
    {"max-device-connections", OPT_U64, S(max_device_connections), 1, 1000, "N connections per device (4)"},
    {"rate", OPT_U64, S(rate), 1, 100000000, "N envelopes per second per connection (50000)"},
    {"handshake-timeout", OPT_U64, S(handshake_timeout), 1, 3600, "SECONDS to authenticate (10)"},
    {"idle-timeout", OPT_U64, S(idle_timeout), 1, 86400 * 7, "SECONDS without a message (600)"},
    {"ttl-flash", OPT_U64, S(ttl[0]), 1, UINT64_C(1) << 32, "SECONDS longest FLASH life (2 days)"},
    {"ttl-immediate", OPT_U64, S(ttl[1]), 1, UINT64_C(1) << 32, "SECONDS (7 days)"},
    {"ttl-priority", OPT_U64, S(ttl[2]), 1, UINT64_C(1) << 32, "SECONDS (14 days)"},
    {"ttl-routine", OPT_U64, S(ttl[3]), 1, UINT64_C(1) << 32, "SECONDS (30 days)"},
    {"otk-max", OPT_U64, S(otk_max), 1, 100000, "N one-time prekeys kept per device (500)"},
    {"otk-low", OPT_U64, S(otk_low), 0, 100000, "N send PREKEY_LOW at or below this (10)"},
    {"deliver-batch", OPT_U64, S(deliver_batch), 1, WIRE_MAX_BATCH, "N envelopes per DELIVER (1024)"},
    {"dedupe-window", OPT_U64, S(dedupe_window), 1, UINT64_C(1) << 32, "SECONDS a delivered id is still recognised as a resubmission (3600)"},
    {"max-attachment", OPT_U64, S(max_attachment), 17, UINT32_MAX, "BYTES largest attachment ciphertext (100 MiB); needs --max-frame of 16426 or more"},
    {"checkpoint-records", OPT_U64, S(checkpoint_records), 1, UINT64_C(1) << 32, "N sign an audit checkpoint at least every N records (1000)"},
    {"checkpoint-seconds", OPT_U64, S(checkpoint_seconds), 1, 86400, "SECONDS and every T seconds while records arrive (60)"},
    {"log-level", OPT_LEVEL, S(log_level), 0, 0, "LEVEL error, warn, info (default) or debug"},
    {"help", OPT_HELP, 0, 0, 0, "     this text"},
};
#undef S

void cfg_usage(void)
{
    fprintf(stderr, "usage: valise-relay --data DIR --org-pub FILE --directory FILE --listen HOST:PORT\n"
                    "                    --relay-cert FILE [--tls-cert FILE --tls-key FILE] [options]\n"
                    "       valise-relay --init-handshake-key --data DIR --out FILE\n"
                    "       valise-relay --print-audit-key --data DIR [--relay-id NAME]\n"
                    "       valise-relay backup --data DIR --out FILE     (valise-relay backup --help)\n"
                    "       valise-relay restore --data DIR --from FILE\n"
                    "Plain ws:// is refused unless HOST is a loopback address.\n\n");
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        fprintf(stderr, "  --%-24s %s\n", opts[i].name, opts[i].help);
}

static void defaults(struct relay_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->map_size = UINT64_C(8) << 30;
    cfg->max_frame = 2 << 20;
    cfg->max_envelope = 256 << 10;
    cfg->max_batch = 1024;
    cfg->queue_max_count = 100000;
    cfg->queue_max_bytes = UINT64_C(256) << 20;
    cfg->max_connections = 20000;
    cfg->max_device_connections = 4;
    cfg->rate = 50000;
    cfg->handshake_timeout = 10;
    cfg->idle_timeout = 600;
    cfg->checkpoint_records = 1000;
    cfg->checkpoint_seconds = 60;
    cfg->ttl[0] = 2 * 86400;
    cfg->ttl[1] = 7 * 86400;
    cfg->ttl[2] = 14 * 86400;
    cfg->ttl[3] = 30 * 86400;
    cfg->otk_max = 500;
    cfg->otk_low = 10;
    cfg->deliver_batch = 1024; /* the 1 MiB DELIVER bound is reached first (BENCHMARKS.md) */
    cfg->dedupe_window = 3600; /* STORE_DEDUPE_WINDOW */
    cfg->max_attachment = 100 << 20;
    cfg->log_level = RLOG_INFO;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s[0] < '0' || s[0] > '9')
        return VERR_USAGE;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return VERR_USAGE;
    *out = v;
    return 0;
}

static const struct opt *find_opt(const char *name)
{
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

static int apply(struct relay_config *cfg, const struct opt *o, const char *value, char *err,
                 size_t errsz)
{
    char *base = (char *)cfg;
    uint64_t v;
    int lvl;

    switch (o->kind) {
    case OPT_STR:
        if (value[0] == '\0') {
            snprintf(err, errsz, "--%s needs a value", o->name);
            return VERR_USAGE;
        }
        memcpy(base + o->off, &value, sizeof(value));
        return 0;
    case OPT_U64:
        if (parse_u64(value, o->min, o->max, &v) != 0) {
            snprintf(err, errsz, "--%s: expected a whole number from %llu to %llu", o->name,
                     (unsigned long long)o->min, (unsigned long long)o->max);
            return VERR_USAGE;
        }
        memcpy(base + o->off, &v, sizeof(v));
        return 0;
    case OPT_LEVEL:
        if ((lvl = rlog_parse_level(value)) < 0) {
            snprintf(err, errsz, "--log-level: expected error, warn, info or debug");
            return VERR_USAGE;
        }
        cfg->log_level = lvl;
        return 0;
    default:
        return 0;
    }
}

static int load_file(struct relay_config *cfg, const char *path, char *err, size_t errsz)
{
    struct buf f;
    char *text = NULL, *line, *next;
    size_t lineno = 0;
    int r;

    if ((r = file_read(path, CFG_FILE_MAX, 0, &f)) != 0) {
        snprintf(err, errsz, "--config %s: %s", path, verr_str(r));
        return r;
    }
    if ((text = malloc(buf_size(&f) + 1)) == NULL) {
        buf_free(&f);
        return VERR_NOMEM;
    }
    if (buf_size(&f) > 0)
        memcpy(text, buf_data(&f), buf_size(&f));
    text[buf_size(&f)] = '\0';
    if (strlen(text) != buf_size(&f)) {
        snprintf(err, errsz, "--config %s: NUL byte in file", path);
        r = VERR_BAD_FORMAT;
        goto out;
    }
    for (line = text; line != NULL; line = next) {
        char *name, *value, *p;
        const struct opt *o;

        lineno++;
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if ((p = strchr(line, '#')) != NULL)
            *p = '\0';
        name = line + strspn(line, " \t\r");
        if (*name == '\0')
            continue;
        p = name + strcspn(name, " \t=\r");
        value = p + strspn(p, " \t=\r");
        *p = '\0';
        p = value + strlen(value);
        while (p > value && (p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\r'))
            *--p = '\0';
        o = find_opt(name);
        if (o == NULL || o->kind == OPT_CONFIG || o->kind == OPT_HELP) {
            /* the name is whatever the file holds: shown with only printable ASCII */
            for (p = name; *p != '\0'; p++)
                if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                    *p = '?';
            snprintf(err, errsz, "--config %s line %zu: unknown setting \"%.64s\" (see --help)",
                     path, lineno, name);
            r = VERR_USAGE;
            goto out;
        }
        if (cfg->nstrings >= CFG_STR_MAX) {
            snprintf(err, errsz, "--config %s: too many settings", path);
            r = VERR_LIMIT;
            goto out;
        }
        if ((cfg->strings[cfg->nstrings] = strdup(value)) == NULL) {
            r = VERR_NOMEM;
            goto out;
        }
        if ((r = apply(cfg, o, cfg->strings[cfg->nstrings++], err, errsz)) != 0) {
            char why[256];

            /* the file and line, then what apply said of the setting */
            snprintf(why, sizeof(why), "%s", err);
            snprintf(err, errsz, "--config %s line %zu: %s", path, lineno,
                     why[0] == '-' && why[1] == '-' ? why + 2 : why);
            goto out;
        }
    }
    r = 0;
out:
    free(text);
    buf_free(&f);
    return r;
}

static int parse_listen(struct relay_config *cfg, char *err, size_t errsz)
{
    const char *colon = strrchr(cfg->listen, ':');
    uint64_t port;
    size_t hlen;
    struct in_addr a4;
    struct in6_addr a6;

    if (colon == NULL || parse_u64(colon + 1, 0, 65535, &port) != 0) {
        snprintf(err, errsz, "--listen: expected HOST:PORT");
        return VERR_USAGE;
    }
    hlen = (size_t)(colon - cfg->listen);
    if (hlen > 1 && cfg->listen[0] == '[' && cfg->listen[hlen - 1] == ']') {
        memcpy(cfg->host, cfg->listen + 1, hlen - 2);
        cfg->host[hlen - 2] = '\0';
    } else if (hlen > 0 && hlen < sizeof(cfg->host)) {
        memcpy(cfg->host, cfg->listen, hlen);
        cfg->host[hlen] = '\0';
    } else {
        snprintf(err, errsz, "--listen: bad host");
        return VERR_USAGE;
    }
    if (strcmp(cfg->host, "localhost") == 0)
        memcpy(cfg->host, "127.0.0.1", sizeof("127.0.0.1"));
    if (inet_pton(AF_INET, cfg->host, &a4) == 1)
        cfg->loopback = (ntohl(a4.s_addr) >> 24) == 127;
    else if (inet_pton(AF_INET6, cfg->host, &a6) == 1)
        cfg->loopback = IN6_IS_ADDR_LOOPBACK(&a6);
    else {
        snprintf(err, errsz, "--listen: HOST must be a numeric address or localhost");
        return VERR_USAGE;
    }
    cfg->port = (int)port;
    return 0;
}

int cfg_load(struct relay_config *cfg, int argc, char **argv, char *err, size_t errsz)
{
    const char *config = NULL;
    int r;

    defaults(cfg);
    err[0] = '\0';
    /* First pass: --help and --config; the file goes first so flags win. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cfg_usage();
            return 1;
        }
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errsz, "--config needs a value");
                return VERR_USAGE;
            }
            config = argv[++i];
        }
    }
    if (config != NULL && (r = load_file(cfg, config, err, errsz)) != 0)
        return r;
    for (int i = 1; i < argc; i++) {
        const struct opt *o = NULL;

        if (strncmp(argv[i], "--", 2) == 0)
            o = find_opt(argv[i] + 2);
        if (o == NULL) {
            snprintf(err, errsz, "unknown argument \"%s\" (see --help)", argv[i]);
            return VERR_USAGE;
        }
        if (i + 1 >= argc) {
            snprintf(err, errsz, "--%s needs a value", o->name);
            return VERR_USAGE;
        }
        i++;
        if (o->kind != OPT_CONFIG && (r = apply(cfg, o, argv[i], err, errsz)) != 0)
            return r;
    }
    if (cfg->data_dir == NULL || cfg->org_pub == NULL || cfg->directory == NULL ||
        cfg->listen == NULL || cfg->relay_cert == NULL) {
        snprintf(err, errsz,
                 "--data, --org-pub, --directory, --listen and --relay-cert are required");
        return VERR_USAGE;
    }
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        snprintf(err, errsz, "--tls-cert and --tls-key go together");
        return VERR_USAGE;
    }
    if (cfg->relay_id != NULL && !relaycert_valid_id(cfg->relay_id)) {
        snprintf(err, errsz, "--relay-id \"%s\": 1..%d of a-z A-Z 0-9 . _ -", cfg->relay_id,
                 WIRE_RELAY_ID_MAX);
        return VERR_USAGE;
    }
    if ((r = parse_listen(cfg, err, errsz)) != 0)
        return r;
    /* DESIGN.md "Relay": plain ws:// only on a loopback address. */
    if (!cfg->loopback && cfg->tls_cert == NULL) {
        snprintf(err, errsz, "refusing to listen on %s without TLS (give --tls-cert and --tls-key)",
                 cfg->host);
        return VERR_DENIED;
    }
    if (cfg->max_envelope + 64 > cfg->max_frame) {
        snprintf(err, errsz, "--max-frame must exceed --max-envelope by at least 64 bytes");
        return VERR_USAGE;
    }
    return 0;
}

void cfg_free(struct relay_config *cfg)
{
    for (size_t i = 0; i < cfg->nstrings; i++)
        free(cfg->strings[i]);
    cfg->nstrings = 0;
}
