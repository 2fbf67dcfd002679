/*
 * test_note.c - C2SP signed notes and checkpoints (lib/note.h): the Go
 * reference vector in tests/vectors/signed-note, round trips with our own
 * keys, and every way a note, a checkpoint or a verifier key can be broken.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "buf.h"
#include "fileio.h"
#include "note.h"
#include "text.h"

#define VECTOR_DIR VALISE_SOURCE_DIR "/tests/vectors/signed-note"

/* From tests/vectors/signed-note/README.md. */
static const char peter_vkey[] = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char peter_skey[] =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
static const char peter_sig[] = "\xe2\x80\x94 PeterNeumann "
                                "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
static const char enoch_vkey[] = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
static const char enoch_sig[] = "\xe2\x80\x94 EnochRoot "
                                "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

#define ORIGIN "valise.example/relay"

enum { BIG = 2 * NOTE_MAX_LEN };

/* ---- helpers ---- */

static void read_vector_text(struct buf *text)
{
    int r = file_read(VECTOR_DIR "/text.txt", 4096, 0, text);

    if (r != 0)
        fail_msg("cannot read %s/text.txt: %s", VECTOR_DIR, verr_str(r));
}

static void verifier(struct note_verifier *v, const char *s)
{
    int r = note_verifier_parse(v, s, strlen(s));

    if (r != 0)
        fail_msg("verifier key %s: expected 0, seen %d (%s)", s, r, verr_str(r));
}

/* Builds text || "\n" || sig lines into out (a plain byte array). */
static size_t make_note(uint8_t *out, size_t outsz, const uint8_t *text, size_t tl,
                        const char *sigs)
{
    size_t sl = strlen(sigs);

    assert_true(tl + 1 + sl <= outsz);
    memcpy(out, text, tl);
    out[tl] = '\n';
    memcpy(out + tl + 1, sigs, sl);
    return tl + 1 + sl;
}

static void expect_open(const uint8_t *note, size_t len, const struct note_verifier *v, int want,
                        const char *what)
{
    size_t tl = 0;
    int r = note_open(note, len, v, &tl);

    if (r != want)
        fail_msg("%s: expected %d (%s), seen %d (%s)", what, want, verr_str(want), r,
                 verr_str(r));
}

/* A key pair from a fixed seed byte: deterministic tests. */
static void keypair(uint8_t pk[SIG_PK_LEN], uint8_t sk[SIG_SK_LEN], uint8_t seed_byte)
{
    uint8_t seed[SIG_SEED_LEN];

    memset(seed, seed_byte, sizeof(seed));
    assert_int_equal(crypto_sign_seed_keypair(pk, sk, seed), 0);
}

static void our_verifier(struct note_verifier *v, const char *name, const uint8_t pk[SIG_PK_LEN])
{
    char s[NOTE_VERIFIER_KEY_MAX];

    assert_int_equal(note_verifier_format(s, sizeof(s), name, pk), 0);
    verifier(v, s);
}

/* A signed checkpoint for ORIGIN at size with a root of byte fill. */
static void signed_checkpoint(struct buf *note, uint64_t size, uint8_t fill,
                              const uint8_t sk[SIG_SK_LEN])
{
    uint8_t root[MERKLE_HASH_LEN];
    struct buf text;

    memset(root, fill, sizeof(root));
    assert_int_equal(buf_init(&text, NOTE_MAX_LEN, 0), 0);
    assert_int_equal(note_checkpoint_text(&text, ORIGIN, size, root), 0);
    assert_int_equal(buf_init(note, NOTE_MAX_LEN, 0), 0);
    assert_int_equal(note_sign(note, buf_data(&text), buf_size(&text), ORIGIN, sk), 0);
    buf_free(&text);
}

/* ---- the reference vector ---- */

static void test_vector_keys(void **state)
{
    struct note_verifier v;

    (void)state;
    verifier(&v, peter_vkey);
    assert_string_equal(v.name, "PeterNeumann");
    assert_true(v.key_id == 0xc74f20a3u);
    assert_true(note_key_id("PeterNeumann", v.pk) == 0xc74f20a3u);
    verifier(&v, enoch_vkey);
    assert_string_equal(v.name, "EnochRoot");
    assert_true(v.key_id == 0xaf0cfe78u);
}

