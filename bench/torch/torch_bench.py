#!/usr/bin/python3
"""torch_bench.py: the PyTorch yardstick of `vlmae bench` -- the same pre-training step (same model
sizes, batch, text length, queue, objective) in PyTorch, timed the same way.

    /usr/bin/python3 bench/torch/torch_bench.py [--model base|small|tiny] [--objective all|albef,tcl,vlmae]
        [--batch B] [--text-len T] [--steps N] [--warmup N] [--queue Q] [--threads N]
        [--device cpu|cuda] [--bf16] [--fused-attention] [--json FILE]

The model and the losses are tests/reference/vlmae_ref.py (the independent PyTorch reference that
the C engine's parity test is checked against: same parameters, same forward), wrapped into a full
trainer step like vlmae's: temperature clamp, momentum EMA (torch._foreach), zero_grad, forward,
backward, AdamW (torch.optim, foreach), enqueue of the momentum features. Random choices (MAE
masks, MLM masks, ITM negatives) are drawn per step in torch. No dropout (the reference has none;
vlmae runs BERT's 0.1 dropout on the text side -- a few % of the text work, none of the image's).
On a GPU: --bf16 runs the step under torch.autocast(bfloat16) and --fused-attention swaps the
reference's attention for F.scaled_dot_product_attention (PyTorch >= 2.0) -- what a PyTorch user
would run; on the CPU it is fp32 with PyTorch's own kernels (MKL/oneDNN or OpenBLAS, OpenMP).
Prints a table and, with --json, writes the numbers.
"""
import argparse
import json
import math
import os
import platform
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import vlmae_ref as ref  # noqa: E402

# model_config_base / config_small / model_config_tiny of src/model/model.c and src/cli/bench.c
BASE = {
    "image_size": 256, "patch_size": 16,
    "vision_width": 768, "vision_depth": 12, "vision_heads": 12, "vision_mlp": 3072,
    "vision_ln_eps": 1e-6,
    "vocab_size": 30522, "text_width": 768, "text_heads": 12, "text_mlp": 3072, "text_layers": 6,
    "fusion_layers": 6, "max_text_len": 512, "text_ln_eps": 1e-12,
    "decoder_width": 512, "decoder_depth": 4, "decoder_heads": 8, "decoder_mlp": 2048,
    "embed_dim": 256, "queue_size": 65536, "mask_ratio": 0.5, "norm_pix_loss": 1,
    "w_itc": 1.0, "w_itm": 1.0, "w_mlm": 1.0, "w_rmim": 1.0, "w_ifr": 1.0,
}
PRESETS = {
    "base": {},
    "small": {"image_size": 128, "vision_width": 384, "vision_depth": 6, "vision_heads": 6,
              "vision_mlp": 1536, "text_width": 384, "text_heads": 6, "text_mlp": 1536,
              "text_layers": 3, "fusion_layers": 3, "max_text_len": 64, "decoder_width": 256,
              "decoder_depth": 2, "decoder_heads": 8, "decoder_mlp": 1024, "embed_dim": 128,
              "queue_size": 4096},
    "tiny": {"image_size": 32, "patch_size": 8, "vision_width": 32, "vision_depth": 2,
             "vision_heads": 4, "vision_mlp": 64, "text_width": 32, "text_heads": 4, "text_mlp": 64,
             "text_layers": 2, "fusion_layers": 2, "max_text_len": 32, "decoder_width": 24,
             "decoder_depth": 2, "decoder_heads": 4, "decoder_mlp": 48, "embed_dim": 16,
             "queue_size": 64},
}
CLS, MASK, PAD = 101, 103, 0  # bert-base-uncased
MOMENTUM, ALPHA, MLM_PROB = 0.995, 0.4, 0.15


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    return -1.0


def sdpa_attention(q, k, v, heads, key_add=None):
    """ref.attention through F.scaled_dot_product_attention (fused kernels on a GPU)."""
    B, Lq, W = q.shape
    Lk = k.shape[1]
    hd = W // heads
    q = q.reshape(B, Lq, heads, hd).transpose(1, 2)
    k = k.reshape(B, Lk, heads, hd).transpose(1, 2)
    v = v.reshape(B, Lk, heads, hd).transpose(1, 2)
    mask = None if key_add is None else key_add[:, None, None, :].to(q.dtype)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return o.transpose(1, 2).reshape(B, Lq, W)


