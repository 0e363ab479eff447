// pack_pretrain.c: the pre-training annotation readers of `vlmae pack` (see pack.h and
// data/README.md): ALBEF JSON lists (albef), COCO captions (coco), Visual Genome regions (vg, with
// image_data.json), and CC3M / SBU TSV "caption<TAB>path" lines or ALBEF lists (cc, sbu). They
// fill the image list (pack_list.c).
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/json.h"
#include "data/pack_internal.h"

// ALBEF list: [{"image": path, "caption": str | [str], "box"?: [x,y,w,h]}, ...]
int pack_load_albef_doc(PackList *L, const char *file, const JsonValue *root) {
    if (root->type != JSON_ARRAY) {
        fprintf(stderr, "vlmae pack: %s: expected a JSON list of {\"image\", \"caption\"} objects, "
                "found a %s\n", file, json_type_name(root->type));
        return -1;
    }
    for (size_t i = 0; i < root->n; i++) {
        const JsonValue *e = json_at(root, i);
        const char *img = json_string(json_get(e, "image"));
        const JsonValue *cap = json_get(e, "caption");
        if (!img || !img[0]) {
            pack_bad_entry(L, "%s: entry %zu: no \"image\" string", file, i);
            continue;
        }
        float box[4];
        const JsonValue *bv = json_get(e, "box");
        int has_box = bv && bv->type != JSON_NULL;
        if (has_box && !pack_read_box(bv, box)) {
            pack_bad_entry(L, "%s: entry %zu: \"box\" is not [x, y, w, h]", file, i);
            continue;
        }
        if (cap && cap->type == JSON_STRING) {
            pack_add_text(L, pack_item_by_path(L, img), cap->u.str, has_box ? box : NULL);
        } else if (cap && cap->type == JSON_ARRAY && cap->n > 0) {
            int64_t it = pack_item_by_path(L, img);
            for (size_t k = 0; k < cap->n; k++) {
                const char *c = json_string(json_at(cap, k));
                if (c) pack_add_text(L, it, c, has_box ? box : NULL);
                else pack_bad_entry(L, "%s: entry %zu: caption %zu is not a string", file, i, k);
            }
        } else {
            pack_bad_entry(L, "%s: entry %zu: no \"caption\" string or list", file, i);
        }
    }
    return 0;
}

int pack_load_coco(PackList *L, const char *file) {
    JsonDoc *d = pack_load_json(L, file);
    if (!d) return -1;
    const JsonValue *root = json_root(d);
    const JsonValue *images = json_get(root, "images"), *anns = json_get(root, "annotations");
    if (!images || images->type != JSON_ARRAY || !anns || anns->type != JSON_ARRAY) {
        fprintf(stderr, "vlmae pack: %s: expected a COCO captions object with \"images\" and "
                "\"annotations\" lists\n", file);
        return -1;
    }
    int64_t base = L->nitems;
    pack_map_reset(L);
    for (size_t i = 0; i < images->n; i++) {
        const JsonValue *e = json_at(images, i);
        int64_t id;
        const char *fn = json_string(json_get(e, "file_name"));
        if (!json_int64(json_get(e, "id"), &id) || !fn || !fn[0]) {
            pack_bad_entry(L, "%s: images[%zu]: needs \"id\" and \"file_name\"", file, i);
            continue;
        }
        int found;
        int64_t *v = pack_map_slot(L, (uint64_t)id, NULL, &found);
        if (found) {
            pack_bad_entry(L, "%s: images[%zu]: duplicate id %lld", file, i, (long long)id);
            continue;
        }
        *v = pack_new_item(L, fn);
    }
    for (size_t i = 0; i < anns->n; i++) {
        const JsonValue *e = json_at(anns, i);
        int64_t id;
        const char *cap = json_string(json_get(e, "caption"));
        if (!json_int64(json_get(e, "image_id"), &id) || !cap) {
            pack_bad_entry(L, "%s: annotations[%zu]: needs \"image_id\" and \"caption\"", file, i);
            continue;
        }
        int64_t item = pack_map_find_id(L, (uint64_t)id);
        if (item < base) {
            pack_bad_entry(L, "%s: annotations[%zu]: image_id %lld is not in \"images\"", file, i,
                           (long long)id);
            continue;
        }
        pack_add_text(L, item, cap, NULL);
    }
    pack_map_reset(L);
    return 0;
}

