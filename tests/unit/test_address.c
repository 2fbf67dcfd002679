/*
 * test_address.c - address syntax and fan-out (client/address.h): every form
 * parses and formats canonically, malformed ones are refused, and resolution
 * against a directory reaches exactly the current devices behind the
 * address plus the sender's own other devices, never a revoked or expired
 * device and never the sender itself.
 */
#include "testutil.h"

#include "address.h"
#include "client_fixture.h"
#include "text.h"

static struct fx_org org;
static struct fx_dev hq, hq_phone, amb1, amb2, dcm, revoked, expired, geneva;
static struct directory *dir;
static struct buf dirb;

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    fx_org_init(&org);
    if (fx_dev_make(&org, &hq, 1, "Anna", "HQ", "duty", 30) != 0 ||
        fx_dev_make(&org, &hq_phone, 2, "Anna", "HQ", "duty", 30) != 0 ||
        fx_dev_make(&org, &amb1, 3, "Budi", "JKT", "ambassador", 30) != 0 ||
        fx_dev_make(&org, &amb2, 4, "Budi", "JKT", "ambassador", 30) != 0 ||
        fx_dev_make(&org, &dcm, 5, "Citra", "JKT", "dcm", 30) != 0 ||
        fx_dev_make(&org, &revoked, 6, "Dewi", "JKT", "ambassador", 30) != 0 ||
        fx_dev_make(&org, &expired, 7, "Eko", "JKT", "ambassador", -1) != 0 ||
        fx_dev_make(&org, &geneva, 8, "Fatima", "GVA", "ambassador", 30) != 0)
        return -1;
    const struct fx_dev *devs[] = {&hq, &hq_phone, &amb1, &amb2, &dcm, &revoked, &expired, &geneva};
    const struct fx_dev *revs[] = {&revoked};
    return fx_dir(&org, 7, devs, 8, revs, 1, &dir, &dirb);
}

static int teardown(void **state)
{
    (void)state;
    dir_free(dir);
    buf_free(&dirb);
    return 0;
}

static void roundtrip(const char *s, enum addr_kind kind)
{
    struct address a;
    char out[ADDR_TEXT_MAX + 1];

    if (addr_parse(s, &a) != 0)
        fail_msg("expected '%s' to parse", s);
    assert_int_equal(a.kind, kind);
    assert_int_equal(addr_format(&a, out, sizeof(out)), 0);
    assert_string_equal(out, s);
}

static void test_parse_valid(void **state)
{
    (void)state;
    roundtrip("ambassador@JKT", ADDR_ROLE);
    roundtrip("duty-officer@HQ", ADDR_ROLE);
    roundtrip("*@JKT", ADDR_POST);
    roundtrip("*@*", ADDR_ALL);
    roundtrip("device:00112233445566778899aabbccddeeff", ADDR_DEVICE);
    roundtrip("person:Budi Santoso", ADDR_PERSON);
}

static void test_parse_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "@",
        "a@",
        "@JKT",
        "Ambassador@JKT",
        "ambassador@jkt",
        "a@b@C",
        "ambassador",
        "*@jkt",
        "x@*",
        "**@*",
        "*@**",
        "device:",
        "device:00112233445566778899aabbccddee",
        "device:00112233445566778899AABBCCDDEEFF",
        "device:00112233445566778899aabbccddeeff00",
        "device:0011223344556677889gaabbccddeeff",
        "person:",
        "role with space@JKT",
        "ambassador@JKTJKTJKTJKTJKTJKT",
        "person:\x01"
        "bad",
        "person:Anna\xe2\x80\xae",
        "person:Anna\xc2\x9b",
        "person:Anna\xff",
        "-@HQ",
        "duty@-",
        "duty@UN--GVA",
        "*@-X",
    };
    struct address a;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (addr_parse(bad[i], &a) == 0)
            fail_msg("accepted bad address '%s'", bad[i]);
}

