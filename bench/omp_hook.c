/* A trainer's loss step through a `#pragma omp parallel for` parallel_for
 * hook against xent's own threads (BENCHMARKS.md §16): the fused call in
 * place on a GPT-2 batch, 256 rows of 50257 classes padded to 50304, with
 * NONE + grad_scale 1/rows and grad_zero_padding, as llm.c's step needs
 * it. Also the trainer's own loop (max, Σexp, loss, softmax − one-hot, /N:
 * the plain C code such a trainer has) for reference. Variants alternate,
 * ROUNDS rounds of CALLS calls each; prints each variant's median ms per
 * call and the hook's invocations per call.
 *
 *     gcc -O2 -std=c11 -fopenmp -I include bench/omp_hook.c -L target/release -lxent \
 *         -Wl,-rpath,$PWD/target/release -lm -o /tmp/omp_hook
 *     OMP_NUM_THREADS=2 /tmp/omp_hook
 *
 * The in-place calls overwrite the logits with their gradient; each call
 * starts from a fresh copy, whose time is not counted. */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xent.h"
#include "timing.h"

#define ROWS 256
#define CLASSES 50257
#define PAD 50304
#define ROUNDS 15
#define CALLS 4

static long hook_calls = 0;

/* The hook a trainer built on OpenMP writes: one parallel for per invocation. */
static void omp_for(void *ctx, size_t n, XentTaskFn task, void *task_ctx) {
    (void)ctx;
    hook_calls++;
#pragma omp parallel for schedule(dynamic, 1)
    for (long i = 0; i < (long)n; i++) task(task_ctx, (size_t)i);
}

/* The trainer's own loss and gradient (llm.c's crossentropy_softmax_backward
 * with the forward's softmax), threads by OpenMP. */
static void plain_loop(float *z, const int *y, float *losses) {
#pragma omp parallel for
    for (int i = 0; i < ROWS; i++) {
        float *row = z + (size_t)i * PAD;
        float m = -INFINITY;
        for (int j = 0; j < CLASSES; j++) m = row[j] > m ? row[j] : m;
        double s = 0.0;
        for (int j = 0; j < CLASSES; j++) {
            row[j] = expf(row[j] - m);
            s += row[j];
        }
        losses[i] = (float)(log(s) + m) - (logf(row[y[i]]) + m);
        float inv = (float)(1.0 / s);
        for (int j = 0; j < CLASSES; j++) row[j] = row[j] * inv / ROWS;
        row[y[i]] -= 1.0f / ROWS;
        for (int j = CLASSES; j < PAD; j++) row[j] = 0.0f;
    }
}

int main(void) {
    size_t n = (size_t)ROWS * PAD;
    float *fresh = malloc(n * sizeof(float)), *z = malloc(n * sizeof(float));
    int32_t labels[ROWS];
    float losses[ROWS];
    unsigned x = 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        fresh[i] = (float)((x >> 8) % 20000) / 2000.0f - 5.0f;
    }
    for (int i = 0; i < ROWS; i++) labels[i] = (int32_t)((i * 7919) % CLASSES);
    const char *names[] = {"xent num_threads=1", "xent num_threads=2", "xent + omp hook", "plain OpenMP loop"};
    double t[4][ROUNDS];
    long hooks = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int v = 0; v < 4; v++) {
            XentOptions o = xent_options_default();
            o.reduction = XENT_REDUCTION_NONE;
            o.grad_scale = 1.0f / ROWS;
            o.grad_zero_padding = 1;
            o.num_threads = v == 0 ? 1 : 2;
            if (v == 2) o.parallel_for = omp_for;
            double total = 0.0;
            for (int c = 0; c < CALLS; c++) {
                memcpy(z, fresh, n * sizeof(float));
                long before = hook_calls;
                double t0 = now();
                if (v == 3) {
                    plain_loop(z, labels, losses);
                } else if (xent_forward_backward(z, ROWS, CLASSES, PAD, labels, &o, losses, NULL, NULL, z, PAD) != XENT_STATUS_OK) {
                    fprintf(stderr, "xent: %s\n", xent_last_error());
                    return 1;
                }
                total += now() - t0;
                hooks += hook_calls - before;
            }
            t[v][r] = total / CALLS;
        }
    }
    printf("256 x 50257 (stride 50304) in place, OMP threads %d, medians of %d rounds x %d calls\n", omp_get_max_threads(), ROUNDS, CALLS);
    for (int v = 0; v < 4; v++) {
        qsort(t[v], ROUNDS, sizeof(double), by_value);
        printf("%-20s %8.2f ms  (quartiles %.2f-%.2f)\n", names[v], 1e3 * t[v][ROUNDS / 2], 1e3 * t[v][ROUNDS / 4], 1e3 * t[v][3 * ROUNDS / 4]);
    }
    printf("hook invocations per call: %.2f\n", (double)hooks / (ROUNDS * CALLS));
    free(fresh);
    free(z);
    return 0;
}
