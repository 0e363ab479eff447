// attnmap.c: `vlmae attnmap` (see attnmap.h).
#define _GNU_SOURCE
#include "tasks/attnmap.h"

#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/augment.h"
#include "data/datafiles.h"
#include "data/image.h"
#include "data/tokenizer.h"
#include "engine/common.h"
#include "model/choices.h"
#include "tasks/finetune.h"
#include "tasks/tasklib.h"
#include "train/config.h"

void attnmap_compute(const Model *m, const float *chw, int layer, float *out) {
    const ModelConfig *c = &m->cfg;
    const Tower *t = &m->on;
    int N = model_num_patches(c), C = c->vision_width, H = c->vision_heads, dh = C / H;
    int P = 3 * c->patch_size * c->patch_size, L = c->vision_depth;
    if (layer < 0 || layer >= L) layer = L - 1;
    TlInfer in;
    tl_infer_init(&in);
    tl_infer_begin(&in);
    Graph *g = &in.g;
    // the image encoder's input exactly as vit_forward builds it: [CLS + pos0; patches + pos]
    Tensor *patches = g_tensor2(g, N, P, 0);
    patchify_conv(chw, 1, c->image_size, c->patch_size, patches->data);
    Tensor *x = g_linear(g, patches, t->patch_embed.w, t->patch_embed.b);
    x = g_add_bcast(g, x, g_view(g, t->pos_embed, C, N, C));
    Tensor *cls = g_add(g, g_view(g, t->cls_token, 0, 1, C), g_view(g, t->pos_embed, 0, 1, C));
    Tensor *parts[2] = {cls, x};
    x = g_concat_rows(g, parts, 2, C);  // (1+N, C)
    for (int l = 0; l < layer; l++) x = block_forward(g, &t->vit[l], x, NULL, 1, 1 + N, H, c->vision_ln_eps);
    const Block *blk = &t->vit[layer];
    Tensor *h = g_layernorm(g, x, blk->norm1.w, blk->norm1.b, c->vision_ln_eps);
    Tensor *qkv = g_linear(g, h, blk->qkv.w, blk->qkv.b);  // (1+N, 3C): q | k | v
    double *acc = callocCheck((size_t)N, sizeof(double));
    double *s = mallocCheck((size_t)(1 + N) * sizeof(double));
    const float *q = qkv->data;  // row 0: the [CLS] query
    for (int hd = 0; hd < H; hd++) {
        double mx = -INFINITY, sum = 0.0;
        for (int j = 0; j <= N; j++) {
            const float *k = qkv->data + (size_t)j * 3 * C + C;
            double d = 0.0;
            for (int e = 0; e < dh; e++) d += (double)q[hd * dh + e] * k[hd * dh + e];
            s[j] = d / sqrt((double)dh);
            if (s[j] > mx) mx = s[j];
        }
        for (int j = 0; j <= N; j++) sum += (s[j] = exp(s[j] - mx));
        for (int j = 1; j <= N; j++) acc[j - 1] += s[j] / sum / H;
    }
    double tot = 0.0;
    for (int j = 0; j < N; j++) tot += acc[j];
    for (int j = 0; j < N; j++) out[j] = (float)(tot > 0 ? acc[j] / tot : 1.0 / N);
    free(acc);
    free(s);
    tl_infer_free(&in);
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

void attnmap_stats(const float *w, int N, double low_frac, AttnStats *st) {
    int low = 0;
    double ent = 0.0;
    for (int j = 0; j < N; j++) {
        low += w[j] < low_frac / N;
        if (w[j] > 0) ent -= w[j] * log(w[j]);
    }
    float *sorted = mallocCheck((size_t)N * sizeof(float));
    memcpy(sorted, w, (size_t)N * sizeof(float));
    qsort(sorted, (size_t)N, sizeof(float), cmp_desc);
    int top = (N + 9) / 10;
    double mass = 0.0;
    for (int j = 0; j < top; j++) mass += sorted[j];
    free(sorted);
    st->low = (double)low / N;
    st->top10 = mass;
    st->entropy = N > 1 ? ent / log((double)N) : 1.0;
}

// jet-like colour map of v in [0, 1]
static void colormap(double v, double rgb[3]) {
    v = fmin(1.0, fmax(0.0, v));
    rgb[0] = fmin(1.0, fmax(0.0, 1.5 - fabs(4.0 * v - 3.0)));
    rgb[1] = fmin(1.0, fmax(0.0, 1.5 - fabs(4.0 * v - 2.0)));
    rgb[2] = fmin(1.0, fmax(0.0, 1.5 - fabs(4.0 * v - 1.0)));
}

// The image resized to out x out with the map (grid x grid) upsampled bilinearly, scaled by its
// maximum and blended half and half.
static int write_overlay(const Image *im, const float *w, int grid, int out, const char *path) {
    Image disp = {0};
    disp.h = disp.w = out;
    image_resize_bicubic(im, &disp);
    float mx = 0.0f;
    for (int j = 0; j < grid * grid; j++) mx = w[j] > mx ? w[j] : mx;
    for (int y = 0; y < out; y++) {
        double gy = (y + 0.5) * grid / out - 0.5;
        int y0 = (int)floor(gy);
        double fy = gy - y0;
        for (int x = 0; x < out; x++) {
            double gx = (x + 0.5) * grid / out - 0.5;
            int x0 = (int)floor(gx);
            double fx = gx - x0, v = 0.0;
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++) {
                    int yy = MIN(grid - 1, MAX(0, y0 + dy)), xx = MIN(grid - 1, MAX(0, x0 + dx));
                    v += (dy ? fy : 1 - fy) * (dx ? fx : 1 - fx) * w[yy * grid + xx];
                }
            double rgb[3];
            colormap(mx > 0 ? v / mx : 0.0, rgb);
            uint8_t *px = disp.px + ((size_t)y * out + x) * 3;
            for (int ch = 0; ch < 3; ch++) px[ch] = (uint8_t)lround(0.5 * px[ch] + 0.5 * 255.0 * rgb[ch]);
        }
    }
    int rc = image_write_png(&disp, path);
    image_free(&disp);
    return rc;
}

