/* Configuration: defaults, the dev layout, and clear errors (which key,
 * what is wrong) for bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/rc_config.h"

static struct rc_config cfg;
static char err[512];

static const char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/rc-config-test-%d.ini", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int load(const char *text)
{
    rc_config_defaults(&cfg);
    err[0] = '\0';
    int rv = rc_config_load(&cfg, write_tmp(text), err, sizeof err);
    if (rv == 0)
        rv = rc_config_finish(&cfg, err, sizeof err);
    return rv;
}

#define GOOD_MEMBERS                                                           \
    "[cluster]\nsecret = 0123456789abcdef0123\n"                               \
    "[member.1]\nsite = a\naddress = 127.0.0.11\n"                             \
    "[member.2]\nsite = b\naddress = 127.0.0.12\n"                             \
    "[member.3]\nsite = w\naddress = 127.0.0.13\nwitness = true\n"

static void test_good_file_and_derived_values(void **state)
{
    assert_int_equal(load("[node]\nid = 2\ndata_dir = /tmp/x\n[raft]\nelection_timeout = 300ms\n"
                          "[smtp]\nmax_message_size = 10M\n[delivery]\nexpire = 2d\n" GOOD_MEMBERS), 0);
    assert_int_equal(cfg.node_id, 2);
    assert_string_equal(cfg.node_site, "b");
    assert_int_equal(cfg.election_timeout_ms, 300);
    assert_int_equal(cfg.max_message_size, 10u << 20);
    assert_int_equal(cfg.expire_ms, 2ull * 86400000);
    assert_int_equal(cfg.n_members, 3);
    assert_true(cfg.members[2].witness);
    assert_string_equal(cfg.smtp_listen, "127.0.0.12:25");
    assert_string_equal(cfg.http_listen, "127.0.0.12:8080");
    assert_true(cfg.pre_vote); /* default on */
    assert_int_equal(cfg.members[0].raft_port, 7000);
}

/* What SIGHUP reports: the keys that differ, string keys by their text
 * (not by bytes left behind a shorter value), members by id. */
static void test_diff(void **state)
{
    static struct rc_config a, b;
    char keys[256];
    assert_int_equal(load("[node]\nid = 1\n[smtp]\nrelay_networks = 10.0.0.0/8,192.168.0.0/16\n" GOOD_MEMBERS), 0);
    a = cfg;
    assert_int_equal(load("[node]\nid = 1\n[smtp]\nrelay_networks = 10.0.0.0/8,192.168.0.0/16\n" GOOD_MEMBERS), 0);
    b = cfg;
    assert_int_equal(rc_config_diff(&a, &b, keys, sizeof keys), 0);
    assert_string_equal(keys, "");
    /* the same text after a longer one: equal */
    assert_int_equal(rc_config_set(&b, "smtp", "relay_networks", "10.0.0.0/8,192.168.0.0/16,172.16.0.0/12", err,
                                   sizeof err), 0);
    assert_int_equal(rc_config_set(&b, "smtp", "relay_networks", "10.0.0.0/8,192.168.0.0/16", err, sizeof err), 0);
    assert_int_equal(rc_config_diff(&a, &b, keys, sizeof keys), 0);
    assert_int_equal(load("[node]\nid = 1\n[smtp]\nmax_message_size = 1M\n[webhooks]\nurl = http://h/x\n"
                          "secret = s\n" GOOD_MEMBERS "[member.4]\nsite = b\naddress = 127.0.0.14\n"), 0);
    b = cfg;
    assert_int_equal(rc_config_diff(&a, &b, keys, sizeof keys), 5);
    assert_string_equal(keys, "smtp.max_message_size, smtp.relay_networks, webhooks.url, webhooks.secret, member.4");
    /* a member changed, and one gone the other way round */
    b.members[0].raft_port = 7100;
    assert_int_equal(rc_config_diff(&b, &a, keys, sizeof keys), 6);
    assert_non_null(strstr(keys, "member.1"));
    assert_non_null(strstr(keys, "member.4"));
    /* cut to the room given, never overrun */
    char small[12];
    assert_int_equal(rc_config_diff(&a, &b, small, sizeof small), 6);
    assert_int_equal(strlen(small), sizeof small - 1);
}

/* the SMTP limits that reach smtp_server_config through the node */
static void test_smtp_session_limits(void **state)
{
    assert_int_equal(load("[node]\nid = 1\n" GOOD_MEMBERS), 0);
    assert_int_equal(cfg.max_errors, 10);
    assert_int_equal(cfg.max_pipeline, 64u << 10);
    assert_int_equal(cfg.max_unread_output, 1u << 20);
    assert_int_equal(load("[node]\nid = 1\n[smtp]\nmax_errors = 3\nmax_pipeline = 8K\nmax_unread_output = 256K\n" GOOD_MEMBERS), 0);
    assert_int_equal(cfg.max_errors, 3);
    assert_int_equal(cfg.max_pipeline, 8u << 10);
    assert_int_equal(cfg.max_unread_output, 256u << 10);
    assert_int_not_equal(load("[node]\nid = 1\n[smtp]\nmax_errors = 0\n" GOOD_MEMBERS), 0);
    assert_non_null(strstr(err, "smtp.max_errors"));
}

