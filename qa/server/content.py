"""Python twin of content.h: byte i of /data/<size>/<seed> from (seed, i).

Block j = splitmix64(splitmix64(seed) + j), little-endian. Keep in step with content.h.
"""
import struct

_M = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & _M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
    return z ^ (z >> 31)


def content(seed, size, offset=0):
    """The `size` content bytes of `seed` starting at `offset`."""
    base = splitmix64(seed)
    first, last = offset // 8, (offset + size + 7) // 8
    blocks = struct.pack("<%dQ" % (last - first),
                         *(splitmix64((base + j) & _M) for j in range(first, last)))
    start = offset - first * 8
    return blocks[start:start + size]


def mismatch(seed, got, offset=0):
    """Offset of the first wrong byte of `got`, or -1."""
    want = content(seed, len(got), offset)
    if want == got:
        return -1
    return offset + next(i for i in range(len(got)) if want[i] != got[i])


if __name__ == "__main__":
    import sys
    sys.stdout.buffer.write(content(int(sys.argv[2]), int(sys.argv[1])))