/* Resolves s from sender and checks the exact set (order-insensitive). */
static void expect_set(const char *s, const struct fx_dev *sender, const struct fx_dev *const *want,
                       size_t nwant)
{
    struct address a;
    uint8_t ids[16][DEVICE_ID_LEN];
    size_t n = 0;

    assert_int_equal(addr_parse(s, &a), 0);
    assert_int_equal(
        addr_resolve(&a, dir, &org.pub, (uint64_t)time(NULL), &sender->cert, ids, 16, &n), 0);
    if (n != nwant)
        fail_msg("%s: expected %zu devices, saw %zu", s, nwant, n);
    for (size_t i = 0; i < nwant; i++) {
        int found = 0;
        for (size_t j = 0; j < n; j++)
            found |= memcmp(ids[j], want[i]->cert.device_id, DEVICE_ID_LEN) == 0;
        if (!found)
            fail_msg("%s: %s (%s@%s) missing", s, want[i]->cert.name, want[i]->cert.role,
                     want[i]->cert.post);
    }
}

static void test_resolve(void **state)
{
    char addr[80], hex[33];
    (void)state;

    /* Current ambassadors at JKT, and the sender's own phone; not the revoked or expired one. */
    expect_set("ambassador@JKT", &hq, (const struct fx_dev *const[]){&amb1, &amb2, &hq_phone}, 3);
    expect_set("*@JKT", &hq, (const struct fx_dev *const[]){&amb1, &amb2, &dcm, &hq_phone}, 4);
    expect_set("*@*", &hq, (const struct fx_dev *const[]){&hq_phone, &amb1, &amb2, &dcm, &geneva},
               5);
    expect_set("ambassador@GVA", &amb1, (const struct fx_dev *const[]){&geneva, &amb2}, 2);
    expect_set("person:Budi", &dcm, (const struct fx_dev *const[]){&amb1, &amb2}, 2);
    /* No one behind the address: only the sender's other device. */
    expect_set("consul@JKT", &hq, (const struct fx_dev *const[]){&hq_phone}, 1);
    /* A revoked device named directly gets nothing. */
    assert_int_equal(text_hex_encode(hex, sizeof(hex), revoked.cert.device_id, 16), 0);
    memcpy(addr, "device:", 7);
    memcpy(addr + 7, hex, 33);
    expect_set(addr, &dcm, NULL, 0);
    assert_int_equal(text_hex_encode(hex, sizeof(hex), dcm.cert.device_id, 16), 0);
    memcpy(addr + 7, hex, 33);
    expect_set(addr, &geneva, (const struct fx_dev *const[]){&dcm}, 1);
}

static void test_resolve_limit(void **state)
{
    struct address a;
    uint8_t ids[2][DEVICE_ID_LEN];
    size_t n;
    (void)state;

    assert_int_equal(addr_parse("*@*", &a), 0);
    assert_int_equal(addr_resolve(&a, dir, &org.pub, (uint64_t)time(NULL), &hq.cert, ids, 2, &n),
                     VERR_LIMIT);
}

static void test_includes(void **state)
{
    struct address a;
    (void)state;

    assert_int_equal(addr_parse("ambassador@JKT", &a), 0);
    assert_true(addr_includes(&a, &amb1.cert, &hq.cert));
    assert_false(addr_includes(&a, &dcm.cert, &hq.cert));
    assert_false(addr_includes(&a, &geneva.cert, &hq.cert));
    assert_true(addr_includes(&a, &hq_phone.cert, &hq.cert)); /* sender's own other device */
    assert_int_equal(addr_parse("*@GVA", &a), 0);
    assert_false(addr_includes(&a, &amb1.cert, &hq.cert));
    assert_true(addr_includes(&a, &geneva.cert, &hq.cert));
}


/*
 * Issue 11 item 1: a clerk at GVA whose request said "Anna Lindqvist" is
 * another person (IT gave it another person id). Anna's message to
 * ambassador@JKT goes to the ambassador and Anna's own phone, never to the
 * clerk, and the clerk's device refuses it; person:NAME with two persons
 * behind the name is refused as ambiguous.
 */
