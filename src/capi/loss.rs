//! The loss calls on row-major logits: float32 with class indices or
//! probability targets, and bfloat16 / binary16 logits. Every export builds
//! a [`Call`], whose `status` validates everything and runs the safe core
//! inside the boundary.

use super::args::Regions;
use super::boundary;
use super::options::*;
use super::status::XentStatus;
use crate::error::Result;
use crate::loss::{
    self, Element, ForwardOut, LogitsGrad, Matrix, MatrixMut, Mode, Reduction, Targets, Upstream, check_shape,
};

/// Class-index or probability targets as the C caller passed them.
#[derive(Clone, Copy)]
pub(crate) enum RawTargets {
    Labels(*const i32),
    Probs(*const f32, usize),
}

/// Every argument any entry point takes; unused ones are NULL / 0. `T` is
/// the logits' element type (`f32`, `Bf16`, `F16`).
pub(crate) struct Call<T = f32> {
    pub kind: Mode,
    pub logits: *const T,
    pub rows: usize,
    pub classes: usize,
    pub row_stride: usize,
    pub targets: RawTargets,
    pub options: *const XentOptions,
    pub loss: *mut f32,
    pub lse_out: *mut f32,
    pub argmax: *mut i32,
    pub grad_loss: *const f32,
    pub lse_in: *const f32,
    pub grad: *mut T,
    pub grad_stride: usize,
}

impl<T: Element> Call<T> {
    /// A call of `kind` on these logits and targets, with no outputs,
    /// upstream gradient or gradient buffer yet.
    pub(crate) fn new(
        kind: Mode,
        logits: *const T,
        rows: usize,
        classes: usize,
        row_stride: usize,
        targets: RawTargets,
        options: *const XentOptions,
    ) -> Call<T> {
        Call {
            kind,
            logits,
            rows,
            classes,
            row_stride,
            targets,
            options,
            loss: core::ptr::null_mut(),
            lse_out: core::ptr::null_mut(),
            argmax: core::ptr::null_mut(),
            grad_loss: core::ptr::null(),
            lse_in: core::ptr::null(),
            grad: core::ptr::null_mut(),
            grad_stride: 0,
        }
    }

    /// The forward outputs.
    pub(crate) fn outputs(self, loss: *mut f32, lse: *mut f32, argmax: *mut i32) -> Call<T> {
        Call { loss, lse_out: lse, argmax, ..self }
    }

    /// The upstream gradient and optional forward lse of a backward call.
    pub(crate) fn upstream(self, grad_loss: *const f32, lse: *const f32) -> Call<T> {
        Call { grad_loss, lse_in: lse, ..self }
    }

    /// The gradient buffer.
    pub(crate) fn gradient(self, grad: *mut T, grad_stride: usize) -> Call<T> {
        Call { grad, grad_stride, ..self }
    }

