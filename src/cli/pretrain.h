// pretrain.h: `vlmae pretrain` (pretrain.c) and what it shares with other commands.
#ifndef VLMAE_PRETRAIN_H
#define VLMAE_PRETRAIN_H

int pretrain_main(int argc, char **argv);

#endif
