/* ricochetd configuration: an INI file (inih) checked against a schema
 * table (rc_config.c). Every key has a type, a range and a default; docs/
 * CONFIG.md is generated from the same table (`ricochetd --config-reference`).
 *
 * Cluster members are [member.ID] sections (see docs/CONFIG.md). */
#ifndef RC_CONFIG_H
#define RC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RC_CFG_MAX_MEMBERS 16
#define RC_CFG_STR 256

struct rc_cfg_member {
    uint64_t id;
    char site[32];
    char address[16]; /* IPv4 literal */
    char address6[46]; /* IPv6 literal published as AAAA, or "" */
    char role[16];    /* voter, standby, spare */
    bool witness;
    unsigned raft_port, peer_port, smtp_port, submission_port, dns_port, http_port;
};

struct rc_config {
    /* [node] */
    uint64_t node_id;
    char node_site[32];
    char data_dir[RC_CFG_STR];
    char hostname[RC_CFG_STR];
    char log_level[16];

    /* [cluster] */
    char cluster_secret[RC_CFG_STR];
    unsigned raft_port, peer_port, smtp_port, submission_port, dns_port, http_port;
    struct rc_cfg_member members[RC_CFG_MAX_MEMBERS];
    size_t n_members;

    /* [raft] */
    uint64_t election_timeout_ms, heartbeat_timeout_ms;
    bool pre_vote;
    bool raft_join;
    uint64_t snapshot_threshold, snapshot_trailing;
    uint64_t max_entry_bytes, max_inflight_entries;
    uint64_t propose_timeout_ms;
    uint64_t min_free_bytes;
    bool auto_recovery;
    uint64_t max_peer_frame;
    uint64_t dedup_capacity;

    /* [smtp] */
    char smtp_listen[64], submission_listen[64];
    uint64_t max_message_size;
    char relay_networks[1024];
    uint64_t max_line, max_recipients, max_connections, max_connections_per_ip;
    uint64_t command_timeout_ms, data_timeout_ms, accept_timeout_ms;
    uint64_t max_errors, max_pipeline, max_unread_output;
    char tls_cert[RC_CFG_STR], tls_key[RC_CFG_STR], users_file[RC_CFG_STR];

    /* [delivery] */
    char resolver[64];
    uint64_t delivery_port;
    char retry_schedule[RC_CFG_STR];
    uint64_t expire_ms, ttr_ms;
    uint64_t delivery_max_conns, delivery_max_conns_domain, delivery_max_rcpts;
    bool delivery_verp_per_rcpt, delivery_dsn;
    uint64_t delivery_connect_timeout_ms, delivery_command_timeout_ms, delivery_data_timeout_ms;
    uint64_t delivery_idle_timeout_ms, delivery_dsn_max_full, delivery_transfer_wait_ms, delivery_retention_ms;
    uint64_t delivery_retention_scan_max;
    uint64_t delivery_delay_warning_ms;
    char delivery_tls[16];

    /* [dns] */
    char dns_listen[64], dns_zone[RC_CFG_STR], dns_relay_name[RC_CFG_STR], dns_bounce_name[RC_CFG_STR];
    uint64_t dns_ttl, dns_lease_ms;
    char dns_extra[1024];
    uint64_t dns_mx_pref_leader, dns_mx_pref_other;
    uint64_t dns_edns_udp_size, dns_answer_cache;
    uint64_t dns_tcp_max_clients, dns_tcp_idle_ms, dns_tcp_max_queries, dns_tcp_max_pending;
    bool dns_rrl;
    uint64_t dns_rrl_rate, dns_rrl_burst, dns_rrl_slip, dns_rrl_ipv4_prefix, dns_rrl_ipv6_prefix;

    /* [health] */
    uint64_t health_interval_ms, health_fail_after, health_ok_after, health_probe_timeout_ms;
    bool health_smtp_probe;

    /* [bounce] */
    char bounce_domain[RC_CFG_STR], bounce_secret[RC_CFG_STR + 8], feedback_address[RC_CFG_STR];
    uint64_t soft_bounce_limit;
    uint64_t bounce_notes_kept, bounce_max_size;

    /* [http] */
    char http_listen[64];
    uint64_t http_max_body;
    bool http_admin;

    /* [webhooks] */
    char webhooks_url[RC_CFG_STR], webhooks_secret[RC_CFG_STR], webhooks_events[RC_CFG_STR];
    uint64_t webhooks_batch_max, webhooks_timeout_ms, webhooks_retry_max_ms, webhooks_max_hold_ms;

    /* [tracking] */
    char tracking_url[RC_CFG_STR], tracking_secret[RC_CFG_STR + 8];
    uint64_t tracking_max_html, tracking_max_links, tracking_repeat_window_ms, tracking_max_events;
};

/* Fills every key with its default. */
void rc_config_defaults(struct rc_config *c);
/* The built-in one-node cluster of `ricochetd --dev` (loopback). */
void rc_config_dev(struct rc_config *c);
/* Loads path over the defaults. On error returns -1 with a message naming
 * the file, line, key and what is wrong. */
int rc_config_load(struct rc_config *c, const char *path, char *err, size_t errlen);
/* Sets one key ("section.key", value) as the file would. */
int rc_config_set(struct rc_config *c, const char *section, const char *key,
                  const char *value, char *err, size_t errlen);
/* Cross-key checks and derived values (own listen addresses from the member
 * table); call after loading. */
int rc_config_finish(struct rc_config *c, char *err, size_t errlen);

const struct rc_cfg_member *rc_config_member(const struct rc_config *c, uint64_t id);

/* The keys whose values differ between a and b (both finished), as
 * "section.key" names separated by ", " into out (cut at outlen; a member
 * section that differs in any field is "member.ID"). Returns how many. */
size_t rc_config_diff(const struct rc_config *a, const struct rc_config *b, char *out, size_t outlen);

/* Markdown reference of every key (docs/CONFIG.md). */
void rc_config_reference(FILE *out);

/* Parsers shared with the CLI: "90s", "5m", "48h", "2d", "250ms" (bare
 * numbers are seconds) and "25M", "512K", "1G" (bare numbers are bytes). */
int rc_parse_duration_ms(const char *s, uint64_t *out);
int rc_parse_size(const char *s, uint64_t *out);
/* delivery.retry_schedule: "5m,10m,1h" into at most max delays (ms, each at
 * least 1 s). */
#define RC_RETRY_MAX 32
int rc_retry_schedule_parse(const char *s, uint64_t *out, size_t max, size_t *n);

#endif
