/* The replicated core on libraft 0.15. Happy path: rc_raft_propose() packs
 * the record, appends it to the open batch, and an idle callback submits the
 * batch as one raft entry; the apply callback reports the commit to every
 * proposer of the batch.
 *
 * libraft 0.15 traps handled here (each has a test in tests/):
 *  - entries padded to 8 bytes (rc_entry.h);
 *  - TCP_NODELAY through a wrapper transport (rc_transport.h);
 *  - pre-vote switched on;
 *  - no state-change callback: raft_state() is polled by a timer;
 *  - a new leader appends no no-op: it issues a barrier at once and calls
 *    itself ready only when the barrier committed;
 *  - a full disk crashed the leader: free space is watched and proposals are
 *    refused (RC_ENOSPACE) well before the disk is full;
 *  - auto-recovery (truncating a corrupt open segment) is off by default:
 *    a corrupt log stops the node with an error instead of losing entries. */
#include "raft/rc_raft.h"

#include <errno.h>
#include <limits.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <openssl/rand.h>

#include "node/base/rc_log.h"
#include "proto/ricochet.pb-c.h"
#include "raft/rc_entry.h"
#include "raft/rc_transport.h"

#define BATCH_SCHEMA 1u

struct waiter {
    rc_propose_cb cb;
    void *data;
};

struct batch {
    uint8_t *buf; /* serialized ricochet.Batch */
    size_t len, cap;
    struct waiter *w;
    size_t n, cap_w;
    struct batch *next;
};

struct apply_req {
    struct raft_apply req;
    struct batch *b;
    rc_raft *r;
};

struct barrier_req {
    struct raft_barrier req;
    rc_raft *r;
    rc_propose_cb cb; /* NULL: the leader's own readiness barrier */
    void *data;
};

struct rc_raft {
    uv_loop_t *loop;
    struct rc_raft_config cfg;
    char data_dir[PATH_MAX];
    char raft_dir[PATH_MAX];
    struct raft raft;
    struct raft_io io;
    struct rc_transport transport;
    rc_fsm *fsm;
    uv_timer_t tick;
    uv_idle_t flusher;
    int open_handles;

    struct batch *pending_head, *pending_tail;
    unsigned inflight;
    uint64_t seq, boot_id;
    struct rc_forwarder fwd;

    int last_state;
    uint64_t last_leader;
    bool leader_ready, barrier_pending;
    struct raft_transfer transfer;
    bool transfer_pending;
    uint64_t transfer_target;
    unsigned transfer_attempts;
    rc_propose_cb transfer_cb;
    void *transfer_data;
    uint64_t last_contact_ms;
    bool disk_low;
    uint64_t free_bytes, last_disk_check_ms;

    bool raft_started, closing;
    void (*close_cb)(void *);
    void *close_data;

    uint64_t proposals_ok, proposals_failed;
    struct catch_up *catch_ups; /* committed through the leader, not applied here yet */

    struct raft_change change; /* libraft allows one membership change at a time */
    bool change_pending;
    rc_propose_cb change_cb;
    void *change_data;
};

static const struct {
    int err;
    const char *msg;
} rc_errors[] = {
    {RC_OK, "ok"},
    {RC_ENOTLEADER, "not the leader and no leader known (retry)"},
    {RC_ELOST, "leadership lost while in flight (outcome unknown, retry)"},
    {RC_ETIMEDOUT, "no commit within the timeout (outcome unknown, retry)"},
    {RC_ESHUTDOWN, "node is shutting down"},
    {RC_ETOOBIG, "record too big"},
    {RC_ENOSPACE, "data directory is nearly full"},
    {RC_ENOMEM, "out of memory"},
    {RC_EIO, "raft I/O error"},
    {RC_EINVAL, "invalid argument"},
    {RC_EBUSY, "another operation is in progress"},
    {RC_EUNREACHABLE, "the node to change did not answer in time (retry once it is up)"},
};

const char *rc_strerror(int err)
{
    for (size_t i = 0; i < sizeof rc_errors / sizeof rc_errors[0]; i++)
        if (rc_errors[i].err == err)
            return rc_errors[i].msg;
    return "unknown error";
}

bool rc_err_retryable(int err)
{
    return err == RC_ENOTLEADER || err == RC_ELOST || err == RC_ETIMEDOUT ||
           err == RC_ESHUTDOWN || err == RC_ENOSPACE || err == RC_EBUSY || err == RC_EUNREACHABLE;
}

