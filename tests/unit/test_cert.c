/*
 * test_cert.c - org.pub, enrolment requests, certificates, the directory and
 * the registry: valid objects, every mutation, and each rule broken.
 */
#include <sodium.h>

#include "testutil.h"

#include "cert.h"
#include "dir.h"
#include "registry.h"

enum { NOW = 1800000000 };

struct org {
    struct orgpub pub;
    uint8_t sk[SIG_SK_LEN];
};

struct device {
    uint8_t sign_sk[SIG_SK_LEN];
    uint8_t dh_sk[32];
    struct enrol_request req;
};

static struct org org_a, org_b;

static void make_org(struct org *o, const char *name)
{
    memset(o, 0, sizeof(*o));
    crypto_sign_keypair(o->pub.pk, o->sk);
    memcpy(o->pub.name, name, strlen(name) + 1);
    orgpub_id(o->pub.id, o->pub.pk);
}

static void make_device(struct device *d, const char *name)
{
    memset(d, 0, sizeof(*d));
    crypto_sign_keypair(d->req.sign_pk, d->sign_sk);
    randombytes_buf(d->dh_sk, sizeof(d->dh_sk));
    assert_int_equal(crypto_scalarmult_base(d->req.dh_pk, d->dh_sk), 0);
    randombytes_buf(d->req.device_id, DEVICE_ID_LEN);
    memcpy(d->req.name, name, strlen(name) + 1);
    d->req.created = NOW;
}

static void make_cert(struct cert *c, const struct org *o, const struct device *d,
                      uint64_t serial, const char *post, const char *role, struct buf *out)
{
    memset(c, 0, sizeof(*c));
    c->serial = serial;
    memcpy(c->org_id, o->pub.id, ORG_ID_LEN);
    memcpy(c->device_id, d->req.device_id, DEVICE_ID_LEN);
    randombytes_buf(c->person_id, PERSON_ID_LEN); /* a new person each time */
    c->person_id[0] |= 1;
    memcpy(c->name, d->req.name, sizeof(c->name));
    memcpy(c->post, post, strlen(post) + 1);
    memcpy(c->role, role, strlen(role) + 1);
    memcpy(c->sign_pk, d->req.sign_pk, SIG_PK_LEN);
    memcpy(c->dh_pk, d->req.dh_pk, DH_PK_LEN);
    c->not_before = NOW - 100;
    c->not_after = NOW + 86400;
    assert_int_equal(cert_sign(c, o->sk, out), 0);
}

static int setup(void **state)
{
    (void)state;
    make_org(&org_a, "Ministry A");
    make_org(&org_b, "Ministry B");
    return 0;
}

/* ---- org.pub ---- */

static int parse_orgpub(const uint8_t *p, size_t len, void *ctx)
{
    struct orgpub o;
    (void)ctx;
    return orgpub_parse(p, len, &o);
}

static void test_orgpub(void **state)
{
    struct buf b;
    struct orgpub o;
    (void)state;
    assert_int_equal(orgpub_encode(&org_a.pub, &b), 0);
    assert_int_equal(orgpub_parse(buf_data(&b), buf_size(&b), &o), 0);
    assert_string_equal(o.name, "Ministry A");
    assert_memory_equal(o.id, org_a.pub.id, ORG_ID_LEN);
    /* org.pub carries no signature of its own (it is the trust anchor,
     * checked out of band by its org id), so the sweep is structural: every
     * truncation, a trailing byte, another version. */
    for (size_t n = 0; n < buf_size(&b); n++)
        assert_int_not_equal(parse_orgpub(buf_data(&b), n, NULL), 0);
    {
        uint8_t m[ORGPUB_MAX_LEN + 1];
        memcpy(m, buf_data(&b), buf_size(&b));
        m[buf_size(&b)] = 0;
        assert_int_equal(parse_orgpub(m, buf_size(&b) + 1, NULL), VERR_TRAILING);
        m[4] = 2;
        assert_int_equal(parse_orgpub(m, buf_size(&b), NULL), VERR_BAD_VERSION);
    }
    buf_free(&b);
}

