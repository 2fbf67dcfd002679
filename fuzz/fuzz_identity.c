/*
 * fuzz_identity.c - libFuzzer harness for the identity objects IT staff and
 * every component parse: org.pub, enrolment request, certificate, directory,
 * registry. The first byte picks the parser; the rest is the object.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "cert.h"
#include "dir.h"
#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct orgpub org;
    static int ready;
    struct enrol_request q;
    struct cert c;
    struct directory *d = NULL;
    struct registry g;

    if (!ready) {
        uint8_t sk[SIG_SK_LEN];
        if (sodium_init() < 0)
            return 0;
        crypto_sign_keypair(org.pk, sk);
        memcpy(org.name, "fuzz", 5);
        orgpub_id(org.id, org.pk);
        ready = 1;
    }
    if (size < 1)
        return 0;
    switch (data[0] % 5) {
    case 0: {
        struct orgpub o;
        (void)orgpub_parse(data + 1, size - 1, &o);
        break;
    }
    case 1: (void)request_parse(data + 1, size - 1, &q); break;
    case 2:
        if (cert_parse(data + 1, size - 1, &c) == 0)
            (void)cert_verify(&c, &org, 0);
        break;
    case 3:
        /* Take the org id from the input so parsing reaches the certificates. */
        if (size >= 1 + 5 + ORG_ID_LEN)
            memcpy(org.id, data + 1 + 5, ORG_ID_LEN);
        (void)dir_parse_verify(data + 1, size - 1, &org, &d);
        dir_free(d);
        break;
    case 4:
        if (size >= 1 + 5 + ORG_ID_LEN)
            memcpy(org.id, data + 1 + 5, ORG_ID_LEN);
        if (registry_parse(data + 1, size - 1, &org, &g) == 0)
            registry_free(&g);
        break;
    }
    return 0;
}
