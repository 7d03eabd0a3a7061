"""python3 http.client against the offload lab: argv = scheme ip port connections cycles off_path local_path

Each of `connections` keep-alive connections (threads, started together behind a
barrier so they offload at once) runs `cycles` cycles of
  GET off_path/<seed>    (offloaded: served by a backend)
  GET local_path/<seed>  (served by the frontend after the connection came back)
where the paths are "/data/<size>" prefixes. Every byte is checked against
qa/server/content.py, X-Request-Seq must count 1, 2, 3, ... on each connection.
Prints one line per connection "conn <i> ok <n> bad <m> served <host>=<count>..."
and a last line "total ok <n> bad <m>"; the first few failures go to stderr.
"""
import http.client
import os
import ssl
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "server"))
import content  # noqa: E402

scheme, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
connections, cycles = int(sys.argv[4]), int(sys.argv[5])
off_path, local_path = sys.argv[6], sys.argv[7]

expected = {}  # (size, seed) -> bytes; seeds repeat so the check stays cheap
expected_lock = threading.Lock()


def want(size, seed):
    with expected_lock:
        if (size, seed) not in expected:
            expected[(size, seed)] = content.content(seed, size)
        return expected[(size, seed)]


def check(seed, size, body):
    return body == want(size, seed)


barrier = threading.Barrier(connections)
results = [None] * connections
errors = []


def run(i):
    ok = bad = 0
    served = {}
    try:
        if scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the lab server's certificate is self-signed
            conn = http.client.HTTPSConnection(ip, port, timeout=30, context=ctx)
        else:
            conn = http.client.HTTPConnection(ip, port, timeout=30)
        conn.connect()
        barrier.wait(timeout=60)
        seq = 0
        for c in range(cycles):
            for path in (off_path, local_path):
                seed = 1 + (c % 4)
                size = int(path.rstrip("/").split("/")[-1])
                conn.request("GET", "%s/%d" % (path.rstrip("/"), seed))
                r = conn.getresponse()
                body = r.read()
                seq += 1
                by = r.getheader("X-Served-By")
                served[by] = served.get(by, 0) + 1
                good = (r.status == 200 and check(seed, size, body) and r.getheader("X-Request-Seq") == str(seq))
                if good:
                    ok += 1
                else:
                    bad += 1
                    if len(errors) < 5:
                        errors.append("conn %d cycle %d %s: status %d len %d seq %s by %s" %
                                      (i, c, path, r.status, len(body), r.getheader("X-Request-Seq"), by))
        conn.close()
    except Exception as e:  # noqa: BLE001 — report, never hang
        bad += 1
        errors.append("conn %d: %r" % (i, e))
    results[i] = (ok, bad, served)


threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
for t in threads:
    t.start()
for t in threads:
    t.join()
tok = tbad = 0
for i, res in enumerate(results):
    ok, bad, served = res if res else (0, 1, {})
    tok += ok
    tbad += bad
    print("conn %d ok %d bad %d served %s" % (i, ok, bad,
                                             " ".join("%s=%d" % kv for kv in sorted(served.items()))))
for e in errors:
    print(e, file=sys.stderr)
print("total ok %d bad %d" % (tok, tbad))
