#define _GNU_SOURCE
/* ricochetd: the node daemon. Parses the command line and configuration,
 * starts the node on one libuv loop, and stops it gracefully on SIGTERM or
 * SIGINT (a second signal exits at once). SIGHUP reads the configuration
 * file again and logs whether it is valid and which keys differ from the
 * running ones (they take effect at the next start); the node runs on. */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "node/base/rc_log.h"
#include "node/rc_config.h"
#include "node/rc_node.h"

#define EXIT_CONFIG 2

static const char usage[] =
    "usage: ricochetd (--dev | -c FILE) [--set SECTION.KEY=VALUE]... [--check]\n"
    "       ricochetd --config-reference\n"
    "\n"
    "  --dev                 one-node cluster on loopback with built-in defaults\n"
    "                        (data under ./ricochet-data)\n"
    "  -c, --config FILE     run a node from an INI configuration file\n"
    "  --set S.K=V           override one key after the file (repeatable)\n"
    "  --check               validate the configuration and exit\n"
    "  --config-reference    print every configuration key (Markdown) and exit\n"
    "  --version             print the version and exit\n";

/* Where the configuration comes from, kept for SIGHUP. */
struct config_source {
    bool dev;
    const char *file;
    const char *const *sets;
    int nsets;
};

struct daemon {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sighup;
    rc_node *node;
    const struct rc_config *running;
    struct config_source src;
    int signals;
    bool stopped;
};

static void node_stopped_cb(void *data)
{
    struct daemon *d = data;
    d->stopped = true;
    /* h2o keeps referenced handles: the loop would not end by itself. */
    uv_stop(&d->loop);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    if (++d->signals > 1) {
        rc_warn("node", "second_signal signal=%d action=exit_now", signum);
        exit(1);
    }
    rc_info("node", "signal_received signal=%d action=graceful_stop", signum);
    if (d->node && !d->stopped)
        rc_node_stop(d->node, node_stopped_cb, d);
}

/* Tells the service manager that the node listens: systemd (Type=notify) and
 * start-stop-daemon --notify-await both wait for READY=1 on the datagram
 * socket named in NOTIFY_SOCKET ('@' = abstract name). Without the variable
 * there is nobody to tell; a failure only costs the manager's patience. */
static void notify_ready(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof sun.sun_path) {
        rc_warn("node", "notify_socket_unusable path=\"%s\"", path);
        return;
    }
    memcpy(sun.sun_path, path, len);
    if (path[0] == '@')
        sun.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc_warn("node", "notify_socket_failed error=\"%s\"", strerror(errno));
        return;
    }
    static const char msg[] = "READY=1";
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (sendto(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&sun, alen) < 0)
        rc_warn("node", "notify_ready_failed error=\"%s\"", strerror(errno));
    close(fd);
}

static int apply_set(struct rc_config *cfg, const char *arg, char *err, size_t errlen)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", arg) >= (int)sizeof buf) {
        snprintf(err, errlen, "--set %s: too long", arg);
        return -1;
    }
    char *eq = strchr(buf, '=');
    char *dot = eq ? memrchr(buf, '.', (size_t)(eq - buf)) : NULL;
    if (eq == NULL || dot == NULL) {
        snprintf(err, errlen, "--set %s: expected SECTION.KEY=VALUE", arg);
        return -1;
    }
    *eq = '\0';
    *dot = '\0';
    return rc_config_set(cfg, buf, dot + 1, eq + 1, err, errlen);
}

/* The configuration as the command line names it: --dev or the file, then
 * every --set, then the checks of rc_config_finish(). */
static int load_config(struct rc_config *cfg, const struct config_source *src, char *err, size_t errlen)
{
    if (src->dev)
        rc_config_dev(cfg);
    else {
        rc_config_defaults(cfg);
        if (rc_config_load(cfg, src->file, err, errlen) != 0)
            return -1;
    }
    for (int i = 0; i < src->nsets; i++)
        if (apply_set(cfg, src->sets[i], err, errlen) != 0)
            return -1;
    return rc_config_finish(cfg, err, errlen);
}

/* SIGHUP: the usual "reload" signal of daemons, and what log rotation
 * scripts send. Its default action would kill the node; here it checks the
 * file and says what a restart would change (docs/OPERATIONS.md). */