/* ---- enrolment request ---- */

static int parse_request(const uint8_t *p, size_t len, void *ctx)
{
    struct enrol_request q;
    (void)ctx;
    return request_parse(p, len, &q);
}

static void test_request_valid_and_mutations(void **state)
{
    struct device d;
    struct enrol_request q;
    struct buf b;
    (void)state;
    make_device(&d, "Anna Lindqvist");
    assert_int_equal(request_encode_sign(&d.req, d.sign_sk, &b), 0);
    assert_int_equal(request_parse(buf_data(&b), buf_size(&b), &q), 0);
    assert_memory_equal(q.device_id, d.req.device_id, DEVICE_ID_LEN);
    assert_string_equal(q.name, "Anna Lindqvist");
    mutation_sweep(buf_data(&b), buf_size(&b), parse_request, NULL);
    buf_free(&b);
}

static void test_request_substituted_key_rejected(void **state)
{
    struct device d, e;
    struct buf b;
    uint8_t m[REQUEST_MAX_LEN];
    (void)state;
    make_device(&d, "Anna");
    make_device(&e, "Mallory");
    assert_int_equal(request_encode_sign(&d.req, d.sign_sk, &b), 0);
    /* swap in another device's signing key: the self-signature no longer holds */
    memcpy(m, buf_data(&b), buf_size(&b));
    memcpy(m + 4 + 1 + DEVICE_ID_LEN + 1 + 4, e.req.sign_pk, SIG_PK_LEN);
    assert_int_equal(parse_request(m, buf_size(&b), NULL), VERR_BAD_SIGNATURE);
    buf_free(&b);
}

static void test_request_degenerate_dh_key_rejected(void **state)
{
    /* 0 and a point of order 8 on Curve25519 (both well known) */
    static const uint8_t low_order[32] = {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae,
                                          0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
                                          0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd,
                                          0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00};
    struct device d;
    struct buf b;
    (void)state;
    make_device(&d, "Anna");
    memset(d.req.dh_pk, 0, DH_PK_LEN);
    assert_int_equal(request_encode_sign(&d.req, d.sign_sk, &b), 0);
    assert_int_equal(parse_request(buf_data(&b), buf_size(&b), NULL), VERR_BAD_KEY);
    buf_free(&b);
    memcpy(d.req.dh_pk, low_order, DH_PK_LEN);
    assert_int_equal(request_encode_sign(&d.req, d.sign_sk, &b), 0);
    assert_int_equal(parse_request(buf_data(&b), buf_size(&b), NULL), VERR_BAD_KEY);
    buf_free(&b);
}

/* ---- certificate ---- */

static int parse_verify_cert(const uint8_t *p, size_t len, void *ctx)
{
    struct cert c;
    int r;
    (void)ctx;
    if ((r = cert_parse(p, len, &c)) != 0)
        return r;
    return cert_verify(&c, &org_a.pub, NOW);
}

static void test_cert_valid_and_mutations(void **state)
{
    struct device d;
    struct cert c, back;
    struct buf b, again;
    (void)state;
    make_device(&d, "Budi Santoso");
    make_cert(&c, &org_a, &d, 7, "JKT", "ambassador", &b);
    assert_int_equal(cert_parse(buf_data(&b), buf_size(&b), &back), 0);
    assert_int_equal(cert_verify(&back, &org_a.pub, NOW), 0);
    assert_string_equal(back.post, "JKT");
    assert_string_equal(back.role, "ambassador");
    /* canonical: re-encoding gives the same bytes */
    assert_int_equal(cert_encode(&back, &again), 0);
    assert_int_equal(buf_size(&again), buf_size(&b));
    assert_memory_equal(buf_data(&again), buf_data(&b), buf_size(&b));
    buf_free(&again);
    mutation_sweep(buf_data(&b), buf_size(&b), parse_verify_cert, NULL);
    buf_free(&b);
}

