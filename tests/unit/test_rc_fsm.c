/* The replicated message-state store: apply, the status transition table,
 * suppression rules, request-id deduplication, skipping bad entries without
 * failing, and the snapshot/restore round trip. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <raft.h>

#include "proto/ricochet.pb-c.h"
#include "raft/rc_entry.h"
#include "raft/rc_fsm.h"

/* ------------------------------------------------------------- helpers */

static uint64_t next_req = 1;

static uint8_t *pack_batch(Ricochet__Record **recs, size_t n, size_t *len)
{
    Ricochet__Batch b;
    ricochet__batch__init(&b);
    b.has_schema = true;
    b.schema = 1;
    b.records = recs;
    b.n_records = n;
    *len = ricochet__batch__get_packed_size(&b);
    uint8_t *buf = malloc(*len ? *len : 1);
    ricochet__batch__pack(&b, buf);
    return buf;
}

static void apply_one(rc_fsm *f, Ricochet__Record *rec)
{
    size_t len;
    uint8_t *buf = pack_batch(&rec, 1, &len);
    rc_fsm_apply_batch(f, buf, len);
    free(buf);
}

/* A snapshot through libraft's three callbacks, as libraft 0.15 drives a
 * version 3 FSM: snapshot on the loop, snapshot_async on a worker,
 * snapshot_finalize on the loop. Returns a copy of the buffer. */
static struct raft_buffer take_snapshot(rc_fsm *f)
{
    struct raft_fsm *rf = rc_fsm_raft(f);
    struct raft_buffer *bufs = NULL;
    unsigned n = 0;
    assert_int_equal(rf->version, 3);
    assert_int_equal(rf->snapshot(rf, &bufs, &n), 0);
    assert_int_equal(rf->snapshot_async(rf, &bufs, &n), 0);
    assert_int_equal(n, 1);
    struct raft_buffer copy = {raft_malloc(bufs[0].len), bufs[0].len};
    memcpy(copy.base, bufs[0].base, bufs[0].len);
    assert_int_equal(rf->snapshot_finalize(rf, &bufs, &n), 0);
    assert_null(bufs);
    return copy;
}

static void set_req(Ricochet__Record *r, uint8_t id[16], uint64_t v)
{
    memset(id, 0, 16);
    for (int i = 0; i < 8; i++)
        id[15 - i] = (uint8_t)(v >> (8 * i));
    r->has_request_id = true;
    r->request_id.data = id;
    r->request_id.len = 16;
}

/* A record as a fresh proposal: a new request id, then applied. */
static void apply_new(rc_fsm *f, Ricochet__Record *rec)
{
    uint8_t reqid[16];
    set_req(rec, reqid, next_req++);
    apply_one(f, rec);
}

static void accept_msg(rc_fsm *f, const char *id, const char **rcpts, size_t n)
{
    Ricochet__Envelope env;
    ricochet__envelope__init(&env);
    env.mail_from = "sender@example.org";
    Ricochet__RecipientSpec specs[8], *pspecs[8];
    for (size_t i = 0; i < n; i++) {
        ricochet__recipient_spec__init(&specs[i]);
        specs[i].address = (char *)rcpts[i];
        pspecs[i] = &specs[i];
    }
    Ricochet__Accept a;
    ricochet__accept__init(&a);
    a.id = (char *)id;
    a.envelope = &env;
    a.recipients = pspecs;
    a.n_recipients = n;
    a.has_body = true;
    a.body.data = (uint8_t *)"Subject: hi\r\n\r\nbody\r\n";
    a.body.len = strlen((char *)a.body.data);
    a.has_received_ms = true;
    a.received_ms = 1000;
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_ACCEPT;
    rec.accept = &a;
    apply_new(f, &rec);
}

