/* cublasLt.h (emulator shim) - a fake cuBLASLt for the "emu" device: the
 * part of the API that engine/gpu_backend.c uses, with the real header's
 * names, enum values and signatures (cublasLt.h, cublas_api.h and
 * library_types.h of CUDA 13), implemented in kernels/emu/runtime.cpp.
 *
 * cublasLtMatmul runs a column-major reference GEMM that reads the
 * descriptors exactly as cuBLASLt defines them:
 *   D (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C,
 * op() from CUBLASLT_MATMUL_DESC_TRANSA/TRANSB, each matrix from its layout
 * (type, rows, cols, leading dimension; element (r, c) at r + c * ld), bf16
 * inputs, fp32 products and sums (CUBLAS_COMPUTE_32F), fp32 alpha/beta
 * (scale type CUDA_R_32F), D rounded to nearest even. It checks what real
 * cuBLASLt requires (shapes that agree, ld >= rows, an in-place C == D
 * with the same layout, operands inside live device allocations, an algo
 * from cublasLtMatmulAlgoGetHeuristic for this very problem, the workspace
 * that algo asked for) and refuses, with a message in
 * cublasLtGetStatusString, any attribute or value it does not model (an
 * epilogue, another compute type, a row-major order, batches, ...): a
 * plan that sets one fails loudly instead of being computed as if it had
 * not. Like a stream's other work, the GEMM runs when the stream is
 * synchronized. Written by hand: there is no host cuBLASLt.
 */
#ifndef EQK_EMU_CUBLASLT_H
#define EQK_EMU_CUBLASLT_H

#include <stddef.h>
#include <stdint.h>

#include "eqk_emu_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CUBLAS_VER_MAJOR 13

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
} cublasStatus_t;

typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;

typedef enum {
    CUBLAS_COMPUTE_16F = 64,
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_32F_FAST_16F = 74,
    CUBLAS_COMPUTE_32F_FAST_16BF = 75,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
} cublasComputeType_t;

typedef enum cudaDataType_t {
    CUDA_R_32F = 0,
    CUDA_R_16F = 2,
    CUDA_R_16BF = 14,
} cudaDataType_t;
typedef cudaDataType_t cudaDataType;

typedef enum {
    CUBLASLT_MATRIX_LAYOUT_TYPE = 0,
    CUBLASLT_MATRIX_LAYOUT_ORDER = 1,
    CUBLASLT_MATRIX_LAYOUT_ROWS = 2,
    CUBLASLT_MATRIX_LAYOUT_COLS = 3,
    CUBLASLT_MATRIX_LAYOUT_LD = 4,
    CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5,
    CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6,
} cublasLtMatrixLayoutAttribute_t;

typedef enum { CUBLASLT_ORDER_COL = 0, CUBLASLT_ORDER_ROW = 1 } cublasLtOrder_t;

typedef enum {
    CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0,
    CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1,
    CUBLASLT_MATMUL_DESC_POINTER_MODE = 2,
    CUBLASLT_MATMUL_DESC_TRANSA = 3,
    CUBLASLT_MATMUL_DESC_TRANSB = 4,
    CUBLASLT_MATMUL_DESC_TRANSC = 5,
    CUBLASLT_MATMUL_DESC_FILL_MODE = 6,
    CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,
} cublasLtMatmulDescAttributes_t;

typedef enum { CUBLASLT_POINTER_MODE_HOST = 0 } cublasLtPointerMode_t;
typedef enum { CUBLASLT_EPILOGUE_DEFAULT = 1 } cublasLtEpilogue_t;

typedef enum {
    CUBLASLT_MATMUL_PREF_SEARCH_MODE = 0,
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
} cublasLtMatmulPreferenceAttributes_t;

typedef struct eqk_emu_lt_handle *cublasLtHandle_t;
typedef struct eqk_emu_lt_desc *cublasLtMatmulDesc_t;
typedef struct eqk_emu_lt_layout *cublasLtMatrixLayout_t;
typedef struct eqk_emu_lt_pref *cublasLtMatmulPreference_t;

typedef struct {
    uint64_t data[8];
} cublasLtMatmulAlgo_t;

typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

#define cublasLtCreate                       eqk_emu_cublasLtCreate
#define cublasLtDestroy                      eqk_emu_cublasLtDestroy
#define cublasLtGetStatusName                eqk_emu_cublasLtGetStatusName
#define cublasLtGetStatusString              eqk_emu_cublasLtGetStatusString
#define cublasLtMatmul                       eqk_emu_cublasLtMatmul
#define cublasLtMatmulAlgoGetHeuristic       eqk_emu_cublasLtMatmulAlgoGetHeuristic
#define cublasLtMatmulDescCreate             eqk_emu_cublasLtMatmulDescCreate
#define cublasLtMatmulDescDestroy            eqk_emu_cublasLtMatmulDescDestroy
#define cublasLtMatmulDescSetAttribute       eqk_emu_cublasLtMatmulDescSetAttribute
#define cublasLtMatmulDescGetAttribute       eqk_emu_cublasLtMatmulDescGetAttribute
#define cublasLtMatmulPreferenceCreate       eqk_emu_cublasLtMatmulPreferenceCreate
#define cublasLtMatmulPreferenceDestroy      eqk_emu_cublasLtMatmulPreferenceDestroy
#define cublasLtMatmulPreferenceSetAttribute eqk_emu_cublasLtMatmulPreferenceSetAttribute
#define cublasLtMatrixLayoutCreate           eqk_emu_cublasLtMatrixLayoutCreate
#define cublasLtMatrixLayoutDestroy          eqk_emu_cublasLtMatrixLayoutDestroy
#define cublasLtMatrixLayoutSetAttribute     eqk_emu_cublasLtMatrixLayoutSetAttribute
#define cublasLtMatrixLayoutGetAttribute     eqk_emu_cublasLtMatrixLayoutGetAttribute

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h);
const char *cublasLtGetStatusName(cublasStatus_t s);
/* The calling thread's last refusal message, when s is that refusal's. */
const char *cublasLtGetStatusString(cublasStatus_t s);
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Ad, const void *B,
                              cublasLtMatrixLayout_t Bd, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cd, void *D, cublasLtMatrixLayout_t Dd,
                              const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes,
                              cudaStream_t stream);
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
                                              cublasLtMatrixLayout_t Ad, cublasLtMatrixLayout_t Bd,
                                              cublasLtMatrixLayout_t Cd, cublasLtMatrixLayout_t Dd,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int *returned);
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute,
                                        cudaDataType_t scale);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t n);
cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t d,
                                              cublasLtMatmulDescAttributes_t attr, void *buf,
                                              size_t n, size_t *written);
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t n);
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l);
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l,
                                                cublasLtMatrixLayoutAttribute_t attr,
                                                const void *buf, size_t n);
cublasStatus_t cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t l,
                                                cublasLtMatrixLayoutAttribute_t attr, void *buf,
                                                size_t n, size_t *written);

#ifdef __cplusplus
}
#endif

#endif
