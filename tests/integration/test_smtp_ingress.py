#!/usr/bin/python3
"""SMTP ingress on real processes: swaks and Postfix's smtp-source against a
3-node cluster, every 250 ID visible on every node; the open-relay suite with
swaks; a node cut off from the others accepts nothing; and a fault test:
kill -9 a follower, then the leader, during a load of real SMTP sessions —
every ID that got 250 is on the survivors and clients saw only 4xx."""
import os
import re
import smtplib
import subprocess
import threading
import time

from clusterlib import Cluster, log, main

FAST = ["raft.election_timeout=300ms", "smtp.accept_timeout=5s", "dns.lease=1s"]
QUEUED = re.compile(r"250 2\.0\.0 Ok: queued as ([0-9A-Z]+)")
# Mail to the bounce domain is taken by bounce intake: accepted, recorded as a report.
ACCEPTED = re.compile(r"250 2\.0\.0 Ok: (?:queued|report recorded) as ([0-9A-Z]+)")


def swaks(server, *args):
    r = subprocess.run(["swaks", "--server", server, "--timeout", "30", *args],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def message_everywhere(c, msg_id, nodes):
    for i in nodes:
        m = c.ctl_json(i, "message", msg_id, check=False)
        if m is None or m["id"] != msg_id:
            return False
    return True


def test_real_clients_on_three_nodes():
    with Cluster("3", base=100, sets=FAST) as c:
        leader = c.wait_leader()
        follower = [i for i in c.nodes if i != leader][0]
        ids = []
        for node, extra in ((follower, []), (leader, ["--pipeline"]), (follower, ["--pipeline"])):
            rc, out = swaks(c.nodes[node]["smtp"], "--from", "sender@example.org",
                            "--to", "one@example.com,two@example.net", "--body", "hello from swaks", *extra)
            m = QUEUED.search(out)
            assert rc == 0 and m, out
            ids.append(m.group(1))
        log(f"swaks got 250 for {ids}")
        # Postfix's smtp-source: 20 sessions, 2 KiB messages, at a follower
        c.wait_converged()
        before = c.status(follower)["messages"]
        r = subprocess.run(["smtp-source", "-s", "20", "-l", "2048", "-m", "400", "-f", "load@example.org",
                            "-t", "sink@example.com", c.nodes[follower]["smtp"]],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        c.wait_converged()
        for i in c.nodes:
            st = c.status(i)
            assert st["messages"] == before + 400, (i, st["messages"], before)
        for msg_id in ids:
            assert message_everywhere(c, msg_id, c.nodes), msg_id
            m = c.ctl_json(leader, "message", msg_id)
            assert [r["address"] for r in m["recipients"]] == ["one@example.com", "two@example.net"]
            assert all(r["status"] == "queued" for r in m["recipients"]), m
        log("every 250 ID is visible on every node; smtp-source's 400 messages are on every node")


def test_starttls_and_auth_with_swaks():
    """STARTTLS (a throwaway certificate made here) and AUTH PLAIN/LOGIN over
    STARTTLS on the submission port of a 3-node cluster."""
    import tempfile
    tls = tempfile.mkdtemp(prefix="ricochet-tls-")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{tls}/key.pem",
                        "-out", f"{tls}/cert.pem", "-days", "2", "-subj", "/CN=ricochet.test"],
                       check=True, capture_output=True)
        from clusterlib import CTL
        line = subprocess.run([CTL, "passwd", "alice"], input="s3cret pass\n", capture_output=True, text=True, check=True).stdout
        with open(f"{tls}/users", "w") as f:
            f.write(line)
        sets = FAST + [f"smtp.tls_cert={tls}/cert.pem", f"smtp.tls_key={tls}/key.pem", f"smtp.users_file={tls}/users",
                       "smtp.relay_networks=10.99.0.0/16"]
        with Cluster("3", base=140, sets=sets) as c:
            leader = c.wait_leader()
            node = [i for i in c.nodes if i != leader][0]
            host = c.nodes[node]["smtp"].split(":")[0]
            sub = f"{host}:2587"
            rc, out = swaks(c.nodes[node]["smtp"], "--tls", "--from", "a@example.org", "--to", "b+x@bounce.ricochet.test")
            assert "TLS started" in out and ACCEPTED.search(out), out
            for mech in ("PLAIN", "LOGIN"):
                rc, out = swaks(sub, "--tls", "--auth", mech, "--auth-user", "alice", "--auth-password", "s3cret pass",
                                "--from", "alice@example.org", "--to", "friend@example.com", "--pipeline")
                m = QUEUED.search(out)
                assert rc == 0 and m and "235 2.7.0" in out, out
                msg = c.ctl_json(leader, "message", m.group(1))
                assert msg["recipients"][0]["address"] == "friend@example.com"
            rc, out = swaks(sub, "--tls", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wrong",
                            "--from", "alice@example.org", "--to", "friend@example.com")
            assert "535 5.7.8" in out and not QUEUED.search(out), out
            rc, out = swaks(sub, "--from", "alice@example.org", "--to", "friend@example.com")
            assert "530 5.7.0" in out, out
            log("STARTTLS, AUTH PLAIN and LOGIN over STARTTLS work; bad passwords and plain-text relaying refused")
    finally:
        subprocess.run(["rm", "-rf", tls])


