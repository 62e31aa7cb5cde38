"""A lab of network namespaces: sites, hosts, a router between them.

Used by the Ansible test (tests/ansible/site_test.py) and meant for failover
drills: every host gets its own network namespace (and, with boxes=True, its
own mount and UTS namespaces, so that Ansible can manage it with production
paths and ports) while all traffic between sites crosses one router namespace
where partitions are made.

    from lab import Lab
    with Lab("rcx", sites={"a": ["a1", "a2"], "b": ["b1", "b2"], "w": ["w1"],
                           "client": ["c1"]}, boxes=True) as lab:
        lab.addr("a1")                    # "10.77.1.11"
        lab.run("c1", ["dig", "@" + lab.addr("a1"), "relay.mx.example.net", "MX"],
                capture_output=True, text=True)
        p = lab.popen("a1", ["/usr/local/bin/ricochetd", "-c", "/etc/ricochet/ricochet.conf"])
        lab.partition("a", "b")           # drop a<->b (one_way=True: a->b only)
        lab.heal()                        # remove every partition
        lab.isolate_site("a")             # site bridge down: site a unreachable
        lab.rejoin_site("a")
    # leaving the block (or lab.close()) kills every process still running in
    # the lab's namespaces and removes namespaces, temp dirs and the route.

Topology:
  * router namespace "<prefix><pid>-r": one bridge "br<i>" per site (i = 1, 2,
    ... in the order of `sites`), gateway 10.77.<i>.1/24 on it, forwarding on;
  * host namespace "<prefix><pid>-<host>": "eth0" (veth to its site bridge),
    10.77.<i>.<j+10>/24 for the j-th host (from 0) of the i-th site, default
    route via 10.77.<i>.1;
  * root namespace: "blackhole 10.77.0.0/16" with a metric unique to this lab
    while it is up, so that nothing in the root namespace can reach a test
    address through the default route (that traffic would leave the machine).
    Never connect to a lab address from the root namespace: use run()/popen().

Boxes (boxes=True): each host is kept alive by a `sleep infinity` that owns a
private mount namespace and UTS namespace (hostname = host name) entered from
the host's network namespace. In it /etc, /var, /opt and /usr/local are
overlayfs mounts whose writes go to a per-host directory under the lab's temp
dir, /run is a fresh tmpfs, /sys is the netns's own sysfs, /etc/hosts maps the
host name to its address, and /etc/ricochet-box exists (playbooks check it
before changing anything). /usr (except /usr/local)
and /tmp are shared with the machine: packages are not really installed into
a box (apt sees the machine's dpkg database, copied). box_pid(host) is the PID
to give to `nsenter --target PID --mount --net --uts --ipc`.

Names include the lab's PID so that concurrent labs cannot collide; the
addresses are the same in every lab, which is fine: they live in different
namespaces. Teardown works by PID and by name, also after a failed set-up,
and is idempotent. A test should turn SIGTERM into an exception (see
term_raises()) so that `with Lab(...)` unwinds when ctest times out.

Needs root, iproute2, nftables, util-linux (nsenter, unshare).
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

NET = "10.77"
MARKER = "/etc/ricochet-box"
OVERLAY_DIRS = ("/etc", "/var", "/opt", "/usr/local")
NFT_TABLE = "labcut"


def term_raises():
    """Make SIGTERM (ctest timeout, kill) raise SystemExit so finally blocks run."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _ns_inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


class LabError(RuntimeError):
    pass


