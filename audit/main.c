/*
 * main.c - valise-audit, the security officer's tool (DESIGN.md "Audit log",
 * "Command-line contract"; PROTOCOL.md, part 6 "Officer's workflow"). Links no
 * signing code (audit/CMakeLists.txt, tests/audit.cmake checks the binary).
 *
 * Exit status: 0 ok; 1 usage or operational error; 2 the log fails
 * verification against its own signed checkpoints (TAMPERED); 3 ALARM:
 * rollback, fork or inconsistency against the officer's remembered checkpoint;
 * 4 RESTORED: the relay was restored from a backup and says so in a signed
 * relay_restored record (the log restarts below the remembered checkpoint).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "audit_record.h"
#include "audit_state.h"
#include "cert.h"
#include "check.h"
#include "dir.h"
#include "fileio.h"
#include "logdb.h"
#include "merkle.h"
#include "note.h"
#include "termsafe.h"
#include "text.h"
#include "utf8.h"
#include "wire.h"

enum {
    EXIT_OK = 0,
    EXIT_ERR = 1,
    EXIT_TAMPER = 2,
    EXIT_ALARM = 3,
    EXIT_RESTORED = 4,
    PATH_MAX_LEN = 4096,
    KEY_FILE_MAX = 4096,
};

static const char *const usage_text =
    "usage: valise-audit VERB [options]   (valise-audit VERB --help)\n"
    "  verify       --data DIR [--key KEY] [--state FILE] [--evidence FILE]\n"
    "  checkpoints  --data DIR [--key KEY] [--state FILE]     the signed tree sizes\n"
    "  proof        --data DIR [--key KEY] [--state FILE] --index N [--size S]\n"
    "  consistency  --data DIR [--key KEY] [--state FILE] --from S1 [--to S2]\n"
    "  search       --data DIR [--key KEY] [--state FILE] [--from T] [--to T] [--device HEX]\n"
    "               [--post P] [--event NAME] [--org-pub FILE]\n"
    "  export       --data DIR [--key KEY] [--state FILE] [--org-pub FILE]\n"
    "  report       --data DIR [--key KEY] [--state FILE] [--org-pub FILE]\n"
    "KEY is the relay's audit verifier key (valise-relay --print-audit-key), or\n"
    "--key-file FILE holding it; without either, the key verify remembered in the state\n"
    "file (default ~/.valise-audit/state). Every verb verifies the log first and refuses a\n"
    "tampered one (exit 2). Times: unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ.\n"
    "Events for --event: relay_start relay_stop auth_ok auth_fail directory_installed\n"
    "  envelope_accepted envelope_delivered envelope_expired envelope_rejected quota_hit\n"
    "  rate_limit_hit session_revoked prekeys_uploaded prekey_issued connection_refused\n"
    "  device_enrolled device_revoked relay_restored attachment_accepted\n"
    "  attachment_delivered attachment_expired\n"
    "Exit: 0 ok, 1 error, 2 log tampered, 3 ALARM (rollback, fork, inconsistent),\n"
    "  4 RESTORED (the relay was restored from a backup and signed a relay_restored record).\n";

struct opts {
    const char *verb;
    const char *data, *key, *key_file, *state, *evidence, *org_pub;
    const char *index, *size, *from, *to, *device, *post, *event;
};

static int fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int status, const char *fmt, ...)
{
    va_list ap;

    fputs("valise-audit: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}

/* ---- arguments ---- */

struct flag {
    const char *name;
    size_t off;
};

#define F(n, f)                                                                                    \
    {                                                                                              \
        n, offsetof(struct opts, f)                                                                \
    }
static const struct flag flags[] = {
    F("data", data),         F("key", key),         F("key-file", key_file), F("state", state),
    F("evidence", evidence), F("org-pub", org_pub), F("index", index),       F("size", size),
    F("from", from),         F("to", to),           F("device", device),     F("post", post),
    F("event", event),
};
#undef F

enum { VERB_FLAGS_MAX = 11 };
static const char *const verb_flags[][VERB_FLAGS_MAX] = {
    {"verify", "data", "key", "key-file", "state", "evidence", NULL},
    {"checkpoints", "data", "key", "key-file", "state", NULL},
    {"proof", "data", "key", "key-file", "state", "index", "size", NULL},
    {"consistency", "data", "key", "key-file", "state", "from", "to", NULL},
    {"search", "data", "key", "key-file", "state", "from", "to", "device", "post", "event",
     "org-pub"},
    {"export", "data", "key", "key-file", "state", "org-pub", NULL},
    {"report", "data", "key", "key-file", "state", "org-pub", NULL},
};

static int verb_allows(const char *verb, const char *flag)
{
    for (size_t i = 0; i < sizeof(verb_flags) / sizeof(verb_flags[0]); i++) {
        if (strcmp(verb_flags[i][0], verb) != 0)
            continue;
        for (size_t j = 1; j < VERB_FLAGS_MAX && verb_flags[i][j] != NULL; j++)
            if (strcmp(verb_flags[i][j], flag) == 0)
                return 1;
    }
    return 0;
}

static int known_verb(const char *verb)
{
    for (size_t i = 0; i < sizeof(verb_flags) / sizeof(verb_flags[0]); i++)
        if (strcmp(verb_flags[i][0], verb) == 0)
            return 1;
    return 0;
}

/* What each verb does, for valise-audit VERB --help (and its man page). */
static const char *const verb_text[][2] = {
    {"verify", "Recomputes the Merkle tree from every record, checks every signed checkpoint and\n"
               "their consistency, and compares the newest with the one remembered in the state\n"
               "file; remembers the newest. An ALARM (exit 3) or a RESTORED (exit 4) writes both\n"
               "signed checkpoints to --evidence FILE (default STATE.alarm)."},
    {"checkpoints", "Lists the tree sizes of the log's signed checkpoints."},
    {"proof", "Prints the RFC 6962 inclusion proof of record --index N in the tree of --size S\n"
              "(default: the newest checkpoint), as JSON."},
    {"consistency", "Prints the RFC 6962 consistency proof between the signed tree sizes --from S1\n"
                    "and --to S2 (default: the newest), as JSON."},
    {"search", "Prints the records that match every filter given, as JSON lines: --from/--to T\n"
               "(unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ), --device HEX (a prefix),\n"
               "--post P (needs --org-pub), --event NAME."},
    {"export", "Prints every record as JSON lines (with names, roles and posts given --org-pub)."},
    {"report", "What to read first: failed authentications, revoked-device attempts, expired\n"
               "undelivered messages and attachments by post, quota and rate-limit hits,\n"
               "enrolments and revocations, checkpoint gaps and restores from a backup."},
};

