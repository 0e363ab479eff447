// test_checkpoint.c: HDF5 checkpoints (src/train/checkpoint.c).
//
// Round trip bit for bit (parameters, momentum, AdamW moments and step count, queues and pointer,
// meta with a >64 KiB config), weights-only load; clear errors for truncated, corrupted (a flipped
// byte inside a dataset, caught by the Fletcher-32 checksum), garbage, incomplete files, shape
// mismatch, missing and extra parameters; refusal to save NaN; find_latest (ignores .tmp,
// incomplete and garbage files, picks the newest); prune; failed saves (missing directory, parent
// is a file, "disk full" through RLIMIT_FSIZE, read-only directory when not root) leave the previous
// checkpoint untouched and no .tmp behind.
#define _GNU_SOURCE  // mmap, fsync, strdup, nftw, mkdtemp
#include <errno.h>
#include <ftw.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"
#include "train/checkpoint.h"
#include "train/optim.h"

#include "check.h"

static char dir[256];



static void tiny_config(ModelConfig *c) {
    model_config_tiny(c);
    c->vocab_size = 300;  // small files, fast test
}

static void make_state(Model *m, AdamW *o, const ModelConfig *c, uint64_t seed) {
    model_create(m, c);
    model_init_weights(m, seed);
    adamw_init(o, &m->params, 0.9f, 0.999f, 1e-8f, 0.02f);
    // Momentum differs from online; moments and pointer are non-trivial.
    // (Values of the tensors only: the alignment gaps between them stay 0, as in training.)
    for (int k = 0; k < m->momentum.count; k++)
        for (size_t i = m->momentum.p[k].offset; i < m->momentum.p[k].offset + m->momentum.p[k].n; i++)
            m->momentum.data[i] += 1e-3f * (float)((i + seed) % 7);
    for (int k = 0; k < m->params.count; k++)
        for (size_t i = m->params.p[k].offset; i < m->params.p[k].offset + m->params.p[k].n; i++) {
            o->m[i] = 1e-4f * (float)((i * 13 + seed) % 101) - 5e-3f;
            o->v[i] = 1e-6f * (float)((i * 7 + seed) % 97);
        }
    o->t = (int64_t)(seed * 3 + 1);
    m->queue_ptr = 16;
}

static void free_state(Model *m, AdamW *o) {
    adamw_free(o);
    model_free(m);
}

