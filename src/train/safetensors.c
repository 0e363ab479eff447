// safetensors.c: safetensors reader (mmap + validation) and F32 writer (see safetensors.h).
#define _GNU_SOURCE  // mmap, fsync, strdup, nftw, mkdtemp
#include "train/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (safetensors data are little-endian)"
#endif

// The reference implementation refuses headers over 100 MB; so do we (a corrupt length field
// must not make us parse gigabytes).
#define ST_MAX_HEADER 100000000ull

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const struct {
    const char *name;
    int size;
} DTYPES[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"U64", 8}, {"I32", 4},
    {"U32", 4}, {"I16", 2}, {"U16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"F8_E5M2", 1},
    {"F8_E4M3", 1},
};

static int dtype_size(const char *s) {
    for (size_t i = 0; i < sizeof(DTYPES) / sizeof(DTYPES[0]); i++)
        if (strcmp(DTYPES[i].name, s) == 0) return DTYPES[i].size;
    return 0;
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400u));
            mant &= 0x3ffu;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);  // inf / nan (payload kept)
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float st_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

const char *st_shape_str(const StTensor *t, char *buf, size_t n) {
    if (t->ndim == 0) {
        snprintf(buf, n, "scalar");
        return buf;
    }
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? "x%lld" : "%lld", (long long)t->shape[i]);
    return buf;
}

void st_close(SafeTensors *st) {
    if (!st) return;
    if (st->map) munmap(st->map, st->size);
    for (int i = 0; i < st->count; i++) free(st->t[i].name);
    free(st->t);
    for (int i = 0; i < st->n_meta; i++) free(st->meta_keys[i]), free(st->meta_vals[i]);
    free(st->meta_keys);
    free(st->meta_vals);
    memset(st, 0, sizeof(*st));
}

static int cmp_begin(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n), d[n] = 0;
    return d;
}

static int parse_entry(SafeTensors *st, const JsonMember *mem, StTensor *t, size_t data_size,
                       char *err, size_t errlen) {
    const char *P = st->path, *N = mem->key;
    const JsonValue *v = &mem->value;
    if (v->type != JSON_OBJECT)
        return fail(err, errlen, "%s: header entry \"%s\" is a JSON %s, expected an object", P, N, json_type_name(v->type));
    for (size_t i = 0; i < v->n; i++) {
        const char *k = v->u.members[i].key;
        if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
            return fail(err, errlen, "%s: tensor %s has an unknown header field \"%s\"", P, N, k);
    }
    const char *dt = json_string(json_get(v, "dtype"));
    if (!dt) return fail(err, errlen, "%s: tensor %s has no \"dtype\" string", P, N);
    t->elem_size = dtype_size(dt);
    if (!t->elem_size || strlen(dt) >= sizeof(t->dtype))
        return fail(err, errlen, "%s: tensor %s has unknown dtype \"%s\"", P, N, dt);
    strcpy(t->dtype, dt);
    const JsonValue *sh = json_get(v, "shape");
    if (!sh || sh->type != JSON_ARRAY) return fail(err, errlen, "%s: tensor %s has no \"shape\" array", P, N);
    if (sh->n > ST_MAX_DIMS)
        return fail(err, errlen, "%s: tensor %s has %zu dimensions (at most %d supported)", P, N, sh->n, ST_MAX_DIMS);
    t->ndim = (int)sh->n;
    t->numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        int64_t d;
        if (!json_int64(json_at(sh, (size_t)i), &d) || d < 0)
            return fail(err, errlen, "%s: tensor %s: shape[%d] is not a non-negative integer", P, N, i);
        t->shape[i] = d;
        if (d && t->numel > INT64_MAX / 8 / d)
            return fail(err, errlen, "%s: tensor %s: shape is too large", P, N);
        t->numel *= d;
    }
    const JsonValue *off = json_get(v, "data_offsets");
    int64_t b, e;
    if (!off || off->type != JSON_ARRAY || off->n != 2 || !json_int64(json_at(off, 0), &b) ||
        !json_int64(json_at(off, 1), &e) || b < 0 || e < 0)
        return fail(err, errlen, "%s: tensor %s: \"data_offsets\" must be [begin, end] of non-negative integers", P, N);
    if (b > e) return fail(err, errlen, "%s: tensor %s: data_offsets [%lld, %lld] end before they begin", P, N, (long long)b, (long long)e);
    if ((uint64_t)e > data_size)
        return fail(err, errlen, "%s: tensor %s: data_offsets [%lld, %lld] run past the end of the data (%zu bytes; file truncated?)",
                    P, N, (long long)b, (long long)e, data_size);
    int64_t want = t->numel * t->elem_size;
    if (e - b != want) {
        char sb[128];
        return fail(err, errlen, "%s: tensor %s: %s %s needs %lld bytes but data_offsets [%lld, %lld] hold %lld", P, N,
                    dt, st_shape_str(t, sb, sizeof(sb)), (long long)want, (long long)b, (long long)e, (long long)(e - b));
    }
    t->begin = (size_t)b, t->end = (size_t)e;
    t->name = dupn(N, mem->keylen);
    if (!t->name) return fail(err, errlen, "%s: out of memory", P);
    return 0;
}

