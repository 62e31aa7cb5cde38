#define _GNU_SOURCE
/* ricochetd: the node daemon. Parses the command line and configuration,
 * starts the node on one libuv loop, and stops it gracefully on SIGTERM or
 * SIGINT (a second signal exits at once). */
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

struct daemon {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    rc_node *node;
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
    if (dev)
        rc_config_dev(&cfg);
    else {
        rc_config_defaults(&cfg);
        if (rc_config_load(&cfg, file, err, sizeof err) != 0) {
            fprintf(stderr, "ricochetd: config error: %s\n", err);
            return EXIT_CONFIG;
        }
    }
    for (int i = 0; i < nsets; i++)
        if (apply_set(&cfg, sets[i], err, sizeof err) != 0) {
            fprintf(stderr, "ricochetd: config error: %s\n", err);
            return EXIT_CONFIG;
        }
    if (rc_config_finish(&cfg, err, sizeof err) != 0) {
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
    uv_loop_init(&d.loop);
    uv_signal_init(&d.loop, &d.sigterm);
    uv_signal_init(&d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    uv_signal_start(&d.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&d.sigint, signal_cb, SIGINT);

    if (rc_node_start(&d.node, &d.loop, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "ricochetd: cannot start: %s\n", err);
        char q[sizeof err + 64];
        rc_error("node", "start_failed reason=%s", rc_log_quote(q, sizeof q, err, strlen(err)));
        uv_close((uv_handle_t *)&d.sigterm, NULL);
        uv_close((uv_handle_t *)&d.sigint, NULL);
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
    uv_run(&d.loop, UV_RUN_DEFAULT);
    int rv = uv_loop_close(&d.loop);
    if (rv != 0)
        rc_warn("node", "loop_close error=%s", uv_strerror(rv));
    return 0;
}
