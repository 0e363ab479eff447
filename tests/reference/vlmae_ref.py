"""vlmae_ref.py: an independent PyTorch reference of one VLMAE / ALBEF / TCL pre-training step.

Written plainly from tests/reference/SPEC.md (the contract) with torch.nn.functional ops, so that
the C engine can be proven against it. Nothing here is shared with the C code.

Entry points
    load_config(path_or_dict) -> dict         validated model configuration (SPEC.md key names)
    param_specs(cfg) -> [(name, shape)]       every online parameter (grads are returned for these)
    optional_param_specs(cfg)                 parameters that may be present but are unused
                                              (the decoder under objective "albef")
    momentum_specs(cfg) -> [(name, shape)]    the "m." copies (no gradients)
    check_inputs(cfg, tensors) -> [str]       problems with an input dict (empty list = fine)
    forward(cfg, P, M, batch, teacher_temp)   -> (losses dict of 0-d tensors, activations dict)
    step(cfg, tensors, dtype) -> (losses, grads[, acts])
                                              losses {itc,itm,mlm,rmim,ifr,total} as floats
                                              (tcl: also imc, lmi), grads {param name: np.ndarray}
    loss_names(cfg)                           the loss names of the objective (without total)

Float32 by default, like the C engine; pass dtype=torch.float64 for a double-precision run.
Dropout is 0 (the parity test runs without it); every random choice is an input.
"""
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

LOSS_NAMES = ("itc", "itm", "mlm", "rmim", "ifr")
TCL_LOSS_NAMES = ("imc", "lmi")  # objective tcl: (i2i + t2t)/2 and (lmi_img + lmi_txt)/2

_INT_KEYS = ("image_size", "patch_size", "vision_width", "vision_depth", "vision_heads",
             "vision_mlp", "vocab_size", "text_width", "text_heads", "text_mlp", "text_layers",
             "fusion_layers", "max_text_len", "decoder_width", "decoder_depth", "decoder_heads",
             "decoder_mlp", "embed_dim", "queue_size", "norm_pix_loss")
_FLOAT_KEYS = ("vision_ln_eps", "text_ln_eps", "mask_ratio", "w_itc", "w_itm", "w_mlm", "w_rmim",
               "w_ifr")
OBJECTIVES = ("vlmae", "albef", "tcl")

BATCH_FLOAT = ("image", "region", "image_queue", "text_queue", "alpha")
BATCH_INT = ("text_ids", "text_mask", "ids_keep", "ids_restore", "mlm_ids", "mlm_labels",
             "itm_neg_image", "itm_neg_text")


def batch_float(cfg):
    """Float batch inputs of the objective: tcl adds image2, the second view."""
    return BATCH_FLOAT + (("image2",) if cfg["objective"] == "tcl" else ())


def loss_names(cfg):
    return LOSS_NAMES + (TCL_LOSS_NAMES if cfg["objective"] == "tcl" else ())


# ----------------------------------------------------------------------------------------------
# configuration


class ConfigError(Exception):
    pass


def load_config(src):
    """Read the JSON configuration (a path or an already-parsed dict). All SPEC.md keys are
    required; unknown keys are ignored (the C ModelConfig may carry more). Derived sizes are
    added: N (patches), P (pixels per patch), grid (patches per side)."""
    if isinstance(src, dict):
        raw = dict(src)
    else:
        with open(src) as f:
            raw = json.load(f)
    missing = [k for k in _INT_KEYS + _FLOAT_KEYS + ("objective",) if k not in raw]
    if missing:
        raise ConfigError("config lacks keys: %s" % ", ".join(missing))
    cfg = {}
    for k in _INT_KEYS:
        v = raw[k]
        if isinstance(v, bool) and k == "norm_pix_loss":
            v = int(v)
        if isinstance(v, bool) or float(v) != int(v):
            raise ConfigError("config %s = %r is not an integer" % (k, v))
        cfg[k] = int(v)
    for k in _FLOAT_KEYS:
        cfg[k] = float(raw[k])
    cfg["objective"] = str(raw["objective"])
    if cfg["objective"] not in OBJECTIVES:
        raise ConfigError("objective %r: the reference knows %s" % (cfg["objective"], OBJECTIVES))
    if cfg["image_size"] % cfg["patch_size"]:
        raise ConfigError("image_size must be a multiple of patch_size")
    g = cfg["image_size"] // cfg["patch_size"]
    cfg["grid"] = g
    cfg["N"] = g * g
    cfg["P"] = cfg["patch_size"] ** 2 * 3
    for w, h in (("vision_width", "vision_heads"), ("text_width", "text_heads"),
                 ("decoder_width", "decoder_heads")):
        if cfg[w] % cfg[h]:
            raise ConfigError("%s %d is not a multiple of %s %d" % (w, cfg[w], h, cfg[h]))
    if cfg["objective"] == "vlmae" and cfg["decoder_width"] % 4:
        raise ConfigError("decoder_width must be a multiple of 4 (2-D sin-cos table)")
    return cfg