    /// Validates everything and runs the safe core.
    ///
    /// # Safety
    /// Every non-NULL pointer must be valid for the extent its arguments
    /// describe, as the header documents.
    pub(crate) unsafe fn run(self) -> Result<()> {
        // SAFETY: forwarded from the caller.
        let o = unsafe { read_options(self.options)? };
        let red = reduction(o.reduction)?;
        let (rows, classes) = (self.rows, self.classes);
        let n_loss = if red == Reduction::None { rows } else { 1 };
        let ext = check_shape("logits", rows, classes, self.row_stride)?;
        let grads = self.kind != Mode::Forward;
        let in_place = grads && core::ptr::eq(self.grad, self.logits) && !self.logits.is_null();
        let gext = if grads { grad_extent(&o, "grad_logits", rows, classes, self.grad_stride)? } else { 0 };
        let targets_ext = match self.targets {
            RawTargets::Probs(_, stride) => check_shape("targets", rows, classes, stride)?,
            RawTargets::Labels(_) => rows,
        };

        let mut r = Regions::new("only grad_logits == logits with the same stride is allowed");
        let logits = if in_place && self.grad_stride == self.row_stride {
            None
        } else {
            Some(r.input("logits", self.logits, ext)?)
        };
        let labels = match self.targets {
            RawTargets::Labels(p) => Some(r.input("labels", p, targets_ext)?),
            RawTargets::Probs(..) => None,
        };
        let probs = match self.targets {
            RawTargets::Probs(p, _) => Some(r.input("targets", p, targets_ext)?),
            RawTargets::Labels(_) => None,
        };
        let weights = r.optional("class_weights", o.class_weights, classes, false)?;
        let (loss, lse_out, argmax) = if self.kind == Mode::Backward {
            (None, None, None)
        } else {
            (
                Some(r.output("loss", self.loss, n_loss)?),
                r.optional("lse", self.lse_out, rows, true)?,
                r.optional("argmax", self.argmax, rows, true)?,
            )
        };
        let (grad_loss, lse_in) = if self.kind == Mode::Backward {
            (Some(r.input("grad_loss", self.grad_loss, n_loss)?), r.optional("lse", self.lse_in, rows, false)?)
        } else {
            (None, None)
        };
        let grad = if grads { Some(r.output("grad_logits", self.grad, gext)?) } else { None };
        r.check()?;

        // SAFETY: every region is non-NULL (or empty), aligned, inside the
        // address space, and no output overlaps any other buffer, so the
        // shared and exclusive slices below never alias. Validity of the
        // memory itself is the caller's contract.
        unsafe {
            let pool = CPool::of(&o);
            let options = safe_options(&o, red, weights.map(|w| w.slice()), pool.as_ref());
            let targets = match (labels, probs, self.targets) {
                (Some(l), _, _) => Targets::Labels(l.slice()),
                (_, Some(t), RawTargets::Probs(_, stride)) => {
                    Targets::Probs(Matrix { data: t.slice(), rows, cols: classes, stride })
                }
                _ => unreachable!("targets match their kind"),
            };
            let out = || ForwardOut {
                loss: loss.expect("forward outputs").slice_mut(),
                lse: lse_out.map(|l| l.slice_mut()),
                argmax: argmax.map(|a| a.slice_mut()),
            };
            let io = || {
                let g = grad.expect("gradient output");
                match logits {
                    None => LogitsGrad::InPlace(MatrixMut {
                        data: g.slice_mut(),
                        rows,
                        cols: classes,
                        stride: self.grad_stride,
                    }),
                    Some(l) => LogitsGrad::Separate {
                        logits: Matrix { data: l.slice(), rows, cols: classes, stride: self.row_stride },
                        grad: MatrixMut { data: g.slice_mut(), rows, cols: classes, stride: self.grad_stride },
                    },
                }
            };
            match self.kind {
                Mode::Forward => {
                    let m =
                        Matrix { data: logits.expect("logits").slice(), rows, cols: classes, stride: self.row_stride };
                    loss::forward(m, targets, &options, out())
                }
                Mode::Backward => {
                    let up =
                        Upstream { grad_loss: grad_loss.expect("grad_loss").slice(), lse: lse_in.map(|l| l.slice()) };
                    loss::backward(io(), targets, &options, up)
                }
                Mode::Fused => loss::forward_backward(io(), targets, &options, out()),
            }
        }
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
    let call = Call::new(Mode::Forward, logits, rows, classes, row_stride, RawTargets::Labels(labels), options)
        .outputs(loss, lse, argmax);
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.run() })
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
    let call = Call::new(Mode::Backward, logits, rows, classes, row_stride, RawTargets::Labels(labels), options)
        .upstream(grad_loss, lse)
        .gradient(grad_logits, grad_row_stride);
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.run() })
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
    let call = Call::new(Mode::Fused, logits, rows, classes, row_stride, RawTargets::Labels(labels), options)
        .outputs(loss, lse, argmax)
        .gradient(grad_logits, grad_row_stride);
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.run() })
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
        Mode::Forward,
        logits,
        rows,
        classes,
        row_stride,
        RawTargets::Probs(targets, target_row_stride),
        options,
    )
    .outputs(loss, lse, argmax);
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.run() })
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
        Mode::Backward,
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
    boundary::status(|| unsafe { call.run() })
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
        Mode::Fused,
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
    boundary::status(|| unsafe { call.run() })
}

/// The call of the 16-bit forward entry points, for element type `T`.
fn forward_16<T: crate::loss::Element>(
    logits: *const u16,
    (rows, classes, row_stride): (usize, usize, usize),
    labels: *const i32,
    options: *const XentOptions,
    (loss, lse, argmax): (*mut f32, *mut f32, *mut i32),
) -> Call<T> {
    Call::new(Mode::Forward, logits.cast::<T>(), rows, classes, row_stride, RawTargets::Labels(labels), options)
        .outputs(loss, lse, argmax)
}

/// The call of the 16-bit fused entry points, for element type `T`.
fn forward_backward_16<T: crate::loss::Element>(
    logits: *const u16,
    (rows, classes, row_stride): (usize, usize, usize),
    labels: *const i32,
    options: *const XentOptions,
    (loss, lse, argmax): (*mut f32, *mut f32, *mut i32),
    (grad, grad_stride): (*mut u16, usize),
) -> Call<T> {
    let logits = logits.cast::<T>();
    Call::new(Mode::Fused, logits, rows, classes, row_stride, RawTargets::Labels(labels), options)
        .outputs(loss, lse, argmax)
        .gradient(grad.cast::<T>(), grad_stride)
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
    let call =
        forward_16::<crate::loss::Bf16>(logits, (rows, classes, row_stride), labels, options, (loss, lse, argmax));
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.run() })
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
    let call =
        forward_backward_16::<crate::loss::Bf16>(logits, shape, labels, options, out, (grad_logits, grad_row_stride));
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.run() })
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
    let call =
        forward_16::<crate::loss::F16>(logits, (rows, classes, row_stride), labels, options, (loss, lse, argmax));
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.run() })
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
    let call =
        forward_backward_16::<crate::loss::F16>(logits, shape, labels, options, out, (grad_logits, grad_row_stride));
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.run() })
}
