/* libFuzzer target: tracking (smtp/track.h). The input is both a message
 * whose HTML is rewritten (small limits, so that they are exercised; the
 * copy must be CRLF throughout and keep no X-Ricochet-Track field) and a
 * request path for the endpoint's parser (network bytes). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/track.h"

static const uint8_t secret[] = "fuzz-tracking-secret-0123";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct track_key key = {.secret = secret, .secret_len = sizeof secret - 1, .base = "https://t.example"};
    struct track_limits lim = {.max_html = 256 << 10, .max_links = 64};
    char *out = NULL;
    size_t n = 0;
    struct track_result res;
    unsigned what = size > 0 ? (data[0] & 3u) : 3u;
    track_wanted((const char *)data, size);
    if (track_rewrite(&key, "FUZZ01", 7, what, (const char *)data, size, &lim, &out, &n, &res) == TRACK_OK) {
        for (size_t i = 0; i < n; i++)
            if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
                __builtin_trap();
        if (strlen(out) > n)
            __builtin_trap();
    }
    free(out);
    char *path = malloc(size + 1);
    if (path == NULL)
        return 0;
    memcpy(path, data, size);
    path[size] = '\0';
    struct track_hit hit;
    if (track_parse(&key, path, &hit) == TRACK_OK && strncmp(hit.target, "http", 4) != 0 && hit.event == TRACK_CLICKS)
        __builtin_trap();
    free(path);
    return 0;
}
