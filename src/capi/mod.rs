//! The C ABI: every exported function validates its arguments, converts them
//! to slices and calls the safe core inside a panic guard. No math here.

mod args;
mod linear;
mod shard;
mod status;

use core::ffi::{c_char, c_void};

use args::{Call, Kind, RawTargets};
use linear::{GradPtrs, LinearCall};
use shard::ShardCall;

pub use crate::loss::shard::ShardStats;
pub use status::*;

/// The default options: MEAN, ignore_index -100, no weights, no smoothing,
/// no z-loss, no softcap, num_threads 0, no parallel_for.
#[unsafe(no_mangle)]
pub extern "C" fn xent_options_default() -> XentOptions {
    args::default_options()
}

/// The library version, "MAJOR.MINOR.PATCH" (static storage). The header's
/// XENT_VERSION_MAJOR/MINOR/PATCH give the version compiled against.
#[unsafe(no_mangle)]
pub extern "C" fn xent_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}

/// A static, distinct, non-NULL description of any status value.
#[unsafe(no_mangle)]
pub extern "C" fn xent_status_message(status: XentStatus) -> *const c_char {
    status::message(status).as_ptr()
}

/// This thread's last failure message ("" if none yet; at most 240 bytes).
/// Valid until this thread's next failing xent call; never NULL. A no_std
/// build (no thread-locals) returns the xent_status_message text of the
/// last failure on any thread instead.
#[unsafe(no_mangle)]
pub extern "C" fn xent_last_error() -> *const c_char {
    status::last_error_ptr()
}

/// The kernel path in use: "scalar", "neon", "simd128", "avx2" or "avx512"
/// (static storage).
/// The best the CPU has, capped by the XENT_ISA environment variable (read once).
#[unsafe(no_mangle)]
pub extern "C" fn xent_active_isa() -> *const c_char {
    match crate::kernels::Isa::active() {
        crate::kernels::Isa::Scalar => c"scalar".as_ptr(),
        crate::kernels::Isa::Neon => c"neon".as_ptr(),
        crate::kernels::Isa::Simd128 => c"simd128".as_ptr(),
        crate::kernels::Isa::Avx2 => c"avx2".as_ptr(),
        crate::kernels::Isa::Avx512 => c"avx512".as_ptr(),
    }
}

/// Loss of `rows` x `classes` logits (row i at `logits + i * row_stride`)
/// against class indices `labels`.
///
/// `loss` receives 1 value (MEAN, SUM) or `rows` values (NONE). `lse` and
/// `argmax` (each `rows` values) may be NULL. On failure nothing is written.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_forward(
    logits: *const f32,
    rows: usize,
    classes: usize,
    row_stride: usize,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
    argmax: *mut i32,
) -> XentStatus {
    let call = Call::new(Kind::Forward, logits, rows, classes, row_stride, RawTargets::Labels(labels), options)
        .outputs(loss, lse, argmax);
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call.status() }
}

/// Gradient of the loss with respect to the logits given the upstream
/// gradient `grad_loss` (1 value, or `rows` for NONE). `lse` may be NULL or
/// the per-row log-sum-exp a forward call returned (skips recomputing it).
/// `grad_logits` may be exactly `logits` with the same stride (in place).
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_backward(
    logits: *const f32,
    rows: usize,
    classes: usize,
    row_stride: usize,
    labels: *const i32,
    options: *const XentOptions,
    grad_loss: *const f32,
    lse: *const f32,
    grad_logits: *mut f32,
    grad_row_stride: usize,
) -> XentStatus {
    let call = Call::new(Kind::Backward, logits, rows, classes, row_stride, RawTargets::Labels(labels), options)
        .upstream(grad_loss, lse)
        .gradient(grad_logits, grad_row_stride);
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call.status() }
}

/// The training call: the loss and the gradient of the reduced loss
/// (upstream gradient 1; for NONE, of the sum of row losses) in one pass.
/// `grad_logits` may be exactly `logits` with the same stride (in place);
/// any other overlap is XENT_STATUS_INVALID_ARGUMENT.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_forward_backward(
    logits: *const f32,
    rows: usize,
    classes: usize,
    row_stride: usize,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
    argmax: *mut i32,
    grad_logits: *mut f32,
    grad_row_stride: usize,
) -> XentStatus {
    let call = Call::new(Kind::ForwardBackward, logits, rows, classes, row_stride, RawTargets::Labels(labels), options)
        .outputs(loss, lse, argmax)
        .gradient(grad_logits, grad_row_stride);
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call.status() }
}

