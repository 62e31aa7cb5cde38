#!/usr/bin/python3
"""Membership changes on a running cluster (ricochetctl members, raft.join).

A 3-node cluster (nodes 1, 2 in site a, 3 in site b) commits records. Then:
1. Node 4 (site b) is added the way an operator does it: every configuration
   lists it, it starts with raft.join = true (no bootstrap: it holds no
   configuration and has no leader), the other nodes are restarted one at a
   time to read the new member table, `ricochetctl members` shows the plan;
   with node 4 down, `members sync` adds it as a spare and then reports that
   it could not be caught up (retryable); once it runs, `members sync`
   (asked of a follower) makes it a voter, and it converges to the same state
   (from a snapshot: the log it would need was compacted long before).
2. Node 3 is removed while it leads: the others stop listing it and are
   restarted one at a time (node 3 keeps leading); `members sync` asked of
   node 1 finds the leader by its raft address and sends node 1's table;
   node 3 removes itself last and steps down, the others elect a leader,
   and node 3 is stopped. The three
   remaining voters (1, 2, 4) commit, and keep committing with one of them
   down (2 of 3).
Bad tables sent to POST /v1/cluster/members/sync get 400/409 and change
nothing; every refusal and the order of the steps are covered by
unit.test_rc_members."""
import json
import urllib.error
import urllib.request

from clusterlib import Cluster, log, main

NET = "127.0.11"
FAST = ["raft.election_timeout=300ms", "raft.snapshot_threshold=64", "raft.snapshot_trailing=16"]


def node_line(c, out, nid):
    for line in out.strip().splitlines():
        parts = line.split()
        if parts and parts[0] == str(nid):
            c.nodes[nid] = dict(p.split("=", 1) for p in parts[1:])
            return
    raise AssertionError(f"no line for node {nid} in {out!r}")


def rolling_restart(c, ids):
    for nid in ids:
        node_line(c, c.run_cluster("restart", str(nid)), nid)
        c.wait("node %d back with a leader" % nid, lambda: (c.status(nid) or {}).get("leader"), timeout=60)
    log(f"restarted nodes {ids} one at a time")


def roles(m):
    return {x["id"]: x["role"] for x in m["configuration"]}


def probe(c, nid, count, inflight=16):
    r = c.ctl_json(nid, "probe", "--count", str(count), "--size", "256", "--inflight", str(inflight))
    assert r["committed"] == count, r
    return r


def hostile_bodies(c, leader):
    """Bad tables for POST /v1/cluster/members/sync: 400 with a reason each,
    and the configuration unchanged."""
    url = f"http://{c.http(leader)}/v1/cluster/members/sync"
    member = {"id": 9, "raft": "127.0.11.9:7000", "role": "voter"}
    bodies = [b"{", b"[]", b'{"members": 5}', b'{"members": []}',
              json.dumps({"members": [member] * 17}).encode(),
              json.dumps({"members": [member, member]}).encode(),
              json.dumps({"members": [dict(member, role="king")]}).encode(),
              json.dumps({"members": [dict(member, id=-1)]}).encode(),
              json.dumps({"members": [dict(member, raft="x" * 200)]}).encode(),
              json.dumps({"members": [dict(member, raft=7)]}).encode(),
              json.dumps({"members": [dict(member, role="spare")]}).encode()]
    for body in bodies:
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raise AssertionError(f"{body[:60]!r} accepted: {r.status} {r.read()!r}")
        except urllib.error.HTTPError as e:
            answer = json.loads(e.read())
            assert e.code in (400, 409) and answer.get("error"), (body[:60], e.code, answer)
    assert roles(c.ctl_json(leader, "members")) == {1: "voter", 2: "voter", 3: "voter"}
    log(f"{len(bodies)} bad tables refused (400/409), configuration unchanged")


