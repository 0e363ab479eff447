#!/usr/bin/python3
"""make_case.py: write a random, self-consistent parity case (INPUT.vlt + CONFIG.json).

    /usr/bin/python3 tests/reference/make_case.py INPUT.vlt CONFIG.json [--objective vlmae|albef|tcl]
        [--seed S] [--batch B] [--text-len T] [--set key=value ...]
        [--no-mlm-mask] [--empty-region] [--same-momentum]

The case holds every online parameter, its "m." momentum copy (online + a small perturbation, as
after an EMA update, unless --same-momentum), and the batch and random choices of SPEC.md. Token
ids of the tiny vocab: 0 = [PAD], 1 = [CLS], 2 = [MASK], words 3..V-1.

Degenerate cases: --no-mlm-mask (no masked text: loss.mlm = 0), --empty-region (region is 0 on
every masked patch: loss.rmim = 0).
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import vlmae_ref as ref  # noqa: E402
from vlt import write_vlt  # noqa: E402

TINY = {
    "image_size": 32, "patch_size": 8,
    "vision_width": 32, "vision_depth": 2, "vision_heads": 4, "vision_mlp": 64,
    "vision_ln_eps": 1e-6,
    "vocab_size": 64, "text_width": 32, "text_heads": 4, "text_mlp": 64, "text_layers": 2,
    "fusion_layers": 2, "max_text_len": 16, "text_ln_eps": 1e-12,
    "decoder_width": 24, "decoder_depth": 2, "decoder_heads": 4, "decoder_mlp": 48,
    "embed_dim": 16, "queue_size": 8, "mask_ratio": 0.5, "norm_pix_loss": 1,
    "objective": "vlmae",
    "w_itc": 1.0, "w_itm": 1.0, "w_mlm": 1.0, "w_rmim": 1.0, "w_ifr": 1.0,
}
PAD, CLS, MASK = 0, 1, 2


def _parse_value(s):
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        return s


def random_params(cfg, rng):
    """Parameters at a scale where every path carries signal (attention not uniform, LayerNorm
    affine not identity, biases nonzero)."""
    out = {}
    for name, shape in ref.param_specs(cfg) + ref.optional_param_specs(cfg):
        if name == "temp":
            out[name] = np.array([0.07], np.float32)
        elif name.endswith(".weight") and len(shape) == 2:
            out[name] = rng.normal(0, 1.0 / np.sqrt(shape[1]), shape)
        elif name.endswith(".weight"):  # LayerNorm gain
            out[name] = 1.0 + 0.1 * rng.normal(size=shape)
        elif name.endswith(".bias") or name == "mlm.bias":
            out[name] = 0.1 * rng.normal(size=shape)
        else:  # cls_token, pos_embed, embeddings, mask_token
            out[name] = 0.5 * rng.normal(size=shape)
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def make_case(cfg, seed=0, B=4, T=8, no_mlm_mask=False, empty_region=False, same_momentum=False):
    rng = np.random.default_rng(seed)
    N, V, g = cfg["N"], cfg["vocab_size"], cfg["grid"]
    t = {}
    params = random_params(cfg, rng)
    if cfg["objective"] != "vlmae":  # the decoder takes no part; leave it out of the case
        params = {k: v for k, v in params.items() if not k.startswith("dec.")}
    t.update(params)
    for name, shape in ref.tower_specs(cfg):
        p = params[name]
        noise = 0.0 if same_momentum else 0.05 * (np.abs(p).mean() + 1e-3) * rng.normal(size=shape)
        t["m." + name] = (p + noise).astype(np.float32)

    H = cfg["image_size"]
    t["image"] = rng.normal(size=(B, 3, H, H)).astype(np.float32)
    if cfg["objective"] == "tcl":  # the second view: flipped left-right plus noise
        t["image2"] = (t["image"][..., ::-1] + 0.3 * rng.normal(size=(B, 3, H, H))).astype(np.float32)

    # captions: [CLS] w w w ... [PAD]...; lengths vary, sample 0 full length
    lens = rng.integers(3, T + 1, size=B)
    lens[0] = T
    ids = np.full((B, T), PAD, np.int32)
    mask = np.zeros((B, T), np.int32)
    for b in range(B):
        ids[b, 0] = CLS
        ids[b, 1:lens[b]] = rng.integers(3, V, size=lens[b] - 1)
        mask[b, :lens[b]] = 1
    t["text_ids"], t["text_mask"] = ids, mask

    # MLM: ~30% of the real non-CLS tokens (at least one per caption); 80/10/10 replacement
    mlm_ids, labels = ids.copy(), np.full((B, T), -100, np.int32)
    if not no_mlm_mask:
        for b in range(B):
            cand = np.arange(1, lens[b])
            pick = cand[rng.random(len(cand)) < 0.3]
            if len(pick) == 0:
                pick = rng.choice(cand, 1)
            for pos in pick:
                labels[b, pos] = ids[b, pos]
                r = rng.random()
                if r < 0.8:
                    mlm_ids[b, pos] = MASK
                elif r < 0.9:
                    mlm_ids[b, pos] = rng.integers(3, V)
    t["mlm_ids"], t["mlm_labels"] = mlm_ids, labels

    # MAE masking
    if cfg["objective"] in ("albef", "tcl"):
        K = N
        shuffle = np.tile(np.arange(N), (B, 1))
    else:
        K = ref.expected_keep(cfg)
        shuffle = np.argsort(rng.random((B, N)), axis=1)
    t["ids_keep"] = shuffle[:, :K].astype(np.int32)
    t["ids_restore"] = np.argsort(shuffle, axis=1).astype(np.int32)

    # ITM negatives: never self
    t["itm_neg_image"] = np.array([(b + rng.integers(1, B)) % B for b in range(B)], np.int32)
    t["itm_neg_text"] = np.array([(b + rng.integers(1, B)) % B for b in range(B)], np.int32)

    # region: sample 0 the whole image, the others a random box (patch centre inside)
    ci, cj = np.meshgrid((np.arange(g) + 0.5) / g, (np.arange(g) + 0.5) / g, indexing="ij")
    region = np.ones((B, N), np.float32)
    for b in range(1, B):
        x0, y0 = rng.uniform(0, 0.5, size=2)
        w, h = rng.uniform(0.3, 1.0 - max(x0, y0), size=2)
        inside = (cj >= x0) & (cj <= x0 + w) & (ci >= y0) & (ci <= y0 + h)
        region[b] = inside.reshape(-1).astype(np.float32)
    if empty_region:
        region = (t["ids_restore"] < K).astype(np.float32)  # only on visible patches
    t["region"] = region

    E, Q = cfg["embed_dim"], cfg["queue_size"]
    for n in ("image_queue", "text_queue"):
        q = rng.normal(size=(E, Q))
        t[n] = (q / np.linalg.norm(q, axis=0, keepdims=True)).astype(np.float32)
    t["alpha"] = np.array([0.4], np.float32)
    return t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input_vlt")
    ap.add_argument("config_json")
    ap.add_argument("--objective", choices=ref.OBJECTIVES, default="vlmae")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--text-len", type=int, default=8)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key (JSON value)")
    ap.add_argument("--no-mlm-mask", action="store_true")
    ap.add_argument("--empty-region", action="store_true")
    ap.add_argument("--same-momentum", action="store_true")
    a = ap.parse_args(argv)
    raw = dict(TINY)
    raw["objective"] = a.objective
    for kv in a.set:
        k, _, v = kv.partition("=")
        if k not in raw:
            ap.error("unknown config key %s" % k)
        raw[k] = _parse_value(v)
    cfg = ref.load_config(raw)
    t = make_case(cfg, a.seed, a.batch, a.text_len, a.no_mlm_mask, a.empty_region,
                  a.same_momentum)
    errs = ref.check_inputs(cfg, t)
    if errs:
        sys.exit("make_case: inconsistent case (bug):\n  " + "\n  ".join(errs))
    write_vlt(a.input_vlt, t)
    with open(a.config_json, "w") as f:
        json.dump(raw, f, indent=1, sort_keys=True)
        f.write("\n")
    print("make_case: wrote %s (%d tensors) and %s (objective %s)"
          % (a.input_vlt, len(t), a.config_json, cfg["objective"]))


if __name__ == "__main__":
    main()