static void verb_help(const char *verb)
{
    printf("usage: valise-audit %s", verb);
    for (size_t i = 0; i < sizeof(verb_flags) / sizeof(verb_flags[0]); i++) {
        if (strcmp(verb_flags[i][0], verb) != 0)
            continue;
        for (size_t j = 1; j < VERB_FLAGS_MAX && verb_flags[i][j] != NULL; j++)
            printf(" %s--%s%s", strcmp(verb_flags[i][j], "data") == 0 ? "" : "[",
                   verb_flags[i][j], strcmp(verb_flags[i][j], "data") == 0 ? " DIR" : " X]");
    }
    printf("\n\n");
    for (size_t i = 0; i < sizeof(verb_text) / sizeof(verb_text[0]); i++)
        if (strcmp(verb_text[i][0], verb) == 0)
            printf("%s\n", verb_text[i][1]);
    printf("The log is verified first, with --key KEY (or --key-file FILE), else the key\n"
           "remembered in --state FILE (default ~/.valise-audit/state); a tampered log is\n"
           "refused (exit 2).\n");
    if (strcmp(verb, "search") == 0) {
        printf("Events for --event:");
        for (int e = 1; e <= AUDIT_EVENT_MAX; e++)
            printf("%s%s", e % 6 == 1 ? "\n  " : " ", audit_event_name((uint8_t)e));
        printf("\n");
    }
    printf("Exit: 0 ok, 1 error, 2 log tampered, 3 ALARM (rollback, fork, inconsistent),\n"
           "  4 RESTORED (the relay was restored from a backup and signed a relay_restored "
           "record).\n");
}

/* 0 ok, 1 help printed, -1 error printed */
static int parse_args(struct opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? -1 : 1;
    }
    o->verb = argv[1];
    if (!known_verb(o->verb)) {
        fail(EXIT_ERR, "unknown verb \"%s\" (see --help)", o->verb);
        return -1;
    }
    for (int i = 2; i < argc; i++) {
        const struct flag *f = NULL;

        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            verb_help(o->verb);
            return 1;
        }
        if (strncmp(argv[i], "--", 2) == 0 && verb_allows(o->verb, argv[i] + 2))
            for (size_t j = 0; j < sizeof(flags) / sizeof(flags[0]); j++)
                if (strcmp(flags[j].name, argv[i] + 2) == 0)
                    f = &flags[j];
        if (f == NULL) {
            fail(EXIT_ERR, "%s: unknown argument \"%s\" (see --help)", o->verb, argv[i]);
            return -1;
        }
        if (i + 1 >= argc) {
            fail(EXIT_ERR, "--%s needs a value", f->name);
            return -1;
        }
        *(const char **)(void *)((char *)o + f->off) = argv[++i];
    }
    if (o->data == NULL) {
        fail(EXIT_ERR, "%s: --data DIR is required", o->verb);
        return -1;
    }
    return 0;
}

static int load_key(const struct opts *o, struct note_verifier *v, char *text, size_t textsz,
                    int required)
{
    struct buf b = {0};
    size_t len;
    int r;

    if (o->key != NULL && o->key_file != NULL)
        return fail(-1, "give --key or --key-file, not both");
    if (o->key == NULL && o->key_file == NULL)
        return required ? fail(-1, "%s: --key KEY (or --key-file FILE) is required", o->verb) : 1;
    if (o->key != NULL) {
        len = strlen(o->key);
        if (len >= textsz)
            return fail(-1, "--key: too long");
        memcpy(text, o->key, len + 1);
    } else {
        if ((r = file_read(o->key_file, KEY_FILE_MAX, 0, &b)) != 0)
            return fail(-1, "--key-file %s: %s", o->key_file, verr_str(r));
        len = buf_size(&b);
        while (len > 0 && (buf_data(&b)[len - 1] == '\n' || buf_data(&b)[len - 1] == '\r'))
            len--;
        if (len >= textsz) {
            buf_free(&b);
            return fail(-1, "--key-file %s: too long", o->key_file);
        }
        memcpy(text, buf_data(&b), len);
        text[len] = '\0';
        buf_free(&b);
    }
    if ((r = note_verifier_parse(v, text, strlen(text))) != 0)
        return fail(-1, "the verifier key does not parse (%s): expected name+keyid+base64",
                    verr_str(r));
    return 0;
}

static int parse_time(const char *s, uint64_t *out)
{
    struct tm tm;
    int y, mo, d, h = 0, mi = 0, se = 0;
    size_t len = strlen(s);
    time_t t;

    if (text_parse_u64(s, 0, UINT64_C(1) << 40, out) == 0)
        return 0;
    /* YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, read digit by digit */
    for (size_t i = 0; i < len; i++) {
        static const char pat[] = "dddd-dd-ddTdd:dd:ddZ";
        if (i >= sizeof(pat) - 1 || (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i]))
            return VERR_BAD_FORMAT;
    }
    if (len != 10 && len != 20)
        return VERR_BAD_FORMAT;
#define DG(i) (s[i] - '0')
    y = DG(0) * 1000 + DG(1) * 100 + DG(2) * 10 + DG(3);
    mo = DG(5) * 10 + DG(6);
    d = DG(8) * 10 + DG(9);
    if (len == 20) {
        h = DG(11) * 10 + DG(12);
        mi = DG(14) * 10 + DG(15);
        se = DG(17) * 10 + DG(18);
    }
#undef DG
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return VERR_BAD_FORMAT;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    if ((t = timegm(&tm)) < 0)
        return VERR_BAD_FORMAT;
    *out = (uint64_t)t;
    return 0;
}

static void utc(char out[32], uint64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        memcpy(out, "?", 2);
}

static void b64(char out[NOTE_HASH_B64_LEN + 1], const uint8_t h[static MERKLE_HASH_LEN])
{
    if (text_b64_encode(out, NOTE_HASH_B64_LEN + 1, h, MERKLE_HASH_LEN) != 0)
        out[0] = '\0';
}

