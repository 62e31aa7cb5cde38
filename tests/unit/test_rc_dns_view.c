/* The zone a node publishes for a cluster state (rc_dns_view_from +
 * dns_zone_build): a 2+2+1 member table, replicated views with a leader
 * site, unhealthy and drained nodes, no view yet, and the dns.* keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "node/rc_dns.h"

static struct rc_config cfg;

static void set(const char *section, const char *key, const char *value)
{
    char err[256];
    assert_int_equal(rc_config_set(&cfg, section, key, value, err, sizeof err), 0);
}

static void cluster_2_2_1(void)
{
    rc_config_defaults(&cfg);
    set("node", "id", "1");
    set("node", "data_dir", "/tmp/unused");
    set("cluster", "secret", "0123456789abcdef0123");
    set("dns", "zone", "mx.example.net");
    static const char *const members[][3] = {
        {"member.1", "a", "192.0.2.1"}, {"member.2", "a", "192.0.2.2"}, {"member.3", "b", "198.51.100.3"},
        {"member.4", "b", "198.51.100.4"}, {"member.5", "w", "203.0.113.5"},
    };
    for (size_t i = 0; i < 5; i++) {
        set(members[i][0], "site", members[i][1]);
        set(members[i][0], "address", members[i][2]);
    }
    set("member.5", "witness", "true");
    char err[256];
    assert_int_equal(rc_config_finish(&cfg, err, sizeof err), 0);
}

/* The zone for (cfg, view) printed, one record per line. */
static char *zone_text(const struct rc_view *rv, uint32_t *serial)
{
    struct dns_view v;
    struct rc_dns_view_storage st;
    rc_dns_view_from(&cfg, rv, NULL, 0, &v, &st);
    dns_zone *z;
    char err[256];
    assert_int_equal(dns_zone_build(&z, &v, err, sizeof err), DNS_SERVER_OK);
    if (serial)
        *serial = dns_zone_serial(z);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    dns_zone_print(z, f);
    fclose(f);
    dns_zone_free(z);
    return buf;
}

static int has(const char *text, const char *owner, const char *type, const char *rdata)
{
    char want[256];
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)l, p);
        snprintf(want, sizeof want, "%s", owner);
        if (strncmp(line, want, strlen(want)) == 0 && strstr(line, type) && strstr(line, rdata))
            return 1;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

static struct rc_view view_all_healthy(const char *leader_site, uint64_t serial)
{
    struct rc_view v;
    memset(&v, 0, sizeof v);
    v.serial = serial;
    v.leader = strcmp(leader_site, "a") == 0 ? 1 : 3;
    snprintf(v.leader_site, sizeof v.leader_site, "%s", leader_site);
    for (uint64_t id = 1; id <= 5; id++)
        v.nodes[v.n_nodes++] = (struct rc_view_node){.id = id, .healthy = true};
    return v;
}

static void leader_site_preferred_witness_never_mx(void **state)
{
    (void)state;
    cluster_2_2_1();
    struct rc_view v = view_all_healthy("b", 7);
    uint32_t serial;
    char *z = zone_text(&v, &serial);
    assert_int_equal(serial, 7);
    assert_true(has(z, "relay.mx.example.net.", "MX", "10 n3.mx.example.net."));
    assert_true(has(z, "relay.mx.example.net.", "MX", "10 n4.mx.example.net."));
    assert_true(has(z, "relay.mx.example.net.", "MX", "20 n1.mx.example.net."));
    assert_true(has(z, "relay.mx.example.net.", "MX", "20 n2.mx.example.net."));
    assert_true(has(z, "bounce.mx.example.net.", "MX", "10 n3.mx.example.net."));
    assert_false(has(z, "relay.mx.example.net.", "MX", "n5."));
    assert_true(has(z, "mx.example.net.", "NS", "n5.mx.example.net."));
    assert_true(has(z, "n5.mx.example.net.", "A", "203.0.113.5"));
    assert_true(has(z, "n3.mx.example.net.", "A", "198.51.100.3"));
    free(z);
}

