//! Short rows, 16 at a time with one row per lane: the rows are transposed
//! into a scratch buffer of columns (contiguous loads and in-register
//! transposes where the path has them), so the max, the argmax, the exps,
//! the sum, the log, the loss and the gradient are all plain lane-wise
//! arithmetic, with no per-row reductions and no per-row scalar work; the
//! gradient columns are transposed back into rows.

use super::math::{exp, exp_nonpositive, log};
use super::rows::{Ahead, IOTA, load_at, prefetch_at};
use super::simd::{LANES, Simd};

/// Consecutive rows of a matrix: a block of the short path, or a tile.
pub(crate) struct Rows<'a> {
    /// The logits rows, or `None` when `dst` holds them (in place).
    pub src: Option<&'a [f32]>,
    pub src_stride: usize,
    /// Where the gradient is stored (fused or backward call), if anywhere.
    pub dst: Option<&'a mut [f32]>,
    pub dst_stride: usize,
    /// Number of rows.
    pub rows: usize,
    pub cols: usize,
}

/// Widest rows a tile takes (its scratch holds `cols` columns of 16 lanes).
pub(crate) const TILE_MAX_COLS: usize = 128;

/// The rows of a block on the short path, computed a tile of 16 rows at a
/// time, with everything per row marshalled here, where the vector
/// instructions of the path apply to it too.
pub(crate) struct Tiles<'a> {
    /// The block's rows; `dst`, if any, receives the gradient.
    pub rows: Rows<'a>,
    /// The next block's logits, prefetched while the last tile computes.
    pub next: &'a [f32],
    /// The block's class-index targets; `ignore_index` marks ignored rows
    /// (all others are in `0..cols`).
    pub labels: &'a [i32],
    pub ignore_index: i32,
    pub weights: Option<&'a [f32]>,
    /// The gradient scales of the cross-entropy and z-loss parts.
    pub scales: Scales<'a>,
    /// The z-loss coefficient.
    pub z_loss: f32,
    /// A backward call's log-sum-exp from the caller, per row: then
    /// `p = exp(z − lse) / Σ exp(z − lse)` instead of `exp(z − max) / Σexp`.
    pub lse: Option<&'a [f32]>,
    /// Add the gradient to what `dst` holds (ignored rows are left as they
    /// are) instead of overwriting it.
    pub accumulate: bool,
    /// Per-row outputs (each optional): the loss (cross-entropy plus
    /// z-loss), the log-sum-exp and the argmax.
    pub loss: Option<&'a mut [f32]>,
    pub lse_out: Option<&'a mut [f32]>,
    pub argmax: Option<&'a mut [i32]>,
    /// Per-lane float64 sums of the rows' (cross-entropy, z-loss) parts,
    /// added to (a forward or fused call's).
    pub sums: Option<&'a mut [[f64; LANES]; 2]>,
    /// Scratch (any contents): at least `cols` columns, or, for a block of
    /// at most [`ROW_BY_ROW_MAX`] rows, `rows × cols` values.
    pub scratch: &'a mut [[f32; LANES]],
}

/// Gradient scales of the (cross-entropy, z-loss) parts.
#[derive(Clone, Copy)]
pub(crate) enum Scales<'a> {
    /// The same for every row.
    Same(f32, f32),
    /// Row `i`'s: `(g_i·k.0, g_i·k.1)` rounded from float64.
    PerRow(&'a [f32], (f64, f64)),
}

/// Runs a block; see [`Tiles`].
#[inline(always)]
pub(crate) fn tiles<S: Simd>(s: S, job: Tiles<'_>) {
    run_tiles::<S, false>(s, job);
}

/// [`tiles`] for a block of at most [`ROW_BY_ROW_MAX`] rows (a tiny call,
/// or a matrix's last rows alone in a block): the same row-by-row code
/// [`tiles`] runs for such a tile, compiled without the 16-lane columns,
/// whose state a tiny call would otherwise pay to set up.
#[inline(always)]
pub(crate) fn few_rows<S: Simd>(s: S, job: Tiles<'_>) {
    assert!(job.rows.rows <= ROW_BY_ROW_MAX, "at most {ROW_BY_ROW_MAX} rows");
    run_tiles::<S, true>(s, job);
}

