#!/usr/bin/python3
"""parity.py: compare the C engine's pre-training step with the PyTorch reference.

    /usr/bin/python3 tests/reference/parity.py INPUT.vlt CONFIG.json C_OUTPUT.vlt
        [--rtol-loss 1e-5] [--rtol-grad 1e-4] [--double] [--dump REF.vlt] [--show N] [--quiet]

Runs vlmae_ref.step on INPUT (float32, or float64 with --double) and compares with the C side's
`loss.{itc,itm,mlm,rmim,ifr}` (tcl: also `loss.imc`, `loss.lmi`; `loss.total` when present)
and `grad.NAME` entries:
  loss:     |a - b| / max(|b|, 1e-8)                       (b = reference)
  gradient: max|a - b| / max(max|b|, 1e-8, floor)          tensor-wise max-norm relative
where floor is 0 except for attention key biases (`*.attn.k.bias`, `*.cross.k.bias`): their
gradient is mathematically zero (softmax is shift invariant), so both sides hold only rounding
noise; for them floor = max|reference grad of the matching `.k.weight`|.
A gradient missing from C_OUTPUT, a gradient or loss the reference does not know, a shape
mismatch or a non-finite value is a failure. `act.NAME` entries in C_OUTPUT (v, v_hat, w,
img_feat, txt_feat, itm_logits, mlm_logits, rmim_pred, rmim_target, ...) are compared for
information only. Prints the worst entries and every failure, then exactly one line
"parity: N passed, M failed". Exit status 0 iff M == 0.
--dump writes the reference's own results in the C_OUTPUT format (C_OUTPUT may then be "-").
"""
import argparse
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import vlmae_ref as ref  # noqa: E402
from vlt import read_vlt, write_vlt  # noqa: E402


def grad_floor(name, ref_grads):
    for tail in (".attn.k.bias", ".cross.k.bias"):
        if name.endswith(tail):
            wname = name[:-len("bias")] + "weight"
            if wname in ref_grads:
                return float(np.abs(ref_grads[wname]).max())
    return 0.0


def compare(cfg, inp, ref_losses, ref_grads, cout, rtol_loss, rtol_grad):
    """Returns a list of rows (name, shape, max_abs_err, ref_scale, rel, tol, ok, note)."""
    rows = []

    def row(name, shape, abs_err, scale, rel, tol, ok, note=""):
        rows.append((name, shape, abs_err, scale, rel, tol, ok, note))

    loss_names = list(ref.loss_names(cfg)) + (["total"] if "loss.total" in cout else [])
    for n in loss_names:
        key = "loss." + n
        b = ref_losses[n]
        if key not in cout:
            row(key, "", float("nan"), abs(b), float("inf"), rtol_loss, False, "missing in C")
            continue
        a = cout[key].astype(np.float64).reshape(-1)
        if a.size != 1:
            row(key, a.shape, float("nan"), abs(b), float("inf"), rtol_loss, False,
                "C has shape %s, expected (1)" % (cout[key].shape,))
            continue
        a = float(a[0])
        if not np.isfinite(a):
            row(key, "(1)", float("nan"), abs(b), float("inf"), rtol_loss, False, "non-finite")
            continue
        err = abs(a - b)
        rel = err / max(abs(b), 1e-8)
        row(key, "(1)", err, abs(b), rel, rtol_loss, rel <= rtol_loss, "C %.9g ref %.9g" % (a, b))
    for key in cout:
        if key.startswith("loss.") and key[5:] not in loss_names:
            row(key, "", float("nan"), 0.0, float("inf"), rtol_loss, False,
                "loss unknown to the reference")

    for n, g in ref_grads.items():
        key = "grad." + n
        shape = tuple(g.shape)
        if key not in cout:
            row(key, shape, float("nan"), 0.0, float("inf"), rtol_grad, False, "missing in C")
            continue
        a = cout[key]
        if tuple(a.shape) != shape:
            row(key, shape, float("nan"), 0.0, float("inf"), rtol_grad, False,
                "C has shape %s" % (tuple(a.shape),))
            continue
        if not np.isfinite(a).all():
            row(key, shape, float("nan"), 0.0, float("inf"), rtol_grad, False, "non-finite in C")
            continue
        a64, b64 = a.astype(np.float64), g.astype(np.float64)
        err = float(np.abs(a64 - b64).max()) if a64.size else 0.0
        scale = float(np.abs(b64).max()) if b64.size else 0.0
        floor = grad_floor(n, ref_grads)
        rel = err / max(scale, 1e-8, floor)
        row(key, shape, err, scale, rel, rtol_grad, rel <= rtol_grad,
            "floor %.3g (zero-gradient key bias)" % floor if floor > scale else "")
    for key in cout:
        if key.startswith("grad.") and key[5:] not in ref_grads:
            known = "(momentum copies get no gradient)" if key.startswith("grad.m.") else ""
            row(key, tuple(cout[key].shape), float("nan"), 0.0, float("inf"), rtol_grad, False,
                ("gradient unknown to the reference " + known).strip())
    return rows


