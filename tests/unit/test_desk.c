/*
 * test_desk.c - the desk's request checks and text rules (client/desk.h,
 * issue 14): Host (DNS rebinding), Origin, the one-time token, the session
 * cookie, control and bidi characters made visible, a locked desk, and
 * answers that never reflect the request.
 */
#include <sodium.h>

#include "testutil.h"

#include "desk.h"

static struct desk *new_desk(void)
{
    struct desk *d = NULL;
    /* No mailbox: a desk that is locked from the start. */
    assert_int_equal(desk_new(&d, "/nonexistent-home", NULL, 600, 1000), 0);
    desk_set_port(d, 4242);
    return d;
}

static void test_desk_host_rebinding(void **state)
{
    struct desk *d = NULL;
    (void)state;
    assert_int_equal(desk_new(&d, "/h", NULL, 600, 1000), 0);
    assert_false(desk_host_ok(d, "127.0.0.1:0")); /* no port yet: nothing is served */
    desk_set_port(d, 4242);
    assert_true(desk_host_ok(d, "127.0.0.1:4242"));
    assert_false(desk_host_ok(d, "evil.example:4242")); /* a rebound name */
    assert_false(desk_host_ok(d, "localhost:4242"));
    assert_false(desk_host_ok(d, "127.0.0.1:4243"));
    assert_false(desk_host_ok(d, "127.0.0.1:4242 "));
    assert_false(desk_host_ok(d, "127.0.0.1"));
    assert_false(desk_host_ok(d, NULL));
    assert_true(desk_origin_ok(d, "http://127.0.0.1:4242"));
    assert_false(desk_origin_ok(d, "http://evil.example:4242"));
    assert_false(desk_origin_ok(d, "null"));
    assert_false(desk_origin_ok(d, "https://127.0.0.1:4242"));
    assert_false(desk_origin_ok(d, NULL));
    desk_free(d);
}

static void test_desk_token_once_cookie(void **state)
{
    struct desk *d = new_desk();
    char tok[DESK_SECRET_HEX + 1], wrong[DESK_SECRET_HEX + 1], set[256], hdr[512];
    const char *v;
    (void)state;
    memcpy(tok, desk_token(d), sizeof(tok));
    assert_int_equal(strlen(tok), DESK_SECRET_HEX);
    memcpy(wrong, tok, sizeof(wrong));
    wrong[5] = wrong[5] == 'a' ? 'b' : 'a';
    assert_false(desk_cookie_ok(d, "valise_desk_4242=00")); /* nobody logged in yet */
    assert_false(desk_login(d, wrong, set, sizeof(set)));
    assert_false(desk_login(d, "", set, sizeof(set)));
    assert_false(desk_login(d, NULL, set, sizeof(set)));
    assert_true(desk_login(d, tok, set, sizeof(set)));
    assert_non_null(strstr(set, "HttpOnly"));
    assert_non_null(strstr(set, "SameSite=Strict"));
    assert_int_equal(strncmp(set, "valise_desk_4242=", 17), 0);
    assert_false(desk_login(d, tok, set + 128, 128)); /* one time */
    v = set + 17;
    snprintf(hdr, sizeof(hdr), "other=1; valise_desk_4242=%.*s; x=y", DESK_SECRET_HEX, v);
    assert_true(desk_cookie_ok(d, hdr));
    snprintf(hdr, sizeof(hdr), "valise_desk_4243=%.*s", DESK_SECRET_HEX, v); /* another desk's name */
    assert_false(desk_cookie_ok(d, hdr));
    snprintf(hdr, sizeof(hdr), "valise_desk_4242=%.*s", DESK_SECRET_HEX - 1, v);
    assert_false(desk_cookie_ok(d, hdr));
    snprintf(hdr, sizeof(hdr), "valise_desk_4242=%.*s0", DESK_SECRET_HEX, v);
    assert_false(desk_cookie_ok(d, hdr));
    assert_false(desk_cookie_ok(d, ""));
    desk_free(d);
}

static void visible(const char *in, size_t n, int multi, const char *want)
{
    char *out = NULL;
    assert_int_equal(desk_text_visible((const uint8_t *)in, n, multi, &out), 0);
    assert_string_equal(out, want);
    sodium_free(out);
}

