/* fuzz_address.c - libFuzzer harness for the address parser (client/address.h). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[ADDR_TEXT_MAX + 2], out[ADDR_TEXT_MAX + 1];
    struct address a, b;

    if (size > ADDR_TEXT_MAX + 1)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    if (addr_parse(s, &a) != 0)
        return 0;
    /* What parses formats back to exactly the input (one canonical text) and reparses. */
    if (addr_format(&a, out, sizeof(out)) != 0 || strcmp(out, s) != 0)
        abort();
    if (addr_parse(out, &b) != 0 || b.kind != a.kind)
        abort();
    return 0;
}
