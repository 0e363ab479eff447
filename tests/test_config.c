// test_config.c: the run configuration (src/train/config.h): every shipped config loads and validates,
// dump -> load round trips, every ModelConfig field has a key, each kind of error names the file,
// the line and the key, --set overrides and their errors, and the cross-field checks (queue size
// vs batch x world, widths vs heads, ...).
#define _POSIX_C_SOURCE 200809L  // open_memstream, mkdtemp, setenv, strdup

#include "train/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static char tmpdir[256];
static int tmpn = 0;

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

// Writes text to a new temp file, returns its path (static buffer rotation is avoided: malloc).
static char *temp_yaml(const char *text) {
    char *p = malloc(512);
    snprintf(p, 512, "%s/case%02d.yaml", tmpdir, tmpn++);
    write_file(p, text);
    return p;
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

// The file must fail to load with an error "FILE:LINE:" containing every string of the
// NULL-terminated list.
static void expect_load_error(const char *yaml, int line, ...) {
    char *path = temp_yaml(yaml);
    RunConfig c;
    config_defaults(&c);
    char err[1024] = "";
    int rc = config_load(&c, path, err, sizeof err);
    char want[600];
    snprintf(want, sizeof want, "%s:%d:", path, line);
    int ok = rc == -1 && !strncmp(err, want, strlen(want));
    va_list ap;
    va_start(ap, line);
    const char *s;
    while ((s = va_arg(ap, const char *)))
        if (!contains(err, s)) ok = 0;
    va_end(ap);
    if (!ok) {
        fprintf(stderr, "for YAML:\n%s--\n  got  (rc %d) '%s'\n  want '%s ...'\n", yaml, rc, err, want);
        va_start(ap, line);
        while ((s = va_arg(ap, const char *))) fprintf(stderr, "       containing '%s'\n", s);
        va_end(ap);
        failures++;
    }
    config_free(&c);
    unlink(path);
    free(path);
}

static int load_text(RunConfig *c, const char *yaml, char *err, size_t errlen) {
    config_free(c);
    char *path = temp_yaml(yaml);
    int rc = config_load(c, path, err, errlen);
    unlink(path);
    free(path);
    return rc;
}

static void expect_set_error(RunConfig *c, const char *assign, ...) {
    char err[1024] = "";
    int rc = config_set(c, assign, err, sizeof err);
    char want[600];
    snprintf(want, sizeof want, "--set %s: ", assign);
    int ok = rc == -1 && !strncmp(err, want, strlen(want));
    va_list ap;
    va_start(ap, assign);
    const char *s;
    while ((s = va_arg(ap, const char *)))
        if (!contains(err, s)) ok = 0;
    va_end(ap);
    if (!ok) {
        fprintf(stderr, "for --set %s\n  got  (rc %d) '%s'\n", assign, rc, err);
        failures++;
    }
}

static void expect_validate_error(const RunConfig *c, int world, ...) {
    char err[1024] = "";
    int rc = config_validate(c, world, err, sizeof err);
    int ok = rc == -1;
    va_list ap;
    va_start(ap, world);
    const char *s;
    while ((s = va_arg(ap, const char *)))
        if (!contains(err, s)) ok = 0;
    va_end(ap);
    if (!ok) {
        fprintf(stderr, "validate (world %d): got (rc %d) '%s'\n", world, rc, err);
        va_start(ap, world);
        while ((s = va_arg(ap, const char *))) fprintf(stderr, "       want containing '%s'\n", s);
        va_end(ap);
        failures++;
    }
}

// dump -> load -> compare; also dump(load(dump)) == dump, byte for byte.
static void check_round_trip(const RunConfig *c, const char *what) {
    char path[512];
    snprintf(path, sizeof path, "%s/dump%02d.yaml", tmpdir, tmpn++);
    FILE *f = fopen(path, "w");
    CHECK(f && config_dump(c, f) == 0);
    fclose(f);
    RunConfig d;
    config_defaults(&d);
    char err[1024] = "";
    int rc = config_load(&d, path, err, sizeof err);
    if (rc) fprintf(stderr, "%s: reloading the dump: %s\n", what, err);
    CHECK(rc == 0);
    char diff[1024] = "";
    int nd = config_diff(c, &d, diff, sizeof diff);
    if (nd) fprintf(stderr, "%s: round trip differs in %d keys: %s\n", what, nd, diff);
    CHECK(nd == 0);
    CHECK(memcmp(&c->model, &d.model, sizeof(ModelConfig)) == 0);  // ModelConfig has no padding
    CHECK(c->preset == d.preset);
    // second generation is textually identical
    char *t1 = NULL, *t2 = NULL;
    size_t n1 = 0, n2 = 0;
    FILE *m1 = open_memstream(&t1, &n1), *m2 = open_memstream(&t2, &n2);
    config_dump(c, m1);
    config_dump(&d, m2);
    fclose(m1);
    fclose(m2);
    CHECK(n1 == n2 && !memcmp(t1, t2, n1));
    free(t1);
    free(t2);
    config_free(&d);
    unlink(path);
}

static void shipped_path(char *buf, size_t n, const char *name) {
    const char *top = getenv("top_srcdir");
    snprintf(buf, n, "%s/configs/%s", top && *top ? top : ".", name);
}

static void test_shipped(void) {
    const char *names[] = {"pretrain_4m.yaml", "tiny.yaml", "demo.yaml"};
    for (int i = 0; i < 3; i++) {
        char path[1024], err[1024] = "";
        shipped_path(path, sizeof path, names[i]);
        RunConfig c;
        config_defaults(&c);
        int rc = config_load(&c, path, err, sizeof err);
        if (rc) fprintf(stderr, "%s: %s\n", names[i], err);
        CHECK(rc == 0);
        int world = i == 0 ? 8 : 1;
        rc = config_validate(&c, world, err, sizeof err);
        if (rc) fprintf(stderr, "%s (world %d): %s\n", names[i], world, err);
        CHECK(rc == 0);
        rc = config_validate_data(&c, err, sizeof err);
        if (rc) fprintf(stderr, "%s: %s\n", names[i], err);
        CHECK(rc == 0);
        check_round_trip(&c, names[i]);
        if (i == 0) {  // the paper's setting
            const ModelConfig *m = &c.model;
            CHECK(c.preset == PRESET_BASE && m->objective == OBJ_VLMAE);
            CHECK(m->image_size == 256 && m->patch_size == 16 && m->vision_width == 768 && m->vision_depth == 12);
            CHECK(m->text_layers == 6 && m->fusion_layers == 6 && m->vocab_size == 30522);
            CHECK(m->decoder_width == 512 && m->decoder_depth == 4 && m->decoder_heads == 8);
            CHECK(m->mask_ratio == 0.5f && m->queue_size == 65536 && m->momentum == 0.995f);
            CHECK(m->temp_init == 0.07f && m->norm_pix_loss && m->mim_regional);
            CHECK(c.train.batch_size == 64 && c.train.epochs == 30 && c.train.lr == 1e-4f);
            CHECK(c.train.weight_decay == 0.02f && c.train.warmup_steps == 1000);
            CHECK(c.train.warmup_lr == 1e-5f && c.train.min_lr == 1e-5f && c.train.alpha == 0.4f);
            CHECK(c.data.text_max_len == 25);
            CHECK(c.data.n_datasets == 4);
            const char *ds[] = {"coco", "vg", "cc3m", "sbu"};
            for (int k = 0; k < 4 && k < c.data.n_datasets; k++) {
                CHECK(!strcmp(c.data.datasets[k].name, ds[k]));
                CHECK(c.data.datasets[k].n_shards == 1);
                CHECK(strstr(c.data.datasets[k].shards[0], "shards/") != NULL);
                CHECK(strstr(c.data.datasets[k].shards[0], "${") == NULL);  // expanded
            }
            // batch 48 on 8 GPUs needs another queue size
            CHECK(config_set(&c, "train.batch_size=48", err, sizeof err) == 0);
            expect_validate_error(&c, 8, "model.queue_size (65536)", "48 * 8 = 384", "65280", "65664", NULL);
            CHECK(config_validate(&c, 1, err, sizeof err) != 0);  // 65536 % 48 != 0
            CHECK(config_set(&c, "model.queue_size=65280", err, sizeof err) == 0);
            CHECK(config_validate(&c, 8, err, sizeof err) == 0);
        } else if (i == 2) {  // demo.yaml: the tiny model's learning recipe, one process
            CHECK(c.preset == PRESET_TINY && c.model.image_size == 32 && c.model.vision_width == 32);
            CHECK(c.train.batch_size == 64 && c.model.queue_size == 64 && c.model.init_std == 0.1f);
            expect_validate_error(&c, 2, "model.queue_size (64)", "64 * 2 = 128", NULL);
        } else {
            CHECK(c.preset == PRESET_TINY && c.model.image_size == 32 && c.model.vision_width == 32);
            CHECK(c.train.batch_size == 8 && c.model.queue_size == 64);
            CHECK(config_validate(&c, 2, err, sizeof err) == 0);
            CHECK(config_validate(&c, 8, err, sizeof err) == 0);
            expect_validate_error(&c, 3, "model.queue_size (64)", "8 * 3 = 24", "48", "72", NULL);
        }
        config_free(&c);
    }
}

// Every ModelConfig field has a key: start from garbage, apply every model/losses key of a dump
// (except the preset, which would fill the fields itself), and get the defaults back.
static void test_model_coverage(void) {
    RunConfig a, b;
    config_defaults(&a);
    config_defaults(&b);
    memset(&b.model, 0xA5, sizeof(b.model));
    char *text = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&text, &n);
    config_dump(&a, m);
    fclose(m);
    char section[32] = "";
    int applied = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        if (line[0] != ' ') {
            snprintf(section, sizeof section, "%.*s", (int)strcspn(line, ":"), line);
            continue;
        }
        if (strcmp(section, "model") && strcmp(section, "losses")) continue;
        char key[64], value[128];
        if (sscanf(line, " %63[^:]: %127[^\n]", key, value) != 2 || !strcmp(key, "preset")) continue;
        char assign[256], err[512];
        snprintf(assign, sizeof assign, "%s.%s=%s", section, key, value);
        int rc = config_set(&b, assign, err, sizeof err);
        if (rc) fprintf(stderr, "coverage: %s\n", err);
        CHECK(rc == 0);
        applied++;
    }
    free(text);
    CHECK(applied >= 38);
    if (memcmp(&a.model, &b.model, sizeof(ModelConfig)) != 0) {
        fprintf(stderr, "a ModelConfig field has no config key (still 0xA5 after applying every key)\n");
        failures++;
    }
}