#[inline(always)]
fn run_tiles<S: Simd, const FEW: bool>(s: S, job: Tiles<'_>) {
    let Tiles { rows, next, labels, ignore_index, weights, scales, z_loss, lse, accumulate, .. } = job;
    let Rows { src, src_stride: ss, mut dst, dst_stride: ds, rows: count, cols } = rows;
    let (mut loss, mut lse_out, mut argmax, mut sums) = (job.loss, job.lse_out, job.argmax, job.sums);
    assert!(labels.len() >= count);
    let mut out = TileOut { ce: [0.0; LANES], z: [0.0; LANES], lse: [0.0; LANES], argmax: [0; LANES] };
    let same = match scales {
        Scales::Same(c, z) => (c, z),
        Scales::PerRow(..) => (0.0, 0.0),
    };
    // One set of lanes for the block, updated in place tile by tile.
    let mut lanes = Lanes {
        label: [-1.0; LANES],
        // Unweighted: 1 for every row, once.
        weight: [1.0; LANES],
        ce_scale: [same.0; LANES],
        z_scale: [same.1; LANES],
        z_loss,
        lse: lse.map(|_| [0.0; LANES]),
        accumulate,
    };
    for k0 in (0..count).step_by(LANES) {
        let n = LANES.min(count - k0);
        let ys = &labels[k0..k0 + n];
        // The last tile's lanes past its rows are ignored rows. An ignored
        // row's weight, scales and lse reach none of its outputs.
        lanes.label[n..].fill(-1.0);
        // Branch-free where it can be (vectorized).
        for (l, &y) in lanes.label.iter_mut().zip(ys) {
            *l = if y != ignore_index { y as f32 } else { -1.0 };
        }
        if let Some(cw) = weights {
            for (w, &y) in lanes.weight.iter_mut().zip(ys) {
                *w = if y != ignore_index { cw[y as usize] } else { 0.0 };
            }
        }
        if let Scales::PerRow(g, k) = scales {
            let per = lanes.ce_scale.iter_mut().zip(lanes.z_scale.iter_mut());
            for ((c, z), &g) in per.zip(&g[k0..k0 + n]) {
                (*c, *z) = ((f64::from(g) * k.0) as f32, (f64::from(g) * k.1) as f32);
            }
        }
        if let (Some(v), Some(l)) = (lanes.lse.as_mut(), lse) {
            v[..n].copy_from_slice(&l[k0..k0 + n]);
        }
        // The next tile's rows (the next block's first, after the last).
        let (after, span) = (k0 + LANES, |stride: usize| LANES.saturating_mul(stride));
        let src_ahead = match src {
            Some(x) if after < count => Ahead::of(&x[after * ss..][..span(ss).min(x.len() - after * ss)]),
            Some(_) => Ahead::of(&next[..span(ss).min(next.len())]),
            None => Ahead::NONE,
        };
        let dst_ahead = match dst.as_deref() {
            Some(d) if after < count => Ahead::of(&d[after * ds..][..span(ds).min(d.len() - after * ds)]),
            _ => Ahead::NONE,
        };
        let t = Tile {
            rows: Rows {
                src: src.map(|x| &x[k0 * ss..]),
                src_stride: ss,
                dst: dst.as_deref_mut().map(|d| &mut d[k0 * ds..]),
                dst_stride: ds,
                rows: n,
                cols,
            },
            lanes: &lanes,
            argmax: argmax.is_some(),
            scratch: &mut *job.scratch,
            ahead: [src_ahead, dst_ahead],
        };
        if FEW {
            rows_one_by_one(s, t, &mut out)
        } else {
            tile(s, t, &mut out)
        }
        // Lanes past the rows and ignored rows hold 0.
        if let Some([ce, z]) = sums.as_deref_mut() {
            for k in 0..LANES {
                ce[k] += f64::from(out.ce[k]);
                z[k] += f64::from(out.z[k]);
            }
        }
        if let Some(l) = loss.as_deref_mut() {
            for (o, (c, z)) in l[k0..k0 + n].iter_mut().zip(out.ce.iter().zip(&out.z)) {
                *o = c + z;
            }
        }
        if let Some(l) = lse_out.as_deref_mut() {
            l[k0..k0 + n].copy_from_slice(&out.lse[..n]);
        }
        if let Some(a) = argmax.as_deref_mut() {
            a[k0..k0 + n].copy_from_slice(&out.argmax[..n]);
        }
    }
}

