/*
 * registry.h - IT staff's record of what the organisation root has issued:
 * every certificate, its status, and the last directory version.
 *
 * Kept beside the keystore in the org directory ("registry", PROTOCOL.md
 * "Registry"). The whole file is signed by the organisation root (context
 * SIG_CTX_REGISTRY), so listing needs only org.pub and any alteration is
 * refused; it is only ever replaced whole (fileio.h file_replace), so a crash
 * leaves the old or the new registry, never a mix.
 */
#ifndef VALISE_REGISTRY_H
#define VALISE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "cert.h"

enum { REG_REASON_MAX = 128, REG_MAX_ENTRIES = 20000 };

enum reg_status { REG_ACTIVE = 0, REG_REVOKED = 1 };

struct reg_entry {
    struct cert cert;
    uint8_t status;
    uint64_t revoked_at;
    char reason[REG_REASON_MAX + 1];
};

struct registry {
    uint8_t org_id[ORG_ID_LEN];
    uint64_t next_serial;
    uint64_t dir_version;
    struct reg_entry *entries;
    size_t n;
};

/* A new, empty registry for org. */
void registry_init(struct registry *g, const struct orgpub *org);
int registry_load(const char *path, const struct orgpub *org, struct registry *g) VL_MUST_CHECK;
int registry_parse(const uint8_t *p, size_t len, const struct orgpub *org,
                   struct registry *g) VL_MUST_CHECK;
/* Encodes and signs with the root's secret key. */
int registry_encode(const struct registry *g, const uint8_t org_sk[static SIG_SK_LEN],
                    struct buf *out) VL_MUST_CHECK;
int registry_save(const char *path, const struct registry *g,
                  const uint8_t org_sk[static SIG_SK_LEN]) VL_MUST_CHECK;
void registry_free(struct registry *g);
/* Appends an entry (copied). */
int registry_add(struct registry *g, const struct cert *c) VL_MUST_CHECK;
/* The entry for a device id, or NULL. */
struct reg_entry *registry_find(struct registry *g, const uint8_t id[static DEVICE_ID_LEN]);
/* The entry with this serial, or NULL. */
struct reg_entry *registry_find_serial(struct registry *g, uint64_t serial);
/* 1 if the entry is neither revoked nor past its not_after at now. */
int registry_entry_active(const struct reg_entry *e, uint64_t now);

/* Why registry_admit refused a request (the CLI words the message). */
enum reg_refusal {
    REG_ADMITTED = 0,
    REG_SAME_DEVICE,     /* the device id is already enrolled */
    REG_SIGN_KEY_USED,   /* the Ed25519 key is certified for another device */
    REG_DH_KEY_USED,     /* the X25519 key is certified for another device */
    REG_NAME_HELD,       /* another person's active certificate holds the name */
    REG_PERSON_UNKNOWN,  /* --same-person-as names no certificate */
    REG_PERSON_INACTIVE, /* --same-person-as names a revoked or expired certificate */
    REG_PERSON_NAME,     /* the request's name is not that person's name */
};

/*
 * IT's admission rules for a new certificate from request q (PROTOCOL.md
 * "Registry", README "IT staff"). same_person: 0, or the serial of an active
 * certificate of the person this device belongs to. Refuses (VERR_EXISTS or
 * VERR_DENIED, *why and *conflict set) a device id, Ed25519 key or X25519 key
 * already in any certificate (active or revoked), and a name that equals,
 * ignoring ASCII case, the name of another person's active certificate. On
 * success person_id is the person's id: same_person's, or a fresh random one.
 */
int registry_admit(struct registry *g, const struct enrol_request *q, uint64_t same_person,
                   uint64_t now, uint8_t person_id[static PERSON_ID_LEN], enum reg_refusal *why,
                   const struct reg_entry **conflict) VL_MUST_CHECK;

#endif
