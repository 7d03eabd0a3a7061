"""python3 ssl on one HTTPS connection whose records it places on the wire itself.

argv = MODE ip port cafile outdir
  pipeline  GET 1, then GETs 2, 3, 4 in one write (one TLS record)
  split     GET 1; then request 2's record plus the first half of request 3's,
            500 ms pause, the rest of 3 plus the first half of 4's, 500 ms pause,
            the rest of 4 (TCP_NODELAY: each part is its own segment); then GET 5
Requests are GET /data/<size>/<seq>. Each response body goes to outdir/body<seq>
(the test checks it byte for byte with content.h) and one line
"<X-Request-Seq> <X-Served-By> <length>" is printed per response, in order.
"""
import os
import socket
import ssl
import sys
import time

mode, ip, port, cafile, outdir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
# Small enough that no response fills the window while the client pauses.
SIZES = {1: 30000, 2: 20000, 3: 25000, 4: 60000, 5: 7000}

ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False  # the lab's self-signed certificate names no IP; the chain is still verified
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
raw = socket.create_connection((ip, port), timeout=30)
raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# Memory BIOs: the script decides which bytes of which record go out when.
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(incoming, outgoing)


def flush():
    data = outgoing.read()
    if data:
        raw.sendall(data)


def recv_more():
    flush()
    data = raw.recv(65536)
    if not data:
        raise EOFError("server closed the connection")
    incoming.write(data)


while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        recv_more()
flush()

buf = b""


def read_tls():
    global buf
    while True:
        try:
            buf += tls.read(65536)
            return
        except ssl.SSLWantReadError:
            recv_more()


def response():
    global buf
    while b"\r\n\r\n" not in buf:
        read_tls()
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    if not lines[0].startswith("HTTP/1.1 200"):
        sys.exit("unexpected status: " + lines[0])
    fields = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    length = int(fields["content-length"])
    while len(buf) < length:
        read_tls()
    body, buf = buf[:length], buf[length:]
    seq = fields["x-request-seq"]
    with open(os.path.join(outdir, "body" + seq), "wb") as f:
        f.write(body)
    print(seq, fields["x-served-by"], len(body), flush=True)


def request(seq):
    return ("GET /data/%d/%d HTTP/1.1\r\nHost: xo-lab\r\n\r\n" % (SIZES[seq], seq)).encode()


def record(seq):
    """One request as exactly the TLS record(s) the client would send."""
    tls.write(request(seq))
    return outgoing.read()


tls.write(request(1))
flush()
response()
if mode == "pipeline":
    tls.write(request(2) + request(3) + request(4))  # one write: one record
    flush()
    for _ in range(3):
        response()
elif mode == "split":
    r2, r3, r4 = record(2), record(3), record(4)
    h3, h4 = len(r3) // 2, len(r4) // 2
    raw.sendall(r2 + r3[:h3])  # the server moves at request 2 holding half of 3's record
    time.sleep(0.5)
    raw.sendall(r3[h3:] + r4[:h4])  # ... and at request 3 holding half of 4's
    time.sleep(0.5)
    raw.sendall(r4[h4:])
    for _ in range(3):
        response()
    tls.write(request(5))
    flush()
    response()
else:
    sys.exit("unknown mode " + mode)
print(tls.version(), tls.cipher()[0])
raw.close()
