#!/usr/bin/python3
"""Outbound delivery (issue 4) of a real 3-node cluster on 127.0.7.1-3 with
real peers only (tests/integration/egress_peers.py): NSD answers the MX
lookups of the test zone, Postfix's smtp-sink and a real Postfix accept,
the scripted aiosmtpd server answers 4xx/5xx or stalls, and a second aiosmtpd
instance is the sender's mailbox that receives the DSNs. Mail is submitted
with swaks (smtplib where swaks 20201014 has no option: NOTIFY=NEVER and the
bulk of the failover run).

Every case asserts the recipient's status and its history (codes, enhanced
codes, internal codes, remote MTA), and what the peer saw:

* delivered through smtp-sink with MAIL FROM b+TOKEN@bounce.ricochet.test;
  a domain with only an A record (implicit MX) too;
* grouping: one message to 3 recipients of one domain is one transaction
  with 3 RCPTs;
* 451 once then 250: deferred (451 4.3.0), then delivered on the retry
  (retry_schedule 1s);
* 550 5.1.1: failed (hard, userunknown), the address is suppressed, a new
  message to it is `rejected` without any RCPT reaching the server; the
  sender gets a DSN (multipart/report, Final-Recipient, Status 5.1.1) as
  message ORIGIDD0; NOTIFY=NEVER and the null sender get none;
* 552 5.2.2: failed; only 450: deferred then expired (delivery.expire);
* a stall after the final dot: deferred with internal code 147; a stall on
  RCPT: internal code 146; connection refused on every MX host: 162; a
  host whose connects time out (SYNs unanswered): 160;
* two MX hosts, the preferred one refusing: delivered by the second;
* NXDOMAIN and null MX (RFC 7505): undeliverable;
* real Postfix as remote MX accepts an unknown user, bounces it later to the
  VERP return path through the cluster's SMTP listener: delivered -> bounced
  (hard, userunknown), suppressed, a resend is rejected (issue 6);
* lost_in_space: an attempt stalled after the dot past delivery.ttr;
* failover: 200 messages to a slow smtp-sink (-w 1) while the leader is killed (SIGKILL)
  and restarted: every accepted recipient ends terminal and delivered at
  least once; repeats (metric) and duplicates seen by smtp-sink are printed;
  then a planned `ricochetctl transfer` with attempts in flight: all
  delivered exactly once and no repeat counted.
"""
import email
import email.policy
import json
import os
import re
import smtplib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import Cluster, log, main  # noqa: E402
import egress_peers as P  # noqa: E402

QUEUED = re.compile(r"250 2\.0\.0 Ok: queued as ([0-9A-Z]+)")
TERMINAL = {"delivered", "failed", "undeliverable", "expired", "rejected", "lost_in_space", "bounced", "complained"}
BASE_SETS = [
    "raft.election_timeout=300ms", "smtp.accept_timeout=10s", "dns.lease=1s",
    f"delivery.resolver={P.DNS_ADDR[0]}:{P.DNS_ADDR[1]}", f"delivery.port={P.MX_PORT}",
    "delivery.retry_schedule=1s", "delivery.connect_timeout=2s",
    f"bounce.domain={P.BOUNCE_DOMAIN}",
]
SENDER = "alice@sender.test"
TRACK_BASE = "https://t.ricochet.test"  # tracking.url: the public name whose proxy forwards /t/ to a node

PEERS = None  # one set of peers for every cluster of this run


# ------------------------------------------------------------------ helpers