static void test_vector_verify(void **state)
{
    struct note_verifier peter, enoch;
    uint8_t note[1024];
    char both[512];
    struct buf text;
    size_t len, tl = 0;

    (void)state;
    verifier(&peter, peter_vkey);
    verifier(&enoch, enoch_vkey);
    read_vector_text(&text);

    len = make_note(note, sizeof(note), buf_data(&text), buf_size(&text), peter_sig);
    assert_int_equal(note_open(note, len, &peter, &tl), 0);
    assert_int_equal(tl, buf_size(&text));
    assert_memory_equal(note, buf_data(&text), tl);
    /* Not signed by Enoch: refused as unknown. */
    expect_open(note, len, &enoch, VERR_UNKNOWN, "vector, other key");
    /* Every single-bit flip of the vector note is refused (its signature holds a '/'). */
    for (size_t i = 0; i < len; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            note[i] ^= (uint8_t)(1u << bit);
            if (note_open(note, len, &peter, &tl) == 0)
                fail_msg("vector note, bit %u of byte %zu flipped: expected refusal, seen 0",
                         bit, i);
            note[i] ^= (uint8_t)(1u << bit);
        }
    }

    /* Both signatures: each key finds its own and ignores the other. */
    assert_true(strlen(peter_sig) + strlen(enoch_sig) < sizeof(both));
    memcpy(both, peter_sig, strlen(peter_sig) + 1);
    memcpy(both + strlen(peter_sig), enoch_sig, strlen(enoch_sig) + 1);
    len = make_note(note, sizeof(note), buf_data(&text), buf_size(&text), both);
    expect_open(note, len, &peter, 0, "two signatures, Peter");
    expect_open(note, len, &enoch, 0, "two signatures, Enoch");

    /* README: final newline of the text dropped. */
    len = make_note(note, sizeof(note), buf_data(&text), buf_size(&text) - 1, peter_sig);
    expect_open(note, len, &peter, VERR_BAD_FORMAT, "text without final newline");
    /* README: signature altered (one base64 digit changed). */
    len = make_note(note, sizeof(note), buf_data(&text), buf_size(&text), peter_sig);
    note[len - 10] = note[len - 10] == 'A' ? 'B' : 'A';
    expect_open(note, len, &peter, VERR_BAD_SIGNATURE, "altered signature");
    /* README: no blank line before the signatures. */
    memcpy(note, buf_data(&text), buf_size(&text));
    memcpy(note + buf_size(&text), peter_sig, strlen(peter_sig));
    len = buf_size(&text) + strlen(peter_sig);
    expect_open(note, len, &peter, VERR_BAD_FORMAT, "no blank line");
    buf_free(&text);
}

static void test_vector_sign(void **state)
{
    uint8_t raw[64], pk[SIG_PK_LEN], sk[SIG_SK_LEN], want[1024];
    char vkey[NOTE_VERIFIER_KEY_MAX];
    /* PRIVATE+KEY+name+keyid+base64: the base64 itself may hold '+'. */
    const char *b64 = peter_skey;
    struct buf text, out;
    size_t n = 0, wl;

    (void)state;
    for (int plus = 0; plus < 4; plus++)
        b64 = strchr(b64, '+') + 1;
    /* The signer key: base64(0x01 || seed), the last field of the string. */
    assert_int_equal(text_b64_decode(raw, sizeof(raw), &n, b64, strlen(b64)), 0);
    assert_int_equal(n, 1 + SIG_SEED_LEN);
    assert_int_equal(raw[0], NOTE_ALG_ED25519);
    assert_int_equal(crypto_sign_seed_keypair(pk, sk, raw + 1), 0);
    assert_int_equal(note_verifier_format(vkey, sizeof(vkey), "PeterNeumann", pk), 0);
    assert_string_equal(vkey, peter_vkey);

    read_vector_text(&text);
    assert_int_equal(buf_init(&out, NOTE_MAX_LEN, 0), 0);
    assert_int_equal(note_sign(&out, buf_data(&text), buf_size(&text), "PeterNeumann", sk), 0);
    /* Ed25519 is deterministic: exactly the reference's signature line. */
    wl = make_note(want, sizeof(want), buf_data(&text), buf_size(&text), peter_sig);
    assert_int_equal(buf_size(&out), wl);
    assert_memory_equal(buf_data(&out), want, wl);
    sodium_memzero(sk, sizeof(sk));
    sodium_memzero(raw, sizeof(raw));
    buf_free(&out);
    buf_free(&text);
}

/* ---- our own notes ---- */

