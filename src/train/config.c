// config.c: the run configuration's key table, defaults, free / copy, and validation (see
// config.h). config_parse.c reads YAML and --set overrides into a RunConfig, config_dump.c writes
// it back as YAML (and compares two configs).
//
// Every scalar key is one row of a table (path, type, offset into RunConfig, range); parsing,
// range checks, the dump and config_diff all walk that table, so a new key is one new row (plus
// its default in config_defaults and its line in configs/pretrain_4m.yaml).
#include "train/config.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "train/config_internal.h"

// ---------------------------------------------------------------------------------------------
// The key table (its types are in config_internal.h)

_Static_assert(sizeof(Objective) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(RuntimeDevice) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(Precision) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(ModelPreset) == sizeof(int), "enums are stored as int");

// Add new objectives here and in model.h.
static const EnumName OBJECTIVES[] = {{"vlmae", OBJ_VLMAE}, {"albef", OBJ_ALBEF}, {"tcl", OBJ_TCL}, {NULL, 0}};
static const EnumName PRESETS[] = {{"base", PRESET_BASE}, {"tiny", PRESET_TINY}, {NULL, 0}};
static const EnumName NONFINITE[] = {{"stop", 0}, {"skip", 1}, {NULL, 0}};
static const EnumName DEVICES[] = {{"cpu", DEVICE_CPU}, {"cuda", DEVICE_CUDA}, {"guard", DEVICE_GUARD}, {NULL, 0}};
static const EnumName PRECISIONS[] = {{"fp32", PRECISION_FP32}, {"bf16", PRECISION_BF16}, {NULL, 0}};

#define OFF(member) offsetof(RunConfig, member)
#define SZ(member) sizeof(((RunConfig *)0)->member)
#define SECTION(k) {k, T_SECTION, 0, 0, 0, 0, 0, NULL}
#define F(k, type, member, range, lo, hi) {k, type, OFF(member), SZ(member), range, lo, hi, NULL}
#define INT_GE(k, member, lo) F(k, T_INT, member, R_MIN, lo, 0)
#define FLT(k, member, range, lo, hi) F(k, T_FLOAT, member, range, lo, hi)
#define BOOL(k, member) F(k, T_BOOL, member, 0, 0, 0)
#define PATH(k, member) F(k, T_PATH, member, 0, 0, 0)
#define ENUM(k, member, names) {k, T_ENUM, OFF(member), SZ(member), 0, 0, 0, names}