def compare_acts(ref_acts, cout):
    out = []
    for key in cout:
        if not key.startswith("act."):
            continue
        n = key[4:]
        if n not in ref_acts:
            out.append((key, "unknown to the reference"))
            continue
        a, b = cout[key].astype(np.float64), ref_acts[n].astype(np.float64)
        if a.shape != b.shape:
            out.append((key, "shape C %s ref %s" % (a.shape, b.shape)))
            continue
        err = float(np.abs(a - b).max()) if a.size else 0.0
        scale = float(np.abs(b).max()) if b.size else 0.0
        out.append((key, "max abs err %.3e  max|ref| %.3e  rel %.3e"
                    % (err, scale, err / max(scale, 1e-8))))
    return out


def fmt_row(r):
    name, shape, err, scale, rel, tol, ok, note = r
    sh = "x".join(str(d) for d in shape) if isinstance(shape, tuple) else str(shape)
    return "%-44s %-10s %11.3e %11.3e %11.3e %s  %s" % (
        name, sh, err, scale, rel, "ok  " if ok else "FAIL", note)


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch parity check of one pre-training step")
    ap.add_argument("input_vlt")
    ap.add_argument("config_json")
    ap.add_argument("c_output_vlt", help='the C side\'s results ("-" with --dump: none)')
    ap.add_argument("--rtol-loss", type=float, default=1e-5)
    ap.add_argument("--rtol-grad", type=float, default=1e-4)
    ap.add_argument("--double", action="store_true", help="run the reference in float64")
    ap.add_argument("--dump", metavar="REF.vlt", help="write the reference's loss./grad./act.")
    ap.add_argument("--show", type=int, default=10, help="how many worst entries to print")
    ap.add_argument("--quiet", action="store_true", help="print failures and the summary only")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    a = ap.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    try:
        cfg = ref.load_config(a.config_json)
        inp = read_vlt(a.input_vlt)
        errs = ref.check_inputs(cfg, inp)
    except Exception as e:  # noqa: BLE001 -- report and fail, whatever went wrong
        errs = ["%s: %s" % (type(e).__name__, e)]
    if errs:
        print("parity: the input case is unusable:")
        for e in errs:
            print("  " + e)
        print("parity: 0 passed, 1 failed")
        return 1
    K = inp["ids_keep"].shape[1]
    if cfg["objective"] == "vlmae" and K != ref.expected_keep(cfg):
        print("parity: note: K = %d visible patches, int(N*(1-mask_ratio)) = %d"
              % (K, ref.expected_keep(cfg)))

    dtype = torch.float64 if a.double else torch.float32
    losses, grads, acts = ref.step(cfg, inp, dtype=dtype, return_acts=True)

    if a.dump:
        out = {"loss." + k: np.array([v]) for k, v in losses.items()}
        out.update({"grad." + k: v for k, v in grads.items()})
        out.update({"act." + k: v for k, v in acts.items()})
        write_vlt(a.dump, out)
        print("parity: wrote the reference's results to %s" % a.dump)
        if a.c_output_vlt == "-":
            return 0

    try:
        cout = read_vlt(a.c_output_vlt)
    except Exception as e:  # noqa: BLE001
        print("parity: cannot read %s: %s" % (a.c_output_vlt, e))
        print("parity: 0 passed, 1 failed")
        return 1

    rows = compare(cfg, inp, losses, grads, cout, a.rtol_loss, a.rtol_grad)
    npass = sum(1 for r in rows if r[6])
    nfail = len(rows) - npass
    ranked = sorted(rows, key=lambda r: (r[6], -(r[4] / r[5] if r[5] > 0 else r[4])))
    shown = [r for r in ranked if not r[6]]
    if not a.quiet:
        shown += [r for r in ranked if r[6]][:max(0, a.show)]
    print("parity: objective %s, %s reference, B=%d T=%d K=%d, rtol loss %g grad %g"
          % (cfg["objective"], "float64" if a.double else "float32", inp["text_ids"].shape[0],
             inp["text_ids"].shape[1], K, a.rtol_loss, a.rtol_grad))
    if not a.quiet:
        print("parity: losses (reference): " + "  ".join(
            "%s %.6g" % (k, v) for k, v in losses.items()))
    if shown:
        print("%-44s %-10s %11s %11s %11s %s" % ("name", "shape", "max abs err", "max|ref|",
                                                 "rel err", "status"))
        for r in shown:
            print(fmt_row(r))
    if not a.quiet:
        for key, msg in compare_acts(acts, cout):
            print("parity: (info) %-30s %s" % (key, msg))
    print("parity: %d passed, %d failed" % (npass, nfail))
    return 0 if nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
