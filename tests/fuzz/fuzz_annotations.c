// fuzz_annotations.c: libFuzzer harness for `vlmae pack`'s annotation readers (src/data/pack_list.c,
// src/data/pack_pretrain.c, src/data/pack_tasks.c: ALBEF JSON lists, COCO captions, Visual Genome regions
// (+ image_data.json), CC3M/SBU TSV or JSON, and the VQA / SNLI-VE / NLVR2 / grounding task
// lists) and the caption clean-up the workers apply. Built and run by `make fuzz`
// (tests/fuzz/README.md). It follows pack's internals (src/data/pack_internal.h: PackOptions, PackList,
// pack_build_list).
// Input: one byte choosing the format, then the annotation file; for vg+image_data the file is
// "IMAGE_DATA_JSON\n----\nREGIONS_JSON".
// The readers report bad entries on stderr: run with -close_fd_mask=2 (make fuzz does).
// Checks beyond "no crash": the list is consistent (every item's texts lie inside the text table,
// every item has a path and at least one text) and every caption cleans up.
#include "fuzz_util.h"

#include "data/caption.h"
#include "data/pack_internal.h"

static const char *formats[] = {"albef", "coco", "vg", "vg", "cc3m", "vqa", "ve", "nlvr", "grounding"};
#define NFORMATS (sizeof formats / sizeof formats[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned f = data[0] % NFORMATS;
    data++, size--;
    PackOptions o;
    memset(&o, 0, sizeof o);
    o.format = formats[f];
    o.min_region_frac = 0.2;
    o.max_words = 30;
    char ann[64], img[64];
    int fd_img = -1, fd_ann;
    const uint8_t *sep = f == 3 ? memmem(data, size, "\n----\n", 6) : NULL;
    if (sep) {
        fd_img = fuzz_file(data, (size_t)(sep - data), img, sizeof img);
        o.image_data = img;
        size -= (size_t)(sep + 6 - data);
        data = sep + 6;
    }
    fd_ann = fuzz_file(data, size, ann, sizeof ann);
    o.ann[0] = ann;
    o.nann = 1;
    PackList L;
    if (pack_build_list(&L, &o) == 0) {
        for (int64_t i = 0; i < L.nitems; i++) {
            const PackItem *it = &L.items[i];
            if (!it->path || it->ntext < 1 || it->first_text < 0 || it->first_text + it->ntext > L.ntexts) abort();
            for (int32_t k = 0; k < it->ntext; k++) {
                const RawText *t = &L.texts[it->first_text + k];
                if (!t->caption || t->nprops < 0 || (t->nprops > 0 && !t->props)) abort();
                char *c = t->is_question ? pre_question(t->caption, o.max_words) : pre_caption(t->caption, o.max_words);
                free(c);
                float acc = 0;  // every proposal box and answer byte is readable
                for (int p = 0; p < 4 * t->nprops; p++) acc += t->props[p];
                if (t->answers) acc += (float)strlen(t->answers);
                if (t->key) acc += (float)strlen(t->key);
                (void)acc;
            }
        }
    }
    pack_free_list(&L);
    fuzz_file_close(fd_ann);
    if (fd_img >= 0) fuzz_file_close(fd_img);
    return 0;
}
