#!/usr/bin/python3
"""selftest.py: checks of the PyTorch reference itself (no C engine needed).

    /usr/bin/python3 tests/reference/selftest.py [--quick]

1. .vlt round trip (float32, int32, 0-d, empty tensors) and rejection of a corrupt file.
2. Building blocks against independent formulations: patchify_conv+linear == Conv2d; MAE's
   patchify einsum; MAE's get_2d_sincos_pos_embed steps (meshgrid(w, h), grid[0], grid[1]); the ViT
   block == nn.TransformerEncoderLayer(norm_first=True); the BERT text layer ==
   nn.TransformerEncoderLayer(norm_first=False); the fusion layer == nn.TransformerDecoderLayer
   (post-LN self-attn, cross-attn, FFN); the MAE unshuffle; MLM and RMIM losses in ALBEF / MAE form.
3. torch.autograd.gradcheck (float64, fast mode) of the total loss with respect to every online
   parameter, objectives vlmae, albef and tcl (the teacher temperature held constant, as SPEC says);
   TCL's local MI loss and region pooling against plain loops.
4. parity.py end to end: the float32 reference against its own float64 results passes; a
   perturbed, missing or unknown gradient fails; degenerate cases (no masked text, empty region).
Prints one line per check and "selftest: N passed, M failed"; exit 0 iff all pass.
"""
import argparse
import io
import os
import sys
import tempfile
import contextlib

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import make_case  # noqa: E402
import parity  # noqa: E402
import vlmae_ref as ref  # noqa: E402
from vlt import VltError, read_vlt, write_vlt  # noqa: E402

RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print("selftest: %-58s %s %s" % (name, "ok  " if ok else "FAIL", detail))


def close(a, b, tol):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    err = float((a - b).abs().max()) if a.numel() else 0.0
    return a.shape == b.shape and err <= tol * max(1.0, float(b.abs().max())), "max err %.2e" % err


def tiny_cfg(objective="vlmae", **over):
    raw = dict(make_case.TINY)
    raw["objective"] = objective
    raw.update(over)
    return ref.load_config(raw)


# ----------------------------------------------------------------------------------------------


def test_vlt(tmp):
    path = os.path.join(tmp, "rt.vlt")
    t = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([-100, 7], np.int32),
         "scalar": np.float32(2.5), "empty": np.zeros((0, 3), np.float32),
         "f64": np.linspace(0, 1, 5), "i64": np.arange(4, dtype=np.int64)}
    write_vlt(path, t)
    r = read_vlt(path)
    ok = (list(r) == list(t) and r["a"].dtype == np.float32 and r["b"].dtype == np.int32
          and np.array_equal(r["a"], t["a"]) and np.array_equal(r["b"], t["b"])
          and r["scalar"].shape == (1,) and r["empty"].shape == (0, 3)
          and r["f64"].dtype == np.float32 and r["i64"].dtype == np.int32)
    check("vlt round trip", ok)
    raw = open(path, "rb").read()
    bad = 0
    for cut in (raw[:-2], b"VLT2" + raw[4:], raw + b"\0"):
        with open(path, "wb") as f:
            f.write(cut)
        try:
            read_vlt(path)
        except VltError:
            bad += 1
    check("vlt rejects truncated / bad magic / trailing bytes", bad == 3)


