/* cpu_peak.c - this CPU's fp32 FMA and bf16 dot-product rates, measured: a
 * loop of 24 independent zmm vfmadd231ps / vdpbf16ps (inline assembly so
 * that the compiler cannot merge them), on 1 and 2 threads, and the clock
 * from a chain of dependent adds (1 per cycle). Gives flop/cycle/core =
 * rate / clock, the "units" of the peak rates in docs/benchmarks.md.
 * x86-64 with AVX-512 BF16 only. Not a test. */
#include <omp.h>
#include <stdio.h>
#include <time.h>
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
#define R8(op, a, b) op " %%zmm30,%%zmm31,%%zmm" #a "\n" op " %%zmm30,%%zmm31,%%zmm" #b "\n"
#define BODY(op)                                                                                   \
    R8(op, 0, 1)                                                                                   \
    R8(op, 2, 3) R8(op, 4, 5) R8(op, 6, 7) R8(op, 8, 9) R8(op, 10, 11) R8(op, 12, 13)              \
        R8(op, 14, 15) R8(op, 16, 17) R8(op, 18, 19) R8(op, 20, 21) R8(op, 22, 23)
static void loop_fma(long n)
{
    __asm__ volatile("vpxord %%zmm30,%%zmm30,%%zmm30\n vpxord %%zmm31,%%zmm31,%%zmm31\n1:\n" BODY(
                         "vfmadd231ps") "dec %0\n jnz 1b"
                     : "+r"(n)::"memory");
}
static void loop_bf16(long n)
{
    __asm__ volatile("vpxord %%zmm30,%%zmm30,%%zmm30\n vpxord %%zmm31,%%zmm31,%%zmm31\n1:\n" BODY(
                         "vdpbf16ps") "dec %0\n jnz 1b"
                     : "+r"(n)::"memory");
}
static double clock_ghz(void)
{
    long n = 1000000000;
    double t0 = now();
    long v = 0;
    __asm__ volatile("1: add $1,%0\n add $1,%0\n add $1,%0\n add $1,%0\n sub $4,%1\n jnz 1b"
                     : "+r"(v), "+r"(n));
    return 1e9 / (now() - t0) * 1e-9;
}
int main()
{
    long n = 20000000;
    for (int th = 1; th <= 2; th++) {
        double g = 0;
        double t0 = now();
#pragma omp parallel num_threads(th)
        loop_fma(n);
        double t = now() - t0;
        printf("%d thr fp32 vfmadd231ps zmm: %.1f GFLOP/s\n", th, 24.0 * n * 32 * th / t * 1e-9);
        t0 = now();
#pragma omp parallel num_threads(th)
        loop_bf16(n);
        t = now() - t0;
        printf("%d thr bf16 vdpbf16ps zmm: %.1f GFLOP/s\n", th, 24.0 * n * 64 * th / t * 1e-9);
        (void)g;
    }
    printf("clock %.2f GHz (dependent add chain, 1 add/cycle)\n", clock_ghz());
}
