//! The short-row path: rows of at most 64 classes with class-index targets,
//! no label smoothing and no softcap (the common classifier case), in
//! batches of 16 rows.
//! - Rows of at most 16 classes, in batches of at least 4 rows, go through
//!   the tile kernel: one row per lane, everything lane-wise in float32.
//! - Other batches run exactly the long-row path's kernels and operations,
//!   one kernel call per batch instead of several per row, so their results
//!   are bit-identical to the long path's (backward: row by row on it).
//!
//! Which rows take which route depends only on the shape and options, never
//! on the thread count or the kernel path, so results stay deterministic.

use super::plan::{Mode, Plan};
use super::row::{RowOut, Target, target};
use super::types::Targets;
use crate::kernels::{self, Coef, Grad, Io, Logit, Rows, Tile, TileOut};

/// Widest rows the short path takes.
pub(crate) const MAX_COLS: usize = 64;
/// Rows per batch (one tile).
pub(crate) const BATCH: usize = 16;
/// Widest rows the tile kernel takes (one row per lane).
const TILE_COLS: usize = 16;
/// Fewest rows worth a tile.
const MIN_TILE_ROWS: usize = 4;

/// A batch of consecutive rows of the call, the first being row `first`.
pub(crate) struct Batch<'a> {
    pub first: usize,
    pub rows: Rows<'a>,
}

