//! The safe core: slices in, `Result` out. It holds the semantics (PyTorch's
//! `F.cross_entropy` plus z-loss and softcap) and splits the rows into
//! blocks; the arithmetic is in [`crate::kernels`].

mod block;
#[cfg(feature = "std")]
mod half;
mod plan;
mod row;
mod scan;
pub mod shard;
mod short;
mod types;

pub use crate::error::{Error, ErrorKind, Message, Result};
pub use types::*;

pub(crate) use block::RowOuts;
#[cfg(feature = "std")]
pub(crate) use block::zero_padding;
use block::{Layout, STREAM_MIN_BYTES, canonical, run_f32};
pub(crate) use plan::Mode;
use plan::Plan;
pub(crate) use plan::check_shape;
#[cfg(feature = "std")]
pub(crate) use plan::{check_grad_buffer, check_len, check_matrix};

/// Splits a forward's outputs into per-row outputs and the reduced-loss slot
/// (`None` for `Reduction::None`, whose losses are per row).
fn split_out<'a>(plan: &Plan<'_>, out: ForwardOut<'a>) -> (RowOuts<'a>, Option<&'a mut f32>) {
    let (per_row, total) =
        if plan.reduction == Reduction::None { (Some(out.loss), None) } else { (None, out.loss.first_mut()) };
    (RowOuts { loss: per_row, lse: out.lse, argmax: out.argmax }, total)
}

/// Runs the rows of `plan` on logits of any element type (`src`, or `dst`
/// when in place) and returns the sums of their (cross-entropy, z-loss) parts.
fn run(
    plan: &Plan<'_>,
    options: &Options<'_>,
    layout: Layout,
    src: Option<Elems<'_>>,
    dst: Option<ElemsMut<'_>>,
    out: RowOuts<'_>,
) -> Result<(f64, f64)> {
    match (src, dst) {
        #[cfg(feature = "std")]
        (Some(Elems::Half(kind, s)), Some(ElemsMut::Half(_, d))) => {
            half::run_half(plan, options, layout, kind, Some(s), Some(d), out)
        }
        #[cfg(feature = "std")]
        (Some(Elems::Half(kind, s)), None) => half::run_half(plan, options, layout, kind, Some(s), None, out),
        #[cfg(feature = "std")]
        (None, Some(ElemsMut::Half(kind, d))) => half::run_half(plan, options, layout, kind, None, Some(d), out),
        #[cfg(not(feature = "std"))]
        (Some(Elems::Half(..)), _) | (_, Some(ElemsMut::Half(..))) => Err(Error::new(
            ErrorKind::Unsupported,
            "16-bit logits need xent's std feature for their float32 scratch (this is a no_std build)",
        )),
        (Some(Elems::F32(s)), Some(ElemsMut::F32(d))) => run_f32(plan, options, layout, Some(s), Some(d), out),
        (Some(Elems::F32(s)), None) => run_f32(plan, options, layout, Some(s), None, out),
        (None, Some(ElemsMut::F32(d))) => run_f32(plan, options, layout, None, Some(d), out),
        _ => Err(Error::new(ErrorKind::Internal, "logits and gradient of different element types")),
    }
}

/// Runs a forward or fused call and writes its reduced loss.
fn run_call(
    plan: &Plan<'_>,
    options: &Options<'_>,
    layout: Layout,
    src: Option<Elems<'_>>,
    dst: Option<ElemsMut<'_>>,
    out: ForwardOut<'_>,
) -> Result<()> {
    let (rows, total) = split_out(plan, out);
    let (ce, z) = run(plan, options, layout, src, dst, rows)?;
    if let Some(l) = total {
        *l = canonical(plan.reduce(ce, z));
    }
    Ok(())
}

fn check_logits<T>(m: &Matrix<'_, T>) -> Result<()> {
    Plan::check_logits("logits", m.data.len(), m.rows, m.cols, m.stride)
}

/// Shape, layout, logits (unless in place) and gradient buffer of a call.
type Split<'a, T> = (usize, usize, Layout, Option<&'a [T]>, &'a mut [T]);

fn split<'a, T>(io: LogitsGrad<'a, T>, options: &Options<'_>) -> Result<Split<'a, T>> {
    let in_place = matches!(io, LogitsGrad::InPlace(_));
    let s = split_io(io)?;
    plan::check_grad_buffer(options, in_place, s.4.len(), s.0, s.2.dst_stride)?;
    Ok(s)
}

