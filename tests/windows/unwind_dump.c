/* Reference stacks for vignette's x64 unwinder (tests/pe_unwind.rs), from Windows' own
 * RtlVirtualUnwind. Built with mingw and run under wine (or on Windows):
 *
 *     unwind_dump.exe OUT SAMPLES
 *
 * A worker thread runs a workload of differently shaped functions (frame pointer, frameless,
 * large frames that call __chkstk, saved nonvolatile registers, calls into the C runtime and
 * the system DLLs). The main thread samples it the way vignette's Windows sampler does:
 * SuspendThread, GetThreadContext, copy the live stack, and, while the thread is still
 * suspended, the reference walk with RtlLookupFunctionEntry + RtlVirtualUnwind; then
 * ResumeThread. OUT gets every loaded module's image and, per sample, the registers, the stack
 * copy and the reference frames (format below, all little-endian). */
#include <windows.h>
#include <psapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES 64
#define MAX_STACK (64 * 1024)

static volatile LONG stop;
static volatile ULONG_PTR stack_base;
static volatile unsigned sink;

__attribute__((noinline)) static unsigned leaf(unsigned x)
{
    for (int i = 0; i < 20; i++)
        x = x * 2654435761u + (unsigned)i;
    return x;
}

/* Small, called often: samples land in its prolog and epilog too. */
__attribute__((noinline)) static unsigned tiny(unsigned a, unsigned b, unsigned c)
{
    volatile unsigned buf[8];
    buf[a & 7] = b;
    unsigned r = leaf(a) ^ buf[c & 7];
    return r + leaf(b + r) * c;
}

__attribute__((noinline, optimize("no-omit-frame-pointer"))) static unsigned with_fp(unsigned x, int depth);

__attribute__((noinline)) static unsigned big_frame(unsigned x, int depth)
{
    volatile char buf[9000]; /* > 1 page: the prolog calls ___chkstk_ms */
    buf[0] = (char)x;
    buf[8999] = (char)(x >> 8);
    for (int i = 0; i < 50; i++)
        x = tiny(x, (unsigned)i, x >> 5) + buf[i * 7];
    if (depth > 0)
        x += with_fp(x, depth - 1);
    return x;
}

static int cmp(const void *a, const void *b)
{
    unsigned x = leaf(*(const unsigned *)a), y = leaf(*(const unsigned *)b);
    return (x > y) - (x < y);
}

__attribute__((noinline)) static unsigned saves_regs(unsigned a, unsigned b, int depth)
{
    unsigned v[32];
    for (int i = 0; i < 32; i++)
        v[i] = leaf(a + (unsigned)i) ^ b;
    qsort(v, 32, sizeof v[0], cmp); /* into msvcrt, which calls back */
    if (depth > 0)
        a += big_frame(v[3], depth - 1);
    return a + v[0] + v[31];
}

__attribute__((noinline, optimize("no-omit-frame-pointer"))) static unsigned with_fp(unsigned x, int depth)
{
    volatile unsigned local = x;
    for (int i = 0; i < 30; i++)
        local = local * 31 + tiny(local, x, (unsigned)i);
    if (depth == 11)
        SwitchToThread(); /* into kernel32 and ntdll */
    if (depth > 0)
        return saves_regs(local, x >> 3, depth - 1) + 1;
    return leaf(local);
}

static DWORD WINAPI worker(LPVOID arg)
{
    ULONG_PTR low, high;
    (void)arg;
    GetCurrentThreadStackLimits(&low, &high);
    stack_base = high;
    unsigned x = 1;
    while (!stop) {
        for (int d = 0; d < 12; d++)
            x += with_fp(x, d);
        char *p = malloc(64 + (x & 1023)); /* into the heap */
        sink = (unsigned)(ULONG_PTR)p;
        free(p);
    }
    return x;
}

static void put(FILE *f, const void *p, size_t n)
{
    if (fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "write failed\n");
        exit(1);
    }
}

