#!/usr/bin/python3
"""ansible.site: ansible/site.yml deploys a verified 2+2+1 cluster into five
network-namespace boxes (tests/lib/lab.py), and a second run changes nothing.

Each box has private /etc, /var, /opt, /usr/local and /run (overlays, so the
machine's files are untouched) and its own network stack, so the playbook uses
the production paths and ports (SMTP 25, DNS 53). Ansible reaches a box with
the local connection and a python interpreter wrapped in nsenter. After the
two runs, from inside the boxes: every node names the same leader, the relay
MX lists the mail nodes, and an SMTP submission gets 250; the role's
logrotate file rotates a node's log, which its daemon (SIGHUP'd, as rotation
scripts do) keeps writing. A third run with a
changed configuration, rolled out one node at a time, must restart every
daemon, each waiting until it has rejoined the cluster, and verify again. A node
whose daemon cannot start (port 25 taken) fails its start at once with the
end of the daemon's log; the next run starts it. Everything started
is stopped by PID and every namespace removed, also on failure or SIGTERM.

Environment: RICOCHET_BUILD (binaries), RICOCHET_SRC (tree). Root needed.
ANSIBLE_LINT=0 skips ansible-lint; KEEP_TMP=1 keeps the temp dir (inventory,
playbook logs first.log and second.log).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("RICOCHET_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("RICOCHET_BUILD") or os.path.join(SRC, "build")
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from lab import Lab, term_raises  # noqa: E402
import sanitizers  # noqa: E402

ZONE = "mx.ricochet.test"
LAYOUT = {"a": ["a1", "a2"], "b": ["b1", "b2"], "w": ["w1"]}
# b3 is a box from the start but joins the inventory (as node 6, with
# ricochet_join) only in the last run.
JOINER = ("b", "b3", 6)
BOXES = {s: hs + ([JOINER[1]] if s == JOINER[0] else []) for s, hs in LAYOUT.items()}
GROUPS = {"a": "site_a", "b": "site_b", "w": "witness"}


def log(msg):
    print("[site_test %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def fail(msg):
    raise AssertionError(msg)


def eventually(check, *args, timeout=60.0):
    """check(*args) until it stops failing: right after a restart the nodes
    still elect a leader and the new leader re-decides health, so the MX set
    and the agreed leader settle within seconds, not at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check(*args)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def write_inventory(lab, path, joiner=False):
    lines = []
    node_id = 0
    for site, hosts in LAYOUT.items():
        lines.append("[%s]" % GROUPS[site])
        entries = []
        for h in hosts:
            node_id += 1
            entries.append((h, node_id, ""))
        if joiner and site == JOINER[0]:
            entries.append((JOINER[1], JOINER[2], " ricochet_join=true"))
        for h, nid, extra in entries:
            interp = ("/usr/bin/nsenter --target %d --mount --net --uts --ipc -- /usr/bin/python3"
                      % lab.box_pid(h))
            lines.append('%s ricochet_node_id=%d ricochet_address=%s%s ansible_python_interpreter="%s"'
                         % (h, nid, lab.addr(h), extra, interp))
        lines.append("")
    lines += [
        "[all:vars]",
        "ansible_connection=local",
        "ansible_pipelining=true",
        "ricochet_bin_dir=%s" % BUILD,
        "ricochet_cluster_secret=%s" % os.urandom(18).hex(),
        "ricochet_zone=%s" % ZONE,
        "ricochet_relay_networks=10.77.0.0/16",
        "ricochet_require_marker=/etc/ricochet-box",
        "ricochet_verify_delay=1",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    # The election timeout stays at its production default; only the free
    # disk floor is lowered (boxes share the machine's disk with other tests).
    with open(os.path.join(os.path.dirname(path), "extra.json"), "w") as f:
        json.dump({"ricochet_extra_config": {"raft": {"min_free_disk": "64M"}}}, f)


def ansible_env(tmp):
    env = dict(os.environ)
    home = os.path.join(tmp, "home")
    os.makedirs(home, exist_ok=True)
    env.update({
        "HOME": home,
        "ANSIBLE_HOME": os.path.join(home, ".ansible"),
        "ANSIBLE_LOCAL_TEMP": os.path.join(tmp, "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": os.path.join(tmp, "ansible-remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_FORKS": "5",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        # e.g. ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks to see task times
        "ANSIBLE_CALLBACKS_ENABLED": os.environ.get("ANSIBLE_CALLBACKS_ENABLED", ""),
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    })
    env.pop("ANSIBLE_CONFIG", None)
    return env


def run_playbook(inventory, env, label, extra=(), expect_fail=False, hosts=None):
    t0 = time.monotonic()
    # Own process group: on failure or SIGTERM the forked workers go too.
    p = subprocess.Popen(["ansible-playbook", "-i", inventory,
                          "-e", "@" + os.path.join(os.path.dirname(inventory), "extra.json"),
                          *extra, os.path.join(SRC, "ansible", "site.yml")],
                         env=env, cwd=os.path.dirname(inventory), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    took = time.monotonic() - t0
    with open(os.path.join(os.path.dirname(inventory), label + ".log"), "w") as f:
        f.write(out)
    if (p.returncode != 0) != expect_fail:
        print(out[-12000:])
        fail("%s: ansible-playbook exited %d" % (label, p.returncode))
    recap = {}
    for m in re.finditer(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                         out, re.M):
        recap[m.group(1)] = {"ok": int(m.group(2)), "changed": int(m.group(3)),
                             "unreachable": int(m.group(4)), "failed": int(m.group(5))}
    hosts = hosts or [h for hs in LAYOUT.values() for h in hs]
    if sorted(recap) != sorted(hosts):
        print(out[-6000:])
        fail("%s: PLAY RECAP lists %s" % (label, sorted(recap)))
    log("%s: %.1f s, recap %s" % (label, took, recap))
    return recap, took, out


def task_results(out, task):
    """{host: ok|changed|skipping|failed|fatal} for every run of a task in
    ansible-playbook's output (one run per batch when serial is set)."""
    res = {}
    name = "ricochet : " + task
    for m in re.finditer(r"^TASK \[%s\] \**\n(.*?)(?=^\S*(?:TASK|PLAY|RUNNING) )" % re.escape(name),
                         out, re.M | re.S):
        for st, host in re.findall(r"^(ok|changed|skipping|failed|fatal): \[([^\]]+)\]", m.group(1), re.M):
            res[host] = st
    return res


def lint(env):
    if os.environ.get("ANSIBLE_LINT") == "0":
        log("ansible-lint skipped (ANSIBLE_LINT=0)")
        return
    if shutil.which("ansible-lint") is None:
        log("ansible-lint not installed: skipped")
        return
    t0 = time.monotonic()
    # --offline: no collection installs, no version check (no network here).
    p = subprocess.run(["ansible-lint", "--offline", "--nocolor", "-p", "ansible/"],
                       cwd=SRC, env=env, capture_output=True, text=True, timeout=300)
    log("ansible-lint: exit %d in %.1f s" % (p.returncode, time.monotonic() - t0))
    if p.returncode != 0:
        print(p.stdout[-6000:], p.stderr[-3000:])
        fail("ansible-lint found problems")


def in_box(lab, host, argv, timeout=30):
    return lab.run(host, argv, capture_output=True, text=True, timeout=timeout)


def check_cluster(lab, hosts=None):
    hosts = hosts or [h for hs in LAYOUT.values() for h in hs]
    leaders = {}
    for h in hosts:
        r = in_box(lab, h, ["/usr/local/bin/ricochetctl", "-s", lab.addr(h) + ":8080",
                            "--timeout", "5", "cluster", "--json"])
        if r.returncode != 0:
            fail("ricochetctl cluster on %s: %d %s" % (h, r.returncode, r.stderr))
        leaders[h] = json.loads(r.stdout)["leader"]
    if len(set(leaders.values())) != 1 or None in leaders.values():
        fail("nodes disagree on the leader: %s" % leaders)
    log("leader %s agreed by every node (%d)" % (leaders["a1"], len(hosts)))


def check_dns(lab, ttl):
    mail = {lab.addr(h) for s in ("a", "b") for h in LAYOUT[s]}
    # Asked from the witness box, of a node in another site.
    r = in_box(lab, "w1", ["dig", "+norecurse", "+time=2", "+tries=3", "@" + lab.addr("b1"),
                           "relay." + ZONE, "MX"])
    if r.returncode != 0 or "status: NOERROR" not in r.stdout:
        fail("dig relay MX: %s %s" % (r.stdout, r.stderr))
    targets = re.findall(r"^relay\.%s\.\s+\d+\s+IN\s+MX\s+\d+\s+(\S+)" % re.escape(ZONE), r.stdout, re.M)
    addrs = set(re.findall(r"^\S+\s+\d+\s+IN\s+A\s+(\S+)", r.stdout, re.M))
    if len(targets) != 4:
        fail("relay MX should list the 4 mail nodes: %s" % r.stdout)
    ttls = set(re.findall(r"^relay\.%s\.\s+(\d+)\s+IN\s+MX" % re.escape(ZONE), r.stdout, re.M))
    if ttls != {str(ttl)}:
        fail("relay MX TTL %s, the configuration says %d" % (ttls, ttl))
    # Glue may be absent from the additional section: resolve each target.
    for t in targets:
        a = in_box(lab, "w1", ["dig", "+short", "+norecurse", "@" + lab.addr("b1"), t, "A"])
        addrs.update(a.stdout.split())
    if not mail <= addrs:
        fail("relay MX targets %s resolve to %s, not the mail nodes %s" % (targets, addrs, mail))
    log("relay.%s MX: %s" % (ZONE, ", ".join(sorted(targets))))


def check_smtp(lab):
    r = in_box(lab, "w1", ["swaks", "--server", lab.addr("a2") + ":25", "--from", "ops@example.org",
                           "--to", "someone@example.com", "--helo", "w1.test",
                           "--timeout", "30", "--header", "Subject: ansible site test"], timeout=60)
    last = [ln for ln in r.stdout.splitlines() if "<-" in ln]
    accepted = [ln for ln in last if re.search(r"<-\s+250 .*queued", ln)]
    if r.returncode != 0 or not accepted:
        fail("swaks: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
    log("SMTP: %s" % accepted[-1].split("<-", 1)[1].strip())


# Holds port 25 on the address given, as another MTA on the host would.
PORT_BLOCKER = """
import signal, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the health probes' TIME_WAIT
s.bind((sys.argv[1], 25))
s.listen()
print("listening", flush=True)
signal.pause()
"""


def stop_daemons(lab, hosts=None):
    """Stop every ricochetd (or those of hosts) by the PID in its box's pid
    file (TERM, then KILL), all at once; lab.close() then kills whatever is
    left in the namespaces."""
    stoppers = []
    for hs in BOXES.values():
        for h in hs:
            if hosts is not None and h not in hosts:
                continue
            r = in_box(lab, h, ["cat", "/run/ricochet/ricochetd.pid"])
            pid = r.stdout.strip()
            if r.returncode == 0 and pid.isdigit():
                stoppers.append(lab.popen(h, ["start-stop-daemon", "--stop", "--pid", pid,
                                              "--retry", "TERM/20/KILL/5", "--oknodo", "--quiet"]))
    for p in stoppers:
        p.wait(timeout=60)


def check_log_rotation(lab, host):
    """The role's logrotate file rotates the daemon's output (forced here):
    the old lines move to ricochetd.log.1, and the daemon, told SIGHUP as
    rotation scripts do, keeps running and writes on into ricochetd.log."""
    log_file = "/var/log/ricochet/ricochetd.log"
    r = in_box(lab, host, ["logrotate", "-f", "/etc/logrotate.d/ricochet"])
    if r.returncode != 0:
        fail("logrotate in %s: %s%s" % (host, r.stdout, r.stderr))
    old = in_box(lab, host, ["cat", log_file + ".1"])
    if old.returncode != 0 or "event=started" not in old.stdout:
        fail("%s: no rotated log with the start line: %s" % (host, old.stderr))
    pid = in_box(lab, host, ["cat", "/run/ricochet/ricochetd.pid"]).stdout.strip()
    if in_box(lab, host, ["kill", "-HUP", pid]).returncode != 0:
        fail("%s: cannot send SIGHUP to %s" % (host, pid))

    def rotated_and_running():
        cur = in_box(lab, host, ["cat", log_file]).stdout
        if "event=sighup_config result=unchanged" not in cur or "\0" in cur:
            raise AssertionError("%s ricochetd.log after rotation: %r" % (host, cur[-300:]))
    eventually(rotated_and_running)
    eventually(check_cluster, lab)
    log("%s: log rotated (copytruncate), SIGHUP logged, the node runs on" % host)


def main():
    term_raises()
    for tool in ("ansible-playbook", "swaks", "dig", "nsenter", "nft"):
        if shutil.which(tool) is None:
            fail("%s is not installed (scripts/deps.sh --with-tests)" % tool)
    for b in ("ricochetd", "ricochetctl"):
        if not os.access(os.path.join(BUILD, b), os.X_OK):
            fail("%s/%s not built" % (BUILD, b))
    tmp = tempfile.mkdtemp(prefix="ansible-site-")
    ok = False
    t_start = time.monotonic()
    try:
        env = ansible_env(tmp)
        lint(env)
        with Lab("rca", sites=BOXES, boxes=True) as lab:
            try:
                inv = os.path.join(tmp, "inventory.ini")
                write_inventory(lab, inv)
                # The guard: on a host without the marker nothing may change.
                recap0, _, out0 = run_playbook(inv, env, "guard", expect_fail=True,
                                               extra=["-e", "ricochet_require_marker=/etc/no-such-marker"])
                if any(r["changed"] or not r["failed"] for r in recap0.values()) \
                        or "/etc/no-such-marker is missing" not in out0:
                    print(out0[-6000:])
                    fail("guard run: %s" % recap0)
                recap1, t1, out1 = run_playbook(inv, env, "first")
                if any(r["failed"] or r["unreachable"] for r in recap1.values()):
                    fail("first run failed: %s" % recap1)
                recap2, t2, out2 = run_playbook(inv, env, "second")
                changed = {h: r["changed"] for h, r in recap2.items() if r["changed"]}
                if changed:
                    print(out2[-12000:])
                    fail("second run changed something: %s" % changed)
                rejoin = "Wait until the restarted node has rejoined the cluster"
                if task_results(out1, rejoin) != {h: "skipping" for h in recap1}:
                    fail("first run: no node had a cluster to rejoin: %s" % task_results(out1, rejoin))
                # A configuration change, rolled out one node at a time
                # (ricochet_serial=1), restarts every daemon through the
                # handlers (stop by pid file, start, wait for READY=1); each
                # node waits until it has rejoined the cluster before the
                # next goes down, and the verification checks the result.
                extra = {"ricochet_extra_config": {"raft": {"min_free_disk": "64M"}, "dns": {"ttl": 60}}}
                recap3, t3, out3 = run_playbook(inv, env, "third",
                                                extra=["-e", json.dumps(extra), "-e", "ricochet_serial=1"])
                if any(r["changed"] != 3 for r in recap3.values()) \
                        or "RUNNING HANDLER [ricochet : Stop ricochetd" not in out3:
                    print(out3[-12000:])
                    fail("third run should change the config and restart (3 changes) on every host: %s"
                         % recap3)
                if out3.count("PLAY [Deploy ricochet nodes]") != len(recap3) \
                        or task_results(out3, rejoin) != {h: "ok" for h in recap3}:
                    print(out3[-12000:])
                    fail("third run: one node at a time, each waiting to rejoin: %s" % task_results(out3, rejoin))
                eventually(check_cluster, lab)
                eventually(check_dns, lab, 60)
                eventually(check_smtp, lab)
                check_log_rotation(lab, "a1")
                # A daemon that cannot start (its SMTP port taken) fails the
                # play at once with the end of its log, not after
                # ricochet_start_timeout; once the port is free the next
                # run starts it and the cluster verifies.
                stop_daemons(lab, ["b2"])
                blocker = lab.popen("b2", ["/usr/bin/python3", "-c", PORT_BLOCKER, lab.addr("b2")],
                                    stdout=subprocess.PIPE, text=True)
                if blocker.stdout.readline().strip() != "listening":
                    fail("could not take port 25 in b2")
                recap4, t4, out4 = run_playbook(inv, env, "fourth", expect_fail=True,
                                                extra=["-e", json.dumps(extra), "-e", "ricochet_verify_retries=1"])
                if not recap4["b2"]["failed"] or "exited before it was ready" not in out4 \
                        or "address already in use" not in out4:
                    print(out4[-12000:])
                    fail("fourth run: b2's start should fail at once with its log: %s" % recap4)
                blocker.kill()
                blocker.wait()
                recap5, t5, _ = run_playbook(inv, env, "fifth", extra=["-e", json.dumps(extra)])
                if any(r["failed"] or r["unreachable"] for r in recap5.values()) or recap5["b2"]["changed"] != 1:
                    fail("fifth run should start b2 (1 change) and verify: %s" % recap5)
                eventually(check_cluster, lab)
                # A sixth node joins the running cluster: the inventory
                # gains b3 with ricochet_join; it starts without
                # bootstrapping, the others restart with the new member
                # table, and the verification's `members sync` makes it a
                # voter; the verification then waits for it to be healthy.
                write_inventory(lab, inv, joiner=True)
                recap6, t6, out6 = run_playbook(inv, env, "sixth", extra=["-e", json.dumps(extra)],
                                                hosts=[h for hs in BOXES.values() for h in hs])
                if any(r["failed"] or r["unreachable"] for r in recap6.values()) \
                        or "changed" not in task_results(out6, "Bring the raft membership in line with the inventory").values():
                    print(out6[-12000:])
                    fail("sixth run: b3 should join and be made a member: %s" % recap6)
                eventually(check_cluster, lab, [h for hs in BOXES.values() for h in hs])
                r = in_box(lab, "a1", ["/usr/local/bin/ricochetctl", "-s", lab.addr("a1") + ":8080", "--json",
                                       "members"])
                m = json.loads(r.stdout)
                if sorted(x["id"] for x in m["configuration"] if x["role"] == "voter") != [1, 2, 3, 4, 5, 6] \
                        or m["changes"]:
                    fail("after the sixth run: %s" % m)
                log("b3 joined as voter 6")
                # ... and leaves again: the inventory without it; the others
                # restart without it (b3 may well lead then: it is the one
                # node that did not restart) and `members sync` removes it
                # from raft (a leader removes itself last and steps down);
                # then it is stopped by hand (the playbook no longer knows
                # the host).
                write_inventory(lab, inv)
                recap7, t7, out7 = run_playbook(inv, env, "seventh", extra=["-e", json.dumps(extra)])
                if any(r["failed"] or r["unreachable"] for r in recap7.values()) \
                        or "changed" not in task_results(out7, "Bring the raft membership in line with the inventory").values():
                    print(out7[-12000:])
                    fail("seventh run: node 6 should be removed: %s" % recap7)
                r = in_box(lab, "a1", ["/usr/local/bin/ricochetctl", "-s", lab.addr("a1") + ":8080", "--json",
                                       "members"])
                m = json.loads(r.stdout)
                if sorted(x["id"] for x in m["configuration"]) != [1, 2, 3, 4, 5] or m["changes"]:
                    fail("after the seventh run: %s" % m)
                stop_daemons(lab, ["b3"])
                eventually(check_cluster, lab)
                log("b3 left: five voters again")
                log("timings: first run %.1f s, second run %.1f s, third run (restart) %.1f s, "
                    "fourth run (b2 cannot start) %.1f s, fifth run (b2 starts) %.1f s, sixth run (b3 joins) %.1f s, "
                    "seventh run (b3 leaves) %.1f s" % (t1, t2, t3, t4, t5, t6, t7))
                ok = True
            finally:
                if not ok:
                    for hs in LAYOUT.values():
                        for h in hs:
                            r = in_box(lab, h, ["tail", "-n", "30", "/var/log/ricochet/ricochetd.log"])
                            print("--- %s ricochetd.log\n%s" % (h, r.stdout))
                stop_daemons(lab)
                reports = []
                for hs in BOXES.values():
                    for h in hs:
                        r = in_box(lab, h, ["cat", "/var/log/ricochet/ricochetd.log"])
                        reports += sanitizers.report_lines(r.stdout, h)
        if reports:
            fail("sanitizer reports in the daemons' logs:\n%s" % "\n".join(reports))
    finally:
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log("kept %s" % tmp)
    log("passed in %.1f s" % (time.monotonic() - t_start))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL: %s" % e, flush=True)
        sys.exit(1)
