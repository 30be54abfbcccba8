//! The README's "What xent does with bad input" table is generated from the
//! cases below: each row is a class of input, with calls through the C
//! functions that must return its status and, for errors, leave every byte
//! of every buffer as it was, with a message from `xent_last_error()`. The
//! test fails when the README's table differs from the one these cases
//! make; `XENT_BLESS=1 cargo test --test bad_input` rewrites it.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr::{null, null_mut};
use xent::capi::*;

mod support;
use support::{bytes, last_error};

const R: usize = 3;
const C: usize = 5;
const D: usize = 4;

/// Valid buffers for every call of a 3 × 5 problem (dim 4 for the linear
/// calls); each case breaks one thing.
#[derive(Clone)]
struct B {
    logits: Vec<f32>,
    labels: Vec<i32>,
    probs: Vec<f32>,
    loss: Vec<f32>,
    lse: Vec<f32>,
    argmax: Vec<i32>,
    grad: Vec<f32>,
    up: Vec<f32>,
    h16: Vec<u16>,
    g16: Vec<u16>,
    hidden: Vec<f32>,
    weight: Vec<f32>,
    gw: Vec<f32>,
    stats: Vec<XentShardStats>,
    work: Vec<u8>,
}

fn fresh() -> B {
    let logits: Vec<f32> = (0..R * C).map(|i| (i % 7) as f32 * 0.5 - 1.0).collect();
    B {
        h16: logits.iter().map(|x| (x.to_bits() >> 16) as u16).collect(),
        g16: vec![0x7fc1; R * C],
        logits,
        labels: vec![0, 4, 2],
        probs: vec![0.2; R * C],
        loss: vec![-3.0; R],
        lse: vec![-3.0; R],
        argmax: vec![-3; R],
        grad: vec![-3.0; R * C],
        up: vec![1.0; R],
        hidden: (0..R * D).map(|i| (i % 3) as f32).collect(),
        weight: (0..C * D).map(|i| (i % 5) as f32 * 0.25).collect(),
        gw: vec![-3.0; C * D],
        stats: vec![XentShardStats { max: 1.0, sum_exp: 2.0, target_logit: 0.5, ..Default::default() }; R],
        work: vec![0; 64],
    }
}

fn snapshot(b: &B) -> Vec<Vec<u8>> {
    vec![
        bytes(&b.logits),
        bytes(&b.labels),
        bytes(&b.probs),
        bytes(&b.loss),
        bytes(&b.lse),
        bytes(&b.argmax),
        bytes(&b.grad),
        bytes(&b.up),
        bytes(&b.h16),
        bytes(&b.g16),
        bytes(&b.hidden),
        bytes(&b.weight),
        bytes(&b.gw),
        bytes(&b.stats),
        bytes(&b.work),
    ]
}

fn opts(f: impl FnOnce(&mut XentOptions)) -> XentOptions {
    let mut o = xent_options_default();
    f(&mut o);
    o
}

/// `xent_forward` on `b` with `o`.
fn fwd(b: &mut B, o: &XentOptions) -> XentStatus {
    // SAFETY: valid buffers of the sizes passed.
    unsafe {
        xent_forward(
            b.logits.as_ptr(),
            R,
            C,
            C,
            b.labels.as_ptr(),
            o,
            b.loss.as_mut_ptr(),
            b.lse.as_mut_ptr(),
            null_mut(),
        )
    }
}

/// `xent_forward_backward` on `b` with `o`.
fn fused(b: &mut B, o: &XentOptions) -> XentStatus {
    // SAFETY: valid buffers of the sizes passed.
    unsafe {
        xent_forward_backward(
            b.logits.as_ptr(),
            R,
            C,
            C,
            b.labels.as_ptr(),
            o,
            b.loss.as_mut_ptr(),
            null_mut(),
            null_mut(),
            b.grad.as_mut_ptr(),
            C,
        )
    }
}

/// `xent_linear_forward` on `b` with a workspace of `n` bytes (0: none).
fn linear(b: &mut B, n: usize) -> XentStatus {
    let work = if n == 0 { null_mut() } else { b.work.as_mut_ptr() as *mut c_void };
    // SAFETY: valid buffers; the workspace holds at least `n` bytes.
    unsafe {
        xent_linear_forward(
            b.hidden.as_ptr(),
            R,
            D,
            D,
            b.weight.as_ptr(),
            C,
            D,
            null(),
            b.labels.as_ptr(),
            null(),
            b.loss.as_mut_ptr(),
            null_mut(),
            null_mut(),
            work,
            n,
        )
    }
}

