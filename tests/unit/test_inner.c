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
    m->naddr = 1;
    memcpy(m->address[0], address, strlen(address) + 1);
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
    assert_int_equal(p.naddr, 1);
    assert_string_equal(p.address[0], "ambassador@JKT");
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
    memcpy(m.sender, jkt.cert.device_id, DEVICE_ID_LEN);
    memcpy(m.role, "ambassador", 11);
    m.time = 1700000000;
    /* Three messages: read, delivered, delivered and read (issue 13 item 3). */
    m.nref = 3;
    for (size_t i = 0; i < 3; i++)
        randombytes_buf(m.ref_id[i], INNER_ID_LEN);
    m.receipt_kind[0] = INNER_RECEIPT_READ;
    m.receipt_kind[1] = INNER_RECEIPT_DELIVERED;
    m.receipt_kind[2] = INNER_RECEIPT_BOTH;
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

/* Offset of needle in p (the test knows it is there). */
static size_t find_bytes(const uint8_t *p, size_t len, const char *needle, size_t nl)
{
    for (size_t i = 0; i + nl <= len; i++)
        if (memcmp(p + i, needle, nl) == 0)
            return i;
    fail_msg("%.*s not found in the encoding", (int)nl, needle);
    return 0;
}

/*
 * Several addresses (issue 12, item 6): the receiver's check goes over the
 * list; the list is 1..16 canonical addresses, no two alike, refused
 * otherwise by the encoder and by the parser.
 */
static void test_address_list(void **state)
{
    static const char *const posts[INNER_ADDRESSES_MAX] = {
        "HQ",  "JKT", "OSL", "BKK", "LON", "PAR", "BER", "ROM",
        "MAD", "VIE", "OTT", "CAN", "DEL", "TYO", "SEL", "MNL"};
    struct inner m, p;
    struct buf b;
    size_t off;
    (void)state;

    make_msg(&m, &hq, "dcm@JKT");
    m.naddr = 2;
    memcpy(m.address[1], "ambassador@JKT", 15);
    encode(&m, hq.sign_sk, &b);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), 0);
    assert_int_equal(p.naddr, 2);
    assert_string_equal(p.address[0], "dcm@JKT");
    assert_string_equal(p.address[1], "ambassador@JKT");
    {
        char text[INNER_TO_TEXT_MAX + 1];
        inner_addresses_text(&p, text, sizeof(text));
        assert_string_equal(text, "dcm@JKT, ambassador@JKT");
    }
    /* Each address reaches its own device. */
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&hq, &jkt}), 0);
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&hq, &jkt_dcm}), 0);
    /* The same address twice: the second patched to equal the first, refused by the parser. */
    buf_free(&b);
    make_msg(&m, &hq, "dcm@JKT");
    m.naddr = 2;
    memcpy(m.address[1], "dcm@OSL", 8);
    encode(&m, hq.sign_sk, &b);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), 0);
    off = find_bytes(buf_data(&b), buf_size(&b), "\x07" "dcm@OSL", 8);
    memcpy((uint8_t *)buf_data(&b) + off + 5, "JKT", 3);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), VERR_BAD_FORMAT);
    /* ... and by the encoder. */
    buf_reset(&b);
    memcpy(m.address[1], "dcm@JKT", 8);
    assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), VERR_BAD_FORMAT);
    assert_int_equal(buf_size(&b), 0);
    m.naddr = 0;
    assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), VERR_BAD_FORMAT);
    m.naddr = INNER_ADDRESSES_MAX + 1;
    assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), VERR_BAD_FORMAT);
    /* Sixteen is the most: accepted; a count of 17 (or 0) is refused before anything is read. */
    m.naddr = INNER_ADDRESSES_MAX;
    for (size_t i = 0; i < INNER_ADDRESSES_MAX; i++)
        snprintf(m.address[i], sizeof(m.address[i]), "duty@%s", posts[i]);
    assert_int_equal(inner_sign_encode(&m, hq.sign_sk, &b), 0);
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&hq, &hq2}), 0);
    off = find_bytes(buf_data(&b), buf_size(&b), "\x07" "duty@HQ", 8);
    assert_int_equal(buf_data(&b)[off - 1], INNER_ADDRESSES_MAX);
    ((uint8_t *)buf_data(&b))[off - 1] = INNER_ADDRESSES_MAX + 1;
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), VERR_BAD_FORMAT);
    ((uint8_t *)buf_data(&b))[off - 1] = 0;
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), VERR_BAD_FORMAT);
    buf_free(&b);
}

