// finetune_blobs.c: a task's extra-state file next to a checkpoint (CKPT.h5.extra, finetune.h):
// named byte blobs, written atomically (PATH.tmp, fsync, rename) by rank 0.
#define _GNU_SOURCE  // strdup
#include "tasks/finetune.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"

// ---------------------------------------------------------------------------------------------
// Blobs: "VLMAEBLB" u32 count, then per blob: u32 name length, name, u64 bytes, bytes.

void ft_blobs_add(FtBlobs *b, const char *name, const void *data, size_t bytes) {
    b->names = realloc(b->names, (size_t)(b->n + 1) * sizeof(char *));
    b->data = realloc(b->data, (size_t)(b->n + 1) * sizeof(void *));
    b->bytes = realloc(b->bytes, (size_t)(b->n + 1) * sizeof(size_t));
    if (!b->names || !b->data || !b->bytes) die("out of memory");
    b->names[b->n] = strdup(name);
    b->data[b->n] = mallocCheck(bytes ? bytes : 1);
    if (bytes) memcpy(b->data[b->n], data, bytes);
    b->bytes[b->n++] = bytes;
}

int ft_blobs_write(const FtBlobs *b, const char *path, char *err, size_t errlen) {
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    uint32_t n = (uint32_t)b->n;
    int ok = fwrite("VLMAEBLB", 1, 8, f) == 8 && fwrite(&n, 4, 1, f) == 1;
    for (int i = 0; ok && i < b->n; i++) {
        uint32_t nl = (uint32_t)strlen(b->names[i]);
        uint64_t nb = b->bytes[i];
        ok = fwrite(&nl, 4, 1, f) == 1 && fwrite(b->names[i], 1, nl, f) == nl && fwrite(&nb, 8, 1, f) == 1 &&
             (nb == 0 || fwrite(b->data[i], 1, nb, f) == nb);
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int ft_blobs_read(FtBlobs *b, const char *path, char *err, size_t errlen) {
    memset(b, 0, sizeof(*b));
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char magic[8];
    uint32_t n = 0;
    int ok = fread(magic, 1, 8, f) == 8 && !memcmp(magic, "VLMAEBLB", 8) && fread(&n, 4, 1, f) == 1 && n < 100000;
    for (uint32_t i = 0; ok && i < n; i++) {
        uint32_t nl = 0;
        uint64_t nb = 0;
        char name[1024];
        ok = fread(&nl, 4, 1, f) == 1 && nl < sizeof(name) && fread(name, 1, nl, f) == nl && fread(&nb, 8, 1, f) == 1 &&
             nb < ((uint64_t)1 << 40);
        if (!ok) break;
        name[nl] = 0;
        void *data = mallocCheck(nb ? nb : 1);
        ok = nb == 0 || fread(data, 1, nb, f) == nb;
        if (ok) ft_blobs_add(b, name, data, nb);
        free(data);
    }
    fclose(f);
    if (!ok) {
        ft_blobs_free(b);
        snprintf(err, errlen, "%s: not a vlmae extra-state file, or truncated", path);
        return -1;
    }
    return 0;
}

const void *ft_blobs_get(const FtBlobs *b, const char *name, size_t *bytes) {
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->names[i], name)) {
            if (bytes) *bytes = b->bytes[i];
            return b->data[i];
        }
    return NULL;
}

void ft_blobs_free(FtBlobs *b) {
    for (int i = 0; i < b->n; i++) free(b->names[i]), free(b->data[i]);
    free(b->names), free(b->data), free(b->bytes);
    memset(b, 0, sizeof(*b));
}