static void hex16(char out[2 * DEVICE_ID_LEN + 1], const uint8_t *id)
{
    if (text_hex_encode(out, 2 * DEVICE_ID_LEN + 1, id, DEVICE_ID_LEN) != 0)
        out[0] = '\0';
}

/* ---- the log, verified ---- */

struct ctx {
    struct opts o;
    struct alogdata d;
    struct note_verifier v;
    char key[NOTE_VERIFIER_KEY_MAX];
    int have_key;
    int key_remembered; /* taken from the officer's state file, not typed */
    struct averify_out res;
    struct directory *dir;
    struct orgpub org;
    struct cert *archive; /* every certificate the relay installed, root-verified */
    size_t narchive, archive_cap;
};

static int default_state_path(char *out, size_t outsz, int make_dir);

/* The key verify remembered (--state FILE or the default), if any: 0, 1 if none. */
static int remembered_key(struct ctx *c)
{
    char path[PATH_MAX_LEN];
    struct audit_state *st;
    struct buf b = {0};
    int r;

    if (c->o.state != NULL) {
        if (strlen(c->o.state) >= sizeof(path))
            return fail(-1, "--state: path too long");
        memcpy(path, c->o.state, strlen(c->o.state) + 1);
    } else if (default_state_path(path, sizeof(path), 0) != 0) {
        return 1;
    }
    if (!file_exists(path)) {
        if (c->o.state != NULL)
            return fail(-1, "--state %s: no such file", path);
        return 1;
    }
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return fail(-1, "out of memory");
    if ((r = file_read(path, AUDIT_STATE_MAX_LEN, 0, &b)) != 0 ||
        (r = audit_state_parse(st, buf_data(&b), buf_size(&b))) != 0) {
        buf_free(&b);
        free(st);
        return fail(-1, "state file %s is unreadable or corrupt (%s)", path, verr_str(r));
    }
    buf_free(&b);
    memcpy(c->key, st->key, sizeof(c->key));
    c->v = st->v;
    c->have_key = 1;
    c->key_remembered = 1;
    free(st);
    return 0;
}

/* Loads the log and, with a key, verifies it; prints and returns an exit status on failure. */
static int open_log(struct ctx *c, int key_required)
{
    int r;

    if (!c->have_key) { /* verify may have taken it from the state file */
        if ((r = load_key(&c->o, &c->v, c->key, sizeof(c->key), 0)) < 0)
            return EXIT_ERR;
        c->have_key = r == 0;
        /* no key typed: the one verify remembered, so nothing is shown unverified by accident */
        if (!c->have_key && strcmp(c->o.verb, "verify") != 0 && remembered_key(c) < 0)
            return EXIT_ERR;
        if (!c->have_key && key_required)
            return fail(EXIT_ERR,
                        "%s: --key KEY (or --key-file FILE) is required: no key is remembered "
                        "(run valise-audit verify --key KEY once)",
                        c->o.verb);
    }
    if ((r = aload(&c->d, c->o.data)) != 0)
        return fail(EXIT_ERR, "--data %s: cannot read the relay's log (%s)", c->o.data,
                    verr_str(r));
    if (!c->have_key)
        return EXIT_OK;
    /*
     * A key the officer typed that signed none of the checkpoints is the wrong
     * key, not a tampered log. A remembered key is different: the log it
     * verified before has been replaced, which is TAMPERED below.
     */
    if (!c->key_remembered) {
        char origin[NOTE_MAX_NAME_LEN + 1];

        if (akey_foreign(&c->d, &c->v, origin, sizeof(origin)))
            return fail(EXIT_ERR,
                        "this key is not the one that signed this log: its checkpoints are "
                        "signed as \"%s\", the key is \"%s\" (id %08x); take the key from "
                        "valise-relay --print-audit-key --data DIR on that relay",
                        origin, c->v.name, (unsigned)c->v.key_id);
    }
    if ((r = averify_log(&c->d, &c->v, &c->res)) != 0)
        return fail(EXIT_ERR, "verification failed to run: %s", verr_str(r));
    if (c->res.verdict != AV_OK)
        return fail(EXIT_TAMPER, "TAMPERED: %s", c->res.reason);
    return EXIT_OK;
}

/* One archived certificate: kept only if it is this organisation's, root-signed. */
static int archive_add(void *ctx, const uint8_t *p, size_t len)
{
    struct ctx *c = ctx;
    struct cert ct;

    /* validity is a question of time, not of authenticity: checked at its own start */
    if (cert_parse(p, len, &ct) != 0 || cert_verify(&ct, &c->org, ct.not_before) != 0) {
        fprintf(stderr, "valise-audit: warning: a certificate in the relay's archive does not "
                        "verify with --org-pub; ignored\n");
        return 0;
    }
    if (c->narchive == c->archive_cap) {
        size_t ncap = c->archive_cap < 64 ? 64 : c->archive_cap * 2;
        struct cert *np = realloc(c->archive, ncap * sizeof(*np));

        if (np == NULL)
            return VERR_NOMEM;
        c->archive = np;
        c->archive_cap = ncap;
    }
    c->archive[c->narchive++] = ct;
    return 0;
}

static int load_directory(struct ctx *c)
{
    struct orgpub org;
    struct alog *l = NULL;
    struct buf b = {0};
    int r;

    if (c->o.org_pub == NULL)
        return 1;
    if ((r = orgpub_load(c->o.org_pub, &org)) != 0)
        return fail(-1, "--org-pub %s: %s", c->o.org_pub, verr_str(r));
    if ((r = alog_open(&l, c->o.data)) != 0 || (r = alog_directory(l, &b)) != 0) {
        alog_close(l);
        return fail(-1, "--data %s: no stored directory (%s)", c->o.data, verr_str(r));
    }
    r = dir_parse_verify(buf_data(&b), buf_size(&b), &org, &c->dir);
    buf_free(&b);
    if (r != 0) {
        alog_close(l);
        return fail(-1, "the relay's stored directory does not verify with --org-pub (%s)",
                    verr_str(r));
    }
    c->org = org;
    r = alog_each_cert(l, archive_add, c);
    alog_close(l);
    if (r != 0)
        return fail(-1, "--data %s: the relay's certificate archive is unreadable (%s)",
                    c->o.data, verr_str(r));
    return 0;
}

