/* Writes one DSN built by dsn_build() (smtp/dsn.h) to a file, for the peer
 * tests (Sisimai must read what we send).
 *   dsn_write OUT RET [RCPT ACTION STATUS SMTP|OWN DIAG REMOTE]...
 * RET: FULL, HDRS or - (default); STATUS, DIAG, REMOTE: - for none. Each
 * recipient takes six arguments. The original is a small fixed message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/dsn.h"

static const char original[] = "From: Alice <alice@example.com>\r\n"
                               "To: bob@example.net\r\n"
                               "Subject: quarterly report\r\n"
                               "Message-ID: <dsn-peer-1@example.com>\r\n"
                               "\r\n"
                               "Hello,\r\nthe report.\r\n";

static const char *opt(const char *s)
{
    return strcmp(s, "-") == 0 ? NULL : s;
}

int main(int argc, char **argv)
{
    if (argc < 9 || (argc - 3) % 6 != 0) {
        fprintf(stderr, "usage: %s OUT RET [RCPT ACTION STATUS SMTP|OWN DIAG REMOTE]...\n", argv[0]);
        return 2;
    }
    size_t n = (size_t)(argc - 3) / 6;
    struct dsn_rcpt *r = calloc(n, sizeof *r);
    if (r == NULL)
        return 1;
    const unsigned long long t0 = 1700000000000ull;
    for (size_t i = 0; i < n; i++) {
        char **a = argv + 3 + 6 * i;
        r[i].final_recipient = a[0];
        r[i].action = a[1];
        r[i].status = opt(a[2]);
        r[i].diagnostic_is_smtp = strcmp(a[3], "SMTP") == 0;
        r[i].diagnostic = opt(a[4]);
        r[i].remote_mta = opt(a[5]);
        r[i].last_attempt_ms = t0;
        if (strcmp(a[1], "delayed") == 0)
            r[i].will_retry_until_ms = t0 + 4ull * 86400000;
    }
    struct dsn_input in = {
        .reporting_mta = "mail.ricochet.test",
        .from_address = "MAILER-DAEMON@mail.ricochet.test",
        .to_address = "alice@example.com",
        .envid = "peer-envid-1",
        .ret = opt(argv[2]),
        .queue_id = "PEER1",
        .arrival_ms = t0 - 3600000,
        .now_ms = t0 + 1000,
        .rcpts = r,
        .nrcpts = n,
        .original = (const uint8_t *)original,
        .original_len = sizeof original - 1,
    };
    uint8_t *out = NULL;
    size_t len = 0;
    int rv = dsn_build(&in, &out, &len);
    free(r);
    if (rv != DSN_OK) {
        fprintf(stderr, "dsn_build: %d\n", rv);
        return 1;
    }
    FILE *f = fopen(argv[1], "wb");
    if (f == NULL || fwrite(out, 1, len, f) != len || fclose(f) != 0) {
        perror(argv[1]);
        free(out);
        return 1;
    }
    free(out);
    return 0;
}
