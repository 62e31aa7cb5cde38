/* Peer-channel framing: a 4-byte big-endian length, then one protobuf
 * ricochet.PeerFrame. The incremental decoder takes bytes in any split,
 * checks the announced length against the limit BEFORE allocating, and
 * reports distinct errors for each kind of bad input. */
#ifndef RC_FRAME_H
#define RC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "proto/ricochet.pb-c.h"

enum rc_frame_err {
    RC_FRAME_OK = 0,
    RC_FRAME_MORE = 1,           /* need more bytes */
    RC_FRAME_EZERO = -2101,      /* zero-length frame */
    RC_FRAME_ETOOBIG = -2102,    /* announced length over the limit */
    RC_FRAME_EDECODE = -2103,    /* not a PeerFrame */
    RC_FRAME_EEMPTY = -2104,     /* a PeerFrame with no kind set */
    RC_FRAME_ENOMEM = -2105,
};
const char *rc_frame_strerror(int err);

struct rc_frame_decoder {
    size_t max_frame;
    uint8_t hdr[4];
    size_t hdr_len;
    uint8_t *body;
    size_t body_len, body_have;
    int error; /* sticky */
};

void rc_frame_decoder_init(struct rc_frame_decoder *d, size_t max_frame);
void rc_frame_decoder_free(struct rc_frame_decoder *d);
/* Consumes bytes from *buf (advancing *buf and *len). Returns RC_FRAME_OK
 * with *frame set (free with ricochet__peer_frame__free_unpacked) when a
 * frame is complete, RC_FRAME_MORE when all bytes were consumed without a
 * complete frame, or a negative error (sticky: the stream is unusable). */
int rc_frame_decode(struct rc_frame_decoder *d, const uint8_t **buf, size_t *len,
                    Ricochet__PeerFrame **frame);

/* Encodes a frame with its length prefix into a malloc'd buffer. */
int rc_frame_encode(const Ricochet__PeerFrame *frame, size_t max_frame, uint8_t **out, size_t *len);

#endif
