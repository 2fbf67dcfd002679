/* fuzz_attach.c - libFuzzer harness for the attachment section and descriptor codec (client/attach.h). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attach.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct attach_desc d[ATTACH_MAX];
    struct buf b, again;
    size_t n;

    buf_view(&b, data, size);
    if (attach_section_parse(&b, d, &n) != 0)
        return 0;
    /* What parses keeps every rule, and re-encodes to the very bytes it came from. */
    if (n > ATTACH_MAX)
        abort();
    for (size_t i = 0; i < n; i++)
        if (d[i].size == 0 || d[i].size > ATTACH_SIZE_MAX || !attach_valid_name(d[i].name) ||
            !attach_valid_type(d[i].type) || attach_chunk_count(d[i].size) == 0)
            abort();
    if (buf_init(&again, ATTACH_SECTION_MAX, 0) != 0)
        abort();
    if (attach_section_encode(d, n, &again) != 0 || buf_size(&again) != buf_offset(&b) ||
        memcmp(buf_data(&again), data, buf_size(&again)) != 0)
        abort();
    buf_free(&again);
    for (size_t i = 0; i < n; i++)
        attach_desc_wipe(&d[i]);
    return 0;
}