/// As xent_forward, with probability targets: row i of `targets` at
/// `targets + i * target_row_stride`, `classes` values (need not sum to 1).
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_soft_forward(
    logits: *const f32,
    rows: usize,
    classes: usize,
    row_stride: usize,
    targets: *const f32,
    target_row_stride: usize,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
    argmax: *mut i32,
) -> XentStatus {
    let call = Call::new(
        Kind::Forward,
        logits,
        rows,
        classes,
        row_stride,
        RawTargets::Probs(targets, target_row_stride),
        options,
    )
    .outputs(loss, lse, argmax);
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call.status() }
}

/// As xent_backward, with probability targets.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_soft_backward(
    logits: *const f32,
    rows: usize,
    classes: usize,
    row_stride: usize,
    targets: *const f32,
    target_row_stride: usize,
    options: *const XentOptions,
    grad_loss: *const f32,
    lse: *const f32,
    grad_logits: *mut f32,
    grad_row_stride: usize,
) -> XentStatus {
    let call = Call::new(
        Kind::Backward,
        logits,
        rows,
        classes,
        row_stride,
        RawTargets::Probs(targets, target_row_stride),
        options,
    )
    .upstream(grad_loss, lse)
    .gradient(grad_logits, grad_row_stride);
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call.status() }
}

/// As xent_forward_backward, with probability targets.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_soft_forward_backward(
    logits: *const f32,
    rows: usize,
    classes: usize,
    row_stride: usize,
    targets: *const f32,
    target_row_stride: usize,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
    argmax: *mut i32,
    grad_logits: *mut f32,
    grad_row_stride: usize,
) -> XentStatus {
    let call = Call::new(
        Kind::ForwardBackward,
        logits,
        rows,
        classes,
        row_stride,
        RawTargets::Probs(targets, target_row_stride),
        options,
    )
    .outputs(loss, lse, argmax)
    .gradient(grad_logits, grad_row_stride);
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call.status() }
}

/// The 16-bit forward entry points, for element type `T`.
///
/// # Safety
/// As the entry points.
unsafe fn forward_16<T: crate::loss::Element>(
    logits: *const u16,
    (rows, classes, row_stride): (usize, usize, usize),
    labels: *const i32,
    options: *const XentOptions,
    (loss, lse, argmax): (*mut f32, *mut f32, *mut i32),
) -> XentStatus {
    let call =
        Call::new(Kind::Forward, logits.cast::<T>(), rows, classes, row_stride, RawTargets::Labels(labels), options)
            .outputs(loss, lse, argmax);
    // SAFETY: forwarded from the caller.
    unsafe { call.status() }
}

/// The 16-bit fused entry points, for element type `T`.
///
/// # Safety
/// As the entry points.
unsafe fn forward_backward_16<T: crate::loss::Element>(
    logits: *const u16,
    (rows, classes, row_stride): (usize, usize, usize),
    labels: *const i32,
    options: *const XentOptions,
    (loss, lse, argmax): (*mut f32, *mut f32, *mut i32),
    (grad, grad_stride): (*mut u16, usize),
) -> XentStatus {
    let logits = logits.cast::<T>();
    let call = Call::new(Kind::ForwardBackward, logits, rows, classes, row_stride, RawTargets::Labels(labels), options)
        .outputs(loss, lse, argmax)
        .gradient(grad.cast::<T>(), grad_stride);
    // SAFETY: forwarded from the caller.
    unsafe { call.status() }
}

/// As xent_forward, with bfloat16 logits given as raw bit patterns (the top
/// 16 bits of a float32). They are widened to float32 exactly and every
/// result is bit-identical to xent_forward on the widened logits. `logits`
/// must be 2-byte aligned; `row_stride` counts elements.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_forward_bf16(
    logits: *const u16,
    rows: usize,
    classes: usize,
    row_stride: usize,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
    argmax: *mut i32,
) -> XentStatus {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe {
        forward_16::<crate::loss::Bf16>(logits, (rows, classes, row_stride), labels, options, (loss, lse, argmax))
    }
}

