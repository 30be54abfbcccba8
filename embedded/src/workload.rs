//! Float32 calls through the C functions, the bits of every result hashed:
//! the same code runs on the host (`examples/embedded_workload.rs`, the std
//! build) and on an emulated Cortex-M4F (`embedded/`, the no_std build), and
//! `make test-embedded` wants the two printouts equal. Only core is used.

use core::ffi::c_void;
use core::ptr::null_mut;

use xent::capi::*;

const ROWS: usize = 160;
const CLASSES: usize = 300;
const STRIDE: usize = 301;
const SPLIT: usize = 113;

const ZERO: XentShardStats =
    XentShardStats { max: 0.0, sum_exp: 0.0, target_logit: 0.0, weighted_logit_sum: 0.0, weight_sum: 0.0 };

/// Every buffer of the workload (about 580 KB, on the caller's stack).
struct Buffers {
    logits: [f32; ROWS * STRIDE],
    grad: [f32; ROWS * STRIDE],
    probs: [f32; ROWS * CLASSES],
    labels: [i32; ROWS],
    weights: [f32; CLASSES],
    loss: [f32; ROWS],
    lse: [f32; ROWS],
    argmax: [i32; ROWS],
    upstream: [f32; ROWS],
    stats: [XentShardStats; ROWS],
    part: [XentShardStats; ROWS],
}