def read_spool(path):
    """Every body in a node's spool (segment format of node/rc_spool.c:
    "RSB1", id length u16 LE, reserved u16, body length u64 LE, id, body);
    the newest copy of an id wins."""
    import struct
    out = {}
    for name in sorted(n for n in os.listdir(path) if n.startswith("seg-")):
        data = open(os.path.join(path, name), "rb").read()
        off = 0
        while off + 16 <= len(data) and data[off:off + 4] == b"RSB1":
            idlen, _, blen = struct.unpack_from("<HHQ", data, off + 4)
            rid = data[off + 16:off + 16 + idlen].decode()
            out[rid] = data[off + 16 + idlen:off + 16 + idlen + blen]
            off += 16 + idlen + blen
    return out


def test_restored_node_fetches_bodies():
    """A node that was down while mail arrived and catches up by snapshot
    (bodies are not in snapshots) fetches every body from its peers, verified
    by digest, so it could deliver every queued message."""
    sets = FAST + ["raft.snapshot_threshold=32", "raft.snapshot_trailing=8"]
    with Cluster("3", base=150, sets=sets) as c:
        leader = c.wait_leader()
        lagging = [i for i in c.nodes if i != leader][0]
        c.kill(lagging)
        ids = []
        for k in range(150):
            with smtplib.SMTP(*c.nodes[leader]["smtp"].split(":"), timeout=30) as s:
                s.ehlo("t")
                s.mail("a@example.org")
                s.rcpt(f"r{k}@example.com")
                code, resp = s.data(f"Subject: {k}\r\n\r\nbody {k}\r\n".encode())
                ids.append(QUEUED.search(f"{code} {resp.decode()}").group(1))
        c.start(lagging)
        c.wait_converged(timeout=60)
        with open(c.log_path(lagging)) as f:
            assert "event=snapshot_restored" in f.read(), "the lagging node did not restore a snapshot"

        def all_bodies():
            return all(c.ctl_json(lagging, "message", i)["body_present"] for i in ids)
        c.wait("the restored node to hold every body", all_bodies, timeout=60, interval=0.5)
        spool = os.path.join(c.dir, f"n{lagging}", "data", "spool")
        import hashlib
        bodies = read_spool(spool)
        for i in ids:
            m = c.ctl_json(lagging, "message", i)
            assert hashlib.sha256(bodies[i]).hexdigest() == m["sha256"]
        log(f"node {lagging} restored from a snapshot and fetched all {len(ids)} bodies from its peers")


def test_connection_limits_and_timeouts():
    import socket
    sets = FAST + ["smtp.max_connections_per_ip=3", "smtp.command_timeout=1s", "smtp.max_errors=2"]
    with Cluster("1", base=160, sets=sets) as c:
        c.wait_leader()
        host, port = c.nodes[1]["smtp"].split(":")
        socks = [socket.create_connection((host, int(port)), timeout=10) for _ in range(4)]
        greetings = [s.recv(200).decode() for s in socks]
        assert sum(g.startswith("220 ") for g in greetings) == 3, greetings
        assert any(g.startswith("421 4.7.0") for g in greetings), greetings
        # an idle client is told so and dropped after the command timeout
        data = socks[0].recv(200).decode()
        assert data.startswith("421 4.4.2"), data
        for s in socks:
            s.close()
        # smtp.max_errors=2 (default 10): the second bad command ends the session
        with socket.create_connection((host, int(port)), timeout=10) as s:
            f = s.makefile("rb")
            assert f.readline().startswith(b"220 ")
            s.sendall(b"BOGUS\r\n")
            assert f.readline().startswith(b"502 ")
            s.sendall(b"BOGUS\r\n")
            lines = [f.readline() for _ in range(2)]
            assert any(l.startswith(b"421 4.7.0") for l in lines), lines
            assert f.readline() == b"", "session still open after max_errors"
        log("per-client connection limit answered 421 4.7.0; idle session closed with 421 4.4.2; "
            "smtp.max_errors=2 closed a session at its second bad command")


