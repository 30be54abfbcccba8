//! The sharded calls' arguments: options, shapes, every pointer, then
//! overlap of outputs with everything else, before any slice exists.

use super::args::Regions;
use super::boundary;
use super::options::{CPool, XentOptions, grad_extent, read_options, reduction, safe_options};
use super::status::XentStatus;
use crate::loss::shard::{self, ShardLayout, ShardStats};

/// The per-row statistics of a shard, and of merged shards. Plain old data
/// (five floats, `#[repr(C)]`) so a message-passing library can reduce it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct XentShardStats {
    /// Largest `z'` (NaN skipped; −inf when every value is −inf, or the
    /// shard has no classes).
    pub max: f32,
    /// `Σ exp(z' − max)` (NaN when a value is NaN, or +inf without softcap).
    pub sum_exp: f32,
    /// `z'` at the row's label when the label is in the shard, else 0.
    pub target_logit: f32,
    /// `Σ w_j (z'_j − max)` over the classes with `w_j ≠ 0` when label
    /// smoothing is on (−inf if every value is −inf and some `w_j > 0`),
    /// else 0.
    pub weighted_logit_sum: f32,
    /// `Σ w_j` (class weights, or ones) when label smoothing is on, else 0.
    pub weight_sum: f32,
}

// The C type and the core's are separate types of one layout, so the
// boundary converts slices without copying; a change to either that breaks
// the layout stops the build here rather than changing the ABI silently.
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<XentShardStats>() == size_of::<ShardStats>());
    assert!(align_of::<XentShardStats>() == align_of::<ShardStats>());
    assert!(offset_of!(XentShardStats, max) == offset_of!(ShardStats, max));
    assert!(offset_of!(XentShardStats, sum_exp) == offset_of!(ShardStats, sum_exp));
    assert!(offset_of!(XentShardStats, target_logit) == offset_of!(ShardStats, target_logit));
    assert!(offset_of!(XentShardStats, weighted_logit_sum) == offset_of!(ShardStats, weighted_logit_sum));
    assert!(offset_of!(XentShardStats, weight_sum) == offset_of!(ShardStats, weight_sum));
};

impl From<XentShardStats> for ShardStats {
    fn from(s: XentShardStats) -> Self {
        ShardStats {
            max: s.max,
            sum_exp: s.sum_exp,
            target_logit: s.target_logit,
            weighted_logit_sum: s.weighted_logit_sum,
            weight_sum: s.weight_sum,
        }
    }
}

impl From<ShardStats> for XentShardStats {
    fn from(s: ShardStats) -> Self {
        XentShardStats {
            max: s.max,
            sum_exp: s.sum_exp,
            target_logit: s.target_logit,
            weighted_logit_sum: s.weighted_logit_sum,
            weight_sum: s.weight_sum,
        }
    }
}

/// The core's view of the caller's statistics.
fn core_stats(s: &[XentShardStats]) -> &[ShardStats] {
    // SAFETY: the two types have one layout (checked above) and every bit
    // pattern is valid for both; the borrow is moved, not duplicated.
    unsafe { core::slice::from_raw_parts(s.as_ptr().cast::<ShardStats>(), s.len()) }
}

/// The core's view of the caller's statistics, to write.
fn core_stats_mut(s: &mut [XentShardStats]) -> &mut [ShardStats] {
    // SAFETY: as in `core_stats`, for an exclusive borrow.
    unsafe { core::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<ShardStats>(), s.len()) }
}
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
    pub(crate) unsafe fn stats(self, stats: *mut XentShardStats) -> Result<()> {
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
            shard::shard_stats(m, self.layout(), labels.slice(), &options, core_stats_mut(out.slice_mut()))
        }
    }

    /// `xent_shard_stats_keep`: `kept` may be exactly `logits` with the
    /// same stride (in place).
    ///
    /// # Safety
    /// Every non-NULL pointer must be valid for the extent its sizes describe.
    pub(crate) unsafe fn stats_keep(
        self,
        stats: *mut XentShardStats,
        kept: *mut f32,
        kept_stride: usize,
    ) -> Result<()> {
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
            shard::shard_stats_keep(io, self.layout(), labels.slice(), &options, core_stats_mut(out.slice_mut()))
        }
    }

    /// `xent_shard_backward` (`local` NULL), or `xent_shard_backward_kept`
    /// (`self.logits` is then the kept buffer).
    ///
    /// # Safety
    /// Every non-NULL pointer must be valid for the extent its sizes describe.
    pub(crate) unsafe fn backward(
        self,
        (local, merged): (Option<*const XentShardStats>, *const XentShardStats),
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
                Some(l) => shard::shard_backward_kept(
                    io,
                    self.layout(),
                    labels,
                    &options,
                    (core_stats(l.slice()), core_stats(merged.slice())),
                    up,
                ),
                None => shard::shard_backward(io, self.layout(), labels, &options, core_stats(merged.slice()), up),
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
unsafe fn merged_loss(
    merged: *const XentShardStats,
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
            core_stats(merged.slice()),
            total_classes,
            labels.slice(),
            &options,
            loss.slice_mut(),
            lse.map(|l| l.slice_mut()),
        )
    }
}

