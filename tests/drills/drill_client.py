#!/usr/bin/python3
"""An MTA-like client for drills: asks a name server for the relay name's MX
(preference order; a SERVFAIL or no answer → the next name server),
resolves each host's address there too, submits one message at a time to
the MX hosts in order, moving to the next host when one fails or refuses,
and appends one JSON line per message to LOG: {"i", "id" (null if no host
took it), "host", "tries", "at"}. Stops when the file STOP exists.
Used inside the client namespace of the netns drills (production ports) and
on loopback by integration.drill (the cluster's own ports).
usage: drill_client.py [--dns-port N] [--smtp-port N] LOG STOP RELAY_NAME NAMESERVER..."""
import argparse
import json
import os
import re
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import dnsprobe  # noqa: E402

QUEUED = re.compile(r"queued as ([0-9A-Z]+)")


def mx_hosts(relay, servers, port):
    for ns in servers:
        r = subprocess.run(dnsprobe.query_cmd(ns, relay, "MX", port), capture_output=True, text=True)
        if dnsprobe.rcode(r.stdout) != "NOERROR":
            continue
        answers = dnsprobe.mx_records(r.stdout)
        if answers:
            return [h for _, h in answers]
    return []


def resolve(host, servers, port):
    for ns in servers:
        r = subprocess.run(dnsprobe.query_cmd(ns, host, "A", port, short=True), capture_output=True, text=True)
        a = dnsprobe.addresses(r.stdout)
        if a:
            return a[0]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dns-port", type=int, default=53)
    ap.add_argument("--smtp-port", type=int, default=25)
    ap.add_argument("log")
    ap.add_argument("stop")
    ap.add_argument("relay")
    ap.add_argument("servers", nargs="+")
    a = ap.parse_args()
    i = 0
    with open(a.log, "a") as out:
        while not os.path.exists(a.stop):
            i += 1
            got, tries, host = None, 0, None
            for name in mx_hosts(a.relay, a.servers, a.dns_port):
                addr = resolve(name, a.servers, a.dns_port)
                if addr is None:
                    continue
                tries += 1
                try:
                    with smtplib.SMTP(addr, a.smtp_port, timeout=5) as s:
                        s.ehlo("client.drill.test")
                        s.mail("drill@sender.test")
                        s.rcpt(f"u{i}@rcpt.test")
                        code, msg = s.data(f"Subject: drill {i}\r\n\r\nmessage {i}\r\n".encode())
                except (OSError, smtplib.SMTPException):
                    continue
                m = QUEUED.search(msg.decode(errors="replace"))
                if code == 250 and m:
                    got, host = m.group(1), addr
                    break
            out.write(json.dumps({"i": i, "id": got, "host": host, "tries": tries, "at": time.time()}) + "\n")
            out.flush()
            time.sleep(0.05)


if __name__ == "__main__":
    main()
