#!/usr/bin/python3
"""report.py: turn the raw results of bench/run.sh into bench/report.md, report.json and two PNG
charts (step_time.png, scaling.png). Standard library only: the PNGs come from a small writer
below (zlib + struct, a 5x7 pixel font), since matplotlib is not installed on the CI machines.

    /usr/bin/python3 bench/report.py --raw RAWDIR --out DIR [--git REV] [--gpus 8,16,32,64]
        [--gpu-peak-tflops 989] [--gpu-mfu 0.30] [--gpu-batch 64] [--nvlink-gbs 450]
        [--ib-gbits 200,400] [--overlap 0.9] [--gpus-per-node 8]

RAWDIR holds what run.sh wrote: base-vlmae-OBJ-rN/bench.json, base-torch-OBJ-rN.json (OBJ = albef,
tcl, vlmae; round N = 1, 2, ...: each side's round with the lowest median step time is reported,
all rounds are kept in report.json), tiny-vlmae/bench.json, tiny-torch.json, scale-np1t1/bench.json, scale-np2t1/bench.json,
scale-np1t2/bench.json (each optional), machine.txt. The multi-node model is documented in
bench/README.md; its assumptions are parameters here and are printed into the report.
"""
import argparse
import json
import os
import struct
import sys
import zlib

OBJS = ("albef", "tcl", "vlmae")
PAPER_GMACS = {"albef": 60.5, "tcl": 60.6, "vlmae": 49.6}  # VLMAE paper, Table 8 (thop, 256px)

# ----------------------------------------------------------------------------------------------
# PNG canvas

FONT = {  # 5x7, rows top to bottom, 5 bits each (MSB = left column); text is drawn upper-case
    " ": (0, 0, 0, 0, 0, 0, 0), "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14),
    "2": (14, 17, 1, 2, 4, 8, 31), "3": (31, 2, 4, 2, 1, 17, 14), "4": (2, 6, 10, 18, 31, 2, 2),
    "5": (31, 16, 30, 1, 1, 17, 14), "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8),
    "8": (14, 17, 17, 14, 17, 17, 14), "9": (14, 17, 17, 15, 1, 2, 12),
    "A": (14, 17, 17, 31, 17, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30),
    "C": (14, 17, 16, 16, 16, 17, 14), "D": (28, 18, 17, 17, 17, 18, 28),
    "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17),
    "I": (14, 4, 4, 4, 4, 4, 14), "J": (7, 2, 2, 2, 2, 18, 12), "K": (17, 18, 20, 24, 20, 18, 17),
    "L": (16, 16, 16, 16, 16, 16, 31), "M": (17, 27, 21, 21, 17, 17, 17),
    "N": (17, 17, 25, 21, 19, 17, 17), "O": (14, 17, 17, 17, 17, 17, 14),
    "P": (30, 17, 17, 30, 16, 16, 16), "Q": (14, 17, 17, 17, 21, 18, 13),
    "R": (30, 17, 17, 30, 20, 18, 17), "S": (15, 16, 16, 14, 1, 1, 30),
    "T": (31, 4, 4, 4, 4, 4, 4), "U": (17, 17, 17, 17, 17, 17, 14),
    "V": (17, 17, 17, 17, 17, 10, 4), "W": (17, 17, 17, 21, 21, 21, 10),
    "X": (17, 17, 10, 4, 10, 17, 17), "Y": (17, 17, 17, 10, 4, 4, 4),
    "Z": (31, 1, 2, 4, 8, 16, 31), ".": (0, 0, 0, 0, 0, 12, 12), ",": (0, 0, 0, 0, 12, 4, 8),
    "-": (0, 0, 0, 31, 0, 0, 0), "/": (0, 1, 2, 4, 8, 16, 0), "%": (24, 25, 2, 4, 8, 19, 3),
    "(": (2, 4, 8, 8, 8, 4, 2), ")": (8, 4, 2, 2, 2, 4, 8), ":": (0, 12, 12, 0, 12, 12, 0),
    "=": (0, 0, 31, 0, 31, 0, 0), "+": (0, 4, 4, 31, 4, 4, 0), "_": (0, 0, 0, 0, 0, 0, 31),
    "'": (4, 4, 8, 0, 0, 0, 0), ">": (8, 4, 2, 1, 2, 4, 8), "<": (2, 4, 8, 16, 8, 4, 2),
    "#": (10, 10, 31, 10, 31, 10, 10), "*": (0, 4, 21, 14, 21, 4, 0),
}

