/* runtime.cpp - the host "CUDA runtime" and the fake cuBLASLt of the
 * kernel emulator, for the engine's emu device (gpu_backend.c compiled
 * against kernels/emu/include; semantics in eqk_emu_runtime.h and
 * cublasLt.h there). Written by hand: no package runs the CUDA runtime or
 * cuBLASLt on a CPU, and the point is to check this project's use of them.
 *
 * Threads: the engine calls it from one thread at a time; the allocation
 * registry and the streams take a lock anyway (kernels run blocks on
 * worker threads, which never call in here).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cublasLt.h"
#include "emu.h"

namespace
{

/* ---- device memory registry ----------------------------------------------- */

std::mutex g_mu;
std::map<uintptr_t, size_t> g_dev;  /* device allocations: start -> bytes */
std::map<uintptr_t, size_t> g_host; /* cudaMallocHost blocks               */
size_t g_dev_bytes = 0;
constexpr size_t kTotal = (size_t)16 << 30;
/* The calling thread's last refused call, for cudaGetErrorString. A
 * refused call fails alone (as an invalid argument does on a device); only
 * a kernel's error is sticky. */
thread_local std::string t_rt_msg;
int g_device = 0;

/* The allocation of m holding [p, p + n), or m.end(). */
std::map<uintptr_t, size_t>::const_iterator find_range(const std::map<uintptr_t, size_t> &m,
                                                       const void *p, size_t n)
{
    const uintptr_t a = (uintptr_t)p;
    auto it = m.upper_bound(a);
    if (it == m.begin()) return m.end();
    --it;
    if (a - it->first + n > it->second || a < it->first) return m.end();
    return it;
}

bool dev_range(const void *p, size_t n)
{
    std::lock_guard<std::mutex> lk(g_mu);
    return find_range(g_dev, p, n) != g_dev.end();
}

/* Any overlap of [p, p + n) with a device allocation. */
bool touches_dev(const void *p, size_t n)
{
    std::lock_guard<std::mutex> lk(g_mu);
    const uintptr_t a = (uintptr_t)p;
    auto it = g_dev.upper_bound(a + (n ? n - 1 : 0));
    if (it == g_dev.begin()) return false;
    --it;
    return it->first + it->second > a;
}

void runtime_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void runtime_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    t_rt_msg = msg;
    fprintf(stderr, "emu runtime: %s\n", msg);
}

/* A kernel failed on the emulator: sticky, like a fault on a device. */
bool faulted()
{
    return eqk_emu_error() != nullptr;
}

} // namespace

/* ---- streams and events ------------------------------------------------------ */

struct eqk_emu_stream {
    std::deque<std::function<void()>> q;
};
struct eqk_emu_event {
    cudaStream_t stream = nullptr;
    bool recorded = false, done = false;
    std::chrono::steady_clock::time_point t;
};

namespace
{
void drain(cudaStream_t s)
{
    for (;;) {
        std::function<void()> op;
        {
            std::lock_guard<std::mutex> lk(g_mu);
            if (s->q.empty()) return;
            op = std::move(s->q.front());
            s->q.pop_front();
        }
        op();
    }
}

cudaError_t sync_status()
{
    return faulted() ? cudaErrorLaunchFailure : cudaSuccess;
}
} // namespace

namespace eqk_emu
{
void stream_enqueue(cudaStream_t stream, std::function<void()> op)
{
    if (!stream) {
        op();
        return;
    }
    std::lock_guard<std::mutex> lk(g_mu);
    stream->q.push_back(std::move(op));
}
} // namespace eqk_emu

