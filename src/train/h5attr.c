// h5attr.c: reading an HDF5 string attribute, fixed-length or variable-length (see h5attr.h).
#define _GNU_SOURCE  // strdup
#include "train/h5attr.h"

#include <stdlib.h>
#include <string.h>

char *h5_attr_string(hid_t loc, const char *name, H5AttrFail fail, void *ctx) {
    if (H5Aexists(loc, name) <= 0) {
        if (fail) fail(ctx, H5ATTR_MISSING, name);
        return NULL;
    }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t ft = a >= 0 ? H5Aget_type(a) : -1;
    char *s = NULL;
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING) {
        if (fail) fail(ctx, H5ATTR_NOT_STRING, name);
    } else if (H5Tis_variable_str(ft) > 0) {
        char *vs = NULL;
        hid_t mt = H5Tcopy(ft);  // same character set as the file's type (no conversion path otherwise)
        if (H5Aread(a, mt, &vs) < 0 || !vs) {
            if (fail) fail(ctx, H5ATTR_UNREADABLE, name);
        } else {
            s = strdup(vs);
        }
        if (vs) H5free_memory(vs);
        H5Tclose(mt);
    } else {
        // fixed-length: read into a buffer one byte longer, NUL-terminated whatever the padding
        size_t len = H5Tget_size(ft);
        hid_t mt = H5Tcopy(ft);
        H5Tset_size(mt, len + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        s = calloc(len + 2, 1);
        if (!s) {
            if (fail) fail(ctx, H5ATTR_NO_MEMORY, name);
        } else if (H5Aread(a, mt, s) < 0) {
            free(s), s = NULL;
            if (fail) fail(ctx, H5ATTR_UNREADABLE, name);
        }
        H5Tclose(mt);
    }
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    return s;
}