struct wctx {
    const struct fx_dev *from, *to;
};

/* Transmitted form -> signed form for the envelope's sender -> parse -> verify. */
static int wire_verify(const uint8_t *p, size_t len, void *ctx)
{
    struct wctx *w = ctx;
    struct buf full;
    int r;

    if (buf_init(&full, INNER_MAX_LEN, 0) != 0)
        return VERR_NOMEM;
    r = inner_wire_decode(p, len, w->from->cert.device_id, w->from->cert.role, &full);
    if (r == 0) {
        struct vctx v = {w->from, w->to};
        r = parse_verify(buf_data(&full), buf_size(&full), &v);
    }
    buf_free(&full);
    return r;
}

/*
 * Issue 13 item 3: the sender id and role are not transmitted, yet signed:
 * the receiver puts the envelope's sender and its certificate's role back.
 * Another sender or role fails the signature; every mutation is refused.
 */
static void test_wire_form(void **state)
{
    struct inner m;
    struct buf b, w, back;
    struct wctx wc = {&hq, &jkt};
    (void)state;

    make_msg(&m, &hq, "ambassador@JKT");
    encode(&m, hq.sign_sk, &b);
    assert_int_equal(buf_init(&w, INNER_MAX_LEN, 0), 0);
    assert_int_equal(buf_init(&back, INNER_MAX_LEN, 0), 0);
    assert_int_equal(inner_wire_encode(buf_data(&b), buf_size(&b), &w), 0);
    assert_int_equal(buf_size(&w),
                     inner_padded_len(buf_size(&b) - DEVICE_ID_LEN - 1 - strlen(hq.cert.role)));
    assert_int_equal(inner_wire_decode(buf_data(&w), buf_size(&w), hq.cert.device_id,
                                       hq.cert.role, &back),
                     0);
    assert_int_equal(buf_size(&back), buf_size(&b));
    assert_memory_equal(buf_data(&back), buf_data(&b), buf_size(&b));
    assert_int_equal(wire_verify(buf_data(&w), buf_size(&w), &wc), 0);
    /* Claimed by another sender (its id and role put back): the signature fails. */
    assert_int_equal(wire_verify(buf_data(&w), buf_size(&w), &(struct wctx){&jkt_dcm, &jkt}),
                     VERR_BAD_SIGNATURE);
    buf_reset(&back);
    assert_int_equal(inner_wire_decode(buf_data(&w), buf_size(&w), hq.cert.device_id, "dcm", &back),
                     0);
    assert_int_not_equal(parse_verify(buf_data(&back), buf_size(&back), &(struct vctx){&hq, &jkt}),
                         0);
    /* Strict: empty, unpadded, a version 1 byte, an unknown type, truncated (each padded). */
    buf_reset(&back);
    assert_int_equal(inner_wire_decode(buf_data(&w), 0, hq.cert.device_id, "duty", &back),
                     VERR_BAD_FORMAT);
    assert_int_equal(inner_wire_decode(buf_data(&w), 10, hq.cert.device_id, "duty", &back),
                     VERR_BAD_FORMAT);
    {
        static const char *const bad[] = {"\x01\x01", "\x02\x07", "\x02\x01\x00"};
        static const int want[] = {VERR_BAD_VERSION, VERR_BAD_FORMAT, VERR_TRUNCATED};
        struct buf pb;
        assert_int_equal(buf_init(&pb, INNER_PADDED_MAX, 0), 0);
        for (size_t i = 0; i < 3; i++) {
            buf_reset(&pb);
            assert_int_equal(inner_pad((const uint8_t *)bad[i], strlen(bad[i]) + (i == 2), &pb), 0);
            assert_int_equal(inner_wire_decode(buf_data(&pb), buf_size(&pb), hq.cert.device_id,
                                               "duty", &back),
                             want[i]);
        }
        buf_free(&pb);
    }
    assert_int_equal(buf_size(&back), 0);
    mutation_sweep(buf_data(&w), buf_size(&w), wire_verify, &wc);
    buf_free(&w);
    buf_free(&back);
    buf_free(&b);
}

/*
 * A receipt about several messages (issue 13 item 3): 1..256 entries,
 * kinds 1..3, no message id twice; refused otherwise by the encoder and by
 * the parser (count checked before the entries are read).
 */