/// As xent_forward_backward, with bfloat16 logits and gradient (raw bit
/// patterns). Loss, lse and argmax are bit-identical to
/// xent_forward_backward on the widened logits, and the gradient is that
/// call's float32 gradient rounded once to nearest even (subnormals kept,
/// NaN stays NaN). `grad_logits` may be exactly `logits` with the same
/// stride (in place). The 16-bit calls compute in a float32 scratch of one
/// block of rows per block running at once (at most max(16384, classes)
/// floats each), allocated for the call: XENT_STATUS_ALLOCATION_FAILED if
/// that fails.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_forward_backward_bf16(
    logits: *const u16,
    rows: usize,
    classes: usize,
    row_stride: usize,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
    argmax: *mut i32,
    grad_logits: *mut u16,
    grad_row_stride: usize,
) -> XentStatus {
    let shape = (rows, classes, row_stride);
    let out = (loss, lse, argmax);
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe {
        forward_backward_16::<crate::loss::Bf16>(logits, shape, labels, options, out, (grad_logits, grad_row_stride))
    }
}

/// As xent_forward_bf16, with IEEE 754 binary16 logits (raw bit patterns).
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_forward_f16(
    logits: *const u16,
    rows: usize,
    classes: usize,
    row_stride: usize,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
    argmax: *mut i32,
) -> XentStatus {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { forward_16::<crate::loss::F16>(logits, (rows, classes, row_stride), labels, options, (loss, lse, argmax)) }
}

/// As xent_forward_backward_bf16, with IEEE 754 binary16 logits and
/// gradient (raw bit patterns; the gradient overflows to ±inf beyond 65504).
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_forward_backward_f16(
    logits: *const u16,
    rows: usize,
    classes: usize,
    row_stride: usize,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
    argmax: *mut i32,
    grad_logits: *mut u16,
    grad_row_stride: usize,
) -> XentStatus {
    let shape = (rows, classes, row_stride);
    let out = (loss, lse, argmax);
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe {
        forward_backward_16::<crate::loss::F16>(logits, shape, labels, options, out, (grad_logits, grad_row_stride))
    }
}

/// Bytes of the workspace xent_linear_forward / xent_linear_forward_backward
/// allocate when given none: one chunk of rows (as many as about 32 MiB of
/// logits hold, at least 32 and at most 1024, and at most `rows`) plus
/// alignment slack. It depends on `dim` and `classes` and stops growing with
/// `rows` at one chunk. 0 if `dim` or `classes` is 0
/// or the size overflows. `options` may be NULL (it does not change the size).
#[unsafe(no_mangle)]
pub extern "C" fn xent_linear_workspace_size(
    rows: usize,
    dim: usize,
    classes: usize,
    options: *const XentOptions,
) -> usize {
    let _ = options;
    linear::workspace_size(rows, dim, classes)
}

/// Loss of `logits = hidden * weight^T + bias` against `labels`, computed a
/// chunk of rows at a time: the rows x classes logits never exist whole.
///
/// `hidden` is rows x dim (row i at `hidden + i * hidden_row_stride`);
/// `weight` is classes x dim (the nn.Linear layout), `bias` has `classes`
/// values or is NULL. Outputs and options mean what they mean for
/// xent_forward on those logits. `workspace` (`workspace_size` bytes, any
/// alignment) is scratch the call may overwrite; the largest chunk of rows
/// that fits is used, and a buffer too small for one row is
/// XENT_STATUS_INVALID_ARGUMENT. NULL: the call allocates
/// xent_linear_workspace_size() bytes itself. No buffer may overlap an
/// output or the workspace. On failure nothing is written.
///
/// The products are the matrixmultiply crate's; each allocates a packing
/// buffer of at most about 1.2 MiB on the heap, outside xent's control (its
/// failure aborts, as Rust's allocator does; xent's own allocations report
/// XENT_STATUS_ALLOCATION_FAILED). It starts no threads of its own.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_linear_forward(
    hidden: *const f32,
    rows: usize,
    dim: usize,
    hidden_row_stride: usize,
    weight: *const f32,
    classes: usize,
    weight_row_stride: usize,
    bias: *const f32,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
    argmax: *mut i32,
    workspace: *mut c_void,
    workspace_size: usize,
) -> XentStatus {
    let call = LinearCall {
        hidden,
        rows,
        dim,
        hidden_stride: hidden_row_stride,
        weight,
        classes,
        weight_stride: weight_row_stride,
        bias,
        labels,
        options,
        loss,
        lse,
        argmax,
        grads: None,
        workspace,
        workspace_size,
    };
    // SAFETY: the caller's pointer contract, forwarded.
    guard(|| unsafe { call.run() })
}