static void test_cert_rules(void **state)
{
    struct device d;
    struct cert c, forged;
    struct buf b;
    uint8_t m[CERT_MAX_LEN];
    (void)state;
    make_device(&d, "Budi");
    make_cert(&c, &org_a, &d, 1, "JKT", "duty", &b);
    assert_int_equal(cert_verify(&c, &org_b.pub, NOW), VERR_WRONG_ORG);
    assert_int_equal(cert_verify(&c, &org_a.pub, c.not_after), VERR_EXPIRED);
    assert_int_equal(cert_verify(&c, &org_a.pub, c.not_before - 1), VERR_NOT_YET_VALID);
    /* wrong version byte: version 1 (no person id) is no longer read */
    memcpy(m, buf_data(&b), buf_size(&b));
    assert_int_equal(m[4], 2);
    m[4] = 1;
    assert_int_equal(cert_parse(m, buf_size(&b), &forged), VERR_BAD_VERSION);
    m[4] = 3;
    assert_int_equal(cert_parse(m, buf_size(&b), &forged), VERR_BAD_VERSION);
    buf_free(&b);
    /* claims org A but is signed by org B's key */
    forged = c;
    assert_int_equal(cert_sign(&forged, org_b.sk, &b), 0);
    assert_int_equal(cert_verify(&forged, &org_a.pub, NOW), VERR_BAD_SIGNATURE);
    buf_free(&b);
}


/* VCRT version 2: the person id right after the device id (PROTOCOL.md
 * "Device certificate"), never all-zero; org id of 16 bytes. */
static void test_cert_person_id(void **state)
{
    struct device d;
    struct cert c, back;
    struct buf b;
    uint8_t m[CERT_MAX_LEN];
    (void)state;
    assert_int_equal(ORG_ID_LEN, 16);
    assert_int_equal(CERT_MAX_LEN, 320);
    make_device(&d, "Budi");
    make_cert(&c, &org_a, &d, 3, "JKT", "duty", &b);
    assert_memory_equal(buf_data(&b) + 13, org_a.pub.id, ORG_ID_LEN);
    assert_memory_equal(buf_data(&b) + 29, d.req.device_id, DEVICE_ID_LEN);
    assert_memory_equal(buf_data(&b) + 45, c.person_id, PERSON_ID_LEN);
    assert_int_equal(buf_data(&b)[61], 4); /* name length */
    assert_int_equal(cert_parse(buf_data(&b), buf_size(&b), &back), 0);
    assert_memory_equal(back.person_id, c.person_id, PERSON_ID_LEN);
    /* the person id is signed: another person's id breaks the root signature */
    memcpy(m, buf_data(&b), buf_size(&b));
    m[45] ^= 0x80;
    assert_int_equal(parse_verify_cert(m, buf_size(&b), NULL), VERR_BAD_SIGNATURE);
    /* an all-zero person id is refused when parsing and when encoding */
    memset(m + 45, 0, PERSON_ID_LEN);
    assert_int_equal(cert_parse(m, buf_size(&b), &back), VERR_BAD_FORMAT);
    buf_free(&b);
    memset(c.person_id, 0, PERSON_ID_LEN);
    assert_int_equal(cert_sign(&c, org_a.sk, &b), VERR_BAD_FORMAT);
}

/* Names, posts and roles (issue 11 item 1): no control, C1 or bidirectional
 * characters, no malformed UTF-8; posts and roles are real names. */
