//! Rows of at most 16 classes, 16 rows at a time with one row per lane:
//! the columns are gathered into vectors, so the max, the exps, the sum, the
//! log, the loss and the gradient are all plain lane-wise arithmetic, with
//! no per-row reductions and no per-row scalar work.

use super::math::{exp, exp_nonpositive, log};
use super::short::Rows;
use super::simd::{LANES, Simd};

/// A tile of up to 16 consecutive rows of at most 16 classes with
/// class-index targets (no smoothing, no softcap).
pub(crate) struct Tile<'a> {
    /// The rows; `dst`, if any, receives the gradient.
    pub rows: Rows<'a>,
    /// Each row's label as a float, −1 for an ignored row.
    pub label: [f32; LANES],
    /// Each kept row's target-class weight (0 for an ignored row).
    pub weight: [f32; LANES],
    /// Each row's gradient scales of the cross-entropy and z-loss parts,
    /// and the z-loss coefficient.
    pub ce_scale: [f32; LANES],
    pub z_scale: [f32; LANES],
    pub z_loss: f32,
    /// A backward call's log-sum-exp from the caller: then
    /// `p = exp(z − lse) / Σ exp(z − lse)` instead of `exp(z − max) / Σexp`.
    pub lse: Option<[f32; LANES]>,
    /// Add the gradient to what `dst` holds (ignored rows are left as they
    /// are) instead of overwriting it.
    pub accumulate: bool,
}

/// Per-row results of a tile.
pub(crate) struct TileOut {
    /// Weighted cross-entropy `w_y·(ln Σexp − (z_y − max))` (0 if ignored).
    pub ce: [f32; LANES],
    /// z-loss `z_loss·lse²` (0 if ignored).
    pub z: [f32; LANES],
    pub lse: [f32; LANES],
}

/// Computes a tile; see the module docs. NaN results are the canonical NaN.
#[inline(always)]
pub(crate) fn tile<S: Simd>(s: S, t: Tile<'_>, out: &mut TileOut) {
    let Rows { src, src_stride, dst, dst_stride, rows: n, cols } = t.rows;
    assert!(cols <= LANES && n <= LANES);
    let zero = s.splat(0.0);
    let nan = s.splat(f32::NAN);
    let label = s.load(&t.label);
    let w = s.load(&t.weight);
    let kept = s.lt(s.splat(-0.5), label);
    let (view, stride): (&[f32], usize) = match (src, dst.as_deref()) {
        (Some(x), _) => (x, src_stride),
        (None, Some(d)) => (d, dst_stride),
        (None, None) => unreachable!("a tile has logits"),
    };
    let mut col = [zero; LANES];
    let mut max = s.splat(f32::NEG_INFINITY);
    let mut zy = zero;
    for (j, c) in col.iter_mut().enumerate().take(cols) {
        let z = s.gather_strided(view, j, stride, n, 0.0);
        max = s.max(z, max);
        zy = s.select(s.eq(label, s.splat(j as f32)), z, zy);
        *c = z;
    }
    // p_j = e_j · inv: e_j = exp(z_j − max), inv = 1/Σexp; or, with the
    // caller's lse, e_j = exp(z_j − lse) and inv = 1.
    let (lse, inv, losses) = if let Some(given) = t.lse {
        let lse = s.load(&given);
        let mut sum = zero;
        for c in col.iter_mut().take(cols) {
            *c = exp(s, s.sub(*c, lse));
            sum = s.add(sum, *c);
        }
        // Σ exp(z − lse) is 1 but for the rounding of lse: dividing by it
        // makes p as precise as without lse. A sum of 0 or +inf (an lse that
        // is not the row's) makes the row NaN.
        let ok = s.lt(zero, s.select(s.lt(sum, s.splat(f32::INFINITY)), sum, zero));
        (lse, s.select(ok, s.div(s.splat(1.0), sum), nan), None)
    } else {
        let mut sum = zero;
        for c in col.iter_mut().take(cols) {
            *c = exp_nonpositive(s, s.sub(*c, max));
            sum = s.add(sum, *c);
        }
        // NaN when a logit is NaN or +inf, or every logit is −inf.
        let l = log(s, s.select(s.is_nan(sum), s.splat(1.0), sum));
        let lse = s.select(s.is_nan(sum), nan, s.add(max, l));
        // A label without mass (weight 0) adds 0 even on a −inf logit.
        let ce = s.select(s.eq(w, zero), zero, s.mul(w, s.sub(l, s.sub(zy, max))));
        (lse, s.div(s.splat(1.0), sum), Some(ce))
    };
    let bad = s.is_nan(lse);
    // Ignored rows: 0; rows with a NaN: NaN; others: the value.
    let keep = |v| s.select(kept, s.select(bad, nan, v), zero);
    if let Some(ce) = losses {
        s.store(&mut out.ce, keep(ce));
        s.store(&mut out.z, keep(s.mul(s.splat(t.z_loss), s.mul(lse, lse))));
        s.store(&mut out.lse, lse);
    }
    let Some(dst) = dst else { return };
    // ∂/∂z_j = a·e_j − d·[j = y], a = (ce_scale·w + z_scale·2·z_loss·lse)·inv.
    let d = s.mul(s.load(&t.ce_scale), w);
    let zk = s.mul(s.load(&t.z_scale), s.splat(2.0 * t.z_loss));
    let a = s.mul(s.fma(zk, lse, d), inv);
    // Terms a·e below f32::MIN_POSITIVE are 0, as in the row kernels.
    let tiny = s.div(s.splat(f32::MIN_POSITIVE), s.abs(a));
    for (j, &e) in col.iter().enumerate().take(cols) {
        let g = s.fma_unless_tiny(a, e, zero, tiny);
        let g = keep(s.select(s.eq(label, s.splat(j as f32)), s.sub(g, d), g));
        let g = if t.accumulate {
            let old = s.gather_strided(dst, j, dst_stride, n, 0.0);
            s.select(kept, s.add(old, g), old)
        } else {
            g
        };
        s.scatter_strided(dst, j, dst_stride, n, g);
    }
}
