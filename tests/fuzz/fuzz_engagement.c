/* Bytes as the body of POST /v1/messages/ID/engagement, parsed as the API
 * parses it (jansson, then rc_engagement_from_json) for a message of 0 to 3
 * recipients (the first byte picks). What passes must be usable as is: a
 * recipient in range, an engagement status, a URL that fits and has no
 * NUL; what fails must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/rc_engagement_json.h"
#include "raft/rc_fsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n_rcpts = size > 0 ? data[0] % 4 : 1;
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data, size, JSON_ALLOW_NUL, &jerr);
    if (body == NULL)
        return 0;
    struct rc_engagement e;
    const char *bad = rc_engagement_from_json(body, n_rcpts, &e);
    if (bad == NULL) {
        if (e.rcpt >= n_rcpts || (e.status != RC_ST_OPENED && e.status != RC_ST_CLICKED) ||
            strlen(e.url) > RC_ENGAGEMENT_URL_MAX)
            abort();
    } else if (bad[0] == '\0') {
        abort();
    }
    json_decref(body);
    return 0;
}
