/*
 * fuzz_desk.c - libFuzzer harness for what the desk reads from the browser
 * (client/desk.h): JSON request bodies, Cookie, Host and Origin headers, and
 * the text made visible for the page. A locked desk without a mailbox: every
 * body goes through the strict JSON reader; answers must never hold request
 * bytes, and visible text must be valid UTF-8 without controls. Attachments
 * (issue 13 item 2): X-Valise-Name (desk_name_decode: what it takes is a
 * valid attachment name), the Content-Disposition made of it (printable
 * ASCII, its quoted file name without '"' or '\\'), the media type
 * allow-list, and the upload and download requests of a locked desk.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "attach.h"
#include "desk.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *paths[] = {"/api/unlock", "/api/read", "/api/send", "/api/activity",
                                  "/api/attach_drop"};
    struct desk *d = NULL;
    struct desk_reply rep;
    char *s, *vis = NULL;

    if (sodium_init() < 0 || size > 4096)
        return 0;
    if (desk_new(&d, "/nonexistent-valise-home", NULL, 600, 1000) != 0)
        abort();
    desk_set_port(d, 4242);
    if ((s = malloc(size + 1)) == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = 0;
    (void)desk_host_ok(d, s);
    (void)desk_origin_ok(d, s);
    (void)desk_cookie_ok(d, s);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (desk_api(d, 1, paths[i], data, size, 1001, &rep) != 0)
            continue;
        if (rep.body == NULL || rep.status < 200)
            abort();
        desk_reply_free(&rep);
    }
    {
        char name[256], disp[DESK_DISPOSITION_MAX];
        struct desk_upload *up = NULL;
        struct desk_download *dl = NULL;
        if (desk_name_decode(s, name) == 0) {
            const char *q;
            if (!attach_valid_name(name) || desk_disposition(name, disp, sizeof(disp)) != 0)
                abort();
            for (const char *p = disp; *p != 0; p++)
                if (*p < 0x20 || *p > 0x7e)
                    abort();
            /* the quoted name ends at the only '"' after it */
            q = strchr(disp + 22, '"');
            if (q == NULL || strncmp(q, "\"; filename*=UTF-8''", 20) != 0 ||
                memchr(disp + 22, '\\', (size_t)(q - disp - 22)) != NULL)
                abort();
        }
        if (strcmp(desk_safe_type(s), "application/octet-stream") != 0 && strchr(s, ';') != NULL)
            abort();
        if (desk_upload_begin(d, s, s, 1001, &up, &rep) == 0) {
            if (up != NULL || rep.body == NULL)
                abort();
            desk_reply_free(&rep);
        }
        if (desk_download_begin(d, s, s, s, 1001, &dl, &rep) == 0) {
            if (dl != NULL || rep.body == NULL)
                abort();
            desk_reply_free(&rep);
        }
    }
    if (desk_text_visible(data, size, 1, &vis) != 0)
        abort();
    if (!utf8_is_safe_text((const uint8_t *)vis, strlen(vis), UTF8_ALLOW_NEWLINE) &&
        strchr(vis, '\t') == NULL)
        abort();
    sodium_free(vis);
    free(s);
    desk_free(d);
    return 0;
}
