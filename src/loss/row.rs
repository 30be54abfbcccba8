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
use crate::kernels::{self, Ahead, Coef, Grad, Io, Logit};

/// Floats per piece of an accumulated gradient row (a stack buffer in L1).
const ACC_PIECE: usize = 1024;

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
        (next, mut half, grad_next): (&[f32], Option<Widen<'_>>, Ahead),
        want_argmax: bool,
    ) -> RowOut {
        debug_assert_eq!(self.mode, Mode::Fused);
        if self.accumulate {
            let src = src.expect("an accumulated gradient has a buffer of its own");
            return self.fused_row_accumulate(i, src, dst, next, want_argmax);
        }
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
                        let g = Grad {
                            logit: Logit::Raw,
                            stored_exp: true,
                            shift: 0.0,
                            bounded: true,
                            a: (a * s.rescale(c) / s.sum) as f32,
                            coef: coef.slice(r.clone()),
                        };
                        kernels::grad_ahead(self.isa, Io::InPlace(&mut dst[r.clone()]), g, grad_next.range(r));
                    }
                }
            }
            if let Some((y, d)) = self.label_fix(t, label_k, s.ty) {
                dst[y] -= d;
            }
        }
        out
    }

    /// [`Plan::fused_row`] adding its gradient into `dst`: the scan only
    /// reads the row, and the gradient pass computes each exp again with
    /// the shift and scale the stored one would have had, so every element
    /// gets exactly `old + ` the value the overwriting call writes.
    fn fused_row_accumulate(&self, i: usize, src: &[f32], dst: &mut [f32], next: &[f32], want_argmax: bool) -> RowOut {
        let t = target(self, i);
        let argmax = self.argmax(src, want_argmax);
        let s = self.scan(t, RowIo::Read(src), next, None);
        let out = self.finish(t, &s, argmax);
        if matches!(t, Target::Ignored) {
            return out;
        }
        if s.sum.is_nan() {
            dst.fill(f32::NAN);
            return out;
        }
        let lse = Self::lse_of(s.max, s.sum);
        let (a, coef, label_k) = self.grad_terms(i, t, s.total, lse);
        let fix = self.label_fix(t, label_k, s.ty);
        if let Logit::Softcap(_) = self.logit {
            let g =
                Grad { logit: self.logit, stored_exp: false, shift: s.max, bounded: true, a: (a / s.sum) as f32, coef };
            self.put_grad(Some(src), dst, g, Ahead::NONE, fix);
            return out;
        }
        for (c, start) in (0..dst.len()).step_by(s.chunk).enumerate() {
            let r = start..(start + s.chunk).min(dst.len());
            // The shift the scan's exps of this chunk were taken against (0
            // while every value so far was −inf).
            let shift = if s.chunk_base[c] == f32::NEG_INFINITY { 0.0 } else { s.chunk_base[c] };
            let g = Grad {
                logit: Logit::Raw,
                stored_exp: false,
                shift,
                bounded: true,
                a: (a * s.rescale(c) / s.sum) as f32,
                coef: coef.slice(r.clone()),
            };
            let fix = fix.filter(|&(y, _)| r.contains(&y)).map(|(y, d)| (y - r.start, d));
            self.put_grad(Some(&src[r.clone()]), &mut dst[r], g, Ahead::NONE, fix);
        }
        out
    }

    /// The label's one-hot term of the gradient, `k·(1 − t_y²)`, and where
    /// it is subtracted (class-index targets only).
    #[inline]
    pub(super) fn label_fix(&self, t: Target<'_>, k: f64, ty: f32) -> Option<(usize, f32)> {
        match t {
            Target::Label(y) => {
                let f = match self.logit {
                    Logit::Raw => 1.0,
                    _ => crate::fmath::fmaf(-ty, ty, 1.0),
                };
                Some((y, (k as f32) * f))
            }
            _ => None,
        }
    }

    /// Writes the gradient pass `g` over `src` (or `dst` in place) into
    /// `dst`, then subtracts the label's term `fix`. With the plan's
    /// `accumulate`, the row is made a piece at a time in a stack buffer
    /// and added to `dst`, so each element gets exactly `old + ` the value
    /// written without it.
    pub(super) fn put_grad(
        &self,
        src: Option<&[f32]>,
        dst: &mut [f32],
        g: Grad<'_>,
        ahead: Ahead,
        fix: Option<(usize, f32)>,
    ) {
        if !self.accumulate {
            let io = match src {
                Some(s) if self.stream => Io::Stream(s, dst),
                Some(s) => Io::Map(s, dst),
                None => Io::InPlace(dst),
            };
            kernels::grad_ahead(self.isa, io, g, ahead);
            if let Some((y, d)) = fix {
                dst[y] -= d;
            }
            return;
        }
        let src = src.expect("an accumulated gradient has a buffer of its own");
        let mut piece = [0.0f32; ACC_PIECE];
        for start in (0..dst.len()).step_by(ACC_PIECE) {
            let r = start..(start + ACC_PIECE).min(dst.len());
            let tmp = &mut piece[..r.len()];
            let gr = Grad { coef: g.coef.slice(r.clone()), ..g };
            kernels::grad_ahead(self.isa, Io::Map(&src[r.clone()], tmp), gr, ahead.range(r.clone()));
            if let Some((y, d)) = fix.filter(|&(y, _)| r.contains(&y)) {
                tmp[y - r.start] -= d;
            }
            for (o, &x) in dst[r].iter_mut().zip(tmp.iter()) {
                *o += x;
            }
        }
    }

    /// Gradient of one row given the upstream gradient. `src` as for
    /// [`Plan::fused_row`].
    pub(crate) fn backward_row(&self, i: usize, src: Option<&[f32]>, dst: &mut [f32], next: &[f32]) {
        debug_assert_eq!(self.mode, Mode::Backward);
        let t = target(self, i);
        if matches!(t, Target::Ignored) {
            if !self.accumulate {
                dst.fill(0.0);
            }
            return;
        }
        if let Some(l) = self.upstream.and_then(|u| u.lse).map(|l| l[i]) {
            return self.backward_given_lse(i, t, (src, dst), l, next);
        }
        let how = self.logit;
        let row: &[f32] = src.unwrap_or(dst);
        // p_j = exp(z'_j − max) / Σexp, with the row's exact max.
        let s = self.scan(t, RowIo::Read(row), next, None);
        let lse = Self::lse_of(s.max, s.sum);
        if lse.is_nan() {
            dst.fill(f32::NAN);
            return;
        }
        let (a, coef, label_k) = self.grad_terms(i, t, s.total, lse);
        let g =
            Grad { logit: how, stored_exp: false, shift: s.max, bounded: true, a: (a * (1.0 / s.sum)) as f32, coef };
        // The scan already fetched the next row.
        self.put_grad(src, dst, g, Ahead::NONE, self.label_fix(t, label_k, s.ty));
    }

    /// [`Plan::backward_row`] given the forward's log-sum-exp `l`, as
    /// precise as without it at any offset: `e_j = exp(z'_j − l)` and their
    /// sum `S` (1 up to the rounding of `l`), then `p_j = e_j / S`. Raw
    /// logits keep `e_j` in `dst` and scale them while they are in the
    /// caches (one pass over memory); under a softcap, or accumulating, the
    /// gradient pass computes them again from the logits. A sum that is 0
    /// or overflows (an `l` that is not the row's: more than ~87 away from
    /// it) makes the row NaN.
    fn backward_given_lse(
        &self,
        i: usize,
        t: Target<'_>,
        (src, dst): (Option<&[f32]>, &mut [f32]),
        l: f32,
        next: &[f32],
    ) {
        let how = self.logit;
        let (ty, total) = {
            let row: &[f32] = src.unwrap_or(dst);
            let ty = match t {
                Target::Label(y) => kernels::logit_one(row[y], how).1,
                _ => 0.0,
            };
            let total = match self.dot_coef(t) {
                Some(cf) if matches!(t, Target::Probs(_)) => kernels::coef_dot(self.isa, row, how, l, cf).0,
                _ => self.weight_total,
            };
            (ty, total)
        };
        if l.is_nan() {
            dst.fill(f32::NAN);
            return;
        }
        let store = how == Logit::Raw && !self.accumulate;
        let sum = if store {
            let io = match src {
                Some(s) => Io::Map(s, dst),
                None => Io::InPlace(dst),
            };
            kernels::sum_exp_any(self.isa, io, Logit::Raw, l, next)
        } else {
            kernels::sum_exp_any(self.isa, Io::Read(src.unwrap_or(dst)), how, l, next)
        };
        if !(sum > 0.0 && sum.is_finite()) {
            dst.fill(f32::NAN);
            return;
        }
        let lse = f64::from(l) + crate::fmath::ln(sum);
        let (a, coef, label_k) = self.grad_terms(i, t, total, lse);
        let a = (a / sum) as f32;
        let fix = self.label_fix(t, label_k, ty);
        if store {
            let g = Grad { logit: Logit::Raw, stored_exp: true, shift: 0.0, bounded: true, a, coef };
            kernels::grad(self.isa, Io::InPlace(dst), g);
            if let Some((y, d)) = fix {
                dst[y] -= d;
            }
        } else {
            let g = Grad { logit: how, stored_exp: false, shift: l, bounded: false, a, coef };
            self.put_grad(src, dst, g, Ahead::NONE, fix);
        }
    }
}
