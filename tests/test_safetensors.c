// test_safetensors.c: the safetensors reader/writer (src/train/safetensors.c) and weight import/export
// (src/train/weights_import.c).
//
// - writer -> reader round trip (shapes incl. 0-d and empty, values, metadata, 8-byte alignment);
// - F16 / BF16 / F64 conversion on hand-made bit patterns, and on a file written by an
//   independent Python writer (tests/make_safetensors.py, when $PYTHON is set);
// - malformed files: too short, header length past the end, invalid JSON, unknown dtype, byte
//   count not matching dtype x shape, offsets past the data, overlapping tensors, duplicate names,
//   non-object entries; non-float dtypes refused by st_read_f32. Errors name file and tensor;
// - bicubic pos_embed resize against PyTorch F.interpolate values (constants printed by
//   make_safetensors.py --bicubic);
// - timm ViT import (2x2 -> 4x4 pos_embed grid, DeiT distilled, extra blocks skipped, head
//   ignored, errors for missing tensors and wrong patch size) and HF BERT import ("bert." prefix
//   or not, gamma/beta names, position table truncation, extra layers, I64 position_ids, cross-
//   attention left fresh, MLM head, summary text, errors), into online and momentum copies;
// - export_safetensors round trip.
#define _GNU_SOURCE  // mmap, fsync, strdup, nftw, mkdtemp
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"
#include "train/safetensors.h"
#include "train/weights_import.h"

#include "check.h"

static char dir[256];



static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

// ---------------------------------------------------------------------------------------------
// An independent little safetensors writer (arbitrary dtypes, raw bytes, optional broken fields).

typedef struct {
    char name[96];
    char dtype[12];
    int ndim;
    int64_t shape[4];
    void *data;
    size_t bytes;
} Ent;

typedef struct {
    Ent e[128];
    int n;
} Ents;

static uint64_t hash64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static float value_of(const char *name, size_t i) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (float)((hash64(h + i) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

// Adds an F32 tensor whose values come from value_of(name, i); returns its data.
static float *add_f32(Ents *s, const char *name, int ndim, ...) {
    Ent *e = &s->e[s->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    strcpy(e->dtype, "F32");
    e->ndim = ndim;
    size_t n = 1;
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++) e->shape[i] = va_arg(ap, int), n *= (size_t)e->shape[i];
    va_end(ap);
    float *d = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) d[i] = value_of(name, i);
    e->data = d, e->bytes = n * sizeof(float);
    return d;
}

static Ent *add_raw(Ents *s, const char *name, const char *dtype, const void *data, size_t bytes, int ndim, ...) {
    Ent *e = &s->e[s->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    snprintf(e->dtype, sizeof(e->dtype), "%s", dtype);
    e->ndim = ndim;
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++) e->shape[i] = va_arg(ap, int);
    va_end(ap);
    e->data = malloc(bytes + 1);
    memcpy(e->data, data, bytes);
    e->bytes = bytes;
    return e;
}

static Ent *find_ent(Ents *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->e[i].name, name) == 0) return &s->e[i];
    return NULL;
}

static void free_ents(Ents *s) {
    for (int i = 0; i < s->n; i++) free(s->e[i].data);
    s->n = 0;
}