static void test_receipt_entries(void **state)
{
    struct inner m, p;
    struct buf b;
    size_t off;
    (void)state;

    memset(&m, 0, sizeof(m));
    m.type = INNER_TYPE_RECEIPT;
    randombytes_buf(m.id, INNER_ID_LEN);
    memcpy(m.sender, jkt.cert.device_id, DEVICE_ID_LEN);
    memcpy(m.role, "ambassador", 11);
    m.time = 1700000000;
    m.nref = INNER_RECEIPT_MAX;
    for (size_t i = 0; i < m.nref; i++) {
        randombytes_buf(m.ref_id[i], INNER_ID_LEN);
        m.receipt_kind[i] = (uint8_t)(1 + i % 3);
    }
    encode(&m, jkt.sign_sk, &b);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), 0);
    assert_int_equal(p.nref, INNER_RECEIPT_MAX);
    assert_memory_equal(p.ref_id[255], m.ref_id[255], INNER_ID_LEN);
    assert_int_equal(p.receipt_kind[255], m.receipt_kind[255]);
    assert_true(buf_size(&b) <= INNER_RECEIPT_LEN_MAX);
    assert_int_equal(parse_verify(buf_data(&b), buf_size(&b), &(struct vctx){&jkt, &hq}), 0);
    /* The count is a u16 right after the time: 257 and 0 are refused. */
    off = 2 + 16 + 16 + 1 + 10 + 8;
    assert_int_equal(buf_data(&b)[off], 1);
    assert_int_equal(buf_data(&b)[off + 1], 0);
    ((uint8_t *)buf_data(&b))[off + 1] = 1;
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), VERR_BAD_FORMAT);
    ((uint8_t *)buf_data(&b))[off] = 0;
    ((uint8_t *)buf_data(&b))[off + 1] = 0;
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), VERR_BAD_FORMAT);
    /* The second id made equal to the first: refused by the parser. */
    ((uint8_t *)buf_data(&b))[off] = 1;
    memcpy((uint8_t *)buf_data(&b) + off + 2 + 17, buf_data(&b) + off + 2, INNER_ID_LEN);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), VERR_BAD_FORMAT);
    /* ... and by the encoder; so are a kind 0 or 4, no entry, and 257 entries. */
    buf_reset(&b);
    memcpy(m.ref_id[1], m.ref_id[0], INNER_ID_LEN);
    assert_int_equal(inner_sign_encode(&m, jkt.sign_sk, &b), VERR_BAD_FORMAT);
    randombytes_buf(m.ref_id[1], INNER_ID_LEN);
    m.receipt_kind[7] = 0;
    assert_int_equal(inner_sign_encode(&m, jkt.sign_sk, &b), VERR_BAD_FORMAT);
    m.receipt_kind[7] = 4;
    assert_int_equal(inner_sign_encode(&m, jkt.sign_sk, &b), VERR_BAD_FORMAT);
    m.receipt_kind[7] = 2;
    m.nref = 0;
    assert_int_equal(inner_sign_encode(&m, jkt.sign_sk, &b), VERR_BAD_FORMAT);
    m.nref = INNER_RECEIPT_MAX + 1;
    assert_int_equal(inner_sign_encode(&m, jkt.sign_sk, &b), VERR_BAD_FORMAT);
    assert_int_equal(buf_size(&b), 0);
    buf_free(&b);
}

/*
 * Padding of the transmitted form (issue 13 item 3; PROTOCOL.md part 4
 * section 2): at least 256 bytes, Padme above, at most 12 % more; exactly
 * 0x80 then zeros, anything else refused.
 */
