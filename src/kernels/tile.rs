//! Short rows, 16 at a time with one row per lane: the rows are transposed
//! into a scratch buffer of columns (contiguous loads and in-register
//! transposes where the path has them), so the max, the argmax, the exps,
//! the sum, the log, the loss and the gradient are all plain lane-wise
//! arithmetic, with no per-row reductions and no per-row scalar work; the
//! gradient columns are transposed back into rows.

use super::math::{exp, exp_nonpositive, log};
use super::short::Rows;
use super::simd::{LANES, Simd};

/// Widest rows a tile takes (its scratch holds `cols` columns of 16 lanes).
pub(crate) const TILE_MAX_COLS: usize = 128;

/// A tile of up to 16 consecutive rows of at most [`TILE_MAX_COLS`] classes
/// with class-index targets (no smoothing, no softcap).
pub(crate) struct Tile<'a> {
    /// The rows; `dst`, if any, receives the gradient.
    pub rows: Rows<'a>,
    /// Each row's label as a float, −1 for an ignored row or a lane past
    /// the rows.
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
    /// Compute each row's argmax.
    pub argmax: bool,
    /// At least `cols` columns of scratch (any contents).
    pub scratch: &'a mut [[f32; LANES]],
}

/// Per-row results of a tile (lanes past the rows hold 0).
pub(crate) struct TileOut {
    /// Weighted cross-entropy `w_y·(ln Σexp − (z_y − max))` (0 if ignored).
    pub ce: [f32; LANES],
    /// z-loss `z_loss·lse²` (0 if ignored or without z-loss).
    pub z: [f32; LANES],
    pub lse: [f32; LANES],
    /// Index of the first NaN, else of the first maximum (if asked for).
    pub argmax: [i32; LANES],
}

/// Computes a tile; see the module docs. NaN results are the canonical NaN.
#[inline(always)]
pub(crate) fn tile<S: Simd>(s: S, t: Tile<'_>, out: &mut TileOut) {
    let Rows { src, src_stride, dst, dst_stride, rows: n, cols } = t.rows;
    assert!(cols <= t.scratch.len() && n <= LANES);
    let buf = &mut t.scratch[..cols];
    match (src, dst.as_deref()) {
        (Some(x), _) => s.transpose_in(x, src_stride, n, buf),
        (None, Some(d)) => s.transpose_in(d, dst_stride, n, buf),
        (None, None) => unreachable!("a tile has logits"),
    }
    let zero = s.splat(0.0);
    let nan = s.splat(f32::NAN);
    let label = s.load(&t.label);
    let w = s.load(&t.weight);
    let kept = s.lt(s.splat(-0.5), label);
    let mut max = s.splat(f32::NEG_INFINITY);
    let mut zy = zero;
    for (j, c) in buf.iter().enumerate() {
        let z = s.load(c);
        max = s.max(z, max);
        zy = s.select(s.eq(label, s.splat(j as f32)), z, zy);
    }
    if t.argmax {
        argmax(s, buf, &mut out.argmax);
    }
    // p_j = e_j · inv: e_j = exp(z_j − max), inv = 1/Σexp; or, with the
    // caller's lse, e_j = exp(z_j − lse) and inv = 1/Σ exp(z_j − lse).
    let (lse, inv, losses) = if let Some(given) = t.lse {
        let lse = s.load(&given);
        let mut sum = zero;
        for c in buf.iter_mut() {
            let e = exp(s, s.sub(s.load(c), lse));
            s.store(c, e);
            sum = s.add(sum, e);
        }
        // Σ exp(z − lse) is 1 but for the rounding of lse: dividing by it
        // makes p as precise as without lse. A sum of 0 or +inf (an lse that
        // is not the row's) makes the row NaN.
        let ok = s.lt(zero, s.select(s.lt(sum, s.splat(f32::INFINITY)), sum, zero));
        (lse, s.select(ok, s.div(s.splat(1.0), sum), nan), None)
    } else {
        let mut sum = zero;
        for c in buf.iter_mut() {
            let e = exp_nonpositive(s, s.sub(s.load(c), max));
            s.store(c, e);
            sum = s.add(sum, e);
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
        // Without z-loss, 0 (not 0·lse², NaN where lse² overflows).
        let z = if t.z_loss > 0.0 { keep(s.mul(s.splat(t.z_loss), s.mul(lse, lse))) } else { zero };
        s.store(&mut out.z, z);
        s.store(&mut out.lse, lse);
    }
    let Some(dst) = dst else { return };
    // ∂/∂z_j = a·e_j − d·[j = y], a = (ce_scale·w + z_scale·2·z_loss·lse)·inv.
    let d = s.mul(s.load(&t.ce_scale), w);
    let zk = s.mul(s.load(&t.z_scale), s.splat(2.0 * t.z_loss));
    let a = s.mul(s.fma(zk, lse, d), inv);
    // Terms a·e below f32::MIN_POSITIVE are 0, as in the row kernels.
    let tiny = s.div(s.splat(f32::MIN_POSITIVE), s.abs(a));
    // Accumulating, an ignored row adds −0, which leaves every value as it is.
    let skip = if t.accumulate { s.splat(-0.0) } else { zero };
    for (j, c) in buf.iter_mut().enumerate() {
        let g = s.fma_unless_tiny(a, s.load(c), zero, tiny);
        let g = s.select(s.eq(label, s.splat(j as f32)), s.sub(g, d), g);
        s.store(c, s.select(kept, s.select(bad, nan, g), skip));
    }
    s.transpose_out(buf, dst, dst_stride, n, t.accumulate);
}

/// Each lane's index of the first NaN, else of the first maximum, over the
/// columns `buf`.
#[inline(always)]
fn argmax<S: Simd>(s: S, buf: &[[f32; LANES]], out: &mut [i32; LANES]) {
    let none = s.splat(f32::INFINITY);
    let mut best = s.splat(f32::NEG_INFINITY);
    let (mut at, mut nan_at) = (s.splat(0.0), none);
    for (j, c) in buf.iter().enumerate() {
        let (z, jv) = (s.load(c), s.splat(j as f32));
        // Strictly greater: ties keep the first; a NaN is never greater.
        at = s.select(s.lt(best, z), jv, at);
        best = s.max(z, best);
        nan_at = s.select(s.is_nan(z), s.select(s.lt(nan_at, none), nan_at, jv), nan_at);
    }
    let mut idx = [0.0f32; LANES];
    s.store(&mut idx, s.select(s.lt(nan_at, none), nan_at, at));
    for (o, &x) in out.iter_mut().zip(&idx) {
        *o = x as i32;
    }
}
