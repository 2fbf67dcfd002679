/* fuzz_audit_record.c - libFuzzer harness for audit records (lib/audit_record.h). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct audit_record rec;
    struct buf out;

    if (audit_record_parse(data, size, &rec) != 0)
        return 0;
    /* canonical: what parses re-encodes to the same bytes */
    if (buf_init(&out, AUDIT_RECORD_LEN, 0) != 0)
        return 0;
    if (audit_record_encode(&rec, &out) != 0 || buf_size(&out) != size ||
        memcmp(buf_data(&out), data, size) != 0)
        abort();
    buf_free(&out);
    return 0;
}