def swaks(server, *args):
    cmd = ["swaks", "--server", server, "--timeout", "30", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def submit(c, rcpts, sender=SENDER, node=1, body="hello from the egress test"):
    rc, out = swaks(c.nodes[node]["smtp"], "--from", sender, "--to", ",".join(rcpts), "--body", body,
                    "--header", "Subject: egress test")
    m = QUEUED.search(out)
    assert rc == 0 and m, f"submission to {rcpts} failed:\n{out}"
    return m.group(1)


def submit_smtplib(c, sender, rcpts, rcpt_options=(), node=1):
    host, port = c.nodes[node]["smtp"].split(":")
    with smtplib.SMTP(host, int(port), timeout=30) as s:
        s.ehlo("egress-test.local")
        code, msg = s.mail(sender)
        assert code == 250, (code, msg)
        for r in rcpts:
            code, msg = s.rcpt(r, list(rcpt_options))
            assert code == 250, (r, code, msg)
        code, msg = s.data(f"From: {sender}\r\nTo: {', '.join(rcpts)}\r\nSubject: egress\r\n\r\nbody\r\n")
        m = QUEUED.search(f"{code} {msg.decode()}")
        assert m, (code, msg)
        return m.group(1)


def http_get(c, path, node=None):
    ids = [node] if node else c.alive_ids()
    last = None
    for i in ids:
        try:
            with urllib.request.urlopen(f"http://{c.http(i)}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            last = e
    raise AssertionError(f"GET {path}: no node answers ({last})")


def message(c, msg_id):
    """The message as the first live node that knows it shows it (a follower
    lags the leader by milliseconds; statuses are polled anyway)."""
    for i in c.alive_ids():
        try:
            code, body = http_get(c, f"/v1/messages/{msg_id}", node=i)
        except AssertionError:
            continue
        if code == 200:
            return json.loads(body)
    return None


def wait_rcpt(c, msg_id, index, statuses, timeout=60.0):
    """Polls until recipient INDEX of MSG_ID has one of STATUSES; returns it."""
    statuses = {statuses} if isinstance(statuses, str) else set(statuses)

    def check():
        m = message(c, msg_id)
        if m and m["recipients"][index]["status"] in statuses:
            return m["recipients"][index]
        return None
    try:
        return c.wait(f"{msg_id}[{index}] in {sorted(statuses)}", check, timeout=timeout, interval=0.2)
    except AssertionError:
        m = message(c, msg_id)
        raise AssertionError(f"{msg_id}[{index}] never reached {sorted(statuses)}; now: "
                             f"{json.dumps(m['recipients'][index] if m else None, indent=1)}") from None


def hist(r, status):
    return [h for h in r["history"] if h["status"] == status]


def expect(cond, what, r):
    assert cond, f"{what}; recipient: {json.dumps(r, indent=1)}"


def metric(c, name):
    """Sum of a counter over the live nodes (each counts what it did as leader)."""
    total = 0.0
    for i in c.alive_ids():
        try:
            _, text = http_get(c, "/metrics", node=i)
        except AssertionError:
            continue
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.split()[-1])
    return total


def sets(*extra):
    return BASE_SETS + list(extra)


def verp_ok(addr):
    return re.fullmatch(r"b\+[a-z2-7]+@" + re.escape(P.BOUNCE_DOMAIN), addr.strip("<>")) is not None


# -------------------------------------------------------------------- cases

def test_status_paths():
    """One cluster, every status path at once (they run concurrently)."""
    with Cluster("3", 0, net=P.NET, sets=sets("delivery.expire=20s", "delivery.ttr=10m",
                                              "delivery.command_timeout=5s", "delivery.data_timeout=5s")) as c:
        c.wait_leader()
        sent = {}
        sent["sink"] = submit(c, ["u1@sink.test"])
        sent["nomx"] = submit(c, ["u2@nomx.test"], node=2)
        sent["group"] = submit(c, ["ok1@script.test", "ok2@script.test", "ok3@script.test"])
        sent["retry"] = submit(c, ["t451once1@script.test"])
        sent["p550"] = submit(c, ["p550a@script.test"])
        sent["p552"] = submit(c, ["p552a@script.test"], node=3)
        sent["t450"] = submit(c, ["t450a@script.test"])
        sent["stalldata"] = submit(c, ["stalldata1@script.test"])
        sent["stallrcpt"] = submit(c, ["stallrcpt1@script.test"])
        sent["refused"] = submit(c, ["r1@refused.test"])
        sent["conntimeout"] = submit(c, ["t1@blackhole.test"])
        sent["twomx"] = submit(c, ["ok4@twomx.test"])
        sent["nxdomain"] = submit(c, ["x@nosuch.test"])
        sent["nullmx"] = submit(c, ["x@nullmx.test"])
        sent["never"] = submit_smtplib(c, "bob@sender.test", ["p550b@script.test"], ["NOTIFY=NEVER"])
        sent["nullsender"] = submit(c, ["p550c@script.test"], sender="<>")
        log(f"submitted: {sent}")
        failures = []

        def case(name, fn):
            try:
                fn()
                log(f"  ok   {name}")
            except AssertionError as e:
                failures.append(f"{name}: {e}")
                log(f"  FAIL {name}: {e}")

        def delivered_sink():
            r = wait_rcpt(c, sent["sink"], 0, TERMINAL)
            expect(r["status"] == "delivered", "u1@sink.test not delivered", r)
            d = hist(r, "delivered")[-1]
            expect(d.get("code") == 250, "no 250 in the delivered entry", r)
            expect(P.SINK in (d.get("remote_mta") or "") or "mx.sink.test" in (d.get("remote_mta") or ""),
                   "remote_mta is not the sink", r)
            txs = [t for t in PEERS.sink_transactions() if "<u1@sink.test>" in t["rcpts"]]
            assert len(txs) == 1, f"smtp-sink saw {len(txs)} transactions for u1@sink.test"
            mail = txs[0]["mail"].split()[0]
            assert verp_ok(mail), f"MAIL FROM at smtp-sink is {txs[0]['mail']!r}, not a VERP path on {P.BOUNCE_DOMAIN}"
        case("delivered via smtp-sink, VERP MAIL FROM", delivered_sink)

        def implicit_mx():
            r = wait_rcpt(c, sent["nomx"], 0, TERMINAL)
            expect(r["status"] == "delivered", "u2@nomx.test (A only, implicit MX) not delivered", r)
            assert any("<u2@nomx.test>" in t["rcpts"] for t in PEERS.sink_transactions()), "smtp-sink never saw u2"
        case("implicit MX (A record only)", implicit_mx)

        def grouping():
            for i in range(3):
                r = wait_rcpt(c, sent["group"], i, TERMINAL)
                expect(r["status"] == "delivered" and r["attempts"] == 1, "grouped recipient not delivered at once", r)
            txs = [m for m in PEERS.script_messages() if any(x.startswith("ok") and x.endswith("@script.test") and
                                                              x[2] in "123" for x in m["rcpts"])]
            assert len(txs) == 1, f"expected one transaction, the scripted server logged {len(txs)}: {txs}"
            assert sorted(txs[0]["rcpts"]) == ["ok1@script.test", "ok2@script.test", "ok3@script.test"], txs[0]["rcpts"]
            assert verp_ok(txs[0]["mail_from"]), txs[0]["mail_from"]
        case("grouping: one transaction, 3 RCPTs", grouping)

        def retry():
            r = wait_rcpt(c, sent["retry"], 0, TERMINAL)
            expect(r["status"] == "delivered", "451-once recipient not delivered", r)
            d = hist(r, "deferred")
            expect(d and d[0].get("code") == 451 and d[0].get("enhanced") == "4.3.0", "no deferred 451 4.3.0 entry", r)
            expect(r["attempts"] >= 2, "fewer than 2 attempts", r)
            expect(r["history"][-1]["status"] == "delivered", "last history entry is not delivered", r)
        case("451 once then 250: deferred then delivered", retry)

        def failed_550():
            r = wait_rcpt(c, sent["p550"], 0, TERMINAL)
            expect(r["status"] == "failed", "550 recipient not failed", r)
            f = hist(r, "failed")[-1]
            expect(f.get("code") == 550 and f.get("enhanced") == "5.1.1", "no 550 5.1.1 in the failed entry", r)
            expect(f.get("hard") is True and f.get("reason") == "userunknown", "not hard/userunknown", r)
            expect(P.SCRIPT in (f.get("remote_mta") or "") or "mx.script.test" in (f.get("remote_mta") or ""),
                   "remote_mta is not the scripted server", r)
            c.wait("p550a suppressed", lambda: "p550a@script.test" in http_get(c, "/v1/suppressions")[1], timeout=30)
            again = submit(c, ["p550a@script.test"])
            r2 = wait_rcpt(c, again, 0, TERMINAL)
            expect(r2["status"] == "rejected" and r2["attempts"] == 0, "resend to a suppressed address not rejected", r2)
            # let a wrongly scheduled attempt show up before counting
            wait_rcpt(c, sent["retry"], 0, TERMINAL)
            n = [x for x in PEERS.script_rcpt_commands() if x["rcpt"] == "p550a@script.test"]
            assert len(n) == 1, f"the scripted server saw {len(n)} RCPTs for p550a (expected the first only): {n}"
        case("550: failed, suppressed, resend rejected without a connection", failed_550)

        def failed_552():
            r = wait_rcpt(c, sent["p552"], 0, TERMINAL)
            expect(r["status"] == "failed", "552 recipient not failed", r)
            f = hist(r, "failed")[-1]
            expect(f.get("code") == 552 and f.get("enhanced") == "5.2.2", "no 552 5.2.2 in the failed entry", r)
        case("552: failed", failed_552)

        def only_4xx():
            r = wait_rcpt(c, sent["t450"], 0, TERMINAL)
            expect(r["status"] == "expired", "450-only recipient not expired", r)
            d = hist(r, "deferred")
            expect(d and all(h.get("code") == 450 and h.get("enhanced") == "4.2.1" for h in d),
                   "deferred entries are not 450 4.2.1", r)
            expect(r["attempts"] >= 2, "retried fewer than twice before expiry", r)
        case("only 450 until delivery.expire: expired", only_4xx)

        def internal(name, key, code):
            def fn():
                r = wait_rcpt(c, sent[key], 0, TERMINAL)
                d = hist(r, "deferred")
                expect(d and d[0].get("internal_code") == code, f"first deferred entry has no internal code {code}", r)
                expect(r["status"] == "expired", "not expired after only temporary failures", r)
            case(name, fn)
        internal("stall after the final dot: 147", "stalldata", 147)
        internal("stall on RCPT: 146", "stallrcpt", 146)
        internal("connection refused on every MX: 162", "refused", 162)
        internal("connect timeout: 160", "conntimeout", 160)

        def twomx():
            r = wait_rcpt(c, sent["twomx"], 0, TERMINAL)
            expect(r["status"] == "delivered", "not delivered through the second MX", r)
            d = hist(r, "delivered")[-1]
            expect(P.SCRIPT in (d.get("remote_mta") or "") or "live.twomx.test" in (d.get("remote_mta") or ""),
                   "remote_mta is not the pref-20 host", r)
        case("preferred MX refuses, second MX delivers", twomx)

        def undeliverable(key):
            def fn():
                r = wait_rcpt(c, sent[key], 0, TERMINAL)
                expect(r["status"] == "undeliverable", f"{key} not undeliverable", r)
                u = hist(r, "undeliverable")[-1]
                expect(u.get("hard") is True, "undeliverable entry not hard", r)
            return fn
        case("NXDOMAIN: undeliverable", undeliverable("nxdomain"))
        case("null MX: undeliverable", undeliverable("nullmx"))

        def dsn():
            def find():
                for m in PEERS.mailbox():
                    if SENDER in m["rcpts"] and "p550a@script.test" in m["data"]:
                        return m
                return None
            m = c.wait("the DSN for p550a in alice's mailbox", find, timeout=60)
            assert m["mail_from"] in ("", "<>"), f"DSN MAIL FROM is {m['mail_from']!r}, not <>"
            msg = email.message_from_string(m["data"], policy=email.policy.compat32)
            assert msg.get_content_type() == "multipart/report", msg.get_content_type()
            assert msg.get_param("report-type") == "delivery-status", msg.get_param("report-type")
            ds = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
            assert ds, "no message/delivery-status part"
            payload = ds[0].get_payload()
            text = "\n".join(str(p) for p in payload) if isinstance(payload, list) else str(payload)
            assert re.search(r"Final-Recipient:\s*rfc822;\s*p550a@script\.test", text, re.I), text
            assert re.search(r"Status:\s*5\.1\.1", text), text
            assert re.search(r"Action:\s*failed", text, re.I), text
            d0 = message(c, sent["p550"] + "D0")
            assert d0 is not None, f"no DSN message {sent['p550']}D0 in the cluster"
            assert d0["recipients"][0]["address"] == SENDER, d0["recipients"]
        case("DSN for a failed recipient in the sender's mailbox", dsn)

        def no_dsn():
            for key, rcpt in (("never", "p550b@script.test"), ("nullsender", "p550c@script.test")):
                r = wait_rcpt(c, sent[key], 0, TERMINAL)
                expect(r["status"] == "failed", f"{rcpt} not failed", r)
            nulls = [x for x in PEERS.script_rcpt_commands() if x["rcpt"] == "p550c@script.test"]
            assert nulls and all(x["mail_from"] in ("", "<>") for x in nulls), f"null sender not kept as <>: {nulls}"
            # the DSN for p550a (submitted before) has arrived by now (dsn case); these get none
            for key in ("never", "nullsender"):
                assert message(c, sent[key] + "D0") is None, f"a DSN {sent[key]}D0 exists for {key}"
            got = [m for m in PEERS.mailbox() if "bob@sender.test" in m["rcpts"] or "p550b" in m["data"]
                   or "p550c" in m["data"]]
            assert not got, f"DSNs that must not exist: {got}"
        case("no DSN for NOTIFY=NEVER nor for the null sender", no_dsn)

        attempts = metric(c, "ricochet_delivery_attempts_total")
        dsns = metric(c, "ricochet_dsn_sent_total")
        log(f"metrics: ricochet_delivery_attempts_total={attempts:g} ricochet_dsn_sent_total={dsns:g}")
        if attempts <= 0:
            failures.append("ricochet_delivery_attempts_total is 0")
        if dsns <= 0:
            failures.append("ricochet_dsn_sent_total is 0 although DSNs were delivered")
        assert not failures, f"{len(failures)} case(s) failed:\n" + "\n".join(failures)


def test_postfix_bounce():
    """Real Postfix as the remote MX: 250 at RCPT, then its own DSN to the
    VERP path -> bounced (hard, userunknown), suppressed, resend rejected."""
    if os.geteuid() != 0:
        log("SKIP test_postfix_bounce: a private Postfix instance needs root (CI runs as root)")
        return
    with Cluster("3", 0, net=P.NET, sets=sets("delivery.command_timeout=20s", "delivery.data_timeout=20s")) as c:
        c.wait_leader()
        PEERS.start_postfix()
        msg_id = submit(c, ["nosuchuser@postfix.test"])
        r = wait_rcpt(c, msg_id, 0, {"delivered", "bounced", "failed", "undeliverable", "expired"}, timeout=60)
        r = wait_rcpt(c, msg_id, 0, {"bounced", "failed", "undeliverable", "expired"}, timeout=90)
        pf = PEERS.postfix_log()
        assert "status=bounced" in pf and "unknown user" in pf, "Postfix did not bounce:\n" + pf[-3000:]
        expect(r["status"] == "bounced", "not bounced", r)
        expect(hist(r, "delivered") and hist(r, "delivered")[0].get("code") == 250, "no delivered (250) entry before", r)
        b = hist(r, "bounced")[-1]
        expect(b.get("hard") is True and b.get("reason") == "userunknown", "bounce not hard/userunknown", r)
        c.wait("nosuchuser suppressed", lambda: "nosuchuser@postfix.test" in http_get(c, "/v1/suppressions")[1], timeout=30)
        again = submit(c, ["nosuchuser@postfix.test"])
        r2 = wait_rcpt(c, again, 0, TERMINAL)
        expect(r2["status"] == "rejected" and r2["attempts"] == 0, "resend not rejected", r2)


def test_lost_in_space():
    """An attempt stalled after the final dot (data_timeout long) past
    delivery.ttr -> lost_in_space."""
    with Cluster("1", 0, net=P.NET, sets=sets("delivery.ttr=3s", "delivery.data_timeout=5m",
                                              "delivery.command_timeout=5m")) as c:
        c.wait_leader()
        msg_id = submit(c, ["stalldata2@script.test"])
        r = wait_rcpt(c, msg_id, 0, TERMINAL, timeout=60)
        expect(r["status"] == "lost_in_space", "stalled attempt past ttr not lost_in_space", r)
        expect(hist(r, "lost_in_space"), "no lost_in_space history entry", r)


def test_failover():
    """N messages to smtp-sink while the leader is killed -9 and restarted.
    The sink answers DATA after 1 s (smtp-sink -w 1), so the kill finds
    attempts in flight whose outcome the old leader never recorded. Every
    other message asks for tracking (its copy is made on the thread pool
    when the kill comes): none of them may be lost either."""
    n = int(os.environ.get("EGRESS_FAILOVER_N", "200"))
    with Cluster("3", 0, net=P.NET, sets=sets("delivery.command_timeout=10s", "delivery.data_timeout=10s",
                                              "delivery.max_connections_per_domain=20", "http.admin=true",
                                              f"tracking.url={TRACK_BASE}")) as c:
        leader = c.wait_leader()
        entry = [i for i in c.nodes if i != leader][0]
        host, port = c.nodes[entry]["smtp"].split(":")
        accepted = {}  # id -> recipient
        killed = threading.Event()
        s = None
        seq = 0
        t0 = time.monotonic()
        while len(accepted) < n and time.monotonic() - t0 < 120:
            seq += 1
            rcpt = f"f{seq}@slow.test"
            try:
                if s is None:
                    s = smtplib.SMTP(host, int(port), timeout=30)
                    s.ehlo("egress-failover.local")
                s.rset()
                code, _ = s.mail("carol@sender.test")
                if code != 250:
                    raise smtplib.SMTPException(f"MAIL {code}")
                code, _ = s.rcpt(rcpt)
                if code != 250:
                    raise smtplib.SMTPException(f"RCPT {code}")
                if seq % 2:
                    code, msg = s.data(f"Subject: failover {seq}\r\n\r\nmessage {seq}\r\n")
                else:
                    code, msg = s.data(f"Subject: failover {seq}\r\nX-Ricochet-Track: opens, clicks\r\n"
                                       f"MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"
                                       f"<p>message {seq} <a href=\"https://example.com/{seq}\">x</a></p>\r\n")
                m = QUEUED.search(f"{code} {msg.decode(errors='replace')}")
                if m:
                    accepted[m.group(1)] = rcpt
            except (smtplib.SMTPException, OSError):
                try:
                    s.close()
                except Exception:  # noqa: BLE001
                    pass
                s = None
                time.sleep(0.2)
            if len(accepted) == n // 2 and not killed.is_set():
                killed.set()
                c.kill(leader)
        if s is not None:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass
        assert len(accepted) == n, f"only {len(accepted)} of {n} messages accepted in 120s"
        c.start(leader)
        new_leader = c.wait_leader(timeout=60)
        log(f"accepted {n} messages; old leader {leader} killed mid-run and restarted, leader now {new_leader}")

        def all_terminal():
            statuses = {}
            for mid in list(accepted):
                m = message(c, mid)
                if m is None:
                    return None
                st = m["recipients"][0]["status"]
                if st not in TERMINAL:
                    return None
                statuses[mid] = st
            return statuses
        statuses = c.wait("every accepted recipient terminal", all_terminal, timeout=120, interval=1.0)
        not_delivered = {k: v for k, v in statuses.items() if v != "delivered"}
        seen = {}
        for t in PEERS.sink_transactions(slow=True):
            for r in t["rcpts"]:
                if r.startswith("<f"):
                    seen[r.strip("<>")] = seen.get(r.strip("<>"), 0) + 1
        missing = [r for r in accepted.values() if r not in seen]
        dups = sum(v - 1 for v in seen.values() if v > 1)
        repeats = metric(c, "ricochet_delivery_repeats_total")
        log(f"failover: accepted={n} delivered={n - len(not_delivered)} duplicates_at_smtp_sink={dups} "
            f"ricochet_delivery_repeats_total={repeats:g}")
        repeat_lines = []
        for i in c.alive_ids():
            with open(c.log_path(i), errors="replace") as f:
                repeat_lines += [line.strip() for line in f if "event=delivery_repeat" in line]
        log(f"failover: {len(repeat_lines)} event=delivery_repeat log lines, e.g. "
            f"{repeat_lines[0] if repeat_lines else '-'}")
        assert not not_delivered, f"recipients not delivered: {not_delivered}"
        assert not missing, f"smtp-sink never saw {len(missing)} accepted recipients: {missing[:10]}"
        # (counters restart with a node: the killed leader's copies are not in the sum)
        tracked = metric(c, 'ricochet_tracking_copies_total{result="rewritten"}')
        untracked = metric(c, 'ricochet_tracking_copies_total{result="sent_unchanged"}')
        log(f"failover: tracked copies made by the live nodes {tracked:g}, sent unchanged {untracked:g}")
        assert tracked > 0 and untracked == 0, (tracked, untracked)

        # A planned transfer while attempts are in flight: they finish first,
        # so nothing is repeated and nothing is delivered twice.
        leader = c.wait_leader()
        target = [i for i in c.nodes if i != leader][0]
        before = metric(c, "ricochet_delivery_repeats_total")
        planned = {}
        for k in range(40):
            planned[submit_smtplib(c, "carol@sender.test", [f"g{k}@slow.test"], node=target)] = f"g{k}@slow.test"
        c.ctl(leader, "transfer", "--to", str(target))
        new_leader = c.wait_leader(exclude=(leader,))
        log(f"planned transfer {leader} -> {new_leader} with 40 messages to the slow sink just accepted")
        accepted = planned
        statuses = c.wait("every recipient terminal after the transfer", all_terminal, timeout=120, interval=1.0)
        after = metric(c, "ricochet_delivery_repeats_total")
        seen = {}
        for t in PEERS.sink_transactions(slow=True):
            for r in t["rcpts"]:
                if r.startswith("<g"):
                    seen[r.strip("<>")] = seen.get(r.strip("<>"), 0) + 1
        dups = {r: k for r, k in seen.items() if k > 1}
        log(f"planned transfer: delivered={sum(1 for v in statuses.values() if v == 'delivered')}/40 "
            f"repeats {before:g} -> {after:g}, duplicates at smtp-sink: {len(dups)}")
        assert all(v == "delivered" for v in statuses.values()), statuses
        assert sorted(seen) == sorted(planned.values()), f"smtp-sink saw {len(seen)} of 40"
        assert after == before, f"a planned transfer repeated attempts: repeats {before:g} -> {after:g}"
        assert not dups, f"delivered twice after a planned transfer: {dups}"


def test_retention_and_discard():
    """delivery.retention: a message whose recipients are all final leaves the
    state of every node once its last event is older than the retention; one
    still being retried stays, until an operator discards it."""
    with Cluster("3", 0, net=P.NET, sets=sets("delivery.retention=2s", "delivery.expire=60s",
                                              "delivery.delay_warning=1s")) as c:
        c.wait_leader()
        late = submit_smtplib(c, SENDER, ["t450late@script.test"], rcpt_options=["NOTIFY=DELAY,FAILURE"])
        done = submit(c, ["ret1@sink.test", "ret2@sink.test"])
        wait_rcpt(c, done, 0, "delivered")
        wait_rcpt(c, done, 1, "delivered")
        keep = submit(c, ["t450keep@script.test"])
        c.wait("the delivered message to leave every node",
               lambda: all(http_get(c, f"/v1/messages/{done}", node=i)[0] == 404 for i in c.alive_ids()),
               timeout=40, interval=0.5)
        r = message(c, keep)["recipients"][0]
        expect(r["status"] in ("queued", "deferred"), "a recipient still retried is kept", r)
        # NOTIFY=DELAY: one delay warning once the recipient is deferred past
        # delivery.delay_warning (1 s), and only one
        def delayed():
            return [m for m in PEERS.mailbox() if "t450late@script.test" in m["data"] and "Action: delayed" in m["data"]]
        c.wait("the delay DSN for t450late", delayed, timeout=40, interval=0.3)
        time.sleep(2.5)  # more deferrals happen: still one warning
        warn = delayed()
        assert len(warn) == 1, f"{len(warn)} delay DSNs"
        assert "Will-Retry-Until:" in warn[0]["data"] and "Status: 4.2.1" in warn[0]["data"], warn[0]["data"][:1500]
        # (its message <ID>W0 may have left the state already: retention is 2 s here)
        leader = c.wait_leader()
        out = c.ctl(leader, "discard", keep).stdout
        assert "discarded 1 recipient" in out, out
        r = wait_rcpt(c, keep, 0, "discarded")
        expect(hist(r, "discarded")[0]["reason"] == "discarded", "the operator's discard in the history", r)
        assert c.ctl(leader, "discard", keep, check=False).returncode != 0, "nothing left to discard"
        forgotten = metric(c, "ricochet_messages_forgotten_total")
        assert forgotten >= 3, forgotten
        log("a final message left the state on all 3 nodes after delivery.retention (2 s); "
            "a deferred one stayed until `ricochetctl discard`; NOTIFY=DELAY got one delay DSN")



def http_raw(c, path, node=1):
    """GET without following redirects: (status, headers, body bytes)."""
    import http.client
    host, port = c.http(node).split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_tracking():
    """X-Ricochet-Track (docs/TRACKING.md): an HTML newsletter to two
    recipients goes out as two transactions, each copy with its own open
    pixel and links (quoted-printable HTML part rewritten, the text part and
    an attached HTML file untouched, the request field removed); fetching
    the pixel and a link from the node's HTTP API records `opened` and
    `clicked` (with the link) on that recipient only and redirects to the
    link; altered or other-key URLs are refused and record nothing."""
    from email.message import EmailMessage
    with Cluster("1", 0, net=P.NET, sets=sets(f"tracking.url={TRACK_BASE}",
                                              "tracking.secret=the-tracking-secret-of-this-test",
                                              "tracking.repeat_window=3s", "tracking.max_events=3")) as c:
        c.wait_leader()
        msg = EmailMessage()
        msg["From"] = SENDER
        msg["To"] = "carol@sender.test, dave@sender.test"
        msg["Subject"] = "tracking test"
        msg["X-Ricochet-Track"] = "opens, clicks"
        msg.set_content("Our sale: https://shop.example.com/sale?from=mail&id=7\n")
        html = ("<html><head><title>Sale</title></head><body><p>" + "Sale today. " * 20 + "</p>"
                "<a href=\"https://shop.example.com/sale?from=mail&amp;id=7\">Shop now</a> "
                "<a href=\"mailto:help@shop.example.com\">help</a></body></html>")
        msg.add_alternative(html, subtype="html", cte="quoted-printable")
        msg.add_attachment(b"<a href='https://attached.example/'>x</a>", maintype="text", subtype="html",
                           filename="page.html")
        host, port = c.nodes[1]["smtp"].split(":")
        with smtplib.SMTP(host, int(port), timeout=30) as s:
            s.ehlo("tracking-test.local")
            assert s.mail(SENDER)[0] == 250
            for r in ("carol@sender.test", "dave@sender.test"):
                assert s.rcpt(r)[0] == 250
            code, reply = s.data(msg.as_bytes(policy=email.policy.SMTP))
        m = QUEUED.search(f"{code} {reply.decode()}")
        assert m, (code, reply)
        msg_id = m.group(1)
        for i in (0, 1):
            r = wait_rcpt(c, msg_id, i, TERMINAL)
            expect(r["status"] == "delivered", "tracked copy not delivered", r)

        copies = {}
        def got():
            for e in PEERS.mailbox():
                if "tracking test" in e["data"] and len(e["rcpts"]) == 1:
                    copies[e["rcpts"][0]] = e
            return len(copies) == 2
        c.wait("both tracked copies in the mailbox", got, timeout=30)
        assert not [e for e in PEERS.mailbox() if "tracking test" in e["data"] and len(e["rcpts"]) > 1], \
            "tracked recipients shared a transaction"
        urls = {}
        for idx, rcpt in enumerate(("carol@sender.test", "dave@sender.test")):
            data = copies[rcpt]["data"]
            assert "X-Ricochet-Track" not in data, data[:2000]
            parsed = email.message_from_string(data, policy=email.policy.default)
            body = parsed.get_body(("html",)).get_content()
            text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
            assert text == "Our sale: https://shop.example.com/sale?from=mail&id=7\n", text
            attached = [p for p in parsed.iter_attachments() if p.get_filename() == "page.html"]
            assert attached and "https://attached.example/" in str(attached[0].get_content()), "attachment changed"
            pix = re.findall(re.escape(TRACK_BASE) + r"(/t/o/" + msg_id + "/" + str(idx) + r"/[A-Za-z0-9_-]{22}\.gif)", body)
            clk = re.findall(r'href="' + re.escape(TRACK_BASE) + r"(/t/c/" + msg_id + "/" + str(idx) + r"/[^\"]+)\"", body)
            assert len(pix) == 1 and len(clk) == 1, body
            assert body.index(pix[0]) < body.index("</body>"), body
            assert 'href="mailto:help@shop.example.com"' in body and "Sale today. " in body, body
            urls[idx] = (pix[0], clk[0])

        st, hd, gif = http_raw(c, urls[0][0])
        assert st == 200 and hd.get("content-type") == "image/gif" and gif.startswith(b"GIF89a"), (st, hd)
        assert "no-store" in hd.get("cache-control", ""), hd
        st, hd, _ = http_raw(c, urls[0][1])
        assert st == 302 and hd.get("location") == "https://shop.example.com/sale?from=mail&id=7", (st, hd)

        def engaged():
            r = message(c, msg_id)["recipients"][0]
            return r if hist(r, "opened") and hist(r, "clicked") else None
        r = c.wait("opened and clicked in carol's history", engaged, timeout=30)
        expect(r["status"] == "delivered", "engagement changed the status", r)
        expect("https://shop.example.com/sale?from=mail&id=7" in json.dumps(hist(r, "clicked")[0]),
               "the clicked link is not in the history entry", r)
        # a reload of the image within tracking.repeat_window is not recorded
        # again; after it, it is, up to tracking.max_events (3) per recipient
        assert http_raw(c, urls[0][0])[0] == 200
        time.sleep(3.5)
        assert http_raw(c, urls[0][0])[0] == 200
        c.wait("the second open after the window", lambda: len(hist(message(c, msg_id)["recipients"][0], "opened")) == 2,
               timeout=30)
        time.sleep(3.5)
        assert http_raw(c, urls[0][0])[0] == 200 and http_raw(c, urls[0][1])[0] == 302
        time.sleep(1)
        r = message(c, msg_id)["recipients"][0]
        expect(len(hist(r, "opened")) == 2 and len(hist(r, "clicked")) == 1, "repeat window or max_events not kept", r)
        # 3: the reload, then both over max_events (2 if a slow machine let the
        # window pass before the reload)
        assert metric(c, 'ricochet_tracking_hits_total{result="skipped"}') >= 2
        # forged: another recipient's index under carol's signature, a
        # changed signature, a target swapped in, another path
        pix, clk = urls[0]
        forged = [pix.replace(f"/{msg_id}/0/", f"/{msg_id}/1/"),
                  pix[:-6] + ("A" if pix[-6] != "A" else "B") + pix[-5:],
                  clk.rsplit("/", 1)[0] + "/aHR0cHM6Ly9ldmlsLmV4YW1wbGUv",
                  "/t/o/" + msg_id + "/0/AAAAAAAAAAAAAAAAAAAAAA.gif"]
        for f in forged:
            st, _, _ = http_raw(c, f)
            assert st == 404, (f, st)
        time.sleep(1)
        r1 = message(c, msg_id)["recipients"][1]
        expect(not hist(r1, "opened") and not hist(r1, "clicked"), "a forged URL recorded an event", r1)
        assert metric(c, 'ricochet_tracking_hits_total{result="refused"}') >= 4
        assert metric(c, 'ricochet_tracking_copies_total{result="rewritten"}') == 2
        log("tracked: one copy per recipient, pixel and link recorded (opened, clicked), 4 forged URLs refused")


if __name__ == "__main__":
    with P.Peers() as PEERS:
        main([test_status_paths, test_postfix_bounce, test_lost_in_space, test_failover,
              test_retention_and_discard, test_tracking])
