/*
 * address.h - message addresses and their fan-out (DESIGN.md "Trust and
 * keys": addresses; "End-to-end encryption": fan-out). Syntax in
 * PROTOCOL.md, part 4 "Addresses":
 *
 *   role@POST        every current device with that role at that post
 *   *@POST           every current device at that post (a circular)
 *   *@*              every current device (a circular to all posts)
 *   device:HEX32     one device, by its 16-byte id in hex
 *   person:NAME      every current device of the one person (person id)
 *                    whose current certificates carry NAME
 *
 * Contract:
 *  - addr_parse is strict (role and post syntax of cert.h, exact hex) and
 *    addr_format gives back the canonical text, which is what the inner
 *    message carries and signs.
 *  - addr_resolve lists the devices behind an address in the newest
 *    directory: certificates that pass dir_check_cert at now (so revoked and
 *    expired devices get nothing), plus the sender's own other devices (same
 *    person id, never the name), never the sender's own device. The order is
 *    the directory's (serial order), without duplicates. person:NAME must
 *    name exactly one person id among the current certificates:
 *    VERR_AMBIGUOUS if two persons carry the name.
 *  - A message carries 1..ADDR_LIST_MAX addresses (issue 12, item 6):
 *    addr_resolve_list and addr_includes_list take the union.
 *  - addr_includes is the receiver's check that a message's address covers
 *    it: its own certificate matches the address (person:NAME: its own name
 *    is NAME, which IT's uniqueness rule makes one person), or it is another
 *    device of the sender's person (same person id).
 */
#ifndef VALISE_ADDRESS_H
#define VALISE_ADDRESS_H

#include <stddef.h>
#include <stdint.h>

#include "cert.h"
#include "dir.h"

enum addr_kind { ADDR_ROLE = 1, ADDR_POST, ADDR_ALL, ADDR_DEVICE, ADDR_PERSON };

enum {
    ADDR_TEXT_MAX = 80,
    ADDR_LIST_MAX = 16, /* addresses one message carries (issue 12, item 6) */
};

struct address {
    enum addr_kind kind;
    char role[ROLE_MAX + 1];
    char post[POST_MAX + 1];
    uint8_t device[DEVICE_ID_LEN];
    char person[PERSON_NAME_MAX + 1];
};

int addr_parse(const char *s, struct address *a) VL_MUST_CHECK;
/* Canonical text into out (outsz > ADDR_TEXT_MAX). */
int addr_format(const struct address *a, char *out, size_t outsz) VL_MUST_CHECK;
/* 1 if the certificate c is behind address a (ignores validity). */
int addr_matches(const struct address *a, const struct cert *c);
/*
 * Devices for a message from sender: up to max ids into ids, count in *n.
 * VERR_LIMIT if more than max.
 */
int addr_resolve(const struct address *a, const struct directory *d, const struct orgpub *org,
                 uint64_t now, const struct cert *sender, uint8_t (*ids)[DEVICE_ID_LEN], size_t max,
                 size_t *n) VL_MUST_CHECK;
/*
 * The same for a message to several addresses a[0..na-1] (1..ADDR_LIST_MAX):
 * the union, in directory order, without duplicates. VERR_AMBIGUOUS if any
 * person:NAME names two persons (the message is never sent to both).
 */
int addr_resolve_list(const struct address *a, size_t na, const struct directory *d,
                      const struct orgpub *org, uint64_t now, const struct cert *sender,
                      uint8_t (*ids)[DEVICE_ID_LEN], size_t max, size_t *n) VL_MUST_CHECK;
/*
 * person:NAME: the one person id among the current certificates of d
 * carrying NAME into person_id. VERR_UNKNOWN if none, VERR_AMBIGUOUS if more.
 */
int addr_person_id(const struct address *a, const struct directory *d, const struct orgpub *org,
                   uint64_t now, uint8_t person_id[static PERSON_ID_LEN]) VL_MUST_CHECK;
/* 1 if a message from sender to a reaches the device of receiver. */
int addr_includes(const struct address *a, const struct cert *receiver, const struct cert *sender);
/* 1 if any of a[0..na-1] reaches the receiver, or it is another device of the sender's person. */
int addr_includes_list(const struct address *a, size_t na, const struct cert *receiver,
                       const struct cert *sender);

#endif