static void put64(FILE *f, unsigned long long v) { put(f, &v, 8); }

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: unwind_dump OUT SAMPLES\n");
        return 2;
    }
    FILE *out = fopen(argv[1], "wb");
    int samples = atoi(argv[2]);
    if (!out || samples <= 0)
        return 2;
    HANDLE t = CreateThread(NULL, 0, worker, NULL, 0, NULL);
    while (!stack_base)
        Sleep(1);

    /* Modules: "VMOD" count, then per module: base, size, name length, name, image bytes. */
    HMODULE mods[256];
    DWORD needed;
    HANDLE self = GetCurrentProcess();
    EnumProcessModules(self, mods, sizeof mods, &needed);
    unsigned count = needed / sizeof mods[0];
    if (count > 256)
        count = 256;
    put(out, "VMOD", 4);
    put64(out, count);
    for (unsigned i = 0; i < count; i++) {
        MODULEINFO mi;
        char name[MAX_PATH];
        GetModuleInformation(self, mods[i], &mi, sizeof mi);
        DWORD len = GetModuleBaseNameA(self, mods[i], name, sizeof name);
        put64(out, (ULONG_PTR)mi.lpBaseOfDll);
        put64(out, mi.SizeOfImage);
        put64(out, len);
        put(out, name, len);
        /* Page by page: an image may have reserved, unreadable pages. */
        char page[4096];
        for (DWORD off = 0; off < mi.SizeOfImage; off += 4096) {
            SIZE_T got = 0;
            if (!ReadProcessMemory(self, (char *)mi.lpBaseOfDll + off, page, 4096, &got) || got != 4096)
                memset(page, 0, sizeof page);
            put(out, page, 4096);
        }
    }

    /* Samples: "VSMP" count, then per sample: 16 GPRs (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi,
     * r8-r15), rip, stack length, stack bytes (from rsp), reference frame count, frames
     * (rip of each frame, the first being the interrupted one). */
    put(out, "VSMP", 4);
    put64(out, samples);
    static unsigned char stack[MAX_STACK];
    unsigned seed = 12345;
    for (int s = 0; s < samples; s++) {
        /* Let the worker run a varying while, so that samples land on many instructions. */
        seed = seed * 1103515245u + 12345u;
        Sleep(1);
        for (volatile unsigned spin = 0; spin < (seed >> 16) % 20000; spin++)
            ;
        if (SuspendThread(t) == (DWORD)-1)
            return 1;
        CONTEXT ctx;
        memset(&ctx, 0, sizeof ctx);
        ctx.ContextFlags = CONTEXT_FULL;
        if (!GetThreadContext(t, &ctx))
            return 1;
        ULONG_PTR len = stack_base - ctx.Rsp;
        if (len > MAX_STACK)
            len = MAX_STACK;
        memcpy(stack, (void *)ctx.Rsp, len);
        ULONG64 frames[MAX_FRAMES];
        int n = 0;
        CONTEXT c = ctx;
        while (n < MAX_FRAMES && c.Rip) {
            frames[n++] = c.Rip;
            ULONG64 image_base;
            PRUNTIME_FUNCTION fn = RtlLookupFunctionEntry(c.Rip, &image_base, NULL);
            if (fn) {
                PVOID handler_data;
                ULONG64 establisher;
                RtlVirtualUnwind(UNW_FLAG_NHANDLER, image_base, c.Rip, fn, &c, &handler_data,
                                 &establisher, NULL);
            } else {
                c.Rip = *(ULONG64 *)c.Rsp;
                c.Rsp += 8;
            }
        }
        ResumeThread(t);
        ULONG64 regs[17] = {ctx.Rax, ctx.Rcx, ctx.Rdx, ctx.Rbx, ctx.Rsp, ctx.Rbp, ctx.Rsi,
                            ctx.Rdi, ctx.R8,  ctx.R9,  ctx.R10, ctx.R11, ctx.R12, ctx.R13,
                            ctx.R14, ctx.R15, ctx.Rip};
        put(out, regs, sizeof regs);
        put64(out, len);
        put(out, stack, len);
        put64(out, n);
        put(out, frames, n * 8);
    }
    stop = 1;
    WaitForSingleObject(t, INFINITE);
    fclose(out);
    return 0;
}