// "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg" -> "VG_100K_2/1.jpg"
static const char *last_two_components(const char *url) {
    const char *end = url + strlen(url);
    int slashes = 0;
    for (const char *p = end; p > url; p--) {
        if (p[-1] == '/' && ++slashes == 2) return p;
    }
    return url;
}

typedef struct {
    const char *path;
    int w, h;
} VgImage;

int pack_load_vg(PackList *L, const PackOptions *o, const char *file) {
    // image_data.json (optional): id -> path, size
    VgImage *vimg = NULL;
    int64_t nvimg = 0;
    uint64_t vcap = 0;
    uint64_t *vkeys = NULL;
    int64_t *vidx = NULL;
    if (o->image_data) {
        JsonDoc *d = pack_load_json(L, o->image_data);
        if (!d) return -1;
        const JsonValue *root = json_root(d);
        if (root->type != JSON_ARRAY) {
            fprintf(stderr, "vlmae pack: %s: expected a JSON list of images\n", o->image_data);
            return -1;
        }
        vimg = calloc(root->n + 1, sizeof(VgImage));
        vcap = 1024;
        while (vcap < 2 * (root->n + 1)) vcap *= 2;
        vkeys = calloc(vcap, sizeof(uint64_t));
        vidx = malloc(vcap * sizeof(int64_t));
        if (!vimg || !vkeys || !vidx) {
            fprintf(stderr, "vlmae pack: out of memory\n");
            exit(1);
        }
        for (uint64_t j = 0; j < vcap; j++) vidx[j] = -1;
        for (size_t i = 0; i < root->n; i++) {
            const JsonValue *e = json_at(root, i);
            int64_t id;
            if (!json_int64(json_get(e, "image_id"), &id) && !json_int64(json_get(e, "id"), &id)) {
                pack_bad_entry(L, "%s: entry %zu: no image_id", o->image_data, i);
                continue;
            }
            const char *url = json_string(json_get(e, "url"));
            int64_t w = 0, h = 0;
            json_int64(json_get(e, "width"), &w);
            json_int64(json_get(e, "height"), &h);
            VgImage *vi = &vimg[nvimg];
            vi->path = url ? last_two_components(url) : NULL;
            vi->w = (int)w;
            vi->h = (int)h;
            uint64_t j = pack_hash_u64((uint64_t)id) & (vcap - 1);
            while (vidx[j] >= 0 && vkeys[j] != (uint64_t)id) j = (j + 1) & (vcap - 1);
            if (vidx[j] < 0) {
                vkeys[j] = (uint64_t)id;
                vidx[j] = nvimg++;
            }
        }
    }
    JsonDoc *d = pack_load_json(L, file);
    if (!d) {
        free(vimg);
        free(vkeys);
        free(vidx);
        return -1;
    }
    const JsonValue *root = json_root(d);
    if (root->type != JSON_ARRAY) {
        fprintf(stderr, "vlmae pack: %s: expected Visual Genome region_descriptions.json (a list "
                "of {\"id\", \"regions\"})\n", file);
        free(vimg);
        free(vkeys);
        free(vidx);
        return -1;
    }
    for (size_t i = 0; i < root->n; i++) {
        const JsonValue *e = json_at(root, i);
        const JsonValue *regions = json_get(e, "regions");
        int64_t id;
        if (!regions || regions->type != JSON_ARRAY) {
            pack_bad_entry(L, "%s: entry %zu: no \"regions\" list", file, i);
            continue;
        }
        if (!json_int64(json_get(e, "id"), &id) && !json_int64(json_get(e, "image_id"), &id) &&
            !(regions->n > 0 && json_int64(json_get(json_at(regions, 0), "image_id"), &id))) {
            pack_bad_entry(L, "%s: entry %zu: no image id", file, i);
            continue;
        }
        if (regions->n == 0) continue;
        const VgImage *vi = NULL;
        if (vkeys) {
            uint64_t j = pack_hash_u64((uint64_t)id) & (vcap - 1);
            while (vidx[j] >= 0 && vkeys[j] != (uint64_t)id) j = (j + 1) & (vcap - 1);
            if (vidx[j] >= 0) vi = &vimg[vidx[j]];
        }
        char buf[64];
        int64_t it;
        if (vi && vi->path) {
            it = pack_new_item(L, vi->path);
        } else {
            snprintf(buf, sizeof buf, "VG_100K/%lld.jpg", (long long)id);
            it = pack_new_item(L, pack_pool_str(L, buf));
            snprintf(buf, sizeof buf, "VG_100K_2/%lld.jpg", (long long)id);
            L->items[it].alt_path = pack_pool_str(L, buf);
        }
        if (vi) {
            L->items[it].ann_w = vi->w;
            L->items[it].ann_h = vi->h;
        }
        for (size_t k = 0; k < regions->n; k++) {
            const JsonValue *r = json_at(regions, k);
            const char *phrase = json_string(json_get(r, "phrase"));
            double x, y, w, h;
            if (!phrase || !json_number(json_get(r, "x"), &x) || !json_number(json_get(r, "y"), &y) ||
                !json_number(json_get(r, "width"), &w) || !json_number(json_get(r, "height"), &h)) {
                pack_bad_entry(L, "%s: entry %zu region %zu: needs phrase, x, y, width, height", file, i, k);
                continue;
            }
            // With the image size known, drop small regions now (saves reading images whose
            // regions are all small); otherwise the worker applies the same rule after decoding.
            if (vi && vi->w > 0 && vi->h > 0 && o->min_region_frac > 0) {
                double x0 = fmax(0, x), y0 = fmax(0, y);
                double x1 = fmin(vi->w, x + w), y1 = fmin(vi->h, y + h);
                double area = (x1 > x0 && y1 > y0) ? (x1 - x0) * (y1 - y0) : 0;
                if (area < o->min_region_frac * vi->w * vi->h) {
                    L->small_regions++;
                    continue;
                }
            }
            float box[4] = {(float)x, (float)y, (float)w, (float)h};
            pack_add_text(L, it, phrase, box);
        }
    }
    free(vimg);
    free(vkeys);
    free(vidx);
    return 0;
}

