/* mbox_sync.c - the sync state machine (see mbox_sync.h, mailbox.h; PROTOCOL.md part 2, part 4). */
#include "mbox_sync.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "address.h"
#include "mailbox.h"
#include "mbox_dir.h"
#include "mbox_attach.h"
#include "mbox_prekeys.h"
#include "mbox_rec.h"
#include "transport.h"

/* ---- the sync session ---- */

struct sync {
    struct mbox *m;
    struct ctp *c;
    const struct mbox_sync_opts *o;
    struct mbox_sync_stats *st;
    int dir_ready, need_prekeys, outbox_dirty;
    uint16_t last_reason;
    struct buf deferred[MB_DEFER_MAX];
    size_t ndeferred, deferred_bytes;
    uint8_t tried[MB_TRIED_MAX][DEVICE_ID_LEN]; /* bundles asked for in vain this time */
    size_t ntried;
    uint64_t now;
    int queue_empty;     /* QUEUE_EMPTY seen, no DELIVER since (PROTOCOL.md part 2) */
    size_t submit_bytes; /* the current SUBMIT piece (grows while the link keeps up) */
    size_t piece_bytes;  /* the current directory piece (the same rule) */
    uint64_t *fresh;     /* inbox seqs of this DELIVER's new messages, told once committed */
    size_t nfresh;
    struct mba_link att; /* attachments, after the messages (mbox_attach.h) */
    uint64_t att_seq;
};

/* Milliseconds of a monotonic clock (for measuring a SUBMIT's round trip). */
static uint64_t sy_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mb_now(void)
{
    return (uint64_t)time(NULL);
}

static int sy_reason_err(uint16_t reason)
{
    switch (reason) {
    case WIRE_R_REVOKED:
        return VERR_REVOKED;
    case WIRE_R_CERT_EXPIRED:
        return VERR_EXPIRED;
    case WIRE_R_CERT_NOT_YET_VALID:
        return VERR_NOT_YET_VALID;
    case WIRE_R_WRONG_ORG:
        return VERR_WRONG_ORG;
    case WIRE_R_BAD_SIGNATURE:
        return VERR_BAD_SIGNATURE;
    case WIRE_R_RATE_LIMITED:
    case WIRE_R_QUEUE_FULL:
        return VERR_LIMIT;
    case WIRE_R_STORAGE_FULL:
        return VERR_NOSPACE;
    case WIRE_R_UNKNOWN_DEVICE:
    case WIRE_R_NO_PREKEYS:
        return VERR_UNKNOWN;
    default:
        return VERR_PROTOCOL;
    }
}

static int sy_send(struct sync *s, const struct buf *msg)
{
    return ctp_send(s->c, buf_data(msg), buf_size(msg));
}

static int sy_on_deliver(struct sync *s, const struct wire_msg *wm);
static int sy_on_nd(struct sync *s, const struct wire_msg *wm);
/* A DELIVER_ACK naming no envelope: answers a DELIVER this device could not hold. */
static int sy_ack_none(struct sync *s)
{
    struct buf ack;
    int r;

    if ((r = buf_init(&ack, 16, 0)) != 0)
        return r;
    if ((r = wire_put_ids(&ack, WIRE_DELIVER_ACK, NULL, 0)) == 0)
        r = sy_send(s, &ack);
    buf_free(&ack);
    return r;
}

/* sy_wait's want for "any ATTACH_* message" (mbox_attach.h). */
enum { MB_WANT_ATTACH = 0x100 };
static int sy_is_attach(uint8_t type)
{
    return type >= WIRE_ATTACH_OPEN && type <= WIRE_ATTACH_DONE;
}

/*
 * Receives until a message of type want arrives (0: until timeout), handling
 * what the relay pushes meanwhile (DELIVER, NON_DELIVERY, PREKEY_LOW).
 * ERROR ends the wait with the reason in s->last_reason.
 */
static int sy_wait_any(struct sync *s, unsigned want, unsigned also, struct buf *raw,
                       struct wire_msg *wm, unsigned timeout_ms);

static int sy_wait(struct sync *s, unsigned want, struct buf *raw, struct wire_msg *wm,
                   unsigned timeout_ms)
{
    return sy_wait_any(s, want, want, raw, wm, timeout_ms);
}

/* The same, ending on either of two types (want 0: on anything handled). */
static int sy_wait_any(struct sync *s, unsigned want, unsigned also, struct buf *raw,
                       struct wire_msg *wm, unsigned timeout_ms)
{
    int r;

    for (;;) {
        if ((r = ctp_recv(s->c, raw, timeout_ms)) != 0)
            return r;
        if (wire_decode(buf_data(raw), buf_size(raw), wm) != 0) {
            buf_free(raw);
            return VERR_PROTOCOL;
        }
        if (want != 0 && (wm->type == want || wm->type == also ||
                          (want == MB_WANT_ATTACH && sy_is_attach(wm->type))))
            return 0;
        if (sy_is_attach(wm->type)) {
            buf_free(raw); /* a late answer to an attachment step that has ended */
            if (want == 0)
                return 0;
            continue;
        }
        switch (wm->type) {
        case WIRE_ERROR:
            s->last_reason = wm->u.error.reason;
            buf_free(raw);
            return VERR_DENIED;
        case WIRE_QUEUE_EMPTY:
            s->queue_empty = 1;
            buf_free(raw);
            break;
        case WIRE_DELIVER:
        case WIRE_NON_DELIVERY:
            if (wm->type == WIRE_DELIVER)
                s->queue_empty = 0;
            /*
             * Handled only between steps, never in the middle of one: a step
             * waiting for its reply may hold a session in memory that this
             * message would advance underneath it.
             */
            if (want != 0 || !s->dir_ready) {
                if (s->ndeferred == MB_DEFER_MAX || s->deferred_bytes > MB_DEFER_BYTES) {
                    int is_deliver = wm->type == WIRE_DELIVER;
                    buf_free(raw);
                    /*
                     * Too much held: dropped, its envelopes sent again on the
                     * next connection. A DELIVER is still answered (an empty
                     * DELIVER_ACK): the relay matches answers to DELIVERs in
                     * order (PROTOCOL.md part 2 "Flow control").
                     */
                    if (is_deliver && (r = sy_ack_none(s)) != 0)
                        return r;
                    break;
                }
                s->deferred_bytes += buf_size(raw);
                s->deferred[s->ndeferred++] = *raw; /* owned by s now */
                memset(raw, 0, sizeof(*raw));
                break;
            }
            r = wm->type == WIRE_DELIVER ? sy_on_deliver(s, wm) : sy_on_nd(s, wm);
            buf_free(raw);
            if (r != 0)
                return r;
            break;
        case WIRE_PREKEY_LOW:
            s->need_prekeys = 1;
            buf_free(raw);
            break;
        default:
            buf_free(raw);
            return VERR_PROTOCOL;
        }
        if (want == 0)
            return 0; /* something was handled: the caller decides whether to go on */
    }
}

struct mb_keys {
    uint8_t (*k)[ENV_KEY_LEN];
    size_t n, cap;
};

static int mb_keys_add(struct mb_keys *ks, const uint8_t *key, size_t klen)
{
    if (ks->n == ks->cap) {
        size_t nc = ks->cap ? ks->cap * 2 : 64;
        void *p = realloc(ks->k, nc * sizeof(*ks->k));
        if (p == NULL)
            return VERR_NOMEM;
        ks->k = p;
        ks->cap = nc;
    }
    memset(ks->k[ks->n], 0, ENV_KEY_LEN);
    memcpy(ks->k[ks->n], key, klen);
    ks->n++;
    return 0;
}

/* Keys of envelopes (messages and receipts) ACCEPTED with an id above hi. */
struct sy_lost {
    const uint8_t *hi;
    struct mb_keys keys;
};

static int each_lost(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct sy_lost *l = ctx;
    struct mb_envrec e;

    if (kl != ENV_KEY_LEN || mb_envrec_parse(v, vl, &e) != 0)
        return VERR_BAD_FORMAT;
    if (e.state != MBOX_ENV_ACCEPTED || memcmp(e.env_id, l->hi, WIRE_ID_LEN) <= 0)
        return 0;
    return mb_keys_add(&l->keys, k, kl);
}

/*
 * The relay's hi_submitted is below this store's mark-sent: a relay restored
 * from a backup has lost what it accepted after the backup. Every envelope
 * held as ACCEPTED with a higher id goes back to SENDING (one transaction),
 * to be submitted again with the same id and bytes; one the relay still has
 * is acknowledged as a duplicate (PROTOCOL.md part 2 "Backup and restore").
 */
static int sy_resubmit_lost(struct sync *s, const uint8_t hi_sub[static WIRE_ID_LEN])
{
    struct sy_lost l = {.hi = hi_sub};
    size_t moved = 0;
    int r, one;

    if ((r = cstore_each(s->m->st, CS_ENVELOPES, each_lost, &l)) != 0 || l.keys.n == 0)
        goto out;
    if ((r = cstore_begin(s->m->st, 1)) != 0)
        goto out;
    for (size_t i = 0; i < l.keys.n && r == 0; i++) {
        r = mb_env_resubmit(s->m, l.keys.k[i], &one);
        moved += r == 0 ? (size_t)one : 0;
    }
    if (r == 0)
        r = cstore_commit(s->m->st);
    else
        cstore_abort(s->m->st);
    if (r == 0)
        s->st->resubmitted = moved;
out:
    free(l.keys.k);
    return r;
}

