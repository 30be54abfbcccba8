/* The same float32 calls against a std and a no_std build of libxent: each
 * prints the bits of every result (gradients as a hash), and tests/no_std.rs
 * checks that the two printouts are identical. With the argument "nostd" it
 * also checks what a no_std build promises instead of the std features:
 * XENT_STATUS_UNSUPPORTED from the 16-bit and fused linear calls, and the
 * status text from xent_last_error. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xent.h"

enum { ROWS = 1100, CLASSES = 1000, STRIDE = 1003, SPLIT = 377 };

static float logits[ROWS * STRIDE], grad[ROWS * STRIDE], probs[ROWS * CLASSES];
static float row_loss[ROWS], lse[ROWS], grad_rows[ROWS];
static int32_t labels[ROWS], argmax[ROWS];
static XentShardStats stats[ROWS], part[ROWS], kept[ROWS];
static float weights[CLASSES];
static int failures = 0;

static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* FNV-1a over the bits of `rows` rows of `cols` floats `stride` apart. */
static uint64_t hash(const float *v, size_t rows, size_t cols, size_t stride) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            h ^= bits(v[i * stride + j]);
            h *= 1099511628211ull;
        }
    return h;
}

static void expect(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "FAILED: %s (%s)\n", what, xent_last_error());
        failures++;
    }
}

/* A caller pool that runs the tasks last to first on this thread. */
static void reverse_pool(void *ctx, size_t n, XentTaskFn task, void *task_ctx) {
    (void)ctx;
    for (size_t i = n; i-- > 0;) task(task_ctx, i);
}

static void fill(void) {
    uint64_t s = 12345;
    for (size_t i = 0; i < ROWS * STRIDE; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        logits[i] = (float)((double)(s >> 40) / (double)(1ull << 24) * 40.0 - 20.0);
    }
    for (size_t i = 0; i < ROWS; i++) {
        labels[i] = (int32_t)((i * 7919) % CLASSES);
        if (i % 97 == 0) labels[i] = -100;
        double sum = 0;
        for (size_t j = 0; j < CLASSES; j++) sum += probs[i * CLASSES + j] = (float)((i + 3 * j) % 17 + 1);
        for (size_t j = 0; j < CLASSES; j++) probs[i * CLASSES + j] = (float)(probs[i * CLASSES + j] / sum);
    }
    logits[5 * STRIDE + 3] = -1e4f;
    logits[6 * STRIDE + 9] = 1e4f;
    for (size_t j = 0; j < 40; j++) logits[7 * STRIDE + j] = -INFINITY;
    for (size_t j = 0; j < CLASSES; j++) weights[j] = (float)(j % 5) * 0.5f + 0.25f;
}

static void print_rows(const char *what, size_t n) {
    printf("%s loss %016llx lse %016llx argmax", what, (unsigned long long)hash(row_loss, 1, n, n),
           (unsigned long long)hash(lse, 1, ROWS, ROWS));
    uint64_t h = 0;
    for (size_t i = 0; i < ROWS; i++) h = h * 31 + (uint64_t)argmax[i];
    printf(" %016llx\n", (unsigned long long)h);
}