static char *ckpt_config_yaml(const char *path, char *err, size_t errlen) {
    H5E_auto2_t func;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    char *s = NULL;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        snprintf(err, errlen, "%s: cannot open as HDF5 (not a checkpoint?)", path);
    } else if (H5Aexists(f, "config_yaml") <= 0) {
        snprintf(err, errlen, "%s: not a vlmae checkpoint (no config_yaml attribute)", path);
    } else {
        hid_t a = H5Aopen(f, "config_yaml", H5P_DEFAULT);
        hid_t ft = a >= 0 ? H5Aget_type(a) : -1;
        if (ft >= 0 && H5Tis_variable_str(ft) > 0) {
            char *v = NULL;
            hid_t mt = H5Tcopy(ft);
            if (H5Aread(a, mt, &v) >= 0 && v) s = strdup(v);
            if (v) H5free_memory(v);
            H5Tclose(mt);
        } else if (ft >= 0) {
            size_t n = H5Tget_size(ft);
            hid_t mt = H5Tcopy(ft);
            H5Tset_size(mt, n + 1);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            s = callocCheck(n + 2, 1);
            if (H5Aread(a, mt, s) < 0) free(s), s = NULL;
            H5Tclose(mt);
        }
        if (ft >= 0) H5Tclose(ft);
        if (a >= 0) H5Aclose(a);
        if (!s) snprintf(err, errlen, "%s: unreadable config_yaml attribute", path);
    }
    if (f >= 0) H5Fclose(f);
    H5Eset_auto2(H5E_DEFAULT, func, data);
    return s;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: vlmae attnmap --ckpt CKPT.h5 --images A.jpg [B.jpg ...] --out DIR [options]\n"
            "The image encoder's [CLS]-to-patch attention (mean over heads, last block) of a checkpoint\n"
            "(pre-training or fine-tuning) on each image: DIR/NAME_attn.png overlays and, per image and on\n"
            "average, how widely the attention spreads (run it on an albef and a vlmae checkpoint to\n"
            "compare them, as the VLMAE paper's Fig. 5):\n"
            "  low      share of patches with less than F / N of the attention (F = --low)\n"
            "  top10    attention mass of the top 10%% of patches\n"
            "  entropy  normalised entropy of the map (1 = uniform)\n"
            "DIR/attnmap.tsv holds the same numbers.\n"
            "  --low F          low-attention interval [0, F/N), relative to the uniform share (default 0.5)\n"
            "  --layer L        block of the image encoder, 0-based (default: the last)\n"
            "  --image-size S   encoder resolution (default: the checkpoint's; pos_embed resized bicubically)\n"
            "  --size PX        overlay size in pixels (default 256)\n"
            "  --vocab FILE     vocabulary (default: the installed bert-base-uncased vocab)\n");
}