static void test_text_field_rules(void **state)
{
    static const char *const bad_names[] = {
        "Anna\x01", "Anna\x7f", "Anna\xc2\x85",       /* C0, DEL, C1 (NEL) */
        "Anna\xe2\x80\xae" "tsiuqdniL",               /* U+202E RIGHT-TO-LEFT OVERRIDE */
        "\xe2\x81\xa6" "Anna", "Anna\xe2\x80\x8f",    /* U+2066 isolate, U+200F RLM */
        "Anna\xd8\x9c", "Anna\xe2\x80\x8e",           /* U+061C ALM, U+200E LRM */
        "Anna\xc0\xa0", "Anna\xed\xa0\x80",           /* overlong, surrogate */
        "Anna\xf4\x90\x80\x80", "Anna\xe2\x80",       /* > U+10FFFF, truncated */
    };
    static const char *const bad_posts[] = {"-", "-X", "X-", "A--B", "", "jkt", "J K"};
    static const char *const bad_roles[] = {"-", "-x", "x-", "a--b", "", "Duty"};
    struct device d;
    struct cert c;
    struct buf b;
    uint8_t m[CERT_MAX_LEN], rq[REQUEST_MAX_LEN];
    size_t at;
    (void)state;
    assert_true(cert_valid_name("Anna Lindqvist", PERSON_NAME_MAX));
    assert_true(cert_valid_name("Zo\xc3\xab \xd8\xb9\xd9\x84\xd9\x8a", PERSON_NAME_MAX));
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
        if (cert_valid_name(bad_names[i], PERSON_NAME_MAX))
            fail_msg("name %zu accepted, expected refused", i);
    assert_true(cert_valid_post("UN-GVA"));
    assert_true(cert_valid_post("HQ"));
    assert_true(cert_valid_post("X"));
    assert_true(cert_valid_role("deputy-head"));
    for (size_t i = 0; i < sizeof(bad_posts) / sizeof(bad_posts[0]); i++)
        if (cert_valid_post(bad_posts[i]))
            fail_msg("post '%s' accepted, expected refused", bad_posts[i]);
    for (size_t i = 0; i < sizeof(bad_roles) / sizeof(bad_roles[0]); i++)
        if (cert_valid_role(bad_roles[i]))
            fail_msg("role '%s' accepted, expected refused", bad_roles[i]);
    /* a certificate whose name bytes hide a right-to-left override does not parse */
    make_device(&d, "Anna XYZ");
    make_cert(&c, &org_a, &d, 4, "HQ", "duty", &b);
    memcpy(m, buf_data(&b), buf_size(&b));
    at = 62 + 5;
    assert_memory_equal(m + at, "XYZ", 3);
    memcpy(m + at, "\xe2\x80\xae", 3);
    assert_int_equal(cert_parse(m, buf_size(&b), &c), VERR_BAD_FORMAT);
    /* a certificate for the post "-" does not parse either */
    buf_free(&b);
    make_device(&d, "Anna");
    make_cert(&c, &org_a, &d, 5, "X", "duty", &b);
    memcpy(m, buf_data(&b), buf_size(&b));
    at = 62 + 4; /* post str8 after the name "Anna" */
    assert_int_equal(m[at], 1);
    assert_int_equal(m[at + 1], 'X');
    m[at + 1] = '-';
    assert_int_equal(cert_parse(m, buf_size(&b), &c), VERR_BAD_FORMAT);
    buf_free(&b);
    c.post[0] = '-';
    c.post[1] = '\0';
    assert_int_equal(cert_sign(&c, org_a.sk, &b), VERR_BAD_FORMAT);
    /* an enrolment request with such a name is refused (before its signature) */
    make_device(&d, "Anna XYZ");
    assert_int_equal(request_encode_sign(&d.req, d.sign_sk, &b), 0);
    memcpy(rq, buf_data(&b), buf_size(&b));
    at = 4 + 1 + DEVICE_ID_LEN + 1 + 5;
    assert_memory_equal(rq + at, "XYZ", 3);
    memcpy(rq + at, "\xe2\x81\xa6", 3);
    assert_int_equal(parse_request(rq, buf_size(&b), NULL), VERR_BAD_FORMAT);
    buf_free(&b);
    memcpy(d.req.name, "Anna\xe2\x80\xae", 8);
    assert_int_equal(request_encode_sign(&d.req, d.sign_sk, &b), VERR_BAD_FORMAT);
    /* org id for reading aloud: 8 groups of 4 hex digits */
    {
        uint8_t id[ORG_ID_LEN];
        char text[ORG_ID_TEXT_LEN];
        for (size_t i = 0; i < ORG_ID_LEN; i++)
            id[i] = (uint8_t)(0x10 * i + i);
        orgpub_id_text(text, id);
        assert_string_equal(text, "0011 2233 4455 6677 8899 aabb ccdd eeff");
    }
}

