/* ricochetctl: the operator and drill CLI. Talks to a node's HTTP API
 * (libcurl, jansson); `recover` and `classify` work offline.
 * Exit codes: 0 ok, 1 the node said no (or not found), 2 usage, 3 the node
 * cannot be reached. */
#include <curl/curl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/ctl.h"
#include "node/ctl_recover.h"
#include "smtp/smtp_auth.h"

static const char usage[] =
    "usage: ricochetctl [-s HOST:PORT] [--json] [--timeout SECONDS] COMMAND [ARGS]\n"
    "\n"
    "Commands (talk to the node at -s, default $RICOCHET_SERVER or 127.0.0.1:8080):\n"
    "  cluster                          nodes, sites, roles, health, leader, term\n"
    "  message ID                       a message and each recipient's status history\n"
    "  transfer [--to NODE_ID]          move leadership (ask the leader)\n"
    "  drain NODE_ID|SITE               take nodes out of the MX set (no stop)\n"
    "  undrain NODE_ID|SITE             put them back\n"
    "  suppressions list|add ADDR [--reason R]|remove ADDR\n"
    "  probe --count N --size BYTES --inflight K [--rate PER_SECOND]\n"
    "                                   commit self-test from this node\n"
    "Offline commands:\n"
    "  recover -c CONFIG --members ID,... --i-understand-data-loss\n"
    "  passwd NAME < password           a line for smtp.users_file\n"
    "  classify [--json] FILE...        analyse bounce mails\n";

/* ------------------------------------------------------------- HTTP */

struct growbuf {
    char *p;
    size_t n;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct growbuf *b = userdata;
    size_t len = size * nmemb;
    if (b->n + len > (64u << 20))
        return 0; /* refuse absurd replies */
    char *np = realloc(b->p, b->n + len + 1);
    if (np == NULL)
        return 0;
    memcpy(np + b->n, ptr, len);
    b->p = np;
    b->n += len;
    b->p[b->n] = '\0';
    return len;
}

int ctl_http(const struct ctl *c, const char *method, const char *path, json_t *body, json_t **out)
{
    char url[512];
    snprintf(url, sizeof url, "http://%s%s", c->server, path);
    CURL *h = curl_easy_init();
    if (h == NULL) {
        fprintf(stderr, "ricochetctl: cannot initialise libcurl\n");
        return -1;
    }
    struct growbuf b = {0};
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->timeout_s < 5 ? c->timeout_s : 5L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    if (payload)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    int rv;
    if (rc != CURLE_OK) {
        fprintf(stderr, "ricochetctl: cannot reach %s: %s\n", c->server, curl_easy_strerror(rc));
        rv = -1;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        json_error_t jerr;
        *out = b.n ? json_loadb(b.p, b.n, 0, &jerr) : NULL;
        if (*out == NULL && b.n) {
            fprintf(stderr, "ricochetctl: %s answered %ld with a body that is not JSON\n", c->server, status);
            rv = -1;
        } else {
            rv = (int)status;
        }
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(payload);
    free(b.p);
    return rv;
}

int ctl_print_error(const char *what, int status, json_t *reply)
{
    const char *msg = json_string_value(json_object_get(reply, "error"));
    fprintf(stderr, "ricochetctl: %s: %s (HTTP %d)\n", what, msg ? msg : "request refused", status);
    return CTL_REFUSED;
}

void ctl_print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s) {
        puts(s);
        free(s);
    }
}

/* Runs one request and handles the common outcomes. */
static int request(const struct ctl *c, const char *what, const char *method, const char *path,
                   json_t *body, json_t **reply)
{
    *reply = NULL;
    int status = ctl_http(c, method, path, body, reply);
    json_decref(body);
    if (status < 0)
        return CTL_UNREACHABLE;
    if (status != 200) {
        int rv = ctl_print_error(what, status, *reply);
        if (c->json && *reply)
            ctl_print_json(*reply);
        json_decref(*reply);
        *reply = NULL;
        return rv;
    }
    return CTL_OK;
}

/* --------------------------------------------------------- commands */

