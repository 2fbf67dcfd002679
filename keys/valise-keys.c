/*
 * valise-keys - IT staff's tool: the organisation root of trust, device
 * enrolment and revocation, and the signed directory.
 * Command-line contract: DESIGN.md; formats: PROTOCOL.md.
 *
 * The org directory holds org.key (the root's keystore, 0600), org.pub (for
 * distribution) and registry (what was issued). Every verb either completes
 * or changes nothing.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "cert.h"
#include "cli.h"
#include "dir.h"
#include "fileio.h"
#include "harden.h"
#include "keystore.h"
#include "pass.h"
#include "registry.h"
#include "relaycert.h"
#include "text.h"

enum {
    MAX_VALID_DAYS = 3650,
    DEFAULT_VALID_DAYS = 365,
    /* A directory's validity period (PROTOCOL.md part 1 "Directory"): short, re-signed often. */
    MAX_DIR_VALID_DAYS = 90,
    DEFAULT_DIR_VALID_DAYS = 7,
    PATH_LEN = 4096,
    /* The root key guards the whole organisation: a longer passphrase than a
     * device's (pass.h PASS_MIN_NEW), or a generated one. */
    ROOT_PASS_MIN = 16,
    /* --generate-passphrase: 24 base32 characters = 120 bits from randombytes,
     * shown in 6 groups of 4. */
    GEN_PASS_CHARS = 24,
    GEN_PASS_GROUP = 4,
    GEN_PASS_LEN = GEN_PASS_CHARS + GEN_PASS_CHARS / GEN_PASS_GROUP - 1,
};
_Static_assert(GEN_PASS_LEN >= ROOT_PASS_MIN, "a generated passphrase meets the root rule");

struct opts {
    const char *dir, *org, *request, *post, *role, *out, *device, *reason, *passfile;
    const char *relay_id, *pubkey;
    uint64_t valid_days, same_person;
    int generate_pass;
};

static const char usage_main[] =
    "usage: valise-keys VERB [options]\n"
    "\n"
    "IT staff's tool for the organisation's root of trust.\n"
    "\n"
    "verbs:\n"
    "  init       create the organisation root key (org.key) and org.pub\n"
    "  enroll     issue a device certificate from an enrolment request\n"
    "  revoke     revoke a device\n"
    "  list       list issued certificates and their status\n"
    "  directory  write the signed directory (certificates and revocations)\n"
    "  relay-cert certify the relay's handshake key for its relay id\n"
    "\n"
    "Run 'valise-keys VERB --help' for a verb's options. Passphrases are read\n"
    "from the terminal without echo, or from --passphrase-file FILE.\n";

static const char usage_init[] =
    "usage: valise-keys init --dir DIR --org NAME [--passphrase-file FILE | --generate-passphrase]\n"
    "\n"
    "Creates DIR (mode 0700) with the organisation's root Ed25519 key in org.key,\n"
    "encrypted under a passphrase (Argon2id 64 MiB, t=3; XChaCha20-Poly1305),\n"
    "org.pub to give to every device and relay, and an empty registry.\n"
    "The passphrase must be at least 16 characters; --generate-passphrase makes\n"
    "a random one (24 base32 characters, 120 bits), prints it once and uses it.\n"
    "Prints the org id to read to every post over a separate channel.\n"
    "Refuses to touch a DIR that already holds an organisation.\n";

static const char usage_enroll[] =
    "usage: valise-keys enroll --dir DIR --request FILE --post POST --role ROLE\n"
    "                          [--same-person-as SERIAL] [--valid-days N] --out CERT\n"
    "                          [--passphrase-file FILE]\n"
    "\n"
    "Checks the device's self-signed enrolment request (made by 'valise init')\n"
    "and issues a certificate binding its keys to POST (e.g. HQ, JKT: A-Z 0-9 -)\n"
    "and ROLE (e.g. ambassador, duty, auditor: a-z 0-9 -; both start and end\n"
    "with a letter or digit, no '--'), valid for N days (default 365, at most\n"
    "3650). Writes CERT (never overwrites) and records it.\n"
    "The device gets a new person id, unless --same-person-as SERIAL says it\n"
    "belongs to the person of that active certificate (same name required).\n"
    "Refuses a name another person's active certificate holds (ignoring case),\n"
    "and keys already certified for another device.\n";

