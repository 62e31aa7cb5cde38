/* Configuration schema and loader. Each key is one row of `schema`: its
 * type, range, default and documentation; the loader, the defaults and the
 * generated reference (docs/CONFIG.md) all read the same row. */
#include "node/rc_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "node/base/rc_log.h"

enum cfg_type { T_STR, T_UINT, T_BOOL, T_DURATION, T_SIZE, T_ADDR, T_PORT };

struct cfg_item {
    const char *section, *key;
    enum cfg_type type;
    uint64_t min, max;
    const char *def;
    size_t offset, size;
    const char *doc;
};

#define F(field) offsetof(struct rc_config, field), sizeof(((struct rc_config *)0)->field)
#define U64MAX UINT64_MAX

static const struct cfg_item schema[] = {
    {"node", "id", T_UINT, 1, 1000000, "1", F(node_id), "This node's id; a [member.ID] section must describe it."},
    {"node", "site", T_STR, 0, 0, "", F(node_site), "Site name (taken from the member table when empty)."},
    {"node", "data_dir", T_STR, 0, 0, "/var/lib/ricochet", F(data_dir), "Raft log, snapshots and the body spool. Needs O_DIRECT (ext4, xfs, btrfs, tmpfs; not ramfs)."},
    {"node", "hostname", T_STR, 0, 0, "", F(hostname), "Name used in SMTP greetings and Received: headers (default: the system host name)."},
    {"node", "log_level", T_STR, 0, 0, "info", F(log_level), "debug, info, warn or error."},

    {"cluster", "secret", T_STR, 0, 0, "", F(cluster_secret), "Shared secret authenticating the peer channel (required, at least 16 characters)."},
    {"cluster", "raft_port", T_PORT, 1, 65535, "7000", F(raft_port), "Default raft port of every member."},
    {"cluster", "peer_port", T_PORT, 1, 65535, "7001", F(peer_port), "Default peer-channel port of every member."},
    {"cluster", "smtp_port", T_PORT, 1, 65535, "25", F(smtp_port), "Default MX/relay SMTP port of every member."},
    {"cluster", "submission_port", T_PORT, 0, 65535, "587", F(submission_port), "Default submission port of every member (0: none)."},
    {"cluster", "dns_port", T_PORT, 1, 65535, "53", F(dns_port), "Default DNS port of every member."},
    {"cluster", "http_port", T_PORT, 1, 65535, "8080", F(http_port), "Default HTTP API port of every member."},

    {"raft", "election_timeout", T_DURATION, 100, 60000, "1s", F(election_timeout_ms), "Base election timeout (randomised 1x-2x by libraft; the witness uses twice this)."},
    {"raft", "heartbeat_timeout", T_DURATION, 10, 10000, "100ms", F(heartbeat_timeout_ms), "Leader heartbeat interval."},
    {"raft", "pre_vote", T_BOOL, 0, 1, "true", F(pre_vote), "Pre-vote (Raft thesis 9.6); off makes failover about 3x slower."},
    {"raft", "join", T_BOOL, 0, 1, "false", F(raft_join), "This node joins a running cluster: with an empty data directory it does not bootstrap the member table as the cluster's first configuration, but waits for the leader to add it (`ricochetctl members sync`). Off: the nodes of a new cluster all bootstrap the same member table."},
    {"raft", "snapshot_threshold", T_UINT, 16, 10000000, "8192", F(snapshot_threshold), "Entries applied between two snapshots. The event loop re-encodes only the messages changed since the last one (the rest is assembled on a worker thread), and libraft pauses appends while it writes one, so not too often; but the log on disk holds this many entries."},
    {"raft", "snapshot_trailing", T_UINT, 0, 10000000, "2048", F(snapshot_trailing), "Entries kept in the log after a snapshot (lagging followers catch up from them)."},
    {"raft", "max_entry_size", T_SIZE, 4096, 1u << 30, "1M", F(max_entry_bytes), "Records are batched into entries up to this size."},
    {"raft", "max_inflight_entries", T_UINT, 1, 4096, "64", F(max_inflight_entries), "Raft entries in flight at once; beyond it batches grow."},
    {"raft", "propose_timeout", T_DURATION, 100, 600000, "10s", F(propose_timeout_ms), "A forwarded proposal without a result after this fails (outcome unknown)."},
    {"raft", "min_free_disk", T_SIZE, 0, U64MAX, "256M", F(min_free_bytes), "Proposals are refused (4xx to clients) when the data directory has less free space."},
    {"raft", "auto_recovery", T_BOOL, 0, 1, "false", F(auto_recovery), "Let libraft truncate a corrupt open segment at start (may lose entries). Off: the node refuses to start."},
    {"raft", "max_peer_frame", T_SIZE, 65536, 1u << 30, "64M", F(max_peer_frame), "Largest peer-channel frame accepted."},
    {"raft", "dedup_capacity", T_UINT, 1000, 100000000, "100000", F(dedup_capacity), "Request ids remembered so that a retried proposal applies once."},

    {"smtp", "listen", T_ADDR, 0, 0, "", F(smtp_listen), "MX/relay listener HOST:PORT (default: member address and smtp_port)."},
    {"smtp", "submission_listen", T_ADDR, 0, 0, "", F(submission_listen), "Submission listener HOST:PORT with AUTH (default: member address and submission_port)."},
    {"smtp", "max_message_size", T_SIZE, 1024, 1u << 30, "25M", F(max_message_size), "SIZE limit; larger messages get 552 5.3.4."},
    {"smtp", "relay_networks", T_STR, 0, 0, "", F(relay_networks), "Comma-separated CIDRs allowed to relay without AUTH."},
    {"smtp", "max_line", T_UINT, 512, 65536, "1000", F(max_line), "Longest command or text line (octets, CRLF included)."},
    {"smtp", "max_recipients", T_UINT, 1, 100000, "100", F(max_recipients), "Recipients per message; more get 452 4.5.3."},
    {"smtp", "max_connections", T_UINT, 1, 1000000, "10000", F(max_connections), "Concurrent SMTP sessions per node."},
    {"smtp", "max_connections_per_ip", T_UINT, 1, 1000000, "100", F(max_connections_per_ip), "Concurrent SMTP sessions per client address."},
    {"smtp", "command_timeout", T_DURATION, 1000, 3600000, "5m", F(command_timeout_ms), "Idle time allowed between commands (RFC 5321 4.5.3.2)."},
    {"smtp", "data_timeout", T_DURATION, 1000, 3600000, "10m", F(data_timeout_ms), "Idle time allowed inside DATA."},
    {"smtp", "max_errors", T_UINT, 1, 1000, "10", F(max_errors), "Bad commands in a session before 421 4.7.0 and close."},
    {"smtp", "max_pipeline", T_SIZE, 1024, 64u << 20, "64K", F(max_pipeline), "Input buffered while a reply is pending; beyond it reading pauses, and a client that keeps sending gets 421 4.7.0."},
    {"smtp", "max_unread_output", T_SIZE, 4096, 1u << 30, "1M", F(max_unread_output), "Replies queued to a client that does not read them; beyond it the connection is closed."},
    {"smtp", "accept_timeout", T_DURATION, 100, 600000, "10s", F(accept_timeout_ms), "Time to commit an accepted message; then 451 4.3.0."},
    {"smtp", "tls_cert", T_STR, 0, 0, "", F(tls_cert), "PEM certificate chain for STARTTLS (empty: no STARTTLS)."},
    {"smtp", "tls_key", T_STR, 0, 0, "", F(tls_key), "PEM private key for STARTTLS."},
    {"smtp", "users_file", T_STR, 0, 0, "", F(users_file), "AUTH users with salted password hashes (empty: no AUTH)."},

    {"delivery", "resolver", T_ADDR, 0, 0, "", F(resolver), "Recursive resolver HOST:PORT for MX lookups (default: first nameserver of /etc/resolv.conf)."},
    {"delivery", "port", T_PORT, 1, 65535, "25", F(delivery_port), "TCP port used to reach recipients' MX hosts."},
    {"delivery", "retry_schedule", T_STR, 0, 0, "5m,10m,30m,1h,2h,4h", F(retry_schedule), "Delays between attempts; the last repeats until expiry."},
    {"delivery", "expire", T_DURATION, 1000, 30ull * 86400000, "48h", F(expire_ms), "Recipients with only temporary failures become expired after this."},
    {"delivery", "ttr", T_DURATION, 1000, 30ull * 86400000, "72h", F(ttr_ms), "Time to respond: recipients without any outcome by then become lost_in_space."},

    {"delivery", "max_connections", T_UINT, 1, 100000, "100", F(delivery_max_conns), "Outgoing SMTP connections of the delivering node, all domains together."},
    {"delivery", "max_connections_per_domain", T_UINT, 1, 10000, "10", F(delivery_max_conns_domain), "Outgoing SMTP connections to one recipient domain."},
    {"delivery", "max_rcpts", T_UINT, 1, 1000, "50", F(delivery_max_rcpts), "Recipients of one message sent in one transaction (RCPT commands) to one domain."},
    {"delivery", "verp_per_recipient", T_BOOL, 0, 1, "false", F(delivery_verp_per_rcpt), "One transaction per recipient, each with its own VERP return path (exact bounce mapping even for reports that name no recipient). Off: recipients of one message and domain share a transaction and a message-level return path (docs/EGRESS.md)."},
    {"delivery", "connect_timeout", T_DURATION, 100, 600000, "30s", F(delivery_connect_timeout_ms), "TCP connect to an MX host (then the next host; internal code 160)."},
    {"delivery", "command_timeout", T_DURATION, 100, 3600000, "5m", F(delivery_command_timeout_ms), "Wait for the greeting and for each reply (internal code 146)."},
    {"delivery", "data_timeout", T_DURATION, 100, 3600000, "10m", F(delivery_data_timeout_ms), "Wait for the reply after the final dot (internal code 147)."},
    {"delivery", "idle_timeout", T_DURATION, 0, 3600000, "10s", F(delivery_idle_timeout_ms), "An idle outgoing connection is kept this long for the next transaction to the same domain (0: close at once)."},
    {"delivery", "tls", T_STR, 0, 0, "opportunistic", F(delivery_tls), "STARTTLS policy: none, opportunistic (when offered) or required (else try the next host, then defer)."},
    {"delivery", "dsn", T_BOOL, 0, 1, "true", F(delivery_dsn), "Send delivery status notifications (RFC 3464) to the envelope sender as NOTIFY asks (failures when NOTIFY was not given; never for the null sender)."},
    {"delivery", "delay_warning", T_DURATION, 0, 30ull * 86400000, "4h", F(delivery_delay_warning_ms), "A recipient whose NOTIFY asks for DELAY and that is still deferred this long after acceptance gets one delay DSN (0: never)."},
    {"delivery", "dsn_max_full", T_SIZE, 0, 1u << 30, "1M", F(delivery_dsn_max_full), "Largest original returned whole in a DSN (RET=FULL or no RET); larger ones are returned as headers only."},
    {"delivery", "retention", T_DURATION, 1000, 3650ull * 86400000, "7d", F(delivery_retention_ms), "A message whose every recipient is final is removed from the state, and its body from every spool, this long after its last event (late asynchronous bounces and complaints for it are then kept as unmapped notes)."},
    {"delivery", "retention_scan_max", T_UINT, 100, 100000000, "20000", F(delivery_retention_scan_max), "Messages one retention sweep (every 5 s, on the leader's event loop) looks at; a larger state is covered over several sweeps."},
    {"delivery", "transfer_wait", T_DURATION, 0, 600000, "30s", F(delivery_transfer_wait_ms), "A planned leadership transfer first lets attempts in flight finish, for at most this long."},

    {"dns", "listen", T_ADDR, 0, 0, "", F(dns_listen), "DNS listener HOST:PORT, UDP and TCP (default: member address and dns_port)."},
    {"dns", "zone", T_STR, 0, 0, "mx.example.net", F(dns_zone), "Zone the cluster is authoritative for."},
    {"dns", "relay_name", T_STR, 0, 0, "relay", F(dns_relay_name), "Name (relative to the zone, or absolute with a final dot) that gets the MX records clients use."},
    {"dns", "bounce_name", T_STR, 0, 0, "bounce", F(dns_bounce_name), "Name that gets the MX records for bounces."},
    {"dns", "ttl", T_UINT, 1, 86400, "30", F(dns_ttl), "TTL of every published record (seconds)."},
    {"dns", "lease", T_DURATION, 500, 600000, "3s", F(dns_lease_ms), "Without leader contact for this long the node answers SERVFAIL and refuses mail."},
    {"dns", "extra", T_STR, 0, 0, "", F(dns_extra), "Static records published as well, zone-file syntax with owners relative to the zone, separated by `|` (e.g. `@ TXT \"v=spf1 -all\" | relay TXT \"x\"`); SOA, NS, CNAME, DNAME refused."},
    {"dns", "mx_pref_leader", T_UINT, 1, 65535, "10", F(dns_mx_pref_leader), "MX preference of the nodes in the leader's site."},
    {"dns", "mx_pref_other", T_UINT, 1, 65535, "20", F(dns_mx_pref_other), "MX preference of the nodes in the other sites (fallback)."},
    {"dns", "edns_udp_size", T_UINT, 512, 4096, "1232", F(dns_edns_udp_size), "Largest UDP response (EDNS0); larger answers are truncated (TC) and retried over TCP."},
    {"dns", "answer_cache", T_UINT, 0, 1000000, "1024", F(dns_answer_cache), "Rendered responses kept per zone version (0: render every response)."},
    {"dns", "tcp_max_clients", T_UINT, 1, 100000, "128", F(dns_tcp_max_clients), "Concurrent DNS TCP connections; more are accepted and closed at once."},
    {"dns", "tcp_idle_timeout", T_DURATION, 100, 600000, "10s", F(dns_tcp_idle_ms), "Idle DNS TCP connection closed after."},
    {"dns", "tcp_max_queries", T_UINT, 1, 1000000, "1000", F(dns_tcp_max_queries), "Queries answered per DNS TCP connection."},
    {"dns", "tcp_max_pending", T_SIZE, 4096, 1u << 26, "64K", F(dns_tcp_max_pending), "Unsent bytes per DNS TCP connection before reading pauses."},
    {"dns", "rrl", T_BOOL, 0, 1, "true", F(dns_rrl), "Response rate limiting per client prefix (UDP)."},
    {"dns", "rrl_rate", T_UINT, 1, 1000000, "100", F(dns_rrl_rate), "Responses per second per client prefix."},
    {"dns", "rrl_burst", T_UINT, 0, 10000000, "0", F(dns_rrl_burst), "Bucket size (0: twice rrl_rate)."},
    {"dns", "rrl_slip", T_UINT, 0, 100, "2", F(dns_rrl_slip), "Every slip-th limited response is sent truncated instead of dropped (0: the default 2, 1: always)."},
    {"dns", "rrl_ipv4_prefix", T_UINT, 8, 32, "24", F(dns_rrl_ipv4_prefix), "IPv4 client prefix length that shares a bucket."},
    {"dns", "rrl_ipv6_prefix", T_UINT, 16, 128, "56", F(dns_rrl_ipv6_prefix), "IPv6 client prefix length that shares a bucket."},

    {"health", "interval", T_DURATION, 50, 60000, "200ms", F(health_interval_ms), "How often the leader checks every node (raft contact and the SMTP probe)."},
    {"health", "fail_after", T_UINT, 1, 1000, "3", F(health_fail_after), "Consecutive failed checks before a node leaves the MX set."},
    {"health", "ok_after", T_UINT, 1, 1000, "2", F(health_ok_after), "Consecutive good checks before a node returns to the MX set."},
    {"health", "smtp_probe", T_BOOL, 0, 1, "true", F(health_smtp_probe), "The leader connects to each SMTP node's listener and expects a 220 greeting."},
    {"health", "probe_timeout", T_DURATION, 10, 60000, "1s", F(health_probe_timeout_ms), "SMTP probe deadline (connect and greeting)."},

    {"bounce", "domain", T_STR, 0, 0, "bounce.mx.example.net", F(bounce_domain), "Domain of the VERP return paths."},
    {"bounce", "secret", T_STR, 0, 0, "", F(bounce_secret), "HMAC key of VERP tokens (default: derived from cluster.secret)."},
    {"bounce", "feedback_address", T_STR, 0, 0, "", F(feedback_address), "Address that receives ARF feedback reports."},
    {"bounce", "soft_bounce_limit", T_UINT, 1, 1000, "5", F(soft_bounce_limit), "Consecutive soft bounces that suppress an address."},
    {"bounce", "notes_kept", T_UINT, 1, 100000, "100", F(bounce_notes_kept), "Incoming bounces that changed nothing (forged, unmapped, unrecognized, ignored) kept in the replicated state for GET /v1/bounces; they are counted regardless."},
    {"bounce", "max_size", T_SIZE, 1024, 1u << 30, "1M", F(bounce_max_size), "Largest bounce or complaint analysed; bigger ones are kept as unrecognized notes."},

    {"http", "listen", T_ADDR, 0, 0, "", F(http_listen), "HTTP API HOST:PORT (default: member address and http_port)."},
    {"http", "max_body", T_SIZE, 1024, 1u << 30, "1M", F(http_max_body), "Largest request body."},
    {"http", "admin", T_BOOL, 0, 1, "true", F(http_admin), "Serve admin endpoints (transfer, drain, probe)."},

    {"webhooks", "url", T_STR, 0, 0, "", F(webhooks_url), "http:// or https:// URL that receives every recipient's status changes as signed JSON POSTs, from the leader, at least once and in order per recipient (empty: none; docs/WEBHOOKS.md)."},
    {"webhooks", "secret", T_STR, 0, 0, "", F(webhooks_secret), "HMAC-SHA256 key of the X-Ricochet-Signature header (required with a url)."},
    {"webhooks", "events", T_STR, 0, 0, "", F(webhooks_events), "Statuses to send, comma-separated (e.g. `bounced,complained,failed`); empty: all. Others are skipped, not queued."},
    {"webhooks", "batch_max", T_UINT, 1, 10000, "100", F(webhooks_batch_max), "Most events in one POST."},
    {"webhooks", "timeout", T_DURATION, 100, 600000, "10s", F(webhooks_timeout_ms), "One POST's deadline (connect to answer); past it the POST failed."},
    {"webhooks", "max_hold", T_DURATION, 0, 3650ull * 86400000, "7d", F(webhooks_max_hold_ms), "delivery.retention keeps a message whose events the receiver has not all acknowledged this much longer; after that it is forgotten anyway and its events counted as dropped."},
    {"webhooks", "retry_max", T_DURATION, 1000, 86400000, "5m", F(webhooks_retry_max_ms), "Longest wait between attempts after failed POSTs (the wait starts at 1s and doubles)."},
    {"tracking", "url", T_STR, 0, 0, "", F(tracking_url), "Public http:// or https:// URL, without a trailing '/', at which recipients reach this cluster's tracking endpoint (`/t/` of the HTTP API, usually behind a reverse proxy). Messages submitted with `X-Ricochet-Track: opens, clicks` get an open pixel and their links rewritten to it, one copy per recipient (docs/TRACKING.md). Empty: tracking off, such messages go out unchanged."},
    {"tracking", "secret", T_STR, 0, 0, "", F(tracking_secret), "HMAC key of tracking URLs, the same on every node, at least 16 bytes (default: derived from cluster.secret). Changing it invalidates the URLs in mail already sent."},
    {"tracking", "max_html", T_SIZE, 1024, 1u << 30, "2M", F(tracking_max_html), "Largest HTML part (decoded) that is rewritten; larger ones are sent as they are."},
    {"tracking", "max_links", T_UINT, 0, 100000, "500", F(tracking_max_links), "Links rewritten per HTML part; later ones stay as they are."},
    {"tracking", "repeat_window", T_DURATION, 0, 86400000, "5m", F(tracking_repeat_window_ms), "A hit on the same pixel, or the same link of the same recipient, within this time of one recorded is answered but not recorded again (mail clients reload images; 0: record every hit)."},
    {"tracking", "max_events", T_UINT, 1, 100000, "100", F(tracking_max_events), "Most opened and clicked entries the tracking endpoint records in one recipient's history; later hits are answered but not recorded (the endpoint is public: this bounds what anyone holding a tracked mail can add to the replicated state)."},
};