static void write_ents(const char *path, const Ents *s) {
    char *h = malloc(1 << 20);
    size_t k = (size_t)sprintf(h, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t off = 0;
    for (int i = 0; i < s->n; i++) {
        const Ent *e = &s->e[i];
        k += (size_t)sprintf(h + k, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", e->name, e->dtype);
        for (int d = 0; d < e->ndim; d++) k += (size_t)sprintf(h + k, d ? ",%lld" : "%lld", (long long)e->shape[d]);
        k += (size_t)sprintf(h + k, "],\"data_offsets\":[%zu,%zu]}", off, off + e->bytes);
        off += e->bytes;
    }
    k += (size_t)sprintf(h + k, "}");
    FILE *f = fopen(path, "wb");
    uint64_t len = k;
    fwrite(&len, 8, 1, f);
    fwrite(h, 1, k, f);
    for (int i = 0; i < s->n; i++) fwrite(s->e[i].data, 1, s->e[i].bytes, f);
    fclose(f);
    free(h);
}

// A file from a header string and a data size (zero bytes), with the length field given or
// (hlen_override < 0) the real one.
static void write_raw_file(const char *path, const char *header, size_t data_bytes, long long hlen_override) {
    FILE *f = fopen(path, "wb");
    uint64_t len = hlen_override >= 0 ? (uint64_t)hlen_override : strlen(header);
    fwrite(&len, 8, 1, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    fclose(f);
}

static int expect_open_error(const char *name, const char *header, size_t data_bytes, long long hlen,
                             const char *want1, const char *want2) {
    char path[512], err[1024];
    path_in(path, sizeof(path), name);
    write_raw_file(path, header, data_bytes, hlen);
    SafeTensors st;
    int rc = st_open(&st, path, err, sizeof(err));
    int good = rc == -1 && strstr(err, path) && strstr(err, want1) && (!want2 || strstr(err, want2));
    CHECKF(good, "%s: rc %d, err \"%s\" (want \"%s\"%s%s)", name, rc, rc ? err : "", want1, want2 ? " and " : "",
           want2 ? want2 : "");
    if (rc == 0) st_close(&st);
    printf("  %-14s %s\n", name, err);
    return good;
}

// ---------------------------------------------------------------------------------------------

static void test_roundtrip(void) {
    char path[512], err[1024];
    path_in(path, sizeof(path), "rt.safetensors");
    float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 65536};
    float s0 = 0.07f;
    int64_t sa[2] = {2, 3}, se[2] = {0, 4};
    StWriteTensor ts[3] = {{"a.weight", 2, sa, a}, {"temp", 0, NULL, &s0}, {"empty \"quoted\"\\name", 2, se, NULL}};
    const char *meta[] = {"producer", "test", "format", "ignored", NULL};
    int rc = st_write_f32(path, ts, 3, meta, err, sizeof(err));
    CHECKF(rc == 0, "write: %s", err);
    SafeTensors st;
    rc = st_open(&st, path, err, sizeof(err));
    CHECKF(rc == 0, "open: %s", err);
    if (rc) return;
    CHECKF(st.count == 3, "count %d", st.count);
    CHECKF((st.data_start % 8) == 0, "data start %zu not 8-byte aligned", st.data_start);
    CHECKF(st_meta(&st, "format") && strcmp(st_meta(&st, "format"), "pt") == 0, "format metadata");
    CHECKF(st_meta(&st, "producer") && strcmp(st_meta(&st, "producer"), "test") == 0, "producer metadata");
    const StTensor *t = st_find(&st, "a.weight");
    float got[6];
    CHECKF(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && strcmp(t->dtype, "F32") == 0, "a.weight header");
    if (t) {
        CHECKF(st_read_f32(&st, t, got, err, sizeof(err)) == 0 && memcmp(got, a, sizeof(a)) == 0, "a.weight values");
    }
    t = st_find(&st, "temp");
    CHECKF(t && t->ndim == 0 && t->numel == 1, "0-d tensor");
    if (t) CHECKF(st_read_f32(&st, t, got, err, sizeof(err)) == 0 && got[0] == s0, "0-d value");
    t = st_find(&st, "empty \"quoted\"\\name");
    CHECKF(t && t->numel == 0 && t->shape[1] == 4, "empty tensor with an escaped name");
    st_close(&st);
    // The header's padding: spaces, and the length a multiple of 8.
    FILE *f = fopen(path, "rb");
    uint64_t hl = 0;
    CHECKF(fread(&hl, 8, 1, f) == 1 && hl % 8 == 0, "header length %llu", (unsigned long long)hl);
    fclose(f);
    ok("writer -> reader round trip (values, 0-d, empty, escaped names, metadata, alignment)");
}

static void test_halfs(void) {
    // F16 bit patterns and their values.
    const uint16_t h[] = {0x3C00, 0xC000, 0x7C00, 0xFC00, 0x0001, 0x3555, 0x8000, 0x7BFF, 0x0400, 0x03FF};
    const float hv[] = {1.0f, -2.0f, INFINITY, -INFINITY, 5.9604645e-8f, 0.333251953125f, -0.0f, 65504.0f,
                        6.1035156e-5f, 6.0975552e-5f};
    for (int i = 0; i < 10; i++) {
        float v = st_f16_to_f32(h[i]);
        CHECKF(memcmp(&v, &hv[i], 4) == 0, "f16 0x%04x -> %.9g, want %.9g", h[i], v, hv[i]);
    }
    CHECKF(isnan(st_f16_to_f32(0x7E00)), "f16 NaN");
    const uint16_t b[] = {0x3F80, 0xC0A0, 0x3E20, 0x0000, 0x7F80};
    const float bv[] = {1.0f, -5.0f, 0.15625f, 0.0f, INFINITY};
    for (int i = 0; i < 5; i++) CHECKF(st_bf16_to_f32(b[i]) == bv[i], "bf16 0x%04x", b[i]);

    // Through a file, with an I64 tensor that must be refused for float reading.
    Ents s = {0};
    add_raw(&s, "h", "F16", h, sizeof(h), 1, 10);
    add_raw(&s, "b", "BF16", b, sizeof(b), 1, 5);
    double d[2] = {1.5, -1.0 / 3.0};
    add_raw(&s, "d", "F64", d, sizeof(d), 2, 1, 2);
    int64_t ids[3] = {0, 1, 2};
    add_raw(&s, "ids", "I64", ids, sizeof(ids), 1, 3);
    char path[512], err[1024];
    path_in(path, sizeof(path), "halfs.safetensors");
    write_ents(path, &s);
    free_ents(&s);
    SafeTensors st;
    CHECKF(st_open(&st, path, err, sizeof(err)) == 0, "%s", err);
    float got[10];
    CHECKF(st_read_f32(&st, st_find(&st, "h"), got, err, sizeof(err)) == 0 && memcmp(got, hv, sizeof(hv)) == 0, "F16 file");
    CHECKF(st_read_f32(&st, st_find(&st, "b"), got, err, sizeof(err)) == 0 && memcmp(got, bv, sizeof(bv)) == 0, "BF16 file");
    CHECKF(st_read_f32(&st, st_find(&st, "d"), got, err, sizeof(err)) == 0 && got[0] == 1.5f && got[1] == (float)(-1.0 / 3.0),
           "F64 file");
    int rc = st_read_f32(&st, st_find(&st, "ids"), got, err, sizeof(err));
    CHECKF(rc == -1 && strstr(err, path) && strstr(err, "ids") && strstr(err, "I64"), "I64 as float: %s", err);
    printf("  %s\n", err);
    st_close(&st);
    ok("F16 / BF16 / F64 conversion; non-float dtypes refused");
}

static void test_python_file(void) {
    const char *py = getenv("PYTHON"), *top = getenv("top_srcdir");
    if (!py || !py[0]) {
        printf("skip independent Python-written file ($PYTHON not set)\n");
        return;
    }
    char path[512], cmd[2048], err[1024];
    path_in(path, sizeof(path), "python.safetensors");
    snprintf(cmd, sizeof(cmd), "%s %s/tests/make_safetensors.py %s", py, top && top[0] ? top : ".", path);
    int rc = system(cmd);
    CHECKF(rc == 0, "%s exited with %d", cmd, rc);
    if (rc) return;
    SafeTensors st;
    rc = st_open(&st, path, err, sizeof(err));
    CHECKF(rc == 0, "open: %s", err);
    if (rc) return;
    int checked = 0;
    for (int i = 0; i < st.count; i++) {
        const StTensor *t = &st.t[i];
        if (strncmp(t->name, "expect.", 7) == 0) continue;
        char en[128];
        snprintf(en, sizeof(en), "expect.%s", t->name);
        const StTensor *e = st_find(&st, en);
        if (!e) {
            CHECKF(strcmp(t->dtype, "I64") == 0 && st_read_f32(&st, t, NULL, err, sizeof(err)) == -1, "%s", t->name);
            continue;
        }
        CHECKF(e->numel == t->numel && e->ndim == t->ndim, "%s: shape", t->name);
        float *a = malloc((size_t)t->numel * 4 + 4), *b = malloc((size_t)t->numel * 4 + 4);
        CHECKF(st_read_f32(&st, t, a, err, sizeof(err)) == 0 && st_read_f32(&st, e, b, err, sizeof(err)) == 0, "%s", err);
        CHECKF(memcmp(a, b, (size_t)t->numel * 4) == 0, "%s (%s) differs from the Python conversion", t->name, t->dtype);
        free(a), free(b);
        checked++;
    }
    CHECKF(checked == 6, "checked %d tensors", checked);
    CHECKF(st_meta(&st, "writer") != NULL, "metadata");
    st_close(&st);
    ok("file from the independent Python writer (F32/F16/BF16/F64, 0-d, empty, I64)");
}

static void test_bad_files(void) {
    char path[512], err[1024];
    path_in(path, sizeof(path), "short.safetensors");
    FILE *f = fopen(path, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    SafeTensors st;
    CHECKF(st_open(&st, path, err, sizeof(err)) == -1 && strstr(err, "too short"), "short: %s", err);
    path_in(path, sizeof(path), "does-not-exist.safetensors");
    CHECKF(st_open(&st, path, err, sizeof(err)) == -1 && strstr(err, path) && strstr(err, "No such file"), "missing: %s", err);
    const char *good = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    expect_open_error("len-past-end", good, 16, 1000000, "runs past the end of the file", NULL);
    expect_open_error("bad-json", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}", 16, -1,
                      "invalid JSON header", NULL);
    expect_open_error("trailing-comma", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},}", 16, -1,
                      "invalid JSON header", NULL);
    expect_open_error("not-object", "[1,2,3]", 0, -1, "does not start with '{'", NULL);
    expect_open_error("entry-number", "{\"a\":5}", 0, -1, "\"a\"", "expected an object");
    expect_open_error("bad-dtype", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, -1,
                      "tensor w has unknown dtype \"Q4\"", NULL);
    expect_open_error("size-mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 16, -1,
                      "tensor w", "needs 16 bytes");
    expect_open_error("past-data", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,64]}}", 16, -1,
                      "tensor w", "run past the end of the data");
    expect_open_error("overlap",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                      24, -1, "tensors a [0, 16) and b [8, 24) overlap", NULL);
    expect_open_error("duplicate",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                      8, -1, "tensor a appears twice", NULL);
    expect_open_error("neg-shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, -1,
                      "tensor w", "shape[0]");
    expect_open_error("bad-offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, -1, "tensor w",
                      "data_offsets");
    expect_open_error("reversed", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8, -1, "tensor w",
                      "end before they begin");
    expect_open_error("meta-nonstr", "{\"__metadata__\":{\"format\":1}}", 0, -1, "__metadata__", "format");
    ok("malformed files give errors naming the file and the tensor");
}

