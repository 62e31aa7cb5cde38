/* Feeds arbitrary bytes through the peer-frame decoder in splits chosen by
 * the input itself; every decoded frame is re-encoded and decoded again.
 * The second decode may fail: protobuf-c keeps unknown fields verbatim,
 * including non-canonical tags (e.g. field 0 written as 0x80 0x00) that it
 * re-packs in a form it then refuses. Refusing is fine; crashing is not. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raft/rc_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    data++;
    size--;
    struct rc_frame_decoder d;
    rc_frame_decoder_init(&d, 1u << 16);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < step ? size - off : step;
        const uint8_t *p = data + off;
        size_t len = n;
        while (len > 0) {
            Ricochet__PeerFrame *f = NULL;
            int rv = rc_frame_decode(&d, &p, &len, &f);
            if (rv == RC_FRAME_MORE)
                break;
            if (rv < 0)
                goto out;
            uint8_t *enc;
            size_t enc_len;
            if (rc_frame_encode(f, 1u << 16, &enc, &enc_len) == RC_FRAME_OK) {
                struct rc_frame_decoder d2;
                rc_frame_decoder_init(&d2, 1u << 16);
                const uint8_t *q = enc;
                size_t ql = enc_len;
                Ricochet__PeerFrame *g = NULL;
                if (rc_frame_decode(&d2, &q, &ql, &g) == RC_FRAME_OK)
                    ricochet__peer_frame__free_unpacked(g, NULL);
                rc_frame_decoder_free(&d2);
                free(enc);
            }
            ricochet__peer_frame__free_unpacked(f, NULL);
        }
        off += n;
    }
out:
    rc_frame_decoder_free(&d);
    return 0;
}