static void test_defaults_and_features(void) {
    RunConfig c;
    char err[1024] = "";
    config_defaults(&c);
    CHECK(c.preset == PRESET_BASE && c.model.vision_width == 768 && c.train.batch_size == 64);
    CHECK(c.train.nonfinite == 0 && c.runtime.device == DEVICE_CPU && c.runtime.precision == PRECISION_FP32);
    CHECK(c.data.n_datasets == 0 && c.data.randaugment && c.data.blur && c.train.alpha_ramp);
    CHECK(config_validate(&c, 1, err, sizeof err) == 0);
    CHECK(config_validate(&c, 8, err, sizeof err) == 0);
    expect_validate_error(&c, 3, "model.queue_size (65536)", "64 * 3 = 192", NULL);
    CHECK(config_validate_data(&c, err, sizeof err) == -1 && contains(err, "data.datasets"));
    check_round_trip(&c, "defaults");

    // empty file and null sections: the defaults
    CHECK(load_text(&c, "", err, sizeof err) == 0 && c.model.vision_width == 768);
    CHECK(load_text(&c, "# only a comment\n", err, sizeof err) == 0);
    CHECK(load_text(&c, "init:\ntrain:\n", err, sizeof err) == 0 && c.train.batch_size == 64);

    CHECK(load_text(&c, "model.vision_depth: 3\nmodel: {preset: tiny}\n", err, sizeof err) == 0);
    CHECK(c.preset == PRESET_TINY && c.model.vision_depth == 3 && c.model.image_size == 32);

    // dotted keys name the nested key
    CHECK(load_text(&c, "train.batch_size: 32\ndata:\n  augment.blur: off\n", err, sizeof err) == 0);
    CHECK(c.train.batch_size == 32 && c.data.blur == 0 && c.data.grayscale == 1);

    // config_load needs no initialised struct
    {
        RunConfig g;
        memset(&g, 0xff, sizeof g);
        char *path = temp_yaml("train: {epochs: 2}\n");
        CHECK(config_load(&g, path, err, sizeof err) == 0 && g.train.epochs == 2 && g.data.n_datasets == 0);
        config_free(&g);
        unlink(path);
        free(path);
    }

    // the preset is applied first wherever it appears; objective and loss weights survive it
    CHECK(load_text(&c,
                    "losses: {itc: 0.5, ifr: 0}\n"
                    "model:\n  objective: albef\n  vision_depth: 3\n  preset: tiny\n",
                    err, sizeof err) == 0);
    CHECK(c.preset == PRESET_TINY && c.model.vision_depth == 3 && c.model.image_size == 32);
    CHECK(c.model.objective == OBJ_ALBEF && c.model.w_itc == 0.5f && c.model.w_ifr == 0.0f);
    CHECK(c.model.w_mlm == 1.0f);
    check_round_trip(&c, "tiny albef");

    // number and boolean spellings
    CHECK(load_text(&c,
                    "model: {queue_size: 65_536, mask_ratio: .75, norm_pix_loss: no, mim_regional: Off}\n"
                    "train: {warmup_steps: 1e3, max_steps: \"200\", seed: 0x10, lr: 3e-4, alpha_ramp: yes,\n"
                    "        nonfinite: skip}\n"
                    "runtime: {device: cuda, precision: bf16}\n",
                    err, sizeof err) == 0);
    CHECK(c.model.queue_size == 65536 && c.model.mask_ratio == 0.75f);
    CHECK(!c.model.norm_pix_loss && !c.model.mim_regional && c.train.alpha_ramp == 1);
    CHECK(c.train.warmup_steps == 1000 && c.train.max_steps == 200 && c.train.seed == 16);
    CHECK(c.train.lr == 3e-4f && c.train.nonfinite == 1);
    CHECK(c.runtime.device == DEVICE_CUDA && c.runtime.precision == PRECISION_BF16);
    CHECK(config_validate(&c, 8, err, sizeof err) == 0);
    check_round_trip(&c, "spellings");

    // environment variables in paths, awkward strings, datasets; a one-string shards
    setenv("VLMAE_TEST_DATA", "/scratch/u s\"e\\r", 1);
    unsetenv("VLMAE_TEST_UNSET");
    CHECK(load_text(&c,
                    "data:\n"
                    "  vocab: '${VLMAE_TEST_DATA}/vocab.txt'\n"
                    "  datasets:\n"
                    "    - name: coco\n"
                    "      shards: ['${VLMAE_TEST_UNSET:-/d}/coco-*.h5', \"$${HOME}/x.h5\", 'a$b.h5']\n"
                    "    - {name: \"v g\", shards: only.h5}\n"
                    "init: {vit: \"caf\\u00e9\\t.safetensors\", bert: ~}\n"
                    "train: {seed: 18446744073709551615}\n",
                    err, sizeof err) == 0);
    CHECK(!strcmp(c.data.vocab, "/scratch/u s\"e\\r/vocab.txt"));
    CHECK(c.data.n_datasets == 2);
    if (c.data.n_datasets == 2) {
        CHECK(c.data.datasets[0].n_shards == 3);
        CHECK(!strcmp(c.data.datasets[0].shards[0], "/d/coco-*.h5"));
        CHECK(!strcmp(c.data.datasets[0].shards[1], "${HOME}/x.h5"));
        CHECK(!strcmp(c.data.datasets[0].shards[2], "a$b.h5"));
        CHECK(!strcmp(c.data.datasets[1].name, "v g") && c.data.datasets[1].n_shards == 1);
        CHECK(!strcmp(c.data.datasets[1].shards[0], "only.h5"));
    }
    CHECK(!strcmp(c.init.vit, "caf\xc3\xa9\t.safetensors") && c.init.bert[0] == 0);
    CHECK(c.train.seed == UINT64_MAX);
    CHECK(config_validate_data(&c, err, sizeof err) == 0);
    check_round_trip(&c, "strings");

    // copy is deep; diff names the keys
    RunConfig d;
    config_copy(&d, &c);
    CHECK(config_diff(&c, &d, NULL, 0) == 0);
    CHECK(config_set(&d, "train.lr=2e-4", err, sizeof err) == 0);
    CHECK(config_set(&d, "data.datasets=[{name: coco, shards: [x.h5]}]", err, sizeof err) == 0);
    char diff[512];
    CHECK(config_diff(&c, &d, diff, sizeof diff) == 2);
    CHECK(contains(diff, "train.lr: 0.0001 -> 0.0002") || contains(diff, "train.lr: 0.0003 -> 0.0002"));
    CHECK(contains(diff, "data.datasets"));
    CHECK(c.data.n_datasets == 2);
    config_free(&d);
    config_free(&c);
}