/*
 * The certificate a device held at time t: from the archive of every
 * certificate the relay installed (so a device that later directories
 * dropped keeps its post), the newest issued by then, else its first; the
 * served directory for a data dir without the archive.
 */
static const struct cert *cert_at(const struct ctx *c, const uint8_t id[static DEVICE_ID_LEN],
                                  uint64_t t)
{
    static const uint8_t zero[DEVICE_ID_LEN];
    const struct cert *best = NULL, *first = NULL;

    if (c->dir == NULL || memcmp(id, zero, DEVICE_ID_LEN) == 0)
        return NULL;
    for (size_t i = 0; i < c->narchive; i++) {
        const struct cert *ct = &c->archive[i];

        if (memcmp(ct->device_id, id, DEVICE_ID_LEN) != 0)
            continue;
        if (first == NULL)
            first = ct;
        if (ct->not_before <= t)
            best = ct;
    }
    if (best != NULL || first != NULL)
        return best != NULL ? best : first;
    for (size_t i = 0; i < dir_cert_count(c->dir); i++) {
        const struct cert *ct = dir_cert_at(c->dir, i);
        if (memcmp(ct->device_id, id, DEVICE_ID_LEN) == 0)
            best = ct;
    }
    return best;
}

static const char *post_of(const struct ctx *c, const uint8_t id[static DEVICE_ID_LEN], uint64_t t)
{
    const struct cert *ct = cert_at(c, id, t);

    return ct != NULL ? ct->post : NULL;
}

/*
 * A JSON string (RFC 8259 section 7): quotes, backslash and control bytes
 * escaped; C1 and bidirectional controls too, so that a terminal showing it
 * acts on none of them (issue 12, item 1); a byte that is not UTF-8 becomes
 * U+FFFD.
 */
static void json_str(const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t len = strlen(s), pos = 0;

    putchar('"');
    while (pos < len) {
        uint32_t cp;

        if (utf8_decode(p, len, &pos, &cp) != 0) {
            pos++;
            printf("\\ufffd");
        } else if (cp == '"' || cp == '\\') {
            printf("\\%c", (int)cp);
        } else if (utf8_is_control(cp)) {
            printf("\\u%04x", (unsigned)cp);
        } else {
            /* well formed and not a control: its own bytes */
            char item[5] = {0};
            size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;

            memcpy(item, p + pos - n, n);
            fputs(item, stdout);
        }
    }
    putchar('"');
}

/* ---- verify ---- */

static int default_state_path(char *out, size_t outsz, int make_dir)
{
    const char *home = getenv("HOME");
    char dir[PATH_MAX_LEN];
    int r;

    if (home == NULL || home[0] == '\0')
        return VERR_USAGE;
    if ((r = file_join(dir, sizeof(dir), home, ".valise-audit")) != 0)
        return r;
    if (make_dir && (r = file_mkdir_private(dir)) != 0)
        return r;
    return file_join(out, outsz, dir, "state");
}

static int put_text(struct buf *b, const char *t)
{
    return buf_put_bytes(b, (const uint8_t *)t, strlen(t));
}

/*
 * Writes the evidence of an alarm to base, or base.1 .. base.99 if taken:
 * never over an earlier alarm's evidence (O_EXCL). The path used goes to used.
 */
static int write_evidence(const char *base, char used[static PATH_MAX_LEN],
                          const struct audit_state *st, const struct acp *seen, const char *label,
                          const char *reason)
{
    struct buf b = {0};
    int r;

    if ((r = buf_init(&b, 4 * NOTE_MAX_LEN, 0)) != 0)
        return r;
    if ((r = put_text(&b, label)) != 0 || (r = put_text(&b, ": ")) != 0 ||
        (r = put_text(&b, reason)) != 0 ||
        (r = put_text(&b, "\n\n--- checkpoint verified before (state file) ---\n")) != 0 ||
        (r = buf_put_bytes(&b, st->note, st->note_len)) != 0 ||
        (r = put_text(&b, "--- checkpoint in the log now ---\n")) != 0 ||
        (r = seen != NULL ? buf_put_bytes(&b, seen->note, seen->len)
                          : put_text(&b, "(the log has no checkpoint)\n")) != 0)
        goto out;
    fwrite(buf_data(&b), 1, buf_size(&b), stdout);
    r = VERR_EXISTS;
    for (int i = 0; i < 100 && r == VERR_EXISTS; i++) {
        int n = i == 0 ? snprintf(used, PATH_MAX_LEN, "%s", base)
                       : snprintf(used, PATH_MAX_LEN, "%s.%d", base, i);
        if (n < 0 || n >= PATH_MAX_LEN) {
            r = VERR_TOO_LARGE;
            break;
        }
        r = file_write_new(used, buf_data(&b), buf_size(&b), 0600);
    }
out:
    buf_free(&b);
    return r;
}

