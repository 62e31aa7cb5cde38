#!/usr/bin/python3
"""Egress (issue 4) on real clusters with real peers, on 127.0.10.x:

* NSD (127.0.10.53:5300) serves the recipient domains: sink.test → Postfix's
  smtp-sink (.50); script.test → the scripted aiosmtpd server
  tests/peers/egress_smtpd.py (.51), which answers per recipient (ok, 451 once,
  450 always, 550, 552, stall on RCPT, stall or drop after DATA);
  backup.test → a dead first MX (.59, nothing listens) and the script server
  second; aonly.sink.test has no MX, only an A record (implicit MX);
  nullmx.sink.test has the null MX (RFC 7505); nosuch.sink.test does not
  exist (NXDOMAIN); sender.test → a second aiosmtpd (.52) that collects the
  DSNs sent to senders.
* Each case checks the recipients' statuses AND their history (codes,
  enhanced codes, internal codes, remote MTA) through GET /v1/messages/ID,
  and what the peers saw (VERP return path, grouping, no contact for a
  suppressed address, DSNs and their fields).
* Failover: a burst of messages to smtp-sink while the leader is killed -9;
  every accepted recipient ends delivered; repeats and duplicates printed.
* lost_in_space: an attempt still in flight at delivery.ttr.
Every process started here is stopped by PID in `finally`, even on failure."""
import email
import json
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

from clusterlib import SRC, Cluster, log, main

NET = "127.0.10"
PORT = 2626
SMTPD = os.path.join(SRC, "tests", "peers", "egress_smtpd.py")
BOUNCE_DOMAIN = "bounce.ricochet.test"
QUEUED = re.compile(r"queued as ([0-9A-Z]+)")
FINAL = {"delivered", "bounced", "failed", "undeliverable", "expired", "rejected", "discarded", "complained",
         "lost_in_space"}

ZONES = {
    "sink.test": f"""
@ MX 10 mx.sink.test.
mx A {NET}.50
aonly A {NET}.51
nullmx MX 0 .
""",
    "script.test": f"""
@ MX 10 mx.script.test.
mx A {NET}.51
""",
    "backup.test": f"""
@ MX 10 dead.backup.test.
@ MX 20 live.backup.test.
dead A {NET}.59
live A {NET}.51
""",
    "sender.test": f"""
@ MX 10 mx.sender.test.
mx A {NET}.52
""",
}