static const char usage_revoke[] =
    "usage: valise-keys revoke --dir DIR --device ID [--reason TEXT] [--passphrase-file FILE]\n"
    "\n"
    "Marks the device ID (32 hex digits, as 'list' shows) revoked. Run\n"
    "'valise-keys directory' afterwards to publish the revocation.\n";

static const char usage_list[] =
    "usage: valise-keys list --dir DIR\n"
    "\n"
    "Lists every certificate issued: serial, device id, person id (first 8 hex\n"
    "digits: one person's devices share it), name, post, role, validity and\n"
    "status (active, expired, revoked).\n";

static const char usage_directory[] =
    "usage: valise-keys directory --dir DIR --out FILE [--valid-days N] [--passphrase-file FILE]\n"
    "\n"
    "Writes the signed directory: every active certificate and every revoked\n"
    "serial, with a version one above the last one issued (versions only grow),\n"
    "valid for N days from now (default 7, 1 to 90). Devices stop sending to and\n"
    "accepting from any device once their newest directory has expired: re-sign\n"
    "and publish a new one well before then (e.g. daily from cron).\n";

static const char usage_relay_cert[] =
    "usage: valise-keys relay-cert --dir DIR --relay-id ID --pubkey FILE [--valid-days N]\n"
    "                              --out FILE [--passphrase-file FILE]\n"
    "\n"
    "Signs a relay certificate: the relay's handshake public key in FILE (made by\n"
    "'valise-relay --init-handshake-key') for relay id ID (1..64 of a-z A-Z 0-9 . _ -,\n"
    "the relay's --relay-id), valid N days (default 365, at most 3650). Devices\n"
    "authenticate only to a relay that proves it holds this key. Never overwrites.\n";

static int fail(const char *verb, const char *what, int err)
{
    fprintf(stderr, "valise-keys %s: %s: %s\n", verb, what, verr_str(err));
    return 1;
}

static int fail_msg(const char *verb, const char *msg)
{
    fprintf(stderr, "valise-keys %s: %s\n", verb, msg);
    return 2;
}

static int parse_opts(const char *verb, int argc, char **argv, struct opts *o, const char *usage)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"org", required_argument, NULL, 'o'},
        {"request", required_argument, NULL, 'q'},
        {"post", required_argument, NULL, 'p'},
        {"role", required_argument, NULL, 'r'},
        {"valid-days", required_argument, NULL, 'v'},
        {"out", required_argument, NULL, 'w'},
        {"device", required_argument, NULL, 'i'},
        {"reason", required_argument, NULL, 'R'},
        {"passphrase-file", required_argument, NULL, 'P'},
        {"same-person-as", required_argument, NULL, 'S'},
        {"generate-passphrase", no_argument, NULL, 'G'},
        {"relay-id", required_argument, NULL, 'I'},
        {"pubkey", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int dir = strcmp(verb, "directory") == 0;
    uint64_t max_days = dir ? MAX_DIR_VALID_DAYS : MAX_VALID_DAYS;
    int c;

    memset(o, 0, sizeof(*o));
    o->valid_days = dir ? DEFAULT_DIR_VALID_DAYS : DEFAULT_VALID_DAYS;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': o->dir = optarg; break;
        case 'o': o->org = optarg; break;
        case 'q': o->request = optarg; break;
        case 'p': o->post = optarg; break;
        case 'r': o->role = optarg; break;
        case 'w': o->out = optarg; break;
        case 'i': o->device = optarg; break;
        case 'R': o->reason = optarg; break;
        case 'P': o->passfile = optarg; break;
        case 'G': o->generate_pass = 1; break;
        case 'S':
            if (text_parse_u64(optarg, 1, UINT64_MAX, &o->same_person) != 0)
                return fail_msg(verb, "--same-person-as must be a certificate serial (a whole "
                                      "number from 1, as 'valise-keys list' shows)");
            break;
        case 'I': o->relay_id = optarg; break;
        case 'K': o->pubkey = optarg; break;
        case 'v':
            if (text_parse_u64(optarg, 1, max_days, &o->valid_days) != 0) {
                char msg[128];
                snprintf(msg, sizeof(msg), "--valid-days '%.32s' must be a whole number from 1 to %llu",
                         optarg, (unsigned long long)max_days);
                return fail_msg(verb, msg);
            }
            break;
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
    if (o->same_person != 0 && strcmp(verb, "enroll") != 0)
        return fail_msg(verb, "--same-person-as is for 'valise-keys enroll' only");
    if (o->generate_pass && strcmp(verb, "init") != 0)
        return fail_msg(verb, "--generate-passphrase is for 'valise-keys init' only");
    if (o->dir == NULL)
        return fail_msg(verb, "--dir is required");
    return 0;
}