static void status(rc_fsm *f, const char *id, unsigned rcpt, int st, bool hard, const char *reason)
{
    Ricochet__StatusUpdate u;
    ricochet__status_update__init(&u);
    u.id = (char *)id;
    u.has_recipient = u.has_status = u.has_at_ms = true;
    u.recipient = rcpt;
    u.status = (Ricochet__Status)st;
    u.at_ms = 2000;
    u.has_hard = true;
    u.hard = hard;
    u.reason = (char *)reason;
    u.has_smtp_code = true;
    u.smtp_code = st == RC_ST_DELIVERED ? 250 : 550;
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_STATUS;
    rec.status = &u;
    apply_new(f, &rec);
}

static int bodies_seen;
static void count_body(void *data, const struct rc_msg *m, const uint8_t *body, size_t len)
{
    (void)data; (void)m; (void)body; (void)len;
    bodies_seen++;
}

static rc_fsm *new_fsm(void)
{
    rc_fsm *f;
    struct rc_fsm_hooks hooks = {.on_accept = count_body};
    struct rc_fsm_config cfg = {.dedup_capacity = 1000, .soft_bounce_limit = 3};
    assert_int_equal(rc_fsm_new(&f, &cfg, &hooks, NULL), 0);
    return f;
}

/* --------------------------------------------------------------- tests */

static void test_accept_and_status(void **state)
{
    rc_fsm *f = new_fsm();
    const char *rcpts[] = {"a@example.com", "b@example.com"};
    bodies_seen = 0;
    accept_msg(f, "M1", rcpts, 2);
    assert_int_equal(bodies_seen, 1);
    const struct rc_msg *m = rc_fsm_message(f, "M1");
    assert_non_null(m);
    assert_int_equal(m->n_rcpts, 2);
    assert_int_equal(m->rcpts[0].status, RC_ST_QUEUED);
    assert_int_equal(m->body_size, strlen("Subject: hi\r\n\r\nbody\r\n"));

    status(f, "M1", 0, RC_ST_DEFERRED, false, "blocked");
    status(f, "M1", 0, RC_ST_DELIVERED, false, NULL);
    status(f, "M1", 0, RC_ST_FAILED, true, "userunknown"); /* forbidden: delivered is final */
    m = rc_fsm_message(f, "M1");
    assert_int_equal(m->rcpts[0].status, RC_ST_DELIVERED);
    assert_int_equal(m->rcpts[0].n_history, 3); /* queued, deferred, delivered */
    assert_int_equal(m->rcpts[0].attempts, 2);
    assert_int_equal(rc_fsm_skipped_records(f), 1);

    /* an async bounce after delivery is allowed and suppresses (hard) */
    status(f, "M1", 0, RC_ST_BOUNCED, true, "userunknown");
    assert_int_equal(rc_fsm_message(f, "M1")->rcpts[0].status, RC_ST_BOUNCED);
    assert_non_null(rc_fsm_suppression(f, "A@EXAMPLE.com"));

    /* a later submission to the suppressed address ends rejected at apply */
    const char *again[] = {"a@example.com"};
    accept_msg(f, "M2", again, 1);
    assert_int_equal(rc_fsm_message(f, "M2")->rcpts[0].status, RC_ST_REJECTED);

    /* unknown message / recipient index: skipped, no crash */
    status(f, "nope", 0, RC_ST_DELIVERED, false, NULL);
    status(f, "M1", 7, RC_ST_DELIVERED, false, NULL);
    assert_int_equal(rc_fsm_message_count(f), 2);
    rc_fsm_free(f);
}

static void test_soft_bounces_suppress_after_limit(void **state)
{
    rc_fsm *f = new_fsm();
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "S%d", i);
        const char *r[] = {"soft@example.com"};
        accept_msg(f, id, r, 1);
        status(f, id, 0, RC_ST_DELIVERED, false, NULL);
        if (i == 1) {
            /* an engagement event (the mail reached the inbox) resets the count */
            status(f, id, 0, RC_ST_OPENED, false, NULL);
            status(f, "S0", 0, RC_ST_OPENED, false, NULL);
        }
        status(f, id, 0, RC_ST_BOUNCED, false, "mailboxfull");
        assert_null(rc_fsm_suppression(f, "soft@example.com"));
    }
    /* asynchronous soft bounces follow deliveries: deliveries do not reset */
    for (int i = 3; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof id, "S%d", i);
        const char *r[] = {"soft@example.com"};
        accept_msg(f, id, r, 1);
        status(f, id, 0, RC_ST_DELIVERED, false, NULL);
        status(f, id, 0, RC_ST_BOUNCED, false, "mailboxfull");
    }
    assert_non_null(rc_fsm_suppression(f, "soft@example.com"));
    rc_fsm_free(f);
}

