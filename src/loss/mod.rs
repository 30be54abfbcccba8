//! The safe core: slices in, `Result` out. It holds the semantics (PyTorch's
//! `F.cross_entropy` plus z-loss and softcap) and splits the rows into
//! blocks; the arithmetic is in [`crate::kernels`].

mod plan;
mod row;
mod scan;
pub mod shard;
mod short;
mod types;

pub use types::*;

use plan::{Mode, Plan};
pub(crate) use plan::{check_len, check_matrix, check_shape};
use scan::Widen;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::kernels::{self, Rows};
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
    std::iter::from_fn(move || Some(it.as_mut().and_then(Iterator::next)))
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
                plan.fused_row(i, src, d, (next, half), want_argmax)
            }
            (Mode::Backward, Some(d)) => {
                plan.backward_row(i, src, d, next);
                continue;
            }
            (_, None) => unreachable!("gradient modes have a destination"),
        };
        emit(k, &r);
    }
    acc
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
        (Some(Elems::Half(kind, s)), Some(ElemsMut::Half(_, d))) => {
            run_half(plan, options, layout, kind, Some(s), Some(d), out)
        }
        (Some(Elems::Half(kind, s)), None) => run_half(plan, options, layout, kind, Some(s), None, out),
        (None, Some(ElemsMut::Half(kind, d))) => run_half(plan, options, layout, kind, None, Some(d), out),
        (Some(Elems::F32(s)), Some(ElemsMut::F32(d))) => run_f32(plan, options, layout, Some(s), Some(d), out),
        (Some(Elems::F32(s)), None) => run_f32(plan, options, layout, Some(s), None, out),
        (None, Some(ElemsMut::F32(d))) => run_f32(plan, options, layout, None, Some(d), out),
        _ => Err(Error::new(ErrorKind::Internal, "logits and gradient of different element types")),
    }
}

/// As [`run_f32`] for bfloat16 / binary16 logits: each block of rows is
/// widened (exactly) into a float32 scratch of its own — long rows of a
/// fused call chunk by chunk inside the scan, others whole — computed there
/// by the float32 code in place, and its gradient rounded to nearest even
/// (with streaming stores when large), so the results are the float32 call's
/// on the widened logits. A scratch holds one block (at most max(16384,
/// classes) floats); there are at most as many as blocks running at once,
/// allocated during the call and freed at its end.
fn run_half(
    plan: &Plan<'_>,
    options: &Options<'_>,
    layout: Layout,
    kind: Half,
    src: Option<&[u16]>,
    dst: Option<&mut [u16]>,
    out: RowOuts<'_>,
) -> Result<(f64, f64)> {
    let (rows, cols) = (plan.rows, plan.cols);
    let br = parallel::block_rows(cols);
    let want_argmax = out.argmax.is_some();
    let (ss, ds) = (layout.src_stride, layout.dst_stride);
    let blocks = blocks(rows, br, &layout, src, dst, out);
    let failed = AtomicBool::new(false);
    // A gradient much larger than the caches is written around them.
    let stream = rows.saturating_mul(cols) >= STREAM_MIN_ELEMS;
    // Scratches are reused: a block takes a free one, or allocates one (so
    // there are at most as many as blocks running at once) and returns it.
    let free: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
    let size = br.min(rows.max(1)) * cols;
    let work = |mut b: Block<'_, u16>| {
        let mut scratch = free.lock().ok().and_then(|mut f| f.pop()).unwrap_or_default();
        if scratch.is_empty() {
            if scratch.try_reserve_exact(size).is_err() {
                failed.store(true, Ordering::Relaxed);
                return (0.0, 0.0);
            }
            scratch.resize(size, 0.0f32);
        }
        let n = b.rows * cols;
        let acc = half_block(plan, (kind, stream), (ss, ds), want_argmax, &mut b, &mut scratch[..n]);
        if let Ok(mut f) = free.lock() {
            f.push(scratch);
        }
        acc
    };
    let sums = parallel::run(Exec::choose(options, rows, cols), blocks, work)?;
    if failed.load(Ordering::Relaxed) {
        return Err(Error::new(
            ErrorKind::AllocationFailed,
            format!("cannot allocate the float32 scratch of a block of {cols}-class rows"),
        ));
    }
    Ok(sums)
}

/// 16-bit gradients of at least this many values (8 MiB) are written with
/// streaming stores.
const STREAM_MIN_ELEMS: usize = 1 << 22;