/// A tile of up to 16 consecutive rows of at most [`TILE_MAX_COLS`] classes
/// with class-index targets (no smoothing, no softcap).
struct Tile<'a> {
    /// The rows; `dst`, if any, receives the gradient.
    rows: Rows<'a>,
    lanes: &'a Lanes,
    /// Compute each row's argmax.
    argmax: bool,
    scratch: &'a mut [[f32; LANES]],
    /// The next tile's logits and gradient, prefetched while this one
    /// computes (a cache line per column of each).
    ahead: [Ahead; 2],
}

/// The rows' inputs, one row per lane.
struct Lanes {
    /// Each row's label as a float, −1 for an ignored row or a lane past
    /// the rows.
    label: [f32; LANES],
    /// Each kept row's target-class weight (anything for an ignored row).
    weight: [f32; LANES],
    /// Each row's gradient scales of the cross-entropy and z-loss parts,
    /// and the z-loss coefficient.
    ce_scale: [f32; LANES],
    z_scale: [f32; LANES],
    z_loss: f32,
    /// The caller's log-sum-exp, if given.
    lse: Option<[f32; LANES]>,
    accumulate: bool,
}

/// Per-row results of a tile (lanes past the rows hold 0).
struct TileOut {
    /// Weighted cross-entropy `w_y·(ln Σexp − (z_y − max))` (0 if ignored).
    ce: [f32; LANES],
    /// z-loss `z_loss·lse²` (0 if ignored or without z-loss).
    z: [f32; LANES],
    lse: [f32; LANES],
    /// Index of the first NaN, else of the first maximum (if asked for).
    argmax: [i32; LANES],
}

/// Tiles of at most this many rows are computed row by row (see
/// [`rows_one_by_one`]): for so few rows, 16-lane columns would be mostly
/// empty lanes.
pub(crate) const ROW_BY_ROW_MAX: usize = 3;

/// Computes a tile; see the module docs. NaN results are the canonical NaN.
#[inline(always)]
fn tile<S: Simd>(s: S, t: Tile<'_>, out: &mut TileOut) {
    if t.rows.rows <= ROW_BY_ROW_MAX {
        return rows_one_by_one(s, t, out);
    }
    let Rows { src, src_stride, dst, dst_stride, rows: n, cols } = t.rows;
    assert!(cols <= t.scratch.len() && n <= LANES);
    let buf = &mut t.scratch[..cols];
    match (src, dst.as_deref()) {
        (Some(x), _) => s.transpose_in(x, src_stride, n, buf),
        (None, Some(d)) => s.transpose_in(d, dst_stride, n, buf),
        (None, None) => unreachable!("a tile has logits"),
    }
    let label = s.load(&t.lanes.label);
    let mut max = s.splat(f32::NEG_INFINITY);
    let mut zy = s.splat(0.0);
    for (j, c) in buf.iter().enumerate() {
        let z = s.load(c);
        max = s.max(z, max);
        zy = s.select(s.eq(label, s.splat(j as f32)), z, zy);
    }
    if t.argmax {
        argmax(s, buf, &mut out.argmax);
    }
    // e_j = exp(z_j − max), or exp(z_j − lse) with the caller's lse.
    let mut sum = s.splat(0.0);
    if let Some(given) = t.lanes.lse {
        let lse = s.load(&given);
        for (j, c) in buf.iter_mut().enumerate() {
            prefetch_at(s, t.ahead[0], j * LANES);
            let e = exp(s, s.sub(s.load(c), lse));
            s.store(c, e);
            sum = s.add(sum, e);
        }
    } else {
        for (j, c) in buf.iter_mut().enumerate() {
            prefetch_at(s, t.ahead[0], j * LANES);
            let e = exp_nonpositive(s, s.sub(s.load(c), max));
            s.store(c, e);
            sum = s.add(sum, e);
        }
    }
    let Some(g) = finish(s, t.lanes, dst.is_some(), (max, zy, sum), out) else { return };
    let Some(dst) = dst else { return };
    for (j, c) in buf.iter_mut().enumerate() {
        prefetch_at(s, t.ahead[1], j * LANES);
        s.store(c, g.at(s, label, s.splat(j as f32), s.load(c)));
    }
    s.transpose_out(buf, dst, dst_stride, n, t.lanes.accumulate);
}

