/* Forced recovery (raft_recover): when a majority of voters is lost for
 * good (e.g. the majority site of a two-site layout burned down), the
 * survivors cannot elect a leader. An operator stops ricochetd on every
 * survivor, runs this on each with the same --members list, and starts them
 * again: the stored configuration is replaced by the survivors alone.
 *
 * Entries committed on the lost majority but never replicated to a survivor
 * are lost; that is why it asks for an explicit confirmation flag. */
#include "node/ctl_recover.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/rc_config.h"
#include "raft/rc_raft.h"

static const char usage[] =
    "usage: ricochetctl recover -c CONFIG --members ID,ID,... --i-understand-data-loss\n"
    "\n"
    "Rewrites this stopped node's raft configuration to exactly the listed members.\n"
    "Run it on every surviving node with the same list, with ricochetd stopped, then\n"
    "start them; update [member.*] in every config file to match afterwards.\n";

int ctl_recover_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"members", required_argument, NULL, 'm'},
        {"i-understand-data-loss", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *file = NULL, *list = NULL;
    int confirmed = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': file = optarg; break;
        case 'm': list = optarg; break;
        case 'y': confirmed = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (file == NULL || list == NULL) {
        fputs(usage, stderr);
        return 2;
    }
    static struct rc_config cfg;
    char err[512];
    rc_config_defaults(&cfg);
    if (rc_config_load(&cfg, file, err, sizeof err) != 0 || rc_config_finish(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "recover: config error: %s\n", err);
        return 2;
    }
    struct rc_member members[RC_MAX_MEMBERS];
    size_t n = 0;
    int self_listed = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        unsigned long long id = strtoull(tok, &end, 10);
        const struct rc_cfg_member *m = *end ? NULL : rc_config_member(&cfg, id);
        if (m == NULL || n == RC_MAX_MEMBERS) {
            fprintf(stderr, "recover: --members: \"%s\" is not a member of %s\n", tok, file);
            return 2;
        }
        if (strcmp(m->role, "voter") != 0) {
            fprintf(stderr, "recover: --members: node %llu is a %s; list voters only\n", id, m->role);
            return 2;
        }
        memset(&members[n], 0, sizeof members[n]);
        members[n].id = m->id;
        members[n].role = RC_ROLE_VOTER;
        snprintf(members[n].raft_addr, sizeof members[n].raft_addr, "%s:%u", m->address, m->raft_port);
        snprintf(members[n].site, sizeof members[n].site, "%s", m->site);
        self_listed |= m->id == cfg.node_id;
        n++;
    }
    if (!self_listed) {
        fprintf(stderr, "recover: --members must include this node (%llu)\n", (unsigned long long)cfg.node_id);
        return 2;
    }
    if (!confirmed) {
        fprintf(stderr, "recover: refusing without --i-understand-data-loss: entries that only the lost\n"
                        "         members had are gone for good. Read docs/OPERATIONS.md first.\n");
        return 2;
    }
    const struct rc_cfg_member *self = rc_config_member(&cfg, cfg.node_id);
    char self_addr[80];
    snprintf(self_addr, sizeof self_addr, "%s:%u", self->address, self->raft_port);
    if (rc_raft_recover(cfg.data_dir, cfg.node_id, self_addr, members, n, err, sizeof err) != RC_OK) {
        fprintf(stderr, "recover: %s\n", err);
        return 1;
    }
    printf("recover: node %llu now has a configuration of %zu voter(s): %s\n",
           (unsigned long long)cfg.node_id, n, list);
    printf("recover: start ricochetd on every listed node; they elect a leader among themselves.\n");
    return 0;
}
