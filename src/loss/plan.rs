//! Validation of a whole call, and the per-call constants rows need.
//!
//! Everything that can be wrong is found here, before any output is written.

use super::types::*;
use crate::error::{ErrorKind, Result, fail};
use crate::kernels::{Isa, Logit};

/// What a call computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Forward,
    Backward,
    Fused,
}

/// Validated inputs and per-call constants.
#[derive(Clone)]
pub(crate) struct Plan<'a> {
    pub mode: Mode,
    pub rows: usize,
    pub cols: usize,
    pub targets: Targets<'a>,
    pub weights: Option<&'a [f32]>,
    pub ignore_index: i32,
    pub reduction: Reduction,
    pub smoothing: f32,
    pub z_scale: f32,
    /// `Raw`, or `Softcap(cap)` when a softcap is set.
    pub logit: Logit,
    /// Σ of the class weights (classes when unweighted).
    pub weight_total: f64,
    /// Denominators of the two parts of a mean: the cross-entropy part
    /// (Σ target-class weights of kept rows, or rows for probabilities) and
    /// the z-loss part (kept rows).
    pub ce_denominator: f64,
    pub z_denominator: f64,
    /// `(1/ce_denominator, 1/z_denominator)` for a mean, else `(1, 1)`,
    /// times the gradient scale.
    pub mean_scales: (f64, f64),
    pub upstream: Option<Upstream<'a>>,
    pub isa: Isa,
    /// Write a separate float32 gradient with streaming stores (it is much
    /// larger than the caches and nothing reads it back).
    pub stream: bool,
    /// Add the gradient into the destination (`Options::grad_accumulate`).
    pub accumulate: bool,
    /// Zero the gradient rows' padding (`Options::grad_zero_padding`).
    pub zero_padding: bool,
}

/// Elements a `rows × cols` matrix with `stride` spans.
pub(crate) fn extent(rows: usize, cols: usize, stride: usize) -> Option<usize> {
    if rows == 0 {
        return Some(0);
    }
    (rows - 1).checked_mul(stride)?.checked_add(cols)
}

/// Checks `cols ≥ 1`, `stride ≥ cols` and that the extent is addressable.
pub(crate) fn check_shape(what: &str, rows: usize, cols: usize, stride: usize) -> Result<usize> {
    if cols == 0 {
        return fail(ErrorKind::InvalidShape, "classes must be at least 1");
    }
    if stride < cols {
        return fail(
            ErrorKind::InvalidShape,
            format_args!("{what} row stride {stride} is smaller than classes {cols}"),
        );
    }
    match extent(rows, cols, stride) {
        Some(n) if n <= isize::MAX as usize / 4 => Ok(n),
        _ => fail(
            ErrorKind::SizeOverflow,
            format_args!("{what}: {rows} rows with stride {stride} overflow the address space"),
        ),
    }
}

pub(crate) fn check_matrix(what: &str, len: usize, rows: usize, cols: usize, stride: usize) -> Result<()> {
    let need = check_shape(what, rows, cols, stride)?;
    if len < need {
        return fail(
            ErrorKind::InvalidShape,
            format_args!("{what} holds {len} values but {rows} rows of stride {stride} need {need}"),
        );
    }
    Ok(())
}

pub(crate) fn check_len(what: &str, len: usize, need: usize) -> Result<()> {
    if len < need {
        return fail(ErrorKind::InvalidShape, format_args!("{what} holds {len} values but {need} are needed"));
    }
    Ok(())
}

fn check_options(o: &Options<'_>, cols: usize) -> Result<()> {
    if !(0.0..=1.0).contains(&o.label_smoothing) {
        return fail(
            ErrorKind::InvalidArgument,
            format_args!("label_smoothing {} is outside [0, 1]", o.label_smoothing),
        );
    }
    if !(o.z_loss_scale >= 0.0 && o.z_loss_scale.is_finite()) {
        return fail(
            ErrorKind::InvalidArgument,
            format_args!("z_loss_scale {} must be finite and >= 0", o.z_loss_scale),
        );
    }
    if !(o.logit_softcap >= 0.0 && o.logit_softcap.is_finite()) {
        return fail(
            ErrorKind::InvalidArgument,
            format_args!("logit_softcap {} must be finite and >= 0 (0 = off)", o.logit_softcap),
        );
    }
    if !o.grad_scale.is_finite() {
        return fail(ErrorKind::InvalidArgument, format_args!("grad_scale {} must be finite", o.grad_scale));
    }
    if let Some(w) = o.class_weights {
        check_len("class_weights", w.len(), cols)?;
    }
    Ok(())
}

/// Checks a gradient buffer's arrangement against the gradient options:
/// accumulating needs a buffer of its own, and zeroing the padding needs
/// every row's padding, the last one's included.
pub(crate) fn check_grad_buffer(o: &Options<'_>, in_place: bool, len: usize, rows: usize, stride: usize) -> Result<()> {
    if o.grad_accumulate && in_place {
        return fail(
            ErrorKind::InvalidArgument,
            "grad_accumulate needs a gradient buffer of its own (the gradient cannot accumulate over the logits)",
        );
    }
    if o.grad_zero_padding {
        match rows.checked_mul(stride) {
            Some(need) if need <= len => {}
            Some(need) => {
                return fail(
                    ErrorKind::InvalidShape,
                    format_args!(
                        "grad_zero_padding: the gradient holds {len} values but {rows} rows of stride {stride} need {need}"
                    ),
                );
            }
            None => return fail(ErrorKind::SizeOverflow, "grad_zero_padding: rows x stride overflows"),
        }
    }
    Ok(())
}