static int map_raft_err(int status)
{
    switch (status) {
    case 0: return RC_OK;
    case RAFT_NOTLEADER: return RC_ENOTLEADER;
    case RAFT_LEADERSHIPLOST: return RC_ELOST;
    case RAFT_SHUTDOWN: return RC_ESHUTDOWN;
    case RAFT_NOSPACE: return RC_ENOSPACE;
    case RAFT_TOOBIG: return RC_ETOOBIG;
    case RAFT_NOMEM: return RC_ENOMEM;
    case RAFT_BUSY: return RC_EBUSY;
    default: return RC_EIO;
    }
}

static uint64_t now_ms(rc_raft *r)
{
    return uv_now(r->loop);
}

/* ----------------------------------------------------------- batches */

static void batch_free(struct batch *b)
{
    if (b == NULL)
        return;
    free(b->buf);
    free(b->w);
    free(b);
}

static void batch_finish(rc_raft *r, struct batch *b, int status)
{
    for (size_t i = 0; i < b->n; i++) {
        if (status == RC_OK)
            r->proposals_ok++;
        else
            r->proposals_failed++;
        b->w[i].cb(b->w[i].data, status);
    }
    batch_free(b);
}

static size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        p[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    return n;
}

static struct batch *batch_new(void)
{
    struct batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->cap = 4096;
    b->buf = malloc(b->cap);
    if (b->buf == NULL) {
        free(b);
        return NULL;
    }
    /* field 1 (schema), varint */
    b->buf[0] = 0x08;
    b->len = 1 + varint_put(b->buf + 1, BATCH_SCHEMA);
    return b;
}

/* Appends one serialized Record as field 2 of the Batch. */
static int batch_append(struct batch *b, const uint8_t *rec, size_t len,
                        rc_propose_cb cb, void *data)
{
    size_t need = b->len + 1 + 10 + len;
    if (need > b->cap) {
        size_t ncap = b->cap;
        while (ncap < need)
            ncap *= 2;
        uint8_t *nb = realloc(b->buf, ncap);
        if (nb == NULL)
            return RC_ENOMEM;
        b->buf = nb;
        b->cap = ncap;
    }
    if (b->n == b->cap_w) {
        size_t ncap = b->cap_w ? b->cap_w * 2 : 16;
        struct waiter *nw = realloc(b->w, ncap * sizeof *nw);
        if (nw == NULL)
            return RC_ENOMEM;
        b->w = nw;
        b->cap_w = ncap;
    }
    b->buf[b->len++] = 0x12; /* field 2, length-delimited */
    b->len += varint_put(b->buf + b->len, len);
    memcpy(b->buf + b->len, rec, len);
    b->len += len;
    b->w[b->n++] = (struct waiter){cb, data};
    return RC_OK;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct apply_req *a = req->data;
    rc_raft *r = a->r;
    (void)result;
    r->inflight--;
    if (status != 0)
        rc_warn("raft", "entry_not_committed records=%zu error=\"%s\"", a->b->n, raft_strerror(status));
    batch_finish(r, a->b, map_raft_err(status));
    free(a);
    if (r->pending_head && !r->closing)
        uv_idle_start(&r->flusher, NULL); /* re-armed below by propose; see flush_cb */
}

static void flush_cb(uv_idle_t *idle);

static void flush_pending(rc_raft *r)
{
    while (r->pending_head && r->inflight < r->cfg.max_inflight_entries) {
        struct batch *b = r->pending_head;
        r->pending_head = b->next;
        if (r->pending_head == NULL)
            r->pending_tail = NULL;
        b->next = NULL;

        if (raft_state(&r->raft) != RAFT_LEADER) {
            batch_finish(r, b, RC_ENOTLEADER); /* never submitted: safe to retry */
            continue;
        }
        struct apply_req *a = calloc(1, sizeof *a);
        struct raft_buffer buf;
        if (a == NULL || rc_entry_wrap(RC_ENTRY_LOG, b->buf, b->len, &buf) != RC_ENTRY_OK) {
            free(a);
            batch_finish(r, b, RC_ENOMEM);
            continue;
        }
        a->req.data = a;
        a->b = b;
        a->r = r;
        int rv = raft_apply(&r->raft, &a->req, &buf, 1, apply_cb);
        if (rv != 0) {
            raft_free(buf.base);
            free(a);
            batch_finish(r, b, map_raft_err(rv));
            continue;
        }
        r->inflight++;
    }
}

static void flush_cb(uv_idle_t *idle)
{
    rc_raft *r = idle->data;
    flush_pending(r);
    if (r->pending_head == NULL || r->inflight >= r->cfg.max_inflight_entries)
        uv_idle_stop(idle); /* apply_cb re-arms when a slot frees */
}

/* ---------------------------------------------------------- proposals */

/* Request ids: node id, a random id of this process's life, a sequence.
 * The boot id keeps ids unique across restarts (the FSM remembers ids from
 * earlier lives in its dedup table). */
