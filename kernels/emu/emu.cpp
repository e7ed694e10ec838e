/* emu.cpp - the kernel emulator's runtime (see emu.h).
 *
 * Fibers have mmap'd stacks with a guard page; a switch is a few lines of
 * assembly on x86-64 (callee-saved registers only) and ucontext elsewhere
 * (POSIX, in glibc; correct but a system call per switch). A worker thread runs one block at a
 * time: it creates the block's fibers and switches to the first; a fiber runs until it blocks on a
 * barrier, then switches straight to the next runnable fiber of its block (round robin). When none
 * is runnable the worker checks that all have finished; otherwise the block is deadlocked (a
 * barrier some threads never reach, a warp operation some lanes skip), which is reported.
 *
 * The PTX ISA (version 8.x, "Parallel Thread Execution ISA") defines the
 * warp-level instructions emulated here; each is cited where it is computed.
 */
#include "emu.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define EQK_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EQK_EMU_ASAN 1
#endif
#endif
#ifdef EQK_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

thread_local dim3 blockIdx, blockDim, gridDim;

namespace eqk_emu
{
namespace
{

/* ---- sticky errors ------------------------------------------------------ */

std::mutex g_err_mu;
std::string g_err;          /* first message since the last clear */
bool g_err_pending = false; /* for cudaGetLastError               */
std::atomic<long> g_blocks{0};
std::map<kernel_id, int> g_max_smem; /* cudaFuncAttributeMaxDynamicSharedMemorySize */

constexpr size_t kDefaultSmem = 48 * 1024;
constexpr size_t kMaxSmem = 101376; /* opt-in limit of sm_86/sm_89 (99 KB) */

/* ---- fibers and blocks -------------------------------------------------- */

enum fstate { RUNNABLE, AT_SYNC, AT_WARP, DONE };

struct cp_copy {
    uint32_t dst;
    const void *src;
    int src_bytes;
    bool waited; /* landed; retired at the next barrier */
};

struct ctx;
struct fiber {
    ctx *uc;
    unsigned char *stack;
    size_t stack_size;
    dim3 tid3;
    int tid;
    fstate st;
    std::vector<cp_copy> open;                /* issued, not yet committed */
    std::vector<std::vector<cp_copy>> groups; /* committed, oldest first   */
    std::vector<cp_copy> landed;              /* waited, until the barrier */
    int sync_pred;                            /* __syncthreads_or's result */
};

/* What a warp's lanes deposit for one warp-synchronous operation. */
enum wop { W_NONE, W_SHFL, W_LDSM, W_LDSM_T, W_MMA };
static const char *wop_name(int k)
{
    static const char *n[] = {"-", "__shfl_xor_sync", "ldmatrix.x4", "ldmatrix.x4.trans",
                              "mma.sync.m16n8k16"};
    return n[k];
}

struct lane_io {
    uint32_t in[8]; /* operands */
    float fin[4];
    uint32_t out[4]; /* results */
    float fout[4];
    unsigned mask;
};

struct warp {
    int kind = W_NONE;
    int arrived = 0;
    int lanes = 32;
    lane_io io[32];
};

struct shadow {
    uint64_t epoch;
    int32_t writer; /* -1: none */
    int32_t reader; /* -1: none, -2: several */
};

struct worker;

struct block_ctx {
    int nthreads;
    std::vector<warp> warps;
    int sync_arrived;
    int sync_or;
    unsigned char *smem; /* dynamic shared memory: exactly smem_size bytes */
    size_t smem_size;
    std::vector<shadow> shadow_map;
    uint64_t epoch;
    bool race_reported;
    const char *kernel;
    dim3 bid;
};

struct worker {
    ctx *main_uc;
    std::vector<fiber> fibers;
    block_ctx blk;
    fiber *cur = nullptr;
    int cur_i = 0;
    const std::function<void()> *body = nullptr;
    uint64_t epoch_base = 1;
    bool round_robin = false; /* scheduling policy, see yield_fiber */
#ifdef EQK_EMU_ASAN
    const void *main_stack_bottom = nullptr;
    size_t main_stack_size = 0;
#endif
};

thread_local worker *t_w = nullptr;

size_t stack_bytes()
{
#ifdef EQK_EMU_ASAN
    return 512 * 1024;
#else
    return 128 * 1024;
#endif
}

/* ---- context switches --------------------------------------------------- */

#if defined(__x86_64__)
/* x86-64 System V: a switch saves the callee-saved registers, MXCSR and the
 * x87 control word on the old stack and restores them from the new one.
 * glibc's swapcontext also saves the signal mask with a system call on every
 * switch, which took 85% of the emulator's time. */
extern "C" void eqk_emu_ctx_switch(void **save_sp, void *new_sp);
asm(".text\n"
    ".globl eqk_emu_ctx_switch\n"
    ".type eqk_emu_ctx_switch,@function\n"
    "eqk_emu_ctx_switch:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  subq $8, %rsp\n"
    "  stmxcsr (%rsp)\n"
    "  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n"
    "  fldcw 4(%rsp)\n"
    "  addq $8, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size eqk_emu_ctx_switch, .-eqk_emu_ctx_switch\n");

struct ctx {
    void *sp;
};
void fiber_main();

/* A new context that enters fiber_main() on [stack, stack + size). */
void ctx_make(ctx *c, unsigned char *stack, size_t size)
{
    uintptr_t top = ((uintptr_t)(stack + size)) & ~(uintptr_t)15;
    uint64_t *p = reinterpret_cast<uint64_t *>(top);
    *--p = 0;                                /* fiber_main's return address */
    *--p = (uint64_t)(uintptr_t)&fiber_main; /* popped by ret (16-aligned)   */
    for (int i = 0; i < 6; i++)
        *--p = 0; /* rbp rbx r12..r15           */
    uint32_t csr[2] = {0, 0};
    asm volatile("stmxcsr %0" : "=m"(csr[0]));
    asm volatile("fnstcw %0" : "=m"(csr[1]));
    *--p = (uint64_t)csr[0] | (uint64_t)(csr[1] & 0xffff) << 32;
    c->sp = p;
}
void ctx_swap(ctx *from, ctx *to)
{
    eqk_emu_ctx_switch(&from->sp, to->sp);
}
#else
struct ctx {
    ucontext_t uc;
};
void fiber_main();
void ctx_make(ctx *c, unsigned char *stack, size_t size)
{
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = nullptr;
    makecontext(&c->uc, fiber_main, 0);
}
void ctx_swap(ctx *from, ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}
#endif

/* Switches from context `from` (a finished fiber when from_done) to `to`,
 * whose stack is [bottom, bottom + size). */
void switch_ctx(ctx *from, bool from_done, ctx *to, const void *bottom, size_t size)
{
#ifdef EQK_EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(from_done ? nullptr : &fake, bottom, size);
    ctx_swap(from, to);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    (void)from_done;
    (void)bottom;
    (void)size;
    ctx_swap(from, to);
#endif
}

/* Leaves the current fiber for the next runnable one of the block, or for
 * the worker's own context when none is. The next one is the runnable fiber
 * of lowest index (default): the lowest warps run as far ahead of the others
 * as the barriers allow, so a missing barrier lets a fast warp overwrite
 * what a slow one has not read yet, or read what it has not written yet,
 * and the results show it even where the shadow map does not look (plain
 * accesses to static __shared__ arrays). EQK_EMU_SCHEDULE=round-robin runs
 * the next runnable fiber after the current one instead (warps in step). */
void yield_fiber(bool done)
{
    worker *w = t_w;
    fiber *self = w->cur;
    const int n = w->blk.nthreads;
    for (int k = 1; k <= n; k++) {
        const int i = w->round_robin ? (w->cur_i + k) % n : k - 1;
        fiber *f = &w->fibers[(size_t)i];
        if (f->st != RUNNABLE) continue;
        if (f == self) return; /* became runnable again: keep going */
        w->cur = f;
        w->cur_i = i;
        switch_ctx(self->uc, done, f->uc, f->stack, f->stack_size);
        return;
    }
    w->cur = nullptr;
#ifdef EQK_EMU_ASAN
    switch_ctx(self->uc, done, w->main_uc, w->main_stack_bottom, w->main_stack_size);
#else
    switch_ctx(self->uc, done, w->main_uc, nullptr, 0);
#endif
}

void block_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void block_error(const char *fmt, ...)
{
    worker *w = t_w;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const dim3 &b = w->blk.bid;
    if (w->cur)
        error("%s: block (%u,%u,%u) thread %d: %s", w->blk.kernel, b.x, b.y, b.z, w->cur->tid, msg);
    else
        error("%s: block (%u,%u,%u): %s", w->blk.kernel, b.x, b.y, b.z, msg);
}

/* ---- shadow map ------------------------------------------------------- */

void shadow_access(uint32_t off, uint32_t len, bool write, int tid, const char *what)
{
    block_ctx &b = t_w->blk;
    for (uint32_t i = off; i < off + len; i++) {
        shadow &s = b.shadow_map[i];
        if (s.epoch != b.epoch) s = shadow{b.epoch, -1, -1};
        int other = -1;
        const char *kind = nullptr;
        if (s.writer >= 0 && s.writer != tid) {
            other = s.writer;
            kind = write ? "write after write" : "read after write";
        } else if (write && s.reader != -1 && s.reader != tid) {
            other = s.reader;
            kind = "write after read";
        }
        if (kind && !b.race_reported) {
            b.race_reported = true;
            if (other >= 0)
                block_error("shared-memory race (%s) at byte %u: %s by thread %d, earlier access "
                            "by thread %d, no barrier between",
                            kind, i, what, tid, other);
            else
                block_error("shared-memory race (%s) at byte %u: %s by thread %d, earlier reads "
                            "by several threads, no barrier between",
                            kind, i, what, tid);
        }
        if (write)
            s.writer = tid;
        else
            s.reader = (s.reader == -1 || s.reader == tid) ? tid : -2;
    }
}

/* Checks an access of len bytes at shared offset off, aligned to align. */
bool smem_ok(uint32_t off, uint32_t len, uint32_t align, const char *what)
{
    block_ctx &b = t_w->blk;
    if ((size_t)off + len > b.smem_size) {
        block_error("%s: shared address %u + %u bytes outside the %zu bytes of dynamic shared "
                    "memory",
                    what, off, len, b.smem_size);
        return false;
    }
    if (off % align) {
        block_error("%s: shared address %u not %u-byte aligned", what, off, align);
        return false;
    }
    return true;
}

/* ---- cp.async ------------------------------------------------------------ */

void land(const cp_copy &c)
{
    unsigned char *d = t_w->blk.smem + c.dst;
    if (c.src_bytes) memcpy(d, c.src, (size_t)c.src_bytes);
    if (c.src_bytes < 16) memset(d + c.src_bytes, 0, (size_t)(16 - c.src_bytes));
}

/* At a barrier: copies that landed before it are retired; those still in
 * flight are writes in the new interval too. Runs once per barrier, after
 * the epoch moved on. */
void barrier_cp_async()
{
    worker *w = t_w;
    for (int t = 0; t < w->blk.nthreads; t++) {
        fiber &f = w->fibers[(size_t)t];
        f.landed.clear();
        for (const cp_copy &c : f.open)
            shadow_access(c.dst, 16, true, f.tid, "cp.async in flight");
        for (const auto &g : f.groups)
            for (const cp_copy &c : g)
                shadow_access(c.dst, 16, true, f.tid, "cp.async in flight");
    }
}

/* ---- warp operations ----------------------------------------------------- */

/* The calling lane's operand slot for a warp operation of this kind (an
 * error when other lanes of the warp wait in a different one). */
lane_io &warp_op(int kind)
{
    worker *w = t_w;
    fiber *self = w->cur;
    warp &wp = w->blk.warps[(size_t)(self->tid / 32)];
    if (wp.arrived == 0)
        wp.kind = kind;
    else if (wp.kind != kind)
        block_error("divergent warp: lane %d reached %s while other lanes wait in %s",
                    self->tid % 32, wop_name(kind), wop_name(wp.kind));
    return wp.io[self->tid % 32];
}

/* Returns after every lane of the warp arrived and the last one ran
 * compute(warp). */
template <typename F> void warp_arrive(int kind, F compute)
{
    worker *w = t_w;
    fiber *self = w->cur;
    warp &wp = w->blk.warps[(size_t)(self->tid / 32)];
    if (++wp.arrived == wp.lanes) {
        if (wp.kind == kind) compute(wp);
        wp.arrived = 0;
        wp.kind = W_NONE;
        const int base = self->tid / 32 * 32;
        for (int l = 0; l < wp.lanes; l++)
            if (w->fibers[(size_t)(base + l)].st == AT_WARP)
                w->fibers[(size_t)(base + l)].st = RUNNABLE;
        return;
    }
    self->st = AT_WARP;
    yield_fiber(false);
}

void fiber_main()
{
    worker *w = t_w;
#ifdef EQK_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
    (*w->body)();
    fiber *self = w->cur;
    if (!self->open.empty() || !self->groups.empty())
        block_error("exits with %zu cp.async copies not waited for",
                    self->open.size() + self->groups.size());
    self->st = DONE;
    yield_fiber(true);
}

/* Runs one block on this worker. */
void run_block(worker *w, const char *name, dim3 bid, dim3 block, size_t smem)
{
    const int n = (int)(block.x * block.y * block.z);
    block_ctx &b = w->blk;
    b.nthreads = n;
    b.kernel = name;
    b.bid = bid;
    b.sync_arrived = 0;
    b.sync_or = 0;
    b.race_reported = false;
    b.epoch = ++w->epoch_base;
    b.warps.assign((size_t)((n + 31) / 32), warp());
    if (n % 32) b.warps.back().lanes = n % 32;
    b.smem_size = smem;
    b.smem = smem ? static_cast<unsigned char *>(malloc(smem)) : nullptr;
    if (smem) {
        /* uninitialized on the GPU: NaN bytes here (bf16 and fp32), so a
         * read of a byte nobody wrote shows in the results */
        memset(b.smem, 0xFF, smem);
        if (b.shadow_map.size() < smem) b.shadow_map.resize(smem, shadow{0, -1, -1});
    }
    blockIdx = bid;
    if (w->fibers.size() < (size_t)n) w->fibers.resize((size_t)n);
    for (int t = 0; t < n; t++) {
        fiber &f = w->fibers[(size_t)t];
        if (!f.stack) {
            const size_t page = (size_t)sysconf(_SC_PAGESIZE);
            f.stack_size = stack_bytes();
            void *m = mmap(nullptr, f.stack_size + page, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (m == MAP_FAILED) {
                fprintf(stderr, "%s:%d: emu: mmap of a fiber stack failed\n", __FILE__, __LINE__);
                abort();
            }
            mprotect(m, page, PROT_NONE); /* guard page below the stack */
            f.stack = static_cast<unsigned char *>(m) + page;
        }
        f.tid = t;
        f.tid3 = dim3((unsigned)t % block.x, (unsigned)t / block.x % block.y,
                      (unsigned)t / (block.x * block.y));
        f.st = RUNNABLE;
        f.open.clear();
        f.groups.clear();
        f.landed.clear();
#ifdef EQK_EMU_ASAN
        /* frames of an earlier block's fiber may be left poisoned */
        __asan_unpoison_memory_region(f.stack, f.stack_size);
#endif
        if (!f.uc) f.uc = new ctx();
        ctx_make(f.uc, f.stack, f.stack_size);
    }
    w->cur = &w->fibers[0];
    w->cur_i = 0;
    switch_ctx(w->main_uc, false, w->fibers[0].uc, w->fibers[0].stack, w->fibers[0].stack_size);
    int done = 0, at_sync = 0, at_warp = 0;
    for (int t = 0; t < n; t++) {
        const fstate s = w->fibers[(size_t)t].st;
        done += s == DONE;
        at_sync += s == AT_SYNC;
        at_warp += s == AT_WARP;
    }
    if (done != n)
        block_error("deadlock: %d threads wait at __syncthreads, %d at a warp operation, %d have "
                    "exited (a barrier or warp operation not reached by all threads)",
                    at_sync, at_warp, done);
    free(b.smem);
    b.smem = nullptr;
    g_blocks++;
}

} // namespace

/* ---- the API used by the kernels' wrappers ------------------------------- */

const dim3 &thread_idx()
{
    return t_w->cur->tid3;
}

unsigned char *dynamic_smem()
{
    return t_w->blk.smem;
}

uint32_t cvta_to_shared(const void *p)
{
    block_ctx &b = t_w->blk;
    const unsigned char *c = static_cast<const unsigned char *>(p);
    if (!b.smem || c < b.smem || c > b.smem + b.smem_size) {
        block_error("__cvta_generic_to_shared: pointer %p is not in the block's dynamic shared "
                    "memory",
                    p);
        return 0xffffffffu;
    }
    return (uint32_t)(c - b.smem);
}

void syncthreads()
{
    worker *w = t_w;
    block_ctx &b = w->blk;
    fiber *self = w->cur;
    if (++b.sync_arrived == b.nthreads) {
        b.sync_arrived = 0;
        b.epoch = ++w->epoch_base; /* a new interval between barriers */
        barrier_cp_async();
        for (int t = 0; t < b.nthreads; t++) {
            fiber &f = w->fibers[(size_t)t];
            f.sync_pred = b.sync_or;
            if (f.st == AT_SYNC) f.st = RUNNABLE;
        }
        b.sync_or = 0;
        return;
    }
    self->st = AT_SYNC;
    yield_fiber(false);
}

int syncthreads_or(int pred)
{
    worker *w = t_w;
    w->blk.sync_or |= pred != 0;
    syncthreads();
    return w->cur->sync_pred; /* the OR, handed to each thread at release */
}

/* __shfl_xor_sync (PTX shfl.sync.bfly.b32): lane L reads lane L ^ m. */
float shfl_xor(unsigned mask, float v, int lane_mask)
{
    worker *w = t_w;
    const int lane = w->cur->tid % 32;
    lane_io &io = warp_op(W_SHFL);
    io.fin[0] = v;
    io.in[0] = (uint32_t)lane_mask;
    io.mask = mask;
    warp_arrive(W_SHFL, [&](warp &wp) {
        for (int l = 0; l < wp.lanes; l++) {
            if (wp.io[l].mask != 0xffffffffu || wp.lanes != 32) {
                block_error("__shfl_xor_sync with mask 0x%08x over %d lanes: only full warps "
                            "are emulated",
                            wp.io[l].mask, wp.lanes);
                return;
            }
            wp.io[l].fout[0] = wp.io[(l ^ (int)wp.io[l].in[0]) & 31].fin[0];
        }
    });
    return w->blk.warps[(size_t)(w->cur->tid / 32)].io[lane].fout[0];
}

/* cp.async.cg.shared.global [dst], [src], 16, src_size (PTX ISA, "Data
 * Movement and Conversion Instructions: cp.async"): copies src_size bytes
 * and zero-fills the rest of the 16. It completes at any time before the
 * matching cp.async.wait_group; here it lands at the wait (the worst case),
 * and counts as a write from its issue to the barrier after its wait. */
void cp_async16(uint32_t dst, const void *src, int src_bytes)
{
    fiber *self = t_w->cur;
    if (src_bytes < 0 || src_bytes > 16) {
        block_error("cp.async: src-size %d outside 0..16", src_bytes);
        return;
    }
    if (((uintptr_t)src & 15) != 0) {
        block_error("cp.async: global source %p not 16-byte aligned", src);
        return;
    }
    if (!smem_ok(dst, 16, 16, "cp.async")) return;
    shadow_access(dst, 16, true, self->tid, "cp.async");
    self->open.push_back(cp_copy{dst, src, src_bytes, false});
}

/* cp.async.commit_group: the thread's uncommitted copies become one group
 * (possibly empty). */
void cp_async_commit()
{
    fiber *self = t_w->cur;
    self->groups.push_back(std::move(self->open));
    self->open.clear();
}

/* cp.async.wait_group N: waits until at most N of the thread's most recent
 * groups are pending; the copies of the older ones land now. */
void cp_async_wait(int n)
{
    fiber *self = t_w->cur;
    while ((int)self->groups.size() > n) {
        for (const cp_copy &c : self->groups.front()) {
            land(c);
            self->landed.push_back(c);
        }
        self->groups.erase(self->groups.begin());
    }
}

/* ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16 (PTX ISA, "Warp Level
 * Matrix Load Instruction: ldmatrix"): lanes 8m..8m+7 give the addresses of
 * rows 0..7 of matrix m (16 bytes each); destination register m receives
 * matrix m. Without .trans lane L holds row L/4, elements 2(L%4) and
 * 2(L%4)+1 (the lower element in the lower half); with .trans it holds
 * column L/4, rows 2(L%4) and 2(L%4)+1 (the transposed matrix, same
 * packing). */
void ldmatrix_x4(bool trans, uint32_t addr, uint32_t r[4])
{
    worker *w = t_w;
    const int lane = w->cur->tid % 32;
    const int kind = trans ? W_LDSM_T : W_LDSM;
    lane_io &io = warp_op(kind);
    io.in[0] = addr;
    warp_arrive(kind, [&](warp &wp) {
        if (wp.lanes != 32) {
            block_error("ldmatrix in a partial warp");
            return;
        }
        uint16_t m[4][8][8]; /* matrix, row, element */
        for (int l = 0; l < 32; l++) {
            const uint32_t a = wp.io[l].in[0];
            if (!smem_ok(a, 16, 16, trans ? "ldmatrix.trans" : "ldmatrix")) {
                memset(m[l >> 3][l & 7], 0, 16);
                continue;
            }
            shadow_access(a, 16, false, w->cur->tid / 32 * 32 + l,
                          trans ? "ldmatrix.trans read" : "ldmatrix read");
            memcpy(m[l >> 3][l & 7], w->blk.smem + a, 16);
        }
        for (int l = 0; l < 32; l++)
            for (int k = 0; k < 4; k++) {
                uint16_t lo, hi;
                if (!trans) {
                    lo = m[k][l >> 2][2 * (l & 3)];
                    hi = m[k][l >> 2][2 * (l & 3) + 1];
                } else {
                    lo = m[k][2 * (l & 3)][l >> 2];
                    hi = m[k][2 * (l & 3) + 1][l >> 2];
                }
                wp.io[l].out[k] = (uint32_t)lo | (uint32_t)hi << 16;
            }
    });
    const lane_io &res = w->blk.warps[(size_t)(w->cur->tid / 32)].io[lane];
    for (int k = 0; k < 4; k++)
        r[k] = res.out[k];
}

static float bf_lo(uint32_t v)
{
    return __uint_as_float(v << 16);
}
static float bf_hi(uint32_t v)
{
    return __uint_as_float(v & 0xffff0000u);
}

/* mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA, "Matrix
 * Fragments for mma.m16n8k16 with floating point type"), lane L, g = L/4,
 * t = L%4:
 *   A (16x16): a0 = row g, cols 2t, 2t+1; a1 = row g+8, same cols;
 *              a2 = row g, cols 2t+8, 2t+9; a3 = row g+8, cols 2t+8, 2t+9.
 *   B (16x8):  b0 = rows 2t, 2t+1 of col g; b1 = rows 2t+8, 2t+9 of col g.
 *   C, D:      c0, c1 = row g, cols 2t, 2t+1; c2, c3 = row g+8, same cols.
 * Each .b32 register holds two bf16, the lower index in the lower half.
 * Products and sums in fp32 (k in index order; the hardware's order is
 * unspecified). */
void mma_m16n8k16_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    worker *w = t_w;
    const int lane = w->cur->tid % 32;
    lane_io &io = warp_op(W_MMA);
    for (int k = 0; k < 4; k++) {
        io.in[k] = a[k];
        io.fin[k] = c[k];
    }
    io.in[4] = b0;
    io.in[5] = b1;
    warp_arrive(W_MMA, [&](warp &wp) {
        if (wp.lanes != 32) {
            block_error("mma.sync in a partial warp");
            return;
        }
        float A[16][16], B[16][8], C[16][8];
        for (int l = 0; l < 32; l++) {
            const int g = l >> 2, t = l & 3;
            const lane_io &x = wp.io[l];
            A[g][2 * t] = bf_lo(x.in[0]), A[g][2 * t + 1] = bf_hi(x.in[0]);
            A[g + 8][2 * t] = bf_lo(x.in[1]), A[g + 8][2 * t + 1] = bf_hi(x.in[1]);
            A[g][2 * t + 8] = bf_lo(x.in[2]), A[g][2 * t + 9] = bf_hi(x.in[2]);
            A[g + 8][2 * t + 8] = bf_lo(x.in[3]), A[g + 8][2 * t + 9] = bf_hi(x.in[3]);
            B[2 * t][g] = bf_lo(x.in[4]), B[2 * t + 1][g] = bf_hi(x.in[4]);
            B[2 * t + 8][g] = bf_lo(x.in[5]), B[2 * t + 9][g] = bf_hi(x.in[5]);
            C[g][2 * t] = x.fin[0], C[g][2 * t + 1] = x.fin[1];
            C[g + 8][2 * t] = x.fin[2], C[g + 8][2 * t + 1] = x.fin[3];
        }
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < 8; j++) {
                float s = 0.0f;
                for (int k = 0; k < 16; k++)
                    s += A[i][k] * B[k][j];
                C[i][j] += s;
            }
        for (int l = 0; l < 32; l++) {
            const int g = l >> 2, t = l & 3;
            wp.io[l].fout[0] = C[g][2 * t], wp.io[l].fout[1] = C[g][2 * t + 1];
            wp.io[l].fout[2] = C[g + 8][2 * t], wp.io[l].fout[3] = C[g + 8][2 * t + 1];
        }
    });
    const lane_io &res = w->blk.warps[(size_t)(w->cur->tid / 32)].io[lane];
    for (int k = 0; k < 4; k++)
        c[k] = res.fout[k];
}

