// shard.h: the HDF5 shard format, version 1 (writer and reader). Full schema in data/README.md.
//
//   /                       attributes: vlmae_shard_version (int32 = 1), vocab_hash (uint64; 0 =
//                           captions are raw text), dataset (string, e.g. "coco"; informational)
//   /images/jpeg            uint8[total]   all JPEG files back to back, CONTIGUOUS layout, no filters
//   /images/offsets         uint64[N+1]    image i = jpeg[offsets[i] .. offsets[i+1])
//   /images/hw              uint16[N,2]    (height, width) of the stored JPEG
//   /images/key             vlen UTF-8 string[N]   source path or id
//   /texts/image            uint32[M]      row in /images of each text
//   /texts/caption          uint8[bytes]   UTF-8 captions back to back (cleaned with pre_caption)
//   /texts/caption_offsets  uint64[M+1]
//   /texts/box              float32[M,4]   normalised x,y,w,h of the caption's region; NaN = none
//
// Task tables (optional datasets of the same version 1: a reader that does not know them ignores
// them, and a shard without them reads as before; `vlmae pack vqa|ve|nlvr|grounding` writes them):
//   /texts/label            int32[M]       class label (SNLI-VE: 0 contradiction, 1 neutral,
//                                          2 entailment, ALBEF's ids; NLVR2: 1 True, 0 False);
//                                          -1 = none
//   /texts/image2           uint32[M]      row in /images of the second image (NLVR2: the right
//                                          image; the text's /texts/image is the left one);
//                                          0xFFFFFFFF = none
//   /texts/answers          uint8[bytes]   VQA ground truth: "answer\tweight\tcount\n" lines, one
//   /texts/answer_offsets   uint64[M+1]    per distinct answer: weight = its share of the
//                                          annotators (ALBEF's count / #answers), count = how many
//                                          gave it (VQA accuracy needs it); "" = none (test split)
//   /texts/proposals        float32[P,4]   candidate boxes, normalised x,y,w,h like /texts/box
//   /texts/proposal_offsets uint64[M+1]    (grounding); text t owns rows [off[t], off[t+1])
//   /texts/key              uint8[bytes]   the annotation's id of the text (VQA question_id,
//   /texts/key_offsets      uint64[M+1]    RefCOCO+ ref_id, ...) as written in the JSON; "" = none
// Each table is written only when some text of the shard set it; texts that did not get the
// "none" value.
//
// Writer: everything goes to PATH.tmp (JPEG bytes are spilled to PATH.jpeg.tmp while the shard
// fills, so memory stays small); shard_writer_finish writes the HDF5 file and renames it to PATH
// only when it is complete, so a killed pack never leaves a file that looks finished.
//
// Reader: shard_open uses HDF5 once (validate, read the small tables, get the file offset of
// /images/jpeg), closes HDF5, and keeps a plain read-only fd; shard_read_image uses pread(), so any
// number of loader threads can read concurrently without HDF5's global lock. All functions except
// shard_open/shard_writer_* are thread-safe on an open Shard.
#ifndef VLMAE_SHARD_H
#define VLMAE_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define SHARD_VERSION 1

// ---- writer (single thread)
typedef struct ShardWriter ShardWriter;

// Starts a shard that will become `path`. dataset: short name stored as an attribute (may be NULL).
ShardWriter *shard_writer_open(const char *path, const char *dataset, uint64_t vocab_hash,
                               char *err, size_t errlen);
// Append one image (JPEG bytes, stored size h x w, source key). Returns its row, or -1 on error.
int64_t shard_writer_add_image(ShardWriter *w, const uint8_t *jpeg, size_t n, int h, int w_,
                               const char *key, char *err, size_t errlen);
// Append one text for image row `image`. box: normalised x,y,w,h or NULL (stored as NaN).
int64_t shard_writer_add_text(ShardWriter *w, uint32_t image, const char *caption, size_t len,
                              const float box[4], char *err, size_t errlen);
// The task fields of one text (see "Task tables" above). Unset fields: has_label 0, has_image2 0,
// NULL / 0 for the rest.
typedef struct {
    int has_label;
    int32_t label;
    int has_image2;
    uint32_t image2;           // image row (must already exist in this shard)
    const char *answers;       // "answer\tweight\tcount\n" lines (answers_len bytes) or NULL
    size_t answers_len;
    const float *proposals;    // n_proposals x 4 normalised x,y,w,h, or NULL
    int n_proposals;
    const char *key;           // NUL-terminated id, or NULL
} ShardTextExtra;
// Set the task fields of text `text`, which must be the text added last. Returns 0 or -1.
int shard_writer_set_extra(ShardWriter *w, int64_t text, const ShardTextExtra *e, char *err,
                           size_t errlen);
int64_t shard_writer_num_images(const ShardWriter *w);
int64_t shard_writer_num_texts(const ShardWriter *w);
// Write the HDF5 file and atomically rename PATH.tmp -> PATH. Frees w. Returns 0 on success; on
// failure the temporary files are removed and nothing is left at PATH.
int shard_writer_finish(ShardWriter *w, char *err, size_t errlen);
// Give up: remove temporary files, free w.
void shard_writer_abort(ShardWriter *w);

// ---- reader
typedef struct Shard Shard;

// Opens and validates a shard; on failure returns NULL and err names the file and the problem.
Shard *shard_open(const char *path, char *err, size_t errlen);
// Flags for shard_open_flags.
#define SHARD_OPEN_NO_KEYS 1   // don't load /images/key (saves memory in the training loader)
Shard *shard_open_flags(const char *path, int flags, char *err, size_t errlen);
void shard_close(Shard *s);

const char *shard_path(const Shard *s);
uint64_t shard_vocab_hash(const Shard *s);
const char *shard_dataset(const Shard *s);   // "" when absent
int64_t shard_num_images(const Shard *s);
int64_t shard_num_texts(const Shard *s);

size_t shard_image_nbytes(const Shard *s, int64_t i);
size_t shard_max_image_nbytes(const Shard *s);      // largest JPEG in the shard
void shard_image_hw(const Shard *s, int64_t i, int *h, int *w);
const char *shard_image_key(const Shard *s, int64_t i);
// Read image i's JPEG bytes into buf (cap >= shard_image_nbytes). Returns bytes read, or -1 with
// err set ("PATH: image i: short read ..."). Thread-safe (pread).
int64_t shard_read_image(const Shard *s, int64_t i, uint8_t *buf, size_t cap, char *err,
                         size_t errlen);

uint32_t shard_text_image(const Shard *s, int64_t t);
const char *shard_text_caption(const Shard *s, int64_t t, size_t *len);  // NUL-terminated
void shard_text_box(const Shard *s, int64_t t, float box[4]);

// Task tables (all thread-safe). has_*: the shard holds the table.
int shard_has_labels(const Shard *s);
int shard_has_image2(const Shard *s);
int shard_has_answers(const Shard *s);
int shard_has_proposals(const Shard *s);
int shard_has_text_keys(const Shard *s);
int32_t shard_text_label(const Shard *s, int64_t t);    // -1 = none (or no table)
int64_t shard_text_image2(const Shard *s, int64_t t);   // -1 = none (or no table)
// "answer\tweight\tcount\n" lines, NUL-terminated; "" when none. len may be NULL.
const char *shard_text_answers(const Shard *s, int64_t t, size_t *len);
// Number of proposal boxes of text t; *boxes points at n x 4 floats (normalised x,y,w,h).
int shard_text_proposals(const Shard *s, int64_t t, const float **boxes);
const char *shard_text_key(const Shard *s, int64_t t);  // NUL-terminated; "" when none

#endif
