"""Real peers for the egress integration test (issue 4), started and stopped
by PID: NSD serving the test zone, Postfix's smtp-sink as an accepting MX (and a slow one),
the scripted aiosmtpd server (tests/peers/egress_smtpd.py) for 4xx/5xx/stalls,
a second aiosmtpd instance as the sender's mailbox (receives the DSNs), and a
private real Postfix (tests/bench/postfix_lib.sh) that accepts every
recipient and bounces unknown users asynchronously to the VERP return path.

Everything binds 127.0.7.x. Stop() kills every process it started, by PID,
even when a start failed half-way."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from clusterlib import SRC, log

PYTHON = "/usr/bin/python3"
SMTPD = os.path.join(SRC, "tests", "peers", "egress_smtpd.py")
PF_LIB = os.path.join(SRC, "tests", "bench", "postfix_lib.sh")

NET = "127.0.7"
DNS_ADDR = (f"{NET}.53", 5300)
MX_PORT = 2526                 # delivery.port: the same on every fake MX
SINK = f"{NET}.10"             # smtp-sink            (sink.test, nomx.test)
SCRIPT = f"{NET}.11"           # scripted aiosmtpd    (script.test, twomx.test)
POSTFIX = f"{NET}.12"          # real Postfix         (postfix.test)
SLOW_SINK = f"{NET}.13"        # smtp-sink -w 1       (slow.test: attempts stay in flight for a failover)
SENDER_MX = f"{NET}.14"        # aiosmtpd mailbox     (sender.test: DSNs land here)
DEAD = f"{NET}.19"             # nothing listens      (twomx.test pref 10, refused.test)
BLACKHOLE = f"{NET}.18"        # listens, never accepts, backlog full: SYNs go unanswered (blackhole.test)
BOUNCE_DOMAIN = "bounce.ricochet.test"


def zone_text():
    return f"""$ORIGIN test.
$TTL 300
@            IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60
@            IN NS  ns.test.
ns           IN A   {DNS_ADDR[0]}
sink         IN MX  10 mx.sink
mx.sink      IN A   {SINK}
script       IN MX  10 mx.script
mx.script    IN A   {SCRIPT}
twomx        IN MX  10 dead.twomx
twomx        IN MX  20 live.twomx
dead.twomx   IN A   {DEAD}
live.twomx   IN A   {SCRIPT}
refused      IN MX  10 mx.refused
mx.refused   IN A   {DEAD}
nomx         IN A   {SINK}
nullmx       IN MX  0 .
postfix      IN MX  10 mx.postfix
mx.postfix   IN A   {POSTFIX}
sender       IN MX  10 mx.sender
slow         IN MX  10 mx.slow
mx.slow      IN A   {SLOW_SINK}
mx.sender    IN A   {SENDER_MX}
blackhole    IN MX  10 mx.blackhole
mx.blackhole IN A   {BLACKHOLE}
"""


def wait_port(host, port, timeout=30.0, greeting=False):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                if not greeting or s.recv(512).startswith(b"220"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"nothing answers on {host}:{port} after {timeout}s")


def dns_query(name, qtype):
    r = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(DNS_ADDR[1]), f"@{DNS_ADDR[0]}", name, qtype],
                       capture_output=True, text=True, timeout=10)
    return r.stdout.strip()


class Peers:
    def __init__(self, postfix=False, cluster_smtp=f"{NET}.1:2525"):
        self.dir = tempfile.mkdtemp(prefix="ricochet-egress-peers-", dir=os.environ.get("RICOCHET_TEST_TMP", "/tmp"))
        os.chmod(self.dir, 0o755)  # Postfix and smtp-sink (as nobody) must enter it
        self.procs = []
        self.held = []  # the blackhole listener and the connections that fill its queue
        self.want_postfix = postfix
        self.cluster_smtp = cluster_smtp
        self.pf_dir = os.path.join(self.dir, "postfix")
        self.pf_started = False
        self.sink_dump = os.path.join(self.dir, "sink", "dump")
        self.slow_dump = os.path.join(self.dir, "sink", "slow")
        self.script_log = os.path.join(self.dir, "script.log")
        self.script_rcpts = os.path.join(self.dir, "script.rcpt.log")
        self.mailbox_log = os.path.join(self.dir, "sender.log")

    def _spawn(self, name, cmd):
        out = open(os.path.join(self.dir, f"{name}.out"), "w")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        self.procs.append((name, p))
        return p

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        # NSD, authoritative for test. (RD queries are answered authoritatively)
        zdir = os.path.join(self.dir, "nsd")
        os.makedirs(zdir)
        with open(os.path.join(zdir, "test.zone"), "w") as f:
            f.write(zone_text())
        with open(os.path.join(zdir, "nsd.conf"), "w") as f:
            f.write(f"""server:
  ip-address: {DNS_ADDR[0]}@{DNS_ADDR[1]}
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "{zdir}"
  database: ""
  pidfile: "{zdir}/nsd.pid"
  xfrdfile: "{zdir}/xfrd.state"
  zonelistfile: "{zdir}/zone.list"
  logfile: "{zdir}/nsd.log"
  server-count: 1
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: test
  zonefile: test.zone