class Lab:
    def __init__(self, prefix, sites, boxes=False):
        if not sites:
            raise ValueError("a lab needs at least one site")
        self.tag = "%s%d" % (prefix, os.getpid())
        self.router = self.tag + "-r"
        self.sites = {}  # site -> index (1-based)
        self.hosts = {}  # host -> (site, site index, host index)
        for i, (site, hosts) in enumerate(sites.items(), start=1):
            self.sites[site] = i
            for j, h in enumerate(hosts):
                if h in self.hosts:
                    raise ValueError("host %s appears twice" % h)
                self.hosts[h] = (site, i, j)
        if len(self.sites) > 200 or any(len(v) > 200 for v in sites.values()):
            raise ValueError("too many sites or hosts")
        self.boxes = boxes
        self.tmp = tempfile.mkdtemp(prefix=self.tag + "-")
        self.route_metric = 100000 + os.getpid()
        self._namespaces = []
        self._route = False
        self._box_procs = {}  # host -> Popen of the box holder
        self._popens = []
        self._closed = False
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    # -- set-up -------------------------------------------------------------

    def ns(self, host):
        """Name of the host's network namespace (for `ip -n`, `ip netns exec`)."""
        if host not in self.hosts:
            raise KeyError(host)
        return "%s-%s" % (self.tag, host)

    def _add_ns(self, name):
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _setup(self):
        # The guard route goes first: from then on no lab address can leave.
        _ip("route", "add", "blackhole", NET + ".0.0/16", "metric", str(self.route_metric))
        self._route = True
        self._add_ns(self.router)
        subprocess.run(["ip", "netns", "exec", self.router, "sysctl", "-qw",
                        "net.ipv4.ip_forward=1"], check=True)
        for site, i in self.sites.items():
            br = "br%d" % i
            _ip("-n", self.router, "link", "add", br, "type", "bridge")
            _ip("-n", self.router, "addr", "add", "%s.%d.1/24" % (NET, i), "dev", br)
            _ip("-n", self.router, "link", "set", br, "up")
        for host, (site, i, j) in self.hosts.items():
            ns = self.ns(host)
            self._add_ns(ns)
            veth = "v%dx%d" % (i, j)
            # Both ends are created inside their namespaces: no name in the
            # root namespace, so concurrent labs cannot clash.
            _ip("-n", self.router, "link", "add", veth, "type", "veth",
                "peer", "name", "eth0", "netns", ns)
            _ip("-n", self.router, "link", "set", veth, "master", "br%d" % i)
            _ip("-n", self.router, "link", "set", veth, "up")
            _ip("-n", ns, "addr", "add", self.addr(host) + "/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "route", "add", "default", "via", "%s.%d.1" % (NET, i))
        if self.boxes:
            for host in self.hosts:
                self._start_box(host)
            for host in self.hosts:
                self._wait_box(host)

    def _start_box(self, host):
        root = os.path.join(self.tmp, "box-" + host)
        lines = ["set -e"]
        for d in OVERLAY_DIRS:
            key = d.strip("/").replace("/", "_")
            up, work = os.path.join(root, key, "upper"), os.path.join(root, key, "work")
            os.makedirs(up)
            os.makedirs(work)
            lines.append("mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s %s"
                         % (d, up, work, d))
        lines += [
            "mount -t tmpfs -o mode=0755 tmpfs /run",
            "umount -l /sys 2>/dev/null || true",
            "mount -t sysfs sysfs /sys",
            "hostname %s" % host,
            # Tools that look up their own host name (swaks, MTAs) would
            # otherwise wait for an unreachable resolver.
            "echo '%s %s' >> /etc/hosts" % (self.addr(host), host),
            "echo %s > %s" % (self.tag + "-" + host, MARKER),
            "touch %s" % os.path.join(root, "ready"),
            "exec sleep infinity",
        ]
        script = "\n".join(lines)
        p = subprocess.Popen(
            ["nsenter", "--net=/run/netns/" + self.ns(host), "--",
             "unshare", "--mount", "--uts", "--propagation", "private", "--",
             "/bin/sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(root, "setup.log"), "w"),
            start_new_session=True)
        self._box_procs[host] = p

    def _wait_box(self, host):
        ready = os.path.join(self.tmp, "box-" + host, "ready")
        deadline = time.monotonic() + 60
        p = self._box_procs[host]
        while not os.path.exists(ready):
            if p.poll() is not None or time.monotonic() > deadline:
                log = open(os.path.join(self.tmp, "box-" + host, "setup.log")).read()
                raise LabError("box %s did not start: %s" % (host, log.strip()))
            time.sleep(0.02)

    # -- queries ------------------------------------------------------------

    def addr(self, host):
        """IPv4 address of a host (10.77.<site index>.<host index + 10>)."""
        _, i, j = self.hosts[host]
        return "%s.%d.%d" % (NET, i, j + 10)

    def subnet(self, site):
        return "%s.%d.0/24" % (NET, self.sites[site])

    def site_of(self, host):
        return self.hosts[host][0]

    def box_pid(self, host):
        """PID whose namespaces are the box's (None when the lab has no boxes)."""
        if host not in self.hosts:
            raise KeyError(host)
        p = self._box_procs.get(host)
        if p is None:
            return None
        # The holder is unshare exec'ing sh then sleep: same PID throughout.
        return p.pid

    def box_dir(self, host):
        """Directory that holds the box's overlay upper dirs (its changed files)."""
        return os.path.join(self.tmp, "box-" + host)

    def wrap(self, host, argv):
        """argv prefixed so that it runs inside the host's namespaces."""
        pid = self.box_pid(host)
        if pid is not None:
            return ["nsenter", "--target", str(pid), "--mount", "--net", "--uts",
                    "--ipc", "--", *argv]
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def run(self, host, argv, **kwargs):
        """subprocess.run of argv inside the host's namespaces."""
        return subprocess.run(self.wrap(host, argv), **kwargs)

    def popen(self, host, argv, **kwargs):
        """subprocess.Popen of argv inside the host's namespaces (killed at close)."""
        p = subprocess.Popen(self.wrap(host, argv), **kwargs)
        self._popens.append(p)
        return p

    # -- faults -------------------------------------------------------------

    def _nft(self, script):
        subprocess.run(["ip", "netns", "exec", self.router, "nft", "-f", "-"],
                       input=script, text=True, check=True, capture_output=True)

    def partition(self, site1, site2, one_way=False):
        """Reject traffic from site1 to site2 (and back unless one_way)."""
        a, b = self.subnet(site1), self.subnet(site2)
        rules = ["add rule inet %s forward_filter ip saddr %s ip daddr %s reject"
                 % (NFT_TABLE, a, b)]
        if not one_way:
            rules.append("add rule inet %s forward_filter ip saddr %s ip daddr %s reject"
                         % (NFT_TABLE, b, a))
        self._nft("\n".join([
            "add table inet %s" % NFT_TABLE,
            "add chain inet %s forward_filter { type filter hook forward priority 0; policy accept; }"
            % NFT_TABLE,
            *rules, ""]))

    def heal(self):
        """Remove every partition."""
        subprocess.run(["ip", "netns", "exec", self.router, "nft", "delete", "table",
                        "inet", NFT_TABLE], capture_output=True)

    def isolate_site(self, site):
        """Take the site's bridge down: its hosts reach nobody outside (nor inside)."""
        _ip("-n", self.router, "link", "set", "br%d" % self.sites[site], "down")

    def rejoin_site(self, site):
        _ip("-n", self.router, "link", "set", "br%d" % self.sites[site], "up")

    # -- teardown -----------------------------------------------------------

    def _our_pids(self):
        """PIDs of every process living in one of the lab's namespaces."""
        inodes = set()
        for name in self._namespaces:
            ino = _ns_inode("/run/netns/" + name)
            if ino is not None:
                inodes.add(ino)
        mnt = set()
        for p in self._box_procs.values():
            ino = _ns_inode("/proc/%d/ns/mnt" % p.pid)
            if ino is not None and ino != _ns_inode("/proc/self/ns/mnt"):
                mnt.add(ino)
        pids = []
        me = os.getpid()
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == me:
                continue
            if _ns_inode("/proc/%s/ns/net" % d) in inodes or _ns_inode("/proc/%s/ns/mnt" % d) in mnt:
                pids.append(int(d))
        return pids

    def kill_all(self, grace=5.0):
        """TERM, then KILL after grace seconds, every process in the lab."""
        pids = self._our_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            self._reap()
            pids = [p for p in self._our_pids() if _alive(p)]
            if pids:
                time.sleep(0.05)
        for pid in self._our_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in self._our_pids()):
            self._reap()
            time.sleep(0.05)
        # A dying process leaves its namespaces before it becomes a zombie:
        # wait for our own children so that none is left unreaped.
        for p in list(self._box_procs.values()) + self._popens:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def _reap(self):
        for p in list(self._box_procs.values()) + self._popens:
            p.poll()

    def close(self):
        if self._closed:
            return
        self._closed = True
        errors = []
        try:
            self.kill_all()
        except Exception as e:  # keep going: namespaces and route must go
            errors.append("kill: %s" % e)
        for name in reversed(self._namespaces):
            r = _ip("netns", "del", name, check=False)
            if r.returncode != 0 and "No such file" not in r.stderr:
                errors.append("netns del %s: %s" % (name, r.stderr.strip()))
        self._namespaces = []
        if self._route:
            r = _ip("route", "del", "blackhole", NET + ".0.0/16", "metric",
                    str(self.route_metric), check=False)
            if r.returncode != 0:
                errors.append("route del: %s" % r.stderr.strip())
            self._route = False
        shutil.rmtree(self.tmp, ignore_errors=True)
        if errors:
            raise LabError("; ".join(errors))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# -- a lab that outlives the process that made it (scripts/cluster --netns) --

def save(lab, path):
    """Writes what close() needs, so that another process can tear it down."""
    import json
    with open(path + ".tmp", "w") as f:
        json.dump({"tag": lab.tag, "router": lab.router, "sites": lab.sites,
                   "hosts": {h: list(v) for h, v in lab.hosts.items()}, "tmp": lab.tmp,
                   "route_metric": lab.route_metric, "namespaces": lab._namespaces,
                   "route": lab._route}, f)
    os.rename(path + ".tmp", path)


def load(path):
    """A Lab object for a saved lab (no boxes): queries, faults and close() work."""
    import json
    with open(path) as f:
        st = json.load(f)
    lab = Lab.__new__(Lab)
    lab.tag, lab.router, lab.sites, lab.tmp = st["tag"], st["router"], st["sites"], st["tmp"]
    lab.hosts = {h: tuple(v) for h, v in st["hosts"].items()}
    lab.route_metric, lab._namespaces, lab._route = st["route_metric"], st["namespaces"], st["route"]
    lab.boxes, lab._box_procs, lab._popens, lab._closed = False, {}, [], False
    return lab


def _cli(argv):
    """lab.py up STATE --prefix P --site NAME=HOST,HOST ... | down STATE |
    addr STATE HOST | ns STATE HOST | hosts STATE | partition STATE SITE1 SITE2 [--one-way] |
    heal STATE | isolate STATE SITE | rejoin STATE SITE"""
    import sys
    if len(argv) < 2:
        print(_cli.__doc__, file=sys.stderr)
        return 2
    cmd, state = argv[0], argv[1]
    if cmd == "up":
        prefix, sites, rest = "lab", {}, argv[2:]
        while rest:
            if rest[0] == "--prefix":
                prefix, rest = rest[1], rest[2:]
            elif rest[0] == "--site":
                name, hosts = rest[1].split("=", 1)
                sites[name], rest = hosts.split(","), rest[2:]
            else:
                print("lab.py: unknown argument %s" % rest[0], file=sys.stderr)
                return 2
        lab = Lab(prefix, sites)
        try:
            save(lab, state)
        except BaseException:
            lab.close()
            raise
        return 0
    lab = load(state)
    if cmd == "down":
        lab.close()
        os.unlink(state)
    elif cmd == "addr":
        print(lab.addr(argv[2]))
    elif cmd == "ns":
        print(lab.ns(argv[2]))
    elif cmd == "hosts":  # one line per host: NAME ADDRESS NAMESPACE
        for h in lab.hosts:
            print(h, lab.addr(h), lab.ns(h))
    elif cmd == "partition":
        lab.partition(argv[2], argv[3], one_way="--one-way" in argv[4:])
    elif cmd == "heal":
        lab.heal()
    elif cmd == "isolate":
        lab.isolate_site(argv[2])
    elif cmd == "rejoin":
        lab.rejoin_site(argv[2])
    else:
        print(_cli.__doc__, file=sys.stderr)
        return 2
    return 0


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


if __name__ == "__main__":
    import sys
    sys.exit(_cli(sys.argv[1:]))
