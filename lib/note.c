/* note.c - C2SP signed notes and tlog checkpoints, verifying side (see note.h). */
#include "note.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "text.h"

_Static_assert(NOTE_ED25519_SIG_B64_LEN == 92, "base64 of 4 + 64 bytes");
_Static_assert(NOTE_KEY_B64_LEN == 44, "base64 of 1 + 32 bytes");
_Static_assert(NOTE_HASH_B64_LEN == 44, "base64 of 32 bytes");
_Static_assert(SIG_PK_LEN == crypto_sign_PUBLICKEYBYTES, "Ed25519 public key");

/* signed-note "Format": a signature line starts with U+2014 EM DASH, U+0020. */
static const uint8_t note_sig_prefix[4] = {0xe2, 0x80, 0x94, 0x20};

enum { NOTE_SIZE_MAX_DIGITS = 20 }; /* UINT64_MAX has 20 decimal digits */

/*
 * One UTF-8 sequence at p[0 .. n): its length (1..4) and code point, or 0 if
 * it is not the shortest well-formed encoding of a scalar value (RFC 3629 4).
 */
static size_t note_utf8_next(const uint8_t *p, size_t n, uint32_t *cp)
{
    uint32_t c, min;
    size_t len;

    if (n == 0)
        return 0;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2;
        c = p[0] & 0x1fu;
        min = 0x80;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3;
        c = p[0] & 0x0fu;
        min = 0x800;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4;
        c = p[0] & 0x07u;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3fu);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* Unicode White_Space (what Go's unicode.IsSpace reports), which key names exclude. */
static int note_is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

/* signed-note "Format": valid UTF-8, no control character but newline. */
static int note_text_valid(const uint8_t *p, size_t len)
{
    size_t off = 0, n;
    uint32_t c = 0;

    while (off < len) {
        if ((n = note_utf8_next(p + off, len - off, &c)) == 0)
            return 0;
        if (c < 0x20 && c != '\n')
            return 0;
        off += n;
    }
    return 1;
}

int note_name_valid(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t off = 0, n;
    uint32_t c = 0;

    if (len == 0 || len > NOTE_MAX_NAME_LEN)
        return 0;
    while (off < len) {
        if ((n = note_utf8_next(p + off, len - off, &c)) == 0)
            return 0;
        /* Names: no spaces, no '+' (signed-note "Format"); no control bytes. */
        if (c < 0x20 || c == 0x7f || c == '+' || note_is_space(c))
            return 0;
        off += n;
    }
    return 1;
}

uint32_t note_key_id(const char *name, const uint8_t pk[static SIG_PK_LEN])
{
    crypto_hash_sha256_state st;
    uint8_t h[crypto_hash_sha256_BYTES];
    const uint8_t sep[2] = {'\n', NOTE_ALG_ED25519};

    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)name, strlen(name));
    crypto_hash_sha256_update(&st, sep, sizeof(sep));
    crypto_hash_sha256_update(&st, pk, SIG_PK_LEN);
    crypto_hash_sha256_final(&st, h);
    return ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
}

/*
 * Strict base64 (RFC 4648 4): only the alphabet and padding, and only the
 * one canonical spelling. libsodium 1.0.18's decoder alone is not enough:
 * it maps some bytes >= 0x80 to digits (0xAF decodes as '/').
 */
static int note_b64_decode(uint8_t *out, size_t outmax, size_t *outlen, const char *s, size_t len)
{
    char canon[NOTE_MAX_LEN + 4];
    size_t n = 0;

    if (len == 0 || len % 4 != 0 || len >= sizeof(canon))
        return VERR_BAD_FORMAT;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '='))
            return VERR_BAD_FORMAT;
    }
    if (text_b64_decode(out, outmax, &n, s, len) != 0 ||
        text_b64_encode(canon, sizeof(canon), out, n) != 0 || strlen(canon) != len ||
        memcmp(canon, s, len) != 0)
        return VERR_BAD_FORMAT;
    *outlen = n;
    return 0;
}