int attnmap_main(int argc, char **argv) {
    const char *ckpt = NULL, *outdir = NULL, *vocab = NULL;
    double low = 0.5;
    int layer = -1, size = 0, px = 256;
    const char **images = callocCheck((size_t)argc + 1, sizeof(char *));
    int n_img = 0;
    static struct option opts[] = {{"ckpt", 1, 0, 'k'},  {"images", 1, 0, 'i'}, {"out", 1, 0, 'o'},
                                   {"low", 1, 0, 'l'},   {"layer", 1, 0, 'L'},  {"image-size", 1, 0, 's'},
                                   {"size", 1, 0, 'p'},  {"vocab", 1, 0, 'v'},  {"help", 0, 0, 'h'},
                                   {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'k': ckpt = optarg; break;
        case 'i': images[n_img++] = optarg; break;
        case 'o': outdir = optarg; break;
        case 'l': low = atof(optarg); break;
        case 'L': layer = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'p': px = atoi(optarg); break;
        case 'v': vocab = optarg; break;
        case 'h': usage(stdout); free(images); return 0;
        default: usage(stderr); free(images); return 2;
        }
    }
    // --images takes every following non-option argument too
    while (optind < argc && argv[optind][0] != '-') images[n_img++] = argv[optind++];
    if (!ckpt || !outdir || n_img == 0 || optind != argc || !(low > 0) || px < 8) {
        usage(stderr);
        free(images);
        return 2;
    }
    char err[2048];
    char *yaml = ckpt_config_yaml(ckpt, err, sizeof(err));
    if (!yaml) {
        fprintf(stderr, "vlmae attnmap: %s\n", err);
        free(images);
        return 2;
    }
    FtContext cx;
    memset(&cx, 0, sizeof(cx));
    cx.d.rank = 0, cx.d.world = 1, cx.d.local_world = 1;
    cx.R0 = 1;
    config_defaults(&cx.rc);
    RunConfig ck;
    if (config_load_string(&ck, yaml, strlen(yaml), ckpt, err, sizeof(err)) != 0) {
        fprintf(stderr, "vlmae attnmap: %s: its config does not load: %s\n", ckpt, err);
        free(yaml);
        config_free(&ck);
        free(images);
        return 2;
    }
    free(yaml);
    cx.rc.task.image_size = size > 0 ? size : ck.model.image_size;
    cx.rc.task.text_max_len = MIN(cx.rc.task.text_max_len, ck.model.max_text_len);
    const char *vpath = vocab ? vocab : ck.data.vocab[0] ? ck.data.vocab : default_vocab_path();
    config_free(&ck);
    cx.tok = tokenizer_load(vpath, err, sizeof(err));
    if (!cx.tok) {
        fprintf(stderr, "vlmae attnmap: %s\n", err);
        free(images);
        return 2;
    }
    Model m;
    if (ft_build_model(&cx, &m, ckpt, err, sizeof(err)) != 0) {
        fprintf(stderr, "vlmae attnmap: %s\n", err);
        tokenizer_free(cx.tok);
        free(images);
        return 2;
    }
    if (mkdir_p(outdir) != 0) {
        fprintf(stderr, "vlmae attnmap: cannot create %s: %s\n", outdir, strerror(errno));
        return 2;
    }
    const ModelConfig *c = &m.cfg;
    int S = c->image_size, N = model_num_patches(c), grid = S / c->patch_size;
    int L = layer >= 0 && layer < c->vision_depth ? layer : c->vision_depth - 1;
    printf("vlmae attnmap: %s (%s objective), %d px, %d patches, block %d of %d; low-attention interval "
           "[0, %g/N)\n", ckpt, objective_name(c->objective), S, N, L, c->vision_depth, low);
    char tsv[4200];
    snprintf(tsv, sizeof(tsv), "%s/attnmap.tsv", outdir);
    FILE *tf = fopen(tsv, "w");
    if (tf) fprintf(tf, "image\tlow\ttop10\tentropy\toverlay\n");
    float *chw = mallocCheck((size_t)3 * S * S * sizeof(float)), *w = mallocCheck((size_t)N * sizeof(float));
    AttnStats mean = {0, 0, 0};
    int done = 0, status = 0;
    for (int i = 0; i < n_img; i++) {
        Image im = {0};
        if (image_read_file(images[i], &im, err, sizeof(err)) != 0) {
            fprintf(stderr, "vlmae attnmap: %s: %s (skipped)\n", images[i], err);
            status = 1;
            continue;
        }
        augment_eval(&im, S, chw);
        attnmap_compute(&m, chw, L, w);
        AttnStats st;
        attnmap_stats(w, N, low, &st);
        const char *base = strrchr(images[i], '/');
        base = base ? base + 1 : images[i];
        char out[4400];
        snprintf(out, sizeof(out), "%s/%.*s_attn.png", outdir, (int)strcspn(base, "."), base);
        if (write_overlay(&im, w, grid, px, out) != 0) {
            fprintf(stderr, "vlmae attnmap: cannot write %s\n", out);
            status = 1;
        }
        printf("%s: low %.1f%%  top10 %.1f%%  entropy %.3f  -> %s\n", images[i], 100 * st.low, 100 * st.top10,
               st.entropy, out);
        if (tf) fprintf(tf, "%s\t%.6f\t%.6f\t%.6f\t%s\n", images[i], st.low, st.top10, st.entropy, out);
        mean.low += st.low, mean.top10 += st.top10, mean.entropy += st.entropy;
        done++;
        image_free(&im);
    }
    if (done > 0) {
        printf("mean over %d images: low %.1f%%  top10 %.1f%%  entropy %.3f\n", done, 100 * mean.low / done,
               100 * mean.top10 / done, mean.entropy / done);
        if (tf) fprintf(tf, "mean\t%.6f\t%.6f\t%.6f\t\n", mean.low / done, mean.top10 / done, mean.entropy / done);
    }
    if (tf) fclose(tf);
    free(chw), free(w), free(images);
    model_free(&m);
    tokenizer_free(cx.tok);
    config_free(&cx.rc);
    return done == 0 ? 1 : status;
}