extern "C" {

cudaError_t cudaGetLastError(void)
{
    return eqk_emu::get_last_error();
}

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess:
        return "cudaSuccess";
    case cudaErrorInvalidValue:
        return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
        return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
        return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice:
        return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
        return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchFailure:
        return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e)
{
    static thread_local std::string s;
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        s = "invalid argument";
        break;
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
        return "invalid resource handle";
    case cudaErrorLaunchFailure:
        s = "unspecified launch failure";
        break;
    default:
        return "unknown error";
    }
    if (e == cudaErrorInvalidValue && !t_rt_msg.empty()) s += "; emulator: " + t_rt_msg;
    if (e == cudaErrorLaunchFailure && eqk_emu_error())
        s += std::string("; emulator: ") + eqk_emu_error();
    return s.c_str();
}

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    if (device != 0) return cudaErrorInvalidDevice;
    g_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device)
{
    if (device != 0) return cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "kernel emulator (CPU, kernels/emu)");
    p->totalGlobalMem = kTotal;
    p->major = 8; /* sm_86: the 99 KB shared memory limit emu.cpp checks */
    p->minor = 6;
    p->multiProcessorCount = 1;
    p->sharedMemPerBlockOptin = 101376;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    std::lock_guard<std::mutex> lk(g_mu);
    *total_bytes = kTotal;
    *free_bytes = g_dev_bytes > kTotal ? 0 : kTotal - g_dev_bytes;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    *p = nullptr;
    if (bytes == 0) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lk(g_mu);
        if (g_dev_bytes + bytes > kTotal) return cudaErrorMemoryAllocation;
    }
    /* exactly the size asked for, so AddressSanitizer sees an overrun; 256
     * bytes aligned as cudaMalloc's are */
    void *q = nullptr;
    if (posix_memalign(&q, 256, bytes) != 0) return cudaErrorMemoryAllocation;
    std::lock_guard<std::mutex> lk(g_mu);
    g_dev[(uintptr_t)q] = bytes;
    g_dev_bytes += bytes;
    *p = q;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (!p) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lk(g_mu);
        auto it = g_dev.find((uintptr_t)p);
        if (it == g_dev.end()) return cudaErrorInvalidValue;
        g_dev_bytes -= it->second;
        g_dev.erase(it);
    }
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t bytes)
{
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    std::lock_guard<std::mutex> lk(g_mu);
    g_host[(uintptr_t)*p] = bytes;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p)
{
    if (!p) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lk(g_mu);
        auto it = g_host.find((uintptr_t)p);
        if (it == g_host.end()) return cudaErrorInvalidValue;
        g_host.erase(it);
    }
    free(p);
    return cudaSuccess;
}

/* Checks a copy's sides against the registry: the device side inside one
 * live device allocation, the host side outside every one. */
static cudaError_t check_copy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind)
{
    const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDeviceToDevice)
        return cudaErrorInvalidValue;
    if (bytes == 0) return cudaSuccess;
    if (dst_dev ? !dev_range(dst, bytes) : touches_dev(dst, bytes)) {
        runtime_error("cudaMemcpy kind %d: destination %p + %zu bytes is %s", (int)kind, dst, bytes,
                      dst_dev ? "not inside one device allocation" : "device memory");
        return cudaErrorInvalidValue;
    }
    if (src_dev ? !dev_range(src, bytes) : touches_dev(src, bytes)) {
        runtime_error("cudaMemcpy kind %d: source %p + %zu bytes is %s", (int)kind, src, bytes,
                      src_dev ? "not inside one device allocation" : "device memory");
        return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind)
{
    cudaError_t e = check_copy(dst, src, bytes, kind);
    if (e != cudaSuccess) return e;
    if (bytes) memmove(dst, src, bytes);
    return sync_status();
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    cudaError_t e = check_copy(dst, src, bytes, kind);
    if (e != cudaSuccess) return e;
    /* the source is read when the stream runs, as on a device */
    if (bytes) eqk_emu::stream_enqueue(stream, [=] { memmove(dst, src, bytes); });
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
    *s = new eqk_emu_stream();
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    if (flags > cudaStreamNonBlocking) return cudaErrorInvalidValue;
    return cudaStreamCreate(s);
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    if (!s) return cudaErrorInvalidResourceHandle;
    drain(s); /* queued work completes, as on a device */
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    if (s) drain(s);
    return sync_status();
}

