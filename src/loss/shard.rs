//! Vocabulary-sharded cross-entropy: each process holds a slice of the
//! classes of every row. Per row it computes [`ShardStats`] over its slice,
//! one all-reduce with [`merge_stats`] combines them (like an online
//! softmax), and then every process can compute the loss and the gradient of
//! its own slice. The semantics are the unsharded call's (the same `Plan`).
//!
//! Per row, over the shard's classes `j` (with `z'` the logits after the
//! softcap): `max = max z'_j`, `sum_exp = Σ exp(z'_j − max)`,
//! `target_logit = z'_y` if the label is in the shard (else 0), and, only
//! with label smoothing (else 0), `weighted_logit_sum = Σ w_j (z'_j − max)`
//! and `weight_sum = Σ w_j` (relative to the max, so that logits near ±1e4
//! lose nothing to cancellation; the merge rebases it).
//!
//! One job, over 500 lines: the sharded calls (statistics, merge, loss,
//! gradient) share the per-row statistics and the block walker.

use super::plan::{Mode, Plan};
use super::row::{Target, mass_times};
use super::scan::{RowIo, Scan, scan};
use super::types::*;
use crate::error::{ErrorKind, Result, fail};
use crate::kernels::{self, Coef, Grad, Io, Logit};

/// The per-row statistics of a shard, and of merged shards. Plain old data
/// (`#[repr(C)]`, five floats) so a message-passing library can reduce it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct ShardStats {
    /// Largest `z'` (NaN skipped; −inf when every value is −inf).
    pub max: f32,
    /// `Σ exp(z' − max)` (NaN when a value is NaN, or +inf without softcap).
    pub sum_exp: f32,
    /// `z'` at the row's label when the label is in the shard, else 0.
    pub target_logit: f32,
    /// `Σ w_j (z'_j − max)` over the classes with `w_j ≠ 0` when label
    /// smoothing is on (−inf if every value is −inf and some `w_j > 0`),
    /// else 0.
    pub weighted_logit_sum: f32,
    /// `Σ w_j` (class weights, or ones) when label smoothing is on, else 0.
    pub weight_sum: f32,
}

impl ShardStats {
    /// The statistics of a shard without classes: merging them into any
    /// others changes no bit (−0 is the additive identity).
    pub const EMPTY: ShardStats = ShardStats {
        max: f32::NEG_INFINITY,
        sum_exp: 0.0,
        target_logit: -0.0,
        weighted_logit_sum: -0.0,
        weight_sum: -0.0,
    };
}

/// Where a shard's classes sit among all classes.
#[derive(Clone, Copy, Debug)]
pub struct ShardLayout {
    /// Index of the shard's first class.
    pub class_offset: usize,
    /// Number of classes of the whole (unsharded) row.
    pub total_classes: usize,
}

/// The plan of the whole call (labels, weights and options against all
/// classes), after checking that the shard lies inside the row.
fn plan<'a>(
    mode: Mode,
    rows: usize,
    shard_classes: usize,
    layout: ShardLayout,
    labels: &'a [i32],
    options: &Options<'a>,
    upstream: Option<Upstream<'a>>,
) -> Result<Plan<'a>> {
    if layout.total_classes == 0 {
        return fail(ErrorKind::InvalidShape, "total_classes must be at least 1");
    }
    match layout.class_offset.checked_add(shard_classes) {
        Some(end) if end <= layout.total_classes => {}
        _ => {
            return fail(
                ErrorKind::InvalidShape,
                format_args!(
                    "shard of {shard_classes} classes at offset {} does not fit in {} classes",
                    layout.class_offset, layout.total_classes
                ),
            );
        }
    }
    Plan::new(mode, rows, layout.total_classes, Targets::Labels(labels), options, upstream)
}

/// Per-row statistics of a shard: `logits` holds classes
/// `[class_offset, class_offset + logits.cols)` of every row.
pub fn shard_stats(
    logits: Matrix<'_>,
    layout: ShardLayout,
    labels: &[i32],
    options: &Options<'_>,
    stats: &mut [ShardStats],
) -> Result<()> {
    check_shard("logits", logits.data.len(), logits.rows, logits.cols, logits.stride)?;
    let p = plan(Mode::Forward, logits.rows, logits.cols, layout, labels, options, None)?;
    super::plan::check_len("stats", stats.len(), logits.rows)?;
    if logits.cols == 0 {
        stats[..logits.rows].fill(ShardStats::EMPTY);
        return Ok(());
    }
    let (n, ls) = (logits.cols, logits.stride);
    let shape = (logits.rows, n);
    for_blocks(options, shape, Some((logits.data, ls)), None, &mut stats[..logits.rows], |b| {
        let src = b.src.unwrap_or(&[]);
        for (k, st) in b.stats.iter_mut().enumerate() {
            let row = &src[k * ls..][..n];
            let next = if k + 1 < b.rows { &src[(k + 1) * ls..][..n] } else { b.next };
            *st = row_stats(&p, layout, labels[b.first + k], (Some(row), None), next).0;
        }
    })
}

