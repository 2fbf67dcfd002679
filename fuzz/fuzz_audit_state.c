/*
 * fuzz_audit_state.c - libFuzzer harness for valise-audit's state file
 * (lib/audit_state.h). The file names its own verifier key, so a mutated
 * input is checked against whatever key it carries. A state that parses
 * must encode back to exactly its input and hold a checkpoint whose origin
 * is the key's name.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct audit_state st;
    struct buf out;

    if (audit_state_parse(&st, data, size) != 0)
        return 0;
    if (strcmp(st.cp.origin, st.v.name) != 0)
        abort();
    if (buf_init(&out, AUDIT_STATE_MAX_LEN, 0) != 0)
        abort();
    if (audit_state_encode(&st, &out) != 0 || buf_size(&out) != size ||
        memcmp(buf_data(&out), data, size) != 0)
        abort();
    buf_free(&out);
    return 0;
}