static void test_load_errors(void) {
    // unknown keys, with suggestions
    expect_load_error("train:\n  batch_size: 4\n  batchsize: 4\n", 3, "unknown key 'train.batchsize'",
                      "did you mean 'train.batch_size'?", NULL);
    expect_load_error("trian:\n  lr: 1\n", 1, "unknown key 'trian'", "did you mean 'train'?", NULL);
    expect_load_error("train:\n  mask_ratio: 0.3\n", 2, "unknown key 'train.mask_ratio'",
                      "did you mean 'model.mask_ratio'?", NULL);
    expect_load_error("data:\n  augment:\n    blurr: true\n", 3, "unknown key 'data.augment.blurr'",
                      "did you mean 'data.augment.blur'?", NULL);
    expect_load_error("model:\n  zzzzzz: 1\n", 2, "unknown key 'model.zzzzzz'", NULL);
    // wrong types
    expect_load_error("train:\n  batch_size: abc\n", 2, "expected an integer for train.batch_size, got 'abc'", NULL);
    expect_load_error("train:\n  batch_size: \"a\\nb\"\n", 2, "got 'a\\x0ab'", NULL);  // one line
    expect_load_error("train:\n  epochs: 1.5\n", 2, "expected an integer for train.epochs, got '1.5'", NULL);
    expect_load_error("train:\n  lr: fast\n", 2, "expected a number for train.lr, got 'fast'", NULL);
    expect_load_error("train:\n  lr: .inf\n", 2, "train.lr", NULL);
    expect_load_error("train:\n  lr:\n", 2, "expected a number for train.lr, got an empty value", NULL);
    expect_load_error("model:\n  norm_pix_loss: maybe\n", 2, "expected a boolean", "model.norm_pix_loss", "'maybe'",
                      NULL);
    expect_load_error("model:\n  objective: vlmea\n", 2, "model.objective", "vlmae | albef", "did you mean 'vlmae'?",
                      NULL);
    expect_load_error("model:\n  preset: large\n", 2, "model.preset", "base | tiny", NULL);
    expect_load_error("runtime:\n  device: gpu\n", 2, "runtime.device", "cpu | cuda", NULL);
    expect_load_error("train:\n  lr: [1, 2]\n", 2, "expected a number for train.lr, got a sequence", NULL);
    expect_load_error("init:\n  vit: {a: 1}\n", 2, "expected a string for init.vit, got a mapping", NULL);
    expect_load_error("train:\n  batch_size: 99999999999\n", 2, "train.batch_size is out of range", NULL);
    // out of range
    expect_load_error("train:\n  batch_size: 0\n", 2, "train.batch_size must be >= 1", NULL);
    expect_load_error("model:\n  mask_ratio: 1.0\n", 2, "model.mask_ratio must be in [0, 1)", NULL);
    expect_load_error("model:\n  mask_ratio: -0.1\n", 2, "model.mask_ratio must be in [0, 1)", NULL);
    expect_load_error("train:\n  lr: 0\n", 2, "train.lr must be > 0", NULL);
    expect_load_error("train:\n  seed: -1\n", 2, "train.seed must be >= 0", NULL);
    expect_load_error("losses:\n  itc: -1\n", 2, "losses.itc must be >= 0", NULL);
    expect_load_error("data:\n  text_max_len: 1\n", 2, "data.text_max_len must be >= 2", NULL);
    // duplicates
    expect_load_error("train:\n  lr: 1e-4\n  epochs: 3\n  lr: 2e-4\n", 4, "duplicate key 'train.lr'",
                      "first given on line 2", NULL);
    expect_load_error("train: {}\nmodel: {}\ntrain: {}\n", 3, "duplicate key 'train'", "line 1", NULL);
    // structure
    expect_load_error("train:\n  - batch_size: 4\n", 2, "expected a mapping for 'train', got a sequence", NULL);
    expect_load_error("train: 5\n", 1, "expected a mapping for 'train', got a scalar '5'", NULL);
    expect_load_error("- a\n- b\n", 1, "expected a mapping for the top level, got a sequence", NULL);
    expect_load_error("just text\n", 1, "expected a mapping for the top level", NULL);
    expect_load_error("train: {lr: 1}\n---\nmodel: {}\n", 3, "second YAML document", NULL);
    expect_load_error("? [a, b]\n: 1\n", 1, "keys must be plain names", NULL);
    // YAML syntax (line and column from libyaml)
    expect_load_error("train:\n  lr: 1\n   epochs: 3\n", 3, "YAML syntax error", NULL);
    expect_load_error("train:\n  lr: [1, 2\nmodel: {}\n", 3, "YAML syntax error", NULL);
    expect_load_error("train: {lr: 1\n", 2, "YAML syntax error", NULL);
    expect_load_error("a: *nope\n", 1, "YAML syntax error", NULL);
    // datasets
    expect_load_error("data:\n  datasets: {name: coco}\n", 2, "data.datasets", "got a mapping", NULL);
    expect_load_error("data:\n  datasets:\n    - shards: [a.h5]\n", 3, "data.datasets[0] has no name", NULL);
    expect_load_error("data:\n  datasets:\n    - name: a\n      shard: [a.h5]\n", 4,
                      "unknown key 'data.datasets[0].shard'", "did you mean 'data.datasets[0].shards'?", NULL);
    expect_load_error("data:\n  datasets:\n    - name: a\n      shards: []\n", 4,
                      "data.datasets[0] (a) lists no shards", NULL);
    expect_load_error("data:\n  datasets:\n    - name: a\n", 3, "data.datasets[0] (a) lists no shards", NULL);
    expect_load_error("data:\n  datasets:\n    - {name: a, shards: [x.h5]}\n    - {name: a, shards: [y.h5]}\n", 4,
                      "data.datasets[1].name 'a' is already used by data.datasets[0]", NULL);
    expect_load_error("data:\n  datasets:\n    - name: a\n      shards:\n        - x.h5\n        - [y.h5]\n", 6,
                      "data.datasets[0].shards[1]", "got a sequence", NULL);
    expect_load_error("data:\n  datasets:\n    - name: a\n      shards: [x.h5, '']\n", 4,
                      "data.datasets[0].shards[1] is empty", NULL);
    expect_load_error("data:\n  datasets:\n    - name: a\n      shards: [a.h5, b.h5]\n      name: b\n", 5,
                      "duplicate key 'data.datasets[0].name'", NULL);
    expect_load_error("data:\n  datasets:\n    - coco\n", 3, "expected a mapping for 'data.datasets[0]'", NULL);
    // environment
    unsetenv("VLMAE_TEST_UNSET");
    expect_load_error("init:\n  vit: ${VLMAE_TEST_UNSET}/vit.safetensors\n", 2, "init.vit",
                      "environment variable VLMAE_TEST_UNSET is not set", NULL);
    expect_load_error("data:\n  datasets: [{name: a, shards: ['${VLMAE_TEST_UNSET}/a.h5']}]\n", 2,
                      "data.datasets[0].shards[0]", "VLMAE_TEST_UNSET is not set", NULL);
    expect_load_error("init:\n  vit: ${oops\n", 2, "init.vit", "unterminated", NULL);

    // a missing file
    RunConfig c;
    config_defaults(&c);
    char err[1024];
    CHECK(config_load(&c, "/nonexistent/x.yaml", err, sizeof err) == -1);
    CHECK(contains(err, "/nonexistent/x.yaml") && contains(err, "cannot open"));
    // an error leaves a valid config behind (config_free works, datasets are not half-replaced)
    CHECK(config_set(&c, "data.datasets=[{name: a, shards: [a.h5]}]", err, sizeof err) == 0);
    CHECK(config_set(&c, "data.datasets=[{name: b, shards: [b.h5]}, {name: c}]", err, sizeof err) == -1);
    CHECK(c.data.n_datasets == 1 && !strcmp(c.data.datasets[0].name, "a"));
    config_free(&c);
}

