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
import re
import smtplib
import subprocess
import threading
import time
import urllib.request

from clusterlib import Cluster, log, main

NET = "127.0.6"
ZONE = "mx.ricochet.test"
RELAY = f"relay.{ZONE}"
FAST = ["raft.election_timeout=300ms", "dns.lease=1s", "health.interval=200ms", "health.fail_after=2",
        "health.ok_after=2", "health.probe_timeout=500ms", "dns.rrl=false", "smtp.relay_networks=127.0.0.0/8"]
QUEUED = re.compile(r"queued as ([0-9A-Z]+)")
MX_LINE = re.compile(r"^\S+\s+\d+\s+IN\s+MX\s+(\d+)\s+n(\d+)\.", re.M)
ORDER = ["start", "leader_moved", "drained", "dns_moved", "writes", "caught_up", "restored"]


def mx(c, node):
    host, port = c.nodes[node]["dns"].rsplit(":", 1)
    r = subprocess.run(["dig", "-p", port, f"@{host}", RELAY, "MX", "+time=1", "+tries=1", "+norecurse"],
                       capture_output=True, text=True, timeout=10)
    return sorted((int(p), int(n)) for p, n in MX_LINE.findall(r.stdout))


class Client(threading.Thread):
    """Submits until stopped, following the MX answer of node `dns_node`."""

    def __init__(self, c, dns_node):
        super().__init__(daemon=True)
        self.c, self.dns_node = c, dns_node
        self.stop = threading.Event()
        self.accepted, self.failed_over, self.lost_tries = [], 0, 0

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            hosts = [n for _, n in mx(self.c, self.dns_node)] or list(self.c.nodes)
            for k, n in enumerate(hosts):
                host, port = self.c.nodes[n]["smtp"].rsplit(":", 1)
                try:
                    with smtplib.SMTP(host, int(port), timeout=20) as s:
                        s.ehlo("client.test")
                        s.mail("drill@sender.test")
                        s.rcpt(f"u{i}@rcpt.test")
                        code, msg = s.data(f"Subject: drill {i}\r\n\r\nmessage {i}\r\n".encode())
                except (OSError, smtplib.SMTPException):
                    self.lost_tries += 1
                    continue
                m = QUEUED.search(msg.decode(errors="replace"))
                if code != 250 or m is None:
                    self.lost_tries += 1
                    continue
                self.accepted.append(m.group(1))
                if k > 0:
                    self.failed_over += 1
                break
            time.sleep(0.02)


def held(c, node, msg_id):
    try:
        with urllib.request.urlopen(f"http://{c.http(node)}/v1/messages/{msg_id}", timeout=10) as r:
            return json.load(r).get("id") == msg_id
    except OSError:
        return False


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

        client = Client(c, 5)
        client.start()
        c.wait("some mail accepted", lambda: len(client.accepted) >= 10 or None, timeout=60)

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
        client.stop.set()
        client.join(60)
        log(f"client: {len(client.accepted)} accepted, {client.failed_over} after a failover to the next MX, "
            f"{client.lost_tries} tries refused or failed")
        assert len(client.accepted) >= 10

        # No accepted message lost: the nodes agree, and one node of each
        # site holds every message the client saw accepted.
        c.wait_converged(everyone)
        for i in (min(x for x in everyone if c.nodes[x]["site"] == "a"),
                  min(x for x in everyone if c.nodes[x]["site"] == "b")):
            missing = [m for m in client.accepted if not held(c, i, m)]
            assert not missing, f"node {i} lacks {len(missing)} accepted messages: {missing[:5]}"
        log(f"a node of each site holds all {len(client.accepted)} accepted messages (same state digest everywhere)")

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