static void test_bicubic(void) {
    // 2x2 -> 4x4 and 5x5 -> 3x3, 5x5 -> 7x7 against torch.nn.functional.interpolate (bicubic,
    // align_corners=False); values from make_safetensors.py --bicubic.
    const float a[4] = {1, 2, 3, 5}, b[4] = {0.5f, -1, 2, 0.25f};
    const float A[16] = {0.694717407f, 0.991729736f, 1.48092651f, 1.77793884f, 1.32376099f, 1.73101807f,
                         2.40179443f, 2.80905151f, 2.35983276f, 2.94866943f, 3.91851807f, 4.50735474f,
                         2.98887634f, 3.68795776f, 4.83938599f, 5.53846741f};
    const float B[16] = {0.497219086f, 0.00792694092f, -0.797966003f, -1.28725815f, 1.00402069f, 0.487167358f,
                         -0.364120483f, -0.880973816f, 1.83875275f, 1.27650452f, 0.350448608f, -0.211799622f,
                         2.34555435f, 1.75574493f, 0.784294128f, 0.194484711f};
    const float D3[9] = {-0.601112306f, -0.0731487498f, 0.673046827f, 3.69574833f, 4.93845987f,
                         6.27754927f, 10.8198071f, 12.4792223f, 14.2119627f};
    const float U7[49] = {-1.13474512f, -1.08432424f, -0.949583054f, -0.772399366f, -0.56921953f, -0.259510487f,
                          -0.0406629443f, -0.40593636f, -0.230429873f, 0.0748906434f, 0.359044045f, 0.662660182f,
                          1.08785939f, 1.37745023f, 1.33084929f, 1.65188646f, 2.1614728f, 2.58141327f,
                          3.01408482f, 3.59092474f, 3.97452474f, 3.46288753f, 3.8440907f, 4.44633532f,
                          4.93846083f, 5.44184446f, 6.10605812f, 6.54528761f, 5.87668037f, 6.31619215f,
                          7.00647211f, 7.56521034f, 8.13385868f, 8.87861919f, 9.3691349f, 9.50443554f,
                          10.0072546f, 10.7936745f, 11.4258842f, 12.0668907f, 12.9016294f, 13.449688f,
                          12.0528965f, 12.5934095f, 13.4372196f, 14.1134853f, 14.7979822f, 15.6869984f,
                          16.2698402f};
    float src2[8], out2[32];
    for (int k = 0; k < 4; k++) src2[2 * k] = a[k], src2[2 * k + 1] = b[k];  // 2 channels
    pos_embed_resize_bicubic(src2, 2, 2, out2, 4, 4, 2);
    double worst = 0;
    for (int k = 0; k < 16; k++) {
        worst = fmax(worst, fabs(out2[2 * k] - A[k]));
        worst = fmax(worst, fabs(out2[2 * k + 1] - B[k]));
    }
    float src5[25], o3[9], o7[49];
    for (int k = 0; k < 25; k++) src5[k] = (float)(pow((double)k, 1.5) / 7.0 - 1.0);
    pos_embed_resize_bicubic(src5, 5, 5, o3, 3, 3, 1);
    pos_embed_resize_bicubic(src5, 5, 5, o7, 7, 7, 1);
    for (int k = 0; k < 9; k++) worst = fmax(worst, fabs(o3[k] - D3[k]) / fmax(1.0, fabs(D3[k])));
    for (int k = 0; k < 49; k++) worst = fmax(worst, fabs(o7[k] - U7[k]) / fmax(1.0, fabs(U7[k])));
    CHECKF(worst < 2e-6, "bicubic differs from torch by %g", worst);
    printf("  bicubic max error vs torch %.2g\n", worst);
    ok("bicubic pos_embed resize matches torch F.interpolate (2->4, 5->3, 5->7)");
}