static void test_transition_table(void **state)
{
    /* Every pair of statuses against DESIGN §5. */
    static const int all[] = {RC_ST_QUEUED, RC_ST_DEFERRED, RC_ST_DELIVERED, RC_ST_BOUNCED,
                              RC_ST_FAILED, RC_ST_UNDELIVERABLE, RC_ST_EXPIRED, RC_ST_REJECTED,
                              RC_ST_DISCARDED, RC_ST_COMPLAINED, RC_ST_LOST_IN_SPACE,
                              RC_ST_OPENED, RC_ST_CLICKED};
    const size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            int from = all[i], to = all[j];
            bool expect;
            if (from == RC_ST_OPENED || from == RC_ST_CLICKED)
                expect = false; /* events are never a current status */
            else if (to == RC_ST_OPENED || to == RC_ST_CLICKED)
                expect = from == RC_ST_DELIVERED;
            else if (to == RC_ST_QUEUED)
                expect = false;
            else if (from == RC_ST_QUEUED || from == RC_ST_DEFERRED)
                expect = to != RC_ST_COMPLAINED;
            else if (from == RC_ST_DELIVERED)
                expect = to == RC_ST_BOUNCED || to == RC_ST_COMPLAINED;
            else
                expect = false; /* terminal, lost_in_space included */
            if (rc_status_transition_allowed(from, to) != expect)
                fail_msg("transition %s -> %s: expected %s", rc_status_name(from),
                         rc_status_name(to), expect ? "allowed" : "forbidden");
        }
    }
    assert_true(rc_status_terminal(RC_ST_LOST_IN_SPACE));
    assert_false(rc_status_terminal(RC_ST_DEFERRED));
    assert_int_equal(rc_status_parse("lost_in_space"), RC_ST_LOST_IN_SPACE);
    assert_int_equal(rc_status_parse("bogus"), -1);
}

static void test_duplicate_request_applies_once(void **state)
{
    rc_fsm *f = new_fsm();
    Ricochet__SuppressionChange c;
    ricochet__suppression_change__init(&c);
    c.address = "x@example.com";
    c.has_add = true;
    c.add = true;
    c.reason = "operator";
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    uint8_t reqid[16];
    set_req(&rec, reqid, 424242);
    rec.kind_case = RICOCHET__RECORD__KIND_SUPPRESSION;
    rec.suppression = &c;
    apply_one(f, &rec);
    uint64_t applied = rc_fsm_applied_records(f);
    /* the same request again (a retry after an unknown outcome) */
    c.add = false;
    apply_one(f, &rec);
    assert_int_equal(rc_fsm_applied_records(f), applied);
    assert_non_null(rc_fsm_suppression(f, "x@example.com"));
    /* what a catch-up (rc_raft_catch_up) asks: was that request applied here */
    assert_true(rc_fsm_request_applied(f, reqid, sizeof reqid));
    uint8_t other[16];
    Ricochet__Record noop_rec;
    ricochet__record__init(&noop_rec);
    set_req(&noop_rec, other, 424243);
    assert_false(rc_fsm_request_applied(f, other, sizeof other));
    Ricochet__Noop noop;
    ricochet__noop__init(&noop);
    noop_rec.kind_case = RICOCHET__RECORD__KIND_NOOP;
    noop_rec.noop = &noop;
    apply_one(f, &noop_rec);
    assert_true(rc_fsm_request_applied(f, other, sizeof other));
    assert_false(rc_fsm_request_applied(f, other, 0));
    rc_fsm_free(f);
}