/* ---- directory ---- */

static struct buf dir_bytes_fixture;

static void build_directory(struct buf *out, uint64_t version, struct cert certs[3],
                            struct device devs[3])
{
    struct buf tmp;
    struct dir_revocation rev;

    for (int i = 0; i < 3; i++) {
        make_device(&devs[i], i == 0 ? "Anna" : i == 1 ? "Budi" : "Chen");
        make_cert(&certs[i], &org_a, &devs[i], (uint64_t)(i + 1), i == 0 ? "HQ" : "JKT",
                  i == 2 ? "duty" : "ambassador", &tmp);
        buf_free(&tmp);
    }
    memset(&rev, 0, sizeof(rev));
    rev.serial = 3;
    memcpy(rev.device_id, certs[2].device_id, DEVICE_ID_LEN);
    rev.revoked_at = NOW - 10;
    assert_int_equal(dir_encode_sign(version, NOW, NOW + 7 * 86400, &org_a.pub, certs, 2, &rev, 1, org_a.sk, out),
                     0);
}

static int parse_dir(const uint8_t *p, size_t len, void *ctx)
{
    struct directory *d = NULL;
    int r;
    (void)ctx;
    r = dir_parse_verify(p, len, &org_a.pub, &d);
    dir_free(d);
    return r;
}

static void test_directory(void **state)
{
    struct cert certs[3];
    struct device devs[3];
    struct directory *d = NULL;
    struct buf b;
    uint8_t m[2048];
    size_t n;
    (void)state;
    build_directory(&b, 5, certs, devs);
    assert_int_equal(dir_parse_verify(buf_data(&b), buf_size(&b), &org_a.pub, &d), 0);
    assert_int_equal(dir_version(d), 5);
    assert_int_equal(dir_cert_count(d), 2);
    assert_non_null(dir_find_device(d, certs[0].device_id));
    assert_null(dir_find_device(d, certs[2].device_id));
    assert_ptr_equal(dir_find_serial(d, 2), dir_cert_at(d, 1));
    assert_null(dir_find_serial(d, 3)); /* revoked: not listed */
    assert_int_equal(dir_revokes_serial(d, 3), 1);
    assert_int_equal(dir_revokes_serial(d, 1), 0);
    assert_int_equal(dir_check_cert(d, &certs[0], &org_a.pub, NOW), 0);
    assert_int_equal(dir_check_cert(d, &certs[2], &org_a.pub, NOW), VERR_REVOKED);
    assert_int_equal(dir_check_cert(d, &certs[0], &org_a.pub, certs[0].not_after + 1),
                     VERR_EXPIRED);
    assert_memory_equal(dir_bytes(d, &n), buf_data(&b), buf_size(&b));
    dir_free(d);
    /* another organisation's root */
    assert_int_equal(dir_parse_verify(buf_data(&b), buf_size(&b), &org_b.pub, &d), VERR_WRONG_ORG);
    assert_null(d);
    /* wrong format version */
    assert_true(buf_size(&b) <= sizeof(m));
    memcpy(m, buf_data(&b), buf_size(&b));
    m[4] = 9;
    assert_int_equal(parse_dir(m, buf_size(&b), NULL), VERR_BAD_VERSION);
    dir_bytes_fixture = b;
}

