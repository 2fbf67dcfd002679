/*
 * valise - the diplomat's client. Command-line contract: DESIGN.md.
 * Each verb parses its options, does its work through the client modules,
 * and turns an error into one line on stderr and a non-zero exit.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "cli.h"
#include "fileio.h"
#include "harden.h"
#include "address.h"
#include "desk.h"
#include "desk_http.h"
#include "identity.h"
#include "mailbox.h"
#include "mbox_attach.h"
#include "pass.h"
#include "session.h"
#include "termsafe.h"
#include "text.h"
#include "transport.h"
#include "utf8.h"
#include "wire.h"

struct opts {
    const char *home, *name, *out, *passfile;
    const char *cert, *org_pub, *relay, *to, *precedence, *label, *subject, *file, *device;
    const char *wait_ms, *ca, *relay_id;
    const char *port, *idle, *web; /* desk */
    const char *arg; /* the one positional argument of `read` */
    int yes;         /* send: no confirmation at the terminal */
    /* send: every --to, in the order typed (issue 12, item 6); to is the first */
    const char *tos[INNER_ADDRESSES_MAX];
    size_t nto;
    int too_many_to;
    const char *attach[ATTACH_MAX]; /* send --attach FILE, in order */
    size_t n_attach;
    const char *arg2; /* the second positional argument of `save` */
};

static const char usage_main[] =
    "usage: valise VERB [options]\n"
    "\n"
    "Valise, the ministry's secure messaging client.\n"
    "\n"
    "verbs:\n"
    "  init        create this device's keys and an enrolment request for IT\n"
    "  enroll      install the certificate IT made, org.pub and the relay address\n"
    "  send        sign and queue a message (works offline)\n"
    "  sync        connect, send the outbox, fetch new messages, exit\n"
    "  run         stay connected, reconnecting with backoff\n"
    "  inbox       list received messages, FLASH first\n"
    "  read        show one message with its verified sender\n"
    "  save        write one attachment of a message to a file\n"
    "  outbox      list sent messages and each recipient device's status\n"
    "  fingerprint show the safety number shared with a device\n"
    "  status      the disk space attachments take on this device\n"
    "  desk        the desk: inbox, compose, outbox and directory in your browser\n"
    "\n"
    "Run 'valise VERB --help' for a verb's options. Passphrases are read from\n"
    "the terminal without echo, or from --passphrase-file FILE.\n";

static const char usage_init[] =
    "usage: valise init --home HOME --name NAME --out REQUEST [--passphrase-file FILE]\n"
    "\n"
    "Creates HOME (mode 0700) with this device's Ed25519 signing key, X25519 key\n"
    "and local-store key, encrypted under your passphrase (Argon2id 64 MiB, t=3),\n"
    "and writes REQUEST: the self-signed enrolment request to hand to IT staff\n"
    "('valise-keys enroll'). NAME is your name as colleagues will see it.\n";

static int fail(const char *verb, const char *what, int err)
{
    fprintf(stderr, "valise %s: %s: %s\n", verb, what, verr_str(err));
    return 1;
}

static int fail_msg(const char *verb, const char *msg)
{
    fprintf(stderr, "valise %s: %s\n", verb, msg);
    return 2;
}

/*
 * The passphrase, from --passphrase-file or the terminal; on failure one
 * line naming the file (or the terminal) and the cause (issue 12, item 11).
 * A file others may read gets a warning, as ssh gives for a private key.
 */
static int get_pass(const char *verb, const char *passfile, const char *prompt, int confirm,
                    char **pass)
{
    const char *why = NULL;
    unsigned mode = 0;
    int r;

    if (passfile != NULL && pass_file_exposed(passfile, &mode))
        fprintf(stderr,
                "valise %s: WARNING: --passphrase-file %s is readable by others (mode %04o); "
                "anyone who can read it can use this device's keys: chmod 600 %s\n",
                verb, passfile, mode, passfile);
    if ((r = pass_read_why(passfile, prompt, confirm, pass, &why)) == 0)
        return 0;
    if (passfile != NULL)
        fprintf(stderr, "valise %s: --passphrase-file %s: %s\n", verb, passfile,
                why != NULL ? why : verr_str(r));
    else
        fprintf(stderr, "valise %s: passphrase: %s\n", verb, why != NULL ? why : verr_str(r));
    return 1;
}

static int parse_opts_n(const char *verb, int argc, char **argv, struct opts *o, const char *usage,
                        int npos)
{
    static const struct option longopts[] = {
        {"home", required_argument, NULL, 'H'},
        {"name", required_argument, NULL, 'n'},
        {"out", required_argument, NULL, 'o'},
        {"passphrase-file", required_argument, NULL, 'P'},
        {"cert", required_argument, NULL, 'c'},
        {"org-pub", required_argument, NULL, 'g'},
        {"relay", required_argument, NULL, 'r'},
        {"to", required_argument, NULL, 't'},
        {"precedence", required_argument, NULL, 'p'},
        {"label", required_argument, NULL, 'l'},
        {"subject", required_argument, NULL, 's'},
        {"file", required_argument, NULL, 'f'},
        {"device", required_argument, NULL, 'd'},
        {"wait-ms", required_argument, NULL, 'w'},
        {"ca", required_argument, NULL, 'a'},
        {"relay-id", required_argument, NULL, 'R'},
        {"port", required_argument, NULL, 'O'},
        {"idle-secs", required_argument, NULL, 'I'},
        {"web", required_argument, NULL, 'W'},
        {"yes", no_argument, NULL, 'y'},
        {"attach", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'H':
            o->home = optarg;
            break;
        case 'n':
            o->name = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'P':
            o->passfile = optarg;
            break;
        case 'c':
            o->cert = optarg;
            break;
        case 'g':
            o->org_pub = optarg;
            break;
        case 'r':
            o->relay = optarg;
            break;
        case 'R':
            o->relay_id = optarg;
            break;
        case 't':
            if (o->to == NULL)
                o->to = optarg;
            if (o->nto == INNER_ADDRESSES_MAX)
                o->too_many_to = 1;
            else
                o->tos[o->nto++] = optarg;
            break;
        case 'p':
            o->precedence = optarg;
            break;
        case 'l':
            o->label = optarg;
            break;
        case 's':
            o->subject = optarg;
            break;
        case 'f':
            o->file = optarg;
            break;
        case 'd':
            o->device = optarg;
            break;
        case 'w':
            o->wait_ms = optarg;
            break;
        case 'a':
            o->ca = optarg;
            break;
        case 'O':
            o->port = optarg;
            break;
        case 'I':
            o->idle = optarg;
            break;
        case 'W':
            o->web = optarg;
            break;
        case 'y':
            o->yes = 1;
            break;
        case 'A':
            if (o->n_attach == ATTACH_MAX)
                return fail_msg(verb, "--attach: at most 16 files in one message");
            o->attach[o->n_attach++] = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default: {
            char msg[256];
            snprintf(msg, sizeof(msg), "unknown or incomplete option '%s' (see --help)",
                     argv[optind - 1]);
            return fail_msg(verb, msg);
        }
        }
    }
    if (npos >= 1 && optind < argc)
        o->arg = argv[optind++];
    if (npos == 2 && optind < argc)
        o->arg2 = argv[optind++];
    if (optind != argc)
        return fail_msg(verb, npos ? "expected one argument (see --help)"
                                   : "unexpected argument (see --help)");
    if (o->home == NULL)
        return fail_msg(verb, "--home is required");
    return 0;
}

static int parse_opts(const char *verb, int argc, char **argv, struct opts *o, const char *usage)
{
    return parse_opts_n(verb, argc, argv, o, usage, 0);
}

static int cmd_init(int argc, char **argv)
{
    struct opts o;
    uint8_t device_id[DEVICE_ID_LEN];
    char *pass = NULL, hex[2 * DEVICE_ID_LEN + 1];
    int r;

    if ((r = parse_opts("init", argc, argv, &o, usage_init)) != 0)
        return r;
    if (o.name == NULL || o.out == NULL)
        return fail_msg("init", "--name and --out are required");
    if (!cert_valid_name(o.name, PERSON_NAME_MAX))
        return fail_msg("init", "--name must be 1 to 64 bytes of UTF-8 text without control or "
                                "bidirectional characters");
    {
        /* The request's directory must exist before anything is made (issue 12, item 11). */
        char dir[PATH_MAX], msg[PATH_MAX + 128];
        const char *slash = strrchr(o.out, '/');
        struct stat sd;

        snprintf(dir, sizeof(dir), "%.*s", slash == NULL ? 1 : slash == o.out ? 1 : (int)(slash - o.out),
                 slash == NULL ? "." : o.out);
        if (file_exists(o.out) || access(o.out, F_OK) == 0) {
            snprintf(msg, sizeof(msg), "--out %s: the file exists; give a new file name", o.out);
            return fail_msg("init", msg);
        }
        if (stat(dir, &sd) != 0 || !S_ISDIR(sd.st_mode)) {
            snprintf(msg, sizeof(msg), "--out %s: no such directory %s; give a path in an existing "
                                       "directory", o.out, dir);
            return fail_msg("init", msg);
        }
    }
    if ((r = get_pass("init", o.passfile, "New device passphrase (at least 8 characters): ", 1,
                      &pass)) != 0)
        return r;
    r = identity_create(o.home, o.name, pass, o.out, device_id);
    pass_free(pass);
    if (r == VERR_EXISTS) {
        char msg[PATH_MAX + 128];
        snprintf(msg, sizeof(msg), "--home %s: a device already exists here; give another --home",
                 o.home);
        return fail_msg("init", msg);
    }
    if (r != 0)
        return fail("init", o.home, r);
    if (text_hex_encode(hex, sizeof(hex), device_id, DEVICE_ID_LEN) != 0)
        return fail("init", "device id", VERR_INTERNAL);
    printf("device %s created for %s in %s\nenrolment request written to %s: give it to IT "
           "staff\n",
           hex, o.name, o.home, o.out);
    return 0;
}

static const char usage_enroll[] =
    "usage: valise enroll --home HOME --cert CERT --org-pub FILE --relay URL --relay-id ID\n"
    "                     [--ca FILE] [--passphrase-file FILE]\n"
    "\n"
    "Installs the device certificate IT staff made from your request. The\n"
    "certificate must be for this device's own keys and signed by the\n"
    "organisation root in FILE (org.pub). URL is the relay: wss://HOST[:PORT]\n"
    "(port 443 when omitted), or ws://127.0.0.1:PORT for a relay on this machine. ID is the relay id IT\n"
    "give you: this device authenticates only to a relay that proves, with a\n"
    "relay certificate signed by org.pub, that it is ID. --ca FILE: the PEM\n"
    "certificate(s) that sign the relay's TLS certificate (default: the system's).\n";

static const char usage_send[] =
    "usage: valise send --home HOME --to ADDRESS [--to ADDRESS...] [--precedence P]\n"
    "                   [--label L] [--subject S] [--file F] [--attach FILE]... [--yes]\n"
    "                   [--passphrase-file FILE]\n"
    "\n"
    "Signs a message and keeps it in the encrypted outbox; it returns once the\n"
    "message is on disk and needs no network. 'valise sync' or 'valise run'\n"
    "sends it. The content is read from F, or from standard input: at most\n"
    "200 KiB (204800 bytes); an empty message is refused. Typed at a terminal,\n"
    "it ends at the first Ctrl-D at the start of a line, and send shows the\n"
    "recipients, precedence and label and asks before queueing (--yes: do not ask).\n"
    "  ADDRESS  role@POST, *@POST, *@*, device:HEX (32 digits) or person:NAME;\n"
    "           one that no other device in the newest directory has is refused,\n"
    "           with the closest addresses it does know. Up to 16 --to, each a\n"
    "           different address: one message, one id, to every device behind\n"
    "           every address (each device once)\n"
    "  P        FLASH, IMMEDIATE, PRIORITY or ROUTINE (default ROUTINE)\n"
    "  L        classification label, [A-Z0-9 /_-]{1,32} (default UNCLASSIFIED)\n"
    "  S        one line of at most 256 bytes\n"
    "  --attach FILE  attach a file (up to 16; any size up to the relay's limit,\n"
    "           100 MiB by default). It is encrypted now, with its own key, into\n"
    "           HOME/attach: later changes to FILE do not matter. A message with\n"
    "           attachments may have an empty body. sync/run upload it after the\n"
    "           message, resuming after a cut.\n";

static const char usage_sync[] =
    "usage: valise sync --home HOME [--wait-ms MS] [--passphrase-file FILE]\n"
    "\n"
    "Connects to the relay, authenticates, fetches the newest directory,\n"
    "uploads prekeys when needed, sends the outbox, downloads, verifies and\n"
    "stores new messages, and exits once the relay says nothing more is\n"
    "queued for this device. It reports what it did even when the link\n"
    "dropped; exit status 0 only when nothing is left undone. A transfer\n"
    "that still moves is never abandoned. --wait-ms is accepted and ignored.\n"
    "Safe to interrupt and to repeat. Messages and receipts are counted apart;\n"
    "each refusal is named with its sender and reason.\n";

