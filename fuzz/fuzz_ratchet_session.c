/*
 * fuzz_ratchet_session.c - libFuzzer harness for the stored ratchet session
 * (ratchet_session_parse). What parses must re-encode to exactly the same
 * bytes (a version 1 session: to version 2 bytes that re-encode to
 * themselves), and a parsed session must survive an encryption attempt.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "ratchet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t text[] = "fuzz";
    struct ratchet_session *s = NULL;
    struct buf out;

    if (sodium_init() < 0)
        abort();
    if (ratchet_session_parse(&s, data, size) != 0) {
        if (s != NULL)
            abort();
        return 0;
    }
    if (buf_init(&out, 1 << 20, BUF_SECRET) != 0)
        abort();
    if (ratchet_session_encode(s, &out) != 0)
        abort();
    if (data[4] == 1) {
        /* Version 1 is read and written back as version 2, which is canonical. */
        struct ratchet_session *s2 = NULL;
        struct buf again;

        if (buf_init(&again, 1 << 20, BUF_SECRET) != 0 ||
            ratchet_session_parse(&s2, buf_data(&out), buf_size(&out)) != 0 ||
            ratchet_session_encode(s2, &again) != 0 || buf_size(&again) != buf_size(&out) ||
            memcmp(buf_data(&again), buf_data(&out), buf_size(&out)) != 0)
            abort();
        ratchet_session_free(s2);
        buf_free(&again);
    } else if (buf_size(&out) != size || memcmp(buf_data(&out), data, size) != 0) {
        abort();
    }
    buf_reset(&out);
    /* Any parsed state must be usable without crashing (errors are fine). */
    if (ratchet_encrypt(s, text, sizeof(text) - 1, &out) == 0 && buf_size(&out) == 0)
        abort();
    buf_free(&out);
    ratchet_session_free(s);
    return 0;
}