/*
 * A relay that has seen this device submit or acknowledge an envelope id
 * higher than any this store holds is talking to a store that was rolled
 * back (restored backup) or copied (a second device with these keys): its
 * ratchet state is stale, so nothing is sent or received until IT re-enrols
 * the device (PROTOCOL.md part 4 "Rollback detection").
 */
static int sy_check_marks(struct sync *s, const uint8_t hi_sub[static WIRE_ID_LEN],
                          const uint8_t hi_ack[static WIRE_ID_LEN])
{
    uint8_t mine[WIRE_ID_LEN];
    int r;

    if ((r = mb_mark_get(s->m, 0, mine)) != 0)
        return r;
    if (memcmp(hi_sub, mine, WIRE_ID_LEN) > 0)
        goto rolled_back;
    if (memcmp(hi_sub, mine, WIRE_ID_LEN) < 0 && (r = sy_resubmit_lost(s, hi_sub)) != 0)
        return r;
    if ((r = mb_mark_get(s->m, 1, mine)) != 0)
        return r;
    if (memcmp(hi_ack, mine, WIRE_ID_LEN) > 0)
        goto rolled_back;
    return 0;
rolled_back:
    s->st->store_rolled_back = 1;
    return VERR_ROLLBACK;
}

/*
 * Checks the relay's CHALLENGE (PROTOCOL.md part 2 "Authentication"): a
 * relay certificate of this organisation, valid now, for the relay id
 * recorded at enrolment, and its handshake key's signature over body. On
 * failure *why says what was wrong and nothing may be signed.
 */
static int sy_check_relay(struct sync *s, const struct wire_msg *wm, const struct buf *body,
                          const char **why)
{
    struct relaycert rc;
    int r;

    if (relaycert_parse(wm->u.challenge.relay_cert, wm->u.challenge.relay_cert_len, &rc) != 0) {
        *why = "its relay certificate is malformed";
        return VERR_DENIED;
    }
    if ((r = relaycert_verify(&rc, &s->m->org, s->now)) != 0) {
        *why = r == VERR_WRONG_ORG        ? "its relay certificate is of another organisation"
               : r == VERR_BAD_SIGNATURE  ? "its relay certificate is not signed by org.pub"
               : r == VERR_EXPIRED        ? "its relay certificate has expired"
               : r == VERR_NOT_YET_VALID  ? "its relay certificate is not valid yet"
                                          : "its relay certificate does not verify";
        return VERR_DENIED;
    }
    if (strcmp(rc.relay_id, s->m->relay_id) != 0) {
        *why = "its relay certificate names another relay id";
        return VERR_DENIED;
    }
    if (sig_verify(wm->u.challenge.sig, SIG_CTX_RELAY_CHALLENGE, buf_data(body), buf_size(body),
                   rc.pk) != 0) {
        *why = "its handshake signature does not verify (a relayed or altered connection)";
        return VERR_DENIED;
    }
    return 0;
}

static int sy_auth(struct sync *s, uint64_t *relay_dir_version)
{
    struct buf raw = {0}, body = {0}, msg = {0};
    struct wire_msg wm;
    uint8_t cnonce[WIRE_NONCE_LEN], binding[CTP_BINDING_LEN], sig[SIG_LEN];
    int r;

    _Static_assert((int)CTP_BINDING_LEN == (int)WIRE_BINDING_LEN, "RFC 9266: 32 bytes");
    /* The device speaks first, with a fresh nonce the relay must sign. */
    randombytes_buf(cnonce, sizeof(cnonce));
    if ((r = buf_init(&msg, 1024, 0)) != 0)
        return r;
    if ((r = wire_put_hello(&msg, cnonce)) == 0)
        r = sy_send(s, &msg);
    buf_free(&msg);
    if (r != 0)
        return r;
    if ((r = sy_wait(s, WIRE_CHALLENGE, &raw, &wm, s->o->timeout_ms)) != 0) {
        r = r == VERR_DENIED ? sy_reason_err(s->last_reason) : r;
        goto out;
    }
    if ((r = ctp_channel_binding(s->c, binding)) != 0) {
        s->st->relay_unproven = "the TLS connection gives no channel binding (TLS 1.3 needed)";
        goto out;
    }
    if ((r = buf_init(&body, WIRE_HANDSHAKE_BODY_MAX, 0)) != 0 ||
        (r = wire_handshake_body(&body, s->m->relay_id, cnonce, wm.u.challenge.nonce, binding)) !=
            0)
        goto out;
    /* Nothing is signed for a relay that has not proven who it is. */
    if ((r = sy_check_relay(s, &wm, &body, &s->st->relay_unproven)) != 0)
        goto out;
    if ((r = sig_sign(sig, SIG_CTX_RELAY_AUTH, buf_data(&body), buf_size(&body),
                      s->m->id.sign_sk)) != 0)
        goto out;
    if ((r = buf_init(&msg, 1024, 0)) != 0)
        goto out;
    if ((r = wire_put_auth(&msg, s->m->cert_bytes, s->m->cert_len, sig)) == 0)
        r = sy_send(s, &msg);
    buf_free(&msg);
    if (r != 0)
        goto out;
    buf_free(&raw);
    if ((r = sy_wait(s, WIRE_AUTH_OK, &raw, &wm, s->o->timeout_ms)) != 0) {
        r = r == VERR_DENIED ? sy_reason_err(s->last_reason) : r;
        goto out; /* body is freed there (a leak found by adversarial/client_fault) */
    }
    *relay_dir_version = wm.u.auth_ok.dir_version;
    r = sy_check_marks(s, wm.u.auth_ok.hi_submitted, wm.u.auth_ok.hi_acked);
out:
    buf_free(&body);
    buf_free(&raw);
    return r;
}

/* A directory piece answered after ms: the next piece grows or shrinks (MB_PIECE_*). */
static void sy_piece_pace(struct sync *s, uint64_t ms)
{
    if (ms <= MB_SUBMIT_TIMELY_MS && s->piece_bytes < WIRE_DIR_PIECE_MAX)
        s->piece_bytes *= 2;
    else if (ms > 2 * MB_SUBMIT_TIMELY_MS && s->piece_bytes > MB_PIECE_MIN)
        s->piece_bytes /= 2;
}

/*
 * The whole directory of version (0: the one the relay serves) in pieces
 * (PROTOCOL.md part 2 "Directory transfer"), continuing a partial download
 * of the same version kept in the store. Each piece is stored durably before
 * the next is counted, so a cut loses at most the pieces in flight. A relay
 * that no longer keeps the version answers DIRECTORY_CURRENT: start that one.
 */
static int sy_dir_pieces(struct sync *s, uint64_t version)
{
    struct {
        uint32_t off, len;
        uint64_t sent_ms;
    } fl[MB_PIECE_FLIGHT];
    size_t nfl = 0, skip = 0, restarts = 0;
    uint64_t pv, last_ms = 0;
    uint32_t total = 0, have = 0, next = 0, ptotal, phave;
    int r;

    if ((r = mbox_dir_part_get(s->m, &pv, &ptotal, &phave)) != 0)
        return r;
    /*
     * A partial download is continued when it is the version wanted, or an
     * older one still newer than the directory held: the relay keeps recent
     * versions, and a delta brings the finished one up to date (sy_directory).
     */
    if (pv != 0 && (version == 0 || version == pv ||
                    (pv < version && (s->m->dir == NULL || pv > dir_version(s->m->dir))))) {
        version = pv;
        total = ptotal;
        have = next = phave;
    } else if (pv != 0 && (r = mbox_dir_part_drop(s->m)) != 0) {
        return r;
    }
    for (;;) {
        struct buf raw, msg;
        struct wire_msg wm;

        if (total != 0 && have == total)
            break;
        /* Pipelined once the length is known; the first request goes alone. */
        while (nfl < MB_PIECE_FLIGHT && (total == 0 ? nfl == 0 : next < total)) {
            uint32_t want = (uint32_t)s->piece_bytes;

            if (total != 0 && want > total - next)
                want = total - next;
            if ((r = buf_init(&msg, 64, 0)) != 0)
                return r;
            if ((r = wire_put_dir_piece_get(&msg, version, next, want)) == 0)
                r = sy_send(s, &msg);
            buf_free(&msg);
            if (r != 0)
                return r;
            fl[nfl].off = next;
            fl[nfl].len = want;
            fl[nfl].sent_ms = sy_ms();
            nfl++;
            next += want;
        }
        r = sy_wait_any(s, WIRE_DIRECTORY_PIECE, WIRE_DIRECTORY_CURRENT, &raw, &wm,
                        s->o->timeout_ms);
        if (r != 0)
            return r == VERR_DENIED ? sy_reason_err(s->last_reason) : r;
        if (skip > 0) {
            /* Answers to requests made before a restart. */
            skip--;
            buf_free(&raw);
            continue;
        }
        if (wm.type == WIRE_DIRECTORY_CURRENT) {
            /* The version asked for is no longer kept: start the one served now. */
            version = wm.u.dir_piece.version;
            buf_free(&raw);
            if (++restarts > MB_PIECE_RESTARTS)
                return VERR_PROTOCOL;
            if ((r = mbox_dir_part_drop(s->m)) != 0)
                return r;
            skip = nfl - 1;
            nfl = 0;
            total = have = next = 0;
            continue;
        }
        /* Exactly the piece asked for first: its version, offset and length. */
        if ((version != 0 && wm.u.dir_piece.version != version) ||
            (total != 0 && wm.u.dir_piece.total != total) || wm.u.dir_piece.offset != fl[0].off ||
            wm.u.dir_piece.len != (fl[0].len < wm.u.dir_piece.total - fl[0].off
                                       ? fl[0].len
                                       : wm.u.dir_piece.total - fl[0].off)) {
            buf_free(&raw);
            return VERR_PROTOCOL;
        }
        version = wm.u.dir_piece.version;
        total = wm.u.dir_piece.total;
        if (next > total)
            next = total; /* the first request may have asked for more than there is */
        r = mbox_dir_part_add(s->m, version, total, fl[0].off, wm.u.dir_piece.bytes,
                              wm.u.dir_piece.len);
        have = fl[0].off + (uint32_t)wm.u.dir_piece.len;
        s->st->dir_piece_bytes += wm.u.dir_piece.len;
        buf_free(&raw);
        if (r != 0)
            return r;
        {
            /* Time this piece took alone: from its request or the previous answer. */
            uint64_t now = sy_ms(), from = fl[0].sent_ms > last_ms ? fl[0].sent_ms : last_ms;

            sy_piece_pace(s, now - from);
            last_ms = now;
        }
        memmove(&fl[0], &fl[1], (nfl - 1) * sizeof(fl[0]));
        nfl--;
    }
    return mbox_dir_part_finish(s->m);
}