# ----------------------------------------------------------------------------------------------
# parameter names and shapes (SPEC.md "Parameters")


def _lin(specs, name, out, inp):
    specs.append((name + ".weight", (out, inp)))
    specs.append((name + ".bias", (out,)))


def _ln(specs, name, width):
    specs.append((name + ".weight", (width,)))
    specs.append((name + ".bias", (width,)))


def _vit_block_specs(specs, pre, width, mlp):
    _ln(specs, pre + "norm1", width)
    _lin(specs, pre + "attn.qkv", 3 * width, width)
    _lin(specs, pre + "attn.proj", width, width)
    _ln(specs, pre + "norm2", width)
    _lin(specs, pre + "mlp.fc1", mlp, width)
    _lin(specs, pre + "mlp.fc2", width, mlp)


def tower_specs(cfg):
    """The parameters that also exist as a momentum copy (prefix "m.")."""
    C, Ct, V = cfg["vision_width"], cfg["text_width"], cfg["vocab_size"]
    s = []
    s.append(("vit.patch_embed.weight", (C, cfg["P"])))
    s.append(("vit.patch_embed.bias", (C,)))
    s.append(("vit.cls_token", (C,)))
    s.append(("vit.pos_embed", (cfg["N"] + 1, C)))
    for L in range(cfg["vision_depth"]):
        _vit_block_specs(s, "vit.blocks.%d." % L, C, cfg["vision_mlp"])
    _ln(s, "vit.norm", C)
    s.append(("bert.embeddings.word", (V, Ct)))
    s.append(("bert.embeddings.position", (cfg["max_text_len"], Ct)))
    s.append(("bert.embeddings.token_type", (2, Ct)))
    _ln(s, "bert.embeddings.ln", Ct)
    for L in range(cfg["text_layers"] + cfg["fusion_layers"]):
        pre = "bert.layers.%d." % L
        for p in "qkvo":
            _lin(s, pre + "attn." + p, Ct, Ct)
        _ln(s, pre + "attn.ln", Ct)
        if L >= cfg["text_layers"]:
            _lin(s, pre + "cross.q", Ct, Ct)
            _lin(s, pre + "cross.k", Ct, C)
            _lin(s, pre + "cross.v", Ct, C)
            _lin(s, pre + "cross.o", Ct, Ct)
            _ln(s, pre + "cross.ln", Ct)
        _lin(s, pre + "ffn.fc1", cfg["text_mlp"], Ct)
        _lin(s, pre + "ffn.fc2", Ct, cfg["text_mlp"])
        _ln(s, pre + "ffn.ln", Ct)
    _lin(s, "mlm.dense", Ct, Ct)
    _ln(s, "mlm.ln", Ct)
    s.append(("mlm.bias", (V,)))
    _lin(s, "vision_proj", cfg["embed_dim"], C)
    _lin(s, "text_proj", cfg["embed_dim"], Ct)
    return s


def decoder_specs(cfg):
    D = cfg["decoder_width"]
    s = []
    _lin(s, "dec.embed", D, cfg["vision_width"])
    _lin(s, "dec.text_embed", D, cfg["text_width"])
    s.append(("dec.mask_token", (D,)))
    for L in range(cfg["decoder_depth"]):
        _vit_block_specs(s, "dec.blocks.%d." % L, D, cfg["decoder_mlp"])
    _ln(s, "dec.norm", D)
    _lin(s, "dec.pred", cfg["P"], D)
    return s


