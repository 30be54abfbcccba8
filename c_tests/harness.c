/* The C harness: every function, every status code it can provoke, in-place
 * use, a pthread parallel_for, concurrent calls. Built by tests/c_harness.rs
 * with -std=c11 -Wall -Wextra -Wpedantic -Werror, against the shared and the
 * static library; also run under valgrind by `make test`. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xent.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        checks++;                                                          \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)

#define ROWS 37
#define CLASSES 45
#define STRIDE 48

static float logits[ROWS * STRIDE];
static int32_t labels[ROWS];
static float probs[ROWS * CLASSES];

static double ref_row_loss(const float *z, size_t c, int32_t y, double *lse) {
    double m = -INFINITY, s = 0.0;
    for (size_t j = 0; j < c; j++) m = z[j] > m ? z[j] : m;
    for (size_t j = 0; j < c; j++) s += exp(z[j] - m);
    *lse = m + log(s);
    return *lse - z[y];
}

static void fill(void) {
    unsigned x = 12345;
    for (size_t i = 0; i < ROWS * STRIDE; i++) {
        x = x * 1103515245u + 12345u;
        logits[i] = ((float)((x >> 8) % 20000) / 1000.0f) - 10.0f;
    }
    for (size_t i = 0; i < ROWS; i++) {
        labels[i] = (int32_t)((i * 7) % CLASSES);
        for (size_t j = 0; j < CLASSES; j++) probs[i * CLASSES + j] = j == (size_t)labels[i] ? 1.0f : 0.0f;
    }
}

static int same_bits(const float *a, const float *b, size_t rows, size_t cols, size_t sa, size_t sb) {
    for (size_t i = 0; i < rows; i++)
        if (memcmp(a + i * sa, b + i * sb, cols * sizeof(float)) != 0) return 0;
    return 1;
}

static void test_meta(void) {
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", XENT_VERSION_MAJOR, XENT_VERSION_MINOR, XENT_VERSION_PATCH);
    CHECK(strcmp(xent_version(), want) == 0, "version %s vs macros %s", xent_version(), want);
    CHECK(strcmp(xent_version(), XENT_VERSION) == 0, "XENT_VERSION %s", XENT_VERSION);
    for (XentStatus a = 0; a <= 8; a++) {
        CHECK(xent_status_message(a) != NULL && xent_status_message(a)[0] != '\0', "message %u", a);
        for (XentStatus b = 0; b < a; b++)
            CHECK(strcmp(xent_status_message(a), xent_status_message(b)) != 0, "messages %u and %u equal", a, b);
    }
    CHECK(xent_status_message(0xffffffffu) != NULL, "unknown status message");
    const char *isa = xent_active_isa();
    CHECK(!strcmp(isa, "scalar") || !strcmp(isa, "neon") || !strcmp(isa, "simd128") || !strcmp(isa, "avx2") || !strcmp(isa, "avx512"), "isa %s", isa);
    XentOptions o = xent_options_default();
    CHECK(o.struct_size == sizeof(XentOptions), "struct_size %zu", o.struct_size);
    CHECK(o.reduction == XENT_REDUCTION_MEAN && o.ignore_index == -100 && o.class_weights == NULL, "defaults");
    CHECK(o.label_smoothing == 0.0f && o.z_loss_scale == 0.0f && o.logit_softcap == 0.0f, "defaults");
    CHECK(o.num_threads == 0 && o.parallel_for == NULL && o.parallel_ctx == NULL, "defaults");
    CHECK(xent_last_error() != NULL, "last_error never NULL");
}

static void test_values(void) {
    float loss, lse[ROWS];
    int32_t am[ROWS];
    CHECK(xent_forward(logits, ROWS, CLASSES, STRIDE, labels, NULL, &loss, lse, am) == XENT_STATUS_OK, "%s", xent_last_error());
    double total = 0.0;
    for (size_t i = 0; i < ROWS; i++) {
        double l;
        total += ref_row_loss(logits + i * STRIDE, CLASSES, labels[i], &l);
        CHECK(fabs(lse[i] - l) < 1e-5 * (1 + fabs(l)), "lse[%zu] %f vs %f", i, lse[i], l);
        int best = 0;
        for (int j = 1; j < CLASSES; j++) if (logits[i * STRIDE + j] > logits[i * STRIDE + best]) best = j;
        CHECK(am[i] == best, "argmax[%zu] %d vs %d", i, am[i], best);
    }
    CHECK(fabs(loss - total / ROWS) < 1e-5 * (total / ROWS), "loss %f vs %f", loss, total / ROWS);

    /* fused = forward + backward; in place = separate; soft one-hot = labels */
    static float g1[ROWS * STRIDE], g2[ROWS * STRIDE], g3[ROWS * STRIDE], inplace[ROWS * STRIDE];
    float l1, l2, l3, one = 1.0f;
    CHECK(xent_forward_backward(logits, ROWS, CLASSES, STRIDE, labels, NULL, &l1, NULL, NULL, g1, STRIDE) == 0, "%s", xent_last_error());
    CHECK(l1 == loss, "fused loss %f vs forward %f", l1, loss);
    CHECK(xent_backward(logits, ROWS, CLASSES, STRIDE, labels, NULL, &one, NULL, g2, CLASSES) == 0, "%s", xent_last_error());
    for (size_t k = 0; k < ROWS * CLASSES; k++) {
        size_t i = k / CLASSES, j = k % CLASSES;
        CHECK(fabsf(g1[i * STRIDE + j] - g2[k]) < 1e-7f, "backward vs fused at %zu,%zu", i, j);
    }
    for (size_t i = 0; i < ROWS * STRIDE; i++) inplace[i] = (i % STRIDE) < CLASSES ? logits[i] : 777.0f;
    CHECK(xent_forward_backward(inplace, ROWS, CLASSES, STRIDE, labels, NULL, &l2, NULL, NULL, inplace, STRIDE) == 0, "%s", xent_last_error());
    CHECK(l2 == l1 && same_bits(inplace, g1, ROWS, CLASSES, STRIDE, STRIDE), "in place differs");
    for (size_t i = 0; i + 1 < ROWS; i++)
        for (size_t j = CLASSES; j < STRIDE; j++) CHECK(inplace[i * STRIDE + j] == 777.0f, "padding written");
    CHECK(xent_soft_forward_backward(logits, ROWS, CLASSES, STRIDE, probs, CLASSES, NULL, &l3, NULL, NULL, g3, STRIDE) == 0, "%s", xent_last_error());
    CHECK(fabsf(l3 - l1) < 1e-6f * l1, "soft loss %f vs %f", l3, l1);
    for (size_t i = 0; i < ROWS; i++)
        for (size_t j = 0; j < CLASSES; j++)
            CHECK(fabsf(g3[i * STRIDE + j] - g1[i * STRIDE + j]) < 1e-7f, "soft grad %zu,%zu", i, j);
    float l4;
    CHECK(xent_soft_forward(logits, ROWS, CLASSES, STRIDE, probs, CLASSES, NULL, &l4, NULL, NULL) == 0 && l4 == l3, "soft forward");
    CHECK(xent_soft_backward(logits, ROWS, CLASSES, STRIDE, probs, CLASSES, NULL, &one, lse, g2, CLASSES) == 0, "soft backward");
    for (size_t k = 0; k < ROWS * CLASSES; k++)
        CHECK(fabsf(g2[k] - g3[(k / CLASSES) * STRIDE + k % CLASSES]) < 1e-6f, "soft backward %zu", k);

    /* zero rows: MEAN is NaN, SUM is 0, NULL buffers are fine */
    XentOptions o = xent_options_default();
    float z = 5.0f;
    CHECK(xent_forward(NULL, 0, CLASSES, CLASSES, NULL, &o, &z, NULL, NULL) == 0 && isnan(z), "empty mean");
    o.reduction = XENT_REDUCTION_SUM;
    CHECK(xent_forward_backward(NULL, 0, CLASSES, CLASSES, NULL, &o, &z, NULL, NULL, NULL, CLASSES) == 0 && z == 0.0f, "empty sum");
    o.reduction = XENT_REDUCTION_NONE;
    CHECK(xent_forward(NULL, 0, CLASSES, CLASSES, NULL, &o, NULL, NULL, NULL) == 0, "empty none");
}

