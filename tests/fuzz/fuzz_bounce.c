/* libFuzzer target: one whole mail into bounce_analyse() with small limits
 * (so that the limits themselves are exercised), then every accessor. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/bounce.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bounce_limits lim = {.max_size = 1 << 20, .max_depth = 6, .max_parts = 32,
                                .max_text = 64 << 10, .max_rcpts = 16, .max_headers = 32};
    bounce_report *r = NULL;
    char err[128];
    /* an mbox file's split: offsets rising from 0, inside the input */
    size_t *starts = NULL;
    size_t nm = bounce_mbox_split((const char *)data, size, &starts);
    for (size_t i = 0; i < nm; i++)
        if (starts[i] >= size || (i > 0 ? starts[i] <= starts[i - 1] : starts[i] != 0))
            __builtin_trap();
    free(starts);
    if (bounce_analyse((const char *)data, size, &lim, &r, err, sizeof err) != BOUNCE_OK)
        return 0;
    size_t sum = strlen(bounce_kind_name(bounce_report_kind(r))) + strlen(bounce_report_feedback_type(r));
    for (size_t i = 0; i < bounce_report_rcpt_count(r); i++) {
        const struct bounce_rcpt *x = bounce_report_rcpt(r, i);
        sum += strlen(x->recipient) + strlen(x->original) + strlen(x->action) + strlen(x->status) +
               strlen(x->diagnostic) + strlen(x->remote_mta) + strlen(bounce_reason_name(x->reason));
    }
    for (size_t i = 0; i < bounce_report_orig_header_count(r); i++)
        sum += strlen(bounce_report_orig_header(r, i)->value);
    bounce_report_free(r);
    /* the classifier alone on the raw bytes as a reply text */
    char text[512];
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    bounce_classify_reply(size > 0 ? 400 + data[0] % 200 : 0, NULL, text, NULL);
    return sum == (size_t)-1;
}
