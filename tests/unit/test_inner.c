/*
 * test_inner.c - the signed inner message (client/inner.h): a valid message
 * and receipt, every truncation / bit flip / trailing byte refused by
 * parse + verify, a wrong key, a wrong signature context, a wrong recipient,
 * a forwarded message, a wrong role, a revoked or unknown sender, and caps.
 */
#include "testutil.h"

#include "client_fixture.h"
#include "fileio.h"
#include "inner.h"
#include "sig.h"
#include "text.h"

static struct fx_org org;
static struct fx_dev hq, hq2, jkt, jkt_dcm, gone;
static struct directory *dir;
static struct buf dirb;

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    fx_org_init(&org);
    if (fx_dev_make(&org, &hq, 1, "Anna", "HQ", "duty", 30) != 0 ||
        fx_dev_make(&org, &hq2, 2, "Anna", "HQ", "duty", 30) != 0 ||
        fx_dev_make(&org, &jkt, 3, "Budi", "JKT", "ambassador", 30) != 0 ||
        fx_dev_make(&org, &jkt_dcm, 4, "Citra", "JKT", "dcm", 30) != 0 ||
        fx_dev_make(&org, &gone, 5, "Dewi", "JKT", "ambassador", 30) != 0)
        return -1;
    const struct fx_dev *devs[] = {&hq, &hq2, &jkt, &jkt_dcm, &gone};
    const struct fx_dev *revs[] = {&gone};
    return fx_dir(&org, 3, devs, 5, revs, 1, &dir, &dirb);
}

static int teardown(void **state)
{
    (void)state;
    dir_free(dir);
    buf_free(&dirb);
    return 0;
}

static const char content[] = "Please deliver the note verbale today.";

static void make_msg(struct inner *m, const struct fx_dev *from, const char *address)
{
    memset(m, 0, sizeof(*m));
    m->type = INNER_TYPE_MESSAGE;
    randombytes_buf(m->id, INNER_ID_LEN);
    memcpy(m->sender, from->cert.device_id, DEVICE_ID_LEN);
    memcpy(m->role, from->cert.role, strlen(from->cert.role) + 1);
    m->time = (uint64_t)time(NULL);
    memcpy(m->address, address, strlen(address) + 1);
    m->precedence = 0;
    memcpy(m->label, "SECRET", 7);
    m->subject = (const uint8_t *)"Demarche";
    m->subject_len = 8;
    m->content = (const uint8_t *)content;
    m->content_len = sizeof(content) - 1;
}

static void encode(struct inner *m, const uint8_t *sk, struct buf *out)
{
    assert_int_equal(buf_init(out, INNER_MAX_LEN, 0), 0);
    assert_int_equal(inner_sign_encode(m, sk, out), 0);
}

struct vctx {
    const struct fx_dev *from, *to;
};

static int parse_verify(const uint8_t *p, size_t len, void *ctx)
{
    struct vctx *v = ctx;
    struct inner m;
    const struct cert *sc;
    int r;

    if ((r = inner_parse(p, len, &m)) != 0)
        return r;
    return inner_verify(p, len, &m, v->from->cert.device_id, &v->to->cert, dir, &org.pub,
                        (uint64_t)time(NULL), &sc);
}

static void test_valid_message(void **state)
{
    struct inner m, p;
    struct buf b;
    const struct cert *sc = NULL;
    (void)state;

    make_msg(&m, &hq, "ambassador@JKT");
    encode(&m, hq.sign_sk, &b);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), 0);
    assert_memory_equal(p.id, m.id, INNER_ID_LEN);
    assert_string_equal(p.address, "ambassador@JKT");
    assert_string_equal(p.label, "SECRET");
    assert_int_equal(p.content_len, sizeof(content) - 1);
    assert_memory_equal(p.content, content, p.content_len);
    assert_int_equal(inner_verify(buf_data(&b), buf_size(&b), &p, hq.cert.device_id, &jkt.cert, dir,
                                  &org.pub, (uint64_t)time(NULL), &sc),
                     0);
    assert_non_null(sc);
    assert_int_equal(sc->serial, hq.cert.serial);
    /* The sender's other device is included whatever the address. */
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&hq, &hq2}), 0);
    buf_free(&b);
}

