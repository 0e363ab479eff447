// shard.c: what the shard writer (shard_write.c) and reader (shard_read.c) share: error text,
// a growable byte buffer, and HDF5 error-stack handling (declared in shard_internal.h).
#define _GNU_SOURCE
#include "data/shard_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void shard_set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int shard_buf_put(Buf *b, const void *data, size_t n) {
    if (b->cap - b->n < n) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc - b->n < n) {
            if (nc > SIZE_MAX / 2) return 0;
            nc *= 2;
        }
        unsigned char *np = realloc(b->p, nc);
        if (!np) return 0;
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    return 1;
}

void shard_h5_quiet_begin(H5Quiet *q) {
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}
void shard_h5_quiet_end(const H5Quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    char *msg = data;
    if (n == 0 && e && e->desc) snprintf(msg, 256, "%s", e->desc);
    return 0;
}

const char *shard_h5_last_error(char msg[256]) {
    msg[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_cb, msg);
    H5Eclear2(H5E_DEFAULT);
    if (!msg[0]) snprintf(msg, 256, "no detail from HDF5");
    return msg;
}
