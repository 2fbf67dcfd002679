/* registry.c - IT staff's issuance record (see registry.h). */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fileio.h"

static const uint8_t reg_magic[4] = {'V', 'R', 'E', 'G'};
enum {
    REG_VERSION = 2, /* 2: certificates v2 (person id), 16-byte org id */
    REG_ENTRY_MAX_LEN = CERT_MAX_LEN + 1 + 8 + 1 + REG_REASON_MAX,
    REG_MAX_LEN = 4 + 1 + ORG_ID_LEN + 8 + 8 + 4 + REG_MAX_ENTRIES * REG_ENTRY_MAX_LEN + SIG_LEN,
};

void registry_init(struct registry *g, const struct orgpub *org)
{
    memset(g, 0, sizeof(*g));
    memcpy(g->org_id, org->id, ORG_ID_LEN);
    g->next_serial = 1;
}

void registry_free(struct registry *g)
{
    if (g == NULL)
        return;
    free(g->entries);
    memset(g, 0, sizeof(*g));
}

int registry_parse(const uint8_t *p, size_t len, const struct orgpub *org, struct registry *g)
{
    struct buf b;
    uint8_t magic[4], ver, rlen;
    uint32_t n;
    int r = VERR_INTERNAL;

    registry_init(g, org);
    /* The root's signature over everything before it comes first: nothing
     * unauthenticated is interpreted. */
    if (len < SIG_LEN) {
        r = VERR_TRUNCATED;
        goto out;
    }
    if ((r = sig_verify(p + len - SIG_LEN, SIG_CTX_REGISTRY, p, len - SIG_LEN, org->pk)) != 0)
        goto out;
    buf_view(&b, p, len - SIG_LEN);
    if ((r = buf_get_bytes(&b, magic, sizeof(magic))) != 0)
        goto out;
    if (memcmp(magic, reg_magic, sizeof(magic)) != 0) {
        r = VERR_BAD_MAGIC;
        goto out;
    }
    if ((r = buf_get_u8(&b, &ver)) != 0)
        goto out;
    if (ver != REG_VERSION) {
        r = VERR_BAD_VERSION;
        goto out;
    }
    if ((r = buf_get_bytes(&b, g->org_id, ORG_ID_LEN)) != 0 ||
        (r = buf_get_u64(&b, &g->next_serial)) != 0 ||
        (r = buf_get_u64(&b, &g->dir_version)) != 0 || (r = buf_get_u32(&b, &n)) != 0)
        goto out;
    if (memcmp(g->org_id, org->id, ORG_ID_LEN) != 0) {
        r = VERR_WRONG_ORG;
        goto out;
    }
    if (n > REG_MAX_ENTRIES || n > buf_left(&b) / CERT_MIN_LEN) {
        r = n > REG_MAX_ENTRIES ? VERR_TOO_LARGE : VERR_TRUNCATED;
        goto out;
    }
    if (n > 0 && (g->entries = calloc(n, sizeof(*g->entries))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    for (g->n = 0; g->n < n; g->n++) {
        struct reg_entry *e = &g->entries[g->n];

        if ((r = cert_read(&b, &e->cert)) != 0 || (r = buf_get_u8(&b, &e->status)) != 0 ||
            (r = buf_get_u64(&b, &e->revoked_at)) != 0 || (r = buf_get_u8(&b, &rlen)) != 0)
            goto out;
        if (e->status > REG_REVOKED || rlen > REG_REASON_MAX ||
            e->cert.serial >= g->next_serial || (g->n > 0 && e->cert.serial <= e[-1].cert.serial)) {
            r = VERR_BAD_FORMAT;
            goto out;
        }
        if ((r = buf_get_bytes(&b, (uint8_t *)e->reason, rlen)) != 0)
            goto out;
        e->reason[rlen] = '\0';
        if (rlen > 0 && !cert_valid_name(e->reason, REG_REASON_MAX)) {
            r = VERR_BAD_FORMAT;
            goto out;
        }
        /* Every certificate must be one this root really signed. */
        if ((r = cert_verify(&e->cert, org, e->cert.not_before)) != 0)
            goto out;
    }
    r = buf_expect_end(&b);
out:
    if (r != 0)
        registry_free(g);
    return r;
}

int registry_load(const char *path, const struct orgpub *org, struct registry *g)
{
    struct buf f;
    int r;

    if ((r = file_read(path, REG_MAX_LEN, 0, &f)) != 0)
        return r;
    r = registry_parse(buf_data(&f), buf_size(&f), org, g);
    buf_free(&f);
    return r;
}

int registry_encode(const struct registry *g, const uint8_t org_sk[static SIG_SK_LEN],
                    struct buf *out)
{
    uint8_t sig[SIG_LEN];
    int r;

    if ((r = buf_init(out, REG_MAX_LEN, 0)) != 0)
        return r;
    if ((r = buf_put_bytes(out, reg_magic, sizeof(reg_magic))) != 0 ||
        (r = buf_put_u8(out, REG_VERSION)) != 0 ||
        (r = buf_put_bytes(out, g->org_id, ORG_ID_LEN)) != 0 ||
        (r = buf_put_u64(out, g->next_serial)) != 0 ||
        (r = buf_put_u64(out, g->dir_version)) != 0 || (r = buf_put_u32(out, (uint32_t)g->n)) != 0)
        goto out;
    for (size_t i = 0; i < g->n; i++) {
        const struct reg_entry *e = &g->entries[i];
        size_t rl = strlen(e->reason);

        if ((r = cert_encode_body(&e->cert, out)) != 0 ||
            (r = buf_put_bytes(out, e->cert.sig, SIG_LEN)) != 0 ||
            (r = buf_put_u8(out, e->status)) != 0 || (r = buf_put_u64(out, e->revoked_at)) != 0 ||
            (r = buf_put_u8(out, (uint8_t)rl)) != 0 ||
            (r = buf_put_bytes(out, (const uint8_t *)e->reason, rl)) != 0)
            goto out;
    }
    if ((r = sig_sign(sig, SIG_CTX_REGISTRY, buf_data(out), buf_size(out), org_sk)) != 0)
        goto out;
    r = buf_put_bytes(out, sig, sizeof(sig));
out:
    if (r != 0)
        buf_free(out);
    return r;
}

int registry_save(const char *path, const struct registry *g,
                  const uint8_t org_sk[static SIG_SK_LEN])
{
    struct buf b;
    int r;

    if ((r = registry_encode(g, org_sk, &b)) != 0)
        return r;
    r = file_replace(path, buf_data(&b), buf_size(&b), 0600);
    buf_free(&b);
    return r;
}

int registry_add(struct registry *g, const struct cert *c)
{
    struct reg_entry *ne;

    if (g->n >= REG_MAX_ENTRIES)
        return VERR_LIMIT;
    if ((ne = realloc(g->entries, (g->n + 1) * sizeof(*ne))) == NULL)
        return VERR_NOMEM;
    g->entries = ne;
    memset(&ne[g->n], 0, sizeof(ne[g->n]));
    ne[g->n].cert = *c;
    ne[g->n].status = REG_ACTIVE;
    g->n++;
    return 0;
}

struct reg_entry *registry_find(struct registry *g, const uint8_t id[static DEVICE_ID_LEN])
{
    for (size_t i = 0; i < g->n; i++)
        if (memcmp(g->entries[i].cert.device_id, id, DEVICE_ID_LEN) == 0)
            return &g->entries[i];
    return NULL;
}

struct reg_entry *registry_find_serial(struct registry *g, uint64_t serial)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->entries[i].cert.serial == serial)
            return &g->entries[i];
    return NULL;
}