static void test_namesake_is_not_the_sender(void **state)
{
    struct fx_dev anna, anna_phone, clerk, amb;
    struct directory *d = NULL, *d1 = NULL;
    struct buf b, b1;
    struct address a;
    uint8_t ids[8][DEVICE_ID_LEN], pid[PERSON_ID_LEN];
    uint64_t now = (uint64_t)time(NULL);
    size_t n = 0;
    (void)state;
    assert_int_equal(fx_dev_make(&org, &anna, 1, "Anna Lindqvist", "HQ", "duty", 30), 0);
    assert_int_equal(fx_dev_make(&org, &anna_phone, 2, "Anna Lindqvist", "HQ", "duty", 30), 0);
    assert_int_equal(fx_dev_make(&org, &amb, 3, "Budi", "JKT", "ambassador", 30), 0);
    assert_int_equal(fx_dev_make(&org, &clerk, 4, "Anna Lindqvist", "GVA", "clerk", 30), 0);
    assert_int_equal(fx_dev_set_person(&org, &clerk, 0xc1), 0);
    assert_memory_equal(anna.cert.person_id, anna_phone.cert.person_id, PERSON_ID_LEN);
    assert_memory_not_equal(anna.cert.person_id, clerk.cert.person_id, PERSON_ID_LEN);
    const struct fx_dev *devs[] = {&anna, &anna_phone, &amb, &clerk};
    assert_int_equal(fx_dir(&org, 1, devs, 4, NULL, 0, &d, &b), 0);

    assert_int_equal(addr_parse("ambassador@JKT", &a), 0);
    assert_int_equal(addr_resolve(&a, d, &org.pub, now, &anna.cert, ids, 8, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        if (memcmp(ids[i], clerk.cert.device_id, DEVICE_ID_LEN) == 0)
            fail_msg("ambassador@JKT from Anna: expected the ambassador and Anna's phone, saw the "
                     "GVA clerk who shares her name");
    assert_true(addr_includes(&a, &amb.cert, &anna.cert));
    assert_true(addr_includes(&a, &anna_phone.cert, &anna.cert));
    assert_false(addr_includes(&a, &clerk.cert, &anna.cert));
    /* nor the other way round: the clerk's messages do not reach Anna's devices */
    assert_int_equal(addr_resolve(&a, d, &org.pub, now, &clerk.cert, ids, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(ids[0], amb.cert.device_id, DEVICE_ID_LEN);
    assert_false(addr_includes(&a, &anna.cert, &clerk.cert));

    /* two persons carry the name: person:NAME is refused, not sent to both */
    assert_int_equal(addr_parse("person:Anna Lindqvist", &a), 0);
    assert_int_equal(addr_person_id(&a, d, &org.pub, now, pid), VERR_AMBIGUOUS);
    assert_int_equal(addr_resolve(&a, d, &org.pub, now, &amb.cert, ids, 8, &n), VERR_AMBIGUOUS);
    assert_int_equal(addr_parse("person:Nobody", &a), 0);
    assert_int_equal(addr_person_id(&a, d, &org.pub, now, pid), VERR_UNKNOWN);

    /* one person with the name: both of her devices, by person id */
    const struct fx_dev *devs1[] = {&anna, &anna_phone, &amb};
    assert_int_equal(fx_dir(&org, 2, devs1, 3, NULL, 0, &d1, &b1), 0);
    assert_int_equal(addr_parse("person:Anna Lindqvist", &a), 0);
    assert_int_equal(addr_person_id(&a, d1, &org.pub, now, pid), 0);
    assert_memory_equal(pid, anna.cert.person_id, PERSON_ID_LEN);
    assert_int_equal(addr_resolve(&a, d1, &org.pub, now, &amb.cert, ids, 8, &n), 0);
    assert_int_equal(n, 2);
    dir_free(d);
    dir_free(d1);
    buf_free(&b);
    buf_free(&b1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid), cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_resolve),     cmocka_unit_test(test_resolve_limit),
        cmocka_unit_test(test_includes),
        cmocka_unit_test(test_namesake_is_not_the_sender),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