def test_blocks():
    torch.manual_seed(0)
    dt = torch.float64
    cfg = tiny_cfg()
    p, C = cfg["patch_size"], cfg["vision_width"]
    img = torch.randn(2, 3, cfg["image_size"], cfg["image_size"], dtype=dt)
    Wt, bias = torch.randn(C, cfg["P"], dtype=dt), torch.randn(C, dtype=dt)
    a = F.linear(ref.patchify_conv(img, p), Wt, bias)
    b = F.conv2d(img, Wt.view(C, 3, p, p), bias, stride=p).flatten(2).transpose(1, 2)
    check("patchify_conv (c,r,s) + linear == Conv2d", *close(a, b, 1e-12))

    h = cfg["grid"]
    x = img.reshape(2, 3, h, p, h, p)
    b = torch.einsum("nchpwq->nhwpqc", x).reshape(2, h * h, p * p * 3)
    check("patchify_mae (r,s,c) == MAE einsum", *close(ref.patchify_mae(img, p), b, 0))
    # a pixel spot check: patch (1,0) value at row 2, col 3, channel 1
    n, r_, s_, c_ = 1 * h + 0, 2, 3, 1
    check("patchify_mae spot pixel", float(ref.patchify_mae(img, p)[0, n, (r_ * p + s_) * 3 + c_])
          == float(img[0, c_, 1 * p + r_, 0 * p + s_]))

    # MAE's get_2d_sincos_pos_embed, followed step by step
    for D, g in ((24, 4), (16, 3), (512, 16)):
        gh = np.arange(g, dtype=np.float32)
        gw = np.arange(g, dtype=np.float32)
        grid = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, g, g)

        def one(dim, pos):
            om = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
            om = 1.0 / 10000 ** om
            o = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), om)
            return np.concatenate([np.sin(o), np.cos(o)], axis=1)
        emb = np.concatenate([one(D // 2, grid[0]), one(D // 2, grid[1])], axis=1)
        emb = np.concatenate([np.zeros((1, D)), emb], axis=0)
        ok, det = close(ref.sincos_2d_table(D, g), emb, 1e-12)
        check("2-D sin-cos table == MAE recipe (D=%d, grid %d)" % (D, g), ok, det)
    t = ref.sincos_2d_table(8, 4)
    # patch (i=1, j=2) -> row 1 + 6; first D/2 columns encode the column j=2: sin(2*1)=sin(2)
    check("sin-cos: first half encodes the column index",
          abs(t[7, 0] - np.sin(2.0)) < 1e-12 and abs(t[7, 4] - np.sin(1.0)) < 1e-12)

    # ViT block == nn.TransformerEncoderLayer(norm_first=True, gelu)
    heads, F_ = cfg["vision_heads"], cfg["vision_mlp"]
    layer = nn.TransformerEncoderLayer(C, heads, F_, dropout=0.0, activation=F.gelu,
                                       layer_norm_eps=1e-6, batch_first=True, norm_first=True)
    layer = layer.to(dt).train()
    with torch.no_grad():
        for prm in layer.parameters():
            prm.add_(0.3 * torch.randn_like(prm))
    P = {"b.norm1.weight": layer.norm1.weight, "b.norm1.bias": layer.norm1.bias,
         "b.norm2.weight": layer.norm2.weight, "b.norm2.bias": layer.norm2.bias,
         "b.attn.qkv.weight": layer.self_attn.in_proj_weight,
         "b.attn.qkv.bias": layer.self_attn.in_proj_bias,
         "b.attn.proj.weight": layer.self_attn.out_proj.weight,
         "b.attn.proj.bias": layer.self_attn.out_proj.bias,
         "b.mlp.fc1.weight": layer.linear1.weight, "b.mlp.fc1.bias": layer.linear1.bias,
         "b.mlp.fc2.weight": layer.linear2.weight, "b.mlp.fc2.bias": layer.linear2.bias}
    x = torch.randn(3, 7, C, dtype=dt)
    m01 = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 3 + [0] * 4])
    add = ref.additive_mask(m01, dt)
    with torch.no_grad():
        a = ref.vit_block(P, "b.", x, heads, 1e-6, add)
        b = layer(x, src_key_padding_mask=add)
    check("ViT/decoder block == TransformerEncoderLayer(norm_first)", *close(a, b, 1e-10))

    # BERT text layer == TransformerEncoderLayer(post-LN); fusion layer == TransformerDecoderLayer
    Ct, Ft, th = cfg["text_width"], cfg["text_mlp"], cfg["text_heads"]
    assert C == Ct, "the tiny config has equal widths so nn.TransformerDecoderLayer applies"
    enc = nn.TransformerEncoderLayer(Ct, th, Ft, dropout=0.0, activation=F.gelu,
                                     layer_norm_eps=1e-12, batch_first=True).to(dt).train()
    dec = nn.TransformerDecoderLayer(Ct, th, Ft, dropout=0.0, activation=F.gelu,
                                     layer_norm_eps=1e-12, batch_first=True).to(dt).train()
    with torch.no_grad():
        for prm in list(enc.parameters()) + list(dec.parameters()):
            prm.add_(0.3 * torch.randn_like(prm))

    def split(pre, mha, Pd):
        for i, s in enumerate("qkv"):
            Pd[pre + s + ".weight"] = mha.in_proj_weight[i * Ct:(i + 1) * Ct]
            Pd[pre + s + ".bias"] = mha.in_proj_bias[i * Ct:(i + 1) * Ct]
        Pd[pre + "o.weight"], Pd[pre + "o.bias"] = mha.out_proj.weight, mha.out_proj.bias

    def ffn(pre, lay, Pd, norm):
        Pd[pre + "ffn.fc1.weight"], Pd[pre + "ffn.fc1.bias"] = lay.linear1.weight, lay.linear1.bias
        Pd[pre + "ffn.fc2.weight"], Pd[pre + "ffn.fc2.bias"] = lay.linear2.weight, lay.linear2.bias
        Pd[pre + "ffn.ln.weight"], Pd[pre + "ffn.ln.bias"] = norm.weight, norm.bias

    c2 = dict(cfg)
    c2["text_layers"] = 1
    Pd = {}
    split("bert.layers.0.attn.", enc.self_attn, Pd)
    Pd["bert.layers.0.attn.ln.weight"], Pd["bert.layers.0.attn.ln.bias"] = (enc.norm1.weight,
                                                                            enc.norm1.bias)
    ffn("bert.layers.0.", enc, Pd, enc.norm2)
    split("bert.layers.1.attn.", dec.self_attn, Pd)
    Pd["bert.layers.1.attn.ln.weight"], Pd["bert.layers.1.attn.ln.bias"] = (dec.norm1.weight,
                                                                            dec.norm1.bias)
    split("bert.layers.1.cross.", dec.multihead_attn, Pd)
    Pd["bert.layers.1.cross.ln.weight"], Pd["bert.layers.1.cross.ln.bias"] = (dec.norm2.weight,
                                                                              dec.norm2.bias)
    ffn("bert.layers.1.", dec, Pd, dec.norm3)
    y = torch.randn(3, 5, C, dtype=dt)
    with torch.no_grad():
        a = ref.bert_layer(c2, Pd, 0, x, add)
        check("BERT text layer == TransformerEncoderLayer(post-LN)",
              *close(a, enc(x, src_key_padding_mask=add), 1e-10))
        a = ref.bert_layer(c2, Pd, 1, x, add, y)
        check("fusion layer == TransformerDecoderLayer(post-LN)",
              *close(a, dec(x, y, tgt_key_padding_mask=add), 1e-10))

    # MAE unshuffle: row n of [visible; mask] after gather is patch n
    B, N, K = 3, 16, 6
    shuffle = torch.argsort(torch.rand(B, N), dim=1)
    restore = torch.argsort(shuffle, dim=1)
    keep = shuffle[:, :K]
    vis = keep.to(dt)[:, :, None] + 1.0  # value = patch index + 1 on visible rows
    x_ = torch.cat([vis, torch.zeros(B, N - K, 1, dtype=dt)], dim=1)
    x_ = torch.gather(x_, 1, restore[:, :, None])
    want = torch.where(restore < K, torch.arange(N, dtype=dt) + 1, torch.zeros((), dtype=dt))
    check("MAE unshuffle via ids_restore", torch.equal(x_[:, :, 0], want))


def _case(objective, **kw):
    cfg = tiny_cfg(objective)
    return cfg, make_case.make_case(cfg, seed=kw.pop("seed", 1), **kw)


def test_loss_forms():
    """MLM in ALBEF's form (head on every position, ignore_index) and RMIM in MAE's form."""
    cfg, t = _case("vlmae")
    P, M, batch = ref.prepare(cfg, t, torch.float64)
    with torch.no_grad():
        losses, acts = ref.forward(cfg, P, M, batch)
        tm = ref.additive_mask(batch["text_mask"], torch.float64)
        v, v_hat = acts["v"], acts["v_hat"]
        s = ref.mlm_head(cfg, P, ref.fusion(cfg, P, ref.text_encoder(cfg, P, batch["mlm_ids"], tm),
                                            tm, v))
        tch = ref.mlm_head(cfg, M, ref.fusion(cfg, M, ref.text_encoder(cfg, M, batch["mlm_ids"],
                                                                       tm), tm, v_hat))
        lab = batch["mlm_labels"]
        ce = F.cross_entropy(s.reshape(-1, s.shape[-1]), lab.reshape(-1), ignore_index=-100)
        dist = -(F.log_softmax(s, -1) * F.softmax(tch, -1)).sum(-1)[lab != -100].mean()
        al = float(batch["alpha"])
        ok, det = close(losses["mlm"], (1 - al) * ce + al * dist, 1e-12)
        check("MLM == ALBEF form (all positions, ignore_index)", ok, det)

        # MAE forward_loss with mask from ids_restore, region 1 everywhere
        K = batch["ids_keep"].shape[1]
        mask = torch.ones(batch["ids_restore"].shape, dtype=torch.float64)
        mask[:, :K] = 0
        mask = torch.gather(mask, 1, batch["ids_restore"])
        tgt = ref.patchify_mae(batch["image"], cfg["patch_size"])
        tgt = (tgt - tgt.mean(-1, keepdim=True)) / (tgt.var(-1, keepdim=True) + 1e-6) ** .5
        per = ((acts["rmim_pred"] - tgt) ** 2).mean(-1)
        wgt = mask * batch["region"]
        ok, det = close(losses["rmim"], (per * wgt).sum() / wgt.sum(), 1e-12)
        check("RMIM == MAE forward_loss x region", ok, det)
        check("RMIM weight == MAE mask x region", torch.equal(acts["rmim_weight"], wgt))


def test_tcl_forms():
    """TCL's in-batch global-to-local loss and region pooling against plain loops."""
    g = torch.Generator().manual_seed(4)
    B, n, E, dt = 4, 5, 6, torch.float64
    l = F.normalize(torch.randn(B, n, E, generator=g, dtype=dt), dim=-1)
    m = F.normalize(torch.randn(B, E, generator=g, dtype=dt), dim=-1)
    temp = 0.1
    mask = torch.ones(B, n, dtype=torch.long)
    mask[1, 3:] = 0
    mask[2, :] = 0  # no locals: left out of the mean
    for mk in (None, mask):
        per = []
        for i in range(B):
            terms = []
            for k in range(n):
                if mk is not None and not mk[i, k]:
                    continue
                neg = [m[i] @ l[j, kk] / temp for j in range(B) for kk in range(n)
                       if j != i and (mk is None or mk[j, kk])]
                logits = torch.stack([m[i] @ l[i, k] / temp] + neg)
                terms.append(-torch.log_softmax(logits, 0)[0])
            if terms:
                per.append(torch.stack(terms).mean())
        want = torch.stack(per).mean()
        ok, det = close(ref.in_batch_g2l(l, m, temp, mk), want, 1e-12)
        check("TCL g2l loss == loops (%s)" % ("text mask" if mk is not None else "image"), ok, det)
    x = torch.randn(2, 64, 3, generator=g, dtype=dt)  # grid 8: cells of 2x2 -> 16 regions
    want = torch.zeros(2, 16, 3, dtype=dt)
    for r in range(16):
        ri, rj = divmod(r, 4)
        for y in range(2 * ri, 2 * ri + 2):
            for xx in range(2 * rj, 2 * rj + 2):
                want[:, r] += x[:, y * 8 + xx] / 4
    ok, det = close(ref.region_pool(x, 8), want, 1e-12)
    check("TCL region pooling == loops (grid 8)", ok, det)


def test_gradcheck(quick):
    for objective in ("vlmae", "albef", "tcl"):
        # a very small config keeps the finite differences cheap
        cfg = tiny_cfg(objective, image_size=16, patch_size=4, vision_width=16, vision_depth=1,
                       vision_heads=2, vision_mlp=24, vocab_size=24, text_width=16, text_heads=2,
                       text_mlp=24, text_layers=1, fusion_layers=1, max_text_len=8,
                       decoder_width=12, decoder_depth=1, decoder_heads=2, decoder_mlp=16,
                       embed_dim=8, queue_size=6)
        t = make_case.make_case(cfg, seed=3, B=3, T=6)
        P, M, batch = ref.prepare(cfg, t, torch.float64)
        names = list(P)
        tt = float(P["temp"])

        def f(*xs):
            losses, _ = ref.forward(cfg, dict(zip(names, xs)), M, batch, teacher_temp=tt)
            return losses["total"]

        inputs = tuple(P[n].detach().clone().requires_grad_(True) for n in names)
        if quick:  # a handful of tensors
            pick = [i for i, n in enumerate(names)
                    if n in ("temp", "vit.pos_embed", "bert.embeddings.word", "dec.mask_token",
                             "bert.layers.1.cross.k.weight", "itm_head.bias", "mlm.bias")]
            others = {n: P[n].detach() for i, n in enumerate(names) if i not in pick}
            sel = [names[i] for i in pick]

            def g(*xs):
                d = dict(others)
                d.update(zip(sel, xs))
                return ref.forward(cfg, d, M, batch, teacher_temp=tt)[0]["total"]
            fn, inp = g, tuple(inputs[i] for i in pick)
        else:
            fn, inp = f, inputs
        try:
            ok = torch.autograd.gradcheck(fn, inp, eps=1e-6, atol=1e-6, rtol=1e-4,
                                          fast_mode=True, raise_exception=True)
            det = "%d tensors" % len(inp)
        except Exception as e:  # noqa: BLE001
            ok, det = False, str(e).splitlines()[0][:200]
        check("gradcheck float64 fast mode, %s" % objective, ok, det)

        # temp's gradient comes through the student sims only: teacher temp constant
        losses, _ = ref.forward(cfg, P, M, batch)
        losses["total"].backward()
        gt = float(P["temp"].grad)
        eps = 1e-6
        vals = []
        for sgn in (1, -1):
            P2 = {n: p.detach().clone() for n, p in P.items()}
            P2["temp"] += sgn * eps
            vals.append(float(ref.forward(cfg, P2, M, batch, teacher_temp=tt)[0]["total"]))
        fd = (vals[0] - vals[1]) / (2 * eps)
        check("temp grad: student sims only (%s)" % objective, abs(fd - gt) <= 1e-6 * max(1, abs(gt)),
              "fd %.8g autograd %.8g" % (fd, gt))


def run_parity(args):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = parity.main(args)
    out = buf.getvalue()
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return rc, last, out


def test_parity(tmp):
    for objective, extra in (("vlmae", []), ("albef", []), ("tcl", []), ("vlmae", ["--no-mlm-mask"]),
                             ("vlmae", ["--empty-region"]),
                             ("vlmae", ["--set", "norm_pix_loss=0", "--set", "w_ifr=0.5",
                                        "--set", "mask_ratio=0.75", "--same-momentum"])):
        tag = objective + "".join(e.replace("-", "").replace("=", "") for e in extra)[:40]
        inp, cfgp = os.path.join(tmp, tag + ".vlt"), os.path.join(tmp, tag + ".json")
        ref64 = os.path.join(tmp, tag + ".ref64.vlt")
        with contextlib.redirect_stdout(io.StringIO()):
            make_case.main([inp, cfgp, "--objective", objective, "--seed", "5"] + extra)
        rc, last, _ = run_parity([inp, cfgp, "-", "--double", "--dump", ref64])
        rc, last, out = run_parity([inp, cfgp, ref64])
        check("parity float32 ref vs float64 ref: %s" % tag, rc == 0 and " 0 failed" in last, last)
        r = read_vlt(ref64)
        if "--no-mlm-mask" in extra:
            check("no masked text -> loss.mlm == 0", float(r["loss.mlm"][0]) == 0.0)
        if "--empty-region" in extra:
            check("empty region -> loss.rmim == 0, decoder grads 0",
                  float(r["loss.rmim"][0]) == 0.0 and not r["grad.dec.pred.weight"].any())
        if objective == "albef":
            check("albef -> loss.rmim == loss.ifr == 0",
                  float(r["loss.rmim"][0]) == 0.0 and float(r["loss.ifr"][0]) == 0.0)

        if objective == "vlmae" and not extra:
            bad = os.path.join(tmp, "bad.vlt")
            for what, mutate in (
                    ("perturbed grad", lambda d: d["grad.vit.blocks.0.mlp.fc1.weight"].__setitem__(
                        (0, 0), d["grad.vit.blocks.0.mlp.fc1.weight"][0, 0] + 1e-2)),
                    ("perturbed loss", lambda d: d.__setitem__(
                        "loss.itc", d["loss.itc"] * (1 + 1e-4))),
                    ("missing grad", lambda d: d.pop("grad.dec.mask_token")),
                    ("unknown grad", lambda d: d.__setitem__("grad.m.vision_proj.bias",
                                                             np.zeros(16, np.float32))),
                    ("missing loss", lambda d: d.pop("loss.ifr")),
                    ("NaN grad", lambda d: d["grad.temp"].__setitem__(0, np.nan)),
                    ("wrong shape", lambda d: d.__setitem__("grad.vit.cls_token",
                                                            np.zeros((1, 32), np.float32)))):
                d = read_vlt(ref64)
                mutate(d)
                write_vlt(bad, d)
                rc, last, _ = run_parity([inp, cfgp, bad])
                check("parity detects %s" % what, rc == 1 and last.endswith(" 1 failed"), last)
            # a broken input case
            d = read_vlt(inp)
            d["ids_restore"] = d["ids_restore"][:, ::-1].copy()
            write_vlt(bad, d)
            rc, last, _ = run_parity([bad, cfgp, ref64])
            check("parity rejects inconsistent ids_keep / ids_restore", rc == 1, last)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="gradcheck on a few tensors only")
    a = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory(prefix="vlmae_ref_") as tmp:
        test_vlt(tmp)
        test_blocks()
        test_loss_forms()
        test_tcl_forms()
        test_gradcheck(a.quick)
        test_parity(tmp)
    npass = sum(RESULTS)
    print("selftest: %d passed, %d failed" % (npass, len(RESULTS) - npass))
    return 0 if npass == len(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