static int org_path(char out[static PATH_LEN], const char *dir, const char *name)
{
    return file_join(out, PATH_LEN, dir, name);
}

/* Loads org.pub and the registry of dir. */
static int load_org(const char *verb, const char *dir, struct orgpub *org, struct registry *g)
{
    char path[PATH_LEN];
    int r;

    if ((r = org_path(path, dir, "org.pub")) != 0 || (r = orgpub_load(path, org)) != 0)
        return fail(verb, r == VERR_UNKNOWN ? "no organisation here (org.pub missing)" : "org.pub",
                    r);
    if ((r = org_path(path, dir, "registry")) != 0 || (r = registry_load(path, org, g)) != 0)
        return fail(verb, "registry", r);
    return 0;
}

/* Unlocks the root key: a BUF_SECRET buffer of the Ed25519 secret key (64 bytes). */
static int unlock_root(const char *verb, const struct opts *o, const struct orgpub *org,
                       struct buf *sk)
{
    char path[PATH_LEN], *pass = NULL;
    struct buf seed;
    uint8_t pk[SIG_PK_LEN], *dst;
    int r;

    if ((r = org_path(path, o->dir, "org.key")) != 0)
        return fail(verb, "org.key", r);
    if ((r = pass_read(o->passfile, "Organisation passphrase: ", 0, &pass)) != 0)
        return fail(verb, "passphrase", r);
    r = ks_open_file(path, KS_KIND_ORG, pass, &seed);
    pass_free(pass);
    if (r != 0)
        return fail(verb, "org.key", r);
    if (buf_size(&seed) != SIG_SEED_LEN || buf_init(sk, SIG_SK_LEN, BUF_SECRET) != 0 ||
        buf_reserve(sk, SIG_SK_LEN, &dst) != 0) {
        buf_free(&seed);
        return fail(verb, "org.key", VERR_BAD_FORMAT);
    }
    crypto_sign_seed_keypair(pk, dst, buf_data(&seed));
    buf_free(&seed);
    if (sodium_memcmp(pk, org->pk, SIG_PK_LEN) != 0) {
        buf_free(sk);
        return fail(verb, "org.key does not match org.pub", VERR_WRONG_ORG);
    }
    return 0;
}

/* A random root passphrase: GEN_PASS_CHARS base32 characters (RFC 4648
 * section 6 alphabet, lower case) in groups of 4, in sodium_malloc memory. */
static int generate_passphrase(char **out)
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    uint8_t rnd[GEN_PASS_CHARS];
    char *p;
    size_t o = 0;

    _Static_assert(sizeof(b32) - 1 == 32, "base32 alphabet");
    *out = NULL;
    if ((p = sodium_malloc(PASS_MAX + 1)) == NULL)
        return VERR_NOMEM;
    randombytes_buf(rnd, sizeof(rnd));
    for (size_t i = 0; i < GEN_PASS_CHARS; i++) {
        if (i > 0 && i % GEN_PASS_GROUP == 0)
            p[o++] = '-';
        p[o++] = b32[rnd[i] & 31]; /* 256 is a multiple of 32: uniform */
    }
    p[o] = '\0';
    sodium_memzero(rnd, sizeof(rnd));
    *out = p;
    return 0;
}