/* ---- bad input: status, message, nothing written ---- */

#define SENTINEL 12345.0f

static float out_loss[ROWS], out_lse[ROWS], out_grad[ROWS * STRIDE];
static int32_t out_am[ROWS];

static void reset_outputs(void) {
    for (size_t i = 0; i < ROWS; i++) { out_loss[i] = SENTINEL; out_lse[i] = SENTINEL; out_am[i] = 999; }
    for (size_t i = 0; i < ROWS * STRIDE; i++) out_grad[i] = SENTINEL;
}

static int untouched(void) {
    for (size_t i = 0; i < ROWS; i++)
        if (out_loss[i] != SENTINEL || out_lse[i] != SENTINEL || out_am[i] != 999) return 0;
    for (size_t i = 0; i < ROWS * STRIDE; i++) if (out_grad[i] != SENTINEL) return 0;
    return 1;
}

static void expect_fb(XentStatus want, const char *msg_part, const float *lg, size_t rows, size_t classes, size_t stride,
                      const int32_t *lab, const XentOptions *o, float *grad, size_t gstride, int line) {
    reset_outputs();
    XentStatus s = xent_forward_backward(lg, rows, classes, stride, lab, o, out_loss, out_lse, out_am, grad, gstride);
    CHECK(s == want, "line %d: status %u, want %u (%s)", line, s, want, xent_last_error());
    CHECK(want == XENT_STATUS_OK || untouched(), "line %d: outputs written on failure", line);
    CHECK(msg_part == NULL || strstr(xent_last_error(), msg_part) != NULL, "line %d: message '%s' lacks '%s'", line,
          xent_last_error(), msg_part);
}

#define EXPECT(want, part, ...) expect_fb(want, part, __VA_ARGS__, __LINE__)

static void test_errors(void) {
    XentOptions o = xent_options_default();
    EXPECT(XENT_STATUS_NULL_POINTER, "logits", NULL, ROWS, CLASSES, STRIDE, labels, &o, out_grad, STRIDE);
    EXPECT(XENT_STATUS_NULL_POINTER, "labels", logits, ROWS, CLASSES, STRIDE, NULL, &o, out_grad, STRIDE);
    EXPECT(XENT_STATUS_NULL_POINTER, "grad_logits", logits, ROWS, CLASSES, STRIDE, labels, &o, NULL, STRIDE);
    EXPECT(XENT_STATUS_INVALID_SHAPE, "classes", logits, ROWS, 0, STRIDE, labels, &o, out_grad, STRIDE);
    EXPECT(XENT_STATUS_INVALID_SHAPE, "stride", logits, ROWS, CLASSES, CLASSES - 1, labels, &o, out_grad, STRIDE);
    EXPECT(XENT_STATUS_INVALID_SHAPE, "stride", logits, ROWS, CLASSES, STRIDE, labels, &o, out_grad, 3);
    EXPECT(XENT_STATUS_SIZE_OVERFLOW, "overflow", logits, (size_t)1 << 40, CLASSES, (size_t)1 << 30, labels, &o, out_grad, STRIDE);
    int32_t bad[ROWS];
    memcpy(bad, labels, sizeof bad);
    bad[17] = CLASSES;
    char msg[128];
    snprintf(msg, sizeof msg, "label %d at row 17 is outside [0, %d)", CLASSES, CLASSES);
    EXPECT(XENT_STATUS_LABEL_OUT_OF_RANGE, msg, logits, ROWS, CLASSES, STRIDE, bad, &o, out_grad, STRIDE);
    bad[17] = -5;
    EXPECT(XENT_STATUS_LABEL_OUT_OF_RANGE, "label -5 at row 17", logits, ROWS, CLASSES, STRIDE, bad, &o, out_grad, STRIDE);
    o.ignore_index = -5; /* now it is ignored */
    EXPECT(XENT_STATUS_OK, NULL, logits, ROWS, CLASSES, STRIDE, bad, &o, out_grad, STRIDE);
    o = xent_options_default();
    o.reduction = 7;
    EXPECT(XENT_STATUS_INVALID_ARGUMENT, "reduction 7", logits, ROWS, CLASSES, STRIDE, labels, &o, out_grad, STRIDE);
    o = xent_options_default();
    o.label_smoothing = 1.5f;
    EXPECT(XENT_STATUS_INVALID_ARGUMENT, "label_smoothing", logits, ROWS, CLASSES, STRIDE, labels, &o, out_grad, STRIDE);
    o.label_smoothing = NAN;
    EXPECT(XENT_STATUS_INVALID_ARGUMENT, "label_smoothing", logits, ROWS, CLASSES, STRIDE, labels, &o, out_grad, STRIDE);
    o = xent_options_default();
    o.logit_softcap = -1.0f;
    EXPECT(XENT_STATUS_INVALID_ARGUMENT, "logit_softcap", logits, ROWS, CLASSES, STRIDE, labels, &o, out_grad, STRIDE);
    o = xent_options_default();
    o.z_loss_scale = NAN;
    EXPECT(XENT_STATUS_INVALID_ARGUMENT, "z_loss_scale", logits, ROWS, CLASSES, STRIDE, labels, &o, out_grad, STRIDE);
    o = xent_options_default();
    o.struct_size = 0;
    EXPECT(XENT_STATUS_INVALID_ARGUMENT, "struct_size", logits, ROWS, CLASSES, STRIDE, labels, &o, out_grad, STRIDE);
    o.struct_size = sizeof(XentOptions) + 8;
    EXPECT(XENT_STATUS_INVALID_ARGUMENT, "struct_size", logits, ROWS, CLASSES, STRIDE, labels, &o, out_grad, STRIDE);
    /* An older, shorter struct: fields past it keep defaults (reduction SUM is read). */
    o = xent_options_default();
    o.reduction = XENT_REDUCTION_SUM;
    o.label_smoothing = 2.0f; /* past struct_size: ignored */
    o.struct_size = offsetof(XentOptions, label_smoothing);
    EXPECT(XENT_STATUS_OK, NULL, logits, ROWS, CLASSES, STRIDE, labels, &o, out_grad, STRIDE);
    /* Overlaps: gradient partly over logits, lse over the gradient. */
    static float buf[ROWS * STRIDE + 8];
    memcpy(buf, logits, sizeof logits);
    o = xent_options_default();
    EXPECT(XENT_STATUS_INVALID_ARGUMENT, "overlaps", buf, ROWS, CLASSES, STRIDE, labels, &o, buf + 1, STRIDE);
    EXPECT(XENT_STATUS_INVALID_ARGUMENT, "overlaps", buf, ROWS, CLASSES, STRIDE, labels, &o, buf, CLASSES);
    reset_outputs();
    float l;
    CHECK(xent_forward_backward(logits, ROWS, CLASSES, STRIDE, labels, NULL, &l, out_grad + 5, NULL, out_grad, STRIDE) ==
              XENT_STATUS_INVALID_ARGUMENT, "lse inside grad");
    /* Misaligned pointer. */
    EXPECT(XENT_STATUS_INVALID_ARGUMENT, "aligned", (const float *)((const char *)logits + 1), ROWS, CLASSES, STRIDE,
           labels, &o, out_grad, STRIDE);
    /* backward: NULL grad_loss */
    CHECK(xent_backward(logits, ROWS, CLASSES, STRIDE, labels, NULL, NULL, NULL, out_grad, STRIDE) == XENT_STATUS_NULL_POINTER, "grad_loss NULL");
    CHECK(strstr(xent_last_error(), "grad_loss") != NULL, "message %s", xent_last_error());
}