static void test_mutations_message(void **state)
{
    struct inner m;
    struct buf b;
    struct vctx v = {&hq, &jkt};
    (void)state;

    make_msg(&m, &hq, "*@JKT");
    encode(&m, hq.sign_sk, &b);
    mutation_sweep(buf_data(&b), buf_size(&b), parse_verify, &v);
    buf_free(&b);
}

/* Issue 13 item 2: the trailing attachment section is signed with the message. */
static void make_section(struct buf *sec, size_t n)
{
    struct attach_desc d[ATTACH_MAX + 1];

    assert_int_equal(buf_init(sec, ATTACH_SECTION_MAX + ATTACH_DESC_MAX, BUF_SECRET), 0);
    for (size_t i = 0; i < n; i++) {
        memset(&d[i], 0, sizeof(d[i]));
        randombytes_buf(d[i].id, ATTACH_ID_LEN);
        randombytes_buf(d[i].key, ATTACH_KEY_LEN);
        randombytes_buf(d[i].hash, ATTACH_HASH_LEN);
        d[i].size = 1000 * (i + 1);
        memcpy(d[i].name, "scan.pdf", 9);
        memcpy(d[i].type, "application/pdf", 16);
    }
    if (n <= ATTACH_MAX) {
        assert_int_equal(attach_section_encode(d, n, sec), 0);
    } else {
        /* over the cap: written by hand */
        assert_int_equal(buf_put_u8(sec, (uint8_t)n), 0);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(attach_desc_encode(&d[i], sec), 0);
    }
    for (size_t i = 0; i < n; i++)
        attach_desc_wipe(&d[i]);
}

static void test_attachments(void **state)
{
    struct inner m, p;
    struct buf b, sec, v;
    struct attach_desc d[ATTACH_MAX];
    struct vctx vc = {&hq, &jkt};
    size_t n;
    (void)state;

    /* none: one count byte of 0 before the signature */
    make_msg(&m, &hq, "ambassador@JKT");
    encode(&m, hq.sign_sk, &b);
    assert_int_equal(buf_data(&b)[buf_size(&b) - SIG_LEN - 1], 0);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), 0);
    assert_int_equal(p.n_attach, 0);
    assert_int_equal(p.attach_section_len, 1);
    buf_free(&b);
    /* two, with an empty body: parsed back, verified, every mutation refused */
    make_section(&sec, 2);
    make_msg(&m, &hq, "ambassador@JKT");
    m.content = NULL;
    m.content_len = 0;
    m.attach_section = buf_data(&sec);
    m.attach_section_len = buf_size(&sec);
    encode(&m, hq.sign_sk, &b);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), 0);
    assert_int_equal(p.n_attach, 2);
    assert_int_equal(p.attach_section_len, buf_size(&sec));
    assert_memory_equal(p.attach_section, buf_data(&sec), buf_size(&sec));
    buf_view(&v, p.attach_section, p.attach_section_len);
    assert_int_equal(attach_section_parse(&v, d, &n), 0);
    assert_int_equal(n, 2);
    assert_true(d[1].size == 2000);
    attach_desc_wipe(&d[0]);
    attach_desc_wipe(&d[1]);
    mutation_sweep(buf_data(&b), buf_size(&b), parse_verify, &vc);
    buf_free(&b);
    /* a section that is not one the parser accepts is not signed */
    {
        uint8_t bad[ATTACH_SECTION_MAX];
        memcpy(bad, buf_data(&sec), buf_size(&sec));
        bad[0] = 3; /* says three, holds two */
        m.attach_section = bad;
        assert_int_equal(buf_init(&b, INNER_MAX_LEN, 0), 0);
        assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), VERR_TRUNCATED);
        assert_int_equal(buf_size(&b), 0);
        buf_free(&b);
    }
    buf_free(&sec);
    /* sixteen fit one message; seventeen are refused */
    make_section(&sec, ATTACH_MAX);
    make_msg(&m, &hq, "ambassador@JKT");
    m.content_len = sizeof(content) - 1;
    m.attach_section = buf_data(&sec);
    m.attach_section_len = buf_size(&sec);
    encode(&m, hq.sign_sk, &b);
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &vc), 0);
    buf_free(&b);
    buf_free(&sec);
    make_section(&sec, ATTACH_MAX + 1);
    m.attach_section = buf_data(&sec);
    m.attach_section_len = buf_size(&sec);
    assert_int_equal(buf_init(&b, INNER_MAX_LEN, 0), 0);
    assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), VERR_TOO_LARGE);
    buf_free(&b);
    buf_free(&sec);
}