static int cmd_init(int argc, char **argv)
{
    struct opts o;
    struct orgpub org;
    struct registry g;
    struct buf pub;
    char kpath[PATH_LEN], ppath[PATH_LEN], rpath[PATH_LEN], *pass = NULL;
    uint8_t seed[SIG_SEED_LEN], sk[SIG_SK_LEN];
    int r, created_key = 0, created_pub = 0, ret = 1;

    if ((r = parse_opts("init", argc, argv, &o, usage_init)) != 0)
        return r;
    if (o.org == NULL)
        return fail_msg("init", "--org is required");
    if (!cert_valid_name(o.org, ORG_NAME_MAX))
        return fail_msg("init", "--org must be 1 to 64 bytes of UTF-8 text without control "
                                "or bidirectional characters");
    if (o.generate_pass && o.passfile != NULL)
        return fail_msg("init", "give either --generate-passphrase or --passphrase-file, not both");
    if (org_path(kpath, o.dir, "org.key") != 0 || org_path(ppath, o.dir, "org.pub") != 0 ||
        org_path(rpath, o.dir, "registry") != 0)
        return fail("init", o.dir, VERR_TOO_LARGE);
    if (file_exists(kpath) || file_exists(ppath) || file_exists(rpath))
        return fail_msg("init", "an organisation already exists in this directory; refusing to "
                                "overwrite it");
    /* The passphrase first: a refused one leaves nothing behind, not even DIR. */
    if (o.generate_pass) {
        if ((r = generate_passphrase(&pass)) != 0)
            return fail("init", "passphrase", r);
    } else if ((r = pass_read(o.passfile, "New organisation passphrase: ", 1, &pass)) != 0) {
        return fail_msg("init", "the organisation passphrase must be at least 16 characters "
                                "(typed twice alike), or use --generate-passphrase");
    }
    if (strlen(pass) < ROOT_PASS_MIN) {
        pass_free(pass);
        return fail_msg("init", "the organisation passphrase must be at least 16 characters; "
                                "choose a longer one or use --generate-passphrase");
    }
    if ((r = file_mkdir_private(o.dir)) != 0) {
        pass_free(pass);
        return fail("init", o.dir, r);
    }

    memset(&org, 0, sizeof(org));
    memcpy(org.name, o.org, strlen(o.org) + 1);
    randombytes_buf(seed, sizeof(seed));
    crypto_sign_seed_keypair(org.pk, sk, seed);
    orgpub_id(org.id, org.pk);

    if ((r = ks_create_file(kpath, KS_KIND_ORG, pass, seed, sizeof(seed))) != 0) {
        fail("init", "org.key", r);
        goto out;
    }
    created_key = 1;
    if ((r = orgpub_encode(&org, &pub)) != 0) {
        fail("init", "org.pub", r);
        goto out;
    }
    r = file_write_new(ppath, buf_data(&pub), buf_size(&pub), 0644);
    buf_free(&pub);
    if (r != 0) {
        fail("init", "org.pub", r);
        goto out;
    }
    created_pub = 1;
    registry_init(&g, &org);
    if ((r = registry_save(rpath, &g, sk)) != 0) {
        fail("init", "registry", r);
        goto out;
    }
    {
        char id[ORG_ID_TEXT_LEN];

        orgpub_id_text(id, org.id);
        printf("organisation '%s' created in %s\norg id %s\n"
               "read the org id to each post over a separate channel; distribute %s to devices "
               "and relays\n",
               org.name, o.dir, id, ppath);
        if (o.generate_pass)
            printf("organisation passphrase (shown once; write it down, keep it off this "
                   "machine): %s\n",
                   pass);
    }
    ret = 0;
out:
    if (ret != 0) {
        /* Leave nothing half-made behind. */
        if (created_pub)
            (void)remove(ppath);
        if (created_key)
            (void)remove(kpath);
    }
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(sk, sizeof(sk));
    pass_free(pass);
    return ret;
}

/* One line saying why registry_admit refused the request and what IT can do. */
static void refuse_admission(const struct enrol_request *q, const struct opts *o,
                             enum reg_refusal why, const struct reg_entry *e)
{
    unsigned long long serial = e != NULL ? (unsigned long long)e->cert.serial : 0;
    const char *role = e != NULL ? e->cert.role : "", *post = e != NULL ? e->cert.post : "";