static int cmd_verify(struct ctx *c)
{
    char path[PATH_MAX_LEN], evpath[PATH_MAX_LEN], used[PATH_MAX_LEN];
    char root[NOTE_HASH_B64_LEN + 1];
    struct audit_state *st = NULL, *nst = NULL;
    struct buf b = {0};
    const struct acp *latest;
    uint64_t uncovered;
    int have_state = 0, restored = 0, r, status = EXIT_ERR;

    if (c->o.state != NULL) {
        if (strlen(c->o.state) >= sizeof(path))
            return fail(EXIT_ERR, "--state: path too long");
        memcpy(path, c->o.state, strlen(c->o.state) + 1);
    } else if ((r = default_state_path(path, sizeof(path), 1)) != 0) {
        return fail(EXIT_ERR, "no --state FILE and no usable $HOME/.valise-audit (%s)",
                    verr_str(r));
    }
    if ((st = calloc(1, sizeof(*st))) == NULL || (nst = calloc(1, sizeof(*nst))) == NULL) {
        status = fail(EXIT_ERR, "out of memory");
        goto out;
    }
    if (file_exists(path)) {
        if ((r = file_read(path, AUDIT_STATE_MAX_LEN, 0, &b)) != 0 ||
            (r = audit_state_parse(st, buf_data(&b), buf_size(&b))) != 0) {
            status =
                fail(EXIT_ERR, "state file %s is unreadable or corrupt (%s)", path, verr_str(r));
            goto out;
        }
        buf_free(&b);
        have_state = 1;
    }
    /* DESIGN.md: "valise-audit verify --data DIR": the key is remembered after the first run */
    if (c->o.key == NULL && c->o.key_file == NULL) {
        if (!have_state) {
            status = fail(EXIT_ERR,
                          "the first verification needs --key KEY (it is then "
                          "remembered in %s)",
                          path);
            goto out;
        }
        memcpy(c->key, st->key, sizeof(c->key));
        c->v = st->v;
        c->have_key = 1;
        c->key_remembered = 1;
    }
    if ((status = open_log(c, 1)) != EXIT_OK)
        goto out;
    status = EXIT_ERR;
    latest = c->res.latest;
    if (have_state) {
        if (strcmp(st->key, c->key) != 0) {
            status = fail(EXIT_ERR, "state file %s remembers a log with another key (%s)", path,
                          st->key);
            goto out;
        }
        if ((r = averify_state(&c->d, st, &c->res)) != 0) {
            status = fail(EXIT_ERR, "verification failed to run: %s", verr_str(r));
            goto out;
        }
        if (c->res.verdict != AV_OK) {
            if (c->o.evidence != NULL) {
                if (strlen(c->o.evidence) >= sizeof(evpath)) {
                    status = fail(EXIT_ERR, "--evidence: path too long");
                    goto out;
                }
                memcpy(evpath, c->o.evidence, strlen(c->o.evidence) + 1);
            } else if (snprintf(evpath, sizeof(evpath), "%s.alarm", path) >= (int)sizeof(evpath)) {
                status = fail(EXIT_ERR, "state path too long");
                goto out;
            }
            if (c->res.verdict == AV_RESTORED) {
                /* Signed evidence kept; the restored log is what later runs check against. */
                r = write_evidence(evpath, used, st, c->res.latest, "RESTORED", c->res.reason);
                restored = 1;
                if (r != 0) {
                    status = fail(EXIT_ERR, "RESTORED: %s; the evidence could not be written to "
                                            "%s: %s",
                                  c->res.reason, evpath, verr_str(r));
                    goto out;
                }
                goto remember;
            }
            r = write_evidence(evpath, used, st, c->res.evidence, "ALARM", c->res.reason);
            status =
                fail(EXIT_ALARM, "ALARM %s: %s; evidence (both signed checkpoints) %s%s",
                     averdict_name(c->res.verdict), c->res.reason,
                     r == 0 ? "written to " : "could not be written to ", r == 0 ? used : evpath);
            goto out;
        }
    }
remember:
    uncovered = c->d.n - (latest != NULL ? latest->cp.size : 0);
    if (latest != NULL && (!have_state || restored || latest->cp.size >= st->cp.size)) {
        if ((r = audit_state_make(nst, c->key, latest->note, latest->len)) != 0 ||
            (r = buf_init(&b, AUDIT_STATE_MAX_LEN, 0)) != 0 ||
            (r = audit_state_encode(nst, &b)) != 0 ||
            (r = file_replace(path, buf_data(&b), buf_size(&b), 0600)) != 0) {
            status = fail(EXIT_ERR, "cannot write the state file %s: %s", path, verr_str(r));
            goto out;
        }
    }
    if (latest != NULL)
        b64(root, latest->cp.root);
    printf(
        "ok: %llu records, %zu signed checkpoints verified; newest checkpoint: size %llu root %s\n",
        (unsigned long long)c->d.n, c->res.checkpoints,
        (unsigned long long)(latest != NULL ? latest->cp.size : 0),
        latest != NULL ? root : "(none)");
    if (restored)
        printf("RESTORED: %s\nevidence (the checkpoint verified before, the one signing the "
               "restore) written to %s; later runs check against the restored log\n",
               c->res.reason, used);
    else if (have_state)
        printf("consistent with the checkpoint verified before (size %llu)\n",
               (unsigned long long)st->cp.size);
    else
        printf("first verification: state file %s created\n", path);
    if (uncovered > 0)
        printf("warning: %llu records after the newest checkpoint are not signed yet\n",
               (unsigned long long)uncovered);
    status = restored ? fail(EXIT_RESTORED, "RESTORED: %s", c->res.reason) : EXIT_OK;
out:
    buf_free(&b);
    free(st);
    free(nst);
    return status;
}

/* ---- proofs as JSON (tests/vectors/merkle layout, PROTOCOL.md, part 5 section 4) ---- */

static void print_proof(const struct merkle_proof *p)
{
    char h[NOTE_HASH_B64_LEN + 1];

    printf("  \"proof\": [");
    for (size_t i = 0; i < p->len; i++) {
        b64(h, p->hash[i]);
        printf("%s\n    \"%s\"", i == 0 ? "" : ",", h);
    }
    printf("%s]\n", p->len > 0 ? "\n  " : "");
}

static const struct acp *size_arg(struct ctx *c, const char *flag, const char *arg, int *status)
{
    const struct acp *cp;
    uint64_t size;

    if (arg == NULL) {
        if (c->res.latest == NULL)
            *status = fail(EXIT_ERR, "the log has no signed checkpoint yet");
        return c->res.latest;
    }
    if (text_parse_u64(arg, 1, UINT64_MAX, &size) != 0) {
        *status = fail(EXIT_ERR, "--%s: expected a tree size", flag);
        return NULL;
    }
    if ((cp = acp_find(&c->d, size)) == NULL)
        *status = fail(EXIT_ERR, "--%s %llu: no signed checkpoint of that size (newest: %llu)",
                       flag, (unsigned long long)size,
                       (unsigned long long)(c->res.latest != NULL ? c->res.latest->cp.size : 0));
    return cp;
}