const Field config_fields[] = {
    SECTION("model"),
    {"model.preset", T_PRESET, OFF(preset), SZ(preset), 0, 0, 0, PRESETS},
    ENUM("model.objective", model.objective, OBJECTIVES),
    INT_GE("model.image_size", model.image_size, 1),
    INT_GE("model.patch_size", model.patch_size, 1),
    INT_GE("model.vision_width", model.vision_width, 1),
    INT_GE("model.vision_depth", model.vision_depth, 1),
    INT_GE("model.vision_heads", model.vision_heads, 1),
    INT_GE("model.vision_mlp", model.vision_mlp, 1),
    FLT("model.vision_ln_eps", model.vision_ln_eps, R_MIN_EXCL, 0, 0),
    INT_GE("model.vocab_size", model.vocab_size, 1),
    INT_GE("model.text_width", model.text_width, 1),
    INT_GE("model.text_heads", model.text_heads, 1),
    INT_GE("model.text_mlp", model.text_mlp, 1),
    INT_GE("model.text_layers", model.text_layers, 1),
    INT_GE("model.fusion_layers", model.fusion_layers, 1),
    INT_GE("model.max_text_len", model.max_text_len, 2),
    FLT("model.text_ln_eps", model.text_ln_eps, R_MIN_EXCL, 0, 0),
    FLT("model.hidden_dropout", model.hidden_dropout, R_MIN | R_MAX_EXCL, 0, 1),
    FLT("model.attn_dropout", model.attn_dropout, R_MIN | R_MAX_EXCL, 0, 1),
    INT_GE("model.decoder_width", model.decoder_width, 1),
    INT_GE("model.decoder_depth", model.decoder_depth, 1),
    INT_GE("model.decoder_heads", model.decoder_heads, 1),
    INT_GE("model.decoder_mlp", model.decoder_mlp, 1),
    INT_GE("model.embed_dim", model.embed_dim, 1),
    INT_GE("model.queue_size", model.queue_size, 1),
    FLT("model.mask_ratio", model.mask_ratio, R_MIN | R_MAX_EXCL, 0, 1),
    FLT("model.mlm_prob", model.mlm_prob, R_MIN_EXCL | R_MAX, 0, 1),
    FLT("model.momentum", model.momentum, R_MIN | R_MAX, 0, 1),
    FLT("model.temp_init", model.temp_init, R_MIN | R_MAX, 0.001, 0.5),  // the clamp range
    FLT("model.init_std", model.init_std, R_MIN_EXCL | R_MAX, 0, 1),
    BOOL("model.norm_pix_loss", model.norm_pix_loss),
    BOOL("model.mim_regional", model.mim_regional),
    INT_GE("model.pad_id", model.pad_id, 0),
    INT_GE("model.cls_id", model.cls_id, 0),
    INT_GE("model.mask_id", model.mask_id, 0),

    SECTION("losses"),
    FLT("losses.itc", model.w_itc, R_MIN, 0, 0),
    FLT("losses.itm", model.w_itm, R_MIN, 0, 0),
    FLT("losses.mlm", model.w_mlm, R_MIN, 0, 0),
    FLT("losses.rmim", model.w_rmim, R_MIN, 0, 0),
    FLT("losses.ifr", model.w_ifr, R_MIN, 0, 0),

    SECTION("train"),
    INT_GE("train.batch_size", train.batch_size, 1),
    INT_GE("train.epochs", train.epochs, 1),
    F("train.max_steps", T_I64, train.max_steps, R_MIN, 0, 0),
    FLT("train.lr", train.lr, R_MIN_EXCL, 0, 0),
    FLT("train.warmup_lr", train.warmup_lr, R_MIN, 0, 0),
    FLT("train.min_lr", train.min_lr, R_MIN, 0, 0),
    F("train.warmup_steps", T_I64, train.warmup_steps, R_MIN, 0, 0),
    FLT("train.weight_decay", train.weight_decay, R_MIN, 0, 0),
    FLT("train.beta1", train.beta1, R_MIN | R_MAX_EXCL, 0, 1),
    FLT("train.beta2", train.beta2, R_MIN | R_MAX_EXCL, 0, 1),
    FLT("train.eps", train.eps, R_MIN_EXCL, 0, 0),
    FLT("train.alpha", train.alpha, R_MIN | R_MAX, 0, 1),
    BOOL("train.alpha_ramp", train.alpha_ramp),
    F("train.seed", T_U64, train.seed, 0, 0, 0),
    INT_GE("train.log_every", train.log_every, 1),
    F("train.ckpt_every", T_I64, train.ckpt_every, R_MIN, 0, 0),
    INT_GE("train.keep_checkpoints", train.keep_checkpoints, 0),
    ENUM("train.nonfinite", train.nonfinite, NONFINITE),
    F("train.val_every", T_I64, train.val_every, R_MIN, 0, 0),
    F("train.val_batches", T_I64, train.val_batches, R_MIN, 0, 0),

    SECTION("data"),
    PATH("data.vocab", data.vocab),
    INT_GE("data.text_max_len", data.text_max_len, 2),
    INT_GE("data.max_words", data.max_words, 1),
    INT_GE("data.threads", data.threads, 1),
    INT_GE("data.prefetch", data.prefetch, 1),
    BOOL("data.skip_corrupt", data.skip_corrupt),
    SECTION("data.augment"),
    BOOL("data.augment.randaugment", data.randaugment),
    BOOL("data.augment.color_jitter", data.color_jitter),
    BOOL("data.augment.grayscale", data.grayscale),
    BOOL("data.augment.blur", data.blur),
    BOOL("data.augment.hflip", data.hflip),
    FLT("data.augment.crop_scale_min", data.crop_scale_min, R_MIN_EXCL | R_MAX, 0, 1),
    {"data.datasets", T_DATASETS, 0, 0, 0, 0, 0, NULL},
    F("data.val", T_PATHLIST, data.val, 0, 0, 0),

    SECTION("init"),
    PATH("init.vit", init.vit),
    PATH("init.bert", init.bert),

    SECTION("runtime"),
    ENUM("runtime.device", runtime.device, DEVICES),
    ENUM("runtime.precision", runtime.precision, PRECISIONS),
    FLT("runtime.timeout_s", runtime.timeout_s, R_MIN, 0, 0),

    SECTION("task"),
    F("task.name", T_STR, task.name, 0, 0, 0),
    F("task.train", T_PATHLIST, task.train, 0, 0, 0),
    F("task.val", T_PATHLIST, task.val, 0, 0, 0),
    F("task.test", T_PATHLIST, task.test, 0, 0, 0),
    INT_GE("task.image_size", task.image_size, 1),
    INT_GE("task.text_max_len", task.text_max_len, 2),
    INT_GE("task.k_test", task.k_test, 0),
    PATH("task.answer_list", task.answer_list),
    PATH("task.image_root", task.image_root),
    INT_GE("task.gradcam_layer", task.gradcam_layer, 0),
    INT_GE("task.eval_every", task.eval_every, 0),
    BOOL("task.distill", task.distill),
};
const int config_n_fields = (int)(sizeof(config_fields) / sizeof(config_fields[0]));