static const char usage_run[] =
    "usage: valise run --home HOME [--passphrase-file FILE]\n"
    "\n"
    "Stays connected to the relay, sending what 'valise send' queues and\n"
    "receiving as messages arrive; reconnects after a failure with\n"
    "exponential backoff and random jitter: 1 s again after a connection that\n"
    "got through, at most 8 s while the network keeps coming back, 60 s once\n"
    "it has been gone for 5 minutes. Stops within a second of Ctrl-C or SIGTERM.\n"
    "Prints a line when connected (and connected again), one per new message\n"
    "(FLASH and IMMEDIATE start with '!!!'), and one when the link drops.\n";

static const char usage_inbox[] =
    "usage: valise inbox --home HOME [--passphrase-file FILE]\n"
    "\n"
    "Lists received messages: FLASH first, then IMMEDIATE, PRIORITY, ROUTINE,\n"
    "each in order of arrival. '*' marks unread messages.\n";

static const char usage_read[] =
    "usage: valise read --home HOME [--out FILE] [--passphrase-file FILE] ID\n"
    "\n"
    "Shows one message (ID: its id in hex, or a unique prefix of at least 8\n"
    "digits; ID/SENDER when two senders used one id, SENDER being 8 or more hex\n"
    "digits of the sender's device id) with its sender's name, role and post, precedence, label and\n"
    "time, and whether its signature and certificate verified. Marks it read\n"
    "and queues an end-to-end encrypted read receipt for the sender. A message\n"
    "you sent, from this device or another of yours, opens the same way (from\n"
    "the outbox; no receipt).\n"
    "Text from the sender is shown with control, bidirectional and invalid\n"
    "characters made visible (\\x1b, \\u{202e}); a body that is not text is not\n"
    "shown. --out FILE writes the body's exact bytes to a new FILE (mode 0600).\n"
    "Attachments are listed by number, name, size, type and how much of each\n"
    "this device holds; 'valise save' writes one to a file.\n";

static const char usage_save[] =
    "usage: valise save --home HOME --out FILE [--passphrase-file FILE] ID N\n"
    "\n"
    "Writes attachment N (as 'valise read ID' numbers them, from 1) of message\n"
    "ID to a new FILE (mode 0600): every chunk is opened and the SHA-256 the\n"
    "sender signed is checked before FILE gets its name, so FILE is the whole\n"
    "file or nothing. An attachment not yet fetched in full is refused; 'valise\n"
    "sync' fetches the rest.\n";

static const char usage_outbox[] =
    "usage: valise outbox --home HOME [--passphrase-file FILE]\n"
    "\n"
    "Lists sent messages and, for each recipient device, its status: queued,\n"
    "waiting for prekeys, waiting for directory, accepted by relay, delivered,\n"
    "read, expired undelivered or rejected by relay.\n";

static const char usage_status[] =
    "usage: valise status --home HOME\n"
    "\n"
    "Shows the bytes attachments take in HOME/attach: the sealed copies of\n"
    "attachments this device sent (kept so 'valise save' can open them),\n"
    "attachments received complete, and partial downloads. Needs no passphrase\n"
    "(it reads only the file sizes).\n";

static const char usage_fingerprint[] =
    "usage: valise fingerprint --home HOME --device ID|ADDRESS [--passphrase-file FILE]\n"
    "\n"
    "Shows the safety number this device shares with each device named: 60\n"
    "digits from both devices' identity keys, the same on both sides. Compare\n"
    "them by telephone or in person; a difference means a key was substituted.\n";

static void print_time(char *out, size_t outsz, uint64_t t);

/*
 * Fields that came from someone else (names, roles, posts, labels,
 * addresses, subjects) are shown only through termsafe (issue 12, item 1):
 * each gets its own buffer of a struct shown.
 */
enum { SHOWN_FIELD = TERMSAFE_LEN(INNER_SUBJECT_MAX) };
_Static_assert((int)INNER_SUBJECT_MAX >= (int)INNER_ADDRESS_MAX &&
                   (int)INNER_SUBJECT_MAX >= (int)PERSON_NAME_MAX &&
                   (int)INNER_SUBJECT_MAX >= (int)ROLE_MAX && (int)INNER_SUBJECT_MAX >= (int)POST_MAX &&
                   (int)INNER_SUBJECT_MAX >= (int)INNER_LABEL_MAX,
               "a shown field holds any one-line field escaped");
struct shown {
    char name[SHOWN_FIELD], role[SHOWN_FIELD], post[SHOWN_FIELD], label[SHOWN_FIELD],
        subject[SHOWN_FIELD];
    char address[TERMSAFE_LEN(INNER_TO_TEXT_MAX)]; /* every address, joined */
};
#define SAFE(sh, field, s) termsafe_str((sh)->field, sizeof((sh)->field), (s))

/*
 * One line on stderr when the newest directory is near or past its end
 * (PROTOCOL.md part 4, "Directory freshness"); what_then says what happens
 * to the command's work meanwhile (NULL: the general consequence).
 */
static void dir_warn(const char *verb, const struct mbox *m, const char *what_then)
{
    char t[40];
    uint64_t exp;
    int f = mbox_dir_freshness(m, (uint64_t)time(NULL), &exp);

    if (f != MBOX_DIR_EXPIRING && f != MBOX_DIR_EXPIRED)
        return;
    print_time(t, sizeof(t), exp);
    if (f == MBOX_DIR_EXPIRING)
        fprintf(stderr, "valise %s: the directory expires at %s: IT must publish a new one; sync "
                        "to fetch it\n", verb, t);
    else
        fprintf(stderr, "valise %s: the directory expired at %s: %s; IT must publish a new one; "
                        "sync to fetch it\n", verb, t,
                what_then != NULL ? what_then
                                  : "nothing is sent to or accepted from any device until then");
}

static int open_mbox(const char *verb, const struct opts *o, struct mbox **m, int need_enrolled)
{
    char *pass = NULL;
    int r;

    if ((r = get_pass(verb, o->passfile, "Device passphrase: ", 0, &pass)) != 0)
        return r;
    r = mbox_open(m, o->home, pass);
    pass_free(pass);
    if (r == VERR_DECRYPT) {
        fprintf(stderr, "valise %s: wrong passphrase for %s/device.key (or the file is damaged); "
                        "try again\n", verb, o->home);
        return 1;
    }
    if (r == VERR_UNKNOWN) {
        fprintf(stderr, "valise %s: --home %s: no device here; create one with valise init\n",
                verb, o->home);
        return 1;
    }
    if (r != 0)
        return fail(verb, o->home, r);
    if (need_enrolled && !mbox_enrolled(*m)) {
        mbox_close(*m);
        *m = NULL;
        return fail_msg(verb, "this device is not enrolled yet (see valise enroll)");
    }
    /* sync and run warn after fetching the directory, send with what happens to it. */
    if (need_enrolled && strcmp(verb, "sync") != 0 && strcmp(verb, "run") != 0 &&
        strcmp(verb, "send") != 0)
        dir_warn(verb, *m, NULL);
    return 0;
}

static void print_time(char *out, size_t outsz, uint64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, outsz, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
        snprintf(out, outsz, "%llu", (unsigned long long)t);
}

/* ---- issue 12 item 14: the verbs use a running desk's unlocked session ---- */

static const char *j_s(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : "";
}

/*
 * A string field of a session reply as the terminal may show it (lib/termsafe.h):
 * the desk is trusted, the text it carries came from others. Rotating buffers,
 * so one printf can take several; longer fields are cut, still safe.
 */
static const char *j_t(json_object *o, const char *k)
{
    static char bufs[16][TERMSAFE_LEN(256)];
    static unsigned next;
    char *b = bufs[next++ % 16];

    /* VERR_TOO_LARGE: cut, and what was written is still safe */
    if (termsafe_render(b, sizeof(bufs[0]), (const uint8_t *)j_s(o, k), strlen(j_s(o, k)), 0) != 0 &&
        b[0] == '\0')
        return "";
    return b;
}

static uint64_t j_u(json_object *o, const char *k)
{
    json_object *v;
    int64_t x;
    if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int))
        return 0;
    x = json_object_get_int64(v);
    return x < 0 ? 0 : (uint64_t)x;
}

static int j_b(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

static json_object *j_arr(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_array) ? v
                                                                                       : NULL;
}

/*
 * Asks the desk serving HOME to do the verb's work (session.h): 1 and its
 * answer (*reply, *status) when a desk answered; 0 when none did or it is
 * locked (the verb then unlocks by itself); -1 when it could not be asked.
 * The request is wiped once sent (a message body travels in it).
 */
static int via_desk(const char *verb, const char *home, json_object *req, json_object **reply,
                    int *status)
{
    size_t n = 0, rl = 0;
    const char *s = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &n);
    char *raw = NULL;
    json_object *top = NULL, *v;
    int r;

    *reply = NULL;
    if (s == NULL)
        return -1;
    r = session_call(home, s, n, &raw, &rl);
    sodium_memzero((char *)s, n);
    if (r == VERR_UNKNOWN)
        return 0;
    if (r != 0) {
        fprintf(stderr, "valise %s: the desk's session in %s did not answer (%s); unlocking here\n",
                verb, home, verr_str(r));
        return 0;
    }
    top = json_tokener_parse(raw);
    sodium_free(raw);
    if (top == NULL || !json_object_object_get_ex(top, "reply", &v) ||
        !json_object_is_type(v, json_type_object)) {
        json_object_put(top);
        fprintf(stderr, "valise %s: the desk's session gave a malformed answer; unlocking here\n",
                verb);
        return 0;
    }
    *status = (int)j_u(top, "status");
    if (*status == 423) {
        json_object_put(top);
        fprintf(stderr, "valise %s: the desk is locked (unlock it in its page to skip the "
                        "passphrase); unlocking here\n", verb);
        return 0;
    }
    *reply = json_object_get(v);
    json_object_put(top);
    fprintf(stderr, "valise %s: done by the desk running on %s (its unlocked session)\n", verb,
            home);
    return 1;
}

/* One line for a refusal the desk gave (its error code, a fixed word). */
static int desk_refused(const char *verb, json_object *reply, int status)
{
    fprintf(stderr, "valise %s: refused by the desk (%d %s)\n", verb, status, j_t(reply, "error"));
    json_object_put(reply);
    return status == 404 ? 1 : 2;
}

static int inbox_via_desk(const struct opts *o)
{
    json_object *req = json_object_new_object(), *rep = NULL, *arr;
    int st = 0, r;

    if (req == NULL || json_object_object_add(req, "verb", json_object_new_string("inbox")) != 0) {
        json_object_put(req);
        return -1;
    }
    r = via_desk("inbox", o->home, req, &rep, &st);
    json_object_put(req);
    if (r != 1)
        return -1;
    if (st != 200)
        return desk_refused("inbox", rep, st);
    arr = j_arr(rep, "messages");
    for (size_t i = 0; arr != NULL && i < json_object_array_length(arr); i++) {
        json_object *m = json_object_array_get_idx(arr, i);
        char t[40];
        print_time(t, sizeof(t), j_u(m, "time"));
        printf("%c %s %-9s %-14s %s  %s (%s@%s)  %s", j_b(m, "read") ? ' ' : '*', j_t(m, "id"),
               j_t(m, "precedence"), j_t(m, "label"), t, j_t(m, "sender_name"),
               j_t(m, "sender_role"), j_t(m, "sender_post"), j_t(m, "subject"));
        if (j_u(m, "to_count") > 1)
            printf("  [to %s]", j_t(m, "to"));
        printf("\n");
    }
    if (arr == NULL || json_object_array_length(arr) == 0)
        printf("inbox empty\n");
    json_object_put(rep);
    return 0;
}

static int outbox_via_desk(const struct opts *o)
{
    json_object *req = json_object_new_object(), *rep = NULL, *arr;
    int st = 0, r;

    if (req == NULL || json_object_object_add(req, "verb", json_object_new_string("outbox")) != 0) {
        json_object_put(req);
        return -1;
    }
    r = via_desk("outbox", o->home, req, &rep, &st);
    json_object_put(req);
    if (r != 1)
        return -1;
    if (st != 200)
        return desk_refused("outbox", rep, st);
    arr = j_arr(rep, "messages");
    for (size_t i = 0; arr != NULL && i < json_object_array_length(arr); i++) {
        json_object *m = json_object_array_get_idx(arr, i), *devs = j_arr(m, "devices");
        char t[40];
        size_t nd = devs != NULL ? json_object_array_length(devs) : 0;
        print_time(t, sizeof(t), j_u(m, "created"));
        printf("%s %-9s %-14s %s to %s  %s\n", j_t(m, "id"), j_t(m, "precedence"),
               j_t(m, "label"), t, j_t(m, "to"), j_t(m, "subject"));
        if (!j_b(m, "resolved") && nd == 0)
            printf("    (no device yet) waiting for directory\n");
        for (size_t j = 0; j < nd; j++) {
            json_object *d = json_object_array_get_idx(devs, j);
            if (!j_t(d, "name")[0])
                printf("    %s (a device the directory no longer lists): %s", j_t(d, "device"),
                       mbox_env_state_name((int)j_u(d, "state")));
            else
                printf("    %s %s (%s@%s): %s", j_t(d, "device"), j_t(d, "name"), j_t(d, "role"),
                       j_t(d, "post"), mbox_env_state_name((int)j_u(d, "state")));
            if (j_t(d, "reason")[0])
                printf(" (%s)", j_t(d, "reason"));
            printf("\n");
        }
    }
    if (arr == NULL || json_object_array_length(arr) == 0)
        printf("outbox empty\n");
    json_object_put(rep);
    return 0;
}

