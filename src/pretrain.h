// pretrain.h: `vlmae pretrain` (pretrain.c) and what it shares with other commands.
#ifndef VLMAE_PRETRAIN_H
#define VLMAE_PRETRAIN_H

#include <stddef.h>

int pretrain_main(int argc, char **argv);

// The vocabulary file to use when the config leaves data.vocab empty: $VLMAE_VOCAB, the installed
// share/vlmae/vocab.txt, or the source tree's data/vocab.txt (running from a build tree).
const char *default_vocab_path(void);

#endif
