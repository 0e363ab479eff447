// pack_internal.h: private to `vlmae pack` (pack.c, pack_list.c, pack_pretrain.c, pack_tasks.c),
// not part of its interface (pack.h, which holds the options): the image list and the functions
// that fill it.
//
// The annotation readers (pack_load_*) add images (PackItem) and their raw texts (RawText) to a
// PackList with pack_new_item / pack_item_by_path and pack_add_text; pack_build_list runs the
// reader of --format on every --ann file, then groups the texts by image. Strings the readers
// make live in the list's pool (pack_pool_str, pack_pool_mem); JSON documents are kept open in
// the list (pack_load_json), so their strings can be used as they are. pack_free_list frees all.
#ifndef VLMAE_PACK_INTERNAL_H
#define VLMAE_PACK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "data/json.h"
#include "data/pack.h"  // PackOptions

// ---- the image list (pack_list.c)
typedef struct {
    const char *caption;   // raw caption (cleaned by the workers)
    float box[4];          // pixels x,y,w,h in the annotation's frame; NaN = none
    int64_t item;          // owner (used while grouping)
    // task fields (shard.h "Task tables"; formats vqa, ve, nlvr, grounding)
    int is_question;       // clean with pre_question instead of pre_caption
    int32_t label;         // -1 = none
    const char *answers;   // "answer\tweight\tcount\n" lines, or NULL
    const char *key;       // question_id / ref_id, or NULL
    const float *props;    // nprops x 4 pixel boxes (annotation frame), or NULL
    int nprops;
} RawText;

typedef struct {
    const char *path;      // as in the annotation
    const char *alt_path;  // second candidate (vg without image_data), or NULL
    const char *path2;     // nlvr: the right image (stored as a second image row), or NULL
    int ann_w, ann_h;      // frame of the boxes if the annotation gives it, else 0
    int64_t first_text;
    int32_t ntext;
} PackItem;

// Bad annotation entries: counted, the first few described.
#define NEXAMPLES 5

typedef struct {
    PackItem *items;
    int64_t nitems, capitems;
    RawText *texts;
    int64_t ntexts, captexts;
    JsonDoc *docs[20];
    int ndocs;
    char *bufs[20];
    int nbufs;
    char **pool;           // constructed strings
    int64_t npool, cappool;
    // maps (open addressing)
    uint64_t *map_keys;    // hash or id, 0 = empty slot marker is handled with map_used
    int64_t *map_vals;
    unsigned char *map_used;
    uint64_t map_cap, map_n;
    // counters
    long long bad_entries;
    char bad_examples[NEXAMPLES][256];
    long long small_regions;   // dropped at list time (vg with image sizes)
    long long no_text_items;   // images without any caption
} PackList;

const char *pack_pool_str(PackList *L, const char *s);
// n bytes owned by the list's pool.
void *pack_pool_mem(PackList *L, size_t n);
void pack_bad_entry(PackList *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t pack_hash_str(const char *s);
uint64_t pack_hash_u64(uint64_t x);
// The list's map, by path or by id (pack_list.c); pack_map_reset empties it.
void pack_map_reset(PackList *L);
// The value slot of key (path: NULL for the id map); *found 0 means a new, unset slot.
int64_t *pack_map_slot(PackList *L, uint64_t key, const char *path, int *found);
// The item of id, or -1.
int64_t pack_map_find_id(const PackList *L, uint64_t id);
int64_t pack_new_item(PackList *L, const char *path);
// The item of path, a new one for a new path.
int64_t pack_item_by_path(PackList *L, const char *path);
// A new text of item (box: pixels x,y,w,h or NULL); the pointer is valid until the next
// pack_add_text.
RawText *pack_add_text(PackList *L, int64_t item, const char *caption, const float *box);
// Parse a JSON file into the list (kept until pack_free_list). NULL after printing the error.
JsonDoc *pack_load_json(PackList *L, const char *path);
// [x, y, w, h] of finite numbers into box. Returns 1, or 0 for anything else.
int pack_read_box(const JsonValue *b, float box[4]);
// The list of o (every --ann file read with the reader of o->format). Returns 0 or -1 (error
// printed); free L with pack_free_list either way.
int pack_build_list(PackList *L, const PackOptions *o);
void pack_free_list(PackList *L);

// ---- the readers (pack_pretrain.c, pack_tasks.c): 0, or -1 after printing the error
int pack_load_albef_doc(PackList *L, const char *file, const JsonValue *root);
int pack_load_coco(PackList *L, const char *file);
int pack_load_vg(PackList *L, const PackOptions *o, const char *file);
int pack_load_tsv_or_json(PackList *L, const char *file);
int pack_load_vqa_doc(PackList *L, const char *file, const JsonValue *root);
int pack_load_ve_doc(PackList *L, const char *file, const JsonValue *root);
int pack_load_nlvr_doc(PackList *L, const char *file, const JsonValue *root);
int pack_load_grounding_doc(PackList *L, const char *file, const JsonValue *root);

#endif