static void test_set(void) {
    RunConfig c;
    config_defaults(&c);
    char err[1024] = "";
    CHECK(config_set(&c, "train.batch_size=48", err, sizeof err) == 0 && c.train.batch_size == 48);
    CHECK(config_set(&c, "model.mask_ratio=0.75", err, sizeof err) == 0 && c.model.mask_ratio == 0.75f);
    CHECK(config_set(&c, "data.augment.blur=false", err, sizeof err) == 0 && c.data.blur == 0);
    CHECK(config_set(&c, "init.vit=/w/vit b.safetensors", err, sizeof err) == 0);
    CHECK(!strcmp(c.init.vit, "/w/vit b.safetensors"));
    CHECK(config_set(&c, "init.bert=", err, sizeof err) == 0 && c.init.bert[0] == 0);
    CHECK(config_set(&c, "runtime.device=cuda", err, sizeof err) == 0 && c.runtime.device == DEVICE_CUDA);
    CHECK(config_set(&c, "losses={itc: 0.5, rmim: 2}", err, sizeof err) == 0);
    CHECK(c.model.w_itc == 0.5f && c.model.w_rmim == 2.0f && c.model.w_itm == 1.0f);
    CHECK(config_set(&c, "train={lr: 5e-5, epochs: 3}", err, sizeof err) == 0);
    CHECK(c.train.lr == 5e-5f && c.train.epochs == 3 && c.train.batch_size == 48);
    CHECK(config_set(&c, "model.preset=tiny", err, sizeof err) == 0);
    CHECK(c.preset == PRESET_TINY && c.model.image_size == 32 && c.model.w_itc == 0.5f);
    CHECK(config_set(&c, "model={vision_depth: 1, preset: base}", err, sizeof err) == 0);
    CHECK(c.preset == PRESET_BASE && c.model.image_size == 256 && c.model.vision_depth == 1);
    CHECK(config_set(&c, "data.datasets=[{name: coco, shards: [a.h5, 'b-*.h5']}, {name: vg, shards: c.h5}]", err,
                     sizeof err) == 0);
    CHECK(c.data.n_datasets == 2 && c.data.datasets[0].n_shards == 2 && !strcmp(c.data.datasets[1].shards[0], "c.h5"));
    CHECK(config_set(&c, "data.datasets=[]", err, sizeof err) == 0 && c.data.n_datasets == 0);
    CHECK(config_set(&c, "data.datasets=[{name: coco, shards: [a.h5]}]", err, sizeof err) == 0);
    CHECK(config_set(&c, "data.datasets=", err, sizeof err) == 0 && c.data.n_datasets == 0);
    check_round_trip(&c, "after --set");

    expect_set_error(&c, "train.batch_size=abc", "expected an integer for train.batch_size, got 'abc'", NULL);
    expect_set_error(&c, "train.batch_size=0", "train.batch_size must be >= 1", NULL);
    expect_set_error(&c, "train.batchsize=4", "unknown key 'train.batchsize'", "did you mean 'train.batch_size'?",
                     NULL);
    expect_set_error(&c, "batch_size=4", "unknown key 'batch_size'", "did you mean 'train.batch_size'?", NULL);
    expect_set_error(&c, "model.mask_ratio=1", "model.mask_ratio must be in [0, 1)", NULL);
    expect_set_error(&c, "model.objective=clip", "model.objective", "vlmae | albef | tcl", NULL);
    expect_set_error(&c, "train.alpha_ramp=2", "expected a boolean", "train.alpha_ramp", NULL);
    expect_set_error(&c, "train.batch_size", "expected KEY=VALUE", NULL);
    expect_set_error(&c, "=4", "empty key", NULL);
    expect_set_error(&c, "train=[1, 2]", "expected a mapping for 'train', got a sequence", NULL);
    expect_set_error(&c, "train={batch_size: x}", "expected an integer for train.batch_size, got 'x'", NULL);
    expect_set_error(&c, "train={lr: 1", "YAML syntax error", NULL);
    expect_set_error(&c, "data.datasets={name: a}", "data.datasets", "got a mapping", NULL);
    expect_set_error(&c, "data.datasets=[{name: a, shard: [x]}]", "data.datasets[0].shard", "did you mean", NULL);
    CHECK(c.train.batch_size == 48);  // failed overrides change nothing they did not reach
    config_free(&c);
}

