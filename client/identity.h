/*
 * identity.h - a device's own keys, kept in its home under the user's
 * passphrase (DESIGN.md "Trust and keys").
 *
 * HOME/device.key is a keystore (keystore.h, kind DEVICE) whose secret is
 *   Ed25519 seed (32) || X25519 secret key (32) || local store key (32).
 * The Ed25519 key signs (enrolment request, relay authentication, prekeys,
 * messages, each under its own context); the X25519 key is the X3DH identity
 * key; the store key encrypts the local LMDB store. Three keys, three uses.
 * HOME/request is the device's self-signed enrolment request.
 */
#ifndef VALISE_IDENTITY_H
#define VALISE_IDENTITY_H

#include <stdint.h>

#include "cert.h"

enum { IDENTITY_STORE_KEY_LEN = 32, IDENTITY_SECRET_LEN = 32 + 32 + 32 };

struct identity {
    uint8_t device_id[DEVICE_ID_LEN];
    char name[PERSON_NAME_MAX + 1];
    uint8_t sign_pk[SIG_PK_LEN];
    uint8_t dh_pk[DH_PK_LEN];
    /* Secrets: in sodium_malloc'ed memory, wiped by identity_free. */
    uint8_t *sign_sk;   /* SIG_SK_LEN */
    uint8_t *dh_sk;     /* 32 */
    uint8_t *store_key; /* IDENTITY_STORE_KEY_LEN */
};

/*
 * Creates HOME (0700) with device.key and request, and writes the request to
 * out_path as well. Refuses if HOME already holds a device; leaves nothing
 * behind on failure.
 */
int identity_create(const char *home, const char *name, const char *pass, const char *out_path,
                    uint8_t device_id[static DEVICE_ID_LEN]) VL_MUST_CHECK;
/* Unlocks HOME/device.key. */
int identity_unlock(const char *home, const char *pass, struct identity *id) VL_MUST_CHECK;
void identity_free(struct identity *id);

#endif
