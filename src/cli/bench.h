// bench.h: `vlmae bench` (bench.c).
#ifndef VLMAE_BENCH_H
#define VLMAE_BENCH_H

int bench_main(int argc, char **argv);
double cpu_peak_flops(int threads);

#endif
