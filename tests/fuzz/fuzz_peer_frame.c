/* Feeds arbitrary bytes through the incremental peer-frame decoder in
 * random splits (a small PRNG seeded from the input's first bytes picks the
 * piece sizes), twice: with the pre-authentication limit (1 KiB) and with a
 * large one. Every decoded frame is re-encoded and decoded again, and the
 * end of the stream is reported through rc_frame_decoder_finish.
 *
 * The second decode may fail: protobuf-c keeps unknown fields verbatim,
 * including non-canonical tags (e.g. field 0 written as 0x80 0x00) that it
 * re-packs in a form it then refuses. Refusing is fine; crashing, leaking or
 * reading out of bounds is not. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raft/rc_frame.h"

static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void reencode(const Ricochet__PeerFrame *f, size_t max)
{
    uint8_t *enc;
    size_t enc_len;
    if (rc_frame_encode(f, max, &enc, &enc_len) != RC_FRAME_OK)
        return;
    struct rc_frame_decoder d2;
    rc_frame_decoder_init(&d2, max, NULL);
    const uint8_t *q = enc;
    size_t ql = enc_len;
    Ricochet__PeerFrame *g = NULL;
    if (rc_frame_decode(&d2, &q, &ql, &g) == RC_FRAME_OK) {
        if (g->kind_case != f->kind_case)
            abort();
        rc_frame_free(&d2, g);
    }
    rc_frame_decoder_free(&d2);
    free(enc);
}

static void run(const uint8_t *data, size_t size, uint32_t seed, size_t max)
{
    struct rc_frame_decoder d;
    rc_frame_decoder_init(&d, max, NULL);
    size_t off = 0;
    int rv = RC_FRAME_MORE;
    while (off < size) {
        size_t step = next_rand(&seed) % 64 + 1;
        size_t n = size - off < step ? size - off : step;
        const uint8_t *p = data + off;
        size_t len = n;
        while (len > 0) {
            Ricochet__PeerFrame *f = NULL;
            rv = rc_frame_decode(&d, &p, &len, &f);
            if (rv == RC_FRAME_MORE)
                break;
            if (rv < 0)
                goto out;
            if (f == NULL || f->kind_case == RICOCHET__PEER_FRAME__KIND__NOT_SET)
                abort();
            reencode(f, max);
            rc_frame_free(&d, f);
        }
        off += n;
    }
    rv = rc_frame_decoder_finish(&d);
    if (rv != RC_FRAME_OK && rv != RC_FRAME_ETRUNC)
        abort();
out:
    rc_frame_decoder_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t seed = (uint32_t)data[0] << 8 | data[1] | 1u;
    data += 2;
    size -= 2;
    run(data, size, seed, 1024);
    run(data, size, seed * 2654435761u | 1u, (size_t)1 << 20);
    return 0;
}
