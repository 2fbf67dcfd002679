/*
 * test_audit_state.c - the officer's state file of valise-audit
 * (lib/audit_state.h): round trip, every truncation, every single-bit flip,
 * trailing bytes, a note by another key, oversize input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "audit_state.h"
#include "merkle.h"
#include "note.h"

static const char origin[] = "valise/test-relay";

/* A signed checkpoint of size with a deterministic key from seed byte s. */
static void make(uint8_t s, uint64_t size, char key[static NOTE_VERIFIER_KEY_MAX], struct buf *note)
{
    uint8_t seed[32], pk[32], sk[64], root[MERKLE_HASH_LEN];
    struct buf text;

    memset(seed, s, sizeof(seed));
    assert_int_equal(crypto_sign_seed_keypair(pk, sk, seed), 0);
    memset(root, (int)size, sizeof(root));
    assert_int_equal(buf_init(&text, 1024, 0), 0);
    assert_int_equal(buf_init(note, NOTE_MAX_LEN, 0), 0);
    assert_int_equal(note_checkpoint_text(&text, origin, size, root), 0);
    assert_int_equal(note_sign(note, buf_data(&text), buf_size(&text), origin, sk), 0);
    assert_int_equal(note_verifier_format(key, NOTE_VERIFIER_KEY_MAX, origin, pk), 0);
    buf_free(&text);
}

static void encoded(struct buf *file, struct audit_state *st)
{
    char key[NOTE_VERIFIER_KEY_MAX];
    struct buf note;

    make(7, 42, key, &note);
    assert_int_equal(audit_state_make(st, key, buf_data(&note), buf_size(&note)), 0);
    assert_int_equal(buf_init(file, AUDIT_STATE_MAX_LEN, 0), 0);
    assert_int_equal(audit_state_encode(st, file), 0);
    buf_free(&note);
}

static void test_roundtrip(void **state)
{
    struct audit_state *st = calloc(1, sizeof(*st)), *got = calloc(1, sizeof(*got));
    struct buf file, again;

    (void)state;
    assert_non_null(st);
    assert_non_null(got);
    encoded(&file, st);
    assert_int_equal(st->cp.size, 42);
    assert_string_equal(st->cp.origin, origin);
    assert_memory_equal(buf_data(&file), AUDIT_STATE_MAGIC, AUDIT_STATE_MAGIC_LEN);
    assert_int_equal(audit_state_parse(got, buf_data(&file), buf_size(&file)), 0);
    assert_int_equal(got->cp.size, 42);
    assert_string_equal(got->key, st->key);
    assert_int_equal(buf_init(&again, AUDIT_STATE_MAX_LEN, 0), 0);
    assert_int_equal(audit_state_encode(got, &again), 0);
    assert_int_equal(buf_size(&again), buf_size(&file));
    assert_memory_equal(buf_data(&again), buf_data(&file), buf_size(&file));
    buf_free(&again);
    buf_free(&file);
    free(st);
    free(got);
}

static void test_truncations_and_trailing(void **state)
{
    struct audit_state *st = calloc(1, sizeof(*st)), *got = calloc(1, sizeof(*got));
    struct buf file;
    uint8_t *p;

    (void)state;
    assert_non_null(st);
    assert_non_null(got);
    encoded(&file, st);
    got->cp.size = 99;
    for (size_t n = 0; n < buf_size(&file); n++) {
        int r = audit_state_parse(got, buf_data(&file), n);
        if (r == 0)
            fail_msg("truncated to %zu of %zu bytes: expected refusal, seen 0", n, buf_size(&file));
    }
    assert_int_equal(got->cp.size, 99); /* untouched on failure */
    p = malloc(buf_size(&file) + 1);
    assert_non_null(p);
    memcpy(p, buf_data(&file), buf_size(&file));
    p[buf_size(&file)] = '\n';
    assert_int_not_equal(audit_state_parse(got, p, buf_size(&file) + 1), 0);
    p[buf_size(&file)] = 'x';
    assert_int_not_equal(audit_state_parse(got, p, buf_size(&file) + 1), 0);
    free(p);
    buf_free(&file);
    free(st);
    free(got);
}

static void test_bit_flips(void **state)
{
    struct audit_state *st = calloc(1, sizeof(*st)), *got = calloc(1, sizeof(*got));
    struct buf file;
    uint8_t *p;

    (void)state;
    assert_non_null(st);
    assert_non_null(got);
    encoded(&file, st);
    p = malloc(buf_size(&file));
    assert_non_null(p);
    for (size_t i = 0; i < buf_size(&file); i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            memcpy(p, buf_data(&file), buf_size(&file));
            p[i] ^= (uint8_t)(1u << bit);
            if (audit_state_parse(got, p, buf_size(&file)) == 0)
                fail_msg("bit %u of byte %zu flipped: expected refusal, seen 0", bit, i);
        }
    }
    free(p);
    buf_free(&file);
    free(st);
    free(got);
}

static void test_other_key_and_limits(void **state)
{
    struct audit_state *st = calloc(1, sizeof(*st));
    char key_a[NOTE_VERIFIER_KEY_MAX], key_b[NOTE_VERIFIER_KEY_MAX];
    struct buf note_a, note_b;
    uint8_t *big;

    (void)state;
    assert_non_null(st);
    make(1, 5, key_a, &note_a);
    make(2, 5, key_b, &note_b);
    /* a note signed by another key than the one remembered */
    assert_int_equal(audit_state_make(st, key_a, buf_data(&note_b), buf_size(&note_b)),
                     VERR_UNKNOWN);
    assert_int_equal(audit_state_make(st, "not a key", buf_data(&note_a), buf_size(&note_a)),
                     VERR_BAD_FORMAT);
    assert_int_equal(audit_state_make(st, key_a, buf_data(&note_a), 0), VERR_TRUNCATED);
    assert_int_equal(audit_state_make(st, key_a, buf_data(&note_a), buf_size(&note_a)), 0);
    big = calloc(1, AUDIT_STATE_MAX_LEN + 1);
    assert_non_null(big);
    memcpy(big, AUDIT_STATE_MAGIC, AUDIT_STATE_MAGIC_LEN);
    assert_int_equal(audit_state_parse(st, big, AUDIT_STATE_MAX_LEN + 1), VERR_TOO_LARGE);
    big[0] = 'x';
    assert_int_equal(audit_state_parse(st, big, 100), VERR_BAD_MAGIC);
    free(big);
    buf_free(&note_a);
    buf_free(&note_b);
    free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_truncations_and_trailing),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_other_key_and_limits),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
