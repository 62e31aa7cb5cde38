#!/usr/bin/python3
"""MX failover driven by the cluster, seen by real DNS clients: a 2+2+1
cluster (sites a and b with two nodes each, a witness in site w) on
127.0.2.x, queried with dig (bind9-dnsutils) and kdig (knot-dnsutils) over
UDP and TCP. Every node returns the same MX set; the leader's site has the
better preference; a drained node or site leaves the MX set and comes back on
undrain; a killed node leaves it and returns when restarted; a leadership
transfer to the other site moves the preferred MX there, and so does kill -9
of every node of the leader's site; a node cut off from the others (the
others SIGSTOPped) answers SERVFAIL, and answers again once they resume.
Nothing is timed: every change is polled for with a generous deadline."""
import os
import re
import signal
import subprocess
import sys

from clusterlib import Cluster, log, main

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import dnsprobe  # noqa: E402

NET = "127.0.2"
ZONE = "mx.ricochet.test"
RELAY = f"relay.{ZONE}"
BOUNCE = f"bounce.{ZONE}"
FAST = ["raft.election_timeout=300ms", "dns.lease=1s", "health.interval=200ms", "health.fail_after=2",
        "health.ok_after=2", "health.probe_timeout=500ms", "dns.rrl=false"]
CLIENTS = (("dig", False), ("dig", True), ("kdig", False), ("kdig", True))