static void test_mutations_receipt(void **state)
{
    struct inner m;
    struct buf b;
    struct vctx v = {&jkt, &hq};
    (void)state;

    memset(&m, 0, sizeof(m));
    m.type = INNER_TYPE_RECEIPT;
    randombytes_buf(m.id, INNER_ID_LEN);
    randombytes_buf(m.ref_id, INNER_ID_LEN);
    memcpy(m.sender, jkt.cert.device_id, DEVICE_ID_LEN);
    memcpy(m.role, "ambassador", 11);
    m.time = 1700000000;
    m.receipt_kind = INNER_RECEIPT_READ;
    encode(&m, jkt.sign_sk, &b);
    mutation_sweep(buf_data(&b), buf_size(&b), parse_verify, &v);
    buf_free(&b);
}

static void test_wrong_key(void **state)
{
    struct inner m;
    struct buf b;
    (void)state;

    /* Claims to be HQ, signed by the DCM's key. */
    make_msg(&m, &hq, "ambassador@JKT");
    encode(&m, jkt_dcm.sign_sk, &b);
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&hq, &jkt}),
                     VERR_BAD_SIGNATURE);
    buf_free(&b);
}

static void test_wrong_context(void **state)
{
    struct inner m;
    struct buf b;
    uint8_t sig[SIG_LEN];
    (void)state;

    make_msg(&m, &hq, "ambassador@JKT");
    encode(&m, hq.sign_sk, &b);
    /* The same bytes signed under another purpose's context must not verify. */
    assert_int_equal(
        sig_sign(sig, SIG_CTX_PREKEY, buf_data(&b), buf_size(&b) - SIG_LEN, hq.sign_sk), 0);
    memcpy((uint8_t *)buf_data(&b) + buf_size(&b) - SIG_LEN, sig, SIG_LEN);
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&hq, &jkt}),
                     VERR_BAD_SIGNATURE);
    buf_free(&b);
}

static void test_wrong_recipient(void **state)
{
    struct inner m;
    struct buf b;
    (void)state;

    make_msg(&m, &hq, "ambassador@JKT");
    encode(&m, hq.sign_sk, &b);
    /* The DCM at JKT is not behind ambassador@JKT. */
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&hq, &jkt_dcm}),
                     VERR_DENIED);
    buf_free(&b);
    {
        char addr[80] = "device:";
        char hex[33];
        assert_int_equal(text_hex_encode(hex, sizeof(hex), jkt.cert.device_id, 16), 0);
        memcpy(addr + 7, hex, 33);
        make_msg(&m, &hq, addr);
        encode(&m, hq.sign_sk, &b);
        assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&hq, &jkt}), 0);
        assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&hq, &jkt_dcm}),
                         VERR_DENIED);
        buf_free(&b);
    }
}

/*
 * The inner time against the receiver's clock: up to INNER_MAX_FUTURE
 * seconds ahead is clock skew and accepted; one second more is refused.
 * Old messages are accepted (an outbox may hold one for days).
 */
