/* The body of POST /v1/messages/ID/engagement:
 *   {"recipient": N, "event": "opened"|"clicked", "url": "...", "at": ms}
 * (docs/CLI.md). Network bytes: parsed by jansson, checked here. */
#ifndef RC_ENGAGEMENT_JSON_H
#define RC_ENGAGEMENT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define RC_ENGAGEMENT_URL_MAX 2048

struct rc_engagement {
    size_t rcpt;
    int status;     /* RC_ST_OPENED or RC_ST_CLICKED */
    uint64_t at_ms; /* 0: not given */
    char url[RC_ENGAGEMENT_URL_MAX + 1];
};

/* Fills out from body for a message of n_rcpts recipients; NULL when the
 * body is one, else what is wrong with it (a static string). */
const char *rc_engagement_from_json(const json_t *body, size_t n_rcpts, struct rc_engagement *out);

#endif
