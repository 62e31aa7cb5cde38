#include "raft/rc_frame.h"

#include <stdlib.h>
#include <string.h>

const char *rc_frame_strerror(int err)
{
    switch (err) {
    case RC_FRAME_OK: return "ok";
    case RC_FRAME_MORE: return "incomplete frame";
    case RC_FRAME_EZERO: return "zero-length frame";
    case RC_FRAME_ETOOBIG: return "frame larger than the limit";
    case RC_FRAME_EDECODE: return "undecodable frame";
    case RC_FRAME_EEMPTY: return "frame without content";
    case RC_FRAME_ENOMEM: return "out of memory";
    }
    return "unknown error";
}

void rc_frame_decoder_init(struct rc_frame_decoder *d, size_t max_frame)
{
    memset(d, 0, sizeof *d);
    d->max_frame = max_frame;
}

void rc_frame_decoder_free(struct rc_frame_decoder *d)
{
    free(d->body);
    d->body = NULL;
}

int rc_frame_decode(struct rc_frame_decoder *d, const uint8_t **buf, size_t *len,
                    Ricochet__PeerFrame **frame)
{
    if (d->error)
        return d->error;
    while (d->hdr_len < 4) {
        if (*len == 0)
            return RC_FRAME_MORE;
        d->hdr[d->hdr_len++] = **buf;
        (*buf)++;
        (*len)--;
        if (d->hdr_len == 4) {
            size_t n = (size_t)d->hdr[0] << 24 | (size_t)d->hdr[1] << 16 | (size_t)d->hdr[2] << 8 | d->hdr[3];
            if (n == 0)
                return d->error = RC_FRAME_EZERO;
            if (n > d->max_frame)
                return d->error = RC_FRAME_ETOOBIG;
            d->body = malloc(n);
            if (d->body == NULL)
                return d->error = RC_FRAME_ENOMEM;
            d->body_len = n;
            d->body_have = 0;
        }
    }
    size_t take = d->body_len - d->body_have;
    if (take > *len)
        take = *len;
    memcpy(d->body + d->body_have, *buf, take);
    d->body_have += take;
    *buf += take;
    *len -= take;
    if (d->body_have < d->body_len)
        return RC_FRAME_MORE;

    Ricochet__PeerFrame *f = ricochet__peer_frame__unpack(NULL, d->body_len, d->body);
    free(d->body);
    d->body = NULL;
    d->hdr_len = 0;
    if (f == NULL)
        return d->error = RC_FRAME_EDECODE;
    if (f->kind_case == RICOCHET__PEER_FRAME__KIND__NOT_SET) {
        ricochet__peer_frame__free_unpacked(f, NULL);
        return d->error = RC_FRAME_EEMPTY;
    }
    *frame = f;
    return RC_FRAME_OK;
}

int rc_frame_encode(const Ricochet__PeerFrame *frame, size_t max_frame, uint8_t **out, size_t *len)
{
    size_t n = ricochet__peer_frame__get_packed_size(frame);
    if (n == 0)
        return RC_FRAME_EEMPTY;
    if (n > max_frame || n > UINT32_MAX)
        return RC_FRAME_ETOOBIG;
    uint8_t *b = malloc(n + 4);
    if (b == NULL)
        return RC_FRAME_ENOMEM;
    b[0] = (uint8_t)(n >> 24);
    b[1] = (uint8_t)(n >> 16);
    b[2] = (uint8_t)(n >> 8);
    b[3] = (uint8_t)n;
    ricochet__peer_frame__pack(frame, b + 4);
    *out = b;
    *len = n + 4;
    return RC_FRAME_OK;
}
