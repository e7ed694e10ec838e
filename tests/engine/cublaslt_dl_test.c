/* cublaslt_dl_test.c - engine/cublaslt_dl.c: cuBLASLt is loaded on first use.
 *
 *   cublaslt_dl_test EMBEDQ_BIN
 *
 * 1. The embedq binary does not name libcublasLt among its needed libraries
 *    (so the dynamic loader does not map it at start; `readelf -d`), and
 *    the library is not mapped in this process before the first call
 *    (/proc/self/maps).
 * 2. The forwarders reach the real library: status names, and host-only
 *    descriptors (matrix layout, matmul descriptor and its attributes,
 *    preference) created, set and destroyed. None of these needs a GPU.
 * Exit 0 = pass; 1 = fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>

static int fails;
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c);                           \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

static int mapped(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[4096];
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "libcublasLt")) found = 1;
    fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: cublaslt_dl_test EMBEDQ_BIN\n");
        return 2;
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "readelf -d '%s' | grep NEEDED", argv[1]);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (p) {
        char line[1024];
        int n = 0, lt = 0;
        while (fgets(line, sizeof line, p)) {
            n++;
            if (strstr(line, "cublas")) lt = 1;
        }
        pclose(p);
        CHECK(n > 0); /* readelf ran and the binary is dynamic */
        CHECK(!lt);
        printf("%s: %d needed libraries, cuBLASLt %s\n", argv[1], n, lt ? "among them" : "not");
    }

    CHECK(mapped() == 0);
    CHECK(strcmp(cublasLtGetStatusName(CUBLAS_STATUS_SUCCESS), "CUBLAS_STATUS_SUCCESS") == 0);
    CHECK(mapped() == 1);
    CHECK(strcmp(cublasLtGetStatusName(CUBLAS_STATUS_INVALID_VALUE),
                 "CUBLAS_STATUS_INVALID_VALUE") == 0);

    cublasLtMatrixLayout_t l = NULL;
    CHECK(cublasLtMatrixLayoutCreate(&l, CUDA_R_16BF, 1024, 3072, 1024) == CUBLAS_STATUS_SUCCESS);
    CHECK(l != NULL);
    if (l) CHECK(cublasLtMatrixLayoutDestroy(l) == CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulDesc_t d = NULL;
    CHECK(cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    if (d) {
        cublasOperation_t t = CUBLAS_OP_T;
        CHECK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t) ==
              CUBLAS_STATUS_SUCCESS);
        /* A wrong attribute size is refused by the real library (not by us). */
        CHECK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &t, 1) ==
              CUBLAS_STATUS_INVALID_VALUE);
        CHECK(cublasLtMatmulDescDestroy(d) == CUBLAS_STATUS_SUCCESS);
    }
    cublasLtMatmulPreference_t pref = NULL;
    CHECK(cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS);
    if (pref) {
        size_t ws = 32u << 20;
        CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                   &ws, sizeof ws) == CUBLAS_STATUS_SUCCESS);
        CHECK(cublasLtMatmulPreferenceDestroy(pref) == CUBLAS_STATUS_SUCCESS);
    }
    printf("cublaslt_dl: %s\n",
           fails ? "FAILED" : "ok (loaded on first call, forwarders reach it)");
    return fails ? 1 : 0;
}