static void unhealthy_and_drained_leave_mx(void **state)
{
    (void)state;
    cluster_2_2_1();
    struct rc_view v = view_all_healthy("a", 9);
    v.nodes[1].drained = true;  /* node 2 */
    v.nodes[2].healthy = false; /* node 3 */
    char *z = zone_text(&v, NULL);
    assert_true(has(z, "relay.mx.example.net.", "MX", "10 n1.mx.example.net."));
    assert_true(has(z, "relay.mx.example.net.", "MX", "20 n4.mx.example.net."));
    assert_false(has(z, "relay.mx.example.net.", "MX", "n2.mx"));
    assert_false(has(z, "relay.mx.example.net.", "MX", "n3.mx"));
    assert_true(has(z, "mx.example.net.", "NS", "n2.mx.example.net.")); /* drained: still a name server */
    assert_false(has(z, "mx.example.net.", "NS", "n3.mx.example.net.")); /* unhealthy: not */
    assert_true(has(z, "n3.mx.example.net.", "A", "198.51.100.3"));      /* names stay */
    free(z);
}

static void unknown_nodes_are_unhealthy(void **state)
{
    (void)state;
    cluster_2_2_1();
    struct rc_view v = view_all_healthy("a", 3);
    v.n_nodes = 2; /* nodes 3, 4, 5 not judged yet */
    char *z = zone_text(&v, NULL);
    assert_true(has(z, "relay.mx.example.net.", "MX", "10 n1.mx.example.net."));
    assert_false(has(z, "relay.mx.example.net.", "MX", "n3.mx"));
    free(z);
}

static void config_keys_apply(void **state)
{
    (void)state;
    cluster_2_2_1();
    set("dns", "relay_name", "smtp");
    set("dns", "ttl", "60");
    set("dns", "mx_pref_leader", "5");
    set("dns", "mx_pref_other", "50");
    set("member.3", "address6", "2001:db8::3");
    char err6[256];
    assert_int_not_equal(rc_config_set(&cfg, "member.4", "address6", "192.0.2.4", err6, sizeof err6), 0);
    struct rc_view v = view_all_healthy("a", 4);
    const char *extra[] = {"@ TXT \"v=spf1 -all\""};
    struct dns_view dv;
    struct rc_dns_view_storage st;
    rc_dns_view_from(&cfg, &v, extra, 1, &dv, &st);
    assert_int_equal(dv.ttl, 60);
    assert_int_equal(dv.n_extra, 1);
    dns_zone *zz;
    char err[256];
    assert_int_equal(dns_zone_build(&zz, &dv, err, sizeof err), DNS_SERVER_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    dns_zone_print(zz, f);
    fclose(f);
    dns_zone_free(zz);
    assert_true(has(buf, "smtp.mx.example.net.", "MX", "5 n1.mx.example.net."));
    assert_true(has(buf, "smtp.mx.example.net.", "MX", "50 n3.mx.example.net."));
    assert_true(has(buf, "mx.example.net.", "TXT", "v=spf1 -all"));
    assert_true(has(buf, "n1.mx.example.net.", "60", "192.0.2.1"));
    /* member.N.address6: AAAA beside the A record */
    assert_true(has(buf, "n3.mx.example.net.", "AAAA", "2001:db8::3"));
    assert_true(has(buf, "n3.mx.example.net.", "A", "198.51.100.3"));
    assert_false(has(buf, "n4.mx.example.net.", "AAAA", ""));
    free(buf);
}

static void no_view_yet(void **state)
{
    (void)state;
    cluster_2_2_1();
    struct dns_view dv;
    struct rc_dns_view_storage st;
    rc_dns_view_from(&cfg, NULL, NULL, 0, &dv, &st);
    assert_null(dv.leader_site);
    assert_int_equal(dv.serial, 0);
    for (size_t i = 0; i < dv.n_nodes; i++)
        assert_false(dv.nodes[i].healthy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(leader_site_preferred_witness_never_mx),
        cmocka_unit_test(unhealthy_and_drained_leave_mx),
        cmocka_unit_test(unknown_nodes_are_unhealthy),
        cmocka_unit_test(config_keys_apply),
        cmocka_unit_test(no_view_yet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