/// FNV-1a over the bits of `rows` rows of `cols` values `stride` apart.
fn hash(v: &[f32], rows: usize, cols: usize, stride: usize) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for i in 0..rows {
        for x in &v[i * stride..i * stride + cols] {
            h ^= u64::from(x.to_bits());
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A caller's pool that runs the tasks last to first on this thread.
unsafe extern "C" fn reverse_pool(_: *mut c_void, n: usize, task: XentTaskFn, ctx: *mut c_void) {
    if let Some(task) = task {
        for i in (0..n).rev() {
            // SAFETY: xent's task and context, called with an index below n.
            unsafe { task(ctx, i) };
        }
    }
}

fn fill(b: &mut Buffers) {
    let mut s = 12345u64;
    for x in b.logits.iter_mut() {
        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        *x = ((s >> 40) as f64 / (1u64 << 24) as f64 * 40.0 - 20.0) as f32;
    }
    for i in 0..ROWS {
        b.labels[i] = if i % 13 == 0 { -100 } else { ((i * 7919) % CLASSES) as i32 };
        let row = &mut b.probs[i * CLASSES..][..CLASSES];
        let mut sum = 0.0f64;
        for (j, p) in row.iter_mut().enumerate() {
            *p = ((i + 3 * j) % 17 + 1) as f32;
            sum += f64::from(*p);
        }
        for p in row.iter_mut() {
            *p = (f64::from(*p) / sum) as f32;
        }
    }
    b.logits[5 * STRIDE + 3] = -1e4;
    b.logits[6 * STRIDE + 9] = 1e4;
    b.logits[7 * STRIDE..7 * STRIDE + 40].fill(f32::NEG_INFINITY);
    for (j, w) in b.weights.iter_mut().enumerate() {
        *w = (j % 5) as f32 * 0.5 + 0.25;
    }
    for (i, u) in b.upstream.iter_mut().enumerate() {
        *u = 1.0 + (i % 3) as f32;
    }
}

/// One option set: every float32 call, each result hashed and emitted.
/// Returns the number of calls that failed.
fn calls(b: &mut Buffers, name: &str, o: &XentOptions, emit: &mut dyn FnMut(&str, u64)) -> u32 {
    let n = if o.reduction == XENT_REDUCTION_NONE { ROWS } else { 1 };
    let mut failed = 0;
    let mut ok = |s: XentStatus| failed += u32::from(s != XENT_STATUS_OK);
    let (lg, gr) = (b.logits.as_ptr(), b.grad.as_mut_ptr());
    let (lab, up) = (b.labels.as_ptr(), b.upstream.as_ptr());
    // SAFETY (every call below): each pointer is a live buffer of the extent
    // its sizes describe, and no output overlaps another buffer.
    unsafe {
        ok(xent_forward(
            lg,
            ROWS,
            CLASSES,
            STRIDE,
            lab,
            o,
            b.loss.as_mut_ptr(),
            b.lse.as_mut_ptr(),
            b.argmax.as_mut_ptr(),
        ));
    }
    let am = b.argmax.iter().fold(0u64, |h, &a| h.wrapping_mul(31).wrapping_add(a as u64));
    emit(name, hash(&b.loss, 1, n, n) ^ hash(&b.lse, 1, ROWS, ROWS).rotate_left(1) ^ am.rotate_left(2));
    unsafe {
        ok(xent_forward_backward(
            lg,
            ROWS,
            CLASSES,
            STRIDE,
            lab,
            o,
            b.loss.as_mut_ptr(),
            null_mut(),
            null_mut(),
            gr,
            CLASSES,
        ));
    }
    emit(name, hash(&b.loss, 1, n, n) ^ hash(&b.grad, ROWS, CLASSES, CLASSES).rotate_left(1));
    unsafe { ok(xent_backward(lg, ROWS, CLASSES, STRIDE, lab, o, up, b.lse.as_ptr(), gr, STRIDE)) };
    emit(name, hash(&b.grad, ROWS, CLASSES, STRIDE));
    if o.class_weights.is_null() {
        let (p, l) = (b.probs.as_ptr(), b.loss.as_mut_ptr());
        unsafe {
            ok(xent_soft_forward_backward(
                lg,
                ROWS,
                CLASSES,
                STRIDE,
                p,
                CLASSES,
                o,
                l,
                null_mut(),
                null_mut(),
                gr,
                CLASSES,
            ))
        };
        emit(name, hash(&b.loss, 1, n, n) ^ hash(&b.grad, ROWS, CLASSES, CLASSES).rotate_left(1));
    }
    // Two uneven shards, merged, then the loss and each shard's gradient.
    let (st, pt) = (b.stats.as_mut_ptr(), b.part.as_mut_ptr());
    let rest = CLASSES - SPLIT;
    unsafe {
        ok(xent_shard_stats(lg, ROWS, SPLIT, STRIDE, 0, CLASSES, lab, o, st));
        ok(xent_shard_stats(lg.add(SPLIT), ROWS, rest, STRIDE, SPLIT, CLASSES, lab, o, pt));
        xent_shard_stats_merge(pt, st, ROWS);
        ok(xent_shard_loss(st, ROWS, CLASSES, lab, o, b.loss.as_mut_ptr(), b.lse.as_mut_ptr()));
        ok(xent_shard_backward(lg, ROWS, SPLIT, STRIDE, 0, CLASSES, lab, o, st, up, gr, STRIDE));
        ok(xent_shard_backward(
            lg.add(SPLIT),
            ROWS,
            rest,
            STRIDE,
            SPLIT,
            CLASSES,
            lab,
            o,
            st,
            up,
            gr.add(SPLIT),
            STRIDE,
        ));
    }
    emit(name, hash(&b.loss, 1, n, n) ^ hash(&b.lse, 1, ROWS, ROWS).rotate_left(1));
    emit(name, hash(&b.grad, ROWS, CLASSES, STRIDE));
    // The kept pair on the second shard: its exps kept in the gradient
    // buffer, then its gradient in place there (its own stats in `part`).
    unsafe {
        let g = gr.add(SPLIT);
        ok(xent_shard_stats_keep(lg.add(SPLIT), ROWS, rest, STRIDE, SPLIT, CLASSES, lab, o, pt, g, STRIDE));
        ok(xent_shard_backward_kept(g, ROWS, rest, STRIDE, SPLIT, CLASSES, lab, o, pt, st, up, g, STRIDE));
    }
    emit(name, hash(&b.grad, ROWS, CLASSES, STRIDE));
    failed
}

/// Runs every option set, emitting one hash per result; returns how many
/// calls failed.
pub fn run(emit: &mut dyn FnMut(&str, u64)) -> u32 {
    let mut b = Buffers {
        logits: [0.0; ROWS * STRIDE],
        grad: [0.0; ROWS * STRIDE],
        probs: [0.0; ROWS * CLASSES],
        labels: [0; ROWS],
        weights: [0.0; CLASSES],
        loss: [0.0; ROWS],
        lse: [0.0; ROWS],
        argmax: [0; ROWS],
        upstream: [0.0; ROWS],
        stats: [ZERO; ROWS],
        part: [ZERO; ROWS],
    };
    fill(&mut b);
    let mut o = xent_options_default();
    let mut failed = calls(&mut b, "default", &o, emit);
    o.parallel_for = Some(reverse_pool);
    failed += calls(&mut b, "pool", &o, emit);
    o.parallel_for = None;
    o.label_smoothing = 0.1;
    o.z_loss_scale = 1e-4;
    o.logit_softcap = 30.0;
    o.reduction = XENT_REDUCTION_NONE;
    failed += calls(&mut b, "options", &o, emit);
    o.class_weights = b.weights.as_ptr();
    o.reduction = XENT_REDUCTION_MEAN;
    failed += calls(&mut b, "weights", &o, emit);
    failed
}
