// pack.h: the packer behind `vlmae pack FORMAT ...` (its command line: cli/pack.c): annotation
// files + image files -> HDF5 shards (shard.h).
//
//   vlmae pack albef --ann pretrain.json [--ann more.json] --images ROOT --out shards/4m
//   vlmae pack coco  --ann captions_train2017.json --images train2017 --out shards/coco
//   vlmae pack vg    --ann region_descriptions.json --image-data image_data.json --images VG
//                    --out shards/vg
//   vlmae pack cc    --ann cc3m.tsv --images cc3m --out shards/cc3m --shard-index 3 --num-shards 16
//
// Every image is read and decoded (verified); missing, truncated or undecodable images are
// skipped, counted and the first few paths of each kind are printed in the final report.
// Output: PREFIX-00000.h5, PREFIX-00001.h5, ... each holding --shard-size consecutive input images
// (minus the skipped ones). Shard t always holds the same input images whatever --num-shards is,
// so an array job and a single process produce the same files; a shard that already exists,
// opens cleanly and holds images is kept (rerunning a failed or requeued job only packs what is
// missing), unless --overwrite. A shard none of whose images could be packed is not written.
// Run `vlmae pack --help` for every option; formats are described in data/README.md.
#ifndef VLMAE_PACK_H
#define VLMAE_PACK_H

// The options of `vlmae pack` (cli/pack.c parses them and fills in the defaults).
typedef struct {
    const char *format;
    const char *ann[16];
    int nann;
    const char *image_data;    // vg: image_data.json
    const char *images;        // image root
    const char *strip_prefix;  // removed from the start of annotation paths before joining
    const char *out;
    const char *dataset;
    int shard_size;
    int short_side;
    int quality;
    int threads;
    int shard_index, num_shards;
    int max_words;
    double min_region_frac;    // < 0: format default (0.2 for vg, else 0)
    long long limit;
    int overwrite;
    int quiet;
    double progress_s;
} PackOptions;

// Pack what o describes (its fields complete and checked, as cli/pack.c leaves them): check that
// the output can be written, read the annotations, pack this slice's shards, print the report.
// Returns the process exit status: 0 done (skipped images are not an error), 1 failure.
int pack_run(const PackOptions *o);

#endif
