/* cpu_backend.c - the Qwen3 forward pass on the CPU: the readable fp32
 * reference, and a bf16-GEMM path for CPUs with AVX512-BF16.
 *
 * This file is the definition of "what the model computes" inside embedq:
 * the CUDA backend is tested against it, and it is tested against the numpy
 * reference in tests/reference/qwen3_ref.py. It favours clarity over speed:
 * one small function per op, each with a shape comment.
 *
 * Batches are packed: the token ids of n_seqs sequences are concatenated,
 * cu_seqlens[i]..cu_seqlens[i+1] is sequence i, there is no padding, and
 * positions restart at 0 for every sequence. Every per-token op (embedding,
 * norms, projections, RoPE, MLP) runs on all tokens of the batch at once;
 * only attention looks across tokens, and it never crosses a sequence
 * boundary. So a sequence gives the same vector alone or in any batch, up to
 * GEMM rounding.
 *
 * Per layer (x: (n, hidden) residual stream, n = tokens in the batch):
 *   xn  = rmsnorm(x) * attn_norm
 *   q   = xn Wq^T -> per head rmsnorm(q) * q_norm -> RoPE      (n, heads*hd)
 *   k   = xn Wk^T -> per head rmsnorm(k) * k_norm -> RoPE      (n, kv*hd)
 *   v   = xn Wv^T                                              (n, kv*hd)
 *   att = causal GQA softmax(q k^T / sqrt(hd)) v, per sequence (n, heads*hd)
 *   x  += att Wo^T
 *   xn  = rmsnorm(x) * post_norm
 *   x  += (silu(xn Wgate^T) * (xn Wup^T)) Wdown^T
 * then, at the last token of each sequence only: rmsnorm(x) * final_norm,
 * keep the first dims[i] values (Matryoshka), L2-normalize.
 *
 * Weights: qw_weight points into the mmap'd checkpoint (bf16/f16/f32).
 *
 * Two precisions, chosen in cpu_backend_new (cpu_precision):
 *   - fp32, the reference: each forward converts one layer at a time into an
 *     fp32 copy in the workspace (b->w), so memory holds one fp32 layer, not
 *     the whole model in fp32; GEMMs are cblas_sgemm (matmul below).
 *   - bf16 (bf16 checkpoints on CPUs with AVX512-BF16): the projections read
 *     the mapped bf16 weights in place through oneDNN (bf16_gemm.c), bf16
 *     activations (the GEMM inputs, rounded from fp32 by to_bf16) times bf16
 *     weights with fp32 accumulation and fp32 output. Everything else (norms,
 *     RoPE, attention, softmax, SwiGLU, the residual stream) is the same fp32
 *     code as the reference; only the norm weights are converted per layer.
 *     The GPU path rounds to bf16 at the same places (the GEMM inputs) and
 *     also keeps q/k/v and the attention probabilities in bf16; here attention
 *     stays fp32 (closer to the reference; a small part of the work on short
 *     chunks, but more than half of it at 2048 tokens: docs/benchmarks.md).
 *
 * Threads: OpenMP only, b->threads threads (all cores by default).
 *   - GEMMs: the output columns are split into one slice per thread, each a
 *     single-threaded cblas_sgemm (matmul below);
 *   - attention: an OpenMP loop over (row block, head) tasks, each calling
 *     single-threaded sgemm;
 *   - per-row loops (norms, RoPE, SwiGLU, weight conversion): parallel for.
 *   - bf16 path: oneDNN's GEMMs are OpenMP regions of the same libgomp pool
 *     (Debian's oneDNN uses the OpenMP runtime), omp_get_max_threads() wide:
 *     cpu_backend_embed sets that to b->threads on the calling thread.
 *   OpenBLAS is set to 1 thread (openblas_set_num_threads(1), process-wide)
 *   so that it never runs its own pool next to, or inside, OpenMP's.
 *   Measured on 2 cores with Qwen3-0.6B shapes (docs/engine.md): letting
 *   OpenBLAS thread the big GEMMs instead was 1.1x slower at 2048 tokens and
 *   3x slower at 64 tokens, its spinning workers fighting the OpenMP ones.
 *
 * Memory: everything is allocated in cpu_backend_new for max_tokens and
 * max_seq_len; cpu_backend_embed allocates nothing.
 */
#include "cpu_backend.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>

#include "bf16_gemm.h"
#include "common.h"