static int sy_directory(struct sync *s, uint64_t relay_version)
{
    struct buf raw, msg;
    struct wire_msg wm;
    uint64_t target = relay_version == UINT64_MAX ? 0 : relay_version;
    int r;

    /*
     * Fetched also when the relay's is older than ours: a relay serving an
     * old directory (rolled back, or hiding a revocation) is an alarm, not
     * something to ignore quietly (mbox_install_directory refuses it).
     */
    if (s->m->dir != NULL && relay_version == dir_version(s->m->dir))
        return 0;
    if (s->m->dir != NULL && relay_version > dir_version(s->m->dir)) {
        /* A delta from the version held; the relay says when it has none. */
        if ((r = buf_init(&msg, 16, 0)) != 0)
            return r;
        if ((r = wire_put_dir_delta_get(&msg, dir_version(s->m->dir))) == 0)
            r = sy_send(s, &msg);
        buf_free(&msg);
        if (r != 0)
            return r;
        r = sy_wait_any(s, WIRE_DIRECTORY_DELTA, WIRE_DIRECTORY_CURRENT, &raw, &wm,
                        s->o->timeout_ms);
        if (r != 0)
            return r == VERR_DENIED ? sy_reason_err(s->last_reason) : r;
        if (wm.type == WIRE_DIRECTORY_CURRENT) {
            target = wm.u.dir_piece.version;
            buf_free(&raw);
            if (target == dir_version(s->m->dir))
                return 0;
        } else {
            r = mbox_dir_install_delta(s->m, wm.u.directory.bytes, wm.u.directory.len);
            buf_free(&raw);
            if (r == 0) {
                s->st->dir_delta = 1;
                return 0;
            }
            if (r == VERR_ROLLBACK || verr_is_system(r))
                return r;
            /* A delta that does not rebuild a verified directory: fetch it whole. */
            s->st->dir_delta_refused = 1;
        }
    }
    if ((r = sy_dir_pieces(s, target)) != 0)
        return r;
    /* A download finished of a version older than the relay's: a delta for the rest. */
    if (relay_version != UINT64_MAX && s->m->dir != NULL &&
        dir_version(s->m->dir) < relay_version && !s->st->dir_delta_refused)
        return sy_directory(s, relay_version);
    return 0;
}

static int sy_prekeys(struct sync *s, int first)
{
    struct buf msg, raw;
    struct wire_msg wm;
    size_t n = first ? MB_OTK_FIRST : MB_OTK_BATCH;
    int r;

    if ((r = pk_prepare_upload(s->m, n, &msg)) != 0)
        return r;
    r = sy_send(s, &msg);
    buf_free(&msg);
    if (r != 0)
        return r;
    if ((r = sy_wait(s, WIRE_PREKEY_OK, &raw, &wm, s->o->timeout_ms)) != 0)
        return r == VERR_DENIED ? sy_reason_err(s->last_reason) : r;
    buf_free(&raw);
    s->st->prekeys_uploaded += n;
    if ((r = cstore_begin(s->m->st, 1)) != 0)
        return r;
    if ((r = mb_cfg_put_u64(s->m, "pk.up", 1)) != 0 || (r = cstore_commit(s->m->st)) != 0)
        cstore_abort(s->m->st);
    s->need_prekeys = 0;
    return r;
}

/* ---- sending ---- */

/* Fetches a bundle and starts a session with peer (not stored yet). */
static int sy_start_session(struct sync *s, const struct cert *peer, struct mb_sessions *ss)
{
    struct buf msg, raw;
    struct wire_msg wm;
    struct cert bc;
    struct x3dh_bundle xb;
    struct x3dh_init_header hdr;
    struct x3dh_party self, other;
    struct ratchet_session *ns = NULL;
    uint8_t *sk = NULL;
    int r;

    if ((r = buf_init(&msg, 64, 0)) != 0)
        return r;
    if ((r = wire_put_bundle_get(&msg, peer->device_id)) == 0)
        r = sy_send(s, &msg);
    buf_free(&msg);
    if (r != 0)
        return r;
    if ((r = sy_wait(s, WIRE_BUNDLE, &raw, &wm, s->o->timeout_ms)) != 0)
        return r;
    /* The bundle's certificate must be the one our directory lists (not the relay's word). */
    if ((r = cert_parse(wm.u.bundle.cert, wm.u.bundle.cert_len, &bc)) != 0)
        goto out;
    if (bc.serial != peer->serial || memcmp(bc.device_id, peer->device_id, DEVICE_ID_LEN) != 0 ||
        sodium_memcmp(bc.sign_pk, peer->sign_pk, SIG_PK_LEN) != 0 ||
        sodium_memcmp(bc.dh_pk, peer->dh_pk, DH_PK_LEN) != 0) {
        r = VERR_BAD_KEY;
        goto out;
    }
    memset(&xb, 0, sizeof(xb));
    memcpy(xb.owner.device_id, peer->device_id, DEVICE_ID_LEN);
    memcpy(xb.owner.identity_pk, peer->dh_pk, X3DH_PK_LEN);
    xb.spk_id = wm.u.bundle.spk.id;
    memcpy(xb.spk_pk, wm.u.bundle.spk.pk, X3DH_PK_LEN);
    memcpy(xb.spk_sig, wm.u.bundle.spk.sig, SIG_LEN);
    xb.has_opk = wm.u.bundle.has_otk ? 1 : 0;
    xb.opk_id = wm.u.bundle.otk_id;
    memcpy(xb.opk_pk, wm.u.bundle.otk_pk, X3DH_PK_LEN);
    if ((sk = sodium_malloc(X3DH_SECRET_LEN)) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    if ((r = x3dh_initiate(sk, &hdr, &xb, peer->sign_pk, s->m->id.dh_sk)) != 0)
        goto out;
    mb_self_party(s->m, &self);
    other = xb.owner;
    if ((r = ratchet_init_initiator(&ns, sk, &hdr, &self, &other, xb.spk_pk)) != 0)
        goto out;
    mb_sessions_push(ss, ns, hdr.ek_pk);
    r = 0;
out:
    sodium_free(sk);
    buf_free(&raw);
    return r;
}

static int sy_tried(const struct sync *s, const uint8_t dev[static DEVICE_ID_LEN])
{
    for (size_t i = 0; i < s->ntried; i++)
        if (memcmp(s->tried[i], dev, DEVICE_ID_LEN) == 0)
            return 1;
    return 0;
}

/*
 * A new envelope id: 48-bit Unix time in milliseconds, big-endian, then 80
 * random bits (the layout of UUIDv7, RFC 9562 5.7). Ids sent about the same
 * time sort together, so the relay's per-recipient id index is written in few
 * pages (PROTOCOL.md, part 2 "Envelope ids"); uniqueness rests on the
 * random bits alone.
 */
static void mb_envelope_id(uint8_t id[static WIRE_ID_LEN])
{
    struct timespec ts;
    uint64_t ms = 0;

    _Static_assert(WIRE_ID_LEN == 16, "6 bytes of time then 10 random bytes");
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && ts.tv_sec >= 0)
        ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    for (size_t i = 0; i < 6; i++)
        id[i] = (uint8_t)(ms >> (40 - 8 * i));
    randombytes_buf(id + 6, WIRE_ID_LEN - 6);
}

/*
 * Encrypts the inner message for one device and stores the envelope with the
 * advanced session in one transaction (so a retry resends the same bytes).
 */
