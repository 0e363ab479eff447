// synth.h: `vlmae synth` (synth.c): the command line of the synthetic dataset generator
// (data/synth.h).
#ifndef VLMAE_CLI_SYNTH_H
#define VLMAE_CLI_SYNTH_H

// `vlmae synth --out DIR [--seed N] [--images N] [--size PX] [--quality Q]`; --help prints usage.
// argv[0] is the subcommand name ("synth") or the program name. Returns the process exit status
// (0 ok, 1 error, 2 usage error).
int synth_main(int argc, char **argv);

#endif
