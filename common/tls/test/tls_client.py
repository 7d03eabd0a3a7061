#!/usr/bin/python3
"""Unmodified-client side of the TLS handoff tests (Python's ssl = OpenSSL).

usage: tls_client.py MODE PORT [tls12]
Prints what it saw; exits non-zero on any mismatch. Modes:
  bulk      1 MB download and 300 KB upload on one keep-alive connection, checked by SHA-256
  resume    a second connection resumes the first one's session
  pipeline  three requests in one write
  split     a request record split across two TCP segments, 500 ms apart
  plain     a few GETs (used by the negative control)
"""
import hashlib
import socket
import ssl
import sys
import time

mode, port = sys.argv[1], int(sys.argv[2])
tls12 = len(sys.argv) > 3 and sys.argv[3] == "tls12"


def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def pattern(n):
    return bytes((i * 7 + 13) & 0xFF for i in range(n))


def request(path, body=b""):
    method = "POST" if body else "GET"
    return (f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


class Reader:
    def __init__(self, recv):
        self.recv, self.buf = recv, b""

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            self.more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        while len(self.buf) < length:
            self.more()
        body, self.buf = self.buf[:length], self.buf[length:]
        assert head.startswith(b"HTTP/1.1 200"), head
        return body

    def more(self):
        data = self.recv(65536)
        if not data:
            raise EOFError("server closed the connection")
        self.buf += data


def connect(ctx, session=None):
    raw = socket.create_connection(("127.0.0.1", port))
    return ctx.wrap_socket(raw, session=session)


def check(cond, what):
    if not cond:
        print("MISMATCH:", what)
        sys.exit(1)


if mode == "bulk":
    s = connect(context())
    r = Reader(s.recv)
    s.sendall(request("/bytes/1048576"))
    got = r.response()
    check(hashlib.sha256(got).hexdigest() == hashlib.sha256(pattern(1 << 20)).hexdigest(), "1 MB download hash")
    up = bytes((i * 13 + 5) & 0xFF for i in range(300 * 1024))
    s.sendall(request("/upload", up))
    check(r.response().decode().strip() == "sha256=" + hashlib.sha256(up).hexdigest(), "300 KB upload hash")
    s.sendall(request("/bytes/1048576"))
    check(r.response() == pattern(1 << 20), "second 1 MB download")
    s.sendall(request("/last"))
    print(r.response().decode().strip())
    print("version", s.version(), "cipher", s.cipher()[0])
    s.close()
    print("OK bulk")
elif mode == "resume":
    ctx = context()
    s = connect(ctx)
    r = Reader(s.recv)
    s.sendall(request("/first"))
    print(r.response().decode().strip())
    session = s.session
    s.close()
    s = connect(ctx, session)
    check(s.session_reused, "session was not resumed")
    r = Reader(s.recv)
    for p in ("/r0", "/r1", "/r2", "/r3"):
        s.sendall(request(p))
        print(r.response().decode().strip())
    s.close()
    print("OK resume reused=True", "version", s.version())
elif mode == "pipeline":
    s = connect(context())
    r = Reader(s.recv)
    s.sendall(request("/p0"))
    print(r.response().decode().strip())
    s.sendall(request("/p1") + request("/p2") + request("/p3"))  # one write: one record
    for _ in range(3):
        print(r.response().decode().strip())
    s.close()
    print("OK pipeline")
elif mode == "split":
    ctx = context()
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out)

    def pump_out():
        data = out.read()
        if data:
            raw.sendall(data)

    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pump_out()
            inc.write(raw.recv(65536))
    pump_out()

    def recv(n):
        while True:
            try:
                return obj.read(n)
            except ssl.SSLWantReadError:
                pump_out()
                data = raw.recv(65536)
                if not data:
                    return b""
                inc.write(data)

    r = Reader(recv)
    obj.write(request("/s0"))
    pump_out()
    print(r.response().decode().strip())
    obj.write(request("/s1"))
    rec1 = out.read()
    obj.write(request("/s2"))
    rec2 = out.read()
    half = len(rec2) // 2
    raw.sendall(rec1 + rec2[:half])  # the server moves the connection at /s1 holding half of /s2's record
    time.sleep(0.5)
    raw.sendall(rec2[half:])
    print(r.response().decode().strip())
    print(r.response().decode().strip())
    obj.write(request("/s3"))
    pump_out()
    print(r.response().decode().strip())
    print("OK split")
elif mode == "plain":
    s = connect(context())
    r = Reader(s.recv)
    try:
        for p in ("/0", "/1", "/2"):
            s.sendall(request(p))
            print(r.response().decode().strip())
        print("OK plain")
    except ssl.SSLError as e:
        print("SSLError:", e.reason, e)
        sys.exit(3)
else:
    sys.exit("unknown mode " + mode)