/* ---- parallel_for on pthreads, and a pool that skips tasks ---- */

typedef struct {
    XentTaskFn task;
    void *ctx;
    size_t n;
    atomic_size_t next;
} Job;

static void *worker(void *arg) {
    Job *j = arg;
    for (size_t i; (i = atomic_fetch_add(&j->next, 1)) < j->n;) j->task(j->ctx, i);
    return NULL;
}

static atomic_int pool_calls;

static void pthread_pool(void *pctx, size_t n, XentTaskFn task, void *tctx) {
    (void)pctx;
    atomic_fetch_add(&pool_calls, 1);
    Job j = {task, tctx, n, 0};
    pthread_t t[3];
    for (int k = 0; k < 3; k++) pthread_create(&t[k], NULL, worker, &j);
    worker(&j);
    for (int k = 0; k < 3; k++) pthread_join(t[k], NULL);
}

static void lazy_pool(void *pctx, size_t n, XentTaskFn task, void *tctx) {
    (void)pctx;
    for (size_t i = 0; i + 1 < n; i++) task(tctx, i); /* skips the last task */
}

#define BIG_ROWS 2000
#define BIG_CLASSES 200

static float big[BIG_ROWS * BIG_CLASSES], big_g1[BIG_ROWS * BIG_CLASSES], big_g2[BIG_ROWS * BIG_CLASSES];
static int32_t big_labels[BIG_ROWS];

static void test_parallel(void) {
    unsigned x = 7;
    for (size_t i = 0; i < BIG_ROWS * BIG_CLASSES; i++) {
        x = x * 1664525u + 1013904223u;
        big[i] = (float)(x >> 9) / (float)(1 << 23) * 8.0f - 4.0f;
    }
    for (size_t i = 0; i < BIG_ROWS; i++) big_labels[i] = (int32_t)(i % BIG_CLASSES);
    XentOptions o = xent_options_default();
    o.num_threads = 1;
    float l1, l2;
    CHECK(xent_forward_backward(big, BIG_ROWS, BIG_CLASSES, BIG_CLASSES, big_labels, &o, &l1, NULL, NULL, big_g1, BIG_CLASSES) == 0, "serial");
    o.parallel_for = pthread_pool;
    CHECK(xent_forward_backward(big, BIG_ROWS, BIG_CLASSES, BIG_CLASSES, big_labels, &o, &l2, NULL, NULL, big_g2, BIG_CLASSES) == 0, "pool");
    CHECK(atomic_load(&pool_calls) == 1, "pool used %d times", atomic_load(&pool_calls));
    CHECK(memcmp(&l1, &l2, sizeof l1) == 0 && memcmp(big_g1, big_g2, sizeof big_g1) == 0, "pool result differs");
    o.parallel_for = NULL;
    o.num_threads = 2;
    CHECK(xent_forward_backward(big, BIG_ROWS, BIG_CLASSES, BIG_CLASSES, big_labels, &o, &l2, NULL, NULL, big_g2, BIG_CLASSES) == 0, "threads");
    CHECK(memcmp(&l1, &l2, sizeof l1) == 0 && memcmp(big_g1, big_g2, sizeof big_g1) == 0, "threads result differs");
    o.num_threads = 0;
    o.parallel_for = lazy_pool;
    CHECK(xent_forward_backward(big, BIG_ROWS, BIG_CLASSES, BIG_CLASSES, big_labels, &o, &l2, NULL, NULL, big_g2, BIG_CLASSES) ==
              XENT_STATUS_INTERNAL_ERROR, "lazy pool must be reported");
    CHECK(strstr(xent_last_error(), "parallel_for") != NULL, "message %s", xent_last_error());
}

