// tokenize.h: `vlmae tokenize` (tokenize.c): the token ids and pieces of captions as the data
// loader sees them (same clean-up, WordPiece, [CLS], max length).
#ifndef VLMAE_TOKENIZE_H
#define VLMAE_TOKENIZE_H

// argv[0] is the subcommand name ("tokenize"). Returns the exit status: 0 ok, 1 error writing,
// 2 usage error or unreadable config / vocabulary.
int tokenize_main(int argc, char **argv);

#endif
