/* Membership planning (raft/rc_members.c), table-driven: every kind of
 * change between the configuration the cluster holds and the member table
 * of the file, the order of the steps (adds before removals, promotions
 * before demotions, a change of the leader itself last), and every
 * refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "raft/rc_members.h"

#define V RC_ROLE_VOTER
#define S RC_ROLE_STANDBY
#define P RC_ROLE_SPARE

struct m { uint64_t id; int role; const char *addr; };

struct plan_case {
    const char *name;
    struct m have[6], want[6]; /* id 0 ends a list; addr NULL: 127.0.0.ID:7000 */
    uint64_t leader;
    const char *steps;         /* "+4 =4v -3": add, assign (v/s/p), remove; NULL: refused */
    const char *refusal;       /* a word of the error when refused */
};

static const struct plan_case cases[] = {
    {"in sync", {{1, V}, {2, V}, {3, V}}, {{1, V}, {2, V}, {3, V}}, 1, "", NULL},
    {"add a voter", {{1, V}, {2, V}, {3, V}}, {{1, V}, {2, V}, {3, V}, {4, V}}, 1, "+4 =4v", NULL},
    {"add a standby", {{1, V}, {2, V}, {3, V}}, {{1, V}, {2, V}, {3, V}, {4, S}}, 2, "+4 =4s", NULL},
    {"add a spare", {{1, V}, {2, V}, {3, V}}, {{1, V}, {2, V}, {3, V}, {4, P}}, 2, "+4", NULL},
    {"remove a follower", {{1, V}, {2, V}, {3, V}}, {{1, V}, {2, V}}, 1, "-3", NULL},
    {"replace: add before remove", {{1, V}, {2, V}, {3, V}}, {{1, V}, {2, V}, {4, V}}, 1, "+4 =4v -3", NULL},
    {"promote before demote", {{1, V}, {2, V}, {3, S}, {4, V}}, {{1, V}, {2, V}, {3, V}, {4, S}}, 1,
     "=3v =4s", NULL},
    {"spare to standby is a promotion", {{1, V}, {2, P}, {3, V}}, {{1, V}, {2, S}, {3, V}}, 1, "=2s", NULL},
    {"standby to spare", {{1, V}, {2, S}, {3, V}}, {{1, V}, {2, P}, {3, V}}, 1, "=2p", NULL},
    {"everything at once", {{1, V}, {2, V}, {3, S}, {5, V}}, {{1, V}, {2, S}, {3, V}, {4, V}, {6, P}}, 1,
     "+4 =4v +6 =3v =2s -5", NULL},
    {"the leader leaves, last", {{1, V}, {2, V}, {3, V}}, {{2, V}, {3, V}, {4, V}}, 1, "+4 =4v -1", NULL},
    {"the leader leaves after the other removals", {{1, V}, {2, V}, {3, V}, {4, V}}, {{2, V}, {3, V}}, 1,
     "-4 -1", NULL},
    {"the leader is demoted, last", {{1, V}, {2, V}, {3, V}, {4, S}}, {{1, S}, {2, V}, {3, V}, {4, V}}, 1,
     "=4v =1s", NULL},
    {"a member moved", {{1, V}, {2, V}, {3, V}}, {{1, V}, {2, V}, {3, V, "127.0.0.9:7000"}}, 1, NULL,
     "cannot move"},
    {"no voter left", {{1, V}, {2, V}}, {{1, P}, {2, P}}, 0, NULL, "no voter"},
    {"no leader known: still planned", {{1, V}, {2, V}}, {{1, V}, {2, V}, {3, V}}, 0, "+3 =3v", NULL},
};

static void addr_of(const struct m *x, char *out, size_t len)
{
    if (x->addr)
        snprintf(out, len, "%s", x->addr);
    else
        snprintf(out, len, "127.0.0.%llu:7000", (unsigned long long)x->id);
}

static size_t fill_have(const struct m *in, struct rc_raft_server *out)
{
    size_t n = 0;
    for (; in[n].id != 0; n++) {
        out[n].id = in[n].id;
        out[n].role = in[n].role;
        addr_of(&in[n], out[n].raft_addr, sizeof out[n].raft_addr);
    }
    return n;
}

static size_t fill_want(const struct m *in, struct rc_member *out)
{
    size_t n = 0;
    for (; in[n].id != 0; n++) {
        memset(&out[n], 0, sizeof out[n]);
        out[n].id = in[n].id;
        out[n].role = in[n].role;
        addr_of(&in[n], out[n].raft_addr, sizeof out[n].raft_addr);
    }
    return n;
}

static void steps_text(const struct rc_member_step *s, int n, char *out, size_t len)
{
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t l = strlen(out);
        const char *sep = i ? " " : "";
        if (s[i].what == RC_CHANGE_ADD)
            snprintf(out + l, len - l, "%s+%llu", sep, (unsigned long long)s[i].id);
        else if (s[i].what == RC_CHANGE_REMOVE)
            snprintf(out + l, len - l, "%s-%llu", sep, (unsigned long long)s[i].id);
        else
            snprintf(out + l, len - l, "%s=%llu%c", sep, (unsigned long long)s[i].id,
                     s[i].role == V ? 'v' : s[i].role == S ? 's' : 'p');
    }
}

static void test_plans(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct plan_case *k = &cases[c];
        struct rc_raft_server have[6];
        struct rc_member want[6];
        size_t nh = fill_have(k->have, have), nw = fill_want(k->want, want);
        struct rc_member_step steps[RC_MEMBERS_MAX_STEPS];
        char err[256] = "", got[256];
        int n = rc_members_plan(have, nh, want, nw, k->leader, steps, err, sizeof err);
        if (k->steps == NULL) {
            if (n >= 0 || strstr(err, k->refusal) == NULL)
                fail_msg("%s: expected a refusal mentioning \"%s\", got %d steps, error \"%s\"", k->name,
                         k->refusal, n, err);
            continue;
        }
        if (n < 0)
            fail_msg("%s: refused: %s", k->name, err);
        steps_text(steps, n, got, sizeof got);
        if (strcmp(got, k->steps) != 0)
            fail_msg("%s: steps \"%s\", expected \"%s\"", k->name, got, k->steps);
        for (int i = 0; i < n; i++)
            if (steps[i].what == RC_CHANGE_ADD && strcmp(steps[i].raft_addr, "") == 0)
                fail_msg("%s: an add without an address", k->name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_plans)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
