// tensorfile.c: reader and writer of the ".vlt" named-tensor exchange file.
#include "train/tensorfile.h"

#include <stdarg.h>
#include <string.h>

#include "engine/common.h"

void vlt_open(VltWriter *w, const char *path) {
    w->f = fopenCheck(path, "wb");
    snprintf(w->path, sizeof(w->path), "%s", path);
    fwriteCheck("VLT1", 1, 4, w->f);
    w->count = 0;
    w->count_pos = ftell(w->f);
    fwriteCheck(&w->count, 4, 1, w->f);
}

void vlt_put(VltWriter *w, const char *name, int dtype, const void *data, int ndim,
             const int64_t *dims) {
    uint32_t len = (uint32_t)strlen(name), dt = (uint32_t)dtype, nd = (uint32_t)ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    fwriteCheck(&len, 4, 1, w->f);
    fwriteCheck(name, 1, len, w->f);
    fwriteCheck(&dt, 4, 1, w->f);
    fwriteCheck(&nd, 4, 1, w->f);
    fwriteCheck(dims, 8, (size_t)ndim, w->f);
    fwriteCheck(data, 4, (size_t)n, w->f);
    w->count++;
}

static void put_va(VltWriter *w, const char *name, int dtype, const void *data, int ndim,
                   va_list ap) {
    int64_t dims[8];
    if (ndim < 1 || ndim > 8) die("vlt_put %s: bad ndim %d", name, ndim);
    for (int i = 0; i < ndim; i++) dims[i] = va_arg(ap, int);
    vlt_put(w, name, dtype, data, ndim, dims);
}

void vlt_put_f32(VltWriter *w, const char *name, const float *data, int ndim, ...) {
    va_list ap;
    va_start(ap, ndim);
    put_va(w, name, VLT_F32, data, ndim, ap);
    va_end(ap);
}

void vlt_put_i32(VltWriter *w, const char *name, const int32_t *data, int ndim, ...) {
    va_list ap;
    va_start(ap, ndim);
    put_va(w, name, VLT_I32, data, ndim, ap);
    va_end(ap);
}

void vlt_close(VltWriter *w) {
    fseek(w->f, w->count_pos, SEEK_SET);
    fwriteCheck(&w->count, 4, 1, w->f);
    if (fclose(w->f) != 0) die("closing %s failed", w->path);
    w->f = NULL;
}

void vlt_read(VltFile *vf, const char *path) {
    FILE *f = fopenCheck(path, "rb");
    char magic[4];
    uint32_t count;
    freadCheck(magic, 1, 4, f);
    if (memcmp(magic, "VLT1", 4) != 0) die("%s: not a .vlt file (bad magic)", path);
    freadCheck(&count, 4, 1, f);
    vf->count = (int)count;
    vf->e = callocCheck(count, sizeof(VltEntry));
    for (uint32_t i = 0; i < count; i++) {
        VltEntry *e = &vf->e[i];
        uint32_t len, dt, nd;
        freadCheck(&len, 4, 1, f);
        if (len > 4096) die("%s: entry %u has a name of %u bytes", path, i, len);
        e->name = mallocCheck(len + 1);
        freadCheck(e->name, 1, len, f);
        e->name[len] = 0;
        freadCheck(&dt, 4, 1, f);
        freadCheck(&nd, 4, 1, f);
        if (dt > 1 || nd > 8) die("%s: entry %s has dtype %u ndim %u", path, e->name, dt, nd);
        e->dtype = (int)dt;
        e->ndim = (int)nd;
        freadCheck(e->dims, 8, nd, f);
        e->n = 1;
        for (uint32_t d = 0; d < nd; d++) e->n *= e->dims[d];
        e->data = mallocCheck((size_t)e->n * 4);
        freadCheck(e->data, 4, (size_t)e->n, f);
    }
    fclose(f);
}

const VltEntry *vlt_find(const VltFile *vf, const char *name) {
    for (int i = 0; i < vf->count; i++)
        if (strcmp(vf->e[i].name, name) == 0) return &vf->e[i];
    return NULL;
}

void vlt_free(VltFile *vf) {
    for (int i = 0; i < vf->count; i++) {
        free(vf->e[i].name);
        free(vf->e[i].data);
    }
    free(vf->e);
    vf->e = NULL;
    vf->count = 0;
}
