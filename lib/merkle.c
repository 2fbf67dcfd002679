/* merkle.c - RFC 9162 Merkle hash trees over SHA-256 (see merkle.h). */
#include "merkle.h"

#include <string.h>

#include <sodium.h>

#include "sha256.h"

_Static_assert(MERKLE_HASH_LEN == crypto_hash_sha256_BYTES, "Merkle hash is SHA-256");
_Static_assert(MERKLE_STATE_HEADER_LEN == 13, "magic 4 + version 1 + size 8");
_Static_assert(sizeof(MERKLE_STATE_MAGIC) - 1 == MERKLE_STATE_MAGIC_LEN, "magic length");

/* A source of leaf hashes: a callback, or an array adapted to one. */
struct merkle_src {
    merkle_leaf_fn fn;
    void *ctx;
};

struct merkle_array {
    const uint8_t *leaves;
    uint64_t size;
};

void merkle_leaf_hash(uint8_t out[static MERKLE_HASH_LEN], const uint8_t *record, size_t len)
{
    const uint8_t prefix = MERKLE_LEAF_PREFIX;

    /* two per envelope on the relay's commit path: the SHA extensions where there are any */
    sha256_two(out, &prefix, 1, record, len);
}

void merkle_node_hash(uint8_t out[static MERKLE_HASH_LEN],
                      const uint8_t left[static MERKLE_HASH_LEN],
                      const uint8_t right[static MERKLE_HASH_LEN])
{
    uint8_t m[1 + 2 * MERKLE_HASH_LEN];

    m[0] = MERKLE_NODE_PREFIX;
    memcpy(m + 1, left, MERKLE_HASH_LEN);
    memcpy(m + 1 + MERKLE_HASH_LEN, right, MERKLE_HASH_LEN);
    /* out may alias left or right: the message was copied first. */
    sha256_two(out, m, sizeof(m), NULL, 0);
}

void merkle_empty_root(uint8_t out[static MERKLE_HASH_LEN])
{
    crypto_hash_sha256(out, NULL, 0);
}

static unsigned merkle_popcount(uint64_t x)
{
    unsigned n = 0;

    while (x != 0) {
        x &= x - 1;
        n++;
    }
    return n;
}

/* RFC 9162 2.1.1: the largest power of two smaller than n (n >= 2). */
static uint64_t merkle_split(uint64_t n)
{
    uint64_t k = 1;

    /* k * 2 < n, written so that it cannot overflow */
    while (k <= (n - 1) / 2)
        k <<= 1;
    return k;
}

/* ---- compact state ---- */

void merkle_state_init(struct merkle_state *st)
{
    memset(st, 0, sizeof(*st));
}

uint64_t merkle_state_size(const struct merkle_state *st)
{
    return st->p_size;
}

int merkle_state_append(struct merkle_state *st, const uint8_t leaf[static MERKLE_HASH_LEN])
{
    uint8_t h[MERKLE_HASH_LEN];
    unsigned count;
    uint64_t s;

    if (st->p_size == UINT64_MAX)
        return VERR_LIMIT;
    count = merkle_popcount(st->p_size);
    memcpy(h, leaf, MERKLE_HASH_LEN);
    /*
     * Like a binary increment: every trailing 1 bit of the size is a perfect
     * subtree of the same height as h, so the two merge into the next height.
     */
    for (s = st->p_size; s & 1; s >>= 1) {
        count--;
        merkle_node_hash(h, st->p_node[count], h);
    }
    memcpy(st->p_node[count], h, MERKLE_HASH_LEN);
    st->p_size++;
    return 0;
}

void merkle_state_root(const struct merkle_state *st, uint8_t out[static MERKLE_HASH_LEN])
{
    unsigned count = merkle_popcount(st->p_size);
    uint8_t r[MERKLE_HASH_LEN];

    if (count == 0) {
        merkle_empty_root(out);
        return;
    }
    /* RFC 9162 2.1.1: the split always puts the largest perfect subtree left. */
    memcpy(r, st->p_node[count - 1], MERKLE_HASH_LEN);
    for (unsigned i = count - 1; i > 0; i--)
        merkle_node_hash(r, st->p_node[i - 1], r);
    memcpy(out, r, MERKLE_HASH_LEN);
}

