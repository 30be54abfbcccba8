//! Blocks of rows: a call's buffers split into blocks of consecutive rows
//! (which depend only on the shape), each run by the row code on whichever
//! thread takes it, with its per-row outputs written in row order.

use super::plan::{Mode, Plan};
use super::row;
use super::scan::Widen;
use super::types::{Half, Options};
use crate::error::Result;
use crate::kernels::Ahead;
use crate::parallel::{self, Exec};

/// Outputs of at least this many bytes (8 MiB, beyond the caches), which
/// nothing reads back soon, are written with streaming stores.
pub(crate) const STREAM_MIN_BYTES: usize = 8 << 20;

/// A block of consecutive rows and the slices of every buffer it touches;
/// `T` is the logits' element type (`f32`, or `u16` for 16-bit logits).
pub(super) struct Block<'a, T = f32> {
    pub first: usize,
    pub rows: usize,
    pub src: Option<&'a [T]>,
    /// The next block's logits (empty in place or for the last block),
    /// prefetched while this block's last row computes.
    pub next: &'a [T],
    pub dst: Option<&'a mut [T]>,
    pub loss: Option<&'a mut [f32]>,
    pub lse: Option<&'a mut [f32]>,
    pub argmax: Option<&'a mut [i32]>,
}

/// Splits a call's buffers into blocks of `br` rows, in order.
pub(super) fn blocks<'a, T>(
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

pub(super) fn canonical(x: f64) -> f32 {
    if x.is_nan() { f32::NAN } else { x as f32 }
}

/// Splits `s` into pieces of `n`, or yields `None` forever.
fn pieces<T>(s: Option<&mut [T]>, n: usize) -> impl Iterator<Item = Option<&mut [T]>> {
    let mut it = s.map(|s| s.chunks_mut(n));
    core::iter::from_fn(move || Some(it.as_mut().and_then(Iterator::next)))
}

pub(super) struct Layout {
    pub src_stride: usize,
    pub dst_stride: usize,
}

/// Per-row outputs of a call (each optional).
#[derive(Default)]
pub(crate) struct RowOuts<'a> {
    pub loss: Option<&'a mut [f32]>,
    pub lse: Option<&'a mut [f32]>,
    pub argmax: Option<&'a mut [i32]>,
}

/// 16-bit logits of a block's rows (`stride` apart), which a fused call's
/// long rows widen into their scratch rows as the scan reaches each chunk.
pub(super) struct Rows16<'a> {
    pub kind: Half,
    pub src: &'a [u16],
    pub stride: usize,
}

/// Runs one block of float32 rows and returns its (cross-entropy, z-loss)
/// sums; per-row outputs are written in row order (the order of the sums).
pub(super) fn block_work(
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
        return plan.short_block(layout, want_argmax, &mut b);
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
pub(super) fn run_f32(
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
    parallel::run(Exec::choose(options.workers(), rows, cols), blocks, work)
}