/* ---------------------------------------------------------------- values */

int rc_parse_duration_ms(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    uint64_t mul;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else if (strcmp(end, "d") == 0)
        mul = 86400000;
    else
        return -1;
    if (v > UINT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

int rc_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    uint64_t mul = 1;
    if (*end) {
        switch (toupper((unsigned char)*end)) {
        case 'K': mul = 1024; break;
        case 'M': mul = 1024 * 1024; break;
        case 'G': mul = 1024ull * 1024 * 1024; break;
        case 'B': mul = 1; end--; break;
        default: return -1;
        }
        end++;
        if (*end && strcasecmp(end, "B") != 0 && strcasecmp(end, "iB") != 0)
            return -1;
    }
    if (v > UINT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on") || !strcmp(s, "1"))
        *out = true;
    else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off") || !strcmp(s, "0"))
        *out = false;
    else
        return -1;
    return 0;
}

int rc_retry_schedule_parse(const char *s, uint64_t *out, size_t max, size_t *n)
{
    char buf[RC_CFG_STR];
    if (strlen(s) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len > 0 && tok[len - 1] == ' ')
            tok[--len] = '\0';
        uint64_t ms;
        if (*n == max || rc_parse_duration_ms(tok, &ms) != 0 || ms < 1000)
            return -1;
        out[(*n)++] = ms;
    }
    return *n > 0 ? 0 : -1;
}

/* HOST:PORT with an IPv4 literal, or [IPv6]:PORT. Empty means "derive". */
static int check_addr(const char *s)
{
    if (*s == '\0')
        return 0;
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return -1;
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return -1;
    unsigned char buf[16];
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return inet_pton(AF_INET6, host + 1, buf) == 1 ? 0 : -1;
    }
    return inet_pton(AF_INET, host, buf) == 1 ? 0 : -1;
}

