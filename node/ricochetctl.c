/* ricochetctl: the operator CLI. Online commands talk to a node's HTTP API
 * (libcurl + jansson; the contract is docs/CLI.md); `recover`, `classify`
 * and `passwd` work offline.
 *
 * Exit codes: 0 ok, 1 the node said no (or not found), 2 usage, 3 the node
 * cannot be reached. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "node/ctl.h"
#include "node/ctl_classify.h"
#include "node/ctl_recover.h"

static int run_recover(const struct ctl *c, int argc, char **argv)
{
    (void)c;
    return ctl_recover_main(argc, argv);
}

static int run_classify(const struct ctl *c, int argc, char **argv)
{
    (void)c;
    return ctl_classify_main(argc, argv);
}

static int run_help(const struct ctl *c, int argc, char **argv);

/* The dispatch table. Offline commands get their arguments untouched. */
const struct ctl_command ctl_commands[] = {
    {"cluster", ctl_cmd_cluster, true, "cluster",
     "Nodes, sites, roles, states, health, addresses; leader, term and commit index.",
     "GET /v1/cluster. With --json, prints the node's JSON object as is.\n"},
    {"message", ctl_cmd_message, true, "message ID [--consistent]",
     "A message and each recipient's status and history.",
     "GET /v1/messages/ID. Exit 1 when the node does not know the message.\n"
     "--consistent asks the leader to read through a raft barrier (sees every\n"
     "write acknowledged before the request).\n"},
    {"discard", ctl_cmd_discard, true, "discard ID [--rcpt N]",
     "End the recipients of a message that are not final yet as discarded.",
     "POST /v1/messages/ID/discard [{\"recipient\": N}] (admin). They are never\n"
     "attempted again; final recipients are left as they are. Exit 1 when none\n"
     "was left to discard.\n"},
    {"engagement", ctl_cmd_engagement, true, "engagement ID --rcpt N opened|clicked [--url URL]",
     "Record that a delivered recipient opened the message or followed a link.",
     "POST /v1/messages/ID/engagement {\"recipient\": N, \"event\", \"url\"} (admin),\n"
     "for tracking systems. Kept in the recipient's history (status stays\n"
     "delivered; it resets the soft-bounce count) and sent to the webhook\n"
     "receiver. Refused (409) unless the recipient is delivered.\n"},
    {"transfer", ctl_cmd_transfer, true, "transfer [--to NODE_ID]",
     "Move raft leadership to NODE_ID (or to any voter) and wait until done.",
     "POST /v1/cluster/transfer {\"to\": N}. When the node asked is not the leader,\n"
     "the command looks the leader up and asks it, then waits until the cluster\n"
     "agrees on the new leader; when another voter won the election it asks that\n"
     "one to hand over (3 attempts in all). Prints the new leader.\n"},
    {"members", ctl_cmd_members, true, "members [sync]",
     "Raft membership of the cluster against the configuration's member table.",
     "GET /v1/cluster/members: each member's raft address and role in the cluster\n"
     "and in the asked node's configuration file, and the changes between them.\n"
     "`sync`: POST /v1/cluster/members/sync (admin) with that table: the leader\n"
     "makes the changes one at a time (new members added as spares, then given\n"
     "their role, a new voter caught up first; promotions; demotions; removals;\n"
     "the leader's own removal or demotion last, after which it steps down) and\n"
     "answers when all are committed. Refused (409) when a member's raft address\n"
     "changed. A node joining a running cluster starts with raft.join = true\n"
     "(docs/OPERATIONS.md).\n"},
    {"webhooks", ctl_cmd_webhooks, true, "webhooks",
     "What the node's webhook sender does: pending, sent, failures (docs/WEBHOOKS.md).",
     "GET /v1/webhooks. Only the leader sends; a follower shows its counters from\n"
     "when it led. With --json, prints the node's JSON object as is.\n"},
    {"drill", ctl_cmd_drill, true, "drill --site SITE [--keep-drained] [--wait SECONDS]",
     "Planned failover drill of a site, with a timeline (docs/DRILLS.md).",
     "Refuses first when no healthy voter and MX would be left outside SITE. Then:\n"
     "moves leadership out of SITE, drains SITE, asks every node's name server\n"
     "until no MX answer lists a host of SITE, commits probe records through the\n"
     "new leader, waits until every node applied the log up to them, undrains SITE\n"
     "(unless --keep-drained) and waits until its hosts are back in every MX\n"
     "answer. Each step waits at most --wait seconds (30). Leadership stays\n"
     "where the drill moved it. Exit 0 when every step passed, 1 when one failed\n"
     "(the timeline says which). --json prints {\"site\", \"ok\", \"took_ms\",\n"
     "\"timeline\": [{\"t_ms\", \"event\", ...}]}.\n"},
    {"drain", ctl_cmd_drain, true, "drain NODE_ID|SITE",
     "Take a node or every node of a site out of service (MX set); no stop.",
     "POST /v1/cluster/drain {\"node\": N} or {\"site\": \"NAME\"}.\n"},
    {"undrain", ctl_cmd_drain, true, "undrain NODE_ID|SITE", "Put drained nodes back.",
     "POST /v1/cluster/undrain {\"node\": N} or {\"site\": \"NAME\"}.\n"},
    {"suppressions", ctl_cmd_suppressions, true, "suppressions list | add ADDR [--reason R] | remove ADDR",
     "The replicated suppression list (addresses never delivered to).",
     "GET /v1/suppressions, POST /v1/suppressions {\"address\",\"reason\"},\n"
     "DELETE /v1/suppressions/ADDR.\n"},
    {"probe", ctl_cmd_probe, true, "probe [--count N] [--size BYTES] [--inflight K] [--rate PER_SECOND]",
     "Commit self-test: the node proposes N records and reports rate and latency.",
     "POST /v1/admin/probe {\"count\",\"size\",\"inflight\"[,\"rate\"]}. Defaults: 1000\n"
     "records of 1024 bytes, 16 in flight, as fast as possible (--rate 0).\n"
     "Exit 1 when any record failed to commit.\n"},
    {"recover", run_recover, false, "recover -c CONFIG --members ID,... --i-understand-data-loss",
     "Offline forced recovery after a majority is lost for good (docs/OPERATIONS.md).", NULL},
    {"classify", run_classify, false, "classify [--json] FILE...",
     "Analyse bounce mails offline: one line per recipient.", NULL},
    {"passwd", ctl_cmd_passwd, false, "passwd NAME < password", "Print a line for smtp.users_file.", NULL},
    {"help", run_help, false, "help [COMMAND]", "This text, or a command's.", NULL},
    {NULL, NULL, false, NULL, NULL, NULL},
};

