"""vlt.py: read and write the ".vlt" named-tensor exchange file (format in SPEC.md).

Layout, all little-endian:
    b"VLT1", uint32 count, then count entries of
    uint32 name_len, name bytes (UTF-8, no NUL), uint32 dtype (0 = float32, 1 = int32),
    uint32 ndim, int64 dims[ndim], data (row-major, 4 bytes per element).

Only numpy is needed. Entries keep file order (dicts are ordered).
"""
import struct

import numpy as np

MAGIC = b"VLT1"
F32, I32 = 0, 1
_DTYPES = {F32: np.dtype("<f4"), I32: np.dtype("<i4")}


class VltError(Exception):
    pass


def read_vlt(path):
    """Return {name: np.ndarray} (float32 or int32), in file order."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:4] != MAGIC:
        raise VltError("%s: not a .vlt file (bad magic %r)" % (path, buf[:4]))
    if len(buf) < 8:
        raise VltError("%s: truncated header" % path)
    (count,) = struct.unpack_from("<I", buf, 4)
    pos = 8
    out = {}

    def need(n, what):
        if pos + n > len(buf):
            raise VltError("%s: truncated while reading %s" % (path, what))

    for i in range(count):
        need(4, "entry %d name length" % i)
        (nlen,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if nlen > 4096:
            raise VltError("%s: entry %d has a name of %d bytes" % (path, i, nlen))
        need(nlen + 8, "entry %d name/dtype/ndim" % i)
        name = buf[pos:pos + nlen].decode("utf-8")
        pos += nlen
        dtype, ndim = struct.unpack_from("<II", buf, pos)
        pos += 8
        if dtype not in _DTYPES or ndim > 8:
            raise VltError("%s: entry %s has dtype %d ndim %d" % (path, name, dtype, ndim))
        need(8 * ndim, "entry %s dims" % name)
        dims = struct.unpack_from("<%dq" % ndim, buf, pos)
        pos += 8 * ndim
        if any(d < 0 for d in dims):
            raise VltError("%s: entry %s has negative dims %s" % (path, name, dims))
        n = 1
        for d in dims:
            n *= d
        need(4 * n, "entry %s data (%d elements)" % (name, n))
        arr = np.frombuffer(buf, dtype=_DTYPES[dtype], count=n, offset=pos).reshape(dims)
        pos += 4 * n
        if name in out:
            raise VltError("%s: duplicate entry %s" % (path, name))
        # native-endian, writable copy
        out[name] = arr.astype(np.float32 if dtype == F32 else np.int32)
    if pos != len(buf):
        raise VltError("%s: %d trailing bytes after %d entries" % (path, len(buf) - pos, count))
    return out


def _as_vlt_array(name, a):
    a = np.asarray(a)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim > 8:
        raise VltError("%s: ndim %d > 8" % (name, a.ndim))
    if a.dtype.kind == "f":
        return F32, np.ascontiguousarray(a, dtype="<f4")
    if a.dtype.kind in "iub":
        if a.size and (a.min() < -2**31 or a.max() >= 2**31):
            raise VltError("%s: integer values do not fit int32" % name)
        return I32, np.ascontiguousarray(a, dtype="<i4")
    raise VltError("%s: unsupported dtype %s" % (name, a.dtype))


def write_vlt(path, tensors):
    """Write {name: array}. Floating arrays are stored as float32, integer/bool arrays as
    int32; 0-d arrays become shape (1,)."""
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<I", len(tensors)))
        for name, a in tensors.items():
            dtype, a = _as_vlt_array(name, a)
            nb = name.encode("utf-8")
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<II", dtype, a.ndim))
            f.write(struct.pack("<%dq" % a.ndim, *a.shape))
            f.write(a.tobytes(order="C"))


if __name__ == "__main__":
    import sys
    for p in sys.argv[1:]:
        for k, v in read_vlt(p).items():
            print("%-50s %-7s %s" % (k, v.dtype, tuple(v.shape)))
