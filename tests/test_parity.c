// test_parity.c: writes one pre-training step of a tiny model for the PyTorch reference to check
// (tests/test_parity.sh runs both). Usage: test_parity OUTDIR vlmae|albef|tcl
// OUTDIR/case.json (config), OUTDIR/case.vlt (weights, batch, queues, random choices; for tcl the
// second view image2) and OUTDIR/c_out.vlt (the losses and every online parameter's gradient).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/common.h"
#include "engine/rng.h"
#include "model/model.h"
#include "model/step.h"
#include "train/tensorfile.h"

static void write_config(const char *path, const ModelConfig *c, int B, int T) {
    FILE *f = fopenCheck(path, "w");
    fprintf(f, "{\n");
    fprintf(f, "  \"image_size\": %d, \"patch_size\": %d,\n", c->image_size, c->patch_size);
    fprintf(f, "  \"vision_width\": %d, \"vision_depth\": %d, \"vision_heads\": %d, \"vision_mlp\": %d, \"vision_ln_eps\": %.9g,\n",
            c->vision_width, c->vision_depth, c->vision_heads, c->vision_mlp, c->vision_ln_eps);
    fprintf(f, "  \"vocab_size\": %d, \"text_width\": %d, \"text_heads\": %d, \"text_mlp\": %d,\n",
            c->vocab_size, c->text_width, c->text_heads, c->text_mlp);
    fprintf(f, "  \"text_layers\": %d, \"fusion_layers\": %d, \"max_text_len\": %d, \"text_ln_eps\": %.9g,\n",
            c->text_layers, c->fusion_layers, c->max_text_len, c->text_ln_eps);
    fprintf(f, "  \"decoder_width\": %d, \"decoder_depth\": %d, \"decoder_heads\": %d, \"decoder_mlp\": %d,\n",
            c->decoder_width, c->decoder_depth, c->decoder_heads, c->decoder_mlp);
    fprintf(f, "  \"embed_dim\": %d, \"queue_size\": %d, \"mask_ratio\": %.9g, \"norm_pix_loss\": %d,\n",
            c->embed_dim, c->queue_size, c->mask_ratio, c->norm_pix_loss);
    fprintf(f, "  \"objective\": \"%s\", \"batch_size\": %d, \"text_len\": %d,\n", objective_name(c->objective), B, T);
    fprintf(f, "  \"w_itc\": %.9g, \"w_itm\": %.9g, \"w_mlm\": %.9g, \"w_rmim\": %.9g, \"w_ifr\": %.9g\n",
            c->w_itc, c->w_itm, c->w_mlm, c->w_rmim, c->w_ifr);
    fprintf(f, "}\n");
    fclose(f);
}

static void put_param(VltWriter *w, const ParamInfo *pi, const float *data, const char *prefix) {
    char name[160];
    int64_t dims[4];
    snprintf(name, sizeof(name), "%s%s", prefix, pi->name);
    for (int i = 0; i < pi->ndim; i++) dims[i] = pi->shape[i];
    vlt_put(w, name, VLT_F32, data, pi->ndim, dims);
}