/// What each row's gradient needs, one row per lane:
/// `∂/∂z_j = a·e_j − d·[j = y]`.
#[derive(Clone, Copy)]
struct GradTerms<S: Simd> {
    a: S::V,
    tiny: S::V,
    minus_d: S::V,
    /// Lanes whose gradient is `value`: NaN for a row with a NaN, 0 for an
    /// ignored row, or, accumulating, −0, which leaves every value as it is.
    fixed: S::M,
    value: S::V,
}

impl<S: Simd> GradTerms<S> {
    /// The gradient at column(s) `j` of exps `e`, rows' labels `label`.
    #[inline(always)]
    fn at(&self, s: S, label: S::V, j: S::V, e: S::V) -> S::V {
        // a·e_j, minus d at the label in the same rounding.
        let at_label = s.select(s.eq(label, j), self.minus_d, s.splat(0.0));
        s.select(self.fixed, self.value, s.fma_unless_tiny(self.a, e, at_label, self.tiny))
    }

    /// Row `k`'s terms in every lane.
    #[inline(always)]
    fn lane(&self, s: S, k: usize) -> Self {
        let pick = |v: S::V| {
            let mut x = [0.0f32; LANES];
            s.store(&mut x, v);
            s.splat(x[k])
        };
        let fixed = pick(s.select(self.fixed, s.splat(1.0), s.splat(0.0)));
        let (a, tiny, minus_d, value) = (pick(self.a), pick(self.tiny), pick(self.minus_d), pick(self.value));
        GradTerms { a, tiny, minus_d, fixed: s.eq(fixed, s.splat(1.0)), value }
    }
}

