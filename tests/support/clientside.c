/* clientside.c - a client device for the client's integration tests (see clientside.h). */
#include "clientside.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "buf.h"
#include "fileio.h"
#include "identity.h"

int side_make(const struct tpki *p, struct side *s, const char *name, const char *post,
              const char *role, uint64_t serial, const uint8_t *person_id, const char *pass)
{
    return side_make_from(p, s, name, post, role, serial, person_id, pass,
                          (uint64_t)time(NULL) - 3600);
}

int side_make_from(const struct tpki *p, struct side *s, const char *name, const char *post,
                   const char *role, uint64_t serial, const uint8_t *person_id, const char *pass,
                   uint64_t not_before)
{
    char req[TPATH + 8];
    uint8_t devid[DEVICE_ID_LEN];
    struct identity id;
    struct cert *c = &s->dev.cert;
    struct buf b;
    uint64_t now = (uint64_t)time(NULL);
    int r;

    memset(s, 0, sizeof(*s));
    if ((r = file_join(s->home, sizeof(s->home), p->dir, name)) != 0)
        return r;
    snprintf(req, sizeof(req), "%s.req", s->home);
    if ((r = identity_create(s->home, name, pass, req, devid)) != 0 ||
        (r = identity_unlock(s->home, pass, &id)) != 0)
        return r;
    memcpy(c->device_id, id.device_id, DEVICE_ID_LEN);
    memcpy(c->sign_pk, id.sign_pk, SIG_PK_LEN);
    memcpy(c->dh_pk, id.dh_pk, DH_PK_LEN);
    identity_free(&id);
    memcpy(c->person_id, person_id != NULL ? person_id : c->device_id, PERSON_ID_LEN);
    c->serial = serial;
    memcpy(c->org_id, p->org.id, ORG_ID_LEN);
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->post, sizeof(c->post), "%s", post);
    snprintf(c->role, sizeof(c->role), "%s", role);
    c->not_before = not_before;
    c->not_after = now + 86400;
    if ((r = buf_init(&b, CERT_MAX_LEN, 0)) != 0)
        return r;
    if ((r = cert_sign(c, p->org_sk, &b)) == 0) {
        memcpy(s->dev.cert_bytes, buf_data(&b), buf_size(&b));
        s->dev.cert_len = buf_size(&b);
    }
    buf_free(&b);
    return r;
}

int side_enroll(const struct tpki *p, struct side *s, int port, const char *pass)
{
    struct buf org;
    char url[64];
    int r;

    snprintf(url, sizeof(url), "ws://127.0.0.1:%d", port);
    if (s->m == NULL && (r = mbox_open(&s->m, s->home, pass)) != 0)
        return r;
    if ((r = file_read(p->orgpub_path, ORGPUB_MAX_LEN, 0, &org)) != 0)
        return r;
    r = mbox_enroll(s->m, s->dev.cert_bytes, s->dev.cert_len, buf_data(&org), buf_size(&org), url,
                    "valise-relay", NULL, (uint64_t)time(NULL));
    buf_free(&org);
    return r;
}
