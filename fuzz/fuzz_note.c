/*
 * fuzz_note.c - libFuzzer harness for C2SP signed notes, checkpoints and
 * verifier keys (lib/note.h). The input is tried as a verifier key, as a
 * note against a fixed key (seed 32 x 0x42, name valise.example/relay) and
 * the Go reference key, and as a checkpoint text. A checkpoint that parses
 * must re-format to exactly its input (one canonical spelling).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "note.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ORIGIN "valise.example/relay"

static struct note_verifier fuzz_ours, fuzz_peter;
static int fuzz_ready;

static void fuzz_setup(void)
{
    static const char peter[] = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    uint8_t seed[SIG_SEED_LEN], pk[SIG_PK_LEN], sk[SIG_SK_LEN];
    char vkey[NOTE_VERIFIER_KEY_MAX];

    if (sodium_init() < 0)
        abort();
    memset(seed, 0x42, sizeof(seed));
    if (crypto_sign_seed_keypair(pk, sk, seed) != 0 ||
        note_verifier_format(vkey, sizeof(vkey), FUZZ_ORIGIN, pk) != 0 ||
        note_verifier_parse(&fuzz_ours, vkey, strlen(vkey)) != 0 ||
        note_verifier_parse(&fuzz_peter, peter, strlen(peter)) != 0)
        abort();
    fuzz_ready = 1;
}

static void fuzz_checkpoint(const uint8_t *text, size_t len)
{
    struct note_checkpoint cp;
    struct buf out;

    if (note_checkpoint_parse(&cp, text, len) != 0)
        return;
    if (cp.size > 0 && cp.origin[0] == '\0')
        abort();
    /* Without extension lines and with a name-like origin, it re-formats exactly. */
    if (cp.n_extensions != 0 || !note_name_valid(cp.origin, strlen(cp.origin)))
        return;
    if (buf_init(&out, NOTE_MAX_LEN, 0) != 0)
        abort();
    if (note_checkpoint_text(&out, cp.origin, cp.size, cp.root) != 0 || buf_size(&out) != len ||
        memcmp(buf_data(&out), text, len) != 0)
        abort();
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct note_verifier v;
    struct note_checkpoint cp;
    size_t tl = 0;

    if (!fuzz_ready)
        fuzz_setup();
    if (note_verifier_parse(&v, (const char *)data, size) == 0 &&
        (v.name[0] == '\0' || strlen(v.name) > NOTE_MAX_NAME_LEN))
        abort();
    if (note_open(data, size, &fuzz_ours, &tl) == 0) {
        if (tl == 0 || tl >= size || data[tl - 1] != '\n' || data[tl] != '\n')
            abort();
        fuzz_checkpoint(data, tl);
    }
    if (note_open(data, size, &fuzz_peter, &tl) == 0 && (tl == 0 || tl >= size))
        abort();
    if (note_checkpoint_open(&cp, data, size, &fuzz_ours) == 0 &&
        strcmp(cp.origin, FUZZ_ORIGIN) != 0)
        abort();
    fuzz_checkpoint(data, size);
    return 0;
}