static void test_validate(void) {
    RunConfig c;
    char err[1024];
    config_defaults(&c);
    CHECK(config_validate(&c, 8, err, sizeof err) == 0);
    c.model.vision_heads = 10;
    expect_validate_error(&c, 1, "model.vision_width (768) must be divisible by model.vision_heads (10)", NULL);
    config_defaults(&c);
    c.model.text_heads = 5;
    expect_validate_error(&c, 1, "model.text_width (768)", "model.text_heads (5)", NULL);
    config_defaults(&c);
    c.model.decoder_width = 30, c.model.decoder_heads = 3;
    expect_validate_error(&c, 1, "model.decoder_width (30) must be a multiple of 4", NULL);
    config_defaults(&c);
    c.model.image_size = 250;
    expect_validate_error(&c, 1, "model.image_size (250) must be divisible by model.patch_size (16)", NULL);
    config_defaults(&c);
    c.data.text_max_len = 600;
    expect_validate_error(&c, 1, "data.text_max_len (600) must be <= model.max_text_len (512", NULL);
    config_defaults(&c);
    c.train.batch_size = 1, c.model.queue_size = 64;
    expect_validate_error(&c, 1, "train.batch_size must be >= 2", "ITM", NULL);
    config_defaults(&c);
    c.model.mask_ratio = 1.0f;  // set programmatically: the range check is repeated
    expect_validate_error(&c, 1, "model.mask_ratio must be in [0, 1)", NULL);
    config_defaults(&c);
    char e2[256];
    CHECK(config_set(&c, "model.preset=tiny", e2, sizeof e2) == 0);
    CHECK(config_set(&c, "train.batch_size=8", e2, sizeof e2) == 0);
    CHECK(config_set(&c, "model.queue_size=64", e2, sizeof e2) == 0);
    c.model.mask_ratio = 0.99f;  // 16 patches: int(16 * 0.01) = 0 visible
    expect_validate_error(&c, 1, "model.mask_ratio", "leaves no visible patch", NULL);
    c.model.objective = OBJ_ALBEF;  // albef does not mask
    CHECK(config_validate(&c, 1, err, sizeof err) == 0);
    config_defaults(&c);
    c.model.mask_id = 40000;
    expect_validate_error(&c, 1, "model.mask_id (40000) must be < model.vocab_size (30522)", NULL);
    config_defaults(&c);
    c.model.cls_id = 0;
    expect_validate_error(&c, 1, "model.pad_id and model.cls_id must differ", NULL);
    config_defaults(&c);
    c.runtime.precision = PRECISION_BF16;
    expect_validate_error(&c, 1, "runtime.precision bf16 needs runtime.device cuda", NULL);
    config_defaults(&c);
    c.train.min_lr = 1e-3f;
    expect_validate_error(&c, 1, "train.min_lr", "train.lr", NULL);
    config_defaults(&c);
    c.model.queue_size = 100, c.train.batch_size = 64;
    expect_validate_error(&c, 2,
                          "model.queue_size (100) must be a multiple of train.batch_size * world_size (64 * 2 = 128)",
                          "try model.queue_size=128", NULL);
    config_defaults(&c);
    expect_validate_error(&c, 0, "world size", NULL);

    // data
    config_defaults(&c);
    CHECK(config_validate_data(&c, err, sizeof err) == -1 && contains(err, "data.datasets is empty"));
    c.data.n_datasets = 1;
    c.data.datasets = calloc(1, sizeof(DatasetConfig));
    strcpy(c.data.datasets[0].name, "synth");
    CHECK(config_validate_data(&c, err, sizeof err) == -1 && contains(err, "data.datasets[0] (synth) lists no shards"));
    c.data.datasets[0].shards = malloc(sizeof(char *));
    c.data.datasets[0].shards[0] = strdup("/tmp/synth-00000.h5");
    c.data.datasets[0].n_shards = 1;
    CHECK(config_validate_data(&c, err, sizeof err) == 0);
    check_round_trip(&c, "programmatic datasets");
    config_free(&c);
    CHECK(c.data.n_datasets == 0 && c.data.datasets == NULL);
}

