/*
 * audit_record.h - one record of the relay's audit log (DESIGN.md "Audit
 * log"; byte layout in PROTOCOL.md, part 2 "Audit records").
 *
 * Contract:
 *  - A record holds ids, sizes, times and reasons, never message content or
 *    key material: there is no field that could carry either.
 *  - The encoding is fixed-length (AUDIT_RECORD_LEN), versioned, canonical:
 *    audit_record_parse accepts exactly what audit_record_encode writes
 *    (known event type, precedence 0..3 or AUDIT_NO_PRECEDENCE, reason in the
 *    wire.h range, no trailing bytes), so re-encoding a parsed record gives
 *    back the bytes whose RFC 9162 leaf hash is in the log.
 *  - Fields that do not apply to an event are zero (precedence:
 *    AUDIT_NO_PRECEDENCE).
 */
#ifndef VALISE_AUDIT_RECORD_H
#define VALISE_AUDIT_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cert.h"
#include "err.h"

enum {
    AUDIT_RECORD_VERSION = 1,
    AUDIT_ID_LEN = 16,
    AUDIT_NO_PRECEDENCE = 0xff,
    AUDIT_RECORD_LEN = 1 + 1 + 8 + DEVICE_ID_LEN + 8 + DEVICE_ID_LEN + AUDIT_ID_LEN + 4 + 1 + 2 + 8,
};

enum audit_event {
    AUDIT_RELAY_START = 1,
    AUDIT_RELAY_STOP = 2,
    AUDIT_AUTH_OK = 3,            /* device, serial */
    AUDIT_AUTH_FAIL = 4,          /* device and serial if the cert parsed, reason */
    AUDIT_DIRECTORY_INSTALLED = 5,/* value = version, device = uploader or zero */
    AUDIT_ENVELOPE_ACCEPTED = 6,  /* device = sender, peer = recipient, id, size, precedence */
    AUDIT_ENVELOPE_DELIVERED = 7, /* device = recipient, peer = sender, id, size, precedence */
    AUDIT_ENVELOPE_EXPIRED = 8,   /* device = sender, peer = recipient, id, size, precedence */
    AUDIT_ENVELOPE_REJECTED = 9,  /* device = sender, peer = recipient, id, size, reason */
    AUDIT_QUOTA_HIT = 10,         /* device = sender, peer = recipient, reason */
    AUDIT_RATE_LIMIT_HIT = 11,    /* device, value = envelopes refused */
    AUDIT_SESSION_REVOKED = 12,   /* device, serial, reason: revoked by a new directory, or cert_expired mid-session */
    AUDIT_PREKEYS_UPLOADED = 13,  /* device, value = one-time prekeys stored */
    AUDIT_PREKEY_ISSUED = 14,     /* device = requester, peer = owner, value = prekey id */
    AUDIT_CONNECTION_REFUSED = 15,/* device if known, reason */
    AUDIT_DEVICE_ENROLLED = 16,   /* device, serial: a certificate new in an installed directory; value = its version */
    AUDIT_DEVICE_REVOKED = 17,    /* device, serial: newly revoked in an installed directory; value = its version */
    AUDIT_RELAY_RESTORED = 18,    /* value = records in the restored log before this one (a backup put back) */
    /* attachments (PROTOCOL.md part 2 "Attachments"): envelope id = attachment id, size = ct_size */
    AUDIT_ATTACHMENT_ACCEPTED = 19,  /* device = sender, peer = recipient, precedence: last chunk stored */
    AUDIT_ATTACHMENT_DELIVERED = 20, /* device = recipient, peer = sender, precedence: ATTACH_DONE */
    AUDIT_ATTACHMENT_EXPIRED = 21,   /* device = sender, peer = recipient not done, precedence, reason expired */
    AUDIT_EVENT_MAX = 21,
};

struct audit_record {
    uint8_t event;
    uint64_t time; /* unix seconds */
    uint8_t device_id[DEVICE_ID_LEN];
    uint64_t cert_serial;
    uint8_t peer_id[DEVICE_ID_LEN];
    uint8_t envelope_id[AUDIT_ID_LEN];
    uint32_t size;
    uint8_t precedence;
    uint16_t reason; /* enum wire_reason */
    uint64_t value;
};

/* A record with every field zero but event, time and precedence. */
void audit_record_init(struct audit_record *rec, uint8_t event, uint64_t time);
/* Appends exactly AUDIT_RECORD_LEN bytes to out. */
int audit_record_encode(const struct audit_record *rec, struct buf *out) VL_MUST_CHECK;
int audit_record_parse(const uint8_t *p, size_t len, struct audit_record *rec) VL_MUST_CHECK;
/* Stable name of an event for logs and exports; never NULL. */
const char *audit_event_name(uint8_t event);

#endif
