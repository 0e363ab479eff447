// plot.h: `vlmae plot` (plot.c): a run's loss curves as a PNG, and its axis ticks.
#ifndef VLMAE_PLOT_H
#define VLMAE_PLOT_H

int plot_main(int argc, char **argv);

// Axis ticks from lo to hi: the multiples of a round step (1, 2 or 5 times a power of ten, and at
// least min_step: 1 for steps, so every tick is a whole step) that lie in [lo, hi], at most
// max_ticks of them (the smallest such step). Writes up to cap values in increasing order to
// ticks; returns how many. lo == hi gives the one tick lo.
int plot_ticks(double lo, double hi, int max_ticks, double min_step, double *ticks, int cap);

#endif