class Peers:
    """NSD, smtp-sink and the aiosmtpd servers; stopped by PID."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ricochet-egress-")
        os.chmod(self.dir, 0o755)
        self.procs = []

    def spawn(self, name, cmd):
        out = open(os.path.join(self.dir, f"{name}.out"), "w")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def start(self):
        zdir = os.path.join(self.dir, "zones")
        os.makedirs(zdir)
        conf = [f"server:\n  ip-address: {NET}.53@5300\n  do-ip6: no\n  username: \"\"\n  chroot: \"\"\n"
                f"  zonesdir: \"{zdir}\"\n  database: \"\"\n  pidfile: \"{self.dir}/nsd.pid\"\n"
                f"  xfrdfile: \"{self.dir}/xfrd.state\"\n  zonelistfile: \"{self.dir}/zone.list\"\n"
                f"  logfile: \"{self.dir}/nsd.log\"\n  server-count: 1\nremote-control:\n  control-enable: no\n"]
        for zone, body in ZONES.items():
            with open(os.path.join(zdir, zone + ".zone"), "w") as f:
                f.write(f"$TTL 60\n@ SOA ns.{zone}. hostmaster.{zone}. 1 60 60 600 60\n@ NS ns.{zone}.\n"
                        f"ns A {NET}.53\n{body}")
            conf.append(f"zone:\n  name: {zone}\n  zonefile: {zone}.zone\n")
        with open(os.path.join(self.dir, "nsd.conf"), "w") as f:
            f.write("".join(conf))
        self.spawn("nsd", ["/usr/sbin/nsd", "-d", "-c", os.path.join(self.dir, "nsd.conf")])
        self.sink_dir = os.path.join(self.dir, "sink")
        os.makedirs(self.sink_dir)
        os.chmod(self.sink_dir, 0o777)  # smtp-sink runs as nobody
        self.spawn("sink", ["/usr/sbin/smtp-sink", "-u", "nobody", "-d", self.sink_dir + "/%M.",
                            f"{NET}.50:{PORT}", "256"])
        self.script_log = os.path.join(self.dir, "script.jsonl")
        self.dsn_log = os.path.join(self.dir, "dsn.jsonl")
        for log_, ip in ((self.script_log, 51), (self.dsn_log, 52)):
            open(log_, "w").close()
            self.spawn(f"smtpd{ip}", ["/usr/bin/python3", SMTPD, "--listen", f"{NET}.{ip}:{PORT}", "--pipelining",
                                      "--log", log_])
        # ready when every listener answers
        deadline = time.monotonic() + 30
        for ip in (50, 51, 52):
            while True:
                try:
                    smtplib.SMTP(f"{NET}.{ip}", PORT, timeout=2).quit()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"peer {NET}.{ip}:{PORT} did not start")
                    time.sleep(0.1)
        while subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", "5300", f"@{NET}.53", "MX", "sink.test"],
                             capture_output=True, text=True).stdout.strip() == "":
            if time.monotonic() > deadline:
                raise AssertionError("NSD did not start")
            time.sleep(0.1)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if not os.environ.get("RICOCHET_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def script_msgs(self):
        with open(self.script_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def dsns(self):
        with open(self.dsn_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def sink_files(self):
        return [os.path.join(self.sink_dir, n) for n in os.listdir(self.sink_dir)]


def sets(**extra):
    base = {
        "raft.election_timeout": "300ms", "dns.lease": "1s", "smtp.relay_networks": "127.0.0.0/8",
        "delivery.resolver": f"{NET}.53:5300", "delivery.port": str(PORT), "delivery.retry_schedule": "1s",
        "delivery.connect_timeout": "2s", "delivery.command_timeout": "2s", "delivery.data_timeout": "2s",
        "delivery.expire": "8s", "delivery.idle_timeout": "2s", "bounce.domain": BOUNCE_DOMAIN,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def submit(c, node, rcpts, sender="alice@sender.test", rcpt_options=(), subject="egress test"):
    host, port = c.nodes[node]["smtp"].split(":")
    with smtplib.SMTP(host, int(port), timeout=30) as s:
        s.ehlo("client.test")
        s.mail(sender)
        for r in rcpts:
            code, msg = s.rcpt(r, list(rcpt_options))
            assert code == 250, f"RCPT {r}: {code} {msg}"
        code, msg = s.data(f"From: {sender or 'nobody@sender.test'}\r\nTo: {', '.join(rcpts)}\r\n"
                           f"Subject: {subject}\r\nMessage-ID: <{time.time()}@client.test>\r\n\r\nhello\r\n")
        assert code == 250, f"DATA: {code} {msg}"
        return QUEUED.search(msg.decode()).group(1)


def message(c, node, mid):
    with urllib.request.urlopen(f"http://{c.http(node)}/v1/messages/{mid}", timeout=10) as r:
        return json.load(r)


def metrics(c, node):
    with urllib.request.urlopen(f"http://{c.http(node)}/metrics", timeout=10) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def wait_final(c, node, mid, timeout=40):
    def done():
        try:
            m = message(c, node, mid)
        except OSError:
            return None
        return m if all(r["status"] in FINAL for r in m["recipients"]) else None
    return c.wait(f"message {mid} final", done, timeout=timeout, interval=0.2)


def by_addr(m):
    return {r["address"]: r for r in m["recipients"]}


def statuses(r):
    return [h["status"] for h in r["history"]]


# ------------------------------------------------------------------ the cases

def test_status_paths():
    peers = Peers()
    try:
        peers.start()
        with Cluster("3", base=10, net=NET, sets=sets()) as c:
            leader = c.wait_leader()
            follower = next(i for i in c.nodes if i != leader)

            # grouping, VERP and smtp-sink
            m1 = submit(c, follower, ["a@sink.test", "b@sink.test", "c@sink.test"])
            # every status path of the scripted server, in one message
            rc = ["ok1@script.test", "t451once1@script.test", "p550a@script.test", "p552b@script.test",
                  "t450x@script.test"]
            m2 = submit(c, follower, rc)
            m3 = submit(c, follower, ["x@nosuch.sink.test"])
            m4 = submit(c, follower, ["y@nullmx.sink.test"])
            m5 = submit(c, follower, ["z@aonly.sink.test"])
            m6 = submit(c, follower, ["w@backup.test"])
            m7 = submit(c, follower, ["stallrcpt1@script.test"])
            m8 = submit(c, follower, ["stalldata1@script.test"])
            m9 = submit(c, follower, ["p550never@script.test"], rcpt_options=["NOTIFY=NEVER"])
            m10 = submit(c, follower, ["p550null@script.test"], sender="")

            r1 = wait_final(c, leader, m1)
            for r in r1["recipients"]:
                assert r["status"] == "delivered", r
                h = r["history"][-1]
                assert h["code"] == 250 and h["remote_mta"] == "mx.sink.test", h
            files = peers.sink_files()
            assert len(files) == 1, f"one transaction with 3 RCPTs expected, smtp-sink saw {len(files)}"
            dump = open(files[0], errors="replace").read()
            assert dump.count("X-Rcpt-Args:") == 3, dump[:600]
            verp = re.search(r"X-Mail-Args: <(b\+[a-z2-7]+@" + re.escape(BOUNCE_DOMAIN) + ")>", dump, re.I)
            assert verp, f"no VERP return path in: {dump[:600]}"
            log(f"grouped: 3 recipients in one transaction to smtp-sink, MAIL FROM {verp.group(1)}")

            r2 = by_addr(wait_final(c, leader, m2))
            assert r2["ok1@script.test"]["status"] == "delivered"
            t = r2["t451once1@script.test"]
            assert statuses(t) == ["queued", "deferred", "delivered"], statuses(t)
            assert t["history"][1]["code"] == 451 and t["history"][1]["enhanced"] == "4.3.0", t["history"][1]
            p = r2["p550a@script.test"]
            assert p["status"] == "failed" and p["reason"] == "userunknown", p
            assert p["history"][-1]["code"] == 550 and p["history"][-1]["enhanced"] == "5.1.1"
            assert p["history"][-1]["hard"] is True
            q = r2["p552b@script.test"]
            assert q["status"] == "failed" and q["history"][-1]["code"] == 552 and q["reason"] == "mailboxfull", q
            x = r2["t450x@script.test"]
            assert x["status"] == "expired", x
            assert x["attempts"] >= 3 and all(h["code"] == 450 for h in x["history"][1:-1]), x
            log(f"script.test: delivered, 451→deferred→delivered, 550 failed (userunknown, hard), 552 failed "
                f"(mailboxfull), 450 ×{x['attempts']} → expired")
            grouped = [m for m in peers.script_msgs() if "ok1@script.test" in m["rcpts"]]
            assert len(grouped) == 1 and grouped[0]["mail_from"].startswith("b+"), grouped

            r3 = wait_final(c, leader, m3)["recipients"][0]
            assert r3["status"] == "undeliverable" and r3["reason"] == "hostunknown", r3
            r4 = wait_final(c, leader, m4)["recipients"][0]
            assert r4["status"] == "undeliverable" and r4["reason"] == "notaccept", r4
            r5 = wait_final(c, leader, m5)["recipients"][0]
            assert r5["status"] == "delivered" and r5["history"][-1]["remote_mta"] == "aonly.sink.test", r5
            r6 = wait_final(c, leader, m6)["recipients"][0]
            assert r6["status"] == "delivered" and r6["history"][-1]["remote_mta"] == "live.backup.test", r6
            log("NXDOMAIN → undeliverable (hostunknown), null MX → undeliverable (notaccept), "
                "implicit MX → delivered, dead first MX → delivered by the second")

            r7 = wait_final(c, leader, m7)["recipients"][0]
            assert r7["history"][1]["status"] == "deferred" and r7["history"][1]["internal_code"] == 146, r7
            r8 = wait_final(c, leader, m8)["recipients"][0]
            assert r8["history"][1]["status"] == "deferred" and r8["history"][1]["internal_code"] == 147, r8
            log(f"stall on RCPT → deferred 146; stall after the dot → deferred 147; both then {r7['status']}")

            # suppression: the 550 address is now suppressed; a new message is
            # rejected and the server never hears of it again
            with urllib.request.urlopen(f"http://{c.http(leader)}/v1/suppressions", timeout=10) as r:
                sup = json.load(r)
            assert "p550a@script.test" in json.dumps(sup), sup
            seen_before = sum(m["rcpts"].count("p550a@script.test") for m in peers.script_msgs())
            m11 = submit(c, follower, ["p550a@script.test"])
            r11 = wait_final(c, leader, m11)["recipients"][0]
            assert r11["status"] == "rejected", r11
            time.sleep(2)
            assert sum(m["rcpts"].count("p550a@script.test") for m in peers.script_msgs()) == seen_before
            with open(os.path.join(peers.dir, "smtpd51.out")) as f:
                rcpt_lines = [ln for ln in f if "p550a@script.test" in ln]
            log(f"suppressed address rejected without contact ({len(rcpt_lines)} server log lines mention it)")

            # DSNs: one per failed/expired/undeliverable recipient of alice's
            # messages; none for NOTIFY=NEVER, none for the null sender
            wait_final(c, leader, m9)
            wait_final(c, leader, m10)
            owed = {"p550a@script.test", "p552b@script.test", "t450x@script.test", "x@nosuch.sink.test",
                    "y@nullmx.sink.test"}
            for mid in (m7, m8):
                r = message(c, leader, mid)["recipients"][0]
                if r["status"] != "delivered":
                    owed.add(r["address"])

            def dsn_rcpts():
                out = {}
                for d in peers.dsns():
                    msg = email.message_from_string(d["data"])
                    for part in msg.walk():
                        if part.get_content_type() == "message/delivery-status":
                            text = part.as_string()
                            for fr in re.findall(r"Final-Recipient: rfc822; *(\S+)", text):
                                out[fr] = (d, text)
                return out
            c.wait("the DSNs", lambda: owed <= set(dsn_rcpts()), timeout=40, interval=0.3)
            time.sleep(1)
            got = dsn_rcpts()
            assert "p550never@script.test" not in got and "p550null@script.test" not in got, sorted(got)
            assert len(peers.dsns()) == len(owed), f"{len(peers.dsns())} DSNs for {len(owed)} recipients: {sorted(got)}"
            d, text = got["p550a@script.test"]
            assert d["mail_from"] in ("", "<>") and d["rcpts"] == ["alice@sender.test"], d["mail_from"]
            assert "Action: failed" in text and "Status: 5.1.1" in text and "Diagnostic-Code: smtp; 550" in text, text
            assert "multipart/report" in d["data"] and "Auto-Submitted: auto-replied" in d["data"]
            _, text = got["t450x@script.test"]
            assert "Status: 4.4.7" in text, text
            log(f"DSNs from <> to the sender for {len(owed)} recipients (none for NOTIFY=NEVER or the null sender)")

            mt = metrics(c, leader)
            log(f"leader metrics: transactions={mt['ricochet_delivery_transactions_total']:.0f} "
                f"reused={mt['ricochet_delivery_connections_reused_total']:.0f} "
                f"dsn={mt['ricochet_dsn_sent_total']:.0f} repeats={mt['ricochet_delivery_repeats_total']:.0f}")
            assert mt["ricochet_delivery_repeats_total"] == 0
    finally:
        peers.stop()


def test_failover_during_delivery():
    """kill -9 of the leader while deliveries are in flight (the script
    server answers each message after 0.3 s, 10 connections): every accepted
    recipient still ends delivered, and every duplicate the server saw is
    accounted for by a repeat the new leader counted."""
    peers = Peers()
    n = 150
    try:
        peers.start()
        with Cluster("3", base=20, net=NET, sets=sets(**{"delivery.expire": "60s"})) as c:
            leader = c.wait_leader()
            submit_to = next(i for i in c.nodes if i != leader)
            ids, errors = [], []

            def burst():
                for k in range(n):
                    try:
                        ids.append(submit(c, submit_to, [f"slowdata{k}@script.test"]))
                    except Exception as e:  # noqa: BLE001 - 4xx during the election is expected
                        errors.append(str(e))
                        time.sleep(0.2)
            th = threading.Thread(target=burst)
            th.start()
            c.wait("deliveries under way", lambda: len(peers.script_msgs()) >= 20, timeout=60, interval=0.05)
            inflight = metrics(c, leader)["ricochet_delivery_inflight"]
            c.kill(leader)
            th.join(timeout=180)
            new = c.wait_leader(among=[i for i in c.nodes if i != leader], exclude=(leader,))
            c.start(leader)
            for mid in ids:
                r = wait_final(c, new, mid, timeout=90)["recipients"][0]
                assert r["status"] == "delivered", r
            rcpts = [r for m in peers.script_msgs() for r in m["rcpts"]]
            dup = len(rcpts) - len(set(rcpts))
            repeats = metrics(c, new)["ricochet_delivery_repeats_total"]
            log(f"killed the leader with {inflight:.0f} transactions in flight; accepted {len(ids)} "
                f"(refused during the election: {len(errors)}), all delivered; the server saw {len(rcpts)} "
                f"deliveries, {dup} duplicates; the new leader counted {repeats:.0f} repeats")
            got = {message(c, new, mid)["recipients"][0]["address"] for mid in ids}
            assert got <= set(rcpts), "an accepted recipient the server never saw"
            assert dup <= repeats, "a duplicate delivery that no counted repeat accounts for"
    finally:
        peers.stop()


def test_lost_in_space_and_planned_transfer():
    peers = Peers()
    try:
        peers.start()
        s = sets(**{"delivery.data_timeout": "60s", "delivery.command_timeout": "3s", "delivery.ttr": "4s",
                    "delivery.expire": "30s"})
        with Cluster("3", base=30, net=NET, sets=s) as c:
            leader = c.wait_leader()
            m = submit(c, leader, ["stalldata2@script.test"])
            r = wait_final(c, leader, m, timeout=30)["recipients"][0]
            assert r["status"] == "lost_in_space", r
            assert statuses(r)[-1] == "lost_in_space", statuses(r)
            log("an attempt still in flight at delivery.ttr → lost_in_space")

            # a planned transfer waits for the attempt in flight (stall on
            # RCPT, 3 s; the stalled attempt above is lost_in_space already and
            # is not waited for) and the next leader repeats nothing
            m2 = submit(c, leader, ["stallrcpt2@script.test"])
            c.wait("the attempt in flight", lambda: metrics(c, leader)["ricochet_delivery_inflight"] >= 1,
                   timeout=10, interval=0.05)
            target = next(i for i in c.nodes if i != leader)
            t0 = time.monotonic()
            c.ctl(leader, "transfer", "--to", str(target))
            waited = time.monotonic() - t0
            new = c.wait_leader(exclude=(leader,))
            r2 = message(c, new, m2)["recipients"][0]
            assert r2["history"][1]["status"] == "deferred" and r2["history"][1]["node"] == leader, r2
            assert metrics(c, new)["ricochet_delivery_repeats_total"] == 0
            log(f"planned transfer waited {waited:.1f}s for the attempt in flight; outcome recorded by node "
                f"{leader}; new leader {new} counted no repeat")
    finally:
        peers.stop()


def test_retention_forgets_final_messages():
    """delivery.retention: a message whose recipients are all final leaves the
    state on every node once its last event is older than the retention; one
    still being retried stays."""
    peers = Peers()
    try:
        peers.start()
        with Cluster("3", base=40, net=NET, sets=sets(**{"delivery.retention": "2s", "delivery.expire": "60s"})) as c:
            leader = c.wait_leader()
            done = submit(c, leader, ["r1@sink.test", "r2@sink.test"])
            wait_final(c, leader, done)
            pending = submit(c, leader, ["t450keep@script.test"])

            def gone_everywhere():
                for i in c.nodes:
                    try:
                        message(c, i, done)
                        return False
                    except urllib.error.HTTPError as e:
                        if e.code != 404:
                            raise
                return True
            c.wait("the delivered message to be forgotten on every node", gone_everywhere, timeout=40, interval=0.5)
            assert message(c, leader, pending)["recipients"][0]["status"] in ("queued", "deferred")
            forgotten = sum(metrics(c, i)["ricochet_messages_forgotten_total"] for i in c.nodes)
            assert forgotten >= 3, forgotten
            log(f"a final message left the state on all 3 nodes after delivery.retention (2 s); "
                f"a deferred one stayed")
    finally:
        peers.stop()


if __name__ == "__main__":
    main([test_status_paths, test_failover_during_delivery, test_lost_in_space_and_planned_transfer,
          test_retention_forgets_final_messages])
