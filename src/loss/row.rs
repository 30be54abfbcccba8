//! One row: the semantics of the loss and its gradient, composed from the
//! kernel passes.
//!
//! Per kept row, with `L = ln Σ_j exp(z'_j − m)`, `lse = m + L`, weights `w`
//! (ones if absent), smoothing `ε` over `C` classes:
//! - labels: `ce = (1−ε)·w_y·(L − (z'_y − m)) + ε/C·(W·L − Σ_j w_j (z'_j − m))`, `W = Σ w`;
//! - probabilities `y`: with `c_j = w_j((1−ε) y_j + ε/C)`, `ce = T·L − Σ_j c_j (z'_j − m)`, `T = Σ c`;
//! - z-loss adds `s·lse²`.
//!
//! The gradient is `∂ce/∂z'_j = (coef)·p_j − c_j` (labels add `−(1−ε) w_y` at
//! `y`), plus `2·s·lse·p_j`, times `1 − t_j²` under a softcap.

use super::plan::{Mode, Plan};
use super::scan::{RowIo, Scan, Widen, scan};
use super::types::Targets;
use crate::kernels::{self, Coef, Grad, Io, Logit};

/// What a row contributes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RowOut {
    /// Cross-entropy part (0 for an ignored row).
    pub ce: f64,
    /// z-loss part (0 for an ignored row).
    pub z: f64,
    pub lse: f32,
    pub argmax: i32,
}

/// The row's target: a kept label, an ignored one, or a probability row.
#[derive(Clone, Copy)]
pub(super) enum Target<'a> {
    Label(usize),
    Ignored,
    Probs(&'a [f32]),
}

/// `mass · nll` with xent's `0 · log 0 = 0`: a label class that carries no
/// mass (zero weight, or smoothing 1) adds nothing even when its logit is
/// −inf (`nll` = +inf), as the smoothing and probability-target dots already
/// treat every class without mass. A NaN row stays NaN.
#[inline]
pub(super) fn mass_times(mass: f64, nll: f64) -> f64 {
    if mass == 0.0 && !nll.is_nan() { 0.0 } else { mass * nll }
}

#[inline]
pub(super) fn target<'a>(p: &Plan<'a>, i: usize) -> Target<'a> {
    match p.targets {
        Targets::Labels(l) if l[i] == p.ignore_index => Target::Ignored,
        Targets::Labels(l) => Target::Label(l[i] as usize),
        Targets::Probs(t) => Target::Probs(&t.data[i * t.stride..i * t.stride + p.cols]),
    }
}

