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

use super::plan::{Mode, Plan};
use super::row::{Target, mass_times};
use super::scan::{RowIo, scan};
use super::types::*;
use crate::kernels::{self, Coef, Grad, Io};

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

/// Where a shard's classes sit among all classes.
#[derive(Clone, Copy, Debug)]
pub struct ShardLayout {
    /// Index of the shard's first class.
    pub class_offset: usize,
    /// Number of classes of the whole (unsharded) row.
    pub total_classes: usize,
}

fn err<T>(kind: ErrorKind, msg: impl core::fmt::Display) -> Result<T> {
    Err(Error::new(kind, msg))
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
        return err(ErrorKind::InvalidShape, "total_classes must be at least 1");
    }
    match layout.class_offset.checked_add(shard_classes) {
        Some(end) if end <= layout.total_classes => {}
        _ => {
            return err(
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
    Plan::check_logits("logits", logits.data.len(), logits.rows, logits.cols, logits.stride)?;
    let p = plan(Mode::Forward, logits.rows, logits.cols, layout, labels, options, None)?;
    super::plan::check_len("stats", stats.len(), logits.rows)?;
    let (off, n) = (layout.class_offset, logits.cols);
    let coef = (p.smoothing > 0.0).then(|| Coef { w: p.weights.map(|w| &w[off..off + n]), y: None, k1: 0.0, k0: 1.0 });
    for (i, st) in stats[..logits.rows].iter_mut().enumerate() {
        let row = &logits.data[i * logits.stride..][..n];
        let next = logits.data.get((i + 1) * logits.stride..).map_or(&[][..], |r| &r[..n.min(r.len())]);
        let label = match labels[i] {
            y if y != p.ignore_index && (off..off + n).contains(&(y as usize)) => Some(y as usize - off),
            _ => None,
        };
        // One chunked pass, as the unsharded forward makes: max, Σexp, the
        // label's z' and, for smoothing, Σw and Σw(z' − max).
        let sc = scan(p.isa, RowIo::Read(row), p.logit, coef, label, (next, None));
        // The scan calls a row of only −inf (or NaN) values NaN; a shard of
        // only −inf values is just empty here (others hold the row's mass).
        let sum = if sc.max == f32::NEG_INFINITY && !row.iter().any(|x| x.is_nan()) { 0.0 } else { sc.sum };
        let (weighted_logit_sum, weight_sum) = match coef {
            // Only −inf values: −inf unless none of them carries weight.
            Some(_) if sc.max == f32::NEG_INFINITY => {
                (if sc.total == 0.0 { 0.0 } else { f32::NEG_INFINITY }, sc.total as f32)
            }
            Some(_) => (sc.dot as f32, sc.total as f32),
            None => (0.0, 0.0),
        };
        let target_logit = if label.is_some() { sc.zy } else { 0.0 };
        *st = ShardStats { max: sc.max, sum_exp: sum as f32, target_logit, weighted_logit_sum, weight_sum };
    }
    Ok(())
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
    let (src, grad, rows, n, ss) = match io {
        LogitsGrad::Separate { logits, grad } => {
            Plan::check_logits("logits", logits.data.len(), logits.rows, logits.cols, logits.stride)?;
            if (grad.rows, grad.cols) != (logits.rows, logits.cols) {
                return err(ErrorKind::InvalidShape, "grad_logits and logits differ in shape");
            }
            (Some(logits.data), grad, logits.rows, logits.cols, logits.stride)
        }
        LogitsGrad::InPlace(m) => {
            let (r, c, s) = (m.rows, m.cols, m.stride);
            (None, m, r, c, s)
        }
    };
    Plan::check_logits("grad_logits", grad.data.len(), rows, n, grad.stride)?;
    let up = Upstream { grad_loss, lse: None };
    let p = plan(Mode::Backward, rows, n, layout, labels, options, Some(up))?;
    super::plan::check_len("merged stats", merged.len(), rows)?;
    let off = layout.class_offset;
    let ds = grad.stride;
    for (i, s) in merged[..rows].iter().enumerate() {
        let dst = &mut grad.data[i * ds..][..n];
        let t = super::row::target(&p, i);
        let l = lse_of(s);
        if matches!(t, Target::Ignored) {
            dst.fill(0.0);
            continue;
        }
        if l.is_nan() {
            dst.fill(f32::NAN);
            continue;
        }
        // p_j = exp(z'_j − max) / Σexp, with the merged (exact) max.
        let (a, coef, label_k) = p.grad_terms(i, t, p.weight_total, l);
        let g = Grad {
            logit: p.logit,
            stored_exp: false,
            shift: s.max,
            bounded: true,
            a: (a / f64::from(s.sum_exp)) as f32,
            coef: coef.slice(off..off + n),
        };
        let ty = match t {
            Target::Label(y) if (off..off + n).contains(&y) => {
                let x = match src {
                    Some(sv) => sv[i * ss + y - off],
                    None => dst[y - off],
                };
                Some((y - off, kernels::logit_one(x, p.logit).1))
            }
            _ => None,
        };
        match src {
            Some(sv) => kernels::grad(p.isa, Io::Map(&sv[i * ss..][..n], dst), g),
            None => kernels::grad(p.isa, Io::InPlace(dst), g),
        }
        if let Some((local, ty)) = ty {
            p.fix_label(Target::Label(local), dst, label_k, ty);
        }
    }
    Ok(())
}
