"""python3 http.client on one keep-alive connection: argv = ip port size...

Requests /data/<size>/<i> for i = 1.. and prints "<X-Request-Seq> <X-Served-By> ok|BAD" per
response, checking every byte with qa/server/content.py.
"""
import http.client
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "server"))
import content  # noqa: E402

ip, port, sizes = sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3:]]
conn = http.client.HTTPConnection(ip, port, timeout=30)
for seed, size in enumerate(sizes, start=1):
    conn.request("GET", "/data/%d/%d" % (size, seed))
    r = conn.getresponse()
    body = r.read()
    good = r.status == 200 and len(body) == size and content.mismatch(seed, body) == -1
    print(r.getheader("X-Request-Seq"), r.getheader("X-Served-By"), "ok" if good else "BAD")
conn.close()