static void test_desk_text_visible(void **state)
{
    (void)state;
    visible("plain <b>text</b>", 17, 0, "plain <b>text</b>"); /* HTML stays text; the page never parses it */
    visible("\x1b[2J", 4, 1, "[U+001B][2J");
    visible("a\xe2\x80\xae" "b", 5, 1, "a[U+202E]b");
    visible("\xe2\x81\xa6x", 4, 0, "[U+2066]x");
    visible("x\xff", 2, 1, "x[0xFF]");
    visible("\xc2\x9b" "1", 3, 1, "[U+009B]1");
    visible("\x7f", 1, 1, "[U+007F]");
    visible("a\nb\tc", 5, 1, "a\nb\tc");
    visible("a\nb", 3, 0, "a[U+000A]b");
    visible("\xc3\xa9t\xc3\xa9", 5, 1, "\xc3\xa9t\xc3\xa9");
    visible("", 0, 1, "");
}

static void test_desk_locked_api(void **state)
{
    struct desk *d = new_desk();
    struct desk_reply rep;
    char *ev = NULL;
    static const char evil[] = "{\"id\":\"<script>alert(1)</script>\"";
    (void)state;
    assert_int_equal(desk_api(d, 0, "/api/inbox", NULL, 0, 1001, &rep), 0);
    assert_int_equal(rep.status, 423);
    assert_string_equal(rep.body, "{\"error\":\"locked\"}");
    desk_reply_free(&rep);
    assert_int_equal(desk_api(d, 0, "/api/state", NULL, 0, 1001, &rep), 0);
    assert_int_equal(rep.status, 200);
    assert_non_null(strstr(rep.body, "\"locked\":true"));
    desk_reply_free(&rep);
    /* Malformed JSON: refused, never echoed. */
    assert_int_equal(desk_api(d, 1, "/api/read", (const uint8_t *)evil, strlen(evil), 1001, &rep), 0);
    assert_int_equal(rep.status, 400);
    assert_null(strstr(rep.body, "script"));
    desk_reply_free(&rep);
    assert_int_equal(desk_api(d, 1, "/api/unlock", (const uint8_t *)"{\"passphrase\":7}", 16, 1001,
                              &rep), 0);
    assert_int_equal(rep.status, 400);
    desk_reply_free(&rep);
    /* trailing bytes after the object */
    assert_int_equal(desk_api(d, 1, "/api/unlock", (const uint8_t *)"{} {}", 5, 1001, &rep), 0);
    assert_int_equal(rep.status, 400);
    desk_reply_free(&rep);
    assert_int_equal(desk_api(d, 0, "/api/<b>", NULL, 0, 1001, &rep), 0);
    assert_null(strstr(rep.body, "<b>"));
    desk_reply_free(&rep);
    /* the pages hear once that the desk is locked */
    assert_int_equal(desk_tick(d, 1002, &ev), 0);
    assert_non_null(ev);
    assert_non_null(strstr(ev, "locked"));
    free(ev);
    assert_int_equal(desk_tick(d, 1003, &ev), 0);
    assert_null(ev);
    desk_free(d);
}

/* X-Valise-Name (issue 13 item 2): strict percent-decoding, then the attachment name rules. */
static void test_desk_attach_name(void **state)
{
    char out[256];
    static const char *const bad[] = {
        "", "a b", "a%2", "a%zz", "a%2Fb", "..", ".", "%2E%2E", "a%00b", "a%1Bb",
        "a%E2%80%AEgpj.exe", "a%FFb", "a+b", "a%0Ab", "a/b", "a\\b",
    };
    (void)state;
    assert_int_equal(desk_name_decode("note-verbale-12.pdf", out), 0);
    assert_string_equal(out, "note-verbale-12.pdf");
    assert_int_equal(desk_name_decode("Nota%20diplomatik%20(2).pdf", out), 0);
    assert_string_equal(out, "Nota diplomatik (2).pdf");
    assert_int_equal(desk_name_decode("%3Cimg%20src%3Dx%3E%25.txt", out), 0);
    assert_string_equal(out, "<img src=x>%.txt");
    assert_int_equal(desk_name_decode("caf%C3%A9.txt", out), 0);
    assert_string_equal(out, "caf\xc3\xa9.txt");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (desk_name_decode(bad[i], out) == 0)
            fail_msg("name %s accepted as '%s'", bad[i], out);
    }
    assert_int_not_equal(desk_name_decode(NULL, out), 0);
    {
        /* 255 bytes decoded: taken; 256: refused */
        char big[3 * 256 + 1];
        for (size_t i = 0; i < 255; i++)
            memcpy(big + 3 * i, "%41", 3);
        big[3 * 255] = 0;
        assert_int_equal(desk_name_decode(big, out), 0);
        assert_int_equal(strlen(out), 255);
        memcpy(big + 3 * 255, "%41", 4);
        assert_int_not_equal(desk_name_decode(big, out), 0);
    }
}