size_t merkle_state_encoded_len(const struct merkle_state *st)
{
    return MERKLE_STATE_HEADER_LEN + (size_t)merkle_popcount(st->p_size) * MERKLE_HASH_LEN;
}

int merkle_state_serialise(const struct merkle_state *st, struct buf *out)
{
    unsigned count = merkle_popcount(st->p_size);
    size_t start = buf_size(out);
    int r = VERR_INTERNAL;

    if ((r = buf_put_bytes(out, (const uint8_t *)MERKLE_STATE_MAGIC, MERKLE_STATE_MAGIC_LEN)) != 0 ||
        (r = buf_put_u8(out, MERKLE_STATE_VERSION)) != 0 ||
        (r = buf_put_u64(out, st->p_size)) != 0)
        goto out;
    for (unsigned i = 0; i < count; i++)
        if ((r = buf_put_bytes(out, st->p_node[i], MERKLE_HASH_LEN)) != 0)
            goto out;
    r = 0;
out:
    if (r != 0)
        buf_truncate(out, start);
    return r;
}

int merkle_state_parse(struct merkle_state *st, const uint8_t *p, size_t len)
{
    uint8_t magic[MERKLE_STATE_MAGIC_LEN];
    struct merkle_state tmp;
    struct buf b;
    uint8_t version = 0;
    unsigned count;
    int r = VERR_INTERNAL;

    buf_view(&b, p, len);
    memset(&tmp, 0, sizeof(tmp));
    /* Magic and version first (STYLE.md habit 2). */
    if ((r = buf_get_bytes(&b, magic, sizeof(magic))) != 0)
        goto out;
    if (memcmp(magic, MERKLE_STATE_MAGIC, MERKLE_STATE_MAGIC_LEN) != 0) {
        r = VERR_BAD_MAGIC;
        goto out;
    }
    if ((r = buf_get_u8(&b, &version)) != 0)
        goto out;
    if (version != MERKLE_STATE_VERSION) {
        r = VERR_BAD_VERSION;
        goto out;
    }
    if ((r = buf_get_u64(&b, &tmp.p_size)) != 0)
        goto out;
    /* The size alone fixes how many hashes follow. */
    count = merkle_popcount(tmp.p_size);
    for (unsigned i = 0; i < count; i++)
        if ((r = buf_get_bytes(&b, tmp.p_node[i], MERKLE_HASH_LEN)) != 0)
            goto out;
    if ((r = buf_expect_end(&b)) != 0)
        goto out;
    *st = tmp;
    r = 0;
out:
    return r;
}

/* ---- roots and proofs from leaf hashes ---- */

/* MTH(D[lo : lo + n]) through the compact state: O(n) reads, O(log n) memory. */
static int merkle_range_root(uint8_t out[static MERKLE_HASH_LEN], const struct merkle_src *src,
                             uint64_t lo, uint64_t n)
{
    struct merkle_state st;
    uint8_t leaf[MERKLE_HASH_LEN];
    int r = VERR_INTERNAL;

    merkle_state_init(&st);
    for (uint64_t i = 0; i < n; i++) {
        if ((r = src->fn(src->ctx, lo + i, leaf)) != 0)
            goto out;
        if ((r = merkle_state_append(&st, leaf)) != 0)
            goto out;
    }
    merkle_state_root(&st, out);
    r = 0;
out:
    return r;
}

static int merkle_array_leaf(void *ctx, uint64_t index, uint8_t out[MERKLE_HASH_LEN])
{
    const struct merkle_array *a = ctx;

    if (index >= a->size)
        return VERR_INTERNAL;
    memcpy(out, a->leaves + (size_t)index * MERKLE_HASH_LEN, MERKLE_HASH_LEN);
    return 0;
}