static void fmt_time(json_int_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cmd_cluster(const struct ctl *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fputs("usage: ricochetctl cluster\n", stderr);
        return CTL_USAGE;
    }
    json_t *r;
    int rv = request(c, "cluster", "GET", "/v1/cluster", NULL, &r);
    if (rv != CTL_OK)
        return rv;
    if (c->json) {
        ctl_print_json(r);
        json_decref(r);
        return CTL_OK;
    }
    json_t *leader = json_object_get(r, "leader");
    char leader_s[32] = "none";
    if (json_is_integer(leader))
        snprintf(leader_s, sizeof leader_s, "%" JSON_INTEGER_FORMAT, json_integer_value(leader));
    printf("leader: %s   term: %" JSON_INTEGER_FORMAT "   commit: %" JSON_INTEGER_FORMAT
           "   applied records: %" JSON_INTEGER_FORMAT "   leader site: %s\n",
           leader_s,
           json_integer_value(json_object_get(r, "term")), json_integer_value(json_object_get(r, "commit_index")),
           json_integer_value(json_object_get(r, "applied_records")),
           json_string_value(json_object_get(r, "leader_site")) ? json_string_value(json_object_get(r, "leader_site")) : "-");
    printf("answered by node %" JSON_INTEGER_FORMAT " (%s)\n\n", json_integer_value(json_object_get(r, "self")),
           json_string_value(json_object_get(r, "state")));
    printf("%-4s %-5s %-8s %-9s %-8s %-21s %-21s %-21s\n", "ID", "SITE", "ROLE", "STATE", "HEALTH", "SMTP", "DNS", "HTTP");
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(r, "nodes"), i, n) {
        const char *role = json_string_value(json_object_get(n, "role"));
        char rolebuf[16];
        snprintf(rolebuf, sizeof rolebuf, "%s%s", role ? role : "?",
                 json_is_true(json_object_get(n, "witness")) ? "/w" : "");
        const char *health = json_is_true(json_object_get(n, "drained")) ? "drained"
                             : json_is_true(json_object_get(n, "healthy")) ? "ok" : "DOWN";
        printf("%-4" JSON_INTEGER_FORMAT " %-5s %-8s %-9s %-8s %-21s %-21s %-21s\n",
               json_integer_value(json_object_get(n, "id")), json_string_value(json_object_get(n, "site")),
               rolebuf, json_string_value(json_object_get(n, "state")), health,
               json_string_value(json_object_get(n, "smtp")) ? json_string_value(json_object_get(n, "smtp")) : "-",
               json_string_value(json_object_get(n, "dns")) ? json_string_value(json_object_get(n, "dns")) : "-",
               json_string_value(json_object_get(n, "http")) ? json_string_value(json_object_get(n, "http")) : "-");
    }
    json_decref(r);
    return CTL_OK;
}

static int cmd_message(const struct ctl *c, int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: ricochetctl message ID\n", stderr);
        return CTL_USAGE;
    }
    for (const char *p = argv[1]; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_')) {
            fprintf(stderr, "ricochetctl: message: \"%s\" is not a message id\n", argv[1]);
            return CTL_USAGE;
        }
    char path[256];
    snprintf(path, sizeof path, "/v1/messages/%s", argv[1]);
    json_t *r;
    int rv = request(c, "message", "GET", path, NULL, &r);
    if (rv != CTL_OK)
        return rv;
    if (c->json) {
        ctl_print_json(r);
        json_decref(r);
        return CTL_OK;
    }
    char when[32];
    fmt_time(json_integer_value(json_object_get(r, "received")), when, sizeof when);
    const char *from = json_string_value(json_object_get(r, "from"));
    printf("message %s from <%s> received %s size %" JSON_INTEGER_FORMAT "\n", json_string_value(json_object_get(r, "id")),
           from ? from : "", when, json_integer_value(json_object_get(r, "size")));
    size_t i, j;
    json_t *rc, *h;
    json_array_foreach(json_object_get(r, "recipients"), i, rc) {
        printf("  %-40s %s\n", json_string_value(json_object_get(rc, "address")), json_string_value(json_object_get(rc, "status")));
        json_array_foreach(json_object_get(rc, "history"), j, h) {
            fmt_time(json_integer_value(json_object_get(h, "at")), when, sizeof when);
            json_t *code = json_object_get(h, "code");
            const char *text = json_string_value(json_object_get(h, "text"));
            const char *reason = json_string_value(json_object_get(h, "reason"));
            printf("      %s %-13s", when, json_string_value(json_object_get(h, "status")));
            if (code)
                printf(" %" JSON_INTEGER_FORMAT, json_integer_value(code));
            if (reason)
                printf(" reason=%s", reason);
            if (text)
                printf(" %s", text);
            putchar('\n');
        }
    }
    json_decref(r);
    return CTL_OK;
}

