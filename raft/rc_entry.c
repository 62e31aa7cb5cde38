#include "raft/rc_entry.h"

#include <raft.h>
#include <string.h>

static const char magic_log[4] = {'R', 'C', 'E', '1'};
static const char magic_snap[4] = {'R', 'C', 'S', '1'};

static const char *magic_of(int kind)
{
    return kind == RC_ENTRY_SNAPSHOT ? magic_snap : magic_log;
}

size_t rc_entry_padded_size(size_t len)
{
    return (RC_ENTRY_HEADER + len + 7u) & ~(size_t)7u;
}

int rc_entry_alloc(int kind, size_t len, struct raft_buffer *out)
{
    if (len > UINT32_MAX)
        return RC_ENTRY_ELENGTH;
    size_t total = rc_entry_padded_size(len);
    uint8_t *p = raft_malloc(total);
    if (p == NULL)
        return RC_ENTRY_ENOMEM;
    memcpy(p, magic_of(kind), 4);
    p[4] = (uint8_t)(len >> 24);
    p[5] = (uint8_t)(len >> 16);
    p[6] = (uint8_t)(len >> 8);
    p[7] = (uint8_t)len;
    memset(p + RC_ENTRY_HEADER + len, 0, total - RC_ENTRY_HEADER - len);
    out->base = p;
    out->len = total;
    return RC_ENTRY_OK;
}

uint8_t *rc_entry_payload(const struct raft_buffer *buf)
{
    return (uint8_t *)buf->base + RC_ENTRY_HEADER;
}

int rc_entry_wrap(int kind, const void *payload, size_t len, struct raft_buffer *out)
{
    int rv = rc_entry_alloc(kind, len, out);
    if (rv == RC_ENTRY_OK && len > 0)
        memcpy(rc_entry_payload(out), payload, len);
    return rv;
}

int rc_entry_unwrap(int kind, const void *buf, size_t buf_len,
                    const uint8_t **payload, size_t *len)
{
    const uint8_t *p = buf;
    if (p == NULL || buf_len < RC_ENTRY_HEADER)
        return RC_ENTRY_ESHORT;
    if (memcmp(p, magic_of(kind), 4) != 0)
        return RC_ENTRY_EMAGIC;
    if (buf_len % 8 != 0)
        return RC_ENTRY_EPADDING;
    size_t n = (size_t)p[4] << 24 | (size_t)p[5] << 16 | (size_t)p[6] << 8 | p[7];
    if (n > buf_len - RC_ENTRY_HEADER || rc_entry_padded_size(n) != buf_len)
        return RC_ENTRY_ELENGTH;
    for (size_t i = RC_ENTRY_HEADER + n; i < buf_len; i++)
        if (p[i] != 0)
            return RC_ENTRY_EPADDING;
    *payload = p + RC_ENTRY_HEADER;
    *len = n;
    return RC_ENTRY_OK;
}

const char *rc_entry_strerror(int err)
{
    switch (err) {
    case RC_ENTRY_OK: return "ok";
    case RC_ENTRY_ENOMEM: return "out of memory";
    case RC_ENTRY_ESHORT: return "buffer shorter than the entry header";
    case RC_ENTRY_EMAGIC: return "bad magic (not a ricochet entry of this kind)";
    case RC_ENTRY_ELENGTH: return "announced length does not match the buffer";
    case RC_ENTRY_EPADDING: return "bad padding";
    }
    return "unknown error";
}