static void human_size(char *out, size_t outsz, uint64_t n);

/* The attachments the desk listed (desk.c j_read_attachments), as attach_print_list shows them. */
static void read_via_desk_attachments(json_object *rep, const char *id)
{
    json_object *arr = j_arr(rep, "attachments");
    size_t n = arr != NULL ? json_object_array_length(arr) : 0;

    if (n == 0)
        return;
    printf("\nAttachments (save one with: valise save --home HOME --out FILE %s N):\n", id);
    for (size_t i = 0; i < n; i++) {
        json_object *a = json_object_array_get_idx(arr, i);
        const char *st = j_s(a, "state");
        char sz[32];
        human_size(sz, sizeof(sz), j_u(a, "size"));
        printf("  %llu  %s  %s (%llu bytes)  %s  ", (unsigned long long)j_u(a, "n"), j_t(a, "name"),
               sz, (unsigned long long)j_u(a, "size"), j_t(a, "type"));
        if (strcmp(st, "complete") == 0)
            printf("complete\n");
        else if (strcmp(st, "gone") == 0)
            printf("%llu of %llu chunks; no longer on the relay (expired): ask the sender again\n",
                   (unsigned long long)j_u(a, "held"), (unsigned long long)j_u(a, "chunks"));
        else if (strcmp(st, "bad") == 0)
            printf("%llu of %llu chunks; the relay's chunks do not match the key the sender signed "
                   "(damaged or substituted): ask the sender to send it again\n",
                   (unsigned long long)j_u(a, "held"), (unsigned long long)j_u(a, "chunks"));
        else if (strcmp(st, "part") == 0)
            printf("%llu of %llu chunks (valise sync fetches the rest)\n",
                   (unsigned long long)j_u(a, "held"), (unsigned long long)j_u(a, "chunks"));
        else if (strncmp(st, "upload_", 7) == 0)
            printf("sent by you: %s\n", strcmp(st, "upload_uploaded") == 0   ? "uploaded"
                                        : strcmp(st, "upload_refused") == 0 ? "refused by the relay"
                                        : strcmp(st, "upload_lost") == 0
                                            ? "not sent (its encrypted copy was deleted)"
                                        : strcmp(st, "upload_elsewhere") == 0
                                            ? "from your other device"
                                            : "waiting to upload");
        else
            printf("state unknown\n");
    }
}

static int read_via_desk(const struct opts *o)
{
    json_object *req = json_object_new_object(), *rep = NULL;
    char t[40], rt[40];
    int st = 0, r;

    if (req == NULL || json_object_object_add(req, "verb", json_object_new_string("read")) != 0 ||
        json_object_object_add(req, "id", json_object_new_string(o->arg)) != 0) {
        json_object_put(req);
        return -1;
    }
    r = via_desk("read", o->home, req, &rep, &st);
    json_object_put(req);
    if (r != 1)
        return -1;
    if (st != 200)
        return desk_refused("read", rep, st);
    print_time(t, sizeof(t), j_u(rep, "time"));
    print_time(rt, sizeof(rt), j_u(rep, "received"));
    printf("Message:    %s\n", j_t(rep, "id"));
    printf("From:       %s, %s@%s (device %s)\n", j_t(rep, "sender_name"), j_t(rep, "sender_role"),
           j_t(rep, "sender_post"), j_t(rep, "sender_device"));
    printf("To:         %s\n", j_t(rep, "to"));
    printf("Precedence: %s\n", j_t(rep, "precedence"));
    printf("Label:      %s\n", j_t(rep, "label"));
    printf("Time:       %s\n", t);
    printf("Received:   %s\n", rt);
    if (j_b(rep, "delayed"))
        printf("WARNING:    it arrived later than the %s time to live (%llu days): it may have been "
               "held back; confirm with the sender\n",
               j_t(rep, "precedence"), (unsigned long long)j_u(rep, "ttl_days"));
    printf("Subject:    %s\n", j_t(rep, "subject"));
    printf("Signature:  %s\n",
           j_b(rep, "signature_ok") ? "verified (Ed25519, sender's device key)" : "NOT VERIFIED");
    printf("Certificate: %s; in the newest directory: %s\n",
           j_b(rep, "certificate_ok") ? "verified (serial chained to the organisation root)"
                                      : "NOT VERIFIED",
           j_t(rep, "certificate_now"));
    printf("\n");
    {
        const char *b = j_s(rep, "body");
        size_t bl = strlen(b);
        /* the body came from the sender: escaped as the terminal verbs do */
        st = termsafe_fwrite(stdout, (const uint8_t *)b, bl, TERMSAFE_MULTILINE) != 0;
        if (bl > 0 && b[bl - 1] != '\n')
            printf("\n");
        sodium_memzero((char *)b, bl);
    }
    read_via_desk_attachments(rep, o->arg);
    json_object_put(rep);
    return st != 0 ? 1 : 0;
}

/* 1 if p is well-formed UTF-8 (what JSON carries); other bodies are sent the usual way. */
static int is_utf8(const uint8_t *p, size_t n)
{
    size_t pos = 0;
    uint32_t cp;

    while (pos < n)
        if (utf8_decode(p, n, &pos, &cp) != 0)
            return 0;
    return 1;
}

/* Every --to, joined by ", " (addresses are checked printable text by then). */
static const char *to_list(const struct opts *o)
{
    static char out[INNER_TO_TEXT_MAX + 1];
    size_t pos = 0;

    out[0] = 0;
    for (size_t i = 0; i < o->nto; i++) {
        int n = snprintf(out + pos, sizeof(out) - pos, "%s%s", i > 0 ? ", " : "", o->tos[i]);
        if (n < 0 || (size_t)n >= sizeof(out) - pos)
            break;
        pos += (size_t)n;
    }
    return out;
}

/* send through the desk: 0 done, 1-2 refused, -1 no desk (d->content is wiped by the caller). */
static int send_via_desk(const struct opts *o, const struct mbox_draft *d)
{
    json_object *req, *to, *rep = NULL, *ids;
    int st = 0, r = -1;

    if (d->content_len > INT32_MAX || !is_utf8(d->content, d->content_len))
        return -1;
    req = json_object_new_object();
    to = json_object_new_array();

    if (req == NULL || to == NULL || json_object_object_add(req, "to", to) != 0) {
        json_object_put(to);
        goto out;
    }
    for (size_t i = 0; i < d->naddresses; i++)
        if (json_object_array_add(to, json_object_new_string(d->addresses[i])) != 0)
            goto out;
    if (json_object_object_add(req, "verb", json_object_new_string("send")) != 0 ||
        json_object_object_add(req, "precedence",
                               json_object_new_string(inner_precedence_name(d->precedence))) != 0 ||
        json_object_object_add(req, "label", json_object_new_string(d->label)) != 0 ||
        json_object_object_add(req, "subject", json_object_new_string(d->subject)) != 0 ||
        json_object_object_add(req, "body", json_object_new_string_len((const char *)d->content,
                                                                       (int)d->content_len)) != 0)
        goto out;
    r = via_desk("send", o->home, req, &rep, &st);
    if (r != 1) {
        r = -1;
        goto out;
    }
    if (st != 200) {
        r = desk_refused("send", rep, st);
        rep = NULL;
        goto out;
    }
    ids = j_arr(rep, "queued");
    printf("queued %s to %s (%s, %s)\n",
           ids != NULL && json_object_array_length(ids) > 0
               ? json_object_get_string(json_object_array_get_idx(ids, 0))
               : "?",
           to_list(o), inner_precedence_name(d->precedence), d->label);
    r = 0;
out:
    if (req != NULL) {
        json_object *b;
        if (json_object_object_get_ex(req, "body", &b))
            sodium_memzero((char *)json_object_get_string(b), (size_t)json_object_get_string_len(b));
    }
    json_object_put(req);
    json_object_put(rep);
    return r;
}

static int cmd_enroll(int argc, char **argv)
{
    struct opts o;
    struct mbox *m = NULL;
    struct buf cert, org;
    char ca_abs[PATH_MAX];
    int r;

    if ((r = parse_opts("enroll", argc, argv, &o, usage_enroll)) != 0)
        return r;
    if (o.cert == NULL || o.org_pub == NULL || o.relay == NULL || o.relay_id == NULL)
        return fail_msg("enroll", "--cert, --org-pub, --relay and --relay-id are required");
    if (!relaycert_valid_id(o.relay_id))
        return fail_msg("enroll", "--relay-id: 1 to 64 of a-z A-Z 0-9 . _ - (the relay id IT gave you)");
    if ((r = ctp_url_check(o.relay)) != 0) {
        char msg[512];
        /* Name the real cause before the passphrase is asked (issue 12, item 12). */
        snprintf(msg, sizeof(msg),
                 r == VERR_DENIED
                     ? "--relay %s: plain ws:// is allowed only to this machine (127.0.0.1, ::1, "
                       "localhost); use wss://HOST for a relay elsewhere"
                     : "--relay %s: not a relay URL; give wss://HOST[:PORT][/PATH] (port 443 "
                       "when omitted)",
                 o.relay);
        return fail_msg("enroll", msg);
    }
    if ((r = file_read(o.cert, CERT_MAX_LEN, 0, &cert)) != 0)
        return fail("enroll", o.cert, r);
    if ((r = file_read(o.org_pub, ORGPUB_MAX_LEN, 0, &org)) != 0) {
        buf_free(&cert);
        return fail("enroll", o.org_pub, r);
    }
    if (o.ca != NULL) {
        /* Stored absolute: later syncs may run from another directory. */
        if (realpath(o.ca, ca_abs) == NULL || !file_exists(ca_abs)) {
            char msg[PATH_MAX + 128];
            snprintf(msg, sizeof(msg), "--ca %s: no such file; give the PEM file of the CA IT "
                                       "named", o.ca);
            r = fail_msg("enroll", msg);
            goto out;
        }
        o.ca = ca_abs;
    }
    if ((r = open_mbox("enroll", &o, &m, 0)) != 0)
        goto out;
    r = mbox_enroll(m, buf_data(&cert), buf_size(&cert), buf_data(&org), buf_size(&org), o.relay,
                    o.relay_id, o.ca, (uint64_t)time(NULL));
    if (r != 0) {
        char msg[PATH_MAX + 256];
        /* One line naming the file and what to do, the cause said once (issue 12, item 11). */
        if (r == VERR_DENIED)
            snprintf(msg, sizeof(msg), "--cert %s: the certificate is not for this device's keys; "
                                       "ask IT for the one made from this device's request", o.cert);
        else if (r == VERR_EXISTS)
            snprintf(msg, sizeof(msg), "--home %s: already enrolled with another organisation; "
                                       "use a new --home for it", o.home);
        else if (r == VERR_WRONG_ORG)
            snprintf(msg, sizeof(msg), "--cert %s: not signed by the organisation in --org-pub %s; "
                                       "check both files with IT", o.cert, o.org_pub);
        else if (r == VERR_EXPIRED || r == VERR_NOT_YET_VALID)
            snprintf(msg, sizeof(msg), "--cert %s: %s (check this machine's clock, or ask IT for "
                                       "a new one)", o.cert, verr_str(r));
        else
            snprintf(msg, sizeof(msg), "--cert %s or --org-pub %s refused: %s; check them with IT",
                     o.cert, o.org_pub, verr_str(r));
        r = fail_msg("enroll", msg);
        goto out;
    }
    {
        struct shown sh;
        printf("enrolled as %s, %s@%s; relay %s (relay id %s)\n", SAFE(&sh, name, mbox_cert(m)->name),
               SAFE(&sh, role, mbox_cert(m)->role), SAFE(&sh, post, mbox_cert(m)->post), o.relay,
               o.relay_id);
    }
    {
        /* README: the post compares the org id with the one IT read out. */
        struct orgpub op;
        char id[ORG_ID_TEXT_LEN];

        if ((r = orgpub_parse(buf_data(&org), buf_size(&org), &op)) != 0) {
            r = fail("enroll", o.org_pub, r);
            goto out;
        }
        orgpub_id_text(id, op.id);
        printf("org id %s\ncompare it with the org id IT staff read to you; if it differs, do not "
               "use this device and call IT\n",
               id);
    }
    r = 0;
out:
    mbox_close(m);
    buf_free(&cert);
    buf_free(&org);
    return r;
}

