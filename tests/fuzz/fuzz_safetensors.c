// fuzz_safetensors.c: libFuzzer harness for the safetensors reader (src/train/safetensors.c): the
// input is a .safetensors file (header length, JSON header, data). Built and run by `make fuzz`
// (tests/fuzz/README.md). Checks beyond "no crash": st_open either fails with a message or returns
// tensors whose byte ranges lie inside the file and match their shapes, and every float tensor
// converts.
#include "fuzz_util.h"  // first: it defines _GNU_SOURCE

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "train/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64], err[1024];
    int fd = fuzz_file(data, size, path, sizeof path);
    SafeTensors st;
    if (st_open(&st, path, err, sizeof err) != 0) {
        fuzz_check_msg(err, sizeof err);
        fuzz_file_close(fd);
        return 0;
    }
    for (int i = 0; i < st.count; i++) {
        const StTensor *t = &st.t[i];
        if (t->begin > t->end || st.data_start + t->end > st.size) abort();
        if ((size_t)t->numel * (size_t)t->elem_size != t->end - t->begin) abort();
        if (st_find(&st, t->name) != t) abort();
        char shape[256];
        st_shape_str(t, shape, sizeof shape);
        if (t->numel <= (1 << 20)) {
            float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
            if (st_read_f32(&st, t, out, err, sizeof err) != 0) fuzz_check_msg(err, sizeof err);
            free(out);
        }
    }
    for (int i = 0; i < st.n_meta; i++)
        if (st_meta(&st, st.meta_keys[i]) == NULL) abort();
    st_close(&st);
    fuzz_file_close(fd);
    return 0;
}