static void print_usage(FILE *out)
{
    fputs("usage: ricochetctl [-s HOST:PORT] [--json] [--timeout SECONDS] COMMAND [ARGS]\n"
          "\n"
          "  -s, --server HOST:PORT  a node's HTTP API (default $RICOCHET_SERVER, else " CTL_DEFAULT_SERVER ")\n"
          "  --json                  print the node's JSON answer as is (one line)\n"
          "  --timeout SECONDS       give up after this long (default 30)\n"
          "  -h, --help              this text; `ricochetctl COMMAND --help` for one command\n"
          "\nCommands:\n",
          out);
    for (const struct ctl_command *c = ctl_commands; c->name; c++)
        fprintf(out, "  %-13s %s\n", c->name, c->summary);
    fputs("\nExit codes: 0 ok, 1 the node said no or not found, 2 usage, 3 cannot reach the node.\n", out);
}

static int run_help(const struct ctl *c, int argc, char **argv)
{
    (void)c;
    if (argc == 1) {
        print_usage(stdout);
        return CTL_OK;
    }
    const struct ctl_command *cmd = ctl_find_command(argv[1]);
    if (argc != 2 || cmd == NULL) {
        ctl_err("help: no command \"%s\"", argv[1]);
        return CTL_USAGE;
    }
    if (cmd->help == NULL) { /* offline commands print their own help */
        char *args[] = {argv[1], "--help", NULL};
        return cmd->run(c, 2, args);
    }
    return ctl_help(cmd);
}

