// tensorfile.h: the ".vlt" named-tensor file (format in tests/reference/SPEC.md). Used to hand
// weights, batches and random choices to the PyTorch reference, and results back.
#ifndef VLMAE_TENSORFILE_H
#define VLMAE_TENSORFILE_H

#include <stdint.h>
#include <stdio.h>

enum { VLT_F32 = 0, VLT_I32 = 1 };

typedef struct {
    FILE *f;
    uint32_t count;
    long count_pos;
    char path[512];
} VltWriter;

void vlt_open(VltWriter *w, const char *path);
void vlt_put(VltWriter *w, const char *name, int dtype, const void *data, int ndim,
             const int64_t *dims);
void vlt_put_f32(VltWriter *w, const char *name, const float *data, int ndim, ...);
void vlt_put_i32(VltWriter *w, const char *name, const int32_t *data, int ndim, ...);
void vlt_close(VltWriter *w);

// Reading: the whole file is loaded; lookups by name. Returns NULL when the name is absent.
typedef struct {
    char *name;
    int dtype, ndim;
    int64_t dims[8];
    int64_t n;
    void *data;
} VltEntry;

typedef struct {
    VltEntry *e;
    int count;
} VltFile;

void vlt_read(VltFile *vf, const char *path);
const VltEntry *vlt_find(const VltFile *vf, const char *name);
void vlt_free(VltFile *vf);

#endif