/*
 * The message from standard input, up to the first end of file: read(2)
 * directly, so one Ctrl-D at a terminal ends it and nothing typed after it
 * is taken (issue 12, item 2). VERR_TOO_LARGE past INNER_CONTENT_MAX.
 */
static int read_stdin_message(struct buf *content)
{
    uint8_t chunk[4096];
    int r;

    if ((r = buf_init(content, INNER_CONTENT_MAX, BUF_SECRET)) != 0)
        return r;
    for (;;) {
        ssize_t got = read(STDIN_FILENO, chunk, sizeof(chunk));

        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            r = VERR_IO;
            break;
        }
        if (got == 0)
            break;
        if ((size_t)got > INNER_CONTENT_MAX - buf_size(content)) {
            r = VERR_TOO_LARGE;
            break;
        }
        if ((r = buf_put_bytes(content, chunk, (size_t)got)) != 0)
            break;
    }
    sodium_memzero(chunk, sizeof(chunk));
    if (r != 0)
        buf_free(content);
    return r;
}

/* Nothing but spaces, tabs and line ends: an empty message (issue 12, item 11). */
static int message_blank(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            return 0;
    return 1;
}

/* Asks on the terminal; 1 only for an answer of y or yes. */
static int confirm_send(const struct mbox_draft *d, const char *to, size_t len)
{
    char answer[16];
    size_t n = 0;
    int fd, ok = 0;
    FILE *tty;

    if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC)) < 0)
        return 0;
    if ((tty = fdopen(fd, "r+")) == NULL) {
        close(fd);
        return 0;
    }
    fprintf(tty, "To:         %s\nPrecedence: %s\nLabel:      %s\nSubject:    %s\nSize:       "
                 "%zu bytes\nSign and queue it? [y/N] ",
            to, inner_precedence_name(d->precedence), d->label, d->subject, len);
    fflush(tty);
    if (fgets(answer, sizeof(answer), tty) != NULL) {
        n = strcspn(answer, "\r\n");
        answer[n] = 0;
        ok = strcmp(answer, "y") == 0 || strcmp(answer, "Y") == 0 || strcmp(answer, "yes") == 0;
    }
    fclose(tty);
    return ok;
}

/* Edit distance of a and b, ASCII case folded, capped at 9 (close-match hints). */
static unsigned edit_distance(const char *a, const char *b)
{
    unsigned row[ADDR_TEXT_MAX + 2];
    size_t la = strlen(a), lb = strlen(b);

    if (la > ADDR_TEXT_MAX || lb > ADDR_TEXT_MAX)
        return 9;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j], best;
            int same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);

            best = diag + (same ? 0u : 1u);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb] > 9 ? 9 : row[lb];
}

/*
 * Issue 12, item 7: an address that the newest directory resolves to nobody
 * (no such post, role or person, or a role only this device holds) is
 * refused at send, with the closest addresses the directory does know. With
 * no directory yet, or an expired one, the message queues and waits.
 */
static int check_recipients(struct mbox *m, const char *to)
{
    struct mbox_contact *list = NULL, *all = NULL;
    struct address want;
    size_t n = 0, nall = 0, shown = 0;
    uint64_t exp, now = (uint64_t)time(NULL);
    int f = mbox_dir_freshness(m, now, &exp), r;

    if (f != MBOX_DIR_FRESH && f != MBOX_DIR_EXPIRING)
        return 0;
    r = mbox_fingerprint(m, to, now, &list, &n);
    free(list);
    if (r != VERR_UNKNOWN)
        return 0; /* resolves (or an error mbox_send reports itself) */
    if (addr_parse(to, &want) != 0)
        return 0;
    fprintf(stderr, "valise send: --to %s: no other device in the newest directory has this "
                    "address; nothing was queued",
            to);
    if (mbox_fingerprint(m, "*@*", now, &all, &nall) == 0) {
        /* The closest addresses of the same kind, up to five (edit distance <= 3). */
        for (unsigned dist = 0; dist <= 3 && shown < 5; dist++) {
            for (size_t i = 0; i < nall && shown < 5; i++) {
                char cand[ADDR_TEXT_MAX + 16], safe[TERMSAFE_LEN(ADDR_TEXT_MAX + 16)];
                int dup = 0;

                if (want.kind == ADDR_PERSON)
                    snprintf(cand, sizeof(cand), "person:%s", all[i].cert.name);
                else if (want.kind == ADDR_POST)
                    snprintf(cand, sizeof(cand), "*@%s", all[i].cert.post);
                else
                    snprintf(cand, sizeof(cand), "%s@%s", all[i].cert.role, all[i].cert.post);
                if (edit_distance(to, cand) != dist)
                    continue;
                for (size_t k = 0; k < i && !dup; k++) {
                    char prev[ADDR_TEXT_MAX + 16];
                    if (want.kind == ADDR_PERSON)
                        snprintf(prev, sizeof(prev), "person:%s", all[k].cert.name);
                    else if (want.kind == ADDR_POST)
                        snprintf(prev, sizeof(prev), "*@%s", all[k].cert.post);
                    else
                        snprintf(prev, sizeof(prev), "%s@%s", all[k].cert.role, all[k].cert.post);
                    dup = strcmp(prev, cand) == 0;
                }
                if (dup)
                    continue;
                fprintf(stderr, "%s%s", shown == 0 ? "; did you mean " : ", ",
                        termsafe_str(safe, sizeof(safe), cand));
                shown++;
            }
        }
    }
    free(all);
    fputs(shown > 0 ? "?\n" : " (sync to fetch a newer directory if IT added it)\n", stderr);
    return 1;
}

static int attach_precheck(const struct opts *o, uint64_t sizes[static ATTACH_MAX]);
static void attach_confirm_lines(const struct opts *o, const uint64_t *sizes);
static int attach_seal_all(struct mbox *m, const struct opts *o, struct attach_desc *descs,
                           struct buf *section);
static void attach_discard_all(struct mbox *m, struct attach_desc *descs, size_t n);

static int cmd_send(int argc, char **argv)
{
    struct opts o;
    struct mbox *m = NULL;
    struct mbox_draft d;
    struct attach_desc descs[ATTACH_MAX];
    struct buf section = {0};
    uint64_t sizes[ATTACH_MAX];
    struct buf content;
    uint8_t id[INNER_ID_LEN];
    char hex[2 * INNER_ID_LEN + 1];
    int r, composing;

    if ((r = parse_opts("send", argc, argv, &o, usage_send)) != 0)
        return r;
    if (o.to == NULL)
        return fail_msg("send", "--to is required");
    if (o.too_many_to)
        return fail_msg("send", "--to: at most 16 addresses per message; send it twice or use "
                                "a wider address (*@POST)");
    memset(&d, 0, sizeof(d));
    d.addresses = o.tos;
    d.naddresses = o.nto;
    d.precedence = WIRE_ROUTINE;
    if (o.precedence != NULL && inner_precedence_parse(o.precedence, &d.precedence) != 0)
        return fail_msg("send", "--precedence must be FLASH, IMMEDIATE, PRIORITY or ROUTINE");
    d.label = o.label != NULL ? o.label : "UNCLASSIFIED";
    if (!inner_valid_label(d.label))
        return fail_msg("send", "--label must be 1 to 32 of A-Z 0-9 space / _ -");
    d.subject = o.subject != NULL ? o.subject : "";
    if (strlen(d.subject) > INNER_SUBJECT_MAX)
        return fail_msg("send", "--subject is longer than 256 bytes");
    if (!inner_valid_subject((const uint8_t *)d.subject, strlen(d.subject)))
        return fail_msg("send", "--subject must be UTF-8 text without control or bidirectional "
                                "characters");
    {
        char canon[INNER_ADDRESSES_MAX][ADDR_TEXT_MAX + 1];
        for (size_t i = 0; i < o.nto; i++) {
            struct address a;
            char msg[ADDR_TEXT_MAX * 4 + 128], safe[TERMSAFE_LEN(ADDR_TEXT_MAX)];
            termsafe_str(safe, sizeof(safe), o.tos[i]);
            if (addr_parse(o.tos[i], &a) != 0 || addr_format(&a, canon[i], sizeof(canon[i])) != 0) {
                snprintf(msg, sizeof(msg), "--to %s: must be role@POST, *@POST, *@*, device:HEX "
                                           "or person:NAME", safe);
                return fail_msg("send", msg);
            }
            for (size_t j = 0; j < i; j++)
                if (strcmp(canon[j], canon[i]) == 0) {
                    snprintf(msg, sizeof(msg), "--to %s: given twice; name each address once",
                             safe);
                    return fail_msg("send", msg);
                }
        }
    }
    /* Each --attach names a non-empty file we can read, before anything else (issue 13). */
    if ((r = attach_precheck(&o, sizes)) != 0)
        return r;
    composing = o.file == NULL && isatty(STDIN_FILENO);
    if (o.file != NULL) {
        if ((r = file_read(o.file, INNER_CONTENT_MAX, BUF_SECRET, &content)) != 0) {
            char msg[PATH_MAX + 128];
            snprintf(msg, sizeof(msg), "--file %s: %s", o.file,
                     r == VERR_TOO_LARGE  ? "larger than 200 KiB (204800 bytes), the limit for one "
                                            "message"
                     : r == VERR_UNKNOWN  ? "no such file"
                                          : verr_str(r));
            return fail_msg("send", msg);
        }
    } else {
        if (composing)
            fputs("Type the message; end it with Ctrl-D at the start of a line (Ctrl-C to "
                  "abandon it).\n",
                  stderr);
        if ((r = read_stdin_message(&content)) != 0) {
            if (r == VERR_TOO_LARGE)
                return fail_msg("send", "standard input: the message is larger than 200 KiB "
                                        "(204800 bytes), the limit for one message");
            return fail("send", "reading the message from standard input", r);
        }
    }
    if (o.n_attach == 0 && message_blank(buf_data(&content), buf_size(&content))) {
        buf_free(&content);
        return fail_msg("send", o.file != NULL ? "the message is empty (the --file holds no text); "
                                                 "nothing was queued"
                                               : "the message is empty; nothing was queued");
    }
    d.content = buf_data(&content);
    d.content_len = buf_size(&content);
    /* Attachments are sealed into this HOME: not through a desk session. */
    if (o.n_attach == 0 && (r = send_via_desk(&o, &d)) >= 0) {
        buf_free(&content);
        return r;
    }
    if ((r = open_mbox("send", &o, &m, 1)) != 0) {
        buf_free(&content);
        return r;
    }
    /* Each unknown address named on its own line; nothing queued if any (item 7). */
    {
        int refused = 0;
        for (size_t i = 0; i < o.nto; i++)
            refused |= check_recipients(m, o.tos[i]);
        if (refused) {
            mbox_close(m);
            buf_free(&content);
            return 1;
        }
    }
    /* At the terminal, the diplomat confirms what goes where (issue 12, item 2). */
    if (composing && !o.yes)
        attach_confirm_lines(&o, sizes);
    if (composing && !o.yes && !confirm_send(&d, to_list(&o), buf_size(&content))) {
        mbox_close(m);
        buf_free(&content);
        fputs("valise send: not sent; nothing was queued\n", stderr);
        return 1;
    }
    if ((r = attach_seal_all(m, &o, descs, &section)) != 0) {
        mbox_close(m);
        buf_free(&content);
        return r;
    }
    d.attach_section = o.n_attach > 0 ? buf_data(&section) : NULL;
    d.attach_section_len = o.n_attach > 0 ? buf_size(&section) : 0;
    r = mbox_send(m, &d, (uint64_t)time(NULL), id);
    if (r == 0)
        dir_warn("send", m,
                 "the message is queued and goes out once a fresh directory arrives");
    else
        attach_discard_all(m, descs, o.n_attach);
    for (size_t i = 0; i < o.n_attach; i++)
        attach_desc_wipe(&descs[i]);
    buf_free(&section);
    mbox_close(m);
    buf_free(&content);
    if (r == VERR_AMBIGUOUS)
        return fail_msg("send", "--to person:NAME is ambiguous: two persons in the directory carry "
                                "this name; address one of them by role@POST or device:HEX");
    if (r != 0)
        return fail("send", "queueing the message", r);
    if (text_hex_encode(hex, sizeof(hex), id, INNER_ID_LEN) != 0)
        return fail("send", "message id", VERR_INTERNAL);
    printf("queued %s to %s (%s, %s)", hex, to_list(&o), inner_precedence_name(d.precedence), d.label);
    if (o.n_attach > 0)
        printf(" with %zu attachment%s", o.n_attach, o.n_attach == 1 ? "" : "s");
    printf("\n");
    return 0;
}

