//! The options struct of every call (`XentOptions`, versioned by its
//! `struct_size`), the reduction codes, the caller's pool, and their
//! conversion into the safe core's `Options`.

use core::ffi::c_void;
use core::mem::{align_of, offset_of, size_of};

use crate::error::{ErrorKind, Result, fail};
use crate::loss::{Options, ParallelFor, Reduction, check_shape};

/// How row losses are combined (PyTorch's `reduction=`).
pub type XentReduction = u32;
/// Weighted mean over kept rows: 'mean'.
pub const XENT_REDUCTION_MEAN: XentReduction = 0;
/// Sum over rows: 'sum'.
pub const XENT_REDUCTION_SUM: XentReduction = 1;
/// One loss per row: 'none'.
pub const XENT_REDUCTION_NONE: XentReduction = 2;

/// One task of a parallel_for: run block `task_index` with `task_ctx`.
pub type XentTaskFn = Option<unsafe extern "C" fn(task_ctx: *mut c_void, task_index: usize)>;

/// A caller's pool: call `task(task_ctx, i)` once for every i in [0, n_tasks),
/// on any threads, and return only when all calls have returned.
pub type XentParallelFor =
    Option<unsafe extern "C" fn(parallel_ctx: *mut c_void, n_tasks: usize, task: XentTaskFn, task_ctx: *mut c_void)>;

/// Options of every call. Start from `xent_options_default()` and change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XentOptions {
    /// sizeof(XentOptions) as the caller compiled it. A smaller value (an older
    /// header, at least sizeof(size_t)) is accepted and the fields it does not
    /// cover keep their defaults; 0, anything below sizeof(size_t) or a larger
    /// value is XENT_STATUS_INVALID_ARGUMENT.
    pub struct_size: usize,
    /// XENT_REDUCTION_MEAN (default), _SUM or _NONE.
    pub reduction: XentReduction,
    /// Rows with this label are skipped (default -100). Class-index targets only.
    pub ignore_index: i32,
    /// NULL (default) or `classes` weights, as PyTorch's `weight=`.
    pub class_weights: *const f32,
    /// In [0, 1] (default 0), as PyTorch's `label_smoothing=`.
    pub label_smoothing: f32,
    /// >= 0 (default 0): adds z_loss_scale * lse^2 per kept row.
    pub z_loss_scale: f32,
    /// >= 0 (default 0 = off): logits become cap * tanh(z / cap) first.
    pub logit_softcap: f32,
    /// 1 = the calling thread only; N = up to N threads; 0 (default) = all
    /// cores for large calls, the calling thread for small ones.
    pub num_threads: u32,
    /// NULL (default) = xent's own threads; otherwise xent hands its row
    /// blocks to this function (num_threads is then ignored).
    pub parallel_for: XentParallelFor,
    /// Passed to parallel_for as its first argument.
    pub parallel_ctx: *mut c_void,
    /// Finite (default 1): every gradient a call writes is the gradient of
    /// grad_scale times its loss (for the backward calls, on top of
    /// grad_loss), e.g. 1/N with XENT_REDUCTION_NONE for per-row losses and
    /// the mean's gradient in one pass. Losses, lse and argmax are unchanged.
    pub grad_scale: f32,
    /// 0 (default) or 1: add gradients into the caller's buffers
    /// (grad_logits; grad_hidden, grad_weight and grad_bias of the linear
    /// call) instead of overwriting them. Each element gets exactly old + g,
    /// g being what the call writes without it (16-bit: the widened old value
    /// plus the float32 gradient, rounded once to nearest even; the linear
    /// call's products add in their own order); rows whose label is
    /// ignore_index are left as they are. With grad_logits == logits it is
    /// XENT_STATUS_INVALID_ARGUMENT.
    pub grad_accumulate: u32,
    /// 0 (default) or 1: also set the columns [classes, grad_row_stride) of
    /// every gradient row to 0 (the linear call: [dim, stride) of grad_hidden
    /// and grad_weight rows), so a padded vocabulary's gradient is ready for
    /// the next matrix product. The gradient buffer must then hold rows x
    /// grad_row_stride values (the last row's padding included).
    pub grad_zero_padding: u32,
}

/// Default options, as `xent_options_default()` returns them.
pub(crate) fn default_options() -> XentOptions {
    XentOptions {
        struct_size: size_of::<XentOptions>(),
        reduction: XENT_REDUCTION_MEAN,
        ignore_index: -100,
        class_weights: core::ptr::null(),
        label_smoothing: 0.0,
        z_loss_scale: 0.0,
        logit_softcap: 0.0,
        num_threads: 0,
        parallel_for: None,
        parallel_ctx: core::ptr::null_mut(),
        grad_scale: 1.0,
        grad_accumulate: 0,
        grad_zero_padding: 0,
    }
}

