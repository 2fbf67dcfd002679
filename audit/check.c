/* check.c - load and verify a relay's audit log (see check.h). */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logdb.h"

enum { ACP_MAX = 1 << 24, AREC_MAX = UINT32_MAX };

struct loader {
    struct alogdata *d;
    uint64_t cap;
    size_t cp_cap;
};

static int grow_records(struct loader *L)
{
    uint64_t ncap = L->cap < 1024 ? 1024 : L->cap * 2;
    struct alogdata *d = L->d;
    void *a, *b, *c;

    if (ncap > AREC_MAX)
        return VERR_TOO_LARGE;
    if ((a = realloc(d->leaf, (size_t)ncap * MERKLE_HASH_LEN)) == NULL)
        return VERR_NOMEM;
    d->leaf = a;
    if ((b = realloc(d->rec, (size_t)ncap * sizeof(*d->rec))) == NULL)
        return VERR_NOMEM;
    d->rec = b;
    if ((c = realloc(d->rec_verr, (size_t)ncap * sizeof(*d->rec_verr))) == NULL)
        return VERR_NOMEM;
    d->rec_verr = c;
    L->cap = ncap;
    return 0;
}

static int on_record(void *ctx, uint64_t index, const uint8_t *p, size_t len)
{
    struct loader *L = ctx;
    struct alogdata *d = L->d;
    int r;

    if (index >= L->cap && (r = grow_records(L)) != 0)
        return r;
    /* The leaf is whatever bytes are stored: a malformed record still hashes. */
    merkle_leaf_hash(d->leaf[index], p, len);
    d->rec_verr[index] = audit_record_parse(p, len, &d->rec[index]);
    if (d->rec_verr[index] != 0)
        audit_record_init(&d->rec[index], 0, 0);
    d->n = index + 1;
    return 0;
}

static int on_checkpoint(void *ctx, uint64_t size, const uint8_t *note, size_t len)
{
    struct loader *L = ctx;
    struct alogdata *d = L->d;
    struct acp *c;

    if (d->ncps == L->cp_cap) {
        size_t ncap = L->cp_cap < 64 ? 64 : L->cp_cap * 2;
        struct acp *np;

        if (ncap > ACP_MAX)
            return VERR_TOO_LARGE;
        if ((np = realloc(d->cps, ncap * sizeof(*np))) == NULL)
            return VERR_NOMEM;
        d->cps = np;
        L->cp_cap = ncap;
    }
    c = &d->cps[d->ncps];
    memset(c, 0, sizeof(*c));
    if ((c->note = malloc(len > 0 ? len : 1)) == NULL)
        return VERR_NOMEM;
    memcpy(c->note, note, len);
    c->len = len;
    c->key_size = size;
    c->verr = VERR_UNKNOWN;
    d->ncps++;
    return 0;
}

int aload(struct alogdata *d, const char *dir)
{
    struct alog *l = NULL;
    struct loader L = {.d = d};
    uint64_t bad = 0;
    int r;

    memset(d, 0, sizeof(*d));
    if ((r = alog_open(&l, dir)) != 0)
        goto out;
    r = alog_each_record(l, on_record, &L, &bad);
    if (r == VERR_BAD_FORMAT) {
        /* a hole in the numbering: keep what precedes it, report it */
        d->numbering_gap = 1;
        d->gap_index = bad;
        r = 0;
    }
    if (r != 0 || (r = alog_each_checkpoint(l, on_checkpoint, &L)) != 0)
        goto out;
    r = 0;
out:
    alog_close(l);
    if (r != 0)
        aload_free(d);
    return r;
}

void aload_free(struct alogdata *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->ncps; i++)
        free(d->cps[i].note);
    free(d->cps);
    free(d->leaf);
    free(d->rec);
    free(d->rec_verr);
    memset(d, 0, sizeof(*d));
}

const char *averdict_name(enum averdict v)
{
    switch (v) {
    case AV_OK:
        return "ok";
    case AV_TAMPER:
        return "tampered";
    case AV_ROLLBACK:
        return "rollback";
    case AV_FORK:
        return "fork";
    case AV_INCONSISTENT:
        return "inconsistent";
    case AV_RESTORED:
        return "restored";
    }
    return "unknown";
}

const struct acp *acp_find(const struct alogdata *d, uint64_t size)
{
    for (size_t i = 0; i < d->ncps; i++)
        if (d->cps[i].verr == 0 && d->cps[i].cp.size == size)
            return &d->cps[i];
    return NULL;
}

