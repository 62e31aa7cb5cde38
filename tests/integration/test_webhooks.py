#!/usr/bin/python3
"""Webhooks (docs/WEBHOOKS.md) on a real 3-node cluster, on 127.0.12.x, with
a receiver written the way the docs tell users to (tests/lib/
webhook_receiver.py: it checks every signature and timestamp):

* mail accepted with swaks, a real-format Postfix DSN to a VERP address
  (bounced, hard; its diagnostic carries a raw Latin-1 byte, which the API
  and the events show repaired as U+FFFD), a resend to the now suppressed address (rejected), an
  operator's discard, a delivery report (delivered) and engagement reported
  through the API (opened, clicked; refused on a recipient that is not
  delivered): every history entry of every recipient reaches the receiver
  as one event, with the documented fields, signed;
* the receiver fails the first POSTs (503): the leader retries with
  back-off, GET /v1/webhooks and /metrics say so, nothing is lost;
* the receiver is down while new events happen and the leader is killed:
  the new leader sends, from what was acknowledged, every event the
  receiver has not acknowledged (at least once: duplicates carry the same
  event id), and each recipient's events arrive in history order;
* every node ends with webhook_sent == history length (the acknowledgement
  is replicated state);
* webhooks.events filters (a second, one-node cluster that only sends
  bounced/rejected events still acknowledges the others);
* delivery.retention keeps a final message until its events are
  acknowledged, at most webhooks.max_hold longer (then counted as dropped).
"""
import json
import os
import signal
import smtplib
import subprocess
import sys
import time
import urllib.error
import urllib.request

from clusterlib import Cluster, log, main
from test_bounce_intake import delivery_report, postfix_dsn, send_message, send_report, verp

import sanitizers  # noqa: E402 - tests/lib, on the path once clusterlib is imported

NET = "127.0.12"
RECEIVER = f"{NET}.200:8099"
SECRET = "whsec-test-1"
HERE = os.path.dirname(os.path.abspath(__file__))
FAST = ["raft.election_timeout=300ms", "smtp.accept_timeout=10s", "dns.lease=1s",
        f"webhooks.url=http://{RECEIVER}/hook", f"webhooks.secret={SECRET}", "webhooks.batch_max=4",
        "webhooks.retry_max=2s"]