#define REQUEST_ID_LEN 24
static void fill_request_id(rc_raft *r, uint8_t id[REQUEST_ID_LEN])
{
    uint64_t s = ++r->seq, n = r->cfg.self_id, b = r->boot_id;
    for (int i = 7; i >= 0; i--) {
        id[i] = (uint8_t)n;
        n >>= 8;
        id[8 + i] = (uint8_t)b;
        b >>= 8;
        id[16 + i] = (uint8_t)s;
        s >>= 8;
    }
}

uint64_t rc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int rc_raft_propose(rc_raft *r, const Ricochet__Record *rec, rc_propose_cb cb, void *data)
{
    if (r->closing)
        return RC_ESHUTDOWN;
    if (r->disk_low)
        return RC_ENOSPACE;
    if (rec == NULL || cb == NULL)
        return RC_EINVAL;

    Ricochet__Record copy = *rec;
    uint8_t reqid[REQUEST_ID_LEN];
    if (!copy.has_request_id || copy.request_id.len == 0) {
        fill_request_id(r, reqid);
        copy.has_request_id = true;
        copy.request_id.data = reqid;
        copy.request_id.len = sizeof reqid;
    }
    if (!copy.has_proposed_at_ms) {
        copy.has_proposed_at_ms = true;
        copy.proposed_at_ms = rc_now_ms();
    }

    int state = raft_state(&r->raft);
    if (state != RAFT_LEADER) {
        raft_id leader = 0;
        const char *addr = NULL;
        raft_leader(&r->raft, &leader, &addr);
        if (leader == 0 || leader == r->cfg.self_id || r->fwd.forward == NULL)
            return RC_ENOTLEADER;
        return r->fwd.forward(r->fwd.data, leader, &copy, cb, data);
    }

    size_t len = ricochet__record__get_packed_size(&copy);
    if (len > r->cfg.max_record_bytes)
        return RC_ETOOBIG;
    uint8_t stackbuf[4096];
    uint8_t *packed = len <= sizeof stackbuf ? stackbuf : malloc(len);
    if (packed == NULL)
        return RC_ENOMEM;
    ricochet__record__pack(&copy, packed);

    struct batch *b = r->pending_tail;
    if (b == NULL || (b->n > 0 && b->len + len + 11 > r->cfg.max_entry_bytes)) {
        struct batch *nb = batch_new();
        if (nb == NULL) {
            if (packed != stackbuf)
                free(packed);
            return RC_ENOMEM;
        }
        if (r->pending_tail)
            r->pending_tail->next = nb;
        else
            r->pending_head = nb;
        r->pending_tail = nb;
        b = nb;
    }
    int rv = batch_append(b, packed, len, cb, data);
    if (packed != stackbuf)
        free(packed);
    if (rv != RC_OK)
        return rv;
    if (r->inflight < r->cfg.max_inflight_entries)
        uv_idle_start(&r->flusher, flush_cb);
    return RC_OK;
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct barrier_req *b = req->data;
    rc_raft *r = b->r;
    if (b->cb) {
        b->cb(b->data, map_raft_err(status));
    } else {
        r->barrier_pending = false;
        if (status == 0 && raft_state(&r->raft) == RAFT_LEADER && !r->closing) {
            r->leader_ready = true;
            rc_info("raft", "leader_ready term=%llu commit=%llu",
                    (unsigned long long)r->raft.current_term,
                    (unsigned long long)r->raft.commit_index);
        }
    }
    free(b);
}

static int barrier_submit(rc_raft *r, rc_propose_cb cb, void *data)
{
    struct barrier_req *b = calloc(1, sizeof *b);
    if (b == NULL)
        return RC_ENOMEM;
    b->req.data = b;
    b->r = r;
    b->cb = cb;
    b->data = data;
    int rv = raft_barrier(&r->raft, &b->req, barrier_cb);
    if (rv != 0) {
        free(b);
        return map_raft_err(rv);
    }
    return RC_OK;
}

int rc_raft_barrier(rc_raft *r, rc_propose_cb cb, void *data)
{
    if (r->closing)
        return RC_ESHUTDOWN;
    if (raft_state(&r->raft) != RAFT_LEADER)
        return RC_ENOTLEADER;
    return barrier_submit(r, cb, data);
}

