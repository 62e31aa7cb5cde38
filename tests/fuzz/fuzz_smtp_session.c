/* Arbitrary client bytes into one SMTP session. The first byte chooses:
 * bit 0 client inside relay_networks, bit 1 submission listener, bit 2 the
 * node answers later (the token is completed after the session is gone, or
 * before, by bit 3), bit 3 a drain (graceful shutdown) midway; the rest of
 * the byte is the read size. AUTH runs against a real users file. Nothing
 * may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "../unit/smtp_harness.h"

static smtp_users *fuzz_users(void)
{
    static smtp_users *u;
    static bool done;
    if (done)
        return u;
    done = true;
    char path[64], line[600], err[200];
    snprintf(path, sizeof path, "/tmp/rc-fuzz-users.%d", (int)getpid());
    /* alice / s3cret: "AUTH PLAIN AGFsaWNlAHMzY3JldA==" in the seeds */
    if (smtp_users_hash_line("alice", "s3cret", 1000, line, sizeof line) != 0)
        return NULL;
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return NULL;
    fprintf(f, "%s\n", line);
    fclose(f);
    u = smtp_users_load(path, err, sizeof err);
    remove(path);
    return u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static struct harness h;
    harness_init(&h, data[0] & 1 ? "10.1.2.3" : "192.0.2.1", data[0] & 2);
    h.cfg.users = fuzz_users(); /* the session reads cfg through its pointer */
    h.defer = data[0] & 4;
    size_t step = (size_t)(data[0] >> 4) + 1;
    size_t half = size / 2;
    for (size_t off = 1; off < size && !h.closed; off += step) {
        size_t n = size - off < step ? size - off : step;
        smtp_session_input(h.s, (const char *)data + off, n);
        if (h.defer && h.held && !(data[0] & 8)) {
            smtp_accept *t = h.held;
            h.held = NULL;
            smtp_accept_done(t, "250 2.0.0 Ok: queued as F");
        }
        if ((data[0] & 8) && off <= half && off + n > half) {
            smtp_session_tls_info(h.s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
            smtp_session_drain(h.s);
        }
    }
    harness_free(&h); /* completes a held token after the session is gone */
    return 0;
}