int main(int argc, char **argv) {
    if (argc != 3) die("usage: test_parity OUTDIR vlmae|albef|tcl");
    const char *dir = argv[1];
    ModelConfig c;
    model_config_tiny(&c);
    c.objective = !strcmp(argv[2], "albef") ? OBJ_ALBEF : !strcmp(argv[2], "tcl") ? OBJ_TCL : OBJ_VLMAE;
    int tcl = c.objective == OBJ_TCL;
    c.vocab_size = 64, c.max_text_len = 16, c.queue_size = 8;
    c.pad_id = 0, c.cls_id = 1, c.mask_id = 2;
    c.hidden_dropout = c.attn_dropout = 0.0f;
    c.w_itc = 1.0f, c.w_itm = 0.7f, c.w_mlm = 1.3f, c.w_rmim = 0.9f, c.w_ifr = 1.1f;  // weights matter
    int B = 4, T = 8, S = c.image_size;
    Model m;
    model_create(&m, &c);
    model_init_weights(&m, 7);
    // Larger random weights than the init so every path carries signal; momentum != online.
    Rng r;
    rng_seed(&r, 2024);
    for (size_t i = 0; i < m.params.total; i++) m.params.data[i] += 0.1f * (float)rng_normal(&r);
    for (size_t i = 0; i < m.tower_n; i++) m.momentum.data[i] = m.params.data[i] + 0.05f * (float)rng_normal(&r);
    m.temp->data[0] = 0.1f;

    Batch bt = {.B = B, .T = T, .H = S, .W = S};
    float image[4 * 3 * 32 * 32], image2[4 * 3 * 32 * 32], box[4 * 4];
    int32_t ids[4 * 8], mask[4 * 8];
    int64_t image_id[4];
    int lens[4] = {8, 6, 5, 3};
    if (tcl) lens[3] = 1;  // a caption of [CLS] alone: no text locals (TCL's LMI leaves it out)
    for (int i = 0; i < B * 3 * S * S; i++) image[i] = (float)rng_normal(&r);
    // tcl's second view: the image flipped left-right, plus noise (another "augmentation")
    for (int i = 0; i < B * 3 * S; i++)
        for (int x = 0; x < S; x++) image2[i * S + x] = image[i * S + S - 1 - x] + 0.3f * (float)rng_normal(&r);
    for (int b = 0; b < B; b++) {
        image_id[b] = b;
        for (int t = 0; t < T; t++) {
            int real = t < lens[b];
            ids[b * T + t] = t == 0 ? c.cls_id : real ? 3 + (int)rng_randint(&r, c.vocab_size - 3) : c.pad_id;
            mask[b * T + t] = real;
        }
        for (int k = 0; k < 4; k++) box[b * 4 + k] = NAN;
    }
    box[0] = 0.1f, box[1] = 0.2f, box[2] = 0.5f, box[3] = 0.6f;   // sample 0 has a region
    box[8] = 0.5f, box[9] = 0.0f, box[10] = 0.5f, box[11] = 1.0f;  // sample 2: right half
    bt.image = image, bt.text_ids = ids, bt.text_mask = mask, bt.box = box, bt.image_id = image_id;
    bt.image2 = tcl ? image2 : NULL;

    Step st;
    step_create(&st, &m, &bt);
    Losses l;
    float alpha = 0.4f;
    Rng sr;
    rng_seed(&sr, 99);
    pretrain_step(&st, &m, &bt, alpha, &sr, NULL, &l);
    printf("c losses: itc %.6f itm %.6f mlm %.6f rmim %.6f ifr %.6f total %.6f", l.itc, l.itm, l.mlm,
           l.rmim, l.ifr, l.total);
    if (tcl) printf(" imc %.6f lmi %.6f", l.imc, l.lmi);
    printf("\n");

    char path[1024];
    snprintf(path, sizeof(path), "%s/case.json", dir);
    write_config(path, &c, B, T);
    snprintf(path, sizeof(path), "%s/case.vlt", dir);
    VltWriter w;
    vlt_open(&w, path);
    for (int i = 0; i < m.params.count; i++) put_param(&w, &m.params.p[i], m.params.data + m.params.p[i].offset, "");
    for (int i = 0; i < m.momentum.count; i++) put_param(&w, &m.momentum.p[i], m.momentum.data + m.momentum.p[i].offset, "");
    const StepChoices *ch = &st.ch;
    int N = ch->N, K = ch->K, E = c.embed_dim, Q = c.queue_size;
    vlt_put_f32(&w, "image", image, 4, B, 3, S, S);
    if (tcl) vlt_put_f32(&w, "image2", image2, 4, B, 3, S, S);
    vlt_put_i32(&w, "text_ids", ids, 2, B, T);
    vlt_put_i32(&w, "text_mask", mask, 2, B, T);
    vlt_put_i32(&w, "ids_keep", ch->ids_keep, 2, B, K);
    vlt_put_i32(&w, "ids_restore", ch->ids_restore, 2, B, N);
    vlt_put_i32(&w, "mlm_ids", ch->mlm_ids, 2, B, T);
    vlt_put_i32(&w, "mlm_labels", ch->mlm_labels, 2, B, T);
    vlt_put_i32(&w, "itm_neg_image", ch->neg_image, 1, B);
    vlt_put_i32(&w, "itm_neg_text", ch->neg_text, 1, B);
    vlt_put_f32(&w, "region", ch->region, 2, B, N);
    float iq[16 * 8], tq[16 * 8];  // (E, Q): the queues are stored (Q, E) in the model
    for (int q = 0; q < Q; q++)
        for (int e = 0; e < E; e++) iq[e * Q + q] = m.image_queue[q * E + e], tq[e * Q + q] = m.text_queue[q * E + e];
    vlt_put_f32(&w, "image_queue", iq, 2, E, Q);
    vlt_put_f32(&w, "text_queue", tq, 2, E, Q);
    vlt_put_f32(&w, "alpha", &alpha, 1, 1);
    vlt_close(&w);

    snprintf(path, sizeof(path), "%s/c_out.vlt", dir);
    vlt_open(&w, path);
    vlt_put_f32(&w, "loss.itc", &l.itc, 1, 1);
    vlt_put_f32(&w, "loss.itm", &l.itm, 1, 1);
    vlt_put_f32(&w, "loss.mlm", &l.mlm, 1, 1);
    vlt_put_f32(&w, "loss.rmim", &l.rmim, 1, 1);  // 0 for albef, as in the reference
    vlt_put_f32(&w, "loss.ifr", &l.ifr, 1, 1);
    if (tcl) {  // the contrastive part's pieces: (i2i + t2t)/2 and (lmi_img + lmi_txt)/2
        vlt_put_f32(&w, "loss.imc", &l.imc, 1, 1);
        vlt_put_f32(&w, "loss.lmi", &l.lmi, 1, 1);
    }
    vlt_put_f32(&w, "loss.total", &l.total, 1, 1);
    for (int i = 0; i < m.params.count; i++)  // albef: the decoder's gradients are all zero
        put_param(&w, &m.params.p[i], m.params.grad + m.params.p[i].offset, "grad.");
    vlt_close(&w);
    step_free(&st);
    model_free(&m);
    return 0;
}
