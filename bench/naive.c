/* The plain C loop xent is compared with: what a user writes by hand
 * (max-subtracted softmax cross-entropy, expf, float accumulation, mean).
 * bench/compare.py compiles it with `cc -O2 -shared -fPIC`. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

float naive_forward(const float *z, size_t rows, size_t cols, const int32_t *y) {
    double total = 0.0;
    for (size_t i = 0; i < rows; i++) {
        const float *r = z + i * cols;
        float m = r[0];
        for (size_t j = 1; j < cols; j++) m = r[j] > m ? r[j] : m;
        float s = 0.0f;
        for (size_t j = 0; j < cols; j++) s += expf(r[j] - m);
        total += logf(s) - (r[y[i]] - m);
    }
    return (float)(total / (double)rows);
}

float naive_forward_backward(const float *z, size_t rows, size_t cols, const int32_t *y, float *g) {
    double total = 0.0;
    for (size_t i = 0; i < rows; i++) {
        const float *r = z + i * cols;
        float *o = g + i * cols;
        float m = r[0];
        for (size_t j = 1; j < cols; j++) m = r[j] > m ? r[j] : m;
        float s = 0.0f;
        for (size_t j = 0; j < cols; j++) s += (o[j] = expf(r[j] - m));
        float k = 1.0f / (s * (float)rows);
        for (size_t j = 0; j < cols; j++) o[j] *= k;
        o[y[i]] -= 1.0f / (float)rows;
        total += logf(s) - (r[y[i]] - m);
    }
    return (float)(total / (double)rows);
}
