// pack_tasks.c: the task annotation readers of `vlmae pack` (vqa, ve, nlvr, grounding): ALBEF's
// fine-tuning JSON lists, with the task fields the shards keep in their optional task tables
// (shard.h). They fill the image list (pack_list.c).
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/json.h"
#include "data/pack_internal.h"

// A JSON id (integer, number or string) as a string; NULL when absent or of another type.
static const char *id_string(PackList *L, const JsonValue *v) {
    char buf[64];
    int64_t i;
    double d;
    if (!v) return NULL;
    if (v->type == JSON_STRING) return v->u.str;
    if (json_int64(v, &i)) {
        snprintf(buf, sizeof buf, "%lld", (long long)i);
        return pack_pool_str(L, buf);
    }
    if (json_number(v, &d)) {
        snprintf(buf, sizeof buf, "%.17g", d);
        return pack_pool_str(L, buf);
    }
    return NULL;
}

static int task_list_root(const char *file, const JsonValue *root, const char *what) {
    if (root->type == JSON_ARRAY) return 0;
    fprintf(stderr, "vlmae pack: %s: expected a JSON list of %s objects, found a %s\n", file, what,
            json_type_name(root->type));
    return -1;
}

// ALBEF vqa_dataset: a "vqa" question's answers weigh count / #answers each (distinct answers);
// a "vg" question has one answer of weight 0.5. Lines "answer\tweight\tcount\n"; tabs and
// newlines inside an answer become spaces. NULL when the entry has no answers (test split).
static const char *vqa_answers(PackList *L, const JsonValue *av, int is_vg, int *bad) {
    *bad = 0;
    if (!av || av->type == JSON_NULL) return NULL;
    const char *one[1];
    const char **list = one;
    size_t n = 0;
    if (av->type == JSON_STRING) {
        one[0] = av->u.str;
        n = 1;
    } else if (av->type == JSON_ARRAY) {
        list = pack_pool_mem(L, (av->n ? av->n : 1) * sizeof(char *));
        for (size_t k = 0; k < av->n; k++) {
            const char *a = json_string(json_at(av, k));
            if (!a) {
                *bad = 1;
                return NULL;
            }
            list[n++] = a;
        }
    } else {
        *bad = 1;
        return NULL;
    }
    if (n == 0) return NULL;
    size_t cap = 1;
    for (size_t k = 0; k < n; k++) cap += strlen(list[k]) + 48;
    char *out = pack_pool_mem(L, cap);
    size_t pos = 0;
    for (size_t k = 0; k < n; k++) {
        int seen = 0, count = 0;
        for (size_t j = 0; j < k && !seen; j++) seen = !strcmp(list[j], list[k]);
        if (seen) continue;
        for (size_t j = 0; j < n; j++) count += !strcmp(list[j], list[k]);
        double w = is_vg ? 0.5 : (double)count / (double)n;
        size_t start = pos;
        pos += (size_t)snprintf(out + pos, cap - pos, "%s", list[k]);
        for (size_t c = start; c < pos; c++)
            if (out[c] == '\t' || out[c] == '\n' || out[c] == '\r') out[c] = ' ';
        pos += (size_t)snprintf(out + pos, cap - pos, "\t%.6g\t%d\n", w, count);
    }
    return out;
}

int pack_load_vqa_doc(PackList *L, const char *file, const JsonValue *root) {
    if (task_list_root(file, root, "{\"question_id\", \"image\", \"question\", \"answer\"}") < 0) return -1;
    for (size_t i = 0; i < root->n; i++) {
        const JsonValue *e = json_at(root, i);
        const char *img = json_string(json_get(e, "image"));
        const char *q = json_string(json_get(e, "question"));
        if (!img || !img[0] || !q) {
            pack_bad_entry(L, "%s: entry %zu: needs \"image\" and \"question\" strings", file, i);
            continue;
        }
        const char *ds = json_string(json_get(e, "dataset"));
        int bad;
        const char *ans = vqa_answers(L, json_get(e, "answer"), ds && !strcmp(ds, "vg"), &bad);
        if (bad) {
            pack_bad_entry(L, "%s: entry %zu: \"answer\" is not a string or a list of strings", file, i);
            continue;
        }
        const char *key = id_string(L, json_get(e, "question_id"));
        RawText *t = pack_add_text(L, pack_item_by_path(L, img), q, NULL);
        t->is_question = 1;
        t->answers = ans;
        t->key = key;
    }
    return 0;
}

static int has_image_ext(const char *p) {
    const char *dot = strrchr(p, '.'), *slash = strrchr(p, '/');
    if (!dot || (slash && dot < slash)) return 0;
    return !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png");
}

