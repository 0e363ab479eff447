// plot.h: `vlmae plot` (plot.c).
#ifndef VLMAE_PLOT_H
#define VLMAE_PLOT_H

int plot_main(int argc, char **argv);

#endif
