#!/usr/bin/python3
"""The peer channel of real ricochetd processes (docs/PEER.md), driven by a
hand-written client on a plain socket: on a 3-node cluster, a client that
knows the cluster secret completes the handshake as node 1 with node 3 (and
checks node 3's MAC, so the documented scheme is the one on the wire); the
same handshake with a wrong secret, a non-member id, a Hello from a higher id,
garbage and a 4 GiB length prefix are refused with a WARN line naming the
client's address and the reason; afterwards the cluster still elects, and a
follower's proposals, forwarded over the channel, still commit."""
import hashlib
import hmac
import os
import socket
import struct

from clusterlib import Cluster, log, main

FAST = ["raft.election_timeout=300ms"]
PEER_PORT = 7001
CLIENT_IP = "127.0.0.59"
LABEL = b"ricochet-peer-v1"


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, value):
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    return varint(num << 3 | 2) + varint(len(value)) + value


def parse(buf):
    """protobuf message -> {field number: value} (last one wins)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            out[num], i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            out[num], i = buf[i:i + n], i + n
        else:
            raise AssertionError(f"unexpected wire type {wt}")
    return out


def read_varint(buf, i):
    shift = v = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def frame(body):
    return struct.pack(">I", len(body)) + body


def recv_frame(s):
    """Next PeerFrame as (kind, fields), or None at EOF/reset."""
    try:
        hdr = recv_exact(s, 4)
        if hdr is None:
            return None
        body = recv_exact(s, struct.unpack(">I", hdr)[0])
    except (ConnectionResetError, socket.timeout):
        return None
    if body is None:
        return None
    top = parse(body)
    kind = next(iter(top))
    return kind, parse(top[kind])


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def connect(host):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((CLIENT_IP, 0))
    s.connect((host, PEER_PORT))
    return s


def mac(secret, dn, an, did, aid, direction):
    msg = LABEL + dn + an + struct.pack(">QQ", did, aid) + direction
    return hmac.new(secret, msg, hashlib.sha256).digest()


def handshake(host, acceptor_id, my_id, secret):
    """Dials node acceptor_id as my_id. Returns (state, socket) with state
    'authenticated', 'refused_after_hello' or 'refused_after_auth'."""
    s = connect(host)
    kind, hello = recv_frame(s)
    assert kind == 1 and hello[1] == acceptor_id and len(hello[2]) == 32 and hello[3] == 1, hello
    nonce = os.urandom(32)
    s.sendall(frame(field(1, field(1, my_id) + field(2, nonce) + field(3, 1))))
    got = recv_frame(s)
    if got is None:
        return "refused_after_hello", s
    kind, auth = got
    assert kind == 2 and auth[1] == acceptor_id, got
    theirs_ok = hmac.compare_digest(auth[2], mac(secret, nonce, hello[2], my_id, acceptor_id, b"A"))
    s.sendall(frame(field(2, field(1, my_id) + field(2, mac(secret, nonce, hello[2], my_id, acceptor_id, b"D")))))
    # once authenticated, node 3 answers a BodyRequest on this connection
    s.sendall(frame(field(5, field(1, 42) + field(2, b"no-such-message") + field(3, bytes(32)))))
    got = recv_frame(s)
    if got is None:
        return "refused_after_auth", s
    kind, body = got
    assert kind == 6 and body[1] == 42 and not body.get(2), got
    assert theirs_ok, "node 3 authenticated us but its own MAC does not match docs/PEER.md"
    return "authenticated", s


def test_handshake_and_refusals_on_a_real_cluster():
    with Cluster("3", base=170, sets=FAST) as c:
        c.wait_leader()
        with open(os.path.join(c.dir, "secret"), "rb") as f:
            secret = f.read().strip()
        host3 = c.nodes[3]["http"].split(":")[0]

        state, s = handshake(host3, 3, 1, secret)
        s.close()
        assert state == "authenticated", state
        log("the documented handshake authenticates as node 1 with node 3")

        state, s = handshake(host3, 3, 1, b"not-the-cluster-secret-at-all")
        s.close()
        assert state == "refused_after_auth", state
        state, s = handshake(host3, 3, 9, secret)
        s.close()
        assert state == "refused_after_hello", state
        # the lower id dials: node 2 refuses a Hello from node 3
        state, s = handshake(c.nodes[2]["http"].split(":")[0], 2, 3, secret)
        s.close()
        assert state == "refused_after_hello", state
        for junk in (b"GET / HTTP/1.1\r\n\r\n", struct.pack(">I", 0xFFFFFFFF) + b"x" * 16):
            s = connect(host3)
            s.sendall(junk)
            while recv_frame(s) is not None:
                pass
            s.close()

        leader = c.wait_leader()
        follower = next(n for n in (1, 2, 3) if n != leader)
        # The impersonation above replaced node 1's own connection to node 3
        # ("replaced by a newer connection"); node 1 dials again by itself.
        # Until it has, a forwarded proposal fails fast (retryable), so wait
        # for one to commit before measuring.
        c.wait("the follower's peer channel to the leader to be back",
               lambda: (c.ctl_json(follower, "probe", "--count", "1", "--size", "16", check=False) or {}).get("committed") == 1,
               timeout=30, interval=0.2)
        r = c.ctl_json(follower, "probe", "--count", "200", "--size", "128", "--inflight", "8")
        assert r["committed"] == 200, r
        log(f"still serving: leader {leader}, 200 proposals from follower {follower} committed")

        text3 = open(c.log_path(3)).read()
        text2 = open(c.log_path(2)).read()
        want = [
            (text3, "event=authenticated remote=127.0.0.59:", "node=1 direction=in"),
            (text3, "level=warn module=peer event=connection_closed remote=127.0.0.59:", 'reason="bad MAC'),
            (text3, "level=warn module=peer event=connection_closed remote=127.0.0.59:",
             'reason="node id 9 is not a member"'),
            (text2, "level=warn module=peer event=connection_closed remote=127.0.0.59:",
             'reason="node 3 dialled us, but the lower id dials"'),
            (text3, "level=warn module=peer event=connection_closed remote=127.0.0.59:",
             'reason="frame larger than the limit"'),
        ]
        for text, a, b in want:
            assert any(a in line and b in line for line in text.splitlines()), f"no log line with {a!r} and {b!r}"
        log("every refusal was logged with the client's address and the reason")


if __name__ == "__main__":
    main([test_handshake_and_refusals_on_a_real_cluster])
