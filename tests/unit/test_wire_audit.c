/*
 * test_wire_audit.c - the auditor's messages of the relay protocol
 * (AUDIT_CHECKPOINT_GET, AUDIT_CHECKPOINT, AUDIT_PROOF_GET, AUDIT_PROOF;
 * lib/wire.h, PROTOCOL.md, part 6 "Auditors"): valid round trips, every
 * truncation, every single-bit flip (refused, or decoded to exactly what
 * re-encodes to the flipped bytes), trailing bytes, and the bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire.h"

/* Re-encodes a decoded audit message: the codec is canonical. */
static void reencode(const struct wire_msg *m, struct buf *out)
{
    switch (m->type) {
    case WIRE_AUDIT_CHECKPOINT_GET:
    case WIRE_AUDIT_CHECKPOINT:
        assert_int_equal(wire_put_audit_checkpoint(out, m->type, m->u.audit.bytes, m->u.audit.len),
                         0);
        break;
    case WIRE_AUDIT_PROOF_GET:
        assert_int_equal(wire_put_audit_proof_get(out, m->u.audit.kind, m->u.audit.a, m->u.audit.b),
                         0);
        break;
    case WIRE_AUDIT_PROOF:
        assert_int_equal(wire_put_audit_proof(out, m->u.audit.kind, m->u.audit.a, m->u.audit.b,
                                              m->u.audit.bytes, m->u.audit.hashes, m->u.audit.n),
                         0);
        break;
    default:
        break; /* a flipped type byte may land on another message: not ours to re-encode */
    }
}

/* The mutations of STYLE.md habit 9 on one encoded message. */
static void mutate(const struct buf *msg)
{
    const uint8_t *p = buf_data(msg);
    size_t len = buf_size(msg);
    uint8_t *q = malloc(len + 1);
    struct wire_msg m;
    struct buf again;

    assert_non_null(q);
    assert_int_equal(wire_decode(p, len, &m), 0);
    assert_int_equal(buf_init(&again, 1 << 20, 0), 0);
    reencode(&m, &again);
    assert_int_equal(buf_size(&again), len);
    assert_memory_equal(buf_data(&again), p, len);
    for (size_t n = 0; n < len; n++)
        if (wire_decode(p, n, &m) == 0)
            fail_msg("truncated to %zu of %zu bytes: expected refusal, seen 0", n, len);
    memcpy(q, p, len);
    q[len] = 0;
    assert_int_equal(wire_decode(q, len + 1, &m), VERR_TRAILING);
    for (size_t i = 0; i < len; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            memcpy(q, p, len);
            q[i] ^= (uint8_t)(1u << bit);
            if (wire_decode(q, len, &m) != 0 || m.type < WIRE_AUDIT_CHECKPOINT_GET ||
                m.type > WIRE_AUDIT_PROOF)
                continue;
            buf_reset(&again);
            reencode(&m, &again);
            if (buf_size(&again) != len || memcmp(buf_data(&again), q, len) != 0)
                fail_msg("bit %u of byte %zu flipped: decoded to something else", bit, i);
        }
    }
    buf_free(&again);
    free(q);
}

static void test_roundtrips(void **state)
{
    uint8_t note[200], rec[WIRE_AUDIT_RECORD_LEN], hashes[3 * WIRE_AUDIT_HASH_LEN];
    struct buf b;
    struct wire_msg m;

    (void)state;
    for (size_t i = 0; i < sizeof(note); i++)
        note[i] = (uint8_t)('a' + i % 26);
    for (size_t i = 0; i < sizeof(rec); i++)
        rec[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof(hashes); i++)
        hashes[i] = (uint8_t)(0xa0 ^ i);
    assert_int_equal(buf_init(&b, 1 << 20, 0), 0);

    assert_int_equal(wire_put_audit_checkpoint(&b, WIRE_AUDIT_CHECKPOINT_GET, NULL, 0), 0);
    assert_int_equal(buf_size(&b), 2);
    mutate(&b);

    buf_reset(&b);
    assert_int_equal(wire_put_audit_checkpoint(&b, WIRE_AUDIT_CHECKPOINT, note, sizeof(note)), 0);
    assert_int_equal(wire_decode(buf_data(&b), buf_size(&b), &m), 0);
    assert_int_equal(m.u.audit.len, sizeof(note));
    assert_memory_equal(m.u.audit.bytes, note, sizeof(note));
    mutate(&b);

    buf_reset(&b);
    assert_int_equal(wire_put_audit_proof_get(&b, WIRE_AUDIT_INCLUSION, 5, 9), 0);
    assert_int_equal(buf_size(&b), 2 + 1 + 8 + 8);
    mutate(&b);
    buf_reset(&b);
    assert_int_equal(wire_put_audit_proof_get(&b, WIRE_AUDIT_CONSISTENCY, 9, 9), 0);
    mutate(&b);

    buf_reset(&b);
    assert_int_equal(wire_put_audit_proof(&b, WIRE_AUDIT_INCLUSION, 2, 7, rec, hashes, 3), 0);
    assert_int_equal(buf_size(&b), 2 + 17 + WIRE_AUDIT_RECORD_LEN + 1 + 3 * WIRE_AUDIT_HASH_LEN);
    assert_int_equal(wire_decode(buf_data(&b), buf_size(&b), &m), 0);
    assert_int_equal(m.u.audit.n, 3);
    assert_memory_equal(m.u.audit.bytes, rec, sizeof(rec));
    assert_memory_equal(m.u.audit.hashes, hashes, sizeof(hashes));
    mutate(&b);
    buf_reset(&b);
    assert_int_equal(wire_put_audit_proof(&b, WIRE_AUDIT_CONSISTENCY, 3, 7, NULL, hashes, 2), 0);
    assert_int_equal(wire_decode(buf_data(&b), buf_size(&b), &m), 0);
    assert_null(m.u.audit.bytes);
    mutate(&b);
    buf_reset(&b);
    assert_int_equal(wire_put_audit_proof(&b, WIRE_AUDIT_CONSISTENCY, 7, 7, NULL, NULL, 0), 0);
    mutate(&b);
    buf_free(&b);
}

