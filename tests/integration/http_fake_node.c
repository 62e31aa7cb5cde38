/* A fake node's HTTP API for the ricochetctl contract test
 * (tests/integration/ctl_contract.sh): node/http_api.c serving canned JSON
 * in the shapes docs/CLI.md promises, so the CLI's parsing, printing, exit
 * codes and errors are tested without a cluster. It is a contract test for
 * the CLI, not a test of the node; the real node is tested against the same
 * contract by the cluster integration tests.
 *
 * usage: http_fake_node --listen IP:PORT --log FILE [--leader-http IP:PORT]
 *                       [--follower LEADER_ID] [--garbage]
 * Every request is logged as one line "METHOD PATH BODY" to FILE.
 * SIGTERM stops it gracefully (pending requests get 503); exit 0. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/http_api.h"

static struct {
    uv_loop_t *loop;
    http_api *api;
    FILE *log;
    const char *leader_http;
    long follower_of; /* 0: we are the leader */
    int garbage;
    uv_signal_t sigterm;
    http_request *hanging[16];
    int n_hanging;
    json_t *suppressions;
} F;

struct later {
    uv_timer_t t;
    http_request *req;
    json_t *answer;
};

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void later_fire(uv_timer_t *t)
{
    struct later *l = t->data;
    http_respond_json(l->req, 200, l->answer);
    uv_close((uv_handle_t *)&l->t, later_closed);
}

/* Answers on a later loop iteration, like a node after a raft round. */
static void answer_later(http_request *req, json_t *answer)
{
    struct later *l = calloc(1, sizeof *l);
    l->req = req;
    l->answer = answer;
    uv_timer_init(F.loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, later_fire, 1, 0);
}

static json_t *body_of(http_request *req)
{
    size_t len;
    const char *b = http_request_body(req, &len);
    fprintf(F.log, "%s %s %.*s\n", http_request_method(req), http_request_path(req), (int)len, b);
    fflush(F.log);
    if (len == 0)
        return json_object();
    return json_loadb(b, len, 0, NULL);
}

static json_t *node(int id, const char *site, const char *role, const char *state, int healthy, const char *ip,
                    const char *http)
{
    char smtp[64], dns[64], raft[64], h[64];
    snprintf(smtp, sizeof smtp, "%s:2525", ip);
    snprintf(dns, sizeof dns, "%s:5353", ip);
    snprintf(raft, sizeof raft, "%s:7001", ip);
    snprintf(h, sizeof h, "%s:8080", ip);
    return json_pack("{s:i, s:s, s:s, s:b, s:b, s:b, s:s, s:s, s:s, s:s, s:s}", "id", id, "site", site, "role", role,
                     "witness", strcmp(site, "w") == 0, "healthy", healthy, "drained", 0, "state", state, "smtp", smtp,
                     "dns", dns, "http", http ? http : h, "raft", raft);
}

static void get_cluster(http_request *req, void *data)
{
    (void)data;
    json_decref(body_of(req));
    json_t *nodes = json_array();
    json_array_append_new(nodes, node(1, "a", "voter", "follower", 1, "127.0.0.1", NULL));
    json_array_append_new(nodes, node(2, "a", "voter", "leader", 1, "127.0.0.2", F.leader_http));
    json_array_append_new(nodes, node(3, "b", "voter", "follower", 1, "127.0.0.3", NULL));
    json_array_append_new(nodes, node(4, "b", "standby", "follower", 0, "127.0.0.4", NULL));
    json_array_append_new(nodes, node(5, "w", "voter", "unknown", 1, "127.0.0.5", NULL));
    http_respond_json(req, 200, json_pack("{s:i, s:s, s:i, s:i, s:i, s:i, s:s, s:o}", "self", F.follower_of ? 1 : 2,
                      "state", F.follower_of ? "follower" : "leader", "leader", 2, "term", 7, "commit_index", 1234,
                      "applied_index", 1230, "state_digest",
                      "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0", "nodes", nodes));
}