static void test_checkpoint_roundtrip(void **state)
{
    uint8_t pk[SIG_PK_LEN], sk[SIG_SK_LEN], root[MERKLE_HASH_LEN];
    struct note_checkpoint cp;
    struct note_verifier v;
    struct buf note;
    static const uint64_t sizes[] = {0, 1, 9, 10, 1234567, UINT64_MAX};

    (void)state;
    keypair(pk, sk, 7);
    our_verifier(&v, ORIGIN, pk);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        signed_checkpoint(&note, sizes[i], (uint8_t)(0x30 + i), sk);
        memset(&cp, 0, sizeof(cp));
        assert_int_equal(note_checkpoint_open(&cp, buf_data(&note), buf_size(&note), &v), 0);
        assert_string_equal(cp.origin, ORIGIN);
        assert_true(cp.size == sizes[i]);
        memset(root, 0x30 + (int)i, sizeof(root));
        assert_memory_equal(cp.root, root, MERKLE_HASH_LEN);
        assert_int_equal(cp.n_extensions, 0);
        buf_free(&note);
    }
    /* The body is exactly origin, size, root (PROTOCOL.md, part 5). */
    signed_checkpoint(&note, 42, 0, sk);
    {
        static const char body[] = ORIGIN "\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n";
        assert_true(buf_size(&note) > sizeof(body) - 1);
        assert_memory_equal(buf_data(&note), body, sizeof(body) - 1);
        assert_memory_equal(buf_data(&note) + sizeof(body) - 1, "\xe2\x80\x94 " ORIGIN " ",
                            4 + strlen(ORIGIN) + 1);
    }
    buf_free(&note);
    sodium_memzero(sk, sizeof(sk));
}

static void test_note_tamper(void **state)
{
    uint8_t pk[SIG_PK_LEN], sk[SIG_SK_LEN], pk2[SIG_PK_LEN], sk2[SIG_SK_LEN];
    uint8_t n2[NOTE_MAX_LEN + 64];
    struct note_checkpoint cp;
    struct note_verifier v, other, impostor;
    struct buf note;
    size_t len;

    (void)state;
    keypair(pk, sk, 1);
    keypair(pk2, sk2, 2);
    our_verifier(&v, ORIGIN, pk);
    signed_checkpoint(&note, 1000, 0xab, sk);
    len = buf_size(&note);
    assert_true(len < sizeof(n2));
    memcpy(n2, buf_data(&note), len);

    /* Every single-bit flip anywhere in the note is refused. */
    for (size_t i = 0; i < len; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            int r;
            n2[i] ^= (uint8_t)(1u << bit);
            r = note_checkpoint_open(&cp, n2, len, &v);
            n2[i] ^= (uint8_t)(1u << bit);
            if (r == 0)
                fail_msg("bit %u of byte %zu flipped: expected refusal, seen 0", bit, i);
        }
    }
    /* Every truncation is refused. */
    for (size_t cut = 0; cut < len; cut++)
        if (note_checkpoint_open(&cp, n2, cut, &v) == 0)
            fail_msg("note cut to %zu of %zu bytes: expected refusal, seen 0", cut, len);
    /* Trailing bytes: text after the last signature line, or a blank line. */
    n2[len] = 'x';
    expect_open(n2, len + 1, &v, VERR_BAD_FORMAT, "trailing byte");
    n2[len] = '\n';
    expect_open(n2, len + 1, &v, VERR_BAD_FORMAT, "trailing blank line");

    /* Wrong key under the same name: another key ID, so an unknown signature. */
    our_verifier(&other, ORIGIN, pk2);
    expect_open(buf_data(&note), len, &other, VERR_UNKNOWN, "other key, same name");
    /* Same key under another name: unknown too. */
    our_verifier(&other, "valise.example/other", pk);
    expect_open(buf_data(&note), len, &other, VERR_UNKNOWN, "same key, other name");
    /* Same name and key ID but another key (a collision): must verify, and fail. */
    impostor = v;
    memcpy(impostor.pk, pk2, SIG_PK_LEN);
    expect_open(buf_data(&note), len, &impostor, VERR_BAD_SIGNATURE, "colliding key ID");

    /* Signed by the right key name with the wrong key, plus the other note's body. */
    buf_free(&note);
    signed_checkpoint(&note, 1000, 0xab, sk2);
    expect_open(buf_data(&note), buf_size(&note), &v, VERR_UNKNOWN, "signed by another key");
    buf_free(&note);
    sodium_memzero(sk, sizeof(sk));
    sodium_memzero(sk2, sizeof(sk2));
}