int merkle_root(uint8_t out[static MERKLE_HASH_LEN], uint64_t size, merkle_leaf_fn fn,
                void *ctx)
{
    struct merkle_src src = {fn, ctx};

    return merkle_range_root(out, &src, 0, size);
}

int merkle_root_array(uint8_t out[static MERKLE_HASH_LEN], const uint8_t *leaves, uint64_t size)
{
    struct merkle_array a = {leaves, size};

    return merkle_root(out, size, merkle_array_leaf, &a);
}

/* Reverses proof->hash[from .. len) in place: siblings are found top-down. */
static void merkle_proof_reverse(struct merkle_proof *proof, size_t from)
{
    uint8_t t[MERKLE_HASH_LEN];

    for (size_t i = from, j = proof->len; i + 1 < j; i++, j--) {
        memcpy(t, proof->hash[i], MERKLE_HASH_LEN);
        memcpy(proof->hash[i], proof->hash[j - 1], MERKLE_HASH_LEN);
        memcpy(proof->hash[j - 1], t, MERKLE_HASH_LEN);
    }
}

int merkle_inclusion_proof(struct merkle_proof *proof, uint64_t index, uint64_t size,
                           merkle_leaf_fn fn, void *ctx)
{
    struct merkle_src src = {fn, ctx};
    uint64_t lo = 0, n = size, m = index, k;
    int r = VERR_INTERNAL;

    proof->len = 0;
    if (index >= size) {
        r = VERR_USAGE;
        goto out;
    }
    /*
     * RFC 9162 2.1.3.1 PATH(m, D[n]): descend to the leaf; at each split the
     * sibling subtree's root joins the path. The path lists them leaf-up.
     */
    while (n > 1) {
        if (proof->len >= MERKLE_MAX_PROOF)
            goto out; /* cannot happen for n < 2^64 */
        k = merkle_split(n);
        if (m < k) {
            if ((r = merkle_range_root(proof->hash[proof->len], &src, lo + k, n - k)) != 0)
                goto out;
            n = k;
        } else {
            if ((r = merkle_range_root(proof->hash[proof->len], &src, lo, k)) != 0)
                goto out;
            lo += k;
            m -= k;
            n -= k;
        }
        proof->len++;
    }
    merkle_proof_reverse(proof, 0);
    r = 0;
out:
    if (r != 0)
        proof->len = 0;
    return r;
}

int merkle_inclusion_proof_array(struct merkle_proof *proof, uint64_t index,
                                 const uint8_t *leaves, uint64_t size)
{
    struct merkle_array a = {leaves, size};

    return merkle_inclusion_proof(proof, index, size, merkle_array_leaf, &a);
}

int merkle_consistency_proof(struct merkle_proof *proof, uint64_t size1, uint64_t size2,
                             merkle_leaf_fn fn, void *ctx)
{
    struct merkle_src src = {fn, ctx};
    uint64_t lo = 0, n = size2, m = size1, k;
    int whole = 1; /* the b flag of SUBPROOF: m is the original size1 */
    size_t first;
    int r = VERR_INTERNAL;

    proof->len = 0;
    if (size1 == 0 || size1 > size2) {
        r = VERR_USAGE;
        goto out;
    }
    /*
     * RFC 9162 2.1.4.1 SUBPROOF(m, D[n], b), unrolled: collect the sibling
     * roots top-down, then the terminal node, then emit terminal first and
     * siblings bottom-up, as the recursion would.
     */
    while (m != n) {
        if (proof->len >= MERKLE_MAX_PROOF)
            goto out;
        k = merkle_split(n);
        if (m <= k) {
            if ((r = merkle_range_root(proof->hash[proof->len], &src, lo + k, n - k)) != 0)
                goto out;
            n = k;
        } else {
            if ((r = merkle_range_root(proof->hash[proof->len], &src, lo, k)) != 0)
                goto out;
            lo += k;
            m -= k;
            n -= k;
            whole = 0;
        }
        proof->len++;
    }
    first = proof->len;
    merkle_proof_reverse(proof, 0);
    if (!whole) {
        /* m == n inside a right subtree: its root is the terminal. */
        if (proof->len >= MERKLE_MAX_PROOF)
            goto out;
        memmove(proof->hash[1], proof->hash[0], first * MERKLE_HASH_LEN);
        if ((r = merkle_range_root(proof->hash[0], &src, lo, n)) != 0)
            goto out;
        proof->len++;
    }
    r = 0;
out:
    if (r != 0)
        proof->len = 0;
    return r;
}