static void test_bad_entries_never_fail_apply(void **state)
{
    rc_fsm *f = new_fsm();
    struct raft_fsm *rf = rc_fsm_raft(f);
    void *result;
    /* garbage that is not one of our entries */
    uint8_t junk[24] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    struct raft_buffer b = {junk, sizeof junk};
    assert_int_equal(rf->apply(rf, &b, &result), 0);
    /* a well-framed entry whose payload is not a Batch */
    struct raft_buffer w;
    assert_int_equal(rc_entry_wrap(RC_ENTRY_LOG, "\xff\xff\xff\xff", 4, &w), 0);
    assert_int_equal(rf->apply(rf, &w, &result), 0);
    raft_free(w.base);
    /* a record with no kind (as written by a newer schema) */
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    apply_one(f, &rec);
    assert_int_equal(rc_fsm_applied_records(f), 1);
    assert_int_equal(rc_fsm_skipped_records(f), 2);
    rc_fsm_free(f);
}

static void test_snapshot_round_trip(void **state)
{
    rc_fsm *f = new_fsm();
    const char *r2[] = {"one@example.com", "two@example.com"};
    for (int i = 0; i < 50; i++) {
        char id[16];
        snprintf(id, sizeof id, "ID%03d", i);
        accept_msg(f, id, r2, 2);
        status(f, id, 1, i % 2 ? RC_ST_DELIVERED : RC_ST_DEFERRED, false, NULL);
    }
    status(f, "ID001", 1, RC_ST_COMPLAINED, false, "abuse");

    /* Through libraft's callbacks, padded buffers included. */
    struct raft_buffer copy = take_snapshot(f);
    assert_int_equal(copy.len % 8, 0);

    rc_fsm *g = new_fsm();
    struct raft_fsm *rg = rc_fsm_raft(g);
    assert_int_equal(rg->restore(rg, &copy), 0); /* takes ownership */

    char d1[65], d2[65];
    rc_fsm_digest_hex(f, d1);
    rc_fsm_digest_hex(g, d2);
    assert_string_equal(d1, d2);
    assert_int_equal(rc_fsm_applied_records(f), rc_fsm_applied_records(g));
    assert_int_equal(rc_fsm_message_count(g), 50);
    const struct rc_msg *a = rc_fsm_message(f, "ID001"), *b = rc_fsm_message(g, "ID001");
    assert_int_equal(a->rcpts[1].status, b->rcpts[1].status);
    assert_int_equal(b->rcpts[1].status, RC_ST_COMPLAINED);
    assert_int_equal(a->rcpts[1].n_history, b->rcpts[1].n_history);
    assert_memory_equal(a->body_sha256, b->body_sha256, 32);
    assert_string_equal(b->mail_from, "sender@example.org");
    assert_non_null(rc_fsm_suppression(g, "two@example.com"));

    /* both continue identically after the restore */
    uint64_t same_request = next_req;
    status(f, "ID000", 1, RC_ST_DELIVERED, false, NULL);
    next_req = same_request; /* the same record bytes on both */
    status(g, "ID000", 1, RC_ST_DELIVERED, false, NULL);
    rc_fsm_digest_hex(f, d1);
    rc_fsm_digest_hex(g, d2);
    assert_string_equal(d1, d2);

    /* a corrupt snapshot is refused and the state kept */
    struct raft_buffer bad;
    assert_int_equal(rc_entry_wrap(RC_ENTRY_SNAPSHOT, "\x0a\xff", 2, &bad), 0);
    assert_int_not_equal(rg->restore(rg, &bad), 0);
    raft_free(bad.base);
    assert_int_equal(rc_fsm_message_count(g), 50);
    rc_fsm_free(f);
    rc_fsm_free(g);
}

static void attempt(rc_fsm *f, const char *id, uint32_t *rcpts, size_t n, uint64_t node)
{
    Ricochet__AttemptStart a;
    ricochet__attempt_start__init(&a);
    a.id = (char *)id;
    a.recipients = rcpts;
    a.n_recipients = n;
    a.has_node = a.has_at_ms = true;
    a.node = node;
    a.at_ms = 1500;
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_ATTEMPT;
    rec.attempt = &a;
    apply_new(f, &rec);
}

