/*
 * fuzz_keystore.c - libFuzzer harness for the keystore header parser
 * (ks_check: everything short of the Argon2 derivation, which the parser
 * must refuse to reach with out-of-range parameters).
 */
#include <stddef.h>
#include <stdint.h>

#include "keystore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)ks_check(data, size, KS_KIND_ORG);
    (void)ks_check(data, size, KS_KIND_DEVICE);
    return 0;
}