static const char *note_memchr(const char *s, size_t len, char c)
{
    return len == 0 ? NULL : memchr(s, c, len);
}

int note_verifier_parse(struct note_verifier *v, const char *s, size_t len)
{
    struct note_verifier tmp;
    const char *plus1, *plus2, *hex, *key;
    uint8_t raw[1 + SIG_PK_LEN + 3];
    uint8_t id_be[NOTE_KEY_ID_LEN];
    char hexz[2 * NOTE_KEY_ID_LEN + 1];
    size_t name_len, key_len, raw_len = 0;
    int r = VERR_INTERNAL;

    memset(&tmp, 0, sizeof(tmp));
    if (len >= NOTE_VERIFIER_KEY_MAX) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    /* name '+' 8 hex digits '+' base64: names contain no '+'. */
    if ((plus1 = note_memchr(s, len, '+')) == NULL) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    name_len = (size_t)(plus1 - s);
    hex = plus1 + 1;
    if ((plus2 = note_memchr(hex, len - name_len - 1, '+')) == NULL ||
        plus2 - hex != 2 * NOTE_KEY_ID_LEN || !note_name_valid(s, name_len)) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    key = plus2 + 1;
    key_len = len - (size_t)(key - s);
    /* Lower-case hex only: what the reference implementation writes. */
    for (size_t i = 0; i < 2 * NOTE_KEY_ID_LEN; i++) {
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'))) {
            r = VERR_BAD_FORMAT;
            goto out;
        }
    }
    memcpy(hexz, hex, 2 * NOTE_KEY_ID_LEN);
    hexz[2 * NOTE_KEY_ID_LEN] = '\0';
    if (text_hex_decode(id_be, sizeof(id_be), hexz) != 0 || key_len != NOTE_KEY_B64_LEN ||
        note_b64_decode(raw, sizeof(raw), &raw_len, key, key_len) != 0 ||
        raw_len != 1 + SIG_PK_LEN) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    if (raw[0] != NOTE_ALG_ED25519) {
        r = VERR_BAD_KEY; /* another signature type: not ours to verify */
        goto out;
    }
    memcpy(tmp.name, s, name_len);
    tmp.name[name_len] = '\0';
    memcpy(tmp.pk, raw + 1, SIG_PK_LEN);
    tmp.key_id = ((uint32_t)id_be[0] << 24) | ((uint32_t)id_be[1] << 16) |
                 ((uint32_t)id_be[2] << 8) | id_be[3];
    /* The ID must be the one the key and name give, and the key a usable point. */
    if (tmp.key_id != note_key_id(tmp.name, tmp.pk) ||
        crypto_core_ed25519_is_valid_point(tmp.pk) != 1) {
        r = VERR_BAD_KEY;
        goto out;
    }
    *v = tmp;
    r = 0;
out:
    return r;
}