int registry_entry_active(const struct reg_entry *e, uint64_t now)
{
    return e->status == REG_ACTIVE && now >= e->cert.not_before && now < e->cert.not_after;
}

static int person_id_used(const struct registry *g, const uint8_t id[static PERSON_ID_LEN])
{
    for (size_t i = 0; i < g->n; i++)
        if (memcmp(g->entries[i].cert.person_id, id, PERSON_ID_LEN) == 0)
            return 1;
    return 0;
}

int registry_admit(struct registry *g, const struct enrol_request *q, uint64_t same_person,
                   uint64_t now, uint8_t person_id[static PERSON_ID_LEN], enum reg_refusal *why,
                   const struct reg_entry **conflict)
{
    const struct reg_entry *p = NULL;
    int r = VERR_INTERNAL;

    *why = REG_ADMITTED;
    *conflict = NULL;
    /* One device, one certificate; a key serves one device (issue 11 item 1:
     * the request proves possession of the Ed25519 key only). */
    for (size_t i = 0; i < g->n; i++) {
        const struct reg_entry *e = &g->entries[i];

        if (memcmp(e->cert.device_id, q->device_id, DEVICE_ID_LEN) == 0)
            *why = REG_SAME_DEVICE;
        else if (memcmp(e->cert.sign_pk, q->sign_pk, SIG_PK_LEN) == 0)
            *why = REG_SIGN_KEY_USED;
        else if (memcmp(e->cert.dh_pk, q->dh_pk, DH_PK_LEN) == 0)
            *why = REG_DH_KEY_USED;
        if (*why != REG_ADMITTED) {
            *conflict = e;
            r = VERR_EXISTS;
            goto out;
        }
    }
    if (same_person != 0) {
        if ((p = registry_find_serial(g, same_person)) == NULL) {
            *why = REG_PERSON_UNKNOWN;
            r = VERR_UNKNOWN;
            goto out;
        }
        *conflict = p;
        if (!registry_entry_active(p, now)) {
            *why = REG_PERSON_INACTIVE;
            r = VERR_DENIED;
            goto out;
        }
        /* One person, one name: person:NAME stays unambiguous. */
        if (strcmp(p->cert.name, q->name) != 0) {
            *why = REG_PERSON_NAME;
            r = VERR_DENIED;
            goto out;
        }
        *conflict = NULL;
        memcpy(person_id, p->cert.person_id, PERSON_ID_LEN);
    } else {
        do
            randombytes_buf(person_id, PERSON_ID_LEN);
        while (sodium_is_zero(person_id, PERSON_ID_LEN) || person_id_used(g, person_id));
    }
    /* A name belongs to one person among the active certificates. */
    for (size_t i = 0; i < g->n; i++) {
        const struct reg_entry *e = &g->entries[i];

        if (registry_entry_active(e, now) && cert_names_clash(e->cert.name, q->name) &&
            memcmp(e->cert.person_id, person_id, PERSON_ID_LEN) != 0) {
            *why = REG_NAME_HELD;
            *conflict = e;
            r = VERR_DENIED;
            goto out;
        }
    }
    r = 0;
out:
    if (r != 0)
        sodium_memzero(person_id, PERSON_ID_LEN);
    return r;
}
