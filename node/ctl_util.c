/* ricochetctl helpers: argument parsing, value formatting, a table printer. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/ctl.h"

bool ctl_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int ctl_usage(const struct ctl_command *cmd)
{
    fprintf(stderr, "usage: ricochetctl %s\n", cmd->usage);
    if (cmd->online)
        fputs("       (global options -s HOST:PORT, --json, --timeout SECONDS may come before or after it)\n", stderr);
    return CTL_USAGE;
}

int ctl_help(const struct ctl_command *cmd)
{
    printf("usage: ricochetctl [-s HOST:PORT] [--json] [--timeout SECONDS] %s\n\n%s\n", cmd->usage, cmd->summary);
    if (cmd->help)
        printf("\n%s", cmd->help);
    return CTL_OK;
}

const struct ctl_command *ctl_find_command(const char *name)
{
    for (const struct ctl_command *c = ctl_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

int ctl_get_cluster(const struct ctl *c, const char *server, json_t **out)
{
    char err[256];
    json_t *r = NULL;
    int status = ctl_http_to(c, server, "GET", "/v1/cluster", NULL, &r, err, sizeof err);
    if (status != 200 || !json_is_object(r)) {
        json_decref(r);
        return -1;
    }
    *out = r;
    return 0;
}

const char *ctl_cluster_node_http(const json_t *cluster, json_int_t id)
{
    size_t i;
    json_t *node;
    json_array_foreach(json_object_get(cluster, "nodes"), i, node) {
        if (json_integer_value(json_object_get(node, "id")) == id)
            return json_string_value(json_object_get(node, "http"));
    }
    return NULL;
}

int ctl_leader_http(const struct ctl *c, const char *server, const json_t *r421, json_int_t *leader, char *out,
                    size_t n)
{
    *leader = json_integer_value(json_object_get(r421, "leader"));
    if (*leader <= 0)
        return -1;
    json_t *cluster;
    if (ctl_get_cluster(c, server, &cluster) == 0) {
        const char *http = ctl_cluster_node_http(cluster, *leader);
        if (http)
            snprintf(out, n, "%s", http);
        json_decref(cluster);
        if (http)
            return 0;
    }
    const char *raft = json_string_value(json_object_get(r421, "leader_raft"));
    const char *port = strrchr(server, ':'), *colon = raft ? strrchr(raft, ':') : NULL;
    if (colon == NULL || port == NULL)
        return -1;
    snprintf(out, n, "%.*s%s", (int)(colon - raft), raft, port);
    return 0;
}

void ctl_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int ctl_parse_u64(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (s == NULL || *s < '0' || *s > '9') {
        ctl_err("%s: \"%s\" is not a number", what, s ? s : "");
        return -1;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        ctl_err("%s: \"%s\" is not a number", what, s);
        return -1;
    }
    if (v < min || v > max) {
        ctl_err("%s: %llu is out of range (%" PRIu64 "..%" PRIu64 ")", what, v, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

void ctl_fmt_time_ms(const json_t *ms, char *out, size_t n)
{
    json_int_t v = json_integer_value(ms);
    if (!json_is_integer(ms) || v <= 0) {
        snprintf(out, n, "-");
        return;
    }
    time_t t = (time_t)(v / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, n, "%" JSON_INTEGER_FORMAT, v);
}

const char *ctl_field(const json_t *obj, const char *key, const char *dflt, char *buf, size_t n)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        snprintf(buf, n, "%s", dflt);
        return buf;
    }
    switch (json_typeof(v)) {
    case JSON_STRING: snprintf(buf, n, "%s", json_string_value(v)); break;
    case JSON_INTEGER: snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL: snprintf(buf, n, "%g", json_real_value(v)); break;
    case JSON_TRUE: snprintf(buf, n, "yes"); break;
    case JSON_FALSE: snprintf(buf, n, "no"); break;
    default:
        if (json_is_null(v))
            snprintf(buf, n, "%s", dflt);
        else { /* object or array: compact JSON */
            char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            snprintf(buf, n, "%s", s ? s : dflt);
            free(s);
        }
    }
    return buf;
}

char *ctl_escape_segment(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(s);
    char *out = malloc(len * 3 + 1), *p = out;
    if (out == NULL)
        return NULL;
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-' ||
            *q == '.' || *q == '_' || *q == '~' || *q == '@' || *q == '+') {
            *p++ = (char)*q;
        } else {
            *p++ = '%';
            *p++ = hex[*q >> 4];
            *p++ = hex[*q & 15];
        }
    }
    *p = '\0';
    return out;
}

/* ---------------------------------------------------------------- table */

struct ctl_table {
    size_t ncols, nrows, cap;
    char **cells; /* (nrows + 1) * ncols, row 0 is the header */
};

static char *dup_cell(const char *s)
{
    s = s && *s ? s : "-";
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) {
        /* one line per row: control characters become spaces */
        for (size_t i = 0; i < n; i++)
            d[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
        d[n] = '\0';
    }
    return d;
}

ctl_table *ctl_table_new(size_t ncols, const char *const *headers)
{
    ctl_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->ncols = ncols;
    t->nrows = 0;
    ctl_table_add(t, headers);
    return t;
}

void ctl_table_add(ctl_table *t, const char *const *cells)
{
    if (t == NULL)
        return;
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        char **nc = realloc(t->cells, cap * t->ncols * sizeof *nc);
        if (nc == NULL)
            return;
        t->cells = nc;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = dup_cell(cells[i]);
    t->nrows++;
}

void ctl_table_print(const ctl_table *t, FILE *out)
{
    if (t == NULL)
        return;
    size_t width[32] = {0};
    size_t ncols = t->ncols < 32 ? t->ncols : 32;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i < ncols; i++) {
            const char *s = t->cells[r * t->ncols + i];
            size_t w = s ? strlen(s) : 1;
            if (w > width[i])
                width[i] = w;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t i = 0; i < ncols; i++) {
            const char *s = t->cells[r * t->ncols + i];
            if (i + 1 == ncols)
                fprintf(out, "%s\n", s ? s : "-");
            else
                fprintf(out, "%-*s  ", (int)width[i], s ? s : "-");
        }
    }
}

void ctl_table_free(ctl_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}