/* Checks one signature line (without its newline) and, if it is v's, verifies it. */
static int note_check_sig_line(const uint8_t *line, size_t ll, const uint8_t *text,
                               size_t text_len, const struct note_verifier *v, int *seen)
{
    /* Large enough for any base64 a note of NOTE_MAX_LEN bytes can hold. */
    uint8_t raw[NOTE_MAX_LEN / 4 * 3];
    const char *name, *b64, *sp;
    size_t name_len, b64_len, raw_len = 0;
    uint32_t id;

    if (ll < sizeof(note_sig_prefix) || memcmp(line, note_sig_prefix, sizeof(note_sig_prefix)) != 0)
        return VERR_BAD_FORMAT;
    name = (const char *)line + sizeof(note_sig_prefix);
    if ((sp = note_memchr(name, ll - sizeof(note_sig_prefix), ' ')) == NULL)
        return VERR_BAD_FORMAT;
    name_len = (size_t)(sp - name);
    b64 = sp + 1;
    b64_len = ll - sizeof(note_sig_prefix) - name_len - 1;
    if (!note_name_valid(name, name_len) || b64_len == 0)
        return VERR_BAD_FORMAT;
    if (note_b64_decode(raw, sizeof(raw), &raw_len, b64, b64_len) != 0)
        return VERR_BAD_FORMAT;
    /* A key ID and at least one byte of signature. */
    if (raw_len < NOTE_KEY_ID_LEN + 1)
        return VERR_BAD_FORMAT;
    id = ((uint32_t)raw[0] << 24) | ((uint32_t)raw[1] << 16) | ((uint32_t)raw[2] << 8) | raw[3];
    /* signed-note "Signatures": only the tuple (name, ID) identifies a key. */
    if (id != v->key_id || name_len != strlen(v->name) || memcmp(name, v->name, name_len) != 0)
        return 0;
    if (*seen)
        return VERR_BAD_FORMAT; /* the same key twice: ambiguous, refuse */
    *seen = 1;
    if (raw_len != NOTE_ED25519_SIG_LEN ||
        crypto_sign_verify_detached(raw + NOTE_KEY_ID_LEN, text, text_len, v->pk) != 0)
        return VERR_BAD_SIGNATURE;
    return 0;
}

int note_open(const uint8_t *note, size_t len, const struct note_verifier *v, size_t *text_len)
{
    size_t split, off, tl, nsigs = 0;
    int seen = 0;
    int r = VERR_INTERNAL;

    if (len > NOTE_MAX_LEN) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    if (len < 2 || note[len - 1] != '\n' || !note_text_valid(note, len)) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    /* The text ends at the last blank line (signed-note "Format"). */
    for (split = len - 1; split > 0; split--)
        if (note[split - 1] == '\n' && note[split] == '\n')
            break;
    if (split == 0 || split + 1 >= len) {
        r = VERR_BAD_FORMAT; /* no blank line, or no signature after it */
        goto out;
    }
    tl = split; /* text = note[0 .. split), its final newline included */
    for (off = split + 1; off < len; off += 1) {
        const uint8_t *nl = memchr(note + off, '\n', len - off);
        size_t ll = (size_t)(nl - (note + off)); /* nl exists: the note ends in '\n' */

        if (++nsigs > NOTE_MAX_SIGS) {
            r = VERR_TOO_LARGE;
            goto out;
        }
        if ((r = note_check_sig_line(note + off, ll, note, tl, v, &seen)) != 0)
            goto out;
        off += ll;
    }
    if (!seen) {
        r = VERR_UNKNOWN;
        goto out;
    }
    *text_len = tl;
    r = 0;
out:
    return r;
}

/* The next line of p[*off .. len): it must end in '\n'. */
static int note_next_line(const uint8_t *p, size_t len, size_t *off, const uint8_t **line,
                          size_t *ll)
{
    const uint8_t *nl;

    if (*off >= len)
        return VERR_TRUNCATED;
    if ((nl = memchr(p + *off, '\n', len - *off)) == NULL)
        return VERR_BAD_FORMAT;
    *line = p + *off;
    *ll = (size_t)(nl - *line);
    *off += *ll + 1;
    return 0;
}