def test_open_relay_suite():
    with Cluster("1", base=110, sets=FAST + ["smtp.relay_networks=10.99.0.0/16"]) as c:
        c.wait_leader()
        smtp = c.nodes[1]["smtp"]
        tricks = ["user@example.com", "user%example.com@bounce.ricochet.test", "example.com!user@bounce.ricochet.test",
                  "@bounce.ricochet.test:user@example.com", '"user@example.com"@bounce.ricochet.test',
                  "user@example.com@bounce.ricochet.test", "user@bounce.ricochet.test.", "user@[127.0.0.1]"]
        for t in tricks:
            rc, out = swaks(smtp, "--from", "a@example.org", "--to", t, "--quit-after", "RCPT")
            assert re.search(r"<\*\* +5\d\d ", out), f"{t} not refused:\n{out}"
        rc, out = swaks(smtp, "--from", "a@example.org", "--to", "b+x@bounce.ricochet.test")
        assert ACCEPTED.search(out), out
        log("relay attempts refused with 5xx; mail to the bounce domain accepted")


def test_cut_off_node_accepts_nothing():
    with Cluster("3", base=120, sets=FAST) as c:
        leader = c.wait_leader()
        victim = [i for i in c.nodes if i != leader][0]
        # isolate the victim: stop the other two nodes (SIGSTOP keeps their sockets)
        others = [i for i in c.nodes if i != victim]
        for i in others:
            os.kill(c.pid(i), 19)
        try:
            time.sleep(2.5)  # longer than the 1 s lease
            rc, out = swaks(c.nodes[victim]["smtp"], "--from", "a@example.org", "--to", "b@example.com")
            assert "421 4.3.2" in out, out
            assert not ACCEPTED.search(out)
            log("a node without a leader greets with 421 4.3.2")
        finally:
            for i in others:
                os.kill(c.pid(i), 18)


def test_fault_kill_follower_then_leader_during_load():
    with Cluster("3", base=130, sets=FAST) as c:
        leader = c.wait_leader()
        follower = [i for i in c.nodes if i != leader][0]
        entry = [i for i in c.nodes if i not in (leader, follower)][0]
        stop = threading.Event()
        accepted, temp, perm = [], [], []
        lock = threading.Lock()

        def client(k):
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    with smtplib.SMTP(*c.nodes[entry]["smtp"].split(":"), timeout=30) as s:
                        s.ehlo("load")
                        s.mail(f"c{k}@example.org")
                        s.rcpt(f"r{k}-{n}@example.com")
                        code, resp = s.data(b"Subject: load\r\n\r\n" + (b"x" * 62 + b"\r\n") * 32)
                        m = QUEUED.search(f"{code} {resp.decode()}")
                        with lock:
                            if code == 250 and m:
                                accepted.append(m.group(1))
                            elif 400 <= code < 500:
                                temp.append(code)
                            else:
                                perm.append((code, resp))
                except smtplib.SMTPResponseException as e:
                    with lock:
                        (temp if 400 <= e.smtp_code < 500 else perm).append(e.smtp_code)
                    time.sleep(0.05)
                except (OSError, smtplib.SMTPException):
                    with lock:
                        temp.append("connection")
                    time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        time.sleep(2)
        c.kill(follower)
        time.sleep(2)
        c.kill(leader)
        time.sleep(4)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        log(f"clients: {len(accepted)} accepted, {len(temp)} temporary failures, {len(perm)} permanent")
        assert not perm, perm[:5]
        assert accepted
        # the two killed nodes come back; every accepted ID must be on the survivors
        c.start(follower)
        c.start(leader)
        c.wait_leader(timeout=60)
        c.wait_converged(timeout=90)
        missing = [i for i in accepted if c.ctl_json(entry, "message", i, check=False) is None]
        assert not missing, f"{len(missing)} messages that got 250 are missing: {missing[:5]}"
        for node in c.nodes:
            st = c.status(node)
            assert st["messages"] >= len(accepted)
        log(f"all {len(accepted)} IDs that got 250 survived the loss of a follower and the leader")


if __name__ == "__main__":
    main([
        test_real_clients_on_three_nodes,
        test_starttls_and_auth_with_swaks,
        test_restored_node_fetches_bodies,
        test_connection_limits_and_timeouts,
        test_open_relay_suite,
        test_cut_off_node_accepts_nothing,
        test_fault_kill_follower_then_leader_during_load,
    ])
