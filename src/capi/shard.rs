//! The sharded calls' arguments: options, shapes, every pointer, then
//! overlap of outputs with everything else, before any slice exists.

use super::args::{CPool, Regions, read_options, reduction, safe_options};
use super::status::XentOptions;
use crate::loss::shard::{self, ShardLayout, ShardStats};
use crate::loss::{LogitsGrad, Matrix, MatrixMut, Reduction, Result, check_shape};

/// Every argument of the sharded calls; unused ones are NULL / 0.
pub(crate) struct ShardCall {
    pub logits: *const f32,
    pub rows: usize,
    pub shard_classes: usize,
    pub row_stride: usize,
    pub class_offset: usize,
    pub total_classes: usize,
    pub labels: *const i32,
    pub options: *const XentOptions,
}

impl ShardCall {
    /// `xent_shard_stats`.
    ///
    /// # Safety
    /// Every non-NULL pointer must be valid for the extent its sizes describe.
    pub(crate) unsafe fn stats(self, stats: *mut ShardStats) -> Result<()> {
        // SAFETY: forwarded from the caller.
        let o = unsafe { read_options(self.options)? };
        let red = reduction(o.reduction)?;
        let ext = check_shape("logits", self.rows, self.shard_classes, self.row_stride)?;
        let mut r = Regions::new("no output may overlap another buffer");
        let logits = r.input("logits", self.logits, ext)?;
        let labels = r.input("labels", self.labels, self.rows)?;
        let weights = r.optional("class_weights", o.class_weights, self.total_classes, false)?;
        let out = r.output("stats", stats, self.rows)?;
        r.check()?;
        // SAFETY: checked non-NULL (or empty), aligned, in the address space
        // and not overlapping any output; validity is the caller's contract.
        unsafe {
            let pool = CPool::of(&o);
            let options = safe_options(&o, red, weights.map(|w| w.slice()), pool.as_ref());
            let m = Matrix { data: logits.slice(), rows: self.rows, cols: self.shard_classes, stride: self.row_stride };
            let layout = ShardLayout { class_offset: self.class_offset, total_classes: self.total_classes };
            shard::shard_stats(m, layout, labels.slice(), &options, out.slice_mut())
        }
    }

    /// `xent_shard_backward`.
    ///
    /// # Safety
    /// Every non-NULL pointer must be valid for the extent its sizes describe.
    pub(crate) unsafe fn backward(
        self,
        merged: *const ShardStats,
        grad_loss: *const f32,
        grad: *mut f32,
        grad_stride: usize,
    ) -> Result<()> {
        // SAFETY: forwarded from the caller.
        let o = unsafe { read_options(self.options)? };
        let red = reduction(o.reduction)?;
        let rows = self.rows;
        let ext = check_shape("logits", rows, self.shard_classes, self.row_stride)?;
        let gext = check_shape("grad_logits", rows, self.shard_classes, grad_stride)?;
        let in_place = core::ptr::eq(grad, self.logits) && grad_stride == self.row_stride && !grad.is_null();
        let n_up = if red == Reduction::None { rows } else { 1 };
        let mut r = Regions::new("only grad_logits == logits with the same stride is allowed");
        let logits = if in_place { None } else { Some(r.input("logits", self.logits, ext)?) };
        let labels = r.input("labels", self.labels, rows)?;
        let weights = r.optional("class_weights", o.class_weights, self.total_classes, false)?;
        let merged = r.input("merged", merged, rows)?;
        let up = r.input("grad_loss", grad_loss, n_up)?;
        let g = r.output("grad_logits", grad, gext)?;
        r.check()?;
        // SAFETY: as in `stats`; in place, the gradient buffer is the only
        // view of the logits.
        unsafe {
            let pool = CPool::of(&o);
            let options = safe_options(&o, red, weights.map(|w| w.slice()), pool.as_ref());
            let (cols, ss) = (self.shard_classes, self.row_stride);
            let gm = MatrixMut { data: g.slice_mut(), rows, cols, stride: grad_stride };
            let io = match logits {
                None => LogitsGrad::InPlace(gm),
                Some(l) => {
                    LogitsGrad::Separate { logits: Matrix { data: l.slice(), rows, cols, stride: ss }, grad: gm }
                }
            };
            let layout = ShardLayout { class_offset: self.class_offset, total_classes: self.total_classes };
            shard::shard_backward(io, layout, labels.slice(), &options, merged.slice(), up.slice())
        }
    }
}

/// `xent_shard_loss`.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
pub(crate) unsafe fn loss(
    merged: *const ShardStats,
    rows: usize,
    total_classes: usize,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
) -> Result<()> {
    // SAFETY: forwarded from the caller.
    let o = unsafe { read_options(options)? };
    let red = reduction(o.reduction)?;
    let n_loss = if red == Reduction::None { rows } else { 1 };
    let mut r = Regions::new("no output may overlap another buffer");
    let merged = r.input("merged", merged, rows)?;
    let labels = r.input("labels", labels, rows)?;
    let weights = r.optional("class_weights", o.class_weights, total_classes, false)?;
    let loss = r.output("loss", loss, n_loss)?;
    let lse = r.optional("lse", lse, rows, true)?;
    r.check()?;
    // SAFETY: as in `ShardCall::stats`.
    unsafe {
        let options = safe_options(&o, red, weights.map(|w| w.slice()), None);
        shard::shard_loss(
            merged.slice(),
            total_classes,
            labels.slice(),
            &options,
            loss.slice_mut(),
            lse.map(|l| l.slice_mut()),
        )
    }
}