/* Signature lines from other keys around ours; the cap on their number. */
static void test_note_signature_lines(void **state)
{
    uint8_t pk[SIG_PK_LEN], sk[SIG_SK_LEN], pk2[SIG_PK_LEN], sk2[SIG_SK_LEN];
    static uint8_t n2[BIG];
    struct note_verifier v;
    struct buf note, cosig;
    const uint8_t *ours;
    size_t len, sig_off, ours_len, cos_len;
    const uint8_t *cos_line;

    (void)state;
    keypair(pk, sk, 3);
    keypair(pk2, sk2, 4);
    our_verifier(&v, ORIGIN, pk);
    signed_checkpoint(&note, 5, 1, sk);
    len = buf_size(&note);
    /* Our signature line starts after the blank line. */
    for (sig_off = 1; sig_off < len; sig_off++)
        if (buf_data(&note)[sig_off - 1] == '\n' && buf_data(&note)[sig_off] == '\n')
            break;
    sig_off++;
    ours = buf_data(&note) + sig_off;
    ours_len = len - sig_off;
    /* A cosignature line by another key over the same text. */
    assert_int_equal(buf_init(&cosig, NOTE_MAX_LEN, 0), 0);
    assert_int_equal(note_sign(&cosig, buf_data(&note), sig_off - 1, "witness.example/w1", sk2), 0);
    cos_line = buf_data(&cosig) + sig_off;
    cos_len = buf_size(&cosig) - sig_off;

    /* text, blank, k other lines, ours, m other lines: verifies up to 16 lines in all. */
    for (size_t before = 0; before <= NOTE_MAX_SIGS; before++) {
        for (size_t after = 0; before + after <= NOTE_MAX_SIGS; after++) {
            size_t off = sig_off, total = before + after + 1;
            int want = total <= NOTE_MAX_SIGS ? 0 : VERR_TOO_LARGE;

            memcpy(n2, buf_data(&note), sig_off);
            for (size_t i = 0; i < before; i++, off += cos_len)
                memcpy(n2 + off, cos_line, cos_len);
            memcpy(n2 + off, ours, ours_len);
            off += ours_len;
            for (size_t i = 0; i < after; i++, off += cos_len)
                memcpy(n2 + off, cos_line, cos_len);
            expect_open(n2, off, &v, want, "signature lines around ours");
        }
    }
    /* Our signature twice: refused as ambiguous. */
    memcpy(n2, buf_data(&note), len);
    memcpy(n2 + len, ours, ours_len);
    expect_open(n2, len + ours_len, &v, VERR_BAD_FORMAT, "our signature twice");
    /* Only other keys' lines: unknown. */
    memcpy(n2, buf_data(&note), sig_off);
    memcpy(n2 + sig_off, cos_line, cos_len);
    expect_open(n2, sig_off + cos_len, &v, VERR_UNKNOWN, "only another key's signature");
    buf_free(&cosig);
    buf_free(&note);
    sodium_memzero(sk, sizeof(sk));
    sodium_memzero(sk2, sizeof(sk2));
}

