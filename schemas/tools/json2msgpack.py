#!/usr/bin/env python3
"""json2msgpack.py - the msgpack twins of the JSON examples, standard library only.

    json2msgpack.py EXAMPLES_DIR           write EXAMPLES_DIR/msgpack/<name>.msgpack
                                           for every EXAMPLES_DIR/input-*.json
    json2msgpack.py --check EXAMPLES_DIR   exit 1 if any .msgpack file differs

The encoding is an independent implementation of the msgpack spec (not the
worker's C code), so the C tests decode bytes that the decoder under test did
not produce. Rules: key order kept; integers in their smallest encoding (beyond 64 bits: float64);
JSON numbers with a fraction or exponent as float64; strings as str (UTF-8).

Also used by check_examples.py: unpackb() decodes the worker's msgpack output
(float32 values are returned as Float32, a float subclass, so that callers can
check the wire type).
"""
import json
import os
import struct
import sys


def _head(out, fix, fixmax, t8, t16, t32, n):
    if fixmax is not None and n <= fixmax:
        out.append(fix | n)
    elif t8 is not None and n <= 0xFF:
        out += bytes([t8, n])
    elif n <= 0xFFFF:
        out += bytes([t16]) + struct.pack(">H", n)
    else:
        out += bytes([t32]) + struct.pack(">I", n)


def pack(obj, out):
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        if 0 <= obj < 128:
            out.append(obj)
        elif -32 <= obj < 0:
            out.append(obj & 0xFF)
        elif obj >= 0:
            for tag, fmt, lim in ((0xCC, ">B", 1 << 8), (0xCD, ">H", 1 << 16),
                                  (0xCE, ">I", 1 << 32), (0xCF, ">Q", 1 << 64)):
                if obj < lim:
                    out += bytes([tag]) + struct.pack(fmt, obj)
                    break
            else:
                out += b"\xcb" + struct.pack(">d", float(obj))  # beyond 64 bits
        else:
            for tag, fmt, lim in ((0xD0, ">b", 1 << 7), (0xD1, ">h", 1 << 15),
                                  (0xD2, ">i", 1 << 31), (0xD3, ">q", 1 << 63)):
                if obj >= -lim:
                    out += bytes([tag]) + struct.pack(fmt, obj)
                    break
            else:
                out += b"\xcb" + struct.pack(">d", float(obj))  # beyond 64 bits
    elif isinstance(obj, float):
        out += b"\xcb" + struct.pack(">d", obj)
    elif isinstance(obj, str):
        b = obj.encode("utf-8", "surrogatepass")
        _head(out, 0xA0, 31, 0xD9, 0xDA, 0xDB, len(b))
        out += b
    elif isinstance(obj, (bytes, bytearray)):
        _head(out, 0, None, 0xC4, 0xC5, 0xC6, len(obj))
        out += obj
    elif isinstance(obj, Pairs):
        _head(out, 0x80, 15, None, 0xDE, 0xDF, len(obj))
        for k, v in obj:
            pack(k, out)
            pack(v, out)
    elif isinstance(obj, list):
        _head(out, 0x90, 15, None, 0xDC, 0xDD, len(obj))
        for x in obj:
            pack(x, out)
    else:
        raise TypeError(type(obj))
    return out


class Pairs(list):
    """A JSON object as its (key, value) list: order and duplicates kept."""


class Float32(float):
    """A float that was a msgpack float32 on the wire."""


def packb(obj):
    return bytes(pack(obj, bytearray()))


def loads(text):
    # Integers stay exact (Python ints); objects keep key order.
    return json.loads(text, object_pairs_hook=Pairs)


def unpackb(data):
    """Decodes one msgpack value (maps become dicts); raises on trailing bytes."""
    obj, pos = _unpack(memoryview(bytes(data)), 0)
    if pos != len(data):
        raise ValueError("%d trailing bytes" % (len(data) - pos))
    return obj


def _unpack(b, p):
    c = b[p]
    p += 1
    if c <= 0x7F:
        return c, p
    if c >= 0xE0:
        return c - 256, p
    if 0x80 <= c <= 0x8F:
        return _map(b, p, c & 15)
    if 0x90 <= c <= 0x9F:
        return _arr(b, p, c & 15)
    if 0xA0 <= c <= 0xBF:
        n = c & 31
        return bytes(b[p:p + n]).decode("utf-8"), p + n
    fixed = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
             0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q", 0xCB: ">d"}
    if c in fixed:
        n = struct.calcsize(fixed[c])
        return struct.unpack(fixed[c], b[p:p + n])[0], p + n
    if c == 0xCA:
        return Float32(struct.unpack(">f", b[p:p + 4])[0]), p + 4
    if c == 0xC0:
        return None, p
    if c in (0xC2, 0xC3):
        return c == 0xC3, p
    lens = {0xD9: (">B", "s"), 0xDA: (">H", "s"), 0xDB: (">I", "s"),
            0xC4: (">B", "b"), 0xC5: (">H", "b"), 0xC6: (">I", "b"),
            0xDC: (">H", "a"), 0xDD: (">I", "a"), 0xDE: (">H", "m"), 0xDF: (">I", "m")}
    if c in lens:
        fmt, kind = lens[c]
        k = struct.calcsize(fmt)
        n = struct.unpack(fmt, b[p:p + k])[0]
        p += k
        if kind == "a":
            return _arr(b, p, n)
        if kind == "m":
            return _map(b, p, n)
        raw = bytes(b[p:p + n])
        if len(raw) != n:
            raise ValueError("truncated")
        return (raw.decode("utf-8") if kind == "s" else raw), p + n
    raise ValueError("unsupported msgpack byte 0x%02x" % c)


def _arr(b, p, n):
    out = []
    for _ in range(n):
        x, p = _unpack(b, p)
        out.append(x)
    return out, p


def _map(b, p, n):
    out = {}
    for _ in range(n):
        k, p = _unpack(b, p)
        v, p = _unpack(b, p)
        out[k] = v
    return out, p


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    ex = args[0]
    outdir = os.path.join(ex, "msgpack")
    os.makedirs(outdir, exist_ok=True)
    bad = 0
    names = sorted(f for f in os.listdir(ex) if f.startswith("input-") and f.endswith(".json"))
    for name in names:
        with open(os.path.join(ex, name), encoding="utf-8") as f:
            data = packb(loads(f.read()))
        path = os.path.join(outdir, name[:-5] + ".msgpack")
        if check:
            try:
                with open(path, "rb") as f:
                    same = f.read() == data
            except FileNotFoundError:
                same = False
            if not same:
                print("stale: %s (run schemas/tools/json2msgpack.py %s)" % (path, ex))
                bad += 1
        else:
            with open(path, "wb") as f:
                f.write(data)
    print("%d examples, %d stale" % (len(names), bad) if check else "wrote %d files" % len(names))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