static int cmd_transfer(const struct ctl *c, int argc, char **argv)
{
    json_int_t to = 0;
    if (argc == 3 && strcmp(argv[1], "--to") == 0)
        to = strtoll(argv[2], NULL, 10);
    else if (argc != 1) {
        fputs("usage: ricochetctl transfer [--to NODE_ID]\n", stderr);
        return CTL_USAGE;
    }
    json_t *r;
    int rv = request(c, "transfer", "POST", "/v1/cluster/transfer", json_pack("{s:I}", "to", to), &r);
    if (rv != CTL_OK)
        return rv;
    if (c->json)
        ctl_print_json(r);
    else
        printf("leadership transferred; leader is now node %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(r, "leader")));
    json_decref(r);
    return CTL_OK;
}

static int cmd_drain(const struct ctl *c, int argc, char **argv)
{
    bool drain = strcmp(argv[0], "drain") == 0;
    if (argc != 2) {
        fprintf(stderr, "usage: ricochetctl %s NODE_ID|SITE\n", argv[0]);
        return CTL_USAGE;
    }
    char *end;
    long long id = strtoll(argv[1], &end, 10);
    json_t *body = *end == '\0' ? json_pack("{s:I}", "node", (json_int_t)id) : json_pack("{s:s}", "site", argv[1]);
    json_t *r;
    int rv = request(c, argv[0], "POST", drain ? "/v1/cluster/drain" : "/v1/cluster/undrain", body, &r);
    if (rv != CTL_OK)
        return rv;
    if (c->json)
        ctl_print_json(r);
    else {
        char *ids = json_dumps(json_object_get(r, "nodes"), JSON_COMPACT);
        printf("%s nodes %s\n", drain ? "drained" : "undrained", ids ? ids : "?");
        free(ids);
    }
    json_decref(r);
    return CTL_OK;
}

static int cmd_suppressions(const struct ctl *c, int argc, char **argv)
{
    json_t *r;
    int rv;
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        rv = request(c, "suppressions", "GET", "/v1/suppressions", NULL, &r);
        if (rv != CTL_OK)
            return rv;
        if (c->json)
            ctl_print_json(r);
        else {
            size_t i;
            json_t *s;
            json_array_foreach(json_object_get(r, "suppressions"), i, s) {
                char when[32];
                fmt_time(json_integer_value(json_object_get(s, "since")), when, sizeof when);
                const char *reason = json_string_value(json_object_get(s, "reason"));
                printf("%-40s %s %s\n", json_string_value(json_object_get(s, "address")), when, reason ? reason : "");
            }
        }
        json_decref(r);
        return CTL_OK;
    }
    if ((argc == 3 || argc == 5) && strcmp(argv[1], "add") == 0) {
        const char *reason = argc == 5 && strcmp(argv[3], "--reason") == 0 ? argv[4] : "operator";
        rv = request(c, "suppressions add", "POST", "/v1/suppressions",
                     json_pack("{s:s, s:s}", "address", argv[2], "reason", reason), &r);
    } else if (argc == 3 && strcmp(argv[1], "remove") == 0) {
        char path[600];
        char *esc = curl_easy_escape(NULL, argv[2], 0);
        snprintf(path, sizeof path, "/v1/suppressions/%s", esc ? esc : argv[2]);
        curl_free(esc);
        rv = request(c, "suppressions remove", "DELETE", path, NULL, &r);
    } else {
        fputs("usage: ricochetctl suppressions list|add ADDR [--reason R]|remove ADDR\n", stderr);
        return CTL_USAGE;
    }
    if (rv != CTL_OK)
        return rv;
    if (c->json)
        ctl_print_json(r);
    else
        printf("%s %s\n", json_string_value(json_object_get(r, "address")),
               json_is_true(json_object_get(r, "suppressed")) ? "suppressed" : "no longer suppressed");
    json_decref(r);
    return CTL_OK;
}