static void forget(rc_fsm *f, const char *id)
{
    char *ids[1] = {(char *)id};
    Ricochet__Forget g;
    ricochet__forget__init(&g);
    g.ids = ids;
    g.n_ids = 1;
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_FORGET;
    rec.forget = &g;
    apply_new(f, &rec);
}

/* AttemptStart marks recipients until their next status; the mark survives
 * a snapshot (a new leader must see it) and is never set on a final one. */
static void test_attempt_marks(void **state)
{
    (void)state;
    rc_fsm *f = new_fsm();
    const char *r3[] = {"a@example.com", "b@example.com", "c@example.com"};
    accept_msg(f, "M1", r3, 3);
    status(f, "M1", 2, RC_ST_FAILED, true, "userunknown");
    uint32_t idx[] = {0, 1, 2, 7}; /* 7: out of range, ignored */
    attempt(f, "M1", idx, 4, 3);
    const struct rc_msg *m = rc_fsm_message(f, "M1");
    assert_int_equal(m->rcpts[0].attempt_node, 3);
    assert_int_equal(m->rcpts[0].attempt_at_ms, 1500);
    assert_int_equal(m->rcpts[1].attempt_node, 3);
    assert_int_equal(m->rcpts[2].attempt_node, 0); /* final already */
    status(f, "M1", 0, RC_ST_DELIVERED, false, NULL);
    assert_int_equal(m->rcpts[0].attempt_node, 0);
    assert_int_equal(m->rcpts[1].attempt_node, 3);
    attempt(f, "NOPE", idx, 1, 3); /* unknown message: skipped, never fails */

    struct raft_buffer copy = take_snapshot(f);
    rc_fsm *g = new_fsm();
    struct raft_fsm *rg = rc_fsm_raft(g);
    assert_int_equal(rg->restore(rg, &copy), 0);
    const struct rc_msg *mg = rc_fsm_message(g, "M1");
    assert_int_equal(mg->rcpts[1].attempt_node, 3);
    assert_int_equal(mg->rcpts[1].attempt_at_ms, 1500);
    assert_int_equal(mg->rcpts[0].attempt_node, 0);
    char d1[65], d2[65];
    rc_fsm_digest_hex(f, d1);
    rc_fsm_digest_hex(g, d2);
    assert_string_equal(d1, d2);
    rc_fsm_free(f);
    rc_fsm_free(g);
}

static void webhook_ack(rc_fsm *f, const char *id, uint32_t rcpt, uint32_t upto)
{
    Ricochet__WebhookAckItem it;
    ricochet__webhook_ack_item__init(&it);
    it.id = (char *)id;
    it.has_recipient = it.has_upto = true;
    it.recipient = rcpt;
    it.upto = upto;
    Ricochet__WebhookAckItem *items[1] = {&it};
    Ricochet__WebhookAck a;
    ricochet__webhook_ack__init(&a);
    a.items = items;
    a.n_items = 1;
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_WEBHOOK_ACK;
    rec.webhook_ack = &a;
    apply_new(f, &rec);
}

/* WebhookAck: how far the receiver has each recipient's history; never
 * back, never past the history, kept by snapshots, unknown targets skipped. */