/// [`shard_stats`], keeping in `io`'s destination (`grad`, or the logits
/// themselves in place) what [`shard_backward_kept`] needs to make the
/// gradient without a second exp per logit: `exp(z'_j − max)` relative to
/// the shard's own max, or `tanh(z_j / cap)` under a softcap. The statistics
/// are the same as [`shard_stats`]'s.
pub fn shard_stats_keep(
    io: LogitsGrad<'_>,
    layout: ShardLayout,
    labels: &[i32],
    options: &Options<'_>,
    stats: &mut [ShardStats],
) -> Result<()> {
    let Pair { src, dst: kept, rows, cols: n, src_stride: ss } = split(io, ("logits", "kept"))?;
    let p = plan(Mode::Forward, rows, n, layout, labels, options, None)?;
    super::plan::check_len("stats", stats.len(), rows)?;
    if n == 0 {
        stats[..rows].fill(ShardStats::EMPTY);
        return Ok(());
    }
    let ks = kept.stride;
    let stream = src.is_some() && large(rows, ks);
    for_blocks(options, (rows, n), src.map(|s| (s, ss)), Some((kept.data, ks)), &mut stats[..rows], |b| {
        let dst_all = b.dst.expect("a kept block");
        for (k, st) in b.stats.iter_mut().enumerate() {
            let (row, dst, next) = row_pair((b.src, b.next), ss, &mut *dst_all, ks, n, k, b.rows);
            let dst = &mut dst[..n];
            let label = labels[b.first + k];
            if p.logit == Logit::Raw && n <= TWO_PASS_MAX {
                *st = keep_raw_row(&p, layout, label, (row, dst), next, stream);
                continue;
            }
            let (s, sc) = row_stats(&p, layout, label, (row, Some(&mut *dst)), next);
            *st = s;
            if sc.stored == Logit::Raw && sc.max != f32::NEG_INFINITY {
                // Chunk c holds exp(z − base_c): rebase every chunk to the max.
                for (c, start) in (0..n).step_by(sc.chunk).enumerate().filter(|&(c, _)| sc.chunk_base[c] != sc.max) {
                    let r = start..(start + sc.chunk).min(n);
                    let f = crate::fmath::exp(f64::from(sc.chunk_base[c]) - f64::from(sc.max)) as f32;
                    kernels::grad(p.isa, Io::InPlace(&mut dst[r]), scale_by(f));
                }
            }
        }
    })
}

/// Rows `first..first + rows` of a sharded call: their source (`None` in
/// place), destination and statistics.
struct RowBlock<'a, S> {
    first: usize,
    rows: usize,
    src: Option<&'a [f32]>,
    /// The next block's first row of the source (empty in place or for the
    /// last block), prefetched while this block's last row computes.
    next: &'a [f32],
    dst: Option<&'a mut [f32]>,
    stats: &'a mut [S],
}