cudaError_t cudaEventCreate(cudaEvent_t *e)
{
    *e = new eqk_emu_event();
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    if (!e) return cudaErrorInvalidResourceHandle;
    e->stream = s;
    e->recorded = true;
    e->done = false;
    eqk_emu::stream_enqueue(s, [e] {
        e->t = std::chrono::steady_clock::now();
        e->done = true;
    });
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    if (!e || !e->recorded) return cudaErrorInvalidResourceHandle;
    if (e->stream) drain(e->stream);
    return sync_status();
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    if (!a || !b || !a->done || !b->done) return cudaErrorInvalidResourceHandle;
    *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
    return cudaSuccess;
}

int eqk_emu_is_device_range(const void *p, size_t bytes)
{
    return dev_range(p, bytes);
}

} // extern "C"

/* ---- the fake cuBLASLt ------------------------------------------------------- */

struct eqk_emu_lt_handle {
    uint32_t magic = 0x4c54484e;
};
struct eqk_emu_lt_desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
};
struct eqk_emu_lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
struct eqk_emu_lt_pref {
    uint64_t max_ws = 0;
};

namespace
{
thread_local std::string t_lt_msg;
thread_local cublasStatus_t t_lt_status = CUBLAS_STATUS_SUCCESS;
constexpr uint64_t kAlgoMagic = 0x454d55414c474f31ull; /* "EMUALGO1" */

cublasStatus_t lt_refuse(cublasStatus_t s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
cublasStatus_t lt_refuse(cublasStatus_t s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    t_lt_msg = std::string("emulated cuBLASLt: ") + msg;
    t_lt_status = s;
    fprintf(stderr, "%s\n", t_lt_msg.c_str());
    return s;
}

const char *type_name(cudaDataType_t t)
{
    switch (t) {
    case CUDA_R_32F:
        return "CUDA_R_32F";
    case CUDA_R_16F:
        return "CUDA_R_16F";
    case CUDA_R_16BF:
        return "CUDA_R_16BF";
    }
    return "an unmodelled cudaDataType";
}

size_t type_size(cudaDataType_t t)
{
    return t == CUDA_R_32F ? 4 : 2;
}

/* The problem a descriptor set defines, once checked. */
struct problem {
    uint64_t m, n, k;
    int32_t ta, tb;
    eqk_emu_lt_layout a, b, c, d;
};

uint64_t problem_key(const problem &p)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const uint64_t v[] = {p.m,
                          p.n,
                          p.k,
                          (uint64_t)p.ta,
                          (uint64_t)p.tb,
                          (uint64_t)p.a.ld,
                          (uint64_t)p.b.ld,
                          (uint64_t)p.c.ld,
                          (uint64_t)p.d.ld,
                          (uint64_t)p.a.type,
                          (uint64_t)p.c.type};
    for (uint64_t x : v)
        h = (h ^ x) * 0x100000001b3ull;
    return h;
}

cublasStatus_t check_problem(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t A,
                             cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t C,
                             cublasLtMatrixLayout_t D, problem *p)
{
    if (!h || h->magic != 0x4c54484e)
        return lt_refuse(CUBLAS_STATUS_NOT_INITIALIZED, "invalid cublasLtHandle_t");
    if (!d || !A || !B || !C || !D)
        return lt_refuse(CUBLAS_STATUS_INVALID_VALUE, "a NULL descriptor");
    if (d->compute != CUBLAS_COMPUTE_32F || d->scale != CUDA_R_32F)
        return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                         "the reference GEMM models compute type CUBLAS_COMPUTE_32F with scale "
                         "type CUDA_R_32F only (got compute %d, scale %s)",
                         (int)d->compute, type_name(d->scale));
    if (A->type != CUDA_R_16BF || B->type != CUDA_R_16BF)
        return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                         "the reference GEMM models bf16 A and B only (got %s, %s)",
                         type_name(A->type), type_name(B->type));
    if (C->type != D->type || (D->type != CUDA_R_16BF && D->type != CUDA_R_32F))
        return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                         "C and D must both be CUDA_R_16BF or both CUDA_R_32F (got %s, %s)",
                         type_name(C->type), type_name(D->type));
    /* op(A) is m x k, op(B) k x n, C and D m x n */
    const uint64_t am = d->transa == CUBLAS_OP_N ? A->rows : A->cols;
    const uint64_t ak = d->transa == CUBLAS_OP_N ? A->cols : A->rows;
    const uint64_t bk = d->transb == CUBLAS_OP_N ? B->rows : B->cols;
    const uint64_t bn = d->transb == CUBLAS_OP_N ? B->cols : B->rows;
    if (am != D->rows || bn != D->cols || ak != bk || C->rows != D->rows || C->cols != D->cols)
        return lt_refuse(CUBLAS_STATUS_INVALID_VALUE,
                         "shapes disagree: op(A) %llux%llu (trans %d), op(B) %llux%llu (trans "
                         "%d), C %llux%llu, D %llux%llu",
                         (unsigned long long)am, (unsigned long long)ak, d->transa,
                         (unsigned long long)bk, (unsigned long long)bn, d->transb,
                         (unsigned long long)C->rows, (unsigned long long)C->cols,
                         (unsigned long long)D->rows, (unsigned long long)D->cols);
    if (am == 0 || bn == 0 || ak == 0)
        return lt_refuse(CUBLAS_STATUS_INVALID_VALUE, "an empty GEMM (m %llu, n %llu, k %llu)",
                         (unsigned long long)am, (unsigned long long)bn, (unsigned long long)ak);
    p->m = am;
    p->n = bn;
    p->k = ak;
    p->ta = d->transa;
    p->tb = d->transb;
    p->a = *A;
    p->b = *B;
    p->c = *C;
    p->d = *D;
    return CUBLAS_STATUS_SUCCESS;
}