static int set_item(struct rc_config *c, const struct cfg_item *it, const char *value,
                    char *err, size_t errlen)
{
    char *dst = (char *)c + it->offset;
    uint64_t v = 0;
    bool b;
    switch (it->type) {
    case T_STR:
    case T_ADDR:
        if (strlen(value) >= it->size) {
            snprintf(err, errlen, "%s.%s: value too long (at most %zu characters)", it->section, it->key, it->size - 1);
            return -1;
        }
        if (it->type == T_ADDR && check_addr(value) != 0) {
            snprintf(err, errlen, "%s.%s: \"%s\" is not HOST:PORT with an IP literal (e.g. 127.0.0.1:25 or [::1]:25)", it->section, it->key, value);
            return -1;
        }
        memcpy(dst, value, strlen(value) + 1);
        return 0;
    case T_BOOL:
        if (parse_bool(value, &b) != 0) {
            snprintf(err, errlen, "%s.%s: \"%s\" is not a boolean (true/false)", it->section, it->key, value);
            return -1;
        }
        *(bool *)dst = b;
        return 0;
    case T_UINT:
    case T_PORT: {
        char *end;
        errno = 0;
        if (!isdigit((unsigned char)*value) || (v = strtoull(value, &end, 10), errno) || *end) {
            snprintf(err, errlen, "%s.%s: \"%s\" is not a whole number", it->section, it->key, value);
            return -1;
        }
        break;
    }
    case T_DURATION:
        if (rc_parse_duration_ms(value, &v) != 0) {
            snprintf(err, errlen, "%s.%s: \"%s\" is not a duration (e.g. 250ms, 30s, 5m, 48h, 2d)", it->section, it->key, value);
            return -1;
        }
        break;
    case T_SIZE:
        if (rc_parse_size(value, &v) != 0) {
            snprintf(err, errlen, "%s.%s: \"%s\" is not a size (e.g. 4096, 512K, 25M, 1G)", it->section, it->key, value);
            return -1;
        }
        break;
    }
    if (v < it->min || v > it->max) {
        snprintf(err, errlen, "%s.%s: %s is out of range [%" PRIu64 ", %" PRIu64 "]%s", it->section, it->key, value,
                 it->min, it->max, it->type == T_DURATION ? " milliseconds" : it->type == T_SIZE ? " bytes" : "");
        return -1;
    }
    if (it->size == sizeof(uint64_t))
        *(uint64_t *)dst = v;
    else
        *(unsigned *)dst = (unsigned)v;
    return 0;
}

