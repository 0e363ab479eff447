// h5attr.h: a string attribute of an HDF5 file, read whatever its storage (fixed-length or
// variable-length, the two kinds writers use: ours writes fixed-length, h5py variable-length).
// Shared by the checkpoint reader (checkpoint_read.c), which turns every failure into a message,
// and the fine-tuning loader (tasks/finetune_model.c), which only needs "absent or unreadable".
#ifndef VLMAE_H5ATTR_H
#define VLMAE_H5ATTR_H

#include <hdf5.h>

typedef enum {
    H5ATTR_MISSING,     // no attribute of that name
    H5ATTR_NOT_STRING,  // not a string (or its type cannot be read)
    H5ATTR_UNREADABLE,  // the read itself failed
    H5ATTR_NO_MEMORY,   // out of memory for the copy
} H5AttrError;

// Called once, at the point of failure and before any further HDF5 call, so that HDF5's error
// stack still describes the failure when the callback walks it.
typedef void (*H5AttrFail)(void *ctx, H5AttrError why, const char *name);

// A malloc'ed, NUL-terminated copy of string attribute `name` of loc, or NULL (fail, when not
// NULL, says why first).
char *h5_attr_string(hid_t loc, const char *name, H5AttrFail fail, void *ctx);

#endif
