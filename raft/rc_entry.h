/* Framing of raft log entries and snapshots.
 *
 * libraft 0.15 silently corrupts entries whose length is not a multiple of 8
 * bytes (found by probing: unpadded entries were lost after a whole-cluster
 * restart). Every buffer we hand to libraft therefore has this layout:
 *
 *   0      4      8                8+len          padded to 8
 *   | magic | len  | payload (len)  | zero padding |
 *
 * magic is "RCE1" for log entries and "RCS1" for snapshots; len is the real
 * payload length, big-endian. */
#ifndef RC_ENTRY_H
#define RC_ENTRY_H

#include <stddef.h>
#include <stdint.h>

struct raft_buffer;

enum rc_entry_kind { RC_ENTRY_LOG = 0, RC_ENTRY_SNAPSHOT = 1 };

enum rc_entry_err {
    RC_ENTRY_OK = 0,
    RC_ENTRY_ENOMEM = -1,
    RC_ENTRY_ESHORT = -2,   /* shorter than the header */
    RC_ENTRY_EMAGIC = -3,   /* not one of ours, or the wrong kind */
    RC_ENTRY_ELENGTH = -4,  /* announced length does not fit the buffer */
    RC_ENTRY_EPADDING = -5, /* buffer not a multiple of 8, or padding not zero */
};

#define RC_ENTRY_HEADER 8u

/* Size of the padded buffer for a payload of len bytes. */
size_t rc_entry_padded_size(size_t len);

/* Allocates (raft_malloc) a padded buffer holding payload; on success the
 * caller owns out->base (libraft takes it over in raft_apply). */
int rc_entry_wrap(int kind, const void *payload, size_t len, struct raft_buffer *out);

/* Allocates a padded buffer with room for len payload bytes and writes the
 * header; the caller fills rc_entry_payload(out). */
int rc_entry_alloc(int kind, size_t len, struct raft_buffer *out);
uint8_t *rc_entry_payload(const struct raft_buffer *buf);

/* Validates buf and points payload and len at the payload inside it. */
int rc_entry_unwrap(int kind, const void *buf, size_t buf_len,
                    const uint8_t **payload, size_t *len);

const char *rc_entry_strerror(int err);

#endif
