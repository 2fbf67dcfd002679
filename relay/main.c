/* main.c - valise-relay: flags, signals and the exit status (DESIGN.md "Command-line contract"). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "audit.h"
#include "config.h"
#include "datadir.h"
#include "fileio.h"
#include "harden.h"
#include "log.h"
#include "relay.h"
#include "relaycert.h"
#include "sdnotify.h"
#include "store.h"

static struct relay *the_relay;

static void on_signal(int sig)
{
    if (the_relay == NULL)
        return;
    if (sig == SIGHUP)
        relay_request_reload(the_relay);
    else
        relay_request_stop(the_relay);
}

static int install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGHUP, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

static int write_port_file(const char *path, int port)
{
    char text[16];
    int n = snprintf(text, sizeof(text), "%d\n", port);

    if (n <= 0 || (size_t)n >= sizeof(text))
        return VERR_INTERNAL;
    return file_replace(path, (const uint8_t *)text, (size_t)n, 0600);
}

static int init_handshake_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--init-handshake-key") == 0)
            return 1;
    return 0;
}

/*
 * valise-relay --init-handshake-key --data DIR --out FILE: creates
 * DIR/handshake.key (O_EXCL, 0600) and writes its public half to FILE for
 * IT, who sign a relay certificate for it (valise-keys relay-cert).
 */
static int init_handshake_main(int argc, char **argv)
{
    const char *data = NULL, *out = NULL;
    char path[4096];
    uint8_t pk[SIG_PK_LEN];
    struct buf pub = {0};
    int r;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--init-handshake-key") == 0)
            continue;
        if (i + 1 < argc && strcmp(argv[i], "--data") == 0)
            data = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--out") == 0)
            out = argv[++i];
        else {
            fprintf(stderr, "valise-relay: --init-handshake-key takes only --data DIR and "
                            "--out FILE\n");
            return 2;
        }
    }
    if (data == NULL || out == NULL) {
        fprintf(stderr, "valise-relay: --init-handshake-key needs --data DIR and --out FILE\n");
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "valise-relay: libsodium failed to initialise\n");
        return 1;
    }
    if (file_exists(out)) {
        fprintf(stderr, "valise-relay: --out %s already exists; choose another file\n", out);
        return 1;
    }
    if ((r = file_mkdir_private(data)) != 0 ||
        (r = file_join(path, sizeof(path), data, RELAYKEY_FILE)) != 0) {
        fprintf(stderr, "valise-relay: --data %s: %s\n", data, verr_str(r));
        return 1;
    }
    if ((r = relaykey_create(path, pk)) != 0) {
        fprintf(stderr, "valise-relay: %s: %s%s\n", path, verr_str(r),
                r == VERR_EXISTS ? " (this relay already has a handshake key)" : "");
        return 1;
    }
    if ((r = relaypub_encode(pk, &pub)) != 0 ||
        (r = file_write_new(out, buf_data(&pub), buf_size(&pub), 0644)) != 0) {
        buf_free(&pub);
        unlink(path); /* nothing half-made: no key without its public file */
        fprintf(stderr, "valise-relay: --out %s: %s\n", out, verr_str(r));
        return 1;
    }
    buf_free(&pub);
    printf("handshake key created in %s; give %s to IT for valise-keys relay-cert\n", path, out);
    return 0;
}


/* valise-relay backup|restore: argv[1] names the verb. */
static int storage_verb(int argc, char **argv)
{
    return argc >= 2 && (strcmp(argv[1], "backup") == 0 || strcmp(argv[1], "restore") == 0);
}

static const char backup_usage[] =
    "usage: valise-relay backup --data DIR --out FILE\n"
    "       valise-relay restore --data DIR --from FILE\n"
    "backup: a hot, consistent, compacted copy of DIR's store (data.mdb) while the relay\n"
    "  runs, written to FILE atomically (a new file renamed over FILE).\n"
    "restore: puts a backup back as DIR/data.mdb; DIR must hold no data.mdb. Copy back\n"
    "  audit.key, handshake.key and relay-id from the key backup first. The next start\n"
    "  records relay_restored in the audit log and signs it in a checkpoint.\n"
    "Options:\n"
    "  --data DIR     the relay's data directory\n"
    "  --out FILE     backup: the file to write\n"
    "  --from FILE    restore: the backup to put back\n"
    "  --help         this text\n";

/*
 * valise-relay backup --data DIR --out FILE / restore --data DIR --from FILE
 * (PROTOCOL.md part 2 "Backup and restore").
 */