static void run(const char *name, XentOptions o) {
    size_t n = o.reduction == XENT_REDUCTION_NONE ? ROWS : 1;
    expect(xent_forward(logits, ROWS, CLASSES, STRIDE, labels, &o, row_loss, lse, argmax) == XENT_STATUS_OK, "forward");
    print_rows(name, n);
    expect(xent_forward_backward(logits, ROWS, CLASSES, STRIDE, labels, &o, row_loss, NULL, NULL, grad, CLASSES) == 0,
           "forward_backward");
    printf("%s fused loss %016llx grad %016llx\n", name, (unsigned long long)hash(row_loss, 1, n, n),
           (unsigned long long)hash(grad, ROWS, CLASSES, CLASSES));
    for (size_t i = 0; i < ROWS; i++) grad_rows[i] = 1.0f + (float)(i % 3);
    expect(xent_backward(logits, ROWS, CLASSES, STRIDE, labels, &o, grad_rows, lse, grad, STRIDE) == 0, "backward");
    printf("%s backward %016llx\n", name, (unsigned long long)hash(grad, ROWS, CLASSES, STRIDE));
    if (o.class_weights == NULL) {
        expect(xent_soft_forward_backward(logits, ROWS, CLASSES, STRIDE, probs, CLASSES, &o, row_loss, lse, NULL, grad,
                                          CLASSES) == 0,
               "soft");
        printf("%s soft loss %016llx grad %016llx\n", name, (unsigned long long)hash(row_loss, 1, n, n),
               (unsigned long long)hash(grad, ROWS, CLASSES, CLASSES));
    }
    /* Two uneven shards, merged, then the loss and each shard's gradient. */
    expect(xent_shard_stats(logits, ROWS, SPLIT, STRIDE, 0, CLASSES, labels, &o, stats) == 0, "shard stats 0");
    expect(xent_shard_stats(logits + SPLIT, ROWS, CLASSES - SPLIT, STRIDE, SPLIT, CLASSES, labels, &o, part) == 0,
           "shard stats 1");
    xent_shard_stats_merge(part, stats, ROWS);
    expect(xent_shard_loss(stats, ROWS, CLASSES, labels, &o, row_loss, lse) == 0, "shard loss");
    expect(xent_shard_backward(logits, ROWS, SPLIT, STRIDE, 0, CLASSES, labels, &o, stats, grad_rows, grad, STRIDE) == 0,
           "shard backward 0");
    expect(xent_shard_backward(logits + SPLIT, ROWS, CLASSES - SPLIT, STRIDE, SPLIT, CLASSES, labels, &o, stats,
                               grad_rows, grad + SPLIT, STRIDE) == 0,
           "shard backward 1");
    printf("%s shard loss %016llx lse %016llx grad %016llx\n", name, (unsigned long long)hash(row_loss, 1, n, n),
           (unsigned long long)hash(lse, 1, ROWS, ROWS), (unsigned long long)hash(grad, ROWS, CLASSES, STRIDE));
    /* The kept pair on shard 1: its exps kept in the gradient buffer, then
       its gradient in place there from its own and the merged statistics. */
    expect(xent_shard_stats_keep(logits + SPLIT, ROWS, CLASSES - SPLIT, STRIDE, SPLIT, CLASSES, labels, &o, kept,
                                 grad + SPLIT, STRIDE) == 0,
           "shard stats keep");
    expect(xent_shard_backward_kept(grad + SPLIT, ROWS, CLASSES - SPLIT, STRIDE, SPLIT, CLASSES, labels, &o, kept, stats,
                                    grad_rows, grad + SPLIT, STRIDE) == 0,
           "shard backward kept");
    printf("%s kept grad %016llx\n", name, (unsigned long long)hash(grad, ROWS, CLASSES, STRIDE));
}

int main(int argc, char **argv) {
    int nostd = argc > 1 && strcmp(argv[1], "nostd") == 0;
    fill();
    XentOptions o = xent_options_default();
    run("default", o);
    o.num_threads = 2;
    run("default", o); /* the same bits with threads (none without std) */
    o.num_threads = 0;
    o.parallel_for = reverse_pool;
    run("default", o); /* and on a caller's pool (69 blocks: two rounds) */
    o.parallel_for = NULL;
    o.label_smoothing = 0.1f;
    o.z_loss_scale = 1e-4f;
    o.logit_softcap = 30.0f;
    o.reduction = XENT_REDUCTION_NONE;
    run("options", o);
    o.class_weights = weights;
    o.reduction = XENT_REDUCTION_MEAN;
    run("weights", o);

    /* What a no_std build leaves out, and its error text. */
    o = xent_options_default();
    uint16_t h[4 * 8] = {0};
    int32_t lab[4] = {0, 1, 2, 3};
    float l;
    XentStatus s = xent_forward_bf16(h, 4, 8, 8, lab, &o, &l, NULL, NULL);
    expect(s == (nostd ? XENT_STATUS_UNSUPPORTED : XENT_STATUS_OK), "bf16 call");
    if (nostd) expect(strcmp(xent_last_error(), xent_status_message(XENT_STATUS_UNSUPPORTED)) == 0, "unsupported text");
    float hidden[4 * 8] = {0}, w[8 * 8] = {0};
    s = xent_linear_forward(hidden, 4, 8, 8, w, 8, 8, NULL, lab, &o, &l, NULL, NULL, NULL, 0);
    expect(s == (nostd ? XENT_STATUS_UNSUPPORTED : XENT_STATUS_OK), "linear call");
    lab[2] = 99;
    s = xent_forward(logits, 4, 8, 8, lab, &o, &l, NULL, NULL);
    expect(s == XENT_STATUS_LABEL_OUT_OF_RANGE, "bad label");
    expect(strstr(xent_last_error(), nostd ? "label is outside" : "label 99 at row 2") != NULL, "bad label text");
    fprintf(stderr, "%s build, path %s: %d failures\n", nostd ? "no_std" : "std", xent_active_isa(), failures);
    return failures != 0;
}