void error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    std::lock_guard<std::mutex> lk(g_err_mu);
    if (g_err.empty()) {
        g_err = msg;
        fprintf(stderr, "emu: %s\n", msg);
    }
    g_err_pending = true;
}

cudaError_t set_max_dynamic_smem(kernel_id k, int bytes)
{
    if (bytes < 0 || (size_t)bytes > kMaxSmem) return cudaErrorInvalidValue;
    std::lock_guard<std::mutex> lk(g_err_mu);
    g_max_smem[k] = bytes;
    return cudaSuccess;
}

cudaError_t get_last_error()
{
    std::lock_guard<std::mutex> lk(g_err_mu);
    const bool e = g_err_pending;
    g_err_pending = false;
    return e ? cudaErrorLaunchFailure : cudaSuccess;
}

namespace
{
void run_grid(const char *name, dim3 grid, dim3 block, size_t smem,
              const std::function<void()> &body);
}

void launch_raw(kernel_id k, const char *name, dim3 grid, dim3 block, size_t smem,
                cudaStream_t stream, std::function<void()> body)
{
    const uint64_t nthreads = (uint64_t)block.x * block.y * block.z;
    if (nthreads == 0 || nthreads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 ||
        grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
        error("%s: invalid launch configuration: grid (%u,%u,%u), block (%u,%u,%u)", name, grid.x,
              grid.y, grid.z, block.x, block.y, block.z);
        return;
    }
    size_t limit = kDefaultSmem;
    {
        std::lock_guard<std::mutex> lk(g_err_mu);
        auto it = g_max_smem.find(k);
        if (it != g_max_smem.end()) limit = (size_t)it->second;
    }
    if (smem > limit) {
        error("%s: %zu bytes of dynamic shared memory above the function's limit of %zu "
              "(cudaFuncAttributeMaxDynamicSharedMemorySize)",
              name, smem, limit);
        return;
    }
    stream_enqueue(stream, [name, grid, block, smem, body = std::move(body)] {
        run_grid(name, grid, block, smem, body);
    });
}