static int sy_encrypt_for(struct sync *s, const uint8_t key[static ENV_KEY_LEN],
                          const struct mb_envrec *old, const struct mb_outrec *o,
                          uint8_t precedence)
{
    struct mbox *m = s->m;
    const uint8_t *dev = key + 8;
    const struct cert *peer = dir_find_device(m->dir, dev);
    struct mb_sessions ss;
    struct mb_envrec e;
    struct buf rm, ct, pt;
    struct x3dh_init_header hdr;
    int r, have_rm = 0, have_ct = 0, have_pt = 0;

    memset(&ss, 0, sizeof(ss));
    e = *old;
    e.ct = NULL;
    e.ct_len = 0;
    if (peer == NULL || dir_check_cert(m->dir, peer, &m->org, s->now) != 0) {
        /* Not (or no longer) a valid device in our directory: wait for a newer one. */
        if (old->state == MBOX_ENV_WAIT_DIR)
            return 0;
        e.state = MBOX_ENV_WAIT_DIR;
        goto store_state;
    }
    if ((r = mb_sessions_load(m, dev, &ss)) != 0)
        return r;
    if (ss.n == 0) {
        if (sy_tried(s, dev))
            return 0;
        r = sy_start_session(s, peer, &ss);
        /*
         * No prekeys yet, or a bundle that does not verify against our
         * directory (bad signature or key, another certificate): this device
         * waits, the others go on.
         */
        if ((r == VERR_DENIED &&
             (s->last_reason == WIRE_R_NO_PREKEYS || s->last_reason == WIRE_R_UNKNOWN_DEVICE)) ||
            r == VERR_BAD_KEY || r == VERR_BAD_SIGNATURE || r == VERR_BAD_FORMAT ||
            r == VERR_TRUNCATED || r == VERR_TRAILING || r == VERR_BAD_MAGIC ||
            r == VERR_BAD_VERSION || r == VERR_WRONG_ORG) {
            if (s->ntried < MB_TRIED_MAX)
                memcpy(s->tried[s->ntried++], dev, DEVICE_ID_LEN);
            mb_sessions_free(&ss);
            if (old->state == MBOX_ENV_WAIT_PREKEYS)
                return 0;
            e.state = MBOX_ENV_WAIT_PREKEYS;
            goto store_state;
        }
        if (r != 0)
            goto out;
    }
    if ((r = buf_init(&rm, RATCHET_MSG_MAX, 0)) != 0)
        goto out;
    have_rm = 1;
    /* What is encrypted: the inner message as transmitted (inner.h, PROTOCOL.md part 4). */
    if ((r = buf_init(&pt, INNER_MAX_LEN, BUF_SECRET)) != 0)
        goto out;
    have_pt = 1;
    if ((r = inner_wire_encode(o->inner, o->inner_len, &pt)) != 0 ||
        (r = ratchet_encrypt(ss.s[0], buf_data(&pt), buf_size(&pt), &rm)) != 0)
        goto out;
    if ((r = buf_init(&ct, WIRE_CT_MAX, 0)) != 0)
        goto out;
    have_ct = 1;
    if (ratchet_session_pending_prekey(ss.s[0], &hdr)) {
        /* Until the first reply every message carries the X3DH header (PROTOCOL.md part 3, section 3). */
        struct x3dh_prekey_msg pm;
        mb_self_party(m, &pm.sender);
        pm.init = hdr;
        pm.inner = buf_data(&rm);
        pm.inner_len = buf_size(&rm);
        if ((r = x3dh_prekey_msg_encode(&pm, &ct)) != 0)
            goto out;
    } else if ((r = buf_put_bytes(&ct, buf_data(&rm), buf_size(&rm))) != 0) {
        goto out;
    }
    mb_envelope_id(e.env_id);
    e.state = MBOX_ENV_SENDING;
    e.reason = 0;
    e.precedence = precedence;
    e.expiry = o->created + mbox_ttl(precedence);
    e.ct = buf_data(&ct);
    e.ct_len = buf_size(&ct);
    if ((r = cstore_begin(m->st, 1)) != 0)
        goto out;
    {
        /* A receipt may have grown since it was read (mb_queue_receipt, another
         * process): then this encryption is dropped and the next pass takes it. */
        struct buf now_ob;
        struct mb_outrec now_o;
        int same;
        if ((r = cstore_get(m->st, CS_OUTBOX, key, 8, &now_ob)) != 0) {
            cstore_abort(m->st);
            goto out;
        }
        same = mb_outrec_parse(buf_data(&now_ob), buf_size(&now_ob), &now_o) == 0 &&
               now_o.inner_len == o->inner_len &&
               memcmp(now_o.inner, o->inner, o->inner_len) == 0;
        buf_free(&now_ob);
        if (!same) {
            cstore_abort(m->st);
            r = 0;
            goto out;
        }
    }
    if ((r = mb_sessions_put(m, dev, &ss)) != 0 || (r = mb_envrec_put(m, key, &e)) != 0 ||
        (r = mb_mark_raise(m, 0, e.env_id)) != 0 || (r = cstore_commit(m->st)) != 0) {
        cstore_abort(m->st);
        goto out;
    }
    r = 0;
    goto out;
store_state:
    if ((r = cstore_begin(m->st, 1)) != 0)
        goto out;
    if ((r = mb_envrec_put(m, key, &e)) != 0 || (r = cstore_commit(m->st)) != 0)
        cstore_abort(m->st);
out:
    if (have_rm)
        buf_free(&rm);
    if (have_ct)
        buf_free(&ct);
    if (have_pt)
        buf_free(&pt);
    mb_sessions_free(&ss);
    return r;
}

/* Collected work: keys of outbox records or envelopes, copied out of the walk. */
static int each_unresolved(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct mb_outrec o;
    int r;

    if (kl != 8 || (r = mb_outrec_parse(v, vl, &o)) != 0)
        return VERR_BAD_FORMAT;
    return o.resolved ? 0 : mb_keys_add(ctx, k, kl);
}

static int sy_parse_addresses(const struct inner *in, struct address a[INNER_ADDRESSES_MAX])
{
    int r;

    for (size_t i = 0; i < in->naddr; i++)
        if ((r = addr_parse(in->address[i], &a[i])) != 0)
            return r;
    return 0;
}

/*
 * Fans unresolved outbox messages out to the devices behind their
 * addresses: every device behind any of them, each once (issue 12, item 6).
 */
static int sy_resolve(struct sync *s)
{
    struct mbox *m = s->m;
    struct mb_keys ks = {0};
    uint8_t(*ids)[DEVICE_ID_LEN] = NULL;
    int r;

    if ((r = cstore_each(m->st, CS_OUTBOX, each_unresolved, &ks)) != 0)
        goto out;
    if (ks.n == 0)
        goto out;
    if ((ids = malloc(MBOX_MAX_FANOUT * sizeof(*ids))) == NULL) {
        r = VERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < ks.n; i++) {
        struct buf b;
        struct mb_outrec o;
        struct inner in;
        struct address a[INNER_ADDRESSES_MAX];
        const struct cert *c;
        size_t n = 0;

        if ((r = cstore_begin(m->st, 1)) != 0)
            goto out;
        if ((r = cstore_get(m->st, CS_OUTBOX, ks.k[i], 8, &b)) != 0) {
            cstore_abort(m->st);
            goto out;
        }
        if ((r = mb_outrec_parse(buf_data(&b), buf_size(&b), &o)) != 0 ||
            (r = inner_parse(o.inner, o.inner_len, &in)) != 0 ||
            (r = sy_parse_addresses(&in, a)) != 0 ||
            (r = addr_resolve_list(a, in.naddr, m->dir, &m->org, s->now, &m->self, ids,
                                   MBOX_MAX_FANOUT, &n)) != 0) {
            /* A name that became ambiguous since send waits for a directory that
             * makes it one person again; it is never sent to both. */
            if (r == VERR_AMBIGUOUS) {
                r = 0;
                s->st->waiting++;
            }
            goto next;
        }
        if (n > 0) {
            for (size_t j = 0; j < n && r == 0; j++) {
                struct mb_envrec e;
                uint8_t key[ENV_KEY_LEN];
                memset(&e, 0, sizeof(e));
                e.state = MBOX_ENV_QUEUED;
                e.precedence = in.precedence;
                memcpy(key, ks.k[i], 8);
                memcpy(key + 8, ids[j], DEVICE_ID_LEN);
                r = mb_envrec_put(m, key, &e);
                /* Its certificate, to name it in `outbox` after a revocation (item 9). */
                if (r == 0 && (c = dir_find_device(m->dir, ids[j])) != NULL)
                    r = mb_peer_remember(m, c);
            }
            o.resolved = 1;
            if (r == 0)
                r = mb_outrec_put(m, mb_rd64(ks.k[i]), &o);
        } else {
            s->st->waiting++;
        }
    next:
        buf_free(&b);
        if (r == 0)
            r = cstore_commit(m->st);
        else
            cstore_abort(m->st);
        if (r != 0)
            goto out;
    }
out:
    free(ids);
    free(ks.k);
    return r;
}

static int each_to_encrypt(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct mb_envrec e;

    if (kl != ENV_KEY_LEN || mb_envrec_parse(v, vl, &e) != 0)
        return VERR_BAD_FORMAT;
    if (e.state == MBOX_ENV_QUEUED || e.state == MBOX_ENV_WAIT_PREKEYS ||
        e.state == MBOX_ENV_WAIT_DIR)
        return mb_keys_add(ctx, k, kl);
    return 0;
}

/*
 * A message or receipt this device queued before inner version 2 (still in
 * the store after an upgrade) is signed again as version 2, same id, before
 * it is encrypted: version 1 is never transmitted (inner.h). o then points
 * into nb.
 */
static int sy_resign_v1(struct sync *s, const uint8_t key[static 8], struct mb_outrec *o,
                        struct inner *in, struct buf *nb)
{
    struct mbox *m = s->m;
    int r;

