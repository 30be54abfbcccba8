/* Time per call of xent_forward_backward from C, linked against the static
 * library (issue 22's tiny-call target), beside a plain C loop computing
 * the same loss and gradient in the same rounds, so machine noise hits both
 * alike. Prints each one's median and best ns per call over the rounds.
 *
 *     make bench-percall                    # 1x10, 64x10 and 4096x10
 *     target/xent_percall [rows classes calls-per-round]
 *
 * Built by `make bench-percall` as
 *     gcc -O2 -std=c11 -I include bench/percall.c target/release/libxent.a \
 *         -Wl,--gc-sections -lpthread -lm -ldl -o target/xent_percall
 * (31 rounds; calls per round default to about 10 ms of work). */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "xent.h"
#include "timing.h"

#define ROUNDS 31

/* The plain C loop compare.py times (forward and backward, mean). */
#include "naive.c"

int main(int argc, char **argv) {
    size_t rows = argc > 1 ? strtoul(argv[1], NULL, 10) : 1;
    size_t cols = argc > 2 ? strtoul(argv[2], NULL, 10) : 10;
    long calls = argc > 3 ? strtol(argv[3], NULL, 10) : (long)(1e7 / (double)(rows * cols * 4 + 300)) + 1;
    float *z = malloc(rows * cols * sizeof *z), *g = malloc(rows * cols * sizeof *g);
    int32_t *y = malloc(rows * sizeof *y);
    if (!z || !g || !y) return 1;
    unsigned s = 12345;
    for (size_t i = 0; i < rows * cols; i++) {
        s = s * 1103515245u + 12345u;
        z[i] = (float)((s >> 8) & 0xffff) / 8192.0f - 4.0f;
    }
    for (size_t i = 0; i < rows; i++) y[i] = (int32_t)((i * 7919) % cols);
    XentOptions o = xent_options_default();
    o.num_threads = 1;
    double tx[ROUNDS], tc[ROUNDS];
    float loss = 0.0f, check = 0.0f;
    for (int r = 0; r < ROUNDS; r++) {
        double t = now();
        for (long k = 0; k < calls; k++) {
            if (xent_forward_backward(z, rows, cols, cols, y, &o, &loss, NULL, NULL, g, cols) != XENT_STATUS_OK) {
                fprintf(stderr, "xent: %s\n", xent_last_error());
                return 1;
            }
        }
        tx[r] = (now() - t) / (double)calls;
        t = now();
        for (long k = 0; k < calls; k++) check += naive_forward_backward(z, rows, cols, y, g);
        tc[r] = (now() - t) / (double)calls;
    }
    qsort(tx, ROUNDS, sizeof *tx, by_value);
    qsort(tc, ROUNDS, sizeof *tc, by_value);
    printf("%zux%zu  xent %.1f ns/call (best %.1f)  plain C loop %.1f ns/call (best %.1f)  ratio %.2f  [%ld calls x %d rounds; loss %g]\n",
           rows, cols, 1e9 * tx[ROUNDS / 2], 1e9 * tx[0], 1e9 * tc[ROUNDS / 2], 1e9 * tc[0], tc[ROUNDS / 2] / tx[ROUNDS / 2],
           calls, ROUNDS, (double)loss + 0.0 * (double)check);
    free(z);
    free(g);
    free(y);
    return 0;
}
