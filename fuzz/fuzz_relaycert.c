/*
 * fuzz_relaycert.c - libFuzzer harness for the relay certificate and the
 * relay's public key file (lib/relaycert.h). The first byte picks the parser.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relaycert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct relaycert c;
    struct buf out;
    uint8_t pk[SIG_PK_LEN];

    if (size < 1)
        return 0;
    if (data[0] & 1) {
        (void)relaypub_parse(data + 1, size - 1, pk);
        return 0;
    }
    if (relaycert_parse(data + 1, size - 1, &c) != 0)
        return 0;
    /* canonical: a parsed certificate re-encodes to the same bytes */
    if (relaycert_encode(&c, &out) != 0)
        abort();
    if (buf_size(&out) != size - 1 || memcmp(buf_data(&out), data + 1, size - 1) != 0)
        abort();
    buf_free(&out);
    return 0;
}
