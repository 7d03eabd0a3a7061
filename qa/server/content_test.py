"""content.py must produce exactly content.h's bytes (argv[1]: xo_content_dump)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import content  # noqa: E402

dump = sys.argv[1]
failures = 0
for size, seed, offset in [(0, 1, 0), (1, 0, 0), (7, 3, 5), (4096, 42, 0), (100001, 2**63 + 5, 13), (65536, 9, 8)]:
    want = subprocess.run([dump, str(size), str(seed), str(offset)], check=True, capture_output=True).stdout
    got = content.content(seed, size, offset)
    if got != want:
        failures += 1
        print("MISMATCH size=%d seed=%d offset=%d" % (size, seed, offset))
if content.content(1, 16) == content.content(2, 16):
    failures += 1
    print("different seeds gave the same bytes")
print("content twin: %d mismatches" % failures)
sys.exit(1 if failures else 0)