WHITE, BLACK, GREY, LIGHT = (255, 255, 255), (0, 0, 0), (110, 110, 110), (225, 225, 225)
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75)]


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray(WHITE * (w * h))

    def dot(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < self.h:
            i = 3 * (y * self.w + x)
            self.px[i:i + 3] = bytes(c)

    def rect(self, x0, y0, x1, y1, c):
        for y in range(max(0, int(y0)), min(self.h, int(y1))):
            for x in range(max(0, int(x0)), min(self.w, int(x1))):
                i = 3 * (y * self.w + x)
                self.px[i:i + 3] = bytes(c)

    def line(self, x0, y0, x1, y1, c, width=2):
        n = int(abs(x1 - x0) + abs(y1 - y0)) + 1
        for i in range(n + 1):
            t = i / n
            x, y = round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0))
            for dx in range(width):
                for dy in range(width):
                    self.dot(x + dx - width // 2, y + dy - width // 2, c)

    def text(self, x, y, s, c=BLACK, scale=2, anchor="left"):
        s = str(s).upper()
        wpx = len(s) * 6 * scale
        if anchor == "center":
            x -= wpx // 2
        elif anchor == "right":
            x -= wpx
        for ch in s:
            rows = FONT.get(ch, FONT["*"])
            for r, bits in enumerate(rows):
                for b in range(5):
                    if bits & (16 >> b):
                        self.rect(x + b * scale, y + r * scale, x + (b + 1) * scale,
                                  y + (r + 1) * scale, c)
            x += 6 * scale

    def save(self, path):
        raw = b"".join(b"\x00" + bytes(self.px[3 * y * self.w:3 * (y + 1) * self.w])
                       for y in range(self.h))

        def chunk(tag, data):
            return (struct.pack(">I", len(data)) + tag + data
                    + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))
        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
        with open(path, "wb") as f:
            f.write(png)


def nice_max(v):
    """A round axis maximum >= v."""
    if v <= 0:
        return 1.0
    e = 10 ** len(str(int(v))) / 10 if v >= 1 else 10 ** -len(str(int(1 / v)))
    for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def fmt(v):
    if v >= 1e6:
        return "%.1fM" % (v / 1e6)
    if v >= 1e4:
        return "%.0fk" % (v / 1e3)
    return ("%.0f" % v) if v >= 100 else ("%.1f" % v) if v >= 10 else ("%.2f" % v)