void rc_config_defaults(struct rc_config *c)
{
    char err[256];
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < sizeof schema / sizeof schema[0]; i++)
        if (set_item(c, &schema[i], schema[i].def, err, sizeof err) != 0)
            abort(); /* a default outside its own range is a bug */
}

/* ------------------------------------------------------------- members */

static struct rc_cfg_member *member_get(struct rc_config *c, uint64_t id, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->n_members; i++)
        if (c->members[i].id == id)
            return &c->members[i];
    if (c->n_members == RC_CFG_MAX_MEMBERS) {
        snprintf(err, errlen, "too many [member.*] sections (at most %d)", RC_CFG_MAX_MEMBERS);
        return NULL;
    }
    struct rc_cfg_member *m = &c->members[c->n_members++];
    memset(m, 0, sizeof *m);
    m->id = id;
    snprintf(m->role, sizeof m->role, "voter");
    return m;
}

static int set_member(struct rc_config *c, const char *section, const char *key,
                      const char *value, char *err, size_t errlen)
{
    char *end;
    unsigned long long id = strtoull(section + 7, &end, 10);
    if (*end || id == 0 || id > 1000000) {
        snprintf(err, errlen, "[%s]: member sections are named [member.ID] with ID 1..1000000", section);
        return -1;
    }
    struct rc_cfg_member *m = member_get(c, id, err, errlen);
    if (m == NULL)
        return -1;
    if (strcmp(key, "site") == 0) {
        if (strlen(value) == 0 || strlen(value) >= sizeof m->site) {
            snprintf(err, errlen, "%s.site: must be 1..%zu characters", section, sizeof m->site - 1);
            return -1;
        }
        snprintf(m->site, sizeof m->site, "%s", value);
    } else if (strcmp(key, "address") == 0 || strcmp(key, "address6") == 0) {
        bool v6 = key[7] == '6';
        char *dst = v6 ? m->address6 : m->address;
        size_t size = v6 ? sizeof m->address6 : sizeof m->address;
        unsigned char buf[16];
        if (strlen(value) >= size || inet_pton(v6 ? AF_INET6 : AF_INET, value, buf) != 1) {
            snprintf(err, errlen, "%s.%s: \"%s\" is not an %s literal%s", section, key, value, v6 ? "IPv6" : "IPv4",
                     v6 ? "" : " (libraft addresses are IPv4)");
            return -1;
        }
        snprintf(dst, size, "%s", value);
    } else if (strcmp(key, "role") == 0) {
        if (strcmp(value, "voter") && strcmp(value, "standby") && strcmp(value, "spare")) {
            snprintf(err, errlen, "%s.role: \"%s\" is not voter, standby or spare", section, value);
            return -1;
        }
        snprintf(m->role, sizeof m->role, "%s", value);
    } else if (strcmp(key, "witness") == 0) {
        if (parse_bool(value, &m->witness) != 0) {
            snprintf(err, errlen, "%s.witness: \"%s\" is not a boolean", section, value);
            return -1;
        }
    } else {
        static const struct { const char *key; size_t off; } ports[] = {
            {"raft_port", offsetof(struct rc_cfg_member, raft_port)},
            {"peer_port", offsetof(struct rc_cfg_member, peer_port)},
            {"smtp_port", offsetof(struct rc_cfg_member, smtp_port)},
            {"submission_port", offsetof(struct rc_cfg_member, submission_port)},
            {"dns_port", offsetof(struct rc_cfg_member, dns_port)},
            {"http_port", offsetof(struct rc_cfg_member, http_port)},
        };
        for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
            if (strcmp(key, ports[i].key) != 0)
                continue;
            long p = strtol(value, &end, 10);
            if (*end || p < 1 || p > 65535) {
                snprintf(err, errlen, "%s.%s: \"%s\" is not a port (1..65535)", section, key, value);
                return -1;
            }
            *(unsigned *)((char *)m + ports[i].off) = (unsigned)p;
            return 0;
        }
        snprintf(err, errlen, "%s.%s: unknown key (member keys: site, address, address6, role, witness, raft_port, peer_port, smtp_port, submission_port, dns_port, http_port)", section, key);
        return -1;
    }
    return 0;
}