/* Global option at argv[*i]: consumes it (and its value). Returns 1 when it
 * was one, 0 when not, -1 on a bad value. */
static int global_option(struct ctl *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *val = NULL;
    bool server = false, timeout = false;
    if (strcmp(a, "--json") == 0) {
        c->json = true;
        return 1;
    }
    if (strcmp(a, "-s") == 0 || strcmp(a, "--server") == 0)
        server = true;
    else if (strncmp(a, "--server=", 9) == 0)
        server = true, val = a + 9;
    else if (strncmp(a, "-s", 2) == 0 && a[2] != '\0')
        server = true, val = a + 2;
    else if (strcmp(a, "--timeout") == 0)
        timeout = true;
    else if (strncmp(a, "--timeout=", 10) == 0)
        timeout = true, val = a + 10;
    else
        return 0;
    if (val == NULL) {
        if (*i + 1 >= argc) {
            ctl_err("%s needs a value", a);
            return -1;
        }
        val = argv[++*i];
    }
    if (server) {
        const char *colon = strrchr(val, ':');
        if (colon == NULL || colon == val || colon[1] == '\0' || strlen(val) > 255 || strpbrk(val, "/?#@ ") != NULL) {
            ctl_err("-s: \"%s\" is not HOST:PORT", val);
            return -1;
        }
        uint64_t port;
        if (ctl_parse_u64("-s port", colon + 1, 1, 65535, &port) != 0)
            return -1;
        c->server = val;
    } else if (timeout) {
        uint64_t t;
        if (ctl_parse_u64("--timeout", val, 1, CTL_MAX_TIMEOUT_S, &t) != 0)
            return -1;
        c->timeout_s = (long)t;
    }
    return 1;
}

int main(int argc, char **argv)
{
    struct ctl c = {.server = getenv("RICOCHET_SERVER"), .timeout_s = CTL_DEFAULT_TIMEOUT_S};
    if (c.server == NULL || c.server[0] == '\0')
        c.server = CTL_DEFAULT_SERVER;
    int i = 1;
    for (; i < argc; i++) {
        if (ctl_is_help(argv[i])) {
            print_usage(stdout);
            return CTL_OK;
        }
        int g = global_option(&c, argc, argv, &i);
        if (g < 0)
            return CTL_USAGE;
        if (g == 0)
            break;
    }
    if (i >= argc) {
        print_usage(stderr);
        return CTL_USAGE;
    }
    if (argv[i][0] == '-') {
        ctl_err("unknown option \"%s\"", argv[i]);
        print_usage(stderr);
        return CTL_USAGE;
    }
    const struct ctl_command *cmd = ctl_find_command(argv[i]);
    if (cmd == NULL) {
        ctl_err("unknown command \"%s\" (try ricochetctl --help)", argv[i]);
        return CTL_USAGE;
    }
    int nargs = argc - i;
    char **args = argv + i;
    if (cmd->online) {
        /* global options may follow the command (`cluster --json`); "--"
         * ends them */
        int n = 1;
        bool ended = false;
        for (int k = 1; k < nargs; k++) {
            if (!ended && strcmp(args[k], "--") == 0) {
                ended = true;
                continue;
            }
            int g = ended ? 0 : global_option(&c, nargs, args, &k);
            if (g < 0)
                return CTL_USAGE;
            if (g == 0)
                args[n++] = args[k];
        }
        nargs = n;
        args[nargs] = NULL;
    }
    if (cmd->online)
        curl_global_init(CURL_GLOBAL_DEFAULT);
    int rv = cmd->run(&c, nargs, args);
    if (cmd->online)
        curl_global_cleanup();
    fflush(stdout);
    return rv;
}