def test_add_then_remove_a_member():
    with Cluster("3", base=0, net=NET, sets=FAST) as c:
        leader = c.wait_leader()
        # one record per entry: well past the snapshot threshold, so the log
        # a newcomer needs is gone and it gets a snapshot
        probe(c, leader, 300, inflight=1)
        m = c.ctl_json(leader, "members")
        assert roles(m) == {1: "voter", 2: "voter", 3: "voter"} and m["changes"] == [] and m["error"] is None, m
        hostile_bodies(c, leader)

        # 1. node 4 joins
        node_line(c, c.run_cluster("add", "4", "b"), 4)
        c.wait("node 4 answers", lambda: c.status(4))
        st4 = c.status(4)
        assert st4["leader"] is None, st4
        m4 = c.ctl_json(4, "members")
        assert m4["configuration"] == [] and "joins" in (m4["error"] or ""), m4
        rolling_restart(c, [1, 2, 3])
        m = c.ctl_json(1, "members")
        assert [(s["op"], s["id"], s.get("role")) for s in m["changes"]] == [("add", 4, None), ("assign", 4, "voter")], m
        text = c.ctl(1, "members").stdout
        assert "add node 4" in text and "make node 4 a voter" in text, text
        # node 4 down: it is added as a spare, but cannot be caught up to
        # become a voter; sync says so (retryable) and a later one finishes
        c.kill(4)
        r = c.ctl(1, "members", "sync", check=False)
        log(f"members sync with node 4 down -> {r.returncode}:\n{r.stdout.strip()}\n{r.stderr.strip()}")
        assert r.returncode == 1 and "did not answer" in r.stderr and "done: add node 4" in r.stdout \
            and "failed: make node 4 a voter" in r.stdout, r.stdout + r.stderr
        assert roles(c.ctl_json(1, "members"))[4] == "spare"
        node_line(c, c.run_cluster("start", "4"), 4)
        follower = [i for i in (1, 2, 3) if i != c.wait_leader(among=[1, 2, 3])][0]
        r = c.ctl(follower, "members", "sync")
        log(f"members sync (asked node {follower}):\n{r.stdout.strip()}")
        assert "done: make node 4 a voter" in r.stdout, r.stdout + r.stderr
        applied, digest = c.wait_converged(among=[1, 2, 3, 4], timeout=60)
        with open(c.log_path(4)) as f:
            assert "snapshot_restored" in f.read(), "node 4 caught up without a snapshot"
        m = c.ctl_json(4, "members")
        assert roles(m) == {1: "voter", 2: "voter", 3: "voter", 4: "voter"} and m["changes"] == [], m
        assert c.ctl(1, "members", "sync").stdout.strip() == "in sync: nothing to change"
        log(f"node 4 is a voter and holds the same state ({applied} records, digest {digest[:16]})")

        # 2. node 3 leaves while it leads: it keeps leading while the others
        # restart (followers only), and only it knows it is the leader
        if c.wait_leader(among=[1, 2, 3, 4]) != 3:
            c.ctl(1, "transfer", "--to", "3")
            c.wait("node 3 leads", lambda: c.leader(among=[1, 2, 3, 4]) == 3 and 3)
        c.run_cluster("forget", "3")
        rolling_restart(c, [1, 2, 4])
        c.wait("node 3 still leads", lambda: c.leader(among=[1, 2, 3, 4]) == 3 and 3)
        m = c.ctl_json(1, "members")
        assert [(s["op"], s["id"]) for s in m["changes"]] == [("remove", 3)] and m["error"] is None, m
        # asked of node 1, whose table no longer has node 3: the command
        # finds the leader by its raft address, and sends node 1's table
        r = c.ctl(1, "members", "sync")
        log(f"members sync (asked node 1, node 3 leads):\n{r.stdout.strip()}\n{r.stderr.strip()}")
        assert "done: remove node 3" in r.stdout, r.stdout + r.stderr
        new_leader = c.wait_leader(among=[1, 2, 4], exclude=(3,))
        m = c.ctl_json(new_leader, "members")
        assert roles(m) == {1: "voter", 2: "voter", 4: "voter"} and m["changes"] == [], m
        log(f"node 3 removed itself and stepped down; node {new_leader} leads")
        c.kill(3)
        del c.nodes[3]
        leader = c.wait_leader(among=[1, 2, 4])
        probe(c, leader, 100)
        down = [i for i in (1, 2, 4) if i != leader][0]
        c.kill(down)
        probe(c, leader, 100)
        c.wait_converged(among=[i for i in (1, 2, 4) if i != down], timeout=60)
        log(f"voters 1, 2, 4 commit, also with node {down} down")


if __name__ == "__main__":
    main([test_add_then_remove_a_member])