const char *config_last_component(const char *key) {
    const char *d = strrchr(key, '.');
    return d ? d + 1 : key;
}

// ---------------------------------------------------------------------------------------------
// Names

const char *preset_name(ModelPreset p) { return p == PRESET_TINY ? "tiny" : "base"; }
const char *device_name(RuntimeDevice d) { return d == DEVICE_CUDA ? "cuda" : d == DEVICE_GUARD ? "guard" : "cpu"; }
const char *precision_name(Precision p) { return p == PRECISION_BF16 ? "bf16" : "fp32"; }

const char *config_enum_name(const EnumName *e, int v) {
    for (; e->name; e++)
        if (e->value == v) return e->name;
    return "?";
}

// ---------------------------------------------------------------------------------------------
// Defaults, free, copy

void config_defaults(RunConfig *c) {
    memset(c, 0, sizeof(*c));
    model_config_base(&c->model);
    c->preset = PRESET_BASE;
    c->model.objective = OBJ_VLMAE;
    c->model.w_itc = c->model.w_itm = c->model.w_mlm = c->model.w_rmim = c->model.w_ifr = 1.0f;

    TrainConfig *t = &c->train;
    t->batch_size = 64, t->epochs = 30, t->max_steps = 0;
    t->lr = 1.0e-4f, t->warmup_lr = 1.0e-5f, t->min_lr = 1.0e-5f, t->warmup_steps = 1000;
    t->weight_decay = 0.02f, t->beta1 = 0.9f, t->beta2 = 0.999f, t->eps = 1.0e-8f;
    t->alpha = 0.4f, t->alpha_ramp = 1, t->seed = 42;
    t->log_every = 50, t->ckpt_every = 1000, t->keep_checkpoints = 3, t->nonfinite = 0;
    t->val_every = 1000, t->val_batches = 0;

    DataConfig *d = &c->data;
    d->text_max_len = 25, d->max_words = 30, d->threads = 4, d->prefetch = 2, d->skip_corrupt = 0;
    d->randaugment = d->color_jitter = d->grayscale = d->blur = d->hflip = 1;
    d->crop_scale_min = 0.2f;
    d->datasets = NULL, d->n_datasets = 0;

    c->runtime.device = DEVICE_CPU;
    c->runtime.precision = PRECISION_FP32;
    c->runtime.timeout_s = 1800.0f;

    TaskConfig *k = &c->task;  // ALBEF's fine-tuning settings
    k->image_size = 384, k->text_max_len = 30, k->k_test = 256, k->gradcam_layer = 8, k->eval_every = 1;
    k->distill = 1;
}

PathList *config_path_list(RunConfig *c, const Field *f) { return (PathList *)((char *)c + f->off); }

void config_free_path_list(PathList *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL, l->n = 0;
}

static void free_path_lists(RunConfig *c) {
    config_free_path_list(&c->task.train), config_free_path_list(&c->task.val), config_free_path_list(&c->task.test);
    config_free_path_list(&c->data.val);
}

void config_free_datasets(DatasetConfig *ds, int n) {
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < ds[i].n_shards; j++) free(ds[i].shards[j]);
        free(ds[i].shards);
    }
    free(ds);
}

void config_free(RunConfig *c) {
    config_free_datasets(c->data.datasets, c->data.n_datasets);
    free_path_lists(c);
    config_defaults(c);
}

char *config_dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = mallocCheck(n);
    memcpy(p, s, n);
    return p;
}

