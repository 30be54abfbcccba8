/* Memory floors of one core, and how much arithmetic a streaming loop hides
 * behind them (BENCHMARKS.md §14). x86-64 with AVX-512F only:
 *
 *     gcc -O2 -mavx512f -mfma -o /tmp/stream_floor bench/stream_floor.c && /tmp/stream_floor
 *
 * Every loop walks a 2048 x 8000 float matrix (65.5 MB, past the L2) row by
 * row, as xent's row passes do, prefetching the next row into L2 one line
 * per line read (the hint and distance xent uses). Figures are ns per float,
 * medians of 9.
 *   read      sums the matrix (the traffic of a pass that only reads);
 *   ntcopy    writes 0.5·z with streaming stores (a backward's traffic);
 *   copy      the same with plain stores (a read for ownership per line:
 *             the fused call's traffic);
 *   work K    reads, applies K dependent FMAs to each vector (four vectors
 *             in flight), sums: "in cache" repeats 8 rows that stay in
 *             L2, "streamed" walks the whole matrix. Perfect overlap would
 *             make streamed = max(in cache, read); no overlap, the sum. */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ROWS 2048
#define COLS 8000
#define ALL ((size_t)ROWS * COLS)
#define REPS 9

static volatile float sink;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static __m512 work(__m512 x, int k) {
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
  for (int i = 0; i < k; i++) x = _mm512_fmadd_ps(x, a, b);
  return x;
}

enum mode { READ, NTCOPY, COPY };

/* One pass over `rows` rows of a, 64 floats (four lines) per step. */
static void pass(const float *a, float *b, size_t rows, enum mode m, int k) {
  __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (size_t i = 0; i < rows; i++) {
    const float *r = a + i * COLS, *next = r + COLS;
    float *d = b + i * COLS;
    for (size_t j = 0; j < COLS; j += 64) {
      for (int q = 0; q < 4; q++) {
        if (i + 1 < rows) _mm_prefetch((const char *)(next + j + 16 * q), _MM_HINT_T1);
        __m512 y = work(_mm512_load_ps(r + j + 16 * q), k);
        if (m == NTCOPY) _mm512_stream_ps(d + j + 16 * q, _mm512_mul_ps(y, _mm512_set1_ps(0.5f)));
        else if (m == COPY) _mm512_store_ps(d + j + 16 * q, _mm512_mul_ps(y, _mm512_set1_ps(0.5f)));
        else s[q] = _mm512_add_ps(s[q], y);
      }
    }
  }
  _mm_sfence();
  sink = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])));
}

static int by_value(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

/* Median ns per float of `times` passes over `rows` rows each. */
static double timed(const float *a, float *b, size_t rows, size_t times, enum mode m, int k) {
  double t[REPS];
  for (int r = 0; r < REPS; r++) {
    double s = now();
    for (size_t q = 0; q < times; q++) pass(a, b, rows, m, k);
    t[r] = now() - s;
  }
  qsort(t, REPS, sizeof t[0], by_value);
  return t[REPS / 2] * 1e9 / (double)(rows * COLS * times);
}

int main(void) {
  float *a = aligned_alloc(64, ALL * sizeof(float)), *b = aligned_alloc(64, ALL * sizeof(float));
  if (!a || !b) return 1;
  for (size_t i = 0; i < ALL; i++) a[i] = (float)(i % 7), b[i] = 0.0f;
  printf("read %.3f  ntcopy %.3f  copy %.3f  (ns per float)\n", timed(a, b, ROWS, 1, READ, 0),
         timed(a, b, ROWS, 1, NTCOPY, 0), timed(a, b, ROWS, 1, COPY, 0));
  for (int k = 6; k <= 18; k += 6)
    printf("work %2d: in cache %.3f  streamed %.3f\n", k, timed(a, b, 8, ROWS / 8, READ, k),
           timed(a, b, ROWS, 1, READ, k));
  free(a);
  free(b);
  return 0;
}