static void test_note_malformed(void **state)
{
    static const char text[] = ORIGIN "\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    static const char *const bad_lines[] = {
        "-- x AAAAAAA=\n",                /* no em dash */
        "\xe2\x80\x94x AAAAAAA=\n",       /* no space after the dash */
        "\xe2\x80\x94  AAAAAAA=\n",       /* empty name */
        "\xe2\x80\x94 a+b AAAAAAA=\n",    /* '+' in the name */
        "\xe2\x80\x94 a\xc2\xa0" "b AAAAAAA=\n", /* U+00A0 in the name */
        "\xe2\x80\x94 x\n",               /* no signature */
        "\xe2\x80\x94 x \n",              /* empty signature */
        "\xe2\x80\x94 x AAAA\n",          /* 3 bytes: shorter than a key ID and a byte */
        "\xe2\x80\x94 x AAAAAA==\n",      /* 4 bytes: a key ID alone */
        "\xe2\x80\x94 x AAAAAAA\n",       /* no padding */
        "\xe2\x80\x94 x AAA AAAA=\n",     /* space in the signature */
        "\xe2\x80\x94 x AAAAAAB=\n",      /* non-zero trailing bits */
        "\xe2\x80\x94 x !AAAAAA=\n",      /* not base64 */
        "\xe2\x80\x94 x AAAAAAA=",        /* no final newline */
    };
    uint8_t pk[SIG_PK_LEN], sk[SIG_SK_LEN];
    static uint8_t n2[BIG];
    struct note_verifier v;
    struct buf note, out;
    size_t len, tl = strlen(text);

    (void)state;
    keypair(pk, sk, 5);
    our_verifier(&v, ORIGIN, pk);
    assert_int_equal(buf_init(&note, NOTE_MAX_LEN, 0), 0);
    assert_int_equal(note_sign(&note, (const uint8_t *)text, tl, ORIGIN, sk), 0);
    len = buf_size(&note);

    /* A malformed line before our good one spoils the note. */
    for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
        size_t bl = strlen(bad_lines[i]);
        memcpy(n2, text, tl);
        n2[tl] = '\n';
        memcpy(n2 + tl + 1, bad_lines[i], bl);
        memcpy(n2 + tl + 1 + bl, buf_data(&note) + tl + 1, len - tl - 1);
        if (bad_lines[i][bl - 1] != '\n') /* then it runs into our line */
            continue;
        expect_open(n2, len + bl, &v, VERR_BAD_FORMAT, bad_lines[i]);
        /* ... and after it as well. */
        memcpy(n2, buf_data(&note), len);
        memcpy(n2 + len, bad_lines[i], bl);
        expect_open(n2, len + bl, &v, VERR_BAD_FORMAT, bad_lines[i]);
    }
    /* Control bytes and broken UTF-8 anywhere. */
    {
        static const char *const bad_bytes[] = {"\t", "\r", "\x01", "\x7f\xff", "\xc0\xaf",
                                                "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x80"};
        for (size_t i = 0; i < sizeof(bad_bytes) / sizeof(bad_bytes[0]); i++) {
            size_t bl = strlen(bad_bytes[i]);
            memcpy(n2, bad_bytes[i], bl);
            memcpy(n2 + bl, buf_data(&note), len);
            expect_open(n2, len + bl, &v, VERR_BAD_FORMAT, "bad byte at the start");
            assert_int_equal(buf_init(&out, NOTE_MAX_LEN, 0), 0);
            assert_int_equal(note_sign(&out, n2, bl + tl, ORIGIN, sk), VERR_USAGE);
            assert_int_equal(buf_size(&out), 0);
            buf_free(&out);
        }
    }
    /* A NUL byte. */
    memcpy(n2, buf_data(&note), len);
    n2[3] = 0;
    expect_open(n2, len, &v, VERR_BAD_FORMAT, "NUL in the text");
    /* Empty and tiny notes. */
    expect_open(n2, 0, &v, VERR_BAD_FORMAT, "empty note");
    expect_open((const uint8_t *)"\n", 1, &v, VERR_BAD_FORMAT, "newline");
    expect_open((const uint8_t *)"\n\n", 2, &v, VERR_BAD_FORMAT, "blank line only");

    /* Oversize: a note over NOTE_MAX_LEN is refused before anything else. */
    memset(n2, 'a', NOTE_MAX_LEN + 1);
    expect_open(n2, NOTE_MAX_LEN + 1, &v, VERR_TOO_LARGE, "oversize note");
    /* Signing: too large, no final newline, bad names. */
    assert_int_equal(buf_init(&out, BIG, 0), 0);
    n2[NOTE_MAX_LEN - 50] = '\n';
    assert_int_equal(note_sign(&out, n2, NOTE_MAX_LEN - 49, ORIGIN, sk), VERR_TOO_LARGE);
    assert_int_equal(note_sign(&out, (const uint8_t *)text, tl - 1, ORIGIN, sk), VERR_USAGE);
    assert_int_equal(note_sign(&out, (const uint8_t *)text, 0, ORIGIN, sk), VERR_USAGE);
    assert_int_equal(note_sign(&out, (const uint8_t *)text, tl, "a b", sk), VERR_USAGE);
    assert_int_equal(note_sign(&out, (const uint8_t *)text, tl, "a+b", sk), VERR_USAGE);
    assert_int_equal(note_sign(&out, (const uint8_t *)text, tl, "", sk), VERR_USAGE);
    assert_int_equal(buf_size(&out), 0);
    /* A text that itself ends in a blank line still signs and opens. */
    assert_int_equal(note_sign(&out, (const uint8_t *)"a\n\n", 3, ORIGIN, sk), 0);
    {
        size_t got = 0;
        assert_int_equal(note_open(buf_data(&out), buf_size(&out), &v, &got), 0);
        assert_int_equal(got, 3);
    }
    buf_free(&out);
    /* An output buffer too small: nothing written. */
    assert_int_equal(buf_init(&out, 10, 0), 0);
    assert_int_equal(note_sign(&out, (const uint8_t *)text, tl, ORIGIN, sk), VERR_TOO_LARGE);
    assert_int_equal(buf_size(&out), 0);
    buf_free(&out);
    buf_free(&note);
    sodium_memzero(sk, sizeof(sk));
}

/* ---- checkpoint text ---- */

static int parse_cp(struct note_checkpoint *cp, const char *s)
{
    return note_checkpoint_parse(cp, (const uint8_t *)s, strlen(s));
}

#define ROOT_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