static void transfer_cb(struct raft_transfer *req)
{
    rc_raft *r = req->data;
    r->transfer_pending = false;
    int status = raft_state(&r->raft) == RAFT_LEADER ? RC_ETIMEDOUT : RC_OK;
    /* libraft gives up after one election timeout when the target was not
     * caught up yet (e.g. right after it started): try a few more times. */
    if (status != RC_OK && !r->closing && ++r->transfer_attempts < 4) {
        memset(&r->transfer, 0, sizeof r->transfer);
        r->transfer.data = r;
        if (raft_transfer(&r->raft, &r->transfer, r->transfer_target, transfer_cb) == 0) {
            r->transfer_pending = true;
            rc_info("raft", "transfer_retry to=%llu attempt=%u", (unsigned long long)r->transfer_target,
                    r->transfer_attempts + 1);
            return;
        }
    }
    raft_id leader = 0;
    const char *addr;
    raft_leader(&r->raft, &leader, &addr);
    rc_info("raft", "transfer_done result=%s new_leader=%llu",
            status == RC_OK ? "ok" : "still_leader", (unsigned long long)leader);
    rc_propose_cb cb = r->transfer_cb;
    r->transfer_cb = NULL;
    if (cb)
        cb(r->transfer_data, status);
}

int rc_raft_transfer(rc_raft *r, uint64_t to, rc_propose_cb cb, void *data)
{
    if (r->closing)
        return RC_ESHUTDOWN;
    if (raft_state(&r->raft) != RAFT_LEADER)
        return RC_ENOTLEADER;
    if (r->transfer_pending || r->change_pending)
        return RC_EBUSY;
    if (to != 0) {
        /* a voter of the configuration the cluster holds, not of the file */
        bool voter = false;
        for (unsigned i = 0; i < r->raft.configuration.n; i++)
            voter |= r->raft.configuration.servers[i].id == to && r->raft.configuration.servers[i].role == RAFT_VOTER;
        if (!voter || to == r->cfg.self_id)
            return RC_EINVAL;
    }
    memset(&r->transfer, 0, sizeof r->transfer);
    r->transfer.data = r;
    r->transfer_target = to;
    r->transfer_attempts = 0;
    int rv = raft_transfer(&r->raft, &r->transfer, to, transfer_cb);
    if (rv != 0) {
        rc_warn("raft", "transfer_refused to=%llu error=\"%s\"", (unsigned long long)to, raft_strerror(rv));
        return rv == RAFT_BADID || rv == RAFT_NOTFOUND ? RC_EINVAL : map_raft_err(rv);
    }
    r->transfer_pending = true;
    r->transfer_cb = cb;
    r->transfer_data = data;
    rc_info("raft", "transfer_started to=%llu", (unsigned long long)to);
    return RC_OK;
}

/* --------------------------------------------------------- membership */

size_t rc_raft_servers(rc_raft *r, struct rc_raft_server *out, size_t max)
{
    size_t n = 0;
    for (unsigned i = 0; i < r->raft.configuration.n && n < max; i++, n++) {
        const struct raft_server *sv = &r->raft.configuration.servers[i];
        out[n].id = sv->id;
        snprintf(out[n].raft_addr, sizeof out[n].raft_addr, "%s", sv->address ? sv->address : "");
        out[n].role = sv->role;
    }
    return n;
}

static const char *role_name(int role)
{
    return role == RC_ROLE_VOTER ? "voter" : role == RC_ROLE_STANDBY ? "standby" : "spare";
}

static void change_cb(struct raft_change *req, int status)
{
    rc_raft *r = req->data;
    r->change_pending = false;
    /* a new voter that could not be caught up (down, unreachable) */
    int rv = status == RAFT_NOCONNECTION ? RC_EUNREACHABLE : map_raft_err(status);
    rc_info("raft", "membership_change_done result=%s", status == 0 ? "ok" : raft_strerror(status));
    rc_propose_cb cb = r->change_cb;
    r->change_cb = NULL;
    if (cb)
        cb(r->change_data, rv);
}

int rc_raft_change(rc_raft *r, enum rc_change what, uint64_t id, const char *raft_addr, int role,
                   rc_propose_cb cb, void *data)
{
    if (r->closing)
        return RC_ESHUTDOWN;
    if (raft_state(&r->raft) != RAFT_LEADER)
        return RC_ENOTLEADER;
    if (r->change_pending || r->transfer_pending)
        return RC_EBUSY;
    if (id == 0 || (what == RC_CHANGE_ASSIGN && role != RC_ROLE_VOTER && role != RC_ROLE_STANDBY &&
                    role != RC_ROLE_SPARE))
        return RC_EINVAL;
    memset(&r->change, 0, sizeof r->change);
    r->change.data = r;
    int rv;
    switch (what) {
    case RC_CHANGE_ADD:
        if (raft_addr == NULL || raft_addr[0] == '\0')
            return RC_EINVAL;
        rv = raft_add(&r->raft, &r->change, id, raft_addr, change_cb);
        break;
    case RC_CHANGE_ASSIGN:
        rv = raft_assign(&r->raft, &r->change, id, role, change_cb);
        break;
    case RC_CHANGE_REMOVE:
        rv = raft_remove(&r->raft, &r->change, id, change_cb);
        break;
    default:
        return RC_EINVAL;
    }
    if (rv != 0) {
        rc_warn("raft", "membership_change_refused node=%llu error=\"%s\"", (unsigned long long)id,
                raft_strerror(rv));
        switch (rv) {
        case RAFT_CANTCHANGE: return RC_EBUSY;
        case RAFT_BADID: case RAFT_NOTFOUND: case RAFT_DUPLICATEID: case RAFT_DUPLICATEADDRESS:
        case RAFT_BADROLE: return RC_EINVAL;
        default: return map_raft_err(rv);
        }
    }
    r->change_pending = true;
    r->change_cb = cb;
    r->change_data = data;
    rc_info("raft", "membership_change_started op=%s node=%llu%s%s", what == RC_CHANGE_ADD ? "add"
            : what == RC_CHANGE_ASSIGN ? "assign" : "remove", (unsigned long long)id,
            what == RC_CHANGE_ASSIGN ? " role=" : "", what == RC_CHANGE_ASSIGN ? role_name(role) : "");
    return RC_OK;
}