def query(client, addr, name, qtype, tcp=False):
    """(rcode, {(pref, host)}) from one real client, or (None, None) when it got no answer."""
    host, port = addr.rsplit(":", 1)
    try:
        r = subprocess.run(dnsprobe.query_cmd(host, name, qtype, port, client, tcp, wait=2),
                           capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None, None
    rc = dnsprobe.rcode(r.stdout)
    if rc is None:
        return None, None
    return rc, frozenset(dnsprobe.mx_records(r.stdout, owner=name))


def expected(c, pref_site, ids):
    return frozenset((10 if c.nodes[i]["site"] == pref_site else 20, f"n{i}.{ZONE}.") for i in ids)


def all_nodes_answer(c, want, nodes, clients=(("dig", False),), name=RELAY):
    """Every node in nodes answers NOERROR with exactly want; returns the answers seen otherwise None."""
    seen = {}
    for i in nodes:
        for client, tcp in clients:
            rcode, mx = query(client, c.nodes[i]["dns"], name, "MX", tcp)
            seen[(i, client, tcp)] = (rcode, sorted(mx) if mx else mx)
            if rcode != "NOERROR" or mx != want:
                return None
    return seen


def wait_mx(c, what, want, nodes, clients=(("dig", False),), timeout=60):
    c.wait(what, lambda: all_nodes_answer(c, want, nodes, clients), timeout=timeout, interval=0.2)
    log(f"{what}: every node in {sorted(nodes)} answers {sorted(want)}")


def site_nodes(c, site):
    return [i for i in c.nodes if c.nodes[i]["site"] == site]


def test_mx_follows_the_cluster():
    with Cluster("2+2+1", base=10, sets=FAST, net=NET) as c:
        leader = c.wait_leader(exclude=(5,))
        lsite = c.nodes[leader]["site"]
        osite = "b" if lsite == "a" else "a"
        smtp_nodes = site_nodes(c, "a") + site_nodes(c, "b")
        everyone = list(c.nodes)

        # 1. The same answer from every node, with dig and kdig, UDP and TCP;
        #    relay and bounce names alike; NS with glue; out-of-zone refused.
        want = expected(c, lsite, smtp_nodes)
        wait_mx(c, "initial MX set", want, everyone, CLIENTS)
        for i in everyone:
            assert all_nodes_answer(c, want, [i], CLIENTS, name=BOUNCE), f"bounce MX at node {i}"
        def ns_with_glue():
            out = subprocess.run(["dig", "-p", "5353", f"@{NET}.11", ZONE, "NS", "+norecurse"],
                                 capture_output=True, text=True, timeout=10).stdout
            ok = "flags: qr aa" in out and all(
                re.search(rf"^{re.escape(ZONE)}\.\s+\d+\s+IN\s+NS\s+n{i}\.{re.escape(ZONE)}\.$", out, re.M) and
                re.search(rf"^n{i}\.{re.escape(ZONE)}\.\s+\d+\s+IN\s+A\s+{re.escape(NET)}\.{10 + i}$", out, re.M)
                for i in everyone)
            return out if ok else None
        c.wait("NS with glue for every node", ns_with_glue, timeout=30, interval=0.2)
        rcode, _ = query("kdig", c.nodes[1]["dns"], "example.com", "MX")
        assert rcode == "REFUSED", rcode

        # 2. Drain one node, then the other site; undrain both.
        victim = site_nodes(c, osite)[0]
        c.ctl(leader, "drain", str(victim))
        wait_mx(c, f"node {victim} drained", expected(c, lsite, [i for i in smtp_nodes if i != victim]), everyone)
        c.ctl(leader, "undrain", str(victim))
        wait_mx(c, f"node {victim} undrained", want, everyone)
        c.ctl(leader, "drain", osite)
        wait_mx(c, f"site {osite} drained", expected(c, lsite, site_nodes(c, lsite)), everyone)
        c.ctl(leader, "undrain", osite)
        wait_mx(c, f"site {osite} undrained", want, everyone)

        # 3. A killed node leaves the MX set and comes back when restarted.
        c.kill(victim)
        alive = [i for i in everyone if i != victim]
        wait_mx(c, f"node {victim} killed", expected(c, lsite, [i for i in smtp_nodes if i != victim]), alive)
        c.start(victim)
        wait_mx(c, f"node {victim} restarted", want, everyone, CLIENTS)

        # 4. A leadership transfer to the other site moves the preferred MX.
        target = site_nodes(c, osite)[0]
        c.ctl(leader, "transfer", "--to", str(target))
        c.wait_leader(exclude=(leader, 5))
        lsite, osite = osite, lsite
        wait_mx(c, f"leadership transferred to node {target}", expected(c, lsite, smtp_nodes), everyone, CLIENTS)

        # 5. kill -9 every node of the leader's site: the other site becomes
        #    the only MX, preferred; the dead nodes come back at the fallback.
        dead = site_nodes(c, lsite)
        for i in dead:
            c.kill(i)
        alive = [i for i in everyone if i not in dead]
        wait_mx(c, f"site {lsite} killed", expected(c, osite, site_nodes(c, osite)), alive, CLIENTS)
        for i in dead:
            c.start(i)
        lsite, osite = osite, lsite
        wait_mx(c, f"site {osite} restarted", expected(c, lsite, smtp_nodes), everyone, CLIENTS)

        # 6. A node cut off from the others answers SERVFAIL for the zone and
        #    answers again once it rejoins.
        lonely = site_nodes(c, osite)[0]
        others = [i for i in everyone if i != lonely]
        stopped = []
        try:
            for i in others:
                os.kill(c.pid(i), signal.SIGSTOP)
                stopped.append(i)
            log(f"SIGSTOPped {others}; node {lonely} is alone")
            for client, tcp in CLIENTS:
                c.wait(f"SERVFAIL from node {lonely} ({client} tcp={tcp})",
                       lambda: query(client, c.nodes[lonely]["dns"], RELAY, "MX", tcp)[0] == "SERVFAIL",
                       timeout=30, interval=0.2)
            rcode, _ = query("dig", c.nodes[lonely]["dns"], "example.com", "MX")
            assert rcode == "REFUSED", rcode
            log(f"node {lonely} answers SERVFAIL for the zone, REFUSED outside it")
        finally:
            for i in stopped:
                os.kill(c.pid(i), signal.SIGCONT)
        log(f"SIGCONT {stopped}")
        c.wait_leader(exclude=(5,))
        wait_mx(c, f"node {lonely} rejoined", expected(c, c.nodes[c.wait_leader(exclude=(5,))]["site"], smtp_nodes),
                everyone, CLIENTS)

        # The SOA serial is the same on every node.
        def one_serial():
            serials = set()
            for i in everyone:
                out = subprocess.run(["dig", "+short", "-p", "5353", f"@{NET}.{10 + i}", ZONE, "SOA"],
                                     capture_output=True, text=True, timeout=10).stdout.split()
                serials.add(out[2] if len(out) > 2 else None)
            return serials.pop() if len(serials) == 1 and None not in serials else None
        log(f"every node publishes SOA serial {c.wait('one SOA serial', one_serial, timeout=30)}")

if __name__ == "__main__":
    main([test_mx_follows_the_cluster])
