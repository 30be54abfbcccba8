/* Shared by the C benchmarks in bench/: a monotonic clock in seconds and a
 * qsort comparator for medians. Define _POSIX_C_SOURCE (199309L or later)
 * before including it. */
#ifndef XENT_BENCH_TIMING_H
#define XENT_BENCH_TIMING_H

#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
