/* Bounce notes (issue 6, docs/BOUNCES.md): the incoming bounces, complaints
 * and auto-replies that changed no recipient (a forged VERP token, no
 * message to map them to, no reason found, not a bounce at all). The FSM
 * keeps the last `capacity` of them and a count per kind, both in its
 * snapshots, so that every node shows the same. */
#ifndef RC_NOTES_H
#define RC_NOTES_H

#include <stddef.h>
#include <stdint.h>

struct Ricochet__BounceNote;
struct Ricochet__Snapshot;

typedef struct rc_notes rc_notes;

#define RC_NOTE_KINDS 5 /* Ricochet__BounceNoteKind values 0..4 */

rc_notes *rc_notes_new(size_t capacity); /* NULL when out of memory */
void rc_notes_free(rc_notes *t);

/* Keeps a copy of n (the oldest goes when full) and counts it. Returns 0,
 * -1 when out of memory (nothing changed then). */
int rc_notes_add(rc_notes *t, const struct Ricochet__BounceNote *n);

uint64_t rc_notes_count(const rc_notes *t, int kind);
size_t rc_notes_len(const rc_notes *t);
/* i = 0 is the oldest kept note. */
const struct Ricochet__BounceNote *rc_notes_at(const rc_notes *t, size_t i);
const char *rc_note_kind_name(int kind); /* "forged", "unmapped", ... */

/* Points the snapshot's bounce_notes / bounce_note_counts at t's data
 * (valid while t is unchanged); counts is caller storage of RC_NOTE_KINDS. */
int rc_notes_to_snapshot(const rc_notes *t, struct Ricochet__Snapshot *s, uint64_t *counts);
/* Replaces t's content with the snapshot's; -1 when out of memory. */
int rc_notes_from_snapshot(rc_notes *t, const struct Ricochet__Snapshot *s);

#endif
