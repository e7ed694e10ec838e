/* gpu_backend.c - the CUDA forward pass (see gpu_backend.h).
 *
 * Per batch of T tokens (x: fp32 residual stream; everything else bf16):
 *
 *   x = embed[ids]                                         eqk_embed_gather
 *   for each layer:
 *     xn  = RMSNorm(x (+= y of the previous layer)) * w_in  eqk_add_rmsnorm
 *     qkv = xn Wqkv^T               (fused q|k|v rows)      cuBLASLt
 *     qkv = RoPE(RMSNorm_head(q|k))  in place               eqk_qk_norm_rope
 *     att = causal GQA attention per packed sequence       eqk_attention
 *     y   = att Wo^T                                       cuBLASLt
 *     xn  = RMSNorm(x += y) * w_post                       eqk_add_rmsnorm
 *     gu  = xn Wgu^T                (fused gate|up rows)    cuBLASLt
 *     a   = silu(gate) * up                                eqk_swiglu
 *     y   = a Wd^T                                         cuBLASLt
 *   out = L2(trunc(RMSNorm(x + y)[last token] * w_final))   eqk_pool_normalize
 *
 * The residual adds are folded into the norm kernels; the residual stream
 * stays fp32 for the whole pass. Buffers are sized at open for max_tokens
 * tokens; qkv/att and gu/a share one scratch region (never live together).
 * The ops dispatch either to the CUDA kernels and cuBLASLt or, in twin
 * mode, to the CPU twins on host buffers: one plan, two executors.
 */
#include "gpu_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "twins.h"

#ifdef EMBEDQ_HAVE_CUDA
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "kernels.h"
#endif

/* The name this build answers to: "cuda", or "emu" where the file is
 * compiled a second time against the kernel emulator (EQK_EMU; see
 * gpu_backend.h): the same plan, kernels and cuBLASLt calls, with
 * kernels/emu/include's runtime, kernels and reference GEMM behind them. */
#ifdef EQK_EMU
#define GB_DEV "emu"
#else
#define GB_DEV "cuda"
#endif

#define ALIGN_BYTES  256  /* cuBLASLt's default operand alignment */
#define POOL_CHUNK   1024 /* sequences pooled + copied back per step */
#define GEMM_CACHE   512  /* cached cuBLASLt plans (m, n, k)        */
#define LT_WORKSPACE ((size_t)32 << 20)
#define HEADROOM     ((uint64_t)512 << 20) /* context, cuBLAS, fragmentation    */

typedef struct {
    eqk_bf16 *wqkv; /* (nh + 2 nkv) * hd, hidden */
    eqk_bf16 *wo;   /* hidden, nh * hd           */
    eqk_bf16 *wgu;  /* 2 * inter, hidden         */
    eqk_bf16 *wd;   /* hidden, inter             */
    float *attn_norm, *post_norm, *q_norm, *k_norm;
} gpu_layer;

#ifdef EMBEDQ_HAVE_CUDA
typedef struct {
    int m, n, k; /* m tokens, n outputs, k inputs; m == 0: empty slot */
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    size_t ws;
} gemm_plan;
#endif

/* Byte sizes of everything the backend holds, computed before allocating. */
typedef struct {
    uint64_t weights;
    uint64_t x, xn, y, scratch, qkv_off_att; /* activations                */
    uint64_t activations;
    uint64_t rope, meta, pool, lt; /* workspace and tables       */
    uint64_t workspace;
} mem_plan;

struct gpu_backend {
    bool twin;
    qw_config cfg;
    int max_tokens, max_seq_len;
    int nqkv, natt;
    mem_plan plan;

    unsigned char *wpool; /* device: all weights             */
    unsigned char *apool; /* device: activations + workspace */
    eqk_bf16 *embed;
    float *final_norm;
    gpu_layer *layers;
    float *x;
    eqk_bf16 *xn, *y, *qkv, *att, *gu, *act;
    float *rope;
    int32_t *d_meta; /* ids | pos | cu | dims | attention work     */
    float *d_pool;   /* POOL_CHUNK x hidden                        */
    int32_t *d_bad;  /* POOL_CHUNK                                 */
    int32_t *h_meta; /* pinned host staging for d_meta             */
    float *h_pool;   /* pinned host copy of d_pool                 */
    int32_t *h_bad;

    int64_t attn_blocks; /* attention blocks per layer of the last batch */
    bool failed;         /* a device error happened: no more work */
    char fail_msg[1024];
    int device;
    char device_name[128];
    uint64_t device_total;
#ifdef EMBEDQ_HAVE_CUDA
    cudaStream_t stream;
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t mm;
    void *lt_ws;
    gemm_plan plans[GEMM_CACHE];
#endif
};