/* ---- fused linear + cross-entropy ---- */

#define LR 13
#define LD 7
#define LHS 9 /* hidden row stride */
#define LC 45

static float lin_h[LR * LHS], lin_w[LC * LD], lin_b[LC];
static float lin_logits[LR * LC], lin_g[LR * LC];

/* Small multiples of 1/4: every product and sum is exact in float32, so the
 * fused call's logits equal these. */
static void lin_fill(void) {
    unsigned x = 99;
    for (size_t i = 0; i < LR * LHS; i++) {
        x = x * 1103515245u + 12345u;
        lin_h[i] = (float)((int)((x >> 10) % 9) - 4);
    }
    for (size_t i = 0; i < LC * LD; i++) {
        x = x * 1103515245u + 12345u;
        lin_w[i] = (float)((int)((x >> 10) % 9) - 4) * 0.25f;
    }
    for (size_t j = 0; j < LC; j++) lin_b[j] = (float)(j % 5) - 2.0f;
    for (size_t i = 0; i < LR; i++)
        for (size_t j = 0; j < LC; j++) {
            float z = lin_b[j];
            for (size_t k = 0; k < LD; k++) z += lin_h[i * LHS + k] * lin_w[j * LD + k];
            lin_logits[i * LC + j] = z;
        }
}

static int close_rel(double got, double want, double scale) { return fabs(got - want) <= 1e-4 * scale + 1e-7; }

static void test_linear(void) {
    lin_fill();
    XentOptions o = xent_options_default();
    o.label_smoothing = 0.1f;
    float l_ref, lse_ref[LR], l, lse[LR];
    int32_t am_ref[LR], am[LR];
    CHECK(xent_forward_backward(lin_logits, LR, LC, LC, labels, &o, &l_ref, lse_ref, am_ref, lin_g, LC) == 0, "unfused");
    static float gh[LR * LD], gw[LC * LD], gb[LC];
    XentStatus s = xent_linear_forward_backward(lin_h, LR, LD, LHS, lin_w, LC, LD, lin_b, labels, &o, &l, lse, am, gh, LD,
                                                gw, LD, gb, NULL, 0);
    CHECK(s == 0, "linear: %s", xent_last_error());
    /* Same logits, one chunk, same row kernels: identical bits. */
    CHECK(memcmp(&l, &l_ref, sizeof l) == 0 && memcmp(lse, lse_ref, sizeof lse) == 0 && memcmp(am, am_ref, sizeof am) == 0,
          "linear loss %.9g vs %.9g", l, l_ref);
    /* Gradients against the products of the unfused gradient, in double. */
    double scale = 0.0, worst = 0.0;
    for (size_t i = 0; i < LR; i++)
        for (size_t k = 0; k < LD; k++) {
            double want = 0.0;
            for (size_t j = 0; j < LC; j++) want += (double)lin_g[i * LC + j] * lin_w[j * LD + k];
            scale = fmax(scale, fabs(want));
            worst = fmax(worst, fabs(want - gh[i * LD + k]));
        }
    CHECK(close_rel(worst, 0.0, scale), "grad_hidden off by %g (scale %g)", worst, scale);
    scale = worst = 0.0;
    for (size_t j = 0; j < LC; j++) {
        double bsum = 0.0;
        for (size_t i = 0; i < LR; i++) bsum += lin_g[i * LC + j];
        CHECK(close_rel(gb[j], bsum, 1.0), "grad_bias[%zu] %g vs %g", j, gb[j], bsum);
        for (size_t k = 0; k < LD; k++) {
            double want = 0.0;
            for (size_t i = 0; i < LR; i++) want += (double)lin_g[i * LC + j] * lin_h[i * LHS + k];
            scale = fmax(scale, fabs(want));
            worst = fmax(worst, fabs(want - gw[j * LD + k]));
        }
    }
    CHECK(close_rel(worst, 0.0, scale), "grad_weight off by %g (scale %g)", worst, scale);

    /* A caller's workspace for 2 rows at a time, misaligned by one byte:
     * same loss; forward only agrees too. */
    size_t ws_size = xent_linear_workspace_size(2, LD, LC, NULL);
    CHECK(ws_size > 2 * LC * sizeof(float) && ws_size < xent_linear_workspace_size(LR, LD, LC, NULL), "size %zu", ws_size);
    char *ws = malloc(ws_size + 1);
    float l2, l3;
    static float gh2[LR * LD];
    CHECK(xent_linear_forward_backward(lin_h, LR, LD, LHS, lin_w, LC, LD, lin_b, labels, &o, &l2, NULL, NULL, gh2, LD, NULL,
                                       0, NULL, ws + 1, ws_size) == 0, "small workspace: %s", xent_last_error());
    CHECK(fabs(l2 - l) <= 1e-6 * fabs(l), "chunked loss %.9g vs %.9g", l2, l);
    CHECK(memcmp(gh2, gh, sizeof gh) == 0, "grad_hidden rows do not depend on the chunk");
    CHECK(xent_linear_forward(lin_h, LR, LD, LHS, lin_w, LC, LD, lin_b, labels, &o, &l3, NULL, NULL, ws + 1, ws_size) == 0,
          "forward: %s", xent_last_error());
    CHECK(memcmp(&l3, &l2, sizeof l3) == 0, "forward %.9g vs %.9g", l3, l2);

    /* Errors: nothing written. */
    float sentinel_loss = SENTINEL;
    static float gw_bad[LC * LD];
    for (size_t i = 0; i < LC * LD; i++) gw_bad[i] = SENTINEL;
#define LIN_EXPECT(want, part, H, D, W, WS, WSZ, GW)                                                              \
    do {                                                                                                          \
        float loss_out = SENTINEL;                                                                                \
        XentStatus st = xent_linear_forward_backward(H, LR, D, LHS, W, LC, LD, lin_b, labels, &o, &loss_out, NULL, \
                                                     NULL, NULL, 0, GW, LD, NULL, WS, WSZ);                       \
        CHECK(st == (want), "status %u want %u (%s)", st, want, xent_last_error());                               \
        CHECK(loss_out == sentinel_loss, "loss written on failure");                                              \
        CHECK(strstr(xent_last_error(), part) != NULL, "message '%s' lacks '%s'", xent_last_error(), part);        \
    } while (0)
    LIN_EXPECT(XENT_STATUS_NULL_POINTER, "hidden", NULL, LD, lin_w, NULL, 0, gw_bad);
    LIN_EXPECT(XENT_STATUS_INVALID_SHAPE, "dim", lin_h, 0, lin_w, NULL, 0, gw_bad);
    LIN_EXPECT(XENT_STATUS_INVALID_SHAPE, "stride", lin_h, LHS + 1, lin_w, NULL, 0, gw_bad);
    LIN_EXPECT(XENT_STATUS_INVALID_ARGUMENT, "workspace", lin_h, LD, lin_w, ws, 16, gw_bad);
    LIN_EXPECT(XENT_STATUS_INVALID_ARGUMENT, "overlaps", lin_h, LD, lin_w, (void *)lin_w, sizeof lin_w, gw_bad);
    LIN_EXPECT(XENT_STATUS_INVALID_ARGUMENT, "overlaps", lin_h, LD, lin_w, NULL, 0, lin_w);
    for (size_t i = 0; i < LC * LD; i++) CHECK(gw_bad[i] == SENTINEL, "grad_weight written on failure");
    free(ws);
}