static int cmd_proof(struct ctx *c)
{
    struct merkle_proof proof;
    const struct acp *cp;
    char h[NOTE_HASH_B64_LEN + 1];
    uint64_t index;
    int status = EXIT_ERR;

    if ((status = open_log(c, 1)) != EXIT_OK)
        return status;
    if (c->o.index == NULL || text_parse_u64(c->o.index, 0, UINT64_MAX, &index) != 0)
        return fail(EXIT_ERR, "proof: --index N (a record number) is required");
    if ((cp = size_arg(c, "size", c->o.size, &status)) == NULL)
        return status;
    if (index >= cp->cp.size)
        return fail(EXIT_ERR, "--index %llu is not in the tree of size %llu",
                    (unsigned long long)index, (unsigned long long)cp->cp.size);
    if (merkle_inclusion_proof_array(&proof, index, c->d.leaf[0], cp->cp.size) != 0 ||
        merkle_verify_inclusion(c->d.leaf[index], index, cp->cp.size, &proof, cp->cp.root) != 0)
        return fail(EXIT_TAMPER, "the inclusion proof does not verify against the checkpoint");
    printf("{\n  \"leafIdx\": %llu,\n  \"treeSize\": %llu,\n", (unsigned long long)index,
           (unsigned long long)cp->cp.size);
    b64(h, cp->cp.root);
    printf("  \"root\": \"%s\",\n", h);
    b64(h, c->d.leaf[index]);
    printf("  \"leafHash\": \"%s\",\n", h);
    print_proof(&proof);
    printf("}\n");
    return EXIT_OK;
}

static int cmd_consistency(struct ctx *c)
{
    struct merkle_proof proof;
    const struct acp *a, *b;
    char h[NOTE_HASH_B64_LEN + 1];
    int status = EXIT_ERR;

    if ((status = open_log(c, 1)) != EXIT_OK)
        return status;
    if (c->o.from == NULL)
        return fail(EXIT_ERR, "consistency: --from S1 is required");
    if ((a = size_arg(c, "from", c->o.from, &status)) == NULL ||
        (b = size_arg(c, "to", c->o.to, &status)) == NULL)
        return status;
    if (a->cp.size > b->cp.size)
        return fail(EXIT_ERR, "--from must not be larger than --to");
    if (merkle_consistency_proof_array(&proof, a->cp.size, c->d.leaf[0], b->cp.size) != 0 ||
        merkle_verify_consistency(a->cp.size, b->cp.size, &proof, a->cp.root, b->cp.root) != 0)
        return fail(EXIT_TAMPER, "the consistency proof does not verify against the checkpoints");
    printf("{\n  \"size1\": %llu,\n  \"size2\": %llu,\n", (unsigned long long)a->cp.size,
           (unsigned long long)b->cp.size);
    b64(h, a->cp.root);
    printf("  \"root1\": \"%s\",\n", h);
    b64(h, b->cp.root);
    printf("  \"root2\": \"%s\",\n", h);
    print_proof(&proof);
    printf("}\n");
    return EXIT_OK;
}

/* ---- what was verified: the first line of every listing ---- */

static uint64_t signed_size(const struct ctx *c)
{
    return c->res.latest != NULL ? c->res.latest->cp.size : 0;
}

/* First line of search and export: a JSON object saying whether the log verified. */
static void json_verification(const struct ctx *c)
{
    if (!c->have_key) {
        printf("{\"verification\":\"none\",\"why\":\"no key given and none remembered\","
               "\"records\":%llu}\n",
               (unsigned long long)c->d.n);
        return;
    }
    printf("{\"verification\":\"ok\",\"key\":");
    json_str(c->v.name);
    printf(",\"keyRemembered\":%s,\"checkpoints\":%zu,\"signedSize\":%llu,\"records\":%llu}\n",
           c->key_remembered ? "true" : "false", c->res.checkpoints,
           (unsigned long long)signed_size(c), (unsigned long long)c->d.n);
}

/* ---- checkpoints: the signed sizes (for proof --size and consistency --from/--to) ---- */

static int cmd_checkpoints(struct ctx *c)
{
    char root[NOTE_HASH_B64_LEN + 1], t[32];
    int status;

    if ((status = open_log(c, 1)) != EXIT_OK)
        return status;
    printf("verification: ok, %zu signed checkpoints by %s; %llu records\n", c->res.checkpoints,
           c->v.name, (unsigned long long)c->d.n);
    for (size_t i = 0; i < c->d.ncps; i++) {
        const struct acp *cp = &c->d.cps[i];
        uint64_t at = cp->cp.size > 0 && cp->cp.size <= c->d.n ? c->d.rec[cp->cp.size - 1].time : 0;

        b64(root, cp->cp.root);
        utc(t, at);
        printf("size %llu  root %s  last record %s\n", (unsigned long long)cp->cp.size, root,
               cp->cp.size > 0 ? t : "-");
    }
    return EXIT_OK;
}

/* ---- search, export ---- */

static void print_record(const struct ctx *c, uint64_t i)
{
    const struct audit_record *r = &c->d.rec[i];
    char dev[33], peer[33], env[33], t[32], h[NOTE_HASH_B64_LEN + 1];
    static const char *const prec[] = {"FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"};
    const struct cert *dc = cert_at(c, r->device_id, r->time), *pc = cert_at(c, r->peer_id, r->time);

    hex16(dev, r->device_id);
    hex16(peer, r->peer_id);
    hex16(env, r->envelope_id);
    utc(t, r->time);
    b64(h, c->d.leaf[i]);
    printf("{\"index\":%llu,\"event\":\"%s\",\"time\":%llu,\"utc\":\"%s\",\"device\":\"%s\","
           "\"serial\":%llu,\"peer\":\"%s\",\"envelope\":\"%s\",\"size\":%lu,",
           (unsigned long long)i, audit_event_name(r->event), (unsigned long long)r->time, t, dev,
           (unsigned long long)r->cert_serial, peer, env, (unsigned long)r->size);
    if (r->precedence < WIRE_PRECEDENCE_COUNT)
        printf("\"precedence\":\"%s\",", prec[r->precedence]);
    else
        printf("\"precedence\":null,");
    printf("\"reason\":\"%s\",\"value\":%llu,\"leafHash\":\"%s\"", wire_reason_name(r->reason),
           (unsigned long long)r->value, h);
    /* from the root-signed certificate the device held then; escaped all the same */
    if (dc != NULL) {
        printf(",\"name\":");
        json_str(dc->name);
        printf(",\"post\":");
        json_str(dc->post);
        printf(",\"role\":");
        json_str(dc->role);
    }
    if (pc != NULL) {
        printf(",\"peerName\":");
        json_str(pc->name);
        printf(",\"peerPost\":");
        json_str(pc->post);
    }
    printf("}\n");
}

static int hex_prefix_match(const uint8_t id[static DEVICE_ID_LEN], const char *hex)
{
    char full[33];

    hex16(full, id);
    return strncmp(full, hex, strlen(hex)) == 0;
}

