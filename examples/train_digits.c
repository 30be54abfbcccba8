/* Softmax regression on the UCI 8x8 digits with xent: a complete C trainer.
 *
 *   cc -std=c11 -O2 -I include examples/train_digits.c -L target/release -lxent -lm -o train_digits
 *   ./train_digits examples/data/digits.csv
 *
 * Each step computes logits = X W^T + b for a minibatch, asks xent for the
 * mean cross-entropy and its gradient (in place, over the logits), and takes
 * an SGD step. The test split is scored with xent_forward's argmax output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xent.h"

#define FEATURES 64
#define CLASSES 10
#define MAX_SAMPLES 2000
#define BATCH 64
#define EPOCHS 20

static float X[MAX_SAMPLES][FEATURES];
static int32_t Y[MAX_SAMPLES];
static float W[CLASSES][FEATURES], B[CLASSES];

static int load(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    int n = 0;
    while (n < MAX_SAMPLES) {
        int v, ok = 1;
        for (int j = 0; j < FEATURES && ok; j++) {
            ok = fscanf(f, "%d,", &v) == 1;
            X[n][j] = (float)v / 16.0f;
        }
        if (!ok || fscanf(f, "%d", &v) != 1) break;
        Y[n++] = v;
    }
    fclose(f);
    return n;
}

/* logits[r][c] = X[idx[r]] . W[c] + B[c] */
static void linear(const int *idx, int rows, float *logits) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < CLASSES; c++) {
            float s = B[c];
            for (int j = 0; j < FEATURES; j++) s += X[idx[r]][j] * W[c][j];
            logits[r * CLASSES + c] = s;
        }
}

static int check(XentStatus s) {
    if (s != XENT_STATUS_OK) {
        fprintf(stderr, "xent: %s: %s\n", xent_status_message(s), xent_last_error());
        exit(1);
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "examples/data/digits.csv";
    int n = load(path);
    if (n < 100) {
        fprintf(stderr, "could not read the digits from %s\n", path);
        return 1;
    }
    /* Deterministic shuffle, then 80% train / 20% test. */
    static int order[MAX_SAMPLES];
    unsigned seed = 2024;
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % (unsigned)(i + 1)), t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
    int n_train = n * 4 / 5, n_test = n - n_train;
    const int *train = order, *test = order + n_train;
    printf("xent %s (%s kernels): softmax regression on %d digits (%d train, %d test)\n", xent_version(),
           xent_active_isa(), n, n_train, n_test);

    static float logits[MAX_SAMPLES * CLASSES];
    static int32_t labels[MAX_SAMPLES], argmax[MAX_SAMPLES];
    XentOptions opt = xent_options_default();
    const float lr = 0.5f;
    float accuracy = 0.0f;
    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
        double train_loss = 0.0;
        int batches = 0;
        for (int start = 0; start < n_train; start += BATCH) {
            int rows = n_train - start < BATCH ? n_train - start : BATCH;
            const int *idx = train + start;
            for (int r = 0; r < rows; r++) labels[r] = Y[idx[r]];
            linear(idx, rows, logits);
            float loss;
            /* In place: the gradient d(mean loss)/d(logits) overwrites the logits. */
            check(xent_forward_backward(logits, rows, CLASSES, CLASSES, labels, &opt, &loss, NULL, NULL, logits, CLASSES));
            train_loss += loss;
            batches++;
            for (int c = 0; c < CLASSES; c++) {
                float gb = 0.0f;
                for (int r = 0; r < rows; r++) {
                    float g = logits[r * CLASSES + c];
                    gb += g;
                    for (int j = 0; j < FEATURES; j++) W[c][j] -= lr * g * X[idx[r]][j];
                }
                B[c] -= lr * gb;
            }
        }
        for (int r = 0; r < n_test; r++) labels[r] = Y[test[r]];
        linear(test, n_test, logits);
        float test_loss;
        check(xent_forward(logits, n_test, CLASSES, CLASSES, labels, &opt, &test_loss, NULL, argmax));
        int correct = 0;
        for (int r = 0; r < n_test; r++) correct += argmax[r] == labels[r];
        accuracy = (float)correct / (float)n_test;
        printf("epoch %2d  train loss %.4f  test loss %.4f  test accuracy %.3f\n", epoch, train_loss / batches,
               test_loss, accuracy);
    }
    if (accuracy < 0.9f) {
        fprintf(stderr, "test accuracy %.3f is below 0.9\n", accuracy);
        return 1;
    }
    return 0;
}