static void test_directory_mutations(void **state)
{
    (void)state;
    mutation_sweep(buf_data(&dir_bytes_fixture), buf_size(&dir_bytes_fixture), parse_dir, NULL);
    buf_free(&dir_bytes_fixture);
}

/* Re-signs a directory body (everything before the signature) after an edit. */
static void resign_dir(uint8_t *p, size_t len)
{
    assert_true(len > SIG_LEN);
    assert_int_equal(sig_sign(p + len - SIG_LEN, SIG_CTX_DIRECTORY, p, len - SIG_LEN, org_a.sk), 0);
}

/*
 * Directory v2's validity period (PROTOCOL.md part 1 "Directory"): it is
 * covered by the root's signature, issued_at < expires_at is required, and
 * format version 1 (no expiry) is refused even when properly signed.
 */
static void test_directory_expiry(void **state)
{
    enum { ISSUED_OFF = 4 + 1 + ORG_ID_LEN + 8, EXPIRES_OFF = ISSUED_OFF + 8 };
    struct cert certs[3];
    struct device devs[3];
    struct directory *d = NULL;
    struct buf b, tmp;
    uint8_t m[2048];
    size_t len;
    (void)state;

    build_directory(&b, 7, certs, devs);
    len = buf_size(&b);
    assert_true(len <= sizeof(m));
    assert_int_equal(dir_parse_verify(buf_data(&b), len, &org_a.pub, &d), 0);
    assert_int_equal(dir_issued_at(d), NOW);
    assert_int_equal(dir_expires_at(d), NOW + 7 * 86400);
    dir_free(d);
    /* The expiry is signed: pushing it later without the root's key is refused. */
    memcpy(m, buf_data(&b), len);
    m[EXPIRES_OFF + 6] ^= 0x01; /* a few minutes later */
    assert_int_equal(parse_dir(m, len, NULL), VERR_BAD_SIGNATURE);
    /* issued_at == expires_at and issued_at > expires_at: refused, even signed by the root. */
    memcpy(m, buf_data(&b), len);
    memcpy(m + EXPIRES_OFF, m + ISSUED_OFF, 8);
    resign_dir(m, len);
    assert_int_equal(parse_dir(m, len, NULL), VERR_BAD_FORMAT);
    m[EXPIRES_OFF + 4] = (uint8_t)(m[ISSUED_OFF + 4] - 1); /* NOW's byte 4 is not 0 */
    resign_dir(m, len);
    assert_int_equal(parse_dir(m, len, NULL), VERR_BAD_FORMAT);
    /* Format version 1 is no longer read. */
    memcpy(m, buf_data(&b), len);
    m[4] = 1;
    resign_dir(m, len);
    assert_int_equal(parse_dir(m, len, NULL), VERR_BAD_VERSION);
    /* The encoder refuses a period that ends before it starts. */
    assert_int_equal(dir_encode_sign(8, NOW, NOW, &org_a.pub, certs, 2, NULL, 0, org_a.sk, &tmp),
                     VERR_USAGE);
    assert_int_equal(dir_encode_sign(8, NOW, NOW - 1, &org_a.pub, certs, 2, NULL, 0, org_a.sk, &tmp),
                     VERR_USAGE);
    buf_free(&b);
}

static void test_directory_order_enforced(void **state)
{
    struct cert certs[3];
    struct device devs[3];
    struct buf b, tmp;
    (void)state;
    build_directory(&tmp, 1, certs, devs);
    buf_free(&tmp);
    certs[0].serial = 9; /* now out of order; re-sign so only order is wrong */
    assert_int_equal(cert_sign(&certs[0], org_a.sk, &tmp), 0);
    buf_free(&tmp);
    assert_int_equal(dir_encode_sign(1, NOW, NOW + 7 * 86400, &org_a.pub, certs, 2, NULL, 0, org_a.sk, &b),
                     VERR_USAGE);
}

