/*
 * valise - the diplomat's client. Command-line contract: DESIGN.md.
 * Each verb parses its options, does its work through the client modules,
 * and turns an error into one line on stderr and a non-zero exit.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "identity.h"
#include "pass.h"
#include "text.h"

struct opts {
    const char *home, *name, *out, *passfile;
};

static const char usage_main[] =
    "usage: valise VERB [options]\n"
    "\n"
    "Valise, the ministry's secure messaging client.\n"
    "\n"
    "verbs:\n"
    "  init       create this device's keys and an enrolment request for IT\n"
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

static int parse_opts(const char *verb, int argc, char **argv, struct opts *o, const char *usage)
{
    static const struct option longopts[] = {
        {"home", required_argument, NULL, 'H'},
        {"name", required_argument, NULL, 'n'},
        {"out", required_argument, NULL, 'o'},
        {"passphrase-file", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'H': o->home = optarg; break;
        case 'n': o->name = optarg; break;
        case 'o': o->out = optarg; break;
        case 'P': o->passfile = optarg; break;
        case 'h': fputs(usage, stdout); exit(0);
        default: {
            char msg[256];
            snprintf(msg, sizeof(msg), "unknown or incomplete option '%s' (see --help)",
                     argv[optind - 1]);
            return fail_msg(verb, msg);
        }
        }
    }
    if (optind != argc)
        return fail_msg(verb, "unexpected argument (see --help)");
    if (o->home == NULL)
        return fail_msg(verb, "--home is required");
    return 0;
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
        return fail_msg("init", "--name must be 1 to 64 printable characters");
    if ((r = pass_read(o.passfile, "New device passphrase: ", 1, &pass)) != 0)
        return fail("init", "passphrase (at least 8 characters)", r);
    r = identity_create(o.home, o.name, pass, o.out, device_id);
    pass_free(pass);
    if (r != 0)
        return fail("init", r == VERR_EXISTS ? "a device already exists here, or the request "
                                               "file exists"
                                             : o.home,
                    r);
    if (text_hex_encode(hex, sizeof(hex), device_id, DEVICE_ID_LEN) != 0)
        return fail("init", "device id", VERR_INTERNAL);
    printf("device %s created for %s in %s\nenrolment request written to %s: give it to IT "
           "staff\n",
           hex, o.name, o.home, o.out);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } verbs[] = {
        {"init", cmd_init},
    };

    if (sodium_init() < 0) {
        fputs("valise: libsodium failed to initialise\n", stderr);
        return 1;
    }
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(argv[1], verbs[i].name) == 0)
            return verbs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "valise: unknown verb '%s' (see valise --help)\n", argv[1]);
    return 2;
}