static void test_checkpoint_parse(void **state)
{
    static const struct {
        const char *text;
        int want;
    } cases[] = {
        {ORIGIN "\n0\n" ROOT_B64 "\n", 0},
        {ORIGIN "\n18446744073709551615\n" ROOT_B64 "\n", 0},
        {ORIGIN "\n5\n" ROOT_B64 "\next one\next two\n", 0},
        {"any origin at all, even spaced\n5\n" ROOT_B64 "\n", 0},
        {ORIGIN "\n18446744073709551616\n" ROOT_B64 "\n", VERR_BAD_FORMAT},
        {ORIGIN "\n01\n" ROOT_B64 "\n", VERR_BAD_FORMAT},
        {ORIGIN "\n00\n" ROOT_B64 "\n", VERR_BAD_FORMAT},
        {ORIGIN "\n+1\n" ROOT_B64 "\n", VERR_BAD_FORMAT},
        {ORIGIN "\n-1\n" ROOT_B64 "\n", VERR_BAD_FORMAT},
        {ORIGIN "\n 1\n" ROOT_B64 "\n", VERR_BAD_FORMAT},
        {ORIGIN "\n1 \n" ROOT_B64 "\n", VERR_BAD_FORMAT},
        {ORIGIN "\n0x10\n" ROOT_B64 "\n", VERR_BAD_FORMAT},
        {ORIGIN "\n\n" ROOT_B64 "\n", VERR_BAD_FORMAT},
        {"\n5\n" ROOT_B64 "\n", VERR_BAD_FORMAT},
        {ORIGIN "\n5\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n", VERR_BAD_FORMAT},
        {ORIGIN "\n5\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n", VERR_BAD_FORMAT},
        {ORIGIN "\n5\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\n", VERR_BAD_FORMAT},
        {ORIGIN "\n5\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=AAAA\n", VERR_BAD_FORMAT},
        {ORIGIN "\n5\n" ROOT_B64 "\n\n", VERR_BAD_FORMAT},
        {ORIGIN "\n5\n" ROOT_B64 "\next\n\n", VERR_BAD_FORMAT},
        {ORIGIN "\n5\n" ROOT_B64, VERR_BAD_FORMAT},
        {ORIGIN "\n5\n", VERR_TRUNCATED},
        {ORIGIN "\n", VERR_TRUNCATED},
        {"", VERR_TRUNCATED},
        {ORIGIN "\t\n5\n" ROOT_B64 "\n", VERR_BAD_FORMAT},
        {ORIGIN "\xff\n5\n" ROOT_B64 "\n", VERR_BAD_FORMAT},
    };
    struct note_checkpoint cp;
    uint8_t root[MERKLE_HASH_LEN];
    char text[4096];
    size_t off;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = parse_cp(&cp, cases[i].text);
        if (r != cases[i].want)
            fail_msg("checkpoint %zu \"%s\": expected %d, seen %d", i, cases[i].text,
                     cases[i].want, r);
    }
    assert_int_equal(parse_cp(&cp, ORIGIN "\n18446744073709551615\n" ROOT_B64 "\nx\n"), 0);
    assert_true(cp.size == UINT64_MAX);
    assert_int_equal(cp.n_extensions, 1);
    for (size_t i = 0; i < MERKLE_HASH_LEN; i++)
        root[i] = (uint8_t)i;
    assert_memory_equal(cp.root, root, MERKLE_HASH_LEN);

    /* Origin cap: 255 bytes pass, 256 do not. */
    memset(text, 'o', NOTE_MAX_NAME_LEN);
    memcpy(text + NOTE_MAX_NAME_LEN, "\n1\n" ROOT_B64 "\n", 3 + NOTE_HASH_B64_LEN + 2);
    assert_int_equal(parse_cp(&cp, text), 0);
    assert_int_equal(strlen(cp.origin), NOTE_MAX_NAME_LEN);
    memset(text, 'o', NOTE_MAX_NAME_LEN + 1);
    memcpy(text + NOTE_MAX_NAME_LEN + 1, "\n1\n" ROOT_B64 "\n", 3 + NOTE_HASH_B64_LEN + 2);
    assert_int_equal(parse_cp(&cp, text), VERR_TOO_LARGE);

    /* Extension cap: 16 pass, 17 do not. */
    off = (size_t)snprintf(text, sizeof(text), "%s", ORIGIN "\n1\n" ROOT_B64 "\n");
    for (size_t i = 0; i < NOTE_MAX_EXTENSIONS; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "e%zu\n", i);
    assert_int_equal(parse_cp(&cp, text), 0);
    assert_int_equal(cp.n_extensions, NOTE_MAX_EXTENSIONS);
    snprintf(text + off, sizeof(text) - off, "last\n");
    assert_int_equal(parse_cp(&cp, text), VERR_TOO_LARGE);
}

