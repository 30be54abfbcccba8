//! The sharded calls' arguments: options, shapes, every pointer, then
//! overlap of outputs with everything else, before any slice exists.

use super::args::{CPool, Regions, grad_extent, read_options, reduction, safe_options};
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
        let ext = shard_extent("logits", self.rows, self.shard_classes, self.row_stride)?;
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
            shard::shard_stats(m, self.layout(), labels.slice(), &options, out.slice_mut())
        }
    }

    /// `xent_shard_stats_keep`: `kept` may be exactly `logits` with the
    /// same stride (in place).
    ///
    /// # Safety
    /// Every non-NULL pointer must be valid for the extent its sizes describe.
    pub(crate) unsafe fn stats_keep(self, stats: *mut ShardStats, kept: *mut f32, kept_stride: usize) -> Result<()> {
        // SAFETY: forwarded from the caller.
        let o = unsafe { read_options(self.options)? };
        let red = reduction(o.reduction)?;
        let rows = self.rows;
        let ext = shard_extent("logits", rows, self.shard_classes, self.row_stride)?;
        let kext = shard_extent("kept", rows, self.shard_classes, kept_stride)?;
        let in_place = core::ptr::eq(kept, self.logits) && kept_stride == self.row_stride && !kept.is_null();
        let mut r = Regions::new("only kept == logits with the same stride is allowed");
        let logits = if in_place { None } else { Some(r.input("logits", self.logits, ext)?) };
        let labels = r.input("labels", self.labels, rows)?;
        let weights = r.optional("class_weights", o.class_weights, self.total_classes, false)?;
        let out = r.output("stats", stats, rows)?;
        let k = r.output("kept", kept, kext)?;
        r.check()?;
        // SAFETY: as in `stats`; in place, the kept buffer is the only view
        // of the logits.
        unsafe {
            let pool = CPool::of(&o);
            let options = safe_options(&o, red, weights.map(|w| w.slice()), pool.as_ref());
            let km = MatrixMut { data: k.slice_mut(), rows, cols: self.shard_classes, stride: kept_stride };
            let io = self.pair(logits.map(|l| l.slice()), km);
            shard::shard_stats_keep(io, self.layout(), labels.slice(), &options, out.slice_mut())
        }
    }

    /// `xent_shard_backward` (`local` NULL), or `xent_shard_backward_kept`
    /// (`self.logits` is then the kept buffer).
    ///
    /// # Safety
    /// Every non-NULL pointer must be valid for the extent its sizes describe.
    pub(crate) unsafe fn backward(
        self,
        (local, merged): (Option<*const ShardStats>, *const ShardStats),
        grad_loss: *const f32,
        grad: *mut f32,
        grad_stride: usize,
    ) -> Result<()> {
        // SAFETY: forwarded from the caller.
        let o = unsafe { read_options(self.options)? };
        let red = reduction(o.reduction)?;
        let rows = self.rows;
        let src = if local.is_some() { "kept" } else { "logits" };
        let ext = shard_extent(src, rows, self.shard_classes, self.row_stride)?;
        let gext = if self.shard_classes == 0 && o.grad_zero_padding != 0 {
            // Only the padding of a shard without classes is written.
            grad_extent(&o, "grad_logits", rows, 1, grad_stride.max(1))?.min(rows.saturating_mul(grad_stride))
        } else if self.shard_classes == 0 {
            0
        } else {
            grad_extent(&o, "grad_logits", rows, self.shard_classes, grad_stride)?
        };
        let in_place = core::ptr::eq(grad, self.logits) && grad_stride == self.row_stride && !grad.is_null();
        let n_up = if red == Reduction::None { rows } else { 1 };
        let mut r = Regions::new(if local.is_some() {
            "only grad_logits == kept with the same stride is allowed"
        } else {
            "only grad_logits == logits with the same stride is allowed"
        });
        let logits = if in_place { None } else { Some(r.input(src, self.logits, ext)?) };
        let labels = r.input("labels", self.labels, rows)?;
        let weights = r.optional("class_weights", o.class_weights, self.total_classes, false)?;
        let local = match local {
            Some(l) => Some(r.input("local", l, rows)?),
            None => None,
        };
        let merged = r.input("merged", merged, rows)?;
        let up = r.input("grad_loss", grad_loss, n_up)?;
        let g = r.output("grad_logits", grad, gext)?;
        r.check()?;
        // SAFETY: as in `stats`; in place, the gradient buffer is the only
        // view of the logits.
        unsafe {
            let pool = CPool::of(&o);
            let options = safe_options(&o, red, weights.map(|w| w.slice()), pool.as_ref());
            let gm = MatrixMut { data: g.slice_mut(), rows, cols: self.shard_classes, stride: grad_stride };
            let io = self.pair(logits.map(|l| l.slice()), gm);
            let (labels, up) = (labels.slice(), up.slice());
            match local {
                Some(l) => {
                    shard::shard_backward_kept(io, self.layout(), labels, &options, (l.slice(), merged.slice()), up)
                }
                None => shard::shard_backward(io, self.layout(), labels, &options, merged.slice(), up),
            }
        }
    }

    fn layout(&self) -> ShardLayout {
        ShardLayout { class_offset: self.class_offset, total_classes: self.total_classes }
    }

    /// The source/destination pair: `src` (`None` in place) into `dst`.
    fn pair<'a>(&self, src: Option<&'a [f32]>, dst: MatrixMut<'a>) -> LogitsGrad<'a> {
        let (rows, cols, stride) = (self.rows, self.shard_classes, self.row_stride);
        match src {
            None => LogitsGrad::InPlace(dst),
            Some(data) => LogitsGrad::Separate { logits: Matrix { data, rows, cols, stride }, grad: dst },
        }
    }
}

/// Values a shard's matrix spans: none for a shard without classes (more
/// ranks than classes, or an uneven split), whose calls read no logits.
fn shard_extent(what: &str, rows: usize, cols: usize, stride: usize) -> Result<usize> {
    if cols == 0 { Ok(0) } else { check_shape(what, rows, cols, stride) }
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