/// Runs `work` on the blocks of `rows` rows (the unsharded calls' blocks)
/// on the call's threads or `parallel_for`. Rows are independent, so the
/// results do not depend on how the blocks run. `src` and `dst` are a
/// matrix and its row stride; `stats` holds one entry per row (or none).
fn for_blocks<'a, S: Send>(
    options: &Options<'_>,
    (rows, cols): (usize, usize),
    src: Option<(&'a [f32], usize)>,
    dst: Option<(&'a mut [f32], usize)>,
    stats: &'a mut [S],
    work: impl Fn(RowBlock<'a, S>) + Sync,
) -> Result<()> {
    let br = crate::parallel::block_rows(cols);
    let mut srcs = src.map(|(s, ss)| s.chunks(br.saturating_mul(ss)));
    let mut nexts = src.map(|(s, ss)| s.chunks(br.saturating_mul(ss)).skip(1).map(move |b| &b[..cols.min(b.len())]));
    let mut dsts = dst.map(|(d, ds)| d.chunks_mut(br.saturating_mul(ds)));
    let mut sts = stats.chunks_mut(br);
    let blocks = (0..rows.div_ceil(br)).map(move |k| RowBlock {
        first: k * br,
        rows: br.min(rows - k * br),
        src: srcs.as_mut().and_then(Iterator::next),
        next: nexts.as_mut().and_then(Iterator::next).unwrap_or(&[]),
        dst: dsts.as_mut().and_then(Iterator::next),
        stats: sts.next().unwrap_or_default(),
    });
    let exec = crate::parallel::Exec::choose(options.workers(), rows, cols);
    crate::parallel::run(exec, blocks, |b| {
        work(b);
        (0.0, 0.0)
    })
    .map(|_| ())
}

/// Raw rows of at most this many classes (256 KiB, well inside L2) are kept
/// in two passes: their max, then the exps relative to it, each stored once
/// (and so streamed past the caches into a large output). Longer rows take
/// the chunked scan, whose chunks are then rebased to the row's max.
const TWO_PASS_MAX: usize = 1 << 16;

/// Whether an output of `rows` rows `stride` floats apart is large enough
/// to be streamed.
fn large(rows: usize, stride: usize) -> bool {
    rows.saturating_mul(stride).saturating_mul(4) >= super::block::STREAM_MIN_BYTES
}

/// One raw row of [`shard_stats_keep`] in two passes (see [`TWO_PASS_MAX`]).
fn keep_raw_row(
    p: &Plan<'_>,
    layout: ShardLayout,
    label: i32,
    (src, dst): (Option<&[f32]>, &mut [f32]),
    next: &[f32],
    stream: bool,
) -> ShardStats {
    let (coef, label) = row_terms(p, layout, label, dst.len());
    let row: &[f32] = src.unwrap_or(dst);
    let max = kernels::max(p.isa, row, Logit::Raw);
    // Relative to 0 when every value is −inf (or NaN), as the scan does.
    let base = if max == f32::NEG_INFINITY { 0.0 } else { max };
    let zy = label.map(|y| kernels::logit_one(row[y], Logit::Raw).0);
    let dots = coef.map(|cf| kernels::coef_dot(p.isa, row, Logit::Raw, base, cf));
    let io = match src {
        Some(s) if stream => Io::Stream(s, dst),
        Some(s) => Io::Map(s, dst),
        None => Io::InPlace(dst),
    };
    // exp(−inf − 0) = 0 and a NaN makes NaN, so a shard of only −inf values
    // sums to 0 here without the scan's special case.
    let sum = kernels::sum_exp(p.isa, io, Logit::Raw, base, next);
    finish_stats(max, sum, dots, zy)
}

/// The gradient pass that multiplies stored values by `f`.
fn scale_by(f: f32) -> Grad<'static> {
    let coef = Coef { w: None, y: None, k1: 0.0, k0: 0.0 };
    Grad { logit: Logit::Raw, stored_exp: true, shift: 0.0, bounded: true, a: f, coef }
}

/// One row's statistics (and the scan that made them), reading `src` (or
/// `dst` in place) and, given `dst`, storing into it as the fused scan does.
fn row_stats(
    p: &Plan<'_>,
    layout: ShardLayout,
    label: i32,
    (src, mut dst): (Option<&[f32]>, Option<&mut [f32]>),
    next: &[f32],
) -> (ShardStats, Scan) {
    let n = src.map_or_else(|| dst.as_ref().map_or(0, |d| d.len()), <[f32]>::len);
    let (coef, label) = row_terms(p, layout, label, n);
    let io = match dst.as_deref_mut() {
        Some(dst) => RowIo::Store { src, dst },
        None => RowIo::Read(src.expect("a row to read")),
    };
    // One chunked pass, as the unsharded forward makes: max, Σexp, the
    // label's z' and, for smoothing, Σw and Σw(z' − max).
    let sc = scan(p.isa, io, p.logit, coef, label, (next, None));
    // The scan calls a row of only −inf (or NaN) values NaN; a shard of
    // only −inf values is just empty here (others hold the row's mass). A
    // NaN logit is NaN in what the scan stored too.
    let saw_nan = || dst.as_deref().or(src).is_some_and(|r| r.iter().any(|x| x.is_nan()));
    let sum = if sc.max == f32::NEG_INFINITY && !saw_nan() { 0.0 } else { sc.sum };
    let stats = finish_stats(sc.max, sum, coef.map(|_| (sc.total, sc.dot)), label.map(|_| sc.zy));
    (stats, sc)
}

/// The coefficients smoothing dots with a row of `n` classes (if on), and
/// the label's index in the shard (if it is there and not ignored).
fn row_terms<'p>(p: &Plan<'p>, layout: ShardLayout, label: i32, n: usize) -> (Option<Coef<'p>>, Option<usize>) {
    let off = layout.class_offset;
    let coef = (p.smoothing > 0.0).then(|| Coef { w: p.weights.map(|w| &w[off..off + n]), y: None, k1: 0.0, k0: 1.0 });
    let label = match label {
        y if y != p.ignore_index && (off..off + n).contains(&(y as usize)) => Some(y as usize - off),
        _ => None,
    };
    (coef, label)
}