static int cmd_probe(const struct ctl *c, int argc, char **argv)
{
    json_int_t count = 1000, size = 1024, inflight = 16, rate = 0;
    for (int i = 1; i < argc; i++) {
        json_int_t *dst = strcmp(argv[i], "--count") == 0 ? &count : strcmp(argv[i], "--size") == 0 ? &size
                          : strcmp(argv[i], "--inflight") == 0 ? &inflight : strcmp(argv[i], "--rate") == 0 ? &rate : NULL;
        if (dst == NULL || i + 1 == argc) {
            fputs("usage: ricochetctl probe --count N --size BYTES --inflight K [--rate PER_SECOND]\n", stderr);
            return CTL_USAGE;
        }
        *dst = strtoll(argv[++i], NULL, 10);
    }
    json_t *r;
    int rv = request(c, "probe", "POST", "/v1/admin/probe",
                     json_pack("{s:I, s:I, s:I, s:I}", "count", count, "size", size, "inflight", inflight, "rate", rate), &r);
    if (rv != CTL_OK)
        return rv;
    if (c->json)
        ctl_print_json(r);
    else
        printf("committed %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " in %.2f s: %.0f/s, p50 %.2f ms, p99 %.2f ms\n",
               json_integer_value(json_object_get(r, "committed")), count, json_real_value(json_object_get(r, "seconds")),
               json_real_value(json_object_get(r, "per_second")), json_real_value(json_object_get(r, "p50_ms")),
               json_real_value(json_object_get(r, "p99_ms")));
    rv = json_integer_value(json_object_get(r, "failed")) ? CTL_REFUSED : CTL_OK;
    json_decref(r);
    return rv;
}

int ctl_classify_main(int argc, char **argv) __attribute__((weak));

/* Prints a users-file line (smtp.users_file) for NAME; the password is read
 * from standard input (first line), never from the command line. */
static int ctl_passwd(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: ricochetctl passwd NAME < password\n", stderr);
        return CTL_USAGE;
    }
    char pw[512];
    if (fgets(pw, sizeof pw, stdin) == NULL) {
        fputs("ricochetctl: passwd: no password on standard input\n", stderr);
        return CTL_USAGE;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    char line[600];
    if (pw[0] == '\0' || smtp_users_hash_line(argv[1], pw, SMTP_AUTH_DEFAULT_ITERATIONS, line, sizeof line) != 0) {
        fputs("ricochetctl: passwd: empty password or a name with ':'\n", stderr);
        return CTL_USAGE;
    }
    puts(line);
    return CTL_OK;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"server", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    struct ctl c = {.server = getenv("RICOCHET_SERVER"), .timeout_s = 30};
    if (c.server == NULL)
        c.server = "127.0.0.1:8080";
    int ch;
    /* Options may follow the command too (e.g. `cluster --json`). */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--json") == 0)
            c.json = true;
    while ((ch = getopt_long(argc, argv, "+s:h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': c.server = optarg; break;
        case 'j': c.json = true; break;
        case 't': c.timeout_s = strtol(optarg, NULL, 10); break;
        case 'h': fputs(usage, stdout); return CTL_OK;
        default: fputs(usage, stderr); return CTL_USAGE;
        }
    }
    if (optind >= argc) {
        fputs(usage, stderr);
        return CTL_USAGE;
    }
    char **args = argv + optind;
    int nargs = 0;
    /* drop --json from the command's own arguments */
    for (int i = optind; i < argc; i++)
        if (strcmp(argv[i], "--json") != 0 || strcmp(args[0], "classify") == 0)
            args[nargs++] = argv[i];
    const char *cmd = args[0];
    if (strcmp(cmd, "recover") == 0)
        return ctl_recover_main(nargs, args);
    if (strcmp(cmd, "passwd") == 0)
        return ctl_passwd(nargs, args);
    if (strcmp(cmd, "classify") == 0) {
        if (ctl_classify_main == NULL) {
            fputs("ricochetctl: classify is not built in\n", stderr);
            return CTL_USAGE;
        }
        return ctl_classify_main(nargs, args);
    }
    if (c.timeout_s < 1)
        c.timeout_s = 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    static const struct {
        const char *name;
        int (*fn)(const struct ctl *, int, char **);
    } cmds[] = {
        {"cluster", cmd_cluster}, {"message", cmd_message}, {"transfer", cmd_transfer},
        {"drain", cmd_drain}, {"undrain", cmd_drain}, {"suppressions", cmd_suppressions},
        {"probe", cmd_probe},
    };
    int rv = -1;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(cmd, cmds[i].name) == 0)
            rv = cmds[i].fn(&c, nargs, args);
    if (rv < 0) {
        fprintf(stderr, "ricochetctl: unknown command \"%s\"\n%s", cmd, usage);
        rv = CTL_USAGE;
    }
    curl_global_cleanup();
    return rv;
}