int rc_config_set(struct rc_config *c, const char *section, const char *key,
                  const char *value, char *err, size_t errlen)
{
    if (strncmp(section, "member.", 7) == 0)
        return set_member(c, section, key, value, err, errlen);
    for (size_t i = 0; i < sizeof schema / sizeof schema[0]; i++)
        if (strcmp(schema[i].section, section) == 0 && strcmp(schema[i].key, key) == 0)
            return set_item(c, &schema[i], value, err, errlen);
    snprintf(err, errlen, "%s.%s: unknown key (see docs/CONFIG.md)", section, key);
    return -1;
}

struct load_ctx {
    struct rc_config *c;
    char *err;
    size_t errlen;
    const char *path;
    int failed;
};

static int config_ini_line(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *ctx = user;
    if (ctx->failed)
        return 0;
    char err[400];
    if (rc_config_set(ctx->c, section, name, value, err, sizeof err) != 0) {
        snprintf(ctx->err, ctx->errlen, "%s: %s", ctx->path, err);
        ctx->failed = 1;
        return 0;
    }
    return 1;
}

int rc_config_load(struct rc_config *c, const char *path, char *err, size_t errlen)
{
    struct load_ctx ctx = {c, err, errlen, path, 0};
    int rv = ini_parse(path, config_ini_line, &ctx);
    if (rv == -1) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (ctx.failed) {
        if (rv > 0) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (line %d)", rv);
        }
        return -1;
    }
    if (rv > 0) {
        snprintf(err, errlen, "%s: line %d: syntax error (expected [section] or key = value)", path, rv);
        return -1;
    }
    if (rv < 0) {
        snprintf(err, errlen, "%s: cannot parse (out of memory)", path);
        return -1;
    }
    return 0;
}