/// Per-row statistics of one vocabulary shard (`XentShardStats`, five floats
/// per row): `logits` holds classes [class_offset, class_offset +
/// shard_classes) of every row (row i at `logits + i * row_stride`) out of
/// `total_classes`. `labels` and `class_weights` are global (weights has
/// `total_classes` entries). Combine the shards' statistics with
/// xent_shard_stats_merge (one MPI_Allreduce), then call xent_shard_loss and
/// xent_shard_backward. On failure nothing is written.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_shard_stats(
    logits: *const f32,
    rows: usize,
    shard_classes: usize,
    row_stride: usize,
    class_offset: usize,
    total_classes: usize,
    labels: *const i32,
    options: *const XentOptions,
    stats: *mut XentShardStats,
) -> XentStatus {
    let call = ShardCall { logits, rows, shard_classes, row_stride, class_offset, total_classes, labels, options };
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.stats(stats) })
}

/// Merges `rows` statistics of `in` into `inout` (associative and
/// commutative up to float rounding, like an online softmax): the shape of
/// an MPI_User_function, so `MPI_Op_create` on a thin wrapper gives the
/// all-reduce operation. NULL pointers or `rows == 0` do nothing. Element by
/// element, so `in` may even be `inout`.
///
/// # Safety
/// `in` and `inout` must each hold `rows` statistics.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_shard_stats_merge(input: *const XentShardStats, inout: *mut XentShardStats, rows: usize) {
    boundary::value((), || {
        if input.is_null() || inout.is_null() || rows == 0 {
            return;
        }
        for i in 0..rows {
            // SAFETY: the caller's contract: both hold `rows` values; each is
            // read into a local before the one write, so aliasing is harmless.
            unsafe {
                let (a, b) = (input.add(i).read_unaligned(), inout.add(i).read_unaligned());
                inout.add(i).write_unaligned(shard::merge_one(a.into(), b.into()).into());
            }
        }
    })
}

/// The loss (1 value, or `rows` for NONE) and optionally the per-row
/// log-sum-exp from merged statistics, equal to the unsharded
/// xent_forward's (within float rounding).
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_shard_loss(
    merged: *const XentShardStats,
    rows: usize,
    total_classes: usize,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
) -> XentStatus {
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { merged_loss(merged, rows, total_classes, labels, options, loss, lse) })
}

/// The gradient of this shard's logits given the merged statistics and the
/// upstream gradient `grad_loss` (1 value, or `rows` for NONE): the
/// unsharded xent_backward's gradient restricted to the shard's classes.
/// `grad_logits` may be exactly `logits` with the same stride (in place).
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_shard_backward(
    logits: *const f32,
    rows: usize,
    shard_classes: usize,
    row_stride: usize,
    class_offset: usize,
    total_classes: usize,
    labels: *const i32,
    options: *const XentOptions,
    merged: *const XentShardStats,
    grad_loss: *const f32,
    grad_logits: *mut f32,
    grad_row_stride: usize,
) -> XentStatus {
    let call = ShardCall { logits, rows, shard_classes, row_stride, class_offset, total_classes, labels, options };
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.backward((None, merged), grad_loss, grad_logits, grad_row_stride) })
}

/// xent_shard_stats, also keeping in `kept` (the shard's shape, row i at
/// `kept + i * kept_row_stride`) what xent_shard_backward_kept needs to make
/// the gradient without computing the logits' exps again: `exp(z − max)`
/// relative to this shard's own max (`stats[i].max`), or `tanh(z / cap)`
/// under a softcap. `kept` may be exactly `logits` with the same stride (in
/// place: the logits are overwritten), or the gradient buffer that
/// xent_shard_backward_kept then overwrites in place. The statistics equal
/// xent_shard_stats's within float rounding. On failure nothing is written.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_shard_stats_keep(
    logits: *const f32,
    rows: usize,
    shard_classes: usize,
    row_stride: usize,
    class_offset: usize,
    total_classes: usize,
    labels: *const i32,
    options: *const XentOptions,
    stats: *mut XentShardStats,
    kept: *mut f32,
    kept_row_stride: usize,
) -> XentStatus {
    let call = ShardCall { logits, rows, shard_classes, row_stride, class_offset, total_classes, labels, options };
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.stats_keep(stats, kept, kept_row_stride) })
}

/// xent_shard_backward from what xent_shard_stats_keep kept instead of the
/// logits: one multiply per logit where xent_shard_backward computes an exp.
/// `local` is that call's own statistics (before merging), `merged` the
/// merged ones; the options must be that call's. `grad_logits` may be
/// exactly `kept` with the same stride (in place). Given statistics or a
/// `kept` buffer that did not come from that call, the gradient is
/// meaningless (but nothing outside the buffers is touched).
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_shard_backward_kept(
    kept: *const f32,
    rows: usize,
    shard_classes: usize,
    kept_row_stride: usize,
    class_offset: usize,
    total_classes: usize,
    labels: *const i32,
    options: *const XentOptions,
    local: *const XentShardStats,
    merged: *const XentShardStats,
    grad_loss: *const f32,
    grad_logits: *mut f32,
    grad_row_stride: usize,
) -> XentStatus {
    let row_stride = kept_row_stride;
    let call =
        ShardCall { logits: kept, rows, shard_classes, row_stride, class_offset, total_classes, labels, options };
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.backward((Some(local), merged), grad_loss, grad_logits, grad_row_stride) })
}