int st_open(SafeTensors *st, const char *path, char *err, size_t errlen) {
    memset(st, 0, sizeof(*st));
    snprintf(st->path, sizeof(st->path), "%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return fail(err, errlen, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return fail(err, errlen, "%s: not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return fail(err, errlen, "%s: %lld bytes is too short for a safetensors file (8-byte header length first)", path,
                    (long long)sb.st_size);
    }
    st->size = (size_t)sb.st_size;
    st->map = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        return fail(err, errlen, "%s: cannot map: %s", path, strerror(e));
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st->map[i];
    int rc = -1;
    JsonDoc *doc = NULL;
    StTensor **order = NULL;
    if (hlen > st->size - 8) {
        fail(err, errlen, "%s: header length %llu runs past the end of the file (%zu bytes): not a safetensors file, or truncated",
             path, (unsigned long long)hlen, st->size);
        goto out;
    }
    if (hlen > ST_MAX_HEADER) {
        fail(err, errlen, "%s: header length %llu exceeds the %llu-byte limit", path, (unsigned long long)hlen, ST_MAX_HEADER);
        goto out;
    }
    if (hlen < 2 || st->map[8] != '{') {
        fail(err, errlen, "%s: the header does not start with '{': not a safetensors file", path);
        goto out;
    }
    st->data_start = 8 + (size_t)hlen;
    size_t data_size = st->size - st->data_start;
    char jerr[256];
    doc = json_parse((const char *)st->map + 8, (size_t)hlen, 64, jerr, sizeof(jerr));
    if (!doc) {
        fail(err, errlen, "%s: invalid JSON header: %s", path, jerr);
        goto out;
    }
    const JsonValue *root = json_root(doc);
    if (root->type != JSON_OBJECT) {
        fail(err, errlen, "%s: the header is a JSON %s, expected an object", path, json_type_name(root->type));
        goto out;
    }
    st->t = calloc(root->n ? root->n : 1, sizeof(StTensor));
    if (!st->t) {
        fail(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < root->n; i++) {
        const JsonMember *mem = &root->u.members[i];
        if (strcmp(mem->key, "__metadata__") == 0) {
            const JsonValue *md = &mem->value;
            if (md->type != JSON_OBJECT || st->n_meta) {
                fail(err, errlen, "%s: \"__metadata__\" must be one object of strings", path);
                goto out;
            }
            st->meta_keys = calloc(md->n ? md->n : 1, sizeof(char *));
            st->meta_vals = calloc(md->n ? md->n : 1, sizeof(char *));
            if (!st->meta_keys || !st->meta_vals) {
                fail(err, errlen, "%s: out of memory", path);
                goto out;
            }
            for (size_t k = 0; k < md->n; k++) {
                const JsonMember *mm = &md->u.members[k];
                if (mm->value.type != JSON_STRING) {
                    fail(err, errlen, "%s: __metadata__ value \"%s\" is a JSON %s, expected a string", path, mm->key,
                         json_type_name(mm->value.type));
                    goto out;
                }
                st->meta_keys[st->n_meta] = dupn(mm->key, mm->keylen);
                st->meta_vals[st->n_meta] = dupn(mm->value.u.str, mm->value.n);
                st->n_meta++;
            }
            continue;
        }
        for (int k = 0; k < st->count; k++)
            if (strcmp(st->t[k].name, mem->key) == 0) {
                fail(err, errlen, "%s: tensor %s appears twice in the header", path, mem->key);
                goto out;
            }
        if (parse_entry(st, mem, &st->t[st->count], data_size, err, errlen)) goto out;
        st->count++;
    }
    // No two tensors may share bytes (empty tensors occupy none).
    order = malloc((size_t)(st->count ? st->count : 1) * sizeof(*order));
    if (!order) {
        fail(err, errlen, "%s: out of memory", path);
        goto out;
    }
    int n_nonempty = 0;
    for (int i = 0; i < st->count; i++)
        if (st->t[i].end > st->t[i].begin) order[n_nonempty++] = &st->t[i];
    qsort(order, (size_t)n_nonempty, sizeof(*order), cmp_begin);
    for (int i = 1; i < n_nonempty; i++)
        if (order[i]->begin < order[i - 1]->end) {
            fail(err, errlen, "%s: tensors %s [%zu, %zu) and %s [%zu, %zu) overlap", path, order[i - 1]->name,
                 order[i - 1]->begin, order[i - 1]->end, order[i]->name, order[i]->begin, order[i]->end);
            goto out;
        }
    rc = 0;
out:
    free(order);
    json_free(doc);
    if (rc) st_close(st);
    return rc;
}

const StTensor *st_find(const SafeTensors *st, const char *name) {
    for (int i = 0; i < st->count; i++)
        if (strcmp(st->t[i].name, name) == 0) return &st->t[i];
    return NULL;
}

const char *st_meta(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
    return NULL;
}

int st_read_f32(const SafeTensors *st, const StTensor *t, float *out, char *err, size_t errlen) {
    const unsigned char *src = st->map + st->data_start + t->begin;
    size_t n = (size_t)t->numel;
    if (strcmp(t->dtype, "F32") == 0) {
        memcpy(out, src, n * 4);
    } else if (strcmp(t->dtype, "F16") == 0 || strcmp(t->dtype, "BF16") == 0) {
        int bf = t->dtype[0] == 'B';
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            out[i] = bf ? st_bf16_to_f32(h) : st_f16_to_f32(h);
        }
    } else if (strcmp(t->dtype, "F64") == 0) {
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            out[i] = (float)d;
        }
    } else {
        return fail(err, errlen, "%s: tensor %s has dtype %s, expected a floating-point dtype (F32, F16, BF16, F64)",
                    st->path, t->name, t->dtype);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Writer

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->n + n + 1 > cap) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void buf_str(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (k > 0) buf_put(b, tmp, (size_t)k < sizeof(tmp) ? (size_t)k : sizeof(tmp) - 1);
}