/* --------------------------------------------------------------- tick */

static const char *state_name(int s)
{
    switch (s) {
    case RAFT_FOLLOWER: return "follower";
    case RAFT_CANDIDATE: return "candidate";
    case RAFT_LEADER: return "leader";
    default: return "unavailable";
    }
}

static void check_disk(rc_raft *r)
{
    struct statvfs vfs;
    if (statvfs(r->data_dir, &vfs) != 0)
        return;
    r->free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    bool low = r->free_bytes < r->cfg.min_free_bytes;
    if (low != r->disk_low)
        rc_log(low ? RC_LOG_ERROR : RC_LOG_INFO, "raft", "disk_%s free_bytes=%llu floor=%llu",
               low ? "low_refusing_proposals" : "ok_again", (unsigned long long)r->free_bytes,
               (unsigned long long)r->cfg.min_free_bytes);
    r->disk_low = low;
}

static void catch_ups_check(rc_raft *r, int err);

static void tick_cb(uv_timer_t *t)
{
    rc_raft *r = t->data;
    uint64_t now = now_ms(r);
    catch_ups_check(r, RC_OK);
    int state = raft_state(&r->raft);
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&r->raft, &leader, &addr);

    if (state != r->last_state || leader != r->last_leader) {
        rc_info("raft", "state_changed state=%s leader=%llu term=%llu", state_name(state),
                (unsigned long long)leader, (unsigned long long)r->raft.current_term);
        if (state != RAFT_LEADER)
            r->leader_ready = false;
        r->last_state = state;
        r->last_leader = leader;
    }
    if (leader != 0)
        r->last_contact_ms = now;

    if (state == RAFT_LEADER && !r->leader_ready && !r->barrier_pending) {
        /* 0.15 appends no no-op on election and may commit entries of older
         * terms by counting replicas: a barrier in our own term fixes both. */
        if (barrier_submit(r, NULL, NULL) == RC_OK)
            r->barrier_pending = true;
    }
    const struct rc_member *self = rc_raft_member(r, r->cfg.self_id);
    if (state == RAFT_LEADER && r->leader_ready && self && self->witness && !r->transfer_pending) {
        rc_info("raft", "witness_hands_off_leadership");
        rc_raft_transfer(r, 0, NULL, NULL);
    }
    if (now - r->last_disk_check_ms >= 1000) {
        r->last_disk_check_ms = now;
        check_disk(r);
    }
}

/* -------------------------------------------------------- life cycle */

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

const struct rc_member *rc_raft_member(const rc_raft *r, uint64_t id)
{
    for (size_t i = 0; i < r->cfg.n_members; i++)
        if (r->cfg.members[i].id == id)
            return &r->cfg.members[i];
    return NULL;
}

static int build_configuration(const struct rc_member *members, size_t n,
                               struct raft_configuration *conf)
{
    raft_configuration_init(conf);
    for (size_t i = 0; i < n; i++) {
        int rv = raft_configuration_add(conf, members[i].id, members[i].raft_addr, members[i].role);
        if (rv != 0) {
            raft_configuration_close(conf);
            return rv;
        }
    }
    return 0;
}

static void set_defaults(struct rc_raft_config *c)
{
    if (!c->election_timeout_ms) c->election_timeout_ms = 1000;
    if (!c->heartbeat_timeout_ms) c->heartbeat_timeout_ms = 100;
    if (!c->snapshot_threshold) c->snapshot_threshold = 8192;
    if (!c->snapshot_trailing) c->snapshot_trailing = 2048;
    if (!c->max_entry_bytes) c->max_entry_bytes = 1u << 20;
    if (!c->max_record_bytes) c->max_record_bytes = 64u << 20;
    if (!c->max_inflight_entries) c->max_inflight_entries = 64;
    if (!c->propose_timeout_ms) c->propose_timeout_ms = 10000;
    if (!c->tick_ms) c->tick_ms = 50;
}