    if (memcmp(in->sender, m->id.device_id, DEVICE_ID_LEN) != 0)
        return VERR_BAD_FORMAT; /* only this device's own records are ever sent */
    if ((r = buf_init(nb, INNER_MAX_LEN, BUF_SECRET)) != 0)
        return r;
    if ((r = inner_sign_encode(in, m->id.sign_sk, nb)) != 0)
        return r;
    o->inner = buf_data(nb);
    o->inner_len = buf_size(nb);
    if ((r = cstore_begin(m->st, 1)) != 0)
        return r;
    if ((r = mb_outrec_put(m, mb_rd64(key), o)) != 0 || (r = cstore_commit(m->st)) != 0)
        cstore_abort(m->st);
    return r;
}

static int sy_encrypt_all(struct sync *s)
{
    struct mbox *m = s->m;
    struct mb_keys ks = {0};
    int r;

    if ((r = cstore_each(m->st, CS_ENVELOPES, each_to_encrypt, &ks)) != 0)
        goto out;
    for (size_t i = 0; i < ks.n; i++) {
        struct buf eb, ob, nb;
        struct mb_envrec e;
        struct mb_outrec o;
        struct inner in;
        uint8_t prec = WIRE_ROUTINE;

        memset(&nb, 0, sizeof(nb));
        if ((r = cstore_get(m->st, CS_ENVELOPES, ks.k[i], ENV_KEY_LEN, &eb)) != 0)
            goto out;
        if ((r = cstore_get(m->st, CS_OUTBOX, ks.k[i], 8, &ob)) != 0) {
            buf_free(&eb);
            goto out;
        }
        if ((r = mb_envrec_parse(buf_data(&eb), buf_size(&eb), &e)) == 0 &&
            (r = mb_outrec_parse(buf_data(&ob), buf_size(&ob), &o)) == 0 &&
            (r = inner_parse(o.inner, o.inner_len, &in)) == 0 &&
            (in.version != INNER_VERSION_1 || (r = sy_resign_v1(s, ks.k[i], &o, &in, &nb)) == 0)) {
            if (in.type == INNER_TYPE_MESSAGE)
                prec = in.precedence;
            r = sy_encrypt_for(s, ks.k[i], &e, &o, prec);
        }
        buf_free(&nb);
        buf_free(&eb);
        buf_free(&ob);
        if (r != 0)
            goto out;
    }
out:
    free(ks.k);
    return r;
}

struct mb_pending {
    struct mb_keys keys;
    struct buf msg; /* SUBMIT being built */
    size_t n;
    uint8_t (*ids)[WIRE_ID_LEN];
};

static int each_sending(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct mb_envrec e;

    if (kl != ENV_KEY_LEN || mb_envrec_parse(v, vl, &e) != 0)
        return VERR_BAD_FORMAT;
    return e.state == MBOX_ENV_SENDING ? mb_keys_add(ctx, k, kl) : 0;
}

/* Counts a refusal under its reason among the first MBOX_WHY_MAX distinct ones. */
static void sy_why_rejected(struct mbox_sync_stats *st, uint16_t reason)
{
    st->rejected++;
    for (size_t i = 0; i < MBOX_WHY_MAX; i++) {
        if (st->rejected_why[i].n == 0)
            st->rejected_why[i].reason = reason;
        if (st->rejected_why[i].reason == reason) {
            st->rejected_why[i].n++;
            return;
        }
    }
}

static void sy_why_refused(struct mbox_sync_stats *st, const uint8_t sender[static DEVICE_ID_LEN],
                           int err)
{
    st->refused++;
    for (size_t i = 0; i < MBOX_WHY_MAX; i++) {
        if (st->refused_why[i].n == 0) {
            memcpy(st->refused_why[i].sender, sender, DEVICE_ID_LEN);
            st->refused_why[i].err = err;
        }
        if (st->refused_why[i].err == err &&
            memcmp(st->refused_why[i].sender, sender, DEVICE_ID_LEN) == 0) {
            st->refused_why[i].n++;
            return;
        }
    }
}

/* 1 when outbox record seq is a receipt (counted apart from messages, issue 12 item 9). */
static int sy_is_receipt(struct mbox *m, const uint8_t seq[static 8])
{
    struct buf b;
    struct mb_outrec o;
    int receipt = 0;

    if (cstore_get(m->st, CS_OUTBOX, seq, 8, &b) != 0)
        return 0;
    if (mb_outrec_parse(buf_data(&b), buf_size(&b), &o) == 0)
        receipt = o.kind == MB_KIND_RECEIPT;
    buf_free(&b);
    return receipt;
}

