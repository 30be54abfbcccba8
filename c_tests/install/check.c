/* Built against an installed xent (pkg-config, shared or static) by
 * c_tests/install/run.sh: one forward+backward call, checked against the
 * formula in double precision. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <xent.h>

int main(void) {
    const float logits[2 * 3] = {1.0f, 2.0f, 0.5f, -1.0f, 0.0f, 3.0f};
    const int32_t labels[2] = {1, 2};
    float loss = 0.0f, grad[2 * 3];
    XentOptions opt = xent_options_default();
    if (strcmp(xent_version(), XENT_VERSION) != 0) {
        fprintf(stderr, "library %s, header %s\n", xent_version(), XENT_VERSION);
        return 1;
    }
    if (xent_forward_backward(logits, 2, 3, 3, labels, &opt, &loss, NULL, NULL, grad, 3) != XENT_STATUS_OK) {
        fprintf(stderr, "xent: %s\n", xent_last_error());
        return 1;
    }
    double want = 0.0;
    for (int i = 0; i < 2; i++) {
        double s = 0.0;
        for (int j = 0; j < 3; j++) s += exp(logits[i * 3 + j]);
        want += (log(s) - logits[i * 3 + labels[i]]) / 2.0;
    }
    if (fabs(loss - want) > 1e-6 * fabs(want)) {
        fprintf(stderr, "loss %.9g, want %.9g\n", loss, want);
        return 1;
    }
    printf("installed xent %s (C): loss %.6f ok\n", xent_version(), loss);
    return 0;
}