    switch (why) {
    case REG_SAME_DEVICE:
        fprintf(stderr, "valise-keys enroll: this device is already enrolled (serial %llu, %s@%s): "
                        "%s\n", serial, role, post, verr_str(VERR_EXISTS));
        break;
    case REG_SIGN_KEY_USED:
        fprintf(stderr, "valise-keys enroll: %s: the request's Ed25519 key is already certified "
                        "for another device (serial %llu, %s@%s); have the device run "
                        "'valise init' afresh\n", o->request, serial, role, post);
        break;
    case REG_DH_KEY_USED:
        fprintf(stderr, "valise-keys enroll: %s: the request's X25519 key is already certified "
                        "for another device (serial %llu, %s@%s); have the device run "
                        "'valise init' afresh\n", o->request, serial, role, post);
        break;
    case REG_NAME_HELD:
        fprintf(stderr, "valise-keys enroll: the name '%s' is already held by another person "
                        "(serial %llu, %s@%s); if this device is theirs add --same-person-as "
                        "%llu, otherwise the request needs a name that tells them apart\n",
                q->name, serial, role, post, serial);
        break;
    case REG_PERSON_UNKNOWN:
        fprintf(stderr, "valise-keys enroll: --same-person-as %llu: no certificate with this "
                        "serial (see 'valise-keys list')\n", (unsigned long long)o->same_person);
        break;
    case REG_PERSON_INACTIVE:
        fprintf(stderr, "valise-keys enroll: --same-person-as %llu: that certificate is revoked or "
                        "expired; name an active certificate of the person\n", serial);
        break;
    case REG_PERSON_NAME:
        fprintf(stderr, "valise-keys enroll: --same-person-as %llu: that person is named '%s' but "
                        "the request says '%s'; one person has one name\n", serial,
                e != NULL ? e->cert.name : "", q->name);
        break;
    default:
        fprintf(stderr, "valise-keys enroll: request refused: %s\n", verr_str(VERR_INTERNAL));
        break;
    }
}

static int cmd_enroll(int argc, char **argv)
{
    struct opts o;
    struct orgpub org;
    struct registry g;
    struct enrol_request q;
    struct cert c;
    struct buf req, sk, out;
    char rpath[PATH_LEN], hex[2 * DEVICE_ID_LEN + 1], phex[2 * PERSON_ID_LEN + 1];
    uint64_t now = (uint64_t)time(NULL);
    enum reg_refusal why;
    const struct reg_entry *conflict;
    int r, ret = 1;

    if ((r = parse_opts("enroll", argc, argv, &o, usage_enroll)) != 0)
        return r;
    if (o.request == NULL || o.post == NULL || o.role == NULL || o.out == NULL)
        return fail_msg("enroll", "--request, --post, --role and --out are required");
    if (!cert_valid_post(o.post))
        return fail_msg("enroll", "--post must be 1 to 16 of A-Z, 0-9 and -, starting and ending "
                                  "with a letter or digit, without '--'");
    if (!cert_valid_role(o.role))
        return fail_msg("enroll", "--role must be 1 to 32 of a-z, 0-9 and -, starting and ending "
                                  "with a letter or digit, without '--'");
    if (file_exists(o.out))
        return fail("enroll", o.out, VERR_EXISTS);
    if ((r = file_read(o.request, REQUEST_MAX_LEN, 0, &req)) != 0)
        return fail("enroll", o.request, r == VERR_TOO_LARGE ? VERR_TRAILING : r);
    r = request_parse(buf_data(&req), buf_size(&req), &q);
    buf_free(&req);
    if (r != 0)
        return fail("enroll", "enrolment request rejected", r);
    if (load_org("enroll", o.dir, &org, &g) != 0)
        return 1;
    memset(&c, 0, sizeof(c));
    if (registry_admit(&g, &q, o.same_person, now, c.person_id, &why, &conflict) != 0) {
        refuse_admission(&q, &o, why, conflict);
        registry_free(&g);
        return 1;
    }
    if (unlock_root("enroll", &o, &org, &sk) != 0) {
        registry_free(&g);
        return 1;
    }
    c.serial = g.next_serial;
    memcpy(c.org_id, org.id, ORG_ID_LEN);
    memcpy(c.device_id, q.device_id, DEVICE_ID_LEN);
    memcpy(c.name, q.name, sizeof(c.name));
    memcpy(c.post, o.post, strlen(o.post) + 1);
    memcpy(c.role, o.role, strlen(o.role) + 1);
    memcpy(c.sign_pk, q.sign_pk, SIG_PK_LEN);
    memcpy(c.dh_pk, q.dh_pk, DH_PK_LEN);
    c.not_before = now;
    c.not_after = now + o.valid_days * 86400;
    if ((r = cert_sign(&c, buf_data(&sk), &out)) != 0) {
        fail("enroll", "signing", r);
        goto out_reg;
    }
    if ((r = file_write_new(o.out, buf_data(&out), buf_size(&out), 0644)) != 0) {
        fail("enroll", o.out, r);
        goto out_cert;
    }
    g.next_serial++;
    if ((r = registry_add(&g, &c)) != 0 || (r = org_path(rpath, o.dir, "registry")) != 0 ||
        (r = registry_save(rpath, &g, buf_data(&sk))) != 0) {
        (void)remove(o.out); /* not recorded, so not issued */
        fail("enroll", "registry", r);
        goto out_cert;
    }
    if (text_hex_encode(hex, sizeof(hex), c.device_id, DEVICE_ID_LEN) != 0 ||
        text_hex_encode(phex, sizeof(phex), c.person_id, PERSON_ID_LEN) != 0)
        goto out_cert;
    printf("enrolled %s as %s@%s: serial %llu, device %s, person %s (%s), valid %llu days\n",
           c.name, c.role, c.post, (unsigned long long)c.serial, hex, phex,
           o.same_person != 0 ? "same person" : "new person", (unsigned long long)o.valid_days);
    ret = 0;
out_cert:
    buf_free(&out);
out_reg:
    buf_free(&sk);
    registry_free(&g);
    return ret;
}

