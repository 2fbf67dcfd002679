/* fuzz_wire.c - libFuzzer harness for every relay protocol message (lib/wire.h). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wire_msg m;
    struct wire_iter it;
    struct buf out;
    size_t off = 0, n = 0;

    if (wire_decode(data, size, &m) != 0)
        return 0;
    if (buf_init(&out, size + 64, 0) != 0)
        return 0;
    wire_iter_init(&it, &m);
    switch (m.type) {
    case WIRE_SUBMIT:
    case WIRE_DELIVER:
        /* a decoded batch iterates without error and re-encodes to the same bytes */
        if (wire_batch_begin(&out, m.type, &off) != 0)
            abort();
        for (size_t i = 0; i < m.u.batch.n; i++) {
            struct wire_envelope e;
            if (wire_next_envelope(&it, &e) != 0 || wire_put_envelope(&out, &e) != 0)
                abort();
            n++;
        }
        if (wire_batch_end(&out, off, n) != 0 || buf_size(&out) != size ||
            memcmp(buf_data(&out), data, size) != 0)
            abort();
        break;
    case WIRE_SUBMIT_ACK:
        for (size_t i = 0; i < m.u.batch.n; i++) {
            struct wire_ack a;
            if (wire_next_ack(&it, &a) != 0)
                abort();
        }
        break;
    case WIRE_NON_DELIVERY:
        for (size_t i = 0; i < m.u.batch.n; i++) {
            struct wire_nd nd;
            if (wire_next_nd(&it, &nd) != 0)
                abort();
        }
        break;
    case WIRE_DELIVER_ACK:
    case WIRE_NON_DELIVERY_ACK:
        for (size_t i = 0; i < m.u.batch.n; i++) {
            uint8_t id[WIRE_ID_LEN];
            if (wire_next_id(&it, id) != 0)
                abort();
        }
        break;
    case WIRE_PREKEY_UPLOAD:
        for (size_t i = 0; i < m.u.prekey_upload.n_otk; i++) {
            uint32_t id;
            uint8_t pk[WIRE_PK_LEN];
            if (wire_next_otk(&it, &id, pk) != 0)
                abort();
        }
        break;
    case WIRE_ATTACH_OPEN:
    case WIRE_ATTACH_STATE:
    case WIRE_ATTACH_PUT:
    case WIRE_ATTACH_PUT_ACK:
    case WIRE_ATTACH_GET:
    case WIRE_ATTACH_CHUNK:
    case WIRE_ATTACH_CHUNK_ACK:
    case WIRE_ATTACH_DONE:
        /* a decoded attachment message re-encodes to the same bytes */
        if (wire_put_attach(&out, m.type, &m.u.attach) != 0 || buf_size(&out) != size ||
            memcmp(buf_data(&out), data, size) != 0)
            abort();
        break;
    case WIRE_DIRECTORY_DELTA_GET:
    case WIRE_DIRECTORY_CURRENT:
    case WIRE_DIRECTORY_PIECE_GET:
    case WIRE_DIRECTORY_PIECE: {
        /* directory transfer (PROTOCOL.md part 2): re-encodes to the same bytes */
        int r = m.type == WIRE_DIRECTORY_DELTA_GET
                    ? wire_put_dir_delta_get(&out, m.u.dir_piece.version)
                : m.type == WIRE_DIRECTORY_CURRENT
                    ? wire_put_dir_current(&out, m.u.dir_piece.version, m.u.dir_piece.total)
                : m.type == WIRE_DIRECTORY_PIECE_GET
                    ? wire_put_dir_piece_get(&out, m.u.dir_piece.version, m.u.dir_piece.offset,
                                             (uint32_t)m.u.dir_piece.len)
                    : wire_put_dir_piece(&out, m.u.dir_piece.version, m.u.dir_piece.total,
                                         m.u.dir_piece.offset, m.u.dir_piece.bytes,
                                         m.u.dir_piece.len);
        if (r != 0 || buf_size(&out) != size || memcmp(buf_data(&out), data, size) != 0)
            abort();
        break;
    }
    default:
        break;
    }
    buf_free(&out);
    return 0;
}