static int same_floats(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

static int states_equal(const Model *a, const AdamW *oa, const Model *b, const AdamW *ob) {
    size_t qn = (size_t)a->cfg.queue_size * a->cfg.embed_dim;
    int eq = same_floats(a->params.data, b->params.data, a->params.total) &&
             same_floats(a->momentum.data, b->momentum.data, a->momentum.total) &&
             same_floats(a->image_queue, b->image_queue, qn) && same_floats(a->text_queue, b->text_queue, qn) &&
             a->queue_ptr == b->queue_ptr;
    if (oa && ob) eq = eq && same_floats(oa->m, ob->m, oa->n) && same_floats(oa->v, ob->v, oa->n) && oa->t == ob->t;
    return eq;
}

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (fread(b, 1, (size_t)len, f) != (size_t)len) len = 0;
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void write_all(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    chmod(p, 0755);
    return remove(p);
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

// A minimal HDF5 file with a format_version but no complete marker (an interrupted save).
static void write_incomplete(const char *path) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Screate(H5S_SCALAR);
    int v = CHECKPOINT_FORMAT_VERSION;
    hid_t a = H5Acreate2(f, "format_version", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &v);
    H5Aclose(a);
    H5Sclose(sp);
    H5Fclose(f);
}

// File offset of the first chunk of dataset `name`.
static long long chunk_addr(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    hsize_t off[4];
    unsigned mask;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    hid_t sp = H5Dget_space(ds);
    herr_t rc = H5Dget_chunk_info(ds, sp, 0, off, &mask, &addr, &size);
    H5Sclose(sp);
    H5Dclose(ds);
    H5Fclose(f);
    return rc < 0 ? -1 : (long long)addr;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (make_temp_dir(dir, sizeof(dir), "vlmae-ckpt-XXXXXX") != 0) return 1;
    ModelConfig cfg;
    tiny_config(&cfg);
    char err[2048], p10[512], p20[512], p30[512], path[600];
    checkpoint_path(p10, sizeof(p10), dir, 10);
    checkpoint_path(p20, sizeof(p20), dir, 20);
    checkpoint_path(p30, sizeof(p30), dir, 30);

    // ---- round trip ----------------------------------------------------------------------
    Model a, b;
    AdamW oa, ob;
    make_state(&a, &oa, &cfg, 1);
    make_state(&b, &ob, &cfg, 2);
    CHECKF(!states_equal(&a, &oa, &b, &ob), "the two states should differ before loading");
    size_t ylen = 100000;  // over HDF5's 64 KiB compact-attribute limit
    char *yaml = malloc(ylen + 1);
    for (size_t i = 0; i < ylen; i++) yaml[i] = "model:\n  width: 768 # é\n"[i % 26];
    yaml[ylen] = 0;
    CheckpointMeta meta = {.step = 10, .epoch = 2, .epoch_step = 3, .seed = 0xfedcba9876543210ull, .world_size = 8,
                           .config_yaml = yaml};
    int rc = checkpoint_save(p10, &a, &oa, &meta, err, sizeof(err));
    CHECKF(rc == 0, "save: %s", err);
    strcpy(path, p10);
    strcat(path, ".tmp");
    CHECKF(!exists(path), "no .tmp left after a save");
    CheckpointMeta got = {0};
    rc = checkpoint_load(p10, &b, &ob, &got, err, sizeof(err));
    CHECKF(rc == 0, "load: %s", err);
    CHECKF(states_equal(&a, &oa, &b, &ob), "round trip is not bit-exact");
    CHECKF(got.step == 10 && got.epoch == 2 && got.epoch_step == 3 && got.seed == 0xfedcba9876543210ull &&
              got.world_size == 8, "meta: step %lld epoch %lld epoch_step %lld ws %d", (long long)got.step,
           (long long)got.epoch, (long long)got.epoch_step, got.world_size);
    CHECKF(got.config_yaml && strcmp(got.config_yaml, yaml) == 0, "config_yaml differs");
    checkpoint_meta_free(&got);
    free_state(&b, &ob);
    // Weights only (no optimizer, no meta).
    make_state(&b, &ob, &cfg, 3);
    rc = checkpoint_load(p10, &b, NULL, NULL, err, sizeof(err));
    CHECKF(rc == 0, "weights-only load: %s", err);
    CHECKF(same_floats(a.params.data, b.params.data, a.params.total) &&
              same_floats(a.momentum.data, b.momentum.data, a.momentum.total),
           "weights-only load differs");
    free_state(&b, &ob);
    ok("round trip (params, momentum, adam, queues, meta, 100 KB config) and weights-only load");

    // ---- NaN refusal -----------------------------------------------------------------------
    {
        const ParamInfo *pi = params_find(&a.params, "vit.blocks.1.mlp.fc1.weight");
        float keep = a.params.data[pi->offset + 5];
        a.params.data[pi->offset + 5] = NAN;
        rc = checkpoint_save(p20, &a, &oa, &meta, err, sizeof(err));
        CHECKF(rc == -1 && strstr(err, "vit.blocks.1.mlp.fc1.weight") && strstr(err, p20), "NaN save: rc %d: %s", rc, err);
        CHECKF(!exists(p20), "a refused save must not create the file");
        printf("  NaN: %s\n", err);
        a.params.data[pi->offset + 5] = keep;
        const ParamInfo *mp = params_find(&a.momentum, "m.text_proj.bias");
        keep = a.momentum.data[mp->offset];
        a.momentum.data[mp->offset] = INFINITY;
        rc = checkpoint_save(p20, &a, &oa, &meta, err, sizeof(err));
        CHECKF(rc == -1 && strstr(err, "m.text_proj.bias"), "Inf momentum save: %s", err);
        a.momentum.data[mp->offset] = keep;
        keep = oa.v[7];
        oa.v[7] = NAN;
        rc = checkpoint_save(p20, &a, &oa, &meta, err, sizeof(err));
        CHECKF(rc == -1 && strstr(err, "AdamW second moment"), "NaN adam save: %s", err);
        oa.v[7] = keep;
        ok("refuses to save non-finite values, naming the tensor");
    }

    // ---- corrupt files -----------------------------------------------------------------------
    make_state(&b, &ob, &cfg, 4);
    size_t n;
    char *bytes = read_all(p10, &n);
    path_in(path, sizeof(path), "truncated.h5");
    write_all(path, bytes, n / 2);
    rc = checkpoint_load(path, &b, &ob, NULL, err, sizeof(err));
    CHECKF(rc == -1 && strstr(err, path), "truncated: %s", err);
    printf("  truncated: %s\n", err);
    long long addr = chunk_addr(p10, "/params/vit.pos_embed");
    CHECKF(addr > 0 && (size_t)addr + 64 < n, "chunk address %lld", addr);
    if (addr > 0) {
        char *cor = malloc(n);
        memcpy(cor, bytes, n);
        cor[addr + 40] ^= 0x10;
        path_in(path, sizeof(path), "corrupt.h5");
        write_all(path, cor, n);
        free(cor);
        rc = checkpoint_load(path, &b, &ob, NULL, err, sizeof(err));
        CHECKF(rc == -1 && strstr(err, path) && strstr(err, "vit.pos_embed"), "flipped byte: %s", err);
        printf("  flipped byte: %s\n", err);
    }
    path_in(path, sizeof(path), "garbage.h5");
    write_all(path, "this is not an HDF5 file at all, just text\n", 43);
    rc = checkpoint_load(path, &b, &ob, NULL, err, sizeof(err));
    CHECKF(rc == -1 && strstr(err, path) && strstr(err, "HDF5"), "garbage: %s", err);
    printf("  garbage: %s\n", err);
    path_in(path, sizeof(path), "incomplete.h5");
    write_incomplete(path);
    rc = checkpoint_load(path, &b, &ob, NULL, err, sizeof(err));
    CHECKF(rc == -1 && strstr(err, "incomplete"), "incomplete: %s", err);
    printf("  incomplete: %s\n", err);
    path_in(path, sizeof(path), "missing.h5");
    rc = checkpoint_load(path, &b, &ob, NULL, err, sizeof(err));
    CHECKF(rc == -1 && strstr(err, path) && strstr(err, "No such file"), "missing: %s", err);
    free(bytes);
    free_state(&b, &ob);
    ok("truncated, corrupted, garbage, incomplete and missing files give clear errors");

    // ---- mismatching models --------------------------------------------------------------------
    {
        ModelConfig c2 = cfg;
        c2.image_size = 48;  // grid 6: pos_embed 37x32 instead of 17x32
        make_state(&b, &ob, &c2, 5);
        rc = checkpoint_load(p10, &b, &ob, NULL, err, sizeof(err));
        char want[700];
        snprintf(want, sizeof(want), "%s: parameter vit.pos_embed has shape 17x32, the model expects 37x32", p10);
        CHECKF(rc == -1 && strcmp(err, want) == 0, "shape mismatch:\n  got  %s\n  want %s", err, want);
        printf("  shape: %s\n", err);
        free_state(&b, &ob);
        c2 = cfg;
        c2.vision_depth = 3;
        make_state(&b, &ob, &c2, 5);
        rc = checkpoint_load(p10, &b, NULL, NULL, err, sizeof(err));
        CHECKF(rc == -1 && strstr(err, "parameter vit.blocks.2.norm1.weight is missing"), "missing param: %s", err);
        printf("  missing: %s\n", err);
        free_state(&b, &ob);
        c2 = cfg;
        c2.vision_depth = 1;
        make_state(&b, &ob, &c2, 5);
        rc = checkpoint_load(p10, &b, NULL, NULL, err, sizeof(err));
        CHECKF(rc == -1 && strstr(err, "vit.blocks.1.") && strstr(err, "is not in the model"), "extra param: %s", err);
        printf("  extra: %s\n", err);
        free_state(&b, &ob);
        c2 = cfg;
        c2.queue_size = 128;
        make_state(&b, &ob, &c2, 5);
        rc = checkpoint_load(p10, &b, NULL, NULL, err, sizeof(err));
        CHECKF(rc == -1 && strstr(err, "queue image has shape 64x16, the model expects 128x16"), "queue: %s", err);
        free_state(&b, &ob);
        ok("shape mismatch, missing and extra parameters are named");
    }

    // ---- failed saves keep the previous checkpoint -----------------------------------------------
    {
        size_t n0;
        char *before = read_all(p10, &n0);
        Model c;
        AdamW oc;
        make_state(&c, &oc, &cfg, 6);
        CheckpointMeta m2 = meta;
        m2.config_yaml = "x: 1\n";
        // "Disk full": the file-size limit makes writes fail with EFBIG.
        struct rlimit old, lim;
        getrlimit(RLIMIT_FSIZE, &old);
        lim = old;
        lim.rlim_cur = 1 << 20;
        signal(SIGXFSZ, SIG_IGN);
        CHECKF(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit: %s", strerror(errno));
        rc = checkpoint_save(p10, &c, &oc, &m2, err, sizeof(err));
        setrlimit(RLIMIT_FSIZE, &old);
        CHECKF(rc == -1 && strstr(err, p10), "save past the file-size limit: rc %d: %s", rc, err);
        printf("  disk full: %s\n", err);
        strcpy(path, p10);
        strcat(path, ".tmp");
        CHECKF(!exists(path), "failed save left %s", path);
        size_t n1;
        char *after = read_all(p10, &n1);
        CHECKF(n0 == n1 && memcmp(before, after, n0) == 0, "a failed save changed the existing checkpoint");
        free(after);
        // Missing directory; parent is a regular file.
        snprintf(path, sizeof(path), "%s/no/such/dir/ckpt-00000010.h5", dir);
        rc = checkpoint_save(path, &c, &oc, &m2, err, sizeof(err));
        CHECKF(rc == -1 && strstr(err, path) && strstr(err, "No such file"), "missing dir: %s", err);
        printf("  missing dir: %s\n", err);
        snprintf(path, sizeof(path), "%s/truncated.h5/ckpt-00000010.h5", dir);
        rc = checkpoint_save(path, &c, &oc, &m2, err, sizeof(err));
        CHECKF(rc == -1 && strstr(err, path), "parent is a file: %s", err);
        // Read-only directory (meaningless as root, who may write anywhere).
        if (getuid() != 0) {
            char ro[512], rop[600];
            path_in(ro, sizeof(ro), "readonly");
            mkdir(ro, 0755);
            checkpoint_path(rop, sizeof(rop), ro, 10);
            CHECKF(checkpoint_save(rop, &a, &oa, &meta, err, sizeof(err)) == 0, "%s", err);
            chmod(ro, 0555);
            rc = checkpoint_save(rop, &c, &oc, &m2, err, sizeof(err));
            CHECKF(rc == -1 && strstr(err, "Permission denied"), "read-only dir: %s", err);
            printf("  read-only dir: %s\n", err);
            chmod(ro, 0755);
            Model d;
            AdamW od;
            make_state(&d, &od, &cfg, 7);
            CHECKF(checkpoint_load(rop, &d, &od, NULL, err, sizeof(err)) == 0 && states_equal(&a, &oa, &d, &od),
                   "previous checkpoint damaged: %s", err);
            free_state(&d, &od);
        } else {
            printf("  (running as root: read-only directory case skipped)\n");
        }
        // The old checkpoint still loads to the old state.
        Model d;
        AdamW od;
        make_state(&d, &od, &cfg, 8);
        rc = checkpoint_load(p10, &d, &od, NULL, err, sizeof(err));
        CHECKF(rc == 0 && states_equal(&a, &oa, &d, &od), "old checkpoint after failed saves: %s", err);
        free_state(&d, &od);
        free_state(&c, &oc);
        free(before);
        ok("failed saves (disk full, missing directory, parent is a file) leave the previous checkpoint");
    }

    // ---- find_latest and prune -------------------------------------------------------------------
    {
        char latest[600];
        CHECKF(checkpoint_save(p20, &a, &oa, &meta, err, sizeof(err)) == 0, "%s", err);
        path_in(path, sizeof(path), "ckpt-00000030.h5.tmp");
        write_all(path, "partial", 7);
        path_in(path, sizeof(path), "ckpt-00000025.h5");
        write_all(path, "garbage garbage garbage", 23);
        path_in(path, sizeof(path), "ckpt-00000040.h5");
        write_incomplete(path);
        path_in(path, sizeof(path), "ckpt-99.h5");  // not our name format
        write_all(path, "x", 1);
        printf("  (find_latest reports the skipped files:)\n");
        rc = checkpoint_find_latest(dir, latest, sizeof(latest));
        CHECKF(rc == 0 && strcmp(latest, p20) == 0, "find_latest: rc %d, %s", rc, rc == 0 ? latest : "-");
        CHECKF(checkpoint_find_latest(dir, latest, 10) == -1, "a too small buffer is an error");
        char empty[512];
        path_in(empty, sizeof(empty), "empty");
        mkdir(empty, 0755);
        CHECKF(checkpoint_find_latest(empty, latest, sizeof(latest)) == 1, "empty dir: none");
        path_in(path, sizeof(path), "no-such-dir");
        CHECKF(checkpoint_find_latest(path, latest, sizeof(latest)) == -1, "missing dir: error");
        ok("find_latest ignores .tmp, garbage, incomplete and foreign names and picks the newest");

        CHECKF(checkpoint_save(p30, &a, &oa, &meta, err, sizeof(err)) == 0, "%s", err);
        CHECKF(checkpoint_prune(dir, 5) == 0, "nothing to prune with keep 5");
        rc = checkpoint_prune(dir, 2);
        CHECKF(rc == 1, "prune deleted %d", rc);
        CHECKF(!exists(p10) && exists(p20) && exists(p30), "prune kept the wrong files");
        path_in(path, sizeof(path), "ckpt-00000025.h5");
        CHECKF(exists(path), "prune must leave unreadable files alone");
        path_in(path, sizeof(path), "ckpt-00000040.h5");
        CHECKF(exists(path), "prune must leave incomplete files alone");
        CHECKF(checkpoint_prune(dir, 1) == 1 && !exists(p20) && exists(p30), "prune to 1");
        CHECKF(checkpoint_prune(dir, 0) == 0 && exists(p30), "keep 0 deletes nothing");
        ok("prune keeps the newest complete checkpoints");
    }

    free(yaml);
    free_state(&a, &oa);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (failures) printf("%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