/// As xent_linear_forward, and the gradients of the reduced loss (for NONE,
/// of the sum of row losses): `grad_hidden` (rows x dim), `grad_weight`
/// (classes x dim) and `grad_bias` (classes). They are written (added to,
/// with grad_accumulate); each may be NULL to skip it and its work. Rows whose label
/// is ignore_index cost no matrix product (unless `lse` or `argmax` is
/// asked for, which needs their logits) and get a zero `grad_hidden` row
/// (with grad_accumulate it is left as it is).
/// Results are identical for every thread count and pool.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_linear_forward_backward(
    hidden: *const f32,
    rows: usize,
    dim: usize,
    hidden_row_stride: usize,
    weight: *const f32,
    classes: usize,
    weight_row_stride: usize,
    bias: *const f32,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
    argmax: *mut i32,
    grad_hidden: *mut f32,
    grad_hidden_row_stride: usize,
    grad_weight: *mut f32,
    grad_weight_row_stride: usize,
    grad_bias: *mut f32,
    workspace: *mut c_void,
    workspace_size: usize,
) -> XentStatus {
    let call = LinearCall {
        hidden,
        rows,
        dim,
        hidden_stride: hidden_row_stride,
        weight,
        classes,
        weight_stride: weight_row_stride,
        bias,
        labels,
        options,
        loss,
        lse,
        argmax,
        grads: Some(GradPtrs {
            hidden: grad_hidden,
            hidden_stride: grad_hidden_row_stride,
            weight: grad_weight,
            weight_stride: grad_weight_row_stride,
            bias: grad_bias,
        }),
        workspace,
        workspace_size,
    };
    // SAFETY: the caller's pointer contract, forwarded.
    guard(|| unsafe { call.run() })
}

/// Per-row statistics of one vocabulary shard (`XentShardStats`, five floats
/// per row): `logits` holds classes [class_offset, class_offset +
/// shard_classes) of every row (row i at `logits + i * row_stride`) out of
/// `total_classes`. `labels` and `class_weights` are global (weights has
/// `total_classes` entries). Combine the shards' statistics with
/// xent_shard_stats_merge (one MPI_Allreduce), then call xent_shard_loss and
/// xent_shard_backward. On failure nothing is written.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_shard_stats(
    logits: *const f32,
    rows: usize,
    shard_classes: usize,
    row_stride: usize,
    class_offset: usize,
    total_classes: usize,
    labels: *const i32,
    options: *const XentOptions,
    stats: *mut ShardStats,
) -> XentStatus {
    let call = ShardCall { logits, rows, shard_classes, row_stride, class_offset, total_classes, labels, options };
    // SAFETY: the caller's pointer contract, forwarded.
    guard(|| unsafe { call.stats(stats) })
}

/// Merges `rows` statistics of `in` into `inout` (associative and
/// commutative up to float rounding, like an online softmax): the shape of
/// an MPI_User_function, so `MPI_Op_create` on a thin wrapper gives the
/// all-reduce operation. NULL pointers or `rows == 0` do nothing. Element by
/// element, so `in` may even be `inout`.
///
/// # Safety
/// `in` and `inout` must each hold `rows` statistics.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_shard_stats_merge(input: *const ShardStats, inout: *mut ShardStats, rows: usize) {
    if input.is_null() || inout.is_null() || rows == 0 {
        return;
    }
    for i in 0..rows {
        // SAFETY: the caller's contract: both hold `rows` values; each is
        // read into a local before the one write, so aliasing is harmless.
        unsafe {
            let (a, b) = (input.add(i).read_unaligned(), inout.add(i).read_unaligned());
            inout.add(i).write_unaligned(crate::loss::shard::merge_one(a, b));
        }
    }
}

