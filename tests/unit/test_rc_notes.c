/* Bounce notes in the FSM (issue 6): a BounceNote record is kept and
 * counted by kind, the oldest go beyond bounce_notes_kept, the counts
 * survive, and a snapshot carries both to another FSM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/ricochet.pb-c.h"
#include "raft/rc_fsm.h"
#include "raft/rc_notes.h"

static void apply_note(rc_fsm *f, Ricochet__BounceNoteKind kind, const char *address, uint64_t at)
{
    Ricochet__BounceNote n;
    ricochet__bounce_note__init(&n);
    n.has_kind = n.has_at_ms = true;
    n.kind = kind;
    n.at_ms = at;
    n.address = (char *)address;
    n.detail = "why";
    Ricochet__Record rec, *prec = &rec;
    ricochet__record__init(&rec);
    rec.kind_case = RICOCHET__RECORD__KIND_BOUNCE_NOTE;
    rec.bounce_note = &n;
    Ricochet__Batch b;
    ricochet__batch__init(&b);
    b.records = &prec;
    b.n_records = 1;
    size_t len = ricochet__batch__get_packed_size(&b);
    uint8_t *buf = malloc(len);
    ricochet__batch__pack(&b, buf);
    rc_fsm_apply_batch(f, buf, len);
    free(buf);
}

static void test_kept_counted_and_bounded(void **state)
{
    (void)state;
    rc_fsm *f;
    struct rc_fsm_config cfg = {.bounce_notes_kept = 3};
    assert_int_equal(rc_fsm_new(&f, &cfg, NULL, NULL), 0);
    apply_note(f, RICOCHET__BOUNCE_NOTE_KIND__NOTE_FORGED, "b+x@bounce.example", 1);
    apply_note(f, RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNMAPPED, "b+y@bounce.example", 2);
    for (int i = 0; i < 3; i++)
        apply_note(f, RICOCHET__BOUNCE_NOTE_KIND__NOTE_IGNORED, "a@example.com", 3 + (uint64_t)i);
    const rc_notes *t = rc_fsm_notes(f);
    assert_int_equal(rc_notes_count(t, RICOCHET__BOUNCE_NOTE_KIND__NOTE_FORGED), 1);
    assert_int_equal(rc_notes_count(t, RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNMAPPED), 1);
    assert_int_equal(rc_notes_count(t, RICOCHET__BOUNCE_NOTE_KIND__NOTE_IGNORED), 3);
    assert_int_equal(rc_notes_len(t), 3); /* the two oldest went */
    assert_int_equal(rc_notes_at(t, 0)->at_ms, 3);
    assert_int_equal(rc_notes_at(t, 2)->at_ms, 5);
    assert_null(rc_notes_at(t, 3));
    assert_string_equal(rc_note_kind_name(RICOCHET__BOUNCE_NOTE_KIND__NOTE_FORGED), "forged");
    assert_int_equal(rc_fsm_applied_records(f), 5);
    rc_fsm_free(f);
}

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    rc_fsm *a, *b;
    struct rc_fsm_config cfg = {.bounce_notes_kept = 10};
    assert_int_equal(rc_fsm_new(&a, &cfg, NULL, NULL), 0);
    assert_int_equal(rc_fsm_new(&b, &(struct rc_fsm_config){.bounce_notes_kept = 2}, NULL, NULL), 0);
    apply_note(a, RICOCHET__BOUNCE_NOTE_KIND__NOTE_FORGED, "b+1@bounce.example", 10);
    apply_note(a, RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNRECOGNIZED, "b+2@bounce.example", 20);
    apply_note(a, RICOCHET__BOUNCE_NOTE_KIND__NOTE_FORGED, "b+3@bounce.example", 30);
    uint8_t *snap;
    size_t len;
    assert_int_equal(rc_fsm_snapshot_encode(a, &snap, &len), 0);
    assert_int_equal(rc_fsm_restore(b, snap, len), 0);
    free(snap);
    const rc_notes *t = rc_fsm_notes(b);
    assert_int_equal(rc_notes_count(t, RICOCHET__BOUNCE_NOTE_KIND__NOTE_FORGED), 2);
    assert_int_equal(rc_notes_count(t, RICOCHET__BOUNCE_NOTE_KIND__NOTE_UNRECOGNIZED), 1);
    assert_int_equal(rc_notes_len(t), 2); /* b keeps 2: the newest */
    assert_string_equal(rc_notes_at(t, 0)->address, "b+2@bounce.example");
    assert_string_equal(rc_notes_at(t, 1)->address, "b+3@bounce.example");
    char da[65], db[65];
    rc_fsm_digest_hex(a, da);
    rc_fsm_digest_hex(b, db);
    assert_string_equal(da, db);
    rc_fsm_free(a);
    rc_fsm_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_counted_and_bounded),
        cmocka_unit_test(test_snapshot_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