// Cheap mutation fuzz of a shipped config: every result is a success or one error line that
// starts with the file name (and nothing crashes or leaks: run under --enable-sanitizers).
static void test_fuzz(void) {
    char path[1024];
    shipped_path(path, sizeof path, "tiny.yaml");
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) return;
    char base[8192];
    size_t n = fread(base, 1, sizeof base - 1, f);
    fclose(f);
    static const char alphabet[] = ":-[]{}#'\"\n ,*&!|>%@`0a.~";
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 3000; iter++) {
        char buf[8300];
        memcpy(buf, base, n);
        size_t len = n;
        int edits = 1 + iter % 4;
        for (int e = 0; e < edits; e++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(s >> 33) % (len ? len : 1);
            char ch = alphabet[(s >> 20) % (sizeof alphabet - 1)];
            switch ((s >> 10) % 3) {
            case 0: buf[pos] = ch; break;  // replace
            case 1:                        // delete
                if (len) memmove(buf + pos, buf + pos + 1, len - pos - 1), len--;
                break;
            default:  // insert
                if (len + 1 < sizeof buf) memmove(buf + pos + 1, buf + pos, len - pos), buf[pos] = ch, len++;
            }
        }
        RunConfig c;
        char err[1024] = "";
        int rc = config_load_string(&c, buf, len, "fuzz.yaml", err, sizeof err);
        if (rc == 0)
            ok++;
        else if (rc == -1 && !strncmp(err, "fuzz.yaml:", 10) && !strchr(err, '\n'))
            bad++;
        else {
            fprintf(stderr, "fuzz: rc %d, error '%s'\n", rc, err);
            failures++;
        }
        config_free(&c);
    }
    CHECK(ok > 10 && bad > 10);
}

