// peak.c: the table of dense peak FLOP/s (peak.h). Numbers: vendor data sheets, dense (the
// sparse tensor-core figures are twice these), SXM boost clocks unless the name says otherwise.
#include "train/peak.h"

#include <string.h>

typedef struct {
    const char *match;   // substring of the device name; the first matching row wins
    double bf16, fp32;   // TFLOP/s
} PeakRow;

// More specific names first (H100 PCIe / NVL before H100 SXM, GH200 before H200 is irrelevant:
// both are the same chip).
static const PeakRow rows[] = {
    {"H100 PCIe", 756, 51},  {"H100 NVL", 835, 60},   {"H200", 989, 67},      {"H100", 989, 67},
    {"H800", 989, 67},       {"B200", 2250, 80},      {"A100", 312, 19.5},    {"A800", 312, 19.5},
    {"L40S", 362, 91.6},     {"L40", 181, 90.5},      {"A40", 150, 37.4},     {"A10", 125, 31.2},
    {"RTX 6000 Ada", 364, 91.1}, {"RTX A6000", 155, 38.7}, {"RTX 4090", 165, 82.6}, {"RTX 3090", 71, 35.6},
};

int device_peak_flops(const char *name, int bf16, double *flops) {
    if (!name) return 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (strstr(name, rows[i].match)) {
            *flops = (bf16 ? rows[i].bf16 : rows[i].fp32) * 1e12;
            return 1;
        }
    return 0;
}