""")
        self._spawn("nsd", ["/usr/sbin/nsd", "-d", "-c", os.path.join(zdir, "nsd.conf")])
        deadline = time.monotonic() + 30
        while dns_query("mx.sink.test", "A") != SINK:
            if time.monotonic() > deadline:
                raise AssertionError("NSD does not answer: " + open(os.path.join(self.dir, "nsd.out")).read())
            time.sleep(0.1)
        assert dns_query("nullmx.test", "MX") == "0 .", dns_query("nullmx.test", "MX")
        log("nsd answers on %s:%d" % DNS_ADDR)

        # smtp-sink: accepts everything, dumps every transaction (MAIL/RCPT args + message)
        os.makedirs(os.path.dirname(self.sink_dump))
        os.chmod(os.path.dirname(self.sink_dump), 0o777)  # it writes as nobody
        user = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses to run as root
        self._spawn("sink", ["/usr/sbin/smtp-sink", *user, "-D", self.sink_dump, f"{SINK}:{MX_PORT}", "256"])
        # the same, answering DATA after 1 s: a failover finds attempts in flight
        self._spawn("slowsink", ["/usr/sbin/smtp-sink", *user, "-w", "1", "-D", self.slow_dump,
                                 f"{SLOW_SINK}:{MX_PORT}", "256"])
        # scripted server (with PIPELINING) and the sender's mailbox
        self._spawn("script", [PYTHON, SMTPD, "--listen", f"{SCRIPT}:{MX_PORT}", "--pipelining",
                               "--log", self.script_log, "--rcpt-log", self.script_rcpts])
        self._spawn("mailbox", [PYTHON, SMTPD, "--listen", f"{SENDER_MX}:{MX_PORT}", "--log", self.mailbox_log])
        for host in (SINK, SLOW_SINK, SCRIPT, SENDER_MX):
            wait_port(host, MX_PORT, greeting=True)
        log("smtp-sink, scripted aiosmtpd and the sender mailbox greet")
        self.start_blackhole()
        if self.want_postfix:
            self.start_postfix()

    def start_blackhole(self):
        """A host whose TCP connects time out rather than fail: a listener
        that never accepts, with its accept queue filled by connections of
        our own, so that the kernel drops further SYNs (no RST, no SYN-ACK)."""
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((BLACKHOLE, MX_PORT))
        lst.listen(0)
        self.held.append(lst)
        for _ in range(4):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            c.connect_ex((BLACKHOLE, MX_PORT))
            self.held.append(c)
        time.sleep(0.2)
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect((BLACKHOLE, MX_PORT))
            raise AssertionError(f"{BLACKHOLE}:{MX_PORT} accepted a connection: the blackhole does not hold")
        except socket.timeout:
            pass
        finally:
            probe.close()
        log(f"connections to {BLACKHOLE}:{MX_PORT} time out")

    def start_postfix(self):
        """A real Postfix as MX of postfix.test: every recipient is accepted
        at RCPT (no local_recipient_maps), local(8) bounces unknown users
        later, and its bounce daemon sends the DSN to the VERP return path
        through the cluster's SMTP listener (transport_maps)."""
        lines = [
            "mydestination = postfix.test",
            "local_recipient_maps =",
            "alias_maps =",
            "forward_path =",
            "mailbox_transport =",
            f"transport_maps = inline:{{{BOUNCE_DOMAIN}=smtp:[{self.cluster_smtp.split(':')[0]}]:{self.cluster_smtp.split(':')[1]}}}",
            "smtp_tls_security_level = none",
            "smtpd_tls_security_level = none",
            "bounce_queue_lifetime = 1h",
            "queue_run_delay = 1s",
            "minimal_backoff_time = 1s",
            "maximal_backoff_time = 2s",
            "delay_warning_time = 0",
            "notify_classes =",
        ]
        cmd = ". '%s'; pf_start \"$1\" \"$2\" \"${@:3}\"" % PF_LIB
        r = subprocess.run(["bash", "-c", cmd, "pf", self.pf_dir, f"{POSTFIX}:{MX_PORT}", *lines],
                           capture_output=True, text=True, timeout=120)
        self.pf_started = True  # pf_stop is harmless if nothing runs
        if r.returncode != 0:
            raise AssertionError(f"private Postfix did not start:\n{r.stdout}\n{r.stderr}")
        log(f"private Postfix greets on {POSTFIX}:{MX_PORT}")

    def postfix_log(self):
        p = os.path.join(self.pf_dir, "maillog")
        return open(p, errors="replace").read() if os.path.exists(p) else ""

    def stop(self):
        if self.pf_started:
            subprocess.run(["bash", "-c", ". '%s'; pf_stop \"$1\"" % PF_LIB, "pf", self.pf_dir],
                           capture_output=True, timeout=60)
        for name, p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name, p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = []
        for sock in self.held:
            sock.close()
        self.held = []
        if os.environ.get("RICOCHET_KEEP"):
            log(f"peers' files kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- what the peers saw

    @staticmethod
    def _jsonl(path):
        if not os.path.exists(path):
            return []
        with open(path, errors="replace") as f:
            return [json.loads(line) for line in f if line.strip()]

    def script_messages(self):
        return self._jsonl(self.script_log)

    def script_rcpt_commands(self):
        return self._jsonl(self.script_rcpts)

    def mailbox(self):
        return self._jsonl(self.mailbox_log)

    def sink_transactions(self, slow=False):
        """[{mail: '<...> ...', rcpts: ['<...>'], lines: [...]}] from smtp-sink's dump."""
        path = self.slow_dump if slow else self.sink_dump
        if not os.path.exists(path):
            return []
        txs, cur = [], None
        with open(path, errors="replace") as f:
            for line in f:
                line = line.rstrip("\r\n")
                if line.startswith("X-Client-Addr:"):
                    cur = {"mail": None, "rcpts": [], "lines": []}
                    txs.append(cur)
                elif cur is None:
                    continue
                elif line.startswith("X-Mail-Args:"):
                    cur["mail"] = line.split(":", 1)[1].strip()
                elif line.startswith("X-Rcpt-Args:"):
                    cur["rcpts"].append(line.split(":", 1)[1].strip())
                else:
                    cur["lines"].append(line)
        return txs