static uint64_t align_up(uint64_t v)
{
    return (v + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES;
}

/* ---- errors --------------------------------------------------------------- */

#ifdef EMBEDQ_HAVE_CUDA
static void fail(gpu_backend *b, const char *what, const char *detail, const char *call,
                 const char *file, int line)
{
    if (b->failed) return; /* keep the first error: later ones follow from it */
    snprintf(b->fail_msg, sizeof b->fail_msg, "%s %s in %s at %s:%d", what, detail, call, file,
             line);
    b->failed = true;
    eq_log(EQ_LOG_ERROR, GB_DEV " backend: %s; this engine takes no more work", b->fail_msg);
}

static int cu_check(gpu_backend *b, cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess) return 0;
    char detail[400];
    snprintf(detail, sizeof detail, "%s (%s)", cudaGetErrorName(e), cudaGetErrorString(e));
    fail(b, "CUDA error", detail, call, file, line);
    return -1;
}
static int lt_check(gpu_backend *b, cublasStatus_t s, const char *call, const char *file, int line)
{
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    char detail[400];
    snprintf(detail, sizeof detail, "%s (%s)", cublasLtGetStatusName(s),
             cublasLtGetStatusString(s));
    fail(b, "cuBLASLt error", detail, call, file, line);
    return -1;
}
#define CU(b, call) cu_check((b), (call), #call, __FILE__, __LINE__)
#define LT(b, call) lt_check((b), (call), #call, __FILE__, __LINE__)
/* One op: the twin statement in twin mode, else the kernel launch. */
#define OP(b, twin_stmt, cuda_call) ((b)->twin ? ((twin_stmt), 0) : CU((b), (cuda_call)))
#else
#define OP(b, twin_stmt, cuda_call) ((twin_stmt), 0)
#endif

/* ---- memory ---------------------------------------------------------------- */

static void *dev_alloc(gpu_backend *b, uint64_t bytes)
{
    if (bytes == 0) bytes = ALIGN_BYTES;
    if (b->twin) return aligned_alloc(ALIGN_BYTES, align_up(bytes));
#ifdef EMBEDQ_HAVE_CUDA
    void *p = NULL;
    if (CU(b, cudaMalloc(&p, bytes)) != 0) return NULL;
    return p;
#else
    return NULL;
#endif
}

static void dev_free(gpu_backend *b, void *p)
{
    if (!p) return;
    if (b->twin) {
        free(p);
        return;
    }
#ifdef EMBEDQ_HAVE_CUDA
    cudaFree(p);
#endif
}

static void *host_alloc(gpu_backend *b, uint64_t bytes)
{
    if (b->twin) return malloc(bytes ? bytes : 1);
#ifdef EMBEDQ_HAVE_CUDA
    void *p = NULL;
    if (CU(b, cudaMallocHost(&p, bytes ? bytes : 1)) != 0) return NULL;
    return p;
#else
    return NULL;
#endif
}

static void host_free(gpu_backend *b, void *p)
{
    if (!p) return;
    if (b->twin) {
        free(p);
        return;
    }
#ifdef EMBEDQ_HAVE_CUDA
    cudaFreeHost(p);
#endif
}

/* Asynchronous on the stream in CUDA mode (src must stay valid until the
 * next sync; pinned for overlap, pageable works too). */
static int to_dev(gpu_backend *b, void *dst, const void *src, size_t bytes)
{
    if (b->twin) {
        memcpy(dst, src, bytes);
        return 0;
    }
#ifdef EMBEDQ_HAVE_CUDA
    return CU(b, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, b->stream));
#else
    return -1;
#endif
}

static int to_host(gpu_backend *b, void *dst, const void *src, size_t bytes)
{
    if (b->twin) {
        memcpy(dst, src, bytes);
        return 0;
    }
#ifdef EMBEDQ_HAVE_CUDA
    return CU(b, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, b->stream));
#else
    return -1;
#endif
}

static int sync_stream(gpu_backend *b)
{
    if (b->twin) return 0;
#ifdef EMBEDQ_HAVE_CUDA
    return CU(b, cudaStreamSynchronize(b->stream));
#else
    return -1;
#endif
}

/* ---- the memory plan ------------------------------------------------------- */

static uint64_t layer_weight_bytes(const qw_config *c)
{
    const uint64_t h = (uint64_t)c->hidden, hd = (uint64_t)c->head_dim;
    const uint64_t nqkv = (uint64_t)(c->n_heads + 2 * c->n_kv_heads) * hd;
    const uint64_t natt = (uint64_t)c->n_heads * hd, in = (uint64_t)c->intermediate;
    return align_up(nqkv * h * 2) + align_up(h * natt * 2) + align_up(2 * in * h * 2) +
           align_up(h * in * 2) + 2 * align_up(h * 4) + 2 * align_up(hd * 4);
}