static void test_padding(void **state)
{
    static const struct {
        size_t n, padded;
    } cases[] = {{0, 256},     {109, 256},   {255, 256},   {256, 272},    {271, 272},
                 {272, 288},   {1158, 1216}, {1215, 1216}, {1216, 1280}, {204800, 208896}};
    uint8_t msg[600];
    struct buf b;
    size_t n;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (inner_padded_len(cases[i].n) != cases[i].padded)
            fail_msg("padded length of %zu: expected %zu, got %zu", cases[i].n, cases[i].padded,
                     inner_padded_len(cases[i].n));
    /* Never shorter, never more than 12 % above 256, never past INNER_PADDED_MAX. */
    for (size_t k = 0; k <= INNER_MAX_LEN; k += k < 5000 ? 1 : 997) {
        size_t p = inner_padded_len(k);
        if (p < k + 1 || (p > INNER_PAD_MIN && (p - k - 1) * 100 > (k + 1) * 12) ||
            p > INNER_PADDED_MAX)
            fail_msg("padded length of %zu is %zu", k, p);
    }
    assert_true(inner_padded_len(INNER_MAX_LEN) <= INNER_PADDED_MAX);
    randombytes_buf(msg, sizeof(msg));
    msg[sizeof(msg) - 1] = 0; /* a message may end in zero bytes: the marker says where */
    assert_int_equal(buf_init(&b, INNER_PADDED_MAX, 0), 0);
    assert_int_equal(inner_pad(msg, sizeof(msg), &b), 0);
    assert_int_equal(buf_size(&b), inner_padded_len(sizeof(msg)));
    assert_int_equal(buf_data(&b)[sizeof(msg)], 0x80);
    assert_int_equal(inner_unpad(buf_data(&b), buf_size(&b), &n), 0);
    assert_int_equal(n, sizeof(msg));
    /* One zero more or less, a marker that is not 0x80, a byte after the marker. */
    assert_int_equal(inner_unpad(buf_data(&b), buf_size(&b) - 1, &n), VERR_BAD_FORMAT);
    assert_int_equal(buf_put_u8(&b, 0), 0);
    assert_int_equal(inner_unpad(buf_data(&b), buf_size(&b), &n), VERR_BAD_FORMAT);
    buf_truncate(&b, buf_size(&b) - 1);
    ((uint8_t *)buf_data(&b))[sizeof(msg)] = 0x81;
    assert_int_equal(inner_unpad(buf_data(&b), buf_size(&b), &n), VERR_BAD_FORMAT);
    ((uint8_t *)buf_data(&b))[sizeof(msg)] = 0x80;
    ((uint8_t *)buf_data(&b))[buf_size(&b) - 1] = 1;
    assert_int_equal(inner_unpad(buf_data(&b), buf_size(&b), &n), VERR_BAD_FORMAT);
    /* A short message padded to 256 whose marker was moved (a shorter message claimed). */
    buf_reset(&b);
    assert_int_equal(inner_pad(msg, 100, &b), 0);
    assert_int_equal(buf_size(&b), 256);
    ((uint8_t *)buf_data(&b))[100] = 0;
    ((uint8_t *)buf_data(&b))[99] = 0x80;
    assert_int_equal(inner_unpad(buf_data(&b), buf_size(&b), &n), 0); /* 99 also pads to 256 */
    assert_int_equal(n, 99);
    /* All zeros, and sizes outside [256, INNER_PADDED_MAX]. */
    memset((uint8_t *)buf_data(&b), 0, buf_size(&b));
    assert_int_equal(inner_unpad(buf_data(&b), buf_size(&b), &n), VERR_BAD_FORMAT);
    assert_int_equal(inner_unpad(buf_data(&b), 255, &n), VERR_BAD_FORMAT);
    assert_int_equal(inner_unpad(buf_data(&b), INNER_PADDED_MAX + 1, &n), VERR_BAD_FORMAT);
    buf_free(&b);
}

/*
 * Version 1 (before the address list): read from a store, never sent or
 * accepted from the wire (PROTOCOL.md part 4 section 1).
 */
