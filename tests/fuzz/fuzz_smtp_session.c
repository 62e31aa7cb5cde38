/* Arbitrary client bytes into one SMTP session (split where the input says),
 * with messages completed at once. Nothing may crash or leak. */
#include <stdint.h>
#include <stdio.h>

#include "../unit/smtp_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static struct harness h;
    harness_init(&h, data[0] & 1 ? "10.1.2.3" : "192.0.2.1", data[0] & 2);
    size_t step = (size_t)(data[0] >> 2) + 1;
    for (size_t off = 1; off < size && !h.closed; off += step) {
        size_t n = size - off < step ? size - off : step;
        smtp_session_input(h.s, (const char *)data + off, n);
    }
    harness_free(&h);
    return 0;
}