/* ---- registry ---- */

static int parse_registry(const uint8_t *p, size_t len, void *ctx)
{
    struct registry g;
    int r;
    (void)ctx;
    r = registry_parse(p, len, &org_a.pub, &g);
    if (r == 0)
        registry_free(&g);
    return r;
}

static void test_registry(void **state)
{
    struct registry g, back;
    struct device d;
    struct cert c;
    struct buf cb, b;
    (void)state;
    registry_init(&g, &org_a.pub);
    make_device(&d, "Anna");
    make_cert(&c, &org_a, &d, 1, "HQ", "duty", &cb);
    buf_free(&cb);
    g.next_serial = 2;
    assert_int_equal(registry_add(&g, &c), 0);
    g.entries[0].status = REG_REVOKED;
    g.entries[0].revoked_at = NOW;
    memcpy(g.entries[0].reason, "lost", 5);
    assert_int_equal(registry_encode(&g, org_a.sk, &b), 0);
    assert_int_equal(registry_parse(buf_data(&b), buf_size(&b), &org_a.pub, &back), 0);
    assert_int_equal(back.n, 1);
    assert_int_equal(back.entries[0].status, REG_REVOKED);
    assert_string_equal(back.entries[0].reason, "lost");
    assert_non_null(registry_find(&back, d.req.device_id));
    registry_free(&back);
    /* signed by the root: a status flip is detected like any other change */
    mutation_sweep(buf_data(&b), buf_size(&b), parse_registry, NULL);
    assert_int_equal(registry_parse(buf_data(&b), buf_size(&b), &org_b.pub, &back),
                     VERR_BAD_SIGNATURE);
    buf_free(&b);
    registry_free(&g);
}


/* IT's admission rules (issue 11 item 1): one person per name, keys used once. */
static void add_entry(struct registry *g, struct device *d, const char *post, const char *role)
{
    struct cert c;
    struct buf cb;
    char name[PERSON_NAME_MAX + 1];

    memcpy(name, d->req.name, sizeof(name));
    make_device(d, name);
    memset(&c, 0, sizeof(c));
    make_cert(&c, &org_a, d, g->next_serial, post, role, &cb);
    buf_free(&cb);
    g->next_serial++;
    assert_int_equal(registry_add(g, &c), 0);
}

