/* GET /v1/bounces: the incoming bounces that changed no recipient (bounce
 * notes, raft/rc_notes.h) and their counts by kind (docs/BOUNCES.md,
 * docs/CLI.md). */
#include <jansson.h>

#include "node/http_api.h"
#include "node/rc_bounce.h"
#include "node/rc_node_internal.h"
#include "proto/ricochet.pb-c.h"
#include "raft/rc_fsm.h"
#include "raft/rc_notes.h"

static void rc_api_set_str(json_t *o, const char *key, const char *v)
{
    if (v != NULL && v[0])
        json_object_set_new(o, key, json_string(v));
}

static void get_bounces(http_request *req, void *data)
{
    rc_node *n = data;
    const rc_notes *t = rc_fsm_notes(rc_raft_fsm(n->raft));
    json_t *counts = json_object(), *notes = json_array();
    for (int k = 1; k < RC_NOTE_KINDS; k++)
        json_object_set_new(counts, rc_note_kind_name(k), json_integer((json_int_t)rc_notes_count(t, k)));
    for (size_t i = 0; i < rc_notes_len(t); i++) {
        const Ricochet__BounceNote *x = rc_notes_at(t, i);
        json_t *o = json_pack("{s:s, s:I, s:I}", "kind", rc_note_kind_name((int)x->kind), "at",
                              (json_int_t)x->at_ms, "node", (json_int_t)x->node);
        rc_api_set_str(o, "message_id", x->message_id);
        if (x->has_recipient)
            json_object_set_new(o, "recipient", json_integer(x->recipient));
        rc_api_set_str(o, "address", x->address);
        rc_api_set_str(o, "reason", x->reason);
        rc_api_set_str(o, "detail", x->detail);
        rc_api_set_str(o, "sender", x->sender);
        json_array_append_new(notes, o);
    }
    http_respond_json(req, 200, json_pack("{s:o, s:o}", "counts", counts, "notes", notes));
}

void rc_api_bounces_routes(rc_node *n)
{
    http_api_route(n->http, "GET", "/v1/bounces", get_bounces, n);
}
