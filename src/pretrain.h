// pretrain.h: `vlmae pretrain` (pretrain.c) and what it shares with other commands.
#ifndef VLMAE_PRETRAIN_H
#define VLMAE_PRETRAIN_H

#include <stddef.h>

int pretrain_main(int argc, char **argv);

// The vocabulary file to use when the config leaves data.vocab empty: $VLMAE_VOCAB, else
// data_file_path("data/vocab.txt").
const char *default_vocab_path(void);
// A file shipped with vlmae (e.g. "configs/demo.yaml", "data/vocab.txt"): the installed copy under
// share/vlmae, else the source tree's, else the path as given (relative to the working directory).
const char *data_file_path(const char *rel);

#endif