static int storage_main(int argc, char **argv)
{
    const int backup = strcmp(argv[1], "backup") == 0;
    const char *data = NULL, *file = NULL, *flag = backup ? "--out" : "--from";
    uint64_t records = 0;
    int r;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            fputs(backup_usage, stdout);
            return 0;
        }
        if (i + 1 < argc && strcmp(argv[i], "--data") == 0)
            data = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], flag) == 0)
            file = argv[++i];
        else {
            fprintf(stderr, "valise-relay: %s takes only --data DIR and %s FILE (not \"%s\")\n",
                    argv[1], flag, argv[i]);
            return 2;
        }
    }
    if (data == NULL || file == NULL) {
        fprintf(stderr, "valise-relay: %s needs --data DIR and %s FILE\n", argv[1], flag);
        return 2;
    }
    if (backup) {
        if ((r = store_backup(data, file, &records)) != 0) {
            fprintf(stderr, "valise-relay: backup of --data %s to --out %s failed: %s%s\n",
                    data, file, verr_str(r),
                    r == VERR_UNKNOWN ? " (no relay store there)" : "; nothing was replaced");
            return 1;
        }
        printf("backup of %s written to %s: audit log of %llu records\n", data, file,
               (unsigned long long)records);
        return 0;
    }
    if ((r = store_restore(data, file, &records)) != 0) {
        if (r == VERR_EXISTS)
            fprintf(stderr,
                    "valise-relay: --data %s already holds a store (data.mdb); restore only "
                    "into a directory without one (move it away first)\n",
                    data);
        else
            fprintf(stderr, "valise-relay: restore of --from %s into --data %s failed: %s%s\n",
                    file, data, verr_str(r),
                    r == VERR_BAD_FORMAT ? " (not a valise-relay backup)" : "");
        return 1;
    }
    printf("restored %s into %s: audit log of %llu records; the next start records the "
           "restore (relay_restored) and signs it\n",
           file, data, (unsigned long long)records);
    return 0;
}

int main(int argc, char **argv)
{
    struct relay_config cfg;
    struct relay *rl = NULL;
    struct datadir dd = {.lock_fd = -1};
    struct relaycert cert_of_relay;
    char err[512];
    int r, status = 1;

    /* The audit key never reaches a core file (harden.h). */
    if (harden_process() != 0) {
        fputs("valise-relay: cannot disable core dumps (prctl/setrlimit failed)\n", stderr);
        return 1;
    }
    if (raudit_print_wanted(argc, argv))
        return raudit_print_main(argc, argv);
    if (init_handshake_wanted(argc, argv))
        return init_handshake_main(argc, argv);
    if (storage_verb(argc, argv))
        return storage_main(argc, argv);
    r = cfg_load(&cfg, argc, argv, err, sizeof(err));
    if (r == 1) {
        status = 0;
        goto out;
    }
    if (r != 0) {
        fprintf(stderr, "valise-relay: %s\n", err[0] != '\0' ? err : verr_str(r));
        status = 2;
        goto out;
    }
    rlog_set_level(cfg.log_level);
    if (sodium_init() < 0) {
        fprintf(stderr, "valise-relay: libsodium failed to initialise\n");
        goto out;
    }
    err[0] = '\0';
    /* Without --relay-id the relay is who its certificate says it is. */
    if (cfg.relay_id == NULL) {
        struct buf f = {0};

        if ((r = file_read(cfg.relay_cert, RELAYCERT_MAX_LEN, 0, &f)) != 0 ||
            (r = relaycert_parse(buf_data(&f), buf_size(&f), &cert_of_relay)) != 0) {
            buf_free(&f);
            fprintf(stderr, "valise-relay: --relay-cert %s: %s\n", cfg.relay_cert, verr_str(r));
            goto out;
        }
        buf_free(&f);
        cfg.relay_id = cert_of_relay.relay_id;
    }
    /* One relay per data directory, always under the same relay id (datadir.h). */
    if ((r = datadir_claim(&dd, cfg.data_dir, cfg.relay_id, err, sizeof(err))) != 0) {
        fprintf(stderr, "valise-relay: %s\n", err);
        goto out;
    }
    cfg.relay_id = dd.relay_id;
    if ((r = relay_create(&rl, &cfg, err, sizeof(err))) != 0) {
        fprintf(stderr, "valise-relay: %s\n", err[0] != '\0' ? err : verr_str(r));
        goto out;
    }
    if ((r = datadir_record(&dd, cfg.data_dir, err, sizeof(err))) != 0) {
        fprintf(stderr, "valise-relay: %s\n", err);
        goto out;
    }
    the_relay = rl;
    if (install_signals() != 0) {
        fprintf(stderr, "valise-relay: cannot install signal handlers\n");
        goto out;
    }
    if (cfg.port_file != NULL && (r = write_port_file(cfg.port_file, relay_port(rl))) != 0) {
        fprintf(stderr, "valise-relay: --port-file %s: %s\n", cfg.port_file, verr_str(r));
        goto out;
    }
    rlog(RLOG_INFO, "listening on %s port %d (%s)", cfg.host, relay_port(rl),
         cfg.tls_cert != NULL ? "wss" : "ws, loopback only");
    /* Type=notify (contrib/valise-relay.service): ready once the listener is bound. */
    if ((r = sdnotify_send("READY=1\nSTATUS=serving")) != 0)
        rlog(RLOG_WARN, "NOTIFY_SOCKET: readiness not sent: %s", verr_str(r));
    if ((r = relay_run(rl)) != 0) {
        fprintf(stderr, "valise-relay: %s\n", verr_str(r));
        goto out;
    }
    status = 0;
out:
    the_relay = NULL;
    relay_destroy(rl);
    datadir_release(&dd);
    cfg_free(&cfg);
    return status;
}
