// synth.h: the synthetic vision-language dataset (`vlmae synth`): coloured shapes on plain
// backgrounds with captions, region boxes and downstream-task annotations that truly describe
// the images, written as the JSON + JPEG files users have for the real datasets (ALBEF formats).
// Deterministic from the seed. The world and the files are documented in data/SYNTH.md. The
// command line, `vlmae synth`, is cli/synth.c.
#ifndef VLMAE_SYNTH_H
#define VLMAE_SYNTH_H

#include <stdint.h>

typedef struct {
    const char *out_dir;
    uint64_t seed;   // default 0
    int images;      // default 1000
    int size;        // image side in pixels, default 96
    int quality;     // JPEG quality, default 90
    int quiet;       // 1: no summary line on stdout
    int focal_probe; // 1: the focal-bias probe (data/SYNTH.md): the pre-training captions of a
                     // train image with large and small objects name only the large ones, and
                     // focal_probe.json captions mixed test images by their small objects. Default 0
} SynthOptions;

void synth_defaults(SynthOptions *o);
// Generate the dataset; returns 0, or -1 with a message on stderr.
int synth_generate(const SynthOptions *o);

#endif