const struct rc_cfg_member *rc_config_member(const struct rc_config *c, uint64_t id)
{
    for (size_t i = 0; i < c->n_members; i++)
        if (c->members[i].id == id)
            return &c->members[i];
    return NULL;
}

static void derive_listen(char *dst, size_t n, const char *addr, unsigned port)
{
    if (dst[0] == '\0' && port)
        snprintf(dst, n, "%s:%u", addr, port);
}

int rc_config_finish(struct rc_config *c, char *err, size_t errlen)
{
    if (c->n_members == 0) {
        snprintf(err, errlen, "no [member.ID] sections: the cluster needs at least this node");
        return -1;
    }
    for (size_t i = 0; i < c->n_members; i++) {
        struct rc_cfg_member *m = &c->members[i];
        if (m->address[0] == '\0') {
            snprintf(err, errlen, "member.%llu.address: missing", (unsigned long long)m->id);
            return -1;
        }
        if (m->site[0] == '\0') {
            snprintf(err, errlen, "member.%llu.site: missing", (unsigned long long)m->id);
            return -1;
        }
        if (m->witness && strcmp(m->role, "voter") != 0) {
            snprintf(err, errlen, "member.%llu: a witness must be a voter", (unsigned long long)m->id);
            return -1;
        }
        if (!m->raft_port) m->raft_port = c->raft_port;
        if (!m->peer_port) m->peer_port = c->peer_port;
        if (!m->smtp_port) m->smtp_port = c->smtp_port;
        if (!m->submission_port) m->submission_port = c->submission_port;
        if (!m->dns_port) m->dns_port = c->dns_port;
        if (!m->http_port) m->http_port = c->http_port;
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->members[j].address, m->address) == 0 && c->members[j].raft_port == m->raft_port) {
                snprintf(err, errlen, "member.%llu and member.%llu have the same raft address %s:%u",
                         (unsigned long long)c->members[j].id, (unsigned long long)m->id, m->address, m->raft_port);
                return -1;
            }
    }
    const struct rc_cfg_member *self = rc_config_member(c, c->node_id);
    if (self == NULL) {
        snprintf(err, errlen, "node.id: %llu has no [member.%llu] section", (unsigned long long)c->node_id,
                 (unsigned long long)c->node_id);
        return -1;
    }
    if (c->node_site[0] == '\0')
        snprintf(c->node_site, sizeof c->node_site, "%s", self->site);
    else if (strcmp(c->node_site, self->site) != 0) {
        snprintf(err, errlen, "node.site: \"%s\" differs from member.%llu.site \"%s\"", c->node_site,
                 (unsigned long long)c->node_id, self->site);
        return -1;
    }
    if (strlen(c->cluster_secret) < 16) {
        snprintf(err, errlen, "cluster.secret: missing or shorter than 16 characters");
        return -1;
    }
    if (strcmp(c->delivery_tls, "none") != 0 && strcmp(c->delivery_tls, "opportunistic") != 0 &&
        strcmp(c->delivery_tls, "required") != 0) {
        snprintf(err, errlen, "delivery.tls: \"%s\" is not none, opportunistic or required", c->delivery_tls);
        return -1;
    }
    uint64_t delays[RC_RETRY_MAX];
    size_t ndelays;
    if (rc_retry_schedule_parse(c->retry_schedule, delays, RC_RETRY_MAX, &ndelays) != 0) {
        snprintf(err, errlen, "delivery.retry_schedule: \"%s\" is not a comma-separated list of 1..%d durations "
                 "of at least 1s (e.g. 5m,10m,30m,1h)", c->retry_schedule, RC_RETRY_MAX);
        return -1;
    }
    if (c->bounce_secret[0] == '\0')
        snprintf(c->bounce_secret, sizeof c->bounce_secret, "verp:%s", c->cluster_secret);
    if (c->webhooks_url[0] != '\0') {
        if (strncmp(c->webhooks_url, "http://", 7) != 0 && strncmp(c->webhooks_url, "https://", 8) != 0) {
            snprintf(err, errlen, "webhooks.url: \"%s\" is not an http:// or https:// URL", c->webhooks_url);
            return -1;
        }
        if (c->webhooks_secret[0] == '\0') {
            snprintf(err, errlen, "webhooks.secret: required with webhooks.url (receivers check the signature)");
            return -1;
        }
    }
    if (c->tracking_secret[0] == '\0')
        snprintf(c->tracking_secret, sizeof c->tracking_secret, "track:%s", c->cluster_secret);
    if (c->tracking_url[0] != '\0') {
        const char *u = c->tracking_url;
        size_t ul = strlen(u);
        bool scheme = strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
        bool clean = strcspn(u, "?#\"'<> \t\r\n&") == ul;
        size_t host = strncmp(u, "https://", 8) == 0 ? 8 : 7;
        if (!scheme || !clean || ul <= host || u[host] == '/' || u[ul - 1] == '/' || ul > 256) {
            snprintf(err, errlen, "tracking.url: \"%s\" is not an http:// or https:// URL without query, fragment "
                     "or trailing '/' (at most 256 bytes)", u);
            return -1;
        }
        if (strlen(c->tracking_secret) < 16) {
            snprintf(err, errlen, "tracking.secret: at least 16 bytes");
            return -1;
        }
    }
    if (c->data_dir[0] == '\0') {
        snprintf(err, errlen, "node.data_dir: missing");
        return -1;
    }
    if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
        snprintf(err, errlen, "smtp.tls_cert and smtp.tls_key: set both or neither");
        return -1;
    }
    if (rc_log_level_parse(c->log_level) < 0) {
        snprintf(err, errlen, "node.log_level: \"%s\" is not debug, info, warn or error", c->log_level);
        return -1;
    }
    derive_listen(c->smtp_listen, sizeof c->smtp_listen, self->address, self->smtp_port);
    derive_listen(c->submission_listen, sizeof c->submission_listen, self->address, self->submission_port);
    derive_listen(c->dns_listen, sizeof c->dns_listen, self->address, self->dns_port);
    derive_listen(c->http_listen, sizeof c->http_listen, self->address, self->http_port);
    if (c->hostname[0] == '\0') {
        if (gethostname(c->hostname, sizeof c->hostname) != 0)
            snprintf(c->hostname, sizeof c->hostname, "localhost");
        c->hostname[sizeof c->hostname - 1] = '\0';
    }
    return 0;
}

