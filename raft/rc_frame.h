/* Peer-channel framing: a 4-byte big-endian length, then one protobuf
 * ricochet.PeerFrame (proto/ricochet.proto). Wire format: docs/PEER.md.
 *
 * The incremental decoder takes bytes in any split. It checks the announced
 * length against its limit BEFORE allocating anything, grows its buffer only
 * as bytes actually arrive, and reports a distinct error for each kind of bad
 * input. Errors are sticky: after one, the stream is unusable. */
#ifndef RC_FRAME_H
#define RC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/ricochet.pb-c.h"

#define RC_FRAME_HEADER 4
/* Largest frame the length prefix can announce. */
#define RC_FRAME_MAX_LIMIT ((size_t)UINT32_MAX)

enum rc_frame_err {
    RC_FRAME_OK = 0,
    RC_FRAME_MORE = 1,           /* all input consumed, no complete frame yet */
    RC_FRAME_EZERO = -2101,      /* length prefix 0 */
    RC_FRAME_ETOOBIG = -2102,    /* announced length over the limit */
    RC_FRAME_EDECODE = -2103,    /* body is not a PeerFrame */
    RC_FRAME_EEMPTY = -2104,     /* a PeerFrame with no kind set */
    RC_FRAME_ENOMEM = -2105,
    RC_FRAME_ETRUNC = -2106,     /* the stream ended inside a frame */
    RC_FRAME_EINVAL = -2107,     /* bad argument */
};
const char *rc_frame_strerror(int err);

/* ------------------------------------------------ bounds-checked cursor */

/* A read cursor over a byte range (STYLE.md §9). Every read past the end
 * sets the sticky err, returns 0/NULL and leaves the cursor where it was;
 * one check of err after a sequence of reads covers all of them. */
struct rc_cur {
    const uint8_t *p;
    size_t left;
    int err; /* 0, or RC_FRAME_ETRUNC after an overrun */
};

void rc_cur_init(struct rc_cur *c, const uint8_t *p, size_t len);
uint32_t rc_cur_u32be(struct rc_cur *c);
/* n bytes in place, or NULL (err set) when fewer are left. */
const uint8_t *rc_cur_bytes(struct rc_cur *c, size_t n);
/* Copies min(n, left) bytes to dst; never an error. Returns the count. */
size_t rc_cur_copy_upto(struct rc_cur *c, uint8_t *dst, size_t n);

/* ------------------------------------------------------------- decoder */

struct rc_frame_decoder {
    size_t max_frame;
    ProtobufCAllocator *alloc; /* NULL: malloc/free */
    uint8_t hdr[RC_FRAME_HEADER];
    size_t hdr_len;
    uint8_t *body;             /* partial body, grown as bytes arrive */
    size_t body_len, body_have, body_cap;
    int error;                 /* sticky */
};

/* max_frame: largest body accepted (1..RC_FRAME_MAX_LIMIT). alloc: used for
 * the body buffer and for the decoded frame; NULL means malloc. */
void rc_frame_decoder_init(struct rc_frame_decoder *d, size_t max_frame, ProtobufCAllocator *alloc);
/* Changes the limit for frames whose length prefix is not read yet (the
 * peer channel raises it after authentication). */
void rc_frame_decoder_set_max(struct rc_frame_decoder *d, size_t max_frame);
void rc_frame_decoder_free(struct rc_frame_decoder *d);

/* Consumes bytes from *buf (advancing *buf and decreasing *len). Returns
 * RC_FRAME_OK with *frame set (free it with rc_frame_free) as soon as one
 * frame is complete, leaving the rest of the input unconsumed; RC_FRAME_MORE
 * when every byte was consumed without completing a frame; or a negative
 * rc_frame_err (sticky). */
int rc_frame_decode(struct rc_frame_decoder *d, const uint8_t **buf, size_t *len,
                    Ricochet__PeerFrame **frame);
/* The stream ended: RC_FRAME_ETRUNC if it ended inside a frame, the sticky
 * error if there was one, RC_FRAME_OK at a frame boundary. */
int rc_frame_decoder_finish(const struct rc_frame_decoder *d);
/* True when the decoder holds part of a frame. */
bool rc_frame_decoder_partial(const struct rc_frame_decoder *d);
void rc_frame_free(const struct rc_frame_decoder *d, Ricochet__PeerFrame *frame);

/* ------------------------------------------------------------- encoder */

/* Encodes frame with its length prefix into a malloc'd buffer (*len
 * includes the 4 header bytes). RC_FRAME_EEMPTY when no kind is set,
 * RC_FRAME_ETOOBIG when the body would exceed max_frame. */
int rc_frame_encode(const Ricochet__PeerFrame *frame, size_t max_frame, uint8_t **out, size_t *len);

#endif