/// From each row's `(max, z_y, Σexp)` (lane-wise; Σ exp(z − lse) with the
/// caller's lse): writes the per-row outputs and returns the gradient's
/// terms when the tile has a gradient.
#[inline(always)]
fn finish<S: Simd>(
    s: S,
    t: &Lanes,
    grads: bool,
    (max, zy, sum): (S::V, S::V, S::V),
    out: &mut TileOut,
) -> Option<GradTerms<S>> {
    let zero = s.splat(0.0);
    let nan = s.splat(f32::NAN);
    let label = s.load(&t.label);
    let w = s.load(&t.weight);
    let kept = s.lt(s.splat(-0.5), label);
    // p_j = e_j · inv: inv = 1/Σexp, or, with the caller's lse, 1/Σ exp(z_j − lse).
    let (lse, inv, losses) = if let Some(given) = t.lse {
        // Σ exp(z − lse) is 1 but for the rounding of lse: dividing by it
        // makes p as precise as without lse. A sum of 0 or +inf (an lse that
        // is not the row's) makes the row NaN.
        let ok = s.lt(zero, s.select(s.lt(sum, s.splat(f32::INFINITY)), sum, zero));
        (s.load(&given), s.select(ok, s.div(s.splat(1.0), sum), nan), None)
    } else {
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
    if !grads {
        return None;
    }
    // a = (ce_scale·w + z_scale·2·z_loss·lse)·inv, d = ce_scale·w.
    let d = s.mul(s.load(&t.ce_scale), w);
    let zk = s.mul(s.load(&t.z_scale), s.splat(2.0 * t.z_loss));
    let a = s.mul(s.fma(zk, lse, d), inv);
    // Terms a·e below f32::MIN_POSITIVE are 0, as in the row kernels.
    let tiny = s.div(s.splat(f32::MIN_POSITIVE), s.abs(a));
    let skip = if t.accumulate { s.splat(-0.0) } else { zero };
    let fixed = s.eq(s.select(kept, s.select(bad, zero, s.splat(1.0)), zero), zero);
    Some(GradTerms { a, tiny, minus_d: s.sub(zero, d), fixed, value: s.select(kept, nan, skip) })
}

/// A tile of a few rows, row by row: each row's values are vectors of
/// consecutive columns, its max, Σexp and argmax sequential scalar loops
/// over them, in the order the columns' lanes of [`tile`] take, and the
/// rest the same vector operations on the same values. So every result is
/// bit for bit the one [`tile`] computes, at a cost in proportion to the rows.
#[inline(always)]
fn rows_one_by_one<S: Simd>(s: S, t: Tile<'_>, out: &mut TileOut) {
    let Rows { src, src_stride, dst, dst_stride, rows: n, cols } = t.rows;
    let flat = t.scratch.as_flattened_mut();
    assert!(n * cols <= flat.len() && n <= ROW_BY_ROW_MAX);
    let row = |k: usize| -> &[f32] {
        match (src, dst.as_deref()) {
            (Some(x), _) => &x[k * src_stride..][..cols],
            (None, Some(d)) => &d[k * dst_stride..][..cols],
            (None, None) => unreachable!("a tile has logits"),
        }
    };
    let (mut max, mut zy, mut sum) = ([f32::NEG_INFINITY; LANES], [0.0f32; LANES], [0.0f32; LANES]);
    let mut shift = [0.0f32; LANES];
    for k in 0..n {
        let z = row(k);
        for (j, &x) in z.iter().enumerate() {
            max[k] = if x > max[k] { x } else { max[k] };
            if t.lanes.label[k] == j as f32 {
                zy[k] = x;
            }
        }
        if t.argmax {
            out.argmax[k] = argmax_row(z);
        }
        shift[k] = t.lanes.lse.map_or(max[k], |l| l[k]);
        // The row's exps, into the scratch, then summed in column order.
        let e = &mut flat[k * cols..(k + 1) * cols];
        let sh = s.splat(shift[k]);
        for (x, y) in z.chunks(LANES).zip(e.chunks_mut(LANES)) {
            let v = s.sub(load_at(s, x, 0, x.len()), sh);
            let v = if t.lanes.lse.is_some() { exp(s, v) } else { exp_nonpositive(s, v) };
            store_any(s, y, v);
        }
        sum[k] = e.iter().fold(0.0, |acc, &x| acc + x);
    }
    let stats = (s.load(&max), s.load(&zy), s.load(&sum));
    let Some(g) = finish(s, t.lanes, dst.is_some(), stats, out) else { return };
    let Some(d) = dst else { return };
    for k in 0..n {
        let (gk, label) = (g.lane(s, k), s.splat(t.lanes.label[k]));
        let e = &flat[k * cols..(k + 1) * cols];
        let d = &mut d[k * dst_stride..][..cols];
        for (c, (x, y)) in e.chunks(LANES).zip(d.chunks_mut(LANES)).enumerate() {
            let j = s.add(s.load(&IOTA), s.splat((c * LANES) as f32));
            let v = gk.at(s, label, j, load_at(s, x, 0, x.len()));
            let v = if t.lanes.accumulate { s.add(load_at(s, y, 0, y.len()), v) } else { v };
            store_any(s, y, v);
        }
    }
}

/// The first `y.len() ≤ 16` lanes of `v` into `y`.
#[inline(always)]
fn store_any<S: Simd>(s: S, y: &mut [f32], v: S::V) {
    match y.try_into() {
        Ok(full) => s.store(full, v),
        Err(_) => s.store_tail(y, v),
    }
}

/// [`argmax`] of one row, by the same steps on its values in order.
#[inline(always)]
fn argmax_row(z: &[f32]) -> i32 {
    let (mut best, mut at, mut nan_at) = (f32::NEG_INFINITY, 0.0f32, f32::INFINITY);
    for (j, &x) in z.iter().enumerate() {
        if best < x {
            at = j as f32;
        }
        best = if x > best { x } else { best };
        if x.is_nan() && nan_at == f32::INFINITY {
            nan_at = j as f32;
        }
    }
    (if nan_at < f32::INFINITY { nan_at } else { at }) as i32
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