void rc_config_dev(struct rc_config *c)
{
    char err[256];
    rc_config_defaults(c);
    static const char *const dev[][3] = {
        {"node", "id", "1"},
        {"node", "data_dir", "./ricochet-data"},
        {"cluster", "secret", "dev-only-secret-change-me"},
        {"cluster", "smtp_port", "2525"},
        {"cluster", "submission_port", "2587"},
        {"cluster", "dns_port", "5353"},
        {"cluster", "http_port", "8080"},
        {"raft", "election_timeout", "300ms"},
        {"raft", "min_free_disk", "64M"},
        {"smtp", "relay_networks", "127.0.0.0/8"},
        {"dns", "zone", "mx.ricochet.test"},
        {"bounce", "domain", "bounce.ricochet.test"},
        {"member.1", "site", "a"},
        {"member.1", "address", "127.0.0.1"},
    };
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (rc_config_set(c, dev[i][0], dev[i][1], dev[i][2], err, sizeof err) != 0)
            abort();
}

static const char *type_name(enum cfg_type t)
{
    switch (t) {
    case T_STR: return "string";
    case T_UINT: return "integer";
    case T_BOOL: return "boolean";
    case T_DURATION: return "duration";
    case T_SIZE: return "size";
    case T_ADDR: return "HOST:PORT";
    case T_PORT: return "port";
    }
    return "?";
}

