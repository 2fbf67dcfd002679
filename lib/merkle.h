/*
 * merkle.h - RFC 9162 (RFC 6962) Merkle hash trees over SHA-256: the audit
 * log's tamper evidence (DESIGN.md "Audit log").
 *
 * Contract:
 *  - Leaf hash = SHA-256(0x00 || record), node hash = SHA-256(0x01 || l || r),
 *    the root of the empty tree is SHA-256() (RFC 9162 2.1.1).
 *  - Verification is strict and never trusts a length it was given: an
 *    index >= size, size1 > size2, size1 == 0, a proof longer than
 *    MERKLE_MAX_PROOF or one hash too many or too few are all rejected.
 *    VERR_BAD_FORMAT: the request itself is impossible (index >= size,
 *    size1 > size2, size1 == 0, proof over the cap); VERR_BAD_PROOF: the proof
 *    does not prove what it claims. 0 only when it does.
 *  - Proof generation reads leaf hashes through a callback (the relay and the
 *    auditor keep them in LMDB) or from an array. It costs O(size) leaf reads
 *    and O(size) hashes per proof (every sibling subtree is rehashed), and a
 *    recursion depth of at most 64. Generation is for the relay's and the
 *    auditor's own data, not a hot path.
 *  - The tree state ("frontier", a compact range over [0, size)) is the list
 *    of roots of the perfect subtrees that the binary digits of size split
 *    the tree into, largest first: O(log n) memory, append O(log n), root
 *    O(log n). Its serialised form (PROTOCOL.md, part 5) is parsed strictly:
 *    magic, version, exact length for the size, no trailing bytes.
 *  - Nothing here is secret; no function allocates.
 */
#ifndef VALISE_MERKLE_H
#define VALISE_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

enum {
    MERKLE_HASH_LEN = 32,
    /* A tree of at most 2^64 - 1 leaves has at most 64 perfect subtrees. */
    MERKLE_MAX_DEPTH = 64,
    /* Longest inclusion or consistency proof for a size below 2^64. */
    MERKLE_MAX_PROOF = 64,
    MERKLE_LEAF_PREFIX = 0x00,
    MERKLE_NODE_PREFIX = 0x01,
    /* Serialised state: magic "vmst", version, u64 size, hashes. */
    MERKLE_STATE_MAGIC_LEN = 4,
    MERKLE_STATE_VERSION = 1,
    MERKLE_STATE_HEADER_LEN = MERKLE_STATE_MAGIC_LEN + 1 + 8,
    MERKLE_STATE_MAX_LEN = MERKLE_STATE_HEADER_LEN + MERKLE_MAX_DEPTH * MERKLE_HASH_LEN,
};

#define MERKLE_STATE_MAGIC "vmst"

/* A proof: len hashes, in the order of RFC 9162 2.1.3.1 / 2.1.4.1. */
struct merkle_proof {
    size_t len;
    uint8_t hash[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
};

/* The compact tree state. Public so it can live on the stack; members private. */
struct merkle_state {
    uint64_t p_size;
    /* popcount(p_size) roots of perfect subtrees, largest (leftmost) first */
    uint8_t p_node[MERKLE_MAX_DEPTH][MERKLE_HASH_LEN];
};

/*
 * Reads the hash of leaf index into out; 0 or an error code, which aborts the
 * generation and is returned as is. ctx is the caller's.
 */
typedef int (*merkle_leaf_fn)(void *ctx, uint64_t index, uint8_t out[MERKLE_HASH_LEN]);

/* RFC 9162 2.1.1 hashes. */
void merkle_leaf_hash(uint8_t out[static MERKLE_HASH_LEN], const uint8_t *record, size_t len);
void merkle_node_hash(uint8_t out[static MERKLE_HASH_LEN],
                      const uint8_t left[static MERKLE_HASH_LEN],
                      const uint8_t right[static MERKLE_HASH_LEN]);
void merkle_empty_root(uint8_t out[static MERKLE_HASH_LEN]);

/* MTH over leaves [0, size), read through fn. */
int merkle_root(uint8_t out[static MERKLE_HASH_LEN], uint64_t size, merkle_leaf_fn fn,
                void *ctx) VL_MUST_CHECK;
/* The same from an array of size leaf hashes, 32 bytes each, back to back. */
int merkle_root_array(uint8_t out[static MERKLE_HASH_LEN], const uint8_t *leaves,
                      uint64_t size) VL_MUST_CHECK;

/* RFC 9162 2.1.3.1: PATH(index, D[size]); VERR_USAGE if index >= size. */
int merkle_inclusion_proof(struct merkle_proof *proof, uint64_t index, uint64_t size,
                           merkle_leaf_fn fn, void *ctx) VL_MUST_CHECK;
int merkle_inclusion_proof_array(struct merkle_proof *proof, uint64_t index,
                                 const uint8_t *leaves, uint64_t size) VL_MUST_CHECK;
/*
 * RFC 9162 2.1.4.1: PROOF(size1, D[size2]); VERR_USAGE unless
 * 0 < size1 <= size2. size1 == size2 gives the empty proof.
 */
int merkle_consistency_proof(struct merkle_proof *proof, uint64_t size1, uint64_t size2,
                             merkle_leaf_fn fn, void *ctx) VL_MUST_CHECK;
int merkle_consistency_proof_array(struct merkle_proof *proof, uint64_t size1,
                                   const uint8_t *leaves, uint64_t size2) VL_MUST_CHECK;

/* RFC 9162 2.1.3.2: leaf (a leaf hash) is at index in the tree of size with root. */
int merkle_verify_inclusion(const uint8_t leaf[static MERKLE_HASH_LEN], uint64_t index,
                            uint64_t size, const struct merkle_proof *proof,
                            const uint8_t root[static MERKLE_HASH_LEN]) VL_MUST_CHECK;
/*
 * RFC 9162 2.1.4.2: the tree of size1 with root1 is a prefix of the tree of
 * size2 with root2. size1 == size2 needs an empty proof and equal roots;
 * size1 == 0 is refused (it proves nothing).
 */
int merkle_verify_consistency(uint64_t size1, uint64_t size2, const struct merkle_proof *proof,
                              const uint8_t root1[static MERKLE_HASH_LEN],
                              const uint8_t root2[static MERKLE_HASH_LEN]) VL_MUST_CHECK;

/* The empty tree. */
void merkle_state_init(struct merkle_state *st);
/* Appends one leaf hash in O(log n); VERR_LIMIT when the size would pass 2^64 - 1. */
int merkle_state_append(struct merkle_state *st,
                        const uint8_t leaf[static MERKLE_HASH_LEN]) VL_MUST_CHECK;
uint64_t merkle_state_size(const struct merkle_state *st);
/* MTH of the leaves appended so far. */
void merkle_state_root(const struct merkle_state *st, uint8_t out[static MERKLE_HASH_LEN]);
/* Exact serialised length for this state. */
size_t merkle_state_encoded_len(const struct merkle_state *st);
/* Appends the serialised state to out. */
int merkle_state_serialise(const struct merkle_state *st, struct buf *out) VL_MUST_CHECK;
/* Parses exactly len bytes; st is written only on success. */
int merkle_state_parse(struct merkle_state *st, const uint8_t *p, size_t len) VL_MUST_CHECK;

#endif