static int cmd_revoke(int argc, char **argv)
{
    struct opts o;
    struct orgpub org;
    struct registry g;
    struct reg_entry *e;
    struct buf sk;
    uint8_t id[DEVICE_ID_LEN];
    char rpath[PATH_LEN];
    int r, ret = 1, have_sk = 0;

    if ((r = parse_opts("revoke", argc, argv, &o, usage_revoke)) != 0)
        return r;
    if (o.device == NULL)
        return fail_msg("revoke", "--device is required");
    if (text_hex_decode(id, sizeof(id), o.device) != 0)
        return fail_msg("revoke", "--device must be a device id of 32 hex digits");
    if (o.reason != NULL && !cert_valid_name(o.reason, REG_REASON_MAX))
        return fail_msg("revoke", "--reason must be 1 to 128 printable characters");
    if (load_org("revoke", o.dir, &org, &g) != 0)
        return 1;
    if ((e = registry_find(&g, id)) == NULL) {
        fail("revoke", "no device with this id was enrolled", VERR_UNKNOWN);
        goto out;
    }
    if (e->status == REG_REVOKED) {
        fail("revoke", "this device is already revoked", VERR_EXISTS);
        goto out;
    }
    /* Only the holder of the root passphrase may revoke. */
    if (unlock_root("revoke", &o, &org, &sk) != 0)
        goto out;
    have_sk = 1;
    e->status = REG_REVOKED;
    e->revoked_at = (uint64_t)time(NULL);
    if (o.reason != NULL)
        memcpy(e->reason, o.reason, strlen(o.reason) + 1);
    if ((r = org_path(rpath, o.dir, "registry")) != 0 ||
        (r = registry_save(rpath, &g, buf_data(&sk))) != 0) {
        fail("revoke", "registry", r);
        goto out;
    }
    printf("revoked device %s (serial %llu, %s@%s); publish with 'valise-keys directory'\n",
           o.device, (unsigned long long)e->cert.serial, e->cert.role, e->cert.post);
    ret = 0;
out:
    if (have_sk)
        buf_free(&sk);
    registry_free(&g);
    return ret;
}

static void format_date(char out[static 11], uint64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 11, "%Y-%m-%d", &tm) == 0)
        memcpy(out, "?", 2);
}

