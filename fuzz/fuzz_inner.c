/* fuzz_inner.c - libFuzzer harness for the inner message codec (client/inner.h):
 * the signed form (inner_parse) and the transmitted form (inner_wire_decode,
 * then inner_parse, as a receiver does). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_parsed(const struct inner *m, const uint8_t *data, size_t size)
{
    /* What parses keeps every field within its cap and every pointer inside the input. */
    if (m->type == INNER_TYPE_MESSAGE) {
        if (m->precedence > INNER_PRECEDENCE_MAX || m->subject_len > INNER_SUBJECT_MAX ||
            m->content_len > INNER_CONTENT_MAX || m->naddr == 0 || m->naddr > INNER_ADDRESSES_MAX ||
            strlen(m->label) == 0 || !inner_valid_label(m->label))
            abort();
        /* Each address within its cap, and no two alike (one encoding per list). */
        for (size_t i = 0; i < m->naddr; i++) {
            if (strlen(m->address[i]) == 0 || strlen(m->address[i]) > INNER_ADDRESS_MAX)
                abort();
            for (size_t j = 0; j < i; j++)
                if (strcmp(m->address[i], m->address[j]) == 0)
                    abort();
        }
        if (m->subject_len > 0 && (m->subject < data || m->subject + m->subject_len > data + size))
            abort();
        if (m->content_len > 0 && (m->content < data || m->content + m->content_len > data + size))
            abort();
    } else if (m->type != INNER_TYPE_RECEIPT) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t sender[DEVICE_ID_LEN] = {1, 2, 3};
    struct inner m;
    struct buf full;

    if (inner_parse(data, size, &m) == 0)
        check_parsed(&m, data, size);
    /* The same bytes as transmitted, from a sender whose role is "duty". */
    if (buf_init(&full, INNER_MAX_LEN, 0) != 0)
        return 0;
    if (inner_wire_decode(data, size, sender, "duty", &full) == 0 &&
        inner_parse(buf_data(&full), buf_size(&full), &m) == 0) {
        check_parsed(&m, buf_data(&full), buf_size(&full));
        if (memcmp(m.sender, sender, DEVICE_ID_LEN) != 0 || strcmp(m.role, "duty") != 0)
            abort();
    }
    buf_free(&full);
    return 0;
}