static int cmd_search(struct ctx *c, int all)
{
    uint64_t from = 0, to = UINT64_MAX;
    int event = -1, status, r;

    if ((status = open_log(c, 0)) != EXIT_OK)
        return status;
    if (!all) {
        if (c->o.from != NULL && parse_time(c->o.from, &from) != 0)
            return fail(EXIT_ERR, "--from: expected unix seconds or YYYY-MM-DD[THH:MM:SSZ]");
        if (c->o.to != NULL && parse_time(c->o.to, &to) != 0)
            return fail(EXIT_ERR, "--to: expected unix seconds or YYYY-MM-DD[THH:MM:SSZ]");
        if (c->o.device != NULL) {
            size_t n = strlen(c->o.device);
            if (n < 2 || n > 32 || strspn(c->o.device, "0123456789abcdef") != n)
                return fail(EXIT_ERR, "--device: 2 to 32 lower-case hex digits of a device id");
        }
        if (c->o.event != NULL) {
            for (int e = 1; e <= AUDIT_EVENT_MAX; e++)
                if (strcmp(audit_event_name((uint8_t)e), c->o.event) == 0)
                    event = e;
            if (event < 0)
                return fail(EXIT_ERR, "--event %s: unknown (e.g. auth_fail, envelope_expired)",
                            c->o.event);
        }
        if (c->o.post != NULL && c->o.org_pub == NULL)
            return fail(EXIT_ERR, "--post needs --org-pub FILE to read the relay's directory");
    }
    if (c->o.org_pub != NULL && (r = load_directory(c)) != 0)
        return EXIT_ERR;
    json_verification(c);
    for (uint64_t i = 0; i < c->d.n; i++) {
        const struct audit_record *rec = &c->d.rec[i];

        if (!all) {
            const char *p1 = post_of(c, rec->device_id, rec->time),
                       *p2 = post_of(c, rec->peer_id, rec->time);

            if (rec->time < from || rec->time > to)
                continue;
            if (event >= 0 && rec->event != event)
                continue;
            if (c->o.device != NULL && !hex_prefix_match(rec->device_id, c->o.device) &&
                !hex_prefix_match(rec->peer_id, c->o.device))
                continue;
            if (c->o.post != NULL && !(p1 != NULL && strcmp(p1, c->o.post) == 0) &&
                !(p2 != NULL && strcmp(p2, c->o.post) == 0))
                continue;
        }
        print_record(c, i);
    }
    return EXIT_OK;
}

/* ---- report ---- */

struct tally {
    uint8_t id[DEVICE_ID_LEN];
    char post[POST_MAX + 1];
    uint64_t n, value;
    uint64_t last; /* time of the newest record counted */
};

struct table {
    struct tally *t;
    size_t n, cap;
};

static int tally_add(struct table *tb, const uint8_t *id, const char *post, uint64_t value,
                     uint64_t t)
{
    for (size_t i = 0; i < tb->n; i++) {
        if ((id != NULL && memcmp(tb->t[i].id, id, DEVICE_ID_LEN) == 0) ||
            (id == NULL && strcmp(tb->t[i].post, post) == 0)) {
            tb->t[i].n++;
            tb->t[i].value += value;
            tb->t[i].last = t;
            return 0;
        }
    }
    if (tb->n == tb->cap) {
        size_t ncap = tb->cap < 16 ? 16 : tb->cap * 2;
        struct tally *np = realloc(tb->t, ncap * sizeof(*np));
        if (np == NULL)
            return VERR_NOMEM;
        tb->t = np;
        tb->cap = ncap;
    }
    memset(&tb->t[tb->n], 0, sizeof(tb->t[tb->n]));
    if (id != NULL)
        memcpy(tb->t[tb->n].id, id, DEVICE_ID_LEN);
    if (post != NULL)
        snprintf(tb->t[tb->n].post, sizeof(tb->t[tb->n].post), "%s", post);
    tb->t[tb->n].n = 1;
    tb->t[tb->n].value = value;
    tb->t[tb->n].last = t;
    tb->n++;
    return 0;
}

static void print_table(const struct ctx *c, const char *title, const struct table *tb, int by_post,
                        const char *value_name)
{
    char hex[33];

    printf("\n%s: %zu\n", title, tb->n);
    for (size_t i = 0; i < tb->n; i++) {
        const struct cert *ct;
        char sp[TERMSAFE_LEN(POST_MAX)], sr[TERMSAFE_LEN(ROLE_MAX)],
            sn[TERMSAFE_LEN(PERSON_NAME_MAX)];
        if (by_post) {
            printf("  post %-16s %llu\n", termsafe_str(sp, sizeof(sp), tb->t[i].post),
                   (unsigned long long)tb->t[i].n);
            continue;
        }
        hex16(hex, tb->t[i].id);
        ct = cert_at(c, tb->t[i].id, tb->t[i].last);
        printf("  device %s", hex);
        if (ct != NULL) /* names: root-signed, no control characters (cert.h) */
            printf(" %s@%s \"%s\"", termsafe_str(sr, sizeof(sr), ct->role),
                   termsafe_str(sp, sizeof(sp), ct->post), termsafe_str(sn, sizeof(sn), ct->name));
        printf("  %llu", (unsigned long long)tb->t[i].n);
        if (value_name != NULL)
            printf(" (%s %llu)", value_name, (unsigned long long)tb->t[i].value);
        printf("\n");
    }
}

/* Restores from a backup (relay_restored, PROTOCOL.md part 6 "Restores"): each one said. */
static void report_restores(const struct ctx *c)
{
    uint64_t n = 0;

    for (uint64_t i = 0; i < c->d.n; i++)
        if (c->d.rec_verr[i] == 0 && c->d.rec[i].event == AUDIT_RELAY_RESTORED)
            n++;
    printf("\nrestores from a backup: %llu\n", (unsigned long long)n);
    for (uint64_t i = 0; i < c->d.n; i++) {
        const struct audit_record *rec = &c->d.rec[i];
        char when[32];

        if (c->d.rec_verr[i] != 0 || rec->event != AUDIT_RELAY_RESTORED)
            continue;
        utc(when, rec->time);
        printf("  record %llu at %s: the relay was restored from a backup; its log restarts at "
               "%llu records (what a verified checkpoint held beyond that is lost)\n",
               (unsigned long long)i, when, (unsigned long long)rec->value);
    }
}

