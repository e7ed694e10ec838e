/* fuzz_safetensors.c - libFuzzer target for st_parse_header.
 *
 * The input is treated as a whole safetensors file (8-byte length, JSON
 * header, data). On success the parsed header must satisfy the invariants
 * safetensors.h promises; a violation aborts (a finding).
 *
 * Built as a fuzzer with -DEMBEDQ_FUZZ=ON and clang (target fuzz_safetensors,
 * ctest fuzz.safetensors.run), and in every build as a replay driver over
 * corpus_safetensors/ (fuzz_replay.c, ctest fuzz.safetensors.replay).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_header h;
    char err[EQ_ERRLEN];
    if (st_parse_header(data, size, &h, err, sizeof err) != 0) {
        EQ_ASSERT(h.n_tensors == 0 && h.tensors == NULL);
        EQ_ASSERT(memchr(err, 0, sizeof err) != NULL);
        return 0;
    }
    EQ_ASSERT(h.data_start == 8 + h.header_len);
    EQ_ASSERT(h.data_start + h.data_len == size);
    for (size_t i = 0; i < h.n_tensors; i++) {
        const st_tensor *t = &h.tensors[i];
        EQ_ASSERT(t->begin <= t->end && t->end <= h.data_len);
        EQ_ASSERT(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
        uint64_t n = 1;
        for (int d = 0; d < t->ndim; d++) {
            EQ_ASSERT(t->shape[d] >= 0);
            n *= (uint64_t)t->shape[d];
        }
        EQ_ASSERT(n == t->numel);
        EQ_ASSERT(t->end - t->begin == t->numel * st_dtype_size(t->dtype));
        EQ_ASSERT(st_header_find(&h, t->name) == t);
        /* Touch the tensor's first and last byte: must be inside data. */
        if (t->end > t->begin) {
            volatile uint8_t x = data[h.data_start + t->begin];
            x = data[h.data_start + t->end - 1];
            (void)x;
        }
    }
    for (size_t i = 0; i < h.n_meta; i++)
        EQ_ASSERT(st_header_meta(&h, h.meta_keys[i]) != NULL);
    st_header_free(&h);
    return 0;
}