static const char *sync_failure(int r, const struct mbox_sync_stats *st, const char *relay_id)
{
    static char msg[256];

    if (st->relay_unproven != NULL) {
        snprintf(msg, sizeof(msg),
                 "the relay did not prove it is %s of this organisation: %s; nothing was sent",
                 relay_id, st->relay_unproven);
        return msg;
    }
    if (r == VERR_ROLLBACK && st->store_rolled_back)
        return "this device's store is older than the relay's record of it (restored from a "
               "backup or copied): nothing sent or received; IT must re-enrol the device";
    switch (r) {
    case VERR_NET:
        return "relay unreachable (the outbox is kept; try again later)";
    case VERR_TIMEOUT:
        return "the relay did not answer in time (the outbox is kept)";
    case VERR_ROLLBACK:
        return "the relay served a directory older than one already seen";
    case VERR_REVOKED:
        return "the relay refused this device: revoked";
    default:
        break;
    }
    if (st->relay_reason != 0) {
        snprintf(msg, sizeof(msg), "the relay refused: %s", wire_reason_name(st->relay_reason));
        return msg;
    }
    return "sync failed";
}

/* Why this device refused an incoming envelope, for the diplomat (issue 12, item 9). */
static const char *refusal_why(int err)
{
    switch (err) {
    case VERR_REVOKED:
        return "the sender's device is revoked";
    case VERR_EXPIRED:
        return "the sender's certificate has expired";
    case VERR_NOT_YET_VALID:
        return "dated ahead of this device's clock or signed by a certificate not yet valid";
    case VERR_UNKNOWN:
        return "a sender device, session or one-time prekey this device does not know";
    case VERR_DECRYPT:
        return "it does not decrypt (damaged or not made for this device)";
    case VERR_BAD_SIGNATURE:
    case VERR_DENIED:
        return "its signature or sender does not verify";
    default:
        return verr_str(err);
    }
}

/* One line per distinct refusal a sync saw, each named (issue 12, item 9). */
static void sync_print_refusals(const struct mbox *m, const struct mbox_sync_stats *st)
{
    const struct directory *d = mbox_directory(m);

    for (size_t i = 0; i < MBOX_WHY_MAX && st->refused_why[i].n > 0; i++) {
        const struct cert *c = NULL;
        char hex[2 * DEVICE_ID_LEN + 1],
            who[TERMSAFE_LEN(PERSON_NAME_MAX + ROLE_MAX + POST_MAX) + 8];
        char name[TERMSAFE_LEN(PERSON_NAME_MAX)], role[TERMSAFE_LEN(ROLE_MAX)],
            post[TERMSAFE_LEN(POST_MAX)];
        if (text_hex_encode(hex, sizeof(hex), st->refused_why[i].sender, DEVICE_ID_LEN) != 0)
            hex[0] = 0;
        /* Also a revoked device's certificate, which the directory still lists. */
        for (size_t j = 0; d != NULL && j < dir_cert_count(d); j++)
            if (memcmp(dir_cert_at(d, j)->device_id, st->refused_why[i].sender, DEVICE_ID_LEN) == 0)
                c = dir_cert_at(d, j);
        if (c != NULL)
            snprintf(who, sizeof(who), "%s (%s@%s)", termsafe_str(name, sizeof(name), c->name),
                     termsafe_str(role, sizeof(role), c->role),
                     termsafe_str(post, sizeof(post), c->post));
        else
            snprintf(who, sizeof(who), "(a device the directory does not list)");
        for (size_t j = 0; c == NULL && d != NULL && j < dir_revoked_count(d); j++) {
            const struct dir_revocation *rv = dir_revoked_at(d, j);
            char t[40];
            if (memcmp(rv->device_id, st->refused_why[i].sender, DEVICE_ID_LEN) != 0)
                continue;
            print_time(t, sizeof(t), rv->revoked_at);
            snprintf(who, sizeof(who), "(a device IT revoked at %s)", t);
        }
        printf("refused %zu from %s %s: %s; left on the relay until it expires\n",
               st->refused_why[i].n, hex, who, refusal_why(st->refused_why[i].err));
    }
    for (size_t i = 0; i < MBOX_WHY_MAX && st->rejected_why[i].n > 0; i++)
        printf("the relay refused %zu of this device's envelopes: %s (valise outbox shows which)\n",
               st->rejected_why[i].n, wire_reason_name(st->rejected_why[i].reason));
}

static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
}

static void attach_progress_setup(struct mbox_sync_opts *so);
static void attach_progress_end(void);
static int attach_print_sync(const struct mbox_sync_stats *st);

static int cmd_sync(int argc, char **argv)
{
    struct opts o;
    struct mbox *m = NULL;
    struct mbox_sync_opts so;
    struct mbox_sync_stats st;
    char relay_id[RELAY_ID_MAX + 1];
    uint64_t wait = 500;
    int r;

    if ((r = parse_opts("sync", argc, argv, &o, usage_sync)) != 0)
        return r;
    if (o.wait_ms != NULL && text_parse_u64(o.wait_ms, 1, 600000, &wait) != 0)
        return fail_msg("sync", "--wait-ms must be 1 to 600000");
    if ((r = open_mbox("sync", &o, &m, 1)) != 0)
        return r;
    memset(&so, 0, sizeof(so));
    so.quiet_ms = (unsigned)wait;
    so.timeout_ms = 10000;
    attach_progress_setup(&so);
    r = mbox_sync(m, &so, &st);
    attach_progress_end();
    if (r == 0)
        dir_warn("sync", m,
                 "nothing was encrypted to or accepted from any device (messages stay on the relay)");
    snprintf(relay_id, sizeof(relay_id), "%s", mbox_relay_id(m));
    if (r != 0 && !st.connected) {
        mbox_close(m);
        return fail("sync", sync_failure(r, &st, relay_id), r);
    }
    /* What was done counts also when the link dropped half-way (issue 13). */
    printf("directory v%llu; sent %zu message%s, %zu receipt%s; accepted %zu message%s; "
           "received %zu new, %zu receipts; %zu refused; %zu expired",
           (unsigned long long)st.dir_version, st.submitted, plural(st.submitted), st.receipts_sent,
           plural(st.receipts_sent), st.accepted, plural(st.accepted), st.received, st.receipts,
           st.refused, st.expired);
    if (st.rejected > 0)
        printf("; %zu refused by the relay", st.rejected);
    if (st.from_own > 0)
        printf("; %zu sent from your other devices (in the outbox)", st.from_own);
    if (st.held > 0)
        printf("; %zu held on the relay (directory expired)", st.held);
    if (st.unknown_prekey > 0)
        printf("; %zu of the refused named an unknown one-time prekey", st.unknown_prekey);
    printf("\n");
    if (st.resubmitted > 0)
        printf("%zu resubmitted: the relay had lost them (restored from a backup)\n",
               st.resubmitted);
    if (st.prekeys_uploaded > 0)
        printf("uploaded %zu one-time prekeys\n", st.prekeys_uploaded);
    sync_print_refusals(m, &st);
    mbox_close(m);
    if (r != 0)
        return fail("sync", sync_failure(r, &st, relay_id), r);
    if (attach_print_sync(&st) != 0)
        return 1; /* an upload is left undone: say so by the exit status (issue 13) */
    return 0;
}

static volatile int run_stop;

static void on_signal(int sig)
{
    (void)sig;
    run_stop = 1;
}

/* What `run` says as it happens (issue 12, item 8): one line each, on stdout. */
struct run_ctx {
    struct mbox *m;
    int ever;    /* connected at least once */
    int dropped; /* a sync failed since the last connection: the next one is "again" */
};

static void run_event(void *ctx, int kind, const struct mbox_msg *msg)
{
    struct run_ctx *rc = ctx;
    const struct directory *d = mbox_directory(rc->m);

    if (kind == MBOX_EV_CONNECTED) {
        char rid[TERMSAFE_LEN(RELAY_ID_MAX)];
        printf("%s to the relay %s (directory v%llu); new messages show here as they arrive\n",
               rc->ever && rc->dropped ? "connected again" : "connected",
               termsafe_str(rid, sizeof(rid), mbox_relay_id(rc->m)),
               (unsigned long long)(d != NULL ? dir_version(d) : 0));
        rc->ever = 1;
        rc->dropped = 0;
    } else if (kind == MBOX_EV_MESSAGE && msg != NULL) {
        char name[TERMSAFE_LEN(PERSON_NAME_MAX)], role[TERMSAFE_LEN(ROLE_MAX)];
        char post[TERMSAFE_LEN(POST_MAX)], subj[TERMSAFE_LEN(INNER_SUBJECT_MAX)];
        char hex[2 * INNER_ID_LEN + 1];
        /* FLASH and IMMEDIATE stand out (PROTOCOL.md precedence 0 and 1). */
        int urgent = msg->precedence <= 1;
        if (text_hex_encode(hex, sizeof(hex), msg->id, INNER_ID_LEN) != 0)
            hex[0] = 0;
        hex[8] = 0; /* the shortest prefix `read` takes */
        printf("%snew %s message from %s (%s@%s): %s  [valise read %s]\n", urgent ? "!!! " : "",
               inner_precedence_name(msg->precedence),
               termsafe_str(name, sizeof(name), msg->sender_name),
               termsafe_str(role, sizeof(role), msg->sender_role),
               termsafe_str(post, sizeof(post), msg->sender_post),
               termsafe_str(subj, sizeof(subj), msg->subject), hex);
    }
    (void)fflush(stdout);
}

/*
 * The `run` loop: stays connected through so (stay, stop), reconnecting with
 * backoff, until *so->stop or a failure no retry can mend. verb names the
 * command in its lines on stderr. Also the syncing process of `desk`.
 */
static int run_session(const char *verb, struct mbox *m, struct mbox_sync_opts *so)
{
    struct mbox_sync_stats st;
    struct run_ctx rc = {m, 0, 0};
    unsigned backoff = 1;
    time_t through = time(NULL); /* the last connection that got through */
    int r;

    so->event = run_event;
    so->event_ctx = &rc;
    while (!run_stop) {
        unsigned ceiling;

        r = mbox_sync(m, so, &st);
        if (run_stop)
            break;
        dir_warn(verb, m, NULL);
        if (r == 0)
            continue; /* a fresh directory after held messages: reconnect to receive them */
        if (r == VERR_ROLLBACK || r == VERR_REVOKED || r == VERR_WRONG_ORG) {
            r = fail(verb, sync_failure(r, &st, mbox_relay_id(m)), r);
            goto out;
        }
        /* A connection that got through resets the backoff (issue 13). */
        if (st.connected) {
            backoff = 1;
            through = time(NULL);
        }
        {
            /* Exponential backoff with jitter: wait in [backoff/2, backoff] seconds. */
            uint32_t ms = backoff * 500u + randombytes_uniform(backoff * 500u + 1);
            /* run retries by itself: never "try again later" (issue 12, item 8). */
            rc.dropped = 1;
            if (r == VERR_NET && st.connected)
                fprintf(stderr,
                        "valise %s: the link to the relay dropped; the outbox is kept; "
                        "reconnecting in %u ms, by itself\n",
                        verb, ms);
            else if (r == VERR_NET)
                fprintf(stderr, "valise %s: the relay is unreachable or the link dropped; the "
                                "outbox is kept; reconnecting in %u ms, by itself\n", verb, ms);
            else
                fprintf(stderr, "valise %s: %s; reconnecting in %u ms\n", verb,
                        sync_failure(r, &st, mbox_relay_id(m)), ms);
            for (uint32_t waited = 0; waited < ms && !run_stop; waited += 100)
                (void)usleep(100000);
        }
        /* A small ceiling while the network keeps coming back; 60 s once it seems gone. */
        ceiling = time(NULL) - through < 300 ? 8 : 60;
        backoff = backoff * 2 > ceiling ? ceiling : backoff * 2;
    }
    r = 0;
out:
    so->event = NULL;
    so->event_ctx = NULL;
    return r;
}

static void on_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);
}

static int cmd_run(int argc, char **argv)
{
    struct opts o;
    struct mbox *m = NULL;
    struct mbox_sync_opts so;
    int r;

    if ((r = parse_opts("run", argc, argv, &o, usage_run)) != 0)
        return r;
    if ((r = open_mbox("run", &o, &m, 1)) != 0)
        return r;
    on_signals();
    memset(&so, 0, sizeof(so));
    so.quiet_ms = 1000;
    so.timeout_ms = 10000;
    so.stay = 1;
    so.stop = &run_stop;
    attach_progress_setup(&so);
    r = run_session("run", m, &so);
    attach_progress_end();
    mbox_close(m);
    return r;
}

static const char usage_desk[] =
    "usage: valise desk --home HOME [--port PORT] [--idle-secs N] [--web DIR]\n"
    "                   [--passphrase-file FILE]\n"
    "\n"
    "Unlocks the device once, stays connected to the relay as 'valise run' does,\n"
    "and serves the desk (inbox, reading, compose, outbox, directory) to your\n"
    "browser on 127.0.0.1 only. It prints a link with a one-time token: open it\n"
    "on this machine (the token works once; restart the desk for a new one).\n"
    "  PORT  the local port (default: any free port, printed)\n"
    "  N     lock the page after N seconds without use (default 600, 2 to\n"
    "        86400); the passphrase unlocks it again, in the page\n"
    "  DIR   the page's files (default: share/valise/desk beside the program)\n"
    "Stop with Ctrl-C.\n";

static int desk_link_fd = -1;