struct bad_case {
    const char *text;
    const char *must_contain;
};

static void test_errors_name_the_key(void **state)
{
    static const struct bad_case cases[] = {
        {"[node]\nid = 1\n[raft]\nelection_timeout = soon\n" GOOD_MEMBERS, "raft.election_timeout"},
        {"[node]\nid = 1\n[raft]\nelection_timeout = 10ms\n" GOOD_MEMBERS, "out of range"},
        {"[node]\nid = 1\n[smtp]\nmax_message_size = 12X\n" GOOD_MEMBERS, "smtp.max_message_size"},
        {"[node]\nid = 1\n[smtp]\nlisten = localhost:25\n" GOOD_MEMBERS, "smtp.listen"},
        {"[node]\nid = 1\nbogus = 1\n" GOOD_MEMBERS, "node.bogus: unknown key"},
        {"[node]\nid = 9\n" GOOD_MEMBERS, "node.id: 9 has no [member.9]"},
        {"[node]\nid = 1\n[raft]\npre_vote = maybe\n" GOOD_MEMBERS, "raft.pre_vote"},
        {"[node]\nid = 1\n[member.1]\nsite = a\naddress = ::1\n", "IPv4"},
        {"[node]\nid = 1\n[member.1]\nsite = a\naddress = 127.0.0.1\n", "cluster.secret"},
        {"[node]\nid = 1\nthis line is not ini\n" GOOD_MEMBERS, "line 3"},
        {"[node]\nid = 1\n[member.x]\nsite = a\n", "[member.ID]"},
        {"[node]\nid = 1\n" GOOD_MEMBERS "[member.4]\nsite = a\naddress = 127.0.0.11\n", "same raft address"},
        {"[node]\nid = 1\n" GOOD_MEMBERS "[member.4]\nsite = a\naddress = 127.0.0.14\nrole = standby\nwitness = yes\n", "witness must be a voter"},
        {"[node]\nid = 1\n[smtp]\ntls_cert = /x.pem\n" GOOD_MEMBERS, "set both or neither"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (load(cases[i].text) == 0)
            fail_msg("case %zu accepted: %s", i, cases[i].text);
        if (strstr(err, cases[i].must_contain) == NULL)
            fail_msg("case %zu: error \"%s\" does not mention \"%s\"", i, err, cases[i].must_contain);
    }
}

static void test_missing_file(void **state)
{
    rc_config_defaults(&cfg);
    assert_int_not_equal(rc_config_load(&cfg, "/nonexistent/ricochet.conf", err, sizeof err), 0);
    assert_non_null(strstr(err, "cannot open"));
}

static void test_dev_defaults(void **state)
{
    rc_config_dev(&cfg);
    assert_int_equal(rc_config_finish(&cfg, err, sizeof err), 0);
    assert_string_equal(cfg.smtp_listen, "127.0.0.1:2525");
    assert_string_equal(cfg.dns_listen, "127.0.0.1:5353");
    assert_string_equal(cfg.http_listen, "127.0.0.1:8080");
    assert_string_equal(cfg.data_dir, "./ricochet-data");
}

static void test_value_parsers(void **state)
{
    uint64_t v;
    assert_int_equal(rc_parse_duration_ms("90", &v), 0);
    assert_int_equal(v, 90000);
    assert_int_equal(rc_parse_duration_ms("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(rc_parse_duration_ms("48h", &v), 0);
    assert_int_equal(v, 48ull * 3600000);
    assert_int_not_equal(rc_parse_duration_ms("-1s", &v), 0);
    assert_int_not_equal(rc_parse_duration_ms("1w", &v), 0);
    assert_int_not_equal(rc_parse_duration_ms("99999999999999999999d", &v), 0);
    assert_int_equal(rc_parse_size("25M", &v), 0);
    assert_int_equal(v, 25u << 20);
    assert_int_equal(rc_parse_size("512KiB", &v), 0);
    assert_int_equal(v, 512u << 10);
    assert_int_not_equal(rc_parse_size("5Q", &v), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file_and_derived_values),
        cmocka_unit_test(test_errors_name_the_key),
        cmocka_unit_test(test_smtp_session_limits),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_dev_defaults),
        cmocka_unit_test(test_value_parsers),
        cmocka_unit_test(test_diff),
    };
    int rv = cmocka_run_group_tests(tests, NULL, NULL);
    char path[64];
    snprintf(path, sizeof path, "/tmp/rc-config-test-%d.ini", (int)getpid());
    unlink(path);
    return rv;
}
