#!/usr/bin/python3
"""Bounce and complaint intake (issue 6) on a real 3-node cluster, with swaks
as the reporting MTA, on 127.0.5.x:

* a message is accepted (swaks) for two recipients;
* a real-format Postfix DSN (from the labelled corpus: lhost-postfix-31,
  Gmail's 550 5.1.1 "account ... does not exist", its recipient replaced)
  is sent to the VERP address of recipient 0 -> recipient 0 becomes
  `bounced` (hard, userunknown, 550, 5.1.1), the address is suppressed, and
  a new message to it is `rejected` at once;
* a delivery report (Action: delivered) to recipient 1's VERP address makes
  it `delivered`; an ARF report (RFC 5965) about that message sent to the
  feedback address -> `complained` and suppressed;
* a forged VERP token (one character changed) changes nothing and is
  counted as `forged` in GET /v1/bounces; a token for a message that does
  not exist is `unmapped`; an auto-reply to a VERP address is `ignored`;
* a report that reaches a follower whose copy of the log does not hold the
  message yet (it was stopped while the message was accepted; the leader
  and the other follower are stopped when the report arrives, so nothing
  can bring the log meanwhile) is not recorded as `unmapped`: the follower
  catches up with the leader first, and once the others run again the
  report is mapped, answered 250 and the recipient is `bounced`;
* at a node that knows no leader, a report naming a message it does not
  hold is answered 451 (the reporting MTA retries) and nothing is recorded.
The VERP tokens are made here from docs/EGRESS.md (an independent encoder),
with the key the nodes derive: "verp:" + cluster.secret."""
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import time
import urllib.request

from clusterlib import Cluster, log, main

NET = "127.0.5"
FEEDBACK = "fbl@feedback.ricochet.test"
# A long election timeout: in step 4 a follower must keep following a leader
# that is stopped for a moment (nobody campaigns meanwhile).
FAST = ["raft.election_timeout=3s", "smtp.accept_timeout=10s", "dns.lease=1s",
        f"bounce.feedback_address={FEEDBACK}"]
QUEUED = re.compile(r"250 2\.0\.0 Ok: queued as ([0-9A-Z]+)")
RECORDED = re.compile(r"250 2\.0\.0 Ok: report recorded as ([0-9A-Z]+)")
BOUNCE_DOMAIN = "bounce.ricochet.test"


def verp(secret, msg_id, index):
    """b+TOKEN@bounce.domain as docs/EGRESS.md defines it."""
    body = bytes([1])
    i = index
    while True:  # LEB128
        b = i & 0x7F
        i >>= 7
        body += bytes([b | (0x80 if i else 0)])
        if not i:
            break
    body += msg_id.encode()
    mac = hmac.new(secret, b"ricochet-verp" + body, hashlib.sha256).digest()[:10]
    token = base64.b32encode(body + mac).decode().rstrip("=").lower()
    return f"b+{token}@{BOUNCE_DOMAIN}"


def forge(addr):
    """The same address with one token character changed (a valid base32
    character, so only the MAC check can refuse it)."""
    local, domain = addr.split("@")
    i = len("b+") + 5
    c = "b" if local[i] != "b" else "c"
    return f"{local[:i]}{c}{local[i + 1:]}@{domain}"