// TSV "caption<TAB>path" per line (the last tab splits), or an ALBEF JSON list.
int pack_load_tsv_or_json(PackList *L, const char *file) {
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "vlmae pack: cannot open %s: %s\n", file, strerror(errno));
        return -1;
    }
    int c;
    do {
        c = fgetc(f);
    } while (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xEF || c == 0xBB || c == 0xBF);
    fclose(f);
    if (c == '[') {
        JsonDoc *d = pack_load_json(L, file);
        return d ? pack_load_albef_doc(L, file, json_root(d)) : -1;
    }
    f = fopen(file, "rb");
    if (!f) return -1;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fprintf(stderr, "vlmae pack: out of memory reading %s\n", file);
            exit(1);
        }
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            continue;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        if (got == 0) break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    L->bufs[L->nbufs++] = buf;
    long long lineno = 0;
    char *p = buf;
    while (p < buf + n) {
        char *nl = memchr(p, '\n', (size_t)(buf + n - p));
        char *end = nl ? nl : buf + n;
        lineno++;
        *end = '\0';
        if (end > p && end[-1] == '\r') end[-1] = '\0';
        char *line = p;
        p = end + 1;
        if (lineno == 1 && !strncmp(line, "\xEF\xBB\xBF", 3)) line += 3;
        if (!line[0]) continue;
        char *tab = strrchr(line, '\t');
        if (!tab) {
            pack_bad_entry(L, "%s:%lld: no TAB between caption and path", file, lineno);
            continue;
        }
        *tab = '\0';
        const char *cap = line, *path = tab + 1;
        if (lineno == 1 && !strcasecmp(cap, "caption") &&
            (!strcasecmp(path, "path") || !strcasecmp(path, "image") || !strcasecmp(path, "url") ||
             !strcasecmp(path, "file") || !strcasecmp(path, "filepath")))
            continue;  // header
        if (!strncmp(path, "http://", 7) || !strncmp(path, "https://", 8)) {
            pack_bad_entry(L, "%s:%lld: a URL, not a local file (download the images first; see "
                           "data/README.md)", file, lineno);
            continue;
        }
        if (!path[0]) {
            pack_bad_entry(L, "%s:%lld: empty path", file, lineno);
            continue;
        }
        pack_add_text(L, pack_item_by_path(L, path), cap, NULL);
    }
    return 0;
}