def param_specs(cfg):
    """Every online parameter the objective needs (a gradient is due for each)."""
    s = tower_specs(cfg)
    s.append(("temp", (1,)))
    _lin(s, "itm_head", 2, cfg["text_width"])
    if cfg["objective"] == "vlmae":
        s += decoder_specs(cfg)
    return s


def optional_param_specs(cfg):
    """Online parameters that may be present but take no part in the objective: the decoder under
    "albef" and "tcl". When the input holds them they count as online parameters (gradient all
    zeros)."""
    return decoder_specs(cfg) if cfg["objective"] != "vlmae" else []


def momentum_specs(cfg):
    return [("m." + n, sh) for n, sh in tower_specs(cfg)]


def batch_specs(cfg, B, T, K):
    N, E, Q, H = cfg["N"], cfg["embed_dim"], cfg["queue_size"], cfg["image_size"]
    specs = {
        "image": (B, 3, H, H), "text_ids": (B, T), "text_mask": (B, T), "ids_keep": (B, K),
        "ids_restore": (B, N), "mlm_ids": (B, T), "mlm_labels": (B, T), "itm_neg_image": (B,),
        "itm_neg_text": (B,), "region": (B, N), "image_queue": (E, Q), "text_queue": (E, Q),
        "alpha": (1,),
    }
    if cfg["objective"] == "tcl":
        specs["image2"] = (B, 3, H, H)
    return specs


def online_names(cfg, tensors):
    """The online parameters of this input: the required ones plus any optional ones present."""
    names = [n for n, _ in param_specs(cfg)]
    names += [n for n, _ in optional_param_specs(cfg) if n in tensors]
    return names


def check_inputs(cfg, t):
    """Shape / dtype / consistency checks of an input dict. Returns a list of problems."""
    errs = []
    for k in batch_float(cfg) + BATCH_INT:
        if k not in t:
            errs.append("input lacks %s" % k)
    if errs:
        return errs
    B, T = t["text_ids"].shape
    K = t["ids_keep"].shape[1] if t["ids_keep"].ndim == 2 else -1
    want = dict(batch_specs(cfg, B, T, K))
    for n, sh in param_specs(cfg) + momentum_specs(cfg):
        want[n] = sh
    for n, sh in optional_param_specs(cfg):
        if n in t:
            want[n] = sh
    for n, sh in want.items():
        if n not in t:
            errs.append("input lacks %s %s" % (n, sh))
            continue
        a = t[n]
        if tuple(a.shape) != tuple(sh):
            errs.append("%s has shape %s, expected %s" % (n, tuple(a.shape), tuple(sh)))
        isint = n in BATCH_INT
        if isint and a.dtype.kind not in "iu":
            errs.append("%s should be int32, is %s" % (n, a.dtype))
        if not isint and a.dtype.kind != "f":
            errs.append("%s should be float32, is %s" % (n, a.dtype))
    if errs:
        return errs
    N, V = cfg["N"], cfg["vocab_size"]
    if T > cfg["max_text_len"]:
        errs.append("T = %d exceeds max_text_len %d" % (T, cfg["max_text_len"]))
    if cfg["queue_size"] % B:
        errs.append("queue_size %d is not a multiple of B %d" % (cfg["queue_size"], B))
    for n in ("text_ids", "mlm_ids"):
        if t[n].min() < 0 or t[n].max() >= V:
            errs.append("%s out of [0, %d)" % (n, V))
    lab = t["mlm_labels"]
    if ((lab != -100) & ((lab < 0) | (lab >= V))).any():
        errs.append("mlm_labels must be -100 or in [0, %d)" % V)
    if not np.isin(t["text_mask"], (0, 1)).all():
        errs.append("text_mask must be 0/1")
    for n in ("itm_neg_image", "itm_neg_text"):
        if t[n].min() < 0 or t[n].max() >= B:
            errs.append("%s out of [0, %d)" % (n, B))
    keep, rest = t["ids_keep"], t["ids_restore"]
    if keep.min() < 0 or keep.max() >= N or rest.min() < 0 or rest.max() >= N:
        errs.append("ids_keep / ids_restore out of [0, %d)" % N)
        return errs
    for b in range(B):
        if sorted(rest[b].tolist()) != list(range(N)):
            errs.append("ids_restore[%d] is not a permutation of 0..N-1" % b)
            continue
        # ids_restore[n] = position of patch n in [kept; masked]; the first K are the kept ones
        for i, n in enumerate(keep[b].tolist()):
            if rest[b, n] != i:
                errs.append("ids_keep[%d][%d] = %d but ids_restore[%d][%d] = %d (expected %d)"
                            % (b, i, n, b, n, rest[b, n], i))
                break
    if cfg["objective"] in ("albef", "tcl"):
        if K != N or (keep != np.arange(N)[None, :]).any():
            errs.append("objective %s: ids_keep must be 0..N-1 for every sample" % cfg["objective"])
    return errs