static void verdict(struct averify_out *o, enum averdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verdict(struct averify_out *o, enum averdict v, const char *fmt, ...)
{
    va_list ap;

    o->verdict = v;
    va_start(ap, fmt);
    vsnprintf(o->reason, sizeof(o->reason), fmt, ap);
    va_end(ap);
}

int akey_foreign(const struct alogdata *d, const struct note_verifier *v, char *origin,
                 size_t originsz)
{
    size_t text_len, n = 0;

    if (originsz == 0)
        return 0;
    origin[0] = '\0';
    if (d->ncps == 0)
        return 0;
    /* note_open says VERR_UNKNOWN only when no signature line has v's name and id. */
    for (size_t c = 0; c < d->ncps; c++)
        if (note_open(d->cps[c].note, d->cps[c].len, v, &text_len) != VERR_UNKNOWN)
            return 0;
    while (n < d->cps[0].len && n + 1 < originsz && d->cps[0].note[n] != '\n') {
        if (d->cps[0].note[n] <= 0x20 || d->cps[0].note[n] >= 0x7f) {
            n = 0;
            break;
        }
        origin[n] = (char)d->cps[0].note[n];
        n++;
    }
    if (n == 0)
        snprintf(origin, originsz, "?");
    else
        origin[n] = '\0';
    return 1;
}

int averify_log(struct alogdata *d, const struct note_verifier *v, struct averify_out *o)
{
    struct merkle_state tree;
    uint8_t root[MERKLE_HASH_LEN];
    uint64_t prev = 0;
    int r;

    memset(o, 0, sizeof(*o));
    for (uint64_t i = 0; i < d->n; i++) {
        if (d->rec_verr[i] != 0) {
            verdict(o, AV_TAMPER, "record %llu is malformed (%s)", (unsigned long long)i,
                    verr_str(d->rec_verr[i]));
            return 0;
        }
    }
    /* Signatures and sizes of every checkpoint first: the reason names the first bad one. */
    for (size_t c = 0; c < d->ncps; c++) {
        struct acp *cp = &d->cps[c];

        cp->verr = note_checkpoint_open(&cp->cp, cp->note, cp->len, v);
        if (cp->verr != 0) {
            verdict(o, AV_TAMPER,
                    "checkpoint stored at size %llu does not verify with the key (%s)",
                    (unsigned long long)cp->key_size, verr_str(cp->verr));
            return 0;
        }
        if (cp->cp.size != cp->key_size) {
            verdict(o, AV_TAMPER, "checkpoint stored at size %llu is signed for size %llu",
                    (unsigned long long)cp->key_size, (unsigned long long)cp->cp.size);
            return 0;
        }
    }
    if (d->numbering_gap) {
        verdict(o, AV_TAMPER, "record %llu is missing: the log's numbering has a hole there",
                (unsigned long long)d->gap_index);
        return 0;
    }
    for (size_t c = 0; c < d->ncps; c++) {
        if (d->cps[c].cp.size > d->n) {
            verdict(o, AV_TAMPER,
                    "checkpoint at size %llu covers more records than the log holds (%llu): "
                    "records were removed from the end",
                    (unsigned long long)d->cps[c].cp.size, (unsigned long long)d->n);
            return 0;
        }
    }
    /* One pass: the tree grows leaf by leaf and is compared at each checkpoint. */
    merkle_state_init(&tree);
    for (size_t c = 0; c < d->ncps; c++) {
        const struct acp *cp = &d->cps[c];

        while (merkle_state_size(&tree) < cp->cp.size)
            if ((r = merkle_state_append(&tree, d->leaf[merkle_state_size(&tree)])) != 0)
                return r;
        merkle_state_root(&tree, root);
        if (cp->cp.size == 0 ? 0 : memcmp(root, cp->cp.root, MERKLE_HASH_LEN) != 0) {
            verdict(o, AV_TAMPER,
                    "records do not match the signed checkpoint at size %llu: a record in "
                    "[%llu, %llu) was altered, removed, reordered or inserted",
                    (unsigned long long)cp->cp.size, (unsigned long long)prev,
                    (unsigned long long)cp->cp.size);
            o->evidence = cp;
            return 0;
        }
        prev = cp->cp.size;
        o->checkpoints++;
        o->latest = cp;
    }
    /* First to latest: an RFC 9162 consistency proof from the records, checked
     * against both signed roots (each root already matched the recomputed tree). */
    if (o->checkpoints >= 2 && d->cps[0].cp.size > 0 && o->latest->cp.size > d->cps[0].cp.size) {
        struct merkle_proof proof;

        if ((r = merkle_consistency_proof_array(&proof, d->cps[0].cp.size, d->leaf[0],
                                                o->latest->cp.size)) != 0)
            return r;
        if (merkle_verify_consistency(d->cps[0].cp.size, o->latest->cp.size, &proof,
                                      d->cps[0].cp.root, o->latest->cp.root) != 0) {
            verdict(o, AV_TAMPER, "checkpoints at sizes %llu and %llu are not consistent",
                    (unsigned long long)d->cps[0].cp.size, (unsigned long long)o->latest->cp.size);
            return 0;
        }
    }
    o->verdict = AV_OK;
    return 0;
}

static int averify_state_plain(const struct alogdata *d, const struct audit_state *st,
                               struct averify_out *o)
{
    const struct note_checkpoint *rem = &st->cp;
    const struct acp *latest = o->latest, *same;
    uint64_t lsize = latest != NULL ? latest->cp.size : 0;
    struct merkle_proof proof;
    int r;

    if (lsize < rem->size) {
        verdict(o, AV_ROLLBACK,
                "the log's newest checkpoint has %llu records but a checkpoint with %llu was "
                "verified before: the log was rolled back or truncated",
                (unsigned long long)lsize, (unsigned long long)rem->size);
        o->evidence = latest;
        return 0;
    }
    if ((same = acp_find(d, rem->size)) != NULL &&
        memcmp(same->cp.root, rem->root, MERKLE_HASH_LEN) != 0) {
        verdict(o, AV_FORK,
                "two checkpoints signed for size %llu with different roots: the log was forked",
                (unsigned long long)rem->size);
        o->evidence = same;
        return 0;
    }
    if (lsize == rem->size) {
        if (latest != NULL && memcmp(latest->cp.root, rem->root, MERKLE_HASH_LEN) != 0) {
            verdict(o, AV_FORK,
                    "two checkpoints signed for size %llu with different roots: the log was "
                    "forked",
                    (unsigned long long)rem->size);
            o->evidence = latest;
        }
        return 0;
    }
    if (rem->size == 0)
        return 0; /* the empty tree is a prefix of every tree */
    /* RFC 9162 2.1.4: is the remembered tree a prefix of the newest one? */
    if ((r = merkle_consistency_proof_array(&proof, rem->size, d->leaf[0], lsize)) != 0)
        return r;
    if (merkle_verify_consistency(rem->size, lsize, &proof, rem->root, latest->cp.root) != 0) {
        verdict(o, AV_INCONSISTENT,
                "the log at size %llu is not an extension of the checkpoint verified before "
                "(size %llu): bad consistency proof, the log was rewritten",
                (unsigned long long)lsize, (unsigned long long)rem->size);
        o->evidence = latest;
    }
    return 0;
}

/*
 * An ALARM verdict explained by a restore: the newest relay_restored record
 * that the newest verified checkpoint covers and that restarts the log at or
 * below the remembered size (its value is the restored log's size, equal to
 * its own number).
 */
static void restore_explains(const struct alogdata *d, const struct audit_state *st,
                             struct averify_out *o)
{
    const struct note_checkpoint *rem = &st->cp;
    uint64_t covered = o->latest != NULL ? o->latest->cp.size : 0;

    for (uint64_t i = covered; i-- > 0;) {
        const struct audit_record *rec = &d->rec[i];

        if (d->rec_verr[i] != 0 || rec->event != AUDIT_RELAY_RESTORED)
            continue;
        if (rec->value != i || i > rem->size)
            return; /* not a restore that explains this: the alarm stands */
        o->restore_index = i;
        if (i == rem->size) {
            verdict(o, AV_RESTORED,
                    "the relay was restored from a backup: record %llu (relay_restored, time "
                    "%llu, signed in the checkpoint of size %llu) restarts the log at %llu "
                    "records, the size verified before",
                    (unsigned long long)i, (unsigned long long)rec->time,
                    (unsigned long long)covered, (unsigned long long)i);
            return;
        }
        verdict(o, AV_RESTORED,
                "the relay was restored from a backup: record %llu (relay_restored, time %llu, "
                "signed in the checkpoint of size %llu) restarts the log at %llu records; "
                "records %llu..%llu of the checkpoint verified before (size %llu) are not in "
                "this log",
                (unsigned long long)i, (unsigned long long)rec->time,
                (unsigned long long)covered, (unsigned long long)i, (unsigned long long)i,
                (unsigned long long)(rem->size - 1), (unsigned long long)rem->size);
        return;
    }
}

int averify_state(const struct alogdata *d, const struct audit_state *st, struct averify_out *o)
{
    int r = averify_state_plain(d, st, o);

    if (r == 0 && o->verdict != AV_OK && o->verdict != AV_TAMPER)
        restore_explains(d, st, o);
    return r;
}