int note_checkpoint_parse(struct note_checkpoint *cp, const uint8_t *text, size_t len)
{
    struct note_checkpoint tmp;
    char digits[NOTE_SIZE_MAX_DIGITS + 1];
    uint8_t root[MERKLE_HASH_LEN + 3];
    const uint8_t *line = NULL;
    size_t ll = 0, off = 0, root_len = 0;
    int r = VERR_INTERNAL;

    memset(&tmp, 0, sizeof(tmp));
    if (len > NOTE_MAX_LEN) {
        r = VERR_TOO_LARGE;
        goto out;
    }
    if (!note_text_valid(text, len)) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    /* tlog-checkpoint "Note text" 1: the origin, non-empty. */
    if ((r = note_next_line(text, len, &off, &line, &ll)) != 0)
        goto out;
    if (ll == 0 || ll > NOTE_MAX_NAME_LEN) {
        r = ll == 0 ? VERR_BAD_FORMAT : VERR_TOO_LARGE;
        goto out;
    }
    memcpy(tmp.origin, line, ll);
    tmp.origin[ll] = '\0';
    /* 2: the tree size in decimal, no leading zero unless it is 0. */
    if ((r = note_next_line(text, len, &off, &line, &ll)) != 0)
        goto out;
    if (ll == 0 || ll > NOTE_SIZE_MAX_DIGITS || (ll > 1 && line[0] == '0')) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    for (size_t i = 0; i < ll; i++) {
        if (line[i] < '0' || line[i] > '9') {
            r = VERR_BAD_FORMAT;
            goto out;
        }
    }
    memcpy(digits, line, ll);
    digits[ll] = '\0';
    if ((r = text_parse_u64(digits, 0, UINT64_MAX, &tmp.size)) != 0)
        goto out;
    /* 3: base64 of the 32-byte root, in its one canonical spelling. */
    if ((r = note_next_line(text, len, &off, &line, &ll)) != 0)
        goto out;
    if (ll != NOTE_HASH_B64_LEN ||
        note_b64_decode(root, sizeof(root), &root_len, (const char *)line, ll) != 0 ||
        root_len != MERKLE_HASH_LEN) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    memcpy(tmp.root, root, MERKLE_HASH_LEN);
    /* 4: optional extension lines, each non-empty; counted, not read. */
    while (off < len) {
        if ((r = note_next_line(text, len, &off, &line, &ll)) != 0)
            goto out;
        if (ll == 0) {
            r = VERR_BAD_FORMAT;
            goto out;
        }
        if (++tmp.n_extensions > NOTE_MAX_EXTENSIONS) {
            r = VERR_TOO_LARGE;
            goto out;
        }
    }
    *cp = tmp;
    r = 0;
out:
    return r;
}

int note_checkpoint_open(struct note_checkpoint *cp, const uint8_t *note, size_t len,
                         const struct note_verifier *v)
{
    struct note_checkpoint tmp;
    size_t tl = 0;
    int r = VERR_INTERNAL;

    if ((r = note_open(note, len, v, &tl)) != 0)
        goto out;
    if ((r = note_checkpoint_parse(&tmp, note, tl)) != 0)
        goto out;
    if (strcmp(tmp.origin, v->name) != 0) {
        r = VERR_BAD_FORMAT;
        goto out;
    }
    *cp = tmp;
    r = 0;
out:
    return r;
}

int note_checkpoint_text(struct buf *out, const char *origin, uint64_t size,
                         const uint8_t root[static MERKLE_HASH_LEN])
{
    char digits[NOTE_SIZE_MAX_DIGITS + 1];
    char b64[NOTE_HASH_B64_LEN + 1];
    size_t start = buf_size(out), olen = strnlen(origin, NOTE_MAX_NAME_LEN + 1);
    int n, r = VERR_INTERNAL;

    if (!note_name_valid(origin, olen)) {
        r = VERR_USAGE;
        goto out;
    }
    n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)size);
    if (n <= 0 || (size_t)n >= sizeof(digits))
        goto out;
    if ((r = text_b64_encode(b64, sizeof(b64), root, MERKLE_HASH_LEN)) != 0)
        goto out;
    if ((r = buf_put_bytes(out, (const uint8_t *)origin, olen)) != 0 ||
        (r = buf_put_u8(out, '\n')) != 0 ||
        (r = buf_put_bytes(out, (const uint8_t *)digits, (size_t)n)) != 0 ||
        (r = buf_put_u8(out, '\n')) != 0 ||
        (r = buf_put_bytes(out, (const uint8_t *)b64, NOTE_HASH_B64_LEN)) != 0 ||
        (r = buf_put_u8(out, '\n')) != 0)
        goto out;
    r = 0;
out:
    if (r != 0)
        buf_truncate(out, start);
    return r;
}
