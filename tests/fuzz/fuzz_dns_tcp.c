/* Raw bytes from a TCP client into the responder (dns_server.c) over a real
 * loopback connection on a real libuv loop: the 2-byte length framing,
 * partial messages, pipelined queries, the answer path, and the connection
 * teardown. The client half-closes after sending; the run ends at the
 * server's EOF. Every answer received must be a complete, parseable DNS
 * message, at most one per complete query. Binds 127.0.0.39 (port from the
 * kernel). */
#include "dns/dns_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAIL(why) do { fprintf(stderr, "fuzz_dns_tcp: %s (errno %d)\n", why, errno); abort(); } while (0)

static uv_loop_t loop;
static dns_server *srv;
static int port;

static void setup(void)
{
    static const struct dns_view_node nodes[] = {
        { .name = "n1", .site = "a", .ipv4 = "127.0.0.31", .ipv6 = "fd00::31", .smtp = 1, .dns = 1, .healthy = 1 },
        { .name = "n2", .site = "b", .ipv4 = "127.0.0.32", .smtp = 1, .dns = 1, .healthy = 1 },
    };
    struct dns_view v = { .zone = "mx.test", .relay_name = "relay", .serial = 1, .leader_site = "a",
                          .nodes = nodes, .n_nodes = 2 };
    struct dns_server_config cfg = { .listen = "127.0.0.39:0", .rrl_disable = 1, .tcp_idle_ms = 60000 };
    char err[256];
    uv_loop_init(&loop);
    if (dns_server_new(&srv, &loop, &cfg, err, sizeof err) != DNS_SERVER_OK ||
        dns_server_set_view(srv, &v, err, sizeof err) != DNS_SERVER_OK)
        FAIL(err);
    port = atoi(strrchr(dns_server_address(srv), ':') + 1);
}

/* Complete messages in the input (stops at the first short one, which makes
 * the server close the connection). */
static size_t complete_queries(const uint8_t *d, size_t n)
{
    size_t off = 0, count = 0;
    while (n - off >= 2) {
        size_t len = (size_t)d[off] << 8 | d[off + 1];
        if (len < 12 || n - off - 2 < len)
            break;
        off += 2 + len;
        count++;
    }
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t in[1 << 20];
    if (srv == NULL)
        setup();
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.39", &sa.sin_addr);
    /* hundreds of thousands of connections leave client ports in TIME_WAIT,
     * and libFuzzer's timer signal interrupts connect: both are the
     * harness's problem, not the server's; retry for a while, then skip */
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 2000; tries++) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            FAIL("socket");
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            /* EINTR: libFuzzer's timer signal */
            if (errno != EADDRNOTAVAIL && errno != EAGAIN && errno != EINTR)
                FAIL("connect");
            close(fd);
            fd = -1;
            uv_run(&loop, UV_RUN_NOWAIT);
            usleep(1000);
        }
    }
    if (fd < 0) {
        fprintf(stderr, "fuzz_dns_tcp: no client port free, input skipped\n");
        return 0;
    }
    size_t sent = 0, got = 0;
    int eof = 0;
    while (!eof) {
        if (sent < size) {
            ssize_t w = send(fd, data + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                sent = size; /* the server closed on us: stop sending */
            if (sent == size)
                shutdown(fd, SHUT_WR);
        } else if (size == 0 && sent == 0) {
            shutdown(fd, SHUT_WR);
            sent = 1;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t r = recv(fd, in + got, sizeof in - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            eof = 1;
        if (got == sizeof in)
            FAIL("more answer bytes than the buffer holds");
    }
    close(fd);
    uv_run(&loop, UV_RUN_NOWAIT); /* let the server free the connection */
    /* every answer: complete, parseable, and no more answers than queries */
    size_t off = 0, answers = 0;
    while (off < got) {
        if (got - off < 2)
            FAIL("an answer cut inside its length");
        size_t len = (size_t)in[off] << 8 | in[off + 1];
        if (got - off - 2 < len || len < 12)
            FAIL("an answer shorter than its length or than a header");
        ldns_pkt *p = NULL;
        if (ldns_wire2pkt(&p, in + off + 2, len) != LDNS_STATUS_OK)
            FAIL("an answer ldns cannot parse");
        ldns_pkt_free(p);
        off += 2 + len;
        answers++;
    }
    if (answers > complete_queries(data, size))
        FAIL("more answers than queries");
    if (getenv("FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "queries=%zu answers=%zu\n", complete_queries(data, size), answers);
    return 0;
}
