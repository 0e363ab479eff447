// checkpoint_internal.h: private to the checkpoint module (checkpoint.c, checkpoint_write.c,
// checkpoint_read.c), not part of its interface (checkpoint.h): the error context every function
// reports into, HDF5's error printing switched off and back on, the file-access settings, and the
// two read-side checks the run-directory scan (checkpoint.c) shares with checkpoint_load.
#ifndef VLMAE_CHECKPOINT_INTERNAL_H
#define VLMAE_CHECKPOINT_INTERNAL_H

#include <hdf5.h>
#include <stddef.h>

// Where a message goes: "PATH: what went wrong (HDF5's or the OS's cause)".
typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} CkptCtx;

// Writes "PATH: message" into c->err; with_hdf5: appends the most specific line of HDF5's error
// stack (call it right after the failing HDF5 call: the next call clears the stack). Returns -1.
int ckpt_fail(CkptCtx *c, int with_hdf5, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// HDF5 prints its error stack on every failure by default; our functions turn that off and put
// the caller's setting back on the way out.
typedef struct {
    H5E_auto2_t func;
    void *data;
} CkptQuiet;
void ckpt_h5_quiet(CkptQuiet *q);
void ckpt_h5_restore(const CkptQuiet *q);

// File-access properties of every checkpoint file (format bounds, strong close, locking).
hid_t ckpt_make_fapl(void);

// checkpoint_read.c: opens path read-only (-1 with the error set), and checks the format marker,
// the version and the completion marker of an open file (0 or -1).
hid_t ckpt_open_ro(CkptCtx *c, const char *path);
int ckpt_check_header(CkptCtx *c, hid_t f);

#endif
