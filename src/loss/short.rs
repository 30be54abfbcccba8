//! The short-row path: rows of at most [`TILE_MAX_COLS`] classes with
//! class-index targets, no label smoothing and no softcap (the common
//! classifier case), in tiles of 16 rows with one row per lane.
//!
//! Everything per row is lane-wise: labels, weights and gradient scales
//! are laid out as lanes here, the tile kernel computes every row's max,
//! argmax, Σexp, loss and gradient in float32 vectors, and the losses are
//! summed in float64 per lane, the lanes added at the end of the block.
//! A lane's arithmetic is its row's alone, so a row's results do not depend
//! on the rows around it, the thread count or the kernel path; which rows
//! take this path depends only on the shape and options.

use super::block::{Block, Layout, zero_padding};
use super::plan::{Mode, Plan};
use super::types::{Reduction, Targets};
use crate::kernels::{self, LANES, Logit, Rows, TILE_MAX_COLS, Tile, TileOut};

impl Plan<'_> {
    /// Whether this call's rows go through the short path.
    pub(crate) fn short_path(&self) -> bool {
        self.cols <= TILE_MAX_COLS
            && self.logit == Logit::Raw
            && self.smoothing == 0.0
            && matches!(self.targets, Targets::Labels(_))
    }

    /// Runs a block on the short path and returns its (cross-entropy,
    /// z-loss) sums; per-row outputs are written as the tiles finish.
    pub(super) fn short_block(&self, layout: &Layout, want_argmax: bool, b: &mut Block<'_>) -> (f64, f64) {
        // The scratch is zeroed once per block: only as wide as the rows.
        match self.cols {
            c if c <= 16 => self.short_tiles(layout, want_argmax, b, &mut [[0.0; LANES]; 16]),
            c if c <= 32 => self.short_tiles(layout, want_argmax, b, &mut [[0.0; LANES]; 32]),
            c if c <= 64 => self.short_tiles(layout, want_argmax, b, &mut [[0.0; LANES]; 64]),
            _ => self.short_tiles(layout, want_argmax, b, &mut [[0.0; LANES]; TILE_MAX_COLS]),
        }
    }

    fn short_tiles(
        &self,
        layout: &Layout,
        want_argmax: bool,
        b: &mut Block<'_>,
        scratch: &mut [[f32; LANES]],
    ) -> (f64, f64) {
        let Targets::Labels(labels) = self.targets else { unreachable!("the short path takes labels") };
        let (ss, ds, cols) = (layout.src_stride, layout.dst_stride, self.cols);
        let grads = b.dst.is_some();
        // Gradient scales are per row only for per-row upstream gradients.
        let per_row = grads && self.upstream.is_some() && self.reduction == Reduction::None;
        let (ce0, z0) = if grads && b.rows > 0 { self.grad_scales(b.first) } else { (0.0, 0.0) };
        let given_lse = self.upstream.and_then(|u| u.lse);
        let mut sums = ([0.0f64; LANES], [0.0f64; LANES]);
        let mut out = TileOut { ce: [0.0; LANES], z: [0.0; LANES], lse: [0.0; LANES], argmax: [0; LANES] };
        for k0 in (0..b.rows).step_by(LANES) {
            let (first, n) = (b.first + k0, LANES.min(b.rows - k0));
            let mut label = [-1.0f32; LANES];
            let mut weight = [0.0f32; LANES];
            let ys = &labels[first..first + n];
            // Branch-free where it can be (vectorized): -1 marks an ignored row.
            for (l, &y) in label.iter_mut().zip(ys) {
                *l = if y != self.ignore_index { y as f32 } else { -1.0 };
            }
            match self.weights {
                None => {
                    for (w, &l) in weight.iter_mut().zip(&label) {
                        *w = if l >= 0.0 { 1.0 } else { 0.0 };
                    }
                }
                Some(cw) => {
                    for (w, &y) in weight.iter_mut().zip(ys) {
                        if y != self.ignore_index {
                            *w = cw[y as usize];
                        }
                    }
                }
            }
            let (mut ce_scale, mut z_scale) = ([ce0 as f32; LANES], [z0 as f32; LANES]);
            if per_row {
                for k in 0..n {
                    let (c, z) = self.grad_scales(first + k);
                    (ce_scale[k], z_scale[k]) = (c as f32, z as f32);
                }
            }
            let lse = given_lse.map(|l| {
                let mut v = [0.0f32; LANES];
                v[..n].copy_from_slice(&l[first..first + n]);
                v
            });
            let rows = Rows {
                src: b.src.map(|s| &s[k0 * ss..]),
                src_stride: ss,
                dst: b.dst.as_deref_mut().map(|d| &mut d[k0 * ds..]),
                dst_stride: ds,
                rows: n,
                cols,
            };
            let t = Tile {
                rows,
                label,
                weight,
                ce_scale,
                z_scale,
                z_loss: self.z_scale,
                lse,
                accumulate: self.accumulate,
                argmax: want_argmax,
                scratch: &mut *scratch,
            };
            kernels::tile(self.isa, t, &mut out);
            if self.mode == Mode::Backward {
                continue;
            }
            // Lanes past the rows and ignored rows hold 0.
            for k in 0..LANES {
                sums.0[k] += f64::from(out.ce[k]);
                sums.1[k] += f64::from(out.z[k]);
            }
            if let Some(l) = b.loss.as_deref_mut() {
                for (o, (c, z)) in l[k0..k0 + n].iter_mut().zip(out.ce.iter().zip(&out.z)) {
                    *o = c + z;
                }
            }
            if let Some(l) = b.lse.as_deref_mut() {
                l[k0..k0 + n].copy_from_slice(&out.lse[..n]);
            }
            if let Some(a) = b.argmax.as_deref_mut() {
                a[k0..k0 + n].copy_from_slice(&out.argmax[..n]);
            }
        }
        if self.zero_padding
            && let Some(d) = b.dst.as_deref_mut()
        {
            zero_padding(d, b.rows, cols, ds);
        }
        let total = |s: [f64; LANES]| s.iter().fold(0.0, |acc, x| acc + x);
        (total(sums.0), total(sums.1))
    }
}
