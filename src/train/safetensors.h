// safetensors.h: reader and writer of the safetensors format (Hugging Face), used to import
// pre-trained timm / HF weights and to export our parameters for other tools.
//
// Format: an 8-byte little-endian unsigned header length N, N bytes of UTF-8 JSON, then the data
// buffer. The header is one JSON object {name: {"dtype": "F32", "shape": [d0, ...],
// "data_offsets": [begin, end]}, ...} with an optional "__metadata__": {str: str}; offsets are
// byte offsets into the data buffer (relative to its start), little-endian row-major values.
//
// Reader: the file is mapped read-only (mmap). st_open validates everything that can be validated
// without reading values: the header length against the file size, the JSON (src/data/json.h, strict),
// every entry's dtype (a known safetensors dtype), shape (non-negative integers), offsets (begin <=
// end <= data size, end - begin == elements * dtype size) and that no two tensors overlap, and no
// duplicate names. Tensors of any known dtype may be present (HF files hold int64 position_ids);
// st_read_f32 converts F32, F16, BF16 and F64 to float and refuses other dtypes. Every error names
// the file and, where there is one, the tensor.
//
// Writer: F32 only; the header carries "__metadata__": {"format": "pt", ...} and is padded with
// spaces so the data buffer starts 8-byte aligned (as the reference implementation does). The file
// is written to PATH.tmp and renamed into place.
#ifndef VLMAE_SAFETENSORS_H
#define VLMAE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    char dtype[12];        // as in the header: "F32", "F16", "BF16", "I64", ...
    int elem_size;         // bytes per element of dtype
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;         // product of shape (1 for a 0-d tensor)
    size_t begin, end;     // byte range within the data buffer
} StTensor;

typedef struct {
    char path[1024];
    unsigned char *map;    // the whole file (read-only mapping)
    size_t size;           // file size
    size_t data_start;     // 8 + header length
    StTensor *t;           // in header order
    int count;
    char **meta_keys, **meta_vals;  // "__metadata__" entries
    int n_meta;
} SafeTensors;

// Returns 0, or -1 with "PATH: what" in err (nothing to close then).
int st_open(SafeTensors *st, const char *path, char *err, size_t errlen);
void st_close(SafeTensors *st);
const StTensor *st_find(const SafeTensors *st, const char *name);
const char *st_meta(const SafeTensors *st, const char *key);  // NULL when absent
// Converts t's numel values to float into out. -1 for a non-float dtype ("PATH: tensor X has
// dtype I64, expected a floating-point dtype (F32, F16, BF16, F64)").
int st_read_f32(const SafeTensors *st, const StTensor *t, float *out, char *err, size_t errlen);
// "2x3x4" (or "scalar") into buf.
const char *st_shape_str(const StTensor *t, char *buf, size_t n);

typedef struct {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
} StWriteTensor;

// Writes the tensors (in the given order, data packed back to back) as F32. meta: extra
// "__metadata__" pairs {key0, val0, key1, val1, ..., NULL} or NULL; "format": "pt" is always
// written first. Returns 0, or -1 with "PATH: what" in err (no file left behind).
int st_write_f32(const char *path, const StWriteTensor *ts, int count, const char *const *meta,
                 char *err, size_t errlen);

// Half-precision conversions (exposed for tests).
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);

#endif