/* bytes from a matrix's first element to one past its last */
size_t extent(const eqk_emu_lt_layout &l)
{
    return ((size_t)l.ld * (size_t)(l.cols - 1) + (size_t)l.rows) * type_size(l.type);
}

float load(const void *base, cudaDataType_t t, size_t i)
{
    if (t == CUDA_R_32F) return ((const float *)base)[i];
    const uint32_t u = (uint32_t)((const uint16_t *)base)[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void store(void *base, cudaDataType_t t, size_t i, float v)
{
    if (t == CUDA_R_32F)
        ((float *)base)[i] = v;
    else
        ((uint16_t *)base)[i] = eqk_emu::f32_to_bf16_bits(v);
}

/* D = alpha op(A) op(B) + beta C, column-major, fp32 sums in k order. */
void reference_gemm(const problem &p, float alpha, const void *A, const void *B, float beta,
                    const void *C, void *D)
{
    const size_t m = p.m, n = p.n, k = p.k;
    /* op(A) rows and op(B) columns gathered as contiguous fp32 k-vectors */
    std::vector<float> ar(m * k), bc(n * k);
    for (size_t i = 0; i < m; i++)
        for (size_t q = 0; q < k; q++)
            ar[i * k + q] = load(
                A, p.a.type, p.ta == CUBLAS_OP_N ? i + q * (size_t)p.a.ld : q + i * (size_t)p.a.ld);
    for (size_t j = 0; j < n; j++)
        for (size_t q = 0; q < k; q++)
            bc[j * k + q] = load(
                B, p.b.type, p.tb == CUBLAS_OP_N ? q + j * (size_t)p.b.ld : j + q * (size_t)p.b.ld);
    std::vector<float> out(m * n);
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < m; i++) {
            const float *x = &ar[i * k], *y = &bc[j * k];
            float s = 0.0f;
            for (size_t q = 0; q < k; q++)
                s += x[q] * y[q];
            float v = alpha * s;
            if (beta != 0.0f) v += beta * load(C, p.c.type, i + j * (size_t)p.c.ld);
            out[i + j * m] = v;
        }
    /* written after every C value was read: C may be D */
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < m; i++)
            store(D, p.d.type, i + j * (size_t)p.d.ld, out[i + j * m]);
}

} // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h)
{
    *h = new eqk_emu_lt_handle();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h)
{
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasLtGetStatusName(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS:
        return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
        return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
        return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
        return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
        return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
        return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
        return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
        return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

const char *cublasLtGetStatusString(cublasStatus_t s)
{
    if (s != CUBLAS_STATUS_SUCCESS && s == t_lt_status && !t_lt_msg.empty())
        return t_lt_msg.c_str();
    return s == CUBLAS_STATUS_SUCCESS ? "success" : "emulated cuBLASLt: error";
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute,
                                        cudaDataType_t scale)
{
    *d = new eqk_emu_lt_desc();
    (*d)->compute = compute;
    (*d)->scale = scale;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t n)
{
    if (!d || !buf) return lt_refuse(CUBLAS_STATUS_INVALID_VALUE, "NULL descriptor or buffer");
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB: {
        int32_t v;
        if (n != sizeof v)
            return lt_refuse(CUBLAS_STATUS_INVALID_VALUE,
                             "CUBLASLT_MATMUL_DESC_TRANS%c takes %zu bytes, got %zu",
                             attr == CUBLASLT_MATMUL_DESC_TRANSA ? 'A' : 'B', sizeof v, n);
        memcpy(&v, buf, sizeof v);
        if (v != CUBLAS_OP_N && v != CUBLAS_OP_T)
            return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                             "CUBLASLT_MATMUL_DESC_TRANS%c = %d: the reference GEMM models "
                             "CUBLAS_OP_N and CUBLAS_OP_T only",
                             attr == CUBLASLT_MATMUL_DESC_TRANSA ? 'A' : 'B', (int)v);
        (attr == CUBLASLT_MATMUL_DESC_TRANSA ? d->transa : d->transb) = v;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: {
        int32_t v;
        if (n != sizeof v) return lt_refuse(CUBLAS_STATUS_INVALID_VALUE, "attribute size %zu", n);
        memcpy(&v, buf, sizeof v);
        if (attr == CUBLASLT_MATMUL_DESC_COMPUTE_TYPE)
            d->compute = (cublasComputeType_t)v;
        else
            d->scale = (cudaDataType_t)v;
        return CUBLAS_STATUS_SUCCESS; /* checked against what is modelled at use */
    }
    case CUBLASLT_MATMUL_DESC_EPILOGUE: {
        uint32_t v;
        if (n != sizeof v) return lt_refuse(CUBLAS_STATUS_INVALID_VALUE, "attribute size %zu", n);
        memcpy(&v, buf, sizeof v);
        if (v != CUBLASLT_EPILOGUE_DEFAULT)
            return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                             "CUBLASLT_MATMUL_DESC_EPILOGUE = %u: the reference GEMM models "
                             "CUBLASLT_EPILOGUE_DEFAULT only",
                             v);
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: {
        int32_t v;
        if (n != sizeof v) return lt_refuse(CUBLAS_STATUS_INVALID_VALUE, "attribute size %zu", n);
        memcpy(&v, buf, sizeof v);
        if (v != CUBLASLT_POINTER_MODE_HOST)
            return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                             "CUBLASLT_MATMUL_DESC_POINTER_MODE = %d: the reference GEMM models "
                             "host alpha/beta only",
                             (int)v);
        return CUBLAS_STATUS_SUCCESS;
    }
    default:
        return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                         "matmul descriptor attribute %d is not modelled by the reference GEMM "
                         "(kernels/emu/include/cublasLt.h)",
                         (int)attr);
    }
}

cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t d,
                                              cublasLtMatmulDescAttributes_t attr, void *buf,
                                              size_t n, size_t *written)
{
    int32_t v;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
        v = d->transa;
        break;
    case CUBLASLT_MATMUL_DESC_TRANSB:
        v = d->transb;
        break;
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
        v = d->compute;
        break;
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
        v = d->scale;
        break;
    default:
        return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                         "matmul descriptor attribute %d is not modelled", (int)attr);
    }
    if (written) *written = sizeof v;
    if (n < sizeof v || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(buf, &v, sizeof v);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld)
{
    *l = nullptr;
    if (type != CUDA_R_16BF && type != CUDA_R_32F)
        return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                         "matrix layout type %d: the reference GEMM models CUDA_R_16BF and "
                         "CUDA_R_32F only",
                         (int)type);
    if (ld < (int64_t)rows || ld < 1)
        return lt_refuse(CUBLAS_STATUS_INVALID_VALUE,
                         "matrix layout %llux%llu with leading dimension %lld < rows "
                         "(column-major)",
                         (unsigned long long)rows, (unsigned long long)cols, (long long)ld);
    *l = new eqk_emu_lt_layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l,
                                                cublasLtMatrixLayoutAttribute_t attr,
                                                const void *buf, size_t n)
{
    if (!l || !buf) return lt_refuse(CUBLAS_STATUS_INVALID_VALUE, "NULL layout or buffer");
    if (attr == CUBLASLT_MATRIX_LAYOUT_ORDER || attr == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT) {
        int32_t v;
        if (n != sizeof v) return lt_refuse(CUBLAS_STATUS_INVALID_VALUE, "attribute size %zu", n);
        memcpy(&v, buf, sizeof v);
        if (attr == CUBLASLT_MATRIX_LAYOUT_ORDER && v != CUBLASLT_ORDER_COL)
            return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                             "CUBLASLT_MATRIX_LAYOUT_ORDER = %d: the reference GEMM models "
                             "CUBLASLT_ORDER_COL only",
                             (int)v);
        if (attr == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT && v != 1)
            return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                             "CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = %d: the reference GEMM "
                             "models one matrix per layout",
                             (int)v);
        return CUBLAS_STATUS_SUCCESS;
    }
    return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                     "matrix layout attribute %d is not modelled by the reference GEMM "
                     "(kernels/emu/include/cublasLt.h)",
                     (int)attr);
}

