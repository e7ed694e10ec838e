/* eqk_emu_runtime.h (emulator shim) - the part of the CUDA runtime API that
 * the kernels' launchers and engine/gpu_backend.c use, for C and C++, as
 * implemented on the host by kernels/emu/runtime.cpp (the "emu" device:
 * docs/kernels.md, "The engine on the emulator").
 *
 * Every function is renamed by macro to eqk_emu_<name>, so that a binary
 * holds both this runtime and the real one (libcudart) without a clash: the
 * emulated build of gpu_backend.c sees cudaMalloc and calls
 * eqk_emu_cudaMalloc. Error codes and the struct fields used keep the real
 * runtime's names and values (driver_types.h).
 *
 * Semantics (runtime.cpp):
 *   - device memory is host memory; cudaMalloc is one heap block of exactly
 *     the requested size (AddressSanitizer sees overruns) and every
 *     allocation is registered: a copy's device side must lie inside one
 *     live device allocation and its host side outside every one (a
 *     refused call returns cudaErrorInvalidValue, not sticky);
 *   - a stream is a queue: kernel launches, asynchronous copies, cuBLASLt
 *     GEMMs and event records run only when the host synchronizes
 *     (cudaStreamSynchronize, cudaEventSynchronize, cudaStreamDestroy), the
 *     worst case for a missing synchronization; the NULL stream runs at
 *     once;
 *   - one fake device (cudaGetDeviceProperties): sm_86, 16 GiB, whose free
 *     memory falls by what is allocated;
 *   - a kernel error found by the emulator (a race, an out-of-bounds shared
 *     access, a deadlock) makes later synchronizations fail with
 *     cudaErrorLaunchFailure, and cudaGetErrorString then gives the
 *     emulator's message.
 * Written by hand: the real header declares the whole runtime, which has
 * no host implementation.
 */
#ifndef EQK_EMU_RUNTIME_H
#define EQK_EMU_RUNTIME_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorLaunchFailure = 719,
} cudaError_t;

typedef struct eqk_emu_stream *cudaStream_t;
typedef struct eqk_emu_event *cudaEvent_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
};

#define cudaStreamDefault     0x00
#define cudaStreamNonBlocking 0x01

/* The fields of the real struct that the engine reads. */
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
    int multiProcessorCount;
    size_t sharedMemPerBlockOptin;
};

#define cudaGetLastError          eqk_emu_cudaGetLastError
#define cudaGetErrorName          eqk_emu_cudaGetErrorName
#define cudaGetErrorString        eqk_emu_cudaGetErrorString
#define cudaGetDeviceCount        eqk_emu_cudaGetDeviceCount
#define cudaSetDevice             eqk_emu_cudaSetDevice
#define cudaGetDeviceProperties   eqk_emu_cudaGetDeviceProperties
#define cudaMemGetInfo            eqk_emu_cudaMemGetInfo
#define cudaMalloc                eqk_emu_cudaMalloc
#define cudaFree                  eqk_emu_cudaFree
#define cudaMallocHost            eqk_emu_cudaMallocHost
#define cudaFreeHost              eqk_emu_cudaFreeHost
#define cudaMemcpy                eqk_emu_cudaMemcpy
#define cudaMemcpyAsync           eqk_emu_cudaMemcpyAsync
#define cudaStreamCreate          eqk_emu_cudaStreamCreate
#define cudaStreamCreateWithFlags eqk_emu_cudaStreamCreateWithFlags
#define cudaStreamDestroy         eqk_emu_cudaStreamDestroy
#define cudaStreamSynchronize     eqk_emu_cudaStreamSynchronize
#define cudaEventCreate           eqk_emu_cudaEventCreate
#define cudaEventDestroy          eqk_emu_cudaEventDestroy
#define cudaEventRecord           eqk_emu_cudaEventRecord
#define cudaEventSynchronize      eqk_emu_cudaEventSynchronize
#define cudaEventElapsedTime      eqk_emu_cudaEventElapsedTime

cudaError_t cudaGetLastError(void);
const char *cudaGetErrorName(cudaError_t e);
/* For cudaErrorLaunchFailure: the emulator's first kernel error too. */
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);

/* For the fake cuBLASLt (runtime.cpp): whether [p, p + bytes) lies inside
 * one live device allocation. */
int eqk_emu_is_device_range(const void *p, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