static void test_checkpoint_text_mutations(void **state)
{
    uint8_t root[MERKLE_HASH_LEN];
    struct note_checkpoint cp, back;
    uint8_t t[256];
    struct buf text;
    size_t len;

    (void)state;
    for (size_t i = 0; i < sizeof(root); i++)
        root[i] = (uint8_t)(i * 7);
    assert_int_equal(buf_init(&text, 256, 0), 0);
    assert_int_equal(note_checkpoint_text(&text, ORIGIN, 123456, root), 0);
    len = buf_size(&text);
    memcpy(t, buf_data(&text), len);
    assert_int_equal(note_checkpoint_parse(&cp, t, len), 0);
    assert_true(cp.size == 123456);
    assert_memory_equal(cp.root, root, MERKLE_HASH_LEN);

    for (size_t cut = 0; cut < len; cut++)
        if (note_checkpoint_parse(&back, t, cut) == 0)
            fail_msg("checkpoint text cut to %zu of %zu: expected refusal, seen 0", cut, len);
    /* A bit flip is refused, or yields another origin, size or root: never the same. */
    for (size_t i = 0; i < len; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            int r;
            t[i] ^= (uint8_t)(1u << bit);
            r = note_checkpoint_parse(&back, t, len);
            t[i] ^= (uint8_t)(1u << bit);
            if (r == 0 && strcmp(back.origin, cp.origin) == 0 && back.size == cp.size &&
                memcmp(back.root, cp.root, MERKLE_HASH_LEN) == 0)
                fail_msg("bit %u of byte %zu flipped: parsed to the same checkpoint", bit, i);
        }
    }
    /* Writer: bad origins, too small a buffer; nothing written on failure. */
    buf_reset(&text);
    assert_int_equal(note_checkpoint_text(&text, "", 1, root), VERR_USAGE);
    assert_int_equal(note_checkpoint_text(&text, "a b", 1, root), VERR_USAGE);
    assert_int_equal(note_checkpoint_text(&text, "a\nb", 1, root), VERR_USAGE);
    assert_int_equal(buf_size(&text), 0);
    buf_free(&text);
    assert_int_equal(buf_init(&text, 30, 0), 0);
    assert_int_equal(note_checkpoint_text(&text, ORIGIN, 1, root), VERR_TOO_LARGE);
    assert_int_equal(buf_size(&text), 0);
    buf_free(&text);
}

static void test_checkpoint_origin_must_match(void **state)
{
    uint8_t pk[SIG_PK_LEN], sk[SIG_SK_LEN], root[MERKLE_HASH_LEN] = {0};
    struct note_checkpoint cp;
    struct note_verifier v;
    struct buf text, note;

    (void)state;
    keypair(pk, sk, 6);
    our_verifier(&v, ORIGIN, pk);
    assert_int_equal(buf_init(&text, 512, 0), 0);
    assert_int_equal(note_checkpoint_text(&text, "valise.example/elsewhere", 3, root), 0);
    assert_int_equal(buf_init(&note, NOTE_MAX_LEN, 0), 0);
    assert_int_equal(note_sign(&note, buf_data(&text), buf_size(&text), ORIGIN, sk), 0);
    /* The signature is good, the origin is not the key's name. */
    expect_open(buf_data(&note), buf_size(&note), &v, 0, "signature itself");
    assert_int_equal(note_checkpoint_open(&cp, buf_data(&note), buf_size(&note), &v),
                     VERR_BAD_FORMAT);
    /* A signed note that is not a checkpoint. */
    buf_free(&note);
    assert_int_equal(buf_init(&note, NOTE_MAX_LEN, 0), 0);
    assert_int_equal(note_sign(&note, (const uint8_t *)"hello\n", 6, ORIGIN, sk), 0);
    assert_int_not_equal(note_checkpoint_open(&cp, buf_data(&note), buf_size(&note), &v), 0);
    buf_free(&note);
    buf_free(&text);
    sodium_memzero(sk, sizeof(sk));
}

/* ---- verifier keys ---- */

