// datafiles.h: where vlmae finds the files it ships (configs, job scripts, the vocabulary), for
// every command: installed under share/vlmae, else in the source tree it was built from.
#ifndef VLMAE_DATAFILES_H
#define VLMAE_DATAFILES_H

// The vocabulary file to use when the config leaves data.vocab empty: $VLMAE_VOCAB, else
// data_file_path("data/vocab.txt").
const char *default_vocab_path(void);
// A file shipped with vlmae (e.g. "configs/demo.yaml", "data/vocab.txt"): the installed copy under
// share/vlmae, else the source tree's, else the path as given (relative to the working directory).
// The result lives in one of 4 rotating static buffers.
const char *data_file_path(const char *rel);

#endif
