/* Benchmark harness (tests/bench/tracking.sh): makes N tracked copies of one
 * message, as the delivering node does for N recipients, and prints the
 * time per copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smtp/track.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MESSAGE COPIES\n", argv[0]);
        return 2;
    }
    static const unsigned char secret[] = "benchmark-tracking-secret";
    struct track_key key = {.secret = secret, .secret_len = sizeof secret - 1, .base = "https://t.example.net"};
    struct track_limits lim = {.max_html = 2u << 20, .max_links = 500};
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    size_t cap = 16u << 20, n;
    char *msg = malloc(cap);
    n = msg ? fread(msg, 1, cap, f) : 0;
    fclose(f);
    int copies = atoi(argv[2]);
    struct track_result res = {0};
    size_t out_bytes = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < copies; i++) {
        char *out;
        size_t on;
        if (track_rewrite(&key, "0193ABCDEF0100A1", (uint32_t)i, TRACK_OPENS | TRACK_CLICKS, msg, n, &lim, &out, &on,
                          &res) != TRACK_OK) {
            fprintf(stderr, "rewrite failed\n");
            return 1;
        }
        out_bytes = on;
        free(out);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / copies;
    printf("message %zu bytes, copy %zu bytes, %zu HTML part(s), %zu links: %.3f ms per copy, %.0f copies/s on one core\n",
           n, out_bytes, res.html_parts, res.links, ms, 1000.0 / ms);
    free(msg);
    return 0;
}
