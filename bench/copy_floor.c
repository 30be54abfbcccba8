/* The memory floor of a call that reads the logits once and writes a
 * separate gradient with plain stores (as the short-row path does), against
 * memcpy of the logits (the baseline of compare.py's "x memcpy" column),
 * on one core, in the same process (BENCHMARKS.md §19):
 *
 *     gcc -O2 -mavx2 -o /tmp/copy_floor bench/copy_floor.c
 *     taskset -c 0 /tmp/copy_floor 262144 10
 *
 * memcpy    glibc's memcpy of the logits into the gradient buffer (for
 *           buffers this large it writes with streaming stores: 4 bytes
 *           in and 4 out per float);
 * plain     the same copy with plain 32-byte stores: each line written is
 *           first read for ownership, 12 bytes of traffic per float, the
 *           fused call's;
 * stream    the same with streaming stores (what memcpy does).
 * Each repetition times the three in turn; medians of 31, ns per row. */
#define _POSIX_C_SOURCE 199309L
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "timing.h"

#define REPS 31

static void plain(const float *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
    for (; i < n; i++) dst[i] = src[i];
}

static void stream(const float *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i < n && ((size_t)(dst + i) & 31); i++) dst[i] = src[i];
    for (; i + 8 <= n; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
    for (; i < n; i++) dst[i] = src[i];
    _mm_sfence();
}

int main(int argc, char **argv) {
    size_t rows = argc > 1 ? strtoul(argv[1], NULL, 10) : 262144;
    size_t cols = argc > 2 ? strtoul(argv[2], NULL, 10) : 10;
    size_t n = rows * cols;
    float *z = malloc(n * sizeof *z), *g = malloc(n * sizeof *g);
    if (!z || !g) return 1;
    for (size_t i = 0; i < n; i++) z[i] = (float)(i % 1000) * 0.001f, g[i] = 0.0f;
    double t[3][REPS];
    for (int r = 0; r < REPS; r++) {
        double s = now();
        memcpy(g, z, n * sizeof *z);
        t[0][r] = now() - s;
        s = now();
        plain(z, g, n);
        t[1][r] = now() - s;
        s = now();
        stream(z, g, n);
        t[2][r] = now() - s;
    }
    for (int k = 0; k < 3; k++) qsort(t[k], REPS, sizeof(double), by_value);
    double m = t[0][REPS / 2];
    printf("%zux%zu  memcpy %.3f ms  plain %.3f ms (%.2fx memcpy)  stream %.3f ms (%.2fx)  [%.2f / %.2f / %.2f ns per row]\n",
           rows, cols, 1e3 * m, 1e3 * t[1][REPS / 2], t[1][REPS / 2] / m, 1e3 * t[2][REPS / 2], t[2][REPS / 2] / m,
           1e9 * m / (double)rows, 1e9 * t[1][REPS / 2] / (double)rows, 1e9 * t[2][REPS / 2] / (double)rows);
    free(z);
    free(g);
    return 0;
}
