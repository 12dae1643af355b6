/* portenv-unzstd: zstd stdin -> stdout, decompress only, with no C library.
 *
 * The default portenv archive carries this program gzipped, so that a target with only sh,
 * tar, gzip and the kernel can read a zstd payload. It is linked with zstd's own decoder
 * (lib/common + lib/decompress), and talks to the kernel itself: read, write, exit_group,
 * mmap. Exit 0 on a whole, valid stream; 1 with one line on stderr otherwise.
 */
#include <stddef.h>
#define ZSTD_STATIC_LINKING_ONLY
#include "zstd.h"

#ifndef UNZSTD_WINDOW_LOG_MAX
#define UNZSTD_WINDOW_LOG_MAX 27
#endif

#if defined(__x86_64__)
#define NR_READ 0
#define NR_WRITE 1
#define NR_MMAP 9
#define NR_EXIT_GROUP 231
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
#define NR_READ 63
#define NR_WRITE 64
#define NR_MMAP 222
#define NR_EXIT_GROUP 94
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}
#else
#error "portenv-unzstd is built for x86_64 and aarch64 only"
#endif

/* What the compiler may call on its own, and what zstd_deps.h maps ZSTD_mem* to. */
typedef unsigned long word __attribute__((may_alias, aligned(1)));

void *memcpy(void *d, const void *s, size_t n) {
    unsigned char *o = d;
    const unsigned char *i = s;
    for (; n >= sizeof(word); n -= sizeof(word), o += sizeof(word), i += sizeof(word))
        *(word *)o = *(const word *)i;
    while (n--) *o++ = *i++;
    return d;
}
void *memmove(void *d, const void *s, size_t n) {
    unsigned char *o = d;
    const unsigned char *i = s;
    if (o <= i || o >= i + n) return memcpy(d, s, n);
    while (n--) o[n] = i[n];
    return d;
}
void *memset(void *d, int c, size_t n) {
    unsigned char *o = d;
    word fill = (unsigned char)c * (~0UL / 255);
    for (; n >= sizeof(word); n -= sizeof(word), o += sizeof(word)) *(word *)o = fill;
    while (n--) *o++ = (unsigned char)c;
    return d;
}
int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x - *y;
    return 0;
}

static void quit(int code) {
    sys6(NR_EXIT_GROUP, code, 0, 0, 0, 0, 0);
    for (;;) {
    }
}

static size_t length(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static void fail(const char *what, const char *why) {
    static char line[256];
    size_t n = 0;
    const char *parts[] = {"portenv-unzstd: ", what, why, "\n"};
    for (size_t p = 0; p < 4; p++)
        for (const char *c = parts[p]; *c && n < sizeof line - 1; c++) line[n++] = *c;
    if (line[n - 1] != '\n') line[n++] = '\n';
    sys6(NR_WRITE, 2, (long)line, (long)n, 0, 0, 0);
    quit(1);
}

/* zstd allocates a few large blocks once (context, window): each is its own mapping, and none
 * is given back before exit, so free has nothing to do. */
static void *take(void *opaque, size_t size) {
    (void)opaque;
    long p = sys6(NR_MMAP, 0, (long)size, 3 /* PROT_READ|PROT_WRITE */,
                  0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
    return (p < 0 && p > -4096) ? NULL : (void *)p;
}
static void give(void *opaque, void *address) {
    (void)opaque;
    (void)address;
}

/* Only reached if zstd allocates without the custom allocator. */
void *malloc(size_t size) { return take(NULL, size); }
void *calloc(size_t count, size_t size) { return take(NULL, count * size); }
void free(void *address) { give(NULL, address); }

static void write_all(const char *data, size_t size) {
    while (size) {
        long n = sys6(NR_WRITE, 1, (long)data, (long)size, 0, 0, 0);
        if (n == -4) continue; /* EINTR */
        if (n <= 0) fail("cannot write the output", "");
        data += n;
        size -= (size_t)n;
    }
}

static int run(void) {
    ZSTD_customMem mem = {take, give, NULL};
    ZSTD_DCtx *dctx = ZSTD_createDCtx_advanced(mem);
    size_t in_cap = ZSTD_DStreamInSize(), out_cap = ZSTD_DStreamOutSize();
    char *in = take(NULL, in_cap), *out = take(NULL, out_cap);
    if (!dctx || !in || !out) fail("out of memory", "");
    if (ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, UNZSTD_WINDOW_LOG_MAX)))
        fail("cannot set the window", "");
    size_t pending = 0; /* non-zero: the last frame is not finished */
    int frames = 0;
    for (;;) {
        long got = sys6(NR_READ, 0, (long)in, (long)in_cap, 0, 0, 0);
        if (got == -4) continue;
        if (got < 0) fail("cannot read the input", "");
        if (got == 0) break;
        ZSTD_inBuffer input = {in, (size_t)got, 0};
        while (input.pos < input.size) {
            ZSTD_outBuffer output = {out, out_cap, 0};
            pending = ZSTD_decompressStream(dctx, &output, &input);
            if (ZSTD_isError(pending)) fail("corrupt input: ", ZSTD_getErrorName(pending));
            write_all(out, output.pos);
            if (pending == 0) frames++;
        }
        /* flush what the decoder still holds for this input */
        for (;;) {
            ZSTD_outBuffer output = {out, out_cap, 0};
            ZSTD_inBuffer none = {in, 0, 0};
            if (pending == 0) break;
            pending = ZSTD_decompressStream(dctx, &output, &none);
            if (ZSTD_isError(pending)) fail("corrupt input: ", ZSTD_getErrorName(pending));
            write_all(out, output.pos);
            if (output.pos < out_cap) break;
        }
    }
    if (pending != 0 || frames == 0) fail("truncated input", " (the zstd frame does not end)");
    return 0;
}

#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n xor %rbp,%rbp\n and $-16,%rsp\n call portenv_main\n hlt\n");
#else
__asm__(".text\n.global _start\n_start:\n mov x29, #0\n mov x30, #0\n bl portenv_main\n");
#endif

__attribute__((used)) void portenv_main(void) { quit(run()); }