namespace
{
void run_grid(const char *name, dim3 grid, dim3 block, size_t smem,
              const std::function<void()> &body)
{
    const uint64_t nblocks = (uint64_t)grid.x * grid.y * grid.z;
    int threads = 0;
    if (const char *e = getenv("EQK_EMU_THREADS")) threads = atoi(e);
    if (threads <= 0)
        threads = (int)std::min(4u, std::max(1u, std::thread::hardware_concurrency()));
    if ((uint64_t)threads > nblocks) threads = (int)nblocks;
    std::atomic<uint64_t> next{0};
    auto work = [&]() {
        worker w;
        w.main_uc = new ctx();
        const char *sched = getenv("EQK_EMU_SCHEDULE");
        w.round_robin = sched && !strcmp(sched, "round-robin");
        t_w = &w;
        w.body = &body;
#ifdef EQK_EMU_ASAN
        pthread_attr_t attr;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            void *addr;
            size_t size;
            pthread_attr_getstack(&attr, &addr, &size);
            w.main_stack_bottom = addr;
            w.main_stack_size = size;
            pthread_attr_destroy(&attr);
        }
#endif
        blockDim = block;
        gridDim = grid;
        for (uint64_t i; (i = next++) < nblocks;) {
            const dim3 bid((unsigned)(i % grid.x), (unsigned)(i / grid.x % grid.y),
                           (unsigned)(i / ((uint64_t)grid.x * grid.y)));
            run_block(&w, name, bid, block, smem);
        }
        const size_t page = (size_t)sysconf(_SC_PAGESIZE);
        for (fiber &f : w.fibers) {
            if (f.stack) munmap(f.stack - page, f.stack_size + page);
            delete f.uc;
        }
        delete w.main_uc;
        t_w = nullptr;
    };
    if (threads == 1) {
        work();
    } else {
        std::vector<std::thread> pool;
        for (int i = 0; i < threads; i++)
            pool.emplace_back(work);
        for (auto &t : pool)
            t.join();
    }
}
} // namespace

} // namespace eqk_emu

extern "C" const char *eqk_emu_error(void)
{
    std::lock_guard<std::mutex> lk(eqk_emu::g_err_mu);
    return eqk_emu::g_err.empty() ? nullptr : eqk_emu::g_err.c_str();
}

extern "C" void eqk_emu_clear_error(void)
{
    std::lock_guard<std::mutex> lk(eqk_emu::g_err_mu);
    eqk_emu::g_err.clear();
    eqk_emu::g_err_pending = false;
}

extern "C" long eqk_emu_blocks_run(void)
{
    return eqk_emu::g_blocks.load();
}