static int cmd_report(struct ctx *c)
{
    struct table fails = {0}, revoked = {0}, expired = {0}, att_expired = {0}, quota = {0},
                 rate = {0};
    char t0[32], t1[32];
    uint64_t enrolled = 0, revocations = 0, unclean = 0, starts = 0;
    size_t cpi = 0;
    int status, r = 0;

    if ((status = open_log(c, 0)) != EXIT_OK)
        return status;
    if (c->o.org_pub != NULL && load_directory(c) != 0)
        return EXIT_ERR;
    if (c->have_key)
        printf("verification: ok, the log verifies against %zu signed checkpoints by %s%s "
               "(signed size %llu)\n",
               c->res.checkpoints, c->v.name, c->key_remembered ? " (remembered key)" : "",
               (unsigned long long)signed_size(c));
    else
        printf("verification: NOT DONE: no key given and none remembered; nothing below is "
               "verified (run valise-audit verify --key KEY once)\n");
    printf("valise-audit report for %s\n", c->o.data);
    if (c->d.n > 0) {
        utc(t0, c->d.rec[0].time);
        utc(t1, c->d.rec[c->d.n - 1].time);
        printf("records: %llu, from %s to %s\n", (unsigned long long)c->d.n, t0, t1);
    } else {
        printf("records: 0\n");
    }
    for (uint64_t i = 0; i < c->d.n && r == 0; i++) {
        const struct audit_record *rec = &c->d.rec[i];
        const char *post;

        switch (rec->event) {
        case AUDIT_AUTH_FAIL:
            r = tally_add(rec->reason == WIRE_R_REVOKED ? &revoked : &fails, rec->device_id, NULL,
                          0, rec->time);
            break;
        case AUDIT_SESSION_REVOKED:
            /* reason cert_expired: the certificate ran out mid-session, not a revocation */
            if (rec->reason != WIRE_R_CERT_EXPIRED)
                r = tally_add(&revoked, rec->device_id, NULL, 0, rec->time);
            break;
        case AUDIT_ENVELOPE_EXPIRED:
            post = post_of(c, rec->peer_id, rec->time);
            r = tally_add(&expired, NULL, post != NULL ? post : "(unknown)", 0, rec->time);
            break;
        case AUDIT_ATTACHMENT_EXPIRED:
            post = post_of(c, rec->peer_id, rec->time);
            r = tally_add(&att_expired, NULL, post != NULL ? post : "(unknown)", 0, rec->time);
            break;
        case AUDIT_QUOTA_HIT:
            r = tally_add(&quota, rec->device_id, NULL, 0, rec->time);
            break;
        case AUDIT_RATE_LIMIT_HIT:
            r = tally_add(&rate, rec->device_id, NULL, rec->value, rec->time);
            break;
        case AUDIT_DEVICE_ENROLLED:
            enrolled++;
            break;
        case AUDIT_DEVICE_REVOKED:
            revocations++;
            break;
        case AUDIT_RELAY_START:
            /* the previous run ended without its shutdown checkpoint (crash, kill);
             * records before the first start (its directory) belong to no run */
            starts++;
            while (cpi < c->d.ncps && c->d.cps[cpi].key_size < i)
                cpi++;
            if (starts > 1 && (cpi >= c->d.ncps || c->d.cps[cpi].key_size != i))
                unclean++;
            break;
        default:
            break;
        }
    }
    if (r != 0) {
        status = fail(EXIT_ERR, "out of memory");
        goto out;
    }
    print_table(c, "failed authentications (devices)", &fails, 0, NULL);
    print_table(c, "revoked-device attempts and revoked sessions (devices)", &revoked, 0, NULL);
    print_table(c,
                c->dir != NULL ? "expired undelivered (by recipient post)"
                               : "expired undelivered (by post: give --org-pub)",
                &expired, 1, NULL);
    print_table(c,
                c->dir != NULL ? "expired attachments not fetched (by recipient post)"
                               : "expired attachments not fetched (by post: give --org-pub)",
                &att_expired, 1, NULL);
    print_table(c, "queue quota hits (senders)", &quota, 0, NULL);
    print_table(c, "rate-limit hits (devices)", &rate, 0, "envelopes refused");
    printf("\ndevices enrolled: %llu, revoked: %llu (in installed directories)\n",
           (unsigned long long)enrolled, (unsigned long long)revocations);
    printf("\ncheckpoint gaps:\n  relay starts: %llu, of which %llu after a run that ended "
           "without a shutdown checkpoint\n",
           (unsigned long long)starts, (unsigned long long)unclean);
    if (c->d.ncps == 0)
        printf("  no signed checkpoint at all: %llu records unsigned\n",
               (unsigned long long)c->d.n);
    else
        printf("  %zu checkpoints; %llu records after the newest (size %llu) not signed yet\n",
               c->d.ncps, (unsigned long long)(c->d.n - c->d.cps[c->d.ncps - 1].key_size),
               (unsigned long long)c->d.cps[c->d.ncps - 1].key_size);
    report_restores(c);
    status = EXIT_OK;
out:
    free(fails.t);
    free(revoked.t);
    free(expired.t);
    free(att_expired.t);
    free(quota.t);
    free(rate.t);
    return status;
}

int main(int argc, char **argv)
{
    struct ctx *c;
    int r, status;

    if ((r = parse_args(&(struct opts){0}, argc, argv)) != 0)
        return r > 0 ? EXIT_OK : EXIT_ERR;
    if (sodium_init() < 0)
        return fail(EXIT_ERR, "libsodium failed to initialise");
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return fail(EXIT_ERR, "out of memory");
    (void)parse_args(&c->o, argc, argv);
    if (strcmp(c->o.verb, "verify") == 0)
        status = cmd_verify(c);
    else if (strcmp(c->o.verb, "checkpoints") == 0)
        status = cmd_checkpoints(c);
    else if (strcmp(c->o.verb, "proof") == 0)
        status = cmd_proof(c);
    else if (strcmp(c->o.verb, "consistency") == 0)
        status = cmd_consistency(c);
    else if (strcmp(c->o.verb, "search") == 0)
        status = cmd_search(c, 0);
    else if (strcmp(c->o.verb, "export") == 0)
        status = cmd_search(c, 1);
    else
        status = cmd_report(c);
    aload_free(&c->d);
    dir_free(c->dir);
    free(c->archive);
    free(c);
    return status;
}