int merkle_consistency_proof_array(struct merkle_proof *proof, uint64_t size1,
                                   const uint8_t *leaves, uint64_t size2)
{
    struct merkle_array a = {leaves, size2};

    return merkle_consistency_proof(proof, size1, size2, merkle_array_leaf, &a);
}

/* ---- verification ---- */

static int merkle_hash_equal(const uint8_t a[static MERKLE_HASH_LEN],
                             const uint8_t b[static MERKLE_HASH_LEN])
{
    return sodium_memcmp(a, b, MERKLE_HASH_LEN) == 0;
}

int merkle_verify_inclusion(const uint8_t leaf[static MERKLE_HASH_LEN], uint64_t index,
                            uint64_t size, const struct merkle_proof *proof,
                            const uint8_t root[static MERKLE_HASH_LEN])
{
    uint8_t h[MERKLE_HASH_LEN];
    uint64_t fn, sn;

    if (index >= size || proof->len > MERKLE_MAX_PROOF)
        return VERR_BAD_FORMAT;
    /* RFC 9162 2.1.3.2, steps 2 to 5. */
    fn = index;
    sn = size - 1;
    memcpy(h, leaf, MERKLE_HASH_LEN);
    for (size_t i = 0; i < proof->len; i++) {
        if (sn == 0)
            return VERR_BAD_PROOF; /* one hash too many */
        if ((fn & 1) || fn == sn) {
            merkle_node_hash(h, proof->hash[i], h);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            merkle_node_hash(h, h, proof->hash[i]);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0 || !merkle_hash_equal(h, root))
        return VERR_BAD_PROOF;
    return 0;
}

int merkle_verify_consistency(uint64_t size1, uint64_t size2, const struct merkle_proof *proof,
                              const uint8_t root1[static MERKLE_HASH_LEN],
                              const uint8_t root2[static MERKLE_HASH_LEN])
{
    uint8_t fr[MERKLE_HASH_LEN], sr[MERKLE_HASH_LEN];
    const uint8_t *c;
    uint64_t fn, sn;
    size_t start;

    if (size1 > size2 || size1 == 0 || proof->len > MERKLE_MAX_PROOF)
        return VERR_BAD_FORMAT;
    if (size1 == size2) {
        /* Same tree: nothing to prove but equality. */
        if (proof->len != 0 || !merkle_hash_equal(root1, root2))
            return VERR_BAD_PROOF;
        return 0;
    }
    /* RFC 9162 2.1.4.2 step 1. */
    if (proof->len == 0)
        return VERR_BAD_PROOF;
    /* Step 2: for a power of two, the old root is the path's first node. */
    if ((size1 & (size1 - 1)) == 0) {
        memcpy(fr, root1, MERKLE_HASH_LEN);
        start = 0;
    } else {
        memcpy(fr, proof->hash[0], MERKLE_HASH_LEN);
        start = 1;
    }
    memcpy(sr, fr, MERKLE_HASH_LEN);
    /* Steps 3 and 4. */
    fn = size1 - 1;
    sn = size2 - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    /* Step 6. */
    for (size_t i = start; i < proof->len; i++) {
        c = proof->hash[i];
        if (sn == 0)
            return VERR_BAD_PROOF;
        if ((fn & 1) || fn == sn) {
            merkle_node_hash(fr, c, fr);
            merkle_node_hash(sr, c, sr);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            merkle_node_hash(sr, sr, c);
        }
        fn >>= 1;
        sn >>= 1;
    }
    /* Step 7. */
    if (sn != 0 || !merkle_hash_equal(fr, root1) || !merkle_hash_equal(sr, root2))
        return VERR_BAD_PROOF;
    return 0;
}
