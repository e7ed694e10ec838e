/* cublaslt_dl.c - cuBLASLt loaded on first use, not when the process starts.
 *
 * Why by hand: linking libcublasLt.so (541 MB in CUDA 13, ~377,000
 * relocations) makes the dynamic loader map and relocate it before main()
 * runs. Every `embedq` invocation then paid ~1 s and ~200 MB of RSS for it,
 * CPU-only commands included, and a worker could not install its signal
 * handlers during that second: a SIGTERM then killed it with no log line
 * (exit 143; issue 15). No package offers a lazy-loading stub for cuBLASLt
 * (the toolkit ships none for it), so this file defines the 14 cuBLASLt
 * functions that engine/gpu_backend.c calls, with the header's own
 * signatures (checked by the compiler through __typeof__), and forwards each
 * to the real library, dlopen'ed once on the first call.
 *
 * The library is libcublasLt.so.<CUBLAS_VER_MAJOR> of the toolkit the build
 * used (the same soname the linker would have recorded), found the way the
 * loader would find it (LD_LIBRARY_PATH, the rpath-free ld.so.cache, ...),
 * then under $CUDA_HOME/lib64, the build toolkit's library folder
 * (EQ_CUBLASLT_DIR), /usr/local/cuda/lib64 and /usr/local/cuda/lib.
 * When it cannot be loaded, every function returns
 * CUBLAS_STATUS_NOT_INITIALIZED and cublasLtGetStatusString names the cause
 * (dlerror), which gpu_backend.c's CHECK macro reports.
 *
 * Threads: safe from any thread (pthread_once).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <cublasLt.h>

#define EQ_CUBLASLT_FUNCS(X)                                                                       \
    X(cublasLtCreate)                                                                              \
    X(cublasLtDestroy)                                                                             \
    X(cublasLtGetStatusName)                                                                       \
    X(cublasLtGetStatusString)                                                                     \
    X(cublasLtMatmul)                                                                              \
    X(cublasLtMatmulAlgoGetHeuristic)                                                              \
    X(cublasLtMatmulDescCreate)                                                                    \
    X(cublasLtMatmulDescDestroy)                                                                   \
    X(cublasLtMatmulDescSetAttribute)                                                              \
    X(cublasLtMatmulPreferenceCreate)                                                              \
    X(cublasLtMatmulPreferenceDestroy)                                                             \
    X(cublasLtMatmulPreferenceSetAttribute)                                                        \
    X(cublasLtMatrixLayoutCreate)                                                                  \
    X(cublasLtMatrixLayoutDestroy)

static struct {
#define EQ_FIELD(f) __typeof__(&f) f;
    EQ_CUBLASLT_FUNCS(EQ_FIELD)
#undef EQ_FIELD
} lt;

static pthread_once_t lt_once = PTHREAD_ONCE_INIT;
static int lt_ok;
static char lt_err[512];

#define EQ_STR2(x) #x
#define EQ_STR(x)  EQ_STR2(x)
#define EQ_SONAME  "libcublasLt.so." EQ_STR(CUBLAS_VER_MAJOR)

static void *open_lib(void)
{
    void *h = dlopen(EQ_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h) return h;
    snprintf(lt_err, sizeof lt_err, "cannot load %s: %s", EQ_SONAME, dlerror());
#ifndef EQ_CUBLASLT_DIR
#define EQ_CUBLASLT_DIR "/usr/local/cuda/lib64"
#endif
    char home[768] = "";
    if (getenv("CUDA_HOME")) snprintf(home, sizeof home, "%s/lib64", getenv("CUDA_HOME"));
    const char *dirs[] = {home, EQ_CUBLASLT_DIR, "/usr/local/cuda/lib64", "/usr/local/cuda/lib"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        if (!dirs[i][0]) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dirs[i], EQ_SONAME);
        if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL))) return h;
    }
    return NULL;
}

static void lt_load(void)
{
    void *h = open_lib();
    if (!h) return;
#define EQ_SYM(f)                                                                                  \
    *(void **)&lt.f = dlsym(h, #f);                                                                \
    if (!lt.f) {                                                                                   \
        snprintf(lt_err, sizeof lt_err, "%s has no symbol %s", EQ_SONAME, #f);                     \
        return;                                                                                    \
    }
    EQ_CUBLASLT_FUNCS(EQ_SYM)
#undef EQ_SYM
    lt_ok = 1; /* the handle stays open for the life of the process */
}

static int lt_ready(void)
{
    pthread_once(&lt_once, lt_load);
    return lt_ok;
}

/* Forwarders. NOT_INITIALIZED when the library could not be loaded. */
#define EQ_NOLIB CUBLAS_STATUS_NOT_INITIALIZED

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h)
{
    return lt_ready() ? lt.cublasLtCreate(h) : EQ_NOLIB;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h)
{
    return lt_ready() ? lt.cublasLtDestroy(h) : EQ_NOLIB;
}

const char *cublasLtGetStatusName(cublasStatus_t s)
{
    return lt_ready() ? lt.cublasLtGetStatusName(s) : "CUBLAS_STATUS_NOT_INITIALIZED";
}

const char *cublasLtGetStatusString(cublasStatus_t s)
{
    return lt_ready() ? lt.cublasLtGetStatusString(s) : lt_err;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Ad, const void *B,
                              cublasLtMatrixLayout_t Bd, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cd, void *D, cublasLtMatrixLayout_t Dd,
                              const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes,
                              cudaStream_t stream)
{
    return lt_ready() ? lt.cublasLtMatmul(h, d, alpha, A, Ad, B, Bd, beta, C, Cd, D, Dd, algo, ws,
                                          ws_bytes, stream)
                      : EQ_NOLIB;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
                                              cublasLtMatrixLayout_t Ad, cublasLtMatrixLayout_t Bd,
                                              cublasLtMatrixLayout_t Cd, cublasLtMatrixLayout_t Dd,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int *returned)
{
    return lt_ready() ? lt.cublasLtMatmulAlgoGetHeuristic(h, d, Ad, Bd, Cd, Dd, pref, requested,
                                                          results, returned)
                      : EQ_NOLIB;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute,
                                        cudaDataType_t scale)
{
    return lt_ready() ? lt.cublasLtMatmulDescCreate(d, compute, scale) : EQ_NOLIB;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
    return lt_ready() ? lt.cublasLtMatmulDescDestroy(d) : EQ_NOLIB;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t n)
{
    return lt_ready() ? lt.cublasLtMatmulDescSetAttribute(d, attr, buf, n) : EQ_NOLIB;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p)
{
    return lt_ready() ? lt.cublasLtMatmulPreferenceCreate(p) : EQ_NOLIB;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p)
{
    return lt_ready() ? lt.cublasLtMatmulPreferenceDestroy(p) : EQ_NOLIB;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t n)
{
    return lt_ready() ? lt.cublasLtMatmulPreferenceSetAttribute(p, attr, buf, n) : EQ_NOLIB;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld)
{
    return lt_ready() ? lt.cublasLtMatrixLayoutCreate(l, type, rows, cols, ld) : EQ_NOLIB;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
    return lt_ready() ? lt.cublasLtMatrixLayoutDestroy(l) : EQ_NOLIB;
}