/* The syncing process: one byte to the desk for each sign of life of the relay link. */
static void desk_alive(void *ctx)
{
    (void)ctx;
    if (desk_link_fd >= 0 && write(desk_link_fd, "", 1) < 0) {
        /* the desk reads them when it can; a full pipe loses nothing that matters */
    }
}

/* share/valise/desk beside bin/valise (installed) or client/valise (build tree). */
static int desk_web_dir(char *out, size_t outsz)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash;
    int w;

    if (n <= 0)
        return -1;
    exe[n] = 0;
    if ((slash = strrchr(exe, '/')) == NULL)
        return -1;
    *slash = 0;
    w = snprintf(out, outsz, "%s/../share/valise/desk", exe);
    return w < 0 || (size_t)w >= outsz ? -1 : 0;
}

static int cmd_desk(int argc, char **argv)
{
    struct opts o;
    struct mbox *m = NULL;
    struct desk *d = NULL;
    struct desk_http *h = NULL;
    char *pass = NULL, web[PATH_MAX], index_file[PATH_MAX + 16];
    uint64_t port = 0, idle = DESK_IDLE_DEFAULT;
    int link[2] = {-1, -1}, session_fd = -1;
    pid_t child = -1;
    int r;

    if ((r = parse_opts("desk", argc, argv, &o, usage_desk)) != 0)
        return r;
    if (o.port != NULL && text_parse_u64(o.port, 1024, 65535, &port) != 0)
        return fail_msg("desk", "--port must be a number from 1024 to 65535");
    if (o.idle != NULL && text_parse_u64(o.idle, 2, 86400, &idle) != 0)
        return fail_msg("desk", "--idle-secs must be a number of seconds from 2 to 86400");
    if (o.web != NULL) {
        if (strlen(o.web) >= sizeof(web))
            return fail_msg("desk", "--web: path too long");
        memcpy(web, o.web, strlen(o.web) + 1);
    } else if (desk_web_dir(web, sizeof(web)) != 0) {
        return fail_msg("desk", "cannot find the page's files: give --web DIR");
    }
    snprintf(index_file, sizeof(index_file), "%s/index.html", web);
    if (!file_exists(index_file)) {
        fprintf(stderr, "valise desk: %s has no index.html: give --web DIR (the desk's page "
                        "files, share/valise/desk)\n", web);
        return 2;
    }
    if ((r = pass_read(o.passfile, "Device passphrase: ", 0, &pass)) != 0)
        return fail("desk", "passphrase", r);
    on_signals();
    if (pipe(link) != 0) {
        pass_free(pass);
        return fail("desk", "pipe", VERR_IO);
    }
    /*
     * Two processes of one session, each with its own LMDB handle (LMDB: no
     * environment across fork): the child syncs as `run`, the parent serves
     * the page. Both unlock with the passphrase read once.
     */
    if ((child = fork()) < 0) {
        pass_free(pass);
        return fail("desk", "fork", VERR_INTERNAL);
    }
    if (child == 0) {
        struct mbox_sync_opts so;
        close(link[0]);
        (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
        desk_link_fd = link[1];
        (void)fcntl(link[1], F_SETFL, O_NONBLOCK);
        r = mbox_open(&m, o.home, pass);
        pass_free(pass);
        if (r != 0 || !mbox_enrolled(m)) {
            mbox_close(m);
            _exit(1); /* the parent says why */
        }
        memset(&so, 0, sizeof(so));
        so.quiet_ms = 1000;
        so.timeout_ms = 10000;
        so.stay = 1;
        so.stop = &run_stop;
        so.alive = desk_alive;
        r = run_session("desk", m, &so);
        mbox_close(m);
        _exit(r == 0 ? 0 : 1);
    }
    close(link[1]);
    (void)fcntl(link[0], F_SETFL, O_NONBLOCK);
    r = mbox_open(&m, o.home, pass);
    pass_free(pass);
    if (r != 0) {
        r = fail("desk", r == VERR_DECRYPT ? "wrong passphrase or damaged device.key" : o.home, r);
        goto out;
    }
    if (!mbox_enrolled(m)) {
        r = fail_msg("desk", "this device is not enrolled yet (see valise enroll)");
        goto out;
    }
    dir_warn("desk", m, NULL);
    r = desk_new(&d, o.home, m, (unsigned)idle, (uint64_t)time(NULL));
    m = NULL; /* owned by d now */
    if (r != 0) {
        r = fail("desk", "starting the desk", r);
        goto out;
    }
    if ((r = desk_http_start(&h, d, web, (uint16_t)port)) != 0) {
        r = fail("desk", port != 0 ? "cannot listen on 127.0.0.1 at --port (in use?)"
                                   : "cannot listen on 127.0.0.1", r);
        goto out;
    }
    r = session_listen(o.home, &session_fd);
    if (r != 0)
        fprintf(stderr, "valise desk: no session for the other verbs (%s: %s); they ask for the "
                        "passphrase as before%s\n", o.home, verr_str(r),
                r == VERR_DENIED ? " (the home must be yours and mode 0700: chmod 700 it)" : "");
    printf("valise desk: serving on 127.0.0.1:%u for this machine only\n"
           "open this link in your browser (it works once):\n"
           "  http://127.0.0.1:%u/login?token=%s\n",
           (unsigned)desk_http_port(h), (unsigned)desk_http_port(h), desk_token(d));
    fflush(stdout);
    if (session_fd >= 0)
        printf("the other valise verbs on %s use this unlocked session (%s/%s)\n", o.home, o.home,
               SESSION_SOCKET_NAME);
    fflush(stdout);
    r = desk_http_run(h, &run_stop, link[0], session_fd);
    if (r != 0)
        r = fail("desk", "serving the page", r);
out:
    if (child > 0) {
        (void)kill(child, SIGTERM);
        (void)waitpid(child, NULL, 0);
    }
    if (link[0] >= 0)
        close(link[0]);
    session_close(o.home, session_fd);
    desk_http_stop(h);
    desk_free(d);
    mbox_close(m);
    return r;
}

static int cmd_inbox(int argc, char **argv)
{
    struct opts o;
    struct mbox *m = NULL;
    struct mbox_msg *list = NULL;
    size_t n = 0;
    int r;

    if ((r = parse_opts("inbox", argc, argv, &o, usage_inbox)) != 0)
        return r;
    if ((r = inbox_via_desk(&o)) >= 0)
        return r;
    if ((r = open_mbox("inbox", &o, &m, 1)) != 0)
        return r;
    r = mbox_inbox(m, &list, &n);
    mbox_close(m);
    if (r != 0)
        return fail("inbox", "reading the inbox", r);
    for (size_t i = 0; i < n; i++) {
        char hex[2 * INNER_ID_LEN + 1], t[40];
        if (text_hex_encode(hex, sizeof(hex), list[i].id, INNER_ID_LEN) != 0)
            continue;
        struct shown sh;
        print_time(t, sizeof(t), list[i].time);
        printf("%c %s %-9s %-14s %s  %s (%s@%s)  %s", list[i].read ? ' ' : '*', hex,
               inner_precedence_name(list[i].precedence), SAFE(&sh, label, list[i].label), t,
               SAFE(&sh, name, list[i].sender_name), SAFE(&sh, role, list[i].sender_role),
               SAFE(&sh, post, list[i].sender_post), SAFE(&sh, subject, list[i].subject));
        /* A message to several addresses says to which (issue 12, item 6). */
        if (list[i].naddr > 1)
            printf("  [to %s]", SAFE(&sh, address, list[i].address));
        printf("\n");
    }
    if (n == 0)
        printf("inbox empty\n");
    free(list);
    return 0;
}

/* 8..32 hex digits, optionally /SENDER of 8..32 hex digits (usage_read). */
static int read_id_well_formed(const char *s)
{
    size_t a = strspn(s, "0123456789abcdefABCDEF"), b;

    if (a < 8 || a > 2 * INNER_ID_LEN)
        return 0;
    if (s[a] == '\0')
        return 1;
    if (s[a] != '/')
        return 0;
    b = strspn(s + a + 1, "0123456789abcdefABCDEF");
    return b >= 8 && b <= 2 * DEVICE_ID_LEN && s[a + 1 + b] == '\0';
}

static void attach_states(struct mbox *m, const struct mbox_msg *msg, int *have, uint32_t *held,
                          uint32_t *c);
static void attach_print_list(const struct mbox_msg *msg, const int *have, const uint32_t *held,
                              const uint32_t *c, const struct mba_up_state *up, const char *id);
static void print_upload_state(const struct mba_up_state *u);
static void human_size(char *out, size_t outsz, uint64_t n);

static int cmd_read(int argc, char **argv)
{
    struct opts o;
    struct mbox *m = NULL;
    struct mbox_msg msg;
    char hex[2 * INNER_ID_LEN + 1], sid[2 * DEVICE_ID_LEN + 1], t[40];
    uint8_t self_id[DEVICE_ID_LEN];
    struct shown sh;
    int att_have[ATTACH_MAX];
    uint32_t att_held[ATTACH_MAX], att_c[ATTACH_MAX];
    struct mba_up_state att_up[ATTACH_MAX];
    int r;

    if ((r = parse_opts_n("read", argc, argv, &o, usage_read, 1)) != 0)
        return r;
    if (o.arg == NULL)
        return fail_msg("read", "the message ID is required");
    if (!read_id_well_formed(o.arg)) {
        char why[256];
        snprintf(why, sizeof(why), "message id '%.40s%s': give 8 to 32 hex digits of the id as "
                                   "'valise inbox' lists it (or ID/SENDER)",
                 o.arg, strlen(o.arg) > 40 ? "..." : "");
        return fail_msg("read", why);
    }
    if (o.out != NULL && file_exists(o.out)) {
        char what[PATH_MAX + 128];
        snprintf(what, sizeof(what), "--out %s: the file exists; give a new file name", o.out);
        return fail_msg("read", what);
    }
    /* --out writes the exact bytes here; the desk's session shows text only */
    if (o.out == NULL && (r = read_via_desk(&o)) >= 0)
        return r;
    if ((r = open_mbox("read", &o, &m, 1)) != 0)
        return r;
    r = mbox_read(m, o.arg, (uint64_t)time(NULL), &msg);
    memcpy(self_id, mbox_identity(m)->device_id, DEVICE_ID_LEN);
    if (r == 0)
        attach_states(m, &msg, att_have, att_held, att_c);
    /* one this person sent: each attachment's upload, in outbox's words */
    for (size_t i = 0; r == 0 && msg.sent && i < msg.n_attach; i++)
        if (mba_upload_state(m, msg.attach[i].id, msg.attach[i].size, &att_up[i]) != 0)
            att_up[i].state = -1; /* unknown: shown as such */
    mbox_close(m);
    if (r != 0)
        return fail("read",
                    r == VERR_USAGE ? "ambiguous message id (give more digits, or "
                                      "ID/SENDER with the sender's device id)"
                                    : "no such message",
                    r);
    if (text_hex_encode(hex, sizeof(hex), msg.id, INNER_ID_LEN) != 0 ||
        text_hex_encode(sid, sizeof(sid), msg.sender_id, DEVICE_ID_LEN) != 0) {
        mbox_msg_clear(&msg);
        return fail("read", "message id", VERR_INTERNAL);
    }
    print_time(t, sizeof(t), msg.time);
    printf("Message:    %s\n", hex);
    printf("From:       %s, %s@%s (device %s)\n", SAFE(&sh, name, msg.sender_name),
           SAFE(&sh, role, msg.sender_role), SAFE(&sh, post, msg.sender_post), sid);
    printf("To:         %s\n", SAFE(&sh, address, msg.address));
    printf("Precedence: %s\n", inner_precedence_name(msg.precedence));
    printf("Label:      %s\n", SAFE(&sh, label, msg.label));
    printf("Time:       %s\n", t);
    if (msg.sent) {
        /* One this person sent (issue 12, item 10): from the outbox. */
        printf("Sent:       by you, %s\n", memcmp(self_id, msg.sender_id, DEVICE_ID_LEN) == 0
                                                 ? "from this device"
                                                 : "from your other device");
    } else {
        char rt[32];
        uint64_t age = msg.received > msg.time ? msg.received - msg.time : 0;

        print_time(rt, sizeof(rt), msg.received);
        printf("Received:   %s (%llu d %02llu h %02llu min after its time)\n", rt,
               (unsigned long long)(age / 86400), (unsigned long long)(age % 86400 / 3600),
               (unsigned long long)(age % 3600 / 60));
        if (mbox_msg_delayed(&msg))
            printf("WARNING:    it arrived later than the %s time to live (%llu days): it may "
                   "have been held back; confirm with the sender\n",
                   inner_precedence_name(msg.precedence),
                   (unsigned long long)(mbox_ttl(msg.precedence) / 86400));
    }
    printf("Subject:    %s\n", SAFE(&sh, subject, msg.subject));
    printf("Signature:  %s\n",
           msg.sig_ok ? "verified (Ed25519, sender's device key)" : "NOT VERIFIED");
    printf("Certificate: %s; in the newest directory: %s\n",
           msg.cert_ok ? "verified (serial chained to the organisation root)" : "NOT VERIFIED",
           msg.cert_status == 0 ? "valid" : verr_str(msg.cert_status));
    printf("\n");
    r = 0;
    if (o.out != NULL) {
        /* The exact bytes, whatever they are (issue 12, item 1). */
        if ((r = file_write_new(o.out, msg.content, msg.content_len, 0600)) != 0)
            r = fail("read", o.out, r);
        else
            printf("(the body, %zu bytes, is written unchanged to %s)\n", msg.content_len, o.out);
    } else if (!termsafe_is_text(msg.content, msg.content_len)) {
        /* Not text: never dumped on a terminal (issue 12, item 1). */
        printf("(the body is %zu bytes that are not text; to save them unchanged: valise read "
               "--home HOME --out FILE %s)\n",
               msg.content_len, o.arg);
    } else {
        /* Text from the sender: controls made visible (lib/termsafe.h). */
        if (termsafe_fwrite(stdout, msg.content, msg.content_len, TERMSAFE_MULTILINE) != 0)
            r = fail("read", "writing the message to standard output", VERR_IO);
        else if (msg.content_len > 0 && msg.content[msg.content_len - 1] != '\n')
            printf("\n");
    }
    attach_print_list(&msg, att_have, att_held, att_c, msg.sent ? att_up : NULL, o.arg);
    mbox_msg_clear(&msg);
    return r;
}

static int cmd_outbox(int argc, char **argv)
{
    struct opts o;
    struct mbox *m = NULL;
    struct mbox_out *list = NULL;
    size_t n = 0;
    int r;

    if ((r = parse_opts("outbox", argc, argv, &o, usage_outbox)) != 0)
        return r;
    if ((r = outbox_via_desk(&o)) >= 0)
        return r;
    if ((r = open_mbox("outbox", &o, &m, 1)) != 0)
        return r;
    r = mbox_outbox(m, &list, &n);
    mbox_close(m);
    if (r != 0)
        return fail("outbox", "reading the outbox", r);
    for (size_t i = 0; i < n; i++) {
        char hex[2 * INNER_ID_LEN + 1], t[40];
        if (text_hex_encode(hex, sizeof(hex), list[i].id, INNER_ID_LEN) != 0)
            continue;
        struct shown sh;
        print_time(t, sizeof(t), list[i].created);
        printf("%s %-9s %-14s %s to %s  %s\n", hex, inner_precedence_name(list[i].precedence),
               SAFE(&sh, label, list[i].label), t, SAFE(&sh, address, list[i].address),
               SAFE(&sh, subject, list[i].subject));
        if (!list[i].resolved && list[i].ndev == 0)
            printf("    (no device yet) waiting for directory\n");
        if (list[i].from_other) {
            char sh_[2 * DEVICE_ID_LEN + 1];
            if (text_hex_encode(sh_, sizeof(sh_), list[i].sender, DEVICE_ID_LEN) == 0)
                printf("    sent by you from your other device %s; read\n", sh_);
        }
        for (size_t j = 0; j < list[i].ndev; j++) {
            const struct mbox_out_dev *d = &list[i].dev[j];
            char dh[2 * DEVICE_ID_LEN + 1];
            if (text_hex_encode(dh, sizeof(dh), d->device, DEVICE_ID_LEN) != 0)
                continue;
            /* Named from its certificate, also once revoked (issue 12, items 9 and 10);
             * a device this store never had a certificate for goes by its id. */
            if (d->name[0] == '\0')
                printf("    %s (a device the directory no longer lists): %s", dh,
                       mbox_env_state_name(d->state));
            else
                printf("    %s %s (%s@%s): %s", dh, SAFE(&sh, name, d->name),
                       SAFE(&sh, role, d->role), SAFE(&sh, post, d->post),
                       mbox_env_state_name(d->state));
            if (d->reason != 0)
                printf(" (%s)", wire_reason_name(d->reason));
            if (d->revoked_at != 0) {
                char rt[40];
                print_time(rt, sizeof(rt), d->revoked_at);
                printf(" (device revoked by IT at %s)", rt);
            }
            printf("\n");
        }
        /* Each attachment's upload (a message from the other device: not uploaded here). */
        for (size_t j = 0; j < list[i].n_att; j++) {
            const struct mbox_out_att *a = &list[i].att[j];
            char name[TERMSAFE_LEN(ATTACH_NAME_MAX)], sz[32];
            human_size(sz, sizeof(sz), a->size);
            printf("    attachment %zu %s (%s): ", j + 1, termsafe_str(name, sizeof(name), a->name),
                   sz);
            print_upload_state(&a->up);
            printf("\n");
        }
    }
    if (n == 0)
        printf("outbox empty\n");
    mbox_outbox_free(list, n);
    return 0;
}

static int cmd_fingerprint(int argc, char **argv)
{
    struct opts o;
    struct mbox *m = NULL;
    struct mbox_contact *list = NULL;
    size_t n = 0;
    int r;

    if ((r = parse_opts("fingerprint", argc, argv, &o, usage_fingerprint)) != 0)
        return r;
    if (o.device == NULL)
        return fail_msg("fingerprint", "--device is required");
    if ((r = open_mbox("fingerprint", &o, &m, 1)) != 0)
        return r;
    r = mbox_fingerprint(m, o.device, (uint64_t)time(NULL), &list, &n);
    mbox_close(m);
    if (r != 0)
        return fail("fingerprint",
                    r == VERR_USAGE ? "--device must be a device id or an address"
                                    : "no such current device in the directory (sync first?)",
                    r);
    for (size_t i = 0; i < n; i++) {
        char dh[2 * DEVICE_ID_LEN + 1];
        if (text_hex_encode(dh, sizeof(dh), list[i].cert.device_id, DEVICE_ID_LEN) != 0)
            continue;
        struct shown sh;
        printf("%s, %s@%s (device %s)\n  safety number:", SAFE(&sh, name, list[i].cert.name),
               SAFE(&sh, role, list[i].cert.role), SAFE(&sh, post, list[i].cert.post), dh);
        for (size_t g = 0; g < MBOX_SAFETY_DIGITS / 5; g++)
            printf("%s%.5s", g == 6 ? "\n                 " : " ", list[i].safety + g * 5);
        printf("\n");
    }
    free(list);
    return 0;
}

/* ---- attachments (issue 13 item 2; mbox_attach.h) ---- */

/* Sizes for people: 950 bytes, 12.5 KiB, 3.2 MiB, 1.1 GiB. */
static void human_size(char *out, size_t outsz, uint64_t n)
{
    if (n < 1024)
        snprintf(out, outsz, "%llu bytes", (unsigned long long)n);
    else if (n < 1024 * 1024)
        snprintf(out, outsz, "%.1f KiB", (double)n / 1024);
    else if (n < 1024ull * 1024 * 1024)
        snprintf(out, outsz, "%.1f MiB", (double)n / (1024 * 1024));
    else
        snprintf(out, outsz, "%.1f GiB", (double)n / (1024.0 * 1024 * 1024));
}

/*
 * Progress on stderr when it is a terminal, for a transfer that takes more
 * than a moment (PROGRESS_AFTER_MS): bytes, rate and time left, redrawn at
 * most every PROGRESS_EVERY_MS.
 */
enum { PROGRESS_AFTER_MS = 1000, PROGRESS_EVERY_MS = 250 };
struct progress {
    const char *what;
    uint64_t t0, last, total, done;
    int shown, upload;
};
static struct progress att_prog;

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void progress_line(struct progress *p, uint64_t done, uint64_t total)
{
    uint64_t now = mono_ms(), el;
    char d[32], t[32], rate[32];

    /* a new transfer (another attachment or direction) starts its own clock */
    if (total != p->total || done < p->done) {
        if (p->shown)
            fputc('\n', stderr);
        p->t0 = now;
        p->shown = 0;
        p->total = total;
        p->last = 0;
    }
    p->done = done;
    el = now - p->t0;
    if (el < PROGRESS_AFTER_MS || (now - p->last < PROGRESS_EVERY_MS && done != total))
        return;
    p->last = now;
    human_size(d, sizeof(d), done);
    human_size(t, sizeof(t), total);
    human_size(rate, sizeof(rate), done * 1000 / (el ? el : 1));
    fprintf(stderr, "\r%s %s of %s, %s/s", p->what, d, t, rate);
    if (done > 0 && done < total) {
        uint64_t left = (total - done) * el / done / 1000;
        fprintf(stderr, ", %llu min %02llu s left", (unsigned long long)(left / 60),
                (unsigned long long)(left % 60));
    }
    fputs("   ", stderr);
    p->shown = 1;
    if (done == total) {
        fputc('\n', stderr);
        p->shown = 0;
    }
}

static void att_sync_progress(void *ctx, int upload, uint64_t done, uint64_t total)
{
    struct progress *p = ctx;

    if (upload != p->upload)
        p->total = 0; /* the other direction: a new line */
    p->upload = upload;
    p->what = upload ? "uploading attachment:" : "fetching attachment:";
    progress_line(p, done, total);
}

static void attach_progress_setup(struct mbox_sync_opts *so)
{
    memset(&att_prog, 0, sizeof(att_prog));
    if (!isatty(STDERR_FILENO))
        return;
    so->att_progress = att_sync_progress;
    so->att_progress_ctx = &att_prog;
}

static void attach_progress_end(void)
{
    if (att_prog.shown)
        fputc('\n', stderr);
    att_prog.shown = 0;
}

static void att_file_progress(void *ctx, uint64_t done, uint64_t total)
{
    progress_line(ctx, done, total);
}

/* One line on stderr naming the --attach file and what to do; exit status 2. */
static int attach_fail(const char *path, const char *why)
{
    char msg[PATH_MAX + 256];

    snprintf(msg, sizeof(msg), "--attach %s: %s; nothing was queued", path, why);
    return fail_msg("send", msg);
}

static int attach_precheck(const struct opts *o, uint64_t sizes[static ATTACH_MAX])
{
    for (size_t i = 0; i < o->n_attach; i++) {
        const char *p = o->attach[i], *base = strrchr(p, '/');
        struct stat st;
        int fd;

        base = base != NULL ? base + 1 : p;
        if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
            return attach_fail(p, errno == ENOENT ? "no such file"
                                  : errno == EACCES ? "cannot be read (permission denied)"
                                                    : "cannot be read");
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return attach_fail(p, "not a regular file");
        }
        close(fd);
        if (st.st_size == 0)
            return attach_fail(p, "the file is empty");
        if ((uint64_t)st.st_size > ATTACH_SIZE_MAX)
            return attach_fail(p, "larger than 1 TiB, the most one attachment can hold");
        if (!attach_valid_name(base))
            return attach_fail(p, "its name must be 1 to 255 bytes of text without control "
                                  "characters (rename it)");
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->attach[j], p) == 0)
                return attach_fail(p, "given twice");
        sizes[i] = (uint64_t)st.st_size;
    }
    return 0;
}

