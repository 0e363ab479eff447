// weights_import.h: pre-trained weights from other tools (safetensors files) into our model, and
// our weights out as safetensors.
//
// import_vit_timm: a timm / DeiT ViT (e.g. deit_base_patch16_224, vit_base_patch16_224) into the
// image encoder (vit.*), online and momentum copies alike. Names map one to one
// (blocks.L.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}, norm.*), with
//   patch_embed.proj.weight (C,3,p,p) -> vit.patch_embed.weight (C, 3*p*p), same memory order;
//   cls_token (1,1,C) -> vit.cls_token (C);
//   pos_embed (1, X+G*G, C) -> vit.pos_embed (1+N, C), the G x G grid resized bicubically to our
//   grid when it differs (ALBEF's interpolate_pos_embed: PyTorch F.interpolate(mode='bicubic',
//   align_corners=False)); X = 1 (class token), 2 (DeiT distilled: the dist_token row is dropped),
//   or 0 (no class-token position: our CLS row is zero).
// head.*, head_dist.*, fc_norm.*, pre_logits.* and dist_token are ignored (and said so). Blocks
// beyond the model's depth are skipped (reported). Every vit.* parameter must be found; shapes must
// match (except the pos_embed grid). A "module." prefix is accepted.
//
// import_bert_hf: a Hugging Face BERT (bert-base-uncased: BertModel, BertForMaskedLM or
// BertForPreTraining names, with or without the "bert." prefix, old LayerNorm gamma/beta names
// too) into the text encoder + fusion layers + MLM head:
//   embeddings.{word,position,token_type}_embeddings -> bert.embeddings.{word,position,token_type}
//     (the position table is truncated to max_text_len rows; a shorter one is an error)
//   embeddings.LayerNorm -> bert.embeddings.ln
//   encoder.layer.L.attention.self.{query,key,value}, attention.output.dense,
//   attention.output.LayerNorm -> bert.layers.L.attn.{q,k,v,o,ln};
//   intermediate.dense, output.dense, output.LayerNorm -> bert.layers.L.ffn.{fc1,fc2,ln};
//   encoder.layer.L.crossattention.* (an ALBEF-style text encoder) -> bert.layers.L.cross.*
//   cls.predictions.transform.dense / .LayerNorm -> mlm.dense / mlm.ln; cls.predictions.bias -> mlm.bias
// The cross-attention of the fusion layers stays freshly initialised (BERT has none); pooler,
// NSP head (cls.seq_relationship), position_ids and the tied decoder weight are ignored. The
// embeddings must be found; other missing parameters stay as initialised and are reported.
//
// Both return 0 with a human-readable summary in msg (what was loaded, resized, ignored, skipped,
// left fresh) or -1 with the error in msg (naming the file and the tensor). On -1 the model may
// have been partly written. Call them after model_init_weights.
#ifndef VLMAE_WEIGHTS_IMPORT_H
#define VLMAE_WEIGHTS_IMPORT_H

#include <stddef.h>

#include "model/model.h"

int import_vit_timm(Model *m, const char *path, char *msg, size_t msglen);
int import_bert_hf(Model *m, const char *path, char *msg, size_t msglen);

// All online parameters under our names (F32, shapes as registered), metadata format=pt,
// producer=vlmae. Returns 0 or -1 with the error in err.
int export_safetensors(const Model *m, const char *path, char *err, size_t errlen);

// Resizes a position-embedding grid (sh x sw rows of C values, row-major over the grid) to
// dh x dw rows, bicubic with PyTorch F.interpolate(mode='bicubic', align_corners=False)
// semantics (cubic coefficient a = -0.75, edge indices clamped).
void pos_embed_resize_bicubic(const float *src, int sh, int sw, float *dst, int dh, int dw, int C);

#endif