static void test_verifier_parse(void **state)
{
    static const struct {
        const char *s;
        int want;
    } cases[] = {
        {"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", 0},
        {"PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", VERR_BAD_FORMAT},
        {"PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", VERR_BAD_KEY},
        {"PeterNeumanN+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", VERR_BAD_KEY},
        {"PeterNeumann+c74f20a3+AhpcrQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", VERR_BAD_KEY},
        {"PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", VERR_BAD_FORMAT},
        {"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", VERR_BAD_FORMAT},
        {"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=",
         VERR_BAD_FORMAT},
        {"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n",
         VERR_BAD_FORMAT},
        {"PeterNeumann+c74f20a3", VERR_BAD_FORMAT},
        {"PeterNeumann", VERR_BAD_FORMAT},
        {"+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", VERR_BAD_FORMAT},
        {"Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", VERR_BAD_FORMAT},
        {"", VERR_BAD_FORMAT},
    };
    struct note_verifier v;
    uint8_t pk[SIG_PK_LEN], sk[SIG_SK_LEN];
    char s[NOTE_VERIFIER_KEY_MAX + 8];
    char name[NOTE_MAX_NAME_LEN + 2];
    size_t len;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = note_verifier_parse(&v, cases[i].s, strlen(cases[i].s));
        if (r != cases[i].want)
            fail_msg("verifier key %zu \"%s\": expected %d, seen %d", i, cases[i].s,
                     cases[i].want, r);
    }
    /* Every truncation and every bit flip of a good key is refused. */
    len = strlen(peter_vkey);
    memcpy(s, peter_vkey, len + 1);
    for (size_t cut = 0; cut < len; cut++)
        if (note_verifier_parse(&v, s, cut) == 0)
            fail_msg("verifier key cut to %zu: expected refusal, seen 0", cut);
    for (size_t i = 0; i < len; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            int r;
            s[i] = (char)(s[i] ^ (char)(1 << bit));
            r = note_verifier_parse(&v, s, len);
            s[i] = (char)(s[i] ^ (char)(1 << bit));
            if (r == 0)
                fail_msg("verifier key bit %u of byte %zu flipped: expected refusal, seen 0", bit,
                         i);
        }
    }
    /* A small-order point with a matching key ID is refused. */
    memset(pk, 0, sizeof(pk));
    pk[0] = 1; /* the identity element */
    assert_int_equal(note_verifier_format(s, sizeof(s), "weak", pk), 0);
    assert_int_equal(note_verifier_parse(&v, s, strlen(s)), VERR_BAD_KEY);
    /* Another signature type with a matching ID. */
    keypair(pk, sk, 9);
    assert_int_equal(note_verifier_format(s, sizeof(s), "k", pk), 0);
    {
        uint8_t raw[1 + SIG_PK_LEN];
        char b64[NOTE_KEY_B64_LEN + 1];

        raw[0] = 0x02; /* ECDSA in signed-note's table: not a type we verify */
        memcpy(raw + 1, pk, SIG_PK_LEN);
        assert_int_equal(text_b64_encode(b64, sizeof(b64), raw, sizeof(raw)), 0);
        memcpy(s + strlen(s) - NOTE_KEY_B64_LEN, b64, NOTE_KEY_B64_LEN);
        assert_int_equal(note_verifier_parse(&v, s, strlen(s)), VERR_BAD_KEY);
    }
    /* Name length cap, through the formatter and the parser. */
    memset(name, 'n', NOTE_MAX_NAME_LEN);
    name[NOTE_MAX_NAME_LEN] = '\0';
    assert_int_equal(note_verifier_format(s, sizeof(s), name, pk), 0);
    assert_int_equal(note_verifier_parse(&v, s, strlen(s)), 0);
    assert_string_equal(v.name, name);
    name[NOTE_MAX_NAME_LEN] = 'n';
    name[NOTE_MAX_NAME_LEN + 1] = '\0';
    assert_int_equal(note_verifier_format(s, sizeof(s), name, pk), VERR_USAGE);
    assert_int_equal(note_verifier_format(s, 20, "k", pk), VERR_TOO_LARGE);
    sodium_memzero(sk, sizeof(sk));
}

static void test_name_rules(void **state)
{
    (void)state;
    assert_true(note_name_valid("valise.example/relay", 20));
    assert_true(note_name_valid("caf\xc3\xa9", 5));
    assert_false(note_name_valid("", 0));
    assert_false(note_name_valid("a b", 3));
    assert_false(note_name_valid("a+b", 3));
    assert_false(note_name_valid("a\xe3\x80\x80" "b", 5)); /* U+3000 */
    assert_false(note_name_valid("a\xe2\x80\xa8" "b", 5)); /* U+2028 */
    assert_false(note_name_valid("a\xc3", 2));
    assert_false(note_name_valid("a\x7f", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_keys),
        cmocka_unit_test(test_vector_verify),
        cmocka_unit_test(test_vector_sign),
        cmocka_unit_test(test_checkpoint_roundtrip),
        cmocka_unit_test(test_note_tamper),
        cmocka_unit_test(test_note_signature_lines),
        cmocka_unit_test(test_note_malformed),
        cmocka_unit_test(test_checkpoint_parse),
        cmocka_unit_test(test_checkpoint_text_mutations),
        cmocka_unit_test(test_checkpoint_origin_must_match),
        cmocka_unit_test(test_verifier_parse),
        cmocka_unit_test(test_name_rules),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
