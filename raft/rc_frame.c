/* Peer-frame codec; see rc_frame.h.
 *
 * Happy path: 4 header bytes (possibly over several calls) give the body
 * length; when the whole body is already in the caller's buffer it is
 * unpacked in place, otherwise it is collected in a buffer that grows only
 * as bytes arrive (an announced 32 MiB frame whose sender stops after 10
 * bytes costs 64 KiB, not 32 MiB).
 *
 * Failure modes: length 0 (EZERO), length over the limit (ETOOBIG, decided
 * from the header alone, before any allocation), a body protobuf-c refuses
 * (EDECODE), a PeerFrame with no kind (EEMPTY), the stream ending inside a
 * frame (ETRUNC, from rc_frame_decoder_finish). */
#include "raft/rc_frame.h"

#include <stdlib.h>
#include <string.h>

#define FIRST_CHUNK ((size_t)64 * 1024)

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
    case RC_FRAME_ETRUNC: return "truncated frame";
    case RC_FRAME_EINVAL: return "invalid argument";
    }
    return "unknown error";
}

/* ------------------------------------------------------------- cursor */

void rc_cur_init(struct rc_cur *c, const uint8_t *p, size_t len)
{
    c->p = p;
    c->left = len;
    c->err = 0;
}

const uint8_t *rc_cur_bytes(struct rc_cur *c, size_t n)
{
    if (c->err || n > c->left) {
        c->err = RC_FRAME_ETRUNC;
        return NULL;
    }
    const uint8_t *p = c->p;
    c->p += n;
    c->left -= n;
    return p;
}

