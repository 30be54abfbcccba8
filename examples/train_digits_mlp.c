/* A two-layer network on the UCI 8x8 digits, whose classifier head is
 * xent's fused linear + cross-entropy call: the trainer never holds logits.
 *
 *   cc -std=c11 -O2 -I include examples/train_digits_mlp.c -L target/release -lxent -lm -o train_digits_mlp
 *   ./train_digits_mlp examples/data/digits.csv
 *
 * hidden = tanh(X W1^T + b1); xent_linear_forward_backward gives the loss of
 * hidden W2^T + b2 and the gradients for W2, b2 and hidden, which this file
 * backpropagates through tanh into W1 and b1. One workspace, sized once with
 * xent_linear_workspace_size, serves every call: no allocation per step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "xent.h"

#define FEATURES 64
#define HIDDEN 32
#define CLASSES 10
#define MAX_SAMPLES 2000
#define BATCH 64
#define EPOCHS 30

static float X[MAX_SAMPLES][FEATURES];
static int32_t Y[MAX_SAMPLES];
static float W1[HIDDEN][FEATURES], B1[HIDDEN], W2[CLASSES][HIDDEN], B2[CLASSES];

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

static void check(XentStatus s) {
    if (s != XENT_STATUS_OK) {
        fprintf(stderr, "xent: %s: %s\n", xent_status_message(s), xent_last_error());
        exit(1);
    }
}

/* h[r] = tanh(X[idx[r]] W1^T + b1) */
static void layer1(const int *idx, int rows, float h[][HIDDEN]) {
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < HIDDEN; k++) {
            float s = B1[k];
            for (int j = 0; j < FEATURES; j++) s += X[idx[r]][j] * W1[k][j];
            h[r][k] = tanhf(s);
        }
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "examples/data/digits.csv";
    int n = load(path);
    if (n < 100) {
        fprintf(stderr, "could not read the digits from %s\n", path);
        return 1;
    }
    static int order[MAX_SAMPLES];
    unsigned seed = 2024;
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % (unsigned)(i + 1)), t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
    /* Small random weights. */
    for (int k = 0; k < HIDDEN; k++)
        for (int j = 0; j < FEATURES; j++) {
            seed = seed * 1103515245u + 12345u;
            W1[k][j] = ((float)((seed >> 8) % 2001) / 1000.0f - 1.0f) * 0.25f;
        }
    for (int c = 0; c < CLASSES; c++)
        for (int k = 0; k < HIDDEN; k++) {
            seed = seed * 1103515245u + 12345u;
            W2[c][k] = ((float)((seed >> 8) % 2001) / 1000.0f - 1.0f) * 0.25f;
        }
    int n_train = n * 4 / 5, n_test = n - n_train;
    const int *train = order, *test = order + n_train;
    printf("xent %s: a %d-%d-%d network on %d digits; the head is xent_linear_forward_backward\n", xent_version(),
           FEATURES, HIDDEN, CLASSES, n);

    size_t ws_size = xent_linear_workspace_size(MAX_SAMPLES, HIDDEN, CLASSES, NULL);
    void *workspace = malloc(ws_size);
    if (!workspace) return 1;
    static float h[MAX_SAMPLES][HIDDEN], gh[BATCH][HIDDEN], gw2[CLASSES][HIDDEN], gb2[CLASSES];
    static int32_t labels[MAX_SAMPLES], argmax[MAX_SAMPLES];
    XentOptions opt = xent_options_default();
    const float lr = 0.3f;
    float accuracy = 0.0f;
    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
        double train_loss = 0.0;
        int batches = 0;
        for (int start = 0; start < n_train; start += BATCH) {
            int rows = n_train - start < BATCH ? n_train - start : BATCH;
            const int *idx = train + start;
            for (int r = 0; r < rows; r++) labels[r] = Y[idx[r]];
            layer1(idx, rows, h);
            float loss;
            check(xent_linear_forward_backward(&h[0][0], rows, HIDDEN, HIDDEN, &W2[0][0], CLASSES, HIDDEN, B2, labels, &opt,
                                               &loss, NULL, NULL, &gh[0][0], HIDDEN, &gw2[0][0], HIDDEN, gb2, workspace,
                                               ws_size));
            train_loss += loss;
            batches++;
            /* Backpropagate through tanh into layer 1, then step. */
            for (int r = 0; r < rows; r++)
                for (int k = 0; k < HIDDEN; k++) {
                    float d = gh[r][k] * (1.0f - h[r][k] * h[r][k]);
                    B1[k] -= lr * d;
                    for (int j = 0; j < FEATURES; j++) W1[k][j] -= lr * d * X[idx[r]][j];
                }
            for (int c = 0; c < CLASSES; c++) {
                B2[c] -= lr * gb2[c];
                for (int k = 0; k < HIDDEN; k++) W2[c][k] -= lr * gw2[c][k];
            }
        }
        for (int r = 0; r < n_test; r++) labels[r] = Y[test[r]];
        layer1(test, n_test, h);
        float test_loss;
        check(xent_linear_forward(&h[0][0], n_test, HIDDEN, HIDDEN, &W2[0][0], CLASSES, HIDDEN, B2, labels, &opt, &test_loss,
                                  NULL, argmax, workspace, ws_size));
        int correct = 0;
        for (int r = 0; r < n_test; r++) correct += argmax[r] == labels[r];
        accuracy = (float)correct / (float)n_test;
        if (epoch % 5 == 0 || epoch == 1)
            printf("epoch %2d  train loss %.4f  test loss %.4f  test accuracy %.3f\n", epoch, train_loss / batches,
                   test_loss, accuracy);
    }
    free(workspace);
    if (accuracy < 0.9f) {
        fprintf(stderr, "test accuracy %.3f is below 0.9\n", accuracy);
        return 1;
    }
    return 0;
}
