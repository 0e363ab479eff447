// finetune.h (cli): `vlmae finetune` and `vlmae eval` (cli/finetune.c), the command line of the
// fine-tuning harness (tasks/finetune.h, which describes what a run does and writes):
//
//   vlmae finetune -c configs/finetune_retrieval_coco.yaml --init PRETRAINED.h5 [--set K=V ...]
//                  [--run-dir DIR] [--resume auto|PATH] [--stop-after N]
//   vlmae eval -c configs/finetune_retrieval_flickr.yaml --ckpt FINETUNED.h5 [--split test|val|all]
#ifndef VLMAE_CLI_FINETUNE_H
#define VLMAE_CLI_FINETUNE_H

int finetune_main(int argc, char **argv);  // vlmae finetune
int eval_main(int argc, char **argv);      // vlmae eval

#endif
