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
use crate::kernels::{self, LANES, Logit, ROW_BY_ROW_MAX, Rows, Scales, TILE_MAX_COLS, Tiles};

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
        // A block of a few rows runs row by row. The scratch is zeroed once
        // per block: only as wide as the rows (row by row, as all of its values).
        let few = b.rows <= ROW_BY_ROW_MAX;
        let need = if few { (b.rows * self.cols).div_ceil(LANES) } else { self.cols };
        match need {
            c if c <= 2 => self.short_tiles(layout, want_argmax, few, b, &mut [[0.0; LANES]; 2]),
            c if c <= 16 => self.short_tiles(layout, want_argmax, few, b, &mut [[0.0; LANES]; 16]),
            c if c <= 32 => self.short_tiles(layout, want_argmax, few, b, &mut [[0.0; LANES]; 32]),
            c if c <= 64 => self.short_tiles(layout, want_argmax, few, b, &mut [[0.0; LANES]; 64]),
            _ => self.short_tiles(layout, want_argmax, few, b, &mut [[0.0; LANES]; TILE_MAX_COLS]),
        }
    }

    fn short_tiles(
        &self,
        layout: &Layout,
        want_argmax: bool,
        few: bool,
        b: &mut Block<'_>,
        scratch: &mut [[f32; LANES]],
    ) -> (f64, f64) {
        let Targets::Labels(labels) = self.targets else { unreachable!("the short path takes labels") };
        let (first, count, cols) = (b.first, b.rows, self.cols);
        let grads = b.dst.is_some();
        // Gradient scales are per row only for per-row upstream gradients.
        let scales = match self.upstream {
            Some(up) if grads && self.reduction == Reduction::None => {
                Scales::PerRow(&up.grad_loss[first..first + count], self.mean_scales)
            }
            _ if grads && count > 0 => {
                let (c, z) = self.grad_scales(first);
                Scales::Same(c as f32, z as f32)
            }
            _ => Scales::Same(0.0, 0.0),
        };
        let mut sums = [[0.0f64; LANES]; 2];
        let backward = self.mode == Mode::Backward;
        let run = if few { kernels::few_rows } else { kernels::tiles };
        run(
            self.isa,
            Tiles {
                rows: Rows {
                    src: b.src,
                    src_stride: layout.src_stride,
                    dst: b.dst.as_deref_mut(),
                    dst_stride: layout.dst_stride,
                    rows: count,
                    cols,
                },
                next: b.next,
                labels: &labels[first..first + count],
                ignore_index: self.ignore_index,
                weights: self.weights,
                scales,
                z_loss: self.z_scale,
                lse: self.upstream.and_then(|u| u.lse).map(|l| &l[first..first + count]),
                accumulate: self.accumulate,
                loss: b.loss.as_deref_mut(),
                lse_out: b.lse.as_deref_mut(),
                argmax: b.argmax.as_deref_mut().filter(|_| want_argmax),
                sums: (!backward).then_some(&mut sums),
                scratch,
            },
        );
        if self.zero_padding
            && let Some(d) = b.dst.as_deref_mut()
        {
            zero_padding(d, count, cols, layout.dst_stride);
        }
        let total = |s: &[f64; LANES]| s.iter().fold(0.0, |acc, x| acc + x);
        (total(&sums[0]), total(&sums[1]))
    }
}