impl Plan<'_> {
    #[inline]
    pub(super) fn weight(&self, y: usize) -> f64 {
        self.weights.map_or(1.0, |w| f64::from(w[y]))
    }

    #[inline]
    fn eps_per_class(&self) -> f64 {
        f64::from(self.smoothing) / self.cols as f64
    }

    /// Coefficients `c_j` of the loss (scaled by `k`) for a target.
    #[inline]
    fn coef<'r>(&'r self, t: Target<'r>, k: f64) -> Coef<'r> {
        match t {
            Target::Probs(y) => Coef {
                w: self.weights,
                y: Some(y),
                k1: (k * (1.0 - f64::from(self.smoothing))) as f32,
                k0: (k * self.eps_per_class()) as f32,
            },
            _ => Coef { w: self.weights, y: None, k1: 0.0, k0: k as f32 },
        }
    }

    /// The unscaled coefficients the loss needs dotted with `z' − max`
    /// (smoothing or probability targets), if any.
    fn dot_coef<'r>(&'r self, t: Target<'r>) -> Option<Coef<'r>> {
        match t {
            Target::Probs(_) => Some(self.coef(t, 1.0)),
            Target::Label(_) if self.smoothing > 0.0 => Some(self.coef(t, 1.0)),
            _ => None,
        }
    }

    /// Scans the row (max, Σexp, dots, label logit); see [`scan`].
    fn scan(&self, t: Target<'_>, io: RowIo<'_, '_>, next: &[f32], half: Option<Widen<'_>>) -> Scan {
        let label = match t {
            Target::Label(y) => Some(y),
            _ => None,
        };
        let mut s = scan(self.isa, io, self.logit, self.dot_coef(t), label, (next, half));
        if !matches!(t, Target::Probs(_)) {
            s.total = self.weight_total;
        }
        s
    }

    /// Cross-entropy of a kept row from `L`, `z'_y − m` and the dots.
    #[inline]
    fn ce(&self, t: Target<'_>, l: f64, zy_minus_m: f64, (total, dot): (f64, f64)) -> f64 {
        match t {
            Target::Label(y) => {
                let keep = 1.0 - f64::from(self.smoothing);
                let mut ce = mass_times(keep * self.weight(y), l - zy_minus_m);
                if self.smoothing > 0.0 {
                    ce += self.eps_per_class() * (total * l - dot);
                }
                ce
            }
            Target::Probs(_) => total * l - dot,
            Target::Ignored => 0.0,
        }
    }

    /// The gradient's `p_j` coefficient before dividing by Σexp, and the
    /// scaled coefficients `c_j`; the label correction is returned apart.
    #[inline]
    pub(super) fn grad_terms<'r>(&'r self, i: usize, t: Target<'r>, total: f64, lse: f64) -> (f64, Coef<'r>, f64) {
        let (ce_k, z_k) = self.grad_scales(i);
        let z_part = z_k * 2.0 * f64::from(self.z_scale) * lse;
        match t {
            Target::Label(y) => {
                let keep = 1.0 - f64::from(self.smoothing);
                let a = ce_k * (keep * self.weight(y) + self.eps_per_class() * total) + z_part;
                let coef = self.coef(t, ce_k * self.eps_per_class());
                (a, coef, ce_k * keep * self.weight(y))
            }
            _ => (ce_k * total + z_part, self.coef(t, ce_k), 0.0),
        }
    }

    #[inline]
    fn z_loss(&self, lse: f64) -> f64 {
        f64::from(self.z_scale) * lse * lse
    }

    pub(super) fn argmax(&self, row: &[f32], want: bool) -> i32 {
        if want { kernels::argmax(self.isa, row) as i32 } else { 0 }
    }

    /// Forward only: nothing is written but the returned values.
    pub(crate) fn forward_row(&self, i: usize, row: &[f32], next: &[f32], want_argmax: bool) -> RowOut {
        let t = target(self, i);
        let argmax = self.argmax(row, want_argmax);
        let s = self.scan(t, RowIo::Read(row), next, None);
        self.finish(t, &s, argmax)
    }

    fn finish(&self, t: Target<'_>, s: &Scan, argmax: i32) -> RowOut {
        let l = if s.sum.is_nan() { f32::NAN } else { kernels::log_one(s.sum as f32) };
        self.finish_with(t, s.max, s.sum, l, s.zy, (s.total, s.dot), argmax)
    }

    /// A row's outputs from its max, Σexp, `L = ln Σexp` (the kernels'
    /// float32 log, so every path agrees), label logit and dots.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn finish_with(
        &self,
        t: Target<'_>,
        max: f32,
        sum: f64,
        l: f32,
        zy: f32,
        dots: (f64, f64),
        argmax: i32,
    ) -> RowOut {
        if sum.is_nan() {
            let ce = if matches!(t, Target::Ignored) { 0.0 } else { f64::NAN };
            return RowOut { ce, z: ce, lse: f32::NAN, argmax };
        }
        let l = f64::from(l);
        let lse = f64::from(max) + l;
        let (ce, z) = match t {
            Target::Ignored => (0.0, 0.0),
            _ => {
                let zy = f64::from(zy) - f64::from(max);
                (self.ce(t, l, zy, dots), self.z_loss(lse))
            }
        };
        RowOut { ce, z, lse: lse as f32, argmax }
    }

    /// `lse` of a row as the forward computes it.
    fn lse_of(max: f32, sum: f64) -> f64 {
        f64::from(max) + f64::from(kernels::log_one(sum as f32))
    }

    /// Forward and gradient of one row. `src` is the logits row, or `None`
    /// when `dst` holds the logits (in place) or `half` does (16-bit logits,
    /// widened into `dst` as the scan goes); `next` is the next row to
    /// prefetch (or empty), and `grad_next` the next row of the gradient,
    /// prefetched during the gradient pass so that the next scan's stores
    /// find it in the caches.
    pub(crate) fn fused_row(
        &self,
        i: usize,
        src: Option<&[f32]>,
        dst: &mut [f32],
        (next, mut half, grad_next): (&[f32], Option<Widen<'_>>, kernels::Ahead),
        want_argmax: bool,
    ) -> RowOut {
        debug_assert_eq!(self.mode, Mode::Fused);
        let t = target(self, i);
        if let Some(h) = half.filter(|_| want_argmax) {
            // The argmax pass reads the whole row first: widen it all.
            kernels::half::widen(self.isa, h.kind, h.src, dst);
            half = None;
        }
        let argmax = self.argmax(src.unwrap_or(dst), want_argmax);
        // One pass: max and Σexp chunk by chunk; dst now holds exp(z − base)
        // per chunk (or tanh(z/cap) under a softcap).
        let s = self.scan(t, RowIo::Store { src, dst }, next, half);
        let out = self.finish(t, &s, argmax);
        if matches!(t, Target::Ignored) {
            dst.fill(0.0);
        } else if s.sum.is_nan() {
            dst.fill(f32::NAN);
        } else {
            let lse = Self::lse_of(s.max, s.sum);
            let (a, coef, label_k) = self.grad_terms(i, t, s.total, lse);
            match s.stored {
                Logit::Tanh(_) => {
                    let g = Grad {
                        logit: s.stored,
                        stored_exp: false,
                        shift: s.max,
                        bounded: true,
                        a: (a / s.sum) as f32,
                        coef,
                    };
                    kernels::grad_ahead(self.isa, Io::InPlace(dst), g, grad_next);
                }
                _ => {
                    // Chunk c's exps are relative to its base: rescale by exp(base − max).
                    for (c, start) in (0..dst.len()).step_by(s.chunk).enumerate() {
                        let r = start..(start + s.chunk).min(dst.len());
                        let rescale = crate::fmath::exp(f64::from(s.chunk_base[c]) - f64::from(s.max));
                        let g = Grad {
                            logit: Logit::Raw,
                            stored_exp: true,
                            shift: 0.0,
                            bounded: true,
                            a: (a * rescale / s.sum) as f32,
                            coef: coef.slice(r.clone()),
                        };
                        kernels::grad_ahead(self.isa, Io::InPlace(&mut dst[r.clone()]), g, grad_next.range(r));
                    }
                }
            }
            self.fix_label(t, dst, label_k, s.ty);
        }
        out
    }

    /// Subtracts the label's one-hot term: `grad_y −= k·(1 − t_y²)`.
    #[inline]
    pub(super) fn fix_label(&self, t: Target<'_>, dst: &mut [f32], k: f64, ty: f32) {
        if let Target::Label(y) = t {
            let f = match self.logit {
                Logit::Raw => 1.0,
                _ => crate::fmath::fmaf(-ty, ty, 1.0),
            };
            dst[y] -= (k as f32) * f;
        }
    }

    /// Gradient of one row given the upstream gradient. `src` as for
    /// [`Plan::fused_row`].
    pub(crate) fn backward_row(&self, i: usize, src: Option<&[f32]>, dst: &mut [f32], next: &[f32]) {
        debug_assert_eq!(self.mode, Mode::Backward);
        let t = target(self, i);
        if matches!(t, Target::Ignored) {
            dst.fill(0.0);
            return;
        }
        let how = self.logit;
        let row: &[f32] = src.unwrap_or(dst);
        // p_j = exp(z'_j − max) / Σexp when computing it here (exact shift);
        // with the caller's lse, p_j = exp(z'_j − lse), as precise as that f32.
        let given = self.upstream.and_then(|u| u.lse).map(|l| l[i]);
        let (shift, inv_sum, lse, total, ty) = match given {
            Some(l) => {
                let ty = match t {
                    Target::Label(y) => kernels::logit_one(row[y], how).1,
                    _ => 0.0,
                };
                let total = match self.dot_coef(t) {
                    Some(cf) if matches!(t, Target::Probs(_)) => kernels::coef_dot(self.isa, row, how, l, cf).0,
                    _ => self.weight_total,
                };
                (l, 1.0, f64::from(l), total, ty)
            }
            None => {
                let s = self.scan(t, RowIo::Read(row), next, None);
                (s.max, 1.0 / s.sum, Self::lse_of(s.max, s.sum), s.total, s.ty)
            }
        };
        if lse.is_nan() {
            dst.fill(f32::NAN);
            return;
        }
        let (a, coef, label_k) = self.grad_terms(i, t, total, lse);
        let g = Grad { logit: how, stored_exp: false, shift, bounded: given.is_none(), a: (a * inv_sum) as f32, coef };
        let io = match src {
            Some(s) if self.stream => Io::Stream(s, dst),
            Some(s) => Io::Map(s, dst),
            None => Io::InPlace(dst),
        };
        // The scan, when it ran, already fetched the next row.
        let ahead = if given.is_some() { kernels::Ahead::of(next) } else { kernels::Ahead::NONE };
        kernels::grad_ahead(self.isa, io, g, ahead);
        self.fix_label(t, dst, label_k, ty);
    }
}