/* Query rows per attention task: scores for one task are (ATT_BLOCK, len),
 * so attention memory is O(ATT_BLOCK * max_seq_len) per thread, never
 * (len, len). */
enum { ATT_BLOCK = 64 };

/* Threads for a loop of about `work` multiply-adds (or elements): below
 * PAR_MIN_WORK a parallel region costs more than it saves (a fork/join is
 * microseconds, and far more when another process holds a core), so small
 * loops, e.g. on the tiny test model, run on one thread. */
enum { PAR_MIN_WORK = 1 << 16 };
static int par(double work, int threads)
{
    return work >= PAR_MIN_WORK ? threads : 1;
}

/* One layer's weights converted to fp32 (row-major [out, in], y = x W^T). */
typedef struct {
    float *attn_norm; /* (hidden)                     */
    float *wq;        /* (n_heads*head_dim, hidden)   */
    float *wk;        /* (n_kv_heads*head_dim, hidden)*/
    float *wv;        /* (n_kv_heads*head_dim, hidden)*/
    float *wo;        /* (hidden, n_heads*head_dim)   */
    float *q_norm;    /* (head_dim)                   */
    float *k_norm;    /* (head_dim)                   */
    float *post_norm; /* (hidden)                     */
    float *w_gate;    /* (intermediate, hidden)       */
    float *w_up;      /* (intermediate, hidden)       */
    float *w_down;    /* (hidden, intermediate)       */
} layer_f32;

/* A block of up to ATT_BLOCK query rows of one sequence. */
typedef struct {
    int seq_start; /* index in the packed batch of the sequence's token 0 */
    int row0;      /* first query row, relative to the sequence           */
    int rows;      /* number of query rows (1..ATT_BLOCK)                 */
} att_block;

struct cpu_backend {
    const qw_model *m;
    int max_tokens;      /* tokens per batch the buffers are sized for */
    int max_seq_len;     /* longest sequence (RoPE table, scores rows) */
    int threads;         /* OpenMP threads (OpenBLAS runs on 1)        */
    bool bf16;           /* the bf16 GEMM path (else the fp32 reference) */
    bf16_gemm *gemm;     /* oneDNN GEMMs of the bf16 path, else NULL    */
    char precision[160]; /* what cpu_backend_precision says           */

    layer_f32 w;       /* the current layer, fp32 (bf16 path: norms only) */
    float *final_norm; /* (hidden)                                   */
    float *rope_cos;   /* (max_seq_len, head_dim/2)                  */
    float *rope_sin;   /* (max_seq_len, head_dim/2)                  */

    /* activations, (max_tokens, ...) */
    float *x;     /* (max_tokens, hidden) residual stream          */
    float *xn;    /* (max_tokens, hidden) normed sub-block input   */
    float *q;     /* (max_tokens, n_heads*head_dim)                */
    float *k;     /* (max_tokens, n_kv_heads*head_dim)             */
    float *v;     /* (max_tokens, n_kv_heads*head_dim)             */
    float *att;   /* (max_tokens, n_heads*head_dim) attention out  */
    float *gate;  /* (max_tokens, intermediate)                    */
    float *up;    /* (max_tokens, intermediate)                    */
    uint16_t *xb; /* bf16 path: (max_tokens, max(hidden, n_heads*head_dim,
                     intermediate)) the bf16 input of the next GEMMs    */
    int *pos;     /* (max_tokens) position of each token in its sequence */

    float *scores;     /* (threads, ATT_BLOCK, max_seq_len) per-thread scratch */
    att_block *blocks; /* (max_tokens) attention tasks of the current batch   */
    float *pooled;     /* (hidden) one pooled, final-normed row               */
    size_t bytes;      /* everything allocated above                          */
};

/* ------------------------------------------------------------------ */
/* ops                                                                */
/* ------------------------------------------------------------------ */

/* dst (n) = src (n elements of dtype t), converted to fp32, in parallel. */
static void to_f32(float *dst, const qw_weight *src, int threads)
{
    const size_t n = (size_t)src->rows * (size_t)src->cols;
    const size_t chunk = 1 << 16;
    const long n_chunks = (long)((n + chunk - 1) / chunk);
    const char *base = src->data;
    const size_t esz = eq_dtype_size(src->dtype);
    const int nt = par((double)n, threads);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long c = 0; c < n_chunks; c++) {
        size_t i0 = (size_t)c * chunk;
        size_t len = n - i0 < chunk ? n - i0 : chunk;
        eq_to_f32(dst + i0, base + i0 * esz, src->dtype, len);
    }
}

