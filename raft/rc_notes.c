/* Bounded store of bounce notes: a ring of deep copies (protobuf-c
 * pack/unpack) and a counter per kind. */
#include <stdlib.h>
#include <string.h>

#include "proto/ricochet.pb-c.h"
#include "raft/rc_notes.h"

struct rc_notes {
    Ricochet__BounceNote **ring;
    size_t cap, head, len;
    uint64_t counts[RC_NOTE_KINDS];
};

rc_notes *rc_notes_new(size_t capacity)
{
    rc_notes *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->cap = capacity ? capacity : 1;
    t->ring = calloc(t->cap, sizeof *t->ring);
    if (t->ring == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

static void rc_notes_clear(rc_notes *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        if (t->ring[i])
            ricochet__bounce_note__free_unpacked(t->ring[i], NULL);
        t->ring[i] = NULL;
    }
    t->head = t->len = 0;
    memset(t->counts, 0, sizeof t->counts);
}

void rc_notes_free(rc_notes *t)
{
    if (t == NULL)
        return;
    rc_notes_clear(t);
    free(t->ring);
    free(t);
}

static Ricochet__BounceNote *rc_note_copy(const Ricochet__BounceNote *n)
{
    size_t len = ricochet__bounce_note__get_packed_size(n);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return NULL;
    ricochet__bounce_note__pack(n, buf);
    Ricochet__BounceNote *c = ricochet__bounce_note__unpack(NULL, len, buf);
    free(buf);
    return c;
}

static void rc_notes_keep(rc_notes *t, Ricochet__BounceNote *c)
{
    size_t slot = (t->head + t->len) % t->cap;
    if (t->len == t->cap) {
        ricochet__bounce_note__free_unpacked(t->ring[t->head], NULL);
        slot = t->head;
        t->head = (t->head + 1) % t->cap;
    } else {
        t->len++;
    }
    t->ring[slot] = c;
}

int rc_notes_add(rc_notes *t, const Ricochet__BounceNote *n)
{
    Ricochet__BounceNote *c = rc_note_copy(n);
    if (c == NULL)
        return -1;
    rc_notes_keep(t, c);
    int k = (int)n->kind;
    t->counts[k >= 0 && k < RC_NOTE_KINDS ? k : 0]++;
    return 0;
}

uint64_t rc_notes_count(const rc_notes *t, int kind)
{
    return kind >= 0 && kind < RC_NOTE_KINDS ? t->counts[kind] : 0;
}

size_t rc_notes_len(const rc_notes *t)
{
    return t->len;
}

const Ricochet__BounceNote *rc_notes_at(const rc_notes *t, size_t i)
{
    return i < t->len ? t->ring[(t->head + i) % t->cap] : NULL;
}

const char *rc_note_kind_name(int kind)
{
    static const char *const names[RC_NOTE_KINDS] = {"unspecified", "forged", "unmapped", "unrecognized", "ignored"};
    return kind >= 0 && kind < RC_NOTE_KINDS ? names[kind] : "unspecified";
}

int rc_notes_to_snapshot(const rc_notes *t, Ricochet__Snapshot *s, uint64_t *counts)
{
    /* the ring in order: a small array of pointers */
    s->bounce_notes = malloc((t->len ? t->len : 1) * sizeof *s->bounce_notes);
    if (s->bounce_notes == NULL)
        return -1;
    for (size_t i = 0; i < t->len; i++)
        s->bounce_notes[i] = t->ring[(t->head + i) % t->cap];
    s->n_bounce_notes = t->len;
    memcpy(counts, t->counts, sizeof t->counts);
    s->bounce_note_counts = counts;
    s->n_bounce_note_counts = RC_NOTE_KINDS;
    return 0;
}

int rc_notes_from_snapshot(rc_notes *t, const Ricochet__Snapshot *s)
{
    rc_notes_clear(t);
    size_t first = s->n_bounce_notes > t->cap ? s->n_bounce_notes - t->cap : 0;
    for (size_t i = first; i < s->n_bounce_notes; i++) {
        Ricochet__BounceNote *c = rc_note_copy(s->bounce_notes[i]);
        if (c == NULL)
            return -1;
        rc_notes_keep(t, c);
    }
    for (size_t k = 0; k < s->n_bounce_note_counts && k < RC_NOTE_KINDS; k++)
        t->counts[k] = s->bounce_note_counts[k];
    return 0;
}