static void handle_closed_cb(uv_handle_t *h)
{
    rc_raft *r = h->data;
    if (--r->open_handles > 0)
        return;
    rc_fsm_free(r->fsm);
    void (*cb)(void *) = r->close_cb;
    void *data = r->close_data;
    free(r);
    if (cb)
        cb(data);
}

static void raft_closed_cb(struct raft *raft)
{
    rc_raft *r = raft->data;
    raft_uv_close(&r->io);
    rc_transport_close(&r->transport);
    rc_info("raft", "closed");
    r->open_handles = 2;
    uv_close((uv_handle_t *)&r->tick, handle_closed_cb);
    uv_close((uv_handle_t *)&r->flusher, handle_closed_cb);
}

void rc_raft_close(rc_raft *r, void (*cb)(void *), void *data)
{
    if (r->closing)
        return;
    r->closing = true;
    r->close_cb = cb;
    r->close_data = data;
    uv_timer_stop(&r->tick);
    uv_idle_stop(&r->flusher);
    catch_ups_check(r, RC_ESHUTDOWN);
    while (r->pending_head) {
        struct batch *b = r->pending_head;
        r->pending_head = b->next;
        batch_finish(r, b, RC_ESHUTDOWN);
    }
    r->pending_tail = NULL;
    raft_close(&r->raft, raft_closed_cb);
}

static void closed_flag_cb(struct raft *raft)
{
    *(bool *)raft->data = true;
}

int rc_raft_start(rc_raft **out, uv_loop_t *loop, const struct rc_raft_config *cfg,
                  const struct rc_fsm_hooks *hooks, void *hook_data, char *errmsg, size_t errlen)
{
    int rv;
    rc_raft *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        return RC_ENOMEM;
    }
    r->loop = loop;
    r->cfg = *cfg;
    set_defaults(&r->cfg);
    if (RAND_bytes((unsigned char *)&r->boot_id, sizeof r->boot_id) != 1)
        r->boot_id = uv_hrtime() ^ ((uint64_t)getpid() << 32);
    r->last_state = -1;
    snprintf(r->data_dir, sizeof r->data_dir, "%s", cfg->data_dir);
    if (snprintf(r->raft_dir, sizeof r->raft_dir, "%s/raft", cfg->data_dir) >= (int)sizeof r->raft_dir ||
        mkdir_p(r->raft_dir) != 0) {
        snprintf(errmsg, errlen, "cannot create %s/raft: %s", cfg->data_dir, strerror(errno));
        rv = RC_EIO;
        goto err_after_alloc;
    }
    const struct rc_member *self = rc_raft_member(r, cfg->self_id);
    if (self == NULL) {
        snprintf(errmsg, errlen, "node id %llu is not among the cluster members",
                 (unsigned long long)cfg->self_id);
        rv = RC_EINVAL;
        goto err_after_alloc;
    }
    if (rc_fsm_new(&r->fsm, &cfg->fsm, hooks, hook_data) != 0) {
        snprintf(errmsg, errlen, "out of memory");
        rv = RC_ENOMEM;
        goto err_after_alloc;
    }
    if ((rv = rc_transport_init(&r->transport, loop)) != 0) {
        snprintf(errmsg, errlen, "raft transport: %s", raft_strerror(rv));
        rv = RC_EIO;
        goto err_after_fsm;
    }
    if ((rv = raft_uv_init(&r->io, loop, r->raft_dir, &r->transport.outer)) != 0) {
        snprintf(errmsg, errlen, "raft io on %s: %s (libraft needs a filesystem with O_DIRECT: ext4, xfs, btrfs or tmpfs)",
                 r->raft_dir, r->io.errmsg[0] ? r->io.errmsg : raft_strerror(rv));
        rv = RC_EIO;
        goto err_after_transport;
    }
    raft_uv_set_auto_recovery(&r->io, cfg->auto_recovery);
    /* libraft 0.15's uv I/O implements async_work (worker-thread jobs) but
     * still calls itself version 1, and raft_init() wants version 2 for an
     * FSM with snapshot_async (rc_fsm.c takes snapshots off the loop). */
    if (r->io.version < 2 && r->io.async_work != NULL)
        r->io.version = 2;
    if ((rv = raft_init(&r->raft, &r->io, rc_fsm_raft(r->fsm), cfg->self_id, self->raft_addr)) != 0) {
        snprintf(errmsg, errlen, "raft init: %s", r->raft.errmsg[0] ? r->raft.errmsg : raft_strerror(rv));
        rv = RC_EIO;
        goto err_after_io;
    }
    r->raft.data = r;
    unsigned election = r->cfg.election_timeout_ms * (self->witness ? 2u : 1u);
    raft_set_election_timeout(&r->raft, election);
    raft_set_heartbeat_timeout(&r->raft, r->cfg.heartbeat_timeout_ms);
    raft_set_pre_vote(&r->raft, r->cfg.pre_vote);
    raft_set_snapshot_threshold(&r->raft, r->cfg.snapshot_threshold);
    raft_set_snapshot_trailing(&r->raft, r->cfg.snapshot_trailing);

    /* A node that joins a running cluster must not bootstrap: its first
     * configuration entry would claim index 1 with other contents than the
     * cluster's. It starts empty and waits for the leader to add it. */
    if (r->cfg.join)
        goto start;
    struct raft_configuration conf;
    if ((rv = build_configuration(r->cfg.members, r->cfg.n_members, &conf)) != 0) {
        snprintf(errmsg, errlen, "cluster configuration: %s", raft_strerror(rv));
        rv = RC_EINVAL;
        goto err_after_raft;
    }
    rv = raft_bootstrap(&r->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        snprintf(errmsg, errlen, "raft bootstrap: %s", r->raft.errmsg[0] ? r->raft.errmsg : raft_strerror(rv));
        rv = RC_EIO;
        goto err_after_raft;
    }
    if (rv == 0)
        rc_info("raft", "bootstrapped members=%zu", r->cfg.n_members);