static void test_webhook_acks(void **state)
{
    (void)state;
    rc_fsm *f = new_fsm();
    const char *r2[] = {"a@example.com", "b@example.com"};
    accept_msg(f, "M1", r2, 2);
    status(f, "M1", 0, RC_ST_DEFERRED, false, NULL);
    const struct rc_msg *m = rc_fsm_message(f, "M1");
    assert_int_equal(m->rcpts[0].n_history, 2);
    assert_int_equal(m->rcpts[0].webhook_sent, 0);
    webhook_ack(f, "M1", 0, 1);
    assert_int_equal(m->rcpts[0].webhook_sent, 1);
    webhook_ack(f, "M1", 0, 0); /* an older ack arriving late: no step back */
    assert_int_equal(m->rcpts[0].webhook_sent, 1);
    webhook_ack(f, "M1", 0, 99); /* past the history: capped */
    assert_int_equal(m->rcpts[0].webhook_sent, 2);
    webhook_ack(f, "M1", 7, 1); /* no such recipient */
    webhook_ack(f, "NOPE", 0, 1);
    assert_int_equal(m->rcpts[1].webhook_sent, 0);
    status(f, "M1", 0, RC_ST_DELIVERED, false, NULL); /* a new entry to send */
    assert_int_equal(m->rcpts[0].n_history, 3);
    assert_int_equal(m->rcpts[0].webhook_sent, 2);

    struct raft_buffer copy = take_snapshot(f);
    rc_fsm *g = new_fsm();
    struct raft_fsm *rg = rc_fsm_raft(g);
    assert_int_equal(rg->restore(rg, &copy), 0);
    const struct rc_msg *mg = rc_fsm_message(g, "M1");
    assert_int_equal(mg->rcpts[0].webhook_sent, 2);
    assert_int_equal(mg->rcpts[1].webhook_sent, 0);
    rc_fsm_free(f);
    rc_fsm_free(g);
}

static int forgotten_seen;
static void count_forget(void *data, const struct rc_msg *m)
{
    (void)data;
    (void)m;
    forgotten_seen++;
}

/* Retention: Forget removes a message only when every recipient is final. */
static void test_forget_only_final(void **state)
{
    (void)state;
    rc_fsm *f;
    struct rc_fsm_hooks hooks = {.on_forget = count_forget};
    struct rc_fsm_config cfg = {.dedup_capacity = 1000, .soft_bounce_limit = 3};
    assert_int_equal(rc_fsm_new(&f, &cfg, &hooks, NULL), 0);
    const char *r2[] = {"a@example.com", "b@example.com"};
    accept_msg(f, "DONE", r2, 2);
    accept_msg(f, "HALF", r2, 2);
    status(f, "DONE", 0, RC_ST_DELIVERED, false, NULL);
    status(f, "DONE", 1, RC_ST_FAILED, true, "userunknown");
    status(f, "HALF", 0, RC_ST_DELIVERED, false, NULL);
    Ricochet__Forget g;
    ricochet__forget__init(&g);
    char *ids[] = {"DONE", "HALF", "NONE"};
    g.ids = ids;
    g.n_ids = 3;
    Ricochet__Record rec;
    ricochet__record__init(&rec);
    uint8_t reqid[16];
    set_req(&rec, reqid, next_req++);
    rec.kind_case = RICOCHET__RECORD__KIND_FORGET;
    rec.forget = &g;
    forgotten_seen = 0;
    apply_one(f, &rec);
    assert_null(rc_fsm_message(f, "DONE"));
    assert_non_null(rc_fsm_message(f, "HALF"));
    assert_int_equal(forgotten_seen, 1);
    assert_int_equal(rc_fsm_forgotten_messages(f), 1);
    assert_int_equal(rc_fsm_message_count(f), 1);
    /* the suppression the failure caused stays */
    assert_non_null(rc_fsm_suppression(f, "b@example.com"));
    rc_fsm_free(f);
}

/* Snapshots reuse each message's encoding until it changes: after every
 * kind of change (accept, status, attempt, forget) a snapshot must come
 * out byte for byte as if every message were encoded afresh. */
