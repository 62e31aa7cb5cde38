#!/usr/bin/python3
"""SMTP clients for tests/bench/smtp_accept.sh (prints one JSON object).

  latency HOST:PORT MESSAGES SESSIONS SIZE
      SESSIONS concurrent sessions, each EHLO once, then messages back to back
      (MAIL, RCPT and DATA pipelined, then the body); the time from writing
      the final "." line to reading the 250 reply, per message: p50, p99, max.
  idle HOST:PORT COUNT PID
      opens COUNT sessions (greeting, EHLO, then idle) to the server whose
      process is PID and reports its RSS before and after, and per session.
"""
import asyncio
import json
import statistics
import sys
import time


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


async def read_reply(r):
    """One SMTP reply (all its lines); returns the last line."""
    while True:
        line = await r.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return line


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def latency(target, messages, sessions, size):
    host, port = hostport(target)
    body_line = b"X" * 76 + b"\r\n"
    body = b"From: <load@example.org>\r\nTo: <sink@example.com>\r\nSubject: bench\r\n\r\n"
    body += body_line * max(1, (size - len(body)) // len(body_line))
    lat, errors = [], []
    left = [messages]

    async def session(k):
        r, w = await asyncio.open_connection(host, port)
        if not (await read_reply(r)).startswith(b"220"):
            raise ConnectionError("no 220 greeting")
        w.write(b"EHLO bench.test\r\n")
        await read_reply(r)
        while left[0] > 0:
            left[0] -= 1
            w.write(b"MAIL FROM:<load@example.org>\r\nRCPT TO:<sink@example.com>\r\nDATA\r\n")
            replies = [await read_reply(r) for _ in range(3)]
            if not replies[2].startswith(b"354"):
                errors.append(replies)
                w.write(b"RSET\r\n")
                await read_reply(r)
                continue
            w.write(body)
            await w.drain()
            w.write(b".\r\n")
            t0 = time.perf_counter()
            await w.drain()
            final = await read_reply(r)
            dt = time.perf_counter() - t0
            if final.startswith(b"250"):
                lat.append(dt)
            else:
                errors.append(final)
        w.write(b"QUIT\r\n")
        await read_reply(r)
        w.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(session(k) for k in range(sessions)))
    wall = time.perf_counter() - t0
    ms = [x * 1000 for x in lat]
    return {"accepted": len(lat), "errors": len(errors), "first_error": repr(errors[0]) if errors else None,
            "per_second": len(lat) / wall, "p50_ms": percentile(ms, 0.50), "p99_ms": percentile(ms, 0.99),
            "max_ms": max(ms), "mean_ms": statistics.fmean(ms)}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def idle(target, count, pid):
    host, port = hostport(target)
    before = rss_kib(pid)
    conns, refused = [], []
    sem = asyncio.Semaphore(200)  # stay within the listen backlog

    async def one():
        async with sem:
            r, w = await asyncio.open_connection(host, port)
            greet = await read_reply(r)
            if not greet.startswith(b"220"):
                refused.append(greet)
                w.close()
                return
            w.write(b"EHLO idle.bench.test\r\n")
            await read_reply(r)
            conns.append((r, w))

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    opened = time.perf_counter() - t0
    await asyncio.sleep(1.0)
    after = rss_kib(pid)
    # every session still there? (a NOOP round trip on each)
    alive = 0
    for r, w in conns:
        w.write(b"NOOP\r\n")
    for r, w in conns:
        try:
            if (await asyncio.wait_for(read_reply(r), 30)).startswith(b"250"):
                alive += 1
        except (asyncio.TimeoutError, ConnectionError):
            pass
    for r, w in conns:
        w.close()
    return {"sessions": len(conns), "alive_after": alive, "refused": len(refused),
            "first_refusal": refused[0].decode(errors="replace").strip() if refused else None,
            "open_seconds": opened, "rss_before_kib": before, "rss_after_kib": after,
            "per_session_bytes": (after - before) * 1024 / max(1, len(conns))}


def main():
    cmd = sys.argv[1]
    if cmd == "latency":
        out = asyncio.run(latency(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    elif cmd == "idle":
        out = asyncio.run(idle(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    else:
        sys.exit(__doc__)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