def swaks(server, *args, data=None):
    cmd = ["swaks", "--server", server, "--timeout", "30", *args]
    if data is not None:
        cmd += ["--data", "-"]
    r = subprocess.run(cmd, input=data, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def send_message(smtp, rcpts):
    rc, out = swaks(smtp, "--from", "sender@example.org", "--to", ",".join(rcpts), "--body", "hello")
    m = QUEUED.search(out)
    assert rc == 0 and m, out
    return m.group(1)


def send_report(smtp, to, text):
    rc, out = swaks(smtp, "--from", "<>", "--to", to, data=text)
    m = RECORDED.search(out)
    assert rc == 0 and m, out
    return m.group(1)


def postfix_dsn(rcpt):
    """lhost-postfix-31 of the corpus (sisimai/set-of-emails, BSD 2-Clause),
    its recipient replaced by ours."""
    return f"""Return-Path: <>
Received: by nyaaan.example.com (Postfix)
\tid FFFFFFFF2; Thu,  9 Oct 2017 23:34:45 +0900 (JST)
Date: Thu,  9 Oct 2017 23:34:45 +0900 (JST)
From: MAILER-DAEMON@nyaaan.example.com (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: sender@example.org
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="00222200.2222222222/nyaaan.example.com"
Message-Id: <20170429233445.EEEEEEEE2@nyaaan.example.com>

This is a MIME-encapsulated message.

--00222200.2222222222/nyaaan.example.com
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host nyaaan.example.com.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<{rcpt}>: host gmail-smtp-in.l.google.com[192.0.2.2]
    said: 550-5.1.1 The email account that you tried to reach does not exist.
    Please try 550-5.1.1 double-checking the recipient's email address for
    typos or 550-5.1.1 unnecessary spaces. Learn more at 550 5.1.1
    https://support.google.com/mail/?p=NoSuchUser 00000000000000.000 - gsmtp
    (in reply to RCPT TO command)

--00222200.2222222222/nyaaan.example.com
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; nyaaan.example.com
X-Postfix-Queue-ID: 2222EE22
X-Postfix-Sender: rfc822; sender@example.org
Arrival-Date: Thu, 29 Apr 2017 23:34:45 +0900 (JST)

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: failed
Status: 5.1.1
Remote-MTA: dns; gmail-smtp-in.l.google.com
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does
    not exist. Please try 550-5.1.1 double-checking the recipient's email
    address for typos or 550-5.1.1 unnecessary spaces. Learn more at 550 5.1.1
    https://support.google.com/mail/?p=NoSuchUser 00000000000000.000 - gsmtp

--00222200.2222222222/nyaaan.example.com
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <sender@example.org>
From: sender@example.org
To: {rcpt}
Subject: hello

--00222200.2222222222/nyaaan.example.com--
"""


def delivery_report(rcpt):
    return f"""From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: sender@example.org
Subject: Successful Mail Delivery Report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="dr"

--dr
Content-Type: text/plain

Your message was successfully delivered to the destination(s) listed below.

<{rcpt}>: delivery via mx.example.net[192.0.2.9]:25: 250 2.0.0 Ok: queued

--dr
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {rcpt}
Action: delivered
Status: 2.0.0
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 250 2.0.0 Ok: queued

--dr--
"""


def arf(return_path, rcpt):
    return f"""From: staff@fbl.example.com
To: {FEEDBACK}
Subject: FW: hello
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="arf"

--arf
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.1.

--arf
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeFBL/1.0
Version: 1
Original-Mail-From: <{return_path}>
Original-Rcpt-To: <{rcpt}>
Source-IP: 192.0.2.1

--arf
Content-Type: text/rfc822-headers

Return-Path: <{return_path}>
From: sender@example.org
To: {rcpt}
Subject: hello

--arf--
"""


def autoreply():
    return """From: Jane <jane@example.com>
To: sender@example.org
Subject: Automatic reply: hello
Auto-Submitted: auto-replied

I am out of the office until Monday.
"""


def rcpt_state(c, node, msg_id, i):
    m = c.ctl_json(node, "message", msg_id)
    return m["recipients"][i]


def suppressed(c, node):
    r = c.ctl_json(node, "suppressions", "list")
    return {s["address"]: s for s in r["suppressions"]}


def bounces(c, node):
    with urllib.request.urlopen(f"http://{c.http(node)}/v1/bounces", timeout=10) as r:
        return json.load(r)


def test_intake_on_three_nodes():
    with Cluster("3", base=20, net=NET, sets=FAST) as c:
        leader = c.wait_leader()
        follower = [i for i in c.nodes if i != leader][0]
        secret = b"verp:" + open(f"{c.dir}/secret").read().strip().encode()
        smtp = c.nodes[follower]["smtp"]
        lost, kept = "lost.user@example.com", "kept.user@example.net"
        msg = send_message(smtp, [lost, kept])
        c.wait_converged()
        log(f"message {msg} accepted for {lost}, {kept}")

        # 1. a Postfix DSN to recipient 0's VERP address
        send_report(smtp, verp(secret, msg, 0), postfix_dsn(lost))
        c.wait("recipient 0 bounced", lambda: rcpt_state(c, leader, msg, 0)["status"] == "bounced")
        r0 = rcpt_state(c, leader, msg, 0)
        last = r0["history"][-1]
        assert last["reason"] == "userunknown" and last["hard"] is True, r0
        assert last.get("code") == 550 and last.get("enhanced") == "5.1.1", r0
        for node in c.nodes:  # every node applied the same
            c.wait(f"node {node} sees the bounce and the suppression",
                   lambda node=node: rcpt_state(c, node, msg, 0)["status"] == "bounced" and lost in suppressed(c, node))
        log(f"{lost}: bounced (hard, userunknown) and suppressed on every node")

        again = send_message(smtp, [lost])
        c.wait("resend rejected", lambda: rcpt_state(c, leader, again, 0)["status"] == "rejected")
        log(f"resend {again} to {lost}: rejected")

        # 2. delivered (a success DSN), then an ARF complaint at the feedback address
        send_report(smtp, verp(secret, msg, 1), delivery_report(kept))
        c.wait("recipient 1 delivered", lambda: rcpt_state(c, leader, msg, 1)["status"] == "delivered")
        send_report(smtp, FEEDBACK, arf(verp(secret, msg, 1), kept))
        c.wait("recipient 1 complained", lambda: rcpt_state(c, leader, msg, 1)["status"] == "complained")
        c.wait("complainer suppressed", lambda: kept in suppressed(c, leader))
        log(f"{kept}: delivered, then complained and suppressed")

        # 3. forged and unmapped reports change nothing
        other = send_message(smtp, ["third.user@example.org"])
        c.wait_converged()
        before = bounces(c, leader)["counts"]
        send_report(smtp, forge(verp(secret, other, 0)), postfix_dsn("third.user@example.org"))
        send_report(smtp, verp(secret, "NOSUCHMESSAGE1", 0), postfix_dsn("someone@example.org"))
        send_report(smtp, verp(secret, other, 0), autoreply())
        c.wait("notes counted", lambda: bounces(c, leader)["counts"]["forged"] == before["forged"] + 1
               and bounces(c, leader)["counts"]["unmapped"] == before["unmapped"] + 1
               and bounces(c, leader)["counts"]["ignored"] == before["ignored"] + 1)
        st = rcpt_state(c, leader, other, 0)
        assert st["status"] == "queued" and len(st["history"]) == 1, st
        assert "third.user@example.org" not in suppressed(c, leader)
        c.wait("the notes on a follower too", lambda: {"forged", "unmapped", "ignored"}
               <= {n["kind"] for n in bounces(c, follower)["notes"]})
        log(f"forged, unmapped and auto-reply changed nothing; counts {bounces(c, follower)['counts']}")

        # 4. a report at a node that has not applied the message yet
        lagging = follower
        others = [i for i in c.nodes if i != lagging]
        stopped = []
        try:
            os.kill(c.pid(lagging), signal.SIGSTOP)
            stopped.append(lagging)
            late = send_message(c.nodes[leader]["smtp"], ["late.user@example.com"])
            c.wait("the others hold the message", lambda: all(
                c.ctl_json(i, "message", late, check=False) for i in others))
            for i in others:
                os.kill(c.pid(i), signal.SIGSTOP)
                stopped.append(i)
            os.kill(c.pid(lagging), signal.SIGCONT)
            stopped.remove(lagging)
            cmd = ["swaks", "--server", c.nodes[lagging]["smtp"], "--timeout", "30", "--from", "<>",
                   "--to", verp(secret, late, 0), "--data", "-"]
            report = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
            report.stdin.write(postfix_dsn("late.user@example.com"))
            report.stdin.close()
            report.stdin = None  # written and closed: communicate() only reads
            c.wait("the lagging node waits for the log",
                   lambda: "names a message not applied here yet" in open(c.log_path(lagging)).read())
            time.sleep(0.5)  # the wait holds while nobody can bring the log
            assert report.poll() is None, report.stdout.read()
            for i in list(stopped):
                os.kill(c.pid(i), signal.SIGCONT)
                stopped.remove(i)
            out = report.communicate(timeout=60)[0]
            assert RECORDED.search(out), out
        finally:
            for i in stopped:
                os.kill(c.pid(i), signal.SIGCONT)
        c.wait("late bounce mapped on every node", lambda: all(
            ((c.ctl_json(i, "message", late, check=False) or {}).get("recipients") or [{}])[0].get("status")
            == "bounced" for i in c.nodes))
        log("a report that arrived before its message was applied on the receiving node was mapped, not unmapped")

        # 5. a report naming a message the node does not hold, at a node that knows no leader:
        #    451 at once (the reporting MTA retries), nothing recorded
        notes_before = bounces(c, lagging)["counts"]
        stopped = []
        try:
            for i in others:
                os.kill(c.pid(i), signal.SIGSTOP)
                stopped.append(i)
            c.wait("the follower knows no leader", lambda: (c.status(lagging) or {}).get("leader", 0) is None,
                   timeout=30)
            rc, out = swaks(c.nodes[lagging]["smtp"], "--from", "<>", "--to", verp(secret, "NOSUCHMESSAGE2", 0),
                            data=postfix_dsn("nobody@example.com"))
            assert "451 4.3.0" in out and not RECORDED.search(out), out
        finally:
            for i in stopped:
                os.kill(c.pid(i), signal.SIGCONT)
        c.wait_leader()
        c.wait_converged()
        assert bounces(c, lagging)["counts"] == notes_before, bounces(c, lagging)["counts"]
        log("a report at a node without a leader: 451, nothing recorded")


if __name__ == "__main__":
    main([test_intake_on_three_nodes])
