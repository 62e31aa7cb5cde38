#!/usr/bin/python3
"""A webhook receiver as a user would write one (docs/WEBHOOKS.md), for the
tests: it checks each POST's signature and timestamp the documented way,
keeps the events, and can be told to fail.

  webhook_receiver.py --listen HOST:PORT --secret SECRET

POST /hook            events (answers 204; 401 on a bad signature, 503 when
                      told to fail)
POST /_control        {"fail_next": N} fails the next N POSTs with 503;
                      {"fail_all": true|false}
GET  /_state          {"events": [event...] in arrival order, "posts": N,
                      "failed": N, "bad_signature": N, "connections": N}
                      (connections counts the test's own GETs too)
"""
import argparse
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SKEW_S = 300


def verify(secret, headers, body):
    """The check a receiver makes: HMAC-SHA256(secret, timestamp "." body)
    in X-Ricochet-Signature (v1=hex), timestamp within MAX_SKEW_S."""
    ts = headers.get("X-Ricochet-Timestamp", "")
    sig = headers.get("X-Ricochet-Signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > MAX_SKEW_S or not sig.startswith("v1="):
        return False
    want = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, sig[3:])


class State:
    def __init__(self, secret):
        self.secret = secret
        self.lock = threading.Lock()
        self.events = []
        self.posts = self.failed = self.bad_signature = 0
        self.connections = 0
        self.fail_next = 0
        self.fail_all = False


def handler(state):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do: the sender reuses its connection

        def log_message(self, *a):
            pass

        def reply(self, code, obj=None):
            body = json.dumps(obj).encode() if obj is not None else b""
            self.send_response(code)
            if body:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != "/_state":
                return self.reply(404, {"error": "no such path"})
            with state.lock:
                self.reply(200, {"events": state.events, "posts": state.posts, "failed": state.failed,
                                 "bad_signature": state.bad_signature, "connections": state.connections})

        def setup(self):
            super().setup()
            with state.lock:
                state.connections += 1

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            if self.path == "/_control":
                ctl = json.loads(body)
                with state.lock:
                    state.fail_next = ctl.get("fail_next", state.fail_next)
                    state.fail_all = ctl.get("fail_all", state.fail_all)
                return self.reply(200, {"ok": True})
            if self.path != "/hook":
                return self.reply(404, {"error": "no such path"})
            with state.lock:
                state.posts += 1
                if not verify(state.secret, self.headers, body):
                    state.bad_signature += 1
                    return self.reply(401, {"error": "bad signature"})
                if state.fail_all or state.fail_next > 0:
                    state.fail_next = max(0, state.fail_next - 1)
                    state.failed += 1
                    return self.reply(503, {"error": "told to fail"})
                doc = json.loads(body)
                state.events.extend(doc["events"])
            self.reply(204)
    return H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--secret", required=True)
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    srv = ThreadingHTTPServer((host, int(port)), handler(State(a.secret.encode())))
    print(f"listening on {a.listen}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
