"""Helpers for integration tests that drive real ricochetd processes through
scripts/cluster and ricochetctl. Every cluster a test starts is stopped in
`Cluster.__exit__`, by PID, even when the test fails."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import sanitizers  # noqa: E402

SRC = os.environ.get("RICOCHET_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("RICOCHET_BUILD", os.path.join(SRC, "build"))
CLUSTER = os.path.join(SRC, "scripts", "cluster")
CTL = os.path.join(BUILD, "ricochetctl")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Cluster:
    def __init__(self, layout, base, sets=(), net=None):
        self.layout = layout
        self.base = base
        self.net = net
        self.sets = list(sets)
        # Mail accepted by a test must not make the leader ask the machine's
        # resolver about test domains: unless the test runs its own DNS, MX
        # lookups go to a closed loopback port (deferred, nothing leaves).
        if not any(s.startswith("delivery.resolver=") for s in self.sets):
            self.sets.append("delivery.resolver=127.0.0.1:9")
        self.dir = tempfile.mkdtemp(prefix=f"ricochet-it-{base}-", dir=os.environ.get("RICOCHET_TEST_TMP", "/tmp"))
        self.nodes = {}

    def _env(self):
        env = dict(os.environ, RICOCHET_BUILD=BUILD)
        return env

    def run_cluster(self, *args, check=True):
        cmd = [CLUSTER, *args, "--dir", self.dir]
        r = subprocess.run(cmd, env=self._env(), capture_output=True, text=True, timeout=180)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n{self.logs_tail()}")
        return r.stdout

    def __enter__(self):
        args = ["up", "--layout", self.layout, "--base", str(self.base)]
        if self.net:
            args += ["--net", self.net]
        for s in self.sets:
            args += ["--set", s]
        try:
            out = self.run_cluster(*args)
        except BaseException:
            # `with` calls __exit__ only after __enter__ returned: whatever
            # started is stopped here, by PID, and the logs are shown
            self.__exit__(*sys.exc_info())
            raise
        for line in out.strip().splitlines():
            parts = line.split()
            fields = dict(p.split("=", 1) for p in parts[1:])
            self.nodes[int(parts[0])] = fields
        log(f"cluster up ({self.layout}) in {self.dir}:\n{out.strip()}")
        return self

    def __exit__(self, exc_type, exc, tb):
        reports = []
        try:
            self.run_cluster("down", check=False)
            reports = self.sanitizer_reports()
        finally:
            # belt and braces: anything still alive is killed by PID
            for n in os.listdir(self.dir) if os.path.isdir(self.dir) else []:
                pidf = os.path.join(self.dir, n, "pid")
                if os.path.exists(pidf):
                    try:
                        os.kill(int(open(pidf).read().strip()), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
            if exc_type is not None:
                print(self.logs_tail(), file=sys.stderr)
            if exc_type is None and not reports and not os.environ.get("RICOCHET_KEEP"):
                shutil.rmtree(self.dir, ignore_errors=True)
        if reports and exc_type is None:
            raise AssertionError("sanitizer reports in the daemons' logs (kept in %s):\n%s"
                                 % (self.dir, "\n".join(reports)))
        return False

    def sanitizer_reports(self):
        """Sanitizer report lines in every node directory's log."""
        names = sorted(n for n in os.listdir(self.dir) if os.path.isdir(os.path.join(self.dir, n))) \
            if os.path.isdir(self.dir) else []
        return sanitizers.in_files({n: os.path.join(self.dir, n, "ricochetd.log") for n in names})

    def http(self, node_id):
        return self.nodes[node_id]["http"]

    def ctl(self, node_id, *args, check=True, timeout=120):
        cmd = [CTL, "-s", self.http(node_id), "--timeout", "60", *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def ctl_json(self, node_id, *args, check=True):
        r = self.ctl(node_id, *args, "--json", check=check)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def status(self, node_id):
        try:
            return self.ctl_json(node_id, "cluster", check=False)
        except (json.JSONDecodeError, subprocess.TimeoutExpired):
            return None

    def pid(self, node_id):
        f = os.path.join(self.dir, f"n{node_id}", "pid")
        return int(open(f).read().strip()) if os.path.exists(f) else None

    def alive_ids(self):
        return [i for i in self.nodes if self.pid(i)]

    def kill(self, node_id):
        self.run_cluster("kill", str(node_id))
        log(f"killed node {node_id} (SIGKILL)")

    def start(self, node_id):
        self.run_cluster("start", str(node_id))
        log(f"started node {node_id}")

    def log_path(self, node_id):
        return os.path.join(self.dir, f"n{node_id}", "ricochetd.log")

    def logs_tail(self, lines=40):
        out = []
        # every node directory: also before `up` has named the nodes
        ids = sorted(int(n[1:]) for n in os.listdir(self.dir) if n[:1] == "n" and n[1:].isdigit()) \
            if os.path.isdir(self.dir) else []
        for n in ids:
            p = self.log_path(n)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    tail = f.readlines()[-lines:]
                out.append(f"---- node {n} log ----\n" + "".join(tail))
        return "\n".join(out)

    def wait(self, what, predicate, timeout=30.0, interval=0.1):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")

    def leader(self, among=None):
        """The leader every live node agrees on, or None."""
        ids = among or self.alive_ids()
        seen = set()
        for i in ids:
            st = self.status(i)
            if st is None or st.get("leader") is None:
                return None
            seen.add(st["leader"])
        return seen.pop() if len(seen) == 1 else None

    def wait_leader(self, among=None, timeout=30.0, exclude=()):
        return self.wait("an agreed leader", lambda: (lambda l: l if l and l not in exclude else None)(self.leader(among)), timeout)

    def wait_converged(self, among=None, timeout=60.0):
        """Every node has applied the same records in the same order."""
        ids = among or self.alive_ids()

        def check():
            seen = set()
            for i in ids:
                st = self.status(i)
                if st is None:
                    return None
                seen.add((st["applied_records"], st["state_digest"]))
            return seen.pop() if len(seen) == 1 else None
        return self.wait(f"nodes {ids} to converge", check, timeout)


def _stop_on_sigterm(signum, frame):
    # SIGTERM (ctest's timeout, an interrupted CI run) unwinds through the
    # tests' `with` blocks, so that every process they started is stopped.
    raise SystemExit(128 + signum)


def main(tests):
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    failures = []
    for t in tests:
        log(f"=== {t.__name__}")
        try:
            t()
            log(f"--- PASS {t.__name__}")
        except Exception as e:  # noqa: BLE001 - report every failure
            import traceback
            frames = traceback.extract_tb(e.__traceback__)
            # the test's own line that failed, not the helper's
            where = [f for f in frames if os.path.basename(f.filename).startswith("test_")] or frames
            failures.append(f"{t.__name__} ({os.path.basename(where[-1].filename)}:{where[-1].lineno}): {e}")
            log(f"--- FAIL {t.__name__}: {e}")
            traceback.print_exc()
    sys.stderr.flush()
    # again at the very end: CI shows the tail of long outputs
    for f in failures:
        print(f"FAILED {f[:2000]}")
    print(f"{len(tests) - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)