void rc_config_reference(FILE *out)
{
    const char *section = "";
    fprintf(out, "<!-- Generated by `ricochetd --config-reference`; do not edit by hand. -->\n");
    fprintf(out, "# Configuration reference\n\n");
    fprintf(out, "Files are INI (`[section]`, `key = value`). Durations take ms/s/m/h/d (a bare number is seconds);\n"
                 "sizes take K/M/G (a bare number is bytes). Unknown keys and out-of-range values are errors\n"
                 "that name the file, line and key; ricochetd then exits with status 2.\n");
    for (size_t i = 0; i < sizeof schema / sizeof schema[0]; i++) {
        const struct cfg_item *it = &schema[i];
        if (strcmp(section, it->section) != 0) {
            section = it->section;
            fprintf(out, "\n## [%s]\n\n| key | type | default | range | meaning |\n|---|---|---|---|---|\n", section);
        }
        char range[64] = "";
        if (it->type == T_UINT || it->type == T_PORT || it->type == T_DURATION || it->type == T_SIZE)
            snprintf(range, sizeof range, "%" PRIu64 "..%" PRIu64 "%s", it->min, it->max,
                     it->type == T_DURATION ? " ms" : it->type == T_SIZE ? " bytes" : "");
        fprintf(out, "| `%s.%s` | %s | `%s` | %s | %s |\n", it->section, it->key, type_name(it->type),
                it->def[0] ? it->def : "(empty)", range, it->doc);
    }
    fprintf(out, "\n## [member.ID]\n\nOne section per cluster member, identical on every node.\n\n"
                 "| key | type | default | meaning |\n|---|---|---|---|\n"
                 "| `site` | string | (required) | Site name (e.g. `a`, `b`, `w`). |\n"
                 "| `address` | IPv4 literal | (required) | Address of the member (libraft addresses are IPv4). |\n"
                 "| `address6` | IPv6 literal | (none) | The member's public IPv6 address: published as AAAA for its name (and NS glue) beside the A record; clients and MX lookups then reach it over IPv6. |\n"
                 "| `role` | voter/standby/spare | `voter` | Raft role. |\n"
                 "| `witness` | boolean | `false` | Votes but never keeps leadership (hands it to a site node at once). |\n"
                 "| `raft_port`, `peer_port`, `smtp_port`, `submission_port`, `dns_port`, `http_port` | port | `[cluster]` defaults | Per-member port overrides. |\n");
}

/* ---------------------------------------------------------------- diff */

static void diff_add(char *out, size_t outlen, size_t *used, const char *name)
{
    int n = snprintf(out + *used, outlen - *used, "%s%s", *used ? ", " : "", name);
    if (n > 0)
        *used = *used + (size_t)n < outlen ? *used + (size_t)n : outlen - 1;
}

static bool member_same(const struct rc_cfg_member *a, const struct rc_cfg_member *b)
{
    return a->id == b->id && strcmp(a->site, b->site) == 0 && strcmp(a->address, b->address) == 0 &&
           strcmp(a->address6, b->address6) == 0 && strcmp(a->role, b->role) == 0 && a->witness == b->witness &&
           a->raft_port == b->raft_port && a->peer_port == b->peer_port && a->smtp_port == b->smtp_port &&
           a->submission_port == b->submission_port && a->dns_port == b->dns_port && a->http_port == b->http_port;
}

size_t rc_config_diff(const struct rc_config *a, const struct rc_config *b, char *out, size_t outlen)
{
    size_t n = 0, used = 0;
    if (outlen > 0)
        out[0] = '\0';
    for (size_t i = 0; i < sizeof schema / sizeof schema[0]; i++) {
        const struct cfg_item *it = &schema[i];
        const char *pa = (const char *)a + it->offset, *pb = (const char *)b + it->offset;
        /* a string field may hold bytes of an earlier, longer value past its NUL */
        bool same = it->type == T_STR || it->type == T_ADDR ? strncmp(pa, pb, it->size) == 0
                                                            : memcmp(pa, pb, it->size) == 0;
        if (same)
            continue;
        char name[96];
        snprintf(name, sizeof name, "%s.%s", it->section, it->key);
        diff_add(out, outlen, &used, name);
        n++;
    }
    /* members: by id, in either table */
    for (int pass = 0; pass < 2; pass++) {
        const struct rc_config *x = pass ? b : a, *y = pass ? a : b;
        for (size_t i = 0; i < x->n_members; i++) {
            const struct rc_cfg_member *other = rc_config_member(y, x->members[i].id);
            if (other != NULL && (pass == 1 || member_same(&x->members[i], other)))
                continue;
            char name[48];
            snprintf(name, sizeof name, "member.%llu", (unsigned long long)x->members[i].id);
            diff_add(out, outlen, &used, name);
            n++;
        }
    }
    return n;
}
