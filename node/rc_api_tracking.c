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
#include "smtp/track.h"

_Static_assert(TRACK_TARGET_MAX <= RC_ENGAGEMENT_URL_MAX, "a clicked link's target fits the event's url");

/* GIF89a, 1x1, transparent */
static const unsigned char track_gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

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
