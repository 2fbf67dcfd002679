/* fuzz_inner.c - libFuzzer harness for the inner message codec (client/inner.h). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct inner m;

    if (inner_parse(data, size, &m) != 0)
        return 0;
    /* What parses keeps every field within its cap and every pointer inside the input. */
    if (m.type == INNER_TYPE_MESSAGE) {
        if (m.precedence > INNER_PRECEDENCE_MAX || m.subject_len > INNER_SUBJECT_MAX ||
            m.content_len > INNER_CONTENT_MAX || m.naddr == 0 || m.naddr > INNER_ADDRESSES_MAX ||
            strlen(m.label) == 0 || !inner_valid_label(m.label))
            abort();
        /* Each address within its cap, and no two alike (one encoding per list). */
        for (size_t i = 0; i < m.naddr; i++) {
            if (strlen(m.address[i]) == 0 || strlen(m.address[i]) > INNER_ADDRESS_MAX)
                abort();
            for (size_t j = 0; j < i; j++)
                if (strcmp(m.address[i], m.address[j]) == 0)
                    abort();
        }
        if (m.subject_len > 0 && (m.subject < data || m.subject + m.subject_len > data + size))
            abort();
        if (m.content_len > 0 && (m.content < data || m.content + m.content_len > data + size))
            abort();
    } else if (m.type != INNER_TYPE_RECEIPT) {
        abort();
    }
    return 0;
}