/// Reads the caller's options: NULL means defaults; fields past `struct_size`
/// keep their defaults.
///
/// # Safety
/// `p` is NULL or points to at least `struct_size` readable bytes.
pub(super) unsafe fn read_options(p: *const XentOptions) -> Result<XentOptions> {
    let mut o = default_options();
    if p.is_null() {
        return Ok(o);
    }
    if !(p as usize).is_multiple_of(align_of::<XentOptions>()) {
        return fail(ErrorKind::InvalidArgument, "options pointer is not aligned for XentOptions");
    }
    // SAFETY: p is non-NULL and aligned; struct_size is the first field, which
    // any caller's version of the struct has.
    let size = unsafe { core::ptr::addr_of!((*p).struct_size).read() };
    if size < size_of::<usize>() || size > size_of::<XentOptions>() {
        return fail(
            ErrorKind::InvalidArgument,
            format_args!(
                "options struct_size {size} is invalid (this library's XentOptions is {} bytes)",
                size_of::<XentOptions>()
            ),
        );
    }
    macro_rules! take {
        ($($field:ident),*) => {$(
            if offset_of!(XentOptions, $field) + size_of_val(&o.$field) <= size {
                // SAFETY: the field lies within the struct_size bytes the
                // caller provides; every bit pattern is valid for its type.
                o.$field = unsafe { core::ptr::addr_of!((*p).$field).read() };
            }
        )*};
    }
    take!(
        reduction,
        ignore_index,
        class_weights,
        label_smoothing,
        z_loss_scale,
        logit_softcap,
        num_threads,
        parallel_for,
        parallel_ctx,
        grad_scale,
        grad_accumulate,
        grad_zero_padding
    );
    for (name, v) in [("grad_accumulate", o.grad_accumulate), ("grad_zero_padding", o.grad_zero_padding)] {
        if v > 1 {
            return fail(ErrorKind::InvalidArgument, format_args!("{name} is {v} (expected 0 or 1)"));
        }
    }
    Ok(o)
}

/// Values a gradient buffer of `rows × cols` at `stride` must hold: the
/// matrix's extent, or every row's padding too with `grad_zero_padding`.
pub(super) fn grad_extent(o: &XentOptions, what: &str, rows: usize, cols: usize, stride: usize) -> Result<usize> {
    let ext = check_shape(what, rows, cols, stride)?;
    if o.grad_zero_padding == 0 {
        return Ok(ext);
    }
    match rows.checked_mul(stride) {
        Some(n) if n <= isize::MAX as usize / 4 => Ok(n),
        _ => fail(
            ErrorKind::SizeOverflow,
            format_args!("{what}: {rows} rows of stride {stride} (grad_zero_padding) overflow the address space"),
        ),
    }
}

pub(super) fn reduction(r: XentReduction) -> Result<Reduction> {
    match r {
        XENT_REDUCTION_MEAN => Ok(Reduction::Mean),
        XENT_REDUCTION_SUM => Ok(Reduction::Sum),
        XENT_REDUCTION_NONE => Ok(Reduction::None),
        _ => fail(ErrorKind::InvalidArgument, format_args!("unknown reduction {r} (expected 0, 1 or 2)")),
    }
}

/// The safe core's options from the caller's, with the checked reduction,
/// class weights and pool.
pub(super) fn safe_options<'a>(
    o: &XentOptions,
    reduction: Reduction,
    class_weights: Option<&'a [f32]>,
    pool: Option<&'a CPool>,
) -> Options<'a> {
    Options {
        reduction,
        ignore_index: o.ignore_index,
        class_weights,
        label_smoothing: o.label_smoothing,
        z_loss_scale: o.z_loss_scale,
        logit_softcap: o.logit_softcap,
        num_threads: o.num_threads,
        parallel_for: pool.map(|p| p as &dyn ParallelFor),
        grad_scale: o.grad_scale,
        grad_accumulate: o.grad_accumulate != 0,
        grad_zero_padding: o.grad_zero_padding != 0,
    }
}

/// The caller's `parallel_for` as a [`ParallelFor`].
pub(super) struct CPool {
    f: unsafe extern "C" fn(*mut c_void, usize, XentTaskFn, *mut c_void),
    ctx: *mut c_void,
}

// SAFETY: `run` is only called from the thread that made the xent call; the
// pool's function and context are the caller's to make thread-safe, as the
// header documents.
unsafe impl Sync for CPool {}

struct TaskData<'a> {
    task: &'a (dyn Fn(usize) + Sync),
}

unsafe extern "C" fn trampoline(ctx: *mut c_void, index: usize) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: ctx is the TaskData passed to parallel_for below, alive until it returns.
    let data = unsafe { &*(ctx as *const TaskData<'_>) };
    // A panic must not unwind into the caller's C frames; the task's block
    // then never finishes, which the call reports as an internal error.
    // (Without std there is no unwinding: a panic is the panic handler's.)
    #[cfg(feature = "std")]
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (data.task)(index)));
    #[cfg(not(feature = "std"))]
    (data.task)(index);
}

impl CPool {
    /// The pool of `o`, if it names one.
    pub(super) fn of(o: &XentOptions) -> Option<CPool> {
        o.parallel_for.map(|f| CPool { f, ctx: o.parallel_ctx })
    }
}

impl ParallelFor for CPool {
    fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        let data = TaskData { task };
        // SAFETY: the caller's parallel_for contract: call trampoline(ctx, i)
        // for i < n_tasks and return when all calls have returned.
        unsafe { (self.f)(self.ctx, n_tasks, Some(trampoline), &data as *const TaskData<'_> as *mut c_void) };
    }
}