def expected_keep(cfg):
    return int(cfg["N"] * (1.0 - cfg["mask_ratio"]))


# ----------------------------------------------------------------------------------------------
# building blocks


def linear(x, P, name):
    return F.linear(x, P[name + ".weight"], P[name + ".bias"])


def layer_norm(x, P, name, eps):
    return F.layer_norm(x, (x.shape[-1],), P[name + ".weight"], P[name + ".bias"], eps)


def gelu(x):
    return F.gelu(x)  # exact (erf) form


def attention(q, k, v, heads, key_add=None):
    """Multi-head scaled dot-product attention. q (B,Lq,W), k/v (B,Lk,W); key_add (B,Lk) is an
    additive key mask (0 = visible) or None. Head h uses columns h*hd:(h+1)*hd."""
    B, Lq, W = q.shape
    Lk = k.shape[1]
    hd = W // heads
    q = q.reshape(B, Lq, heads, hd).transpose(1, 2)
    k = k.reshape(B, Lk, heads, hd).transpose(1, 2)
    v = v.reshape(B, Lk, heads, hd).transpose(1, 2)
    s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
    if key_add is not None:
        s = s + key_add[:, None, None, :]
    p = torch.softmax(s, dim=-1)
    o = torch.matmul(p, v)  # (B,h,Lq,hd)
    return o.transpose(1, 2).reshape(B, Lq, W)


def additive_mask(mask01, dtype):
    """(1 - mask) * -10000, as in BERT / ALBEF."""
    return (1.0 - mask01.to(dtype)) * -10000.0


def patchify_conv(image, p):
    """(B,3,H,W) -> (B,N,3*p*p): patch (i,j) row-major, each flattened (channel, row, col) --
    the order of a Conv2d kernel of shape (C,3,p,p) flattened."""
    B, c, H, W = image.shape
    h, w = H // p, W // p
    x = image.reshape(B, c, h, p, w, p).permute(0, 2, 4, 1, 3, 5)  # B,h,w,c,r,s
    return x.reshape(B, h * w, c * p * p)


def patchify_mae(image, p):
    """(B,3,H,W) -> (B,N,p*p*3): patch (i,j) row-major, each flattened (row, col, channel)."""
    B, c, H, W = image.shape
    h, w = H // p, W // p
    x = image.reshape(B, c, h, p, w, p).permute(0, 2, 4, 3, 5, 1)  # B,h,w,r,s,c
    return x.reshape(B, h * w, p * p * c)