uint32_t rc_cur_u32be(struct rc_cur *c)
{
    const uint8_t *b = rc_cur_bytes(c, 4);
    if (b == NULL)
        return 0;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

size_t rc_cur_copy_upto(struct rc_cur *c, uint8_t *dst, size_t n)
{
    if (c->err)
        return 0;
    if (n > c->left)
        n = c->left;
    if (n > 0)
        memcpy(dst, c->p, n);
    c->p += n;
    c->left -= n;
    return n;
}

/* ------------------------------------------------------------ decoder */

static void *dec_alloc(struct rc_frame_decoder *d, size_t n)
{
    return d->alloc ? d->alloc->alloc(d->alloc->allocator_data, n) : malloc(n);
}

static void dec_free(struct rc_frame_decoder *d, void *p)
{
    if (p == NULL)
        return;
    if (d->alloc)
        d->alloc->free(d->alloc->allocator_data, p);
    else
        free(p);
}

void rc_frame_decoder_init(struct rc_frame_decoder *d, size_t max_frame, ProtobufCAllocator *alloc)
{
    memset(d, 0, sizeof *d);
    d->alloc = alloc;
    rc_frame_decoder_set_max(d, max_frame);
}

void rc_frame_decoder_set_max(struct rc_frame_decoder *d, size_t max_frame)
{
    d->max_frame = max_frame > RC_FRAME_MAX_LIMIT ? RC_FRAME_MAX_LIMIT : max_frame;
}

void rc_frame_decoder_free(struct rc_frame_decoder *d)
{
    dec_free(d, d->body);
    d->body = NULL;
    d->body_cap = d->body_have = d->body_len = 0;
    d->hdr_len = 0;
}

void rc_frame_free(const struct rc_frame_decoder *d, Ricochet__PeerFrame *frame)
{
    if (frame)
        ricochet__peer_frame__free_unpacked(frame, d->alloc);
}

bool rc_frame_decoder_partial(const struct rc_frame_decoder *d)
{
    return d->hdr_len > 0;
}

int rc_frame_decoder_finish(const struct rc_frame_decoder *d)
{
    if (d->error)
        return d->error;
    return d->hdr_len > 0 ? RC_FRAME_ETRUNC : RC_FRAME_OK;
}

static int fail(struct rc_frame_decoder *d, int err)
{
    rc_frame_decoder_free(d);
    d->error = err;
    return err;
}

/* Unpacks one complete body and checks that a kind is set. */
static int unpack(struct rc_frame_decoder *d, const uint8_t *body, size_t len, Ricochet__PeerFrame **frame)
{
    Ricochet__PeerFrame *f = ricochet__peer_frame__unpack(d->alloc, len, body);
    if (f == NULL)
        return RC_FRAME_EDECODE;
    if (f->kind_case == RICOCHET__PEER_FRAME__KIND__NOT_SET) {
        ricochet__peer_frame__free_unpacked(f, d->alloc);
        return RC_FRAME_EEMPTY;
    }
    *frame = f;
    return RC_FRAME_OK;
}

/* Makes room for `need` body bytes, doubling up to the announced length. */
static int reserve(struct rc_frame_decoder *d, size_t need)
{
    if (need <= d->body_cap)
        return RC_FRAME_OK;
    size_t cap = d->body_cap ? d->body_cap : FIRST_CHUNK;
    while (cap < need)
        cap = cap > d->body_len / 2 ? d->body_len : cap * 2;
    if (cap > d->body_len)
        cap = d->body_len;
    uint8_t *b = dec_alloc(d, cap);
    if (b == NULL)
        return RC_FRAME_ENOMEM;
    if (d->body_have)
        memcpy(b, d->body, d->body_have);
    dec_free(d, d->body);
    d->body = b;
    d->body_cap = cap;
    return RC_FRAME_OK;
}

int rc_frame_decode(struct rc_frame_decoder *d, const uint8_t **buf, size_t *len,
                    Ricochet__PeerFrame **frame)
{
    if (d->error)
        return d->error;
    if (buf == NULL || len == NULL || frame == NULL || (*buf == NULL && *len > 0))
        return RC_FRAME_EINVAL;
    *frame = NULL;
    struct rc_cur in;
    rc_cur_init(&in, *buf, *len);
    int rv = RC_FRAME_MORE;

    if (d->hdr_len < RC_FRAME_HEADER) {
        d->hdr_len += rc_cur_copy_upto(&in, d->hdr + d->hdr_len, RC_FRAME_HEADER - d->hdr_len);
        if (d->hdr_len < RC_FRAME_HEADER)
            goto out;
        struct rc_cur h;
        rc_cur_init(&h, d->hdr, RC_FRAME_HEADER);
        uint32_t n = rc_cur_u32be(&h);
        if (n == 0)
            return fail(d, RC_FRAME_EZERO);
        if (n > d->max_frame)
            return fail(d, RC_FRAME_ETOOBIG);
        d->body_len = n;
        d->body_have = 0;
    }

    if (d->body_have == 0 && in.left >= d->body_len) {
        /* the whole body is here: unpack in place, no copy */
        const uint8_t *body = rc_cur_bytes(&in, d->body_len);
        rv = unpack(d, body, d->body_len, frame);
        d->hdr_len = 0;
        d->body_len = 0;
        if (rv != RC_FRAME_OK)
            return fail(d, rv);
        goto out;
    }

    size_t want = d->body_len - d->body_have;
    size_t take = want < in.left ? want : in.left;
    if (take > 0) {
        if ((rv = reserve(d, d->body_have + take)) != RC_FRAME_OK)
            return fail(d, rv);
        d->body_have += rc_cur_copy_upto(&in, d->body + d->body_have, take);
    }
    rv = RC_FRAME_MORE;
    if (d->body_have == d->body_len) {
        rv = unpack(d, d->body, d->body_len, frame);
        dec_free(d, d->body);
        d->body = NULL;
        d->body_cap = d->body_have = d->body_len = 0;
        d->hdr_len = 0;
        if (rv != RC_FRAME_OK)
            return fail(d, rv);
    }
out:
    *buf = in.p;
    *len = in.left;
    return rv;
}

/* ------------------------------------------------------------ encoder */

int rc_frame_encode(const Ricochet__PeerFrame *frame, size_t max_frame, uint8_t **out, size_t *len)
{
    if (frame == NULL || out == NULL || len == NULL)
        return RC_FRAME_EINVAL;
    if (frame->kind_case == RICOCHET__PEER_FRAME__KIND__NOT_SET)
        return RC_FRAME_EEMPTY;
    size_t n = ricochet__peer_frame__get_packed_size(frame);
    if (n == 0)
        return RC_FRAME_EEMPTY;
    if (n > max_frame || n > RC_FRAME_MAX_LIMIT)
        return RC_FRAME_ETOOBIG;
    uint8_t *b = malloc(n + RC_FRAME_HEADER);
    if (b == NULL)
        return RC_FRAME_ENOMEM;
    b[0] = (uint8_t)(n >> 24);
    b[1] = (uint8_t)(n >> 16);
    b[2] = (uint8_t)(n >> 8);
    b[3] = (uint8_t)n;
    if (ricochet__peer_frame__pack(frame, b + RC_FRAME_HEADER) != n) {
        free(b);
        return RC_FRAME_EINVAL;
    }
    *out = b;
    *len = n + RC_FRAME_HEADER;
    return RC_FRAME_OK;
}
