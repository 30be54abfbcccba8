/* libxent.a beside a second Rust static library (other_rust.rs) in one
 * program: both link, and both work. */
#include <stdio.h>
#include "xent.h"

double other_rust_sum(const double *values, size_t n);

int main(void) {
    const float logits[3] = {0.0f, 0.0f, 0.0f};
    const int32_t labels[1] = {1};
    const double v[3] = {1.0, 2.0, 3.5};
    float loss = 0.0f;
    XentStatus st = xent_forward(logits, 1, 3, 3, labels, NULL, &loss, NULL, NULL);
    double sum = other_rust_sum(v, 3);
    if (st != XENT_STATUS_OK || !(loss > 1.0985f && loss < 1.0987f) || sum != 6.5) {
        fprintf(stderr, "two_rust: status %u, loss %f (want ln 3), sum %f (want 6.5)\n", st, (double)loss, sum);
        return 1;
    }
    printf("two_rust: xent's loss %.4f and the other library's sum %.1f\n", (double)loss, sum);
    return 0;
}