cublasStatus_t cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t l,
                                                cublasLtMatrixLayoutAttribute_t attr, void *buf,
                                                size_t n, size_t *written)
{
    uint64_t v64 = 0;
    int64_t ld = 0;
    int32_t v32 = 0;
    const void *src;
    size_t sz;
    switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE:
        v32 = l->type, src = &v32, sz = 4;
        break;
    case CUBLASLT_MATRIX_LAYOUT_ORDER:
        v32 = CUBLASLT_ORDER_COL, src = &v32, sz = 4;
        break;
    case CUBLASLT_MATRIX_LAYOUT_ROWS:
        v64 = l->rows, src = &v64, sz = 8;
        break;
    case CUBLASLT_MATRIX_LAYOUT_COLS:
        v64 = l->cols, src = &v64, sz = 8;
        break;
    case CUBLASLT_MATRIX_LAYOUT_LD:
        ld = l->ld, src = &ld, sz = 8;
        break;
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT:
        v32 = 1, src = &v32, sz = 4;
        break;
    default:
        return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED, "matrix layout attribute %d is not modelled",
                         (int)attr);
    }
    if (written) *written = sz;
    if (n < sz || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(buf, src, sz);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p)
{
    *p = new eqk_emu_lt_pref();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p)
{
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t n)
{
    if (!p || !buf) return lt_refuse(CUBLAS_STATUS_INVALID_VALUE, "NULL preference or buffer");
    if (attr != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES)
        return lt_refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                         "matmul preference attribute %d is not modelled", (int)attr);
    if (n != sizeof p->max_ws)
        return lt_refuse(CUBLAS_STATUS_INVALID_VALUE,
                         "CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES takes 8 bytes, got %zu", n);
    memcpy(&p->max_ws, buf, sizeof p->max_ws);
    return CUBLAS_STATUS_SUCCESS;
}