static void test_linear_parallel(void) {
    enum { R = 300, D = 40, C = 2100 };
    float *h = malloc(sizeof(float) * R * D), *w = malloc(sizeof(float) * C * D);
    float *gw1 = malloc(sizeof(float) * C * D), *gw2 = malloc(sizeof(float) * C * D);
    float *gh1 = malloc(sizeof(float) * R * D), *gh2 = malloc(sizeof(float) * R * D);
    int32_t *lab = malloc(sizeof(int32_t) * R);
    unsigned x = 3;
    for (size_t i = 0; i < R * D; i++) { x = x * 1664525u + 1013904223u; h[i] = (float)(x >> 9) / (float)(1 << 23) - 1.0f; }
    for (size_t i = 0; i < C * D; i++) { x = x * 1664525u + 1013904223u; w[i] = (float)(x >> 9) / (float)(1 << 23) * 0.3f - 0.15f; }
    for (size_t i = 0; i < R; i++) lab[i] = i % 11 == 0 ? -100 : (int32_t)((i * 31) % C);
    XentOptions o = xent_options_default();
    o.num_threads = 1;
    float l1, l2;
    CHECK(xent_linear_forward_backward(h, R, D, D, w, C, D, NULL, lab, &o, &l1, NULL, NULL, gh1, D, gw1, D, NULL, NULL, 0) == 0,
          "serial: %s", xent_last_error());
    o.parallel_for = pthread_pool;
    int before = atomic_load(&pool_calls);
    CHECK(xent_linear_forward_backward(h, R, D, D, w, C, D, NULL, lab, &o, &l2, NULL, NULL, gh2, D, gw2, D, NULL, NULL, 0) == 0,
          "pool: %s", xent_last_error());
    CHECK(atomic_load(&pool_calls) > before, "pool not used");
    CHECK(memcmp(&l1, &l2, sizeof l1) == 0 && memcmp(gh1, gh2, sizeof(float) * R * D) == 0 &&
              memcmp(gw1, gw2, sizeof(float) * C * D) == 0, "pool result differs");
    o.parallel_for = lazy_pool;
    CHECK(xent_linear_forward_backward(h, R, D, D, w, C, D, NULL, lab, &o, &l2, NULL, NULL, gh2, D, gw2, D, NULL, NULL, 0) ==
              XENT_STATUS_INTERNAL_ERROR, "lazy pool must be reported");
    free(h); free(w); free(gw1); free(gw2); free(gh1); free(gh2); free(lab);
}

/* ---- bfloat16 / binary16 logits ---- */

static uint16_t bf16_from(float x) { /* nearest even (finite inputs) */
    uint32_t b;
    memcpy(&b, &x, 4);
    return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}
static float bf16_to(uint16_t h) {
    uint32_t b = (uint32_t)h << 16;
    float x;
    memcpy(&x, &b, 4);
    return x;
}
static float f16_to(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}
static uint16_t f16_from(float x) { /* nearest even (finite inputs): round to the ulp of |x|'s binade */
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    float a = fabsf(x);
    if (a >= 65520.0f) return sign | 0x7c00;
    int e;
    frexpf(a, &e);                      /* a in [2^(e-1), 2^e) */
    int q = e - 11 < -24 ? -24 : e - 11; /* exponent of the ulp there (subnormals: 2^-24) */
    float v = ldexpf(rintf(ldexpf(a, -q)), q);
    if (v < 0x1p-14f) return sign | (uint16_t)ldexpf(v, 24);
    frexpf(v, &e);
    return sign | (uint16_t)((e + 14) << 10) | (uint16_t)(ldexpf(v, 11 - e) - 1024.0f);
}

