// Built with CMake against an installed xent (find_package(xent) or
// pkg-config) by c_tests/install/run.sh.
#include <xent.h>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
    const std::vector<float> logits = {0.25f, -2.0f, 4.0f, 1.0f};
    const std::vector<int32_t> labels = {2};
    float loss = 0.0f;
    XentOptions opt = xent_options_default();
    opt.reduction = XENT_REDUCTION_SUM;
    if (xent_forward(logits.data(), 1, 4, 4, labels.data(), &opt, &loss, nullptr, nullptr) != XENT_STATUS_OK) {
        std::fprintf(stderr, "xent: %s\n", xent_last_error());
        return 1;
    }
    double s = 0.0;
    for (float z : logits) s += std::exp(double(z));
    const double want = std::log(s) - logits[2];
    if (std::fabs(loss - want) > 1e-6 * std::fabs(want)) {
        std::fprintf(stderr, "loss %.9g, want %.9g\n", loss, want);
        return 1;
    }
    std::printf("installed xent %s (C++): loss %.6f ok\n", xent_version(), loss);
    return 0;
}