static mem_plan make_plan(const qw_config *c, int max_tokens, int max_seq_len, bool twin)
{
    mem_plan p = {0};
    const uint64_t t = (uint64_t)max_tokens, h = (uint64_t)c->hidden;
    const uint64_t hd = (uint64_t)c->head_dim, in = (uint64_t)c->intermediate;
    const uint64_t nqkv = (uint64_t)(c->n_heads + 2 * c->n_kv_heads) * hd;
    const uint64_t natt = (uint64_t)c->n_heads * hd;
    p.weights = align_up((uint64_t)c->vocab_rows * h * 2) + align_up(h * 4) +
                (uint64_t)c->n_layers * layer_weight_bytes(c);
    p.x = align_up(t * h * 4);
    p.xn = align_up(t * h * 2);
    p.y = align_up(t * h * 2);
    p.qkv_off_att = align_up(t * nqkv * 2);
    uint64_t attn_side = p.qkv_off_att + align_up(t * natt * 2);
    uint64_t mlp_side = align_up(t * 2 * in * 2) + align_up(t * in * 2);
    p.scratch = attn_side > mlp_side ? attn_side : mlp_side;
    p.activations = p.x + p.xn + p.y + p.scratch;
    p.rope = align_up((uint64_t)max_seq_len * (hd / 2) * 2 * 4);
    /* ids | pos | cu_seqlens | dims | pad | attention work list (<= t items
     * of 2, at an even offset: the kernel reads an item as one int2) */
    p.meta = align_up((6 * t + 2) * 4);
    p.pool = align_up((uint64_t)POOL_CHUNK * h * 4) + align_up(POOL_CHUNK * 4);
    p.lt = twin ? 0 : LT_WORKSPACE;
    p.workspace = p.rope + p.meta + p.pool + p.lt;
    return p;
}

static double gib(uint64_t v)
{
    return (double)v / (double)(1ull << 30);
}

/* ---- weights --------------------------------------------------------------- */

/* Copies weight w (any dtype) as bf16 to dst at element offset 0. */
static int put_bf16(gpu_backend *b, eqk_bf16 *dst, const qw_weight *w, char *err, size_t errlen)
{
    const size_t n = (size_t)w->rows * (size_t)w->cols;
    if (w->dtype == EQ_BF16) {
        if (to_dev(b, dst, w->data, n * 2) != 0) goto dev_err;
        return sync_stream(b) == 0 ? 0 : -1; /* pageable source: finish now */
    }
    eqk_bf16 *tmp = malloc(n * 2);
    float *row = malloc((size_t)w->cols * 4);
    if (!tmp || !row) {
        free(tmp);
        free(row);
        return eq_err(err, errlen, "out of host memory converting weights");
    }
    const size_t es = eq_dtype_size(w->dtype);
    for (int64_t r = 0; r < w->rows; r++) {
        eq_to_f32(row, (const char *)w->data + (size_t)r * (size_t)w->cols * es, w->dtype,
                  (size_t)w->cols);
        for (int64_t c = 0; c < w->cols; c++)
            tmp[(size_t)r * (size_t)w->cols + (size_t)c] = eqt_f32_to_bf16(row[c]);
    }
    free(row);
    int rc = to_dev(b, dst, tmp, n * 2);
    if (rc == 0) rc = sync_stream(b);
    free(tmp);
    if (rc != 0) goto dev_err;
    return 0;
dev_err:
    return eq_err(err, errlen, "uploading weights: %s", b->fail_msg);
}

static int put_f32(gpu_backend *b, float *dst, const qw_weight *w, char *err, size_t errlen)
{
    const size_t n = (size_t)w->rows * (size_t)w->cols;
    float *tmp = malloc(n * 4);
    if (!tmp) return eq_err(err, errlen, "out of host memory converting weights");
    eq_to_f32(tmp, w->data, w->dtype, n);
    int rc = to_dev(b, dst, tmp, n * 4);
    if (rc == 0) rc = sync_stream(b);
    free(tmp);
    if (rc != 0) return eq_err(err, errlen, "uploading weights: %s", b->fail_msg);
    return 0;
}

static int upload_weights(gpu_backend *b, const qw_model *m, char *err, size_t errlen)
{
    const qw_config *c = &b->cfg;
    const uint64_t h = (uint64_t)c->hidden, hd = (uint64_t)c->head_dim;
    const uint64_t in = (uint64_t)c->intermediate, natt = (uint64_t)c->n_heads * hd;
    const uint64_t nkv = (uint64_t)c->n_kv_heads * hd;
    unsigned char *p = b->wpool;
#define TAKE(dst, type, bytes)                                                                     \
    do {                                                                                           \
        (dst) = (type *)p;                                                                         \
        p += align_up(bytes);                                                                      \
    } while (0)
    TAKE(b->embed, eqk_bf16, (uint64_t)c->vocab_rows * h * 2);
    TAKE(b->final_norm, float, h * 4);
    if (put_bf16(b, b->embed, &m->embed, err, errlen) != 0) return -1;
    if (put_f32(b, b->final_norm, &m->final_norm, err, errlen) != 0) return -1;
    for (int l = 0; l < c->n_layers; l++) {
        gpu_layer *g = &b->layers[l];
        const qw_layer *w = &m->layers[l];
        TAKE(g->wqkv, eqk_bf16, (uint64_t)b->nqkv * h * 2);
        TAKE(g->wo, eqk_bf16, h * natt * 2);
        TAKE(g->wgu, eqk_bf16, 2 * in * h * 2);
        TAKE(g->wd, eqk_bf16, h * in * 2);
        TAKE(g->attn_norm, float, h * 4);
        TAKE(g->post_norm, float, h * 4);
        TAKE(g->q_norm, float, hd * 4);
        TAKE(g->k_norm, float, hd * 4);
        /* Fused rows: q, then k, then v; gate, then up. */
        if (put_bf16(b, g->wqkv, &w->q, err, errlen) != 0 ||
            put_bf16(b, g->wqkv + natt * h, &w->k, err, errlen) != 0 ||
            put_bf16(b, g->wqkv + (natt + nkv) * h, &w->v, err, errlen) != 0 ||
            put_bf16(b, g->wo, &w->o, err, errlen) != 0 ||
            put_bf16(b, g->wgu, &w->gate, err, errlen) != 0 ||
            put_bf16(b, g->wgu + in * h, &w->up, err, errlen) != 0 ||
            put_bf16(b, g->wd, &w->down, err, errlen) != 0 ||
            put_f32(b, g->attn_norm, &w->attn_norm, err, errlen) != 0 ||
            put_f32(b, g->post_norm, &w->post_norm, err, errlen) != 0 ||
            put_f32(b, g->q_norm, &w->q_norm, err, errlen) != 0 ||
            put_f32(b, g->k_norm, &w->k_norm, err, errlen) != 0)
            return -1;
    }
#undef TAKE
    EQ_ASSERT((uint64_t)(p - b->wpool) == b->plan.weights);
    return 0;
}