/* One algorithm: it remembers the problem it was found for, and asks for a
 * workspace (up to 1 MiB within the preference) so that the plan's
 * workspace handling is exercised. */
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
                                              cublasLtMatrixLayout_t Ad, cublasLtMatrixLayout_t Bd,
                                              cublasLtMatrixLayout_t Cd, cublasLtMatrixLayout_t Dd,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int *returned)
{
    problem p{};
    cublasStatus_t s = check_problem(h, d, Ad, Bd, Cd, Dd, &p);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (!pref || requested < 1 || !results || !returned)
        return lt_refuse(CUBLAS_STATUS_INVALID_VALUE, "heuristic query without room for a result");
    memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = kAlgoMagic;
    results[0].algo.data[1] = problem_key(p);
    results[0].workspaceSize = pref->max_ws < ((size_t)1 << 20) ? pref->max_ws : (size_t)1 << 20;
    results[0].algo.data[2] = results[0].workspaceSize;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Ad, const void *B,
                              cublasLtMatrixLayout_t Bd, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cd, void *D, cublasLtMatrixLayout_t Dd,
                              const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes,
                              cudaStream_t stream)
{
    problem p{};
    cublasStatus_t s = check_problem(h, d, Ad, Bd, Cd, Dd, &p);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (!alpha || !beta) return lt_refuse(CUBLAS_STATUS_INVALID_VALUE, "NULL alpha or beta");
    const float a = *(const float *)alpha, b = *(const float *)beta;
    if (algo) {
        if (algo->data[0] != kAlgoMagic)
            return lt_refuse(CUBLAS_STATUS_INVALID_VALUE,
                             "the algo was not returned by cublasLtMatmulAlgoGetHeuristic");
        if (algo->data[1] != problem_key(p))
            return lt_refuse(CUBLAS_STATUS_INVALID_VALUE,
                             "the algo was found for another problem than this m %llu n %llu "
                             "k %llu GEMM (layouts or transposes differ)",
                             (unsigned long long)p.m, (unsigned long long)p.n,
                             (unsigned long long)p.k);
        if (ws_bytes < algo->data[2])
            return lt_refuse(CUBLAS_STATUS_INVALID_VALUE,
                             "workspace of %zu bytes, the algo needs %llu", ws_bytes,
                             (unsigned long long)algo->data[2]);
    }
    if (ws_bytes && !eqk_emu_is_device_range(ws, ws_bytes))
        return lt_refuse(CUBLAS_STATUS_INVALID_VALUE,
                         "workspace %p + %zu bytes is not inside one device allocation", ws,
                         ws_bytes);
    if (C == D && (p.c.ld != p.d.ld || p.c.type != p.d.type))
        return lt_refuse(CUBLAS_STATUS_INVALID_VALUE,
                         "in place (C == D) with different C and D layouts");
    const struct {
        const void *ptr;
        const eqk_emu_lt_layout *l;
        char name;
    } ops[] = {
        {A, &p.a, 'A'}, {B, &p.b, 'B'}, {b != 0.0f ? C : nullptr, &p.c, 'C'}, {D, &p.d, 'D'}};
    for (const auto &o : ops) {
        if (o.name == 'C' && !o.ptr) continue; /* beta 0: C is not read */
        if (!o.ptr || !eqk_emu_is_device_range(o.ptr, extent(*o.l)))
            return lt_refuse(CUBLAS_STATUS_INVALID_VALUE,
                             "%c = %p: its %llux%llu layout (ld %lld, %s) is not inside one "
                             "device allocation",
                             o.name, o.ptr, (unsigned long long)o.l->rows,
                             (unsigned long long)o.l->cols, (long long)o.l->ld,
                             type_name(o.l->type));
        if ((uintptr_t)o.ptr % 16)
            return lt_refuse(CUBLAS_STATUS_INVALID_VALUE, "%c = %p is not 16-byte aligned", o.name,
                             o.ptr);
    }
    eqk_emu::stream_enqueue(stream, [p, a, A, B, b, C, D] { reference_gemm(p, a, A, B, b, C, D); });
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
