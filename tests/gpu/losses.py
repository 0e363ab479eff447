#!/usr/bin/env python3
"""tests/gpu/losses.py -- the verdicts of tests/gpu/run.sh on `vlmae bench --json` files.

  losses.py parity A.json B.json TOL   PASS/FAIL max relative loss difference (A: CPU, B: CUDA)
  losses.py same A.json B.json         PASS/FAIL the two runs printed identical losses
  losses.py finite A.json              PASS/FAIL every loss of every objective is finite

Prints one line "PASS ..." or "FAIL ..." and exits 0 / 1. A file that is missing, empty or not
JSON, a result without losses, a null (non-finite: bench writes NaN/Inf as null and sets
losses_finite false) or a different set of objectives is a FAIL, never a silent pass.
Plain Python 3 (no numpy): the GPU machine's python3 is enough.
"""
import json
import math
import sys


def load(path):
    """Returns {objective: {loss: value}}; raises ValueError with the reason."""
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError("%s: not readable as JSON (%s)" % (path, e))
    res = d.get("results") if isinstance(d, dict) else None
    if not res:
        raise ValueError("%s: no results" % path)
    out = {}
    for r in res:
        name, loss = r.get("objective"), r.get("loss")
        if not name or not isinstance(loss, dict) or not loss:
            raise ValueError("%s: a result without objective or losses" % path)
        bad = [k for k, v in loss.items() if not isinstance(v, (int, float)) or not math.isfinite(v)]
        if bad or r.get("losses_finite") is False:
            raise ValueError("%s: %s: non-finite loss %s" % (path, name, ", ".join(bad) or "(flagged)"))
        out[name] = loss
    return out


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    try:
        if mode == "finite" and len(argv) == 3:
            a = load(argv[2])
            return "PASS all losses finite (%s)" % ", ".join(sorted(a))
        if mode in ("parity", "same") and len(argv) == (5 if mode == "parity" else 4):
            a, b = load(argv[2]), load(argv[3])
            if sorted(a) != sorted(b) or any(sorted(a[o]) != sorted(b[o]) for o in a):
                return "FAIL the two runs have different objectives or losses"
            if mode == "same":
                diff = ["%s.%s %r vs %r" % (o, k, a[o][k], b[o][k]) for o in sorted(a) for k in sorted(a[o])
                        if a[o][k] != b[o][k]]
                return "FAIL runs differ: " + "; ".join(diff[:3]) if diff else "PASS identical losses"
            tol, worst, where = float(argv[4]), 0.0, ""
            for o in sorted(a):
                for k in sorted(a[o]):
                    va, vb = a[o][k], b[o][k]
                    e = abs(va - vb) / max(abs(va), 1e-3)
                    if e > worst or not where:
                        worst, where = max(e, worst), "%s.%s cpu %.5f cuda %.5f" % (o, k, va, vb)
            return ("PASS" if worst <= tol else "FAIL") + " max rel diff %.2e (tol %g) %s" % (worst, tol, where)
    except ValueError as e:
        return "FAIL " + str(e)
    return "FAIL usage: losses.py parity A B TOL | same A B | finite A"


if __name__ == "__main__":
    line = main(sys.argv)
    print(line)
    sys.exit(0 if line.startswith("PASS") else 1)