static void test_time_in_future(void **state)
{
    struct inner m, p;
    struct buf b;
    const struct cert *c;
    uint64_t now = (uint64_t)time(NULL);
    (void)state;

    make_msg(&m, &hq, "ambassador@JKT");
    m.time = now + INNER_MAX_FUTURE;
    encode(&m, hq.sign_sk, &b);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), 0);
    assert_int_equal(inner_verify(buf_data(&b), buf_size(&b), &p, hq.cert.device_id, &jkt.cert, dir,
                                  &org.pub, now, &c),
                     0);
    /* once the receiver's clock has moved on by a second less, one second too far */
    assert_int_equal(inner_verify(buf_data(&b), buf_size(&b), &p, hq.cert.device_id, &jkt.cert, dir,
                                  &org.pub, now - 1, &c),
                     VERR_NOT_YET_VALID);
    assert_null(c);
    buf_free(&b);
    make_msg(&m, &hq, "ambassador@JKT");
    m.time = now + 86400;
    encode(&m, hq.sign_sk, &b);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), 0);
    assert_int_equal(inner_verify(buf_data(&b), buf_size(&b), &p, hq.cert.device_id, &jkt.cert, dir,
                                  &org.pub, now, &c),
                     VERR_NOT_YET_VALID);
    /* accepted once the receiver's clock has reached it */
    assert_int_equal(inner_verify(buf_data(&b), buf_size(&b), &p, hq.cert.device_id, &jkt.cert, dir,
                                  &org.pub, now + 86400, &c),
                     0);
    buf_free(&b);
    make_msg(&m, &hq, "ambassador@JKT");
    m.time = now - 60 * 86400;
    encode(&m, hq.sign_sk, &b);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), 0);
    assert_int_equal(inner_verify(buf_data(&b), buf_size(&b), &p, hq.cert.device_id, &jkt.cert, dir,
                                  &org.pub, now, &c),
                     0);
    buf_free(&b);
}

static void test_forwarded_and_role(void **state)
{
    struct inner m;
    struct buf b;
    (void)state;

    /* HQ's genuine message re-sent by the DCM's device: the envelope sender differs. */
    make_msg(&m, &hq, "*@JKT");
    encode(&m, hq.sign_sk, &b);
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&jkt_dcm, &jkt}),
                     VERR_DENIED);
    buf_free(&b);
    /* A role the certificate does not give. */
    make_msg(&m, &hq, "*@JKT");
    memcpy(m.role, "minister", 9);
    encode(&m, hq.sign_sk, &b);
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&hq, &jkt}),
                     VERR_DENIED);
    buf_free(&b);
}

static void test_revoked_and_unknown_sender(void **state)
{
    struct inner m;
    struct buf b;
    struct fx_dev stranger;
    (void)state;

    make_msg(&m, &gone, "*@JKT");
    encode(&m, gone.sign_sk, &b);
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&gone, &jkt}),
                     VERR_REVOKED);
    buf_free(&b);
    assert_int_equal(fx_dev_make(&org, &stranger, 99, "Eko", "JKT", "duty", 30), 0);
    make_msg(&m, &stranger, "*@JKT");
    encode(&m, stranger.sign_sk, &b);
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&stranger, &jkt}),
                     VERR_UNKNOWN);
    buf_free(&b);
}

static void test_caps_and_fields(void **state)
{
    struct inner m;
    struct buf b;
    uint8_t *big = calloc(1, INNER_CONTENT_MAX + 1);
    (void)state;

    assert_non_null(big);
    assert_int_equal(buf_init(&b, INNER_MAX_LEN + 1024, 0), 0);
    make_msg(&m, &hq, "*@*");
    m.content = big;
    m.content_len = INNER_CONTENT_MAX;
    assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), 0);
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&hq, &jkt}), 0);
    buf_reset(&b);
    m.content_len = INNER_CONTENT_MAX + 1;
    assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), VERR_BAD_FORMAT);
    assert_int_equal(buf_size(&b), 0);
    make_msg(&m, &hq, "*@*");
    m.subject = (const uint8_t *)"two\nlines";
    m.subject_len = 9;
    assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), VERR_BAD_FORMAT);
    make_msg(&m, &hq, "*@*");
    memcpy(m.label, "secret", 7); /* lower case is not a label */
    assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), VERR_BAD_FORMAT);
    make_msg(&m, &hq, "AMBASSADOR@JKT");
    assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), VERR_BAD_FORMAT);
    make_msg(&m, &hq, "*@*");
    m.precedence = 4;
    assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), VERR_BAD_FORMAT);
    assert_int_equal(buf_size(&b), 0);
    buf_free(&b);
    free(big);
    {
        uint8_t p;
        assert_int_equal(inner_precedence_parse("FLASH", &p), 0);
        assert_int_equal(p, 0);
        assert_int_equal(inner_precedence_parse("ROUTINE", &p), 0);
        assert_int_equal(p, 3);
        assert_int_not_equal(inner_precedence_parse("flash", &p), 0);
    }
}

