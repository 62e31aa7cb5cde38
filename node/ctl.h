/* Shared by ricochetctl's commands: talking to a node's HTTP API. */
#ifndef CTL_H
#define CTL_H

#include <jansson.h>
#include <stdbool.h>

enum ctl_exit { CTL_OK = 0, CTL_REFUSED = 1, CTL_USAGE = 2, CTL_UNREACHABLE = 3 };

struct ctl {
    const char *server; /* HOST:PORT of a node's HTTP API */
    bool json;
    long timeout_s;
};

/* Performs METHOD path with an optional JSON body. On success returns the
 * HTTP status and sets *out to the parsed JSON body (caller decrefs). On
 * transport failure prints why and returns -1. */
int ctl_http(const struct ctl *c, const char *method, const char *path, json_t *body, json_t **out);
/* Prints the server's error object (or status) to stderr; returns CTL_REFUSED. */
int ctl_print_error(const char *what, int status, json_t *reply);
/* Prints v as one line of JSON (the --json contract). */
void ctl_print_json(json_t *v);

#endif
