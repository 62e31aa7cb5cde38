/* Shared by ricochetctl's commands (node/ctl_*.c): talking to a node's HTTP
 * API with libcurl, JSON with jansson, errors, and a table printer.
 * The HTTP contract the commands rely on is docs/CLI.md. */
#ifndef CTL_H
#define CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes of ricochetctl. */
enum ctl_exit {
    CTL_OK = 0,          /* done */
    CTL_REFUSED = 1,     /* the node answered no (4xx/5xx), or not found */
    CTL_USAGE = 2,       /* bad command line */
    CTL_UNREACHABLE = 3, /* cannot reach the node (connect, timeout, not a node's API) */
};

#define CTL_DEFAULT_SERVER "127.0.0.1:8080"
#define CTL_DEFAULT_TIMEOUT_S 30
#define CTL_MAX_TIMEOUT_S 86400
#define CTL_MAX_REPLY (64u << 20) /* bytes of a reply body we accept */

struct ctl {
    const char *server; /* HOST:PORT of a node's HTTP API (-s, $RICOCHET_SERVER) */
    bool json;          /* --json: print the node's JSON as is */
    long timeout_s;     /* --timeout: whole request, seconds */
};

/* One command of the dispatch table (node/ricochetctl.c). */
struct ctl_command {
    const char *name;
    int (*run)(const struct ctl *c, int argc, char **argv); /* argv[0] is the name */
    bool online;        /* talks to a node: global options are accepted after it too */
    const char *usage;  /* "cluster" -> printed after "usage: ricochetctl " */
    const char *summary;
    const char *help;   /* longer text for `ricochetctl CMD --help`, or NULL */
};
extern const struct ctl_command ctl_commands[];
const struct ctl_command *ctl_find_command(const char *name);

/* ------------------------------------------------------------------ HTTP */

/* Performs METHOD path (path starts with '/') with an optional JSON body
 * (not stolen). Returns the HTTP status and sets *out to the parsed JSON
 * body (NULL when empty; caller decrefs). On failure to talk to the node
 * returns -1 and writes why into err ("connection refused", "no answer
 * within 30 s", "the answer is not JSON"). */
int ctl_http_to(const struct ctl *c, const char *server, const char *method, const char *path, const json_t *body,
                json_t **out, char *err, size_t errlen);

/* The usual round trip: sends (and decrefs) body, prints errors on stderr
 * ("ricochetctl: WHAT: MESSAGE (HTTP N)", or "cannot reach ...") and, with
 * --json, the node's error object on stdout. Returns CTL_OK with *reply set
 * for a 2xx answer, else CTL_REFUSED or CTL_UNREACHABLE with *reply NULL.
 * If keep_error is true a 4xx/5xx reply is left in *reply (and not
 * printed) for the caller to look at. */
int ctl_request(const struct ctl *c, const char *what, const char *method, const char *path, json_t *body,
                json_t **reply);
int ctl_request_to(const struct ctl *c, const char *server, const char *what, const char *method, const char *path,
                   json_t *body, json_t **reply, int *status, bool keep_error);

/* GET path for a command that prints a table: with --json the node's answer
 * is printed as is and *reply is NULL; otherwise *reply holds it (caller
 * decrefs). Returns CTL_OK, or the ctl_request error (already printed). */
int ctl_get_for_people(const struct ctl *c, const char *what, const char *path, json_t **reply);

/* Hands leadership to voter `to` (0: any), asking `start` first (the
 * leader is found from there), and waits until the cluster agrees on the
 * new leader; when another voter won, asks it again (bounded). Progress on
 * stderr unless --json. Sets *leader; returns a ctl_exit code. */
int ctl_transfer_run(const struct ctl *c, const char *start, uint64_t to, int64_t *leader);

/* GET /v1/cluster from `server`, quietly (for polling loops): 0 with *out
 * set (caller decrefs), -1 when the node does not answer it. */
int ctl_get_cluster(const struct ctl *c, const char *server, json_t **out);

/* HTTP address of node `id` in a GET /v1/cluster answer, or NULL. */
const char *ctl_cluster_node_http(const json_t *cluster, json_int_t id);

/* Where to send a request that `server` refused with 421 (answer r421):
 * the leader's HTTP address in `server`'s view of the cluster or, for a
 * leader in no member table any more (it is leaving), its raft host
 * (r421's leader_raft) with `server`'s HTTP port (members share ports
 * unless configured otherwise). Sets *leader; 0 when found. */
int ctl_leader_http(const struct ctl *c, const char *server, const json_t *r421, json_int_t *leader, char *out,
                    size_t n);

/* Waits ms milliseconds (polling loops of the drill and the transfer). */
void ctl_sleep_ms(long ms);

/* Prints v as one line of JSON on stdout (the --json contract). */
void ctl_print_json(const json_t *v);
/* "ricochetctl: " + message on stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "usage: ricochetctl USAGE" on stderr; returns CTL_USAGE. */
int ctl_usage(const struct ctl_command *cmd);
/* Prints the command's usage and help on stdout; returns CTL_OK. */
int ctl_help(const struct ctl_command *cmd);
bool ctl_is_help(const char *arg);

/* --------------------------------------------------------------- values */

/* Parses a decimal integer in [min, max]; prints "WHAT: ..." and returns -1
 * when it is not one. */
int ctl_parse_u64(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Milliseconds since the epoch as 2026-11-22T10:00:00Z ("-" for 0/none). */
void ctl_fmt_time_ms(const json_t *ms, char *out, size_t n);
/* Value of obj[key] as text: strings as is, integers and reals printed,
 * true/false as yes/no, null or missing as dflt. Writes into buf. */
const char *ctl_field(const json_t *obj, const char *key, const char *dflt, char *buf, size_t n);
/* Escapes one path segment (RFC 3986 unreserved kept). Returns malloc'd. */
char *ctl_escape_segment(const char *s);

/* ---------------------------------------------------------------- table */

/* A human table: columns sized to their widest cell, two spaces apart. */
typedef struct ctl_table ctl_table;
ctl_table *ctl_table_new(size_t ncols, const char *const *headers);
/* Adds a row of ncols cells (copied; NULL prints as "-"). */
void ctl_table_add(ctl_table *t, const char *const *cells);
void ctl_table_print(const ctl_table *t, FILE *out);
void ctl_table_free(ctl_table *t);

/* ------------------------------------------------------------- commands */

int ctl_cmd_cluster(const struct ctl *c, int argc, char **argv);
int ctl_cmd_message(const struct ctl *c, int argc, char **argv);
int ctl_cmd_discard(const struct ctl *c, int argc, char **argv);
int ctl_cmd_engagement(const struct ctl *c, int argc, char **argv);
int ctl_cmd_transfer(const struct ctl *c, int argc, char **argv);
int ctl_cmd_drill(const struct ctl *c, int argc, char **argv);
int ctl_cmd_suppressions(const struct ctl *c, int argc, char **argv);
int ctl_cmd_drain(const struct ctl *c, int argc, char **argv); /* drain and undrain */
int ctl_cmd_probe(const struct ctl *c, int argc, char **argv);
int ctl_cmd_passwd(const struct ctl *c, int argc, char **argv);
int ctl_cmd_members(const struct ctl *c, int argc, char **argv);
int ctl_cmd_webhooks(const struct ctl *c, int argc, char **argv);

#endif
