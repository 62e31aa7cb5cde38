#!/usr/bin/python3
"""Benchmark of the replicated core on a 3-node loopback cluster (not a test:
it prints figures and asserts nothing about time).

  * commits/s and p50/p99 commit latency for 2 KiB and 64 KiB records with many
    proposals in flight (records are batched into raft entries);
  * p50/p99 commit latency at 1,000 proposals/s offered (open loop);
  * failover: time from kill -9 of the leader until the survivors agree on a
    new leader, with a 300 ms election timeout and pre-vote on.

Run: tests/bench/raft_commit.sh [ROUNDS]   (needs a build in build/)"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from clusterlib import Cluster, log  # noqa: E402

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
results = []


def probe(c, node, count, size, inflight, rate=None):
    args = ["probe", "--count", str(count), "--size", str(size), "--inflight", str(inflight)]
    if rate:
        args += ["--rate", str(rate)]
    return c.ctl_json(node, *args)


with Cluster("3", base=70, sets=["raft.election_timeout=300ms"]) as c:
    leader = c.wait_leader()
    follower = [i for i in c.nodes if i != leader][0]
    probe(c, leader, 2000, 2048, 64)  # warm-up
    for label, node, count, size, inflight in (
        ("2KiB on leader, 256 in flight", leader, 40000, 2048, 256),
        ("2KiB on follower, 256 in flight", follower, 20000, 2048, 256),
        ("64KiB on leader, 32 in flight", leader, 2000, 65536, 32),
    ):
        runs = [probe(c, node, count, size, inflight) for _ in range(3)]
        best = max(runs, key=lambda r: r["per_second"])
        med = statistics.median(r["per_second"] for r in runs)
        results.append(f"{label}: median {med:,.0f} commits/s (best {best['per_second']:,.0f}), "
                       f"p50 {best['p50_ms']:.2f} ms, p99 {best['p99_ms']:.2f} ms, failed {best['failed']}")
        log(results[-1])
    r = probe(c, leader, 10000, 2048, 1000, rate=1000)
    results.append(f"2KiB at 1,000/s offered: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                   f"achieved {r['per_second']:,.0f}/s")
    log(results[-1])

    times = []
    for i in range(rounds):
        leader = c.wait_leader()
        others = [n for n in c.nodes if n != leader]
        t0 = time.monotonic()
        c.kill(leader)
        c.wait_leader(among=others, exclude=(leader,), timeout=30)
        dt = time.monotonic() - t0
        times.append(dt)
        log(f"failover {i + 1}: {dt * 1000:.0f} ms")
        c.start(leader)
        c.wait_converged(timeout=60)
    results.append(f"failover (kill -9 leader -> agreed new leader), {rounds} rounds: "
                   f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    log(results[-1])

print("\n== raft_commit results")
for line in results:
    print(line)