static void test_snapshot_cache_matches_fresh(void **state)
{
    (void)state;
    rc_fsm *f = new_fsm();
    const char *r3[] = {"a@example.com", "b@example.com", "c@example.com"};
    char id[16];
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "C%03d", i);
        accept_msg(f, id, r3, 3);
    }
    for (int round = 0; round < 4; round++) {
        uint8_t *cached, *fresh;
        size_t lc, lf;
        assert_int_equal(rc_fsm_snapshot_encode(f, &cached, &lc), 0);
        rc_fsm_snapshot_forget_cache(f);
        assert_int_equal(rc_fsm_snapshot_encode(f, &fresh, &lf), 0);
        assert_int_equal(lc, lf);
        assert_memory_equal(cached, fresh, lc);
        free(cached);
        free(fresh);
        /* change some messages, after their encodings were cached */
        uint32_t idx[] = {0, 1};
        for (int i = round; i < 40; i += 5) {
            snprintf(id, sizeof id, "C%03d", i);
            switch (round) {
            case 0: status(f, id, 0, RC_ST_DEFERRED, false, "greylisted"); break;
            case 1: attempt(f, id, idx, 2, 2); break;
            case 2:
                status(f, id, 0, RC_ST_DELIVERED, false, NULL);
                status(f, id, 1, RC_ST_BOUNCED, true, "userunknown");
                status(f, id, 2, RC_ST_DELIVERED, false, NULL);
                forget(f, id);
                break;
            default: snprintf(id, sizeof id, "N%03d", i); accept_msg(f, id, r3, 1); break;
            }
        }
    }
    rc_fsm_free(f);
}

struct async_take {
    struct raft_fsm *rf;
    struct raft_buffer *bufs;
    unsigned n;
    int rv;
};

static void *async_take_run(void *arg)
{
    struct async_take *t = arg;
    t->rv = t->rf->snapshot_async(t->rf, &t->bufs, &t->n);
    return NULL;
}

/* The worker thread assembles the snapshot while the loop goes on
 * applying: it must hold the state of the moment it was taken. */
static void test_snapshot_async_while_applying(void **state)
{
    (void)state;
    rc_fsm *f = new_fsm();
    const char *r1[] = {"x@example.com"};
    char id[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof id, "A%05d", i);
        accept_msg(f, id, r1, 1);
    }
    uint8_t *want;
    size_t want_len;
    assert_int_equal(rc_fsm_snapshot_encode(f, &want, &want_len), 0);

    struct async_take t = {.rf = rc_fsm_raft(f)};
    assert_int_equal(t.rf->snapshot(t.rf, &t.bufs, &t.n), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, async_take_run, &t), 0);
    for (int i = 0; i < 2000; i++) { /* the loop goes on */
        snprintf(id, sizeof id, "A%05d", i);
        status(f, id, 0, RC_ST_DELIVERED, false, NULL);
        if (i % 3 == 0)
            forget(f, id);
        snprintf(id, sizeof id, "B%05d", i);
        accept_msg(f, id, r1, 1);
    }
    pthread_join(th, NULL);
    assert_int_equal(t.rv, 0);
    const uint8_t *payload;
    size_t len;
    assert_int_equal(rc_entry_unwrap(RC_ENTRY_SNAPSHOT, t.bufs[0].base, t.bufs[0].len, &payload, &len), RC_ENTRY_OK);
    assert_int_equal(len, want_len);
    assert_memory_equal(payload, want, len);
    assert_int_equal(t.rf->snapshot_finalize(t.rf, &t.bufs, &t.n), 0);
    free(want);
    /* a second snapshot now holds the new state */
    struct raft_buffer copy = take_snapshot(f);
    rc_fsm *g = new_fsm();
    assert_int_equal(rc_fsm_raft(g)->restore(rc_fsm_raft(g), &copy), 0);
    assert_int_equal(rc_fsm_message_count(g), rc_fsm_message_count(f));
    assert_non_null(rc_fsm_message(g, "B01999"));
    assert_null(rc_fsm_message(g, "A00000"));
    rc_fsm_free(g);
    rc_fsm_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_and_status),
        cmocka_unit_test(test_soft_bounces_suppress_after_limit),
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test(test_duplicate_request_applies_once),
        cmocka_unit_test(test_bad_entries_never_fail_apply),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_snapshot_cache_matches_fresh),
        cmocka_unit_test(test_snapshot_async_while_applying),
        cmocka_unit_test(test_attempt_marks),
        cmocka_unit_test(test_webhook_acks),
        cmocka_unit_test(test_forget_only_final),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