impl Plan<'_> {
    /// Whether this call's rows go through the short path (a backward call
    /// only for tiles: rows of at most 16 classes).
    pub(crate) fn short_path(&self) -> bool {
        let max_cols = if self.mode == Mode::Backward { TILE_COLS } else { MAX_COLS };
        self.cols <= max_cols
            && self.logit == Logit::Raw
            && self.smoothing == 0.0
            && matches!(self.targets, Targets::Labels(_))
    }

    /// Forward (no `dst`) or fused (`dst`, in place when there is no `src`)
    /// on a batch of at most [`BATCH`] rows; fills `out[..rows]`. Rows of at
    /// most 16 classes go through the tile kernel (one row per lane), wider
    /// ones through the long path's kernels batched.
    pub(crate) fn short_batch(&self, b: Batch<'_>, want_argmax: bool, out: &mut [RowOut]) {
        let fits = |stride: usize| (BATCH - 1).checked_mul(stride).is_some_and(|o| o + self.cols <= i32::MAX as usize);
        // A batch of a few rows (the end of the matrix, or a tiny call) is
        // cheaper row by row than gathered; the choice depends only on the
        // shape, so results stay the same for any thread count.
        let r = &b.rows;
        if self.cols <= TILE_COLS && r.rows >= MIN_TILE_ROWS && fits(r.src_stride) && fits(r.dst_stride) {
            return self.tile_batch(b, want_argmax, out);
        }
        if self.mode == Mode::Backward {
            return self.backward_rows(b);
        }
        if self.accumulate {
            // The batch kernels store exps into the gradient: row by row on
            // the long path instead, whose results are the batch's.
            return self.fused_rows(b, want_argmax, out);
        }
        self.row_batch(b, want_argmax, out)
    }

    /// A fused batch that is no tile, row by row on the long path.
    fn fused_rows(&self, b: Batch<'_>, want_argmax: bool, out: &mut [RowOut]) {
        let Batch { first, rows: Rows { src, src_stride: ss, dst, dst_stride: ds, rows, .. } } = b;
        let dst = dst.expect("a fused call has a gradient");
        let none = (&[][..], None, kernels::Ahead::NONE);
        for k in 0..rows {
            let src = src.map(|x| &x[k * ss..k * ss + self.cols]);
            let d = &mut dst[k * ds..k * ds + self.cols];
            out[k] = self.fused_row(first + k, src, d, none, want_argmax);
        }
    }

    /// A backward batch that is no tile: row by row on the long path.
    fn backward_rows(&self, b: Batch<'_>) {
        let Batch { first, rows: Rows { src, src_stride: ss, dst, dst_stride: ds, rows, .. } } = b;
        let dst = dst.expect("a backward call has a gradient");
        for k in 0..rows {
            let src = src.map(|x| &x[k * ss..k * ss + self.cols]);
            self.backward_row(first + k, src, &mut dst[k * ds..k * ds + self.cols], &[]);
        }
    }

    fn tile_batch(&self, b: Batch<'_>, want_argmax: bool, out: &mut [RowOut]) {
        let n = b.rows.rows;
        let mut label = [-1.0f32; BATCH];
        let mut weight = [0.0f32; BATCH];
        let mut argmax = [0i32; BATCH];
        for k in 0..n {
            if let Target::Label(y) = target(self, b.first + k) {
                label[k] = y as f32;
                weight[k] = self.weight(y) as f32;
            }
            if want_argmax {
                argmax[k] = self.argmax(b.rows.logits(k), true);
            }
        }
        let mut ce_scale = [0.0f32; BATCH];
        let mut z_scale = [0.0f32; BATCH];
        for k in 0..n {
            let (c, z) = self.grad_scales(b.first + k);
            (ce_scale[k], z_scale[k]) = (c as f32, z as f32);
        }
        let lse = self.upstream.and_then(|u| u.lse).map(|l| {
            let mut v = [0.0f32; BATCH];
            v[..n].copy_from_slice(&l[b.first..b.first + n]);
            v
        });
        let t = Tile {
            rows: b.rows,
            label,
            weight,
            ce_scale,
            z_scale,
            z_loss: self.z_scale,
            lse,
            accumulate: self.accumulate,
        };
        let mut r = TileOut { ce: [0.0; BATCH], z: [0.0; BATCH], lse: [0.0; BATCH] };
        kernels::tile(self.isa, t, &mut r);
        for k in 0..n {
            out[k] = RowOut { ce: f64::from(r.ce[k]), z: f64::from(r.z[k]), lse: r.lse[k], argmax: argmax[k] };
        }
    }

    fn row_batch(&self, b: Batch<'_>, want_argmax: bool, out: &mut [RowOut]) {
        let (n, cols, isa) = (b.rows.rows, self.cols, self.isa);
        debug_assert!(n <= BATCH && out.len() >= n);
        let first = b.first;
        let mut targets = [Target::Ignored; BATCH];
        let mut zy = [0.0f32; BATCH];
        let mut argmax = [0i32; BATCH];
        for k in 0..n {
            let row = b.rows.logits(k);
            targets[k] = target(self, first + k);
            if let Target::Label(y) = targets[k] {
                zy[k] = row[y];
            }
            argmax[k] = self.argmax(row, want_argmax);
        }
        let mut max = [0.0f32; BATCH];
        let mut sum = [0.0f32; BATCH];
        let Rows { src, src_stride: ss, mut dst, dst_stride: ds, .. } = b.rows;
        let rows = Rows { src, src_stride: ss, dst: dst.as_deref_mut(), dst_stride: ds, rows: n, cols };
        kernels::short_scan(isa, rows, &mut max[..n], &mut sum[..n]);
        let mut l = [0.0f32; BATCH];
        kernels::log_slice(isa, Io::Map(&sum[..n], &mut l[..n]));
        for k in 0..n {
            let dots = (self.weight_total, 0.0);
            out[k] = self.finish_with(targets[k], max[k], f64::from(sum[k]), l[k], zy[k], dots, argmax[k]);
        }
        let Some(dst) = dst else { return };
        // Gradient: row k is a[k]·exp − c, exactly as the long path computes it.
        let mut a = [0.0f32; BATCH];
        let mut label_k = [0.0f64; BATCH];
        let mut coef = Coef { w: self.weights, y: None, k1: 0.0, k0: 0.0 };
        for k in 0..n {
            if matches!(targets[k], Target::Label(_)) && !sum[k].is_nan() {
                let lse = f64::from(max[k]) + f64::from(l[k]);
                let (ak, c, lk) = self.grad_terms(first + k, targets[k], self.weight_total, lse);
                a[k] = (ak * 1.0 / f64::from(sum[k])) as f32;
                label_k[k] = lk;
                coef = c;
            }
        }
        let g = Grad { logit: Logit::Raw, stored_exp: true, shift: 0.0, bounded: true, a: 0.0, coef };
        kernels::short_grad(isa, dst, ds, cols, g, &a[..n]);
        for k in 0..n {
            let row = &mut dst[k * ds..k * ds + cols];
            match targets[k] {
                Target::Ignored => row.fill(0.0),
                _ if sum[k].is_nan() => row.fill(f32::NAN),
                t => {
                    if let Some((y, d)) = self.label_fix(t, label_k[k], 0.0) {
                        row[y] -= d;
                    }
                }
            }
        }
    }
}