// ---------------------------------------------------------------------------------------------
// Imports

static void tiny(ModelConfig *c) {
    model_config_tiny(c);
    c->vocab_size = 300;
}

static int param_equals(const Model *m, const char *name, const float *want) {
    const ParamInfo *pi = params_find(&m->params, name);
    if (!pi) return 0;
    if (memcmp(m->params.data + pi->offset, want, pi->n * sizeof(float)) != 0) return 0;
    char mn[128];
    snprintf(mn, sizeof(mn), "m.%s", name);
    const ParamInfo *mp = params_find(&m->momentum, mn);
    return !mp || memcmp(m->momentum.data + mp->offset, want, mp->n * sizeof(float)) == 0;
}

static void timm_file(Ents *s, const ModelConfig *c, int depth, int distilled, int grid, int patch) {
    int C = c->vision_width, F = c->vision_mlp;
    add_f32(s, "cls_token", 3, 1, 1, C);
    if (distilled) add_f32(s, "dist_token", 3, 1, 1, C);
    int extra = distilled ? 2 : 1;
    float *pos = add_f32(s, "pos_embed", 3, 1, extra + grid * grid, C);
    // grid rows: channel ch at grid cell k = a[k] + ch * b[k] (2x2 case checked against torch)
    const float a[4] = {1, 2, 3, 5}, b[4] = {0.5f, -1, 2, 0.25f};
    if (grid == 2)
        for (int k = 0; k < 4; k++)
            for (int ch = 0; ch < C; ch++) pos[(size_t)(extra + k) * C + ch] = a[k] + (float)ch * b[k];
    add_f32(s, "patch_embed.proj.weight", 4, C, 3, patch, patch);
    add_f32(s, "patch_embed.proj.bias", 1, C);
    for (int l = 0; l < depth; l++) {
        char n[96];
#define BLK(suffix, ...) snprintf(n, sizeof(n), "blocks.%d.%s", l, suffix), add_f32(s, n, __VA_ARGS__)
        BLK("norm1.weight", 1, C);
        BLK("norm1.bias", 1, C);
        BLK("attn.qkv.weight", 2, 3 * C, C);
        BLK("attn.qkv.bias", 1, 3 * C);
        BLK("attn.proj.weight", 2, C, C);
        BLK("attn.proj.bias", 1, C);
        BLK("norm2.weight", 1, C);
        BLK("norm2.bias", 1, C);
        BLK("mlp.fc1.weight", 2, F, C);
        BLK("mlp.fc1.bias", 1, F);
        BLK("mlp.fc2.weight", 2, C, F);
        BLK("mlp.fc2.bias", 1, C);
#undef BLK
    }
    add_f32(s, "norm.weight", 1, C);
    add_f32(s, "norm.bias", 1, C);
    add_f32(s, "head.weight", 2, 10, C);
    add_f32(s, "head.bias", 1, 10);
    if (distilled) add_f32(s, "head_dist.weight", 2, 10, C), add_f32(s, "head_dist.bias", 1, 10);
}