static void attach_confirm_lines(const struct opts *o, const uint64_t *sizes)
{
    FILE *tty;
    int fd;

    if (o->n_attach == 0 || (fd = open("/dev/tty", O_WRONLY | O_CLOEXEC)) < 0)
        return;
    if ((tty = fdopen(fd, "w")) == NULL) {
        close(fd);
        return;
    }
    for (size_t i = 0; i < o->n_attach; i++) {
        const char *base = strrchr(o->attach[i], '/');
        char sz[32], name[TERMSAFE_LEN(ATTACH_NAME_MAX)];
        human_size(sz, sizeof(sz), sizes[i]);
        fprintf(tty, "Attachment %zu: %s (%s, %llu bytes)\n", i + 1,
                termsafe_str(name, sizeof(name), base != NULL ? base + 1 : o->attach[i]), sz,
                (unsigned long long)sizes[i]);
    }
    fclose(tty);
}

static int attach_seal_all(struct mbox *m, const struct opts *o, struct attach_desc *descs,
                           struct buf *section)
{
    struct progress p;
    size_t done = 0;
    int r = 0;

    if (o->n_attach == 0)
        return 0;
    memset(&p, 0, sizeof(p));
    p.what = "encrypting attachment:";
    for (; done < o->n_attach; done++) {
        r = mba_seal(m, o->attach[done], &descs[done], isatty(STDERR_FILENO) ? att_file_progress : NULL,
                     &p);
        if (p.shown)
            fputc('\n', stderr);
        p.shown = 0;
        p.total = 0;
        if (r != 0)
            break;
    }
    if (r == 0 && (r = buf_init(section, ATTACH_SECTION_MAX, BUF_SECRET)) == 0 &&
        (r = attach_section_encode(descs, o->n_attach, section)) == 0)
        return 0;
    attach_discard_all(m, descs, done);
    for (size_t i = 0; i < done; i++)
        attach_desc_wipe(&descs[i]);
    buf_free(section);
    if (done < o->n_attach)
        return attach_fail(o->attach[done],
                           r == VERR_IO ? "it changed or could not be read while it was encrypted"
                           : r == VERR_NOSPACE ? "no space left in HOME for its encrypted copy"
                                               : verr_str(r));
    return fail("send", "attachments", r);
}