static void buf_json_string(Buf *b, const char *s) {
    buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            buf_put(b, e, 2);
        } else if (*p < 0x20) {
            buf_printf(b, "\\u%04x", *p);
        } else {
            buf_put(b, (const char *)p, 1);
        }
    }
    buf_put(b, "\"", 1);
}

static void fsync_parent_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);  // best effort: some file systems refuse fsync on directories
        close(fd);
    }
    free(copy);
}

int st_write_f32(const char *path, const StWriteTensor *ts, int count, const char *const *meta,
                 char *err, size_t errlen) {
    Buf h = {0};
    buf_str(&h, "{\"__metadata__\":{\"format\":\"pt\"");
    for (int i = 0; meta && meta[i]; i += 2) {
        if (!meta[i + 1]) return fail(err, errlen, "%s: metadata key %s has no value", path, meta[i]);
        if (strcmp(meta[i], "format") == 0) continue;
        buf_put(&h, ",", 1);
        buf_json_string(&h, meta[i]);
        buf_put(&h, ":", 1);
        buf_json_string(&h, meta[i + 1]);
    }
    buf_put(&h, "}", 1);
    uint64_t off = 0;
    for (int i = 0; i < count; i++) {
        uint64_t numel = 1;
        if (ts[i].ndim < 0 || ts[i].ndim > ST_MAX_DIMS) {
            free(h.s);
            return fail(err, errlen, "%s: tensor %s has %d dimensions", path, ts[i].name, ts[i].ndim);
        }
        for (int k = 0; k < ts[i].ndim; k++) numel *= (uint64_t)ts[i].shape[k];
        buf_put(&h, ",", 1);
        buf_json_string(&h, ts[i].name);
        buf_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int k = 0; k < ts[i].ndim; k++) buf_printf(&h, k ? ",%lld" : "%lld", (long long)ts[i].shape[k]);
        buf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                   (unsigned long long)(off + 4 * numel));
        off += 4 * numel;
    }
    buf_put(&h, "}", 1);
    while (h.n % 8) buf_put(&h, " ", 1);
    if (h.oom) {
        free(h.s);
        return fail(err, errlen, "%s: out of memory building the header", path);
    }

    char tmp[1100];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        free(h.s);
        return fail(err, errlen, "%s: path too long", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(h.s);
        return fail(err, errlen, "%s: cannot create %s: %s", path, tmp, strerror(e));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.s, 1, h.n, f) == h.n;
    free(h.s);
    for (int i = 0; ok && i < count; i++) {
        size_t numel = 1;
        for (int k = 0; k < ts[i].ndim; k++) numel *= (size_t)ts[i].shape[k];
        ok = numel == 0 || fwrite(ts[i].data, sizeof(float), numel, f) == numel;
    }
    int e = errno;
    if (ok && fflush(f) != 0) ok = 0, e = errno;
    if (ok && fsync(fileno(f)) != 0) ok = 0, e = errno;
    if (fclose(f) != 0 && ok) ok = 0, e = errno;
    if (!ok) {
        unlink(tmp);
        return fail(err, errlen, "%s: writing %s failed: %s", path, tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return fail(err, errlen, "%s: cannot rename %s into place: %s", path, tmp, strerror(e));
    }
    fsync_parent_dir(path);
    return 0;
}