/* dst (n) = src (n) rounded to bf16 (nearest even), in parallel. */
static void to_bf16(uint16_t *dst, const float *src, size_t n, int threads)
{
    const int nt = par((double)n, threads);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] = eq_f32_to_bf16(src[i]);
}

/* x (n, dim) = rows ids[0..n) of the embedding table (vocab_rows, dim),
 * converted from the table's dtype. */
static void embed_tokens(float *x, const qw_weight *table, const int32_t *ids, int n, int dim,
                         int threads)
{
    const size_t row_bytes = (size_t)dim * eq_dtype_size(table->dtype);
    const char *base = table->data;
    const int nt = par((double)n * dim, threads);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < n; t++)
        eq_to_f32(x + (size_t)t * dim, base + (size_t)ids[t] * row_bytes, table->dtype,
                  (size_t)dim);
}

/* out (dim) = x * 1/sqrt(mean(x^2) + eps) * w, for one row. The sum of
 * squares is accumulated in double so it does not depend on dim's size. */
static void rmsnorm_row(float *out, const float *x, const float *w, int dim, float eps)
{
    double ss = 0.0;
    for (int i = 0; i < dim; i++)
        ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / dim + eps));
    for (int i = 0; i < dim; i++)
        out[i] = x[i] * inv * w[i];
}

/* out (n, dim) = rmsnorm of each row of x (n, dim), weight w (dim).
 * out may equal x (in place). Used for the layer norms (dim = hidden) and,
 * viewing q (n, heads*hd) as (n*heads, hd), for q_norm / k_norm. */
static void rmsnorm(float *out, const float *x, const float *w, long n, int dim, float eps,
                    int threads)
{
    const int nt = par((double)n * dim, threads);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long r = 0; r < n; r++)
        rmsnorm_row(out + (size_t)r * dim, x + (size_t)r * dim, w, dim, eps);
}

/* y (n, out) = x (n, in) W^T, W (out, in). beta = 1 accumulates into y
 * (used for the residual adds: x += att Wo^T, x += h Wdown^T).
 * The output columns (rows of W) are cut into one contiguous slice per
 * thread, each a single-threaded sgemm: every thread streams its own part of
 * W, which also keeps small batches (one token: a GEMV) on all cores. */
static void matmul(float *y, const float *x, const float *w, int n, int in, int out, float beta,
                   int threads)
{
    const int nt = par((double)n * in * out, threads);
    int slice = (out + nt - 1) / nt;
    slice = (slice + 15) / 16 * 16; /* whole 16-column kernel tiles */
    const int n_slices = (out + slice - 1) / slice;
#pragma omp parallel for num_threads(n_slices) schedule(static, 1)
    for (int j = 0; j < n_slices; j++) {
        const int c0 = j * slice, cols = out - c0 < slice ? out - c0 : slice;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, cols, in, 1.0f, x, in,
                    w + (size_t)c0 * in, in, beta, y + c0, out);
    }
}

/* RoPE, NeoX style (rotate_half) on x (n, n_heads, hd) in place: within each
 * head, dimension i pairs with i + hd/2 and turns by angle pos * inv_freq_i:
 *   x1' = x1 cos - x2 sin,   x2' = x2 cos + x1 sin.
 * cos/sin: (max_seq_len, hd/2) tables, pos (n) positions in the sequence. */
static void rope(float *x, const int *pos, int n, int n_heads, int hd, const float *cos_t,
                 const float *sin_t, int threads)
{
    const int half = hd / 2;
    const int nt = par((double)n * n_heads * hd, threads);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < n; t++) {
        const float *c = cos_t + (size_t)pos[t] * half;
        const float *s = sin_t + (size_t)pos[t] * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * hd;
            for (int i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * c[i] - x2 * s[i];
                v[i + half] = x2 * c[i] + x1 * s[i];
            }
        }
    }
}

/* Softmax of s[0..n_valid) in place (fp32, max subtracted); s[n_valid..n)
 * (the causally masked keys) is set to 0. */
static void softmax_causal(float *s, int n_valid, int n)
{
    float mx = s[0];
    for (int j = 1; j < n_valid; j++)
        mx = s[j] > mx ? s[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j < n_valid; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < n_valid; j++)
        s[j] *= inv;
    for (int j = n_valid; j < n; j++)
        s[j] = 0.0f;
}

