/*
 * fuzz_merkle_state.c - libFuzzer harness for the serialised Merkle tree
 * state (lib/merkle.h). A state that parses must serialise back to exactly
 * its input, and appending to it must keep working or stop at the size cap.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "merkle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct merkle_state st;
    uint8_t root[MERKLE_HASH_LEN], leaf[MERKLE_HASH_LEN];
    struct buf out;
    uint64_t n;
    int r;

    if (merkle_state_parse(&st, data, size) != 0)
        return 0;
    if (merkle_state_encoded_len(&st) != size)
        abort();
    if (buf_init(&out, MERKLE_STATE_MAX_LEN, 0) != 0)
        abort();
    if (merkle_state_serialise(&st, &out) != 0 || buf_size(&out) != size ||
        memcmp(buf_data(&out), data, size) != 0)
        abort();
    buf_free(&out);
    merkle_state_root(&st, root);
    n = merkle_state_size(&st);
    memset(leaf, 0x5a, sizeof(leaf));
    r = merkle_state_append(&st, leaf);
    if (n == UINT64_MAX ? r != VERR_LIMIT : (r != 0 || merkle_state_size(&st) != n + 1))
        abort();
    return 0;
}