#define HR 9
#define HC 70
static void test_half(void) {
    static uint16_t h[HR * HC], g16[HR * HC], inplace[HR * HC];
    static float wide[HR * HC], g32[HR * HC];
    int32_t lab[HR];
    for (size_t i = 0; i < HR; i++) lab[i] = (int32_t)((i * 13) % HC);
    lab[4] = -100;
    XentOptions o = xent_options_default();
    o.label_smoothing = 0.05f;
    for (int f16 = 0; f16 < 2; f16++) {
        for (size_t i = 0; i < HR * HC; i++) {
            float x = logits[i % (ROWS * STRIDE)] * 0.9f;
            h[i] = f16 ? f16_from(x) : bf16_from(x);
            wide[i] = f16 ? f16_to(h[i]) : bf16_to(h[i]);
        }
        float l32, lse32[HR], l16, lse16[HR];
        int32_t am32[HR], am16[HR];
        CHECK(xent_forward_backward(wide, HR, HC, HC, lab, &o, &l32, lse32, am32, g32, HC) == 0, "f32");
        XentStatus st = f16 ? xent_forward_backward_f16(h, HR, HC, HC, lab, &o, &l16, lse16, am16, g16, HC)
                            : xent_forward_backward_bf16(h, HR, HC, HC, lab, &o, &l16, lse16, am16, g16, HC);
        CHECK(st == 0, "%s: %s", f16 ? "f16" : "bf16", xent_last_error());
        CHECK(memcmp(&l16, &l32, 4) == 0 && memcmp(lse16, lse32, sizeof lse16) == 0 && memcmp(am16, am32, sizeof am16) == 0,
              "%s loss %.9g vs %.9g", f16 ? "f16" : "bf16", l16, l32);
        int same = 1;
        for (size_t i = 0; i < HR * HC; i++) same &= g16[i] == (f16 ? f16_from(g32[i]) : bf16_from(g32[i]));
        CHECK(same, "%s gradient is not the float32 gradient rounded to nearest even", f16 ? "f16" : "bf16");
        /* In place, and the forward alone. */
        memcpy(inplace, h, sizeof h);
        st = f16 ? xent_forward_backward_f16(inplace, HR, HC, HC, lab, &o, &l16, NULL, NULL, inplace, HC)
                 : xent_forward_backward_bf16(inplace, HR, HC, HC, lab, &o, &l16, NULL, NULL, inplace, HC);
        CHECK(st == 0 && memcmp(inplace, g16, sizeof g16) == 0, "%s in place", f16 ? "f16" : "bf16");
        st = f16 ? xent_forward_f16(h, HR, HC, HC, lab, &o, &l16, lse16, am16)
                 : xent_forward_bf16(h, HR, HC, HC, lab, &o, &l16, lse16, am16);
        CHECK(st == 0 && memcmp(&l16, &l32, 4) == 0 && memcmp(lse16, lse32, sizeof lse16) == 0, "%s forward", f16 ? "f16" : "bf16");
    }
    /* Bad input: misaligned, NULL, overlap, bad label; nothing written. */
    static uint16_t buf[HR * HC + 1];
    float l = SENTINEL;
    CHECK(xent_forward_bf16((const uint16_t *)((const char *)buf + 1), HR, HC, HC, lab, NULL, &l, NULL, NULL) ==
              XENT_STATUS_INVALID_ARGUMENT && strstr(xent_last_error(), "aligned") != NULL, "misaligned: %s", xent_last_error());
    CHECK(xent_forward_f16(NULL, HR, HC, HC, lab, NULL, &l, NULL, NULL) == XENT_STATUS_NULL_POINTER, "NULL logits");
    for (size_t i = 0; i < HR * HC; i++) g16[i] = 0x1234;
    CHECK(xent_forward_backward_bf16(buf, HR, HC, HC, lab, NULL, &l, NULL, NULL, buf + 1, HC) == XENT_STATUS_INVALID_ARGUMENT,
          "overlap");
    lab[2] = HC;
    CHECK(xent_forward_backward_f16(h, HR, HC, HC, lab, NULL, &l, NULL, NULL, g16, HC) == XENT_STATUS_LABEL_OUT_OF_RANGE, "label");
    int untouched16 = l == SENTINEL;
    for (size_t i = 0; i < HR * HC; i++) untouched16 &= g16[i] == 0x1234;
    CHECK(untouched16, "16-bit outputs written on failure");
    /* A pthread pool gives the serial bits. */
    size_t n = (size_t)BIG_ROWS * BIG_CLASSES;
    uint16_t *bh = malloc(n * 2), *bg1 = malloc(n * 2), *bg2 = malloc(n * 2);
    for (size_t i = 0; i < n; i++) bh[i] = bf16_from(big[i]);
    o = xent_options_default();
    o.num_threads = 1;
    float l1, l2;
    CHECK(xent_forward_backward_bf16(bh, BIG_ROWS, BIG_CLASSES, BIG_CLASSES, big_labels, &o, &l1, NULL, NULL, bg1, BIG_CLASSES) == 0,
          "serial bf16");
    o.parallel_for = pthread_pool;
    CHECK(xent_forward_backward_bf16(bh, BIG_ROWS, BIG_CLASSES, BIG_CLASSES, big_labels, &o, &l2, NULL, NULL, bg2, BIG_CLASSES) == 0,
          "pool bf16");
    CHECK(memcmp(&l1, &l2, 4) == 0 && memcmp(bg1, bg2, n * 2) == 0, "bf16 pool result differs");
    free(bh);
    free(bg1);
    free(bg2);
}

/* ---- vocabulary shards (in one process: the merge stands in for MPI) ---- */