/* ---- GEMM ------------------------------------------------------------------ */

#ifdef EMBEDQ_HAVE_CUDA
static void plan_clear(gemm_plan *g)
{
    if (g->la) cublasLtMatrixLayoutDestroy(g->la);
    if (g->lb) cublasLtMatrixLayoutDestroy(g->lb);
    if (g->lc) cublasLtMatrixLayoutDestroy(g->lc);
    memset(g, 0, sizeof *g);
}

/* The cuBLASLt plan for out(m, n) = a(m, k) w(n, k)^T, row-major. In
 * cuBLAS's column-major terms: D (n x m, ld n) = op(W) (n x k) * A (k x m),
 * W stored k x n (ld k) and transposed: the "TN" layout tensor cores like.
 * Heuristics are asked once per shape and cached. */
static gemm_plan *gemm_plan_get(gpu_backend *b, int m, int n, int k)
{
    uint64_t hsh = ((uint64_t)m * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)n * 0xC2B2AE3D27D4EB4Full) ^
                   ((uint64_t)k * 0x165667B19E3779F9ull);
    size_t slot = (size_t)(hsh >> 17) % GEMM_CACHE;
    for (int probe = 0; probe < 8; probe++) {
        gemm_plan *g = &b->plans[(slot + (size_t)probe) % GEMM_CACHE];
        if (g->m == m && g->n == n && g->k == k) return g;
        if (g->m == 0) {
            slot = (slot + (size_t)probe) % GEMM_CACHE;
            goto fill;
        }
    }
    plan_clear(&b->plans[slot]); /* eight probes full: replace the first */
fill:;
    gemm_plan *g = &b->plans[slot];
    if (LT(b, cublasLtMatrixLayoutCreate(&g->la, CUDA_R_16BF, (uint64_t)k, (uint64_t)n, k)) ||
        LT(b, cublasLtMatrixLayoutCreate(&g->lb, CUDA_R_16BF, (uint64_t)k, (uint64_t)m, k)) ||
        LT(b, cublasLtMatrixLayoutCreate(&g->lc, CUDA_R_16BF, (uint64_t)n, (uint64_t)m, n))) {
        plan_clear(g);
        return NULL;
    }
    cublasLtMatmulPreference_t pref = NULL;
    size_t ws = LT_WORKSPACE;
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (LT(b, cublasLtMatmulPreferenceCreate(&pref)) ||
        LT(b, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                   &ws, sizeof ws)) ||
        LT(b, cublasLtMatmulAlgoGetHeuristic(b->lt, b->mm, g->la, g->lb, g->lc, g->lc, pref, 1,
                                             &res, &found))) {
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
        plan_clear(g);
        return NULL;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    if (found < 1) {
        char call[96];
        snprintf(call, sizeof call, "cublasLtMatmulAlgoGetHeuristic(m=%d n=%d k=%d)", m, n, k);
        fail(b, "cuBLASLt error", "no algorithm for this bf16 GEMM", call, __FILE__, __LINE__);
        plan_clear(g);
        return NULL;
    }
    g->algo = res.algo;
    g->ws = res.workspaceSize;
    g->m = m;
    g->n = n;
    g->k = k;
    return g;
}
#endif

static int gemm(gpu_backend *b, const eqk_bf16 *a, const eqk_bf16 *w, int m, int n, int k,
                eqk_bf16 *out)
{
    if (b->twin) {
        eqt_gemm_bf16(a, w, m, n, k, out);
        return 0;
    }
#ifdef EMBEDQ_HAVE_CUDA
    gemm_plan *g = gemm_plan_get(b, m, n, k);
    if (!g) return -1;
    const float one = 1.f, zero = 0.f;
    return LT(b, cublasLtMatmul(b->lt, b->mm, &one, w, g->la, a, g->lb, &zero, out, g->lc, out,
                                g->lc, &g->algo, b->lt_ws, g->ws, b->stream));
#else
    return -1;
#endif
}

/* ---- open / close ---------------------------------------------------------- */

int gpu_device_count(void)
{
#ifdef EMBEDQ_HAVE_CUDA
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no driver" state */
        return 0;
    }
    return n;
#else
    return 0;