/* Content-Disposition for a sender-chosen name: printable ASCII, nothing that ends the quoted part. */
static void test_desk_disposition(void **state)
{
    char out[DESK_DISPOSITION_MAX];
    (void)state;
    assert_int_equal(desk_disposition("note-verbale-12.pdf", out, sizeof(out)), 0);
    assert_string_equal(out, "attachment; filename=\"note-verbale-12.pdf\"; "
                             "filename*=UTF-8''note-verbale-12.pdf");
    assert_int_equal(desk_disposition("a\"; x=<b>.html", out, sizeof(out)), 0);
    assert_string_equal(out, "attachment; filename=\"a__ x__b_.html\"; "
                             "filename*=UTF-8''a%22%3B%20x%3D%3Cb%3E.html");
    assert_int_equal(desk_disposition(".bashrc", out, sizeof(out)), 0);
    assert_string_equal(out, "attachment; filename=\"_bashrc\"; filename*=UTF-8''.bashrc");
    assert_int_equal(desk_disposition("caf\xc3\xa9", out, sizeof(out)), 0);
    assert_string_equal(out, "attachment; filename=\"caf__\"; filename*=UTF-8''caf%C3%A9");
    assert_int_equal(desk_disposition("x", out, 40), VERR_TOO_LARGE);
    assert_string_equal(desk_safe_type("application/pdf"), "application/pdf");
    assert_string_equal(desk_safe_type("text/html"), "application/octet-stream");
    assert_string_equal(desk_safe_type("image/svg+xml"), "application/octet-stream");
    assert_string_equal(desk_safe_type("application/pdf; x"), "application/octet-stream");
    assert_string_equal(desk_safe_type(NULL), "application/octet-stream");
}

/* A locked desk takes no upload and serves no attachment, and says so without echoing. */
static void test_desk_attach_locked(void **state)
{
    struct desk *d = new_desk();
    struct desk_upload *up = (struct desk_upload *)1;
    struct desk_download *dl = (struct desk_download *)1;
    struct desk_reply rep;
    (void)state;
    assert_int_equal(desk_upload_begin(d, "a.txt", "5", 1001, &up, &rep), 0);
    assert_null(up);
    assert_int_equal(rep.status, 423);
    desk_reply_free(&rep);
    assert_int_equal(desk_download_begin(d, "00112233", NULL, "1", 1001, &dl, &rep), 0);
    assert_null(dl);
    assert_int_equal(rep.status, 423);
    desk_reply_free(&rep);
    assert_int_equal(desk_api(d, 1, "/api/attach_drop", (const uint8_t *)"{\"handle\":\"<b>\"}", 16,
                              1001, &rep), 0);
    assert_int_equal(rep.status, 423);
    assert_null(strstr(rep.body, "<b>"));
    desk_reply_free(&rep);
    desk_upload_abort(NULL);
    desk_download_end(NULL);
    desk_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_desk_host_rebinding),
        cmocka_unit_test(test_desk_token_once_cookie),
        cmocka_unit_test(test_desk_text_visible),
        cmocka_unit_test(test_desk_locked_api),
        cmocka_unit_test(test_desk_attach_name),
        cmocka_unit_test(test_desk_disposition),
        cmocka_unit_test(test_desk_attach_locked),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
