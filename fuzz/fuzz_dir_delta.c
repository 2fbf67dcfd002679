/*
 * fuzz_dir_delta.c - libFuzzer harness for directory deltas (lib/dir.h,
 * PROTOCOL.md part 1 "Directory delta"). Input: u32 n · a base directory of
 * n bytes · a delta. A delta that applies must rebuild a directory whose own
 * delta from the same base applies to the same bytes (one canonical encoding).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf out, again, delta2;
    size_t n;
    int r;

    if (size < 4)
        return 0;
    n = (size_t)data[0] << 24 | (size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3];
    if (n > size - 4)
        return 0;
    if (dir_delta_apply(data + 4, n, data + 4 + n, size - 4 - n, &out) != 0)
        return 0;
    r = dir_delta_make(data + 4, n, buf_data(&out), buf_size(&out), &delta2);
    if (r != 0) {
        /* Only the rebuilt header's magic or format can be wrong: the rest was checked. */
        if (r != VERR_BAD_MAGIC && r != VERR_BAD_VERSION)
            abort();
        buf_free(&out);
        return 0;
    }
    if (dir_delta_apply(data + 4, n, buf_data(&delta2), buf_size(&delta2), &again) != 0 ||
        buf_size(&again) != buf_size(&out) ||
        memcmp(buf_data(&again), buf_data(&out), buf_size(&out)) != 0)
        abort();
    buf_free(&again);
    buf_free(&delta2);
    buf_free(&out);
    return 0;
}
