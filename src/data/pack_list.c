// pack_list.c: the image list of `vlmae pack` (pack_internal.h): images with their raw texts,
// filled by the annotation readers (pack_pretrain.c, pack_tasks.c), then grouped by image;
// string pool, bad-entry counting, the path / id map, and pack_build_list choosing the reader.
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/json.h"
#include "data/pack_internal.h"

static void *grow(void *p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return p;
    int64_t nc = *cap ? *cap : 1024;
    while (nc < need) nc *= 2;
    void *np = realloc(p, (size_t)nc * elem);
    if (!np) {
        fprintf(stderr, "vlmae pack: out of memory\n");
        exit(1);
    }
    *cap = nc;
    return np;
}

const char *pack_pool_str(PackList *L, const char *s) {
    L->pool = grow(L->pool, &L->cappool, L->npool + 1, sizeof(char *));
    char *c = strdup(s);
    if (!c) {
        fprintf(stderr, "vlmae pack: out of memory\n");
        exit(1);
    }
    L->pool[L->npool++] = c;
    return c;
}

void *pack_pool_mem(PackList *L, size_t n) {
    L->pool = grow(L->pool, &L->cappool, L->npool + 1, sizeof(char *));
    char *c = malloc(n ? n : 1);
    if (!c) {
        fprintf(stderr, "vlmae pack: out of memory\n");
        exit(1);
    }
    L->pool[L->npool++] = c;
    return c;
}

void pack_bad_entry(PackList *L, const char *fmt, ...) {
    if (L->bad_entries < NEXAMPLES) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(L->bad_examples[L->bad_entries], 256, fmt, ap);
        va_end(ap);
    }
    L->bad_entries++;
}

uint64_t pack_hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

uint64_t pack_hash_u64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// One map per list, used either by path (albef/cc) or by id (coco/vg), never both at once.
// by_path: key = string hash, candidates compared by items[val].path. by id: key = id.
void pack_map_reset(PackList *L) {
    free(L->map_keys);
    free(L->map_vals);
    free(L->map_used);
    L->map_keys = NULL;
    L->map_vals = NULL;
    L->map_used = NULL;
    L->map_cap = L->map_n = 0;
}

static void map_grow(PackList *L);

int64_t *pack_map_slot(PackList *L, uint64_t key, const char *path, int *found) {
    if ((L->map_n + 1) * 2 > L->map_cap) map_grow(L);
    uint64_t mask = L->map_cap - 1, i = pack_hash_u64(key) & mask;
    for (;;) {
        if (!L->map_used[i]) {
            *found = 0;
            L->map_used[i] = 1;
            L->map_keys[i] = key;
            L->map_n++;
            return &L->map_vals[i];
        }
        if (L->map_keys[i] == key && (!path || !strcmp(L->items[L->map_vals[i]].path, path))) {
            *found = 1;
            return &L->map_vals[i];
        }
        i = (i + 1) & mask;
    }
}

static void map_grow(PackList *L) {
    uint64_t oc = L->map_cap, nc = oc ? oc * 2 : 1024;
    uint64_t *ok = L->map_keys;
    int64_t *ov = L->map_vals;
    unsigned char *ou = L->map_used;
    L->map_keys = calloc(nc, sizeof(uint64_t));
    L->map_vals = calloc(nc, sizeof(int64_t));
    L->map_used = calloc(nc, 1);
    if (!L->map_keys || !L->map_vals || !L->map_used) {
        fprintf(stderr, "vlmae pack: out of memory\n");
        exit(1);
    }
    L->map_cap = nc;
    L->map_n = 0;
    for (uint64_t i = 0; i < oc; i++) {
        if (!ou[i]) continue;
        uint64_t mask = nc - 1, j = pack_hash_u64(ok[i]) & mask;
        while (L->map_used[j]) j = (j + 1) & mask;
        L->map_used[j] = 1;
        L->map_keys[j] = ok[i];
        L->map_vals[j] = ov[i];
        L->map_n++;
    }
    free(ok);
    free(ov);
    free(ou);
}

int64_t pack_map_find_id(const PackList *L, uint64_t id) {
    if (!L->map_cap) return -1;
    uint64_t mask = L->map_cap - 1, j = pack_hash_u64(id) & mask;
    while (L->map_used[j]) {
        if (L->map_keys[j] == id) return L->map_vals[j];
        j = (j + 1) & mask;
    }
    return -1;
}

int64_t pack_new_item(PackList *L, const char *path) {
    L->items = grow(L->items, &L->capitems, L->nitems + 1, sizeof(PackItem));
    PackItem *it = &L->items[L->nitems];
    memset(it, 0, sizeof *it);
    it->path = path;
    return L->nitems++;
}

int64_t pack_item_by_path(PackList *L, const char *path) {
    int found;
    int64_t *v = pack_map_slot(L, pack_hash_str(path), path, &found);
    if (!found) *v = pack_new_item(L, path);
    return *v;
}