static void test_timm(void) {
    ModelConfig c;
    tiny(&c);
    int C = c.vision_width;
    const float A[16] = {0.694717407f, 0.991729736f, 1.48092651f, 1.77793884f, 1.32376099f, 1.73101807f,
                         2.40179443f, 2.80905151f, 2.35983276f, 2.94866943f, 3.91851807f, 4.50735474f,
                         2.98887634f, 3.68795776f, 4.83938599f, 5.53846741f};
    const float B[16] = {0.497219086f, 0.00792694092f, -0.797966003f, -1.28725815f, 1.00402069f, 0.487167358f,
                         -0.364120483f, -0.880973816f, 1.83875275f, 1.27650452f, 0.350448608f, -0.211799622f,
                         2.34555435f, 1.75574493f, 0.784294128f, 0.194484711f};
    char path[512], msg[2048];
    for (int distilled = 0; distilled < 2; distilled++) {
        Ents s = {0};
        timm_file(&s, &c, c.vision_depth + 1, distilled, 2, c.patch_size);  // one block too many, 2x2 grid
        path_in(path, sizeof(path), distilled ? "deit-distilled.safetensors" : "timm.safetensors");
        write_ents(path, &s);
        Model m;
        model_create(&m, &c);
        model_init_weights(&m, 11);
        int rc = import_vit_timm(&m, path, msg, sizeof(msg));
        CHECKF(rc == 0, "timm import: %s", msg);
        printf("  %s\n", msg);
        // One-to-one tensors, online and momentum.
        int mism = 0;
        for (int i = 0; i < s.n; i++) {
            const Ent *e = &s.e[i];
            char ours[128];
            if (strncmp(e->name, "blocks.", 7) == 0 && atoi(e->name + 7) < c.vision_depth)
                snprintf(ours, sizeof(ours), "vit.%s", e->name);
            else if (strncmp(e->name, "norm.", 5) == 0) snprintf(ours, sizeof(ours), "vit.%s", e->name);
            else if (strcmp(e->name, "patch_embed.proj.weight") == 0) strcpy(ours, "vit.patch_embed.weight");
            else if (strcmp(e->name, "patch_embed.proj.bias") == 0) strcpy(ours, "vit.patch_embed.bias");
            else if (strcmp(e->name, "cls_token") == 0) strcpy(ours, "vit.cls_token");
            else continue;
            if (!param_equals(&m, ours, e->data)) mism++, printf("  mismatch: %s -> %s\n", e->name, ours);
        }
        CHECKF(mism == 0, "%d tensors not copied exactly", mism);
        // pos_embed: CLS row copied (dist row dropped), 2x2 grid resized to 4x4 as torch does.
        const float *pos = find_ent(&s, "pos_embed")->data;
        const ParamInfo *pp = params_find(&m.params, "vit.pos_embed");
        const float *got = m.params.data + pp->offset;
        CHECKF(memcmp(got, pos, (size_t)C * 4) == 0, "CLS position row");
        double worst = 0;
        for (int k = 0; k < 16; k++)
            for (int ch = 0; ch < C; ch++) {
                double want = A[k] + (double)ch * B[k];
                worst = fmax(worst, fabs(got[(size_t)(1 + k) * C + ch] - want) / fmax(1.0, fabs(want)));
            }
        CHECKF(worst < 1e-5, "resized pos_embed differs from torch by %g", worst);
        const ParamInfo *mp = params_find(&m.momentum, "m.vit.pos_embed");
        CHECKF(memcmp(m.momentum.data + mp->offset, got, pp->n * 4) == 0, "momentum pos_embed");
        CHECKF(strstr(msg, "resized bicubically 2x2 -> 4x4") && strstr(msg, "skipped") && strstr(msg, "head.weight"),
               "summary: %s", msg);
        if (distilled) CHECKF(strstr(msg, "dist_token"), "distilled summary: %s", msg);
        model_free(&m);
        free_ents(&s);
    }
    // Errors: a missing tensor; a different patch size; a BERT loader on a ViT file.
    {
        Ents s = {0};
        timm_file(&s, &c, c.vision_depth, 0, 4, c.patch_size);
        strcpy(find_ent(&s, "norm.weight")->name, "norm.weight_renamed");
        path_in(path, sizeof(path), "timm-missing.safetensors");
        write_ents(path, &s);
        Model m;
        model_create(&m, &c);
        model_init_weights(&m, 12);
        int rc = import_vit_timm(&m, path, msg, sizeof(msg));
        CHECKF(rc == -1 && strstr(msg, path) && strstr(msg, "vit.norm.weight"), "missing: %s", msg);
        printf("  %s\n", msg);
        rc = import_bert_hf(&m, path, msg, sizeof(msg));
        CHECKF(rc == -1 && strstr(msg, "not a Hugging Face BERT"), "bert on vit: %s", msg);
        free_ents(&s);
        timm_file(&s, &c, c.vision_depth, 0, 4, 2 * c.patch_size);
        path_in(path, sizeof(path), "timm-patch16.safetensors");
        write_ents(path, &s);
        rc = import_vit_timm(&m, path, msg, sizeof(msg));
        CHECKF(rc == -1 && strstr(msg, "patch_embed.proj.weight has shape 32x3x16x16"), "patch size: %s", msg);
        printf("  %s\n", msg);
        free_ents(&s);
        model_free(&m);
    }
    ok("timm ViT import (pos_embed resize, DeiT distilled, extra blocks, head ignored, errors)");
}