/// A row's statistics from its max, Σexp, `(Σw, Σw(z' − max))` (with
/// smoothing) and the label's `z'` (when in the shard).
fn finish_stats(max: f32, sum: f64, dots: Option<(f64, f64)>, zy: Option<f32>) -> ShardStats {
    let (weighted_logit_sum, weight_sum) = match dots {
        // Only −inf values: −inf unless none of them carries weight.
        Some((total, _)) if max == f32::NEG_INFINITY => {
            (if total == 0.0 { 0.0 } else { f32::NEG_INFINITY }, total as f32)
        }
        Some((total, dot)) => (dot as f32, total as f32),
        None => (0.0, 0.0),
    };
    ShardStats { max, sum_exp: sum as f32, target_logit: zy.unwrap_or(0.0), weighted_logit_sum, weight_sum }
}

/// A checked source/destination pair.
struct Pair<'a> {
    /// The source rows (`None` in place: `dst` holds them).
    src: Option<&'a [f32]>,
    dst: MatrixMut<'a>,
    rows: usize,
    cols: usize,
    /// The source's row stride.
    src_stride: usize,
}

/// Checks a source/destination pair; `names` name them in errors.
fn split<'a>(io: LogitsGrad<'a>, (src_name, dst_name): (&str, &str)) -> Result<Pair<'a>> {
    let (src, dst, rows, n, ss) = match io {
        LogitsGrad::Separate { logits, grad } => {
            check_shard(src_name, logits.data.len(), logits.rows, logits.cols, logits.stride)?;
            if (grad.rows, grad.cols) != (logits.rows, logits.cols) {
                return fail(ErrorKind::InvalidShape, format_args!("{dst_name} and {src_name} differ in shape"));
            }
            (Some(logits.data), grad, logits.rows, logits.cols, logits.stride)
        }
        LogitsGrad::InPlace(m) => {
            let (r, c, s) = (m.rows, m.cols, m.stride);
            (None, m, r, c, s)
        }
    };
    check_shard(dst_name, dst.data.len(), rows, n, dst.stride)?;
    Ok(Pair { src, dst, rows, cols: n, src_stride: ss })
}

/// Checks a shard's matrix as [`Plan::check_logits`] does, except that a
/// shard may have no classes at all (more ranks than classes, or an uneven
/// split): then nothing of it is read or written.
fn check_shard(what: &str, len: usize, rows: usize, cols: usize, stride: usize) -> Result<()> {
    if cols == 0 { Ok(()) } else { Plan::check_logits(what, len, rows, cols, stride) }
}

/// Row `i` of a checked pair: its source (`None` in place), its destination
/// (from the row's start) and the next row to prefetch (of the source, or
/// of the destination in place; after the block's last row, `after`: the
/// next block's first row, or empty).
fn row_pair<'s: 'd, 'd>(
    (src, after): (Option<&'s [f32]>, &'s [f32]),
    ss: usize,
    dst: &'d mut [f32],
    ds: usize,
    n: usize,
    i: usize,
    rows: usize,
) -> (Option<&'s [f32]>, &'d mut [f32], &'d [f32]) {
    let has_next = i + 1 < rows;
    let (head, tail) = dst.split_at_mut(i * ds + n);
    let row = src.map(|s| &s[i * ss..][..n]);
    let next = match src {
        Some(s) if has_next => &s[(i + 1) * ss..][..n],
        None if has_next => &tail[ds - n..][..n],
        _ => after,
    };
    (row, &mut head[i * ds..], next)
}

/// Combines one shard's statistics into another's, row by row: associative
/// and commutative (up to float rounding), like an online softmax.
pub fn merge_stats(input: &[ShardStats], inout: &mut [ShardStats]) {
    for (a, b) in input.iter().zip(inout.iter_mut()) {
        *b = merge_one(*a, *b);
    }
}