#endif
}

bool gpu_backend_compiled(void)
{
#ifdef EMBEDQ_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

#ifdef EMBEDQ_HAVE_CUDA
static int cuda_open(gpu_backend *b, char *err, size_t errlen)
{
    b->device = 0; /* pick GPUs with CUDA_VISIBLE_DEVICES */
    if (gpu_device_count() < 1)
        return eq_err(err, errlen,
                      "device 'cuda': no CUDA GPU is visible (driver missing, "
                      "CUDA_VISIBLE_DEVICES empty, or no GPU); use --device cpu");
    struct cudaDeviceProp prop;
    if (CU(b, cudaSetDevice(b->device)) || CU(b, cudaGetDeviceProperties(&prop, b->device)))
        return eq_err(err, errlen, "device '" GB_DEV "': %s", b->fail_msg);
    snprintf(b->device_name, sizeof b->device_name, "%.127s", prop.name);
    b->device_total = prop.totalGlobalMem;
    if (prop.major < 8)
        return eq_err(err, errlen,
                      "device '" GB_DEV "': %s is sm_%d%d; the CUDA backend needs sm_80 or newer "
                      "(A100, A10, L4, H100); use --device cpu",
                      prop.name, prop.major, prop.minor);
    size_t free_b = 0, total_b = 0;
    if (CU(b, cudaMemGetInfo(&free_b, &total_b)))
        return eq_err(err, errlen, "device '" GB_DEV "': %s", b->fail_msg);
    const mem_plan *p = &b->plan;
    const uint64_t need = p->weights + p->activations + p->workspace;
    eq_log(EQ_LOG_INFO,
           GB_DEV
           ": %s (sm_%d%d, %d SMs), memory plan: weights %.2f GiB + activations %.2f GiB "
           "(%d tokens per batch) + workspace %.2f GiB = %.2f GiB; %.2f GiB free of %.2f GiB",
           prop.name, prop.major, prop.minor, prop.multiProcessorCount, gib(p->weights),
           gib(p->activations), b->max_tokens, gib(p->workspace), gib(need), gib(free_b),
           gib(total_b));
    if (need + HEADROOM > free_b)
        return eq_err(err, errlen,
                      "device '" GB_DEV "': the model does not fit on %s: weights %.2f GiB + "
                      "activations %.2f GiB for %d tokens per batch + workspace %.2f GiB + "
                      "%.2f GiB headroom = %.2f GiB, but only %.2f GiB of %.2f GiB is free; "
                      "lower --batch-tokens, free the GPU, or use a larger one",
                      prop.name, gib(p->weights), gib(p->activations), b->max_tokens,
                      gib(p->workspace), gib(HEADROOM), gib(need + HEADROOM), gib(free_b),
                      gib(total_b));
    cublasComputeType_t ct = CUBLAS_COMPUTE_32F;
    cudaDataType_t st = CUDA_R_32F;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    if (CU(b, eqk_init()) || CU(b, cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking)) ||
        LT(b, cublasLtCreate(&b->lt)) || LT(b, cublasLtMatmulDescCreate(&b->mm, ct, st)) ||
        LT(b, cublasLtMatmulDescSetAttribute(b->mm, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta)) ||
        LT(b, cublasLtMatmulDescSetAttribute(b->mm, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb)) ||
        CU(b, cudaMalloc(&b->lt_ws, LT_WORKSPACE)))
        return eq_err(err, errlen, "device '" GB_DEV "': %s", b->fail_msg);
    return 0;
}
#endif

