#!/usr/bin/env python3
"""make_safetensors.py: test helper for tests/test_safetensors.c.

    make_safetensors.py OUT.safetensors
        Writes a safetensors file with an independent writer (Python standard library only: the
        safetensors package is not needed): tensors in F32, F16, BF16, F64 and I64, a 0-d and an
        empty tensor, and for each float tensor NAME an F32 tensor "expect.NAME" holding the values
        the reader must produce. Data are packed in a different order from the header, as the
        format allows. test_safetensors reads it when $PYTHON is set.

    make_safetensors.py --bicubic
        Prints, with PyTorch, the F.interpolate(mode='bicubic', align_corners=False) results that
        test_safetensors.c has as constants (ALBEF's interpolate_pos_embed).
"""
import json
import math
import struct
import sys


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bf16_bits(x):
    """float -> bfloat16 bits, round to nearest even (as torch does)."""
    (u,) = struct.unpack("<I", struct.pack("<f", x))
    if (u & 0x7F800000) == 0x7F800000 and (u & 0x7FFFFF):
        return (u >> 16) | 0x40  # quiet NaN
    u += 0x7FFF + ((u >> 16) & 1)
    return (u >> 16) & 0xFFFF


def bf16_value(bits):
    return struct.unpack("<f", struct.pack("<I", bits << 16))[0]


def write(path):
    tensors = []  # (name, dtype, shape, bytes, expected or None)

    v = [0.5, -1.25, 3.0, 1e-3, -7.75, 100.0]
    tensors.append(("f32", "F32", [2, 3], struct.pack("<6f", *v), [f32(x) for x in v]))

    h = [1.0, -2.0, math.inf, -math.inf, 2.0 ** -24, 0.333251953125, -0.0, 65504.0, 2.0 ** -14, 6.1e-5]
    hb = b"".join(struct.pack("<e", x) for x in h)
    tensors.append(("f16", "F16", [2, 5], hb, [struct.unpack("<e", struct.pack("<e", x))[0] for x in h]))

    b = [1.0, -5.0, 0.15625, 3.14159, -1e-20, 12345.678]
    bits = [bf16_bits(x) for x in b]
    tensors.append(("bf16", "BF16", [6], struct.pack("<6H", *bits), [bf16_value(x) for x in bits]))

    d = [1.5, -2.25, 1.0 / 3.0]
    tensors.append(("f64", "F64", [3, 1], struct.pack("<3d", *d), [f32(x) for x in d]))

    tensors.append(("position_ids", "I64", [1, 4], struct.pack("<4q", 0, 1, 2, 3), None))
    tensors.append(("scalar", "F32", [], struct.pack("<f", 0.07), [f32(0.07)]))
    tensors.append(("empty", "F32", [0, 3], b"", []))

    for name, _, shape, _, exp in list(tensors):
        if exp is not None:
            tensors.append(("expect." + name, "F32", shape, struct.pack("<%df" % len(exp), *exp), None))

    # Pack data in reverse order of the header entries.
    header, blobs, off = {"__metadata__": {"format": "pt", "writer": "make_safetensors.py"}}, [], 0
    offsets = {}
    for name, _, _, data, _ in reversed(tensors):
        offsets[name] = (off, off + len(data))
        blobs.append(data)
        off += len(data)
    for name, dtype, shape, data, _ in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": list(offsets[name])}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for blob in blobs:
            f.write(blob)


def bicubic():
    import torch
    import torch.nn.functional as F

    def show(t, size):
        y = F.interpolate(t, size=size, mode="bicubic", align_corners=False)
        print(", ".join("%.9gf" % x for x in y.flatten().tolist()))

    a = torch.tensor([1.0, 2.0, 3.0, 5.0]).reshape(1, 1, 2, 2)
    b = torch.tensor([0.5, -1.0, 2.0, 0.25]).reshape(1, 1, 2, 2)
    show(a, (4, 4))
    show(b, (4, 4))
    src = torch.arange(25.0).reshape(1, 1, 5, 5) ** 1.5 / 7 - 1
    show(src, (3, 3))
    show(src, (7, 7))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    if sys.argv[1] == "--bicubic":
        bicubic()
    else:
        write(sys.argv[1])
