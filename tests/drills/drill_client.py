#!/usr/bin/python3
"""An MTA-like client for drills, run inside the client namespace: asks a
name server for the relay name's MX (preference order, a SERVFAIL or no
answer → the next name server), submits one message at a time to the MX
hosts in order, moving to the next host when one fails or refuses, and
appends one JSON line per message to LOG: {"i", "id" (null if no host took
it), "host", "tries", "at"}. Stops when the file STOP exists.
usage: drill_client.py LOG STOP RELAY_NAME NAMESERVER..."""
import json
import os
import re
import smtplib
import subprocess
import sys
import time

QUEUED = re.compile(r"queued as ([0-9A-Z]+)")
IPV4 = re.compile(r"^(\d+\.\d+\.\d+\.\d+)$", re.M)
MX = re.compile(r"^\S+\s+\d+\s+IN\s+MX\s+(\d+)\s+(\S+)$", re.M)


def mx_hosts(relay, servers):
    for ns in servers:
        r = subprocess.run(["dig", f"@{ns}", relay, "MX", "+time=1", "+tries=1", "+norecurse"],
                           capture_output=True, text=True)
        if "status: NOERROR" not in r.stdout:
            continue
        answers = sorted((int(p), h) for p, h in MX.findall(r.stdout))
        if answers:
            return [h for _, h in answers]
    return []


def resolve(host, servers):
    for ns in servers:
        r = subprocess.run(["dig", "+short", f"@{ns}", host, "A", "+time=1", "+tries=1", "+norecurse"],
                           capture_output=True, text=True)
        # dig +short also prints ";; communications error ..." lines
        a = IPV4.findall(r.stdout)
        if a:
            return a[0]
    return None


def main():
    log, stop, relay, servers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    i = 0
    with open(log, "a") as out:
        while not os.path.exists(stop):
            i += 1
            got, tries, host = None, 0, None
            for name in mx_hosts(relay, servers):
                addr = resolve(name, servers)
                if addr is None:
                    continue
                tries += 1
                try:
                    with smtplib.SMTP(addr, 25, timeout=5) as s:
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
