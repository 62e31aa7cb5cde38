/* VERP codec. Token = base32(version | varint(rcpt) | id | mac), where
 * mac = HMAC-SHA256(secret, "ricochet-verp" | version | varint(rcpt) | id)
 * truncated to key->mac_len bytes. Decode checks, in order: shape, domain,
 * alphabet and canonical padding bits, minimum length, version, MAC (constant
 * time, CRYPTO_memcmp). */
#include "smtp/verp.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <strings.h>
#include <string.h>

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char mac_label[] = "ricochet-verp";

const char *verp_strerror(int err)
{
    switch (err) {
    case VERP_OK: return "ok";
    case VERP_EINVAL: return "invalid argument";
    case VERP_ENOMEM: return "out of memory";
    case VERP_ETOOLONG: return "address too long";
    case VERP_EFORMAT: return "not a VERP address";
    case VERP_EDOMAIN: return "not the bounce domain";
    case VERP_EENCODING: return "bad token encoding";
    case VERP_ETRUNCATED: return "token truncated";
    case VERP_EVERSION: return "unknown token version";
    case VERP_EBADMAC: return "token MAC mismatch";
    }
    return "unknown error";
}

static size_t mac_len_of(const struct verp_key *key)
{
    return key->mac_len ? key->mac_len : VERP_MAC_DEFAULT;
}

static int key_ok(const struct verp_key *key)
{
    size_t m = mac_len_of(key);
    return key && key->secret && key->secret_len >= VERP_SECRET_MIN &&
           m >= VERP_MAC_MIN && m <= 32;
}

static int compute_mac(const struct verp_key *key, const uint8_t *payload, size_t n,
                       uint8_t out[32])
{
    uint8_t buf[sizeof mac_label + 1 + 5 + VERP_ID_MAX];
    unsigned int len = 0;
    if (n > sizeof buf - sizeof mac_label)
        return VERP_EINVAL;
    memcpy(buf, mac_label, sizeof mac_label - 1);
    memcpy(buf + sizeof mac_label - 1, payload, n);
    if (HMAC(EVP_sha256(), key->secret, (int)key->secret_len, buf,
             sizeof mac_label - 1 + n, out, &len) == NULL || len != 32)
        return VERP_EINVAL;
    return VERP_OK;
}

static size_t b32_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = b32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = b32[(acc << (5 - bits)) & 31];
    return o;
}

static int b32_val(char c)
{
    if (c >= 'a' && c <= 'z') return c - 'a';
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= '2' && c <= '7') return c - '2' + 26;
    return -1;
}

/* Returns decoded length, or -1 on a bad character, an impossible length or
 * nonzero padding bits (so that every token has exactly one spelling, up to case). */
static int b32_decode(const char *in, size_t n, uint8_t *out, size_t out_size)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    size_t rem = n % 8;
    if (rem == 1 || rem == 3 || rem == 6)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b32_val(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            if (o >= out_size)
                return -1;
            out[o++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (int)o;
}

int verp_encode(const struct verp_key *key, const char *domain,
                const void *msg_id, size_t msg_id_len, uint32_t rcpt_index,
                char *dst, size_t dst_size)
{
    uint8_t payload[1 + 5 + VERP_ID_MAX + 32];
    uint8_t mac[32];
    size_t n = 0;
    if (!key_ok(key) || domain == NULL || domain[0] == '\0' || dst == NULL ||
        (msg_id == NULL && msg_id_len > 0))
        return VERP_EINVAL;
    if (msg_id_len > VERP_ID_MAX)
        return VERP_ETOOLONG;
    payload[n++] = VERP_VERSION;
    uint32_t v = rcpt_index;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        payload[n++] = b | (v ? 0x80 : 0);
    } while (v);
    if (msg_id_len)
        memcpy(payload + n, msg_id, msg_id_len);
    n += msg_id_len;
    if (compute_mac(key, payload, n, mac) != VERP_OK)
        return VERP_EINVAL;
    size_t ml = mac_len_of(key);
    memcpy(payload + n, mac, ml);
    n += ml;
    size_t tok_len = (n * 8 + 4) / 5;
    size_t local_len = sizeof VERP_PREFIX - 1 + tok_len;
    if (local_len > VERP_LOCAL_MAX)
        return VERP_ETOOLONG;
    size_t dlen = strlen(domain);
    if (local_len + 1 + dlen + 1 > dst_size)
        return VERP_ETOOLONG;
    memcpy(dst, VERP_PREFIX, sizeof VERP_PREFIX - 1);
    b32_encode(payload, n, dst + sizeof VERP_PREFIX - 1);
    dst[local_len] = '@';
    memcpy(dst + local_len + 1, domain, dlen + 1);
    return VERP_OK;
}

int verp_decode(const struct verp_key *key, const char *expected_domain,
                const char *addr, size_t addr_len,
                char *id, size_t id_size, size_t *id_len, uint32_t *rcpt_index)
{
    uint8_t payload[1 + 5 + VERP_ID_MAX + 32];
    uint8_t mac[32];
    if (!key_ok(key) || addr == NULL || id == NULL || id_len == NULL || rcpt_index == NULL)
        return VERP_EINVAL;
    if (addr_len >= 2 && addr[0] == '<' && addr[addr_len - 1] == '>') {
        addr++;
        addr_len -= 2;
    }
    const char *at = memchr(addr, '@', addr_len);
    if (at == NULL || memchr(at + 1, '@', addr_len - (size_t)(at + 1 - addr)) != NULL)
        return VERP_EFORMAT;
    size_t local_len = (size_t)(at - addr);
    const size_t pl = sizeof VERP_PREFIX - 1;
    if (local_len <= pl || strncasecmp(addr, VERP_PREFIX, pl) != 0)
        return VERP_EFORMAT;
    const char *dom = at + 1;
    size_t dom_len = addr_len - local_len - 1;
    if (dom_len == 0)
        return VERP_EFORMAT;
    if (expected_domain != NULL &&
        (strlen(expected_domain) != dom_len || strncasecmp(dom, expected_domain, dom_len) != 0))
        return VERP_EDOMAIN;
    const char *tok = addr + pl;
    size_t tok_len = local_len - pl;
    if (tok_len > (sizeof payload * 8 + 4) / 5)
        return VERP_EENCODING;
    int n = b32_decode(tok, tok_len, payload, sizeof payload);
    if (n < 0)
        return VERP_EENCODING;
    size_t ml = mac_len_of(key);
    if ((size_t)n < 1 + 1 + ml)
        return VERP_ETRUNCATED;
    if (payload[0] != VERP_VERSION)
        return VERP_EVERSION;
    size_t body = (size_t)n - ml;
    size_t i = 1;
    uint32_t rcpt = 0;
    int shift = 0;
    for (;;) {
        if (i >= body || shift > 28)
            return VERP_ETRUNCATED;
        uint8_t b = payload[i++];
        rcpt |= (uint32_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    if (compute_mac(key, payload, body, mac) != VERP_OK)
        return VERP_EINVAL;
    if (CRYPTO_memcmp(mac, payload + body, ml) != 0)
        return VERP_EBADMAC;
    size_t idl = body - i;
    if (idl > VERP_ID_MAX)
        return VERP_ETRUNCATED;
    if (idl + 1 > id_size)
        return VERP_ETOOLONG;
    memcpy(id, payload + i, idl);
    id[idl] = '\0';
    *id_len = idl;
    *rcpt_index = rcpt;
    return VERP_OK;
}
