//! The safe core: slices in, `Result` out. It holds the semantics (PyTorch's
//! `F.cross_entropy` plus z-loss and softcap) and splits the rows into
//! blocks; the arithmetic is in [`crate::kernels`].

#[cfg(feature = "std")]
mod half;
mod plan;
mod row;
mod scan;
pub mod shard;
mod short;
mod types;

/// Outputs of at least this many bytes (8 MiB, beyond the caches), which
/// nothing reads back soon, are written with streaming stores.
pub(crate) const STREAM_MIN_BYTES: usize = 8 << 20;

pub use types::*;

pub(crate) use plan::check_shape;
use plan::{Mode, Plan};
#[cfg(feature = "std")]
pub(crate) use plan::{check_grad_buffer, check_len, check_matrix};
use scan::Widen;

use crate::kernels::{Ahead, Rows};
use crate::parallel::{self, Exec};

/// A block of consecutive rows and the slices of every buffer it touches;
/// `T` is the logits' element type (`f32`, or `u16` for 16-bit logits).
struct Block<'a, T = f32> {
    first: usize,
    rows: usize,
    src: Option<&'a [T]>,
    /// The next block's logits (empty in place or for the last block),
    /// prefetched while this block's last row computes.
    next: &'a [T],
    dst: Option<&'a mut [T]>,
    loss: Option<&'a mut [f32]>,
    lse: Option<&'a mut [f32]>,
    argmax: Option<&'a mut [i32]>,
}

/// Splits a call's buffers into blocks of `br` rows, in order.
fn blocks<'a, T>(
    rows: usize,
    br: usize,
    layout: &Layout,
    src: Option<&'a [T]>,
    dst: Option<&'a mut [T]>,
    out: RowOuts<'a>,
) -> impl ExactSizeIterator<Item = Block<'a, T>> + use<'a, T> {
    // `br` rows of a stride so large that their span overflows can only be
    // the call's only block (the shape check bounds (rows − 1) × stride):
    // the saturated chunk is then the whole buffer.
    let (src_chunk, dst_chunk) = (br.saturating_mul(layout.src_stride), br.saturating_mul(layout.dst_stride));
    let mut srcs = src.map(|s| s.chunks(src_chunk));
    let mut nexts = src.map(|s| s.chunks(src_chunk).skip(1));
    let mut dsts = pieces(dst, dst_chunk);
    let mut losses = pieces(out.loss, br);
    let mut lses = pieces(out.lse, br);
    let mut argmaxes = pieces(out.argmax, br);
    (0..rows.div_ceil(br)).map(move |b| Block {
        first: b * br,
        rows: br.min(rows - b * br),
        src: srcs.as_mut().and_then(Iterator::next),
        next: nexts.as_mut().and_then(Iterator::next).unwrap_or(&[]),
        dst: dsts.next().flatten(),
        loss: losses.next().flatten(),
        lse: lses.next().flatten(),
        argmax: argmaxes.next().flatten(),
    })
}

fn canonical(x: f64) -> f32 {
    if x.is_nan() { f32::NAN } else { x as f32 }
}

/// Splits `s` into pieces of `n`, or yields `None` forever.
fn pieces<T>(s: Option<&mut [T]>, n: usize) -> impl Iterator<Item = Option<&mut [T]>> {
    let mut it = s.map(|s| s.chunks_mut(n));
    core::iter::from_fn(move || Some(it.as_mut().and_then(Iterator::next)))
}

struct Layout {
    src_stride: usize,
    dst_stride: usize,
}

/// Per-row outputs of a call (each optional).
#[derive(Default)]
pub(crate) struct RowOuts<'a> {
    pub loss: Option<&'a mut [f32]>,
    pub lse: Option<&'a mut [f32]>,
    pub argmax: Option<&'a mut [i32]>,
}

/// Splits a forward's outputs into per-row outputs and the reduced-loss slot
/// (`None` for `Reduction::None`, whose losses are per row).
fn split_out<'a>(plan: &Plan<'_>, out: ForwardOut<'a>) -> (RowOuts<'a>, Option<&'a mut f32>) {
    let (per_row, total) =
        if plan.reduction == Reduction::None { (Some(out.loss), None) } else { (None, out.loss.first_mut()) };
    (RowOuts { loss: per_row, lse: out.lse, argmax: out.argmax }, total)
}

/// Runs one block of float32 rows and returns its (cross-entropy, z-loss)
/// sums; per-row outputs are written in row order (the order of the sums).
/// 16-bit logits of a block's rows (`stride` apart), which a fused call's
/// long rows widen into their scratch rows as the scan reaches each chunk.
struct Rows16<'a> {
    kind: Half,
    src: &'a [u16],
    stride: usize,
}

