/* test_audit_record.c - audit log record codec (lib/audit_record.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "audit_record.h"
#include "wire.h"

static void sample(struct buf *b, struct audit_record *rec)
{
    audit_record_init(rec, AUDIT_ENVELOPE_ACCEPTED, 1700000000);
    memset(rec->device_id, 1, sizeof(rec->device_id));
    memset(rec->peer_id, 2, sizeof(rec->peer_id));
    memset(rec->envelope_id, 3, sizeof(rec->envelope_id));
    rec->cert_serial = 42;
    rec->size = 1024;
    rec->precedence = WIRE_PRIORITY;
    rec->reason = WIRE_R_OK;
    rec->value = 7;
    assert_int_equal(buf_init(b, AUDIT_RECORD_LEN + 1, 0), 0);
    assert_int_equal(audit_record_encode(rec, b), 0);
    assert_int_equal(buf_size(b), AUDIT_RECORD_LEN);
}

static void test_roundtrip(void **state)
{
    struct audit_record rec, got;
    struct buf b, again;

    (void)state;
    sample(&b, &rec);
    assert_int_equal(audit_record_parse(buf_data(&b), buf_size(&b), &got), 0);
    assert_int_equal(got.event, AUDIT_ENVELOPE_ACCEPTED);
    assert_int_equal(got.time, 1700000000);
    assert_int_equal(got.cert_serial, 42);
    assert_int_equal(got.size, 1024);
    assert_int_equal(got.precedence, WIRE_PRIORITY);
    assert_int_equal(got.value, 7);
    assert_memory_equal(got.envelope_id, rec.envelope_id, AUDIT_ID_LEN);
    /* canonical: re-encoding gives the same bytes */
    assert_int_equal(buf_init(&again, AUDIT_RECORD_LEN, 0), 0);
    assert_int_equal(audit_record_encode(&got, &again), 0);
    assert_memory_equal(buf_data(&again), buf_data(&b), AUDIT_RECORD_LEN);
    buf_free(&again);
    buf_free(&b);
}

static void test_truncated_trailing(void **state)
{
    struct audit_record rec, got;
    struct buf b;

    (void)state;
    sample(&b, &rec);
    for (size_t n = 0; n < AUDIT_RECORD_LEN; n++)
        assert_int_not_equal(audit_record_parse(buf_data(&b), n, &got), 0);
    assert_int_equal(buf_put_u8(&b, 0), 0);
    assert_int_equal(audit_record_parse(buf_data(&b), buf_size(&b), &got), VERR_TRAILING);
    buf_free(&b);
}

static void test_bitflips(void **state)
{
    struct audit_record rec, got;
    struct buf b;
    uint8_t copy[AUDIT_RECORD_LEN];

    (void)state;
    sample(&b, &rec);
    for (size_t bit = 0; bit < AUDIT_RECORD_LEN * 8; bit++) {
        memcpy(copy, buf_data(&b), AUDIT_RECORD_LEN);
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int r = audit_record_parse(copy, sizeof(copy), &got);
        if (bit < 8 && r != VERR_BAD_VERSION)
            fail_msg("bit %zu: expected %d, saw %d", bit, VERR_BAD_VERSION, r);
        if (r == 0) {
            /* whatever parses is canonical */
            struct buf again;
            assert_int_equal(buf_init(&again, AUDIT_RECORD_LEN, 0), 0);
            assert_int_equal(audit_record_encode(&got, &again), 0);
            assert_memory_equal(buf_data(&again), copy, AUDIT_RECORD_LEN);
            buf_free(&again);
        }
    }
    buf_free(&b);
}

static void test_ranges(void **state)
{
    struct audit_record rec;
    struct buf b;

    (void)state;
    assert_int_equal(buf_init(&b, 1000, 0), 0);
    audit_record_init(&rec, 0, 1);
    assert_int_equal(audit_record_encode(&rec, &b), VERR_USAGE);
    audit_record_init(&rec, AUDIT_EVENT_MAX + 1, 1);
    assert_int_equal(audit_record_encode(&rec, &b), VERR_USAGE);
    audit_record_init(&rec, AUDIT_AUTH_FAIL, 1);
    rec.precedence = 4;
    assert_int_equal(audit_record_encode(&rec, &b), VERR_USAGE);
    rec.precedence = AUDIT_NO_PRECEDENCE;
    rec.reason = WIRE_R_MAX + 1;
    assert_int_equal(audit_record_encode(&rec, &b), VERR_USAGE);
    assert_int_equal(buf_size(&b), 0);
    assert_string_equal(audit_event_name(AUDIT_AUTH_FAIL), "auth_fail");
    assert_string_equal(audit_event_name(AUDIT_DEVICE_ENROLLED), "device_enrolled");
    assert_string_equal(audit_event_name(AUDIT_DEVICE_REVOKED), "device_revoked");
    assert_string_equal(audit_event_name(AUDIT_EVENT_MAX + 1), "unknown");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_truncated_trailing),
        cmocka_unit_test(test_bitflips),
        cmocka_unit_test(test_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
