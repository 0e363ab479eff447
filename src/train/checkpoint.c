// checkpoint.c: HDF5 training checkpoints (layout and guarantees in checkpoint.h): what the
// module's files share (errors with HDF5's cause, HDF5's error printing, file-access settings)
// and the run directory: checkpoint names, the newest complete one (resume), pruning old ones.
// Writing is checkpoint_write.c, reading checkpoint_read.c.
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/checkpoint_internal.h"

// ---------------------------------------------------------------------------------------------
// Errors: our own message, plus the most specific line of HDF5's error stack (the OS error text
// when there is one, e.g. "No space left on device").

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    char *cause = data;
    if (cause[0] || !e->desc || !e->desc[0]) return 0;
    const char *m = strstr(e->desc, "error message = '");
    if (m) {  // "... errno = 28, error message = 'No space left on device', ..."
        m += strlen("error message = '");
        const char *q = strchr(m, '\'');
        size_t k = q ? (size_t)(q - m) : strlen(m);
        if (k > 255) k = 255;
        memcpy(cause, m, k);
        cause[k] = 0;
    } else {
        snprintf(cause, 256, "%s", e->desc);
    }
    return 0;
}

int ckpt_fail(CkptCtx *c, int with_hdf5, const char *fmt, ...) {
    if (!c->err || !c->errlen) return -1;
    char cause[256] = "";
    if (with_hdf5) H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, cause);
    int k = snprintf(c->err, c->errlen, "%s: ", c->path);
    if (k < 0 || (size_t)k >= c->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    int k2 = vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
    va_end(ap);
    if (k2 >= 0 && cause[0] && (size_t)(k + k2) < c->errlen)
        snprintf(c->err + k + k2, c->errlen - (size_t)(k + k2), " (%s)", cause);
    return -1;
}

// HDF5's own error printing: off inside our functions, the caller's setting back on the way out.

void ckpt_h5_quiet(CkptQuiet *q) {
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void ckpt_h5_restore(const CkptQuiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

hid_t ckpt_make_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    // The 1.8 file format: readable by every HDF5 since 2008 (h5py included) and it stores
    // attributes over 64 KiB (a long config YAML) densely.
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18);
    // H5Fclose really closes (and flushes), so its return value reports write errors.
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
    // Parallel file systems mounted without flock support: do not fail, just do not lock.
    H5Pset_file_locking(fapl, 1, 1);
#endif
    return fapl;
}

// ---------------------------------------------------------------------------------------------
// Run directories

int checkpoint_path(char *buf, size_t n, const char *run_dir, int64_t step) {
    int k = run_dir && run_dir[0] ? snprintf(buf, n, "%s/ckpt-%08lld.h5", run_dir, (long long)step)
                                  : snprintf(buf, n, "ckpt-%08lld.h5", (long long)step);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

// Step of a canonical checkpoint name ("ckpt-%08lld.h5"), or -1.
static int64_t parse_name(const char *name) {
    if (strncmp(name, "ckpt-", 5) != 0) return -1;
    const char *p = name + 5;
    int64_t step = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (step > (INT64_MAX - 9) / 10) return -1;
        step = step * 10 + (*p++ - '0');
        digits++;
    }
    if (!digits || strcmp(p, ".h5") != 0) return -1;
    char canon[64];
    snprintf(canon, sizeof(canon), "ckpt-%08lld.h5", (long long)step);
    return strcmp(canon, name) == 0 ? step : -1;
}

typedef struct {
    int64_t step;
    char *path;
} Found;

static int cmp_found_desc(const void *a, const void *b) {
    const Found *x = a, *y = b;
    return x->step < y->step ? 1 : x->step > y->step ? -1 : 0;
}

// Lists the checkpoint files of run_dir, newest first. Returns the count or -1.
static int list_checkpoints(const char *run_dir, Found **out) {
    *out = NULL;
    DIR *d = opendir(run_dir);
    if (!d) {
        fprintf(stderr, "vlmae: cannot read checkpoint directory %s: %s\n", run_dir, strerror(errno));
        return -1;
    }
    Found *v = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t step = parse_name(e->d_name);
        if (step < 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            Found *nv = realloc(v, (size_t)cap * sizeof(Found));
            if (!nv) break;
            v = nv;
        }
        size_t len = strlen(run_dir) + strlen(e->d_name) + 2;
        v[n].path = malloc(len);
        if (!v[n].path) break;
        snprintf(v[n].path, len, "%s/%s", run_dir, e->d_name);
        v[n].step = step;
        n++;
    }
    closedir(d);
    if (n > 1) qsort(v, (size_t)n, sizeof(Found), cmp_found_desc);
    *out = v;
    return n;
}

static void free_found(Found *v, int n) {
    for (int i = 0; i < n; i++) free(v[i].path);
    free(v);
}

// 0: a complete checkpoint (header checks only; values are verified by checkpoint_load).
static int check_complete(const char *path, char *err, size_t errlen) {
    CkptCtx c = {path, err, errlen};
    CkptQuiet quiet;
    ckpt_h5_quiet(&quiet);
    hid_t f = ckpt_open_ro(&c, path);
    int rc = f < 0 ? -1 : ckpt_check_header(&c, f);
    if (f >= 0) H5Fclose(f);
    ckpt_h5_restore(&quiet);
    return rc;
}

int checkpoint_find_latest(const char *run_dir, char *path_out, size_t n) {
    Found *v;
    int count = list_checkpoints(run_dir, &v);
    if (count < 0) return -1;
    int rc = 1;
    for (int i = 0; i < count; i++) {
        char why[1024];
        if (check_complete(v[i].path, why, sizeof(why)) != 0) {
            fprintf(stderr, "vlmae: skipping checkpoint %s\n", why);
            continue;
        }
        if (strlen(v[i].path) >= n) {
            fprintf(stderr, "vlmae: checkpoint path %s is too long\n", v[i].path);
            rc = -1;
        } else {
            strcpy(path_out, v[i].path);
            rc = 0;
        }
        break;
    }
    free_found(v, count);
    return rc;
}

int checkpoint_prune(const char *run_dir, int keep) {
    if (keep <= 0) return 0;
    Found *v;
    int count = list_checkpoints(run_dir, &v);
    if (count < 0) return -1;
    int kept = 0, deleted = 0, rc = 0;
    for (int i = 0; i < count; i++) {
        char why[1024];
        if (check_complete(v[i].path, why, sizeof(why)) != 0) continue;  // left for inspection
        if (kept < keep) {
            kept++;
            continue;
        }
        if (unlink(v[i].path) != 0) {
            fprintf(stderr, "vlmae: cannot delete old checkpoint %s: %s\n", v[i].path, strerror(errno));
            rc = -1;
        } else {
            deleted++;
        }
    }
    free_found(v, count);
    return rc ? -1 : deleted;
}
