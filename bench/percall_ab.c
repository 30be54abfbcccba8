/* Per-call time of two builds of libxent in one process (BENCHMARKS.md
 * §15): loads both shared libraries with dlopen and alternates them, R
 * rounds of N xent_forward_backward calls each, so machine noise hits both
 * alike. Prints each build's median ns per call, B/A, and the quartiles.
 *
 *     gcc -O2 -std=c11 -I include -o /tmp/percall_ab bench/percall_ab.c -ldl
 *     /tmp/percall_ab A/libxent.so B/libxent.so [rows classes calls-per-round [threads]]
 *
 * (default 1 x 10, 200000 calls per round, 31 rounds). Copy each libxent.so
 * somewhere else first: dlopen keys on the path, and the two builds must
 * have different ones. Both builds must have this header's
 * xent_forward_backward and xent_options_default. */
#define _POSIX_C_SOURCE 199309L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "xent.h"
#include "timing.h"

#define ROUNDS 31

typedef XentStatus (*fused_fn)(const float *, size_t, size_t, size_t, const int32_t *, const XentOptions *, float *,
                               float *, int32_t *, float *, size_t);
typedef XentOptions (*defaults_fn)(void);

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s A/libxent.so B/libxent.so [rows classes calls-per-round [threads]]\n", argv[0]);
        return 2;
    }
    size_t rows = argc > 3 ? (size_t)atol(argv[3]) : 1, cols = argc > 4 ? (size_t)atol(argv[4]) : 10;
    long calls = argc > 5 ? atol(argv[5]) : 200000;
    /* num_threads for both builds: 0 (the default) = all cores for large calls. */
    unsigned threads = argc > 6 ? (unsigned)atol(argv[6]) : 0;
    if (rows == 0 || cols == 0 || calls <= 0) {
        fprintf(stderr, "rows, classes and calls must be positive\n");
        return 2;
    }
    fused_fn fused[2];
    defaults_fn defaults[2];
    for (int k = 0; k < 2; k++) {
        void *h = dlopen(argv[1 + k], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "%s\n", dlerror());
            return 1;
        }
        /* POSIX guarantees that a dlsym result converts to a function pointer. */
        *(void **)&fused[k] = dlsym(h, "xent_forward_backward");
        *(void **)&defaults[k] = dlsym(h, "xent_options_default");
        if (!fused[k] || !defaults[k]) {
            fprintf(stderr, "%s lacks xent_forward_backward or xent_options_default\n", argv[1 + k]);
            return 1;
        }
    }
    float *z = malloc(rows * cols * sizeof *z), *g = malloc(rows * cols * sizeof *g), loss;
    int32_t *y = malloc(rows * sizeof *y);
    if (!z || !g || !y) return 1;
    for (size_t i = 0; i < rows * cols; i++) z[i] = (float)((i * 7919) % 13) * 0.3f - 2.0f;
    for (size_t i = 0; i < rows; i++) y[i] = (int32_t)(i % cols);
    double t[2][ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        for (int k = 0; k < 2; k++) {
            XentOptions o = defaults[k]();
            o.num_threads = threads;
            double t0 = now();
            for (long i = 0; i < calls; i++)
                if (fused[k](z, rows, cols, cols, y, &o, &loss, NULL, NULL, g, cols) != XENT_STATUS_OK) {
                    fprintf(stderr, "build %c failed\n", 'A' + k);
                    return 1;
                }
            t[k][r] = (now() - t0) * 1e9 / (double)calls;
        }
    for (int k = 0; k < 2; k++) qsort(t[k], ROUNDS, sizeof(double), by_value);
    int mid = ROUNDS / 2, lo = ROUNDS / 4, hi = 3 * ROUNDS / 4;
    printf("%zux%zu  A %.1f ns  B %.1f ns  B/A %.3f  (quartiles A %.1f-%.1f, B %.1f-%.1f)\n", rows, cols, t[0][mid],
           t[1][mid], t[1][mid] / t[0][mid], t[0][lo], t[0][hi], t[1][lo], t[1][hi]);
    free(z);
    free(g);
    free(y);
    return 0;
}