static void test_registry_admit(void **state)
{
    struct registry g;
    struct device anna, req, lost;
    enum reg_refusal why;
    const struct reg_entry *e;
    uint8_t pid[PERSON_ID_LEN], anna_pid[PERSON_ID_LEN];
    (void)state;
    registry_init(&g, &org_a.pub);
    memset(&anna, 0, sizeof(anna));
    memcpy(anna.req.name, "Anna Lindqvist", 15);
    add_entry(&g, &anna, "HQ", "duty");               /* serial 1 */
    memcpy(anna_pid, g.entries[0].cert.person_id, PERSON_ID_LEN);
    memset(&lost, 0, sizeof(lost));
    memcpy(lost.req.name, "Carla Rossi", 12);
    add_entry(&g, &lost, "GVA", "consul");            /* serial 2, revoked below */
    g.entries[1].status = REG_REVOKED;

    /* the issue's scenario: a clerk's request says "Anna Lindqvist" */
    make_device(&req, "Anna Lindqvist");
    assert_int_equal(registry_admit(&g, &req.req, 0, NOW, pid, &why, &e), VERR_DENIED);
    assert_int_equal(why, REG_NAME_HELD);
    assert_non_null(e);
    assert_int_equal(e->cert.serial, 1);
    /* also with another case */
    make_device(&req, "ANNA lindqvist");
    assert_int_equal(registry_admit(&g, &req.req, 0, NOW, pid, &why, &e), VERR_DENIED);
    assert_int_equal(why, REG_NAME_HELD);
    /* IT say it is Anna's second device: same person id */
    make_device(&req, "Anna Lindqvist");
    assert_int_equal(registry_admit(&g, &req.req, 1, NOW, pid, &why, &e), 0);
    assert_memory_equal(pid, anna_pid, PERSON_ID_LEN);
    /* ... but one person has one name */
    make_device(&req, "Anna L.");
    assert_int_equal(registry_admit(&g, &req.req, 1, NOW, pid, &why, &e), VERR_DENIED);
    assert_int_equal(why, REG_PERSON_NAME);
    /* --same-person-as must name an existing, active certificate */
    make_device(&req, "Carla Rossi");
    assert_int_equal(registry_admit(&g, &req.req, 9, NOW, pid, &why, &e), VERR_UNKNOWN);
    assert_int_equal(why, REG_PERSON_UNKNOWN);
    assert_int_equal(registry_admit(&g, &req.req, 2, NOW, pid, &why, &e), VERR_DENIED);
    assert_int_equal(why, REG_PERSON_INACTIVE);
    assert_int_equal(registry_admit(&g, &req.req, 1, g.entries[0].cert.not_after, pid, &why, &e),
                     VERR_DENIED);
    assert_int_equal(why, REG_PERSON_INACTIVE);
    /* a revoked certificate's name is free again: a new person */
    assert_int_equal(registry_admit(&g, &req.req, 0, NOW, pid, &why, &e), 0);
    assert_false(sodium_is_zero(pid, PERSON_ID_LEN));
    assert_memory_not_equal(pid, anna_pid, PERSON_ID_LEN);
    assert_memory_not_equal(pid, g.entries[1].cert.person_id, PERSON_ID_LEN);
    /* the same device enrolled twice */
    req = anna;
    assert_int_equal(registry_admit(&g, &req.req, 1, NOW, pid, &why, &e), VERR_EXISTS);
    assert_int_equal(why, REG_SAME_DEVICE);
    /* Anna's X25519 key in a new device's request (it proves no possession of it) */
    make_device(&req, "Budi Santoso");
    memcpy(req.req.dh_pk, anna.req.dh_pk, DH_PK_LEN);
    assert_int_equal(registry_admit(&g, &req.req, 0, NOW, pid, &why, &e), VERR_EXISTS);
    assert_int_equal(why, REG_DH_KEY_USED);
    assert_int_equal(e->cert.serial, 1);
    /* Anna's Ed25519 key under a new device id */
    make_device(&req, "Budi Santoso");
    memcpy(req.req.sign_pk, anna.req.sign_pk, SIG_PK_LEN);
    assert_int_equal(registry_admit(&g, &req.req, 0, NOW, pid, &why, &e), VERR_EXISTS);
    assert_int_equal(why, REG_SIGN_KEY_USED);
    /* keys of a revoked certificate stay used */
    make_device(&req, "Budi Santoso");
    memcpy(req.req.dh_pk, lost.req.dh_pk, DH_PK_LEN);
    assert_int_equal(registry_admit(&g, &req.req, 0, NOW, pid, &why, &e), VERR_EXISTS);
    assert_int_equal(why, REG_DH_KEY_USED);
    assert_int_equal(e->cert.serial, 2);
    registry_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orgpub),
        cmocka_unit_test(test_request_valid_and_mutations),
        cmocka_unit_test(test_request_substituted_key_rejected),
        cmocka_unit_test(test_request_degenerate_dh_key_rejected),
        cmocka_unit_test(test_cert_valid_and_mutations),
        cmocka_unit_test(test_cert_rules),
        cmocka_unit_test(test_cert_person_id),
        cmocka_unit_test(test_text_field_rules),
        cmocka_unit_test(test_directory),
        cmocka_unit_test(test_directory_mutations),
        cmocka_unit_test(test_directory_order_enforced),
        cmocka_unit_test(test_directory_expiry),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_registry_admit),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, setup, NULL);
}
