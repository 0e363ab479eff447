// pack.h: `vlmae pack FORMAT ...` (pack.c): the command line of the packer (data/pack.h).
#ifndef VLMAE_CLI_PACK_H
#define VLMAE_CLI_PACK_H

// argv[0] is the subcommand name ("pack"); argv[1] the format; options follow.
// Returns the process exit status: 0 done (skipped images are not an error), 1 failure,
// 2 usage error.
int pack_main(int argc, char **argv);

#endif