def bar_chart(path, title, ylabel, groups, series, values, notes=()):
    """values[s][g]: bar of series s in group g (None = missing)."""
    W, H, L, R, T, B = 900, 540, 90, 30, 70, 90
    cv = Canvas(W, H)
    cv.text(W // 2, 18, title, anchor="center")
    top = nice_max(max([v for row in values for v in row if v is not None] + [1e-9]) * 1.1)
    for k in range(6):
        y = T + (H - T - B) * (1 - k / 5)
        cv.line(L, y, W - R, y, LIGHT, 1)
        cv.text(L - 8, y - 7, fmt(top * k / 5), GREY, anchor="right")
    cv.line(L, T, L, H - B, BLACK, 2)
    cv.line(L, H - B, W - R, H - B, BLACK, 2)
    cv.text(12, T - 30, ylabel, GREY)
    gw = (W - L - R) / len(groups)
    bw = gw * 0.7 / len(series)
    for g, name in enumerate(groups):
        x0 = L + g * gw + gw * 0.15
        for s in range(len(series)):
            v = values[s][g]
            if v is None:
                continue
            y = T + (H - T - B) * (1 - v / top)
            cv.rect(x0 + s * bw + 2, y, x0 + (s + 1) * bw - 2, H - B, COLOURS[s % len(COLOURS)])
            label = fmt(v)
            sc = 2 if len(label) * 12 <= bw - 2 else 1
            cv.text(x0 + (s + 0.5) * bw, y - 10 * sc, label, BLACK, scale=sc, anchor="center")
        cv.text(L + (g + 0.5) * gw, H - B + 12, name, anchor="center")
    x = L
    for s, name in enumerate(series):
        cv.rect(x, H - 42, x + 16, H - 26, COLOURS[s % len(COLOURS)])
        cv.text(x + 24, H - 41, name)
        x += 24 + 12 * (len(name) + 3)
    for i, n in enumerate(notes):
        cv.text(L, H - 20 + 0 * i, n, GREY, scale=1)
    cv.save(path)


def line_chart(path, title, xlabel, ylabel, xs, series, notes=()):
    """series: [(name, [y per x])]; x positions are categorical (evenly spaced)."""
    W, H, L, R, T, B = 900, 540, 100, 40, 70, 110
    cv = Canvas(W, H)
    cv.text(W // 2, 18, title, anchor="center")
    top = nice_max(max(v for _, ys in series for v in ys if v is not None) * 1.1)
    for k in range(6):
        y = T + (H - T - B) * (1 - k / 5)
        cv.line(L, y, W - R, y, LIGHT, 1)
        cv.text(L - 8, y - 7, fmt(top * k / 5), GREY, anchor="right")
    cv.line(L, T, L, H - B, BLACK, 2)
    cv.line(L, H - B, W - R, H - B, BLACK, 2)
    cv.text(12, T - 30, ylabel, GREY)
    cv.text((L + W - R) // 2, H - B + 34, xlabel, GREY, anchor="center")

    def px(i):
        return L + 40 + i * (W - L - R - 80) / max(1, len(xs) - 1)
    for i, x in enumerate(xs):
        cv.text(px(i), H - B + 12, x, anchor="center")
    # drawn last to first, so the first series (e.g. "ideal", dashed) stays visible on top
    for s in reversed(range(len(series))):
        name, ys = series[s]
        c = COLOURS[s % len(COLOURS)]
        pts = [(px(i), T + (H - T - B) * (1 - y / top)) for i, y in enumerate(ys) if y is not None]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            if s == 0:  # dashed
                n = max(1, int(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 / 12))
                for k in range(0, n, 2):
                    cv.line(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n,
                            x0 + (x1 - x0) * (k + 1) / n, y0 + (y1 - y0) * (k + 1) / n, c, 3)
            else:
                cv.line(x0, y0, x1, y1, c, 5 if s == len(series) - 1 else 3)
        for x, y in pts:
            cv.rect(x - 4, y - 4, x + 5, y + 5, c)
    x, y = L, H - 52
    for s, (name, _) in enumerate(series):
        w = 24 + 12 * (len(name) + 3)
        if x + w > W - R:
            x, y = L, y + 22
        cv.rect(x, y, x + 16, y + 16, COLOURS[s % len(COLOURS)])
        cv.text(x + 24, y + 1, name)
        x += w
    for i, n in enumerate(notes):
        cv.text(L, H - 12, n, GREY, scale=1)
    cv.save(path)


# ----------------------------------------------------------------------------------------------
# inputs


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def by_obj(doc):
    return {r["objective"]: r for r in doc["results"]} if doc else {}


def rounds(raw, pattern):
    """Every round's document of pattern % N, N = 1, 2, ... (also the unnumbered name)."""
    docs = []
    for n in range(1, 100):
        d = load(os.path.join(raw, pattern % ("-r%d" % n)))
        if d is None:
            break
        docs.append(d)
    return docs or [d for d in [load(os.path.join(raw, pattern % ""))] if d]


def gather(raw):
    base_v, base_t, all_rounds = {}, {}, {}
    machine = None
    for o in OBJS:
        for side, pattern, dest in (("vlmae", "base-vlmae-" + o + "%s/bench.json", base_v),
                                    ("torch", "base-torch-" + o + "%s.json", base_t)):
            docs = rounds(raw, pattern)
            rs = [by_obj(d)[o] for d in docs if o in by_obj(d)]
            if side == "vlmae" and docs:
                machine = machine or docs[0]
            if rs:
                best = dict(min(rs, key=lambda r: r["ms_per_step"]))
                best["rounds"] = len(rs)
                best["ms_per_step_rounds"] = [r["ms_per_step"] for r in rs]
                best["cpu_s_per_step_rounds"] = [r["cpu_s_per_step"] for r in rs]
                dest[o] = best
                all_rounds["%s-%s" % (side, o)] = docs
    tiny_vd = load(os.path.join(raw, "tiny-vlmae", "bench.json"))
    tiny_td = load(os.path.join(raw, "tiny-torch.json"))
    scale = {k: load(os.path.join(raw, k, "bench.json")) for k in ("scale-np1t1", "scale-np2t1", "scale-np1t2")}
    torch_any = load(os.path.join(raw, "base-torch-vlmae.json")) or tiny_td
    return {"base_vlmae": base_v, "base_torch": base_t, "rounds": all_rounds, "tiny_vlmae": by_obj(tiny_vd), "tiny_torch": by_obj(tiny_td),
            "scale": scale, "machine": machine or tiny_vd, "torch": torch_any, "tiny_setup": (tiny_vd or {}).get("setup")}


# ----------------------------------------------------------------------------------------------
# the multi-node model (bench/README.md)


def allreduce_s(G, W, nvlink, ib, per_node, hierarchical):
    """Seconds to all-reduce G bytes over W GPUs: ring 2(W-1)/W G / bw, bw = NVLink inside a node,
    the per-GPU InfiniBand link when the ring leaves the node; hierarchical: reduce-scatter and
    all-gather inside each node over NVLink, the node-level all-reduce of G/per_node per GPU over
    its own NIC."""
    if W <= 1:
        return 0.0
    if W <= per_node:
        return 2 * (W - 1) / W * G / nvlink
    if not hierarchical:
        return 2 * (W - 1) / W * G / ib
    n = W / per_node
    return 2 * (per_node - 1) / per_node * G / nvlink + 2 * (n - 1) / n * (G / per_node) / ib


def model_rows(res, a):
    """Rows of the multi-node table for the base model (objective res)."""
    G = res["grad_bytes"]
    on, mo = res["gmacs_full_online"], res["gmacs_full_momentum"]
    flops = res["train_gflop_per_sample"] * 1e9
    t_comp = flops * a.gpu_batch / (a.gpu_peak_tflops * 1e12 * a.gpu_mfu)
    bwd_share = 2 * on / (3 * on + mo)  # backward FLOPs / all FLOPs of a step
    rows = []
    for ibg in a.ib_gbits:
        ib = ibg * 1e9 / 8
        for W in a.gpus:
            for hier in (False, True):
                if W <= a.gpus_per_node and hier:
                    continue
                t_ar = allreduce_s(G, W, a.nvlink_gbs * 1e9, ib, a.gpus_per_node, hier)
                exposed = max(0.0, t_ar - a.overlap * bwd_share * t_comp)
                t_no, t_ov = t_comp + t_ar, t_comp + exposed
                steps = a.texts / (W * a.gpu_batch)
                rows.append({"gpus": W, "ib_gbits": ibg, "inside_node": W <= a.gpus_per_node,
                             "algorithm": "ring" if W <= a.gpus_per_node else ("hierarchical" if hier else "flat ring"),
                             "compute_ms": 1e3 * t_comp, "allreduce_ms": 1e3 * t_ar, "exposed_ms": 1e3 * exposed,
                             "step_ms_no_overlap": 1e3 * t_no, "step_ms_overlap": 1e3 * t_ov,
                             "samples_per_s": W * a.gpu_batch / t_ov, "efficiency": t_comp / t_ov,
                             "epoch_h": steps * t_ov / 3600, "gpu_h_per_epoch": steps * t_ov / 3600 * W})
    return rows


# ----------------------------------------------------------------------------------------------
# the report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--git", default="")
    ap.add_argument("--gpus", default="8,16,32,64")
    ap.add_argument("--gpu-peak-tflops", type=float, default=989.0, help="H100/H200 SXM dense bf16")
    ap.add_argument("--gpu-mfu", type=float, default=0.30)
    ap.add_argument("--gpu-batch", type=int, default=64)
    ap.add_argument("--nvlink-gbs", type=float, default=450.0)
    ap.add_argument("--ib-gbits", default="200,400")
    ap.add_argument("--overlap", type=float, default=0.9)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--texts", type=float, default=7.04e6)
    a = ap.parse_args(argv)
    a.gpus = [int(x) for x in a.gpus.split(",")]
    a.ib_gbits = [float(x) for x in a.ib_gbits.split(",")]
    d = gather(a.raw)
    os.makedirs(a.out, exist_ok=True)
    mach = d["machine"] or {}
    m = mach.get("machine", {})
    setup = mach.get("setup", {})
    tor = d["torch"] or {}
    try:
        with open(os.path.join(a.raw, "machine.txt")) as f:
            machine_txt = f.read().strip()
    except OSError:
        machine_txt = ""
    L = []
    w = L.append
    w("# vlmae bench report")
    w("")
    w("Regenerate with `bench/run.sh` (or `make bench`); this file, `report.json`, `step_time.png` and "
      "`scaling.png` are its output. How to read it and the multi-node model: `bench/README.md`.")
    w("")
    w("## Machine")
    w("")
    if m:
        w("- %s, %d logical CPUs; %s; OpenMP threads per rank %d; fp32 peak estimate %.1f GFLOP/s per rank "
          "(cores x clock x FLOP/cycle of the vector FMA units: 32 for AVX2 and Zen 4's AVX-512, 64 for full-width AVX-512)." % (m.get("cpu"), m.get("logical_cpus", 0),
                                                                           m.get("host"), m.get("threads_per_rank", 0),
                                                                           m.get("peak_gflops_per_rank", 0)))
        w("- %s; vlmae %s%s; PyTorch %s (%s threads)." % (m.get("date"), mach.get("version", "?"),
                                                        " at git " + a.git if a.git else "",
                                                        tor.get("torch", "?"), tor.get("threads", "?")))
    if machine_txt:
        for line in machine_txt.splitlines():
            w("- " + line)
    w("- A shared machine: other jobs ran during the measurement (load averages above are 1-minute "
      "values). Wall times are therefore noisy; each step's CPU time (all threads) is given beside it, "
      "and vlmae and PyTorch were timed alternately, objective by objective, so both saw the same load.")
    w("")

    # -- base model, vlmae vs PyTorch
    bv, bt = d["base_vlmae"], d["base_torch"]
    step_png = False
    if bv:
        B, T = setup.get("batch_per_rank"), setup.get("text_len")
        w("## %s model: step time, MACs, MFU, memory, epoch (batch %s per rank, %s text tokens)"
          % (setup.get("model", "?").capitalize(), B, T))
        w("")
        w("Full trainer step (forward, backward, AdamW, momentum EMA, queue), median of %s steps after %s "
          "warm-up (the better of %s rounds, each side; every round in report.json), fp32 on the CPU. ITC queue %s. MACs per sample of one training forward pass (thop: "
          "Linear layers only, as the paper's Table 8, whose values at 256 px and 16 tokens are in brackets; "
          "full: plus the attention products)."
          % (setup.get("steps"), setup.get("warmup"), next(iter(bv.values())).get("rounds", 1),
             next(iter(bv.values()))["queue_size"]))
        w("")
        w("| objective | vlmae s/step: median (min) | CPU s/step | PyTorch s/step: median (min) | CPU s/step "
          "| vlmae / PyTorch: median | min | CPU time |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for o in OBJS:
            if o not in bv:
                continue
            r, t = bv[o], bt.get(o)
            w("| %s | %.2f (%.2f) | %.2f | %s | %s | %s | %s | %s |" % (
                o, r["ms_per_step"] / 1e3, r["ms_min"] / 1e3, r["cpu_s_per_step"],
                "%.2f (%.2f)" % (t["ms_per_step"] / 1e3, t["ms_min"] / 1e3) if t else "-",
                "%.2f" % t["cpu_s_per_step"] if t else "-",
                "%.2f" % (r["ms_per_step"] / t["ms_per_step"]) if t else "-",
                "%.2f" % (r["ms_min"] / t["ms_min"]) if t else "-",
                "**%.2f**" % (r["cpu_s_per_step"] / t["cpu_s_per_step"]) if t else "-"))
        w("")
        w("| objective | GMACs thop (paper) | GMACs full | train GFLOP/sample | MFU vlmae | MFU PyTorch "
          "| peak RSS vlmae / PyTorch MiB | arena MiB |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        peak = m.get("peak_gflops_per_rank", 1) * 1e9
        for o in OBJS:
            if o not in bv:
                continue
            r, t = bv[o], bt.get(o)
            mfu_t = (r["train_gflop_per_sample"] * 1e9 * B / (t["ms_per_step"] / 1e3) / peak) if t else None
            w("| %s | %.2f (%.1f) | %.2f | %.1f | %.1f%% | %s | %.0f / %s | %.0f |" % (
                o, r["gmacs_thop"], PAPER_GMACS[o], r["gmacs_full"], r["train_gflop_per_sample"], 100 * r["mfu"],
                "%.1f%%" % (100 * mfu_t) if mfu_t else "-", r["peak_rss_mib"],
                "%.0f" % t["peak_rss_mib"] if t else "-", r["arena_mib"]))
        w("")
        w("A ratio below 1 means vlmae is faster. On a shared machine the CPU-time ratio (bold) is the one to "
          "trust: the wall-time ratios move with the other jobs' load. MFU from the median step time. Parameters: %d online (+%d momentum); gradient %.0f MB "
          "(fp32); state (parameters, gradients, AdamW moments, momentum copy, queues) %.0f MiB."
          % (r["params"], r["momentum_params"], r["grad_bytes"] / 1e6, r["state_mib"]))
        w("")
        # epoch and cost against ALBEF and TCL
        if "vlmae" in bv:
            W_ = setup.get("projection_world")
            w("### Epoch time and cost on the 4M set (%.2fM texts), %s ranks of this machine, batch %s per rank"
              % (setup.get("projection_texts", 0) / 1e6, W_, B))
            w("")
            w("Projection: measured step time x texts / (batch x ranks), i.e. perfect data-parallel scaling "
              "(the all-reduce is in the multi-node model below).")
            w("")
            w("| objective | steps/epoch | epoch h | rank-h/epoch | vs VLMAE: wall time | CPU time | GMACs thop "
              "| train FLOPs |")
            w("|---|---:|---:|---:|---:|---:|---:|---:|")
            for o in OBJS:
                if o in bv:
                    r, v = bv[o], bv["vlmae"]
                    w("| %s | %.0f | %.1f | %.0f | %.2fx | %.2fx | %.2fx | %.2fx |" % (
                        o, r["steps_per_epoch"], r["epoch_hours"], r["rank_hours_per_epoch"],
                        r["ms_per_step"] / v["ms_per_step"], r["cpu_s_per_step"] / v["cpu_s_per_step"],
                        r["gmacs_thop"] / v["gmacs_thop"], r["train_gflop_per_sample"] / v["train_gflop_per_sample"]))
            w("")
        series = ["vlmae wall"] + (["PyTorch wall"] if bt else []) + ["vlmae CPU"] + (["PyTorch CPU"] if bt else [])
        vals = [[bv[o]["ms_per_step"] / 1e3 if o in bv else None for o in OBJS]]
        if bt:
            vals.append([bt[o]["ms_per_step"] / 1e3 if o in bt else None for o in OBJS])
        vals.append([bv[o]["cpu_s_per_step"] if o in bv else None for o in OBJS])
        if bt:
            vals.append([bt[o]["cpu_s_per_step"] if o in bt else None for o in OBJS])
        bar_chart(os.path.join(a.out, "step_time.png"),
                  "%s model: seconds per step (wall) and CPU seconds per step, batch %s" % (setup.get("model", "?"), B),
                  "seconds",
                  list(OBJS), series, vals)
        step_png = True
        w("![step time per objective](step_time.png)")
        w("")

    # -- tiny model
    tv, tt = d["tiny_vlmae"], d["tiny_torch"]
    if tv:
        ts = d["tiny_setup"] or {}
        w("## Tiny model (the test / demo size): vlmae vs PyTorch, batch %s, %s tokens, %s steps"
          % (ts.get("batch_per_rank"), ts.get("text_len"), ts.get("steps")))
        w("")
        w("| objective | vlmae ms/step | CPU s/step | PyTorch ms/step | CPU s/step | vlmae / PyTorch (wall) | (CPU) |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for o in OBJS:
            if o in tv:
                r, t = tv[o], tt.get(o)
                w("| %s | %.1f | %.3f | %s | %s | %s | %s |" % (
                    o, r["ms_per_step"], r["cpu_s_per_step"], "%.1f" % t["ms_per_step"] if t else "-",
                    "%.3f" % t["cpu_s_per_step"] if t else "-",
                    "%.2f" % (r["ms_per_step"] / t["ms_per_step"]) if t else "-",
                    "**%.2f**" % (r["cpu_s_per_step"] / t["cpu_s_per_step"]) if t else "-"))
        w("")

    # -- measured scaling
    sc = d["scale"]
    meas = []
    if sc.get("scale-np1t1") and sc.get("scale-np2t1"):
        s1, s2 = sc["scale-np1t1"], sc["scale-np2t1"]
        r1, r2 = s1["results"][0], s2["results"][0]
        st = s1["setup"]
        w("## Measured scaling on this machine: 1 and 2 MPI ranks (model %s, objective %s, batch %s per rank)"
          % (st["model"], r1["objective"], st["batch_per_rank"]))
        w("")
        w("Weak scaling (batch per rank fixed), one OpenMP thread per rank so every rank has its own core; "
          "the all-reduce (MPI_Allreduce of the fp32 gradients, %.0f MB) goes through shared memory. "
          "The model predicts the 2-rank step as the 1-rank step + the measured all-reduce (vlmae on the CPU "
          "does not overlap it with backward)." % (r1["grad_bytes"] / 1e6))
        w("")
        w("| ranks x threads | s/step | CPU s/step | samples/s (all ranks) | all-reduce ms | speed-up | efficiency |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        rows = [("1 x 1", r1), ("2 x 1", r2)]
        if sc.get("scale-np1t2"):
            rows.append(("1 x 2", sc["scale-np1t2"]["results"][0]))
        for name, r in rows:
            ranks = 2 if name.startswith("2") else 1
            sp = r["samples_per_s"] / r1["samples_per_s"]
            w("| %s | %.2f | %.2f | %.2f | %.1f | %.2fx | %.0f%% |" % (
                name, r["ms_per_step"] / 1e3, r["cpu_s_per_step"], r["samples_per_s"], r["allreduce_ms"], sp,
                100 * sp / ranks if name != "1 x 2" else 100 * sp / 2))
        pred = r1["ms_per_step"] + r2["allreduce_ms"]
        w("")
        w("Model: 2-rank step = %.2f s (1-rank step) + %.2f s (all-reduce) = %.2f s; measured %.2f s. "
          "Shared-memory all-reduce bandwidth: %.2f GB/s bus bandwidth (2(W-1)/W x bytes / time)."
          % (r1["ms_per_step"] / 1e3, r2["allreduce_ms"] / 1e3, pred / 1e3, r2["ms_per_step"] / 1e3,
             (r2["grad_bytes"] / (r2["allreduce_ms"] / 1e3) / 1e9) if r2["allreduce_ms"] > 0 else 0))
        w("")
        meas = [(name, r["samples_per_s"]) for name, r in rows]

    # -- multi-node model (needs the base model's counted FLOPs and gradient size)
    base_ok = setup.get("model") == "base"
    if bv and not base_ok:
        w("## Multi-node model")
        w("")
        w("(skipped: the report's main runs used the %s model, not base)" % setup.get("model"))
        w("")
    if bv.get("vlmae") and base_ok:
        w("## Multi-node model: base model on GPUs (bench/README.md)")
        w("")
        w("Per-GPU compute from the counted training FLOPs at an assumed MFU (no GPU measurement here: no GPU "
          "was lent when this report was made): %.0f TFLOP/s peak x %.0f%% MFU, batch %d per GPU. "
          "All-reduce of the fp32 gradients, ring 2(W-1)/W x bytes over NVLink %.0f GB/s inside a node of %d, "
          "over InfiniBand when it spans nodes (flat ring: every byte crosses the per-GPU NIC; hierarchical: "
          "NVLink reduce-scatter, then 1/%d of the bytes per GPU across nodes). Overlap: %.0f%% of backward "
          "hides all-reduce time (bucketed, as DDP)."
          % (a.gpu_peak_tflops, 100 * a.gpu_mfu, a.gpu_batch, a.nvlink_gbs, a.gpus_per_node, a.gpus_per_node,
             100 * a.overlap))
        w("")
    model = {}
    for o in OBJS:
        if bv.get(o) and base_ok:
            model[o] = model_rows(bv[o], a)
    if "vlmae" in model:
        w("| GPUs | IB Gb/s | all-reduce | compute ms | all-reduce ms | exposed ms | step ms (no overlap) "
          "| step ms (overlap) | samples/s | efficiency | epoch h | GPU-h/epoch |")
        w("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in model["vlmae"]:
            if r["inside_node"] and r["ib_gbits"] != a.ib_gbits[0]:
                continue
            w("| %d | %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f%% | %.2f | %.2f |" % (
                r["gpus"], "-" if r["inside_node"] else "%.0f" % r["ib_gbits"], r["algorithm"], r["compute_ms"],
                r["allreduce_ms"], r["exposed_ms"], r["step_ms_no_overlap"], r["step_ms_overlap"],
                r["samples_per_s"], 100 * r["efficiency"], r["epoch_h"], r["gpu_h_per_epoch"]))
        w("")
        w("Same model, all three objectives, 8 and 64 GPUs (IB %.0f Gb/s, hierarchical), one epoch:" % a.ib_gbits[-1])
        w("")
        w("| objective | train GFLOP/sample | 8 GPUs: epoch h | GPU-h | 64 GPUs: epoch h | GPU-h | vs VLMAE |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for o in OBJS:
            if o not in model:
                continue
            pick = lambda W: [r for r in model[o] if r["gpus"] == W and r["ib_gbits"] == a.ib_gbits[-1]  # noqa: E731
                              and r["algorithm"] in ("ring", "hierarchical")][0]
            r8, r64 = pick(8), pick(64)
            v64 = [r for r in model["vlmae"] if r["gpus"] == 64 and r["ib_gbits"] == a.ib_gbits[-1]
                   and r["algorithm"] == "hierarchical"][0]
            w("| %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.2fx |" % (
                o, bv[o]["train_gflop_per_sample"], r8["epoch_h"], r8["gpu_h_per_epoch"], r64["epoch_h"],
                r64["gpu_h_per_epoch"], r64["gpu_h_per_epoch"] / v64["gpu_h_per_epoch"]))
        w("")
        series = []
        for ibg in a.ib_gbits:
            for hier in (False, True):
                ys = []
                for W in a.gpus:
                    rr = [r for r in model["vlmae"] if r["gpus"] == W and (r["inside_node"] or (
                        r["ib_gbits"] == ibg and (r["algorithm"] == "hierarchical") == hier))]
                    ys.append(rr[0]["samples_per_s"] if rr else None)
                series.append(("IB %.0f %s" % (ibg, "hier" if hier else "ring"), ys))
        ideal = model["vlmae"][0]
        series.insert(0, ("ideal", [W * a.gpu_batch / (ideal["compute_ms"] / 1e3) for W in a.gpus]))
        line_chart(os.path.join(a.out, "scaling.png"), "VLMAE base: modelled samples/s vs GPUs",
                   "GPUs", "samples/s", [str(x) for x in a.gpus], series,
                   notes=("assumed %.0f%% MFU of %.0f TFLOP/s, batch %d/GPU, NVLink %.0f GB/s, overlap %.0f%%"
                          % (100 * a.gpu_mfu, a.gpu_peak_tflops, a.gpu_batch, a.nvlink_gbs, 100 * a.overlap),))
        w("![modelled scaling](scaling.png)")
        w("")
    if meas:
        bar_chart(os.path.join(a.out, "scaling_cpu.png"),
                  "Measured: model %s on this CPU, ranks x threads" % sc["scale-np1t1"]["setup"]["model"],
                  "samples/s", [x for x, _ in meas], ["vlmae"], [[v for _, v in meas]])
        w("![measured CPU scaling](scaling_cpu.png)")
        w("")

    out = {"git": a.git, "machine": m, "machine_txt": machine_txt, "setup": setup, "base_vlmae": bv,
           "base_rounds": d["rounds"],
           "base_torch": bt, "torch": {k: v for k, v in tor.items() if k != "results"},
           "tiny_vlmae": tv, "tiny_torch": tt, "scale": sc, "model_assumptions": {
               "gpu_peak_tflops": a.gpu_peak_tflops, "gpu_mfu": a.gpu_mfu, "gpu_batch": a.gpu_batch,
               "nvlink_gbs": a.nvlink_gbs, "ib_gbits": a.ib_gbits, "overlap": a.overlap,
               "gpus_per_node": a.gpus_per_node, "texts": a.texts}, "model": model}
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write("\n".join(L).rstrip() + "\n")
    print("report: wrote %s/report.md, report.json%s" % (a.out, ", step_time.png" if step_png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
