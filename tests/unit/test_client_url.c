/*
 * test_client_url.c - the relay URL rules of the client transport
 * (client/transport.h): wss:// to any host, plain ws:// only to loopback
 * (DESIGN.md "Relay"), a port 1..65535 or the scheme's default, strict syntax.
 */
#include "testutil.h"

#include "transport.h"

static void test_valid(void **state)
{
    static const char *const ok[] = {
        "wss://relay.mfa.example:443", "wss://relay.mfa.example:8443/valise",
        "ws://127.0.0.1:8080",         "ws://127.0.0.1:1/",
        "ws://localhost:65535",        "ws://[::1]:9000",
        "wss://192.0.2.10:443",
        /* README's own example: the default port (issue 12, item 12). */
        "wss://relay.mfa.example",     "wss://relay.mfa.example/valise",
        "ws://127.0.0.1",              "ws://[::1]/",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (ctp_url_check(ok[i]) != 0)
            fail_msg("refused valid URL %s", ok[i]);
}

static void test_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "ws://",
        "wss://",
        "http://127.0.0.1:80",
        "ws:/127.0.0.1:80",
        "ws://127.0.0.1:",
        "wss://relay.mfa.example:/",
        "wss://[::1]x",
        "ws://127.0.0.1:0",
        "ws://127.0.0.1:65536",
        "ws://127.0.0.1:80x",
        "ws://127.0.0.1:-1",
        "ws://127.0.0.1:+80",
        "wss://:443",
        "wss://[::1:443",
        "wss://host name:443",
        "WSS://relay:443",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ctp_url_check(bad[i]) == 0)
            fail_msg("accepted invalid URL '%s'", bad[i]);
}

static void test_plain_only_to_loopback(void **state)
{
    (void)state;
    assert_int_equal(ctp_url_check("ws://192.0.2.10:80"), VERR_DENIED);
    assert_int_equal(ctp_url_check("ws://relay.mfa.example:80"), VERR_DENIED);
    assert_int_equal(ctp_url_check("ws://127.0.0.1.evil.example:80"), VERR_DENIED);
    assert_int_equal(ctp_url_check("wss://relay.mfa.example:443"), 0);
    assert_int_equal(ctp_url_check("ws://relay.mfa.example"), VERR_DENIED);
}

static void test_long_path(void **state)
{
    char url[600] = "wss://relay:443/";
    (void)state;
    memset(url + 16, 'a', 300);
    url[316] = 0;
    assert_int_not_equal(ctp_url_check(url), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_plain_only_to_loopback),
        cmocka_unit_test(test_long_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
