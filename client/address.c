/* address.c - addresses and fan-out (see address.h, PROTOCOL.md, part 4 "Addresses"). */
#include "address.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "text.h"

static int addr_split(const char *s, const char *at, struct address *a)
{
    size_t rl = (size_t)(at - s), pl = strlen(at + 1);

    if (rl == 0 || pl == 0)
        return VERR_BAD_FORMAT;
    if (rl == 1 && s[0] == '*') {
        if (pl == 1 && at[1] == '*') {
            a->kind = ADDR_ALL;
            return 0;
        }
        if (pl > POST_MAX)
            return VERR_BAD_FORMAT;
        memcpy(a->post, at + 1, pl + 1);
        if (!cert_valid_post(a->post))
            return VERR_BAD_FORMAT;
        a->kind = ADDR_POST;
        return 0;
    }
    if (rl > ROLE_MAX || pl > POST_MAX)
        return VERR_BAD_FORMAT;
    memcpy(a->role, s, rl);
    a->role[rl] = 0;
    memcpy(a->post, at + 1, pl + 1);
    if (!cert_valid_role(a->role) || !cert_valid_post(a->post))
        return VERR_BAD_FORMAT;
    a->kind = ADDR_ROLE;
    return 0;
}

int addr_parse(const char *s, struct address *a)
{
    const char *at;
    size_t len;

    memset(a, 0, sizeof(*a));
    len = strnlen(s, ADDR_TEXT_MAX + 1);
    if (len == 0 || len > ADDR_TEXT_MAX)
        return VERR_BAD_FORMAT;
    if (strncmp(s, "device:", 7) == 0) {
        if (len != 7 + 2 * DEVICE_ID_LEN || text_hex_decode(a->device, DEVICE_ID_LEN, s + 7) != 0)
            return VERR_BAD_FORMAT;
        /* Canonical form is lower-case hex: refuse upper case rather than repair it. */
        for (size_t i = 7; i < len; i++)
            if (s[i] >= 'A' && s[i] <= 'F')
                return VERR_BAD_FORMAT;
        a->kind = ADDR_DEVICE;
        return 0;
    }
    if (strncmp(s, "person:", 7) == 0) {
        if (len - 7 > PERSON_NAME_MAX || !cert_valid_name(s + 7, PERSON_NAME_MAX))
            return VERR_BAD_FORMAT;
        memcpy(a->person, s + 7, len - 7 + 1);
        a->kind = ADDR_PERSON;
        return 0;
    }
    if ((at = strchr(s, '@')) == NULL || strchr(at + 1, '@') != NULL)
        return VERR_BAD_FORMAT;
    return addr_split(s, at, a);
}

int addr_format(const struct address *a, char *out, size_t outsz)
{
    char hex[2 * DEVICE_ID_LEN + 1];
    int n;

    switch (a->kind) {
    case ADDR_ROLE:
        n = snprintf(out, outsz, "%s@%s", a->role, a->post);
        break;
    case ADDR_POST:
        n = snprintf(out, outsz, "*@%s", a->post);
        break;
    case ADDR_ALL:
        n = snprintf(out, outsz, "*@*");
        break;
    case ADDR_DEVICE:
        if (text_hex_encode(hex, sizeof(hex), a->device, DEVICE_ID_LEN) != 0)
            return VERR_INTERNAL;
        n = snprintf(out, outsz, "device:%s", hex);
        break;
    case ADDR_PERSON:
        n = snprintf(out, outsz, "person:%s", a->person);
        break;
    default:
        return VERR_USAGE;
    }
    if (n < 0 || (size_t)n >= outsz)
        return VERR_TOO_LARGE;
    return 0;
}

int addr_matches(const struct address *a, const struct cert *c)
{
    switch (a->kind) {
    case ADDR_ROLE:
        return strcmp(a->role, c->role) == 0 && strcmp(a->post, c->post) == 0;
    case ADDR_POST:
        return strcmp(a->post, c->post) == 0;
    case ADDR_ALL:
        return 1;
    case ADDR_DEVICE:
        return memcmp(a->device, c->device_id, DEVICE_ID_LEN) == 0;
    case ADDR_PERSON:
        return strcmp(a->person, c->name) == 0;
    default:
        return 0;
    }
}

