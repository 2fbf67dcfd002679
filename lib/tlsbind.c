/* tlsbind.c - RFC 9266 tls-exporter channel binding (see tlsbind.h). */
#include "tlsbind.h"

#include <string.h>

#include <openssl/ssl.h>

int tlsbind_exporter(struct ssl_st *ssl, uint8_t out[static TLSBIND_LEN])
{
    static const char label[] = "EXPORTER-Channel-Binding";

    memset(out, 0, TLSBIND_LEN);
    if (ssl == NULL || SSL_version(ssl) != TLS1_3_VERSION)
        return VERR_DENIED;
    if (SSL_export_keying_material(ssl, out, TLSBIND_LEN, label, sizeof(label) - 1, NULL, 0, 0) !=
        1) {
        memset(out, 0, TLSBIND_LEN);
        return VERR_DENIED;
    }
    return 0;
}