class Bench:
    def __init__(self, cfg, B, T, dev, gen):
        self.cfg, self.B, self.T, self.dev, self.gen = cfg, B, T, dev, gen
        P = {}
        for name, shape in ref.param_specs(cfg) + ref.optional_param_specs(cfg):
            if name == "temp":
                t = torch.full(shape, 0.07)
            elif name.endswith(".bias") or name == "mlm.bias":
                t = torch.zeros(shape)
            elif name.endswith(".weight") and len(shape) == 1:
                t = torch.ones(shape)
            else:
                t = 0.02 * torch.randn(shape, generator=gen)
            P[name] = t.to(dev).requires_grad_(True)
        self.P = P
        self.tower = [n for n, _ in ref.tower_specs(cfg)]
        self.M = {n: P[n].detach().clone() for n in self.tower}
        decay = [p for n, p in P.items() if p.ndim >= 2 or n.endswith(("cls_token", "mask_token"))]
        other = [p for n, p in P.items() if not (p.ndim >= 2 or n.endswith(("cls_token", "mask_token")))]
        kw = {"foreach": True} if "foreach" in torch.optim.AdamW.__init__.__code__.co_varnames else {}
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.02},
                                      {"params": other, "weight_decay": 0.0}], lr=1e-4, **kw)
        E, Q, H = cfg["embed_dim"], cfg["queue_size"], cfg["image_size"]
        self.iq = F.normalize(torch.randn(E, Q, generator=gen), dim=0).to(dev)
        self.tq = F.normalize(torch.randn(E, Q, generator=gen), dim=0).to(dev)
        self.ptr = 0
        self.image = torch.randn(B, 3, H, H, generator=gen).to(dev)
        self.image2 = torch.randn(B, 3, H, H, generator=gen).to(dev)
        lo = 1000 if cfg["vocab_size"] > 2000 else 3
        ids = torch.randint(lo, lo + (cfg["vocab_size"] - lo) // 2, (B, T), generator=gen)
        ids[:, 0] = CLS
        self.text_ids = ids.to(dev)
        self.text_mask = torch.ones(B, T, dtype=torch.long, device=dev)

    def choices(self):
        """This step's random choices (the C side draws them in choices.c)."""
        cfg, B, T, g = self.cfg, self.B, self.T, self.gen
        N = cfg["N"]
        if cfg["objective"] == "vlmae":
            K = ref.expected_keep(cfg)
            shuffle = torch.argsort(torch.rand(B, N, generator=g), dim=1)
        else:
            K = N
            shuffle = torch.arange(N).repeat(B, 1)
        ids = self.text_ids.cpu()
        sel = (torch.rand(B, T, generator=g) < MLM_PROB) & (ids != PAD) & (ids != CLS)
        labels = torch.where(sel, ids, torch.full_like(ids, -100))
        u = torch.rand(B, T, generator=g)
        mlm = ids.clone()
        mlm[sel & (u < 0.8)] = MASK
        rnd = sel & (u >= 0.8) & (u < 0.9)
        mlm[rnd] = torch.randint(0, cfg["vocab_size"], (int(rnd.sum()),), generator=g)
        neg = lambda: (torch.arange(B) + torch.randint(1, B, (B,), generator=g)) % B  # noqa: E731
        b = {"ids_keep": shuffle[:, :K], "ids_restore": torch.argsort(shuffle, dim=1),
             "mlm_ids": mlm, "mlm_labels": labels, "itm_neg_image": neg(), "itm_neg_text": neg(),
             "region": torch.ones(B, N)}
        return {k: v.to(self.dev) for k, v in b.items()}

    def step(self, autocast):
        P, M = self.P, self.M
        with torch.no_grad():
            P["temp"].clamp_(0.001, 0.5)
            mo = [M[n] for n in self.tower]
            torch._foreach_mul_(mo, MOMENTUM)
            torch._foreach_add_(mo, [P[n].detach() for n in self.tower], alpha=1 - MOMENTUM)
        self.opt.zero_grad(set_to_none=True)
        batch = self.choices()
        batch.update({"image": self.image, "text_ids": self.text_ids, "text_mask": self.text_mask,
                      "image_queue": self.iq, "text_queue": self.tq,
                      "alpha": torch.tensor([ALPHA], device=self.dev)})
        if self.cfg["objective"] == "tcl":
            batch["image2"] = self.image2
        with autocast():
            losses, acts = ref.forward(self.cfg, P, M, batch)
        losses["total"].backward()
        self.opt.step()
        with torch.no_grad():  # enqueue this step's momentum features
            B, Q = self.B, self.cfg["queue_size"]
            self.iq[:, self.ptr:self.ptr + B] = acts["img_feat_m"].t().float()
            self.tq[:, self.ptr:self.ptr + B] = acts["txt_feat_m"].t().float()
            self.ptr = (self.ptr + B) % Q
        return {k: float(v) for k, v in losses.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(PRESETS), default="base")
    ap.add_argument("--objective", default="all")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--text-len", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--queue", type=int, default=0, help="queue length (default the model's)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: OMP_NUM_THREADS or all CPUs)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (GPU)")
    ap.add_argument("--fused-attention", action="store_true",
                    help="F.scaled_dot_product_attention instead of the reference's attention")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    threads = a.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count()
    torch.set_num_threads(threads)
    dev = torch.device(a.device)
    if a.fused_attention:
        if not hasattr(F, "scaled_dot_product_attention"):
            sys.exit("torch_bench: --fused-attention needs PyTorch >= 2.0 (this is %s)" % torch.__version__)
        ref.attention = sdpa_attention
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def autocast():
        if a.bf16:
            return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
        return torch.autograd.profiler.record_function("step")  # a no-op context

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    objs = ["albef", "tcl", "vlmae"] if a.objective == "all" else a.objective.split(",")
    results = []
    print("torch_bench: torch %s, %s, %d threads, %s%s, model %s, batch %d, text %d, %d steps after %d warm-up"
          % (torch.__version__, a.device, threads, "bf16 autocast" if a.bf16 else "fp32",
             ", fused attention" if a.fused_attention else "", a.model, a.batch, a.text_len, a.steps, a.warmup))
    print("%-9s %10s %10s %9s" % ("objective", "ms/step", "samples/s", "peak RSS"))
    for obj in objs:
        if obj not in ref.OBJECTIVES:
            sys.exit("torch_bench: unknown objective %r" % obj)
        raw = dict(BASE)
        raw.update(PRESETS[a.model])
        raw["objective"] = obj
        raw["max_text_len"] = max(raw["max_text_len"], a.text_len)
        Q = a.queue or raw["queue_size"]
        raw["queue_size"] = max(a.batch, Q // a.batch * a.batch)
        cfg = ref.load_config(raw)
        rss_ok = reset_peak_rss()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        gen = torch.Generator().manual_seed(a.seed)
        t0 = time.perf_counter()
        bench = Bench(cfg, a.batch, a.text_len, dev, gen)
        setup = time.perf_counter() - t0
        for _ in range(a.warmup):
            bench.step(autocast)
        sync()
        times, cpu = [], []
        for _ in range(a.steps):
            t, c = time.perf_counter(), time.process_time()
            losses = bench.step(autocast)
            sync()
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        med = float(np.median(times))
        r = {"objective": obj, "queue_size": cfg["queue_size"], "setup_s": round(setup, 2),
             "ms_per_step": 1e3 * med, "ms_mean": 1e3 * float(np.mean(times)),
             "ms_min": 1e3 * min(times), "ms_max": 1e3 * max(times),
             "cpu_s_per_step": float(np.median(cpu)),
             "samples_per_s": a.batch / med, "peak_rss_mib": peak_rss_mib(),
             "peak_rss_per_objective": rss_ok, "loss": losses}
        if dev.type == "cuda":
            r["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
        results.append(r)
        print("%-9s %10.1f %10.3f %9.0f" % (obj, r["ms_per_step"], r["samples_per_s"], r["peak_rss_mib"]))
        sys.stdout.flush()
        del bench
    out = {"tool": "torch_bench", "torch": torch.__version__, "python": platform.python_version(),
           "device": a.device, "threads": threads, "bf16": a.bf16, "fused_attention": a.fused_attention,
           "mkldnn": bool(torch.backends.mkldnn.is_available()),
           "blas": "mkl" if torch.backends.mkl.is_available() else "other",
           "setup": {"model": a.model, "batch": a.batch, "text_len": a.text_len, "steps": a.steps,
                     "warmup": a.warmup},
           "results": results}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