static void sighup_cb(uv_signal_t *h, int signum)
{
    (void)signum;
    struct daemon *d = h->data;
    if (d->src.dev) {
        rc_info("node", "sighup_config result=ignored reason=\"--dev has no configuration file\"");
        return;
    }
    struct rc_config *fresh = malloc(sizeof *fresh);
    char err[512], q[600], path[RC_CFG_STR + 16];
    if (fresh == NULL) {
        rc_warn("node", "sighup_config result=ignored reason=\"out of memory\"");
        return;
    }
    rc_log_quote(path, sizeof path, d->src.file, strlen(d->src.file));
    if (load_config(fresh, &d->src, err, sizeof err) != 0) {
        rc_warn("node", "sighup_config result=invalid path=%s error=%s action=running_configuration_kept", path,
                rc_log_quote(q, sizeof q, err, strlen(err)));
    } else {
        char keys[1024];
        size_t n = rc_config_diff(d->running, fresh, keys, sizeof keys);
        if (n == 0)
            rc_info("node", "sighup_config result=unchanged path=%s", path);
        else
            rc_warn("node", "sighup_config result=changed path=%s keys=%zu changed=%s action=restart_to_apply", path,
                    n, rc_log_quote(q, sizeof q, keys, strlen(keys)));
    }
    free(fresh);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dev", no_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"check", no_argument, NULL, 'k'},
        {"config-reference", no_argument, NULL, 'r'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    static struct rc_config cfg;
    const char *file = NULL;
    bool dev = false, check = false;
    const char *sets[64];
    int nsets = 0, c;
    char err[512];

    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dev = true; break;
        case 'c': file = optarg; break;
        case 's':
            if (nsets == 64) {
                fprintf(stderr, "ricochetd: too many --set options\n");
                return EXIT_CONFIG;
            }
            sets[nsets++] = optarg;
            break;
        case 'k': check = true; break;
        case 'r': rc_config_reference(stdout); return 0;
        case 'v': printf("ricochetd 0.1.0\n"); return 0;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return EXIT_CONFIG;
        }
    }
    if (optind < argc || dev == (file != NULL)) {
        fputs(usage, stderr);
        return EXIT_CONFIG;
    }
    const struct config_source src = {.dev = dev, .file = file, .sets = sets, .nsets = nsets};
    if (load_config(&cfg, &src, err, sizeof err) != 0) {
        fprintf(stderr, "ricochetd: config error: %s\n", err);
        return EXIT_CONFIG;
    }
    if (check) {
        printf("ricochetd: configuration ok\n");
        return 0;
    }
    rc_log_set_level(rc_log_level_parse(cfg.log_level));
    signal(SIGPIPE, SIG_IGN);

    static struct daemon d;
    d.running = &cfg;
    d.src = src;
    uv_loop_init(&d.loop);
    uv_signal_init(&d.loop, &d.sigterm);
    uv_signal_init(&d.loop, &d.sigint);
    uv_signal_init(&d.loop, &d.sighup);
    d.sigterm.data = d.sigint.data = d.sighup.data = &d;
    uv_signal_start(&d.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&d.sigint, signal_cb, SIGINT);
    uv_signal_start(&d.sighup, sighup_cb, SIGHUP);

    if (rc_node_start(&d.node, &d.loop, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "ricochetd: cannot start: %s\n", err);
        char q[sizeof err + 64];
        rc_error("node", "start_failed reason=%s", rc_log_quote(q, sizeof q, err, strlen(err)));
        uv_close((uv_handle_t *)&d.sigterm, NULL);
        uv_close((uv_handle_t *)&d.sigint, NULL);
        uv_close((uv_handle_t *)&d.sighup, NULL);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        uv_loop_close(&d.loop);
        return 1;
    }
    rc_node_print_listeners(d.node);
    rc_info("node", "started id=%llu site=%s", (unsigned long long)cfg.node_id, cfg.node_site);
    notify_ready();
    while (!d.stopped)
        uv_run(&d.loop, UV_RUN_DEFAULT);
    rc_node_free(d.node);
    uv_close((uv_handle_t *)&d.sigterm, NULL);
    uv_close((uv_handle_t *)&d.sigint, NULL);
    uv_close((uv_handle_t *)&d.sighup, NULL);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    int rv = uv_loop_close(&d.loop);
    if (rv != 0)
        rc_warn("node", "loop_close error=%s", uv_strerror(rv));
    return 0;
}