static int cmd_list(int argc, char **argv)
{
    struct opts o;
    struct orgpub org;
    struct registry g;
    uint64_t now = (uint64_t)time(NULL);
    int r;

    if ((r = parse_opts("list", argc, argv, &o, usage_list)) != 0)
        return r;
    if (load_org("list", o.dir, &org, &g) != 0)
        return 1;
    printf("%-6s  %-32s  %-8s  %-20s  %-8s  %-14s  %-10s  %-10s  %s\n", "SERIAL", "DEVICE",
           "PERSON", "NAME", "POST", "ROLE", "FROM", "UNTIL", "STATUS");
    for (size_t i = 0; i < g.n; i++) {
        const struct reg_entry *e = &g.entries[i];
        char hex[2 * DEVICE_ID_LEN + 1], person[2 * PERSON_ID_LEN + 1], from[11], until[11];
        const char *status = e->status == REG_REVOKED ? "revoked"
                             : now >= e->cert.not_after ? "expired"
                                                         : "active";

        if (text_hex_encode(hex, sizeof(hex), e->cert.device_id, DEVICE_ID_LEN) != 0 ||
            text_hex_encode(person, sizeof(person), e->cert.person_id, PERSON_ID_LEN) != 0)
            break;
        person[8] = '\0'; /* short form: enough to tell IT's people apart */
        format_date(from, e->cert.not_before);
        format_date(until, e->cert.not_after);
        printf("%-6llu  %s  %-8s  %-20s  %-8s  %-14s  %-10s  %-10s  %s%s%s\n",
               (unsigned long long)e->cert.serial, hex, person, e->cert.name, e->cert.post,
               e->cert.role, from, until, status, e->reason[0] ? ": " : "", e->reason);
    }
    printf("%zu certificate(s); last directory version %llu\n", g.n,
           (unsigned long long)g.dir_version);
    registry_free(&g);
    return 0;
}

