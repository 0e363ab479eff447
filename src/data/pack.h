// pack.h: `vlmae pack FORMAT ...`: annotation files + image files -> HDF5 shards (shard.h).
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
// so an array job and a single process produce the same files; a shard that already exists and
// opens cleanly is kept (rerunning a failed or requeued job only packs what is missing), unless
// --overwrite. Run `vlmae pack --help` for every option; formats are described in data/README.md.
#ifndef VLMAE_PACK_H
#define VLMAE_PACK_H

// argv[0] is the subcommand name ("pack"); argv[1] the format; options follow.
// Returns the process exit status: 0 done (skipped images are not an error), 1 failure,
// 2 usage error.
int pack_main(int argc, char **argv);

#endif
