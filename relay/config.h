/*
 * config.h - valise-relay's settings: command-line flags and an optional
 * config file with the same names (PROTOCOL.md, part 2 "Bounds").
 *
 * Contract:
 *  - Every bound has a safe default; numbers are parsed whole and in range.
 *  - The config file holds lines "name value" or "name = value" (name = a
 *    long flag without "--"); '#' starts a comment. Flags given on the
 *    command line win over the file, whatever their order.
 *  - cfg_load returns 1 when --help was asked (usage already printed), 0 on
 *    success; on error it has written one line to err.
 */
#ifndef VALISE_RELAY_CONFIG_H
#define VALISE_RELAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "wire.h"

enum { CFG_HOST_MAX = 64, CFG_STR_MAX = 32 };

struct relay_config {
    const char *data_dir, *org_pub, *directory, *listen, *tls_cert, *tls_key, *relay_id;
    const char *relay_cert; /* the relay certificate IT signed (PROTOCOL.md part 1) */
    const char *port_file;
    char host[CFG_HOST_MAX];
    int port;
    int loopback;
    uint64_t map_size;
    uint64_t max_frame;       /* bytes of one websocket message from a client */
    uint64_t max_envelope;    /* ciphertext bytes of one envelope */
    uint64_t max_batch;       /* envelopes in one SUBMIT */
    uint64_t queue_max_count; /* per recipient device */
    uint64_t queue_max_bytes; /* per recipient device */
    uint64_t max_connections;
    uint64_t max_device_connections;
    uint64_t rate;            /* envelopes per second per connection (burst: one second) */
    uint64_t handshake_timeout, idle_timeout; /* seconds */
    uint64_t ttl[WIRE_PRECEDENCE_COUNT];      /* longest time to live per precedence, s */
    uint64_t otk_max, otk_low;
    uint64_t deliver_batch;   /* envelopes per DELIVER message */
    uint64_t dedupe_window;   /* seconds a delivered envelope id is still a duplicate */
    uint64_t max_attachment;  /* ciphertext bytes of one attachment (ATTACH_OPEN ct_size) */
    uint64_t checkpoint_records, checkpoint_seconds; /* audit checkpoint policy */
    int log_level;
    char *strings[CFG_STR_MAX]; /* private: values read from the config file */
    size_t nstrings;
};

int cfg_load(struct relay_config *cfg, int argc, char **argv, char *err, size_t errsz) VL_MUST_CHECK;
void cfg_free(struct relay_config *cfg);
void cfg_usage(void);

#endif
