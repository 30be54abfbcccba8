/* Vocabulary-sharded cross-entropy over MPI: every rank holds a slice of the
 * classes of every row; one MPI_Allreduce of xent's per-row statistics gives
 * each rank the loss and the gradient of its own slice. Rank 0 gathers the
 * gradient and checks loss and gradient against the unsharded call. The step
 * runs twice: with xent_shard_stats / xent_shard_backward (the logits are
 * read twice, their exps computed twice), then with the kept pair
 * xent_shard_stats_keep / xent_shard_backward_kept (the exps computed once,
 * kept in the gradient buffer across the all-reduce).
 *
 *   mpicc -std=c11 -O2 -I include examples/mpi_sharded.c -L target/release -lxent -lm -o mpi_sharded
 *   mpiexec -n 4 ./mpi_sharded
 *
 * Rank r gets classes [r*C/P, (r+1)*C/P): shards of unequal size when P does not divide C. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xent.h"

#define ROWS 64
#define CLASSES 1003

static void merge(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    xent_shard_stats_merge((const XentShardStats *)in, (XentShardStats *)inout, (size_t)*len);
}

static void check(XentStatus s, const char *what) {
    if (s != XENT_STATUS_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, xent_status_message(s), xent_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

/* One step on this rank's slice `mine` (classes [off, off + n)): the loss
 * and the slice's gradient, with one MPI_Allreduce. */
static float step(int kept, const float *mine, size_t n, size_t off, const int32_t *labels, const XentOptions *opt,
                  float *grad, MPI_Datatype type, MPI_Op op) {
    XentShardStats local[ROWS], merged[ROWS];
    float loss, one = 1.0f;
    if (kept) {
        /* The exps stay in `grad`; the backward needs this rank's own
         * statistics too, so the all-reduce writes into another array. */
        check(xent_shard_stats_keep(mine, ROWS, n, n, off, CLASSES, labels, opt, local, grad, n), "xent_shard_stats_keep");
        MPI_Allreduce(local, merged, ROWS, type, op, MPI_COMM_WORLD);
    } else {
        check(xent_shard_stats(mine, ROWS, n, n, off, CLASSES, labels, opt, merged), "xent_shard_stats");
        MPI_Allreduce(MPI_IN_PLACE, merged, ROWS, type, op, MPI_COMM_WORLD);
    }
    check(xent_shard_loss(merged, ROWS, CLASSES, labels, opt, &loss, NULL), "xent_shard_loss");
    if (kept)
        check(xent_shard_backward_kept(grad, ROWS, n, n, off, CLASSES, labels, opt, local, merged, &one, grad, n),
              "xent_shard_backward_kept");
    else
        check(xent_shard_backward(mine, ROWS, n, n, off, CLASSES, labels, opt, merged, &one, grad, n), "xent_shard_backward");
    return loss;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    /* The same data on every rank (in a trainer each rank would compute its
     * own slice of the logits, from its slice of the classifier). */
    static float logits[ROWS * CLASSES], weights[CLASSES];
    static int32_t labels[ROWS];
    unsigned x = 7;
    for (size_t i = 0; i < ROWS * CLASSES; i++) {
        x = x * 1103515245u + 12345u;
        logits[i] = (float)((x >> 8) % 20000) / 1000.0f - 10.0f;
    }
    for (size_t j = 0; j < CLASSES; j++) weights[j] = 0.5f + (float)(j % 7) / 7.0f;
    for (size_t i = 0; i < ROWS; i++) labels[i] = i % 9 == 4 ? -100 : (int32_t)((i * 37) % CLASSES);
    XentOptions opt = xent_options_default();
    opt.class_weights = weights;
    opt.label_smoothing = 0.1f;
    opt.z_loss_scale = 1e-4f;
    opt.num_threads = 1;

    /* This rank's slice, copied out as if it were all this rank had. */
    size_t off = (size_t)rank * CLASSES / (size_t)size, end = (size_t)(rank + 1) * CLASSES / (size_t)size;
    size_t n = end - off;
    float *mine = malloc(sizeof(float) * ROWS * (n ? n : 1)), *grad = malloc(sizeof(float) * ROWS * (n ? n : 1));
    for (size_t i = 0; i < ROWS; i++) memcpy(mine + i * n, logits + i * CLASSES + off, n * sizeof(float));

    MPI_Datatype stats_type;
    MPI_Type_contiguous((int)(sizeof(XentShardStats) / sizeof(float)), MPI_FLOAT, &stats_type);
    MPI_Type_commit(&stats_type);
    MPI_Op merge_op;
    MPI_Op_create(merge, 1, &merge_op);

    /* Rank 0 gathers every slice and compares with the unsharded call. */
    int *counts = NULL, *displs = NULL;
    float *all = NULL;
    static float want_grad[ROWS * CLASSES];
    float want_loss = 0.0f;
    if (rank == 0) {
        counts = malloc(sizeof(int) * (size_t)size);
        displs = malloc(sizeof(int) * (size_t)size);
        all = malloc(sizeof(float) * ROWS * CLASSES);
        for (int r = 0; r < size; r++) {
            size_t o = (size_t)r * CLASSES / (size_t)size, e = (size_t)(r + 1) * CLASSES / (size_t)size;
            counts[r] = (int)(ROWS * (e - o));
            displs[r] = (int)(ROWS * o);
        }
        check(xent_forward_backward(logits, ROWS, CLASSES, CLASSES, labels, &opt, &want_loss, NULL, NULL, want_grad, CLASSES),
              "xent_forward_backward");
    }
    int failed = 0;
    for (int kept = 0; kept < 2; kept++) {
        float loss = step(kept, mine, n, off, labels, &opt, grad, stats_type, merge_op);
        MPI_Gatherv(grad, (int)(ROWS * n), MPI_FLOAT, all, counts, displs, MPI_FLOAT, 0, MPI_COMM_WORLD);
        if (rank != 0) continue;
        double worst = 0.0, scale = 0.0;
        for (int r = 0; r < size; r++) {
            size_t o = (size_t)r * CLASSES / (size_t)size, e = (size_t)(r + 1) * CLASSES / (size_t)size;
            const float *g = all + ROWS * o; /* rank r's rows × (e − o) block */
            for (size_t i = 0; i < ROWS; i++)
                for (size_t j = o; j < e; j++) {
                    double w = want_grad[i * CLASSES + j];
                    scale = fmax(scale, fabs(w));
                    worst = fmax(worst, fabs(g[i * (e - o) + (j - o)] - w));
                }
        }
        double loss_err = fabs(loss - want_loss) / fabs(want_loss);
        int bad = !(loss_err <= 1e-5 && worst <= 1e-5 * scale);
        failed |= bad;
        printf("xent %s, %s, %d ranks, %d rows x %d classes in shards of unequal size: loss %.7f (unsharded %.7f, rel. diff "
               "%.1e), max gradient diff %.1e (largest %.1e): %s\n",
               xent_version(), kept ? "kept exps" : "stats + backward", size, ROWS, CLASSES, loss, want_loss, loss_err, worst,
               scale, bad ? "MISMATCH" : "ok");
    }
    if (rank == 0) {
        free(counts);
        free(displs);
        free(all);
    }
    MPI_Bcast(&failed, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Op_free(&merge_op);
    MPI_Type_free(&stats_type);
    free(mine);
    free(grad);
    MPI_Finalize();
    return failed;
}
