/*
 * note_sign.c - signing C2SP signed notes and writing verifier keys (see
 * note.h). Kept apart from note.c so that valise-audit links no signing code
 * (STYLE.md habit 7): with sig_sign.c, the only callers of crypto_sign_detached.
 */
#include "note.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "text.h"

static const uint8_t note_sign_prefix[4] = {0xe2, 0x80, 0x94, 0x20}; /* U+2014 U+0020 */

int note_sign(struct buf *out, const uint8_t *text, size_t len, const char *name,
              const uint8_t sk[static SIG_SK_LEN])
{
    uint8_t raw[NOTE_ED25519_SIG_LEN];
    uint8_t pk[SIG_PK_LEN];
    char b64[NOTE_ED25519_SIG_B64_LEN + 1];
    size_t start = buf_size(out), name_len = strnlen(name, NOTE_MAX_NAME_LEN + 1), total;
    struct note_verifier self;
    uint32_t id;
    size_t tl = 0;
    int r = VERR_INTERNAL;

    if (!note_name_valid(name, name_len) || len == 0 || text[len - 1] != '\n') {
        r = VERR_USAGE;
        goto out;
    }
    /* text, blank line, em dash, space, name, space, signature, newline */
    if (len > NOTE_MAX_LEN) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    total = len + 1 + sizeof(note_sign_prefix) + name_len + 1 + NOTE_ED25519_SIG_B64_LEN + 1;
    if (total > NOTE_MAX_LEN) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    crypto_sign_ed25519_sk_to_pk(pk, sk);
    id = note_key_id(name, pk);
    raw[0] = (uint8_t)(id >> 24);
    raw[1] = (uint8_t)(id >> 16);
    raw[2] = (uint8_t)(id >> 8);
    raw[3] = (uint8_t)id;
    /* signed-note "Ed25519 signatures": RFC 8032 over the note text itself. */
    if (crypto_sign_detached(raw + NOTE_KEY_ID_LEN, NULL, text, len, sk) != 0)
        goto out;
    if ((r = text_b64_encode(b64, sizeof(b64), raw, sizeof(raw))) != 0)
        goto out;
    if ((r = buf_put_bytes(out, text, len)) != 0 || (r = buf_put_u8(out, '\n')) != 0 ||
        (r = buf_put_bytes(out, note_sign_prefix, sizeof(note_sign_prefix))) != 0 ||
        (r = buf_put_bytes(out, (const uint8_t *)name, name_len)) != 0 ||
        (r = buf_put_u8(out, ' ')) != 0 ||
        (r = buf_put_bytes(out, (const uint8_t *)b64, NOTE_ED25519_SIG_B64_LEN)) != 0 ||
        (r = buf_put_u8(out, '\n')) != 0)
        goto out;
    /*
     * Read back what was written: the text rules (UTF-8, no control bytes,
     * where the blank line falls) are note_open's, so a note that would not
     * open is never handed out.
     */
    memset(&self, 0, sizeof(self));
    memcpy(self.name, name, name_len);
    self.key_id = id;
    memcpy(self.pk, pk, SIG_PK_LEN);
    if ((r = note_open(buf_data(out) + start, buf_size(out) - start, &self, &tl)) != 0 ||
        tl != len) {
        r = r != 0 ? VERR_USAGE : VERR_INTERNAL;
        goto out;
    }
    r = 0;
out:
    if (r != 0)
        buf_truncate(out, start);
    return r;
}

int note_verifier_format(char *out, size_t outsz, const char *name,
                         const uint8_t pk[static SIG_PK_LEN])
{
    uint8_t raw[1 + SIG_PK_LEN];
    char b64[NOTE_KEY_B64_LEN + 1];
    size_t name_len = strnlen(name, NOTE_MAX_NAME_LEN + 1);
    int n, r = VERR_INTERNAL;

    if (!note_name_valid(name, name_len)) {
        r = VERR_USAGE;
        goto out;
    }
    raw[0] = NOTE_ALG_ED25519;
    memcpy(raw + 1, pk, SIG_PK_LEN);
    if ((r = text_b64_encode(b64, sizeof(b64), raw, sizeof(raw))) != 0)
        goto out;
    n = snprintf(out, outsz, "%s+%08lx+%s", name, (unsigned long)note_key_id(name, pk), b64);
    if (n < 0 || (size_t)n >= outsz) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    r = 0;
out:
    return r;
}