RawText *pack_add_text(PackList *L, int64_t item, const char *caption, const float *box) {
    L->texts = grow(L->texts, &L->captexts, L->ntexts + 1, sizeof(RawText));
    RawText *t = &L->texts[L->ntexts++];
    memset(t, 0, sizeof *t);
    t->caption = caption;
    t->item = item;
    t->label = -1;
    for (int k = 0; k < 4; k++) t->box[k] = box ? box[k] : NAN;
    return t;  // valid until the next pack_add_text
}

// Group texts by item (stable), drop items without texts. The item order is kept.
static void finish_list(PackList *L) {
    int64_t *count = calloc((size_t)L->nitems + 1, sizeof(int64_t));
    RawText *sorted = malloc((size_t)(L->ntexts ? L->ntexts : 1) * sizeof(RawText));
    if (!count || !sorted) {
        fprintf(stderr, "vlmae pack: out of memory\n");
        exit(1);
    }
    for (int64_t t = 0; t < L->ntexts; t++) count[L->texts[t].item + 1]++;
    for (int64_t i = 0; i < L->nitems; i++) count[i + 1] += count[i];
    for (int64_t i = 0; i < L->nitems; i++) {
        L->items[i].first_text = count[i];
        L->items[i].ntext = (int32_t)(count[i + 1] - count[i]);
    }
    for (int64_t t = 0; t < L->ntexts; t++) sorted[count[L->texts[t].item]++] = L->texts[t];
    free(L->texts);
    L->texts = sorted;
    free(count);
    int64_t k = 0;
    for (int64_t i = 0; i < L->nitems; i++) {
        if (L->items[i].ntext == 0) {
            L->no_text_items++;
            continue;
        }
        L->items[k++] = L->items[i];
    }
    L->nitems = k;
    pack_map_reset(L);
}

void pack_free_list(PackList *L) {
    for (int i = 0; i < L->ndocs; i++) json_free(L->docs[i]);
    for (int i = 0; i < L->nbufs; i++) free(L->bufs[i]);
    for (int64_t i = 0; i < L->npool; i++) free(L->pool[i]);
    free(L->pool);
    free(L->items);
    free(L->texts);
    pack_map_reset(L);
}

JsonDoc *pack_load_json(PackList *L, const char *path) {
    char err[1024];
    JsonDoc *d = json_parse_file(path, 0, err, sizeof err);
    if (!d) {
        fprintf(stderr, "vlmae pack: %s\n", err);
        return NULL;
    }
    L->docs[L->ndocs++] = d;
    return d;
}

int pack_read_box(const JsonValue *b, float box[4]) {
    if (!b || b->type != JSON_ARRAY || b->n != 4) return 0;
    for (int k = 0; k < 4; k++) {
        double v;
        if (!json_number(json_at(b, (size_t)k), &v) || !isfinite(v)) return 0;
        box[k] = (float)v;
    }
    return 1;
}

int pack_build_list(PackList *L, const PackOptions *o) {
    memset(L, 0, sizeof *L);
    const char *fmt = o->format;
    if (!strcmp(fmt, "coco") || !strcmp(fmt, "vg")) {
        if (o->nann != 1 && !strcmp(fmt, "vg")) {
            fprintf(stderr, "vlmae pack: vg takes one --ann (region_descriptions.json) and "
                    "--image-data image_data.json\n");
            return -1;
        }
    }
    for (int a = 0; a < o->nann; a++) {
        int rc;
        if (!strcmp(fmt, "albef")) {
            JsonDoc *d = pack_load_json(L, o->ann[a]);
            rc = d ? pack_load_albef_doc(L, o->ann[a], json_root(d)) : -1;
        } else if (!strcmp(fmt, "coco")) {
            rc = pack_load_coco(L, o->ann[a]);
        } else if (!strcmp(fmt, "vg")) {
            rc = pack_load_vg(L, o, o->ann[a]);
        } else if (!strcmp(fmt, "vqa") || !strcmp(fmt, "ve") || !strcmp(fmt, "nlvr") ||
                   !strcmp(fmt, "grounding")) {
            JsonDoc *d = pack_load_json(L, o->ann[a]);
            const JsonValue *r = d ? json_root(d) : NULL;
            rc = !d ? -1
                 : !strcmp(fmt, "vqa") ? pack_load_vqa_doc(L, o->ann[a], r)
                 : !strcmp(fmt, "ve")  ? pack_load_ve_doc(L, o->ann[a], r)
                 : !strcmp(fmt, "nlvr") ? pack_load_nlvr_doc(L, o->ann[a], r)
                                        : pack_load_grounding_doc(L, o->ann[a], r);
        } else {
            rc = pack_load_tsv_or_json(L, o->ann[a]);
        }
        if (rc < 0) return -1;
        if (L->ndocs >= 18 || L->nbufs >= 18) {
            fprintf(stderr, "vlmae pack: too many annotation files\n");
            return -1;
        }
    }
    finish_list(L);
    return 0;
}