static void attach_discard_all(struct mbox *m, struct attach_desc *descs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mba_discard(m, &descs[i]);
}

static void attach_states(struct mbox *m, const struct mbox_msg *msg, int *have, uint32_t *held,
                          uint32_t *c)
{
    for (size_t i = 0; i < msg->n_attach; i++)
        if (mba_state(m, &msg->attach[i], msg->sender_id, &have[i], &held[i], &c[i]) != 0) {
            have[i] = 0; /* unknown: shown as such */
            held[i] = 0;
            c[i] = attach_chunk_count(msg->attach[i].size);
        }
}

/* An upload's state in words, for `outbox` and `read` of a sent message (no newline). */
static void print_upload_state(const struct mba_up_state *u)
{
    char done[32], total[32];

    switch (u->state) {
    case MBA_UP_NONE:
        printf("sent from your other device (not uploaded from this one)");
        break;
    case MBA_UP_WAITING:
        printf("waiting (nothing stored on the relay yet; the message goes first)");
        break;
    case MBA_UP_SENDING: {
        uint64_t b = u->stored == u->c ? u->ct_size : (uint64_t)u->stored * ATTACH_CHUNK_CT;
        human_size(done, sizeof(done), b);
        human_size(total, sizeof(total), u->ct_size);
        printf("uploading: %u of %u chunks (%s of %s, %u %%; valise sync goes on)", u->stored,
               u->c, done, total, (unsigned)(u->ct_size > 0 ? b * 100 / u->ct_size : 0));
        break;
    }
    case MBA_UP_DONE:
        printf(u->copy ? "uploaded"
                       : "uploaded (its encrypted copy on this device was deleted since)");
        break;
    case MBA_UP_REFUSED:
        printf("refused by the relay (%s): send the file again", wire_reason_name(u->reason));
        break;
    case MBA_UP_LOST:
        printf("lost: its encrypted copy in HOME/attach was deleted before the upload (send the "
               "file again)");
        break;
    default:
        printf("state unknown");
    }
}

static void attach_print_list(const struct mbox_msg *msg, const int *have, const uint32_t *held,
                              const uint32_t *c, const struct mba_up_state *up, const char *id)
{
    if (msg->n_attach == 0)
        return;
    printf("\nAttachments (save one with: valise save --home HOME --out FILE %s N):\n", id);
    for (size_t i = 0; i < msg->n_attach; i++) {
        const struct attach_desc *d = &msg->attach[i];
        char name[TERMSAFE_LEN(ATTACH_NAME_MAX)], type[TERMSAFE_LEN(ATTACH_TYPE_MAX)], sz[32];
        human_size(sz, sizeof(sz), d->size);
        printf("  %zu  %s  %s (%llu bytes)  %s  ", i + 1, termsafe_str(name, sizeof(name), d->name),
               sz, (unsigned long long)d->size, termsafe_str(type, sizeof(type), d->type));
        if (up != NULL) {
            /* one this person sent: its upload, as `outbox` says it */
            print_upload_state(&up[i]);
            printf("\n");
        } else if (have[i] == MBA_HAVE_COMPLETE)
            printf("complete\n");
        else if (have[i] == MBA_HAVE_GONE)
            printf("incomplete; no longer on the relay (expired), the partial copy deleted: ask "
                   "the sender again\n");
        else if (have[i] == MBA_HAVE_BAD)
            printf("incomplete; the relay's chunks do not match the key the sender signed "
                   "(damaged or substituted), the partial copy deleted: ask the sender to send "
                   "it again\n");
        else if (have[i] == MBA_HAVE_PART)
            printf("%u of %u chunks (valise sync fetches the rest)\n", held[i], c[i]);
        else
            printf("state unknown\n");
    }
}

static int attach_print_sync(const struct mbox_sync_stats *st)
{
    if (st->att_uploaded + st->att_downloaded + st->att_up_pending + st->att_down_waiting +
            st->att_refused + st->att_bad_chunks + st->att_lost + st->att_gone + st->att_swept ==
        0)
        return 0;
    printf("attachments: %zu uploaded, %zu fetched", st->att_uploaded, st->att_downloaded);
    if (st->att_down_waiting > 0)
        printf("; %zu still being uploaded by their sender (fetched by a later sync)",
               st->att_down_waiting);
    if (st->att_refused > 0)
        printf("; %zu refused by the relay (%s)", st->att_refused,
               wire_reason_name(st->att_refused_reason));
    if (st->att_lost > 0)
        printf("; %zu not sent: the encrypted copy in HOME/attach was deleted (send the file "
               "again)",
               st->att_lost);
    if (st->att_bad_chunks > 0)
        printf("; %zu chunks from the relay did not verify and were dropped",
               st->att_bad_chunks);
    if (st->att_gone > 0)
        printf("; %zu no longer on the relay (expired) before %s complete: the partial "
               "cop%s deleted (ask the sender again)",
               st->att_gone, st->att_gone == 1 ? "it was" : "they were",
               st->att_gone == 1 ? "y was" : "ies were");
    if (st->att_swept > 0)
        printf("; %zu leftover file%s of an interrupted run removed from HOME/attach",
               st->att_swept, st->att_swept == 1 ? "" : "s");
    printf("\n");
    if (st->att_bad_chunks > 0) {
        fputs("valise sync: the relay sent attachment chunks that do not match the key their "
              "sender signed (see valise read); the connection was ended; run valise sync again "
              "for the rest\n",
              stderr);
        return 1;
    }
    if (st->att_up_pending > 0) {
        fprintf(stderr, "valise sync: %zu attachment%s left to upload (the relay was busy or the "
                        "sync was stopped); run valise sync again\n",
                st->att_up_pending, st->att_up_pending == 1 ? "" : "s");
        return 1;
    }
    return 0;
}

static int cmd_save(int argc, char **argv)
{
    struct opts o;
    struct mbox *m = NULL;
    struct mbox_msg msg;
    struct progress p;
    uint64_t n;
    int r, have = 0;
    uint32_t held = 0, c = 0;

    if ((r = parse_opts_n("save", argc, argv, &o, usage_save, 2)) != 0)
        return r;
    if (o.arg == NULL || o.arg2 == NULL)
        return fail_msg("save", "the message ID and the attachment number N are required");
    if (o.out == NULL)
        return fail_msg("save", "--out FILE is required");
    if (!read_id_well_formed(o.arg)) {
        char why[256];
        snprintf(why, sizeof(why), "message id '%.40s%s': give 8 to 32 hex digits of the id as "
                                   "'valise inbox' lists it (or ID/SENDER)",
                 o.arg, strlen(o.arg) > 40 ? "..." : "");
        return fail_msg("save", why);
    }
    if (text_parse_u64(o.arg2, 1, ATTACH_MAX, &n) != 0)
        return fail_msg("save", "N must be an attachment number, 1 to 16, as 'valise read' "
                                "lists them");
    if (file_exists(o.out)) {
        char what[PATH_MAX + 128];
        snprintf(what, sizeof(what), "--out %s: the file exists; give a new file name", o.out);
        return fail_msg("save", what);
    }
    if ((r = open_mbox("save", &o, &m, 1)) != 0)
        return r;
    if ((r = mbox_read(m, o.arg, (uint64_t)time(NULL), &msg)) != 0) {
        mbox_close(m);
        return fail("save",
                    r == VERR_USAGE ? "ambiguous message id (give more digits, or "
                                      "ID/SENDER with the sender's device id)"
                                    : "no such message",
                    r);
    }
    if (n > msg.n_attach) {
        char why[128];
        snprintf(why, sizeof(why), "message %s has %zu attachment%s; N must be 1 to %zu", o.arg,
                 msg.n_attach, msg.n_attach == 1 ? "" : "s", msg.n_attach);
        r = fail_msg("save", msg.n_attach == 0 ? "the message has no attachments" : why);
        mbox_msg_clear(&msg);
        mbox_close(m);
        return r;
    }
    if (msg.sent && memcmp(msg.sender_id, mbox_identity(m)->device_id, DEVICE_ID_LEN) != 0) {
        char why[160];
        snprintf(why, sizeof(why), "attachment %llu was sent from your other device; only that "
                                   "device holds it; nothing was written", (unsigned long long)n);
        mbox_msg_clear(&msg);
        mbox_close(m);
        return fail_msg("save", why);
    }
    memset(&p, 0, sizeof(p));
    p.what = "checking and saving:";
    if ((r = mba_state(m, &msg.attach[n - 1], msg.sender_id, &have, &held, &c)) == 0 &&
        have != MBA_HAVE_COMPLETE)
        r = VERR_UNKNOWN;
    if (r == 0)
        r = mba_save(m, &msg.attach[n - 1], msg.sender_id, o.out, isatty(STDERR_FILENO) ? att_file_progress : NULL,
                     &p);
    if (p.shown)
        fputc('\n', stderr);
    mbox_close(m);
    if (r == 0) {
        char name[TERMSAFE_LEN(ATTACH_NAME_MAX)], sz[32];
        human_size(sz, sizeof(sz), msg.attach[n - 1].size);
        printf("saved %s (%s, SHA-256 verified) to %s\n",
               termsafe_str(name, sizeof(name), msg.attach[n - 1].name), sz, o.out);
    }
    mbox_msg_clear(&msg);
    if (r == 0)
        return 0;
    if (r == VERR_UNKNOWN && have == MBA_HAVE_MISSING) {
        char why[160];
        snprintf(why, sizeof(why), "attachment %llu: its encrypted copy in HOME/attach was "
                                   "deleted; nothing was written", (unsigned long long)n);
        return fail_msg("save", why);
    }
    if (r == VERR_UNKNOWN) {
        char why[160];
        snprintf(why, sizeof(why),
                 have == MBA_HAVE_GONE || have == MBA_HAVE_BAD
                     ? "attachment %llu is incomplete (%u of %u chunks) and cannot be fetched "
                       "(expired, or damaged on the relay); ask the sender to send it again; "
                       "nothing was written"
                     : "attachment %llu is incomplete (%u of %u chunks); run valise sync to "
                       "fetch the rest; nothing was written",
                 (unsigned long long)n, held, c);
        return fail_msg("save", why);
    }
    if (r == VERR_DECRYPT)
        return fail_msg("save", "the attachment does not match the hash its sender signed "
                                "(damaged or tampered with); nothing was written");
    if (r == VERR_EXISTS) {
        char what[PATH_MAX + 128];
        snprintf(what, sizeof(what), "--out %s: the file exists; give a new file name", o.out);
        return fail_msg("save", what);
    }
    return fail("save", o.out, r);
}

static void status_line(const char *what, uint64_t bytes, size_t files, const char *note)
{
    char sz[32];

    human_size(sz, sizeof(sz), bytes);
    printf("  %-9s %llu bytes (%s) in %zu file%s: %s\n", what, (unsigned long long)bytes, sz,
           files, files == 1 ? "" : "s", note);
}

static int cmd_status(int argc, char **argv)
{
    struct opts o;
    struct mba_usage u;
    struct stat sb;
    char sz[32], what[PATH_MAX + 64];
    uint64_t total;
    int r;

    if ((r = parse_opts("status", argc, argv, &o, usage_status)) != 0)
        return r;
    if (stat(o.home, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(what, sizeof(what), "--home %s: no such directory; give this device's home",
                 o.home);
        return fail_msg("status", what);
    }
    if ((r = mba_disk_use(o.home, &u)) != 0) {
        snprintf(what, sizeof(what), "%s/attach", o.home);
        return fail("status", what, r);
    }
    total = u.sent_bytes + u.received_bytes + u.partial_bytes;
    human_size(sz, sizeof(sz), total);
    printf("attachments in %s/attach: %llu bytes (%s)\n", o.home, (unsigned long long)total, sz);
    status_line("sent:", u.sent_bytes, u.sent_files,
                "sealed copies of attachments this device sent (valise save opens them)");
    status_line("received:", u.received_bytes, u.received_files,
                "attachments received complete (sealed; valise save writes them out)");
    status_line("partial:", u.partial_bytes, u.partial_files,
                "downloads and encryptions not finished (valise sync goes on)");
    return 0;
}

int main(int argc, char **argv)
{
    static const struct cli_verb verbs[] = {
        {"init", cmd_init}, {"enroll", cmd_enroll}, {"send", cmd_send},
        {"sync", cmd_sync}, {"run", cmd_run},       {"inbox", cmd_inbox},
        {"read", cmd_read}, {"outbox", cmd_outbox}, {"fingerprint", cmd_fingerprint},
        {"desk", cmd_desk}, {"save", cmd_save},     {"status", cmd_status},
    };

    /* Keys, passphrases and plaintext never reach a core file (harden.h). */
    if (harden_process() != 0) {
        fputs("valise: cannot disable core dumps (prctl/setrlimit failed)\n", stderr);
        return 1;
    }
    return cli_main("valise", usage_main, verbs, sizeof(verbs) / sizeof(verbs[0]), argc, argv);
}