/// Validates labels and returns (Σ target-class weights of kept rows, kept rows).
fn check_labels(labels: &[i32], rows: usize, cols: usize, o: &Options<'_>) -> Result<(f64, f64)> {
    check_len("labels", labels.len(), rows)?;
    let labels = &labels[..rows];
    // Branch-free counts in 32-bit lanes (vectorized), then the first bad
    // row if any. `y as u32 >= limit` is `y < 0 || y >= cols` (for classes
    // past i32::MAX, every label that is not negative is in range).
    let ignore = o.ignore_index;
    let limit = cols.min(1 << 31) as u32;
    let (mut kept, mut bad) = (0usize, false);
    for chunk in labels.chunks(1 << 16) {
        let (k, b) = chunk.iter().fold((0u32, 0u32), |(k, b), &y| {
            let keep = u32::from(y != ignore);
            (k + keep, b | (keep & u32::from(y as u32 >= limit)))
        });
        kept += k as usize;
        bad |= b != 0;
    }
    if bad {
        let (i, &y) = labels.iter().enumerate().find(|&(_, &y)| y != ignore && y as u32 >= limit).expect("a bad row");
        return fail(ErrorKind::LabelOutOfRange, format_args!("label {y} at row {i} is outside [0, {cols})"));
    }
    let weight_sum = match o.class_weights {
        Some(w) => labels.iter().filter(|&&y| y != ignore).fold(0.0f64, |s, &y| s + f64::from(w[y as usize])),
        None => kept as f64,
    };
    Ok((weight_sum, kept as f64))
}

impl<'a> Plan<'a> {
    /// Validates a call on a `rows × cols` logits matrix.
    pub(crate) fn new(
        mode: Mode,
        rows: usize,
        cols: usize,
        targets: Targets<'a>,
        o: &Options<'a>,
        upstream: Option<Upstream<'a>>,
    ) -> Result<Self> {
        check_options(o, cols)?;
        let (ce_denominator, z_denominator) = match targets {
            Targets::Labels(labels) => check_labels(labels, rows, cols, o)?,
            Targets::Probs(t) => {
                check_matrix("targets", t.data.len(), t.rows, t.cols, t.stride)?;
                if t.rows != rows || t.cols != cols {
                    return fail(
                        ErrorKind::InvalidShape,
                        format_args!("targets are {}x{} but logits are {rows}x{cols}", t.rows, t.cols),
                    );
                }
                (rows as f64, rows as f64)
            }
        };
        if let Some(up) = upstream {
            let n = if o.reduction == Reduction::None { rows } else { 1 };
            check_len("grad_loss", up.grad_loss.len(), n)?;
            if let Some(l) = up.lse {
                check_len("lse", l.len(), rows)?;
            }
        }
        let weights = o.class_weights.map(|w| &w[..cols]);
        let weight_total = weights.map_or(cols as f64, |w| w.iter().map(|&x| f64::from(x)).sum());
        let logit = if o.logit_softcap > 0.0 { Logit::Softcap(o.logit_softcap) } else { Logit::Raw };
        Ok(Plan {
            mode,
            rows,
            cols,
            targets,
            weights,
            ignore_index: o.ignore_index,
            reduction: o.reduction,
            smoothing: o.label_smoothing,
            z_scale: o.z_loss_scale,
            logit,
            weight_total,
            ce_denominator,
            z_denominator,
            mean_scales: {
                let k = f64::from(o.grad_scale);
                match o.reduction {
                    Reduction::Mean => (k / ce_denominator, k / z_denominator),
                    Reduction::Sum | Reduction::None => (k, k),
                }
            },
            upstream,
            isa: Isa::active(),
            stream: false,
            accumulate: o.grad_accumulate,
            zero_padding: o.grad_zero_padding,
        })
    }

    /// Checks a logits matrix against the plan's shape.
    pub(crate) fn check_logits(what: &str, len: usize, rows: usize, cols: usize, stride: usize) -> Result<()> {
        check_matrix(what, len, rows, cols, stride)
    }

    /// Checks the forward outputs' lengths.
    pub(crate) fn check_out(&self, out: &ForwardOut<'_>) -> Result<()> {
        let n = if self.reduction == Reduction::None { self.rows } else { 1 };
        check_len("loss", out.loss.len(), n)?;
        if let Some(l) = &out.lse {
            check_len("lse", l.len(), self.rows)?;
        }
        if let Some(a) = &out.argmax {
            check_len("argmax", a.len(), self.rows)?;
        }
        Ok(())
    }

    /// Scale of the (cross-entropy, z-loss) parts of row `i`'s gradient:
    /// the upstream gradient over the mean's denominators.
    #[inline]
    pub(crate) fn grad_scales(&self, i: usize) -> (f64, f64) {
        let g = match self.upstream {
            Some(up) => f64::from(up.grad_loss[if self.reduction == Reduction::None { i } else { 0 }]),
            None => 1.0,
        };
        (g * self.mean_scales.0, g * self.mean_scales.1)
    }

    /// Combines the (cross-entropy, z-loss) sums of all rows into the reduced loss.
    pub(crate) fn reduce(&self, ce: f64, z: f64) -> f64 {
        let z_part = |d: f64| if self.z_scale > 0.0 { z / d } else { 0.0 };
        match self.reduction {
            Reduction::Mean => ce / self.ce_denominator + z_part(self.z_denominator),
            Reduction::Sum | Reduction::None => ce + z_part(1.0),
        }
    }
}
