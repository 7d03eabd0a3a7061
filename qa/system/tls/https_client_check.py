"""python3 ssl + http.client on one keep-alive HTTPS connection.

argv = ip port cafile min_version(1.2|1.3) max_version
Alternates GET /data/1000000/<seq> and POST of 300 KB (sha256 echoed by the
server) four times each, and prints "<X-Request-Seq> <X-Served-By> ok|BAD" per
response: downloads are checked byte for byte (qa/server/content.py), uploads
by the server's sha256 of what it received. Last line: the TLS version and cipher.
"""
import hashlib
import http.client
import os
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "server"))
import content  # noqa: E402

ip, port, cafile, lo, hi = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
versions = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False  # the lab's self-signed certificate names no IP; the chain is still verified
ctx.minimum_version, ctx.maximum_version = versions[lo], versions[hi]
conn = http.client.HTTPSConnection(ip, port, timeout=30, context=ctx)
upload = os.urandom(300 * 1000)
for seq in range(1, 9):
    if seq % 2:
        conn.request("GET", "/data/1000000/%d" % seq)
        r = conn.getresponse()
        body = r.read()
        good = r.status == 200 and len(body) == 1000000 and content.mismatch(seq, body) == -1
    else:
        conn.request("POST", "/upload/%d" % seq, body=upload)
        r = conn.getresponse()
        body = r.read()
        good = r.status == 200 and body.decode().strip() == hashlib.sha256(upload).hexdigest()
    print(r.getheader("X-Request-Seq"), r.getheader("X-Served-By"), "ok" if good else "BAD")
print(conn.sock.version(), conn.sock.cipher()[0])
conn.close()