static void bert_file(Ents *s, const ModelConfig *c, const char *prefix, int layers, int pos_rows, int vocab,
                      int with_cls, int old_ln_names) {
    int C = c->text_width, F = c->text_mlp;
    char n[160];
    const char *g = old_ln_names ? "gamma" : "weight", *b = old_ln_names ? "beta" : "bias";
#define T(...) snprintf(n, sizeof(n), __VA_ARGS__)
    T("%sembeddings.word_embeddings.weight", prefix), add_f32(s, n, 2, vocab, C);
    T("%sembeddings.position_embeddings.weight", prefix), add_f32(s, n, 2, pos_rows, C);
    T("%sembeddings.token_type_embeddings.weight", prefix), add_f32(s, n, 2, 2, C);
    T("%sembeddings.LayerNorm.%s", prefix, g), add_f32(s, n, 1, C);
    T("%sembeddings.LayerNorm.%s", prefix, b), add_f32(s, n, 1, C);
    int64_t ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    T("%sembeddings.position_ids", prefix), add_raw(s, n, "I64", ids, sizeof(ids), 2, 1, 8);
    for (int l = 0; l < layers; l++) {
        const char *lin[] = {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"};
        for (int k = 0; k < 4; k++) {
            T("%sencoder.layer.%d.%s.weight", prefix, l, lin[k]), add_f32(s, n, 2, C, C);
            T("%sencoder.layer.%d.%s.bias", prefix, l, lin[k]), add_f32(s, n, 1, C);
        }
        T("%sencoder.layer.%d.attention.output.LayerNorm.%s", prefix, l, g), add_f32(s, n, 1, C);
        T("%sencoder.layer.%d.attention.output.LayerNorm.%s", prefix, l, b), add_f32(s, n, 1, C);
        T("%sencoder.layer.%d.intermediate.dense.weight", prefix, l), add_f32(s, n, 2, F, C);
        T("%sencoder.layer.%d.intermediate.dense.bias", prefix, l), add_f32(s, n, 1, F);
        T("%sencoder.layer.%d.output.dense.weight", prefix, l), add_f32(s, n, 2, C, F);
        T("%sencoder.layer.%d.output.dense.bias", prefix, l), add_f32(s, n, 1, C);
        T("%sencoder.layer.%d.output.LayerNorm.%s", prefix, l, g), add_f32(s, n, 1, C);
        T("%sencoder.layer.%d.output.LayerNorm.%s", prefix, l, b), add_f32(s, n, 1, C);
    }
    T("%spooler.dense.weight", prefix), add_f32(s, n, 2, C, C);
    T("%spooler.dense.bias", prefix), add_f32(s, n, 1, C);
    if (with_cls) {
        add_f32(s, "cls.predictions.bias", 1, vocab);
        add_f32(s, "cls.predictions.transform.dense.weight", 2, C, C);
        add_f32(s, "cls.predictions.transform.dense.bias", 1, C);
        T("cls.predictions.transform.LayerNorm.%s", g), add_f32(s, n, 1, C);
        T("cls.predictions.transform.LayerNorm.%s", b), add_f32(s, n, 1, C);
        add_f32(s, "cls.predictions.decoder.weight", 2, vocab, C);
        add_f32(s, "cls.seq_relationship.weight", 2, 2, C);
        add_f32(s, "cls.seq_relationship.bias", 1, 2);
    }
#undef T
}

static void test_bert(void) {
    ModelConfig c;
    tiny(&c);
    int L = c.text_layers + c.fusion_layers;
    char path[512], msg[2048];
    {
        Ents s = {0};
        bert_file(&s, &c, "bert.", L + 1, c.max_text_len + 8, c.vocab_size, 1, 1);
        path_in(path, sizeof(path), "bert.safetensors");
        write_ents(path, &s);
        Model m;
        model_create(&m, &c);
        model_init_weights(&m, 21);
        const ParamInfo *cq = params_find(&m.params, "bert.layers.2.cross.q.weight");
        float *cross_before = malloc(cq->n * 4);
        memcpy(cross_before, m.params.data + cq->offset, cq->n * 4);
        int rc = import_bert_hf(&m, path, msg, sizeof(msg));
        CHECKF(rc == 0, "bert import: %s", msg);
        printf("  %s\n", msg);
        static const struct {
            const char *hf, *ours;
        } map[] = {
            {"bert.embeddings.word_embeddings.weight", "bert.embeddings.word"},
            {"bert.embeddings.token_type_embeddings.weight", "bert.embeddings.token_type"},
            {"bert.embeddings.LayerNorm.gamma", "bert.embeddings.ln.weight"},
            {"bert.embeddings.LayerNorm.beta", "bert.embeddings.ln.bias"},
            {"bert.encoder.layer.0.attention.self.query.weight", "bert.layers.0.attn.q.weight"},
            {"bert.encoder.layer.1.attention.self.key.bias", "bert.layers.1.attn.k.bias"},
            {"bert.encoder.layer.2.attention.self.value.weight", "bert.layers.2.attn.v.weight"},
            {"bert.encoder.layer.3.attention.output.dense.weight", "bert.layers.3.attn.o.weight"},
            {"bert.encoder.layer.3.attention.output.LayerNorm.gamma", "bert.layers.3.attn.ln.weight"},
            {"bert.encoder.layer.1.intermediate.dense.weight", "bert.layers.1.ffn.fc1.weight"},
            {"bert.encoder.layer.2.output.dense.bias", "bert.layers.2.ffn.fc2.bias"},
            {"bert.encoder.layer.3.output.LayerNorm.beta", "bert.layers.3.ffn.ln.bias"},
            {"cls.predictions.bias", "mlm.bias"},
            {"cls.predictions.transform.dense.weight", "mlm.dense.weight"},
            {"cls.predictions.transform.LayerNorm.gamma", "mlm.ln.weight"},
        };
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
            Ent *e = find_ent(&s, map[i].hf);
            CHECKF(e && param_equals(&m, map[i].ours, e->data), "%s -> %s", map[i].hf, map[i].ours);
        }
        // Position table: the first max_text_len rows.
        CHECKF(param_equals(&m, "bert.embeddings.position", find_ent(&s, "bert.embeddings.position_embeddings.weight")->data),
               "position rows");
        CHECKF(memcmp(m.params.data + cq->offset, cross_before, cq->n * 4) == 0, "cross-attention must stay as initialised");
        CHECKF(strstr(msg, "position table 40 -> 32") && strstr(msg, "cross-attention") && strstr(msg, "skipped") &&
                  strstr(msg, "position_ids") && strstr(msg, "ignored"),
               "summary: %s", msg);
        CHECKF(!strstr(msg, "not recognised"), "nothing should be unrecognised: %s", msg);
        free(cross_before);
        model_free(&m);
        free_ents(&s);
    }
    {   // BertModel names (no prefix, no MLM head), fewer layers than the model.
        Ents s = {0};
        bert_file(&s, &c, "", c.text_layers, c.max_text_len, c.vocab_size, 0, 0);
        path_in(path, sizeof(path), "bertmodel.safetensors");
        write_ents(path, &s);
        Model m;
        model_create(&m, &c);
        model_init_weights(&m, 22);
        int rc = import_bert_hf(&m, path, msg, sizeof(msg));
        CHECKF(rc == 0, "bert import: %s", msg);
        printf("  %s\n", msg);
        CHECKF(param_equals(&m, "bert.layers.1.ffn.ln.weight", find_ent(&s, "encoder.layer.1.output.LayerNorm.weight")->data),
               "unprefixed names");
        CHECKF(strstr(msg, "2 layers (from layer 2) not in the file") && strstr(msg, "no MLM head"), "summary: %s", msg);
        free_ents(&s);
        // Errors: vocabulary and position table too short.
        bert_file(&s, &c, "bert.", L, c.max_text_len, c.vocab_size + 200, 1, 0);
        path_in(path, sizeof(path), "bert-vocab.safetensors");
        write_ents(path, &s);
        rc = import_bert_hf(&m, path, msg, sizeof(msg));
        CHECKF(rc == -1 && strstr(msg, path) && strstr(msg, "vocabulary of 500 tokens"), "vocab: %s", msg);
        printf("  %s\n", msg);
        free_ents(&s);
        bert_file(&s, &c, "bert.", L, 16, c.vocab_size, 1, 0);
        path_in(path, sizeof(path), "bert-pos.safetensors");
        write_ents(path, &s);
        rc = import_bert_hf(&m, path, msg, sizeof(msg));
        CHECKF(rc == -1 && strstr(msg, "position_embeddings.weight has shape 16x32"), "pos: %s", msg);
        printf("  %s\n", msg);
        free_ents(&s);
        model_free(&m);
    }
    ok("HF BERT import (prefixes, gamma/beta, position truncation, extra layers, fresh cross-attention, errors)");
}