class Receiver:
    def __init__(self, listen):
        self.listen = listen
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "lib", "webhook_receiver.py"),
                                      "--listen", self.listen, "--secret", SECRET],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening"), line
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return False

    def state(self):
        with urllib.request.urlopen(f"http://{self.listen}/_state", timeout=10) as r:
            return json.load(r)

    def control(self, **kw):
        req = urllib.request.Request(f"http://{self.listen}/_control", data=json.dumps(kw).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()


def get_json(c, node, path):
    with urllib.request.urlopen(f"http://{c.http(node)}{path}", timeout=10) as r:
        return json.load(r)


def histories(c, node, ids):
    """{(msg, rcpt, seq): status} of every history entry of these messages."""
    out = {}
    for mid in ids:
        m = c.ctl_json(node, "message", mid)
        for i, r in enumerate(m["recipients"]):
            for k, h in enumerate(r["history"]):
                out[(mid, i, k)] = h["status"]
    return out


def received(rx):
    """{(msg, rcpt, seq): event} of what the receiver got (last copy)."""
    return {(e["message_id"], e["recipient_index"], e["sequence"]): e for e in rx.state()["events"]}


def check_order(events):
    """Per recipient, first arrivals come in history order."""
    seen = {}
    for e in events:
        key = (e["message_id"], e["recipient_index"])
        k = e["sequence"]
        if k in seen.setdefault(key, []):
            continue
        assert not seen[key] or k > seen[key][-1], f"{key}: event {k} after {seen[key]}"
        seen[key].append(k)


def test_every_event_at_least_once_across_failures_and_failover():
    with Receiver(RECEIVER) as rx, Cluster("3", base=0, net=NET, sets=FAST) as c:
        rx.control(fail_next=2)
        leader = c.wait_leader()
        follower = [i for i in c.nodes if i != leader][0]
        smtp = c.nodes[follower]["smtp"]
        secret = b"verp:" + open(f"{c.dir}/secret").read().strip().encode()
        lost = "gone.user@example.com"
        ids = [send_message(smtp, [lost, "kept.user@example.net"]),
               send_message(smtp, ["a@example.org", "b@example.org"])]
        # its Diagnostic-Code carries a raw Latin-1 byte (no charset says so,
        # as real ones sometimes do): the API and the events repair it
        dsn = postfix_dsn(lost).replace("double-checking", "v\xe9rifier").replace("\n", "\r\n").encode("latin-1")
        host, port = smtp.rsplit(":", 1)
        with smtplib.SMTP(host, int(port), timeout=30) as s:
            s.sendmail("<>", [verp(secret, ids[0], 0)], dsn)
        c.wait("the bounce", lambda: c.ctl_json(leader, "message", ids[0])["recipients"][0]["status"] == "bounced")
        ids.append(send_message(smtp, [lost]))  # suppressed: rejected at once
        c.ctl(leader, "discard", ids[1], "--rcpt", "1")
        # engagement on a recipient a delivery report made `delivered`
        send_report(smtp, verp(secret, ids[0], 1), delivery_report("kept.user@example.net"))
        c.wait("delivered", lambda: c.ctl_json(leader, "message", ids[0])["recipients"][1]["status"] == "delivered")
        c.ctl(follower, "engagement", ids[0], "--rcpt", "1", "opened")  # the follower forwards it
        c.ctl(leader, "engagement", ids[0], "--rcpt", "1", "clicked", "--url", "https://example.net/a?b=1")
        r = c.ctl(leader, "engagement", ids[1], "--rcpt", "0", "opened", check=False)
        assert r.returncode != 0 and "only on a delivered recipient" in r.stderr, r.stderr
        r = c.ctl(leader, "engagement", ids[0], "--rcpt", "1", "liked", check=False)
        assert r.returncode != 0 and "opened or clicked" in r.stderr, r.stderr
        hostile = [b"not json", b"[]", b'{"recipient": "1", "event": "opened"}', b'{"recipient": 1}',
                   b'{"recipient": 99, "event": "opened"}', b'{"recipient": -1, "event": "opened"}',
                   b'{"recipient": 1, "event": "opened", "url": 5}',
                   b'{"recipient": 1, "event": "opened", "url": "' + b"x" * 3000 + b'"}',
                   b'{"recipient": 1, "event": "opened", "at": "yesterday"}',
                   b'{"recipient": 18446744073709551615, "event": "clicked"}']
        for body in hostile:
            req = urllib.request.Request(f"http://{c.http(leader)}/v1/messages/{ids[0]}/engagement", data=body,
                                         method="POST")
            try:
                urllib.request.urlopen(req, timeout=10)
                raise AssertionError(f"accepted {body[:60]!r}")
            except urllib.error.HTTPError as e:
                assert e.code == 400, (body[:60], e.code)
        hist = c.ctl_json(leader, "message", ids[0])["recipients"][1]["history"]
        assert [h["status"] for h in hist][-3:] == ["delivered", "opened", "clicked"], hist  # hostile ones: none
        want = histories(c, leader, ids)
        statuses = set(want.values())
        assert {"queued", "bounced", "rejected", "discarded", "delivered", "opened", "clicked"} <= statuses, statuses

        got = c.wait("every event at the receiver", lambda: (lambda g: g if set(want) <= set(g) else None)(received(rx)),
                     timeout=60)
        st = rx.state()
        assert st["bad_signature"] == 0, st
        assert st["failed"] == 2, st
        for key, status in want.items():
            e = got[key]
            assert e["status"] == status, (key, e)
            assert e["id"] == f"{key[0]}.{key[1]}.{key[2]}", e
            assert e["previous_status"] == (None if key[2] == 0 else want[(key[0], key[1], key[2] - 1)]), e
        b = got[(ids[0], 0, max(k for (m, r, k) in want if m == ids[0] and r == 0))]
        assert b["status"] == "bounced" and b["reason"] == "userunknown" and b["hard"] is True, b
        assert b["recipient"] == lost and b["from"] == "sender@example.org", b
        assert "v\ufffdrifier" in b["text"], b  # the stored byte, repaired for JSON
        clicks = [e for e in got.values() if e["status"] == "clicked"]
        assert len(clicks) == 1 and clicks[0]["text"] == "https://example.net/a?b=1", clicks
        assert clicks[0]["previous_status"] == "opened", clicks
        check_order(st["events"])
        wh = get_json(c, leader, "/v1/webhooks")
        assert wh["sending"] and wh["posts_failed"] >= 2 and wh["posts_ok"] >= 1, wh
        with urllib.request.urlopen(f"http://{c.http(leader)}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert 'ricochet_webhook_posts_total{result="failed"} 2' in metrics, metrics
        out = c.ctl(leader, "webhooks").stdout
        assert "yes (this node leads)" in out and ", 2 failed" in out, out
        out = c.ctl(follower, "webhooks").stdout
        assert "no (only the leader sends" in out, out
        log(f"{len(want)} events of {len(ids)} messages received, signed, in order; 2 failed POSTs retried ({wh})")

        # the receiver is down; new events; the leader dies
        rx.control(fail_all=True)
        before = len(st["events"])
        ids.append(send_message(smtp, ["late1@example.org", "late2@example.org"]))
        c.wait("a failed POST of the new events", lambda: rx.state()["failed"] > 2, timeout=30)
        c.kill(leader)
        survivors = [i for i in c.nodes if i != leader]
        new_leader = c.wait_leader(among=survivors, exclude=(leader,))
        rx.control(fail_all=False)
        want = histories(c, new_leader, ids)
        got = c.wait("every event after the failover",
                     lambda: (lambda g: g if set(want) <= set(g) else None)(received(rx)), timeout=60)
        st = rx.state()
        assert st["bad_signature"] == 0, st
        check_order(st["events"][before:])
        late = {k for k in want if k[0] == ids[-1]}
        assert late <= set(got), late - set(got)
        log(f"node {leader} killed while the receiver failed; node {new_leader} sent the "
            f"{len(late)} unacknowledged events ({len(st['events'])} events received in all, duplicates allowed)")

        # the acknowledgement is replicated: every node knows it
        c.start(leader)
        for node in c.nodes:
            def acked(node=node):
                for mid in ids:
                    m = c.ctl_json(node, "message", mid, check=False)  # None while catching up
                    if m is None or any(r["webhook_sent"] != len(r["history"]) for r in m["recipients"]):
                        return None
                return True
            c.wait(f"node {node} holds every acknowledgement", acked, timeout=60)
        log("every node holds webhook_sent == history length for every recipient")


def test_events_filter():
    sets = FAST + ["webhooks.events=bounced,rejected"]
    with Receiver(f"{NET}.201:8099") as rx, \
            Cluster("1", base=50, net=NET, sets=[s for s in sets if not s.startswith("webhooks.url")]
                    + [f"webhooks.url=http://{NET}.201:8099/hook"]) as c:
        c.wait_leader()
        smtp = c.nodes[1]["smtp"]
        c.ctl(1, "suppressions", "add", "blocked@example.org")
        mid = send_message(smtp, ["blocked@example.org", "fine@example.org"])

        def acked():
            rs = c.ctl_json(1, "message", mid)["recipients"]
            return all(r["webhook_sent"] == len(r["history"]) for r in rs) and rs
        c.wait("both recipients acknowledged", acked, timeout=30)
        events = rx.state()["events"]
        assert [(e["recipient"], e["status"]) for e in events] == [("blocked@example.org", "rejected")], events
        log("only the rejected event was sent; the queued ones were acknowledged without a POST")


def test_retention_waits_for_acknowledgements():
    """delivery.retention keeps a final message while its events are not
    acknowledged, up to webhooks.max_hold more; then it goes anyway and the
    recipient is counted as dropped."""
    url = f"{NET}.202:8099"
    sets = [x for x in FAST if not x.startswith("webhooks.url")] + [
        f"webhooks.url=http://{url}/hook", "delivery.retention=1s", "webhooks.max_hold=6s"]
    with Receiver(url) as rx, Cluster("1", base=70, net=NET, sets=sets) as c:
        c.wait_leader()
        smtp = c.nodes[1]["smtp"]
        c.ctl(1, "suppressions", "add", "held@example.org")
        rx.control(fail_all=True)
        held = send_message(smtp, ["held@example.org"])  # rejected: final at once
        time.sleep(7)  # past retention and at least one retention sweep (every 5 s)
        assert c.ctl_json(1, "message", held, check=False) is not None, "forgotten before its events were acknowledged"
        rx.control(fail_all=False)
        c.wait("the event at the receiver", lambda: [e for e in rx.state()["events"] if e["message_id"] == held],
               timeout=30)
        c.wait("the acknowledged message forgotten", lambda: c.ctl_json(1, "message", held, check=False) is None,
               timeout=30)
        log("a final message stayed past delivery.retention until its events were acknowledged, then went")

        rx.control(fail_all=True)
        dropped = send_message(smtp, ["held@example.org"])
        c.wait("the unacknowledged message forgotten after webhooks.max_hold",
               lambda: c.ctl_json(1, "message", dropped, check=False) is None, timeout=40)
        wh = get_json(c, 1, "/v1/webhooks")
        c.wait("the recipient counted as dropped",
               lambda: get_json(c, 1, "/v1/webhooks")["recipients_dropped"] >= 1, timeout=20)
        assert not [e for e in rx.state()["events"] if e["message_id"] == dropped]
        log(f"past webhooks.max_hold the message went anyway; counted as dropped ({wh['posts_failed']} failed POSTs)")


def test_refused_settings():
    import tempfile
    from clusterlib import BUILD
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "r.conf")
        with open(conf, "w") as f:
            f.write(f"[node]\nid = 1\ndata_dir = {d}/data\n[cluster]\nsecret = 0123456789abcdef0123\n"
                    f"[member.1]\naddress = {NET}.60\nsite = a\n")
        for extra, want in ((["webhooks.url=ftp://x/"], "webhooks.url"),
                            (["webhooks.url=http://127.0.0.1:1/"], "webhooks.secret"),
                            (["webhooks.url=http://127.0.0.1:1/", "webhooks.secret=x", "webhooks.events=bounced,nope"],
                             "webhooks.events")):
            args = [os.path.join(BUILD, "ricochetd"), "-c", conf]
            for s in extra:
                args += ["--set", s]
            r = subprocess.run(args, capture_output=True, text=True, timeout=30)
            assert r.returncode != 0 and want in r.stderr, (extra, r.returncode, r.stderr)
            # the last one fails after everything else started: all of it is
            # closed and freed again (a sanitizer build reports leaks here)
            assert not sanitizers.report_lines(r.stderr, "ricochetd"), r.stderr
        log("bad webhook settings refused at start, naming the key")


if __name__ == "__main__":
    main([test_every_event_at_least_once_across_failures_and_failover, test_events_filter,
          test_retention_waits_for_acknowledgements, test_refused_settings])
