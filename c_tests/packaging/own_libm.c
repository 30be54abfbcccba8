/* A program that defines its own fmaf and fmod (as an engine with its own
 * math library may) and links libxent.a: its calls must reach its own
 * functions, and xent must keep using its private copies. */
#include <stdio.h>
#include "xent.h"

static int own_calls;

float fmaf(float a, float b, float c) {
    own_calls += 1;
    return a * b + c + 1000.0f; /* deliberately not the real fmaf */
}

double fmod(double a, double b) {
    own_calls += 1;
    return a + b; /* deliberately not the real fmod */
}

int main(void) {
    const float logits[6] = {1.0f, 2.0f, 3.0f, -1.0f, 0.5f, 4.0f};
    const int32_t labels[2] = {2, 0};
    float loss = 0.0f, grad[6];
    volatile float a = 2.0f, b = 3.0f, c = 1.0f;
    volatile double x = 7.0, y = 2.0;
    XentStatus st = xent_forward_backward(logits, 2, 3, 3, labels, NULL, &loss, NULL, NULL, grad, 3);
    if (st != XENT_STATUS_OK) {
        fprintf(stderr, "own_libm: status %u: %s\n", st, xent_last_error());
        return 1;
    }
    /* Reference (float64): mean of (lse0 - 3) and (lse1 + 1) = 2.72194. */
    if (!(loss > 2.7218f && loss < 2.7221f)) {
        fprintf(stderr, "own_libm: loss %f, want 2.72194\n", (double)loss);
        return 1;
    }
    if (fmaf(a, b, c) != 1007.0f || fmod(x, y) != 9.0 || own_calls != 2) {
        fprintf(stderr, "own_libm: the program's fmaf/fmod were not the ones called (%d calls)\n", own_calls);
        return 1;
    }
    printf("own_libm: loss %.4f; the program's own fmaf and fmod were called\n", (double)loss);
    return 0;
}
