/* bf16_gemm.c - bf16 x bf16 -> fp32 GEMMs through oneDNN (bf16_gemm.h).
 *
 * Why a library: the bf16 dot-product instruction (vdpbf16ps) needs the
 * register blocking, packing and prefetching of a tuned GEMM kernel to get
 * near its rate; oneDNN's brgemm matmul does that (measured on this
 * project's machine in docs/engine.md "bf16 path": 4x our fp32 sgemm).
 * OpenBLAS's cblas_sbgemm would have been the other choice, but Debian's
 * OpenBLAS 0.3.21 is built without BUILD_BFLOAT16: the header declares
 * cblas_sbgemm and the library does not export it.
 *
 * oneDNN picks its kernel per shape at primitive creation; with a run-time
 * token count (DNNL_RUNTIME_DIM_VAL) version 2.6 falls back to its generic
 * "gemm:jit" at a quarter of the rate, so primitives are made per token
 * count and cached (LRU of CACHE_SLOTS). */
#include "bf16_gemm.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>

#include "common.h"

enum { CACHE_SLOTS = 64 };

typedef struct {
    int n, in, out; /* shape; n == 0: empty slot                      */
    bool acc;       /* y += (post-op sum) instead of y =              */
    uint64_t used;  /* last use (g->clock), for LRU eviction          */
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst; /* descriptors; data handles set per call */
} slot;

struct bf16_gemm {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    uint64_t clock;
    slot slots[CACHE_SLOTS];
};

const char *bf16_gemm_isa(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_avx512_core_amx:
        return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16:
        return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni:
        return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core:
        return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni:
        return "avx2_vnni";
    case dnnl_cpu_isa_avx2:
        return "avx2";
    default:
        return "older than avx2";
    }
}

bool bf16_gemm_supported(const char **why)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16")) {
        *why = "this CPU has no AVX512-BF16";
        return false;
    }
    /* The ISA bits of avx512_core_bf16 (AMX's include them). */
    const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    if ((isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) !=
        (unsigned)dnnl_cpu_isa_avx512_core_bf16) {
        *why = "oneDNN's ISA is limited below avx512_core_bf16 (ONEDNN_MAX_CPU_ISA?)";
        return false;
    }
    *why = NULL;
    return true;
}

bf16_gemm *bf16_gemm_new(char *err, size_t errlen)
{
    bf16_gemm *g = calloc(1, sizeof *g);
    if (!g) {
        eq_err(err, errlen, "bf16_gemm: out of memory");
        return NULL;
    }
    if (dnnl_engine_create(&g->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&g->stream, g->eng, dnnl_stream_default_flags) != dnnl_success) {
        eq_err(err, errlen, "bf16_gemm: oneDNN CPU engine/stream creation failed");
        bf16_gemm_free(g);
        return NULL;
    }
    return g;
}

static void slot_clear(slot *s)
{
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->src) dnnl_memory_destroy(s->src);
    if (s->wei) dnnl_memory_destroy(s->wei);
    if (s->dst) dnnl_memory_destroy(s->dst);
    *s = (slot){0};
}

void bf16_gemm_free(bf16_gemm *g)
{
    if (!g) return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        slot_clear(&g->slots[i]);
    if (g->stream) dnnl_stream_destroy(g->stream);
    if (g->eng) dnnl_engine_destroy(g->eng);
    free(g);
}

/* Makes the primitive and memory objects of s for its shape. */
static dnnl_status_t slot_make(bf16_gemm *g, slot *s)
{
    dnnl_memory_desc_t smd, wmd, dmd;
    const dnnl_dims_t sd = {s->n, s->in}, wd = {s->in, s->out}, dd = {s->n, s->out};
    dnnl_status_t st;
    if ((st = dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_bf16, dnnl_ab)) ||
        (st = dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_bf16, dnnl_ba)) ||
        (st = dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab)))
        return st;
    dnnl_matmul_desc_t md;
    if ((st = dnnl_matmul_desc_init(&md, &smd, &wmd, NULL, &dmd))) return st;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    if ((st = dnnl_primitive_attr_create(&attr))) return st;
    if (s->acc) {
        if (!(st = dnnl_post_ops_create(&po)) && !(st = dnnl_post_ops_append_sum(po, 1.0f)))
            st = dnnl_primitive_attr_set_post_ops(attr, po);
        if (po) dnnl_post_ops_destroy(po);
    }
    if (!st) st = dnnl_primitive_desc_create(&pd, &md, attr, g->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st) return st;
    st = dnnl_primitive_create(&s->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st) return st;
    if ((st = dnnl_memory_create(&s->src, &smd, g->eng, DNNL_MEMORY_NONE)) ||
        (st = dnnl_memory_create(&s->wei, &wmd, g->eng, DNNL_MEMORY_NONE)) ||
        (st = dnnl_memory_create(&s->dst, &dmd, g->eng, DNNL_MEMORY_NONE)))
        return st;
    return dnnl_success;
}

/* The slot for this shape: a cached one, or the least recently used one
 * remade. NULL with a message when oneDNN fails. */
static slot *slot_get(bf16_gemm *g, int n, int in, int out, bool acc, char *err, size_t errlen)
{
    slot *victim = &g->slots[0];
    for (int i = 0; i < CACHE_SLOTS; i++) {
        slot *s = &g->slots[i];
        if (s->n == n && s->in == in && s->out == out && s->acc == acc) {
            s->used = ++g->clock;
            return s;
        }
        if (s->used < victim->used) victim = s;
    }
    slot_clear(victim);
    *victim = (slot){.n = n, .in = in, .out = out, .acc = acc, .used = ++g->clock};
    dnnl_status_t st = slot_make(g, victim);
    if (st != dnnl_success) {
        slot_clear(victim);
        eq_err(err, errlen, "bf16_gemm: oneDNN matmul %d x %d x %d: status %d", n, out, in,
               (int)st);
        return NULL;
    }
    return victim;
}

int bf16_gemm_run(bf16_gemm *g, float *y, const uint16_t *x, const uint16_t *w, int n, int in,
                  int out, bool accumulate, char *err, size_t errlen)
{
    if (n < 1 || in < 1 || out < 1)
        return eq_err(err, errlen, "bf16_gemm: bad shape %d x %d x %d", n, out, in);
    slot *s = slot_get(g, n, in, out, accumulate, err, errlen);
    if (!s) return -1;
    dnnl_status_t st;
    if ((st = dnnl_memory_set_data_handle(s->src, (void *)x)) ||
        (st = dnnl_memory_set_data_handle(s->wei, (void *)w)) ||
        (st = dnnl_memory_set_data_handle(s->dst, y)))
        return eq_err(err, errlen, "bf16_gemm: oneDNN set_data_handle: status %d", (int)st);
    const dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC, s->src}, {DNNL_ARG_WEIGHTS, s->wei}, {DNNL_ARG_DST, s->dst}};
    if ((st = dnnl_primitive_execute(s->prim, g->stream, 3, args)) ||
        (st = dnnl_stream_wait(g->stream)))
        return eq_err(err, errlen, "bf16_gemm: oneDNN matmul %d x %d x %d failed: status %d", n,
                      out, in, (int)st);
    return 0;
}