static void test_version_1_stored_only(void **state)
{
    struct inner m, p;
    struct buf b, v1, w;
    size_t off;
    uint8_t sig[SIG_LEN];
    (void)state;

    make_msg(&m, &hq, "ambassador@JKT");
    encode(&m, hq.sign_sk, &b);
    /* The same message as version 1: no address count, no attachment count, signed again. */
    off = find_bytes(buf_data(&b), buf_size(&b), "\x0e" "ambassador@JKT", 15) - 1;
    assert_int_equal(buf_init(&v1, INNER_MAX_LEN, 0), 0);
    assert_int_equal(buf_put_u8(&v1, 1), 0);
    assert_int_equal(buf_put_bytes(&v1, buf_data(&b) + 1, off - 1), 0);
    assert_int_equal(
        buf_put_bytes(&v1, buf_data(&b) + off + 1, buf_size(&b) - off - 1 - 1 - SIG_LEN), 0);
    assert_int_equal(sig_sign(sig, SIG_CTX_MESSAGE, buf_data(&v1), buf_size(&v1), hq.sign_sk), 0);
    assert_int_equal(buf_put_bytes(&v1, sig, SIG_LEN), 0);
    assert_int_equal(inner_parse(buf_data(&v1), buf_size(&v1), &p), 0);
    assert_int_equal(p.version, 1);
    assert_int_equal(p.naddr, 1);
    assert_string_equal(p.address[0], "ambassador@JKT");
    assert_int_equal(parse_verify(buf_data(&v1), buf_size(&v1), &(struct vctx){&hq, &jkt}), 0);
    /* Never transmitted: the encoder and the receiver's decoder refuse it. */
    assert_int_equal(buf_init(&w, INNER_PADDED_MAX, 0), 0);
    assert_int_equal(inner_wire_encode(buf_data(&v1), buf_size(&v1), &w), VERR_BAD_VERSION);
    assert_int_equal(inner_pad(buf_data(&v1), buf_size(&v1), &w), 0);
    {
        struct buf full;
        assert_int_equal(buf_init(&full, INNER_MAX_LEN, 0), 0);
        assert_int_equal(inner_wire_decode(buf_data(&w), buf_size(&w), hq.cert.device_id, "duty",
                                           &full),
                         VERR_BAD_VERSION);
        buf_free(&full);
    }
    /* Signed again, it is version 2. */
    buf_reset(&b);
    assert_int_equal(inner_sign_encode(&p, hq.sign_sk, &b), 0);
    assert_int_equal(buf_data(&b)[0], INNER_VERSION);
    assert_int_equal(inner_parse(buf_data(&b), buf_size(&b), &p), 0);
    assert_int_equal(p.version, INNER_VERSION);
    /* A version 1 receipt had kinds 1 and 2 only. */
    buf_reset(&v1);
    assert_int_equal(buf_put_bytes(&v1, (const uint8_t *)"\x01\x02", 2), 0);
    assert_int_equal(buf_put_bytes(&v1, buf_data(&b) + 2, 16 + 16), 0);
    assert_int_equal(buf_put_str8(&v1, "duty"), 0);
    assert_int_equal(buf_put_u64(&v1, 1700000000), 0);
    assert_int_equal(buf_put_bytes(&v1, buf_data(&b) + 2, 16), 0);
    assert_int_equal(buf_put_u8(&v1, INNER_RECEIPT_BOTH), 0);
    assert_int_equal(buf_put_bytes(&v1, sig, SIG_LEN), 0);
    assert_int_equal(inner_parse(buf_data(&v1), buf_size(&v1), &p), VERR_BAD_FORMAT);
    ((uint8_t *)buf_data(&v1))[buf_size(&v1) - SIG_LEN - 1] = INNER_RECEIPT_READ;
    assert_int_equal(inner_parse(buf_data(&v1), buf_size(&v1), &p), 0);
    assert_int_equal(p.nref, 1);
    buf_free(&w);
    buf_free(&v1);
    buf_free(&b);
}

/* The fuzzer's seeds are valid structure (their signatures are dummies). */
static void test_fuzz_seeds_parse(void **state)
{
    static const char *const seeds[] = {"flash_role",    "circular_all",      "device_addr",
                                        "receipt_read",  "receipt_delivered", "two_addresses",
                                        "sixteen_addresses", "receipt_batch",
                                        "wire_flash_role",   "wire_receipt_read",
                                        "v1_stored_message", "attachments"};
    (void)state;
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char path[512];
        struct buf b;
        struct inner m;
        snprintf(path, sizeof(path), "%s/fuzz/corpus/inner/%s", VALISE_SOURCE_DIR, seeds[i]);
        assert_int_equal(file_read(path, INNER_MAX_LEN, 0, &b), 0);
        if (strncmp(seeds[i], "wire_", 5) == 0) {
            /* As transmitted: the sender id and role put back first. */
            struct buf full;
            assert_int_equal(buf_init(&full, INNER_MAX_LEN, 0), 0);
            if (inner_wire_decode(buf_data(&b), buf_size(&b), hq.cert.device_id, "duty", &full) !=
                    0 ||
                inner_parse(buf_data(&full), buf_size(&full), &m) != 0)
                fail_msg("seed %s does not decode and parse", seeds[i]);
            buf_free(&full);
        } else if (inner_parse(buf_data(&b), buf_size(&b), &m) != 0) {
            fail_msg("seed %s does not parse", seeds[i]);
        }
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
        cmocka_unit_test(test_address_list),
        cmocka_unit_test(test_wire_form),
        cmocka_unit_test(test_receipt_entries),
        cmocka_unit_test(test_padding),
        cmocka_unit_test(test_version_1_stored_only),
        cmocka_unit_test(test_fuzz_seeds_parse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