/* The sender's own other devices: the person id IT assigned, never the
 * name a device asked for (issue 11 item 1; PROTOCOL.md part 4 "Addresses"). */
static int addr_same_person(const struct cert *c, const struct cert *sender)
{
    return memcmp(c->person_id, sender->person_id, PERSON_ID_LEN) == 0 &&
           memcmp(c->device_id, sender->device_id, DEVICE_ID_LEN) != 0;
}

int addr_person_id(const struct address *a, const struct directory *d, const struct orgpub *org,
                   uint64_t now, uint8_t person_id[static PERSON_ID_LEN])
{
    size_t count = dir_cert_count(d);
    int found = 0;

    if (a->kind != ADDR_PERSON)
        return VERR_USAGE;
    for (size_t i = 0; i < count; i++) {
        const struct cert *c = dir_cert_at(d, i);

        if (strcmp(a->person, c->name) != 0 || dir_check_cert(d, c, org, now) != 0)
            continue;
        if (!found) {
            memcpy(person_id, c->person_id, PERSON_ID_LEN);
            found = 1;
        } else if (memcmp(person_id, c->person_id, PERSON_ID_LEN) != 0) {
            return VERR_AMBIGUOUS;
        }
    }
    return found ? 0 : VERR_UNKNOWN;
}

int addr_resolve_list(const struct address *a, size_t na, const struct directory *d,
                      const struct orgpub *org, uint64_t now, const struct cert *sender,
                      uint8_t (*ids)[DEVICE_ID_LEN], size_t max, size_t *n)
{
    size_t count = dir_cert_count(d);
    uint8_t person[ADDR_LIST_MAX][PERSON_ID_LEN];
    int have_person[ADDR_LIST_MAX] = {0}, r;

    *n = 0;
    if (na == 0 || na > ADDR_LIST_MAX)
        return VERR_USAGE;
    for (size_t k = 0; k < na; k++) {
        if (a[k].kind != ADDR_PERSON)
            continue;
        /* The name stands for exactly one person; their devices go by person id. */
        r = addr_person_id(&a[k], d, org, now, person[k]);
        if (r == VERR_AMBIGUOUS)
            return r;
        have_person[k] = r == 0;
    }
    for (size_t i = 0; i < count; i++) {
        const struct cert *c = dir_cert_at(d, i);
        int dup = 0, named = 0;

        if (memcmp(c->device_id, sender->device_id, DEVICE_ID_LEN) == 0)
            continue;
        for (size_t k = 0; k < na && !named; k++) {
            if (a[k].kind == ADDR_PERSON)
                named = have_person[k] && memcmp(c->person_id, person[k], PERSON_ID_LEN) == 0;
            else
                named = addr_matches(&a[k], c);
        }
        if (!named && !addr_same_person(c, sender))
            continue;
        /* A revoked, expired or foreign certificate gets nothing. */
        if (dir_check_cert(d, c, org, now) != 0)
            continue;
        for (size_t j = 0; j < *n; j++)
            if (memcmp(ids[j], c->device_id, DEVICE_ID_LEN) == 0)
                dup = 1;
        if (dup)
            continue;
        if (*n == max)
            return VERR_LIMIT;
        memcpy(ids[*n], c->device_id, DEVICE_ID_LEN);
        (*n)++;
    }
    return 0;
}

int addr_resolve(const struct address *a, const struct directory *d, const struct orgpub *org,
                 uint64_t now, const struct cert *sender, uint8_t (*ids)[DEVICE_ID_LEN], size_t max,
                 size_t *n)
{
    return addr_resolve_list(a, 1, d, org, now, sender, ids, max, n);
}

int addr_includes(const struct address *a, const struct cert *receiver, const struct cert *sender)
{
    return addr_matches(a, receiver) || addr_same_person(receiver, sender);
}

int addr_includes_list(const struct address *a, size_t na, const struct cert *receiver,
                       const struct cert *sender)
{
    for (size_t k = 0; k < na; k++)
        if (addr_matches(&a[k], receiver))
            return 1;
    return addr_same_person(receiver, sender);
}
