// demo.h: `vlmae demo` (demo.c).
#ifndef VLMAE_DEMO_H
#define VLMAE_DEMO_H

int demo_main(int argc, char **argv);

#endif