static void test_shard(void) {
    enum { SR = 5, SC = 45, CUT = 17 };
    XentOptions o = xent_options_default();
    o.label_smoothing = 0.1f;
    o.z_loss_scale = 1e-4f;
    int32_t lab[SR] = {0, 16, 17, 44, -100};
    XentShardStats a[SR], b[SR];
    CHECK(xent_shard_stats(logits, SR, CUT, STRIDE, 0, SC, lab, &o, a) == 0, "stats a: %s", xent_last_error());
    CHECK(xent_shard_stats(logits + CUT, SR, SC - CUT, STRIDE, CUT, SC, lab, &o, b) == 0, "stats b: %s", xent_last_error());
    xent_shard_stats_merge(a, b, SR);
    xent_shard_stats_merge(NULL, b, SR); /* no-op */
    float l, lse[SR], want_l, want_lse[SR], one = 1.0f;
    static float g[SR * SC], want_g[SR * STRIDE];
    CHECK(xent_shard_loss(b, SR, SC, lab, &o, &l, lse) == 0, "loss: %s", xent_last_error());
    CHECK(xent_shard_backward(logits, SR, CUT, STRIDE, 0, SC, lab, &o, b, &one, g, SC) == 0, "backward a: %s", xent_last_error());
    CHECK(xent_shard_backward(logits + CUT, SR, SC - CUT, STRIDE, CUT, SC, lab, &o, b, &one, g + CUT, SC) == 0, "backward b: %s",
          xent_last_error());
    CHECK(xent_forward_backward(logits, SR, SC, STRIDE, lab, &o, &want_l, want_lse, NULL, want_g, STRIDE) == 0, "unsharded");
    CHECK(fabsf(l - want_l) <= 1e-5f * fabsf(want_l), "sharded loss %.8g vs %.8g", l, want_l);
    double worst = 0.0;
    for (size_t i = 0; i < SR; i++) {
        worst = fmax(worst, fabs(lse[i] - want_lse[i]));
        for (size_t j = 0; j < SC; j++) worst = fmax(worst, fabs(g[i * SC + j] - want_g[i * STRIDE + j]));
    }
    CHECK(worst <= 1e-5, "sharded lse/gradient off by %g", worst);
    /* Bad input: nothing written. */
    XentShardStats untouched[SR];
    memset(untouched, 0x5a, sizeof untouched);
    XentShardStats c[SR];
    memcpy(c, untouched, sizeof c);
    CHECK(xent_shard_stats(logits, SR, 30, STRIDE, 20, SC, lab, &o, c) == XENT_STATUS_INVALID_SHAPE &&
              strstr(xent_last_error(), "does not fit") != NULL, "shard beyond the row: %s", xent_last_error());
    CHECK(xent_shard_stats(logits, SR, CUT, STRIDE, 0, SC, lab, &o, NULL) == XENT_STATUS_NULL_POINTER, "NULL stats");
    int32_t bad[SR] = {0, 1, 2, SC, 4};
    CHECK(xent_shard_stats(logits, SR, CUT, STRIDE, 0, SC, bad, &o, c) == XENT_STATUS_LABEL_OUT_OF_RANGE, "label");
    CHECK(memcmp(c, untouched, sizeof c) == 0, "stats written on failure");
    CHECK(xent_shard_backward(logits, SR, CUT, STRIDE, 0, SC, lab, &o, b, &one, (float *)logits + 1, STRIDE) ==
              XENT_STATUS_INVALID_ARGUMENT, "overlapping gradient");
    /* The kept pair: shard a keeps into the gradient buffer and makes its
       gradient in place there; shard b keeps over a copy of its logits (in
       place) and writes its gradient beside shard a's. */
    XentShardStats ka[SR], kb[SR], km[SR];
    static float kg[SR * SC], own[SR * STRIDE];
    memcpy(own, logits, sizeof own);
    CHECK(xent_shard_stats_keep(logits, SR, CUT, STRIDE, 0, SC, lab, &o, ka, kg, SC) == 0, "keep a: %s", xent_last_error());
    CHECK(xent_shard_stats_keep(own + CUT, SR, SC - CUT, STRIDE, CUT, SC, lab, &o, kb, own + CUT, STRIDE) == 0, "keep b: %s",
          xent_last_error());
    memcpy(km, kb, sizeof km);
    xent_shard_stats_merge(ka, km, SR);
    CHECK(xent_shard_backward_kept(kg, SR, CUT, SC, 0, SC, lab, &o, ka, km, &one, kg, SC) == 0, "kept a: %s", xent_last_error());
    CHECK(xent_shard_backward_kept(own + CUT, SR, SC - CUT, STRIDE, CUT, SC, lab, &o, kb, km, &one, kg + CUT, SC) == 0,
          "kept b: %s", xent_last_error());
    worst = 0.0;
    for (size_t i = 0; i < SR; i++)
        for (size_t j = 0; j < SC; j++) worst = fmax(worst, fabs(kg[i * SC + j] - want_g[i * STRIDE + j]));
    CHECK(worst <= 1e-5, "kept gradient off by %g", worst);
    CHECK(xent_shard_backward_kept(kg, SR, CUT, SC, 0, SC, lab, &o, NULL, km, &one, kg, SC) == XENT_STATUS_NULL_POINTER &&
              strstr(xent_last_error(), "local") != NULL, "NULL local stats: %s", xent_last_error());
    memcpy(c, untouched, sizeof c);
    CHECK(xent_shard_stats_keep(own, SR, CUT, STRIDE, 0, SC, lab, &o, c, own + 1, STRIDE) == XENT_STATUS_INVALID_ARGUMENT &&
              strstr(xent_last_error(), "kept == logits") != NULL, "overlapping kept: %s", xent_last_error());
    CHECK(memcmp(c, untouched, sizeof c) == 0, "stats written on failure");
}

/* ---- many threads at once; last_error is per thread ---- */

static void *hammer(void *arg) {
    size_t id = (size_t)arg;
    static float g[8][ROWS * STRIDE];
    float l;
    int ok = 1;
    for (int it = 0; it < 50; it++) {
        ok &= xent_forward_backward(logits, ROWS, CLASSES, STRIDE, labels, NULL, &l, NULL, NULL, g[id], STRIDE) == 0;
        int32_t bad[ROWS];
        memcpy(bad, labels, sizeof bad);
        bad[id] = 1000 + (int32_t)id;
        ok &= xent_forward(logits, ROWS, CLASSES, STRIDE, bad, NULL, &l, NULL, NULL) == XENT_STATUS_LABEL_OUT_OF_RANGE;
        char want[64];
        snprintf(want, sizeof want, "label %d at row %zu", 1000 + (int)id, id);
        ok &= strstr(xent_last_error(), want) != NULL;
    }
    return (void *)(size_t)ok;
}

static void test_threads(void) {
    pthread_t t[8];
    for (size_t k = 0; k < 8; k++) pthread_create(&t[k], NULL, hammer, (void *)k);
    for (size_t k = 0; k < 8; k++) {
        void *r;
        pthread_join(t[k], &r);
        CHECK(r == (void *)1, "thread %zu saw a wrong result or another thread's error", k);
    }
}

/* A pool that counts its invocations (and runs the tasks in order). */
static int trainer_pool_calls = 0;
static void counting_pool(void *ctx, size_t n, XentTaskFn task, void *task_ctx) {
    (void)ctx;
    trainer_pool_calls++;
    for (size_t i = 0; i < n; i++) task(task_ctx, i);
}

/* The gradient options of a training loop: per-row losses and the mean's
 * gradient in one pass (NONE + grad_scale), accumulation over two
 * micro-batches, a padded vocabulary's padding zeroed, the 16-bit and shard
 * calls, refused values, an older struct_size, one pool invocation. */