start:
    if ((rv = raft_start(&r->raft)) != 0) {
        /* libraft leaves the reason where it arose: a listen failure is
         * only in the transport's message, not in the raft's */
        const char *why = r->raft.errmsg[0]            ? r->raft.errmsg
                          : r->io.errmsg[0]            ? r->io.errmsg
                          : r->transport.outer.errmsg[0] ? r->transport.outer.errmsg
                                                         : raft_strerror(rv);
        snprintf(errmsg, errlen, "raft start: %s", why);
        rv = RC_EIO;
        goto err_after_raft;
    }
    uv_timer_init(loop, &r->tick);
    uv_idle_init(loop, &r->flusher);
    r->tick.data = r->flusher.data = r;
    uv_timer_start(&r->tick, tick_cb, 0, r->cfg.tick_ms);
    check_disk(r);
    rc_info("raft", "started id=%llu address=%s election_timeout_ms=%u pre_vote=%s applied=%llu",
            (unsigned long long)cfg->self_id, self->raft_addr, election,
            r->cfg.pre_vote ? "on" : "off", (unsigned long long)raft_last_applied(&r->raft));
    *out = r;
    return RC_OK;

err_after_raft : {
    /* raft_close is asynchronous: run the loop until it has finished. */
    bool closed = false;
    r->raft.data = &closed;
    raft_close(&r->raft, closed_flag_cb);
    while (!closed)
        uv_run(loop, UV_RUN_ONCE);
}
err_after_io:
    raft_uv_close(&r->io);
err_after_transport:
    rc_transport_close(&r->transport);
err_after_fsm:
    rc_fsm_free(r->fsm);
err_after_alloc:
    free(r);
    return rv;
}

void rc_raft_set_forwarder(rc_raft *r, const struct rc_forwarder *fwd)
{
    r->fwd = *fwd;
}

/* ----------------------------------------------------------- catch-up */

struct catch_up {
    struct catch_up *next;
    rc_raft *r;
    uint8_t rid[REQUEST_ID_LEN];
    rc_propose_cb cb;
    void *data;
};

static void catch_up_proposed(void *data, int status)
{
    struct catch_up *c = data;
    rc_raft *r = c->r;
    if (status == RC_OK && !r->closing && !rc_fsm_request_applied(r->fsm, c->rid, sizeof c->rid)) {
        /* committed by the leader, still on its way here: tick_cb looks */
        c->next = r->catch_ups;
        r->catch_ups = c;
        return;
    }
    c->cb(c->data, r->closing && status == RC_OK ? RC_ESHUTDOWN : status);
    free(c);
}

/* Calls back the catch-ups whose Noop this node has applied (all of them,
 * with err, when err is not RC_OK). */
static void catch_ups_check(rc_raft *r, int err)
{
    struct catch_up **pp = &r->catch_ups;
    while (*pp != NULL) {
        struct catch_up *c = *pp;
        if (err == RC_OK && !rc_fsm_request_applied(r->fsm, c->rid, sizeof c->rid)) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        c->cb(c->data, err);
        free(c);
    }
}

