#!/usr/bin/python3
"""Measuring helpers for tests/bench/relay.sh.

  relay_measure.py cpu PID...
      CPU seconds (user+system) used so far by each PID and every live
      descendant, plus what their reaped children used (cutime/cstime):
      Postfix's master forks and reaps smtpd, cleanup, smtp, ... so the
      master's cutime holds every child that already exited and the live
      ones are read directly. Prints "USER SYSTEM" in seconds.
  relay_measure.py count FILE
      Transactions in an smtp-sink -D dump (lines starting X-Client-Addr:).
  relay_measure.py wait FILE TARGET TIMEOUT
      Polls the dump (reading only what was appended, every 10 ms) until it
      holds TARGET transactions; prints the wall-clock time (epoch seconds)
      at which it saw the last one. Exit 1 on timeout (prints the count).
  relay_measure.py metric HOST:PORT NAME
      The value of one line of GET /metrics (NAME may carry its labels,
      e.g. 'x_total{status="delivered"}'; 0 when absent).
"""
import os
import sys
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")
MARK = b"X-Client-Addr:"


def stat(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        s = f.read()
    rest = s[s.rindex(b")") + 2:].split()
    # fields after the command: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17)
    ppid = int(rest[1])
    ut, st, cut, cst = (int(x) for x in rest[11:15])
    return ppid, ut + cut, st + cst


def cpu(roots):
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                procs[int(d)] = stat(d)
            except (OSError, ValueError, IndexError):
                pass
    children = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    seen, todo, user, system = set(), [int(r) for r in roots], 0, 0
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in procs:
            continue
        seen.add(pid)
        user += procs[pid][1]
        system += procs[pid][2]
        todo += children.get(pid, [])
    print(f"{user / TICK:.2f} {system / TICK:.2f}")


def count(path):
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        data = f.read()
    return data.count(b"\n" + MARK) + (1 if data.startswith(MARK) else 0)


def wait(path, target, timeout):
    deadline = time.time() + timeout
    n, offset, carry, last = 0, 0, b"\n", None
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            if chunk:
                offset += len(chunk)
                buf = carry + chunk
                n += buf.count(b"\n" + MARK)
                carry = buf[-len(MARK):]
                last = time.time()
                if n >= target:
                    print(f"{last:.3f}")
                    return 0
        time.sleep(0.01)
    print(n)
    return 1


def metric(addr, name):
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.split(" ")[0] == name:
                print(line.split()[-1])
                return 0
    print(0)
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "cpu":
        cpu(sys.argv[2:])
        return 0
    if cmd == "count":
        print(count(sys.argv[2]))
        return 0
    if cmd == "wait":
        return wait(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    if cmd == "metric":
        return metric(sys.argv[2], sys.argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
