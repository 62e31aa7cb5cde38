/* Writes one DSN (smtp/dsn.h) to stdout for the Sisimai peer test:
 *   dsn_write RECIPIENT ACTION STATUS DIAGNOSTIC */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/dsn.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: dsn_write RECIPIENT ACTION STATUS DIAGNOSTIC\n");
        return 2;
    }
    static const char orig[] = "From: Alice <alice@sender.test>\r\nTo: someone\r\nSubject: hello\r\n"
                               "Message-ID: <peer-test@sender.test>\r\n\r\nhello\r\n";
    struct dsn_rcpt r = {.final_recipient = argv[1], .action = argv[2], .status = argv[3],
                         .diagnostic = argv[4], .diagnostic_is_smtp = argv[4][0] >= '2' && argv[4][0] <= '5',
                         .remote_mta = "mx.example.net", .last_attempt_ms = 1795000050000ull};
    struct dsn_input in = {.reporting_mta = "mx1.ricochet.test", .from_address = "MAILER-DAEMON@mx1.ricochet.test",
                           .to_address = "alice@sender.test", .queue_id = "1A2050706B4010001",
                           .arrival_ms = 1795000000000ull, .now_ms = 1795000060000ull, .rcpts = &r, .nrcpts = 1,
                           .original = (const uint8_t *)orig, .original_len = sizeof orig - 1};
    uint8_t *out;
    size_t len;
    if (dsn_build(&in, &out, &len) != DSN_OK) {
        fprintf(stderr, "dsn_build failed\n");
        return 1;
    }
    fwrite(out, 1, len, stdout);
    free(out);
    return 0;
}