int rc_raft_catch_up(rc_raft *r, rc_propose_cb cb, void *data)
{
    if (r->closing)
        return RC_ESHUTDOWN;
    struct catch_up *c = calloc(1, sizeof *c);
    if (c == NULL)
        return RC_ENOMEM;
    c->r = r;
    c->cb = cb;
    c->data = data;
    fill_request_id(r, c->rid);
    Ricochet__Noop noop;
    ricochet__noop__init(&noop);
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.has_request_id = true;
    rec.request_id.data = c->rid;
    rec.request_id.len = sizeof c->rid;
    rec.kind_case = RICOCHET__RECORD__KIND_NOOP;
    rec.noop = &noop;
    int rv = rc_raft_propose(r, &rec, catch_up_proposed, c);
    if (rv != RC_OK)
        free(c);
    return rv;
}

void rc_raft_get_status(rc_raft *r, struct rc_raft_status *st)
{
    memset(st, 0, sizeof *st);
    st->state = raft_state(&r->raft);
    raft_id leader = 0;
    const char *addr;
    raft_leader(&r->raft, &leader, &addr);
    st->leader = leader;
    st->term = r->raft.current_term;
    st->commit_index = r->raft.commit_index;
    st->applied_index = raft_last_applied(&r->raft);
    st->last_index = raft_last_index(&r->raft);
    st->leader_ready = r->leader_ready;
    st->ms_since_contact = leader ? 0 : now_ms(r) - r->last_contact_ms;
    st->disk_low = r->disk_low;
    st->free_bytes = r->free_bytes;
    st->proposals_ok = r->proposals_ok;
    st->proposals_failed = r->proposals_failed;
    st->entries_applied = rc_fsm_applied_records(r->fsm);
}

int rc_raft_peer_contact(rc_raft *r, uint64_t id)
{
    if (raft_state(&r->raft) != RAFT_LEADER)
        return -1;
    if (id == r->cfg.self_id)
        return 1;
    for (unsigned i = 0; i < r->raft.configuration.n; i++)
        if (r->raft.configuration.servers[i].id == id)
            return r->raft.leader_state.progress[i].recent_recv ? 1 : 0;
    return -1;
}

rc_fsm *rc_raft_fsm(rc_raft *r) { return r->fsm; }
const struct rc_raft_config *rc_raft_config(const rc_raft *r) { return &r->cfg; }
uint64_t rc_raft_self(const rc_raft *r) { return r->cfg.self_id; }

/* ------------------------------------------------------ forced recovery */

static int noop_apply(struct raft_fsm *f, const struct raft_buffer *b, void **res)
{
    (void)f; (void)b;
    *res = NULL;
    return 0;
}
static int noop_snapshot(struct raft_fsm *f, struct raft_buffer *bufs[], unsigned *n)
{
    (void)f; (void)bufs; (void)n;
    return RAFT_INVALID;
}
static int noop_restore(struct raft_fsm *f, struct raft_buffer *b)
{
    (void)f;
    raft_free(b->base);
    return 0;
}

int rc_raft_recover(const char *data_dir, uint64_t self_id, const char *self_addr,
                    const struct rc_member *members, size_t n, char *errmsg, size_t errlen)
{
    uv_loop_t loop;
    struct rc_transport transport;
    struct raft_io io;
    struct raft raft;
    struct raft_fsm fsm = {.version = 1, .apply = noop_apply, .snapshot = noop_snapshot,
                           .restore = noop_restore};
    struct raft_configuration conf;
    char dir[PATH_MAX];
    int rv = -1;
    if (snprintf(dir, sizeof dir, "%s/raft", data_dir) >= (int)sizeof dir) {
        snprintf(errmsg, errlen, "data directory path too long");
        return RC_EINVAL;
    }
    if (uv_loop_init(&loop) != 0) {
        snprintf(errmsg, errlen, "uv_loop_init failed");
        return RC_EIO;
    }
    if (rc_transport_init(&transport, &loop) != 0)
        goto out_loop;
    if (raft_uv_init(&io, &loop, dir, &transport.outer) != 0) {
        snprintf(errmsg, errlen, "cannot open raft data in %s: %s", dir, io.errmsg);
        goto out_transport;
    }
    if (raft_init(&raft, &io, &fsm, self_id, self_addr) != 0) {
        snprintf(errmsg, errlen, "raft init: %s", raft.errmsg);
        goto out_io;
    }
    if (build_configuration(members, n, &conf) != 0) {
        snprintf(errmsg, errlen, "bad member list");
        goto out_raft;
    }
    rv = raft_recover(&raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0)
        snprintf(errmsg, errlen, "raft_recover: %s", raft.errmsg[0] ? raft.errmsg : raft_strerror(rv));
out_raft : {
    bool closed = false;
    raft.data = &closed;
    raft_close(&raft, closed_flag_cb);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
}
out_io:
    raft_uv_close(&io);
out_transport:
    rc_transport_close(&transport);
out_loop:
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rv == 0 ? RC_OK : RC_EIO;
}