// The task: section of fine-tuning configs: defaults, lists of paths (${VAR} expanded), --set of
// lists and single paths, round trip, deep copy, errors, and the shipped finetune_*.yaml.
static void test_task_section(void) {
    RunConfig c;
    char err[1024] = "";
    config_defaults(&c);
    CHECK(c.task.name[0] == 0 && c.task.train.n == 0 && c.task.val.n == 0 && c.task.test.n == 0);
    CHECK(c.task.image_size == 384 && c.task.text_max_len == 30 && c.task.k_test == 256);
    CHECK(c.task.gradcam_layer == 8 && c.task.eval_every == 1 && c.task.distill == 1);
    setenv("VLMAE_TEST_DATA", "/data/x", 1);
    int rc = load_text(&c,
                       "task:\n"
                       "  name: retrieval\n"
                       "  train: [\"${VLMAE_TEST_DATA}/a-*.h5\", b.h5]\n"
                       "  test: c.h5\n"
                       "  k_test: 128\n"
                       "  image_root: \"${VLMAE_TEST_DATA}/img\"\n"
                       "task.eval_every: 0\n"
                       "task.distill: false\n",
                       err, sizeof err);
    if (rc) fprintf(stderr, "task section: %s\n", err);
    CHECK(rc == 0);
    CHECK(!strcmp(c.task.name, "retrieval") && c.task.k_test == 128 && c.task.eval_every == 0 && !c.task.distill);
    CHECK(c.task.train.n == 2 && !strcmp(c.task.train.items[0], "/data/x/a-*.h5") && !strcmp(c.task.train.items[1], "b.h5"));
    CHECK(c.task.test.n == 1 && !strcmp(c.task.test.items[0], "c.h5") && c.task.val.n == 0);
    CHECK(!strcmp(c.task.image_root, "/data/x/img"));
    check_round_trip(&c, "task section");
    CHECK(config_set(&c, "task.val=[v1.json, v2.json]", err, sizeof err) == 0);
    CHECK(c.task.val.n == 2 && !strcmp(c.task.val.items[1], "v2.json"));
    CHECK(config_set(&c, "task.test=only.h5", err, sizeof err) == 0);
    CHECK(c.task.test.n == 1 && !strcmp(c.task.test.items[0], "only.h5"));
    CHECK(config_set(&c, "task.train=", err, sizeof err) == 0 && c.task.train.n == 0);
    CHECK(config_set(&c, "task.train=[]", err, sizeof err) == 0 && c.task.train.n == 0);
    check_round_trip(&c, "task section after --set");
    RunConfig d;
    config_copy(&d, &c);
    config_free(&c);  // the copy owns its own strings
    CHECK(d.task.val.n == 2 && !strcmp(d.task.val.items[0], "v1.json") && !strcmp(d.task.test.items[0], "only.h5"));
    config_free(&d);
    expect_set_error(&c, "task.val={a: 1}", "task.val", "got a mapping", NULL);
    expect_set_error(&c, "task.test=[[a]]", "task.test[0]", "got a sequence", NULL);
    expect_set_error(&c, "task.k_test=-1", "task.k_test must be >= 0", NULL);
    expect_set_error(&c, "task.distill=maybe", "task.distill", NULL);
    expect_set_error(&c, "task.imagesize=3", "did you mean 'task.image_size'", NULL);
    expect_load_error("task:\n  train: [a.h5, \"\"]\n", 2, "task.train[1] is empty", NULL);
    expect_load_error("task:\n  test: [\"${VLMAE_UNSET_VAR_X}/t.h5\"]\n", 2, "VLMAE_UNSET_VAR_X is not set", NULL);
    config_free(&c);

    // The shipped fine-tuning configs; all distil as ALBEF's configs say (distill True, alpha 0.4;
    // warm_up True except VE.yaml's False).
    const char *names[] = {"finetune_retrieval_coco.yaml", "finetune_retrieval_flickr.yaml", "finetune_grounding.yaml",
                           "finetune_vqa.yaml", "finetune_snli_ve.yaml", "finetune_nlvr2.yaml"};
    const int k[] = {256, 128, 256}, ramp[] = {1, 1, 1, 1, 0, 1};
    for (int i = 0; i < 6; i++) {
        char path[1024];
        shipped_path(path, sizeof path, names[i]);
        config_defaults(&c);
        rc = config_load(&c, path, err, sizeof err);
        if (rc) fprintf(stderr, "%s: %s\n", names[i], err);
        CHECK(rc == 0);
        rc = config_validate(&c, 8, err, sizeof err);
        if (rc) fprintf(stderr, "%s (world 8): %s\n", names[i], err);
        CHECK(rc == 0);
        CHECK(c.task.image_size == 384 && c.task.text_max_len == 30 && c.task.train.n >= 1 && c.task.test.n >= 1);
        CHECK(c.task.distill == 1 && c.train.alpha == 0.4f && c.train.alpha_ramp == ramp[i]);
        CHECK(!c.data.color_jitter && !c.data.grayscale && !c.data.blur && c.data.randaugment);
        if (i < 3) {
            CHECK(!strcmp(c.task.name, i < 2 ? "retrieval" : "grounding") && c.task.k_test == k[i]);
            CHECK(c.train.lr == 1e-5f && c.train.min_lr == 1e-6f && c.train.batch_size == 32);
        }
        if (i == 2) CHECK(c.task.gradcam_layer == 8 && c.task.val.n == 1 && c.task.test.n == 2);
        check_round_trip(&c, names[i]);
        config_free(&c);
    }
}

int main(void) {
    if (make_temp_dir(tmpdir, sizeof tmpdir, "test_config.XXXXXX") != 0) return 1;
    test_shipped();
    test_model_coverage();
    test_defaults_and_features();
    test_load_errors();
    test_set();
    test_validate();
    test_fuzz();
    test_task_section();
    rmdir(tmpdir);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_config: all checks passed\n");
    return 0;
}