/// Widens `rows` 16-bit rows (`stride` apart) into dense float32 rows.
fn widen_block(
    isa: kernels::Isa,
    kind: Half,
    (from, stride): (&[u16], usize),
    scratch: &mut [f32],
    rows: usize,
    cols: usize,
) {
    if stride == cols {
        // Dense rows: one conversion over the block (short rows stay vectorised).
        kernels::half::widen(isa, kind, from, scratch);
    } else {
        for k in 0..rows {
            kernels::half::widen(isa, kind, &from[k * stride..][..cols], &mut scratch[k * cols..][..cols]);
        }
    }
}

/// One block of [`run_half`] in `scratch` (`b.rows × cols` floats).
fn half_block(
    plan: &Plan<'_>,
    (kind, stream): (Half, bool),
    (ss, ds): (usize, usize),
    want_argmax: bool,
    b: &mut Block<'_, u16>,
    scratch: &mut [f32],
) -> (f64, f64) {
    let cols = plan.cols;
    let (from, stride) = match (b.src, b.dst.as_deref()) {
        (Some(s), _) => (s, ss),
        (None, Some(d)) => (d, ds),
        (None, None) => unreachable!("a call reads logits"),
    };
    // Long rows of a fused call widen chunk by chunk inside the scan; other
    // blocks are widened whole first.
    let in_row = plan.mode == Mode::Fused && !plan.short_path();
    if !in_row {
        widen_block(plan.isa, kind, (from, stride), scratch, b.rows, cols);
    }
    let grads = b.dst.is_some();
    let (src, dst) = if grads { (None, Some(&mut scratch[..])) } else { (Some(&scratch[..]), None) };
    let outs = (b.loss.take(), b.lse.take(), b.argmax.take());
    // The exp pass of the last row prefetches the next block's logits (the
    // float32 code prefetches by float, so the 16-bit rows are seen as
    // floats: the same bytes, reached in the first half of the pass).
    // SAFETY: every bit pattern is a valid f32, and `align_to` only hands out
    // the correctly aligned middle of the same memory, borrowed shared.
    let next = unsafe { b.next.align_to::<f32>().1 };
    let block = Block { first: b.first, rows: b.rows, src, next, dst, loss: outs.0, lse: outs.1, argmax: outs.2 };
    let in16 = in_row.then_some(Rows16 { kind, src: from, stride });
    let acc = block_work(plan, &Layout { src_stride: cols, dst_stride: cols }, want_argmax, block, in16);
    if let Some(d) = b.dst.as_deref_mut() {
        if ds == cols {
            kernels::half::narrow(plan.isa, kind, scratch, d, stream);
        } else {
            for k in 0..b.rows {
                kernels::half::narrow(plan.isa, kind, &scratch[k * cols..][..cols], &mut d[k * ds..][..cols], stream);
            }
        }
    }
    acc
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

fn split<T>(io: LogitsGrad<'_, T>) -> Result<Split<'_, T>> {
    match io {
        LogitsGrad::Separate { logits, grad } => {
            check_logits(&logits)?;
            Plan::check_logits("grad_logits", grad.data.len(), grad.rows, grad.cols, grad.stride)?;
            if (grad.rows, grad.cols) != (logits.rows, logits.cols) {
                return Err(Error::new(
                    ErrorKind::InvalidShape,
                    format!(
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
    let (rows, cols, layout, src, dst) = split(io)?;
    let plan = Plan::new(Mode::Backward, rows, cols, targets, options, Some(upstream))?;
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
    let (rows, cols, layout, src, dst) = split(io)?;
    let plan = Plan::new(Mode::Fused, rows, cols, targets, options, None)?;
    plan.check_out(&out)?;
    run_call(&plan, options, layout, src.map(T::view), Some(T::view_mut(dst)), out)
}

/// A validated class-index call whose logits exist only a chunk of rows at a
/// time (the fused linear call computes them chunk by chunk). Every check and
/// the mean's denominators come from the whole call; each chunk runs the same
/// row kernels as [`forward`] / [`forward_backward`].
pub(crate) struct Chunked<'a> {
    plan: Plan<'a>,
}

impl<'a> Chunked<'a> {
    /// Validates labels and options for `rows × cols` logits; `fused` chunks
    /// get their gradient, others only their forward outputs.
    pub(crate) fn new(fused: bool, rows: usize, cols: usize, labels: &'a [i32], options: &Options<'a>) -> Result<Self> {
        let mode = if fused { Mode::Fused } else { Mode::Forward };
        Ok(Chunked { plan: Plan::new(mode, rows, cols, Targets::Labels(labels), options, None)? })
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
