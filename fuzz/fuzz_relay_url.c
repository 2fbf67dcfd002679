/* fuzz_relay_url.c - libFuzzer harness for the relay URL rules (client/transport.h). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[600], tls[604];
    int r;

    if (size >= sizeof(s))
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    r = ctp_url_check(s);
    /* A plain URL that is accepted (loopback) is accepted with TLS as well. */
    if (r == 0 && strncmp(s, "ws://", 5) == 0) {
        memcpy(tls, "wss://", 6);
        memcpy(tls + 6, s + 5, size - 5 + 1);
        if (ctp_url_check(tls) != 0)
            abort();
    }
    return 0;
}
