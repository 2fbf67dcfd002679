/* audit_record.c - audit log records (see audit_record.h). */
#include "audit_record.h"

#include <string.h>

#include "wire.h"

_Static_assert(AUDIT_RECORD_LEN == 81, "audit record layout (PROTOCOL.md, part 2)");
_Static_assert((int)AUDIT_ID_LEN == (int)WIRE_ID_LEN, "envelope ids");

void audit_record_init(struct audit_record *rec, uint8_t event, uint64_t time)
{
    memset(rec, 0, sizeof(*rec));
    rec->event = event;
    rec->time = time;
    rec->precedence = AUDIT_NO_PRECEDENCE;
}

static int check(const struct audit_record *rec)
{
    if (rec->event == 0 || rec->event > AUDIT_EVENT_MAX)
        return VERR_BAD_FORMAT;
    if (rec->precedence >= WIRE_PRECEDENCE_COUNT && rec->precedence != AUDIT_NO_PRECEDENCE)
        return VERR_BAD_FORMAT;
    if (rec->reason > WIRE_R_MAX)
        return VERR_BAD_FORMAT;
    return 0;
}

int audit_record_encode(const struct audit_record *rec, struct buf *out)
{
    size_t save = buf_size(out);
    int r;

    if ((r = check(rec)) != 0)
        return VERR_USAGE;
    if ((r = buf_put_u8(out, AUDIT_RECORD_VERSION)) != 0 || (r = buf_put_u8(out, rec->event)) != 0 ||
        (r = buf_put_u64(out, rec->time)) != 0 ||
        (r = buf_put_bytes(out, rec->device_id, DEVICE_ID_LEN)) != 0 ||
        (r = buf_put_u64(out, rec->cert_serial)) != 0 ||
        (r = buf_put_bytes(out, rec->peer_id, DEVICE_ID_LEN)) != 0 ||
        (r = buf_put_bytes(out, rec->envelope_id, AUDIT_ID_LEN)) != 0 ||
        (r = buf_put_u32(out, rec->size)) != 0 || (r = buf_put_u8(out, rec->precedence)) != 0 ||
        (r = buf_put_u16(out, rec->reason)) != 0 || (r = buf_put_u64(out, rec->value)) != 0) {
        buf_truncate(out, save);
        return r;
    }
    return 0;
}

int audit_record_parse(const uint8_t *p, size_t len, struct audit_record *rec)
{
    struct audit_record t;
    struct buf b;
    uint8_t version;
    int r;

    buf_view(&b, p, len);
    if ((r = buf_get_u8(&b, &version)) != 0)
        return r;
    if (version != AUDIT_RECORD_VERSION)
        return VERR_BAD_VERSION;
    if ((r = buf_get_u8(&b, &t.event)) != 0 || (r = buf_get_u64(&b, &t.time)) != 0 ||
        (r = buf_get_bytes(&b, t.device_id, DEVICE_ID_LEN)) != 0 ||
        (r = buf_get_u64(&b, &t.cert_serial)) != 0 ||
        (r = buf_get_bytes(&b, t.peer_id, DEVICE_ID_LEN)) != 0 ||
        (r = buf_get_bytes(&b, t.envelope_id, AUDIT_ID_LEN)) != 0 ||
        (r = buf_get_u32(&b, &t.size)) != 0 || (r = buf_get_u8(&b, &t.precedence)) != 0 ||
        (r = buf_get_u16(&b, &t.reason)) != 0 || (r = buf_get_u64(&b, &t.value)) != 0 ||
        (r = buf_expect_end(&b)) != 0)
        return r;
    if ((r = check(&t)) != 0)
        return r;
    *rec = t;
    return 0;
}

const char *audit_event_name(uint8_t event)
{
    static const char *const names[] = {
        "none", "relay_start", "relay_stop", "auth_ok", "auth_fail", "directory_installed",
        "envelope_accepted", "envelope_delivered", "envelope_expired", "envelope_rejected",
        "quota_hit", "rate_limit_hit", "session_revoked", "prekeys_uploaded", "prekey_issued",
        "connection_refused", "device_enrolled", "device_revoked", "relay_restored",
        "attachment_accepted", "attachment_delivered", "attachment_expired",
    };
    _Static_assert(sizeof(names) / sizeof(names[0]) == AUDIT_EVENT_MAX + 1, "one name per event");

    return event >= 1 && event <= AUDIT_EVENT_MAX ? names[event] : "unknown";
}