static void test_trainer_options(void) {
    enum { PAD = 52, HALF = ROWS / 2 };
    static float mean_grad[ROWS * PAD], acc[ROWS * PAD], half_grad[ROWS * PAD];
    float loss, row_loss[ROWS];
    XentOptions o = xent_options_default();
    CHECK(o.grad_scale == 1.0f && o.grad_accumulate == 0 && o.grad_zero_padding == 0, "defaults");
    for (size_t i = 0; i < ROWS * PAD; i++) mean_grad[i] = acc[i] = 5.0f;
    CHECK(xent_forward_backward(logits, ROWS, CLASSES, STRIDE, labels, NULL, &loss, NULL, NULL, mean_grad, PAD) == XENT_STATUS_OK, "%s", xent_last_error());
    CHECK(mean_grad[PAD - 1] == 5.0f, "padding untouched by default");
    o.reduction = XENT_REDUCTION_NONE;
    o.grad_scale = 1.0f / ROWS;
    o.grad_zero_padding = 1;
    /* micro-batch 1 overwrites, micro-batch 2 accumulates: the rows differ,
     * so together they hold the whole batch's mean gradient. */
    CHECK(xent_forward_backward(logits, HALF, CLASSES, STRIDE, labels, &o, row_loss, NULL, NULL, acc, PAD) == XENT_STATUS_OK, "%s", xent_last_error());
    for (size_t i = HALF * PAD; i < ROWS * PAD; i++) acc[i] = 0.0f;
    o.grad_accumulate = 1;
    CHECK(xent_forward_backward(logits + HALF * STRIDE, ROWS - HALF, CLASSES, STRIDE, labels + HALF, &o, row_loss + HALF, NULL, NULL, acc + HALF * PAD, PAD) == XENT_STATUS_OK, "%s", xent_last_error());
    double sum = 0.0;
    for (size_t i = 0; i < ROWS; i++) sum += row_loss[i];
    CHECK(fabs(sum / ROWS - loss) < 1e-5 * loss, "mean of row losses %f vs %f", sum / ROWS, loss);
    for (size_t i = 0; i < ROWS; i++) {
        for (size_t j = 0; j < CLASSES; j++)
            CHECK(fabsf(acc[i * PAD + j] - mean_grad[i * PAD + j]) < 1e-8f, "grad %zu,%zu %g vs %g", i, j, acc[i * PAD + j], mean_grad[i * PAD + j]);
        for (size_t j = CLASSES; j < PAD; j++) CHECK(acc[i * PAD + j] == 0.0f, "padding %zu,%zu not zeroed", i, j);
    }
    /* accumulate = old + overwrite, bit for bit */
    o.grad_accumulate = 0;
    CHECK(xent_forward_backward(logits, ROWS, CLASSES, STRIDE, labels, &o, row_loss, NULL, NULL, half_grad, PAD) == 0, "%s", xent_last_error());
    for (size_t i = 0; i < ROWS * PAD; i++) acc[i] = (float)(i % 13) * 0.25f;
    o.grad_accumulate = 1;
    CHECK(xent_forward_backward(logits, ROWS, CLASSES, STRIDE, labels, &o, row_loss, NULL, NULL, acc, PAD) == 0, "%s", xent_last_error());
    for (size_t i = 0; i < ROWS; i++)
        for (size_t j = 0; j < CLASSES; j++) {
            float want = (float)((i * PAD + j) % 13) * 0.25f + half_grad[i * PAD + j];
            CHECK(memcmp(&acc[i * PAD + j], &want, sizeof want) == 0, "accumulated %zu,%zu", i, j);
        }
    /* refused values, nothing written */
    static float copy[ROWS * PAD];
    memcpy(copy, acc, sizeof acc);
    o.grad_accumulate = 2;
    CHECK(xent_forward_backward(logits, ROWS, CLASSES, STRIDE, labels, &o, row_loss, NULL, NULL, acc, PAD) == XENT_STATUS_INVALID_ARGUMENT, "grad_accumulate 2");
    o.grad_accumulate = 1;
    o.grad_scale = INFINITY;
    CHECK(xent_backward(logits, ROWS, CLASSES, STRIDE, labels, &o, row_loss, NULL, acc, PAD) == XENT_STATUS_INVALID_ARGUMENT, "grad_scale inf");
    CHECK(memcmp(copy, acc, sizeof acc) == 0, "refused calls wrote");
    static float inplace[ROWS * STRIDE];
    memcpy(inplace, logits, sizeof inplace);
    o.grad_scale = 1.0f;
    CHECK(xent_forward_backward(inplace, ROWS, CLASSES, STRIDE, labels, &o, row_loss, NULL, NULL, inplace, STRIDE) == XENT_STATUS_INVALID_ARGUMENT, "accumulate in place");
    CHECK(memcmp(inplace, logits, sizeof inplace) == 0, "refused in-place call wrote");
    /* an older caller's struct (up to parallel_ctx) keeps the defaults */
    XentOptions old = xent_options_default();
    old.grad_accumulate = 7;
    old.struct_size = offsetof(XentOptions, grad_scale);
    CHECK(xent_forward_backward(logits, ROWS, CLASSES, STRIDE, labels, &old, &loss, NULL, NULL, half_grad, PAD) == 0, "old struct_size: %s", xent_last_error());
    /* 16-bit: accumulate and padding */
    static uint16_t h[ROWS * STRIDE], g16[ROWS * PAD];
    for (size_t i = 0; i < ROWS * STRIDE; i++) {
        uint32_t b;
        memcpy(&b, &logits[i], 4);
        h[i] = (uint16_t)(b >> 16);
    }
    for (size_t i = 0; i < ROWS * PAD; i++) g16[i] = 0x3f80; /* 1.0 */
    o = xent_options_default();
    o.grad_accumulate = 1;
    o.grad_zero_padding = 1;
    CHECK(xent_forward_backward_bf16(h, ROWS, CLASSES, STRIDE, labels, &o, &loss, NULL, NULL, g16, PAD) == 0, "%s", xent_last_error());
    for (size_t i = 0; i < ROWS; i++) {
        float s = 0.0f;
        for (size_t j = 0; j < CLASSES; j++) {
            uint32_t b = (uint32_t)g16[i * PAD + j] << 16;
            float x;
            memcpy(&x, &b, 4);
            s += x - 1.0f;
        }
        CHECK(fabsf(s) < 0.05f, "bf16 row %zu: the gradient added sums to %g", i, s);
        for (size_t j = CLASSES; j < PAD; j++) CHECK(g16[i * PAD + j] == 0, "bf16 padding %zu,%zu", i, j);
    }
    /* one pool invocation per pass, and an empty shard */
    o = xent_options_default();
    o.parallel_for = counting_pool;
    trainer_pool_calls = 0;
    CHECK(xent_forward(logits, ROWS, CLASSES, STRIDE, labels, &o, &loss, NULL, NULL) == 0, "%s", xent_last_error());
    XentShardStats st[ROWS], none_st[ROWS];
    CHECK(xent_shard_stats(logits, ROWS, CLASSES, STRIDE, 0, CLASSES + 10, labels, &o, st) == 0, "%s", xent_last_error());
    CHECK(xent_shard_stats(NULL, ROWS, 0, 0, CLASSES, CLASSES + 10, labels, &o, none_st) == 0, "empty shard: %s", xent_last_error());
    XentShardStats merged[ROWS];
    memcpy(merged, st, sizeof st);
    xent_shard_stats_merge(none_st, merged, ROWS);
    CHECK(memcmp(merged, st, sizeof st) == 0, "an empty shard changed the merged stats");
    CHECK(trainer_pool_calls <= 2, "pool invoked %d times for two small calls", trainer_pool_calls);
}

int main(void) {
    fill();
    test_meta();
    test_values();
    test_errors();
    test_parallel();
    test_linear();
    test_linear_parallel();
    test_half();
    test_shard();
    test_threads();
    test_trainer_options();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