def sincos_1d(dim, pos):
    """1-D sin-cos embedding of positions pos (M,) into dim values: [sin(pos*omega), cos(...)],
    omega_i = 1 / 10000^(i / (dim/2)), i < dim/2."""
    assert dim % 2 == 0
    half = dim // 2
    omega = 1.0 / (10000.0 ** (np.arange(half, dtype=np.float64) / half))
    out = pos.reshape(-1)[:, None].astype(np.float64) * omega[None, :]
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d_table(dim, grid):
    """MAE's get_2d_sincos_pos_embed(dim, grid, cls_token=True), written from the formula:
    rows 1.. are patches in row-major order; the first dim/2 columns encode grid[0] of
    meshgrid(grid_w, grid_h) -- i.e. the patch's column index j -- and the last dim/2 columns
    encode grid[1], the row index i. Row 0 (CLS) is zero. Returns float64 (1+grid^2, dim)."""
    assert dim % 4 == 0
    ii, jj = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")  # ii row, jj column
    col = jj.reshape(-1)  # grid[0] in MAE (w goes first in its meshgrid)
    row = ii.reshape(-1)  # grid[1]
    emb = np.concatenate([sincos_1d(dim // 2, col), sincos_1d(dim // 2, row)], axis=1)
    return np.concatenate([np.zeros((1, dim)), emb], axis=0)


def vit_block(P, pre, x, heads, eps, key_add=None):
    """Pre-LN transformer block (timm ViT): x += proj(attn(LN1 x)); x += fc2(GELU(fc1(LN2 x)))."""
    W = x.shape[-1]
    h = layer_norm(x, P, pre + "norm1", eps)
    qkv = linear(h, P, pre + "attn.qkv")
    q, k, v = qkv[..., :W], qkv[..., W:2 * W], qkv[..., 2 * W:]
    x = x + linear(attention(q, k, v, heads, key_add), P, pre + "attn.proj")
    h = layer_norm(x, P, pre + "norm2", eps)
    x = x + linear(gelu(linear(h, P, pre + "mlp.fc1")), P, pre + "mlp.fc2")
    return x


def image_encoder(cfg, P, image, ids):
    """Online (ids = ids_keep) or momentum (ids = all patches) image encoder -> (B,1+K',C)."""
    p, eps = cfg["patch_size"], cfg["vision_ln_eps"]
    pos = P["vit.pos_embed"]
    x = linear(patchify_conv(image, p), P, "vit.patch_embed") + pos[1:]
    B, _, C = x.shape
    x = torch.gather(x, 1, ids[:, :, None].expand(B, ids.shape[1], C))
    cls = (P["vit.cls_token"] + pos[0]).reshape(1, 1, C).expand(B, 1, C)
    x = torch.cat([cls, x], dim=1)
    for L in range(cfg["vision_depth"]):
        x = vit_block(P, "vit.blocks.%d." % L, x, cfg["vision_heads"], eps)
    return layer_norm(x, P, "vit.norm", eps)


def bert_layer(cfg, P, L, x, key_add, y=None):
    """Post-LN BERT layer; with image tokens y also the cross-attention sub-layer (no mask)."""
    eps, heads = cfg["text_ln_eps"], cfg["text_heads"]
    pre = "bert.layers.%d." % L
    a = attention(linear(x, P, pre + "attn.q"), linear(x, P, pre + "attn.k"),
                  linear(x, P, pre + "attn.v"), heads, key_add)
    x = layer_norm(x + linear(a, P, pre + "attn.o"), P, pre + "attn.ln", eps)
    if y is not None:
        a = attention(linear(x, P, pre + "cross.q"), linear(y, P, pre + "cross.k"),
                      linear(y, P, pre + "cross.v"), heads, None)
        x = layer_norm(x + linear(a, P, pre + "cross.o"), P, pre + "cross.ln", eps)
    h = linear(gelu(linear(x, P, pre + "ffn.fc1")), P, pre + "ffn.fc2")
    return layer_norm(x + h, P, pre + "ffn.ln", eps)


def text_encoder(cfg, P, ids, key_add):
    T = ids.shape[1]
    x = (P["bert.embeddings.word"][ids] + P["bert.embeddings.position"][:T]
         + P["bert.embeddings.token_type"][0])
    x = layer_norm(x, P, "bert.embeddings.ln", cfg["text_ln_eps"])
    for L in range(cfg["text_layers"]):
        x = bert_layer(cfg, P, L, x, key_add)
    return x


def fusion(cfg, P, x, key_add, y):
    t = cfg["text_layers"]
    for L in range(t, t + cfg["fusion_layers"]):
        x = bert_layer(cfg, P, L, x, key_add, y)
    return x


def mlm_head(cfg, P, h):
    h = layer_norm(gelu(linear(h, P, "mlm.dense")), P, "mlm.ln", cfg["text_ln_eps"])
    return F.linear(h, P["bert.embeddings.word"], P["mlm.bias"])


def l2norm(x):
    return x / x.norm(dim=-1, keepdim=True)


def soft_ce(logits, target):
    """mean over rows of -sum target * log_softmax(logits)."""
    return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def region_pool(x, grid):
    """TCL's patch pooling: (B, grid*grid, E) patch features -> (B, R, E) averages over c x c
    regions, c = floor(sqrt(grid)), R = (grid // c)^2, regions row-major (avg_pool2d stride c)."""
    B, N, E = x.shape
    c = math.isqrt(grid)
    x = x.reshape(B, grid, grid, E).permute(0, 3, 1, 2)
    x = F.avg_pool2d(x, c, stride=c)
    return x.permute(0, 2, 3, 1).reshape(B, -1, E)


def in_batch_g2l(l, m, temp, mask=None):
    """TCL's in-batch global-to-local loss, as in its model_pretrain.py: l (B,n,E) local momentum
    features, m (B,E) global online features, mask (B,n) 1 = real local (text) or None (image).
    For sample i, local k: logits [u_p = m_i.l_ik, u_n = m_i.l_jk' for all j, k'] / temp with the
    own sample's u_n and padding locals at -10000 and a padding row's u_p at +10000; loss
    -log_softmax[0]; per sample summed over locals / number of real locals; mean over samples.
    A sample with no real local (TCL: 0/0 = NaN) is left out of the mean."""
    B, n, E = l.shape
    dt = m.dtype
    if n == 0:
        return torch.zeros((), dtype=dt)
    u_p = torch.einsum("bne,be->bn", l, m) / temp  # (B,n)
    u_n = (m @ l.reshape(B * n, E).t() / temp).reshape(B, B, n)  # [i, j, k] = m_i . l_jk
    eye = torch.eye(B, dtype=dt)[:, :, None]
    u_n = (1 - eye) * u_n - 10000.0 * eye
    if mask is not None:
        mk = mask.to(dt)
        u_p = mk * u_p + 10000.0 * (1 - mk)
        u_n = mk[None] * u_n - 10000.0 * (1 - mk[None])
    logits = torch.cat([u_p[:, :, None], u_n.reshape(B, 1, B * n).expand(B, n, B * n)], dim=2)
    logp = torch.log_softmax(logits, dim=2)[:, :, 0]  # (B,n)
    if mask is None:
        return -logp.mean()
    cnt = mask.sum(dim=1)
    keep = cnt > 0
    if not bool(keep.any()):
        return torch.zeros((), dtype=dt)
    return (-logp.sum(dim=1)[keep] / cnt[keep].to(dt)).mean()


# ----------------------------------------------------------------------------------------------
# the step


def forward(cfg, P, M, batch, teacher_temp=None):
    """All five losses. P: online params {name: tensor}; M: momentum params keyed WITHOUT the
    "m." prefix; batch: {name: tensor} (floats in the compute dtype, ints as int64).
    teacher_temp: the temperature used (as a constant) in the teacher similarities; default is
    P["temp"] detached. Returns (losses {name: 0-d tensor, incl. "total"}, activations)."""
    obj = cfg["objective"]
    dt = P["temp"].dtype
    image, alpha = batch["image"], batch["alpha"].reshape(())
    text_ids, text_mask = batch["text_ids"], batch["text_mask"]
    ids_keep, ids_restore = batch["ids_keep"], batch["ids_restore"]
    B, T = text_ids.shape
    N, K = cfg["N"], ids_keep.shape[1]
    tmask = additive_mask(text_mask, dt)
    acts = {}
    zero = torch.zeros((), dtype=dt)

    # encoders
    v = image_encoder(cfg, P, image, ids_keep)  # (B,1+K,C)
    w = text_encoder(cfg, P, text_ids, tmask)  # (B,T,Ct)
    with torch.no_grad():
        all_ids = torch.arange(N).reshape(1, N).expand(B, N)
        view2 = batch["image2"] if obj == "tcl" else image  # tcl: the second augmented view
        v_hat = image_encoder(cfg, M, view2, all_ids)  # (B,1+N,C)
        w_hat = text_encoder(cfg, M, text_ids, tmask)
    acts["v"], acts["v_hat"], acts["w"] = v, v_hat, w

    # ITC with momentum distillation and queues
    temp = P["temp"].reshape(())
    tt = temp.detach() if teacher_temp is None else torch.as_tensor(teacher_temp, dtype=dt)
    img = l2norm(linear(v[:, 0], P, "vision_proj"))
    txt = l2norm(linear(w[:, 0], P, "text_proj"))
    with torch.no_grad():
        img_m = l2norm(linear(v_hat[:, 0], M, "vision_proj"))
        txt_m = l2norm(linear(w_hat[:, 0], M, "text_proj"))
        keys_t = torch.cat([txt_m, batch["text_queue"].t()], dim=0)  # (B+Q,E)
        keys_i = torch.cat([img_m, batch["image_queue"].t()], dim=0)
        onehot = torch.zeros(B, keys_t.shape[0], dtype=dt)
        onehot[torch.arange(B), torch.arange(B)] = 1.0
        tgt_i2t = alpha * torch.softmax(img_m @ keys_t.t() / tt, dim=1) + (1 - alpha) * onehot
        tgt_t2i = alpha * torch.softmax(txt_m @ keys_i.t() / tt, dim=1) + (1 - alpha) * onehot
    s_i2t = img @ keys_t.t() / temp
    s_t2i = txt @ keys_i.t() / temp
    itc = (soft_ce(s_i2t, tgt_i2t) + soft_ce(s_t2i, tgt_t2i)) / 2
    extra = {}
    if obj == "tcl":
        # intra-modal contrast against [batch; queue] with hard targets, and local MI
        diag = torch.arange(B)
        i2i = F.cross_entropy(img @ keys_i.t() / temp, diag)
        t2t = F.cross_entropy(txt @ keys_t.t() / temp, diag)
        with torch.no_grad():
            img_l = region_pool(l2norm(linear(v_hat[:, 1:], M, "vision_proj")), cfg["grid"])
            txt_l = l2norm(linear(w_hat[:, 1:], M, "text_proj"))
        lmi_i = in_batch_g2l(img_l, img, temp)
        lmi_t = in_batch_g2l(txt_l, txt, temp, text_mask[:, 1:])
        extra["imc"] = (i2i + t2t) / 2
        extra["lmi"] = (lmi_i + lmi_t) / 2
        itc = (2 * itc + i2i + t2t + lmi_i + lmi_t) / 6
    acts["img_feat"], acts["txt_feat"] = img, txt
    acts["img_feat_m"], acts["txt_feat_m"] = img_m, txt_m

    # ITM: B positives, then text b with negative image, then image b with negative text
    neg_img, neg_txt = batch["itm_neg_image"], batch["itm_neg_text"]
    pos_out = fusion(cfg, P, w, tmask, v)
    neg_out = fusion(cfg, P, torch.cat([w, w[neg_txt]], dim=0),
                     torch.cat([tmask, tmask[neg_txt]], dim=0),
                     torch.cat([v[neg_img], v], dim=0))
    itm_logits = linear(torch.cat([pos_out[:, 0], neg_out[:, 0]], dim=0), P, "itm_head")
    itm_labels = torch.cat([torch.ones(B, dtype=torch.long), torch.zeros(2 * B, dtype=torch.long)])
    itm = F.cross_entropy(itm_logits, itm_labels)
    acts["itm_logits"] = itm_logits

    # MLM: student (online, with v) and teacher (momentum, with v_hat) on the masked text
    labels = batch["mlm_labels"]
    sel = labels != -100
    if int(sel.sum()) > 0:
        xs = fusion(cfg, P, text_encoder(cfg, P, batch["mlm_ids"], tmask), tmask, v)
        logits = mlm_head(cfg, P, xs[sel])  # (Mk,V), masked positions in row-major (b,t) order
        with torch.no_grad():
            xt = fusion(cfg, M, text_encoder(cfg, M, batch["mlm_ids"], tmask), tmask, v_hat)
            logits_t = mlm_head(cfg, M, xt[sel])
        ce = F.cross_entropy(logits, labels[sel])
        distill = soft_ce(logits, torch.softmax(logits_t, dim=-1))
        mlm = (1 - alpha) * ce + alpha * distill
        acts["mlm_logits"] = logits
    else:
        mlm = zero

    # RMIM and IFR (objective vlmae only)
    if obj == "vlmae":
        D, eps = cfg["decoder_width"], cfg["vision_ln_eps"]
        d = linear(v, P, "dec.embed")  # (B,1+K,D)
        mtok = P["dec.mask_token"].reshape(1, 1, D).expand(B, N - K, D)
        x_ = torch.cat([d[:, 1:], mtok], dim=1)  # [visible; masked] (B,N,D)
        x_ = torch.gather(x_, 1, ids_restore[:, :, None].expand(B, N, D))  # unshuffle
        table = torch.as_tensor(sincos_2d_table(D, cfg["grid"]), dtype=dt)
        x = torch.cat([d[:, :1], x_], dim=1) + table
        x = torch.cat([x, linear(w, P, "dec.text_embed")], dim=1)  # (B,1+N+T,D)
        key_add = torch.cat([torch.zeros(B, 1 + N, dtype=dt), tmask], dim=1)
        for L in range(cfg["decoder_depth"]):
            x = vit_block(P, "dec.blocks.%d." % L, x, cfg["decoder_heads"], eps, key_add)
        x = layer_norm(x, P, "dec.norm", eps)
        pred = linear(x[:, 1:1 + N], P, "dec.pred")  # (B,N,P)
        with torch.no_grad():
            target = patchify_mae(image, cfg["patch_size"])
            if cfg["norm_pix_loss"]:
                mean = target.mean(dim=-1, keepdim=True)
                var = target.var(dim=-1, unbiased=True, keepdim=True)
                target = (target - mean) / torch.sqrt(var + 1e-6)
            masked = (ids_restore >= K).to(dt)  # patch n is masked iff it is not among the kept
            weight = masked * batch["region"]
        per_patch = ((pred - target) ** 2).mean(dim=-1)
        wsum = weight.sum()
        rmim = (per_patch * weight).sum() / wsum if float(wsum) != 0.0 else zero
        ifr = (v[:, 0] - v_hat[:, 0]).abs().mean()
        acts["rmim_pred"], acts["rmim_target"], acts["rmim_weight"] = pred, target, weight
    else:
        rmim, ifr = zero, zero

    losses = {"itc": itc, "itm": itm, "mlm": mlm, "rmim": rmim, "ifr": ifr}
    losses.update(extra)
    losses["total"] = (cfg["w_itc"] * itc + cfg["w_itm"] * itm + cfg["w_mlm"] * mlm
                       + cfg["w_rmim"] * rmim + cfg["w_ifr"] * ifr)
    return losses, acts


def prepare(cfg, tensors, dtype=torch.float32):
    """Split an input dict (numpy, as read from the .vlt) into leaf online params (requires_grad),
    momentum params (keys without "m.") and the batch, as torch tensors in `dtype`."""
    errs = check_inputs(cfg, tensors)
    if errs:
        raise ValueError("bad input:\n  " + "\n  ".join(errs))
    P = {}
    for n in online_names(cfg, tensors):
        P[n] = torch.tensor(np.asarray(tensors[n]), dtype=dtype, requires_grad=True)
    M = {n: torch.tensor(np.asarray(tensors["m." + n]), dtype=dtype) for n, _ in tower_specs(cfg)}
    batch = {}
    for n in batch_float(cfg):
        batch[n] = torch.tensor(np.asarray(tensors[n]), dtype=dtype)
    for n in BATCH_INT:
        batch[n] = torch.tensor(np.asarray(tensors[n]).astype(np.int64))
    return P, M, batch


def step(cfg, tensors, dtype=torch.float32, return_acts=False):
    """One step: forward, total loss, backward. Returns (losses {name: float}, grads
    {online param name: np.ndarray}) and, with return_acts, the activations as numpy."""
    if not isinstance(cfg, dict) or "N" not in cfg:
        cfg = load_config(cfg)
    P, M, batch = prepare(cfg, tensors, dtype)
    losses, acts = forward(cfg, P, M, batch)
    losses["total"].backward()
    grads = {}
    for n, p in P.items():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        grads[n] = g.detach().numpy().copy()
    out_l = {k: float(v) for k, v in losses.items()}
    if return_acts:
        return out_l, grads, {k: a.detach().numpy().copy() for k, a in acts.items()}
    return out_l, grads