static void test_bounds(void **state)
{
    static uint8_t big[WIRE_AUDIT_NOTE_MAX + 1];
    uint8_t rec[WIRE_AUDIT_RECORD_LEN] = {0}, hashes[65 * WIRE_AUDIT_HASH_LEN] = {0};
    uint8_t raw[2 + 17 + 1 + 65 * WIRE_AUDIT_HASH_LEN];
    struct buf b;
    struct wire_msg m;

    (void)state;
    assert_int_equal(buf_init(&b, 1 << 20, 0), 0);
    /* encoders refuse impossible requests and write nothing */
    assert_int_equal(wire_put_audit_checkpoint(&b, WIRE_AUDIT_CHECKPOINT, big, 0), VERR_USAGE);
    assert_int_equal(wire_put_audit_checkpoint(&b, WIRE_AUDIT_CHECKPOINT, big, sizeof(big)),
                     VERR_USAGE);
    assert_int_equal(wire_put_audit_proof_get(&b, WIRE_AUDIT_INCLUSION, 4, 4), VERR_USAGE);
    assert_int_equal(wire_put_audit_proof_get(&b, WIRE_AUDIT_CONSISTENCY, 0, 4), VERR_USAGE);
    assert_int_equal(wire_put_audit_proof_get(&b, WIRE_AUDIT_CONSISTENCY, 5, 4), VERR_USAGE);
    assert_int_equal(wire_put_audit_proof_get(&b, 3, 1, 4), VERR_USAGE);
    assert_int_equal(wire_put_audit_proof(&b, WIRE_AUDIT_INCLUSION, 0, 4, NULL, hashes, 1),
                     VERR_USAGE);
    assert_int_equal(wire_put_audit_proof(&b, WIRE_AUDIT_CONSISTENCY, 1, 4, rec, hashes, 1),
                     VERR_USAGE);
    assert_int_equal(wire_put_audit_proof(&b, WIRE_AUDIT_CONSISTENCY, 1, 4, NULL, hashes, 65),
                     VERR_USAGE);
    assert_int_equal(buf_size(&b), 0);
    /* decoder: a proof of 65 hashes is over the cap */
    memset(raw, 0, sizeof(raw));
    raw[0] = WIRE_VERSION;
    raw[1] = WIRE_AUDIT_PROOF;
    raw[2] = WIRE_AUDIT_CONSISTENCY;
    raw[2 + 8] = 1;  /* a = 1 */
    raw[2 + 16] = 4; /* b = 4 */
    raw[19] = 65;
    assert_int_equal(wire_decode(raw, sizeof(raw), &m), VERR_TOO_LARGE);
    /* an empty note, and a note over the cap */
    uint8_t empty[6] = {WIRE_VERSION, WIRE_AUDIT_CHECKPOINT, 0, 0, 0, 0};
    assert_int_equal(wire_decode(empty, sizeof(empty), &m), VERR_BAD_FORMAT);
    uint8_t over[6] = {WIRE_VERSION, WIRE_AUDIT_CHECKPOINT, 0, 0, 0x40, 0x01};
    assert_int_equal(wire_decode(over, sizeof(over), &m), VERR_TOO_LARGE);
    /* kind 0 and impossible ranges */
    uint8_t get[19] = {WIRE_VERSION, WIRE_AUDIT_PROOF_GET, 0};
    assert_int_equal(wire_decode(get, sizeof(get), &m), VERR_BAD_FORMAT);
    get[2] = WIRE_AUDIT_INCLUSION; /* index 0 in a tree of 0 */
    assert_int_equal(wire_decode(get, sizeof(get), &m), VERR_BAD_FORMAT);
    get[2] = WIRE_AUDIT_CONSISTENCY; /* size1 0 */
    get[18] = 3;
    assert_int_equal(wire_decode(get, sizeof(get), &m), VERR_BAD_FORMAT);
    get[10] = 4; /* size1 4 > size2 3 */
    assert_int_equal(wire_decode(get, sizeof(get), &m), VERR_BAD_FORMAT);
    get[10] = 3;
    assert_int_equal(wire_decode(get, sizeof(get), &m), 0);
    assert_string_equal(wire_type_name(WIRE_AUDIT_PROOF), "audit_proof");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrips),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