/// The loss (1 value, or `rows` for NONE) and optionally the per-row
/// log-sum-exp from merged statistics, equal to the unsharded
/// xent_forward's (within float rounding).
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_shard_loss(
    merged: *const ShardStats,
    rows: usize,
    total_classes: usize,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
) -> XentStatus {
    // SAFETY: the caller's pointer contract, forwarded.
    guard(|| unsafe { shard::loss(merged, rows, total_classes, labels, options, loss, lse) })
}

/// The gradient of this shard's logits given the merged statistics and the
/// upstream gradient `grad_loss` (1 value, or `rows` for NONE): the
/// unsharded xent_backward's gradient restricted to the shard's classes.
/// `grad_logits` may be exactly `logits` with the same stride (in place).
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_shard_backward(
    logits: *const f32,
    rows: usize,
    shard_classes: usize,
    row_stride: usize,
    class_offset: usize,
    total_classes: usize,
    labels: *const i32,
    options: *const XentOptions,
    merged: *const ShardStats,
    grad_loss: *const f32,
    grad_logits: *mut f32,
    grad_row_stride: usize,
) -> XentStatus {
    let call = ShardCall { logits, rows, shard_classes, row_stride, class_offset, total_classes, labels, options };
    // SAFETY: the caller's pointer contract, forwarded.
    guard(|| unsafe { call.backward((None, merged), grad_loss, grad_logits, grad_row_stride) })
}

/// xent_shard_stats, also keeping in `kept` (the shard's shape, row i at
/// `kept + i * kept_row_stride`) what xent_shard_backward_kept needs to make
/// the gradient without computing the logits' exps again: `exp(z − max)`
/// relative to this shard's own max (`stats[i].max`), or `tanh(z / cap)`
/// under a softcap. `kept` may be exactly `logits` with the same stride (in
/// place: the logits are overwritten), or the gradient buffer that
/// xent_shard_backward_kept then overwrites in place. The statistics equal
/// xent_shard_stats's within float rounding. On failure nothing is written.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_shard_stats_keep(
    logits: *const f32,
    rows: usize,
    shard_classes: usize,
    row_stride: usize,
    class_offset: usize,
    total_classes: usize,
    labels: *const i32,
    options: *const XentOptions,
    stats: *mut ShardStats,
    kept: *mut f32,
    kept_row_stride: usize,
) -> XentStatus {
    let call = ShardCall { logits, rows, shard_classes, row_stride, class_offset, total_classes, labels, options };
    // SAFETY: the caller's pointer contract, forwarded.
    guard(|| unsafe { call.stats_keep(stats, kept, kept_row_stride) })
}

/// xent_shard_backward from what xent_shard_stats_keep kept instead of the
/// logits: one multiply per logit where xent_shard_backward computes an exp.
/// `local` is that call's own statistics (before merging), `merged` the
/// merged ones; the options must be that call's. `grad_logits` may be
/// exactly `kept` with the same stride (in place). Given statistics or a
/// `kept` buffer that did not come from that call, the gradient is
/// meaningless (but nothing outside the buffers is touched).
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_shard_backward_kept(
    kept: *const f32,
    rows: usize,
    shard_classes: usize,
    kept_row_stride: usize,
    class_offset: usize,
    total_classes: usize,
    labels: *const i32,
    options: *const XentOptions,
    local: *const ShardStats,
    merged: *const ShardStats,
    grad_loss: *const f32,
    grad_logits: *mut f32,
    grad_row_stride: usize,
) -> XentStatus {
    let row_stride = kept_row_stride;
    let call =
        ShardCall { logits: kept, rows, shard_classes, row_stride, class_offset, total_classes, labels, options };
    // SAFETY: the caller's pointer contract, forwarded.
    guard(|| unsafe { call.backward((Some(local), merged), grad_loss, grad_logits, grad_row_stride) })
}