void config_copy(RunConfig *dst, const RunConfig *src) {
    *dst = *src;
    int n = src->data.n_datasets;
    dst->data.datasets = n ? callocCheck((size_t)n, sizeof(DatasetConfig)) : NULL;
    for (int i = 0; i < n; i++) {
        const DatasetConfig *s = &src->data.datasets[i];
        DatasetConfig *d = &dst->data.datasets[i];
        memcpy(d->name, s->name, sizeof(d->name));
        d->n_shards = s->n_shards;
        d->shards = s->n_shards ? mallocCheck((size_t)s->n_shards * sizeof(char *)) : NULL;
        for (int j = 0; j < s->n_shards; j++) d->shards[j] = config_dup_str(s->shards[j]);
    }
    for (int i = 0; i < config_n_fields; i++) {
        if (config_fields[i].type != T_PATHLIST) continue;
        const PathList *s = config_path_list((RunConfig *)src, &config_fields[i]);
        PathList *d = config_path_list(dst, &config_fields[i]);
        d->items = s->n ? mallocCheck((size_t)s->n * sizeof(char *)) : NULL;
        for (int j = 0; j < s->n; j++) d->items[j] = config_dup_str(s->items[j]);
    }
}

// ---------------------------------------------------------------------------------------------
// Validation

static void fmt_num(double v, char *buf, size_t n) { snprintf(buf, n, "%.10g", v); }

// The single-field range rule; message "KEY must be ..., got V".
int config_check_range(const Field *f, double v, char *msg, size_t n) {
    if (!f->range) return 0;
    bool ok = true;
    if ((f->range & R_MIN) && !(v >= f->lo)) ok = false;
    if ((f->range & R_MIN_EXCL) && !(v > f->lo)) ok = false;
    if ((f->range & R_MAX) && !(v <= f->hi)) ok = false;
    if ((f->range & R_MAX_EXCL) && !(v < f->hi)) ok = false;
    if (ok) return 0;
    char lo[32], hi[32], val[32];
    fmt_num(f->lo, lo, sizeof(lo)), fmt_num(f->hi, hi, sizeof(hi)), fmt_num(v, val, sizeof(val));
    bool has_lo = f->range & (R_MIN | R_MIN_EXCL), has_hi = f->range & (R_MAX | R_MAX_EXCL);
    if (has_lo && has_hi)
        snprintf(msg, n, "%s must be in %s%s, %s%s, got %s", f->key, (f->range & R_MIN) ? "[" : "(", lo, hi,
                 (f->range & R_MAX) ? "]" : ")", val);
    else if (has_lo)
        snprintf(msg, n, "%s must be %s %s, got %s", f->key, (f->range & R_MIN) ? ">=" : ">", lo, val);
    else
        snprintf(msg, n, "%s must be %s %s, got %s", f->key, (f->range & R_MAX) ? "<=" : "<", hi, val);
    return -1;
}

