/* audit_state.c - valise-audit's state file (see audit_state.h). */
#include "audit_state.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(AUDIT_STATE_MAGIC_LEN == 21, "state file first line");

int audit_state_make(struct audit_state *st, const char *key, const uint8_t *note, size_t note_len)
{
    struct audit_state *t = NULL;
    size_t klen = strnlen(key, NOTE_VERIFIER_KEY_MAX);
    int r = VERR_INTERNAL;

    if (klen == 0 || klen >= NOTE_VERIFIER_KEY_MAX)
        return VERR_BAD_FORMAT;
    if (note_len == 0 || note_len > NOTE_MAX_LEN)
        return note_len == 0 ? VERR_TRUNCATED : VERR_TOO_LARGE;
    /* The struct is large (a whole note): built on the heap, copied once valid. */
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return VERR_NOMEM;
    memcpy(t->key, key, klen);
    if ((r = note_verifier_parse(&t->v, t->key, klen)) != 0)
        goto out;
    if ((r = note_checkpoint_open(&t->cp, note, note_len, &t->v)) != 0)
        goto out;
    memcpy(t->note, note, note_len);
    t->note_len = note_len;
    *st = *t;
    r = 0;
out:
    free(t);
    return r;
}

int audit_state_parse(struct audit_state *st, const uint8_t *p, size_t len)
{
    char key[NOTE_VERIFIER_KEY_MAX];
    const uint8_t *nl;
    size_t klen;

    if (len > AUDIT_STATE_MAX_LEN)
        return VERR_TOO_LARGE;
    if (len < AUDIT_STATE_MAGIC_LEN)
        return VERR_TRUNCATED;
    if (memcmp(p, AUDIT_STATE_MAGIC, AUDIT_STATE_MAGIC_LEN) != 0)
        return VERR_BAD_MAGIC;
    p += AUDIT_STATE_MAGIC_LEN;
    len -= AUDIT_STATE_MAGIC_LEN;
    if ((nl = memchr(p, '\n', len)) == NULL)
        return VERR_TRUNCATED;
    klen = (size_t)(nl - p);
    if (klen == 0 || klen >= sizeof(key) || memchr(p, '\0', klen) != NULL)
        return VERR_BAD_FORMAT;
    memcpy(key, p, klen);
    key[klen] = '\0';
    return audit_state_make(st, key, nl + 1, len - klen - 1);
}

int audit_state_encode(const struct audit_state *st, struct buf *out)
{
    size_t save = buf_size(out);
    int r;

    if ((r = buf_put_bytes(out, (const uint8_t *)AUDIT_STATE_MAGIC, AUDIT_STATE_MAGIC_LEN)) != 0 ||
        (r = buf_put_bytes(out, (const uint8_t *)st->key, strlen(st->key))) != 0 ||
        (r = buf_put_u8(out, '\n')) != 0 || (r = buf_put_bytes(out, st->note, st->note_len)) != 0)
        buf_truncate(out, save);
    return r;
}