/* A peer's subject with a bidirectional override, a C1 control or malformed
 * UTF-8 is refused by the parser, not only by our own sender (issue 11 item 1). */
static void test_subject_text_rules(void **state)
{
    static const char *const bad[] = {"Dem\xe2\x80\xae", "Dem\xc2\x9b", "Dem\xc3", "Dem\xe2\x81\xa6",
                                      "Dem\xd8\x9c"};
    struct inner m, back;
    struct buf b;
    uint8_t copy[1024];
    size_t at = SIZE_MAX;
    (void)state;
    assert_int_equal(buf_init(&b, INNER_MAX_LEN, 0), 0);
    make_msg(&m, &hq, "*@*");
    m.subject = (const uint8_t *)"D\xc3\xa9marche XYZ";
    m.subject_len = 13;
    assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), 0);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &back), 0);
    assert_true(buf_size(&b) <= sizeof(copy));
    memcpy(copy, buf_data(&b), buf_size(&b));
    for (size_t i = 0; i + 3 <= buf_size(&b); i++)
        if (memcmp(copy + i, "XYZ", 3) == 0)
            at = i;
    assert_true(at != SIZE_MAX);
    memcpy(copy + at, "\xe2\x80\xae", 3); /* U+202E RIGHT-TO-LEFT OVERRIDE, same length */
    assert_int_equal(inner_parse(copy, buf_size(&b), &back), VERR_BAD_FORMAT);
    memcpy(copy + at, "\xc2\x85Z", 3); /* C1 control NEL */
    assert_int_equal(inner_parse(copy, buf_size(&b), &back), VERR_BAD_FORMAT);
    memcpy(copy + at, "\xed\xa0\x80", 3); /* a surrogate */
    assert_int_equal(inner_parse(copy, buf_size(&b), &back), VERR_BAD_FORMAT);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        buf_reset(&b);
        make_msg(&m, &hq, "*@*");
        m.subject = (const uint8_t *)bad[i];
        m.subject_len = strlen(bad[i]);
        if (inner_sign_encode(&m, hq.sign_sk, &b) != VERR_BAD_FORMAT)
            fail_msg("subject %zu: expected refused at encoding", i);
        assert_false(inner_valid_subject(m.subject, m.subject_len));
    }
    buf_free(&b);
}

/* The fuzzer's seeds are valid structure (their signatures are dummies). */
static void test_fuzz_seeds_parse(void **state)
{
    static const char *const seeds[] = {"flash_role",   "circular_all",      "device_addr",
                                        "receipt_read", "receipt_delivered", "attachments"};
    (void)state;
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char path[512];
        struct buf b;
        struct inner m;
        snprintf(path, sizeof(path), "%s/fuzz/corpus/inner/%s", VALISE_SOURCE_DIR, seeds[i]);
        assert_int_equal(file_read(path, INNER_MAX_LEN, 0, &b), 0);
        if (inner_parse(buf_data(&b), buf_size(&b), &m) != 0)
            fail_msg("seed %s does not parse", seeds[i]);
        buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_message),
        cmocka_unit_test(test_mutations_message),
        cmocka_unit_test(test_attachments),
        cmocka_unit_test(test_mutations_receipt),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_wrong_context),
        cmocka_unit_test(test_wrong_recipient),
        cmocka_unit_test(test_time_in_future),
        cmocka_unit_test(test_forwarded_and_role),
        cmocka_unit_test(test_revoked_and_unknown_sender),
        cmocka_unit_test(test_caps_and_fields),
        cmocka_unit_test(test_subject_text_rules),
        cmocka_unit_test(test_fuzz_seeds_parse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