static void get_message(http_request *req, void *data)
{
    (void)data;
    json_decref(body_of(req));
    const char *id = http_request_path(req) + strlen("/v1/messages/");
    if (strcmp(id, "HANG") == 0) { /* never answered until the stop */
        if (F.n_hanging < 16)
            F.hanging[F.n_hanging++] = req;
        else
            http_respond_error(req, 503, "busy");
        return;
    }
    if (strcmp(id, "M1") != 0) {
        http_respond_json(req, 404, json_pack("{s:s, s:s}", "error", "no such message", "id", id));
        return;
    }
    json_t *h1 = json_pack("[{s:s, s:I}, {s:s, s:I, s:i, s:s, s:s}, {s:s, s:I, s:i, s:s, s:s}]",
        "status", "queued", "at", (json_int_t)1795000000000,
        "status", "deferred", "at", (json_int_t)1795000060000, "code", 451, "enhanced", "4.7.1", "text",
        "Greylisted, try later",
        "status", "delivered", "at", (json_int_t)1795000360000, "code", 250, "enhanced", "2.0.0", "text", "Ok: queued");
    json_t *h2 = json_pack("[{s:s, s:I}, {s:s, s:I, s:i, s:s, s:s, s:s}]",
        "status", "queued", "at", (json_int_t)1795000000000,
        "status", "bounced", "at", (json_int_t)1795000061000, "code", 550, "enhanced", "5.1.1", "text",
        "No such user", "reason", "userunknown");
    json_t *rcpts = json_pack("[{s:s, s:s, s:o}, {s:s, s:s, s:o}]", "address", "alice@example.net", "status",
                              "delivered", "history", h1, "address", "bob@example.org", "status", "bounced",
                              "history", h2);
    http_respond_json(req, 200, json_pack("{s:s, s:s, s:I, s:i, s:o}", "id", "M1", "from", "sender@example.com",
                      "received", (json_int_t)1795000000000, "size", 2048, "recipients", rcpts));
}

static void post_transfer(http_request *req, void *data)
{
    (void)data;
    json_t *b = body_of(req);
    if (b == NULL) {
        http_respond_error(req, 400, "body is not JSON");
        return;
    }
    json_int_t to = json_integer_value(json_object_get(b, "to"));
    json_decref(b);
    if (F.follower_of) {
        http_respond_json(req, 421, json_pack("{s:s, s:I}", "error", "not the leader; ask the leader", "leader",
                          (json_int_t)F.follower_of));
        return;
    }
    if (to == 99) {
        http_respond_error(req, 400, "no such voter");
        return;
    }
    answer_later(req, json_pack("{s:b, s:I}", "ok", 1, "leader", to ? to : 3));
}

static void suppressions(http_request *req, void *data)
{
    (void)data;
    json_t *b = body_of(req);
    const char *m = http_request_method(req);
    if (strcmp(m, "GET") == 0) {
        json_decref(b);
        http_respond_json(req, 200, json_pack("{s:O}", "suppressions", F.suppressions));
        return;
    }
    if (strcmp(m, "POST") == 0) {
        const char *addr = json_string_value(json_object_get(b, "address"));
        if (addr == NULL || strchr(addr, '@') == NULL) {
            json_decref(b);
            http_respond_error(req, 400, "an address (local@domain) is required");
            return;
        }
        json_t *reason = json_object_get(b, "reason");
        json_array_append_new(F.suppressions, json_pack("{s:s, s:O, s:s, s:I}", "address", addr, "reason",
                              reason ? reason : json_null(), "source", "operator", "since",
                              (json_int_t)1795000000000));
        answer_later(req, json_pack("{s:b, s:s, s:b}", "ok", 1, "address", addr, "suppressed", 1));
        json_decref(b);
        return;
    }
    json_decref(b);
    const char *addr = http_request_path(req) + strlen("/v1/suppressions/");
    size_t i;
    json_t *s;
    json_array_foreach(F.suppressions, i, s) {
        if (strcmp(json_string_value(json_object_get(s, "address")), addr) == 0) {
            json_array_remove(F.suppressions, i);
            http_respond_json(req, 200, json_pack("{s:b, s:s, s:b}", "ok", 1, "address", addr, "suppressed", 0));
            return;
        }
    }
    http_respond_error(req, 404, "not suppressed");
}

static void drain(http_request *req, void *data)
{
    json_t *b = body_of(req);
    json_t *ids = json_array();
    json_int_t n = json_integer_value(json_object_get(b, "node"));
    const char *site = json_string_value(json_object_get(b, "site"));
    if (n >= 1 && n <= 5)
        json_array_append_new(ids, json_integer(n));
    if (site && strcmp(site, "a") == 0) {
        json_array_append_new(ids, json_integer(1));
        json_array_append_new(ids, json_integer(2));
    }
    json_decref(b);
    if (json_array_size(ids) == 0) {
        json_decref(ids);
        http_respond_error(req, 404, "no such node or site");
        return;
    }
    answer_later(req, json_pack("{s:b, s:o, s:b}", "ok", 1, "nodes", ids, "drained", data != NULL));
}

