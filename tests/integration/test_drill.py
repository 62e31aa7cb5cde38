#!/usr/bin/python3
"""`ricochetctl drill` on a 2+2+1 cluster (127.0.6.x) while a client keeps
submitting mail the way an MTA does: it asks a node's DNS for the relay
name's MX, tries the hosts in preference order and moves to the next one
when a host refuses or fails. The drill of the leader's site must pass with
its timeline in order (leader moved out, drained, every name server without
the site, probe writes committed and applied by every node, site restored
at the fallback preference); dig then shows the other site preferred; every
message the client saw accepted is held by a node of each site. A drill
that would leave no MX is refused before anything changes, and so is a
drill of the witness site. Nothing is timed."""
import json
import os
import subprocess
import sys
import time
import urllib.request

from clusterlib import Cluster, log, main

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import dnsprobe  # noqa: E402

NET = "127.0.6"
ZONE = "mx.ricochet.test"
RELAY = f"relay.{ZONE}"
FAST = ["raft.election_timeout=300ms", "dns.lease=1s", "health.interval=200ms", "health.fail_after=2",
        "health.ok_after=2", "health.probe_timeout=500ms", "dns.rrl=false", "smtp.relay_networks=127.0.0.0/8"]
ORDER = ["start", "leader_moved", "drained", "dns_moved", "writes", "caught_up", "restored"]
DRILL_CLIENT = os.path.join(HERE, "..", "drills", "drill_client.py")


def mx(c, node):
    """Sorted [(pref, node id)] that node's name server answers for the relay name."""
    host, port = c.nodes[node]["dns"].rsplit(":", 1)
    r = subprocess.run(dnsprobe.query_cmd(host, RELAY, "MX", port), capture_output=True, text=True, timeout=10)
    return sorted((p, dnsprobe.node_of(h)) for p, h in dnsprobe.mx_records(r.stdout))


class Client:
    """tests/drills/drill_client.py (the MTA-like client of the netns
    drills) on the cluster's loopback ports, following the MX answer of
    node dns_node; its log is read when it has stopped."""

    def __init__(self, c, dns_node, workdir):
        self.log, self.stop_file = os.path.join(workdir, "client.log"), os.path.join(workdir, "client.stop")
        host, dns_port = c.nodes[dns_node]["dns"].rsplit(":", 1)
        smtp_port = c.nodes[1]["smtp"].rsplit(":", 1)[1]  # the same on every node
        self.proc = subprocess.Popen(["/usr/bin/python3", DRILL_CLIENT, "--dns-port", dns_port, "--smtp-port",
                                      smtp_port, self.log, self.stop_file, RELAY, host])

    def entries(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]

    def accepted(self):
        return [e["id"] for e in self.entries() if e["id"]]

    def stop(self):
        open(self.stop_file, "w").close()
        try:
            self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def held(c, node, msg_id):
    try:
        with urllib.request.urlopen(f"http://{c.http(node)}/v1/messages/{msg_id}", timeout=10) as r:
            return json.load(r).get("id") == msg_id
    except OSError:
        return False


def drill_while_submitting(c, client, leader, lsite, osite, everyone):
    """The drill of the leader's site while the client submits."""
    c.wait("some mail accepted", lambda: len(client.accepted()) >= 10 or None, timeout=60)
    r = c.ctl(5, "--json", "drill", "--site", lsite)
    report = json.loads(r.stdout)
    log("drill report: " + json.dumps(report))
    assert report["ok"] is True and report["site"] == lsite, report
    # same_state appears only when every node happened to be at the same record
    report["timeline"] = [e for e in report["timeline"] if e["event"] != "same_state"]
    events = [e["event"] for e in report["timeline"]]
    assert events == ORDER, f"timeline {events}, expected {ORDER}"
    moved = report["timeline"][1]
    assert moved["from"] == leader and c.nodes[moved["to"]]["site"] == osite, moved
    ts = [e["t_ms"] for e in report["timeline"]]
    assert ts == sorted(ts), f"timeline not in time order: {ts}"
    writes = report["timeline"][4]
    assert writes["committed"] == 50 and writes["failed"] == 0, writes

    # What resolvers see now: the other site preferred, the drilled one back as fallback.
    want = sorted((10 if c.nodes[i]["site"] == osite else 20, i) for i in everyone if c.nodes[i]["site"] != "w")
    c.wait("every node answers the moved MX set",
           lambda: all(mx(c, i) == want for i in everyone) or None, timeout=30)
    log(f"after the drill every node answers {want}")

    time.sleep(1)


def test_drill():
    with Cluster("2+2+1", 10, net=NET, sets=FAST) as c:
        everyone = sorted(c.nodes)
        c.wait_leader()
        c.wait("every mail node healthy and in MX", lambda: len(mx(c, 5)) == 4 or None, timeout=60)
        before = c.status(5)
        leader = before["leader"]
        lsite = c.nodes[leader]["site"]
        osite = "b" if lsite == "a" else "a"
        log(f"leader {leader} in site {lsite}; MX {mx(c, 5)}")

        client = Client(c, 5, c.dir)
        try:
            drill_while_submitting(c, client, leader, lsite, osite, everyone)
        finally:
            client.stop()
        entries = client.entries()
        accepted = client.accepted()
        log(f"client: {len(accepted)} of {len(entries)} messages accepted, "
            f"{sum(1 for e in entries if e['id'] and e['tries'] > 1)} after moving to the next MX, "
            f"{sum(e['tries'] - (1 if e['id'] else 0) for e in entries)} tries refused or failed")
        assert len(accepted) >= 10

        # No accepted message lost: the nodes agree, and one node of each
        # site holds every message the client saw accepted.
        c.wait_converged(everyone)
        for i in (min(x for x in everyone if c.nodes[x]["site"] == "a"),
                  min(x for x in everyone if c.nodes[x]["site"] == "b")):
            missing = [m for m in accepted if not held(c, i, m)]
            assert not missing, f"node {i} lacks {len(missing)} accepted messages: {missing[:5]}"
        log(f"a node of each site holds all {len(accepted)} accepted messages (same state digest everywhere)")

        # A drill that would leave no MX is refused before anything changes.
        now = c.status(5)
        c.ctl(5, "drain", lsite)
        c.wait("the drain applied", lambda: all(n["drained"] for n in c.status(5)["nodes"]
                                                if n["site"] == lsite) or None, timeout=30)
        r = c.ctl(5, "drill", "--site", osite, check=False)
        assert r.returncode == 1 and "would leave no MX" in r.stderr, (r.returncode, r.stdout, r.stderr)
        after = c.status(5)
        assert after["leader"] == now["leader"], (now["leader"], after["leader"])
        assert not any(n["drained"] for n in after["nodes"] if n["site"] == osite), after["nodes"]
        c.ctl(5, "undrain", lsite)
        r = c.ctl(5, "drill", "--site", "w", check=False)
        assert r.returncode == 1 and "no mail nodes" in r.stderr, (r.returncode, r.stderr)
        log("a drill that would leave no MX, and a drill of the witness site, are refused and change nothing")


if __name__ == "__main__":
    main([test_drill])