fn block_work(
    plan: &Plan<'_>,
    layout: &Layout,
    want_argmax: bool,
    mut b: Block<'_>,
    in16: Option<Rows16<'_>>,
) -> (f64, f64) {
    let cols = plan.cols;
    let mut acc = (0.0f64, 0.0f64);
    // Per-row outputs, written in row order (the order of `acc`'s sum).
    let mut emit = |k: usize, r: &row::RowOut| {
        acc = (acc.0 + r.ce, acc.1 + r.z);
        if let Some(l) = b.loss.as_deref_mut() {
            l[k] = canonical(r.ce + r.z);
        }
        if let Some(l) = b.lse.as_deref_mut() {
            l[k] = r.lse;
        }
        if let Some(a) = b.argmax.as_deref_mut() {
            a[k] = r.argmax;
        }
    };
    let (ss, ds) = (layout.src_stride, layout.dst_stride);
    if plan.short_path() {
        let none = b.dst.is_none();
        let mut out = [row::RowOut::default(); short::BATCH];
        for k0 in (0..b.rows).step_by(short::BATCH) {
            let n = short::BATCH.min(b.rows - k0);
            let batch = short::Batch {
                first: b.first + k0,
                rows: Rows {
                    src: b.src.map(|s| &s[k0 * ss..]),
                    src_stride: ss,
                    dst: b.dst.as_deref_mut().map(|d| &mut d[k0 * ds..]),
                    dst_stride: ds,
                    rows: n,
                    cols,
                },
            };
            plan.short_batch(batch, want_argmax, &mut out);
            for (k, r) in out[..n].iter().enumerate() {
                emit(k0 + k, r);
            }
        }
        if plan.zero_padding && !none {
            zero_padding(b.dst.as_deref_mut().expect("a gradient"), b.rows, cols, ds);
        }
        return acc;
    }
    for k in 0..b.rows {
        let i = b.first + k;
        let src = b.src.map(|s| &s[k * ss..k * ss + cols]);
        // The next row of this block, to prefetch while this one computes.
        let has_next = k + 1 < b.rows;
        let next_src = b.src.filter(|_| has_next).map(|s| &s[(k + 1) * ss..(k + 1) * ss + cols]);
        let (dst, next_dst) = match b.dst.as_deref_mut() {
            Some(d) => {
                let (head, tail) = d.split_at_mut((k * ds + cols).min(d.len()));
                let next = if has_next { &tail[ds - cols..ds] } else { &[][..] };
                (Some(&mut head[k * ds..]), next)
            }
            None => (None, &[][..]),
        };
        let next = next_src.unwrap_or(if has_next { next_dst } else { &b.next[..cols.min(b.next.len())] });
        let r = match (plan.mode, dst) {
            (Mode::Forward, _) => plan.forward_row(i, src.expect("forward reads logits"), next, want_argmax),
            (Mode::Fused, Some(d)) => {
                let half = in16.as_ref().map(|h| Widen { kind: h.kind, src: &h.src[k * h.stride..][..cols] });
                // A separate gradient's next row (in this block or the next
                // one), fetched while this row's gradient is written: the
                // next scan stores into it before anything reads it, and
                // would otherwise wait for each line to be read for ownership.
                // In place, the next row is the logits, already fetched.
                let grad_next = if src.is_some() && i + 1 < plan.rows { Ahead::past(d, ds, cols) } else { Ahead::NONE };
                plan.fused_row(i, src, d, (next, half, grad_next), want_argmax)
            }
            (Mode::Backward, Some(d)) => {
                plan.backward_row(i, src, d, next);
                continue;
            }
            (_, None) => unreachable!("gradient modes have a destination"),
        };
        emit(k, &r);
    }
    if plan.zero_padding
        && let Some(d) = b.dst
    {
        zero_padding(d, b.rows, cols, ds);
    }
    acc
}

/// Sets the padding `[cols, stride)` of each of `rows` rows of `dst` to 0
/// (`dst` holds `rows × stride` values).
pub(crate) fn zero_padding<T: Copy + Default>(dst: &mut [T], rows: usize, cols: usize, stride: usize) {
    if stride > cols {
        for k in 0..rows {
            dst[k * stride + cols..(k + 1) * stride].fill(T::default());
        }
    }
}

/// Runs float32 rows of `plan` and returns the sums of their (cross-entropy,
/// z-loss) parts.
fn run_f32(
    plan: &Plan<'_>,
    options: &Options<'_>,
    layout: Layout,
    src: Option<&[f32]>,
    dst: Option<&mut [f32]>,
    out: RowOuts<'_>,
) -> Result<(f64, f64)> {
    let (rows, cols) = (plan.rows, plan.cols);
    let want_argmax = out.argmax.is_some();
    let blocks = blocks(rows, parallel::block_rows(cols), &layout, src, dst, out);
    let work = |b: Block<'_>| block_work(plan, &layout, want_argmax, b, None);
    parallel::run(Exec::choose(options, rows, cols), blocks, work)
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