static void test_export(void) {
    ModelConfig c;
    tiny(&c);
    Model m;
    model_create(&m, &c);
    model_init_weights(&m, 31);
    char path[512], err[1024];
    path_in(path, sizeof(path), "export.safetensors");
    int rc = export_safetensors(&m, path, err, sizeof(err));
    CHECKF(rc == 0, "export: %s", err);
    SafeTensors st;
    rc = st_open(&st, path, err, sizeof(err));
    CHECKF(rc == 0, "open export: %s", err);
    if (rc == 0) {
        CHECKF(st.count == m.params.count, "%d tensors, model has %d", st.count, m.params.count);
        CHECKF(strcmp(st_meta(&st, "format"), "pt") == 0 && st_meta(&st, "producer"), "metadata");
        int bad = 0;
        float *buf = malloc(m.params.total * 4);
        for (int i = 0; i < m.params.count; i++) {
            const ParamInfo *pi = &m.params.p[i];
            const StTensor *t = st_find(&st, pi->name);
            int same = t && t->ndim == pi->ndim;
            for (int d = 0; same && d < pi->ndim; d++) same = t->shape[d] == pi->shape[d];
            same = same && st_read_f32(&st, t, buf, err, sizeof(err)) == 0 &&
                   memcmp(buf, m.params.data + pi->offset, pi->n * 4) == 0;
            if (!same) bad++, printf("  export mismatch: %s\n", pi->name);
        }
        free(buf);
        CHECKF(bad == 0, "%d exported tensors differ", bad);
        st_close(&st);
    }
    snprintf(path, sizeof(path), "%s/no/such/dir/x.safetensors", dir);
    rc = export_safetensors(&m, path, err, sizeof(err));
    CHECKF(rc == -1 && strstr(err, "No such file"), "export into a missing directory: %s", err);
    model_free(&m);
    ok("export_safetensors round trip (every online parameter, our names and shapes)");
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (make_temp_dir(dir, sizeof(dir), "vlmae-st-XXXXXX") != 0) return 1;
    test_roundtrip();
    test_halfs();
    test_python_file();
    test_bad_files();
    test_bicubic();
    test_timm();
    test_bert();
    test_export();
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (failures) printf("%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