fn split_io<T>(io: LogitsGrad<'_, T>) -> Result<Split<'_, T>> {
    match io {
        LogitsGrad::Separate { logits, grad } => {
            check_logits(&logits)?;
            Plan::check_logits("grad_logits", grad.data.len(), grad.rows, grad.cols, grad.stride)?;
            if (grad.rows, grad.cols) != (logits.rows, logits.cols) {
                return Err(Error::new(
                    ErrorKind::InvalidShape,
                    format_args!(
                        "grad_logits is {}x{} but logits are {}x{}",
                        grad.rows, grad.cols, logits.rows, logits.cols
                    ),
                ));
            }
            let layout = Layout { src_stride: logits.stride, dst_stride: grad.stride };
            Ok((logits.rows, logits.cols, layout, Some(logits.data), grad.data))
        }
        LogitsGrad::InPlace(m) => {
            Plan::check_logits("logits", m.data.len(), m.rows, m.cols, m.stride)?;
            let layout = Layout { src_stride: m.stride, dst_stride: m.stride };
            Ok((m.rows, m.cols, layout, None, m.data))
        }
    }
}

/// The loss (and optionally per-row log-sum-exp and argmax) of `logits`
/// against `targets`. Nothing is written unless the call succeeds.
///
/// `T` is `f32`, [`Bf16`] or [`F16`]; 16-bit logits give exactly the results
/// of the float32 call on their (exact) float32 values.
pub fn forward<T: Element>(
    logits: Matrix<'_, T>,
    targets: Targets<'_>,
    options: &Options<'_>,
    out: ForwardOut<'_>,
) -> Result<()> {
    check_logits(&logits)?;
    let plan = Plan::new(Mode::Forward, logits.rows, logits.cols, targets, options, None)?;
    plan.check_out(&out)?;
    let layout = Layout { src_stride: logits.stride, dst_stride: 0 };
    run_call(&plan, options, layout, Some(T::view(logits.data)), None, out)
}

/// The gradient of the loss with respect to the logits, given the upstream
/// gradient (and optionally the forward's log-sum-exp). A 16-bit gradient
/// is the float32 one rounded to nearest even.
pub fn backward<T: Element>(
    io: LogitsGrad<'_, T>,
    targets: Targets<'_>,
    options: &Options<'_>,
    upstream: Upstream<'_>,
) -> Result<()> {
    let (rows, cols, layout, src, dst) = split(io, options)?;
    let mut plan = Plan::new(Mode::Backward, rows, cols, targets, options, Some(upstream))?;
    // A separate float32 gradient larger than the caches is written around them.
    plan.stream = src.is_some()
        && core::mem::size_of::<T>() == 4
        && rows.saturating_mul(layout.dst_stride).saturating_mul(4) >= STREAM_MIN_BYTES;
    run(&plan, options, layout, src.map(T::view), Some(T::view_mut(dst)), RowOuts::default()).map(|_| ())
}

/// The loss and the gradient of the reduced loss (upstream gradient 1; for
/// `Reduction::None`, of the sum of row losses) in one pass over the logits.
/// A 16-bit gradient is the float32 one rounded to nearest even.
pub fn forward_backward<T: Element>(
    io: LogitsGrad<'_, T>,
    targets: Targets<'_>,
    options: &Options<'_>,
    out: ForwardOut<'_>,
) -> Result<()> {
    let (rows, cols, layout, src, dst) = split(io, options)?;
    let plan = Plan::new(Mode::Fused, rows, cols, targets, options, None)?;
    plan.check_out(&out)?;
    run_call(&plan, options, layout, src.map(T::view), Some(T::view_mut(dst)), out)
}

#[cfg(feature = "std")]
/// A validated class-index call whose logits exist only a chunk of rows at a
/// time (the fused linear call computes them chunk by chunk). Every check and
/// the mean's denominators come from the whole call; each chunk runs the same
/// row kernels as [`forward`] / [`forward_backward`].
pub(crate) struct Chunked<'a> {
    plan: Plan<'a>,
}

#[cfg(feature = "std")]
impl<'a> Chunked<'a> {
    /// Validates labels and options for `rows × cols` logits; `fused` chunks
    /// get their gradient, others only their forward outputs.
    pub(crate) fn new(fused: bool, rows: usize, cols: usize, labels: &'a [i32], options: &Options<'a>) -> Result<Self> {
        let mode = if fused { Mode::Fused } else { Mode::Forward };
        let plan = Plan::new(mode, rows, cols, Targets::Labels(labels), options, None)?;
        // The chunks' logits become their gradient in the workspace: the
        // caller's gradient options apply to the products made from it.
        Ok(Chunked { plan: Plan { accumulate: false, zero_padding: false, ..plan } })
    }

    /// Checks the whole call's outputs.
    pub(crate) fn check_out(&self, out: &ForwardOut<'_>) -> Result<()> {
        self.plan.check_out(out)
    }

    /// Runs one chunk: `buf` holds `labels.len()` rows of logits at `stride`
    /// (the gradient replaces them in a fused call); `out` gets the chunk's
    /// per-row outputs. Returns the chunk's (cross-entropy, z-loss) sums.
    pub(crate) fn run(
        &self,
        options: &Options<'_>,
        labels: &[i32],
        buf: &mut [f32],
        stride: usize,
        out: RowOuts<'_>,
    ) -> Result<(f64, f64)> {
        let plan = Plan { rows: labels.len(), targets: Targets::Labels(labels), ..self.plan.clone() };
        Plan::check_logits("chunk", buf.len(), plan.rows, plan.cols, stride)?;
        if plan.mode == Mode::Fused {
            run_f32(&plan, options, Layout { src_stride: stride, dst_stride: stride }, None, Some(buf), out)
        } else {
            run_f32(&plan, options, Layout { src_stride: stride, dst_stride: 0 }, Some(buf), None, out)
        }
    }

    /// The reduced loss from the sums of all chunks (`Mean` / `Sum`).
    pub(crate) fn reduce(&self, (ce, z): (f64, f64)) -> f32 {
        canonical(self.plan.reduce(ce, z))
    }
}
