// export.h: `vlmae export` (export.c).
#ifndef VLMAE_EXPORT_H
#define VLMAE_EXPORT_H

int export_main(int argc, char **argv);

#endif