gpu_backend *gpu_backend_new(const qw_model *m, int max_tokens, int max_seq_len, bool twin,
                             char *err, size_t errlen)
{
    const qw_config *c = &m->cfg;
    if (c->head_dim != 32 && c->head_dim != 64 && c->head_dim != 128) {
        eq_err(err, errlen, "%s backend: head_dim %d is not supported (32, 64 or 128)",
               twin ? "twin" : GB_DEV, c->head_dim);
        return NULL;
    }
    if (c->hidden % 8 || c->intermediate % 8 || c->n_heads % c->n_kv_heads) {
        eq_err(err, errlen,
               "%s backend: hidden_size and intermediate_size must be multiples of 8 and "
               "num_attention_heads a multiple of num_key_value_heads",
               twin ? "twin" : GB_DEV);
        return NULL;
    }
#ifndef EMBEDQ_HAVE_CUDA
    if (!twin) {
        eq_err(err, errlen,
               "device 'cuda': this embedq was built without the CUDA backend (no CUDA toolkit "
               "at build time); use --device cpu");
        return NULL;
    }
#endif
    gpu_backend *b = calloc(1, sizeof *b);
    if (!b) {
        eq_err(err, errlen, "out of memory");
        return NULL;
    }
    b->twin = twin;
    b->cfg = *c;
    b->max_tokens = max_tokens;
    b->max_seq_len = max_seq_len;
    b->nqkv = (c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
    b->natt = c->n_heads * c->head_dim;
    b->device = -1;
    b->plan = make_plan(c, max_tokens, max_seq_len, twin);
    if (twin) snprintf(b->device_name, sizeof b->device_name, "CPU twins of the CUDA kernels");
#ifdef EMBEDQ_HAVE_CUDA
    if (!twin && cuda_open(b, err, errlen) != 0) goto fail;
#endif
    b->layers = calloc((size_t)c->n_layers, sizeof *b->layers);
    b->wpool = dev_alloc(b, b->plan.weights);
    b->apool = dev_alloc(b, b->plan.activations + b->plan.workspace - b->plan.lt);
    b->h_meta = host_alloc(b, b->plan.meta);
    b->h_pool = host_alloc(b, (uint64_t)POOL_CHUNK * (uint64_t)c->hidden * 4);
    b->h_bad = host_alloc(b, POOL_CHUNK * 4);
    if (!b->layers || !b->wpool || !b->apool || !b->h_meta || !b->h_pool || !b->h_bad) {
        if (b->failed)
            eq_err(err, errlen, "device '" GB_DEV "': allocating %.2f GiB: %s",
                   gib(b->plan.weights + b->plan.activations + b->plan.workspace), b->fail_msg);
        else
            eq_err(err, errlen, "out of memory allocating the %s backend's buffers",
                   twin ? "twin" : GB_DEV);
        goto fail;
    }
    {
        const mem_plan *p = &b->plan;
        unsigned char *q = b->apool;
        b->x = (float *)q;
        q += p->x;
        b->xn = (eqk_bf16 *)q;
        q += p->xn;
        b->y = (eqk_bf16 *)q;
        q += p->y;
        b->qkv = (eqk_bf16 *)q;
        b->att = (eqk_bf16 *)(q + p->qkv_off_att);
        b->gu = (eqk_bf16 *)q;
        b->act =
            (eqk_bf16 *)(q + align_up((uint64_t)max_tokens * 2 * (uint64_t)c->intermediate * 2));
        q += p->scratch;
        b->rope = (float *)q;
        q += p->rope;
        b->d_meta = (int32_t *)q;
        q += p->meta;
        b->d_pool = (float *)q;
        q += align_up((uint64_t)POOL_CHUNK * (uint64_t)c->hidden * 4);
        b->d_bad = (int32_t *)q;
    }
    if (upload_weights(b, m, err, errlen) != 0) goto fail;
    {
        const size_t n = (size_t)max_seq_len * (size_t)(c->head_dim / 2) * 2;
        float *tab = malloc(n * 4);
        if (!tab) {
            eq_err(err, errlen, "out of memory");
            goto fail;
        }
        eqt_rope_table(tab, max_seq_len, c->head_dim, c->rope_theta);
        int rc = to_dev(b, b->rope, tab, n * 4);
        if (rc == 0) rc = sync_stream(b);
        free(tab);
        if (rc != 0) {
            eq_err(err, errlen, "uploading the RoPE table: %s", b->fail_msg);
            goto fail;
        }
    }
    return b;
fail:
    gpu_backend_free(b);
    return NULL;
}

void gpu_backend_free(gpu_backend *b)
{
    if (!b) return;
#ifdef EMBEDQ_HAVE_CUDA
    if (!b->twin && b->stream) cudaStreamSynchronize(b->stream);
    if (!b->twin) {
        for (int i = 0; i < GEMM_CACHE; i++)
            if (b->plans[i].m) plan_clear(&b->plans[i]);
    }
#endif
    dev_free(b, b->wpool);
    dev_free(b, b->apool);
    host_free(b, b->h_meta);
    host_free(b, b->h_pool);
    host_free(b, b->h_bad);
    free(b->layers);
#ifdef EMBEDQ_HAVE_CUDA
    if (!b->twin) {
        if (b->lt_ws) cudaFree(b->lt_ws);
        if (b->mm) cublasLtMatmulDescDestroy(b->mm);
        if (b->lt) cublasLtDestroy(b->lt);
        if (b->stream) cudaStreamDestroy(b->stream);
    }
#endif
    free(b);
}

/* ---- the forward pass ------------------------------------------------------ */

static int forward(gpu_backend *b, int T, const int32_t *d_ids, const int32_t *d_pos,
                   const int32_t *d_cu, int n_seqs, int max_len, const int32_t *d_work, int n_work)
{
    const qw_config *c = &b->cfg;
    const int H = c->hidden, I = c->intermediate, hd = c->head_dim;
    const int nh = c->n_heads, nkv = c->n_kv_heads;
    const float eps = c->rms_eps;
    const int32_t *h_cu = b->h_meta + 2 * T; /* host copy, for the twin attention */
    (void)h_cu;                              /* each is used by one of the two executors only */
    (void)d_cu;
    (void)max_len;
    (void)d_work;
    (void)n_work;

    if (OP(b, eqt_embed_gather(b->embed, d_ids, T, H, b->x),
           eqk_embed_gather(b->embed, d_ids, T, H, b->x, b->stream)))
        return -1;
    for (int l = 0; l < c->n_layers; l++) {
        const gpu_layer *g = &b->layers[l];
        const eqk_bf16 *y_prev = l == 0 ? NULL : b->y;
        if (OP(b, eqt_add_rmsnorm(b->x, y_prev, g->attn_norm, T, H, eps, b->xn),
               eqk_add_rmsnorm(b->x, y_prev, g->attn_norm, T, H, eps, b->xn, b->stream)) ||
            gemm(b, b->xn, g->wqkv, T, b->nqkv, H, b->qkv) ||
            OP(b,
               eqt_qk_norm_rope(b->qkv, d_pos, T, nh, nkv, hd, g->q_norm, g->k_norm, eps, b->rope),
               eqk_qk_norm_rope(b->qkv, d_pos, T, nh, nkv, hd, g->q_norm, g->k_norm, eps, b->rope,
                                b->stream)) ||
            OP(b, eqt_attention(b->qkv, h_cu, n_seqs, max_len, nh, nkv, hd, b->att),
               eqk_attention(b->qkv, d_cu, d_work, n_work, nh, nkv, hd, b->att, b->stream)) ||
            gemm(b, b->att, g->wo, T, H, b->natt, b->y) ||
            OP(b, eqt_add_rmsnorm(b->x, b->y, g->post_norm, T, H, eps, b->xn),
               eqk_add_rmsnorm(b->x, b->y, g->post_norm, T, H, eps, b->xn, b->stream)) ||
            gemm(b, b->xn, g->wgu, T, 2 * I, H, b->gu) ||
            OP(b, eqt_swiglu(b->gu, T, I, b->act), eqk_swiglu(b->gu, T, I, b->act, b->stream)) ||
            gemm(b, b->act, g->wd, T, H, I, b->y))
            return -1;
    }
    return 0;
}

int gpu_backend_embed(gpu_backend *b, const int32_t *ids, const int32_t *cu_seqlens, int n_seqs,
                      const int *dims, float *out, char *err, size_t errlen)
{
    if (b->failed)
        return eq_err(err, errlen, GB_DEV " backend stopped after an earlier error: %s",
                      b->fail_msg);
    const int H = b->cfg.hidden;
    if (n_seqs < 1 || cu_seqlens[0] != 0)
        return eq_err(err, errlen, "%s backend: malformed batch", b->twin ? "twin" : GB_DEV);
    const int T = cu_seqlens[n_seqs];
    if (T < n_seqs || T > b->max_tokens)
        return eq_err(err, errlen, "%s backend: batch of %d tokens outside 1..%d",
                      b->twin ? "twin" : GB_DEV, T, b->max_tokens);
#ifdef EMBEDQ_HAVE_CUDA
    if (!b->twin && CU(b, cudaSetDevice(b->device))) return eq_err(err, errlen, "%s", b->fail_msg);
#endif

    /* Batch metadata, staged in one pinned buffer: ids | pos | cu | dims |
     * the attention work list (eqk_attention_work: (sequence, query block)
     * items, longest first; at most T of them). */
    int32_t *h_ids = b->h_meta, *h_pos = h_ids + T, *h_cu = h_pos + T, *h_dims = h_cu + n_seqs + 1;
    memcpy(h_ids, ids, (size_t)T * 4);
    int max_len = 0;
    for (int s = 0; s < n_seqs; s++) {
        const int a = cu_seqlens[s], e = cu_seqlens[s + 1];
        if (e <= a || e - a > b->max_seq_len)
            return eq_err(err, errlen, "%s backend: sequence %d: length %d outside 1..%d",
                          b->twin ? "twin" : GB_DEV, s, e - a, b->max_seq_len);
        if (e - a > max_len) max_len = e - a;
        for (int i = a; i < e; i++)
            h_pos[i] = i - a;
        const int d = dims && dims[s] ? dims[s] : H;
        h_dims[s] = d < 1 || d > H ? H : d;
    }
    memcpy(h_cu, cu_seqlens, (size_t)(n_seqs + 1) * 4);
    const size_t work_off = (size_t)(2 * T + 2 * n_seqs + 2); /* even: 8-byte aligned */
    int32_t *h_work = b->h_meta + work_off;
    h_work[-1] = 0; /* the pad */
    const int n_work = eqk_attention_work(h_cu, n_seqs, h_work);
    b->attn_blocks = (int64_t)n_work * b->cfg.n_heads;
    const size_t meta_n = work_off + 2 * (size_t)n_work;
    int32_t *d_ids = b->d_meta, *d_pos = d_ids + T, *d_cu = d_pos + T, *d_dims = d_cu + n_seqs + 1;
    int32_t *d_work = b->d_meta + work_off;
    (void)d_dims; /* read by the CUDA pool kernel only */
    if (to_dev(b, b->d_meta, b->h_meta, meta_n * 4) != 0) goto dev_err;

    if (forward(b, T, d_ids, d_pos, d_cu, n_seqs, max_len, d_work, n_work) != 0) goto dev_err;

    /* Pool in chunks so the pinned copy-back buffer stays small. */
    for (int s0 = 0; s0 < n_seqs; s0 += POOL_CHUNK) {
        const int cnt = n_seqs - s0 < POOL_CHUNK ? n_seqs - s0 : POOL_CHUNK;
        if (OP(b,
               eqt_pool_normalize(b->x, b->y, b->final_norm, h_cu + s0, h_dims + s0, cnt, H,
                                  b->cfg.rms_eps, b->d_pool, b->d_bad),
               eqk_pool_normalize(b->x, b->y, b->final_norm, d_cu + s0, d_dims + s0, cnt, H,
                                  b->cfg.rms_eps, b->d_pool, b->d_bad, b->stream)) ||
            to_host(b, b->h_pool, b->d_pool, (size_t)cnt * (size_t)H * 4) ||
            to_host(b, b->h_bad, b->d_bad, (size_t)cnt * 4) || sync_stream(b))
            goto dev_err;
        for (int i = 0; i < cnt; i++)
            if (b->h_bad[i])
                return eq_err(err, errlen,
                              "%s backend: sequence %d: non-finite hidden state (overflow)",
                              b->twin ? "twin" : GB_DEV, s0 + i);
        memcpy(out + (size_t)s0 * (size_t)H, b->h_pool, (size_t)cnt * (size_t)H * 4);
    }
    return 0;
dev_err:
    return eq_err(err, errlen, "%s", b->failed ? b->fail_msg : GB_DEV " backend: device error");
}

/* ---- info and the GEMM rate ------------------------------------------------ */

const char *gpu_backend_fatal(const gpu_backend *b)
{
    return b->failed ? b->fail_msg : NULL;
}

void gpu_backend_info(const gpu_backend *b, eq_info *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->backend, sizeof info->backend, "%s", b->twin ? "twin" : GB_DEV);
    snprintf(info->device_name, sizeof info->device_name, "%s", b->device_name);
    info->device_index = b->device;
    info->weight_bytes = b->plan.weights;
    info->activation_bytes = b->plan.activations;
    info->workspace_bytes = b->plan.workspace;
    info->attention_blocks = b->attn_blocks;
#ifdef EMBEDQ_HAVE_CUDA
    if (!b->twin) {
        size_t f = 0, t = 0;
        if (cudaMemGetInfo(&f, &t) == cudaSuccess) {
            info->device_total = t;
            info->device_used = t - f;
        } else {
            cudaGetLastError();
            info->device_total = b->device_total;
        }
    }
#endif
}

