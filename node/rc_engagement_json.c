#include "node/rc_engagement_json.h"

#include <stdio.h>
#include <string.h>

#include "raft/rc_fsm.h"

const char *rc_engagement_from_json(const json_t *body, size_t n_rcpts, struct rc_engagement *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(body))
        return "an object: {\"recipient\": N, \"event\": \"opened\"|\"clicked\"}";
    const json_t *jr = json_object_get(body, "recipient"), *jat = json_object_get(body, "at");
    const json_t *jurl = json_object_get(body, "url");
    const char *event = json_string_value(json_object_get(body, "event"));
    if (!json_is_integer(jr) || json_integer_value(jr) < 0 || (uint64_t)json_integer_value(jr) >= n_rcpts)
        return "recipient: no such index";
    out->rcpt = (size_t)json_integer_value(jr);
    out->status = event == NULL                  ? -1
                  : strcmp(event, "opened") == 0  ? RC_ST_OPENED
                  : strcmp(event, "clicked") == 0 ? RC_ST_CLICKED
                                                  : -1;
    if (out->status < 0)
        return "event: opened or clicked";
    if (jurl != NULL) {
        if (!json_is_string(jurl) || json_string_length(jurl) > RC_ENGAGEMENT_URL_MAX ||
            strlen(json_string_value(jurl)) != json_string_length(jurl))
            return "url: a string of at most 2048 bytes, without NUL";
        memcpy(out->url, json_string_value(jurl), json_string_length(jurl) + 1);
    }
    if (jat != NULL) {
        if (!json_is_integer(jat) || json_integer_value(jat) <= 0)
            return "at: milliseconds since the epoch";
        out->at_ms = (uint64_t)json_integer_value(jat);
    }
    return NULL;
}