/// The statistics of two disjoint sets of classes of one row, combined.
pub fn merge_one(a: ShardStats, b: ShardStats) -> ShardStats {
    let max = a.max.max(b.max);
    // An all −inf (or empty) part adds nothing; a NaN part makes NaN.
    let part = |s: &ShardStats| {
        if s.sum_exp.is_nan() {
            f64::NAN
        } else if s.sum_exp == 0.0 || s.max == f32::NEG_INFINITY {
            0.0
        } else {
            f64::from(s.sum_exp) * crate::fmath::exp(f64::from(s.max) - f64::from(max))
        }
    };
    // Σ w (z − max) rebased to the new max: + W·(old max − new max).
    let rebased = |s: &ShardStats| {
        let dot = f64::from(s.weighted_logit_sum);
        if s.weight_sum == 0.0 || s.max == max {
            dot
        } else {
            dot + f64::from(s.weight_sum) * (f64::from(s.max) - f64::from(max))
        }
    };
    ShardStats {
        max,
        sum_exp: (part(&a) + part(&b)) as f32,
        target_logit: a.target_logit + b.target_logit,
        weighted_logit_sum: (rebased(&a) + rebased(&b)) as f32,
        weight_sum: (f64::from(a.weight_sum) + f64::from(b.weight_sum)) as f32,
    }
}

/// `ln Σ exp(z')` of a row from merged statistics (NaN for a NaN row or one
/// whose every logit is −inf, as the unsharded call).
fn lse_of(s: &ShardStats) -> f64 {
    if s.sum_exp.is_nan() || s.max == f32::NEG_INFINITY || s.sum_exp == 0.0 {
        return f64::NAN;
    }
    f64::from(s.max) + crate::fmath::ln(f64::from(s.sum_exp))
}

/// The loss (1 value, or `rows` for `Reduction::None`) and optionally the
/// per-row log-sum-exp from merged statistics, as the unsharded forward.
pub fn shard_loss(
    merged: &[ShardStats],
    total_classes: usize,
    labels: &[i32],
    options: &Options<'_>,
    loss: &mut [f32],
    lse: Option<&mut [f32]>,
) -> Result<()> {
    let rows = merged.len();
    let layout = ShardLayout { class_offset: 0, total_classes };
    let p = plan(Mode::Forward, rows, 0, layout, labels, options, None)?;
    let out = ForwardOut { loss, lse, argmax: None };
    p.check_out(&out)?;
    let ForwardOut { loss, mut lse, .. } = out;
    let none = p.reduction == Reduction::None;
    let (mut ce_sum, mut z_sum) = (0.0f64, 0.0f64);
    let eps = f64::from(p.smoothing);
    for (i, s) in merged.iter().enumerate() {
        let l = lse_of(s);
        if let Some(out) = lse.as_deref_mut() {
            out[i] = l as f32;
        }
        let (ce, z) = match labels[i] {
            y if y == p.ignore_index => (0.0, 0.0),
            y => {
                let w_y = p.weight(y as usize);
                let mut ce = mass_times((1.0 - eps) * w_y, l - f64::from(s.target_logit));
                if eps > 0.0 {
                    // W·lse − Σ w z, both taken relative to the merged max.
                    let rel = p.weight_total * (l - f64::from(s.max)) - f64::from(s.weighted_logit_sum);
                    ce += eps / total_classes as f64 * rel;
                }
                (ce, f64::from(p.z_scale) * l * l)
            }
        };
        if none {
            loss[i] = if ce.is_nan() { f32::NAN } else { (ce + z) as f32 };
        }
        ce_sum += ce;
        z_sum += z;
    }
    if !none {
        let r = p.reduce(ce_sum, z_sum);
        loss[0] = if r.is_nan() { f32::NAN } else { r as f32 };
    }
    Ok(())
}

/// The gradient of a shard's logits, given merged statistics and the
/// upstream gradient (1 value, or `rows` for `Reduction::None`), as the
/// unsharded backward restricted to the shard's classes.
pub fn shard_backward(
    io: LogitsGrad<'_>,
    layout: ShardLayout,
    labels: &[i32],
    options: &Options<'_>,
    merged: &[ShardStats],
    grad_loss: &[f32],
) -> Result<()> {
    backward(io, layout, labels, options, (None, merged), grad_loss)
}