static void probe(http_request *req, void *data)
{
    (void)data;
    json_t *b = body_of(req);
    json_int_t count = json_integer_value(json_object_get(b, "count"));
    json_int_t size = json_integer_value(json_object_get(b, "size"));
    json_decref(b);
    json_int_t failed = count == 13 ? 1 : 0;
    answer_later(req, json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f}", "count", count, "size", size, "committed",
                 count - failed, "failed", failed, "seconds", 0.5, "per_second", (double)(count - failed) * 2,
                 "p50_ms", 1.25, "p99_ms", 4.5));
}

static void garbage(http_request *req, void *data)
{
    (void)data;
    json_decref(body_of(req));
    http_respond_text(req, 200, "text/html", "<html>hello</html>\n");
}

static void stopped(void *data)
{
    (void)data;
    uv_close((uv_handle_t *)&F.sigterm, NULL);
}

static void on_sigterm(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    fprintf(F.log, "SIGTERM pending=%d\n", F.n_hanging);
    fflush(F.log);
    http_api_stop(F.api, stopped, NULL);
    for (int i = 0; i < F.n_hanging; i++)
        http_respond_error(F.hanging[i], 503, "node is stopping");
    F.n_hanging = 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},   {"log", required_argument, NULL, 'o'},
        {"leader-http", required_argument, NULL, 'L'}, {"follower", required_argument, NULL, 'f'},
        {"garbage", no_argument, NULL, 'g'},         {0, 0, 0, 0},
    };
    const char *listen = NULL, *logpath = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 'o': logpath = optarg; break;
        case 'L': F.leader_http = optarg; break;
        case 'f': F.follower_of = strtol(optarg, NULL, 10); break;
        case 'g': F.garbage = 1; break;
        default: return 2;
        }
    }
    if (listen == NULL || logpath == NULL || (F.log = fopen(logpath, "a")) == NULL) {
        fputs("usage: http_fake_node --listen IP:PORT --log FILE [--leader-http IP:PORT] [--follower ID] [--garbage]\n",
              stderr);
        return 2;
    }
    F.loop = uv_default_loop();
    F.suppressions = json_pack("[{s:s, s:s, s:s, s:I}]", "address", "old@example.com", "reason", "userunknown",
                               "source", "bounce", "since", (json_int_t)1794000000000);
    struct http_api_config cfg = {.listen = listen, .max_body = 65536};
    if (http_api_start(&F.api, F.loop, &cfg) != HTTP_API_OK)
        return 1;
    if (F.garbage) {
        http_api_route(F.api, "GET", "/", garbage, NULL);
        http_api_route(F.api, "POST", "/", garbage, NULL);
    } else {
        http_api_route(F.api, "GET", "/v1/cluster", get_cluster, NULL);
        http_api_route(F.api, "GET", "/v1/messages/", get_message, NULL);
        http_api_route(F.api, "POST", "/v1/cluster/transfer", post_transfer, NULL);
        http_api_route(F.api, "GET", "/v1/suppressions", suppressions, NULL);
        http_api_route(F.api, "POST", "/v1/suppressions", suppressions, NULL);
        http_api_route(F.api, "DELETE", "/v1/suppressions/", suppressions, NULL);
        http_api_route(F.api, "POST", "/v1/cluster/drain", drain, &F);
        http_api_route(F.api, "POST", "/v1/cluster/undrain", drain, NULL);
        http_api_route(F.api, "POST", "/v1/admin/probe", probe, NULL);
    }
    uv_signal_init(F.loop, &F.sigterm);
    uv_signal_start(&F.sigterm, on_sigterm, SIGTERM);
    printf("listening %s\n", listen);
    fflush(stdout);
    uv_run(F.loop, UV_RUN_DEFAULT); /* returns once the API stopped (no uv_stop) */
    http_api_free(F.api);
    json_decref(F.suppressions);
    int rv = uv_loop_close(F.loop) == 0 ? 0 : 1;
    fprintf(F.log, "EXIT %d\n", rv);
    fclose(F.log);
    return rv;
}
