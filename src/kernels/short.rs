//! Batches of short rows (at most 64 classes): the long-row passes run row
//! after row inside one kernel call, so a batch costs one dispatch instead
//! of several per row, with exactly the long path's operations.

use super::rows::{Grad, Io, Logit, grad, max, sum_exp};
use super::simd::Simd;

/// A batch of consecutive rows of a matrix (the short-row and tile paths).
pub(crate) struct Rows<'a> {
    /// The logits rows, or `None` when `dst` holds them (in place).
    pub src: Option<&'a [f32]>,
    pub src_stride: usize,
    /// Where results are stored (fused or backward call), if anywhere.
    pub dst: Option<&'a mut [f32]>,
    pub dst_stride: usize,
    /// Number of rows.
    pub rows: usize,
    pub cols: usize,
}

impl Rows<'_> {
    /// The logits of row `k` (from `dst` when in place).
    pub(crate) fn logits(&self, k: usize) -> &[f32] {
        match (self.src, self.dst.as_deref()) {
            (Some(s), _) => &s[k * self.src_stride..k * self.src_stride + self.cols],
            (None, Some(d)) => &d[k * self.dst_stride..k * self.dst_stride + self.cols],
            (None, None) => unreachable!("a batch has logits"),
        }
    }
}

/// For each row `k`: `max[k]` and `sum[k] = Σ exp(z − max)` by exactly the
/// passes the long-row path runs on a single-chunk row, storing the exps
/// when there is a `dst`. One call per batch instead of two per row.
#[inline(always)]
pub(crate) fn short_scan<S: Simd>(s: S, rows: Rows<'_>, max_out: &mut [f32], sum_out: &mut [f32]) {
    let Rows { src, src_stride: ss, mut dst, dst_stride: ds, rows: n, cols } = rows;
    assert!(max_out.len() == n && sum_out.len() == n);
    for (k, (mk, sk)) in max_out.iter_mut().zip(sum_out.iter_mut()).enumerate() {
        let srow = src.map(|x| &x[k * ss..k * ss + cols]);
        let drow = dst.as_deref_mut().map(|d| &mut d[k * ds..k * ds + cols]);
        let (m, io) = match (srow, drow) {
            (Some(a), Some(b)) => (max(s, a, Logit::Raw), Io::Map(a, b)),
            (Some(a), None) => (max(s, a, Logit::Raw), Io::Read(a)),
            (None, Some(b)) => (max(s, b, Logit::Raw), Io::InPlace(b)),
            (None, None) => unreachable!("a batch has logits"),
        };
        *sk = sum_exp(s, io, Logit::Raw, m, &[]) as f32;
        *mk = m;
    }
}

/// The gradient pass of [`grad`] on consecutive rows, row `k` with `a[k]`.
#[inline(always)]
pub(crate) fn short_grad<S: Simd>(s: S, dst: &mut [f32], stride: usize, cols: usize, g: Grad<'_>, a: &[f32]) {
    for (k, &ak) in a.iter().enumerate() {
        grad(s, Io::InPlace(&mut dst[k * stride..k * stride + cols]), Grad { a: ak, ..g });
    }
}