/* Submits one batch (keys[from..to)) and records the acknowledgements. */
static int sy_submit_batch(struct sync *s, uint8_t (*keys)[ENV_KEY_LEN], size_t n, size_t *used)
{
    struct mbox *m = s->m;
    struct buf msg, raw, *recs = NULL;
    struct wire_envelope *ev = NULL;
    struct wire_msg wm;
    struct wire_iter it;
    struct wire_ack ack;
    uint8_t(*eids)[WIRE_ID_LEN] = NULL;
    uint8_t *receipt = NULL;
    size_t got = 0, bytes = 0;
    uint64_t t0, rtt;
    int r = VERR_NOMEM, have_msg = 0;

    if ((recs = calloc(n, sizeof(*recs))) == NULL || (ev = calloc(n, sizeof(*ev))) == NULL ||
        (eids = calloc(n, sizeof(*eids))) == NULL || (receipt = calloc(n, 1)) == NULL)
        goto out;
    for (; got < n; got++) {
        struct mb_envrec e;
        if ((r = cstore_get(m->st, CS_ENVELOPES, keys[got], ENV_KEY_LEN, &recs[got])) != 0)
            goto out;
        if ((r = mb_envrec_parse(buf_data(&recs[got]), buf_size(&recs[got]), &e)) != 0)
            goto out;
        memcpy(ev[got].id, e.env_id, WIRE_ID_LEN);
        memcpy(eids[got], e.env_id, WIRE_ID_LEN);
        receipt[got] = (uint8_t)sy_is_receipt(m, keys[got]);
        memcpy(ev[got].peer, keys[got] + 8, DEVICE_ID_LEN);
        ev[got].precedence = e.precedence;
        ev[got].expiry = e.expiry;
        ev[got].ct = e.ct;
        ev[got].ct_len = (uint32_t)e.ct_len;
        /*
         * One SUBMIT is a piece the link carries in a few seconds (and well
         * under the relay's frame bound): a cut loses at most this piece.
         */
        bytes += e.ct_len + WIRE_ENVELOPE_FIXED;
        if (bytes >= s->submit_bytes) {
            got++;
            break;
        }
    }
    for (size_t i = got; i < n; i++)
        buf_free(&recs[i]);
    n = got;
    *used = n;
    if ((r = buf_init(&msg, 16u << 20, 0)) != 0)
        goto out;
    have_msg = 1;
    if ((r = wire_put_envelopes(&msg, WIRE_SUBMIT, ev, n)) != 0 || (r = sy_send(s, &msg)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (receipt[i])
            s->st->receipts_sent++;
        else
            s->st->submitted++;
    }
    t0 = sy_ms();
    if ((r = sy_wait(s, WIRE_SUBMIT_ACK, &raw, &wm, s->o->timeout_ms)) != 0) {
        r = r == VERR_DENIED ? sy_reason_err(s->last_reason) : r;
        goto out;
    }
    /* The next piece doubles after a timely answer and halves after a slow one. */
    rtt = sy_ms() - t0;
    if (rtt <= MB_SUBMIT_TIMELY_MS && bytes >= s->submit_bytes / 2)
        s->submit_bytes =
            s->submit_bytes * 2 > MB_SUBMIT_BYTES ? MB_SUBMIT_BYTES : s->submit_bytes * 2;
    else if (rtt > 2 * MB_SUBMIT_TIMELY_MS)
        s->submit_bytes =
            s->submit_bytes / 2 < MB_SUBMIT_START ? MB_SUBMIT_START : s->submit_bytes / 2;
    if ((r = cstore_begin(m->st, 1)) != 0) {
        buf_free(&raw);
        goto out;
    }
    wire_iter_init(&it, &wm);
    for (size_t i = 0; i < wm.u.batch.n && r == 0; i++) {
        size_t j;
        uint8_t state;
        if ((r = wire_next_ack(&it, &ack)) != 0)
            break;
        for (j = 0; j < n; j++)
            if (memcmp(eids[j], ack.id, WIRE_ID_LEN) == 0)
                break;
        if (j == n)
            continue; /* not ours: ignore */
        switch (ack.reason) {
        case WIRE_R_OK:
            state = MBOX_ENV_ACCEPTED;
            if (!receipt[j])
                s->st->accepted++;
            break;
        case WIRE_R_QUEUE_FULL:
        case WIRE_R_RATE_LIMITED:
        case WIRE_R_STORAGE_FULL:
        case WIRE_R_STORAGE_ERROR:
        case WIRE_R_SHUTTING_DOWN:
            continue; /* stays "sending": the same bytes go again later */
        case WIRE_R_EXPIRED:
            state = MBOX_ENV_EXPIRED;
            s->st->expired++;
            break;
        default:
            state = MBOX_ENV_REJECTED;
            sy_why_rejected(s->st, ack.reason);
            break;
        }
        r = mb_env_advance(m, keys[j], state, ack.reason);
    }
    buf_free(&raw);
    if (r == 0)
        r = cstore_commit(m->st);
    else
        cstore_abort(m->st);
out:
    if (have_msg)
        buf_free(&msg);
    if (recs != NULL)
        for (size_t i = 0; i < n; i++)
            buf_free(&recs[i]);
    free(recs);
    free(ev);
    free(eids);
    free(receipt);
    return r;
}

static int sy_submit_all(struct sync *s)
{
    struct mb_keys ks = {0};
    size_t i = 0;
    int r;

    if ((r = cstore_each(s->m->st, CS_ENVELOPES, each_sending, &ks)) != 0)
        goto out;
    while (i < ks.n) {
        size_t n = ks.n - i < MB_SUBMIT_BATCH ? ks.n - i : MB_SUBMIT_BATCH, used = 0;
        if ((r = sy_submit_batch(s, &ks.k[i], n, &used)) != 0)
            goto out;
        i += used;
    }
out:
    free(ks.k);
    return r;
}

/* ---- receiving ---- */

struct mb_find {
    const uint8_t *id;     /* message id to find */
    const uint8_t *env_id; /* or envelope id */
    uint8_t key[ENV_KEY_LEN];
    int found;
};

static int each_find_message(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct mb_find *f = ctx;
    struct mb_outrec o;
    struct inner in;

    if (kl != 8 || mb_outrec_parse(v, vl, &o) != 0 || inner_parse(o.inner, o.inner_len, &in) != 0)
        return VERR_BAD_FORMAT;
    if (o.kind == MB_KIND_MESSAGE && memcmp(in.id, f->id, INNER_ID_LEN) == 0) {
        memcpy(f->key, k, 8);
        f->found = 1;
        return 1;
    }
    return 0;
}

static int each_find_envelope(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct mb_find *f = ctx;
    struct mb_envrec e;

    if (kl != ENV_KEY_LEN || mb_envrec_parse(v, vl, &e) != 0)
        return VERR_BAD_FORMAT;
    if (e.state >= MBOX_ENV_SENDING && memcmp(e.env_id, f->env_id, WIRE_ID_LEN) == 0) {
        memcpy(f->key, k, ENV_KEY_LEN);
        f->found = 1;
        return 1;
    }
    return 0;
}

/* A receipt from `from` about one of our messages: advance that envelope. */
static int sy_on_receipt(struct sync *s, const struct inner *in,
                         const uint8_t from[static DEVICE_ID_LEN])
{
    int r;

    /* One receipt may be about several messages (issue 13 item 3). */
    for (size_t i = 0; i < in->nref; i++) {
        struct mb_find f;
        struct buf b;

        memset(&f, 0, sizeof(f));
        f.id = in->ref_id[i];
        if ((r = cstore_each(s->m->st, CS_OUTBOX, each_find_message, &f)) < 0)
            return r;
        if (!f.found)
            continue; /* not (or no longer) ours: nothing to update */
        memcpy(f.key + 8, from, DEVICE_ID_LEN);
        /* Only a device the message was sent to can confirm it. */
        if ((r = cstore_get(s->m->st, CS_ENVELOPES, f.key, ENV_KEY_LEN, &b)) != 0) {
            if (r == VERR_UNKNOWN)
                continue;
            return r;
        }
        buf_free(&b);
        s->st->receipts++;
        /* Read (2, or 3: delivered and read) is the further state. */
        if ((r = mb_env_advance(s->m, f.key,
                                (in->receipt_kind[i] & INNER_RECEIPT_READ) ? MBOX_ENV_READ
                                                                           : MBOX_ENV_DELIVERED,
                                0)) != 0)
            return r;
    }
    return 0;
}

/*
 * Replay records in the `seen` table (PROTOCOL.md part 4, "Tables"): a
 * message id is the sender's choice, so it is remembered per sender device
 * (key sender || id, 32 bytes); the X3DH ephemeral key of every accepted
 * session set-up is remembered per signed prekey and sender (key 'E' || u32
 * signed prekey id || sender || ek, 53 bytes), so a prekey message replayed
 * after its session was evicted is decrypted on a session that is then
 * thrown away: its (sender, id) is already seen, so nothing is committed.
 */
enum { MB_SEEN_MSG_LEN = DEVICE_ID_LEN + INNER_ID_LEN, MB_SEEN_EK_LEN = 1 + 4 + DEVICE_ID_LEN + 32 };
_Static_assert(MB_SEEN_MSG_LEN == 32 && MB_SEEN_EK_LEN == 53, "seen keys (PROTOCOL.md part 4)");
_Static_assert(X3DH_PK_LEN == 32, "ephemeral key in a seen key");

static void mb_seen_msg_key(uint8_t key[static MB_SEEN_MSG_LEN],
                            const uint8_t sender[static DEVICE_ID_LEN],
                            const uint8_t id[static INNER_ID_LEN])
{
    memcpy(key, sender, DEVICE_ID_LEN);
    memcpy(key + DEVICE_ID_LEN, id, INNER_ID_LEN);
}

static void mb_seen_ek_key(uint8_t key[static MB_SEEN_EK_LEN], uint32_t spk_id,
                           const uint8_t sender[static DEVICE_ID_LEN],
                           const uint8_t ek[static X3DH_PK_LEN])
{
    key[0] = 'E';
    key[1] = (uint8_t)(spk_id >> 24);
    key[2] = (uint8_t)(spk_id >> 16);
    key[3] = (uint8_t)(spk_id >> 8);
    key[4] = (uint8_t)spk_id;
    memcpy(key + 5, sender, DEVICE_ID_LEN);
    memcpy(key + 5 + DEVICE_ID_LEN, ek, X3DH_PK_LEN);
}

/* 0: not seen; VERR_REPLAY: seen; other: store error. */
static int mb_seen_check(struct mbox *m, const uint8_t *key, size_t klen)
{
    struct buf b;
    int r = cstore_get(m->st, CS_SEEN, key, klen, &b);

    if (r == 0) {
        buf_free(&b);
        return VERR_REPLAY;
    }
    return r == VERR_UNKNOWN ? 0 : r;
}

/*
 * Decrypts, verifies and stores one envelope, in the open write transaction.
 * 0: stored; VERR_REPLAY: already had it (acknowledge, drop); other: refused.
 */
static int sy_receive_one(struct sync *s, const struct wire_envelope *e)
{
    struct mbox *m = s->m;
    const struct cert *sc = NULL, *vc = NULL;
    struct mb_sessions ss;
    struct buf pt, cb;
    struct inner in;
    struct x3dh_prekey_msg pm;
    uint8_t type, *secrets = NULL, seen_key[MB_SEEN_MSG_LEN], ek_key[MB_SEEN_EK_LEN];
    size_t used = 0;
    int r, replay = 0, del_opk = 0, have_pt = 0, new_session = 0;

    memset(&ss, 0, sizeof(ss));
    memset(&pm, 0, sizeof(pm));
    if ((sc = dir_find_device(m->dir, e->peer)) == NULL)
        /* A device IT revoked is named as such, not as unknown (issue 12, item 9). */
        return dir_revokes_device(m->dir, e->peer) ? VERR_REVOKED : VERR_UNKNOWN;
    if ((r = dir_check_cert(m->dir, sc, &m->org, s->now)) != 0)
        return r;
    if ((r = x3dh_wire_type(e->ct, e->ct_len, &type)) != 0)
        return r;
    if ((r = mb_sessions_load(m, e->peer, &ss)) != 0)
        return r;
    if ((r = buf_init(&pt, RATCHET_MAX_PLAINTEXT, BUF_SECRET)) != 0)
        goto out;
    have_pt = 1;
    if (type == E2E_TYPE_PREKEY) {
        size_t i;
        if ((r = x3dh_prekey_msg_parse(&pm, e->ct, e->ct_len)) != 0)
            goto out;
        /* X3DH 4.8: the identity in the message is the sender certificate's. */
        if (memcmp(pm.sender.device_id, e->peer, DEVICE_ID_LEN) != 0 ||
            sodium_memcmp(pm.sender.identity_pk, sc->dh_pk, DH_PK_LEN) != 0) {
            r = VERR_DENIED;
            goto out;
        }
        for (i = 0; i < ss.n; i++)
            if (memcmp(ss.ek[i], pm.init.ek_pk, X3DH_PK_LEN) == 0)
                break;
        if (i < ss.n) {
            /* Another copy for a session already set up (PROTOCOL.md part 3, section 3). */
            used = i;
            r = ratchet_decrypt(ss.s[i], pm.inner, pm.inner_len, &pt);
        } else {
            struct ratchet_session *ns = NULL;
            struct x3dh_party self, peer;
            mb_seen_ek_key(ek_key, pm.init.spk_id, e->peer, pm.init.ek_pk);
            if ((secrets = sodium_malloc(64 + 64 + X3DH_SECRET_LEN)) == NULL) {
                r = VERR_NOMEM;
                goto out;
            }
            if ((r = pk_get(m, 'S', pm.init.spk_id, secrets)) != 0)
                goto out;
            if (pm.init.has_opk && (r = pk_get(m, 'O', pm.init.opk_id, secrets + 64)) != 0) {
                /*
                 * Gone because this very set-up used it (its session since
                 * evicted): a later copy, acknowledged and dropped. Otherwise
                 * a one-time prekey we never had: refused and counted, never
                 * silently acknowledged (issue 11, item 2).
                 */
                if (r == VERR_UNKNOWN &&
                    (r = mb_seen_check(m, ek_key, sizeof(ek_key))) == 0) {
                    s->st->unknown_prekey++;
                    r = VERR_UNKNOWN;
                }
                goto out;
            }
            if ((r = x3dh_respond(secrets + 128, &pm.init, m->id.dh_sk, secrets,
                                  pm.init.has_opk ? secrets + 64 : NULL, sc->dh_pk)) != 0)
                goto out;
            mb_self_party(m, &self);
            memcpy(peer.device_id, e->peer, DEVICE_ID_LEN);
            memcpy(peer.identity_pk, sc->dh_pk, X3DH_PK_LEN);
            if ((r = ratchet_init_responder(&ns, secrets + 128, &self, &peer, secrets)) != 0)
                goto out;
            if ((r = ratchet_decrypt(ns, pm.inner, pm.inner_len, &pt)) != 0) {
                ratchet_session_free(ns);
                goto out;
            }
            mb_sessions_push(&ss, ns, pm.init.ek_pk);
            used = 0;
            del_opk = pm.init.has_opk;
            new_session = 1;
        }
    } else {
        r = VERR_DECRYPT;
        for (size_t i = 0; i < ss.n; i++) {
            r = ratchet_decrypt(ss.s[i], e->ct, e->ct_len, &pt);
            if (r == 0) {
                used = i;
                break;
            }
            if (r == VERR_REPLAY)
                replay = 1;
        }
        if (r != 0 && replay)
            r = VERR_REPLAY;
    }
    if (r != 0)
        goto out;
    {
        /* The sender id and role were not sent: the envelope's sender and its
         * certificate's role go back in, under the signature (inner.h). */
        struct buf full;
        if ((r = buf_init(&full, INNER_MAX_LEN, BUF_SECRET)) != 0)
            goto out;
        if ((r = inner_wire_decode(buf_data(&pt), buf_size(&pt), e->peer, sc->role, &full)) != 0) {
            buf_free(&full);
            goto out;
        }
        buf_free(&pt);
        pt = full; /* owned by pt now */
    }
    /* Nothing is stored or shown before the whole check (inner.h). */
    if ((r = inner_parse(buf_data(&pt), buf_size(&pt), &in)) != 0 ||
        (r = inner_verify(buf_data(&pt), buf_size(&pt), &in, e->peer, &m->self, m->dir, &m->org,
                          s->now, &vc)) != 0)
        goto out;
    /*
     * Replay protection by (sender device, message id): ids are chosen by
     * senders, so another sender's message with the same id is its own
     * message (the ratchet already refuses a second decryption).
     */
    mb_seen_msg_key(seen_key, e->peer, in.id);
    if ((r = mb_seen_check(m, seen_key, sizeof(seen_key))) != 0) {
        if (r != VERR_REPLAY || new_session)
            goto out; /* a session built for a replay is never committed */
        replay = 2;   /* an existing session advanced: stored */
    }
    mb_sessions_front(&ss, used);
    if ((r = mb_sessions_put(m, e->peer, &ss)) != 0)
        goto out;
    if (replay == 2) {
        r = VERR_REPLAY;
        goto out;
    }
    if (del_opk) {
        uint8_t key[5];
        pk_key(key, 'O', pm.init.opk_id);
        if ((r = cstore_del(m->st, CS_PREKEYS, key, 5)) != 0)
            goto out;
    }
    if (new_session) {
        uint8_t spk[4] = {(uint8_t)(pm.init.spk_id >> 24), (uint8_t)(pm.init.spk_id >> 16),
                          (uint8_t)(pm.init.spk_id >> 8), (uint8_t)pm.init.spk_id};
        if ((r = cstore_put(m->st, CS_SEEN, ek_key, sizeof(ek_key), spk, sizeof(spk))) != 0)
            goto out;
    }
    if (in.type == INNER_TYPE_MESSAGE) {
        uint64_t seq;
        uint8_t sq[8];
        /*
         * Sent by another device of this same person (a sender fans out to
         * its person's devices): kept as sent, in the outbox, not as an
         * unread incoming message (issue 12, item 10).
         */
        int own = sodium_memcmp(vc->person_id, m->self.person_id, PERSON_ID_LEN) == 0;
        if ((r = mb_next_seq(m, &seq)) != 0)
            goto out;
        if (own) {
            struct mb_outrec o = {MB_KIND_MESSAGE, 1, in.time, buf_data(&pt), buf_size(&pt)};
            r = mb_outrec_put(m, seq, &o);
        } else if ((r = cert_encode(vc, &cb)) == 0) {
            r = mb_inbox_put(m, seq, 0, s->now, buf_data(&cb), buf_size(&cb), buf_data(&pt),
                             buf_size(&pt));
            buf_free(&cb);
            /* its attachments are fetched after the messages (mbox_attach.h) */
            if (r == 0)
                r = mba_note_received(m, seq, e->peer, &in);
        }
        mb_be64(sq, seq);
        if (r != 0 || (r = cstore_put(m->st, CS_SEEN, seen_key, sizeof(seen_key), sq, 8)) != 0)
            goto out;
        /* An end-to-end delivery receipt goes back to the sending device. */
        if ((r = mb_queue_receipt(m, in.id, e->peer, INNER_RECEIPT_DELIVERED, s->now)) != 0)
            goto out;
        s->outbox_dirty = 1;
        if (own)
            s->st->from_own++;
        else
            s->st->received++;
        if (s->fresh != NULL && !own)
            s->fresh[s->nfresh++] = seq;
    } else {
        uint8_t zero[8] = {0};
        if ((r = sy_on_receipt(s, &in, e->peer)) != 0 ||
            (r = cstore_put(m->st, CS_SEEN, seen_key, sizeof(seen_key), zero, 8)) != 0)
            goto out;
    }
    r = 0;
out:
    if (have_pt)
        buf_free(&pt);
    sodium_free(secrets);
    mb_sessions_free(&ss);
    return r;
}

/*
 * Ends a DELIVER or NON_DELIVERY batch: with r != 0 nothing of it is kept;
 * otherwise it is made durable first and only then are its n ids
 * acknowledged, so the relay never deletes what the store does not hold
 * (issue 4).
 */
static int sy_commit_then_ack(struct sync *s, int r, uint8_t type, const uint8_t *ids, size_t n)
{
    struct buf ack;

    if (r != 0) {
        cstore_abort(s->m->st);
        return r;
    }
    /* Every DELIVER is answered, also with no id: the relay's flow control counts answers. */
    if ((r = cstore_commit(s->m->st)) != 0)
        return r;
    /* Durable now: `run` may say so (issue 12, item 8). */
    for (size_t i = 0; i < s->nfresh && s->o->event != NULL; i++) {
        struct mbox_msg msg;
        if (mb_inbox_msg(s->m, s->fresh[i], &msg) == 0)
            s->o->event(s->o->event_ctx, MBOX_EV_MESSAGE, &msg);
    }
    s->nfresh = 0;
    if (n == 0 && type != WIRE_DELIVER_ACK)
        return 0;
    if ((r = buf_init(&ack, 16 + n * WIRE_ID_LEN, 0)) != 0)
        return r;
    if ((r = wire_put_ids(&ack, type, ids, n)) == 0)
        r = sy_send(s, &ack);
    buf_free(&ack);
    return r;
}

static int sy_on_deliver(struct sync *s, const struct wire_msg *wm)
{
    struct wire_iter it;
    struct wire_envelope e;
    uint8_t *ids = NULL;
    size_t nack = 0;
    int r;

    if ((ids = malloc(wm->u.batch.n * WIRE_ID_LEN + 1)) == NULL)
        return VERR_NOMEM;
    if (s->o->event != NULL && (s->fresh = calloc(wm->u.batch.n + 1, sizeof(uint64_t))) == NULL) {
        free(ids);
        return VERR_NOMEM;
    }
    s->nfresh = 0;
    s->now = mb_now();
    if ((r = cstore_begin(s->m->st, 1)) != 0)
        goto out;
    wire_iter_init(&it, wm);
    for (size_t i = 0; i < wm->u.batch.n; i++) {
        if ((r = wire_next_envelope(&it, &e)) != 0)
            break;
        if (mb_dir_stale(s->m, s->now)) {
            /* Not decrypted, not acknowledged: the relay sends it again next time. */
            s->st->held++;
            continue;
        }
        r = sy_receive_one(s, &e);
        if (r == 0 || r == VERR_REPLAY) {
            memcpy(ids + nack * WIRE_ID_LEN, e.id, WIRE_ID_LEN);
            nack++;
            if (r == VERR_REPLAY)
                s->st->replayed++;
            r = 0;
        } else if (verr_is_system(r) || r == VERR_INTERNAL) {
            break; /* nothing of this batch is kept or acknowledged */
        } else {
            /* Refused (cannot be proven): not acknowledged; the relay keeps it until expiry. */
            sy_why_refused(s->st, e.peer, r);
            r = 0;
        }
    }
    /* The highest acknowledged id raises the mark with the rest of the batch. */
    if (r == 0 && nack > 0) {
        const uint8_t *hi = ids;

        for (size_t i = 1; i < nack; i++)
            if (memcmp(ids + i * WIRE_ID_LEN, hi, WIRE_ID_LEN) > 0)
                hi = ids + i * WIRE_ID_LEN;
        r = mb_mark_raise(s->m, 1, hi);
    }
    r = sy_commit_then_ack(s, r, WIRE_DELIVER_ACK, ids, nack);
out:
    free(ids);
    free(s->fresh);
    s->fresh = NULL;
    s->nfresh = 0;
    return r;
}

static int sy_on_nd(struct sync *s, const struct wire_msg *wm)
{
    struct wire_iter it;
    struct wire_nd nd;
    uint8_t *ids = NULL;
    size_t n = 0;
    int r;

    if ((ids = malloc(wm->u.batch.n * WIRE_ID_LEN + 1)) == NULL)
        return VERR_NOMEM;
    if ((r = cstore_begin(s->m->st, 1)) != 0)
        goto out;
    wire_iter_init(&it, wm);
    for (size_t i = 0; i < wm->u.batch.n && r == 0; i++) {
        struct mb_find f;
        if ((r = wire_next_nd(&it, &nd)) != 0)
            break;
        memset(&f, 0, sizeof(f));
        f.env_id = nd.id;
        if ((r = cstore_each(s->m->st, CS_ENVELOPES, each_find_envelope, &f)) < 0)
            break;
        r = 0;
        if (f.found && memcmp(f.key + 8, nd.recipient, DEVICE_ID_LEN) == 0) {
            r = mb_env_advance(s->m, f.key, MBOX_ENV_EXPIRED, nd.reason);
            s->st->expired++;
        }
        memcpy(ids + n * WIRE_ID_LEN, nd.id, WIRE_ID_LEN);
        n++;
    }
    r = sy_commit_then_ack(s, r, WIRE_NON_DELIVERY_ACK, ids, n);
out:
    free(ids);
    return r;
}

static int sy_run_deferred(struct sync *s)
{
    int r = 0;

    for (size_t i = 0; i < s->ndeferred; i++) {
        struct wire_msg wm;
        if (r == 0 && wire_decode(buf_data(&s->deferred[i]), buf_size(&s->deferred[i]), &wm) == 0)
            r = wm.type == WIRE_DELIVER ? sy_on_deliver(s, &wm) : sy_on_nd(s, &wm);
        buf_free(&s->deferred[i]);
    }
    s->ndeferred = 0;
    s->deferred_bytes = 0;
    return r;
}

static int sy_outbox(struct sync *s)
{
    int r;

    s->now = mb_now();
    s->outbox_dirty = 0;
    /*
     * An expired directory fixes no recipient set and encrypts to no device;
     * what was encrypted while it was fresh still goes to the relay.
     */
    if (!mb_dir_stale(s->m, s->now) && ((r = sy_resolve(s)) != 0 || (r = sy_encrypt_all(s)) != 0))
        return r;
    if ((r = sy_submit_all(s)) != 0)
        return r;
    return 0;
}

/* ---- attachments (mbox_attach.h) ---- */

static int sy_att_send(void *ctx, const struct buf *msg)
{
    return sy_send(ctx, msg);
}

/*
 * The next ATTACH_* message. What the relay pushed meanwhile (a FLASH between
 * two chunks: relay part 2 "Attachments") is stored and acknowledged now, not
 * after the attachment: an attachment step holds no session that a DELIVER
 * could advance, and a message must never wait for a download (issue 13).
 */
static int sy_att_recv(void *ctx, struct buf *raw, struct wire_msg *wm)
{
    struct sync *s = ctx;
    int r = sy_wait(s, MB_WANT_ATTACH, raw, wm, s->o->timeout_ms);

    if (r == 0 && s->ndeferred > 0 && s->dir_ready && (r = sy_run_deferred(s)) != 0)
        buf_free(raw);
    return r == VERR_DENIED ? sy_reason_err(s->last_reason) : r;
}

/* Between pieces: what the relay pushed meanwhile, then newly queued envelopes first. */
static int sy_att_between(void *ctx)
{
    struct sync *s = ctx;
    uint64_t seq = 0;
    int r;

    if ((r = sy_run_deferred(s)) != 0 || (r = mb_cfg_get_u64(s->m, "seq", &seq)) != 0)
        return r;
    if (s->outbox_dirty || seq != s->att_seq) {
        s->att_seq = seq;
        return sy_outbox(s);
    }
    return 0;
}

static int sy_attachments(struct sync *s, int *moved)
{
    struct mba_stats as;
    int r;

    memset(&as, 0, sizeof(as));
    s->att.ctx = s;
    s->att.send = sy_att_send;
    s->att.recv = sy_att_recv;
    s->att.between = sy_att_between;
    s->att.progress = s->o->att_progress;
    s->att.pctx = s->o->att_progress_ctx;
    s->att.stop = s->o->stop;
    if ((r = mb_cfg_get_u64(s->m, "seq", &s->att_seq)) != 0)
        return r;
    r = mba_sync(s->m, &s->att, &as, moved);
    s->st->att_uploaded += as.uploaded;
    s->st->att_downloaded += as.downloaded;
    s->st->att_up_pending = as.up_pending;
    s->st->att_down_waiting = as.down_waiting;
    s->st->att_refused += as.refused;
    if (as.refused > 0)
        s->st->att_refused_reason = as.refused_reason;
    s->st->att_bad_chunks += as.bad_chunks;
    s->st->att_lost += as.lost;
    s->st->att_gone += as.gone;
    return r;
}

int mbox_sync(struct mbox *m, const struct mbox_sync_opts *o, struct mbox_sync_stats *st)
{
    struct sync s;
    uint64_t relay_dir = 0, up = 0, seq0 = 0, seq1 = 0, refreshed = mb_now();
    int r;

    memset(st, 0, sizeof(*st));
    if (!m->enrolled)
        return VERR_USAGE;
    memset(&s, 0, sizeof(s));
    s.m = m;
    s.o = o;
    s.st = st;
    s.now = mb_now();
    s.submit_bytes = MB_SUBMIT_START;
    s.piece_bytes = MB_PIECE_START;
    /* What an interrupted run left in HOME/attach (mbox_attach.h), before connecting. */
    if ((r = mba_sweep(m, &st->att_swept)) != 0)
        return r;
    if ((r = ctp_connect_stop(&s.c, m->relay, m->ca[0] != 0 ? m->ca : NULL, o->timeout_ms,
                              o->stop)) != 0)
        return r;
    if ((r = sy_auth(&s, &relay_dir)) != 0)
        goto out;
    st->connected = 1;
    if ((r = sy_directory(&s, relay_dir)) != 0)
        goto out;
    if (m->dir == NULL) {
        r = VERR_UNKNOWN; /* the relay has no directory to give */
        goto out;
    }
    st->dir_version = dir_version(m->dir);
    s.dir_ready = 1;
    if (o->event != NULL)
        o->event(o->event_ctx, MBOX_EV_CONNECTED, NULL);
    if ((r = sy_run_deferred(&s)) != 0)
        goto out;
    if ((r = mb_cfg_get_u64(m, "pk.up", &up)) != 0)
        goto out;
    if (up == 0 && (r = sy_prekeys(&s, 1)) != 0)
        goto out;
    for (;;) {
        struct buf raw;
        struct wire_msg wm;

        if (o->alive != NULL)
            o->alive(o->alive_ctx);
        if ((r = mb_cfg_get_u64(m, "seq", &seq0)) != 0 || (r = sy_outbox(&s)) != 0)
            goto out;
        if (s.need_prekeys && (r = sy_prekeys(&s, 0)) != 0)
            goto out;
        if ((r = sy_run_deferred(&s)) != 0)
            goto out;
        /*
         * Take what the relay pushes until it says its queue is empty
         * (QUEUE_EMPTY, PROTOCOL.md part 2 "Flow control"), not until a quiet
         * period: a slow link is not an empty queue. `run` looks at the
         * outbox every quiet_ms meanwhile.
         */
        for (;;) {
            if (o->stop != NULL && *o->stop)
                break;
            if (!o->stay && s.queue_empty)
                break;
            r = sy_wait(&s, 0, &raw, &wm, o->stay ? o->quiet_ms : o->timeout_ms);
            if (r == VERR_TIMEOUT && o->stay)
                break;
            if (r != 0)
                goto out;
            if (s.outbox_dirty || s.need_prekeys)
                break;
        }
        if (o->stop != NULL && *o->stop)
            break;
        if (s.outbox_dirty || s.need_prekeys)
            continue;
        /* The messages went both ways: now their attachments (mbox_attach.h). */
        {
            int moved = 0;
            if ((r = sy_attachments(&s, &moved)) != 0)
                goto out;
            /*
             * A chunk that did not open was not acknowledged: the relay's
             * window for this connection stays full, so end it (not
             * complete); the next connection goes on without that download.
             */
            if (st->att_bad_chunks > 0)
                break;
            if (moved || s.outbox_dirty || (!o->stay && !s.queue_empty))
                continue;
        }
        if ((r = mb_cfg_get_u64(m, "seq", &seq1)) != 0)
            goto out;
        if (seq1 != seq0)
            continue; /* `valise send` or `read` queued something meanwhile */
        if (!o->stay) {
            st->complete = 1;
            break;
        }
        /*
         * `run`: the relay does not push directories, so ask again now and
         * then; and give devices that had no prekeys another chance.
         */
        if (mb_now() - refreshed >= MB_REFRESH_SECS) {
            refreshed = mb_now();
            s.ntried = 0;
            if ((r = sy_directory(&s, UINT64_MAX)) != 0)
                goto out;
            st->dir_version = dir_version(m->dir);
            /* The relay sends held envelopes again only on a new connection. */
            if (st->held > 0 && !mb_dir_stale(m, mb_now()))
                break;
        }
    }
    /* Make sure the last acknowledgements are on the wire before closing. */
    r = ctp_flush(s.c, o->timeout_ms);
out:
    for (size_t i = 0; i < s.ndeferred; i++)
        buf_free(&s.deferred[i]);
    if (r == VERR_DENIED)
        st->relay_reason = s.last_reason;
    ctp_close(s.c);
    return r;
}