static int cmd_directory(int argc, char **argv)
{
    struct opts o;
    struct orgpub org;
    struct registry g;
    struct cert *certs = NULL;
    struct dir_revocation *revs = NULL;
    struct buf sk, out;
    char rpath[PATH_LEN], exp_text[32];
    uint64_t issued, expires;
    size_t nc = 0, nr = 0;
    int r, ret = 1, have_out = 0, have_sk = 0;

    if ((r = parse_opts("directory", argc, argv, &o, usage_directory)) != 0)
        return r;
    if (o.out == NULL)
        return fail_msg("directory", "--out is required");
    if (load_org("directory", o.dir, &org, &g) != 0)
        return 1;
    if ((g.n > 0 && ((certs = calloc(g.n, sizeof(*certs))) == NULL ||
                     (revs = calloc(g.n, sizeof(*revs))) == NULL))) {
        fail("directory", "memory", VERR_NOMEM);
        goto out;
    }
    /* Registry entries are in serial order, which the directory requires. */
    for (size_t i = 0; i < g.n; i++) {
        const struct reg_entry *e = &g.entries[i];

        if (e->status == REG_REVOKED) {
            revs[nr].serial = e->cert.serial;
            memcpy(revs[nr].device_id, e->cert.device_id, DEVICE_ID_LEN);
            revs[nr].revoked_at = e->revoked_at;
            nr++;
        } else {
            certs[nc++] = e->cert;
        }
    }
    if (unlock_root("directory", &o, &org, &sk) != 0)
        goto out;
    have_sk = 1;
    g.dir_version++;
    issued = (uint64_t)time(NULL);
    expires = issued + o.valid_days * 86400;
    r = dir_encode_sign(g.dir_version, issued, expires, &org, certs, nc, revs, nr,
                        buf_data(&sk), &out);
    if (r != 0) {
        fail("directory", "signing", r);
        goto out;
    }
    have_out = 1;
    /* Record the version first: a version number is never issued twice. */
    if ((r = org_path(rpath, o.dir, "registry")) != 0 ||
        (r = registry_save(rpath, &g, buf_data(&sk))) != 0) {
        fail("directory", "registry", r);
        goto out;
    }
    if ((r = file_replace(o.out, buf_data(&out), buf_size(&out), 0644)) != 0) {
        fail("directory", o.out, r);
        goto out;
    }
    {
        time_t tt = (time_t)expires;
        struct tm tm;
        if (gmtime_r(&tt, &tm) == NULL ||
            strftime(exp_text, sizeof(exp_text), "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
            snprintf(exp_text, sizeof(exp_text), "%llu", (unsigned long long)expires);
    }
    printf("directory version %llu written to %s: %zu certificate(s), %zu revoked; "
           "expires %s: publish a new one before then\n",
           (unsigned long long)g.dir_version, o.out, nc, nr, exp_text);
    ret = 0;
out:
    if (have_sk)
        buf_free(&sk);
    if (have_out)
        buf_free(&out);
    free(certs);
    free(revs);
    registry_free(&g);
    return ret;
}

/* PROTOCOL.md part 1 "Relay certificate": the root vouches for the relay's handshake key. */
static int cmd_relay_cert(int argc, char **argv)
{
    struct opts o;
    struct orgpub org;
    struct registry g;
    struct relaycert rc;
    struct buf pub, sk, out;
    uint64_t now = (uint64_t)time(NULL);
    int r, ret = 1;

    if ((r = parse_opts("relay-cert", argc, argv, &o, usage_relay_cert)) != 0)
        return r;
    if (o.relay_id == NULL || o.pubkey == NULL || o.out == NULL)
        return fail_msg("relay-cert", "--relay-id, --pubkey and --out are required");
    if (!relaycert_valid_id(o.relay_id))
        return fail_msg("relay-cert", "--relay-id must be 1 to 64 of a-z, A-Z, 0-9, '.', '_' and '-'");
    if (file_exists(o.out))
        return fail("relay-cert", o.out, VERR_EXISTS);
    memset(&rc, 0, sizeof(rc));
    if ((r = file_read(o.pubkey, RELAYPUB_FILE_LEN, 0, &pub)) != 0)
        return fail("relay-cert", o.pubkey, r == VERR_TOO_LARGE ? VERR_TRAILING : r);
    r = relaypub_parse(buf_data(&pub), buf_size(&pub), rc.pk);
    buf_free(&pub);
    if (r != 0)
        return fail("relay-cert", "--pubkey is not a relay handshake public key", r);
    if (load_org("relay-cert", o.dir, &org, &g) != 0)
        return 1;
    registry_free(&g); /* relay certificates are not device certificates: not recorded */
    if (unlock_root("relay-cert", &o, &org, &sk) != 0)
        return 1;
    rc.issued_at = now;
    memcpy(rc.org_id, org.id, ORG_ID_LEN);
    memcpy(rc.relay_id, o.relay_id, strlen(o.relay_id) + 1);
    rc.not_before = now;
    rc.not_after = now + o.valid_days * 86400;
    r = relaycert_sign(&rc, buf_data(&sk), &out);
    buf_free(&sk);
    if (r != 0)
        return fail("relay-cert", "signing", r);
    if ((r = file_write_new(o.out, buf_data(&out), buf_size(&out), 0644)) != 0) {
        fail("relay-cert", o.out, r);
        goto out;
    }
    printf("relay certificate for %s written to %s, valid %llu days: give it to the relay "
           "operator (--relay-cert) and the relay id to every device (valise enroll --relay-id)\n",
           o.relay_id, o.out, (unsigned long long)o.valid_days);
    ret = 0;
out:
    buf_free(&out);
    return ret;
}

int main(int argc, char **argv)
{
    static const struct cli_verb verbs[] = {
        {"init", cmd_init},     {"enroll", cmd_enroll},       {"revoke", cmd_revoke},
        {"list", cmd_list},     {"directory", cmd_directory}, {"relay-cert", cmd_relay_cert},
    };

    /* The root key and passphrases never reach a core file (harden.h). */
    if (harden_process() != 0) {
        fputs("valise-keys: cannot disable core dumps (prctl/setrlimit failed)\n", stderr);
        return 1;
    }
    return cli_main("valise-keys", usage_main, verbs, sizeof(verbs) / sizeof(verbs[0]), argc, argv);
}