/* Causal GQA attention for one block of query rows and one query head.
 *   q   (len, n_heads*hd)    rows of the block's sequence, head h's columns
 *   k,v (len, n_kv*hd)       the sequence's keys/values, kv head h / group
 *   out (len, n_heads*hd)    head h's columns of the block's rows
 *   scores (ATT_BLOCK, keys) scratch, keys = row0 + rows (causal prefix)
 * Query row r (relative to the sequence) sees keys 0..r. */
static void attention_block(float *out, const float *q, const float *k, const float *v,
                            float *scores, const att_block *blk, int h, int n_heads, int n_kv,
                            int hd)
{
    const int q_ld = n_heads * hd, kv_ld = n_kv * hd;
    const int kvh = h / (n_heads / n_kv);
    const int keys = blk->row0 + blk->rows;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *qb = q + (size_t)(blk->seq_start + blk->row0) * q_ld + (size_t)h * hd;
    const float *kb = k + (size_t)blk->seq_start * kv_ld + (size_t)kvh * hd;
    const float *vb = v + (size_t)blk->seq_start * kv_ld + (size_t)kvh * hd;
    float *ob = out + (size_t)(blk->seq_start + blk->row0) * q_ld + (size_t)h * hd;

    /* scores (rows, keys) = scale * qb (rows, hd) kb^T (hd, keys) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blk->rows, keys, hd, scale, qb, q_ld, kb,
                kv_ld, 0.0f, scores, keys);
    for (int r = 0; r < blk->rows; r++)
        softmax_causal(scores + (size_t)r * keys, blk->row0 + r + 1, keys);
    /* ob (rows, hd) = scores (rows, keys) vb (keys, hd) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blk->rows, hd, keys, 1.0f, scores, keys,
                vb, kv_ld, 0.0f, ob, q_ld);
}

/* att (n, n_heads*hd) = attention over every (block, head) task. Each task
 * writes its own (rows, head) tile of att, so tasks are independent. */
static void attention(cpu_backend *b, int n_blocks)
{
    const qw_config *c = &b->m->cfg;
    const long n_tasks = (long)n_blocks * c->n_heads;
    double work = 0; /* multiply-adds of QK^T and PV */
    for (int i = 0; i < n_blocks; i++)
        work += 2.0 * b->blocks[i].rows * (b->blocks[i].row0 + b->blocks[i].rows);
    work *= (double)c->n_heads * c->head_dim;
    const int nt = par(work, b->threads);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (long task = 0; task < n_tasks; task++) {
        const att_block *blk = &b->blocks[task / c->n_heads];
        const int h = (int)(task % c->n_heads);
        float *scores = b->scores + (size_t)omp_get_thread_num() * ATT_BLOCK * b->max_seq_len;
        attention_block(b->att, b->q, b->k, b->v, scores, blk, h, c->n_heads, c->n_kv_heads,
                        c->head_dim);
    }
}

/* gate (n*F) = silu(gate) * up, silu(g) = g / (1 + exp(-g)). */
static void swiglu(float *gate, const float *up, size_t n, int threads)
{
    const int nt = par((double)n, threads);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

/* out (hidden) = first `dims` values of the pooled row (dim hidden), L2-
 * normalized, zeros after dims. A zero vector stays zero (no NaN). */
static void matryoshka_l2(float *out, const float *pooled, int dims, int hidden)
{
    double ss = 0.0;
    for (int i = 0; i < dims; i++)
        ss += (double)pooled[i] * pooled[i];
    float inv = ss > 0.0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
    for (int i = 0; i < dims; i++)
        out[i] = pooled[i] * inv;
    for (int i = dims; i < hidden; i++)
        out[i] = 0.0f;
}

/* ------------------------------------------------------------------ */
/* the layer and the forward pass                                     */
/* ------------------------------------------------------------------ */

/* b->w = layer l's weights in fp32 (the bf16 path: its norm weights only;
 * the projections are read as mapped). */
static void load_layer(cpu_backend *b, int l)
{
    const qw_layer *L = &b->m->layers[l];
    const int t = b->threads;
    to_f32(b->w.attn_norm, &L->attn_norm, t);
    to_f32(b->w.q_norm, &L->q_norm, t);
    to_f32(b->w.k_norm, &L->k_norm, t);
    to_f32(b->w.post_norm, &L->post_norm, t);
    if (b->bf16) return;
    to_f32(b->w.wq, &L->q, t);
    to_f32(b->w.wk, &L->k, t);
    to_f32(b->w.wv, &L->v, t);
    to_f32(b->w.wo, &L->o, t);
    to_f32(b->w.w_gate, &L->gate, t);
    to_f32(b->w.w_up, &L->up, t);
    to_f32(b->w.w_down, &L->down, t);
}

/* y (n, out) = x (n, in) W^T, plus y when beta = 1, on the backend's path:
 * fp32, sgemm on x and the converted layer w32; bf16, oneDNN on b->xb,
 * which the caller has set to x rounded to bf16 (to_bf16: once for the
 * GEMMs that share an input), and the mapped bf16 weight W. */
static int linear(cpu_backend *b, float *y, const float *x, const float *w32, const qw_weight *W,
                  int n, int in, int out, float beta, char *err, size_t errlen)
{
    if (!b->bf16) {
        matmul(y, x, w32, n, in, out, beta, b->threads);
        return 0;
    }
    return bf16_gemm_run(b->gemm, y, b->xb, W->data, n, in, out, beta != 0.0f, err, errlen);
}

/* One decoder layer on b->x (n, hidden), in place. Returns 0, or -1 with a
 * message (a oneDNN failure on the bf16 path). */
static int decoder_layer(cpu_backend *b, int l, int n, int n_blocks, char *err, size_t errlen)
{
    const qw_config *c = &b->m->cfg;
    const qw_layer *L = &b->m->layers[l];
    const int D = c->hidden, hd = c->head_dim, F = c->intermediate;
    const int q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
    const int t = b->threads;
    const layer_f32 *w = &b->w;
    const bool bf = b->bf16;

    /* attention sub-block: x += o_proj(attn(rmsnorm_in(x))) */
    rmsnorm(b->xn, b->x, w->attn_norm, n, D, c->rms_eps, t); /* (n, D)      */
    if (bf) to_bf16(b->xb, b->xn, (size_t)n * D, t);
    if (linear(b, b->q, b->xn, w->wq, &L->q, n, D, q_dim, 0.0f, err, errlen) ||  /* (n, q_dim)  */
        linear(b, b->k, b->xn, w->wk, &L->k, n, D, kv_dim, 0.0f, err, errlen) || /* (n, kv_dim) */
        linear(b, b->v, b->xn, w->wv, &L->v, n, D, kv_dim, 0.0f, err, errlen))   /* (n, kv_dim) */
        return -1;
    rmsnorm(b->q, b->q, w->q_norm, (long)n * c->n_heads, hd, c->rms_eps, t);
    rmsnorm(b->k, b->k, w->k_norm, (long)n * c->n_kv_heads, hd, c->rms_eps, t);
    rope(b->q, b->pos, n, c->n_heads, hd, b->rope_cos, b->rope_sin, t);
    rope(b->k, b->pos, n, c->n_kv_heads, hd, b->rope_cos, b->rope_sin, t);
    attention(b, n_blocks); /* (n, q_dim)  */
    if (bf) to_bf16(b->xb, b->att, (size_t)n * q_dim, t);
    if (linear(b, b->x, b->att, w->wo, &L->o, n, q_dim, D, 1.0f, err, errlen)) /* x += (n, D) */
        return -1;

    /* MLP sub-block: x += down(silu(gate(y)) * up(y)), y = rmsnorm_post(x) */
    rmsnorm(b->xn, b->x, w->post_norm, n, D, c->rms_eps, t); /* (n, D)      */
    if (bf) to_bf16(b->xb, b->xn, (size_t)n * D, t);
    if (linear(b, b->gate, b->xn, w->w_gate, &L->gate, n, D, F, 0.0f, err, errlen) || /* (n, F) */
        linear(b, b->up, b->xn, w->w_up, &L->up, n, D, F, 0.0f, err, errlen))         /* (n, F) */
        return -1;
    swiglu(b->gate, b->up, (size_t)n * F, t); /* (n, F)      */
    if (bf) to_bf16(b->xb, b->gate, (size_t)n * F, t);
    return linear(b, b->x, b->gate, w->w_down, &L->down, n, F, D, 1.0f, err, errlen); /* x += */
}

int cpu_backend_embed(cpu_backend *b, const int32_t *ids, const int32_t *cu_seqlens, int n_seqs,
                      const int *dims, float *out, char *err, size_t errlen)
{
    const qw_config *c = &b->m->cfg;
    const int D = c->hidden;

    /* The caller validated the batch (engine.c); re-check the cheap
     * invariants so a caller bug is an error message, not a wild read. */
    if (n_seqs < 1 || cu_seqlens[0] != 0)
        return eq_err(err, errlen, "cpu_backend: bad batch (n_seqs %d)", n_seqs);
    const int n = cu_seqlens[n_seqs];
    if (n > b->max_tokens)
        return eq_err(err, errlen, "cpu_backend: %d tokens > max_tokens %d", n, b->max_tokens);
    for (int s = 0; s < n_seqs; s++) {
        int len = cu_seqlens[s + 1] - cu_seqlens[s];
        if (len < 1 || len > b->max_seq_len)
            return eq_err(err, errlen, "cpu_backend: sequence %d has %d tokens (1..%d)", s, len,
                          b->max_seq_len);
        int d = dims ? dims[s] : D;
        if (d < 0 || d > D)
            return eq_err(err, errlen, "cpu_backend: dims[%d] = %d not in 0..%d (0 = all %d)", s, d,
                          D, D);
    }
    for (int t = 0; t < n; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab_rows)
            return eq_err(err, errlen, "cpu_backend: token id %d at %d not in 0..%d", ids[t], t,
                          c->vocab_rows - 1);

    /* positions (restart at 0 per sequence) and attention tasks */
    int n_blocks = 0;
    for (int s = 0; s < n_seqs; s++) {
        const int start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
        for (int r = 0; r < len; r++)
            b->pos[start + r] = r;
        for (int r0 = 0; r0 < len; r0 += ATT_BLOCK)
            b->blocks[n_blocks++] =
                (att_block){.seq_start = start,
                            .row0 = r0,
                            .rows = len - r0 < ATT_BLOCK ? len - r0 : ATT_BLOCK};
    }

    openblas_set_num_threads(1); /* OpenMP does the threading, see the top */
    /* oneDNN's GEMMs run omp_get_max_threads() threads of this thread. */
    if (b->bf16) omp_set_num_threads(b->threads);
    embed_tokens(b->x, &b->m->embed, ids, n, D, b->threads); /* (n, D) */
    for (int l = 0; l < c->n_layers; l++) {
        load_layer(b, l);
        if (decoder_layer(b, l, n, n_blocks, err, errlen)) return -1;
    }

    /* last-token pooling: final norm on the last row of each sequence only
     * (it is per-row, the other rows are not needed), then Matryoshka + L2. */
    for (int s = 0; s < n_seqs; s++) {
        const float *last = b->x + (size_t)(cu_seqlens[s + 1] - 1) * D;
        rmsnorm_row(b->pooled, last, b->final_norm, D, c->rms_eps);
        for (int i = 0; i < D; i++)
            if (!isfinite(b->pooled[i])) /* an overflow: fail, never emit NaN/Inf */
                return eq_err(err, errlen,
                              "cpu_backend: sequence %d: non-finite hidden state (overflow)", s);
        int d = dims && dims[s] > 0 ? dims[s] : D;
        matryoshka_l2(out + (size_t)s * D, b->pooled, d, D);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* construction                                                       */
/* ------------------------------------------------------------------ */

static int check_weight(const qw_weight *w, int64_t rows, int64_t cols, const char *name, int layer,
                        char *err, size_t errlen)
{
    if (!w->data || w->rows != rows || w->cols != cols ||
        (w->dtype != EQ_F32 && w->dtype != EQ_F16 && w->dtype != EQ_BF16))
        return eq_err(err, errlen,
                      "cpu_backend: layer %d %s: expected %lld x %lld, got %lld x %lld%s", layer,
                      name, (long long)rows, (long long)cols, (long long)w->rows,
                      (long long)w->cols, w->data ? "" : " (missing)");
    return 0;
}

static int check_model(const qw_model *m, char *err, size_t errlen)
{
    const qw_config *c = &m->cfg;
    if (c->hidden < 1 || c->n_layers < 1 || c->n_heads < 1 || c->n_kv_heads < 1 ||
        c->head_dim < 2 || c->head_dim % 2 || c->intermediate < 1 || c->vocab_rows < 1 ||
        c->n_heads % c->n_kv_heads)
        return eq_err(err, errlen,
                      "cpu_backend: unsupported config (hidden %d, layers %d, "
                      "heads %d/%d, head_dim %d)",
                      c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim);
    const int64_t D = c->hidden, qd = (int64_t)c->n_heads * c->head_dim,
                  kvd = (int64_t)c->n_kv_heads * c->head_dim, F = c->intermediate;
    if (check_weight(&m->embed, c->vocab_rows, D, "embed_tokens", -1, err, errlen) ||
        check_weight(&m->final_norm, D, 1, "norm", -1, err, errlen))
        return -1;
    for (int l = 0; l < c->n_layers; l++) {
        const qw_layer *L = &m->layers[l];
        if (check_weight(&L->attn_norm, D, 1, "input_layernorm", l, err, errlen) ||
            check_weight(&L->q, qd, D, "q_proj", l, err, errlen) ||
            check_weight(&L->k, kvd, D, "k_proj", l, err, errlen) ||
            check_weight(&L->v, kvd, D, "v_proj", l, err, errlen) ||
            check_weight(&L->o, D, qd, "o_proj", l, err, errlen) ||
            check_weight(&L->q_norm, c->head_dim, 1, "q_norm", l, err, errlen) ||
            check_weight(&L->k_norm, c->head_dim, 1, "k_norm", l, err, errlen) ||
            check_weight(&L->post_norm, D, 1, "post_attention_layernorm", l, err, errlen) ||
            check_weight(&L->gate, F, D, "gate_proj", l, err, errlen) ||
            check_weight(&L->up, F, D, "up_proj", l, err, errlen) ||
            check_weight(&L->down, D, F, "down_proj", l, err, errlen))
            return -1;
    }
    return 0;
}

/* cos/sin (max_seq_len, hd/2) for positions 0..max_seq_len-1. As in
 * transformers: inv_freq_i = 1 / theta^(2i/hd) and the angle pos * inv_freq
 * are fp32; cos/sin of that fp32 angle. */
static void build_rope(float *cos_t, float *sin_t, int max_seq_len, int hd, float theta)
{
    const int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float inv_freq = (float)(1.0 / pow((double)theta, (double)(2 * i) / hd));
        for (int p = 0; p < max_seq_len; p++) {
            float angle = (float)p * inv_freq;
            cos_t[(size_t)p * half + i] = (float)cos((double)angle);
            sin_t[(size_t)p * half + i] = (float)sin((double)angle);
        }
    }
}

/* The bf16 path needs every projection in bf16 (it reads them as mapped).
 * Returns NULL, or the dtype name of the first one that is not. */
static const char *non_bf16_projection(const qw_model *m)
{
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const qw_layer *L = &m->layers[l];
        const qw_weight *ws[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if (ws[i]->dtype != EQ_BF16) return eq_dtype_name(ws[i]->dtype);
    }
    return NULL;
}

const char *cpu_precision_name(cpu_precision p)
{
    return p == CPU_PRECISION_FP32 ? "fp32" : p == CPU_PRECISION_BF16 ? "bf16" : "auto";
}

cpu_backend *cpu_backend_new(const qw_model *m, int max_tokens, int max_seq_len, int threads,
                             cpu_precision precision, char *err, size_t errlen)
{
    if (check_model(m, err, errlen)) return NULL;
    const qw_config *c = &m->cfg;
    if (max_tokens < 1 || max_seq_len < 1) {
        eq_err(err, errlen, "cpu_backend: max_tokens %d / max_seq_len %d must be >= 1", max_tokens,
               max_seq_len);
        return NULL;
    }
    if (max_seq_len > max_tokens) max_seq_len = max_tokens; /* a sequence fits in a batch */

    /* The path: bf16 where asked or (auto) where the checkpoint and the CPU
     * allow it; the reason for fp32 goes into the start-up banner. */
    bool bf16 = false;
    char why_fp32[128] = "fp32 GEMMs (OpenBLAS sgemm), as asked";
    if (precision != CPU_PRECISION_FP32) {
        const char *why = NULL, *dt = non_bf16_projection(m);
        if (dt)
            snprintf(why_fp32, sizeof why_fp32,
                     "fp32 GEMMs (OpenBLAS sgemm): the checkpoint is %s, not bf16", dt);
        else if (!bf16_gemm_supported(&why))
            snprintf(why_fp32, sizeof why_fp32, "fp32 GEMMs (OpenBLAS sgemm): %s", why);
        else
            bf16 = true;
        if (!bf16 && precision == CPU_PRECISION_BF16) {
            eq_err(err, errlen, "cpu_backend: bf16 asked for, but %s", strchr(why_fp32, ':') + 2);
            return NULL;
        }
    }

    cpu_backend *b = calloc(1, sizeof *b);
    if (!b) {
        eq_err(err, errlen, "cpu_backend: out of memory");
        return NULL;
    }
    b->m = m;
    b->max_tokens = max_tokens;
    b->max_seq_len = max_seq_len;
    b->threads = threads > 0 ? threads : omp_get_max_threads();
    b->bf16 = bf16;
    if (bf16) {
        snprintf(b->precision, sizeof b->precision, "bf16 GEMMs (oneDNN %s, fp32 accumulation)",
                 bf16_gemm_isa());
        if (!(b->gemm = bf16_gemm_new(err, errlen))) {
            free(b);
            return NULL;
        }
    } else {
        snprintf(b->precision, sizeof b->precision, "%s", why_fp32);
    }

    const size_t T = (size_t)max_tokens, D = (size_t)c->hidden, hd = (size_t)c->head_dim;
    const size_t qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd;
    const size_t F = (size_t)c->intermediate; /* not I: <complex.h> via cblas.h */
    size_t bytes = 0;
#define ALLOC(ptr, count)                                                                          \
    do {                                                                                           \
        bytes += (size_t)(count) * sizeof *(ptr);                                                  \
        if (!((ptr) = malloc((size_t)(count) * sizeof *(ptr)))) goto oom;                          \
    } while (0)
    ALLOC(b->w.attn_norm, D);
    ALLOC(b->w.q_norm, hd);
    ALLOC(b->w.k_norm, hd);
    ALLOC(b->w.post_norm, D);
    if (bf16) {
        size_t widest = D > qd ? D : qd;
        widest = widest > F ? widest : F;
        ALLOC(b->xb, T * widest);
    } else {
        ALLOC(b->w.wq, qd * D);
        ALLOC(b->w.wk, kvd * D);
        ALLOC(b->w.wv, kvd * D);
        ALLOC(b->w.wo, D * qd);
        ALLOC(b->w.w_gate, F * D);
        ALLOC(b->w.w_up, F * D);
        ALLOC(b->w.w_down, D * F);
    }
    ALLOC(b->final_norm, D);
    ALLOC(b->rope_cos, (size_t)max_seq_len * (hd / 2));
    ALLOC(b->rope_sin, (size_t)max_seq_len * (hd / 2));
    ALLOC(b->x, T * D);
    ALLOC(b->xn, T * D);
    ALLOC(b->q, T * qd);
    ALLOC(b->k, T * kvd);
    ALLOC(b->v, T * kvd);
    ALLOC(b->att, T * qd);
    ALLOC(b->gate, T * F);
    ALLOC(b->up, T * F);
    ALLOC(b->pos, T);
    ALLOC(b->scores, (size_t)b->threads * ATT_BLOCK * (size_t)max_seq_len);
    ALLOC(b->blocks, T);
    ALLOC(b->pooled, D);
#undef ALLOC

    to_f32(b->final_norm, &m->final_norm, b->threads);
    build_rope(b->rope_cos, b->rope_sin, max_seq_len, c->head_dim, c->rope_theta);
    b->bytes = bytes;
    eq_log(EQ_LOG_DEBUG, "cpu_backend: %s, %d threads, %d tokens/batch, seq <= %d, %.1f MiB",
           b->precision, b->threads, max_tokens, max_seq_len, bytes / 1048576.0);
    return b;
oom:
    eq_err(err, errlen, "cpu_backend: out of memory allocating %.1f MiB for %d tokens",
           bytes / 1048576.0, max_tokens);
    cpu_backend_free(b);
    return NULL;
}

void cpu_backend_free(cpu_backend *b)
{
    if (!b) return;
    float *bufs[] = {b->w.attn_norm, b->w.wq,       b->w.wk,        b->w.wv,     b->w.wo,
                     b->w.q_norm,    b->w.k_norm,   b->w.post_norm, b->w.w_gate, b->w.w_up,
                     b->w.w_down,    b->final_norm, b->rope_cos,    b->rope_sin, b->x,
                     b->xn,          b->q,          b->k,           b->v,        b->att,
                     b->gate,        b->up,         b->scores,      b->pooled};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(b->pos);
    free(b->blocks);
    free(b->xb);
    bf16_gemm_free(b->gemm);
    free(b);
}

const char *cpu_backend_precision(const cpu_backend *b)
{
    return b->precision;
}

bool cpu_backend_is_bf16(const cpu_backend *b)
{
    return b->bf16;
}

size_t cpu_backend_bytes(const cpu_backend *b)
{
    return b->bytes;
}