unsafe extern "C" fn skip_last(_: *mut c_void, n: usize, task: XentTaskFn, ctx: *mut c_void) {
    for i in 0..n.saturating_sub(1) {
        // SAFETY: xent's task with its context.
        unsafe { task.expect("a task")(ctx, i) };
    }
}

type Call = fn(&mut B) -> XentStatus;

/// One row of the table.
struct Row {
    input: &'static str,
    /// The status name; "–" for the inputs that are no error.
    status: Option<XentStatus>,
    outputs: &'static str,
    calls: &'static [Call],
}

const UNTOUCHED: &str = "untouched";

// SAFETY (every call below): the buffers are valid for the sizes passed,
// or the argument under test is exactly what the call must refuse before it
// touches memory (NULL, misaligned, overlapping, unaddressable).
fn rows() -> Vec<Row> {
    vec![
        Row {
            input: "a required pointer is NULL while its count is not 0 (`logits`, `labels`, `targets`, `loss`, `grad_loss`, `grad_logits`, `hidden`, `weight`, `stats`, `merged`, `kept`, `local`)",
            status: Some(XENT_STATUS_NULL_POINTER),
            outputs: UNTOUCHED,
            calls: &[
                |b| unsafe {
                    xent_forward(
                        null(),
                        R,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_forward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        null(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_forward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        null_mut(),
                        b.lse.as_mut_ptr(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_soft_forward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        null(),
                        C,
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_backward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        null(),
                        null(),
                        b.grad.as_mut_ptr(),
                        C,
                    )
                },
                |b| unsafe {
                    xent_backward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        b.up.as_ptr(),
                        null(),
                        null_mut(),
                        C,
                    )
                },
                |b| unsafe {
                    xent_linear_forward(
                        null(),
                        R,
                        D,
                        D,
                        b.weight.as_ptr(),
                        C,
                        D,
                        null(),
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                        null_mut(),
                        0,
                    )
                },
                |b| unsafe {
                    xent_shard_stats(b.logits.as_ptr(), R, C, C, 0, C, b.labels.as_ptr(), null(), null_mut())
                },
                |b| unsafe {
                    xent_shard_loss(null(), R, C, b.labels.as_ptr(), null(), b.loss.as_mut_ptr(), null_mut())
                },
                |b| unsafe {
                    let (p, l) = (b.logits.as_ptr(), b.labels.as_ptr());
                    xent_shard_stats_keep(p, R, C, C, 0, C, l, null(), b.stats.as_mut_ptr(), null_mut(), C)
                },
                |b| {
                    let (stats, up) = (b.stats.clone(), b.up.clone());
                    unsafe {
                        xent_shard_backward_kept(
                            b.logits.as_ptr(),
                            R,
                            C,
                            C,
                            0,
                            C,
                            b.labels.as_ptr(),
                            null(),
                            null(),
                            stats.as_ptr(),
                            up.as_ptr(),
                            b.grad.as_mut_ptr(),
                            C,
                        )
                    }
                },
            ],
        },
        Row {
            input: "`classes`, `dim` or `total_classes` is 0",
            status: Some(XENT_STATUS_INVALID_SHAPE),
            outputs: UNTOUCHED,
            calls: &[
                |b| unsafe {
                    xent_forward(
                        b.logits.as_ptr(),
                        R,
                        0,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_linear_forward(
                        b.hidden.as_ptr(),
                        R,
                        0,
                        D,
                        b.weight.as_ptr(),
                        C,
                        D,
                        null(),
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                        null_mut(),
                        0,
                    )
                },
                |b| unsafe {
                    xent_shard_stats(b.logits.as_ptr(), R, C, C, 0, 0, b.labels.as_ptr(), null(), b.stats.as_mut_ptr())
                },
            ],
        },
        Row {
            input: "a row stride below its row length (`classes` or `dim`)",
            status: Some(XENT_STATUS_INVALID_SHAPE),
            outputs: UNTOUCHED,
            calls: &[
                |b| unsafe {
                    xent_forward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C - 1,
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_forward_backward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                        b.grad.as_mut_ptr(),
                        2,
                    )
                },
                |b| unsafe {
                    xent_soft_forward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        b.probs.as_ptr(),
                        0,
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_linear_forward(
                        b.hidden.as_ptr(),
                        R,
                        D,
                        1,
                        b.weight.as_ptr(),
                        C,
                        D,
                        null(),
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                        null_mut(),
                        0,
                    )
                },
            ],
        },
        Row {
            input: "a shard that does not lie inside the row (`class_offset + shard_classes > total_classes`)",
            status: Some(XENT_STATUS_INVALID_SHAPE),
            outputs: UNTOUCHED,
            calls: &[
                |b| unsafe {
                    xent_shard_stats(b.logits.as_ptr(), R, C, C, 1, C, b.labels.as_ptr(), null(), b.stats.as_mut_ptr())
                },
                |b| unsafe {
                    let (p, l, g) = (b.logits.as_ptr(), b.labels.as_ptr(), b.grad.as_mut_ptr());
                    xent_shard_stats_keep(p, R, C, C, 1, C, l, null(), b.stats.as_mut_ptr(), g, C)
                },
                |b| unsafe {
                    xent_shard_stats(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        usize::MAX,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        b.stats.as_mut_ptr(),
                    )
                },
                |b| {
                    let (stats, up) = (b.stats.clone(), b.up.clone());
                    unsafe {
                        xent_shard_backward(
                            b.logits.as_ptr(),
                            R,
                            C,
                            C,
                            3,
                            7,
                            b.labels.as_ptr(),
                            null(),
                            stats.as_ptr(),
                            up.as_ptr(),
                            b.grad.as_mut_ptr(),
                            C,
                        )
                    }
                },
            ],
        },
        Row {
            input: "`rows × stride` (or a buffer's end) beyond the address space",
            status: Some(XENT_STATUS_SIZE_OVERFLOW),
            outputs: UNTOUCHED,
            calls: &[
                |b| unsafe {
                    xent_forward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        usize::MAX / 2,
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_forward(
                        b.logits.as_ptr(),
                        usize::MAX / 4,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_forward_bf16(
                        b.h16.as_ptr(),
                        R,
                        C,
                        1 << 62,
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_forward(
                        core::ptr::without_provenance::<f32>(usize::MAX - 7),
                        R,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
            ],
        },
        Row {
            input: "a label outside [0, classes) that is not `ignore_index`",
            status: Some(XENT_STATUS_LABEL_OUT_OF_RANGE),
            outputs: UNTOUCHED,
            calls: &[
                |b| {
                    b.labels[1] = C as i32;
                    fwd(b, &xent_options_default())
                },
                |b| {
                    b.labels[2] = -1;
                    fused(b, &xent_options_default())
                },
                |b| {
                    b.labels[0] = i32::MIN;
                    linear(b, 0)
                },
                |b| {
                    b.labels[0] = 7;
                    unsafe {
                        xent_shard_loss(
                            b.stats.as_ptr(),
                            R,
                            C,
                            b.labels.as_ptr(),
                            null(),
                            b.loss.as_mut_ptr(),
                            null_mut(),
                        )
                    }
                },
            ],
        },
        Row {
            input: "an unknown `reduction`",
            status: Some(XENT_STATUS_INVALID_ARGUMENT),
            outputs: UNTOUCHED,
            calls: &[|b| fwd(b, &opts(|o| o.reduction = 3)), |b| fused(b, &opts(|o| o.reduction = u32::MAX))],
        },
        Row {
            input: "`label_smoothing` outside [0, 1] or NaN",
            status: Some(XENT_STATUS_INVALID_ARGUMENT),
            outputs: UNTOUCHED,
            calls: &[
                |b| fwd(b, &opts(|o| o.label_smoothing = -0.1)),
                |b| fwd(b, &opts(|o| o.label_smoothing = 1.5)),
                |b| fused(b, &opts(|o| o.label_smoothing = f32::NAN)),
            ],
        },
        Row {
            input: "`z_loss_scale` or `logit_softcap` negative, NaN or infinite",
            status: Some(XENT_STATUS_INVALID_ARGUMENT),
            outputs: UNTOUCHED,
            calls: &[
                |b| fwd(b, &opts(|o| o.z_loss_scale = -1e-4)),
                |b| fwd(b, &opts(|o| o.z_loss_scale = f32::INFINITY)),
                |b| fused(b, &opts(|o| o.logit_softcap = f32::NAN)),
                |b| fused(b, &opts(|o| o.logit_softcap = -30.0)),
            ],
        },
        Row {
            input: "`grad_scale` NaN or infinite",
            status: Some(XENT_STATUS_INVALID_ARGUMENT),
            outputs: UNTOUCHED,
            calls: &[
                |b| fused(b, &opts(|o| o.grad_scale = f32::NAN)),
                |b| fused(b, &opts(|o| o.grad_scale = f32::NEG_INFINITY)),
            ],
        },
        Row {
            input: "`grad_accumulate` or `grad_zero_padding` other than 0 or 1",
            status: Some(XENT_STATUS_INVALID_ARGUMENT),
            outputs: UNTOUCHED,
            calls: &[
                |b| fused(b, &opts(|o| o.grad_accumulate = 2)),
                |b| fwd(b, &opts(|o| o.grad_zero_padding = u32::MAX)),
            ],
        },
        Row {
            input: "`grad_accumulate` with the gradient in place (`grad_logits == logits`)",
            status: Some(XENT_STATUS_INVALID_ARGUMENT),
            outputs: UNTOUCHED,
            calls: &[|b| {
                let o = opts(|o| o.grad_accumulate = 1);
                let logits = b.logits.as_mut_ptr();
                // SAFETY: valid buffers of the sizes passed.
                unsafe {
                    xent_forward_backward(
                        logits,
                        R,
                        C,
                        C,
                        b.labels.as_ptr(),
                        &o,
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                        logits,
                        C,
                    )
                }
            }],
        },
        Row {
            input: "`struct_size` 0, below `sizeof(size_t)` or above this library's `sizeof(XentOptions)`",
            status: Some(XENT_STATUS_INVALID_ARGUMENT),
            outputs: UNTOUCHED,
            calls: &[
                |b| fwd(b, &opts(|o| o.struct_size = 0)),
                |b| fwd(b, &opts(|o| o.struct_size = 4)),
                |b| fused(b, &opts(|o| o.struct_size = size_of::<XentOptions>() + 8)),
            ],
        },
        Row {
            input: "a pointer not aligned to its type (`float`, `int32_t`, `uint16_t`, `XentOptions`)",
            status: Some(XENT_STATUS_INVALID_ARGUMENT),
            outputs: UNTOUCHED,
            calls: &[
                |b| unsafe {
                    xent_forward(
                        (b.logits.as_ptr() as *const u8).add(1) as *const f32,
                        R,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_forward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        (b.labels.as_ptr() as *const u8).add(2) as *const i32,
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_forward_f16(
                        (b.h16.as_ptr() as *const u8).add(1) as *const u16,
                        R,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| {
                    let words = [0u64; size_of::<XentOptions>() / 8 + 1];
                    let o = (words.as_ptr() as *const u8).wrapping_add(4) as *const XentOptions;
                    unsafe {
                        xent_forward(
                            b.logits.as_ptr(),
                            R,
                            C,
                            C,
                            b.labels.as_ptr(),
                            o,
                            b.loss.as_mut_ptr(),
                            null_mut(),
                            null_mut(),
                        )
                    }
                },
            ],
        },
        Row {
            input: "an output overlapping another buffer, including `grad_logits == logits` with a different stride (only the same stride, in place, is allowed)",
            status: Some(XENT_STATUS_INVALID_ARGUMENT),
            outputs: UNTOUCHED,
            calls: &[
                |b| unsafe {
                    let (p, l) = (b.logits.as_ptr(), b.labels.as_ptr());
                    xent_shard_stats_keep(
                        p,
                        R,
                        C,
                        C,
                        0,
                        C,
                        l,
                        null(),
                        b.stats.as_mut_ptr(),
                        b.logits.as_mut_ptr().add(1),
                        C,
                    )
                },
                |b| unsafe {
                    xent_forward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        b.logits.as_mut_ptr().add(3),
                        null_mut(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_forward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                    )
                },
                |b| unsafe {
                    xent_forward_backward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                        b.logits.as_mut_ptr().add(1),
                        C,
                    )
                },
                |b| {
                    let p = b.logits.as_mut_ptr();
                    unsafe {
                        xent_forward_backward(
                            p,
                            2,
                            C,
                            C + 1,
                            b.labels.as_ptr(),
                            null(),
                            b.loss.as_mut_ptr(),
                            null_mut(),
                            null_mut(),
                            p,
                            C,
                        )
                    }
                },
                |b| unsafe {
                    xent_linear_forward_backward(
                        b.hidden.as_ptr(),
                        R,
                        D,
                        D,
                        b.weight.as_ptr(),
                        C,
                        D,
                        null(),
                        b.labels.as_ptr(),
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                        null_mut(),
                        D,
                        b.weight.as_mut_ptr(),
                        D,
                        null_mut(),
                        null_mut(),
                        0,
                    )
                },
            ],
        },
        Row {
            input: "a fused linear call's `workspace` too small for one row",
            status: Some(XENT_STATUS_INVALID_ARGUMENT),
            outputs: UNTOUCHED,
            calls: &[|b| linear(b, 1), |b| linear(b, 16)],
        },
        Row {
            input: "a `parallel_for` that skips a task",
            status: Some(XENT_STATUS_INTERNAL_ERROR),
            outputs: "incomplete (the blocks that ran are written)",
            calls: &[|b| {
                // Two blocks (of 16 rows of 1000), so the pool is used; small
                // enough for Miri.
                let (rows, cols) = (17, 1000);
                let logits = vec![0.5f32; rows * cols];
                let labels = vec![3i32; rows];
                let mut grad = vec![0.0f32; rows * cols];
                let o = opts(|o| o.parallel_for = Some(skip_last));
                unsafe {
                    xent_forward_backward(
                        logits.as_ptr(),
                        rows,
                        cols,
                        cols,
                        labels.as_ptr(),
                        &o,
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                        grad.as_mut_ptr(),
                        cols,
                    )
                }
            }],
        },
        Row {
            input: "NaN or +inf logits (+inf without softcap)",
            status: None,
            outputs: "that row's loss, lse and gradient are NaN; other rows are unaffected",
            calls: &[|b| {
                b.logits[C + 2] = f32::NAN;
                b.logits[2 * C] = f32::INFINITY;
                let o = opts(|o| o.reduction = XENT_REDUCTION_NONE);
                let s = fused(b, &o);
                assert!(b.loss[1].is_nan() && b.loss[2].is_nan() && b.loss[0].is_finite());
                assert!(b.grad[C..].iter().all(|g| g.is_nan()) && b.grad[..C].iter().all(|g| g.is_finite()));
                s
            }],
        },
        Row {
            input: "a row whose every logit is −inf",
            status: None,
            outputs: "that row's loss, lse and gradient are NaN (no log-probabilities, as PyTorch)",
            calls: &[|b| {
                b.logits[..C].fill(f32::NEG_INFINITY);
                let s = fused(b, &opts(|o| o.reduction = XENT_REDUCTION_NONE));
                assert!(b.loss[0].is_nan() && b.grad[..C].iter().all(|g| g.is_nan()) && b.loss[1].is_finite());
                s
            }],
        },
        Row {
            input: "MEAN with every row ignored (or kept rows of total weight 0)",
            status: None,
            outputs: "loss NaN (0/0, as PyTorch); ignored rows' gradients are 0",
            calls: &[|b| {
                b.labels.fill(-100);
                let s = fused(b, &xent_options_default());
                assert!(b.loss[0].is_nan() && b.grad.iter().all(|&g| g == 0.0));
                s
            }],
        },
        Row {
            input: "probability targets that are negative or do not sum to 1",
            status: None,
            outputs: "computed as given (the gradient is `P·Σ_j Y_ij − Y`), as PyTorch",
            calls: &[|b| {
                b.probs[0] = -0.5;
                b.probs[C] = 3.0;
                unsafe {
                    xent_soft_forward(
                        b.logits.as_ptr(),
                        R,
                        C,
                        C,
                        b.probs.as_ptr(),
                        C,
                        null(),
                        b.loss.as_mut_ptr(),
                        null_mut(),
                        null_mut(),
                    )
                }
            }],
        },
        Row {
            input: "a vocabulary shard of 0 classes (`shard_classes == 0`: more ranks than classes, or an uneven split)",
            status: None,
            outputs: "neutral statistics (`max` −inf, the sums 0), which change nothing when merged; its backward writes nothing",
            calls: &[|b| {
                let s =
                    unsafe { xent_shard_stats(null(), R, 0, 0, C, C, b.labels.as_ptr(), null(), b.stats.as_mut_ptr()) };
                assert!(b.stats.iter().all(|st| st.max == f32::NEG_INFINITY && st.sum_exp == 0.0));
                let before = bytes(&b.grad);
                let (stats, up) = (b.stats.clone(), [1.0f32]);
                let s2 = unsafe {
                    xent_shard_backward(
                        null(),
                        R,
                        0,
                        0,
                        C,
                        C,
                        b.labels.as_ptr(),
                        null(),
                        stats.as_ptr(),
                        up.as_ptr(),
                        b.grad.as_mut_ptr(),
                        0,
                    )
                };
                assert_eq!(bytes(&b.grad), before);
                if s == XENT_STATUS_OK { s2 } else { s }
            }],
        },
        Row {
            input: "`xent_shard_stats_merge` with a NULL pointer or 0 rows",
            status: None,
            outputs: "nothing happens (it returns no status)",
            calls: &[|b| {
                let before = bytes(&b.stats);
                unsafe {
                    xent_shard_stats_merge(null(), b.stats.as_mut_ptr(), R);
                    xent_shard_stats_merge(b.stats.as_ptr(), null_mut(), R);
                    let copy = b.stats.clone();
                    xent_shard_stats_merge(copy.as_ptr(), b.stats.as_mut_ptr(), 0);
                }
                assert_eq!(bytes(&b.stats), before);
                XENT_STATUS_OK
            }],
        },
    ]
}

fn name(s: XentStatus) -> &'static str {
    match s {
        XENT_STATUS_OK => "XENT_STATUS_OK",
        XENT_STATUS_NULL_POINTER => "XENT_STATUS_NULL_POINTER",
        XENT_STATUS_INVALID_SHAPE => "XENT_STATUS_INVALID_SHAPE",
        XENT_STATUS_INVALID_ARGUMENT => "XENT_STATUS_INVALID_ARGUMENT",
        XENT_STATUS_LABEL_OUT_OF_RANGE => "XENT_STATUS_LABEL_OUT_OF_RANGE",
        XENT_STATUS_SIZE_OVERFLOW => "XENT_STATUS_SIZE_OVERFLOW",
        XENT_STATUS_ALLOCATION_FAILED => "XENT_STATUS_ALLOCATION_FAILED",
        _ => "XENT_STATUS_INTERNAL_ERROR",
    }
}

const START: &str = "<!-- bad-input table: generated by tests/bad_input.rs -->\n";
const END: &str = "<!-- end of bad-input table -->\n";

fn table(rows: &[Row]) -> String {
    let mut t = String::from(START);
    t += "| bad input | status | outputs |\n|---|---|---|\n";
    for r in rows {
        let status = r.status.map_or("`XENT_STATUS_OK` (not an error)".to_string(), |s| format!("`{}`", name(s)));
        t += &format!("| {} | {} | {} |\n", r.input, status, r.outputs);
    }
    t + END
}

#[test]
fn every_bad_input_gets_its_status_and_leaves_the_outputs_untouched() {
    let rows = rows();
    for r in &rows {
        for (k, call) in r.calls.iter().enumerate() {
            let mut b = fresh();
            let mut expected = b.clone();
            let status = call(&mut b);
            let want = r.status.unwrap_or(XENT_STATUS_OK);
            assert_eq!(
                status,
                want,
                "{} (call {k}): {} instead of {}: {}",
                r.input,
                name(status),
                name(want),
                last_error()
            );
            if r.status.is_some() {
                let msg = last_error();
                assert!(!msg.is_empty(), "{} (call {k}): no message", r.input);
                if r.outputs == UNTOUCHED {
                    // (A case's own setup changes only labels, an input.)
                    expected.labels.clone_from(&b.labels);
                    assert!(snapshot(&b) == snapshot(&expected), "{} (call {k}, {msg}): a buffer changed", r.input);
                }
            }
        }
    }
    // (Miri isolates the file system; plain `cargo test` checks the table.)
    if cfg!(miri) {
        return;
    }
    let want = table(&rows);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let (Some(a), Some(e)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md has no bad-input table markers");
    };
    let have = &readme[a..e + END.len()];
    if have != want {
        if std::env::var_os("XENT_BLESS").is_some() {
            std::fs::write(path, format!("{}{}{}", &readme[..a], want, &readme[e + END.len()..]))
                .expect("write README");
        } else {
            panic!(
                "README.md's bad-input table is stale: XENT_BLESS=1 cargo test --test bad_input rewrites it\n{want}"
            );
        }
    }
}