static int verr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int verr(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static double field_number(const RunConfig *c, const Field *f) {
    const char *p = (const char *)c + f->off;
    switch (f->type) {
    case T_INT:
    case T_BOOL:
    case T_ENUM:
    case T_PRESET: return *(const int *)p;
    case T_I64: return (double)*(const int64_t *)p;
    case T_U64: return (double)*(const uint64_t *)p;
    case T_FLOAT: return *(const float *)p;
    default: return 0;
    }
}

static int divisible(const char *a, int av, const char *b, int bv, const char *why, char *err, size_t errlen) {
    if (bv > 0 && av % bv == 0) return 0;
    return verr(err, errlen, "%s (%d) must be divisible by %s (%d)%s", a, av, b, bv, why);
}

int config_validate(const RunConfig *c, int world_size, char *err, size_t errlen) {
    char msg[512];
    for (int i = 0; i < config_n_fields; i++) {
        const Field *f = &config_fields[i];
        if (f->type == T_FLOAT && !isfinite(field_number(c, f)))
            return verr(err, errlen, "%s must be a finite number", f->key);
        if (f->type == T_ENUM || f->type == T_PRESET) {
            int v = (int)field_number(c, f);
            if (!strcmp(config_enum_name(f->enums, v), "?"))
                return verr(err, errlen, "%s has an invalid value (%d)", f->key, v);
        }
        if (config_check_range(f, field_number(c, f), msg, sizeof(msg))) return verr(err, errlen, "%s", msg);
    }
    const ModelConfig *m = &c->model;
    const TrainConfig *t = &c->train;
    if (world_size < 1) return verr(err, errlen, "world size must be >= 1, got %d", world_size);
    if (divisible("model.vision_width", m->vision_width, "model.vision_heads", m->vision_heads, "", err, errlen) ||
        divisible("model.text_width", m->text_width, "model.text_heads", m->text_heads, "", err, errlen) ||
        divisible("model.decoder_width", m->decoder_width, "model.decoder_heads", m->decoder_heads, "", err, errlen) ||
        divisible("model.image_size", m->image_size, "model.patch_size", m->patch_size, " (whole patches)", err,
                  errlen))
        return -1;
    if (m->decoder_width % 4)
        return verr(err, errlen,
                    "model.decoder_width (%d) must be a multiple of 4 (the decoder's 2-D sin-cos position embedding)",
                    m->decoder_width);
    if (m->objective == OBJ_VLMAE) {
        int g = m->image_size / m->patch_size, N = g * g;
        int K = (int)(N * (1.0 - m->mask_ratio));
        if (K < 1)
            return verr(err, errlen,
                        "model.mask_ratio %g leaves no visible patch (int(%d patches * (1 - %g)) = %d); lower it "
                        "or use more patches",
                        m->mask_ratio, N, m->mask_ratio, K);
    }
    const char *ids[] = {"model.pad_id", "model.cls_id", "model.mask_id"};
    int idv[] = {m->pad_id, m->cls_id, m->mask_id};
    for (int i = 0; i < 3; i++) {
        if (idv[i] >= m->vocab_size)
            return verr(err, errlen, "%s (%d) must be < model.vocab_size (%d)", ids[i], idv[i], m->vocab_size);
        for (int j = 0; j < i; j++)
            if (idv[i] == idv[j])
                return verr(err, errlen, "%s and %s must differ (both %d)", ids[j], ids[i], idv[i]);
    }
    if (c->data.text_max_len > m->max_text_len)
        return verr(err, errlen,
                    "data.text_max_len (%d) must be <= model.max_text_len (%d, the text position embeddings)",
                    c->data.text_max_len, m->max_text_len);
    if (t->batch_size < 2)
        return verr(err, errlen,
                    "train.batch_size must be >= 2, got %d (ITM draws its hard negatives from the other samples "
                    "of the batch)",
                    t->batch_size);
    long long bw = (long long)t->batch_size * world_size;
    if (m->queue_size % bw) {
        long long lo = m->queue_size / bw * bw, hi = lo + bw;
        char sug[128];
        if (lo > 0)
            snprintf(sug, sizeof(sug), "model.queue_size=%lld or %lld", lo, hi);
        else
            snprintf(sug, sizeof(sug), "model.queue_size=%lld", hi);
        return verr(err, errlen,
                    "model.queue_size (%d) must be a multiple of train.batch_size * world_size (%d * %d = %lld); "
                    "try %s",
                    m->queue_size, t->batch_size, world_size, bw, sug);
    }
    if (c->runtime.precision == PRECISION_BF16 && c->runtime.device != DEVICE_CUDA)
        return verr(err, errlen, "runtime.precision bf16 needs runtime.device cuda (the CPU backend is fp32 only)");
    if (t->min_lr > t->lr)
        return verr(err, errlen, "train.min_lr (%g) must be <= train.lr (%g)", t->min_lr, t->lr);
    return 0;
}

int config_validate_data(const RunConfig *c, char *err, size_t errlen) {
    const DataConfig *d = &c->data;
    if (d->n_datasets < 1 || !d->datasets)
        return verr(err, errlen,
                    "data.datasets is empty: list at least one dataset, e.g. datasets: [{name: coco, shards: "
                    "[\"shards/coco-*.h5\"]}]");
    for (int i = 0; i < d->n_datasets; i++) {
        const DatasetConfig *s = &d->datasets[i];
        if (!s->name[0]) return verr(err, errlen, "data.datasets[%d] has no name", i);
        for (int j = 0; j < i; j++)
            if (!strcmp(d->datasets[j].name, s->name))
                return verr(err, errlen, "data.datasets[%d].name '%s' is already used by data.datasets[%d]", i,
                            s->name, j);
        if (s->n_shards < 1 || !s->shards)
            return verr(err, errlen, "data.datasets[%d] (%s) lists no shards", i, s->name);
        for (int j = 0; j < s->n_shards; j++)
            if (!s->shards[j] || !s->shards[j][0])
                return verr(err, errlen, "data.datasets[%d].shards[%d] (%s) is empty", i, j, s->name);
    }
    return 0;
}
