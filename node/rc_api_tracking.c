/* GET /t/o/... and /t/c/...: the endpoint of open pixels and tracked links
 * (smtp/track.h, docs/TRACKING.md). Unauthenticated by nature (a mail
 * client fetches it); only URLs whose signature checks are served, so it
 * records nothing forged and redirects nowhere it was not told to. The
 * answer does not wait for the record: an image must show and a link
 * must open even while the cluster elects a leader; the event is
 * proposed afterwards and its result logged and counted. */
#include <string.h>

#include "node/base/rc_log.h"
#include "node/http_api.h"
#include "node/rc_engagement_json.h"
#include "node/rc_node_internal.h"
#include "raft/rc_fsm.h"
#include "raft/rc_raft.h"
#include "smtp/track.h"

_Static_assert(TRACK_TARGET_MAX <= RC_ENGAGEMENT_URL_MAX, "a clicked link's target fits the event's url");

/* GIF89a, 1x1, transparent */
static const unsigned char track_gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

static uint64_t hit_key(const struct track_hit *h)
{
    uint64_t k = 1469598103934665603ull; /* FNV-1a */
    const char *parts[] = {h->id, h->event == TRACK_OPENS ? "o" : "c", h->target};
    for (size_t p = 0; p < 3; p++) {
        for (const char *c = parts[p]; *c; c++)
            k = (k ^ (uint8_t)*c) * 1099511628211ull;
        k = (k ^ 0xff) * 1099511628211ull;
    }
    return (k ^ h->rcpt) * 1099511628211ull;
}

/* Why a valid hit is not recorded (NULL: record it): the same event of the
 * same recipient (and link) was recorded within tracking.repeat_window, in
 * the history or by this node's proposals not yet there; or the
 * recipient's history holds tracking.max_events engagement entries. */
static const char *hit_not_recorded(rc_node *n, const struct track_hit *h)
{
    uint64_t now = rc_now_ms(), window = n->cfg.tracking_repeat_window_ms;
    const struct rc_msg *m = rc_fsm_message(rc_raft_fsm(n->raft), h->id);
    int status = h->event == TRACK_OPENS ? RC_ST_OPENED : RC_ST_CLICKED;
    if (m != NULL && h->rcpt < m->n_rcpts) {
        const struct rc_rcpt *r = &m->rcpts[h->rcpt];
        size_t events = 0;
        for (size_t i = 0; i < r->n_history; i++) {
            const struct rc_history *x = &r->history[i];
            if (x->status != RC_ST_OPENED && x->status != RC_ST_CLICKED)
                continue;
            events++;
            if (window > 0 && x->status == status && x->at_ms + window > now &&
                (status == RC_ST_OPENED || (x->text != NULL && strcmp(x->text, h->target) == 0)))
                return "repeat";
        }
        if (events >= n->cfg.tracking_max_events)
            return "max_events";
    }
    if (window > 0) {
        uint64_t key = hit_key(h);
        size_t slot = (size_t)(key % (sizeof n->tracking_recent / sizeof n->tracking_recent[0]));
        if (n->tracking_recent[slot].key == key && n->tracking_recent[slot].at_ms + window > now)
            return "repeat";
        n->tracking_recent[slot].key = key;
        n->tracking_recent[slot].at_ms = now;
    }
    return NULL;
}

static void get_tracking(http_request *req, void *data)
{
    rc_node *n = data;
    const struct rc_config *c = &n->cfg;
    struct track_key key = {.secret = (const uint8_t *)c->tracking_secret, .secret_len = strlen(c->tracking_secret),
                            .base = c->tracking_url};
    struct track_hit hit;
    int rv = track_parse(&key, http_request_path(req), &hit);
    if (rv != TRACK_OK) {
        n->tracking_refused++;
        rc_debug("api", "tracking_refused path_bytes=%zu error=\"%s\"", strlen(http_request_path(req)),
                 track_strerror(rv));
        http_respond_error(req, 404, "not found");
        return;
    }
    static const char *const nocache[] = {"cache-control", "no-store, max-age=0", NULL};
    if (hit.event == TRACK_OPENS) {
        http_respond_bytes(req, 200, "image/gif", track_gif, sizeof track_gif, nocache);
    } else {
        const char *const fields[] = {"location", hit.target, "cache-control", "no-store, max-age=0",
                                      "referrer-policy", "no-referrer", NULL};
        static const char moved[] = "Moved\n";
        http_respond_bytes(req, 302, "text/plain; charset=utf-8", moved, sizeof moved - 1, fields);
    }
    /* the answer is gone; now the record */
    const char *skip = hit_not_recorded(n, &hit);
    if (skip != NULL) {
        n->tracking_skipped++;
        rc_debug("api", "tracking_not_recorded id=%s rcpt=%u reason=%s", hit.id, hit.rcpt, skip);
        return;
    }
    struct rc_engagement what;
    memset(&what, 0, sizeof what);
    what.rcpt = hit.rcpt;
    what.status = hit.event == TRACK_OPENS ? RC_ST_OPENED : RC_ST_CLICKED;
    if (hit.event == TRACK_CLICKS)
        memcpy(what.url, hit.target, strlen(hit.target) + 1); /* both at most 2048 bytes */
    if (rc_engagement_record(n, hit.id, &what, NULL) != RC_OK) {
        n->tracking_not_recorded++;
        rc_warn("api", "tracking_not_recorded id=%s rcpt=%u reason=\"out of memory\"", hit.id, hit.rcpt);
    }
}

void rc_api_tracking_routes(rc_node *n)
{
    if (n->cfg.tracking_url[0] != '\0')
        http_api_route(n->http, "GET", "/t/", get_tracking, n);
}