// ALBEF ve_dataset: labels {'entailment': 2, 'neutral': 1, 'contradiction': 0}; the image path
// gets ".jpg" appended (SNLI-VE lists Flickr30K ids).
int pack_load_ve_doc(PackList *L, const char *file, const JsonValue *root) {
    if (task_list_root(file, root, "{\"image\", \"sentence\", \"label\"}") < 0) return -1;
    for (size_t i = 0; i < root->n; i++) {
        const JsonValue *e = json_at(root, i);
        const char *img = json_string(json_get(e, "image"));
        const char *sent = json_string(json_get(e, "sentence"));
        const char *lab = json_string(json_get(e, "label"));
        if (!img || !img[0] || !sent || !lab) {
            pack_bad_entry(L, "%s: entry %zu: needs \"image\", \"sentence\" and \"label\" strings", file, i);
            continue;
        }
        int label = !strcmp(lab, "entailment") ? 2 : !strcmp(lab, "neutral") ? 1 : !strcmp(lab, "contradiction") ? 0 : -1;
        if (label < 0) {
            pack_bad_entry(L, "%s: entry %zu: label \"%.40s\" is not entailment, neutral or contradiction", file, i, lab);
            continue;
        }
        if (!has_image_ext(img)) {
            size_t n = strlen(img);
            char *p = pack_pool_mem(L, n + 5);
            memcpy(p, img, n);
            memcpy(p + n, ".jpg", 5);
            img = p;
        }
        RawText *t = pack_add_text(L, pack_item_by_path(L, img), sent, NULL);
        t->label = label;
    }
    return 0;
}

// One item per distinct (left, right) pair: both images go into the same shard.
static int64_t item_by_pair(PackList *L, const char *a, const char *b) {
    int found;
    uint64_t key = pack_hash_str(a) ^ pack_hash_u64(pack_hash_str(b));
    int64_t *v = pack_map_slot(L, key, NULL, &found);
    if (found && !strcmp(L->items[*v].path, a) && !strcmp(L->items[*v].path2, b)) return *v;
    int64_t it = pack_new_item(L, a);
    L->items[it].path2 = b;
    if (!found) *v = it;  // (on a 64-bit key collision the map keeps the first pair)
    return it;
}

// ALBEF nlvr_dataset: label 1 when "label" is "True", else 0 (we also accept JSON booleans and
// reject anything but True/False).
int pack_load_nlvr_doc(PackList *L, const char *file, const JsonValue *root) {
    if (task_list_root(file, root, "{\"images\": [left, right], \"sentence\", \"label\"}") < 0) return -1;
    for (size_t i = 0; i < root->n; i++) {
        const JsonValue *e = json_at(root, i);
        const JsonValue *ims = json_get(e, "images");
        const char *a = json_string(json_at(ims, 0)), *b = json_string(json_at(ims, 1));
        const char *sent = json_string(json_get(e, "sentence"));
        const JsonValue *lv = json_get(e, "label");
        const char *ls = json_string(lv);
        int label = -1;
        if (lv && lv->type == JSON_TRUE) label = 1;
        else if (lv && lv->type == JSON_FALSE) label = 0;
        else if (ls && (!strcmp(ls, "True") || !strcmp(ls, "true"))) label = 1;
        else if (ls && (!strcmp(ls, "False") || !strcmp(ls, "false"))) label = 0;
        if (!ims || ims->type != JSON_ARRAY || ims->n != 2 || !a || !a[0] || !b || !b[0] || !sent) {
            pack_bad_entry(L, "%s: entry %zu: needs \"images\": [left, right] and a \"sentence\"", file, i);
            continue;
        }
        if (label < 0) {
            pack_bad_entry(L, "%s: entry %zu: \"label\" is not True or False", file, i);
            continue;
        }
        RawText *t = pack_add_text(L, item_by_pair(L, a, b), sent, NULL);
        t->label = label;
    }
    return 0;
}

// RefCOCO+-style referring expressions: "bbox" (the referred object) becomes the text's box,
// "proposals" (detector boxes) and "ref_id" are kept; all boxes in pixels [x, y, w, h].
int pack_load_grounding_doc(PackList *L, const char *file, const JsonValue *root) {
    if (task_list_root(file, root, "{\"image\", \"text\", \"bbox\", \"proposals\"}") < 0) return -1;
    for (size_t i = 0; i < root->n; i++) {
        const JsonValue *e = json_at(root, i);
        const char *img = json_string(json_get(e, "image"));
        const char *text = json_string(json_get(e, "text"));
        if (!text) text = json_string(json_get(e, "caption"));
        if (!img || !img[0] || !text) {
            pack_bad_entry(L, "%s: entry %zu: needs \"image\" and \"text\" strings", file, i);
            continue;
        }
        float box[4];
        const JsonValue *bv = json_get(e, "bbox");
        int has_box = bv && bv->type != JSON_NULL;
        if (has_box && !pack_read_box(bv, box)) {
            pack_bad_entry(L, "%s: entry %zu: \"bbox\" is not [x, y, w, h]", file, i);
            continue;
        }
        const JsonValue *pv = json_get(e, "proposals");
        float *props = NULL;
        int np = 0, badp = 0;
        if (pv && pv->type == JSON_ARRAY && pv->n > 0) {
            props = pack_pool_mem(L, pv->n * 4 * sizeof(float));
            for (size_t k = 0; k < pv->n && !badp; k++) badp = !pack_read_box(json_at(pv, k), props + 4 * np++);
        } else if (pv && pv->type != JSON_NULL && pv->type != JSON_ARRAY) {
            badp = 1;
        }
        if (badp) {
            pack_bad_entry(L, "%s: entry %zu: \"proposals\" is not a list of [x, y, w, h]", file, i);
            continue;
        }
        const char *key = id_string(L, json_get(e, "ref_id"));
        RawText *t = pack_add_text(L, pack_item_by_path(L, img), text, has_box ? box : NULL);
        t->props = props;
        t->nprops = np;
        t->key = key;
    }
    return 0;
}
