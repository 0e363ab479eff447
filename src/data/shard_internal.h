// shard_internal.h: private to the shard module (shard.c, shard_write.c, shard_read.c), not part
// of its interface (shard.h): the helpers the writer and the reader share, defined in shard.c.
#ifndef VLMAE_SHARD_INTERNAL_H
#define VLMAE_SHARD_INTERNAL_H

#include <hdf5.h>
#include <stddef.h>

// printf-style message into err (nothing when err is NULL or errlen 0).
void shard_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// Growable byte buffer.
typedef struct {
    unsigned char *p;
    size_t n, cap;
} Buf;

// Append n bytes. Returns 1, or 0 when out of memory.
int shard_buf_put(Buf *b, const void *data, size_t n);

// HDF5 error handling: silence the automatic stack printing while inside our calls, and keep
// the most specific message of the stack for our own error text.
typedef struct {
    H5E_auto2_t func;
    void *data;
} H5Quiet;

void shard_h5_quiet_begin(H5Quiet *q);
void shard_h5_quiet_end(const H5Quiet *q);
// Most specific message on the current HDF5 error stack ("" if none), then clears the stack.
const char *shard_h5_last_error(char msg[256]);

#endif
