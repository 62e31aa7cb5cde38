#!/usr/bin/python3
"""Unplanned drills at the network level: a 2+2+1 cluster of real ricochetd
processes, one network namespace per host (tests/lib/lab.py: sites a and b,
witness w, a client site), production ports (SMTP 25, DNS 53). A client in
its own namespace submits mail throughout the way an MTA does
(tests/drills/drill_client.py: MX from the cluster's name servers, next host
on failure).

1. Site a (the leader's) is cut off from everything (its bridge goes down):
   site b and the witness elect a leader; b's name servers answer with only
   site b as MX; mail keeps being accepted through site b.
2. Site a rejoins: its nodes follow the new leader and come back into the MX
   set at the fallback preference.
3. The link between sites a and b is cut while both still reach the witness:
   the leader keeps its majority with the witness; the other site's nodes
   lose leader contact and answer SERVFAIL after dns.lease; the leader drops
   them from the MX set; the partition heals and they come back.
4. The same cut in one direction only, each way in turn (packets from the
   other site to the leader's, then from the leader's to the other): TCP
   needs both directions, so each is a cut for the cluster as well; the
   leader stays, also through the heal.
At the end every message the client saw accepted (250) is held by a node of
each site, and a webhook receiver in the client's site (tests/lib/
webhook_receiver.py, every signature checked) holds every status change of
every one of them: the leaders before, during and after each cut sent each
event at least once, first copies in history order per recipient. Every
probe runs inside a namespace; nothing is timed, every change is polled for
with a deadline; the times it took are printed."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from clusterlib import BUILD, log, main  # noqa: E402
from lab import Lab  # noqa: E402
import dnsprobe  # noqa: E402
import sanitizers  # noqa: E402

RICOCHETD = os.path.join(BUILD, "ricochetd")
CTL = os.path.join(BUILD, "ricochetctl")
ZONE = "mx.drill.test"
RELAY = f"relay.{ZONE}"
HOSTS = {"a": ["a1", "a2"], "b": ["b1", "b2"], "w": ["w1"], "client": ["c1"]}
NODES = {1: "a1", 2: "a2", 3: "b1", 4: "b2", 5: "w1"}
WEBHOOK_PORT = 8099
WEBHOOK_SECRET = "drill-webhook-secret"


def site_of(node):
    return NODES[node][0]


def write_configs(lab, work):
    for nid, host in NODES.items():
        d = os.path.join(work, f"n{nid}")
        os.makedirs(os.path.join(d, "data"))
        lines = ["[node]", f"id = {nid}", f"data_dir = {d}/data", f"hostname = n{nid}.{ZONE}", "",
                 "[cluster]", "secret = drill-secret-0123456789abcdef", "",
                 "[raft]", "election_timeout = 300ms", "min_free_disk = 64M", "",
                 "[smtp]", "relay_networks = 10.77.0.0/16", "",
                 "[dns]", f"zone = {ZONE}", "lease = 1s", "rrl = false", "",
                 "[health]", "interval = 200ms", "fail_after = 2", "ok_after = 2", "probe_timeout = 500ms", "",
                 "[delivery]", "resolver = 127.0.0.1:9", "",
                 "[bounce]", f"domain = bounce.{ZONE}", "",
                 "[webhooks]", f"url = http://{lab.addr('c1')}:{WEBHOOK_PORT}/hook",
                 f"secret = {WEBHOOK_SECRET}", "timeout = 2s", "retry_max = 2s"]
        for mid, mh in NODES.items():
            lines += ["", f"[member.{mid}]", f"site = {mh[0]}", f"address = {lab.addr(mh)}"]
            if mh[0] == "w":
                lines.append("witness = true")
        with open(os.path.join(d, "ricochet.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")


class Drill:
    def __init__(self, lab, work):
        self.lab, self.work = lab, work
        self.procs = {}

    def start(self, nid):
        d = os.path.join(self.work, f"n{nid}")
        out = open(os.path.join(d, "ricochetd.log"), "a")
        self.procs[nid] = self.lab.popen(NODES[nid], [RICOCHETD, "-c", os.path.join(d, "ricochet.conf")],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def stop_all(self):
        """Stops every daemon (SIGTERM, then SIGKILL); returns the sanitizer
        report lines of their logs."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return sanitizers.in_files({f"node {nid}": os.path.join(self.work, f"n{nid}", "ricochetd.log")
                                    for nid in NODES})

    def ctl_json(self, nid, *args):
        """ricochetctl run from the client's namespace against node nid."""
        r = self.lab.run("c1", [CTL, "-s", f"{self.lab.addr(NODES[nid])}:8080", "--timeout", "5", "--json", *args],
                         capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError:
            return None

    def mx(self, nid):
        """(rcode, sorted [(pref, node)]) from node nid's name server, asked from the client."""
        r = self.lab.run("c1", dnsprobe.query_cmd(self.lab.addr(NODES[nid]), RELAY, "MX"),
                         capture_output=True, text=True, timeout=15)
        return dnsprobe.rcode(r.stdout), sorted((p, dnsprobe.node_of(h)) for p, h in dnsprobe.mx_records(r.stdout))

    def leader(self, among):
        seen = set()
        for nid in among:
            st = self.ctl_json(nid, "cluster")
            if st is None or not st.get("leader"):
                return None
            seen.add(st["leader"])
        return seen.pop() if len(seen) == 1 else None

    def log_tail(self):
        out = []
        for nid in NODES:
            p = os.path.join(self.work, f"n{nid}", "ricochetd.log")
            if os.path.exists(p):
                out.append(f"---- node {nid} ----\n" + "".join(open(p, errors="replace").readlines()[-25:]))
        return "\n".join(out)


def wait(what, predicate, timeout=60.0, interval=0.2):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        last = predicate()
        if last:
            return last, time.monotonic() - t0
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def want(pref_site, nodes):
    return sorted((10 if site_of(n) == pref_site else 20, n) for n in nodes)


# Run inside the client namespace: prints the ids (argv[2:]) node argv[1] does not hold.
MISSING = """
import json, sys, urllib.request
for m in sys.argv[2:]:
    try:
        with urllib.request.urlopen(f"http://{sys.argv[1]}:8080/v1/messages/{m}", timeout=10) as r:
            if json.load(r).get("id") == m:
                continue
    except OSError:
        pass
    print(m)
"""


def missing(lab, nid, ids):
    r = lab.run("c1", ["/usr/bin/python3", "-c", MISSING, lab.addr(NODES[nid]), *ids],
                capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


# Run inside the client namespace: compares the history of every message
# (argv[3:]) on node argv[1] with what the webhook receiver at argv[2] holds;
# prints {"events", "missing", "wrong", "order", "bad_signature", "posts",
# "received"} as JSON.
WEBHOOK_CHECK = """
import json, sys, urllib.request
def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)
want = {}
for m in sys.argv[3:]:
    for i, r in enumerate(get(f"http://{sys.argv[1]}:8080/v1/messages/{m}")["recipients"]):
        for k, h in enumerate(r["history"]):
            want[(m, i, k)] = h["status"]
st = get(f"http://{sys.argv[2]}/_state")
got, first, order = {}, {}, 0
for e in st["events"]:
    key = (e["message_id"], e["recipient_index"], e["sequence"])
    got[key] = e
    seen = first.setdefault(key[:2], [])
    if key[2] in seen:
        continue
    if seen and key[2] < seen[-1]:
        order += 1
    seen.append(key[2])
missing = [list(k) for k in want if k not in got]
wrong = [list(k) for k in want if k in got and (got[k]["status"] != want[k] or
                                                 got[k]["id"] != "%s.%d.%d" % k)]
print(json.dumps({"events": len(want), "missing": missing[:5], "n_missing": len(missing), "wrong": wrong[:5],
                  "order": order, "bad_signature": st["bad_signature"], "posts": st["posts"],
                  "received": len(st["events"])}))
"""


def webhook_check(lab, nid, receiver, ids):
    r = lab.run("c1", ["/usr/bin/python3", "-c", WEBHOOK_CHECK, lab.addr(NODES[nid]), receiver, *ids],
                capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def caught_up(d, nodes):
    """Every node applied the log up to the agreed leader's commit index."""
    leader = d.leader(nodes)
    st = d.ctl_json(leader, "cluster") if leader else None
    if st is None:
        return False
    return all((d.ctl_json(n, "cluster") or {}).get("applied_index", -1) >= st["commit_index"] for n in nodes)


def partition_step(d, lab, everyone, mail, one_way, leader=None):
    """Sites a and b cut apart while both reach the witness: both ways
    (one_way None) or only the packets from one_way[0] to one_way[1]. The
    leader keeps its majority with the witness and stays; the leader's site
    and the witness list only the leader's site; the other site's name
    servers answer SERVFAIL once they lose leader contact (both ways, or
    nothing reaches them from the leader), or, while the leader's packets
    still reach them, the same MX set as the leader's site; after the heal
    both sites are back in every answer. Returns the leader."""
    leader = leader or d.leader(everyone)
    lsite = site_of(leader)
    osite = "a" if lsite == "b" else "b"
    others = [n for n in mail if site_of(n) == osite]
    keep = [n for n in everyone if site_of(n) != osite]
    only = want(lsite, [m for m in mail if site_of(m) == lsite])
    what = "sites cut apart" if one_way is None else f"packets from site {one_way[0]} to site {one_way[1]} dropped"
    if one_way is None:
        lab.partition("a", "b")
    else:
        lab.partition(one_way[0], one_way[1], one_way=True)
    t_part = time.monotonic()
    if one_way is None or one_way[0] == lsite:
        wait(f"site {osite}'s name servers answer SERVFAIL (no leader contact)",
             lambda: all(d.mx(n)[0] == "SERVFAIL" for n in others))
        seen = f"site {osite} answers SERVFAIL after {time.monotonic() - t_part:.1f} s"
    else:
        def cut_off_answers_agree():
            got = {n: d.mx(n) for n in others}
            ok = all(a[0] == "SERVFAIL" or a == ("NOERROR", only) for a in got.values())
            return ok and sorted({a[0] for a in got.values()})
        rcodes, _ = wait(f"site {osite}'s name servers answer SERVFAIL or list only site {lsite}",
                         cut_off_answers_agree)
        seen = f"site {osite} answers {'/'.join(rcodes)} after {time.monotonic() - t_part:.1f} s"
    wait(f"the leader's site and the witness list only site {lsite}",
         lambda: all(d.mx(n) == ("NOERROR", only) for n in keep))
    assert d.leader(keep) == leader, "the leader changed although it kept its majority with the witness"
    log(f"{what}, witness reachable: leader {leader} stays; {seen}; only site {lsite} in MX")
    lab.heal()
    t_heal = time.monotonic()
    wait("both sites back in every MX answer",
         lambda: all(d.mx(n) == ("NOERROR", want(lsite, mail)) for n in everyone))
    after, _ = wait("every node follows one leader after the heal", lambda: d.leader(everyone))
    assert after == leader, f"the heal deposed the leader: node {after} leads"
    log(f"healed: both sites back in MX after {time.monotonic() - t_heal:.1f} s, leader {leader} still leads")
    return leader


def test_site_cut():
    work = tempfile.mkdtemp(prefix="ricochet-drill-", dir=os.environ.get("RICOCHET_TEST_TMP", "/tmp"))
    client = receiver = None
    with Lab("rcd", HOSTS) as lab:
        d = Drill(lab, work)
        try:
            write_configs(lab, work)
            hook = f"{lab.addr('c1')}:{WEBHOOK_PORT}"
            receiver = lab.popen("c1", ["/usr/bin/python3", os.path.join(HERE, "..", "lib", "webhook_receiver.py"),
                                        "--listen", hook, "--secret", WEBHOOK_SECRET],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
            line = receiver.stdout.readline()
            assert line.startswith("listening"), line
            for nid in NODES:
                d.start(nid)
            everyone = sorted(NODES)
            mail = [n for n in everyone if site_of(n) != "w"]
            leader, _ = wait("a leader agreed by every node", lambda: d.leader(everyone))
            if site_of(leader) != "a":
                r = lab.run("c1", [CTL, "-s", f"{lab.addr(NODES[leader])}:8080", "transfer", "--to", "1"],
                            capture_output=True, text=True, timeout=60)
                assert r.returncode == 0, r.stderr
                leader, _ = wait("node 1 leads", lambda: d.leader(everyone) == 1 and 1)
            wait("every node answers both sites, a preferred",
                 lambda: all(d.mx(n) == ("NOERROR", want("a", mail)) for n in everyone))
            log(f"cluster up in namespaces, leader {leader} (site a); MX {want('a', mail)}")

            stop = os.path.join(work, "client.stop")
            client_log = os.path.join(work, "client.jsonl")
            servers = [lab.addr(NODES[n]) for n in everyone]
            client = lab.popen("c1", ["/usr/bin/python3", os.path.join(HERE, "drill_client.py"), client_log, stop,
                                      RELAY, *servers], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
            wait("the client's first accepted messages",
                 lambda: os.path.exists(client_log) and sum(1 for _ in open(client_log)) >= 5)

            # 1. Site a cut off from everything.
            lab.isolate_site("a")
            t_cut = time.monotonic()
            survivors = [3, 4, 5]
            new_leader, _ = wait("site b and the witness elect a leader",
                                 lambda: (lambda l: l if l in (3, 4) else None)(d.leader(survivors)))
            t_leader = time.monotonic() - t_cut
            _, _ = wait("site b's name servers list only site b, preferred",
                        lambda: all(d.mx(n) == ("NOERROR", want("b", [3, 4])) for n in survivors))
            t_mx = time.monotonic() - t_cut
            log(f"site a cut off: node {new_leader} leads after {t_leader:.1f} s; "
                f"only site b in MX after {t_mx:.1f} s")
            n_before = sum(1 for _ in open(client_log))
            wait("mail accepted through site b while a is cut off",
                 lambda: any(json.loads(x)["host"] in (lab.addr("b1"), lab.addr("b2"))
                             for x in open(client_log).readlines()[n_before:]))

            # 2. Site a rejoins.
            lab.rejoin_site("a")
            t_rejoin = time.monotonic()
            wait("every node follows the new leader", lambda: d.leader(everyone) in (3, 4))
            wait("site a back in every MX answer at the fallback preference",
                 lambda: all(d.mx(n) == ("NOERROR", want("b", mail)) for n in everyone))
            log(f"site a rejoined: back in MX at preference 20 after {time.monotonic() - t_rejoin:.1f} s")

            # 3. a <-> b cut, both still reach the witness.
            leader = partition_step(d, lab, everyone, mail, None)
            # 4. One direction only, each way: TCP needs both, so each is a
            # cut for the cluster too; the leader stays through it and
            # through the heal, and no name server lists the cut-off site.
            lsite = site_of(leader)
            osite = "a" if lsite == "b" else "b"
            partition_step(d, lab, everyone, mail, (osite, lsite), leader)
            partition_step(d, lab, everyone, mail, (lsite, osite), leader)

            # No accepted message lost.
            open(stop, "w").close()
            client.wait(timeout=60)
            lines = [json.loads(x) for x in open(client_log)]
            accepted = [x["id"] for x in lines if x["id"]]
            unsent = [x["i"] for x in lines if not x["id"]]
            moved = sum(1 for x in lines if x["id"] and x["tries"] > 1)
            log(f"client: {len(lines)} messages, {len(accepted)} accepted ({moved} after trying another MX), "
                f"{len(unsent)} found no host")
            assert len(accepted) >= 10
            wait("every node at the leader's commit index", lambda: caught_up(d, everyone))
            for nid in (1, 3):
                lost = missing(lab, nid, accepted)
                assert not lost, f"node {nid} lacks {len(lost)} accepted messages: {lost[:5]}"
            log(f"nodes 1 (site a) and 3 (site b) hold all {len(accepted)} accepted messages")

            # Every status change of every accepted message at the receiver.
            leader = d.leader(everyone)
            got, took = wait("every event of the accepted messages at the webhook receiver",
                             lambda: (lambda c: c if c["n_missing"] == 0 else None)(
                                 webhook_check(lab, leader, hook, accepted)), timeout=120, interval=1.0)
            assert not got["wrong"] and got["order"] == 0 and got["bad_signature"] == 0, got
            log(f"webhooks: all {got['events']} events of the {len(accepted)} accepted messages at the receiver "
                f"({got['received']} received in {got['posts']} POSTs, duplicates included; "
                f"all there {took:.1f} s after the last heal)")
        except BaseException:
            print(d.log_tail(), file=sys.stderr)
            raise
        finally:
            for p in (client, receiver):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
            reports = d.stop_all()
    assert not reports, "sanitizer reports in the daemons' logs (kept in %s):\n%s" % (work, "\n".join(reports))
    if not os.environ.get("RICOCHET_KEEP"):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main([test_site_cut])
