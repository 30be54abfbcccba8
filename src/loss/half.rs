//! 16-bit logits (std builds): each block of rows runs the float32 code in a
//! float32 scratch allocated for the call.

use super::block::{Block, Layout, RowOuts, Rows16, STREAM_MIN_BYTES, block_work, blocks, zero_padding};
use super::plan::{Mode, Plan};
use super::row;
use super::types::Half;
use super::types::Options;
use crate::error::{ErrorKind, Result, fail};
use crate::kernels;
use crate::parallel::{self, Exec};

/// As [`run_f32`] for bfloat16 / binary16 logits: each block of rows is
/// widened (exactly) into a float32 scratch of its own — long rows of a
/// fused call chunk by chunk inside the scan, others whole — computed there
/// by the float32 code in place, and its gradient rounded to nearest even
/// (with streaming stores when large), so the results are the float32 call's
/// on the widened logits. A scratch holds one block (at most max(16384,
/// classes) floats); there are at most as many as blocks running at once,
/// allocated during the call and freed at its end.
pub(super) fn run_half(
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
    let failed = std::sync::atomic::AtomicBool::new(false);
    // A gradient much larger than the caches is written around them.
    let stream = rows.saturating_mul(cols).saturating_mul(2) >= STREAM_MIN_BYTES;
    // Scratches are reused: a block takes a free one, or allocates one (so
    // there are at most as many as blocks running at once) and returns it.
    let free: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());
    let size = br.min(rows.max(1)) * cols;
    // The float32 code overwrites its dense scratch; accumulating and the
    // padding concern only the 16-bit gradient.
    let inner = Plan { accumulate: false, zero_padding: false, ..plan.clone() };
    let work = |mut b: Block<'_, u16>| {
        let mut scratch = free.lock().ok().and_then(|mut f| f.pop()).unwrap_or_default();
        if scratch.is_empty() {
            if scratch.try_reserve_exact(size).is_err() {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                return (0.0, 0.0);
            }
            scratch.resize(size, 0.0f32);
        }
        let n = b.rows * cols;
        let acc = half_block((plan, &inner), (kind, stream), (ss, ds), want_argmax, &mut b, &mut scratch[..n]);
        if let Ok(mut f) = free.lock() {
            f.push(scratch);
        }
        acc
    };
    let sums = parallel::run(Exec::choose(options.workers(), rows, cols), blocks, work)?;
    if failed.load(std::sync::atomic::Ordering::Relaxed) {
        return fail(
            ErrorKind::AllocationFailed,
            format_args!("cannot allocate the float32 scratch of a block of {cols}-class rows"),
        );
    }
    Ok(sums)
}

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

/// One block of [`run_half`] in `scratch` (`b.rows × cols` floats): the
/// float32 rows run under `inner` (the call's plan without the 16-bit
/// gradient's options), then the gradient is rounded into place.
fn half_block(
    (plan, inner): (&Plan<'_>, &Plan<'_>),
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
    let acc = block_work(inner, &Layout { src_stride: cols, dst_stride: cols }, want_argmax, block, in16);
    if let Some(d) = b.dst.as_deref_mut() {
        if plan.accumulate {
            for k in (0..b.rows).filter(|&k| !matches!(row::target(plan, b.first + k), row::Target::Ignored)) {
                narrow_add(plan.isa, kind, &scratch[k * cols..][..cols], &mut d[k * ds..][..cols]);
            }
        } else if ds == cols {
            kernels::half::narrow(plan.isa, kind, scratch, d, stream);
        } else {
            for k in 0..b.rows {
                kernels::half::narrow(plan.isa, kind, &scratch[k * cols..][..cols], &mut d[k * ds..][..cols], stream);
            }
        }
        if plan.zero_padding {
            zero_padding(d, b.rows, cols, ds);
        }
    }
    acc
}

/// `dst ← round(widen(dst) + g)`: a 16-bit gradient row accumulated, a
/// piece at a time through a stack buffer (the widening is exact and the
/// sum one float32 addition, so every path gives the same bits).
fn narrow_add(isa: kernels::Isa, kind: Half, g: &[f32], dst: &mut [u16]) {
    const PIECE: usize = 1024;
    let mut buf = [0.0f32; PIECE];
    for (g, d) in g.chunks(PIECE).zip(dst.chunks_mut(PIECE)) {
        let old = &mut buf[..g.len()];
        kernels::half::widen(isa, kind, d, old);
        for (o, &x) in old.iter_mut().zip(g) {
            *o += x;
        }
        kernels::half::narrow(isa, kind, old, d, false);
    }
}