/// [`shard_backward`] from what [`shard_stats_keep`] kept (`io`'s source,
/// or its destination in place) instead of the logits, with that call's
/// statistics (`local`) beside the merged ones: one multiply per logit where
/// [`shard_backward`] takes an exp. The options must be the same as that
/// call's.
pub fn shard_backward_kept(
    io: LogitsGrad<'_>,
    layout: ShardLayout,
    labels: &[i32],
    options: &Options<'_>,
    (local, merged): (&[ShardStats], &[ShardStats]),
    grad_loss: &[f32],
) -> Result<()> {
    backward(io, layout, labels, options, (Some(local), merged), grad_loss)
}

fn backward(
    io: LogitsGrad<'_>,
    layout: ShardLayout,
    labels: &[i32],
    options: &Options<'_>,
    (local, merged): (Option<&[ShardStats]>, &[ShardStats]),
    grad_loss: &[f32],
) -> Result<()> {
    let names = if local.is_some() { ("kept", "grad_logits") } else { ("logits", "grad_logits") };
    let in_place = matches!(io, LogitsGrad::InPlace(_));
    let Pair { src, dst: grad, rows, cols: n, src_stride: ss } = split(io, names)?;
    super::plan::check_grad_buffer(options, in_place, grad.data.len(), rows, grad.stride)?;
    let up = Upstream { grad_loss, lse: None };
    let mut p = plan(Mode::Backward, rows, n, layout, labels, options, Some(up))?;
    super::plan::check_len("merged stats", merged.len(), rows)?;
    if let Some(local) = local {
        super::plan::check_len("local stats", local.len(), rows)?;
    }
    // What the source holds: the logits, or (kept) tanh(z/cap) under a
    // softcap and otherwise exp(z' − local max).
    let how = match (local, p.logit) {
        (Some(_), Logit::Softcap(cap)) => Logit::Tanh(cap),
        _ => p.logit,
    };
    let off = layout.class_offset;
    let ds = grad.stride;
    // A separate gradient larger than the caches is written around them.
    p.stream = src.is_some() && large(rows, ds);
    let p = p;
    if n == 0 {
        if p.zero_padding {
            super::block::zero_padding(grad.data, rows, 0, ds);
        }
        return Ok(());
    }
    let mut none: [ShardStats; 0] = [];
    for_blocks(options, (rows, n), src.map(|s| (s, ss)), Some((grad.data, ds)), &mut none[..], |b| {
        let dst_all = b.dst.expect("a gradient block");
        for k in 0..b.rows {
            let i = b.first + k;
            let s = &merged[i];
            let (row, dst, next) = row_pair((b.src, b.next), ss, &mut *dst_all, ds, n, k, b.rows);
            let dst = &mut dst[..n];
            let t = super::row::target(&p, i);
            let l = lse_of(s);
            if matches!(t, Target::Ignored) {
                if !p.accumulate {
                    dst.fill(0.0);
                }
                continue;
            }
            if l.is_nan() {
                dst.fill(f32::NAN);
                continue;
            }
            // p_j = exp(z'_j − max) / Σexp, with the merged (exact) max; kept
            // exps are relative to the shard's max: p_j = e_j·exp(local − max) / Σexp.
            let (a, coef, label_k) = p.grad_terms(i, t, p.weight_total, l);
            let coef = coef.slice(off..off + n);
            let g = match (local, how) {
                (Some(local), Logit::Raw) => {
                    let m = local[i].max;
                    let f =
                        if m == f32::NEG_INFINITY { 0.0 } else { crate::fmath::exp(f64::from(m) - f64::from(s.max)) };
                    let a = (a * f / f64::from(s.sum_exp)) as f32;
                    Grad { logit: how, stored_exp: true, shift: 0.0, bounded: true, a, coef }
                }
                _ => {
                    let a = (a / f64::from(s.sum_exp)) as f32;
                    Grad { logit: how, stored_exp: false, shift: s.max, bounded: true, a, coef }
                }
            };
            let ty = match t {
                Target::Label(y) if (off..off + n).contains(&y) => {
                    let x = row.map_or(dst[y - off], |r| r[y - off]);
                    Some((y - off, kernels::logit_one(x, how).1))
                }
                _ => None,
            };
            let fix = ty.and_then(|(local, ty)| p.label_fix(Target::Label(local), label_k, ty));
            p.put_grad(row, dst, g, kernels::Ahead::of(next), fix);
        }
        if p.zero_padding {
            super::block::zero_padding(dst_all, b.rows, n, ds);
        }
    })
}