#ifdef EMBEDQ_HAVE_CUDA
static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}
#endif

double gpu_backend_gemm_tflops(gpu_backend *b, int n, int reps, char *err, size_t errlen)
{
    if (b->twin) return eq_err(err, errlen, "the GEMM rate is measured on CUDA devices only");
#ifdef EQK_EMU
    (void)n;
    (void)reps;
    return eq_err(err, errlen, "the GEMM rate is not measured on the emulator");
#endif
#ifdef EMBEDQ_HAVE_CUDA
    if (b->failed)
        return eq_err(err, errlen, GB_DEV " backend stopped after an earlier error: %s",
                      b->fail_msg);
    if (n < 256 || reps < 1)
        return eq_err(err, errlen, "GEMM size %d / reps %d too small", n, reps);
    const size_t elems = (size_t)n * (size_t)n;
    eqk_bf16 *h = malloc(elems * 2);
    float *times = malloc(sizeof(float) * (size_t)reps);
    eqk_bf16 *d[3] = {NULL, NULL, NULL};
    cudaEvent_t ev0 = NULL, ev1 = NULL;
    double result = -1;
    if (!h || !times) {
        eq_err(err, errlen, "out of memory");
        goto done;
    }
    /* Random data (xorshift, N(0,1)-ish by summing uniforms): never zeros,
     * which run faster than real data. */
    uint64_t st = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < elems; i++) {
        float u = 0;
        for (int j = 0; j < 3; j++) {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            u += (float)(st >> 40) / (float)(1 << 24) - 0.5f;
        }
        h[i] = eqt_f32_to_bf16(u);
    }
    for (int i = 0; i < 3; i++)
        if (CU(b, cudaMalloc((void **)&d[i], elems * 2))) goto dev_err;
    if (to_dev(b, d[0], h, elems * 2) || to_dev(b, d[1], h, elems * 2) ||
        CU(b, cudaEventCreate(&ev0)) || CU(b, cudaEventCreate(&ev1)))
        goto dev_err;
    for (int w = 0; w < 3; w++)
        if (gemm(b, d[0], d[1], n, n, n, d[2])) goto dev_err;
    for (int r = 0; r < reps; r++) {
        if (CU(b, cudaEventRecord(ev0, b->stream)) || gemm(b, d[0], d[1], n, n, n, d[2]) ||
            CU(b, cudaEventRecord(ev1, b->stream)) || CU(b, cudaEventSynchronize(ev1)) ||
            CU(b, cudaEventElapsedTime(&times[r], ev0, ev1)))
            goto dev_err;
    }
    qsort(times, (size_t)reps, sizeof *times, cmp_float);
    result = 2.0 * (double)n * n * n / ((double)times[reps / 2] * 1e-3) / 1e12;
    goto done;
dev_err:
    eq_err(err, errlen, "%s", b->fail_msg);
done:
    if (ev0) cudaEventDestroy(ev0);
    if (ev1) cudaEventDestroy(ev1);
    for (int i = 0; i < 3; i++)
        if (d[i]) cudaFree(d[i]);
    free(h);
    free(times);
    return result;
#else
    (void)n;
    (void)reps;
    return eq_err(err, errlen, "this build has no CUDA backend");
#endif
}
